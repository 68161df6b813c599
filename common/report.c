/* The agent report wire format (mutualis/report.h): strict parsing over mutualis/json.h,
 * printing with cJSON builders. Every number is typed and bounded, every string checked,
 * unknown keys refused; an error names the field and, inside arrays, the element. */
#include "mutualis/report.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"

/* Integers up to this are exact in a JSON number (a double). */
#define SAFE_INT 9007199254740991LL
/* Cumulative counters (nanoseconds, bytes) may pass 2^53 on a long-lived domain: they are
 * accepted up to 2^62, rounded to the nearest double beyond 2^53. */
#define COUNTER_MAX 4611686018427387904LL

#define CPUS_MAX      65536
#define LOAD_MAX      1e6
#define MEM_MIB_MAX   (1LL << 40) /* 1 ZiB */
#define MEM_KIB_MAX   (1LL << 50)
#define UPTIME_MAX    10000000000LL /* about 317 years */
#define POOL_GIB_MAX  (1LL << 40)
#define VCPUS_MAX     16384
#define TIME_TEXT_MAX 40

static _Noreturn void report_oom(void)
{
    fprintf(stderr, "fatal: out of memory printing a report\n");
    abort();
}

/* ---- parsing helpers ---- */

/* A required integer in [min, max]; beyond SAFE_INT (counters) the double must be integral. */
static int get_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *ret,
                   struct mu_err *err)
{
    if (max <= SAFE_INT)
        return mu_json_get_i64(obj, key, true, min, max, ret, err);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v))
        return mu_err_setf(err, MU_EINVAL, key,
                           "%s is required (an integer between %" PRId64 " and %" PRId64 ")", key,
                           min, max);
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
        return mu_err_setf(err, MU_EINVAL, key,
                           "%s must be an integer between %" PRId64 " and %" PRId64, key, min, max);
    *ret = (int64_t)d;
    return 0;
}

/* A required finite number in [min, max]. */
static int get_double(const cJSON *obj, const char *key, double min, double max, double *ret,
                      struct mu_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v))
        return mu_err_setf(err, MU_EINVAL, key, "%s is required (a number between %g and %g)", key,
                           min, max);
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(d) || d < min || d > max)
        return mu_err_setf(err, MU_EINVAL, key, "%s must be a number between %g and %g", key, min,
                           max);
    *ret = d;
    return 0;
}

/* A required string of at most maxlen bytes, copied into out (maxlen + 1 bytes). */
static int get_text(const cJSON *obj, const char *key, size_t maxlen, char *out, struct mu_err *err)
{
    const char *s = NULL;
    int rc = mu_json_get_str(obj, key, true, maxlen, &s, err);
    if (rc != 0)
        return rc < 0 ? rc : MU_EINVAL;
    snprintf(out, maxlen + 1, "%s", s);
    return 0;
}

bool mu_report_epoch_valid(const char *s)
{
    if (!s)
        return false;
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == MU_EPOCH_HEX_LEN;
}

/* Canonical lower-case UUID: 8-4-4-4-12 hex digits. */
static bool uuid_valid(const char *s)
{
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[36] == '\0';
}

/* "YYYY-MM-DDTHH:MM:SS" then what mu_parse_time accepts: the digits are checked here
 * because sscanf alone would let signs and spaces through. */
static bool time_shape_valid(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
            return false;
    }
    return true;
}

static const char *const domain_states[] = {"running",  "shutoff", "paused",
                                            "shutdown", "crashed", "other"};

/* Cuts s so that it holds at most max bytes and does not end inside a UTF-8 sequence:
 * error texts reach JSON output and must stay valid UTF-8. */
static void utf8_cut(char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--; /* s[n] is a continuation byte: the sequence it belongs to would be cut */
    s[n] = '\0';
}

