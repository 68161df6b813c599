/* Placement against hand-computed cases: overcommit ratios, reserved memory, operator
 * states and health, labels, anti-affinity, retries, spread and pack with their
 * tie-breaks, refusal sentences, and clusters of thousands of nodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/sched_impl.h"

static struct mu_sched_node *add(struct mu_sched_snapshot *s, int64_t id, int64_t cpus,
                                 int64_t mem_mib, int64_t disk_gib)
{
    char name[32];
    snprintf(name, sizeof name, "node-%lld", (long long)id);
    struct mu_sched_node *n = mu_sched_snapshot_add_node(s, id, name);
    n->cpus = cpus;
    n->mem_mib = mem_mib;
    n->disk_gib = disk_gib;
    return n;
}

static struct mu_sched_policy defaults(void)
{
    struct mu_sched_policy p;
    mu_sched_policy_defaults(&p);
    return p;
}

/* Places and expects a node. */
static int64_t place_ok(const struct mu_sched_snapshot *s, const struct mu_sched_policy *p,
                        const struct mu_sched_request *req)
{
    struct mu_sched_decision d;
    struct mu_err err = {0};
    int rc = mu_sched_place(s, p, req, &d, &err);
    if (rc != 0)
        fail_msg("refused: %s", err.detail);
    assert_true(d.placed);
    assert_int_equal(s->nodes[d.node_index].id, d.node_id);
    assert_int_equal(err.code, 0);
    assert_string_equal(d.reason, "");
    return d.node_id;
}

/* Places, expects a refusal and checks its sentence (also carried by err). */
static void place_refused(const struct mu_sched_snapshot *s, const struct mu_sched_policy *p,
                          const struct mu_sched_request *req, const char *reason)
{
    struct mu_sched_decision d;
    struct mu_err err = {0};
    int rc = mu_sched_place(s, p, req, &d, &err);
    if (rc == 0)
        fail_msg("placed on %lld", (long long)d.node_id);
    assert_int_equal(rc, MU_EQUOTA);
    assert_false(d.placed);
    assert_int_equal(d.node_id, 0);
    assert_int_equal(err.code, MU_EQUOTA);
    assert_string_equal(err.field, "node");
    assert_string_equal(d.reason, reason);
    assert_string_equal(err.detail, reason);
}

/* 16 CPUs × 4.0 = 64 vCPU; (65536 − 1024) × 1.0 = 64512 MiB; 1000 GiB × 1.0. */
static void test_default_ratios(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    add(s, 1, 16, 65536, 1000);

    struct mu_sched_request req = {.vcpus = 64, .ram_mib = 64512, .disk_gib = 1000};
    assert_int_equal(place_ok(s, &p, &req), 1);

    req.vcpus = 65;
    place_refused(s, &p, &req, "no node: 1 lacks vCPUs (need 65, largest free 64)");
    req.vcpus = 1;
    req.ram_mib = 64513;
    place_refused(s, &p, &req, "no node: 1 lacks memory (need 64513 MiB, largest free 64512 MiB)");
    req.ram_mib = 1;
    req.disk_gib = 1001;
    place_refused(s, &p, &req, "no node: 1 lacks disk (need 1001 GiB, largest free 1000 GiB)");
    mu_sched_snapshot_free(s);
}

/* allocated + request <= allocatable, with allocations already there. */
static void test_allocated_counts(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    struct mu_sched_node *n = add(s, 1, 4, 9216, 100); /* 16 vCPU, 8192 MiB, 100 GiB */
    mu_sched_node_add_vm(n, 10, 8, 4096, 40, 0);
    mu_sched_node_add_vm(n, 11, 4, 2048, 40, 0);
    assert_int_equal(n->alloc_vcpus, 12);
    assert_int_equal(n->alloc_ram_mib, 6144);
    assert_int_equal(n->alloc_disk_gib, 80);

    struct mu_sched_request req = {.vcpus = 4, .ram_mib = 2048, .disk_gib = 20};
    assert_int_equal(place_ok(s, &p, &req), 1);
    req.ram_mib = 2049;
    place_refused(s, &p, &req, "no node: 1 lacks memory (need 2049 MiB, largest free 2048 MiB)");
    req.ram_mib = 2048;
    req.vcpus = 5;
    place_refused(s, &p, &req, "no node: 1 lacks vCPUs (need 5, largest free 4)");
    req.vcpus = 4;
    req.disk_gib = 21;
    place_refused(s, &p, &req, "no node: 1 lacks disk (need 21 GiB, largest free 20 GiB)");
    mu_sched_snapshot_free(s);
}

