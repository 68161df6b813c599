/* store/telemetry: report sequencing per epoch (in order, replays, out of order, new
 * epochs, gap records), refusals that change nothing, the last rows and rollups, observed
 * VM states, health transitions, pruning, certificate revocation (by serial, and by
 * deleting the node), each tenant's actual use, and durability: a batch is synced before
 * mu_store_reports_commit returns, once per batch (syncs counted by the sync-logging VFS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "provision_test.h"
#include "store/telemetry.h"
#include "store/test_vfs.h"

#define EPOCH_A "0123456789abcdef0123456789abcdef"
#define EPOCH_B "fedcba9876543210fedcba9876543210"
#define T0      ((int64_t)1800000000000) /* a fixed "now" */

static char sync_log[128];

/* ---- fixture ------------------------------------------------------------------------ */

struct fx {
    struct mu_test_db db;
    struct mu_store *st;
    int64_t node, node2, tenant, child, image;
};

static int setup(void **state)
{
    struct fx *f = mu_xcalloc(1, sizeof *f);
    if (!sync_log[0]) {
        snprintf(sync_log, sizeof sync_log, "/tmp/mu-telemetry-sync-%d.log", (int)getpid());
        unlink(sync_log);
    }
    mu_test_db_init(&f->db, mu_store_test_sync_vfs(sync_log));
    f->st = f->db.st;
    f->node = pt_node(f->st, "node-1");
    f->node2 = pt_node(f->st, "node-2");
    f->tenant = pt_tenant(f->st, "Syndicat", "syndicat", 0);
    f->child = pt_tenant(f->st, "Commune", "commune", f->tenant);
    f->image = pt_image(f->st, "debian");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mu_test_db_fini(&f->db);
    free(f);
    return 0;
}

/* WAL syncs logged so far. */
static long wal_syncs(void)
{
    size_t len = 0;
    char *text = mu_read_file(sync_log, 64 << 20, &len);
    long n = 0;
    for (char *p = text; p && (p = strstr(p, "-wal\n")) != NULL; p++)
        n++;
    free(text);
    return n;
}

/* ---- builders ------------------------------------------------------------------------ */

static struct mu_report rep(const char *node, const char *epoch, int64_t seq, int64_t time_ms)
{
    struct mu_report r = {.seq = seq, .time_ms = time_ms};
    snprintf(r.node, sizeof r.node, "%s", node);
    snprintf(r.epoch, sizeof r.epoch, "%s", epoch);
    r.host = (struct mu_report_host){.cpus = 8,
                                     .cpu_percent = 25,
                                     .load1 = 1,
                                     .load5 = 1,
                                     .load15 = 1,
                                     .mem_total_mib = 32768,
                                     .mem_available_mib = 16384,
                                     .uptime_s = 100};
    return r;
}

static struct mu_report gap(const char *epoch, int64_t seq, int64_t from, int64_t to)
{
    struct mu_report r = rep("node-1", epoch, seq, T0);
    r.gap = true;
    r.gap_from = from;
    r.gap_to = to;
    return r;
}

/* Commits one report for node and returns its outcome (acked in *acked). */
static enum mu_report_outcome commit1(struct fx *f, int64_t node, const struct mu_report *r,
                                      int64_t *acked, int64_t *expected)
{
    struct mu_report_in in = {.report = r, .node_id = node};
    struct mu_err err = {0};
    pt_check(mu_store_reports_commit(f->st, NULL, &in, 1, T0, NULL, NULL, NULL, &err), &err,
             "commit");
    if (acked)
        *acked = in.acked_seq;
    if (expected)
        *expected = in.expected_seq;
    return in.outcome;
}

static int64_t acked_of(struct fx *f, int64_t node, const char *epoch)
{
    struct mu_err err = {0};
    int64_t a = -1;
    pt_check(mu_store_agent_acked(f->st, node, epoch, &a, &err), &err, "acked");
    return a;
}

static struct mu_telemetry_counts counts(struct fx *f)
{
    struct mu_telemetry_counts c;
    struct mu_err err = {0};
    pt_check(mu_store_telemetry_counts(f->st, &c, &err), &err, "counts");
    return c;
}

