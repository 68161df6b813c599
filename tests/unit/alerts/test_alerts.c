/* The alert evaluator with an injected clock (hold times, flapping, resolution, disabled
 * and unknown rules), the policy parser (the shipped file is the documented defaults;
 * mistakes named with line and column), and passes of the monitor over a real store:
 * a node down and a cluster filled past the threshold fire after their hold, each
 * transition as a row, an audit entry and a root-tenant event, and resolve after theirs,
 * also across a restart of the monitor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/alerts.h"
#include "store/events.h"
#include "store/telemetry.h"
#include "../store/store_test.h"
#include "../store/provision_test.h"

/* ---- the evaluator ---------------------------------------------------------------- */

struct sim {
    struct mu_alert_policy pol;
    struct mu_alert_track *tracks;
    size_t n;
    struct mu_alert_transition *tr;
    size_t ntr;
};

static void sim_init(struct sim *s)
{
    memset(s, 0, sizeof *s);
    mu_alert_policy_defaults(&s->pol);
    struct mu_alert_rule *r = &s->pol.rules[MU_ALERT_NODE_DOWN];
    r->for_ms = 3000;
    r->resolve_after_ms = 5000;
}

static void sim_fini(struct sim *s)
{
    free(s->tracks);
    free(s->tr);
}

/* One step at now with the given node_down subjects true (NULL-terminated). */
static size_t step(struct sim *s, int64_t now, const char *const *down, const bool *known)
{
    struct mu_alert_cond c[8];
    size_t nc = 0;
    for (; down && down[nc]; nc++) {
        memset(&c[nc], 0, sizeof c[nc]);
        c[nc].rule = MU_ALERT_NODE_DOWN;
        snprintf(c[nc].subject, sizeof c[nc].subject, "%s", down[nc]);
        snprintf(c[nc].detail, sizeof c[nc].detail, "node %s is down", down[nc]);
    }
    struct mu_alert_track *next;
    size_t nn;
    free(s->tr);
    mu_alert_step(&s->pol, c, nc, known, s->tracks, s->n, now, &next, &nn, &s->tr, &s->ntr);
    free(s->tracks);
    s->tracks = next;
    s->n = nn;
    /* What the monitor does with a firing: the store gives it an id. */
    for (size_t i = 0; i < s->ntr; i++)
        if (s->tr[i].change == MU_ALERT_FIRE)
            s->tracks[s->tr[i].next_index].id = 100 + (int64_t)i;
    return s->ntr;
}

static const char *const A[] = {"node-a", NULL};
static const char *const AB[] = {"node-b", "node-a", "node-a", NULL};

static void test_hold_fire_clear_resolve(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s);
    assert_int_equal(step(&s, 0, A, NULL), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.tracks[0].phase, MU_ALERT_PENDING);
    assert_int_equal(step(&s, 2999, A, NULL), 0); /* held 2.999 s of 3 */
    assert_int_equal(step(&s, 3000, A, NULL), 1);
    assert_int_equal(s.tr[0].change, MU_ALERT_FIRE);
    assert_int_equal(s.tr[0].track.pending_ms, 0);
    assert_int_equal(s.tr[0].track.since_ms, 3000);
    assert_string_equal(s.tr[0].track.subject, "node-a");
    assert_string_equal(s.tr[0].track.detail, "node node-a is down");
    assert_int_equal(s.tracks[0].phase, MU_ALERT_FIRING);
    assert_int_equal(step(&s, 4000, A, NULL), 0);
    /* Clear for less than resolve_after, then back: no transition either way. */
    assert_int_equal(step(&s, 5000, NULL, NULL), 0);
    assert_int_equal(s.tracks[0].phase, MU_ALERT_CLEARING);
    assert_int_equal(step(&s, 9999, NULL, NULL), 0);
    assert_int_equal(step(&s, 10000, A, NULL), 0);
    assert_int_equal(s.tracks[0].phase, MU_ALERT_FIRING);
    /* Clear for good: resolves once 5 s have passed since it cleared. */
    assert_int_equal(step(&s, 11000, NULL, NULL), 0);
    assert_int_equal(step(&s, 15999, NULL, NULL), 0);
    assert_int_equal(step(&s, 16000, NULL, NULL), 1);
    assert_int_equal(s.tr[0].change, MU_ALERT_RESOLVE);
    assert_int_equal(s.tr[0].track.id, 100);
    assert_int_equal(s.n, 0);
    /* The next time starts a new hold. */
    assert_int_equal(step(&s, 17000, A, NULL), 0);
    assert_int_equal(s.tracks[0].pending_ms, 17000);
    sim_fini(&s);
}

