/* Agent reports: batches stored by the report writer in one transaction each, sequencing
 * per agent epoch, the last rows, history and rollups, their pruning, node health and each
 * tenant's actual use (see telemetry.h for the rules and the row budget). */
#include "store/store_int.h"
#include "store/telemetry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"

#define HOUR_MS     ((int64_t)3600 * 1000)
#define FUTURE_MS   ((int64_t)5 * 60 * 1000) /* agent clocks ahead by more are not trusted */
#define PRUNE_CHUNK 5000

/* ---- batch state ----------------------------------------------------------------------- */

/* One tenant's share of the hour, summed over a batch before it is written. */
struct tenant_acc {
    int64_t tenant_id, hour_ms;
    int64_t samples, cpu_ns, rss_kib, disk_bytes, rx, tx;
};

struct batch {
    struct mu_store *st;
    struct st_conn *c;
    struct mu_report_cache *cache;
    int64_t now;
    const struct mu_audit_rec *health_audit;
    struct tenant_acc *acc;
    size_t nacc, capacc;
    struct mu_observed_change *changes;
    size_t nchanges, capchanges;
};

static int64_t hour_of(int64_t ms)
{
    return ms - ms % HOUR_MS;
}

/* Whether a sample taken at time_ms still belongs in a table kept keep_ms. */
static bool in_window(const struct batch *b, int64_t time_ms, int64_t keep_ms)
{
    return time_ms > b->now - keep_ms && time_ms <= b->now + FUTURE_MS;
}

/* Reported counters go up to 2^62: sums saturate rather than overflow. */
static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

static int64_t clamp_i64(double v)
{
    if (v >= 9.2e18)
        return INT64_MAX;
    if (v <= -9.2e18)
        return INT64_MIN;
    return (int64_t)v;
}

static void acc_add(struct batch *b, const struct tenant_acc *a)
{
    for (size_t i = b->nacc; i > 0; i--) {
        struct tenant_acc *x = &b->acc[i - 1];
        if (x->tenant_id == a->tenant_id && x->hour_ms == a->hour_ms) {
            x->samples += a->samples;
            x->cpu_ns = sat_add(x->cpu_ns, a->cpu_ns);
            x->rss_kib = sat_add(x->rss_kib, a->rss_kib);
            x->disk_bytes = sat_add(x->disk_bytes, a->disk_bytes);
            x->rx = sat_add(x->rx, a->rx);
            x->tx = sat_add(x->tx, a->tx);
            return;
        }
    }
    if (b->nacc == b->capacc) {
        b->capacc = b->capacc ? b->capacc * 2 : 64;
        b->acc = mu_xrealloc(b->acc, b->capacc * sizeof *b->acc);
    }
    b->acc[b->nacc++] = *a;
}

/* ---- the VM cache ------------------------------------------------------------------------ */

#define CACHE_MAX_ENTRIES ((size_t)1 << 20)

static const char *const observed_names[] = {"pending", "running", "shutoff", "missing",
                                             "unknown", "error",   "deleted", "other"};

/* A VM as a report's domain needs it, with its last sample's counters (for the increments).
 * node_id 0: there is no such VM. last_ms -1: no sample yet. */
struct vm_ident {
    int64_t vm_id; /* 0: a free slot */
    int64_t node_id, tenant_id, observed_ms;
    int64_t last_ms, last_cpu, last_rx, last_tx;
    unsigned char uuid[16];
    uint8_t observed; /* index in observed_names */
    bool deleting;    /* desired state "deleted" */
};

struct mu_report_cache {
    struct vm_ident *slots;
    size_t cap, n;
    struct mu_store *st;
    int64_t seen_changes; /* the writer's change count after our last batch; -1: none */
};

struct mu_report_cache *mu_report_cache_new(void)
{
    struct mu_report_cache *c = mu_xcalloc(1, sizeof *c);
    c->seen_changes = -1;
    return c;
}

void mu_report_cache_free(struct mu_report_cache *c)
{
    if (!c)
        return;
    free(c->slots);
    free(c);
}

static void cache_clear(struct mu_report_cache *c)
{
    free(c->slots);
    c->slots = NULL;
    c->cap = c->n = 0;
    c->seen_changes = -1;
}

static size_t cache_hash(int64_t id, size_t cap)
{
    uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 20) & (cap - 1);
}

static const struct vm_ident *cache_find(const struct mu_report_cache *c, int64_t vm_id)
{
    if (!c || !c->cap)
        return NULL;
    for (size_t i = cache_hash(vm_id, c->cap);; i = (i + 1) & (c->cap - 1)) {
        if (c->slots[i].vm_id == vm_id)
            return &c->slots[i];
        if (c->slots[i].vm_id == 0)
            return NULL;
    }
}

static void cache_put(struct mu_report_cache *c, const struct vm_ident *v)
{
    if (!c || c->n >= CACHE_MAX_ENTRIES)
        return;
    if ((c->n + 1) * 4 > c->cap * 3) { /* load at most 3/4 */
        size_t oldcap = c->cap;
        struct vm_ident *old = c->slots;
        c->cap = oldcap ? oldcap * 2 : 1024;
        c->slots = mu_xcalloc(c->cap, sizeof *c->slots);
        c->n = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].vm_id)
                cache_put(c, &old[i]);
        free(old);
    }
    size_t i = cache_hash(v->vm_id, c->cap);
    while (c->slots[i].vm_id != 0 && c->slots[i].vm_id != v->vm_id)
        i = (i + 1) & (c->cap - 1);
    if (c->slots[i].vm_id == 0)
        c->n++;
    c->slots[i] = *v;
}

/* 16 bytes from a textual UUID (32 hex digits, hyphens skipped, either case). */
static bool uuid_bytes(const char *s, unsigned char out[16])
{
    size_t n = 0;
    for (; s && *s; s++) {
        int v;
        if (*s == '-')
            continue;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else
            return false;
        if (n == 32)
            return false;
        if (n % 2 == 0)
            out[n / 2] = (unsigned char)(v << 4);
        else
            out[n / 2] |= (unsigned char)v;
        n++;
    }
    return n == 32;
}

