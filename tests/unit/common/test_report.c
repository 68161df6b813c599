/* The agent report wire format: a full report and a gap record parse; print then parse
 * gives the same report (big counters and awkward doubles included); every refusal names
 * its field (and element); the controller's answer parses and prints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/report.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"

#define EPOCH "9f2c0a1b2c3d4e5f60718293a4b5c6d7"
static const char epoch[] = EPOCH;

/* A report with two pools and three domains, values chosen to be awkward. */
static void sample(struct mu_report *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->node, sizeof r->node, "node-1");
    snprintf(r->epoch, sizeof r->epoch, "%s", epoch);
    r->seq = 42;
    r->time_ms = 1795897983123LL; /* 2026-11-28T20:33:03.123Z */
    r->host = (struct mu_report_host){.cpus = 8,
                                      .cpu_percent = 0.1,
                                      .load1 = 0.4,
                                      .load5 = 1.0 / 3.0,
                                      .load15 = 12.5,
                                      .mem_total_mib = 64000,
                                      .mem_available_mib = 51234,
                                      .uptime_s = 86400};
    r->npools = 2;
    r->pools = mu_xcalloc(2, sizeof *r->pools);
    snprintf(r->pools[0].name, sizeof r->pools[0].name, "default");
    r->pools[0].capacity_gib = 1800;
    r->pools[0].allocation_gib = 200;
    r->pools[0].available_gib = 1600;
    snprintf(r->pools[1].name, sizeof r->pools[1].name, "Stockage rapide é");
    r->ndomains = 3;
    r->domains = mu_xcalloc(3, sizeof *r->domains);
    for (size_t i = 0; i < 3; i++) {
        struct mu_report_domain *d = &r->domains[i];
        snprintf(d->uuid, sizeof d->uuid, "6695eb01-f6a4-8304-79aa-97f2502e193%zu", i);
        d->vm_id = i == 2 ? 0 : (int64_t)(i + 10);
        snprintf(d->state, sizeof d->state, "%s", i == 1 ? "shutoff" : "running");
        d->vcpus = 2;
        d->mem_balloon_kib = 2097152;
        d->mem_rss_kib = 1048576;
    }
    r->domains[0].cpu_time_ns = 9007199254740993LL;            /* 2^53 + 1: rounds to 2^53 */
    r->domains[0].net_rx_bytes = 123456789012345678LL;         /* beyond 2^53 */
    r->domains[0].disk_capacity_bytes = 4611686018427387904LL; /* 2^62, the bound */
    r->domains[1].cpu_time_ns = 9007199254740991LL;            /* 2^53 - 1: exact */
    r->domains[2].disk_allocation_bytes = 1099511627776LL;
}

static void assert_reports_equal(const struct mu_report *a, const struct mu_report *b)
{
    assert_string_equal(a->node, b->node);
    assert_string_equal(a->epoch, b->epoch);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->time_ms, b->time_ms);
    assert_int_equal(a->gap, b->gap);
    assert_int_equal(a->gap_from, b->gap_from);
    assert_int_equal(a->gap_to, b->gap_to);
    assert_memory_equal(&a->host, &b->host, sizeof a->host);
    assert_int_equal(a->npools, b->npools);
    for (size_t i = 0; i < a->npools; i++)
        assert_memory_equal(&a->pools[i], &b->pools[i], sizeof a->pools[i]);
    assert_int_equal(a->ndomains, b->ndomains);
    for (size_t i = 0; i < a->ndomains; i++)
        assert_memory_equal(&a->domains[i], &b->domains[i], sizeof a->domains[i]);
}