/* A running VM of node in tenant: its id, uuid in uuid[37]. */
static int64_t running_vm(struct fx *f, int64_t node, int64_t tenant, const char *name,
                          char uuid[37])
{
    struct pt_vm v = {.tenant = tenant,
                      .node = node,
                      .vcpus = 1,
                      .ram_mib = 512,
                      .disk_gib = 10,
                      .image = f->image};
    struct mu_err err = {0};
    int64_t vm = 0, op = 0;
    pt_check(pt_admit(f->st, &v, name, &vm, &op, &err), &err, "admit");
    pt_check(mu_store_op_finish(f->st, op, true, NULL, &err), &err, "op finish");
    pt_check(mu_store_vm_set_observed(f->st, vm, "running", NULL, &err), &err, "observed");
    struct mu_vm got = {0};
    pt_check(mu_store_vm_get(f->st, vm, &got, &err), &err, "vm get");
    memcpy(uuid, got.uuid, 37);
    mu_vm_clear(&got);
    return vm;
}

/* ---- sequencing ------------------------------------------------------------------------ */

static void test_epochs(void **state)
{
    struct fx *f = *state;
    int64_t acked = 0, expected = 0;
    struct mu_report r1 = rep("node-1", EPOCH_A, 1, T0);
    struct mu_report r2 = rep("node-1", EPOCH_A, 2, T0 + 1000);
    struct mu_report r4 = rep("node-1", EPOCH_A, 4, T0 + 3000);

    assert_int_equal(acked_of(f, f->node, EPOCH_A), 0);
    assert_int_equal(commit1(f, f->node, &r1, &acked, NULL), MU_REPORT_STORED);
    assert_int_equal(acked, 1);
    assert_int_equal(commit1(f, f->node, &r2, &acked, NULL), MU_REPORT_STORED);
    assert_int_equal(acked, 2);

    /* A replay is acknowledged again and changes nothing. */
    struct mu_telemetry_counts before = counts(f);
    struct mu_report r1again = rep("node-1", EPOCH_A, 1, T0 + 9000);
    assert_int_equal(commit1(f, f->node, &r1again, &acked, NULL), MU_REPORT_REPLAY);
    assert_int_equal(acked, 2);
    struct mu_node_last last = {0};
    struct mu_err err = {0};
    pt_check(mu_store_node_last(f->st, f->node, &last, &err), &err, "last");
    assert_int_equal(last.seq, 2);
    assert_int_equal(last.time_ms, T0 + 1000);
    mu_node_last_clear(&last);

    /* Out of order: refused with the sequence to send, nothing changes. */
    assert_int_equal(commit1(f, f->node, &r4, &acked, &expected), MU_REPORT_OUT_OF_ORDER);
    assert_int_equal(acked, 2);
    assert_int_equal(expected, 3);
    assert_int_equal(acked_of(f, f->node, EPOCH_A), 2);
    struct mu_telemetry_counts after = counts(f);
    assert_memory_equal(&before, &after, sizeof before);

    /* A new epoch (a reinstalled agent) starts at 1, independently. */
    struct mu_report b5 = rep("node-1", EPOCH_B, 5, T0 + 4000);
    assert_int_equal(commit1(f, f->node, &b5, NULL, &expected), MU_REPORT_OUT_OF_ORDER);
    assert_int_equal(expected, 1);
    struct mu_report b1 = rep("node-1", EPOCH_B, 1, T0 + 4000);
    assert_int_equal(commit1(f, f->node, &b1, &acked, NULL), MU_REPORT_STORED);
    assert_int_equal(acked, 1);
    assert_int_equal(acked_of(f, f->node, EPOCH_A), 2);
    /* The same epoch on another node is another sequence. */
    struct mu_report n2 = rep("node-2", EPOCH_A, 1, T0);
    assert_int_equal(commit1(f, f->node2, &n2, &acked, NULL), MU_REPORT_STORED);
    assert_int_equal(acked_of(f, f->node2, EPOCH_A), 1);
    assert_int_equal(acked_of(f, f->node, EPOCH_A), 2);
}