static void test_flapping_never_fires(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s);
    /* True for 2 s, clear for 1 s, over and over for a minute: never 3 s in a row. */
    for (int64_t t = 0; t < 60000; t += 1000) {
        bool on = (t / 1000) % 3 != 2;
        assert_int_equal(step(&s, t, on ? A : NULL, NULL), 0);
    }
    sim_fini(&s);
}

static void test_immediate_and_many(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s);
    s.pol.rules[MU_ALERT_NODE_DOWN].for_ms = 0;
    s.pol.rules[MU_ALERT_NODE_DOWN].resolve_after_ms = 0;
    /* Two subjects (one listed twice: counted once) fire at once, sorted. */
    assert_int_equal(step(&s, 100, AB, NULL), 2);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.tracks[0].subject, "node-a");
    assert_string_equal(s.tracks[1].subject, "node-b");
    assert_int_equal(s.tr[0].next_index, 0);
    assert_int_equal(s.tr[1].next_index, 1);
    /* node-b clears: resolves at once; node-a stays. */
    assert_int_equal(step(&s, 200, A, NULL), 1);
    assert_int_equal(s.tr[0].change, MU_ALERT_RESOLVE);
    assert_string_equal(s.tr[0].track.subject, "node-b");
    assert_int_equal(s.n, 1);
    sim_fini(&s);
}

static void test_unknown_and_disabled(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s);
    s.pol.rules[MU_ALERT_NODE_DOWN].for_ms = 0;
    assert_int_equal(step(&s, 0, A, NULL), 1);
    /* The rule's conditions could not be gathered: nothing moves, however long. */
    bool known[MU_ALERT_RULES];
    for (int i = 0; i < MU_ALERT_RULES; i++)
        known[i] = i != MU_ALERT_NODE_DOWN;
    assert_int_equal(step(&s, 100000, NULL, known), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.tracks[0].phase, MU_ALERT_FIRING);
    /* Disabled: a firing alert resolves at once, saying why; a pending one is dropped. */
    s.pol.rules[MU_ALERT_NODE_DOWN].enabled = false;
    assert_int_equal(step(&s, 100001, A, NULL), 1);
    assert_int_equal(s.tr[0].change, MU_ALERT_RESOLVE);
    assert_non_null(strstr(s.tr[0].track.detail, "disabled"));
    assert_int_equal(s.n, 0);
    assert_int_equal(step(&s, 100002, A, NULL), 0);
    assert_int_equal(s.n, 0);
    sim_fini(&s);
}

/* ---- the policy ---------------------------------------------------------------------- */

static void test_policy_shipped(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/policies/alerts.json", MU_SOURCE_DIR);
    struct mu_alert_policy *p = NULL, d;
    struct mu_err err = {0};
    assert_int_equal(mu_alert_policy_load(path, &p, &err), 0);
    mu_alert_policy_defaults(&d);
    assert_memory_equal(p, &d, sizeof d);
    free(p);
    assert_int_equal(mu_alert_rule_from_name("n_plus_1_lost"), MU_ALERT_N_PLUS_1_LOST);
    assert_string_equal(mu_alert_rule_name(MU_ALERT_OPERATIONS_FAILING), "operations_failing");
    assert_null(mu_alert_rule_name(MU_ALERT_RULES));
}

static void expect_refused(const char *text, const char *where, const char *what)
{
    struct mu_alert_policy p;
    struct mu_err err = {0};
    assert_int_equal(mu_alert_policy_parse(text, strlen(text), "alerts.json", &p, &err), MU_EINVAL);
    if (!strstr(err.detail, where) || !strstr(err.detail, what)) {
        fprintf(stderr, "detail: %s\n", err.detail);
        fail();
    }
}