/* The VM vm_id as a domain needs it: from the cache, else from its row (then cached). */
static int vm_ident_get(struct batch *b, int64_t vm_id, struct vm_ident *ret, struct mu_err *err)
{
    const struct vm_ident *hit = cache_find(b->cache, vm_id);
    if (hit) {
        *ret = *hit;
        return 0;
    }
    struct st_conn *c = b->c;
    sqlite3_stmt *s =
        st_stmt(c,
                "SELECT v.uuid, v.node_id, v.tenant_id, v.observed_state, v.observed_ms, "
                "v.desired_state, l.time_ms, l.cpu_time_ns, l.net_rx_bytes, l.net_tx_bytes "
                "FROM vms v LEFT JOIN vm_last l ON l.vm_id = v.id WHERE v.id = ?1",
                err);
    int rc;

    if (!s)
        return MU_EIO;
    memset(ret, 0, sizeof *ret);
    ret->vm_id = vm_id;
    ret->last_ms = -1;
    sqlite3_bind_int64(s, 1, vm_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *u = (const char *)sqlite3_column_text(s, 0);
        const char *o = (const char *)sqlite3_column_text(s, 3);
        const char *d = (const char *)sqlite3_column_text(s, 5);
        if (uuid_bytes(u, ret->uuid)) /* an unreadable UUID matches no domain */
            ret->node_id = sqlite3_column_int64(s, 1);
        ret->tenant_id = sqlite3_column_int64(s, 2);
        ret->observed_ms = sqlite3_column_int64(s, 4);
        ret->observed = (uint8_t)(MU_ARRAY_LEN(observed_names) - 1);
        for (uint8_t i = 0; o && i < MU_ARRAY_LEN(observed_names) - 1; i++)
            if (strcmp(o, observed_names[i]) == 0)
                ret->observed = i;
        ret->deleting = d && strcmp(d, "deleted") == 0;
        if (sqlite3_column_type(s, 6) != SQLITE_NULL) {
            ret->last_ms = sqlite3_column_int64(s, 6);
            ret->last_cpu = sqlite3_column_int64(s, 7);
            ret->last_rx = sqlite3_column_int64(s, 8);
            ret->last_tx = sqlite3_column_int64(s, 9);
        }
        rc = SQLITE_DONE;
    }
    st_stmt_done(c, s);
    if (rc != SQLITE_DONE)
        return st_sql_err(c, rc, "reading a reported VM", err);
    cache_put(b->cache, ret);
    return 0;
}

/* ---- sequencing ------------------------------------------------------------------------ */