static void test_batch_in_order(void **state)
{
    struct fx *f = *state;
    struct mu_report r[5];
    struct mu_report_in in[5];
    struct mu_err err = {0};
    /* seq 1, 2, 2 (a replay within the batch), 4 (refused), 3 */
    const int64_t seqs[5] = {1, 2, 2, 4, 3};
    for (int i = 0; i < 5; i++) {
        r[i] = rep("node-1", EPOCH_A, seqs[i], T0 + i);
        in[i] = (struct mu_report_in){.report = &r[i], .node_id = f->node};
    }
    pt_check(mu_store_reports_commit(f->st, NULL, in, 5, T0, NULL, NULL, NULL, &err), &err,
             "commit");
    assert_int_equal(in[0].outcome, MU_REPORT_STORED);
    assert_int_equal(in[1].outcome, MU_REPORT_STORED);
    assert_int_equal(in[2].outcome, MU_REPORT_REPLAY);
    assert_int_equal(in[2].acked_seq, 2);
    assert_int_equal(in[3].outcome, MU_REPORT_OUT_OF_ORDER);
    assert_int_equal(in[3].expected_seq, 3);
    assert_int_equal(in[4].outcome, MU_REPORT_STORED);
    assert_int_equal(in[4].acked_seq, 3);
    assert_int_equal(acked_of(f, f->node, EPOCH_A), 3);
}

static void test_gaps(void **state)
{
    struct fx *f = *state;
    int64_t acked = 0, expected = 0;
    struct mu_report_gap *g = NULL;
    size_t n = 0;
    struct mu_err err = {0};

    for (int64_t s = 1; s <= 2; s++) {
        struct mu_report r = rep("node-1", EPOCH_A, s, T0);
        assert_int_equal(commit1(f, f->node, &r, NULL, NULL), MU_REPORT_STORED);
    }
    /* 3..4 dropped by the agent: the gap takes seq 5. */
    struct mu_report g1 = gap(EPOCH_A, 5, 3, 4);
    assert_int_equal(commit1(f, f->node, &g1, &acked, NULL), MU_REPORT_STORED);
    assert_int_equal(acked, 5);
    /* The ack of 6 was lost and the agent dropped 6..7: only 7 is missing. */
    struct mu_report r6 = rep("node-1", EPOCH_A, 6, T0);
    assert_int_equal(commit1(f, f->node, &r6, NULL, NULL), MU_REPORT_STORED);
    struct mu_report g2 = gap(EPOCH_A, 8, 6, 7);
    assert_int_equal(commit1(f, f->node, &g2, &acked, NULL), MU_REPORT_STORED);
    assert_int_equal(acked, 8);
    /* A gap of what was all stored already: in order, no gap row. */
    struct mu_report g3 = gap(EPOCH_A, 9, 2, 8);
    assert_int_equal(commit1(f, f->node, &g3, &acked, NULL), MU_REPORT_STORED);
    assert_int_equal(acked, 9);
    /* A gap starting past what was acknowledged leaves a hole: refused. */
    struct mu_report g4 = gap(EPOCH_A, 14, 12, 13);
    assert_int_equal(commit1(f, f->node, &g4, &acked, &expected), MU_REPORT_OUT_OF_ORDER);
    assert_int_equal(expected, 10);
    /* A replayed gap is acknowledged again and stores nothing. */
    assert_int_equal(commit1(f, f->node, &g1, &acked, NULL), MU_REPORT_REPLAY);
    assert_int_equal(acked, 9);

    pt_check(mu_store_report_gaps(f->st, f->node, 100, &g, &n, &err), &err, "gaps");
    assert_int_equal(n, 2);
    assert_int_equal(g[0].gap_from, 3);
    assert_int_equal(g[0].gap_to, 4);
    assert_int_equal(g[0].seq, 5);
    assert_string_equal(g[0].epoch, EPOCH_A);
    assert_int_equal(g[0].received_ms, T0);
    assert_int_equal(g[1].gap_from, 7);
    assert_int_equal(g[1].gap_to, 7);
    free(g);
    /* Every sequence up to acked is a report or inside a gap row: 1,2 | 3-4 | 5(gap) | 6 |
     * 7 | 8(gap) | 9(gap). */
    assert_int_equal(acked_of(f, f->node, EPOCH_A), 9);
}