/* Re-files the error of a part with its place: where is "host" or "domains[3]". */
static int refile(struct mu_err *err, const char *where, const struct mu_err *sub)
{
    char field[sizeof sub->field + 32], detail[sizeof sub->detail + 32];
    if (sub->field[0])
        snprintf(field, sizeof field, "%s.%s", where, sub->field);
    else
        snprintf(field, sizeof field, "%s", where);
    snprintf(detail, sizeof detail, "%s: %s", where, sub->detail);
    utf8_cut(field, sizeof err->field - 1);
    utf8_cut(detail, sizeof err->detail - 1);
    return mu_err_setf(err, sub->code ? sub->code : MU_EINVAL, field, "%s", detail);
}

static int in_element(struct mu_err *err, const char *array, size_t i, const struct mu_err *sub)
{
    char where[32];
    snprintf(where, sizeof where, "%s[%zu]", array, i);
    return refile(err, where, sub);
}

static int parse_host(const cJSON *o, struct mu_report_host *h, struct mu_err *err)
{
    static const char *const keys[] = {
        "cpus",          "cpu_percent",       "load1",    "load5", "load15",
        "mem_total_mib", "mem_available_mib", "uptime_s", NULL};
    struct mu_err sub = {0};
    int rc;
    if ((rc = mu_json_expect_object(o, keys, "host", &sub)) < 0 ||
        (rc = get_int(o, "cpus", 1, CPUS_MAX, &h->cpus, &sub)) < 0 ||
        (rc = get_double(o, "cpu_percent", 0, 100, &h->cpu_percent, &sub)) < 0 ||
        (rc = get_double(o, "load1", 0, LOAD_MAX, &h->load1, &sub)) < 0 ||
        (rc = get_double(o, "load5", 0, LOAD_MAX, &h->load5, &sub)) < 0 ||
        (rc = get_double(o, "load15", 0, LOAD_MAX, &h->load15, &sub)) < 0 ||
        (rc = get_int(o, "mem_total_mib", 0, MEM_MIB_MAX, &h->mem_total_mib, &sub)) < 0 ||
        (rc = get_int(o, "mem_available_mib", 0, h->mem_total_mib, &h->mem_available_mib, &sub)) <
            0 ||
        (rc = get_int(o, "uptime_s", 0, UPTIME_MAX, &h->uptime_s, &sub)) < 0)
        return refile(err, "host", &sub);
    return 0;
}

static int parse_pool(const cJSON *o, struct mu_report_pool *p, struct mu_err *err)
{
    static const char *const keys[] = {"name", "capacity_gib", "allocation_gib", "available_gib",
                                       NULL};
    int rc;
    if ((rc = mu_json_expect_object(o, keys, "a pool", err)) < 0 ||
        (rc = get_text(o, "name", sizeof p->name - 1, p->name, err)) < 0)
        return rc;
    if (!mu_name_valid(p->name, sizeof p->name - 1))
        return mu_err_setf(err, MU_EINVAL, "name",
                           "name must be printable UTF-8 without leading or trailing spaces");
    if ((rc = get_int(o, "capacity_gib", 0, POOL_GIB_MAX, &p->capacity_gib, err)) < 0 ||
        (rc = get_int(o, "allocation_gib", 0, POOL_GIB_MAX, &p->allocation_gib, err)) < 0 ||
        (rc = get_int(o, "available_gib", 0, POOL_GIB_MAX, &p->available_gib, err)) < 0)
        return rc;
    return 0;
}