/* Fractional ratios are taken to the thousandth in integers: 10 × 1.1 is 11, not 10. */
static void test_fractional_ratios(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    p.cpu_ratio = 1.1;
    p.ram_ratio = 1.5;
    p.disk_ratio = 0.9;
    p.reserved_mem_mib = 1024;
    add(s, 1, 10, 8192, 100); /* 11 vCPU; (8192 − 1024) × 1.5 = 10752 MiB; 90 GiB */

    struct mu_sched_capacity cap;
    mu_sched_node_capacity(&s->nodes[0], &p, &cap);
    assert_int_equal(cap.vcpus.allocatable, 11);
    assert_int_equal(cap.ram_mib.allocatable, 10752);
    assert_int_equal(cap.disk_gib.allocatable, 90);

    struct mu_sched_request req = {.vcpus = 11, .ram_mib = 10752, .disk_gib = 90};
    assert_int_equal(place_ok(s, &p, &req), 1);
    req.vcpus = 12;
    place_refused(s, &p, &req, "no node: 1 lacks vCPUs (need 12, largest free 11)");

    /* 0.29 × 100 is 28.999999999999996 in doubles: the integer path gives 29. */
    p.cpu_ratio = 0.29;
    s->nodes[0].cpus = 100;
    req.vcpus = 29;
    assert_int_equal(place_ok(s, &p, &req), 1);
    mu_sched_snapshot_free(s);
}

/* Reserved memory: the policy's default, or the node's own value (0 included). */
static void test_reserved_memory(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    p.reserved_mem_mib = 2048;
    add(s, 1, 8, 8192, 100);                         /* 6144 MiB */
    add(s, 2, 8, 8192, 100)->reserved_mem_mib = 512; /* 7680 MiB */
    add(s, 3, 8, 8192, 100)->reserved_mem_mib = 0;   /* 8192 MiB */

    struct mu_sched_request req = {.vcpus = 1, .ram_mib = 8192};
    assert_int_equal(place_ok(s, &p, &req), 3);
    req.ram_mib = 7680;
    int64_t ex[] = {3};
    req.exclude = ex;
    req.n_exclude = 1;
    assert_int_equal(place_ok(s, &p, &req), 2);
    req.ram_mib = 7681;
    place_refused(s, &p, &req,
                  "no node: 1 already tried, 2 lack memory (need 7681 MiB, largest free 7680 MiB)");

    /* Reserved larger than the node: nothing allocatable, never negative. */
    s->nodes[0].reserved_mem_mib = 100000;
    struct mu_sched_capacity cap;
    mu_sched_node_capacity(&s->nodes[0], &p, &cap);
    assert_int_equal(cap.ram_mib.allocatable, 0);
    mu_sched_snapshot_free(s);
}