static void test_node_gone(void **state)
{
    struct fx *f = *state;
    struct mu_report r = rep("node-2", EPOCH_A, 1, T0);
    struct mu_audit_rec rec = mu_test_rec("node.delete", 0);
    struct mu_err err = {0};

    pt_check(mu_store_node_delete(f->st, f->node2, &rec, &err), &err, "delete");
    assert_int_equal(commit1(f, f->node2, &r, NULL, NULL), MU_REPORT_NO_NODE);
    assert_int_equal(acked_of(f, f->node2, EPOCH_A), 0);
    assert_int_equal(counts(f).node_last, 0);
}

/* ---- rows, VMs, health ------------------------------------------------------------------- */

static void test_rows_and_observed(void **state)
{
    struct fx *f = *state;
    char u1[37], u2[37], u3[37];
    int64_t vm1 = running_vm(f, f->node, f->child, "web", u1);
    int64_t vm2 = running_vm(f, f->node, f->tenant, "db", u2);
    int64_t vm3 = running_vm(f, f->node2, f->child, "other", u3); /* on node-2 */
    struct mu_report_domain d[4] = {
        {.vm_id = vm1,
         .state = "shutoff",
         .cpu_time_ns = 5000,
         .mem_rss_kib = 2048,
         .disk_allocation_bytes = 1 << 30,
         .net_rx_bytes = 10},
        {.vm_id = vm2,
         .state = "running",
         .cpu_time_ns = 7000,
         .mem_rss_kib = 4096,
         .disk_allocation_bytes = 2 << 20},
        {.vm_id = vm3, .state = "shutoff", .mem_rss_kib = 999}, /* not node-1's VM */
        {.vm_id = 0, .state = "running", .mem_rss_kib = 1},     /* not a Mutualis VM */
    };
    memcpy(d[0].uuid, u1, 37);
    memcpy(d[1].uuid, u2, 37);
    memcpy(d[2].uuid, u3, 37);
    snprintf(d[3].uuid, sizeof d[3].uuid, "00000000-0000-0000-0000-000000000001");
    struct mu_report r = rep("node-1", EPOCH_A, 1, mu_now_ms() + 1000);
    r.domains = d;
    r.ndomains = 4;
    struct mu_report_pool pool = {.name = "default", .capacity_gib = 100};
    r.pools = &pool;
    r.npools = 1;
    struct mu_report_in in = {
        .report = &r, .node_id = f->node, .cert_serial = "0abc", .cert_not_after_ms = T0};
    struct mu_observed_change *ch = NULL;
    size_t nch = 0;
    struct mu_err err = {0};
    struct mu_audit_rec health = {
        .actor = "health", .role = "", .action = "node.health", .outcome = "ok", .request_id = ""};
    int64_t now = mu_now_ms();

    pt_check(mu_store_reports_commit(f->st, NULL, &in, 1, now, &health, &ch, &nch, &err), &err,
             "commit");
    assert_int_equal(in.outcome, MU_REPORT_STORED);
    /* vm1 running -> shutoff is reported back; vm2 unchanged; vm3 is another node's. */
    assert_int_equal(nch, 1);
    assert_int_equal(ch[0].vm_id, vm1);
    assert_string_equal(ch[0].state, "shutoff");
    free(ch);

    struct mu_vm_last vl = {0};
    pt_check(mu_store_vm_last(f->st, vm1, &vl, &err), &err, "vm last");
    assert_int_equal(vl.mem_rss_kib, 2048);
    assert_string_equal(vl.state, "shutoff");
    assert_int_equal(mu_store_vm_last(f->st, vm3, &vl, &err), MU_ENOTFOUND);
    struct mu_telemetry_counts c = counts(f);
    assert_int_equal(c.node_last, 1);
    assert_int_equal(c.vm_last, 2);
    assert_int_equal(c.node_history, 1);
    assert_int_equal(c.node_hourly, 1);
    assert_int_equal(c.tenant_hourly, 2);
    assert_int_equal(c.node_certs, 1);

    struct mu_node_last nl = {0};
    pt_check(mu_store_node_last(f->st, f->node, &nl, &err), &err, "node last");
    assert_int_equal(nl.domains, 4);
    assert_non_null(strstr(nl.pools_json, "\"default\""));
    mu_node_last_clear(&nl);

    /* The node is agent-managed now, up since this report. */
    assert_true(mu_store_node_agent_managed(f->st, f->node));
    assert_false(mu_store_node_agent_managed(f->st, f->node2));
    struct mu_node n = {0};
    pt_check(mu_store_node_get(f->st, f->node, &n, &err), &err, "node");
    assert_string_equal(n.health, "up");
    assert_int_equal(n.last_report_ms, now);
    mu_node_clear(&n);

    /* Actual use: the commune has vm1, the syndicat's subtree both. */
    struct mu_actual_use a = {0};
    pt_check(mu_store_tenant_actual(f->st, f->child, &a, &err), &err, "actual");
    assert_int_equal(a.vms_reporting, 1);
    assert_int_equal(a.mem_rss_kib, 2048);
    assert_int_equal(a.disk_alloc_bytes, 1 << 30);
    assert_int_equal(a.cpu_time_ns, 5000);
    pt_check(mu_store_tenant_actual(f->st, f->tenant, &a, &err), &err, "actual");
    assert_int_equal(a.vms_reporting, 2);
    assert_int_equal(a.mem_rss_kib, 2048 + 4096);

    /* An older report does not overwrite a newer sample, nor change observed states. */
    struct mu_report old = rep("node-1", EPOCH_B, 1, now - 60000);
    old.domains = d;
    old.ndomains = 1;
    d[0].mem_rss_kib = 1;
    in = (struct mu_report_in){.report = &old, .node_id = f->node};
    pt_check(mu_store_reports_commit(f->st, NULL, &in, 1, now, NULL, &ch, &nch, &err), &err,
             "commit");
    assert_int_equal(nch, 0);
    free(ch);
    pt_check(mu_store_vm_last(f->st, vm1, &vl, &err), &err, "vm last");
    assert_int_equal(vl.mem_rss_kib, 2048);
}