static int parse_domain(const cJSON *o, struct mu_report_domain *d, struct mu_err *err)
{
    static const char *const keys[] = {"uuid",
                                       "vm_id",
                                       "state",
                                       "cpu_time_ns",
                                       "vcpus",
                                       "mem_balloon_kib",
                                       "mem_rss_kib",
                                       "disk_allocation_bytes",
                                       "disk_capacity_bytes",
                                       "net_rx_bytes",
                                       "net_tx_bytes",
                                       NULL};
    int rc;
    if ((rc = mu_json_expect_object(o, keys, "a domain", err)) < 0 ||
        (rc = get_text(o, "uuid", sizeof d->uuid - 1, d->uuid, err)) < 0)
        return rc;
    if (!uuid_valid(d->uuid))
        return mu_err_setf(err, MU_EINVAL, "uuid",
                           "uuid must be a lower-case UUID (8-4-4-4-12 hexadecimal digits)");
    d->vm_id = 0;
    rc = mu_json_get_i64(o, "vm_id", false, 1, SAFE_INT, &d->vm_id, err);
    if (rc < 0)
        return rc;
    if ((rc = get_text(o, "state", sizeof d->state - 1, d->state, err)) < 0)
        return rc;
    bool known = false;
    for (size_t i = 0; i < MU_ARRAY_LEN(domain_states); i++)
        known = known || strcmp(d->state, domain_states[i]) == 0;
    if (!known)
        return mu_err_setf(err, MU_EINVAL, "state",
                           "state must be running, shutoff, paused, shutdown, crashed or other");
    if ((rc = get_int(o, "cpu_time_ns", 0, COUNTER_MAX, &d->cpu_time_ns, err)) < 0 ||
        (rc = get_int(o, "vcpus", 0, VCPUS_MAX, &d->vcpus, err)) < 0 ||
        (rc = get_int(o, "mem_balloon_kib", 0, MEM_KIB_MAX, &d->mem_balloon_kib, err)) < 0 ||
        (rc = get_int(o, "mem_rss_kib", 0, MEM_KIB_MAX, &d->mem_rss_kib, err)) < 0 ||
        (rc = get_int(o, "disk_allocation_bytes", 0, COUNTER_MAX, &d->disk_allocation_bytes, err)) <
            0 ||
        (rc = get_int(o, "disk_capacity_bytes", 0, COUNTER_MAX, &d->disk_capacity_bytes, err)) <
            0 ||
        (rc = get_int(o, "net_rx_bytes", 0, COUNTER_MAX, &d->net_rx_bytes, err)) < 0 ||
        (rc = get_int(o, "net_tx_bytes", 0, COUNTER_MAX, &d->net_tx_bytes, err)) < 0)
        return rc;
    return 0;
}

static int uuid_ptr_cmp(const void *a, const void *b)
{
    const struct mu_report_domain *const *x = a, *const *y = b;
    return strcmp((*x)->uuid, (*y)->uuid);
}

static int parse_pools(const cJSON *arr, struct mu_report *r, struct mu_err *err)
{
    int n = cJSON_GetArraySize(arr);
    if (n > MU_REPORT_MAX_POOLS)
        return mu_err_setf(err, MU_EINVAL, "pools", "pools has %d entries (at most %d)", n,
                           MU_REPORT_MAX_POOLS);
    r->pools = mu_xcalloc((size_t)n, sizeof *r->pools);
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        struct mu_err sub = {0};
        if (parse_pool(e, &r->pools[i], &sub) < 0)
            return in_element(err, "pools", i, &sub);
        r->npools = i + 1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->pools[j].name, r->pools[i].name) == 0)
                return mu_err_setf(err, MU_EINVAL, "pools",
                                   "pools[%zu]: pool name repeats pools[%zu]", i, j);
    }
    return 0;
}

static int parse_domains(const cJSON *arr, struct mu_report *r, struct mu_err *err)
{
    int n = cJSON_GetArraySize(arr);
    if (n > MU_REPORT_MAX_DOMAINS)
        return mu_err_setf(err, MU_EINVAL, "domains", "domains has %d entries (at most %d)", n,
                           MU_REPORT_MAX_DOMAINS);
    r->domains = mu_xcalloc((size_t)n, sizeof *r->domains);
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        struct mu_err sub = {0};
        if (parse_domain(e, &r->domains[i], &sub) < 0)
            return in_element(err, "domains", i, &sub);
        r->ndomains = i + 1;
    }
    if (r->ndomains < 2)
        return 0;
    /* A domain listed twice is refused: usage would count it twice. */
    const struct mu_report_domain **byuuid = mu_xcalloc(r->ndomains, sizeof *byuuid);
    for (i = 0; i < r->ndomains; i++)
        byuuid[i] = &r->domains[i];
    qsort(byuuid, r->ndomains, sizeof *byuuid, uuid_ptr_cmp);
    int rc = 0;
    for (i = 1; i < r->ndomains && rc == 0; i++)
        if (strcmp(byuuid[i - 1]->uuid, byuuid[i]->uuid) == 0)
            rc = mu_err_setf(err, MU_EINVAL, "domains", "domain %s is listed twice",
                             byuuid[i]->uuid);
    free(byuuid);
    return rc;
}