static int epoch_read(struct st_conn *c, int64_t node_id, const char *epoch, int64_t *ret_acked,
                      struct mu_err *err)
{
    sqlite3_stmt *s =
        st_stmt(c, "SELECT acked_seq FROM agent_epochs WHERE node_id = ?1 AND epoch = ?2", err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    st_bind_str(s, 2, epoch);
    rc = sqlite3_step(s);
    *ret_acked = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading an epoch", err);
    st_stmt_done(c, s);
    return rc;
}

static int epoch_write(struct st_conn *c, int64_t node_id, const char *epoch, int64_t acked,
                       int64_t now, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "INSERT INTO agent_epochs (node_id, epoch, acked_seq, first_ms, "
                              "last_ms) VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (node_id, epoch) "
                              "DO UPDATE SET acked_seq = excluded.acked_seq, last_ms = ?4",
                              err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    st_bind_str(s, 2, epoch);
    sqlite3_bind_int64(s, 3, acked);
    sqlite3_bind_int64(s, 4, now);
    rc = st_run(c, s, "recording an epoch", err);
    st_stmt_done(c, s);
    return rc;
}

/* The outcome of r against acked (telemetry.h's rules). */
static enum mu_report_outcome decide(const struct mu_report *r, int64_t acked)
{
    if (r->seq <= acked)
        return MU_REPORT_REPLAY;
    if (!r->gap)
        return r->seq == acked + 1 ? MU_REPORT_STORED : MU_REPORT_OUT_OF_ORDER;
    if (r->gap_from <= acked + 1 && r->gap_from <= r->gap_to && r->gap_to + 1 == r->seq)
        return MU_REPORT_STORED;
    return MU_REPORT_OUT_OF_ORDER;
}

/* ---- per report ------------------------------------------------------------------------ */

/* Marks the node as heard from; health "up" if it was not (audited). 0, MU_ENOTFOUND
 * (without touching err) when the node is gone, or an error. */
static int node_heard(struct batch *b, int64_t node_id, struct mu_err *err)
{
    MU_AUTOFREE char *name = NULL, *health = NULL;
    struct st_conn *c = b->c;
    sqlite3_stmt *s = st_stmt(c, "SELECT name, health FROM nodes WHERE id = ?1", err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        name = st_col_str(s, 0);
        health = st_col_str(s, 1);
        rc = SQLITE_DONE;
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading a node", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;
    if (!name)
        return MU_ENOTFOUND;
    bool up = health && strcmp(health, "up") == 0;
    s = st_stmt(c,
                "UPDATE nodes SET last_report_ms = ?2, health = 'up', health_ms = CASE WHEN "
                "health = 'up' THEN health_ms ELSE ?2 END WHERE id = ?1",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    sqlite3_bind_int64(s, 2, b->now);
    rc = st_run(c, s, "recording a node's report", err);
    st_stmt_done(c, s);
    if (rc == 0 && !up && b->health_audit) {
        char target[48];
        MU_AUTOFREE char *detail =
            mu_xasprintf("%s: %s -> up (report received)", name, health ? health : "unknown");
        snprintf(target, sizeof target, "node/%" PRId64, node_id);
        rc = st_audit_append_tx(b->st, b->health_audit, 0, target, detail, err);
    }
    return rc;
}

static char *pools_json(const struct mu_report *r)
{
    cJSON *arr = mu_json_arr();
    for (size_t i = 0; i < r->npools; i++) {
        cJSON *o = mu_json_obj();
        mu_json_add_str(o, "name", r->pools[i].name);
        mu_json_add_i64(o, "capacity_gib", r->pools[i].capacity_gib);
        mu_json_add_i64(o, "allocation_gib", r->pools[i].allocation_gib);
        mu_json_add_i64(o, "available_gib", r->pools[i].available_gib);
        cJSON_AddItemToArray(arr, o);
    }
    char *text = mu_json_print(arr);
    cJSON_Delete(arr);
    return text;
}

static int node_rows(struct batch *b, const struct mu_report_in *in, struct mu_err *err)
{
    const struct mu_report *r = in->report;
    const struct mu_report_host *h = &r->host;
    struct st_conn *c = b->c;
    MU_AUTOFREE char *pools = pools_json(r);
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c,
                "INSERT INTO node_last (node_id, epoch, seq, time_ms, received_ms, cpus, "
                "cpu_percent, load1, load5, load15, mem_total_mib, mem_available_mib, uptime_s, "
                "pools_json, domains) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                "?13, ?14, ?15) ON CONFLICT (node_id) DO UPDATE SET epoch = excluded.epoch, "
                "seq = excluded.seq, time_ms = excluded.time_ms, received_ms = "
                "excluded.received_ms, cpus = excluded.cpus, cpu_percent = excluded.cpu_percent, "
                "load1 = excluded.load1, load5 = excluded.load5, load15 = excluded.load15, "
                "mem_total_mib = excluded.mem_total_mib, mem_available_mib = "
                "excluded.mem_available_mib, uptime_s = excluded.uptime_s, pools_json = "
                "excluded.pools_json, domains = excluded.domains "
                "WHERE excluded.time_ms >= node_last.time_ms",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, in->node_id);
    st_bind_str(s, 2, r->epoch);
    sqlite3_bind_int64(s, 3, r->seq);
    sqlite3_bind_int64(s, 4, r->time_ms);
    sqlite3_bind_int64(s, 5, b->now);
    sqlite3_bind_int64(s, 6, h->cpus);
    sqlite3_bind_double(s, 7, h->cpu_percent);
    sqlite3_bind_double(s, 8, h->load1);
    sqlite3_bind_double(s, 9, h->load5);
    sqlite3_bind_double(s, 10, h->load15);
    sqlite3_bind_int64(s, 11, h->mem_total_mib);
    sqlite3_bind_int64(s, 12, h->mem_available_mib);
    sqlite3_bind_int64(s, 13, h->uptime_s);
    st_bind_str(s, 14, pools);
    sqlite3_bind_int64(s, 15, (int64_t)r->ndomains);
    rc = st_run(c, s, "storing a node's last report", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;

    if (in_window(b, r->time_ms, MU_TELEMETRY_HISTORY_MS)) {
        s = st_stmt(c,
                    "INSERT INTO node_history (node_id, bucket, cpu_percent, load1, "
                    "mem_total_mib, mem_available_mib, domains) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                    "?7) ON CONFLICT (node_id, bucket) DO NOTHING",
                    err);
        if (!s)
            return MU_EIO;
        sqlite3_bind_int64(s, 1, in->node_id);
        sqlite3_bind_int64(s, 2, r->time_ms / MU_TELEMETRY_BUCKET_MS);
        sqlite3_bind_double(s, 3, h->cpu_percent);
        sqlite3_bind_double(s, 4, h->load1);
        sqlite3_bind_int64(s, 5, h->mem_total_mib);
        sqlite3_bind_int64(s, 6, h->mem_available_mib);
        sqlite3_bind_int64(s, 7, (int64_t)r->ndomains);
        rc = st_run(c, s, "storing node history", err);
        st_stmt_done(c, s);
        if (rc < 0)
            return rc;
    }

    if (in_window(b, r->time_ms, MU_TELEMETRY_ROLLUP_MS)) {
        s = st_stmt(c,
                    "INSERT INTO node_hourly (node_id, hour_ms, samples, cpu_percent_sum, "
                    "cpu_percent_max, load1_sum, mem_used_mib_sum, mem_total_mib) VALUES (?1, ?2, "
                    "1, ?3, ?3, ?4, ?5, ?6) ON CONFLICT (node_id, hour_ms) DO UPDATE SET "
                    "samples = samples + 1, cpu_percent_sum = cpu_percent_sum + ?3, "
                    "cpu_percent_max = max(cpu_percent_max, ?3), load1_sum = load1_sum + ?4, "
                    "mem_used_mib_sum = mem_used_mib_sum + ?5, mem_total_mib = ?6",
                    err);
        if (!s)
            return MU_EIO;
        sqlite3_bind_int64(s, 1, in->node_id);
        sqlite3_bind_int64(s, 2, hour_of(r->time_ms));
        sqlite3_bind_double(s, 3, h->cpu_percent);
        sqlite3_bind_double(s, 4, h->load1);
        sqlite3_bind_int64(
            s, 5,
            h->mem_total_mib > h->mem_available_mib ? h->mem_total_mib - h->mem_available_mib : 0);
        sqlite3_bind_int64(s, 6, h->mem_total_mib);
        rc = st_run(c, s, "storing a node's hourly rollup", err);
        st_stmt_done(c, s);
    }
    return rc;
}

/* The observed state a domain state means (as the reconciler maps libvirt's), and why. */
static const char *observed_of(const char *state, const char **ret_why)
{
    *ret_why = "";
    if (strcmp(state, "running") == 0)
        return "running";
    if (strcmp(state, "shutoff") == 0)
        return "shutoff";
    if (strcmp(state, "crashed") == 0) {
        *ret_why = "the domain crashed";
        return "error";
    }
    return "unknown"; /* paused, shutting down, other: transient or an operator's doing */
}

static int64_t counter_delta(int64_t now, int64_t before)
{
    /* A counter that went down belongs to a restarted domain: it counts from zero. */
    return now >= before ? now - before : now;
}

/* Queues an observed-state change for vm when the report is newer than what is known and
 * no operation of the VM is under way. */
static int observe(struct batch *b, const struct mu_report_in *in, const struct mu_report_domain *d,
                   const struct vm_ident *vm, struct mu_err *err)
{
    const char *why;
    const char *want = observed_of(d->state, &why);
    const char *observed = observed_names[vm->observed];
    sqlite3_stmt *s;
    int rc;

    if (strcmp(want, observed) == 0 || vm->deleting || strcmp(observed, "pending") == 0 ||
        strcmp(observed, "deleted") == 0 || in->report->time_ms <= vm->observed_ms)
        return 0;
    s = st_stmt(
        b->c, "SELECT 1 FROM operations WHERE vm_id = ?1 AND state IN ('pending', 'running')", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, vm->vm_id);
    rc = sqlite3_step(s);
    st_stmt_done(b->c, s);
    if (rc == SQLITE_ROW)
        return 0; /* the operation owns the VM's state until it finishes */
    if (rc != SQLITE_DONE)
        return st_sql_err(b->c, rc, "looking for a VM's operation", err);
    for (size_t i = 0; i < b->nchanges; i++)
        if (b->changes[i].vm_id == vm->vm_id) { /* a later report of the batch wins */
            snprintf(b->changes[i].state, sizeof b->changes[i].state, "%s", want);
            snprintf(b->changes[i].error, sizeof b->changes[i].error, "%s", why);
            return 0;
        }
    if (b->nchanges == b->capchanges) {
        b->capchanges = b->capchanges ? b->capchanges * 2 : 16;
        b->changes = mu_xrealloc(b->changes, b->capchanges * sizeof *b->changes);
    }
    struct mu_observed_change *ch = &b->changes[b->nchanges++];
    memset(ch, 0, sizeof *ch);
    ch->vm_id = vm->vm_id;
    ch->node_id = in->node_id;
    snprintf(ch->state, sizeof ch->state, "%s", want);
    snprintf(ch->error, sizeof ch->error, "%s", why);
    return 0;
}

static int domain_row(struct batch *b, const struct mu_report_in *in,
                      const struct mu_report_domain *d, struct mu_err *err)
{
    const struct mu_report *r = in->report;
    struct st_conn *c = b->c;
    struct vm_ident vm;
    unsigned char uuid[16];
    sqlite3_stmt *s;
    int rc = vm_ident_get(b, d->vm_id, &vm, err);

    if (rc < 0)
        return rc;
    /* A domain speaks only for a VM of its own node, by UUID as well as by id: an agent
     * cannot touch another node's VMs. */
    if (vm.node_id == 0 || vm.node_id != in->node_id || !uuid_bytes(d->uuid, uuid) ||
        memcmp(uuid, vm.uuid, sizeof uuid) != 0)
        return 0;
    if (vm.last_ms > r->time_ms)
        return 0; /* older than what is known (a replay of another epoch) */

    s = st_stmt(c,
                "INSERT INTO vm_last (vm_id, node_id, uuid, state, time_ms, received_ms, "
                "cpu_time_ns, vcpus, mem_balloon_kib, mem_rss_kib, disk_allocation_bytes, "
                "disk_capacity_bytes, net_rx_bytes, net_tx_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT (vm_id) DO UPDATE SET "
                "node_id = excluded.node_id, uuid = excluded.uuid, state = excluded.state, "
                "time_ms = excluded.time_ms, received_ms = excluded.received_ms, cpu_time_ns = "
                "excluded.cpu_time_ns, vcpus = excluded.vcpus, mem_balloon_kib = "
                "excluded.mem_balloon_kib, mem_rss_kib = excluded.mem_rss_kib, "
                "disk_allocation_bytes = excluded.disk_allocation_bytes, disk_capacity_bytes = "
                "excluded.disk_capacity_bytes, net_rx_bytes = excluded.net_rx_bytes, "
                "net_tx_bytes = excluded.net_tx_bytes",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, d->vm_id);
    sqlite3_bind_int64(s, 2, in->node_id);
    st_bind_str(s, 3, d->uuid);
    st_bind_str(s, 4, d->state);
    sqlite3_bind_int64(s, 5, r->time_ms);
    sqlite3_bind_int64(s, 6, b->now);
    sqlite3_bind_int64(s, 7, d->cpu_time_ns);
    sqlite3_bind_int64(s, 8, d->vcpus);
    sqlite3_bind_int64(s, 9, d->mem_balloon_kib);
    sqlite3_bind_int64(s, 10, d->mem_rss_kib);
    sqlite3_bind_int64(s, 11, d->disk_allocation_bytes);
    sqlite3_bind_int64(s, 12, d->disk_capacity_bytes);
    sqlite3_bind_int64(s, 13, d->net_rx_bytes);
    sqlite3_bind_int64(s, 14, d->net_tx_bytes);
    rc = st_run(c, s, "storing a VM's last sample", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;

    if (in_window(b, r->time_ms, MU_TELEMETRY_ROLLUP_MS)) {
        bool prev = vm.last_ms >= 0 && vm.last_ms < r->time_ms;
        struct tenant_acc a = {
            .tenant_id = vm.tenant_id,
            .hour_ms = hour_of(r->time_ms),
            .samples = 1,
            .cpu_ns = prev ? counter_delta(d->cpu_time_ns, vm.last_cpu) : 0,
            .rss_kib = d->mem_rss_kib,
            .disk_bytes = d->disk_allocation_bytes,
            .rx = prev ? counter_delta(d->net_rx_bytes, vm.last_rx) : 0,
            .tx = prev ? counter_delta(d->net_tx_bytes, vm.last_tx) : 0,
        };
        acc_add(b, &a);
    }
    rc = observe(b, in, d, &vm, err);
    /* What the cache knows of the VM's last sample is now this one. */
    vm.last_ms = r->time_ms;
    vm.last_cpu = d->cpu_time_ns;
    vm.last_rx = d->net_rx_bytes;
    vm.last_tx = d->net_tx_bytes;
    cache_put(b->cache, &vm);
    return rc;
}

static int gap_row(struct batch *b, const struct mu_report_in *in, int64_t acked,
                   struct mu_err *err)
{
    const struct mu_report *r = in->report;
    int64_t from = r->gap_from > acked + 1 ? r->gap_from : acked + 1;
    sqlite3_stmt *s;
    int rc;

    if (from > r->gap_to)
        return 0; /* everything it stands for was stored already */
    s = st_stmt(b->c,
                "INSERT INTO report_gaps (node_id, epoch, seq, gap_from, gap_to, received_ms) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, in->node_id);
    st_bind_str(s, 2, r->epoch);
    sqlite3_bind_int64(s, 3, r->seq);
    sqlite3_bind_int64(s, 4, from);
    sqlite3_bind_int64(s, 5, r->gap_to);
    sqlite3_bind_int64(s, 6, b->now);
    rc = st_run(b->c, s, "storing a gap record", err);
    st_stmt_done(b->c, s);
    return rc;
}

static int one_report(struct batch *b, struct mu_report_in *in, struct mu_err *err)
{
    const struct mu_report *r = in->report;
    int64_t acked = 0;
    int rc = epoch_read(b->c, in->node_id, r->epoch, &acked, err);

    if (rc < 0)
        return rc;
    in->outcome = decide(r, acked);
    in->acked_seq = acked;
    in->expected_seq = acked + 1;
    if (in->outcome != MU_REPORT_STORED)
        return 0;
    rc = node_heard(b, in->node_id, err);
    if (rc == MU_ENOTFOUND) {
        in->outcome = MU_REPORT_NO_NODE;
        return 0;
    }
    if (rc == 0 && in->cert_serial && in->cert_serial[0])
        rc = st_node_cert_record_tx(b->c, in->node_id, in->cert_serial, in->cert_not_after_ms,
                                    b->now, err);
    if (rc == 0 && r->gap)
        rc = gap_row(b, in, acked, err);
    if (rc == 0 && !r->gap) {
        rc = node_rows(b, in, err);
        for (size_t i = 0; rc == 0 && i < r->ndomains; i++)
            if (r->domains[i].vm_id > 0)
                rc = domain_row(b, in, &r->domains[i], err);
    }
    if (rc == 0)
        rc = epoch_write(b->c, in->node_id, r->epoch, r->seq, b->now, err);
    if (rc == 0)
        in->acked_seq = r->seq;
    return rc;
}

static int tenant_rollups(struct batch *b, struct mu_err *err)
{
    for (size_t i = 0; i < b->nacc; i++) {
        const struct tenant_acc *a = &b->acc[i];
        sqlite3_stmt *s = st_stmt(
            b->c,
            "INSERT INTO tenant_hourly (tenant_id, hour_ms, samples, cpu_time_ns, "
            "mem_rss_kib_sum, disk_allocation_bytes_sum, net_rx_bytes, net_tx_bytes) VALUES (?1, "
            "?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (tenant_id, hour_ms) DO UPDATE SET samples "
            "= samples + ?3, cpu_time_ns = cpu_time_ns + ?4, mem_rss_kib_sum = mem_rss_kib_sum "
            "+ ?5, disk_allocation_bytes_sum = disk_allocation_bytes_sum + ?6, net_rx_bytes = "
            "net_rx_bytes + ?7, net_tx_bytes = net_tx_bytes + ?8",
            err);
        int rc;

        if (!s)
            return MU_EIO;
        sqlite3_bind_int64(s, 1, a->tenant_id);
        sqlite3_bind_int64(s, 2, a->hour_ms);
        sqlite3_bind_int64(s, 3, a->samples);
        sqlite3_bind_int64(s, 4, a->cpu_ns);
        sqlite3_bind_int64(s, 5, a->rss_kib);
        sqlite3_bind_int64(s, 6, a->disk_bytes);
        sqlite3_bind_int64(s, 7, a->rx);
        sqlite3_bind_int64(s, 8, a->tx);
        rc = st_run(b->c, s, "storing a tenant's hourly rollup", err);
        st_stmt_done(b->c, s);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int mu_store_reports_commit(struct mu_store *st, struct mu_report_cache *cache,
                            struct mu_report_in *in, size_t n, int64_t now_ms,
                            const struct mu_audit_rec *health_audit,
                            struct mu_observed_change **ret_changes, size_t *ret_nchanges,
                            struct mu_err *err)
{
    struct batch b = {.st = st, .cache = cache, .now = now_ms, .health_audit = health_audit};
    int rc = 0;

    if (n == 0) {
        if (ret_changes)
            *ret_changes = NULL;
        if (ret_nchanges)
            *ret_nchanges = 0;
        return 0;
    }
    b.c = st_tx_begin(st, err);
    if (!b.c)
        return MU_EIO;
    /* Every write goes through this connection: if its change count moved since our last
     * batch, another transaction changed something, perhaps a VM: forget them all. */
    if (cache && (cache->st != st || cache->seen_changes != sqlite3_total_changes64(b.c->db))) {
        cache_clear(cache);
        cache->st = st;
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = one_report(&b, &in[i], err);
    if (rc == 0)
        rc = tenant_rollups(&b, err);
    if (cache)
        cache->seen_changes = sqlite3_total_changes64(b.c->db);
    rc = st_tx_end(st, rc, err);
    free(b.acc);
    if (rc < 0) {
        if (cache)
            cache_clear(cache); /* it may hold what was rolled back */
        free(b.changes);
        return rc;
    }
    if (ret_changes) {
        *ret_changes = b.changes;
        *ret_nchanges = b.nchanges;
    } else {
        free(b.changes);
    }
    return 0;
}

/* ---- reads ----------------------------------------------------------------------------- */

int mu_store_node_id_by_name(struct mu_store *st, const char *name, int64_t *ret_id,
                             struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT id FROM nodes WHERE name = ?1", err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_id = sqlite3_column_int64(s, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "there is no node named %.63s", name ? name : "");
    } else {
        rc = st_sql_err(c, rc, "looking up a node", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_agent_acked(struct mu_store *st, int64_t node_id, const char *epoch,
                         int64_t *ret_acked, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);

    if (!c)
        return MU_EIO;
    return epoch_read(c, node_id, epoch, ret_acked, err);
}

int mu_store_report_gaps(struct mu_store *st, int64_t node_id, int limit,
                         struct mu_report_gap **ret, size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_report_gap *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    if (limit < 1 || limit > 10000)
        limit = 10000;
    s = st_stmt(c,
                "SELECT id, node_id, epoch, seq, gap_from, gap_to, received_ms FROM report_gaps "
                "WHERE ?1 = 0 OR node_id = ?1 ORDER BY id LIMIT ?2",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    sqlite3_bind_int(s, 2, limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        struct mu_report_gap *g = &out[n++];
        memset(g, 0, sizeof *g);
        g->id = sqlite3_column_int64(s, 0);
        g->node_id = sqlite3_column_int64(s, 1);
        snprintf(g->epoch, sizeof g->epoch, "%s", (const char *)sqlite3_column_text(s, 2));
        g->seq = sqlite3_column_int64(s, 3);
        g->gap_from = sqlite3_column_int64(s, 4);
        g->gap_to = sqlite3_column_int64(s, 5);
        g->received_ms = sqlite3_column_int64(s, 6);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing gap records", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        free(out);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

void mu_node_last_clear(struct mu_node_last *l)
{
    if (!l)
        return;
    free(l->pools_json);
    memset(l, 0, sizeof *l);
}

#define NODE_LAST_COLS                                                                             \
    "node_id, epoch, seq, time_ms, received_ms, cpus, cpu_percent, load1, load5, load15, "         \
    "mem_total_mib, mem_available_mib, uptime_s, pools_json, domains"

static void node_last_from_row(sqlite3_stmt *s, struct mu_node_last *ret)
{
    memset(ret, 0, sizeof *ret);
    ret->node_id = sqlite3_column_int64(s, 0);
    snprintf(ret->epoch, sizeof ret->epoch, "%s", (const char *)sqlite3_column_text(s, 1));
    ret->seq = sqlite3_column_int64(s, 2);
    ret->time_ms = sqlite3_column_int64(s, 3);
    ret->received_ms = sqlite3_column_int64(s, 4);
    ret->host.cpus = sqlite3_column_int64(s, 5);
    ret->host.cpu_percent = sqlite3_column_double(s, 6);
    ret->host.load1 = sqlite3_column_double(s, 7);
    ret->host.load5 = sqlite3_column_double(s, 8);
    ret->host.load15 = sqlite3_column_double(s, 9);
    ret->host.mem_total_mib = sqlite3_column_int64(s, 10);
    ret->host.mem_available_mib = sqlite3_column_int64(s, 11);
    ret->host.uptime_s = sqlite3_column_int64(s, 12);
    ret->pools_json = st_col_str(s, 13);
    ret->domains = sqlite3_column_int64(s, 14);
}

void mu_node_lasts_free(struct mu_node_last *l, size_t n)
{
    if (!l)
        return;
    for (size_t i = 0; i < n; i++)
        mu_node_last_clear(&l[i]);
    free(l);
}

int mu_store_node_last_all(struct mu_store *st, struct mu_node_last **ret, size_t *ret_n,
                           struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_node_last *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " NODE_LAST_COLS " FROM node_last ORDER BY node_id", err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            out = mu_xrealloc(out, cap * sizeof(*out));
        }
        node_last_from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading the nodes' last reports", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_node_lasts_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_node_last(struct mu_store *st, int64_t node_id, struct mu_node_last *ret,
                       struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " NODE_LAST_COLS " FROM node_last WHERE node_id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        node_last_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " has not reported yet", node_id);
    } else {
        rc = st_sql_err(c, rc, "reading a node's last report", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_vm_last(struct mu_store *st, int64_t vm_id, struct mu_vm_last *ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT vm_id, node_id, uuid, state, time_ms, received_ms, cpu_time_ns, vcpus, "
                "mem_balloon_kib, mem_rss_kib, disk_allocation_bytes, disk_capacity_bytes, "
                "net_rx_bytes, net_tx_bytes FROM vm_last WHERE vm_id = ?1",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, vm_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(ret, 0, sizeof *ret);
        ret->vm_id = sqlite3_column_int64(s, 0);
        ret->node_id = sqlite3_column_int64(s, 1);
        snprintf(ret->uuid, sizeof ret->uuid, "%s", (const char *)sqlite3_column_text(s, 2));
        snprintf(ret->state, sizeof ret->state, "%s", (const char *)sqlite3_column_text(s, 3));
        ret->time_ms = sqlite3_column_int64(s, 4);
        ret->received_ms = sqlite3_column_int64(s, 5);
        ret->cpu_time_ns = sqlite3_column_int64(s, 6);
        ret->vcpus = sqlite3_column_int64(s, 7);
        ret->mem_balloon_kib = sqlite3_column_int64(s, 8);
        ret->mem_rss_kib = sqlite3_column_int64(s, 9);
        ret->disk_allocation_bytes = sqlite3_column_int64(s, 10);
        ret->disk_capacity_bytes = sqlite3_column_int64(s, 11);
        ret->net_rx_bytes = sqlite3_column_int64(s, 12);
        ret->net_tx_bytes = sqlite3_column_int64(s, 13);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "VM %" PRId64 " has not been reported yet", vm_id);
    } else {
        rc = st_sql_err(c, rc, "reading a VM's last sample", err);
    }
    st_stmt_done(c, s);
    return rc;
}

static int count_rows(struct st_conn *c, const char *sql, int64_t *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt_dyn(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    rc = sqlite3_step(s);
    *ret = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    rc = rc == SQLITE_ROW ? 0 : st_sql_err(c, rc, "counting rows", err);
    st_stmt_done(c, s);
    return rc;
}

int mu_store_telemetry_counts(struct mu_store *st, struct mu_telemetry_counts *ret,
                              struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_telemetry_counts t = {0};
    int rc;

    if (!c)
        return MU_EIO;
    rc = count_rows(c, "SELECT count(*) FROM node_last", &t.node_last, err);
    if (rc == 0)
        rc = count_rows(c, "SELECT count(*) FROM vm_last", &t.vm_last, err);
    if (rc == 0)
        rc = count_rows(c, "SELECT count(*) FROM node_history", &t.node_history, err);
    if (rc == 0)
        rc = count_rows(c, "SELECT count(*) FROM node_hourly", &t.node_hourly, err);
    if (rc == 0)
        rc = count_rows(c, "SELECT count(*) FROM tenant_hourly", &t.tenant_hourly, err);
    if (rc == 0)
        rc = count_rows(c, "SELECT count(*) FROM agent_epochs", &t.agent_epochs, err);
    if (rc == 0)
        rc = count_rows(c, "SELECT count(*) FROM report_gaps", &t.report_gaps, err);
    if (rc == 0)
        rc = count_rows(c, "SELECT count(*) FROM node_certs", &t.node_certs, err);
    if (rc == 0)
        *ret = t;
    return rc;
}

/* ---- pruning and node removal ------------------------------------------------------------ */

/* Runs one bounded DELETE (?1 bound to cutoff when >= 0) in its own transaction; adds the
 * rows deleted to *total and returns how many, or a negative code. */
static int prune_step(struct mu_store *st, const char *sql, int64_t p1, int64_t p2, int64_t *total,
                      struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    sqlite3_stmt *s;
    int rc, n = 0;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, sql, err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    if (sqlite3_bind_parameter_count(s) >= 1)
        sqlite3_bind_int64(s, 1, p1);
    if (sqlite3_bind_parameter_count(s) >= 2)
        sqlite3_bind_int64(s, 2, p2);
    rc = st_run(c, s, "pruning telemetry", err);
    st_stmt_done(c, s);
    if (rc == 0)
        n = sqlite3_changes(c->db);
    rc = st_tx_end(st, rc, err);
    if (rc < 0)
        return rc;
    *total += n;
    return n;
}

/* Repeats a chunked DELETE until it deletes less than a chunk. */
static int prune_all(struct mu_store *st, const char *sql, int64_t p1, int64_t p2, int64_t *total,
                     struct mu_err *err)
{
    int n;

    do {
        n = prune_step(st, sql, p1, p2, total, err);
    } while (n >= PRUNE_CHUNK);
    return n < 0 ? n : 0;
}

/* Node ids that have history (those that reported, or still have rows). */
static int history_nodes(struct mu_store *st, int64_t **ret, size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT node_id FROM node_last UNION SELECT id FROM nodes", err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            ids = mu_xrealloc(ids, cap * sizeof *ids);
        }
        ids[n++] = sqlite3_column_int64(s, 0);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing nodes with history", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        free(ids);
        return rc;
    }
    *ret = ids;
    *ret_n = n;
    return 0;
}

int mu_store_telemetry_prune(struct mu_store *st, int64_t now_ms, int64_t *ret_deleted,
                             struct mu_err *err)
{
    int64_t history_cut = (now_ms - MU_TELEMETRY_HISTORY_MS) / MU_TELEMETRY_BUCKET_MS;
    int64_t rollup_cut = now_ms - MU_TELEMETRY_ROLLUP_MS;
    int64_t total = 0, *ids = NULL;
    size_t n = 0;
    int rc;

    /* History is keyed by node: one range delete per node (no index on time), each at most
     * a day of buckets. */
    rc = history_nodes(st, &ids, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int d = prune_step(st, "DELETE FROM node_history WHERE node_id = ?1 AND bucket < ?2",
                           ids[i], history_cut, &total, err);
        rc = d < 0 ? d : 0;
    }
    free(ids);
    if (rc == 0)
        rc = prune_all(st,
                       "DELETE FROM node_hourly WHERE (node_id, hour_ms) IN (SELECT node_id, "
                       "hour_ms FROM node_hourly WHERE hour_ms < ?1 LIMIT 5000)",
                       rollup_cut, 0, &total, err);
    if (rc == 0)
        rc = prune_all(st,
                       "DELETE FROM tenant_hourly WHERE (tenant_id, hour_ms) IN (SELECT "
                       "tenant_id, hour_ms FROM tenant_hourly WHERE hour_ms < ?1 LIMIT 5000)",
                       rollup_cut, 0, &total, err);
    if (rc == 0)
        rc = prune_all(st,
                       "DELETE FROM report_gaps WHERE id IN (SELECT id FROM report_gaps WHERE "
                       "received_ms < ?1 LIMIT 5000)",
                       rollup_cut, 0, &total, err);
    /* An epoch idle for the whole rollup period belongs to an agent long reinstalled. */
    if (rc == 0)
        rc = prune_all(st,
                       "DELETE FROM agent_epochs WHERE (node_id, epoch) IN (SELECT node_id, epoch "
                       "FROM agent_epochs WHERE last_ms < ?1 LIMIT 5000)",
                       rollup_cut, 0, &total, err);
    if (rc == 0)
        rc = prune_all(st,
                       "DELETE FROM vm_last WHERE vm_id IN (SELECT l.vm_id FROM vm_last l LEFT "
                       "JOIN vms v ON v.id = l.vm_id WHERE v.id IS NULL LIMIT 5000)",
                       0, 0, &total, err);
    if (rc == 0 && ret_deleted)
        *ret_deleted = total;
    return rc;
}

int st_node_telemetry_delete_tx(struct st_conn *c, int64_t node_id, struct mu_err *err)
{
    static const char *const sql[] = {
        "DELETE FROM node_last WHERE node_id = ?1",
        "DELETE FROM vm_last WHERE node_id = ?1",
        "DELETE FROM node_history WHERE node_id = ?1",
        "DELETE FROM agent_epochs WHERE node_id = ?1",
    };
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < MU_ARRAY_LEN(sql); i++) {
        sqlite3_stmt *s = st_stmt(c, sql[i], err);
        if (!s)
            return MU_EIO;
        sqlite3_bind_int64(s, 1, node_id);
        rc = st_run(c, s, "removing a node's reports", err);
        st_stmt_done(c, s);
    }
    return rc;
}

/* ---- health ------------------------------------------------------------------------------ */

bool mu_store_node_agent_managed(struct mu_store *st, int64_t node_id)
{
    struct mu_err err = {0};
    struct st_conn *c = st_reader(st, &err);
    sqlite3_stmt *s;
    bool yes = false;

    if (!c)
        return false;
    s = st_stmt(c,
                "SELECT 1 FROM nodes WHERE id = ?1 AND (enrolment = 'enrolled' OR "
                "last_report_ms > 0)",
                &err);
    if (!s)
        return false;
    sqlite3_bind_int64(s, 1, node_id);
    yes = sqlite3_step(s) == SQLITE_ROW;
    st_stmt_done(c, s);
    return yes;
}

int mu_store_node_liveness(struct mu_store *st, struct mu_node_liveness **ret, size_t *ret_n,
                           struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_node_liveness *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT id, name, health, health_ms, last_report_ms FROM nodes "
                "WHERE enrolment = 'enrolled' OR last_report_ms > 0 ORDER BY id",
                err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        struct mu_node_liveness *l = &out[n++];
        memset(l, 0, sizeof *l);
        l->id = sqlite3_column_int64(s, 0);
        snprintf(l->name, sizeof l->name, "%s", (const char *)sqlite3_column_text(s, 1));
        snprintf(l->health, sizeof l->health, "%s", (const char *)sqlite3_column_text(s, 2));
        l->health_ms = sqlite3_column_int64(s, 3);
        l->last_report_ms = sqlite3_column_int64(s, 4);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing agent nodes", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        free(out);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_node_health_set(struct mu_store *st, int64_t node_id, const char *health,
                             int64_t at_ms, int64_t expect_last_report_ms, const char *why,
                             const struct mu_audit_rec *audit, bool *ret_changed,
                             struct mu_err *err)
{
    MU_AUTOFREE char *name = NULL, *old = NULL;
    struct st_conn *c;
    sqlite3_stmt *s;
    int64_t last = 0;
    bool changed = false;
    int rc;

    if (!health || (strcmp(health, "up") != 0 && strcmp(health, "down") != 0 &&
                    strcmp(health, "unknown") != 0))
        return mu_err_setf(err, MU_EINVAL, "health",
                           "unknown node health %s: use up, down or unknown",
                           health ? health : "(none)");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT name, health, last_report_ms FROM nodes WHERE id = ?1", err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        name = st_col_str(s, 0);
        old = st_col_str(s, 1);
        last = sqlite3_column_int64(s, 2);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", node_id);
    } else {
        rc = st_sql_err(c, rc, "reading a node's health", err);
    }
    st_stmt_done(c, s);
    if (rc < 0 || strcmp(old, health) == 0 ||
        (expect_last_report_ms >= 0 && last != expect_last_report_ms))
        goto out;
    s = st_stmt(c, "UPDATE nodes SET health = ?2, health_ms = ?3, updated_ms = ?3 WHERE id = ?1",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, node_id);
    st_bind_str(s, 2, health);
    sqlite3_bind_int64(s, 3, at_ms);
    rc = st_run(c, s, "recording a node's health", err);
    st_stmt_done(c, s);
    if (rc == 0) {
        char target[48];
        MU_AUTOFREE char *detail = mu_xasprintf("%s: %s -> %s%s%s%s", name, old, health,
                                                why ? " (" : "", why ? why : "", why ? ")" : "");
        snprintf(target, sizeof target, "node/%" PRId64, node_id);
        rc = st_audit_append_tx(st, audit, 0, target, detail, err);
        changed = rc == 0;
    }
out:
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_changed)
        *ret_changed = changed;
    return rc;
}

/* ---- actual use ------------------------------------------------------------------------- */

int mu_store_tenant_actual(struct mu_store *st, int64_t tenant_id, struct mu_actual_use *ret,
                           struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    MU_AUTOFREE char *path = NULL, *upper = NULL;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT path FROM tenants WHERE id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, tenant_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        path = st_col_str(s, 0);
    st_stmt_done(c, s);
    if (!path)
        return rc == SQLITE_ROW || rc == SQLITE_DONE
                   ? mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", tenant_id)
                   : st_sql_err(c, rc, "reading a tenant", err);
    upper = st_path_upper(path);
    s = st_stmt(c,
                "SELECT count(l.vm_id), total(l.mem_rss_kib), total(l.disk_allocation_bytes), "
                "total(l.cpu_time_ns), COALESCE(max(l.received_ms), 0) FROM vms v JOIN vm_last l "
                "ON l.vm_id = v.id "
                "WHERE v.tenant_path >= ?1 AND v.tenant_path < ?2",
                err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, path);
    st_bind_str(s, 2, upper);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(ret, 0, sizeof *ret);
        ret->vms_reporting = sqlite3_column_int64(s, 0);
        /* Summed as doubles (total()): 100,000 counters of up to 2^62 overflow int64. */
        ret->mem_rss_kib = clamp_i64(sqlite3_column_double(s, 1));
        ret->disk_alloc_bytes = clamp_i64(sqlite3_column_double(s, 2));
        ret->cpu_time_ns = clamp_i64(sqlite3_column_double(s, 3));
        ret->last_ms = sqlite3_column_int64(s, 4);
        rc = 0;
    } else {
        rc = st_sql_err(c, rc, "summing a tenant's actual use", err);
    }
    st_stmt_done(c, s);
    return rc;
}
