/* store/webhooks.c, the dispatcher's queue in a real SQLite file: settings (audited, secret
 * kept but never listed), queueing by subtree and type prefix with the cursor (each event
 * exactly once, in batches, never skipped: a disabled webhook catches up), due deliveries,
 * attempt records (retry, delivered, given up), the queue surviving a reopen (restart),
 * deletion, tenant moves, pruning, and the node address references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../store/provision_test.h"
#include "notify/notify.h"
#include "store/events.h"
#include "store/network.h"
#include "store/webhooks.h"

#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DAY    ((int64_t)24 * 3600 * 1000)

struct fx {
    struct mu_test_db db;
    struct mu_store *st;
    int64_t root, epci, c1, c2;
};

static int setup(void **state)
{
    struct fx *f = mu_xcalloc(1, sizeof *f);
    mu_test_db_init(&f->db, NULL);
    f->st = f->db.st;
    f->root = pt_tenant(f->st, "Syndicat", "syndicat", 0);
    f->epci = pt_tenant(f->st, "CC", "other", f->root);
    f->c1 = pt_tenant(f->st, "Commune 1", "other", f->epci);
    f->c2 = pt_tenant(f->st, "Commune 2", "other", f->root);
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

static int64_t ev(struct fx *f, int64_t tenant, const char *type)
{
    struct mu_err err = {0};
    int64_t id = 0;
    pt_check(mu_store_event_append(f->st, tenant, type, "x/1", "{\"k\":1}", &id, &err), &err,
             "event");
    return id;
}

static void put(struct fx *f, int64_t tenant, const char *types, bool enabled, const char *secret)
{
    struct mu_err err = {0};
    struct mu_audit_rec rec = mu_test_rec("webhook.update", tenant);
    struct mu_webhook_set s = {.tenant_id = tenant,
                               .url = "https://203.0.113.10/hook?token=abc",
                               .enabled = enabled,
                               .types_json = types,
                               .secret = secret};
    pt_check(mu_store_webhook_put(f->st, &s, &rec, NULL, &err), &err, "webhook put");
}

static size_t enqueue(struct fx *f, int64_t now, size_t max)
{
    struct mu_err err = {0};
    size_t n = 0;
    pt_check(mu_store_webhook_enqueue(f->st, now, DAY, max, &n, &err), &err, "enqueue");
    return n;
}

/* Event ids due for tenant's webhook at now, into ids (returns how many). */
static size_t due_ids(struct fx *f, int64_t tenant, int64_t now, int64_t *ids, size_t max,
                      int64_t *ret_delivery)
{
    struct mu_err err = {0};
    struct mu_webhook_job *jobs = NULL;
    size_t n = 0, k = 0;
    pt_check(mu_store_webhook_due(f->st, now, 1000, &jobs, &n, &err), &err, "due");
    for (size_t i = 0; i < n; i++)
        if (jobs[i].tenant_id == tenant && k < max) {
            if (k == 0 && ret_delivery)
                *ret_delivery = jobs[i].delivery_id;
            assert_string_equal(jobs[i].secret, SECRET);
            assert_non_null(jobs[i].event.type);
            assert_string_equal(jobs[i].event.data, "{\"k\":1}");
            ids[k++] = jobs[i].event.id;
        }
    mu_webhook_jobs_free(jobs, n);
    return k;
}