static int parse_root(const cJSON *root, struct mu_report *r, struct mu_err *err)
{
    static const char *const keys[] = {"version",  "node",   "epoch", "seq",   "time",    "kind",
                                       "gap_from", "gap_to", "host",  "pools", "domains", NULL};
    int rc;
    int64_t version = 0;
    char time_text[TIME_TEXT_MAX + 1], kind[16];
    if ((rc = mu_json_expect_object(root, keys, "the report", err)) < 0 ||
        (rc = get_int(root, "version", 0, SAFE_INT, &version, err)) < 0)
        return rc;
    if (version != MU_REPORT_VERSION)
        return mu_err_setf(err, MU_EINVAL, "version",
                           "version %" PRId64 " is not supported (this side speaks version %d)",
                           version, MU_REPORT_VERSION);
    if ((rc = get_text(root, "node", sizeof r->node - 1, r->node, err)) < 0)
        return rc;
    if (!mu_ident_valid(r->node))
        return mu_err_setf(err, MU_EINVAL, "node",
                           "node must be a node name: lower-case letters, digits, '.', '_' "
                           "and '-', at most 63 characters");
    if ((rc = get_text(root, "epoch", MU_EPOCH_HEX_LEN, r->epoch, err)) < 0)
        return rc;
    if (!mu_report_epoch_valid(r->epoch))
        return mu_err_setf(err, MU_EINVAL, "epoch",
                           "epoch must be exactly %d lower-case hexadecimal digits",
                           MU_EPOCH_HEX_LEN);
    if ((rc = get_int(root, "seq", 1, SAFE_INT, &r->seq, err)) < 0 ||
        (rc = get_text(root, "time", TIME_TEXT_MAX, time_text, err)) < 0)
        return rc;
    if (!time_shape_valid(time_text) || mu_parse_time(time_text, &r->time_ms) != 0)
        return mu_err_setf(err, MU_EINVAL, "time",
                           "time must be an RFC 3339 UTC time such as 2026-11-28T20:33:03.123Z");
    if ((rc = get_text(root, "kind", sizeof kind - 1, kind, err)) < 0)
        return rc;
    if (strcmp(kind, "gap") == 0) {
        r->gap = true;
    } else if (strcmp(kind, "report") != 0) {
        return mu_err_setf(err, MU_EINVAL, "kind", "kind must be \"report\" or \"gap\"");
    }

    if (r->gap) {
        static const char *const not_in_gap[] = {"host", "pools", "domains"};
        for (size_t i = 0; i < MU_ARRAY_LEN(not_in_gap); i++)
            if (cJSON_GetObjectItemCaseSensitive(root, not_in_gap[i]))
                return mu_err_setf(err, MU_EINVAL, not_in_gap[i], "a gap record carries no %s",
                                   not_in_gap[i]);
        if ((rc = get_int(root, "gap_from", 1, SAFE_INT, &r->gap_from, err)) < 0 ||
            (rc = get_int(root, "gap_to", 1, SAFE_INT, &r->gap_to, err)) < 0)
            return rc;
        if (r->gap_from > r->gap_to || r->gap_to >= r->seq)
            return mu_err_setf(err, MU_EINVAL, "gap_to",
                               "a gap record needs gap_from <= gap_to < seq (got %" PRId64
                               "..%" PRId64 " in seq %" PRId64 ")",
                               r->gap_from, r->gap_to, r->seq);
        return 0;
    }

    static const char *const gap_only[] = {"gap_from", "gap_to"};
    for (size_t i = 0; i < MU_ARRAY_LEN(gap_only); i++)
        if (cJSON_GetObjectItemCaseSensitive(root, gap_only[i]))
            return mu_err_setf(err, MU_EINVAL, gap_only[i], "%s belongs to gap records only",
                               gap_only[i]);
    const cJSON *host = NULL, *pools = NULL, *domains = NULL;
    if ((rc = mu_json_get_object(root, "host", true, &host, err)) < 0 ||
        (rc = parse_host(host, &r->host, err)) < 0 ||
        (rc = mu_json_get_array(root, "pools", true, &pools, err)) < 0 ||
        (rc = parse_pools(pools, r, err)) < 0 ||
        (rc = mu_json_get_array(root, "domains", true, &domains, err)) < 0 ||
        (rc = parse_domains(domains, r, err)) < 0)
        return rc;
    return 0;
}

