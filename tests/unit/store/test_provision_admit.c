/* Admission and the VM lifecycle in a real SQLite file: the quota arithmetic over a
 * three-level tree (worked out by hand below), unlimited and default limits, the refusal
 * texts, node state, health, capacity and anti-affinity refusals (MU_ERETRY), duplicate
 * names, requests and the one-unfinished-operation rule, observed state and its events,
 * resize, purge, the recount (against counters corrupted behind the store's back), lists
 * and operations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "provision_test.h"

struct fixture {
    struct mu_test_db db;
    struct mu_store *st;
    int64_t synd, epci, ca, cb; /* syndicat > EPCI > communes A and B */
    int64_t n1, n2, img;
};

static int setup(void **state)
{
    struct fixture *f = mu_xcalloc(1, sizeof *f);

    mu_test_db_init(&f->db, NULL);
    f->st = f->db.st;
    f->synd = pt_tenant(f->st, "Syndicat du Numérique", "syndicat", 0);
    f->epci = pt_tenant(f->st, "CC du Pays X", "epci", f->synd);
    f->ca = pt_tenant(f->st, "Commune A", "commune", f->epci);
    f->cb = pt_tenant(f->st, "Commune B", "commune", f->epci);
    f->n1 = pt_node(f->st, "n1");
    f->n2 = pt_node(f->st, "n2");
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

static struct pt_vm vm_of(const struct fixture *f, int64_t tenant, int64_t vcpus, int64_t ram,
                          int64_t disk)
{
    return (struct pt_vm){.tenant = tenant,
                          .node = f->n1,
                          .vcpus = vcpus,
                          .ram_mib = ram,
                          .disk_gib = disk,
                          .image = f->img};
}

static void admit_ok(struct fixture *f, const struct pt_vm *v, const char *name, int64_t *ret_vm)
{
    struct mu_err err = {0};
    int rc = pt_admit(f->st, v, name, ret_vm, NULL, &err);

    if (rc != 0)
        fprintf(stderr, "admit %s: %s\n", name, err.detail);
    assert_int_equal(rc, 0);
}

static void admit_refused(struct fixture *f, const struct pt_vm *v, const char *name, int code,
                          const char *detail)
{
    struct mu_err err = {0};
    int rc = pt_admit(f->st, v, name, NULL, NULL, &err);

    if (rc != code || (detail && strcmp(err.detail, detail) != 0))
        fprintf(stderr, "admit %s: rc=%d detail=%s\n", name, rc, err.detail);
    assert_int_equal(rc, code);
    if (detail)
        assert_string_equal(err.detail, detail);
}

static void finish_ops(struct fixture *f)
{
    struct mu_op *ops = NULL;
    struct mu_err err = {0};
    size_t n = 0;

    pt_check(mu_store_op_unfinished(f->st, &ops, &n, &err), &err, "unfinished");
    for (size_t i = 0; i < n; i++)
        pt_check(mu_store_op_finish(f->st, ops[i].id, true, NULL, &err), &err, "finish");
    mu_ops_free(ops, n);
}

/* Limits S 20 vCPU / 40 GiB / 1000 GiB / 10 VMs, E 12 / 16 GiB / 500 / 8, A 8 / 8 GiB /
 * 200 / 4, B unlimited. The figures after each step are worked out by hand. */
static void test_arithmetic_three_levels(void **state)
{
    struct fixture *f = *state;
    struct pt_vm v;
    struct mu_quota_level *lv = NULL;
    struct mu_err err = {0};
    size_t n = 0;

    pt_quota(f->st, f->synd, 20, 40960, 1000, 10);
    pt_quota(f->st, f->epci, 12, 16384, 500, 8);
    pt_quota(f->st, f->ca, 8, 8192, 200, 4);
    pt_quota(f->st, f->cb, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);

    /* A: two VMs of 2 vCPU, 2 GiB, 20 GiB -> A = E = S = 4, 4096, 40, 2. */
    v = vm_of(f, f->ca, 2, 2048, 20);
    admit_ok(f, &v, "a1", NULL);
    admit_ok(f, &v, "a2", NULL);
    PT_ASSERT_USAGE(pt_usage(f->st, f->ca), 4, 4096, 40, 2);
    PT_ASSERT_USAGE(pt_usage(f->st, f->epci), 4, 4096, 40, 2);
    PT_ASSERT_USAGE(pt_usage(f->st, f->synd), 4, 4096, 40, 2);
    PT_ASSERT_USAGE(pt_usage(f->st, f->cb), 0, 0, 0, 0);

    /* A: 2 vCPU, 4 GiB more fills A's memory exactly (8192 <= 8192). */
    v = vm_of(f, f->ca, 2, 4096, 20);
    admit_ok(f, &v, "a3", NULL);
    PT_ASSERT_USAGE(pt_usage(f->st, f->ca), 6, 8192, 60, 3);
    /* One MiB more does not fit A (8192 + 1 > 8192), though E and S have room. */
    v = vm_of(f, f->ca, 1, 1, 1);
    admit_refused(f, &v, "a4", MU_EQUOTA, "Commune A: memory 8 of 8 GiB used, this VM needs 1 MiB");

    /* B (unlimited itself): 6 vCPU brings E to 12 of 12. */
    v = vm_of(f, f->cb, 6, 4096, 100);
    admit_ok(f, &v, "b1", NULL);
    PT_ASSERT_USAGE(pt_usage(f->st, f->epci), 12, 12288, 160, 4);
    v = vm_of(f, f->cb, 1, 1024, 10);
    admit_refused(f, &v, "b2", MU_EQUOTA, "CC du Pays X: vCPU 12 of 12 used, this VM needs 1");

    /* Raise E's vCPU; now E's memory binds: 12288 + 4096 = 16384 fits, + 1 more does not. */
    pt_quota(f->st, f->epci, 100, 16384, 500, 8);
    v = vm_of(f, f->cb, 4, 4096, 100);
    admit_ok(f, &v, "b2", NULL);
    v = vm_of(f, f->cb, 1, 1, 1);
    admit_refused(f, &v, "b3", MU_EQUOTA,
                  "CC du Pays X: memory 16 of 16 GiB used, this VM needs 1 MiB");

    /* Raise E's memory; S binds on vCPU: S has 16 of 20; a 5-vCPU VM is refused at S. */
    pt_quota(f->st, f->epci, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);
    v = vm_of(f, f->cb, 5, 1024, 10);
    admit_refused(f, &v, "b3", MU_EQUOTA,
                  "Syndicat du Numérique: vCPU 16 of 20 used, this VM needs 5");
    v = vm_of(f, f->cb, 4, 1024, 10);
    admit_ok(f, &v, "b3", NULL);
    PT_ASSERT_USAGE(pt_usage(f->st, f->synd), 20, 17408, 270, 6);

    /* Levels, root first, with explicit flags and the subtree usage. */
    assert_int_equal(mu_store_quota_levels(f->st, f->ca, NULL, &lv, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(lv[0].tenant_id, f->synd);
    assert_string_equal(lv[0].tenant_name, "Syndicat du Numérique");
    assert_true(lv[0].explicit_limits);
    assert_int_equal(lv[0].limits.vcpus, 20);
    assert_int_equal(lv[0].usage.vcpus, 20);
    assert_int_equal(lv[1].tenant_id, f->epci);
    assert_int_equal(lv[1].limits.ram_mib, MU_UNLIMITED);
    assert_int_equal(lv[1].usage.vms, 6);
    assert_int_equal(lv[2].tenant_id, f->ca);
    assert_int_equal(lv[2].limits.vms, 4);
    assert_int_equal(lv[2].usage.vms, 3);
    mu_quota_levels_free(lv, n);
    assert_int_equal(mu_store_quota_levels(f->st, 999, NULL, &lv, &n, &err), MU_ENOTFOUND);

    /* The same levels read for several tenants at once, in the order asked. */
    const int64_t many[] = {f->ca, f->synd, f->epci};
    assert_int_equal(mu_store_quota_own_levels(f->st, many, 3, NULL, &lv, &err), 0);
    assert_int_equal(lv[0].tenant_id, f->ca);
    assert_int_equal(lv[0].limits.vms, 4);
    assert_int_equal(lv[0].usage.vms, 3);
    assert_int_equal(lv[1].tenant_id, f->synd);
    assert_true(lv[1].explicit_limits);
    assert_int_equal(lv[1].usage.vcpus, 20);
    assert_int_equal(lv[2].tenant_id, f->epci);
    assert_int_equal(lv[2].usage.vms, 6);
    mu_quota_levels_free(lv, 3);
    const int64_t missing[] = {f->ca, 999};
    assert_int_equal(mu_store_quota_own_levels(f->st, missing, 2, NULL, &lv, &err), MU_ENOTFOUND);

    /* Node counters: every VM went to n1. */
    PT_ASSERT_USAGE(pt_node_alloc(f->st, f->n1), 20, 17408, 270, 6);
    PT_ASSERT_USAGE(pt_node_alloc(f->st, f->n2), 0, 0, 0, 0);
    assert_int_equal(pt_recount(f->st, NULL, 0), 0);
}

static void test_refusal_texts(void **state)
{
    struct fixture *f = *state;
    int64_t c[6];
    struct pt_vm v;

    for (int i = 0; i < 6; i++) {
        char name[32];

        snprintf(name, sizeof name, "Commune %d", i);
        c[i] = pt_tenant(f->st, name, "commune", f->epci);
    }
    /* The example of the issue: EPCI memory in GiB. */
    pt_quota(f->st, f->epci, MU_UNLIMITED, 65536, MU_UNLIMITED, MU_UNLIMITED);
    v = vm_of(f, f->ca, 1, 62 * 1024, 10);
    admit_ok(f, &v, "big", NULL);
    v = vm_of(f, f->cb, 1, 4096, 10);
    admit_refused(f, &v, "more", MU_EQUOTA,
                  "CC du Pays X: memory 62 of 64 GiB used, this VM needs 4 GiB");
    pt_quota(f->st, f->epci, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);

    /* MiB below 1 GiB, mixed units, tenths. */
    pt_quota(f->st, c[0], MU_UNLIMITED, 768, MU_UNLIMITED, MU_UNLIMITED);
    v = vm_of(f, c[0], 1, 512, 1);
    admit_ok(f, &v, "m1", NULL);
    admit_refused(f, &v, "m2", MU_EQUOTA,
                  "Commune 0: memory 512 of 768 MiB used, this VM needs 512 MiB");
    pt_quota(f->st, c[1], MU_UNLIMITED, 2048, MU_UNLIMITED, MU_UNLIMITED);
    v = vm_of(f, c[1], 1, 512, 1);
    admit_ok(f, &v, "m1", NULL);
    v = vm_of(f, c[1], 1, 2560, 1);
    admit_refused(f, &v, "m2", MU_EQUOTA,
                  "Commune 1: memory 512 MiB of 2 GiB used, this VM needs 2.5 GiB");

    /* vCPU, disk, VM count. */
    pt_quota(f->st, c[2], 8, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);
    v = vm_of(f, c[2], 7, 512, 1);
    admit_ok(f, &v, "v1", NULL);
    v = vm_of(f, c[2], 2, 512, 1);
    admit_refused(f, &v, "v2", MU_EQUOTA, "Commune 2: vCPU 7 of 8 used, this VM needs 2");
    pt_quota(f->st, c[3], MU_UNLIMITED, MU_UNLIMITED, 100, MU_UNLIMITED);
    v = vm_of(f, c[3], 1, 512, 90);
    admit_ok(f, &v, "d1", NULL);
    v = vm_of(f, c[3], 1, 512, 20);
    admit_refused(f, &v, "d2", MU_EQUOTA,
                  "Commune 3: disk 90 of 100 GiB used, this VM needs 20 GiB");
    pt_quota(f->st, c[4], MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, 10);
    v = vm_of(f, c[4], 1, 64, 1);
    for (int i = 0; i < 10; i++) {
        char name[16];

        snprintf(name, sizeof name, "vm-%d", i);
        admit_ok(f, &v, name, NULL);
    }
    admit_refused(f, &v, "vm-10", MU_EQUOTA, "Commune 4: VM count 10 of 10");
    /* A zero limit refuses everything. */
    pt_quota(f->st, c[5], 0, 0, 0, 0);
    v = vm_of(f, c[5], 1, 64, 1);
    admit_refused(f, &v, "z", MU_EQUOTA, "Commune 5: vCPU 0 of 0 used, this VM needs 1");

    /* Bad quotas. */
    struct mu_limits bad = {-2, 0, 0, 0, 0, 0};
    struct mu_err err = {0};
    assert_int_equal(mu_store_quota_set(f->st, c[5], &bad, NULL, &err), MU_EINVAL);
    assert_string_equal(err.field, "vcpus");
    mu_err_clear(&err);
    assert_int_equal(mu_store_quota_set(f->st, 999, NULL, NULL, &err), MU_ENOTFOUND);
}

static void test_defaults_and_unlimited(void **state)
{
    struct fixture *f = *state;
    int calls = 0;
    struct mu_quota_defaults defaults = {.fn = pt_defaults_fn, .ctx = &calls};
    struct mu_tenant small = mu_test_tenant("Petit Village", "commune", f->epci, NULL, NULL);
    struct mu_audit_rec rec = mu_test_rec("tenant.create", 0);
    struct mu_quota_level *lv = NULL;
    struct mu_err err = {0};
    int64_t village = 0;
    size_t n = 0;
    struct pt_vm v;

    small.population = 250;
    pt_check(mu_store_tenant_insert(f->st, &small, &rec, &village, &err), &err, "insert");

    /* Without defaults every level is unlimited. */
    v = vm_of(f, village, 16, 8192, 500);
    admit_ok(f, &v, "huge", NULL);
    /* With the policy: the village (population 250) gets 2 vCPU, 4 GiB, 50 GiB, 2 VMs,
     * already exceeded: refused at the village, on vCPU first. */
    v = vm_of(f, village, 1, 512, 1);
    v.defaults = &defaults;
    admit_refused(f, &v, "small", MU_EQUOTA, "Petit Village: vCPU 16 of 2 used, this VM needs 1");
    assert_true(calls >= 1);

    /* Commune A (population unknown) gets 8 / 16 GiB / 200 / 10; the EPCI 32 / 64 GiB /
     * 1000 / 40 (16 used by the village): a 10-vCPU VM in A passes A? no: 10 > 8. */
    v = vm_of(f, f->ca, 10, 512, 1);
    v.defaults = &defaults;
    admit_refused(f, &v, "a1", MU_EQUOTA, "Commune A: vCPU 0 of 8 used, this VM needs 10");
    v = vm_of(f, f->ca, 8, 512, 1);
    admit_ok(f, &v, "a1", NULL);
    /* An explicit quota wins over the policy; unlimited at A leaves the EPCI to bind:
     * E has 16 + 8 = 24 of 32 vCPU. */
    pt_quota(f->st, f->ca, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);
    v = vm_of(f, f->ca, 9, 512, 1);
    v.defaults = &defaults;
    admit_refused(f, &v, "a2", MU_EQUOTA, "CC du Pays X: vCPU 24 of 32 used, this VM needs 9");
    v.vcpus = 8;
    admit_ok(f, &v, "a2", NULL);

    assert_int_equal(mu_store_quota_levels(f->st, f->ca, &defaults, &lv, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_false(lv[0].explicit_limits);
    assert_int_equal(lv[0].limits.vcpus, MU_UNLIMITED); /* syndicat: unlimited by policy */
    assert_false(lv[1].explicit_limits);
    assert_int_equal(lv[1].limits.vcpus, 32);
    assert_int_equal(lv[1].usage.vcpus, 32);
    assert_true(lv[2].explicit_limits);
    assert_int_equal(lv[2].limits.vms, MU_UNLIMITED);
    mu_quota_levels_free(lv, n);

    /* Removing the explicit quota goes back to the policy. */
    pt_check(mu_store_quota_set(f->st, f->ca, NULL, &rec, &err), &err, "quota reset");
    assert_int_equal(mu_store_quota_levels(f->st, f->ca, &defaults, &lv, &n, &err), 0);
    assert_false(lv[2].explicit_limits);
    assert_int_equal(lv[2].limits.vcpus, 8);
    assert_int_equal(lv[2].usage.vcpus, 16);
    mu_quota_levels_free(lv, n);
}

static void test_node_refusals(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("node.update", 0);
    struct mu_err err = {0};
    struct pt_vm v = vm_of(f, f->ca, 3, 3072, 30);
    struct mu_vm *list = NULL;
    struct mu_vm_filter all = {.limit = 100};
    size_t n = 0;

    pt_check(mu_store_node_set_state(f->st, f->n1, "maintenance", &rec, &err), &err, "state");
    admit_refused(f, &v, "x", MU_ERETRY, "node n1 is in maintenance: it takes no new VMs");
    pt_check(mu_store_node_set_state(f->st, f->n1, "draining", &rec, &err), &err, "state");
    admit_refused(f, &v, "x", MU_ERETRY, "node n1 is draining: it takes no new VMs");
    pt_check(mu_store_node_set_state(f->st, f->n1, "active", &rec, &err), &err, "state");
    pt_check(mu_store_node_set_health(f->st, f->n1, "down", &err), &err, "health");
    admit_refused(f, &v, "x", MU_ERETRY, "node n1 is down: it takes no new VMs");
    pt_check(mu_store_node_set_health(f->st, f->n1, "unknown", &err), &err, "health");
    admit_refused(f, &v, "x", MU_ERETRY, NULL);
    v.allow_unknown = true;
    admit_ok(f, &v, "x", NULL);
    v.allow_unknown = false;
    pt_check(mu_store_node_set_health(f->st, f->n1, "up", &err), &err, "health");

    /* Capacity: 3 of 4 vCPU allocated, 2 more does not fit; memory and disk likewise. */
    v = vm_of(f, f->ca, 2, 1024, 10);
    v.cap_vcpus = 4;
    admit_refused(f, &v, "y", MU_ERETRY, "node n1: vCPU 3 of 4 allocated, this VM needs 2");
    v.cap_vcpus = 5;
    v.cap_ram_mib = 4096;
    admit_ok(f, &v, "y", NULL); /* exactly 5 of 5 vCPU and 4096 of 4096 MiB */
    v = vm_of(f, f->ca, 1, 1, 1);
    v.cap_ram_mib = 4096;
    admit_refused(f, &v, "z", MU_ERETRY,
                  "node n1: memory 4 of 4 GiB allocated, this VM needs 1 MiB");
    v.cap_ram_mib = 0;
    v.cap_disk_gib = 40;
    admit_refused(f, &v, "z", MU_ERETRY,
                  "node n1: disk 40 of 40 GiB allocated, this VM needs 1 GiB");
    v.cap_disk_gib = MU_UNLIMITED; /* a negative capacity is not checked */
    admit_ok(f, &v, "z", NULL);
    v.node = 999;
    admit_refused(f, &v, "w", MU_ERETRY, "node 999 no longer exists");
    v.node = 0;
    admit_refused(f, &v, "w", MU_EINVAL, NULL);

    /* Refusals changed nothing. */
    assert_int_equal(mu_store_vm_list(f->st, &all, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    mu_vms_free(list, n);
    PT_ASSERT_USAGE(pt_node_alloc(f->st, f->n1), 6, 4097, 41, 3);
    PT_ASSERT_USAGE(pt_usage(f->st, f->synd), 6, 4097, 41, 3);
    assert_int_equal(mu_store_op_pending_count(f->st), 3);
}

static void test_anti_affinity(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("group.create", 0);
    struct mu_group g = {.tenant_id = f->ca, .name = (char *)"db"};
    struct mu_group gx = {.tenant_id = f->cb, .name = (char *)"other"};
    struct mu_group ge = {.tenant_id = f->epci, .name = (char *)"shared"};
    struct mu_err err = {0};
    int64_t gid = 0, gother = 0, gepci = 0;
    struct pt_vm v = vm_of(f, f->ca, 1, 512, 1);

    pt_check(mu_store_group_insert(f->st, &g, &rec, &gid, &err), &err, "group");
    pt_check(mu_store_group_insert(f->st, &gx, &rec, &gother, &err), &err, "group");
    pt_check(mu_store_group_insert(f->st, &ge, &rec, &gepci, &err), &err, "group");
    v.group = gid;
    admit_ok(f, &v, "db-1", NULL);
    admit_refused(f, &v, "db-2", MU_ERETRY,
                  "node n1 already hosts VM db-1 of anti-affinity group db");
    v.node = f->n2;
    admit_ok(f, &v, "db-2", NULL);
    /* A VM outside the group may share the node. */
    v.group = 0;
    admit_ok(f, &v, "web", NULL);
    /* Another tenant's group is refused; an ancestor's group is fine. */
    v.group = gother;
    admit_refused(f, &v, "x", MU_EINVAL, "anti-affinity group other belongs to another tenant");
    v.group = 999;
    admit_refused(f, &v, "x", MU_EINVAL, "anti-affinity group 999 does not exist");
    v.group = gepci;
    admit_ok(f, &v, "s-1", NULL);
    v.tenant = f->cb;
    admit_refused(f, &v, "s-2", MU_ERETRY,
                  "node n2 already hosts VM s-1 of anti-affinity group shared");
}

static void test_names(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("vm.delete", 0);
    struct mu_err err = {0};
    struct pt_vm v = vm_of(f, f->ca, 1, 512, 1);
    int64_t vm = 0, op = 0;

    admit_ok(f, &v, "web", &vm);
    admit_refused(f, &v, "web", MU_ECONFLICT, "tenant Commune A already has a VM named web (vm 1)");
    v.tenant = f->cb;
    admit_ok(f, &v, "web", NULL); /* names are per tenant */
    admit_refused(f, &v, "Web", MU_EINVAL, NULL);
    admit_refused(f, &v, "-web", MU_EINVAL, NULL);
    admit_refused(f, &v, "a/b", MU_EINVAL, NULL);
    admit_refused(f, &v, "", MU_EINVAL, NULL);
    admit_refused(f, &v, "0123456789012345678901234567890123456789012345678901234567890123",
                  MU_EINVAL, NULL);
    admit_ok(f, &v, "012345678901234567890123456789012345678901234567890123456789012", NULL);
    v.tenant = 999;
    admit_refused(f, &v, "web", MU_EINVAL, "tenant 999 does not exist");

    /* Once a VM is being deleted its name is free again. */
    finish_ops(f);
    pt_check(mu_store_vm_request(f->st, vm, "vm.delete", "deleted", &rec, &op, &err), &err,
             "delete");
    v.tenant = f->ca;
    admit_ok(f, &v, "web", NULL);

    /* A given UUID is kept, a duplicate refused, a malformed one refused. */
    struct mu_admit_req req = {.vm = {.tenant_id = f->ca,
                                      .uuid = "6f1c1c1e-3b8a-4d2e-9c3f-0a1b2c3d4e5f",
                                      .name = (char *)"fixed",
                                      .vcpus = 1,
                                      .ram_mib = 64,
                                      .image_id = f->img},
                               .node_id = f->n1,
                               .node_cap_vcpus = PT_BIG,
                               .node_cap_ram_mib = PT_BIG,
                               .node_cap_disk_gib = PT_BIG};
    struct mu_vm got = {0};
    assert_int_equal(mu_store_vm_admit(f->st, &req, NULL, &vm, &op, &err), 0);
    assert_int_equal(mu_store_vm_get_by_uuid(f->st, req.vm.uuid, &got, &err), 0);
    assert_int_equal(got.id, vm);
    mu_vm_clear(&got);
    req.vm.name = (char *)"fixed2";
    assert_int_equal(mu_store_vm_admit(f->st, &req, NULL, &vm, &op, &err), MU_ECONFLICT);
    mu_err_clear(&err);
    snprintf(req.vm.uuid, sizeof req.vm.uuid, "not-a-uuid");
    assert_int_equal(mu_store_vm_admit(f->st, &req, NULL, &vm, &op, &err), MU_EINVAL);
    mu_err_clear(&err);
    /* Labels must be an array of key=value. */
    req.vm.uuid[0] = '\0';
    req.vm.labels_json = (char *)"{\"site\":\"a\"}";
    assert_int_equal(mu_store_vm_admit(f->st, &req, NULL, &vm, &op, &err), MU_EINVAL);
    mu_err_clear(&err);
    req.vm.labels_json = (char *)"[\"site=a\"]";
    assert_int_equal(mu_store_vm_admit(f->st, &req, NULL, &vm, &op, &err), 0);
    assert_int_equal(mu_store_vm_get(f->st, vm, &got, &err), 0);
    assert_string_equal(got.labels_json, "[\"site=a\"]");
    assert_int_equal(strlen(got.uuid), 36);
    assert_int_equal(got.uuid[14], '4');
    mu_vm_clear(&got);
}

static void test_vm_fields_and_operation(void **state)
{
    struct fixture *f = *state;
    struct pt_vm v = vm_of(f, f->ca, 2, 2048, 20);
    struct mu_vm got = {0};
    struct mu_op op = {0}, *due = NULL;
    struct mu_err err = {0};
    int64_t vm = 0, opid = 0;
    size_t n = 0;

    assert_int_equal(pt_admit(f->st, &v, "web", &vm, &opid, &err), 0);
    assert_int_equal(mu_store_vm_get(f->st, vm, &got, &err), 0);
    assert_int_equal(got.tenant_id, f->ca);
    assert_string_equal(got.name, "web");
    assert_int_equal(got.vcpus, 2);
    assert_int_equal(got.node_id, f->n1);
    assert_int_equal(got.image_id, f->img);
    assert_int_equal(got.group_id, 0);
    assert_string_equal(got.desired_state, "running");
    assert_string_equal(got.observed_state, "pending");
    assert_null(got.last_error);
    assert_true(got.created_ms > 0);
    assert_int_equal(got.desired_ms, got.created_ms);
    assert_int_equal(got.observed_ms, got.created_ms);
    mu_vm_clear(&got);
    assert_int_equal(mu_store_vm_get(f->st, 999, &got, &err), MU_ENOTFOUND);
    mu_err_clear(&err);

    assert_int_equal(mu_store_op_get(f->st, opid, &op, &err), 0);
    assert_string_equal(op.kind, "vm.create");
    assert_int_equal(op.vm_id, vm);
    assert_int_equal(op.node_id, f->n1);
    assert_string_equal(op.state, "pending");
    assert_string_equal(op.step, "");
    assert_int_equal(op.attempts, 0);
    assert_int_equal(op.deadline_ms - op.created_ms, 15 * 60 * 1000);
    assert_int_equal(op.next_run_ms, op.created_ms);
    assert_string_equal(op.params_json, "{\"image\":\"test\"}");
    assert_string_equal(op.actor, "alice");
    assert_string_equal(op.request_id, "req-1");
    int64_t created = op.created_ms;
    mu_op_clear(&op);

    /* Due now; a step makes it running; a retry pushes it out; finishing ends it. */
    assert_int_equal(mu_store_op_due(f->st, created, 10, &due, &n, &err), 0);
    assert_int_equal(n, 1);
    mu_ops_free(due, n);
    assert_int_equal(mu_store_op_due(f->st, created - 1, 10, &due, &n, &err), 0);
    assert_int_equal(n, 0);
    mu_ops_free(due, n);
    assert_int_equal(mu_store_op_due(f->st, created, 0, &due, &n, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_op_step(f->st, opid, "image", &err), 0);
    assert_int_equal(mu_store_op_retry(f->st, opid, created + 60000, "pool busy", &err), 0);
    assert_int_equal(mu_store_op_get(f->st, opid, &op, &err), 0);
    assert_string_equal(op.state, "running");
    assert_string_equal(op.step, "image");
    assert_int_equal(op.attempts, 1);
    assert_string_equal(op.error, "pool busy");
    mu_op_clear(&op);
    assert_int_equal(mu_store_op_due(f->st, created + 59999, 10, &due, &n, &err), 0);
    assert_int_equal(n, 0);
    mu_ops_free(due, n);
    assert_int_equal(mu_store_op_step(f->st, opid, "disk", &err), 0);
    assert_int_equal(mu_store_op_get(f->st, opid, &op, &err), 0);
    assert_null(op.error); /* the step overcame the transient error */
    mu_op_clear(&op);
    assert_int_equal(mu_store_op_unfinished(f->st, &due, &n, &err), 0);
    assert_int_equal(n, 1);
    mu_ops_free(due, n);
    assert_int_equal(mu_store_op_pending_count(f->st), 1);
    assert_int_equal(mu_store_op_finish(f->st, opid, false, NULL, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_op_finish(f->st, opid, false, "define: domain XML refused", &err), 0);
    assert_int_equal(mu_store_op_get(f->st, opid, &op, &err), 0);
    assert_string_equal(op.state, "failed");
    assert_string_equal(op.error, "define: domain XML refused");
    assert_true(op.finished_ms > 0);
    mu_op_clear(&op);
    assert_int_equal(mu_store_op_finish(f->st, opid, true, NULL, &err), MU_ECONFLICT);
    assert_string_equal(err.detail, "operation 1 (vm.create) has already failed");
    mu_err_clear(&err);
    assert_int_equal(mu_store_op_step(f->st, 999, "x", &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_op_get(f->st, 999, &op, &err), MU_ENOTFOUND);
    assert_int_equal(mu_store_op_pending_count(f->st), 0);
}

static void test_requests(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("vm.stop", 0);
    struct pt_vm v = vm_of(f, f->ca, 1, 512, 1);
    struct mu_err err = {0};
    struct mu_vm got = {0};
    struct mu_op op = {0};
    int64_t vm = 0, create = 0, opid = 0;

    assert_int_equal(pt_admit(f->st, &v, "web", &vm, &create, &err), 0);
    /* The create is unfinished: nothing else may start. */
    assert_int_equal(mu_store_vm_request(f->st, vm, "vm.stop", "stopped", &rec, &opid, &err),
                     MU_ECONFLICT);
    assert_string_equal(err.detail,
                        "VM web already has operation 1 (vm.create) in progress: wait for it to "
                        "finish");
    mu_err_clear(&err);
    pt_check(mu_store_op_finish(f->st, create, true, NULL, &err), &err, "finish");

    assert_int_equal(mu_store_vm_request(f->st, vm, "vm.stop", "stopped", &rec, &opid, &err), 0);
    assert_int_equal(mu_store_op_get(f->st, opid, &op, &err), 0);
    assert_string_equal(op.kind, "vm.stop");
    assert_int_equal(op.node_id, f->n1);
    mu_op_clear(&op);
    assert_int_equal(mu_store_vm_get(f->st, vm, &got, &err), 0);
    assert_string_equal(got.desired_state, "stopped");
    mu_vm_clear(&got);
    assert_int_equal(mu_store_vm_request(f->st, vm, "vm.start", "running", &rec, &opid, &err),
                     MU_ECONFLICT);
    mu_err_clear(&err);
    finish_ops(f);

    /* Bad kinds and combinations. */
    assert_int_equal(mu_store_vm_request(f->st, vm, "vm.create", "running", &rec, &opid, &err),
                     MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_vm_request(f->st, vm, "vm.start", "paused", &rec, &opid, &err),
                     MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_vm_request(f->st, vm, "vm.stop", "deleted", &rec, &opid, &err),
                     MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_vm_request(f->st, 999, "vm.stop", "stopped", &rec, &opid, &err),
                     MU_ENOTFOUND);
    mu_err_clear(&err);

    assert_int_equal(mu_store_vm_request(f->st, vm, "vm.reboot", "running", &rec, &opid, &err), 0);
    finish_ops(f);
    assert_int_equal(mu_store_vm_request(f->st, vm, "vm.delete", "deleted", &rec, &opid, &err), 0);
    finish_ops(f);
    assert_int_equal(mu_store_vm_request(f->st, vm, "vm.start", "running", &rec, &opid, &err),
                     MU_ECONFLICT);
    assert_string_equal(err.detail, "VM web is being deleted");
}

static void test_observed_and_events(void **state)
{
    struct fixture *f = *state;
    struct pt_vm v = vm_of(f, f->ca, 2, 2048, 20);
    struct mu_vm_event *ev = NULL;
    struct mu_vm got = {0};
    struct mu_err err = {0};
    int64_t vm = 0;
    size_t n = 0;

    assert_int_equal(pt_admit(f->st, &v, "web", &vm, NULL, &err), 0);
    assert_int_equal(mu_store_vm_set_observed(f->st, vm, "running", NULL, &err), 0);
    assert_int_equal(mu_store_vm_set_observed(f->st, vm, "running", NULL, &err), 0);
    assert_int_equal(mu_store_vm_set_observed(f->st, vm, "shutoff", NULL, &err), 0);
    assert_int_equal(mu_store_vm_set_observed(f->st, vm, "error", "disk gone", &err), 0);
    assert_int_equal(mu_store_vm_get(f->st, vm, &got, &err), 0);
    assert_string_equal(got.observed_state, "error");
    assert_string_equal(got.last_error, "disk gone");
    mu_vm_clear(&got);
    assert_int_equal(mu_store_vm_set_observed(f->st, vm, "running", NULL, &err), 0);
    assert_int_equal(mu_store_vm_set_observed(f->st, vm, "flying", NULL, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_vm_set_observed(f->st, 999, "running", NULL, &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_vm_get(f->st, vm, &got, &err), 0);
    assert_null(got.last_error);
    assert_true(got.observed_ms >= got.created_ms);
    mu_vm_clear(&got);

    assert_int_equal(mu_store_vm_purge(f->st, vm, &err), 0);
    assert_int_equal(mu_store_vm_events(f->st, vm, &ev, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_string_equal(ev[0].kind, "created");
    assert_int_equal(ev[0].vcpus, 2);
    assert_int_equal(ev[0].ram_mib, 2048);
    assert_string_equal(ev[1].kind, "started");
    assert_string_equal(ev[2].kind, "stopped");
    assert_string_equal(ev[3].kind, "started");
    assert_string_equal(ev[4].kind, "deleted");
    assert_int_equal(ev[4].vcpus, 0); /* the allocation after the event */
    for (size_t i = 1; i < n; i++)
        assert_true(ev[i].ts_ms >= ev[i - 1].ts_ms);
    mu_vm_events_free(ev, n);
}

static void test_delete_purge_restores(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("vm.delete", 0);
    struct mu_err err = {0};
    int64_t vm[4], op = 0;
    struct pt_vm v;

    pt_quota(f->st, f->ca, 4, 4096, 40, 2);
    v = vm_of(f, f->ca, 2, 2048, 20);
    admit_ok(f, &v, "a", &vm[0]);
    admit_ok(f, &v, "b", &vm[1]);
    admit_refused(f, &v, "c", MU_EQUOTA, NULL);
    v = vm_of(f, f->cb, 3, 1000, 5);
    v.node = f->n2;
    admit_ok(f, &v, "c", &vm[2]);
    admit_ok(f, &v, "d", &vm[3]);
    PT_ASSERT_USAGE(pt_usage(f->st, f->synd), 10, 6096, 50, 4);
    PT_ASSERT_USAGE(pt_node_alloc(f->st, f->n2), 6, 2000, 10, 2);

    /* A VM being deleted still counts (its domain and disk still exist)... */
    finish_ops(f);
    pt_check(mu_store_vm_request(f->st, vm[0], "vm.delete", "deleted", &rec, &op, &err), &err,
             "delete");
    PT_ASSERT_USAGE(pt_usage(f->st, f->ca), 4, 4096, 40, 2);
    v = vm_of(f, f->ca, 2, 2048, 20);
    admit_refused(f, &v, "c", MU_EQUOTA, "Commune A: vCPU 4 of 4 used, this VM needs 2");
    /* ...until purged, at every level and on the node; purge is idempotent. */
    assert_int_equal(mu_store_vm_purge(f->st, vm[0], &err), 0);
    assert_int_equal(mu_store_vm_purge(f->st, vm[0], &err), 0);
    assert_int_equal(mu_store_vm_purge(f->st, 12345, &err), 0);
    PT_ASSERT_USAGE(pt_usage(f->st, f->ca), 2, 2048, 20, 1);
    PT_ASSERT_USAGE(pt_usage(f->st, f->synd), 8, 4048, 30, 3);
    PT_ASSERT_USAGE(pt_node_alloc(f->st, f->n1), 2, 2048, 20, 1);
    admit_ok(f, &v, "c", NULL);
    for (int i = 1; i < 4; i++)
        assert_int_equal(mu_store_vm_purge(f->st, vm[i], &err), 0);
    PT_ASSERT_USAGE(pt_usage(f->st, f->cb), 0, 0, 0, 0);
    PT_ASSERT_USAGE(pt_usage(f->st, f->synd), 2, 2048, 20, 1);
    PT_ASSERT_USAGE(pt_node_alloc(f->st, f->n2), 0, 0, 0, 0);
    assert_int_equal(pt_recount(f->st, NULL, 0), 0);
}

static void test_resize(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("vm.resize", 0);
    struct mu_vm_event *ev = NULL;
    struct mu_err err = {0};
    struct mu_vm got = {0};
    struct mu_op op = {0};
    struct pt_vm v = vm_of(f, f->ca, 2, 2048, 20);
    int64_t vm = 0, other = 0, opid = 0;
    size_t n = 0;

    pt_quota(f->st, f->epci, 8, 8192, 100, MU_UNLIMITED);
    admit_ok(f, &v, "web", &vm);
    v = vm_of(f, f->cb, 2, 2048, 20);
    admit_ok(f, &v, "other", &other);
    finish_ops(f);

    /* Running: refused. */
    assert_int_equal(mu_store_vm_resize(f->st, vm, 0, 4, 4096, 40, PT_BIG, PT_BIG, PT_BIG, NULL,
                                        &rec, &opid, &err),
                     MU_ECONFLICT);
    assert_string_equal(err.detail, "VM web must be stopped before a resize (desired running, "
                                    "observed pending): stop it and wait until it is shut off");
    mu_err_clear(&err);
    pt_check(mu_store_vm_request(f->st, vm, "vm.stop", "stopped", &rec, &opid, &err), &err, "stop");
    pt_check(mu_store_vm_set_observed(f->st, vm, "shutoff", NULL, &err), &err, "observed");
    /* The stop is still unfinished. */
    assert_int_equal(mu_store_vm_resize(f->st, vm, 0, 4, 4096, 40, PT_BIG, PT_BIG, PT_BIG, NULL,
                                        &rec, &opid, &err),
                     MU_ECONFLICT);
    mu_err_clear(&err);
    finish_ops(f);

    /* E has 4 of 8 vCPU: +4 fits, +5 not; memory the same; the disk never shrinks. */
    assert_int_equal(mu_store_vm_resize(f->st, vm, 0, 7, 4096, 40, PT_BIG, PT_BIG, PT_BIG, NULL,
                                        &rec, &opid, &err),
                     MU_EQUOTA);
    assert_string_equal(err.detail, "CC du Pays X: vCPU 4 of 8 used, this resize needs 5");
    mu_err_clear(&err);
    assert_int_equal(mu_store_vm_resize(f->st, vm, 0, 2, 2048, 10, PT_BIG, PT_BIG, PT_BIG, NULL,
                                        &rec, &opid, &err),
                     MU_EINVAL);
    mu_err_clear(&err);
    /* Node room for the difference only: 4 allocated (2 + 2), cap 5: +2 does not fit. */
    assert_int_equal(
        mu_store_vm_resize(f->st, vm, 0, 4, 2048, 20, 5, PT_BIG, PT_BIG, NULL, &rec, &opid, &err),
        MU_EQUOTA);
    assert_string_equal(err.detail, "node n1: vCPU 4 of 5 allocated, this resize needs 2");
    mu_err_clear(&err);
    assert_int_equal(
        mu_store_vm_resize(f->st, vm, 0, 6, 6144, 40, 8, 8192, 60, NULL, &rec, &opid, &err), 0);
    PT_ASSERT_USAGE(pt_usage(f->st, f->epci), 8, 8192, 60, 2);
    PT_ASSERT_USAGE(pt_usage(f->st, f->ca), 6, 6144, 40, 1);
    PT_ASSERT_USAGE(pt_node_alloc(f->st, f->n1), 8, 8192, 60, 2);
    assert_int_equal(mu_store_op_get(f->st, opid, &op, &err), 0);
    assert_string_equal(op.kind, "vm.resize");
    assert_non_null(strstr(op.params_json, "\"vcpus\":6"));
    assert_non_null(strstr(op.params_json, "\"old_vcpus\":2"));
    mu_op_clear(&op);
    assert_int_equal(mu_store_vm_get(f->st, vm, &got, &err), 0);
    assert_int_equal(got.vcpus, 6);
    assert_int_equal(got.disk_gib, 40);
    mu_vm_clear(&got);
    finish_ops(f);
    /* Shrinking CPU and memory always fits, even at a full level. */
    assert_int_equal(
        mu_store_vm_resize(f->st, vm, 0, 1, 1024, 40, 1, 1, 1, NULL, &rec, &opid, &err), 0);
    PT_ASSERT_USAGE(pt_usage(f->st, f->epci), 3, 3072, 60, 2);
    assert_int_equal(mu_store_vm_events(f->st, vm, &ev, &n, &err), 0);
    assert_int_equal(n, 4); /* created, stopped, resized, resized */
    assert_string_equal(ev[2].kind, "resized");
    assert_int_equal(ev[2].vcpus, 6);
    assert_int_equal(ev[3].ram_mib, 1024);
    mu_vm_events_free(ev, n);
    assert_int_equal(pt_recount(f->st, NULL, 0), 0);
    (void)other;
}

static void corrupt(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fprintf(stderr, "corrupt: %s\n", msg);
    assert_null(msg);
    sqlite3_close(db);
}

static void test_recount(void **state)
{
    struct fixture *f = *state;
    struct pt_vm v = vm_of(f, f->ca, 2, 2048, 20);
    char detail[512], sql[256];

    admit_ok(f, &v, "a1", NULL);
    admit_ok(f, &v, "a2", NULL);
    v = vm_of(f, f->cb, 1, 512, 5);
    v.node = f->n2;
    admit_ok(f, &v, "b1", NULL);
    assert_int_equal(pt_recount(f->st, detail, sizeof detail), 0);
    assert_string_equal(detail, "all counters match");

    /* Behind the store's back: the EPCI's vCPU counter and a node's VM count. */
    snprintf(sql, sizeof sql,
             "UPDATE tenant_usage SET vcpus = vcpus + 5 WHERE tenant_id = %" PRId64, f->epci);
    corrupt(f->db.path, sql);
    snprintf(sql, sizeof sql, "UPDATE nodes SET vm_count = 99 WHERE id = %" PRId64, f->n2);
    corrupt(f->db.path, sql);
    PT_ASSERT_USAGE(pt_usage(f->st, f->epci), 10, 4608, 45, 3);
    assert_int_equal(pt_recount(f->st, detail, sizeof detail), 2);
    assert_string_equal(detail, "tenant 2 (CC du Pays X): vcpus 10 recorded, 5 in VM rows; "
                                "node 2 (n2): vm_count 99 recorded, 1 in VM rows");
    PT_ASSERT_USAGE(pt_usage(f->st, f->epci), 5, 4608, 45, 3);
    PT_ASSERT_USAGE(pt_node_alloc(f->st, f->n2), 1, 512, 5, 1);
    assert_int_equal(pt_recount(f->st, detail, sizeof detail), 0);

    /* A lost counter row, and a stale VM path. */
    snprintf(sql, sizeof sql, "DELETE FROM tenant_usage WHERE tenant_id = %" PRId64, f->ca);
    corrupt(f->db.path, sql);
    corrupt(f->db.path, "UPDATE vms SET tenant_path = '/9/' WHERE name = 'b1'");
    assert_int_equal(pt_recount(f->st, detail, sizeof detail), 2);
    assert_non_null(strstr(detail, "tenant 3 (Commune A): vcpus 0 recorded, 4 in VM rows, "
                                   "ram_mib 0 recorded, 4096 in VM rows"));
    assert_non_null(strstr(detail, "1 VM row(s) carried a stale tenant path"));
    assert_int_equal(pt_recount(f->st, NULL, 0), 0);
    PT_ASSERT_USAGE(pt_usage(f->st, f->ca), 4, 4096, 40, 2);

    /* Many: the detail lists the first five. */
    corrupt(f->db.path, "UPDATE tenant_usage SET vms = vms + 1");
    corrupt(f->db.path, "UPDATE nodes SET alloc_disk_gib = 7");
    assert_int_equal(pt_recount(f->st, detail, sizeof detail), 6);
    assert_non_null(strstr(detail, "; and 1 more"));
    assert_int_equal(pt_recount(f->st, NULL, 0), 0);
}

static void test_list_filters(void **state)
{
    struct fixture *f = *state;
    int64_t other = pt_tenant(f->st, "Autre Syndicat", "syndicat", 0);
    struct mu_vm *l = NULL;
    struct mu_err err = {0};
    size_t n = 0;
    int64_t ids[12];

    for (int i = 0; i < 12; i++) {
        char name[16];
        int64_t t = i % 3 == 0 ? f->ca : i % 3 == 1 ? f->cb : other;
        struct pt_vm v = vm_of(f, t, 1, 128, 1);

        v.node = i < 6 ? f->n1 : f->n2;
        snprintf(name, sizeof name, "vm-%d", i);
        admit_ok(f, &v, name, &ids[i]);
    }
    pt_check(mu_store_vm_set_observed(f->st, ids[0], "running", NULL, &err), &err, "obs");
    pt_check(mu_store_vm_set_observed(f->st, ids[3], "running", NULL, &err), &err, "obs");
    pt_check(mu_store_vm_set_observed(f->st, ids[4], "running", NULL, &err), &err, "obs");

    struct mu_vm_filter all = {.limit = 100};
    assert_int_equal(mu_store_vm_list(f->st, &all, &l, &n, &err), 0);
    assert_int_equal(n, 12);
    for (size_t i = 1; i < n; i++)
        assert_true(l[i].id > l[i - 1].id);
    mu_vms_free(l, n);

    struct mu_vm_filter scope = {.scope_id = f->synd, .limit = 100};
    assert_int_equal(mu_store_vm_list(f->st, &scope, &l, &n, &err), 0);
    assert_int_equal(n, 8);
    mu_vms_free(l, n);
    scope.tenant_id = f->ca;
    assert_int_equal(mu_store_vm_list(f->st, &scope, &l, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(l[0].id, ids[0]);
    assert_int_equal(l[3].id, ids[9]);
    mu_vms_free(l, n);
    scope.tenant_id = other; /* outside the scope: nothing */
    assert_int_equal(mu_store_vm_list(f->st, &scope, &l, &n, &err), 0);
    assert_int_equal(n, 0);
    mu_vms_free(l, n);
    scope.scope_id = f->ca; /* scope inside the tenant filter: the scope */
    scope.tenant_id = f->synd;
    assert_int_equal(mu_store_vm_list(f->st, &scope, &l, &n, &err), 0);
    assert_int_equal(n, 4);
    mu_vms_free(l, n);
    scope.tenant_id = 999;
    assert_int_equal(mu_store_vm_list(f->st, &scope, &l, &n, &err), MU_ENOTFOUND);
    mu_err_clear(&err);

    struct mu_vm_filter node = {.node_id = f->n2, .limit = 100};
    assert_int_equal(mu_store_vm_list(f->st, &node, &l, &n, &err), 0);
    assert_int_equal(n, 6);
    mu_vms_free(l, n);
    node.scope_id = f->synd;
    assert_int_equal(mu_store_vm_list(f->st, &node, &l, &n, &err), 0);
    assert_int_equal(n, 4); /* vm-6,7,9,10 */
    mu_vms_free(l, n);

    struct mu_vm_filter st = {.state = "running", .limit = 100};
    assert_int_equal(mu_store_vm_list(f->st, &st, &l, &n, &err), 0);
    assert_int_equal(n, 3);
    mu_vms_free(l, n);
    st.tenant_id = f->ca;
    assert_int_equal(mu_store_vm_list(f->st, &st, &l, &n, &err), 0);
    assert_int_equal(n, 2);
    mu_vms_free(l, n);

    /* Pages of 5, and no limit for internal callers. */
    struct mu_vm_filter page = {.limit = 5};
    size_t total = 0;
    for (;;) {
        assert_int_equal(mu_store_vm_list(f->st, &page, &l, &n, &err), 0);
        total += n;
        if (n == 0) {
            mu_vms_free(l, n);
            break;
        }
        page.after_id = l[n - 1].id;
        mu_vms_free(l, n);
    }
    assert_int_equal(total, 12);
    /* Small pages of a large part of all VMs walk by id instead of the subtree's range
     * (8 * 8 > 1 * 12): same answers. */
    struct mu_vm_filter walk = {.scope_id = f->synd, .limit = 1};
    total = 0;
    for (;;) {
        assert_int_equal(mu_store_vm_list(f->st, &walk, &l, &n, &err), 0);
        if (n == 0) {
            mu_vms_free(l, n);
            break;
        }
        assert_int_equal(n, 1);
        assert_true(l[0].tenant_id == f->ca || l[0].tenant_id == f->cb);
        total++;
        walk.after_id = l[0].id;
        mu_vms_free(l, n);
    }
    assert_int_equal(total, 8);
    struct mu_vm_filter nolimit = {.node_id = f->n1, .limit = 0};
    assert_int_equal(mu_store_vm_list(f->st, &nolimit, &l, &n, &err), 0);
    assert_int_equal(n, 6);
    mu_vms_free(l, n);
    nolimit.limit = 1001;
    assert_int_equal(mu_store_vm_list(f->st, &nolimit, &l, &n, &err), MU_EINVAL);
}

static void test_audit_of_admission(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_filter af = {.tenant_id = f->epci, .limit = 100};
    struct mu_audit_entry *e = NULL;
    struct mu_audit_verdict verdict;
    struct pt_vm v = vm_of(f, f->ca, 2, 2048, 20);
    struct mu_err err = {0};
    size_t n = 0;
    bool seen = false;

    admit_ok(f, &v, "web", NULL);
    assert_int_equal(mu_store_audit_list(f->st, &af, &e, &n, &err), 0);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].action, "vm.create") == 0) {
            seen = true;
            assert_string_equal(e[i].target, "vm/1");
            assert_int_equal(e[i].tenant_id, f->ca);
            assert_non_null(strstr(e[i].detail, "web ("));
            assert_non_null(strstr(e[i].detail, "on node n1: 2 vCPU, 2 GiB, 20 GiB disk"));
        }
    }
    assert_true(seen);
    mu_audit_entries_free(e, n);
    assert_int_equal(mu_store_audit_verify(f->st, 0, NULL, &verdict, &err), 0);
    assert_true(verdict.ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_arithmetic_three_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusal_texts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_and_unlimited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anti_affinity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_fields_and_operation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observed_and_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_purge_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recount, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_of_admission, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