static void test_settings(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    struct mu_webhook w;
    struct mu_audit_rec rec = mu_test_rec("webhook.update", f->c1);

    assert_int_equal(mu_store_webhook_get(f->st, f->c1, &w, &err), MU_ENOTFOUND);
    struct mu_webhook_set s = {.tenant_id = f->c1, .url = "https://x.example/", .types_json = "[]"};
    mu_err_clear(&err);
    assert_int_equal(mu_store_webhook_put(f->st, &s, &rec, NULL, &err), MU_EINVAL); /* no secret */
    s.tenant_id = 9999;
    s.secret = SECRET;
    mu_err_clear(&err);
    assert_int_equal(mu_store_webhook_put(f->st, &s, &rec, NULL, &err), MU_ENOTFOUND);

    int64_t before = ev(f, f->c1, "request.created");
    bool created = false;
    s.tenant_id = f->c1;
    mu_err_clear(&err);
    pt_check(mu_store_webhook_put(f->st, &s, &rec, &created, &err), &err, "put");
    assert_true(created);
    pt_check(mu_store_webhook_get(f->st, f->c1, &w, &err), &err, "get");
    assert_string_equal(w.url, "https://x.example/");
    assert_int_equal(w.cursor, before); /* starts at the end of the feed */
    assert_int_equal(w.pending, 0);
    assert_null(w.last_outcome);
    int64_t secret_ms = w.secret_ms;
    mu_webhook_clear(&w);

    /* Replace without a secret: the secret stays (secret_ms unchanged). */
    s.url = "https://y.example/";
    s.secret = NULL;
    s.enabled = true;
    pt_check(mu_store_webhook_put(f->st, &s, &rec, &created, &err), &err, "put 2");
    assert_false(created);
    pt_check(mu_store_webhook_get(f->st, f->c1, &w, &err), &err, "get");
    assert_string_equal(w.url, "https://y.example/");
    assert_true(w.enabled);
    assert_int_equal(w.secret_ms, secret_ms);
    mu_webhook_clear(&w);

    /* Audited, with the origin only (no path, no secret). */
    struct mu_audit_filter af = {.limit = 1000};
    struct mu_audit_entry *es = NULL;
    size_t n = 0;
    pt_check(mu_store_audit_list(f->st, &af, &es, &n, &err), &err, "audit");
    size_t seen = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(es[i].action, "webhook.update") == 0) {
            seen++;
            char want[64];
            snprintf(want, sizeof want, "tenant/%" PRId64 "/webhook", f->c1);
            assert_string_equal(es[i].target, want); /* set by the store */
            assert_null(strstr(es[i].detail, SECRET));
            assert_non_null(strstr(es[i].detail, "https://"));
        }
    assert_int_equal(seen, 2);
    mu_audit_entries_free(es, n);

    rec.action = "webhook.delete";
    pt_check(mu_store_webhook_delete(f->st, f->c1, &rec, &err), &err, "delete");
    assert_int_equal(mu_store_webhook_get(f->st, f->c1, &w, &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_webhook_delete(f->st, f->c1, &rec, &err), MU_ENOTFOUND);
}

static void test_queue_scope_and_types(void **state)
{
    struct fx *f = *state;
    int64_t ids[32];
    int64_t old = ev(f, f->epci, "request.created"); /* before the webhook: never queued */
    put(f, f->epci, "[\"request.\", \"alert.firing\"]", true, SECRET);
    put(f, f->root, "[]", true, SECRET);
    int64_t a = ev(f, f->epci, "request.approved");
    int64_t b = ev(f, f->c1, "request.ready");    /* below the EPCI: its subtree */
    int64_t c = ev(f, f->c2, "request.approved"); /* a sibling: not the EPCI's */
    int64_t d = ev(f, f->c1, "vm.ready");         /* type filtered out */
    int64_t e = ev(f, f->epci, "alert.firing");   /* second prefix */
    int64_t g = ev(f, f->epci, "alert.resolved"); /* "alert.firing" is not its prefix */
    assert_int_equal(enqueue(f, 1000, 0), 3 + 6); /* EPCI: a b e; root: all six */
    assert_int_equal(enqueue(f, 1000, 0), 0);     /* queued once */
    size_t n = due_ids(f, f->epci, 1000, ids, 32, NULL);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], a);
    assert_int_equal(ids[1], b);
    assert_int_equal(ids[2], e);
    n = due_ids(f, f->root, 1000, ids, 32, NULL);
    assert_int_equal(n, 6);
    int64_t want[] = {a, b, c, d, e, g};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(ids[i], want[i]);
    assert_true(old < a);
    assert_int_equal(due_ids(f, f->epci, 999, ids, 32, NULL), 0); /* not due before now */
}

static void test_batches_disabled_catch_up(void **state)
{
    struct fx *f = *state;
    int64_t ids[32];
    put(f, f->c1, "[]", true, SECRET);
    int64_t first = ev(f, f->c1, "t.a");
    for (int i = 0; i < 4; i++)
        ev(f, f->c1, "t.a");
    /* At most 2 per call: three calls, each event once. */
    assert_int_equal(enqueue(f, 1000, 2), 2);
    assert_int_equal(enqueue(f, 1000, 2), 2);
    assert_int_equal(enqueue(f, 1000, 2), 1);
    assert_int_equal(enqueue(f, 1000, 2), 0);
    assert_int_equal(due_ids(f, f->c1, 1000, ids, 32, NULL), 5);
    assert_int_equal(ids[0], first);
    assert_int_equal(ids[4], first + 4);

    /* Disabled: nothing queued, nothing due; enabled again: catches up, nothing skipped. */
    put(f, f->c1, "[]", false, NULL);
    int64_t x = ev(f, f->c1, "t.b");
    int64_t y = ev(f, f->c1, "t.b");
    assert_int_equal(enqueue(f, 2000, 0), 0);
    assert_int_equal(due_ids(f, f->c1, 2000, ids, 32, NULL), 0);
    put(f, f->c1, "[]", true, NULL);
    assert_int_equal(enqueue(f, 2000, 0), 2);
    assert_int_equal(due_ids(f, f->c1, 2000, ids, 32, NULL), 7);
    assert_int_equal(ids[5], x);
    assert_int_equal(ids[6], y);
}