int mu_report_parse(const char *buf, size_t len, struct mu_report *ret, struct mu_err *err)
{
    if (len > MU_REPORT_MAX_BYTES)
        return mu_err_set(err, MU_ETOOBIG, "the report is larger than %d bytes",
                          MU_REPORT_MAX_BYTES);
    cJSON *root = mu_json_parse(buf, len, "report", err);
    if (!root)
        return MU_EINVAL;
    struct mu_report r = {0};
    int rc = parse_root(root, &r, err);
    cJSON_Delete(root);
    if (rc < 0) {
        mu_report_clear(&r);
        return rc;
    }
    *ret = r;
    return 0;
}

void mu_report_clear(struct mu_report *r)
{
    if (!r)
        return;
    free(r->pools);
    free(r->domains);
    memset(r, 0, sizeof *r);
}

/* ---- printing ---- */

static void add_raw(cJSON *obj, const char *key, const char *text)
{
    cJSON *item = cJSON_CreateRaw(text);
    if (!item || !cJSON_AddItemToObject(obj, key, item))
        report_oom();
}

/* Integers exactly, whatever their size (cJSON would print doubles with 15 digits). */
static void add_int(cJSON *obj, const char *key, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    add_raw(obj, key, buf);
}

/* The shortest of %.15g..%.17g that reads back as the same double. */
static void add_double(cJSON *obj, const char *key, double v)
{
    char buf[32];
    if (!isfinite(v))
        v = 0;
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    add_raw(obj, key, buf);
}

static void add_text(cJSON *obj, const char *key, const char *val)
{
    cJSON *item = cJSON_CreateString(val);
    if (!item || !cJSON_AddItemToObject(obj, key, item))
        report_oom();
}

static cJSON *print_host(const struct mu_report_host *h)
{
    cJSON *o = mu_json_obj();
    add_int(o, "cpus", h->cpus);
    add_double(o, "cpu_percent", h->cpu_percent);
    add_double(o, "load1", h->load1);
    add_double(o, "load5", h->load5);
    add_double(o, "load15", h->load15);
    add_int(o, "mem_total_mib", h->mem_total_mib);
    add_int(o, "mem_available_mib", h->mem_available_mib);
    add_int(o, "uptime_s", h->uptime_s);
    return o;
}

static cJSON *print_domain(const struct mu_report_domain *d)
{
    cJSON *o = mu_json_obj();
    add_text(o, "uuid", d->uuid);
    if (d->vm_id > 0)
        add_int(o, "vm_id", d->vm_id);
    else
        mu_json_add_null(o, "vm_id");
    add_text(o, "state", d->state);
    add_int(o, "cpu_time_ns", d->cpu_time_ns);
    add_int(o, "vcpus", d->vcpus);
    add_int(o, "mem_balloon_kib", d->mem_balloon_kib);
    add_int(o, "mem_rss_kib", d->mem_rss_kib);
    add_int(o, "disk_allocation_bytes", d->disk_allocation_bytes);
    add_int(o, "disk_capacity_bytes", d->disk_capacity_bytes);
    add_int(o, "net_rx_bytes", d->net_rx_bytes);
    add_int(o, "net_tx_bytes", d->net_tx_bytes);
    return o;
}