/* The example of the provisioning issue, extended to every state. */
static void test_mixed_states_refusal(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    int64_t id = 1;
    for (int i = 0; i < 2; i++)
        add(s, id++, 32, 132096, 1000)->op_state = MU_SCHED_OP_MAINTENANCE;
    add(s, id++, 32, 132096, 1000)->op_state = MU_SCHED_OP_DRAINING;
    add(s, id++, 32, 132096, 1000)->health = MU_SCHED_HEALTH_DOWN;
    add(s, id++, 32, 132096, 1000)->health = MU_SCHED_HEALTH_UNKNOWN;
    /* A node in maintenance and down counts once, as in maintenance. */
    struct mu_sched_node *n = add(s, id++, 32, 132096, 1000);
    n->op_state = MU_SCHED_OP_MAINTENANCE;
    n->health = MU_SCHED_HEALTH_DOWN;
    for (int i = 0; i < 5; i++) {
        n = add(s, id++, 32, 3072 + 1024 * i, 1000);          /* 2048 .. 6144 MiB allocatable */
        mu_sched_node_add_vm(n, 100 + i, 2, 1024 * i, 10, 0); /* 2048 free each */
    }

    struct mu_sched_request req = {.vcpus = 2, .ram_mib = 4096, .disk_gib = 10};
    place_refused(s, &p, &req,
                  "no node: 3 in maintenance, 1 draining, 1 down, 1 with unknown health, "
                  "5 lack memory (need 4096 MiB, largest free 2048 MiB)");

    struct mu_sched_decision d;
    assert_int_equal(mu_sched_place(s, &p, &req, &d, NULL), MU_EQUOTA);
    assert_int_equal(d.counts.maintenance, 3);
    assert_int_equal(d.counts.draining, 1);
    assert_int_equal(d.counts.down, 1);
    assert_int_equal(d.counts.unknown, 1);
    assert_int_equal(d.counts.no_ram, 5);
    assert_int_equal(d.counts.fit, 0);
    assert_int_equal(d.counts.max_free_ram_mib, 2048);
    assert_int_equal(d.counts.max_free_vcpus, -1);

    /* The policy may accept unknown health: then the unknown node takes it. */
    p.unknown_health_eligible = true;
    assert_int_equal(place_ok(s, &p, &req), 5);
    mu_sched_snapshot_free(s);
}

static void test_empty_cluster(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    struct mu_sched_request req = {.vcpus = 1, .ram_mib = 512};
    place_refused(s, &p, &req, "no node: the cluster has no nodes");
    mu_sched_snapshot_free(s);
}

static void test_labels(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    struct mu_sched_node *n = add(s, 1, 8, 16384, 100);
    mu_sched_node_set_label(n, "site", "lyon");
    n = add(s, 2, 8, 16384, 100);
    mu_sched_node_set_label(n, "site", "parisien"); /* a prefix must not match */
    n = add(s, 3, 8, 8192, 100);
    mu_sched_node_set_label(n, "site", "lyon");
    mu_sched_node_set_label(n, "zone", "a");
    mu_sched_node_set_label(n, "site", "paris"); /* replaces lyon */
    assert_int_equal(n->n_labels, 2);
    add(s, 4, 64, 262144, 1000); /* the roomiest, but no labels */

    const char *site[] = {"site=paris"};
    struct mu_sched_request req = {.vcpus = 1, .ram_mib = 1024, .labels = site, .n_labels = 1};
    assert_int_equal(place_ok(s, &p, &req), 3);

    const char *both[] = {"site=paris", "zone=b"};
    req.labels = both;
    req.n_labels = 2;
    place_refused(s, &p, &req, "no node: 4 lack labels site=paris and zone=b");

    const char *one[] = {"site=nice"};
    req.labels = one;
    req.n_labels = 1;
    place_refused(s, &p, &req, "no node: 4 lack label site=nice");

    /* Malformed labels are a bad request, not a refusal; the decision is left alone. */
    const char *bad[] = {"=paris"};
    req.labels = bad;
    struct mu_sched_decision d = {.node_id = 42};
    struct mu_err err = {0};
    assert_int_equal(mu_sched_place(s, &p, &req, &d, &err), MU_EINVAL);
    assert_int_equal(d.node_id, 42);
    assert_string_equal(err.field, "labels");
    mu_sched_snapshot_free(s);
}