static char *sample_text(void)
{
    struct mu_report r;
    sample(&r);
    char *text = mu_report_print(&r);
    mu_report_clear(&r);
    return text;
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct mu_report r, p = {0}, q = {0};
    sample(&r);
    char *text = mu_report_print(&r);
    struct mu_err err = {0};
    int rc = mu_report_parse(text, strlen(text), &p, &err);
    if (rc != 0)
        fail_msg("%s (field %s)", err.detail, err.field);
    /* Exact where a double can carry it, rounded beyond 2^53. */
    assert_int_equal(p.domains[0].cpu_time_ns, 9007199254740992LL);
    assert_int_equal(p.domains[0].net_rx_bytes, (int64_t)(double)123456789012345678LL);
    assert_int_equal(p.domains[0].disk_capacity_bytes, 4611686018427387904LL);
    assert_int_equal(p.domains[1].cpu_time_ns, 9007199254740991LL);
    assert_true(p.host.cpu_percent == 0.1 && p.host.load5 == 1.0 / 3.0);
    assert_int_equal(p.domains[2].vm_id, 0);
    assert_non_null(strstr(text, "\"vm_id\":null"));
    assert_non_null(strstr(text, "\"time\":\"2026-11-28T20:33:03.123Z\""));
    assert_non_null(strstr(text, "\"cpu_percent\":0.1,"));
    /* Whatever was accepted prints and parses to the same report. */
    char *again = mu_report_print(&p);
    assert_int_equal(mu_report_parse(again, strlen(again), &q, &err), 0);
    assert_reports_equal(&p, &q);
    char *third = mu_report_print(&q);
    assert_string_equal(again, third);
    free(third);
    free(again);
    free(text);
    mu_report_clear(&r);
    mu_report_clear(&p);
    mu_report_clear(&q);
    assert_null(q.domains);
}

static void test_gap(void **state)
{
    (void)state;
    struct mu_report r = {0}, p = {0};
    snprintf(r.node, sizeof r.node, "node-1");
    snprintf(r.epoch, sizeof r.epoch, "%s", epoch);
    r.seq = 20;
    r.time_ms = 1795897983000LL;
    r.gap = true;
    r.gap_from = 10;
    r.gap_to = 19;
    char *text = mu_report_print(&r);
    assert_null(strstr(text, "host"));
    assert_null(strstr(text, "domains"));
    struct mu_err err = {0};
    assert_int_equal(mu_report_parse(text, strlen(text), &p, &err), 0);
    assert_reports_equal(&r, &p);
    assert_true(p.gap);
    free(text);
    mu_report_clear(&p);
}

/* Replaces (or with value NULL removes) the item at path ("host.cpus", "domains.1.uuid")
 * in text; value is raw JSON text, kept verbatim. */
static char *mutate(const char *text, const char *path, const char *value)
{
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    cJSON *parent = root;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        char part[64];
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        assert_true(n < sizeof part);
        memcpy(part, p, n);
        part[n] = '\0';
        bool index = part[0] >= '0' && part[0] <= '9';
        if (dot) {
            parent = index ? cJSON_GetArrayItem(parent, (int)strtol(part, NULL, 10))
                           : cJSON_GetObjectItemCaseSensitive(parent, part);
            assert_non_null(parent);
            p = dot + 1;
            continue;
        }
        cJSON *item = value ? cJSON_CreateRaw(value) : NULL;
        if (index) {
            int k = (int)strtol(part, NULL, 10);
            if (item)
                cJSON_ReplaceItemInArray(parent, k, item);
            else
                cJSON_DeleteItemFromArray(parent, k);
        } else if (!item) {
            cJSON_DeleteItemFromObjectCaseSensitive(parent, part);
        } else if (cJSON_GetObjectItemCaseSensitive(parent, part)) {
            cJSON_ReplaceItemInObjectCaseSensitive(parent, part, item);
        } else {
            cJSON_AddItemToObject(parent, part, item);
        }
        break;
    }
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

struct refusal {
    const char *path;
    const char *value; /* NULL: remove */
    const char *field;
    const char *want; /* substring of the detail */
};