static void record(struct fx *f, int64_t delivery, enum mu_webhook_outcome o, int64_t at,
                   int64_t status, const char *error, int64_t next)
{
    struct mu_err err = {0};
    struct mu_webhook_attempt a = {.delivery_id = delivery,
                                   .at_ms = at,
                                   .duration_ms = 5,
                                   .outcome = o,
                                   .http_status = status,
                                   .error = error,
                                   .next_ms = next};
    pt_check(mu_store_webhook_record(f->st, &a, &err), &err, "record");
}

static void test_attempts_and_restart(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    int64_t ids[8], d1 = 0, d2 = 0, next = 0;
    put(f, f->c1, "[]", true, SECRET);
    int64_t e1 = ev(f, f->c1, "t.a");
    int64_t e2 = ev(f, f->c1, "t.a");
    enqueue(f, 1000, 0);
    due_ids(f, f->c1, 1000, ids, 8, &d1);
    d2 = d1 + 1;

    record(f, d1, MU_WEBHOOK_RETRY, 1000, 500, "answered HTTP 500", 6000);
    assert_int_equal(due_ids(f, f->c1, 1000, ids, 8, NULL), 1); /* e2 only */
    assert_int_equal(ids[0], e2);
    pt_check(mu_store_webhook_next_due(f->st, &next, &err), &err, "next due");
    assert_int_equal(next, 1000); /* e2 is still due */
    record(f, d2, MU_WEBHOOK_DELIVERED, 1001, 200, NULL, 0);
    pt_check(mu_store_webhook_next_due(f->st, &next, &err), &err, "next due");
    assert_int_equal(next, 6000);

    struct mu_webhook w;
    pt_check(mu_store_webhook_get(f->st, f->c1, &w, &err), &err, "get");
    assert_string_equal(w.last_outcome, "delivered");
    assert_int_equal(w.consecutive_failures, 0);
    assert_int_equal(w.delivered, 1);
    assert_int_equal(w.pending, 1);
    mu_webhook_clear(&w);

    /* Restart: the queue is in the file. */
    mu_store_close(f->db.st);
    f->db.st = f->st = mu_test_open_path(f->db.path, NULL);
    assert_non_null(f->st);
    assert_int_equal(due_ids(f, f->c1, 5999, ids, 8, NULL), 0);
    assert_int_equal(due_ids(f, f->c1, 6000, ids, 8, NULL), 1);
    assert_int_equal(ids[0], e1);

    record(f, d1, MU_WEBHOOK_RETRY, 6000, 0, "Couldn't connect to server", 9000);
    record(f, d1, MU_WEBHOOK_FAILED, 9000, 302, "answered HTTP 302, a redirect", 0);
    assert_int_equal(due_ids(f, f->c1, INT64_MAX / 2, ids, 8, NULL), 0);
    record(f, d1, MU_WEBHOOK_RETRY, 9500, 500, "late", 99999); /* not pending: ignored */
    pt_check(mu_store_webhook_get(f->st, f->c1, &w, &err), &err, "get");
    assert_string_equal(w.last_outcome, "failed");
    assert_int_equal(w.last_http_status, 302);
    assert_int_equal(w.failed, 1);
    assert_int_equal(w.delivered, 1);
    assert_int_equal(w.consecutive_failures, 2);
    assert_int_equal(w.pending, 0);
    assert_int_equal(w.last_event_id, e1);
    mu_webhook_clear(&w);

    struct mu_webhook_attempt_row *rows = NULL;
    size_t n = 0;
    pt_check(mu_store_webhook_attempts(f->st, f->c1, 10, &rows, &n, &err), &err, "attempts");
    assert_int_equal(n, 4); /* newest first */
    assert_string_equal(rows[0].outcome, "failed");
    assert_int_equal(rows[0].event_id, e1);
    assert_string_equal(rows[1].outcome, "retry");
    assert_string_equal(rows[2].outcome, "delivered");
    assert_int_equal(rows[2].event_id, e2);
    assert_string_equal(rows[3].outcome, "retry");
    assert_int_equal(rows[3].http_status, 500);
    mu_webhook_attempt_rows_free(rows, n);

    /* Pruning keeps what is recent, drops what is old and finished. */
    pt_check(mu_store_webhook_prune(f->st, 6001, &err), &err, "prune");
    pt_check(mu_store_webhook_attempts(f->st, f->c1, 10, &rows, &n, &err), &err, "attempts");
    assert_int_equal(n, 1); /* attempts before 6001 are gone (and e2's finished delivery) */
    assert_int_equal(rows[0].at_ms, 9000);
    mu_webhook_attempt_rows_free(rows, n);
}