static void test_anti_affinity(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    struct mu_sched_node *n1 = add(s, 1, 8, 65536, 100);
    add(s, 2, 8, 16384, 100);
    add(s, 3, 8, 16384, 100);
    mu_sched_node_add_vm(n1, 10, 1, 1024, 10, 7);
    mu_sched_node_add_group(n1, 7); /* idempotent */
    mu_sched_node_add_group(n1, 0); /* ignored */
    assert_int_equal(n1->n_groups, 1);

    /* Node 1 is the emptiest but hosts group 7. */
    struct mu_sched_request req = {.vcpus = 1, .ram_mib = 1024, .group_id = 7};
    assert_int_equal(place_ok(s, &p, &req), 2);
    req.group_id = 8;
    assert_int_equal(place_ok(s, &p, &req), 1);

    mu_sched_node_add_group(&s->nodes[1], 7);
    mu_sched_node_add_group(&s->nodes[2], 7);
    req.group_id = 7;
    place_refused(s, &p, &req, "no node: 3 already host anti-affinity group 7");
    s->nodes[2].n_groups = 0;
    s->nodes[1].op_state = MU_SCHED_OP_MAINTENANCE;
    s->nodes[2].health = MU_SCHED_HEALTH_DOWN;
    place_refused(s, &p, &req,
                  "no node: 1 in maintenance, 1 down, 1 already hosts "
                  "anti-affinity group 7");
    mu_sched_snapshot_free(s);
}

/* The one-word filters on labels and groups only skip work: a label or group that shares
 * a filter bit with the one asked for is still told apart. */
static void test_filter_collisions(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    char twin[32] = "";
    for (int k = 0; k < 100000 && !twin[0]; k++) {
        char cand[32];
        snprintf(cand, sizeof cand, "site=x%d", k);
        if (mu_sched_label_bit(cand) == mu_sched_label_bit("site=a"))
            snprintf(twin, sizeof twin, "%s", cand);
    }
    assert_true(twin[0] != '\0');
    int64_t group_twin = 0;
    for (int64_t g = 2; g < 100000 && !group_twin; g++)
        if (mu_sched_group_bit(g) == mu_sched_group_bit(1))
            group_twin = g;
    assert_true(group_twin != 0);

    struct mu_sched_node *n = add(s, 1, 8, 16384, 100);
    mu_sched_node_set_label(n, "site", twin + 5);
    mu_sched_node_add_group(n, group_twin);
    const char *site[] = {"site=a"};
    struct mu_sched_request req = {.vcpus = 1, .ram_mib = 1024, .labels = site, .n_labels = 1};
    place_refused(s, &p, &req, "no node: 1 lacks label site=a");
    req.n_labels = 0;
    req.group_id = 1;
    assert_int_equal(place_ok(s, &p, &req), 1);
    req.group_id = group_twin;
    char want[96];
    snprintf(want, sizeof want, "no node: 1 already hosts anti-affinity group %lld",
             (long long)group_twin);
    place_refused(s, &p, &req, want);
    mu_sched_snapshot_free(s);
}

/* Admission retries pass the nodes already tried. */
static void test_exclude(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    for (int64_t id = 1; id <= 3; id++)
        add(s, id, 8, 16384 + 1024 * id, 100);
    struct mu_sched_request req = {.vcpus = 1, .ram_mib = 1024};
    assert_int_equal(place_ok(s, &p, &req), 3);
    int64_t ex[] = {3, 2};
    req.exclude = ex;
    req.n_exclude = 2;
    assert_int_equal(place_ok(s, &p, &req), 1);
    int64_t all[] = {3, 2, 1};
    req.exclude = all;
    req.n_exclude = 3;
    place_refused(s, &p, &req, "no node: 3 already tried");
    mu_sched_snapshot_free(s);
}

/* Spread takes the node left with the largest free memory fraction, pack the smallest.
 * The fraction is the one left after this VM lands. */