static const struct refusal refusals[] = {
    {"extra", "1", "extra", "unknown field \"extra\" in the report"},
    {"version", "2", "version", "version 2 is not supported"},
    {"version", NULL, "version", "version is required"},
    {"node", "\"Node-1\"", "node", "node must be a node name"},
    {"node", "\"../etc\"", "node", "node must be a node name"},
    {"node", "\"\"", "node", "node must be a node name"},
    {"node", "1", "node", "node must be a string"},
    {"epoch", "\"9F2C0A1B2C3D4E5F60718293A4B5C6D7\"", "epoch", "32 lower-case hexadecimal"},
    {"epoch", "\"9f2c0a1b2c3d4e5f60718293a4b5c6d\"", "epoch", "32 lower-case hexadecimal"},
    {"epoch", "\"9f2c0a1b2c3d4e5f60718293a4b5c6d7a\"", "epoch", "too long"},
    {"epoch", "\"9f2c0a1b2c3d4e5f60718293a4b5c6dg\"", "epoch", "32 lower-case hexadecimal"},
    {"seq", "0", "seq", "seq must be an integer between 1 and 9007199254740991"},
    {"seq", "-1", "seq", "seq must be an integer"},
    {"seq", "1.5", "seq", "seq must be an integer"},
    {"seq", "\"1\"", "seq", "seq must be an integer"},
    {"seq", "9007199254740992", "seq", "seq must be an integer"},
    {"time", "\"2026-11-28 20:33:03Z\"", "time", "RFC 3339"},
    {"time", "\"2026-+1-28T20:33:03Z\"", "time", "RFC 3339"},
    {"time", "\"2026-02-30T20:33:03Z\"", "time", "RFC 3339"},
    {"time", "\"2026-11-28T20:33:03+02:00\"", "time", "RFC 3339"},
    {"time", "1795897983123", "time", "time must be a string"},
    {"kind", "\"heartbeat\"", "kind", "kind must be \"report\" or \"gap\""},
    {"gap_from", "3", "gap_from", "gap_from belongs to gap records only"},
    {"host", NULL, "host", "host is required"},
    {"host", "[]", "host", "host must be an object"},
    {"pools", NULL, "pools", "pools is required"},
    {"domains", NULL, "domains", "domains is required"},
    {"domains", "{}", "domains", "domains must be an array"},
    {"host.extra", "1", "host.extra", "host: unknown field \"extra\" in host"},
    {"host.cpus", "0", "host.cpus", "host: cpus must be an integer between 1 and 65536"},
    {"host.cpu_percent", "100.5", "host.cpu_percent", "between 0 and 100"},
    {"host.cpu_percent", "-0.1", "host.cpu_percent", "between 0 and 100"},
    {"host.cpu_percent", "true", "host.cpu_percent", "between 0 and 100"},
    {"host.load1", "1e7", "host.load1", "load1 must be a number between 0 and 1e+06"},
    {"host.load15", NULL, "host.load15", "load15 is required"},
    {"host.mem_available_mib", "64001", "host.mem_available_mib", "between 0 and 64000"},
    {"host.uptime_s", "1.5", "host.uptime_s", "uptime_s must be an integer"},
    {"pools.0.name", "\"a\\tb\"", "pools[0].name", "pools[0]: name must be printable"},
    {"pools.0.name", "\" default\"", "pools[0].name", "pools[0]: name must be printable"},
    {"pools.1.name", "\"default\"", "pools", "pools[1]: pool name repeats pools[0]"},
    {"pools.0.capacity_gib", "-1", "pools[0].capacity_gib", "capacity_gib must be an integer"},
    {"pools.0.size", "1", "pools[0].size", "unknown field \"size\" in a pool"},
    {"pools.0", "3", "pools[0]", "pools[0]: a pool must be a JSON object"},
    {"domains.1.uuid", "\"6695EB01-F6A4-8304-79AA-97F2502E1931\"", "domains[1].uuid",
     "domains[1]: uuid must be a lower-case UUID"},
    {"domains.1.uuid", "\"6695eb01f6a4830479aa97f2502e1931\"", "domains[1].uuid",
     "uuid must be a lower-case UUID"},
    {"domains.2.uuid", "\"6695eb01-f6a4-8304-79aa-97f2502e1930\"", "domains",
     "domain 6695eb01-f6a4-8304-79aa-97f2502e1930 is listed twice"},
    {"domains.0.vm_id", "0", "domains[0].vm_id", "vm_id must be an integer between 1 and"},
    {"domains.0.vm_id", "\"12\"", "domains[0].vm_id", "vm_id must be an integer"},
    {"domains.0.state", "\"blocked\"", "domains[0].state", "state must be running, shutoff"},
    {"domains.0.cpu_time_ns", "9223372036854775807", "domains[0].cpu_time_ns",
     "between 0 and 4611686018427387904"},
    {"domains.0.cpu_time_ns", "4.7e18", "domains[0].cpu_time_ns", "between 0 and"},
    {"domains.0.cpu_time_ns", "-1", "domains[0].cpu_time_ns", "between 0 and"},
    {"domains.0.cpu_time_ns", "1.5", "domains[0].cpu_time_ns", "between 0 and"},
    {"domains.0.net_tx_bytes", NULL, "domains[0].net_tx_bytes", "net_tx_bytes is required"},
    {"domains.0.vcpus", "16385", "domains[0].vcpus", "vcpus must be an integer between 0 and"},
    {"domains.0.mem_rss_kib", "null", "domains[0].mem_rss_kib", "mem_rss_kib is required"},
};