static void test_health(void **state)
{
    struct fx *f = *state;
    struct mu_audit_rec rec = {
        .actor = "health", .role = "", .action = "node.health", .outcome = "ok", .request_id = ""};
    struct mu_err err = {0};
    bool changed = false;
    struct mu_node_liveness *l = NULL;
    size_t n = 0;

    /* Not agent-managed: not listed. */
    pt_check(mu_store_node_liveness(f->st, &l, &n, &err), &err, "liveness");
    assert_int_equal(n, 0);
    free(l);
    struct mu_report r = rep("node-1", EPOCH_A, 1, T0);
    struct mu_report_in in = {.report = &r, .node_id = f->node};
    pt_check(mu_store_reports_commit(f->st, NULL, &in, 1, T0, &rec, NULL, NULL, &err), &err,
             "commit");
    pt_check(mu_store_node_liveness(f->st, &l, &n, &err), &err, "liveness");
    assert_int_equal(n, 1);
    assert_int_equal(l[0].last_report_ms, T0);
    free(l);

    /* A report stored after the decision wins over "down". */
    pt_check(mu_store_node_health_set(f->st, f->node, "down", T0 + 5, T0 - 1, "late", &rec,
                                      &changed, &err),
             &err, "health");
    assert_false(changed);
    pt_check(mu_store_node_health_set(f->st, f->node, "down", T0 + 30000, T0, "no report", &rec,
                                      &changed, &err),
             &err, "health");
    assert_true(changed);
    struct mu_node nd = {0};
    pt_check(mu_store_node_get(f->st, f->node, &nd, &err), &err, "node");
    assert_string_equal(nd.health, "down");
    assert_int_equal(nd.health_ms, T0 + 30000);
    mu_node_clear(&nd);
    /* The next report brings it up, since that report; audited. */
    struct mu_report r2 = rep("node-1", EPOCH_A, 2, T0);
    in = (struct mu_report_in){.report = &r2, .node_id = f->node};
    pt_check(mu_store_reports_commit(f->st, NULL, &in, 1, T0 + 40000, &rec, NULL, NULL, &err), &err,
             "commit");
    pt_check(mu_store_node_get(f->st, f->node, &nd, &err), &err, "node");
    assert_string_equal(nd.health, "up");
    assert_int_equal(nd.health_ms, T0 + 40000);
    mu_node_clear(&nd);
    struct mu_audit_filter af = {.actor = "health", .limit = 100};
    struct mu_audit_entry *e = NULL;
    size_t ne = 0;
    pt_check(mu_store_audit_list(f->st, &af, &e, &ne, &err), &err, "audit");
    assert_int_equal(ne, 2); /* the node was created "up": up -> down, down -> up */
    assert_non_null(strstr(e[ne - 1].detail, "down -> up"));
    assert_non_null(strstr(e[ne - 2].detail, "up -> down (no report)"));
    mu_audit_entries_free(e, ne);
    assert_int_equal(mu_store_node_health_set(f->st, 999, "down", T0, -1, NULL, &rec, NULL, &err),
                     MU_ENOTFOUND);
}

