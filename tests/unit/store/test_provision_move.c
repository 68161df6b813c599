/* Tenant moves carry VMs along: the VM rows' tenant_path follows the subtree, and the
 * subtree's allocation leaves the old ancestors (those not shared with the new place) and
 * joins the new ones, in the move's transaction. Checked through the counters, the lists,
 * the quotas that bind after the move, the COG import's moves, and a recount that must
 * find nothing to correct after each step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "provision_test.h"

struct fixture {
    struct mu_test_db db;
    struct mu_store *st;
    int64_t s1, s2, e1, e2, c1, c2, node, img;
};

static int setup(void **state)
{
    struct fixture *f = mu_xcalloc(1, sizeof *f);

    mu_test_db_init(&f->db, NULL);
    f->st = f->db.st;
    f->s1 = pt_tenant(f->st, "Syndicat 1", "syndicat", 0);
    f->s2 = pt_tenant(f->st, "Syndicat 2", "syndicat", 0);
    f->e1 = pt_tenant(f->st, "EPCI 1", "epci", f->s1);
    f->e2 = pt_tenant(f->st, "EPCI 2", "epci", f->s1);
    f->c1 = pt_tenant(f->st, "Commune 1", "commune", f->e1);
    f->c2 = pt_tenant(f->st, "Commune 2", "commune", f->e1);
    f->node = pt_node(f->st, "n1");
    f->img = pt_image(f->st, "debian");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mu_test_db_fini(&f->db);
    free(f);
    return 0;
}

static void admit(struct fixture *f, int64_t tenant, const char *name, int64_t vcpus, int64_t ram,
                  int64_t disk)
{
    struct pt_vm v = {.tenant = tenant,
                      .node = f->node,
                      .vcpus = vcpus,
                      .ram_mib = ram,
                      .disk_gib = disk,
                      .image = f->img};
    struct mu_err err = {0};

    pt_check(pt_admit(f->st, &v, name, NULL, NULL, &err), &err, name);
}

static void move(struct fixture *f, int64_t id, int64_t parent)
{
    struct mu_audit_rec rec = mu_test_rec("tenant.move", id);
    struct mu_err err = {0};

    pt_check(mu_store_tenant_move(f->st, id, parent, &rec, &err), &err, "move");
}

static size_t count_in(struct fixture *f, int64_t tenant)
{
    struct mu_vm_filter flt = {.tenant_id = tenant, .limit = 1000};
    struct mu_vm *l = NULL;
    struct mu_err err = {0};
    size_t n = 0;

    pt_check(mu_store_vm_list(f->st, &flt, &l, &n, &err), &err, "list");
    mu_vms_free(l, n);
    return n;
}

static void assert_recount_clean(struct fixture *f)
{
    char detail[512];

    if (pt_recount(f->st, detail, sizeof detail) != 0)
        fail_msg("recount after a move: %s", detail);
}

static void test_moves_adjust_counters(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("tenant.move", 0);
    struct mu_err err = {0};

    admit(f, f->c1, "c1-a", 2, 2048, 20);
    admit(f, f->c1, "c1-b", 2, 2048, 20);
    admit(f, f->c2, "c2-a", 1, 1024, 10);
    admit(f, f->e2, "e2-a", 4, 4096, 40);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e1), 5, 5120, 50, 3);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e2), 4, 4096, 40, 1);
    PT_ASSERT_USAGE(pt_usage(f->st, f->s1), 9, 9216, 90, 4);
    assert_recount_clean(f);

    /* Commune 1 changes EPCI inside the same syndicat: S1 is shared and does not move. */
    move(f, f->c1, f->e2);
    PT_ASSERT_USAGE(pt_usage(f->st, f->c1), 4, 4096, 40, 2);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e1), 1, 1024, 10, 1);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e2), 8, 8192, 80, 3);
    PT_ASSERT_USAGE(pt_usage(f->st, f->s1), 9, 9216, 90, 4);
    assert_int_equal(count_in(f, f->e2), 3);
    assert_int_equal(count_in(f, f->e1), 1);
    assert_recount_clean(f);

    /* The new EPCI's quota now binds admissions in Commune 1. */
    pt_quota(f->st, f->e2, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, 3);
    struct pt_vm v = {.tenant = f->c1, .node = f->node, .vcpus = 1, .ram_mib = 64, .image = f->img};
    assert_int_equal(pt_admit(f->st, &v, "c1-c", NULL, NULL, &err), MU_EQUOTA);
    assert_string_equal(err.detail, "EPCI 2: VM count 3 of 3");
    mu_err_clear(&err);
    v.tenant = f->c2;
    assert_int_equal(pt_admit(f->st, &v, "c2-b", NULL, NULL, &err), 0);

    /* EPCI 1 (with Commune 2, now 2 VMs) moves to the other syndicat. */
    move(f, f->e1, f->s2);
    PT_ASSERT_USAGE(pt_usage(f->st, f->s1), 8, 8192, 80, 3);
    PT_ASSERT_USAGE(pt_usage(f->st, f->s2), 2, 1088, 10, 2);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e1), 2, 1088, 10, 2);
    PT_ASSERT_USAGE(pt_usage(f->st, f->c2), 2, 1088, 10, 2);
    assert_int_equal(count_in(f, f->s2), 2);
    assert_recount_clean(f);

    /* Commune 1 becomes a root: both its old ancestors lose it. */
    move(f, f->c1, 0);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e2), 4, 4096, 40, 1);
    PT_ASSERT_USAGE(pt_usage(f->st, f->s1), 4, 4096, 40, 1);
    PT_ASSERT_USAGE(pt_usage(f->st, f->c1), 4, 4096, 40, 2);
    assert_int_equal(count_in(f, f->c1), 2);
    assert_recount_clean(f);

    /* ...and back under EPCI 1, deeper than before (S2 > E1 > C1). */
    move(f, f->c1, f->e1);
    PT_ASSERT_USAGE(pt_usage(f->st, f->s2), 6, 5184, 50, 4);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e1), 6, 5184, 50, 4);
    assert_int_equal(count_in(f, f->s2), 4);
    assert_recount_clean(f);

    /* A refused move (a cycle) changes nothing. */
    assert_int_equal(mu_store_tenant_move(f->st, f->s2, f->c1, &rec, &err), MU_ECONFLICT);
    mu_err_clear(&err);
    PT_ASSERT_USAGE(pt_usage(f->st, f->s2), 6, 5184, 50, 4);
    assert_recount_clean(f);

    /* Deleting VMs after moves returns every counter to zero. */
    struct mu_vm_filter all = {.limit = 1000};
    struct mu_vm *l = NULL;
    size_t n = 0;
    pt_check(mu_store_vm_list(f->st, &all, &l, &n, &err), &err, "list");
    for (size_t i = 0; i < n; i++)
        pt_check(mu_store_vm_purge(f->st, l[i].id, &err), &err, "purge");
    mu_vms_free(l, n);
    PT_ASSERT_USAGE(pt_usage(f->st, f->s1), 0, 0, 0, 0);
    PT_ASSERT_USAGE(pt_usage(f->st, f->s2), 0, 0, 0, 0);
    PT_ASSERT_USAGE(pt_node_alloc(f->st, f->node), 0, 0, 0, 0);
    assert_recount_clean(f);
}