static void test_policy_parse(void **state)
{
    (void)state;
    const char *ok = "{\"version\": 1, \"rules\": {\"node_down\": {\"for_s\": 5, "
                     "\"resolve_after_s\": 7, \"severity\": \"info\"}, \"operations_failing\": "
                     "{\"count\": 2, \"window_s\": 30, \"enabled\": false}}}";
    struct mu_alert_policy p;
    struct mu_err err = {0};
    assert_int_equal(mu_alert_policy_parse(ok, strlen(ok), "alerts.json", &p, &err), 0);
    assert_int_equal(p.rules[MU_ALERT_NODE_DOWN].for_ms, 5000);
    assert_int_equal(p.rules[MU_ALERT_NODE_DOWN].resolve_after_ms, 7000);
    assert_int_equal(p.rules[MU_ALERT_NODE_DOWN].severity, MU_ALERT_INFO);
    assert_int_equal(p.rules[MU_ALERT_OPERATIONS_FAILING].count, 2);
    assert_int_equal(p.rules[MU_ALERT_OPERATIONS_FAILING].window_ms, 30000);
    assert_false(p.rules[MU_ALERT_OPERATIONS_FAILING].enabled);
    assert_int_equal(p.rules[MU_ALERT_ALLOCATION_HIGH].percent, 85); /* default kept */

    expect_refused("{\"version\": 1,\n \"rules\": {\n  \"node_dwn\": {}}}", "line 3, column 3",
                   "unknown rule \"node_dwn\"");
    expect_refused("{\"version\": 1,\n \"rules\": {\"node_down\": {\n \"for\": 1}}}",
                   "line 3, column 2", "unknown key \"for\" in rules.node_down");
    expect_refused("{\"version\": 1, \"rules\": {\"node_down\": {\"for_s\": -1}}}",
                   "line 1, column 49", "for_s must be a whole number");
    expect_refused("{\"version\": 1, \"rules\": {\"allocation_high\": {\"threshold_percent\": "
                   "101}}}",
                   "line 1", "threshold_percent must be an integer from 1 to 100");
    expect_refused("{\"version\": 1, \"rules\": {\"node_down\": {\"severity\": \"loud\"}}}",
                   "line 1", "severity must be");
    expect_refused("{\"version\": 1, \"rules\": {\"node_down\": {\"days\": 3}}}", "line 1",
                   "unknown key \"days\"");
    expect_refused("{\"rules\": {}}", "alerts.json", "\"version\": 1 is missing");
    expect_refused("{\"version\": 1, \"version\": 1}", "alerts.json", "duplicate");
    expect_refused("{\"version\": 1, \"rules\": {\"reports_late\": {\"late_s\": 1.5}}}", "line 1",
                   "late_s must be an integer");
}

/* ---- the monitor over a store ---------------------------------------------------------- */

static struct mu_alert_policy mon_policy;

static void with_policies(void *ctx, mu_alerts_policies_fn fn, void *arg)
{
    (void)ctx;
    struct mu_sched_policy sp;
    mu_sched_policy_defaults(&sp);
    fn(arg, &mon_policy, &sp, NULL);
}

static size_t count_audit(struct mu_store *st, const char *action, const char *target)
{
    struct mu_audit_filter f = {.limit = 1000};
    struct mu_audit_entry *e = NULL;
    size_t n = 0, hits = 0;
    struct mu_err err = {0};
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].action, action) == 0 && strcmp(e[i].target, target) == 0 &&
            strcmp(e[i].actor, "mutualisd") == 0)
            hits++;
    mu_audit_entries_free(e, n);
    return hits;
}