static void test_refusals(void **state)
{
    (void)state;
    char *base = sample_text();
    for (size_t i = 0; i < MU_ARRAY_LEN(refusals); i++) {
        const struct refusal *c = &refusals[i];
        char *text = mutate(base, c->path, c->value);
        struct mu_report r = {0};
        struct mu_err err = {0};
        int rc = mu_report_parse(text, strlen(text), &r, &err);
        if (rc != MU_EINVAL || strcmp(err.field, c->field) != 0 || !strstr(err.detail, c->want))
            fail_msg("%s=%s: rc=%d field=\"%s\" detail=\"%s\" (want field \"%s\", \"%s\")", c->path,
                     c->value ? c->value : "(removed)", rc, err.field, err.detail, c->field,
                     c->want);
        assert_null(r.domains);
        assert_null(r.pools);
        free(text);
    }
    free(base);
}

static void test_gap_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *field, *want;
    } cases[] = {
        {"{\"version\":1,\"node\":\"n\",\"epoch\":\"" EPOCH "\",\"seq\":5,\"time\":"
         "\"2026-11-28T20:33:03Z\",\"kind\":\"gap\",\"gap_from\":3,\"gap_to\":5}",
         "gap_to", "gap_from <= gap_to < seq (got 3..5 in seq 5)"},
        {"{\"version\":1,\"node\":\"n\",\"epoch\":\"" EPOCH "\",\"seq\":5,\"time\":"
         "\"2026-11-28T20:33:03Z\",\"kind\":\"gap\",\"gap_from\":4,\"gap_to\":3}",
         "gap_to", "gap_from <= gap_to < seq"},
        {"{\"version\":1,\"node\":\"n\",\"epoch\":\"" EPOCH "\",\"seq\":5,\"time\":"
         "\"2026-11-28T20:33:03Z\",\"kind\":\"gap\",\"gap_from\":0,\"gap_to\":3}",
         "gap_from", "gap_from must be an integer between 1"},
        {"{\"version\":1,\"node\":\"n\",\"epoch\":\"" EPOCH "\",\"seq\":5,\"time\":"
         "\"2026-11-28T20:33:03Z\",\"kind\":\"gap\",\"gap_from\":1}",
         "gap_to", "gap_to is required"},
        {"{\"version\":1,\"node\":\"n\",\"epoch\":\"" EPOCH "\",\"seq\":5,\"time\":"
         "\"2026-11-28T20:33:03Z\",\"kind\":\"gap\",\"gap_from\":1,\"gap_to\":2,\"domains\":[]}",
         "domains", "a gap record carries no domains"},
        {"{\"version\":1,\"node\":\"n\",\"epoch\":\"" EPOCH "\",\"seq\":5,\"time\":"
         "\"2026-11-28T20:33:03Z\",\"kind\":\"gap\",\"gap_from\":1,\"gap_to\":2,\"host\":null}",
         "host", "a gap record carries no host"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        const char *text = cases[i].text;
        struct mu_report r = {0};
        struct mu_err err = {0};
        int rc = mu_report_parse(text, strlen(text), &r, &err);
        if (rc != MU_EINVAL || strcmp(err.field, cases[i].field) != 0 ||
            !strstr(err.detail, cases[i].want))
            fail_msg("case %zu: rc=%d field=%s detail=%s", i, rc, err.field, err.detail);
    }
}