static void test_spread_pack(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    p.reserved_mem_mib = 0;
    struct mu_sched_node *a = add(s, 1, 16, 10000, 100);
    mu_sched_node_add_vm(a, 10, 1, 8000, 1, 0); /* 20 % free, 10 % after 1000 */
    struct mu_sched_node *b = add(s, 2, 16, 4000, 100);
    mu_sched_node_add_vm(b, 11, 1, 3000, 1, 0); /* 25 % free, 0 % after 1000 */
    struct mu_sched_node *c = add(s, 3, 16, 10000, 100);
    mu_sched_node_add_vm(c, 12, 1, 5000, 1, 0); /* 50 % free, 40 % after */

    struct mu_sched_request req = {.vcpus = 1, .ram_mib = 1000};
    assert_int_equal(place_ok(s, &p, &req), 3);
    p.weigher = MU_SCHED_PACK;
    assert_int_equal(place_ok(s, &p, &req), 2);
    /* Without node 3, spread looks at what is left: a (10 %) beats b (0 %). */
    p.weigher = MU_SCHED_SPREAD;
    int64_t ex[] = {3};
    req.exclude = ex;
    req.n_exclude = 1;
    assert_int_equal(place_ok(s, &p, &req), 1);
    mu_sched_snapshot_free(s);
}

/* Equal memory fractions: the free vCPU fraction decides, then the lowest id, whatever the
 * order of the nodes in the snapshot. */
static void test_tie_breaks(void **state)
{
    struct mu_sched_policy p = defaults();
    p.reserved_mem_mib = 0;
    const int64_t ids[] = {5, 3, 9, 4};
    const int64_t cpus[] = {8, 8, 4, 8}; /* 32, 32, 16, 32 vCPU allocatable */
    const int64_t used[] = {8, 4, 2, 4}; /* free fraction after 1: 23/32, 27/32, 13/16, 27/32 */
    int perm[][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}, {1, 3, 0, 2}};

    for (size_t k = 0; k < 4; k++) {
        struct mu_sched_snapshot *s = mu_sched_snapshot_new(4);
        for (size_t j = 0; j < 4; j++) {
            int i = perm[k][j];
            struct mu_sched_node *n = add(s, ids[i], cpus[i], 8192, 100);
            mu_sched_node_add_vm(n, 100 + i, used[i], 4096, 1, 0); /* 50 % memory each */
        }
        struct mu_sched_request req = {.vcpus = 1, .ram_mib = 1024};
        p.weigher = MU_SCHED_SPREAD;
        assert_int_equal(place_ok(s, &p, &req), 3); /* 3 and 4 tie at 27/32: lowest id */
        p.weigher = MU_SCHED_PACK;
        assert_int_equal(place_ok(s, &p, &req), 5); /* 23/32 is the least */

        /* Everything equal: the lowest id, for both weighers. */
        for (size_t j = 0; j < 4; j++) {
            s->nodes[j].cpus = 8;
            s->nodes[j].alloc_vcpus = 4;
        }
        assert_int_equal(place_ok(s, &p, &req), 3);
        p.weigher = MU_SCHED_SPREAD;
        assert_int_equal(place_ok(s, &p, &req), 3);
        mu_sched_snapshot_free(s);
    }
}

/* A node over its allocatable amount (the policy changed) refuses even a VM that does not
 * need that resource, and reports 0 free rather than a negative figure. */
static void test_overcommitted_node(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    struct mu_sched_node *n = add(s, 1, 4, 9216, 100);
    n->alloc_disk_gib = 120;
    struct mu_sched_request req = {.vcpus = 1, .ram_mib = 1024, .disk_gib = 0};
    place_refused(s, &p, &req, "no node: 1 lacks disk (need 0 GiB, largest free 0 GiB)");
    mu_sched_snapshot_free(s);
}

static void test_bad_requests(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    add(s, 1, 4, 9216, 100);
    struct mu_sched_request reqs[] = {
        {.vcpus = -1, .ram_mib = 1},  {.vcpus = 1, .ram_mib = -1},
        {.vcpus = 1, .disk_gib = -1}, {0},
        {.vcpus = 1, .group_id = -3}, {.vcpus = (int64_t)1 << 50},
        {.vcpus = 1, .n_labels = 1},  {.vcpus = 1, .n_exclude = 2},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        struct mu_sched_decision d = {.node_id = 77};
        struct mu_err err = {0};
        assert_int_equal(mu_sched_place(s, &p, &reqs[i], &d, &err), MU_EINVAL);
        assert_int_equal(d.node_id, 77);
        assert_int_equal(err.code, MU_EINVAL);
        assert_true(err.detail[0] != '\0');
    }
    mu_sched_snapshot_free(s);
}