static size_t count_events(struct mu_store *st, int64_t tenant, const char *type,
                           const char *subject)
{
    struct mu_event_filter f = {.tenant_id = tenant, .limit = 1000};
    struct mu_event *e = NULL;
    size_t n = 0, hits = 0;
    struct mu_err err = {0};
    assert_int_equal(mu_store_event_list(st, &f, &e, &n, &err), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].type, type) == 0 && strcmp(e[i].subject, subject) == 0 &&
            e[i].tenant_id == tenant && strstr(e[i].data, "\"severity\""))
            hits++;
    mu_events_free(e, n);
    return hits;
}

static struct mu_alert *firing(struct mu_store *st, const char *state, size_t *ret_n)
{
    struct mu_alert_filter f = {.state = state};
    struct mu_alert *a = NULL;
    struct mu_err err = {0};
    assert_int_equal(mu_store_alert_list(st, &f, &a, ret_n, &err), 0);
    return a;
}

static void test_monitor_store(void **state)
{
    (void)state;
    struct mu_test_db db;
    mu_test_db_init(&db, NULL);
    struct mu_store *st = db.st;
    struct mu_err err = {0};
    int64_t root = pt_tenant(st, "Syndicat", "syndicat", 0);
    int64_t node = pt_node(st, "node-a");

    mu_alert_policy_defaults(&mon_policy);
    for (int r = 0; r < MU_ALERT_RULES; r++)
        mon_policy.rules[r].enabled = false;
    mon_policy.rules[MU_ALERT_NODE_DOWN] = (struct mu_alert_rule){
        .enabled = true, .severity = MU_ALERT_CRITICAL, .for_ms = 1000, .resolve_after_ms = 2000};
    mon_policy.rules[MU_ALERT_ALLOCATION_HIGH] =
        (struct mu_alert_rule){.enabled = true, .severity = MU_ALERT_WARNING, .percent = 85};
    struct mu_alerts_opts o = {.store = st, .with_policies = with_policies, .no_thread = true};
    struct mu_alerts *a = mu_alerts_start(&o, &err);
    assert_non_null(a);

    int64_t t0 = mu_now_ms();
    assert_int_equal(mu_alerts_pass(a, t0, &err), 0);
    assert_int_equal(mu_store_node_set_health(st, node, "down", &err), 0);
    assert_int_equal(mu_alerts_pass(a, t0 + 100, &err), 0);  /* hold starts */
    assert_int_equal(mu_alerts_pass(a, t0 + 1099, &err), 0); /* not yet */
    assert_int_equal(mu_alerts_pass(a, t0 + 1100, &err), 1);
    size_t n = 0;
    struct mu_alert *rows = firing(st, "firing", &n);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].rule, "node_down");
    assert_string_equal(rows[0].subject, "node-a");
    assert_string_equal(rows[0].severity, "critical");
    assert_int_equal(rows[0].pending_ms, t0 + 100);
    assert_int_equal(rows[0].since_ms, t0 + 1100);
    assert_non_null(strstr(rows[0].detail, "node node-a is down"));
    mu_alerts_free(rows, n);
    assert_int_equal(count_audit(st, "alert.fire", "alert/node_down/node-a"), 1);
    assert_int_equal(count_events(st, root, "alert.firing", "alert/node_down/node-a"), 1);

    /* Allocation past 85 % of the node's memory (262144 MiB - 1024 reserved) with no hold. */
    int64_t tenant = pt_tenant(st, "Commune", "commune", root);
    int64_t image = pt_image(st, "img");
    struct pt_vm v = {.tenant = tenant,
                      .node = node,
                      .vcpus = 2,
                      .ram_mib = 230000,
                      .disk_gib = 10,
                      .image = image,
                      .allow_unknown = true};
    int64_t vm = 0;
    assert_int_equal(mu_store_node_set_health(st, node, "up", &err), 0);
    pt_check(pt_admit(st, &v, "big", &vm, NULL, &err), &err, "admit");
    assert_int_equal(mu_alerts_pass(a, t0 + 2000, &err), 1); /* node clearing, memory fires */
    rows = firing(st, "firing", &n);
    assert_int_equal(n, 2);
    assert_string_equal(rows[1].rule, "allocation_high");
    assert_string_equal(rows[1].subject, "ram_mib");
    assert_non_null(strstr(rows[1].detail, "88%"));
    mu_alerts_free(rows, n);

    /* A restart of the monitor keeps the firing alerts (and their clearing starts over). */
    mu_alerts_stop(a);
    a = mu_alerts_start(&o, &err);
    assert_non_null(a);
    assert_int_equal(mu_alerts_pass(a, t0 + 3000, &err), 0);
    assert_int_equal(mu_alerts_pass(a, t0 + 4999, &err), 0);
    assert_int_equal(mu_alerts_pass(a, t0 + 5000, &err), 1); /* 2 s clear since 3000 */
    rows = firing(st, "resolved", &n);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].subject, "node-a");
    assert_int_equal(rows[0].resolved_ms, t0 + 5000);
    mu_alerts_free(rows, n);
    assert_int_equal(count_audit(st, "alert.resolve", "alert/node_down/node-a"), 1);
    assert_int_equal(count_events(st, root, "alert.resolved", "alert/node_down/node-a"), 1);
    rows = firing(st, "firing", &n);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].last_eval_ms, t0 + 5000);
    mu_alerts_free(rows, n);

    /* The VM gone: memory resolves at once (resolve_after 0). */
    assert_int_equal(mu_store_vm_purge(st, vm, &err), 0);
    assert_int_equal(mu_alerts_pass(a, t0 + 6000, &err), 1);
    rows = firing(st, "firing", &n);
    assert_int_equal(n, 0);
    mu_alerts_free(rows, n);
    rows = firing(st, NULL, &n);
    assert_int_equal(n, 2);
    mu_alerts_free(rows, n);
    mu_alerts_stop(a);
    mu_test_db_fini(&db);
}