static void test_move_without_vms(void **state)
{
    struct fixture *f = *state;

    admit(f, f->c2, "c2-a", 1, 1024, 10);
    move(f, f->c1, f->e2); /* Commune 1 has no VM: nothing moves */
    PT_ASSERT_USAGE(pt_usage(f->st, f->e1), 1, 1024, 10, 1);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e2), 0, 0, 0, 0);
    move(f, f->c1, f->e2); /* already there */
    assert_recount_clean(f);
}

/* The COG import re-parents communes through the same move: counters follow. */
static void test_import_moves(void **state)
{
    struct fixture *f = *state;
    struct mu_tenant c = mu_test_tenant("Commune 3", "commune", f->e1, NULL, "01001");
    struct mu_audit_rec rec = mu_test_rec("tenant.import", 0);
    struct mu_import_counts counts = {0};
    struct mu_err err = {0};
    int64_t c3 = 0;

    pt_check(mu_store_tenant_insert(f->st, &c, &rec, &c3, &err), &err, "insert");
    admit(f, c3, "c3-a", 2, 2048, 20);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e1), 2, 2048, 20, 1);

    struct mu_tenant_upsert up = {.t = mu_test_tenant("Commune 3", "commune", f->e2, NULL, "01001"),
                                  .parent_index = -1};
    pt_check(mu_store_tenant_upsert_many(f->st, &up, 1, &rec, &counts, &err), &err, "upsert");
    assert_int_equal(counts.updated, 1);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e1), 0, 0, 0, 0);
    PT_ASSERT_USAGE(pt_usage(f->st, f->e2), 2, 2048, 20, 1);
    PT_ASSERT_USAGE(pt_usage(f->st, f->s1), 2, 2048, 20, 1);
    assert_int_equal(count_in(f, f->e2), 1);
    assert_recount_clean(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_moves_adjust_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_without_vms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_moves, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