static void test_syntax_and_size(void **state)
{
    (void)state;
    char *base = sample_text();
    struct mu_report r = {0};
    struct mu_err err = {0};
    /* Duplicate keys and trailing garbage are refused by the strict layer. */
    char *dup = mu_xasprintf("{\"seq\":1,%s", base + 1);
    assert_int_equal(mu_report_parse(dup, strlen(dup), &r, &err), MU_EINVAL);
    assert_non_null(strstr(err.detail, "duplicate key \"seq\""));
    free(dup);
    mu_err_clear(&err);
    char *trail = mu_xasprintf("%s x", base);
    assert_int_equal(mu_report_parse(trail, strlen(trail), &r, &err), MU_EINVAL);
    assert_non_null(strstr(err.detail, "report: line 1"));
    free(trail);
    mu_err_clear(&err);
    assert_int_equal(mu_report_parse("[]", 2, &r, &err), MU_EINVAL);
    assert_non_null(strstr(err.detail, "the report must be a JSON object"));
    mu_err_clear(&err);
    /* Larger than the bound: refused before parsing. */
    assert_int_equal(mu_report_parse(base, (size_t)MU_REPORT_MAX_BYTES + 1, &r, &err), MU_ETOOBIG);
    free(base);
}

/* Arrays at and beyond their bounds. */
static void test_array_bounds(void **state)
{
    (void)state;
    struct mu_report r, p = {0};
    sample(&r);
    free(r.domains);
    r.ndomains = MU_REPORT_MAX_DOMAINS;
    r.domains = mu_xcalloc(r.ndomains, sizeof *r.domains);
    for (size_t i = 0; i < r.ndomains; i++) {
        snprintf(r.domains[i].uuid, sizeof r.domains[i].uuid, "00000000-0000-4000-8000-%012x",
                 (unsigned)i);
        snprintf(r.domains[i].state, sizeof r.domains[i].state, "running");
    }
    free(r.pools);
    r.npools = MU_REPORT_MAX_POOLS;
    r.pools = mu_xcalloc(r.npools, sizeof *r.pools);
    for (size_t i = 0; i < r.npools; i++)
        snprintf(r.pools[i].name, sizeof r.pools[i].name, "pool-%zu", i);
    char *text = mu_report_print(&r);
    struct mu_err err = {0};
    assert_int_equal(mu_report_parse(text, strlen(text), &p, &err), 0);
    assert_int_equal(p.ndomains, MU_REPORT_MAX_DOMAINS);
    mu_report_clear(&p);
    free(text);

    /* One more of each is refused. */
    r.domains = mu_xrealloc(r.domains, (r.ndomains + 1) * sizeof *r.domains);
    r.domains[r.ndomains] = r.domains[0];
    snprintf(r.domains[r.ndomains].uuid, sizeof r.domains[0].uuid,
             "00000000-0000-4000-8000-ffffffffffff");
    r.ndomains++;
    text = mu_report_print(&r);
    assert_int_equal(mu_report_parse(text, strlen(text), &p, &err), MU_EINVAL);
    assert_non_null(strstr(err.detail, "domains has 4097 entries (at most 4096)"));
    free(text);
    r.ndomains--;
    r.pools = mu_xrealloc(r.pools, (r.npools + 1) * sizeof *r.pools);
    snprintf(r.pools[r.npools].name, sizeof r.pools[0].name, "pool-extra");
    r.npools++;
    text = mu_report_print(&r);
    mu_err_clear(&err);
    assert_int_equal(mu_report_parse(text, strlen(text), &p, &err), MU_EINVAL);
    assert_non_null(strstr(err.detail, "pools has 65 entries (at most 64)"));
    free(text);
    mu_report_clear(&r);
}