/* The other rules' conditions: N+1 from the capacity monitor (unknown until computed),
 * failed operations within the window, certificates near expiry, a tenant above its
 * quota's threshold; all with no hold, so that each pass says what holds at its time. */
static int n1_state; /* 0: not computed, 1: ok, 2: lost */

static int n1_cb(void *ctx, bool *ret_ok, char *summary, size_t len)
{
    (void)ctx;
    if (n1_state == 0)
        return 0;
    *ret_ok = n1_state == 1;
    snprintf(summary, len, "%s", n1_state == 1 ? "holds" : "short by 4 GiB of memory if n1 fails");
    return 1;
}

static bool has(struct mu_store *st, const char *rule, const char *subject, const char *detail)
{
    size_t n = 0;
    struct mu_alert *a = firing(st, "firing", &n);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].rule, rule) == 0 && strcmp(a[i].subject, subject) == 0 &&
            (!detail || strstr(a[i].detail, detail)))
            found = true;
    if (!found && detail)
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "firing: %s %s %s\n", a[i].rule, a[i].subject, a[i].detail);
    mu_alerts_free(a, n);
    return found;
}

static void test_monitor_rules(void **state)
{
    (void)state;
    struct mu_test_db db;
    mu_test_db_init(&db, NULL);
    struct mu_store *st = db.st;
    struct mu_err err = {0};
    int64_t root = pt_tenant(st, "Syndicat", "syndicat", 0);
    int64_t tenant = pt_tenant(st, "Commune", "commune", root);
    int64_t node = pt_node(st, "node-b");
    int64_t image = pt_image(st, "img");

    mu_alert_policy_defaults(&mon_policy);
    for (int r = 0; r < MU_ALERT_RULES; r++) {
        mon_policy.rules[r].for_ms = 0;
        mon_policy.rules[r].resolve_after_ms = 0;
    }
    mon_policy.rules[MU_ALERT_OPERATIONS_FAILING].count = 2;
    mon_policy.rules[MU_ALERT_OPERATIONS_FAILING].window_ms = 60000;
    n1_state = 0;
    struct mu_alerts_opts o = {
        .store = st, .with_policies = with_policies, .n_plus_1 = n1_cb, .no_thread = true};
    struct mu_alerts *a = mu_alerts_start(&o, &err);
    assert_non_null(a);
    int64_t t0 = mu_now_ms();
    assert_int_equal(mu_alerts_pass(a, t0, &err), 0);

    /* N+1: nothing while not computed, fires when lost, resolves when it holds again. */
    n1_state = 2;
    assert_int_equal(mu_alerts_pass(a, t0 + 10, &err), 1);
    assert_true(has(st, "n_plus_1_lost", "cluster", "short by 4 GiB"));
    n1_state = 0; /* unknown again: stays firing */
    assert_int_equal(mu_alerts_pass(a, t0 + 20, &err), 0);
    n1_state = 1;
    assert_int_equal(mu_alerts_pass(a, t0 + 30, &err), 1);
    assert_false(has(st, "n_plus_1_lost", "cluster", NULL));

    /* Two failed operations within the minute; the window then slides past them. */
    int64_t vm1 = 0, vm2 = 0, op1 = 0, op2 = 0;
    pt_quota(st, tenant, 4, 8192, 100, 10);
    struct pt_vm v = {.tenant = tenant,
                      .node = node,
                      .vcpus = 2,
                      .ram_mib = 1024,
                      .disk_gib = 10,
                      .image = image,
                      .allow_unknown = true};
    pt_check(pt_admit(st, &v, "one", &vm1, &op1, &err), &err, "admit");
    v.vcpus = 2; /* 4 of 4 vCPU: above 90 % of the quota */
    pt_check(pt_admit(st, &v, "two", &vm2, &op2, &err), &err, "admit");
    assert_int_equal(mu_store_op_finish(st, op1, false, "define: boom", &err), 0);
    int64_t t1 = mu_now_ms();
    assert_int_equal(mu_alerts_pass(a, t1, &err), 1); /* the tenant only: 1 failure < 2 */
    char subject[32];
    snprintf(subject, sizeof subject, "tenant-%lld", (long long)tenant);
    assert_true(has(st, "tenant_quota_high", subject, "vCPU 4 of 4 (100%)"));
    assert_false(has(st, "operations_failing", "cluster", NULL));
    assert_int_equal(mu_store_op_finish(st, op2, false, "define: boom", &err), 0);
    assert_int_equal(mu_alerts_pass(a, t1 + 10, &err), 1);
    assert_true(has(st, "operations_failing", "cluster", "2 operations failed in the last 60 s"));
    int64_t t2 = mu_now_ms() + 61000; /* time only moves on from here */
    assert_int_equal(mu_alerts_pass(a, t2, &err), 1);
    assert_false(has(st, "operations_failing", "cluster", NULL));

    /* A certificate 20 days from expiry: not yet (14 days); 7 days later, yes. */
    int64_t day = 86400000;
    assert_int_equal(mu_store_node_cert_record(st, node, "0a1b", t2 + 20 * day, &err), 0);
    assert_int_equal(mu_alerts_pass(a, t2 + 100, &err), 0);
    assert_int_equal(mu_alerts_pass(a, t2 + 7 * day, &err), 1);
    assert_true(has(st, "cert_expiring", "node-b", "certificate 0a1b expires"));

    /* The tenant's quota raised: its alert resolves. */
    pt_quota(st, tenant, 100, 8192, 100, 10);
    assert_int_equal(mu_alerts_pass(a, t2 + 7 * day + 10, &err), 1);
    assert_false(has(st, "tenant_quota_high", subject, NULL));
    size_t n = 0;
    struct mu_alert *all = firing(st, "resolved", &n);
    assert_int_equal(n, 3); /* N+1, operations, the tenant */
    assert_string_equal(all[1].rule, "tenant_quota_high");
    assert_int_equal(all[1].resolved_ms, t2 + 7 * day + 10);
    mu_alerts_free(all, n);
    mu_alerts_stop(a);
    mu_test_db_fini(&db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_fire_clear_resolve), cmocka_unit_test(test_flapping_never_fires),
        cmocka_unit_test(test_immediate_and_many),      cmocka_unit_test(test_unknown_and_disabled),
        cmocka_unit_test(test_policy_shipped),          cmocka_unit_test(test_policy_parse),
        cmocka_unit_test(test_monitor_store),           cmocka_unit_test(test_monitor_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