static void add_child(cJSON *parent, const char *key, cJSON *child)
{
    if (!cJSON_AddItemToObject(parent, key, child))
        report_oom();
}

static void append(cJSON *arr, cJSON *item)
{
    if (!cJSON_AddItemToArray(arr, item))
        report_oom();
}

char *mu_report_print(const struct mu_report *r)
{
    char ts[40];
    cJSON *o = mu_json_obj();
    add_int(o, "version", MU_REPORT_VERSION);
    add_text(o, "node", r->node);
    add_text(o, "epoch", r->epoch);
    add_int(o, "seq", r->seq);
    mu_format_time(r->time_ms, ts, sizeof ts);
    add_text(o, "time", ts);
    add_text(o, "kind", r->gap ? "gap" : "report");
    if (r->gap) {
        add_int(o, "gap_from", r->gap_from);
        add_int(o, "gap_to", r->gap_to);
    } else {
        add_child(o, "host", print_host(&r->host));
        cJSON *pools = mu_json_arr();
        for (size_t i = 0; i < r->npools; i++) {
            const struct mu_report_pool *p = &r->pools[i];
            cJSON *po = mu_json_obj();
            add_text(po, "name", p->name);
            add_int(po, "capacity_gib", p->capacity_gib);
            add_int(po, "allocation_gib", p->allocation_gib);
            add_int(po, "available_gib", p->available_gib);
            append(pools, po);
        }
        add_child(o, "pools", pools);
        cJSON *domains = mu_json_arr();
        for (size_t i = 0; i < r->ndomains; i++)
            append(domains, print_domain(&r->domains[i]));
        add_child(o, "domains", domains);
    }
    char *text = mu_json_print(o);
    cJSON_Delete(o);
    return text;
}

/* ---- the controller's answer ---- */

int mu_report_ack_parse(const char *buf, size_t len, char *ret_epoch, int64_t *ret_acked_seq,
                        struct mu_err *err)
{
    if (len > 65536)
        return mu_err_set(err, MU_ETOOBIG, "the acknowledgement is larger than 65536 bytes");
    cJSON *root = mu_json_parse(buf, len, "acknowledgement", err);
    if (!root)
        return MU_EINVAL;
    const char *epoch = NULL;
    int64_t acked = 0;
    int rc = 0;
    if (!cJSON_IsObject(root))
        rc = mu_err_set(err, MU_EINVAL, "the acknowledgement must be a JSON object");
    else if ((rc = mu_json_get_str(root, "epoch", true, MU_EPOCH_HEX_LEN, &epoch, err)) == 0 &&
             !mu_report_epoch_valid(epoch))
        rc =
            mu_err_setf(err, MU_EINVAL, "epoch",
                        "epoch must be exactly %d lower-case hexadecimal digits", MU_EPOCH_HEX_LEN);
    if (rc == 0)
        rc = mu_json_get_i64(root, "acked_seq", true, 0, SAFE_INT, &acked, err);
    if (rc == 0) {
        snprintf(ret_epoch, MU_EPOCH_HEX_LEN + 1, "%s", epoch);
        *ret_acked_seq = acked;
    }
    cJSON_Delete(root);
    return rc;
}

char *mu_report_ack_print(const char *epoch, int64_t acked_seq)
{
    cJSON *o = mu_json_obj();
    add_text(o, "epoch", epoch);
    add_int(o, "acked_seq", acked_seq);
    char *text = mu_json_print(o);
    cJSON_Delete(o);
    return text;
}

int mu_report_ack_net_generation(const char *buf, size_t len, int64_t *ret)
{
    struct mu_err err = {0};
    int64_t g = 0;
    if (len > 65536)
        return 1;
    cJSON *root = mu_json_parse(buf, len, "acknowledgement", &err);
    int rc = root && cJSON_IsObject(root) &&
                     mu_json_get_i64(root, "net_generation", true, 0, SAFE_INT, &g, &err) == 0
                 ? 0
                 : 1;
    cJSON_Delete(root);
    if (rc == 0)
        *ret = g;
    return rc;
}