/* A field name that is cut in an error message stays valid UTF-8. */
static void test_error_utf8(void **state)
{
    (void)state;
    char *base = sample_text();
    char key[200];
    for (int i = 0; i < 30; i++)
        memcpy(key + 2 * i, "é", 2);
    key[60] = '\0';
    char *text = mutate(base, "domains.1", "{}");
    char *text2 = mu_xasprintf("%.*s{\"%s\":1}%s", (int)(strstr(text, "{}") - text), text, key,
                               strstr(text, "{}") + 2);
    struct mu_report r = {0};
    struct mu_err err = {0};
    assert_int_equal(mu_report_parse(text2, strlen(text2), &r, &err), MU_EINVAL);
    assert_true(mu_utf8_valid(err.field, strlen(err.field)));
    assert_true(mu_utf8_valid(err.detail, strlen(err.detail)));
    assert_non_null(strstr(err.detail, "domains[1]: unknown field"));
    free(text2);
    free(text);
    free(base);
}

static void test_ack(void **state)
{
    (void)state;
    char *text = mu_report_ack_print(epoch, 41);
    char got[MU_EPOCH_HEX_LEN + 1];
    int64_t acked = -1;
    struct mu_err err = {0};
    assert_int_equal(mu_report_ack_parse(text, strlen(text), got, &acked, &err), 0);
    assert_string_equal(got, epoch);
    assert_int_equal(acked, 41);
    free(text);

    /* Extra keys are tolerated (the controller may add a detail); bad values are not. */
    char buf[256];
    snprintf(buf, sizeof buf, "{\"epoch\":\"" EPOCH "\",\"acked_seq\":0,\"detail\":\"ok\"}");
    assert_int_equal(mu_report_ack_parse(buf, strlen(buf), got, &acked, &err), 0);
    assert_int_equal(acked, 0);
    snprintf(buf, sizeof buf, "{\"epoch\":\"" EPOCH "\",\"acked_seq\":-1}");
    assert_int_equal(mu_report_ack_parse(buf, strlen(buf), got, &acked, &err), MU_EINVAL);
    mu_err_clear(&err);
    snprintf(buf, sizeof buf, "{\"epoch\":\"%.31s\",\"acked_seq\":3}", epoch);
    assert_int_equal(mu_report_ack_parse(buf, strlen(buf), got, &acked, &err), MU_EINVAL);
    assert_string_equal(err.field, "epoch");
    mu_err_clear(&err);
    assert_int_equal(mu_report_ack_parse("{\"acked_seq\":3}", 15, got, &acked, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_report_ack_parse("[1]", 3, got, &acked, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_report_ack_parse("<html>", 6, got, &acked, &err), MU_EINVAL);
    assert_int_equal(acked, 0); /* untouched by the failures */

    assert_true(mu_report_epoch_valid(epoch));
    assert_false(mu_report_epoch_valid("9F2C0A1B2C3D4E5F60718293A4B5C6D7"));
    assert_false(mu_report_epoch_valid(""));
    assert_false(mu_report_epoch_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),       cmocka_unit_test(test_gap),
        cmocka_unit_test(test_refusals),        cmocka_unit_test(test_gap_refusals),
        cmocka_unit_test(test_syntax_and_size), cmocka_unit_test(test_array_bounds),
        cmocka_unit_test(test_error_utf8),      cmocka_unit_test(test_ack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
