/* store/events.c: the event feed. Appending (the tenant must exist; data defaults to {}),
 * listing in id order by subtree (one index range), after an id, by type prefix, with the
 * limit's default and cap; events follow their tenant when it moves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "provision_test.h"
#include "store/events.h"

struct fx {
    struct mu_test_db db;
    struct mu_store *st;
    int64_t root, a, a1, b;
};

static int setup(void **state)
{
    struct fx *f = mu_xcalloc(1, sizeof *f);
    mu_test_db_init(&f->db, NULL);
    f->st = f->db.st;
    f->root = pt_tenant(f->st, "Syndicat", "syndicat", 0);
    f->a = pt_tenant(f->st, "A", "other", f->root);
    f->a1 = pt_tenant(f->st, "A1", "other", f->a);
    f->b = pt_tenant(f->st, "B", "other", f->root);
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

static int64_t ev(struct fx *f, int64_t tenant, const char *type, const char *data)
{
    struct mu_err err = {0};
    int64_t id = 0;
    pt_check(mu_store_event_append(f->st, tenant, type, "s/1", data, &id, &err), &err, "event");
    return id;
}

static size_t list(struct fx *f, const struct mu_event_filter *flt, int64_t *ids, size_t max)
{
    struct mu_err err = {0};
    struct mu_event *es = NULL;
    size_t n = 0;
    pt_check(mu_store_event_list(f->st, flt, &es, &n, &err), &err, "list");
    for (size_t i = 0; i < n && i < max; i++)
        ids[i] = es[i].id;
    mu_events_free(es, n);
    return n;
}

static void test_append(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    int64_t id = 0;
    assert_int_equal(mu_store_event_append(f->st, 9999, "t.a", "s/1", NULL, &id, &err),
                     MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_event_append(f->st, f->a, "", "s/1", NULL, &id, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_event_append(f->st, f->a, "t.a", NULL, NULL, &id, &err), MU_EINVAL);

    int64_t e1 = ev(f, f->a, "request.approved", NULL);
    int64_t e2 = ev(f, f->a, "vm.ready", "{\"vm\":7}");
    assert_true(e2 > e1);
    struct mu_event_filter flt = {0};
    struct mu_event *es = NULL;
    size_t n = 0;
    pt_check(mu_store_event_list(f->st, &flt, &es, &n, &err), &err, "list");
    assert_int_equal(n, 2);
    assert_string_equal(es[0].type, "request.approved");
    assert_string_equal(es[0].subject, "s/1");
    assert_string_equal(es[0].data, "{}");
    assert_string_equal(es[1].data, "{\"vm\":7}");
    assert_int_equal(es[1].tenant_id, f->a);
    assert_true(es[0].at_ms > 0);
    mu_events_free(es, n);
}

static void test_filters(void **state)
{
    struct fx *f = *state;
    int64_t ids[2000];
    int64_t r1 = ev(f, f->root, "alert.firing", NULL);
    int64_t a1 = ev(f, f->a, "request.approved", NULL);
    int64_t a2 = ev(f, f->a1, "request.ready", NULL);
    int64_t b1 = ev(f, f->b, "request.approved", NULL);
    int64_t a3 = ev(f, f->a1, "vm.ready", NULL);

    struct mu_event_filter flt = {.tenant_id = f->a};
    assert_int_equal(list(f, &flt, ids, 10), 3);
    assert_int_equal(ids[0], a1);
    assert_int_equal(ids[1], a2);
    assert_int_equal(ids[2], a3);
    flt.type_prefix = "request.";
    assert_int_equal(list(f, &flt, ids, 10), 2);
    flt.after_id = a1;
    assert_int_equal(list(f, &flt, ids, 10), 1);
    assert_int_equal(ids[0], a2);
    flt = (struct mu_event_filter){.tenant_id = f->root, .type_prefix = "request.approved"};
    assert_int_equal(list(f, &flt, ids, 10), 2);
    assert_int_equal(ids[0], a1);
    assert_int_equal(ids[1], b1);
    flt = (struct mu_event_filter){.tenant_id = f->b};
    assert_int_equal(list(f, &flt, ids, 10), 1);
    flt = (struct mu_event_filter){.limit = 2};
    assert_int_equal(list(f, &flt, ids, 10), 2);
    assert_int_equal(ids[0], r1);
    flt = (struct mu_event_filter){.tenant_id = 9999};
    struct mu_err err = {0};
    struct mu_event *es = NULL;
    size_t n = 0;
    assert_int_equal(mu_store_event_list(f->st, &flt, &es, &n, &err), MU_ENOTFOUND);

    for (int i = 0; i < 1100; i++)
        ev(f, f->b, "bulk.x", NULL);
    flt = (struct mu_event_filter){0};
    assert_int_equal(list(f, &flt, ids, 2000), 100); /* default */
    flt.limit = 5000;
    assert_int_equal(list(f, &flt, ids, 2000), 1000); /* cap */
}

static void test_follow_move(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    int64_t ids[10];
    int64_t e = ev(f, f->a1, "t.a", NULL);
    struct mu_audit_rec rec = mu_test_rec("tenant.move", f->a1);
    pt_check(mu_store_tenant_move(f->st, f->a1, f->b, &rec, &err), &err, "move");
    struct mu_event_filter flt = {.tenant_id = f->b};
    assert_int_equal(list(f, &flt, ids, 10), 1);
    assert_int_equal(ids[0], e);
    flt.tenant_id = f->a;
    assert_int_equal(list(f, &flt, ids, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_move, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