/* The writer's VM cache: counters give increments between samples, and any other change to
 * the database (here an observed state set by someone else) makes it forget what it knew. */
static void test_cache(void **state)
{
    struct fx *f = *state;
    char u[37];
    int64_t vm = running_vm(f, f->node, f->child, "web", u);
    struct mu_report_cache *cache = mu_report_cache_new();
    struct mu_report_domain d = {.vm_id = vm,
                                 .state = "running",
                                 .cpu_time_ns = 1000,
                                 .net_rx_bytes = 100,
                                 .mem_rss_kib = 10};
    memcpy(d.uuid, u, 37);
    struct mu_observed_change *ch = NULL;
    size_t nch = 0;
    struct mu_err err = {0};
    int64_t t = mu_now_ms() + 1000;

    for (int64_t seq = 1; seq <= 3; seq++) {
        struct mu_report r = rep("node-1", EPOCH_A, seq, t + seq * 1000);
        r.domains = &d;
        r.ndomains = 1;
        d.cpu_time_ns = 1000 * seq * seq; /* 1000, 4000, 9000 */
        struct mu_report_in in = {.report = &r, .node_id = f->node};
        pt_check(mu_store_reports_commit(f->st, cache, &in, 1, mu_now_ms(), NULL, &ch, &nch, &err),
                 &err, "commit");
        assert_int_equal(in.outcome, MU_REPORT_STORED);
        assert_int_equal(nch, 0); /* running, as known */
        free(ch);
    }
    /* Someone else stops it: the next report (running) must be compared with that. */
    pt_check(mu_store_vm_set_observed(f->st, vm, "shutoff", NULL, &err), &err, "observed");
    struct mu_report r4 = rep("node-1", EPOCH_A, 4, t + 60000);
    r4.domains = &d;
    r4.ndomains = 1;
    struct mu_report_in in = {.report = &r4, .node_id = f->node};
    pt_check(mu_store_reports_commit(f->st, cache, &in, 1, mu_now_ms(), NULL, &ch, &nch, &err),
             &err, "commit");
    assert_int_equal(nch, 1);
    assert_string_equal(ch[0].state, "running");
    free(ch);
    /* A domain claiming the VM with another UUID is ignored, cached or not. */
    struct mu_report_domain fake = d;
    fake.uuid[0] = fake.uuid[0] == 'a' ? 'b' : 'a';
    fake.mem_rss_kib = 777;
    struct mu_report r5 = rep("node-1", EPOCH_A, 5, t + 70000);
    r5.domains = &fake;
    r5.ndomains = 1;
    in = (struct mu_report_in){.report = &r5, .node_id = f->node};
    pt_check(mu_store_reports_commit(f->st, cache, &in, 1, mu_now_ms(), NULL, NULL, NULL, &err),
             &err, "commit");
    struct mu_vm_last vl = {0};
    pt_check(mu_store_vm_last(f->st, vm, &vl, &err), &err, "vm last");
    assert_int_equal(vl.mem_rss_kib, 10);
    mu_report_cache_free(cache);

    /* The tenant's hour: 4 samples, CPU increments 3000 + 5000 + 0 (the same counter). */
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_open(f->db.path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT sum(samples), sum(cpu_time_ns), sum(net_rx_bytes) "
                                        "FROM tenant_hourly WHERE tenant_id = ?1",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(q, 1, f->child);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(q, 0), 4);
    assert_int_equal(sqlite3_column_int64(q, 1), 3000 + 5000);
    assert_int_equal(sqlite3_column_int64(q, 2), 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* ---- pruning ------------------------------------------------------------------------------ */

static void test_prune(void **state)
{
    struct fx *f = *state;
    char u[37];
    int64_t vm = running_vm(f, f->node, f->child, "web", u);
    struct mu_report_domain d = {.vm_id = vm, .state = "running", .mem_rss_kib = 10};
    memcpy(d.uuid, u, 37);
    struct mu_err err = {0};
    int64_t deleted = 0;

    /* Two hours of reports every 10 minutes (13 history buckets, 3 hours). */
    for (int i = 0; i <= 12; i++) {
        struct mu_report r = rep("node-1", EPOCH_A, i + 1, T0 + (int64_t)i * 600000);
        r.domains = &d;
        r.ndomains = 1;
        struct mu_report_in in = {.report = &r, .node_id = f->node};
        pt_check(mu_store_reports_commit(f->st, NULL, &in, 1, T0 + (int64_t)i * 600000, NULL, NULL,
                                         NULL, &err),
                 &err, "commit");
    }
    struct mu_report g = gap(EPOCH_A, 15, 14, 14);
    struct mu_report_in gin = {.report = &g, .node_id = f->node};
    pt_check(mu_store_reports_commit(f->st, NULL, &gin, 1, T0, NULL, NULL, NULL, &err), &err,
             "gap");
    struct mu_telemetry_counts c = counts(f);
    assert_int_equal(c.node_history, 13);
    assert_true(c.node_hourly >= 2 && c.node_hourly <= 3);
    assert_int_equal(c.tenant_hourly, c.node_hourly);
    assert_int_equal(c.report_gaps, 1);

    /* A day and an hour later: the first hour of history is gone, rollups stay. */
    pt_check(mu_store_telemetry_prune(f->st, T0 + 25 * 3600000LL, &deleted, &err), &err, "prune");
    c = counts(f);
    assert_int_equal(c.node_history, 7); /* samples at 1:00 .. 2:00 */
    assert_int_equal(deleted, 6);
    assert_int_equal(c.report_gaps, 1);
    /* 31 days later: everything past retention goes; the last rows stay. */
    pt_check(mu_store_telemetry_prune(f->st, T0 + 31 * 24 * 3600000LL, &deleted, &err), &err,
             "prune");
    c = counts(f);
    assert_int_equal(c.node_history, 0);
    assert_int_equal(c.node_hourly, 0);
    assert_int_equal(c.tenant_hourly, 0);
    assert_int_equal(c.report_gaps, 0);
    assert_int_equal(c.agent_epochs, 0);
    assert_int_equal(c.node_last, 1);
    assert_int_equal(c.vm_last, 1);
    /* A purged VM's last row goes with the next prune. */
    pt_check(mu_store_vm_purge(f->st, vm, &err), &err, "purge");
    pt_check(mu_store_telemetry_prune(f->st, T0, &deleted, &err), &err, "prune");
    assert_int_equal(counts(f).vm_last, 0);

    /* Reports too old for a table are not written to it. */
    struct mu_report old = rep("node-1", EPOCH_B, 1, T0 - 2 * 24 * 3600000LL);
    struct mu_report_in in = {.report = &old, .node_id = f->node};
    pt_check(mu_store_reports_commit(f->st, NULL, &in, 1, T0, NULL, NULL, NULL, &err), &err, "old");
    c = counts(f);
    assert_int_equal(c.node_history, 0);
    assert_int_equal(c.node_hourly, 1);
}

/* ---- certificates ------------------------------------------------------------------------- */

static void test_revocation(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    struct mu_audit_rec rec = mu_test_rec("node.delete", 0);
    int64_t n = 0;

    assert_int_equal(mu_store_node_cert_revoked(f->st, "0a1b", &err), 0); /* unknown */
    assert_int_equal(mu_store_node_cert_revoked(f->st, "not hex!", &err), 0);
    assert_int_equal(mu_store_node_cert_record(f->st, f->node, "ZZ", T0, &err), MU_EINVAL);
    pt_check(mu_store_node_cert_record(f->st, f->node, "0a1b", T0, &err), &err, "record");
    pt_check(mu_store_node_cert_record(f->st, f->node, "0a1b", T0, &err), &err, "again");
    pt_check(mu_store_node_cert_record(f->st, f->node, "0c0d", T0, &err), &err, "record");
    pt_check(mu_store_node_cert_record(f->st, f->node2, "0e0f", T0, &err), &err, "record");
    assert_int_equal(mu_store_node_cert_revoked(f->st, "0a1b", &err), 0);

    /* Revoking one node's certificates leaves the other's alone. */
    pt_check(mu_store_node_certs_revoke(f->st, f->node2, &rec, &n, &err), &err, "revoke");
    assert_int_equal(n, 1);
    assert_int_equal(mu_store_node_cert_revoked(f->st, "0e0f", &err), 1);
    assert_int_equal(mu_store_node_cert_revoked(f->st, "0a1b", &err), 0);
    /* A serial first seen in a report is recorded, and revoked with its node. */
    struct mu_report r = rep("node-1", EPOCH_A, 1, T0);
    struct mu_report_in in = {
        .report = &r, .node_id = f->node, .cert_serial = "7777", .cert_not_after_ms = T0 + 1};
    pt_check(mu_store_reports_commit(f->st, NULL, &in, 1, T0, NULL, NULL, NULL, &err), &err,
             "commit");
    pt_check(mu_store_node_delete(f->st, f->node, &rec, &err), &err, "delete");
    assert_int_equal(mu_store_node_cert_revoked(f->st, "0a1b", &err), 1);
    assert_int_equal(mu_store_node_cert_revoked(f->st, "0c0d", &err), 1);
    assert_int_equal(mu_store_node_cert_revoked(f->st, "7777", &err), 1);
    struct mu_node_cert *certs = NULL;
    size_t nc = 0;
    pt_check(mu_store_node_cert_list(f->st, 0, 100, &certs, &nc, &err), &err, "list");
    assert_int_equal(nc, 4);
    for (size_t i = 0; i < nc; i++)
        assert_true(certs[i].revoked_ms > 0);
    free(certs);
    /* The node's reports went with it. */
    struct mu_telemetry_counts c = counts(f);
    assert_int_equal(c.node_last, 0);
    assert_int_equal(c.agent_epochs, 0);
}

/* ---- durability ----------------------------------------------------------------------------- */

static void test_batch_synced(void **state)
{
    struct fx *f = *state;
    enum { N = 100 };
    struct mu_report r[N];
    struct mu_report_in in[N];
    struct mu_err err = {0};

    for (int i = 0; i < N; i++) {
        r[i] = rep("node-1", EPOCH_A, i + 1, T0);
        in[i] = (struct mu_report_in){.report = &r[i], .node_id = f->node};
    }
    long before = wal_syncs();
    pt_check(mu_store_reports_commit(f->st, NULL, in, N, T0, NULL, NULL, NULL, &err), &err,
             "commit");
    long after = wal_syncs();
    /* Synced before returning, and once for the whole batch, not once per report. */
    assert_true(after > before);
    assert_true(after - before <= 2);
    /* A batch of replays writes nothing, and an empty commit syncs nothing. */
    before = wal_syncs();
    pt_check(mu_store_reports_commit(f->st, NULL, in, 1, T0, NULL, NULL, NULL, &err), &err,
             "replay");
    assert_int_equal(in[0].outcome, MU_REPORT_REPLAY);
    assert_int_equal(wal_syncs(), before);
    /* Reads sync nothing. */
    assert_int_equal(acked_of(f, f->node, EPOCH_A), N);
    assert_int_equal(wal_syncs(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_and_observed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_synced, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(sync_log);
    return rc;
}