static void test_delete_and_move(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    int64_t ids[8], d = 0;
    struct mu_audit_rec rec = mu_test_rec("webhook.update", f->c1);
    put(f, f->c1, "[]", true, SECRET);
    ev(f, f->c1, "t.a");
    enqueue(f, 1000, 0);
    assert_int_equal(due_ids(f, f->c1, 1000, ids, 8, &d), 1);
    pt_check(mu_store_webhook_delete(f->st, f->c1, &rec, &err), &err, "delete");
    assert_int_equal(due_ids(f, f->c1, 1000, ids, 8, NULL), 0);
    record(f, d, MU_WEBHOOK_DELIVERED, 1000, 200, NULL, 0); /* gone meanwhile: fine */

    /* A commune moved under the EPCI: its later events reach the EPCI's webhook. */
    put(f, f->epci, "[]", true, SECRET);
    int64_t before = ev(f, f->c2, "t.a");
    struct mu_audit_rec mv = mu_test_rec("tenant.move", f->c2);
    pt_check(mu_store_tenant_move(f->st, f->c2, f->epci, &mv, &err), &err, "move");
    int64_t after = ev(f, f->c2, "t.b");
    enqueue(f, 2000, 0);
    size_t n = due_ids(f, f->epci, 2000, ids, 8, NULL);
    /* The event of c2 appended before the move was queued after it: events follow moves. */
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], before);
    assert_int_equal(ids[1], after);
}

static void test_node_refs(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    struct mu_node n = {.name = (char *)"far",
                        .uri = (char *)"qemu+ssh://root@198.51.100.7/system",
                        .reserved_mem_mib = -1};
    struct mu_audit_rec rec = mu_test_rec("node.create", 0);
    int64_t id = 0;
    pt_node(f->st, "local");
    pt_check(mu_store_node_insert(f->st, &n, &rec, &id, &err), &err, "node");
    struct mu_node_addr_ref *refs = NULL;
    size_t cnt = 0;
    pt_check(mu_store_node_addr_refs(f->st, &refs, &cnt, &err), &err, "refs");
    assert_int_equal(cnt, 2);
    assert_string_equal(refs[0].uri, "test:///default");
    assert_string_equal(refs[1].name, "far");
    assert_string_equal(refs[1].uri, "qemu+ssh://root@198.51.100.7/system");
    mu_node_addr_refs_free(refs, cnt);

    /* The underlay address (networks work) is a node address too. */
    struct mu_audit_rec urec = mu_test_rec("node.update", 0);
    pt_check(mu_store_node_set_underlay(f->st, id, "198.51.100.8", &urec, &err), &err, "underlay");
    pt_check(mu_store_node_addr_refs(f->st, &refs, &cnt, &err), &err, "refs");
    assert_string_equal(refs[1].underlay, "198.51.100.8");
    mu_node_addr_refs_free(refs, cnt);
    struct mu_notify_nodes nodes = {0};
    pt_check(mu_notify_nodes_load(f->st, &nodes, &err), &err, "nodes");
    assert_int_equal(nodes.n, 2); /* far: URI host and underlay; local: none */
    mu_notify_nodes_clear(&nodes);
    assert_int_equal(mu_notify_url_check("https://198.51.100.8/h", NULL, NULL, f->st, NULL, &err),
                     MU_EINVAL);
    assert_non_null(strstr(err.detail, "node far"));
    mu_err_clear(&err);
    assert_int_equal(mu_notify_url_check("https://198.51.100.7/h", NULL, NULL, f->st, NULL, &err),
                     MU_EINVAL);
    assert_non_null(strstr(err.detail, "node far"));
    mu_err_clear(&err);
    pt_check(mu_notify_url_check("https://198.51.100.9/h", NULL, NULL, f->st, NULL, &err), &err,
             "a public address that is no node's");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_scope_and_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches_disabled_catch_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attempts_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_refs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