/* 5,000 nodes: spread fills them evenly, pack fills one before the next, and the counts
 * always add up to the node count. */
static void test_thousands_of_nodes(void **state)
{
    enum { N = 5000 };
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(N);
    struct mu_sched_policy p = defaults();
    for (int64_t id = 1; id <= N; id++) {
        struct mu_sched_node *n = add(s, id, 32, 66560, 2000); /* 65536 MiB allocatable */
        if (id % 10 == 0)
            n->op_state = MU_SCHED_OP_MAINTENANCE;
        if (id % 10 == 1)
            n->health = MU_SCHED_HEALTH_DOWN;
        mu_sched_node_set_label(n, "site", id % 2 ? "a" : "b");
    }
    /* 4,000 eligible nodes × 16 VMs of 4 GiB: spread puts 4 on each, in order. */
    struct mu_sched_request req = {.vcpus = 2, .ram_mib = 4096, .disk_gib = 20};
    for (int round = 0; round < 4 * 4000; round++) {
        struct mu_sched_decision d;
        assert_int_equal(mu_sched_place(s, &p, &req, &d, NULL), 0);
        size_t sum = d.counts.maintenance + d.counts.down + d.counts.fit;
        assert_int_equal(sum, N);
        struct mu_sched_node *n = &s->nodes[d.node_index];
        mu_sched_node_add_vm(n, round + 1, 2, 4096, 20, 0);
    }
    for (size_t i = 0; i < N; i++) {
        struct mu_sched_node *n = &s->nodes[i];
        bool eligible = n->op_state == MU_SCHED_OP_ACTIVE && n->health == MU_SCHED_HEALTH_UP;
        assert_int_equal(n->n_vms, eligible ? 4 : 0);
    }

    /* Pack: the fullest eligible node takes VMs until it is full (16 per node). */
    p.weigher = MU_SCHED_PACK;
    s->nodes[4].alloc_ram_mib += 4096; /* node 5 is now the fullest */
    int64_t first = 0;
    for (int k = 0; k < 11; k++) {
        struct mu_sched_decision d;
        assert_int_equal(mu_sched_place(s, &p, &req, &d, NULL), 0);
        if (k == 0)
            first = d.node_id;
        assert_int_equal(d.node_id, first);
        mu_sched_node_add_vm(&s->nodes[d.node_index], 100000 + k, 2, 4096, 20, 0);
    }
    assert_int_equal(first, 5);
    /* Full now: the next VM goes elsewhere, to the lowest eligible id among the equally
     * full (1 is down). */
    assert_int_equal(place_ok(s, &p, &req), 2);

    /* A label required on half the cluster, and refusal counts at scale. */
    const char *site[] = {"site=b"};
    req.labels = site;
    req.n_labels = 1;
    req.ram_mib = 65536;
    struct mu_sched_decision d;
    assert_int_equal(mu_sched_place(s, &p, &req, &d, NULL), MU_EQUOTA);
    assert_int_equal(d.counts.maintenance, 500);
    assert_int_equal(d.counts.down, 500);
    assert_int_equal(d.counts.labels, 2000);
    assert_int_equal(d.counts.no_ram, 2000);
    assert_string_equal(d.reason, "no node: 500 in maintenance, 500 down, 2000 lack label "
                                  "site=b, 2000 lack memory (need 65536 MiB, largest free "
                                  "49152 MiB)");
    mu_sched_snapshot_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_ratios),
        cmocka_unit_test(test_allocated_counts),
        cmocka_unit_test(test_fractional_ratios),
        cmocka_unit_test(test_reserved_memory),
        cmocka_unit_test(test_mixed_states_refusal),
        cmocka_unit_test(test_empty_cluster),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_anti_affinity),
        cmocka_unit_test(test_filter_collisions),
        cmocka_unit_test(test_exclude),
        cmocka_unit_test(test_spread_pack),
        cmocka_unit_test(test_tie_breaks),
        cmocka_unit_test(test_overcommitted_node),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_thousands_of_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
