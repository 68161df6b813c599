/* Capacity arithmetic against hand-computed cases, the headroom property test (closed
 * form = what the placement function admits one by one), and N+1 verdicts on layouts
 * where the answer is known. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sched/sched.h"

static struct mu_sched_node *add(struct mu_sched_snapshot *s, int64_t id, int64_t cpus,
                                 int64_t mem_mib, int64_t disk_gib)
{
    char name[32];
    snprintf(name, sizeof name, "node-%" PRId64, id);
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

/* ---- capacity figures ----------------------------------------------------------------- */

static void test_node_and_cluster_capacity(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    struct mu_sched_node *n = add(s, 1, 16, 65536, 500);
    mu_sched_node_add_vm(n, 1, 30, 32768, 100, 0);
    n = add(s, 2, 8, 33792, 200);
    n->op_state = MU_SCHED_OP_MAINTENANCE;
    mu_sched_node_add_vm(n, 2, 4, 4096, 50, 0);
    n = add(s, 3, 8, 17408, 100);
    n->health = MU_SCHED_HEALTH_UNKNOWN;
    n->reserved_mem_mib = 2048;

    struct mu_sched_capacity cap;
    mu_sched_node_capacity(&s->nodes[0], &p, &cap);
    assert_int_equal(cap.vcpus.physical, 16);
    assert_int_equal(cap.vcpus.allocatable, 64);
    assert_int_equal(cap.vcpus.allocated, 30);
    assert_int_equal(cap.vcpus.free, 34);
    assert_int_equal(cap.ram_mib.physical, 65536);
    assert_int_equal(cap.ram_mib.allocatable, 64512);
    assert_int_equal(cap.ram_mib.free, 31744);
    assert_int_equal(cap.disk_gib.allocatable, 500);
    assert_int_equal(cap.disk_gib.free, 400);

    mu_sched_node_capacity(&s->nodes[2], &p, &cap);
    assert_int_equal(cap.ram_mib.allocatable, 15360);

    struct mu_sched_capacity all, sched;
    mu_sched_cluster_capacity(s, &p, &all, &sched);
    assert_int_equal(all.vcpus.physical, 32);
    assert_int_equal(all.vcpus.allocatable, 128);
    assert_int_equal(all.vcpus.allocated, 34);
    assert_int_equal(all.ram_mib.allocatable, 64512 + 32768 + 15360);
    assert_int_equal(all.ram_mib.allocated, 36864);
    assert_int_equal(all.disk_gib.free, 400 + 150 + 100);
    /* Only node 1 takes VMs: 2 is in maintenance, 3's health is unknown. */
    assert_int_equal(sched.vcpus.allocatable, 64);
    assert_int_equal(sched.ram_mib.free, 31744);
    assert_true(mu_sched_node_schedulable(&s->nodes[0], &p));
    assert_false(mu_sched_node_schedulable(&s->nodes[1], &p));
    assert_false(mu_sched_node_schedulable(&s->nodes[2], &p));
    p.unknown_health_eligible = true;
    assert_true(mu_sched_node_schedulable(&s->nodes[2], &p));
    mu_sched_cluster_capacity(s, &p, NULL, &sched);
    assert_int_equal(sched.ram_mib.allocatable, 64512 + 15360);

    /* A node over its allocatable amount shows a negative free figure. */
    p.cpu_ratio = 1.0;
    mu_sched_node_capacity(&s->nodes[0], &p, &cap);
    assert_int_equal(cap.vcpus.allocatable, 16);
    assert_int_equal(cap.vcpus.free, -14);
    mu_sched_snapshot_free(s);
}

static void test_headroom_hand_computed(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    struct mu_sched_node *n = add(s, 1, 16, 65536, 500); /* 64, 64512, 500 */
    mu_sched_node_set_label(n, "site", "a");
    n = add(s, 2, 16, 65536, 500);
    mu_sched_node_add_vm(n, 1, 30, 32768, 100, 9); /* free 34, 31744, 400 */
    mu_sched_node_set_label(n, "site", "a");
    add(s, 3, 16, 65536, 500)->op_state = MU_SCHED_OP_DRAINING;
    add(s, 4, 16, 65536, 500)->health = MU_SCHED_HEALTH_DOWN;
    add(s, 5, 2, 65536, 500); /* 8 vCPU: cpu binds */
    add(s, 6, 16, 65536, 30); /* 30 GiB: disk binds */

    int64_t per[6], total = 0;
    struct mu_sched_request flavor = {.vcpus = 2, .ram_mib = 4096, .disk_gib = 20};
    assert_int_equal(mu_sched_headroom(s, &p, &flavor, per, &total, NULL), 0);
    /* min(64512/4096, 64/2, 500/20) = 15; min(31744/4096, 34/2, 400/20) = 7. */
    assert_int_equal(per[0], 15);
    assert_int_equal(per[1], 7);
    assert_int_equal(per[2], 0);
    assert_int_equal(per[3], 0);
    assert_int_equal(per[4], 4);
    assert_int_equal(per[5], 1);
    assert_int_equal(total, 15 + 7 + 4 + 1);

    /* An anti-affinity group: at most one per node, none where the group is. */
    flavor.group_id = 9;
    assert_int_equal(mu_sched_headroom(s, &p, &flavor, per, &total, NULL), 0);
    assert_int_equal(per[0], 1);
    assert_int_equal(per[1], 0);
    assert_int_equal(total, 3);

    /* Required labels. */
    const char *site[] = {"site=a"};
    flavor.group_id = 0;
    flavor.labels = site;
    flavor.n_labels = 1;
    assert_int_equal(mu_sched_headroom(s, &p, &flavor, NULL, &total, NULL), 0);
    assert_int_equal(total, 22);

    /* Pack or spread changes nothing; ratios do: RAM 1.5 gives 96768 MiB on node 1. */
    flavor.n_labels = 0;
    p.ram_ratio = 1.5;
    p.weigher = MU_SCHED_PACK;
    assert_int_equal(mu_sched_headroom(s, &p, &flavor, per, &total, NULL), 0);
    assert_int_equal(per[0], 23);

    /* A malformed flavor is refused and leaves the outputs alone. */
    struct mu_sched_request bad = {.vcpus = 0};
    total = -5;
    struct mu_err err = {0};
    assert_int_equal(mu_sched_headroom(s, &p, &bad, NULL, &total, &err), MU_EINVAL);
    assert_int_equal(total, -5);
    mu_sched_snapshot_free(s);
}

static void test_format_mib(void **state)
{
    char buf[32];
    assert_string_equal(mu_sched_format_mib(512, buf, sizeof buf), "512 MiB");
    assert_string_equal(mu_sched_format_mib(12288, buf, sizeof buf), "12 GiB");
    assert_string_equal(mu_sched_format_mib(1536, buf, sizeof buf), "1.5 GiB");
    assert_string_equal(mu_sched_format_mib(0, buf, sizeof buf), "0 MiB");
}

/* ---- the headroom property test --------------------------------------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static int64_t rnd_in(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static uint64_t test_seed(void)
{
    const char *env = getenv("MU_TEST_SEED");
    if (env && *env)
        return strtoull(env, NULL, 10);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
}

static const char *const sites[] = {"site=a", "site=b"};
static const char *const zones[] = {"zone=x", "zone=y"};

/* A small random layout with every feature placement looks at. */
static struct mu_sched_snapshot *random_layout(struct mu_sched_policy *p)
{
    size_t n = (size_t)rnd_in(1, 8);
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(n);
    int64_t vm_id = 1;
    for (size_t i = 0; i < n; i++) {
        struct mu_sched_node *node = add(s, (int64_t)(i * 3 + 1 + rnd_in(0, 2)), rnd_in(1, 8),
                                         512 * rnd_in(1, 32), rnd_in(10, 200));
        int64_t st = rnd_in(0, 9);
        node->op_state = st == 0   ? MU_SCHED_OP_MAINTENANCE
                         : st == 1 ? MU_SCHED_OP_DRAINING
                                   : MU_SCHED_OP_ACTIVE;
        int64_t h = rnd_in(0, 9);
        node->health = h == 0   ? MU_SCHED_HEALTH_DOWN
                       : h == 1 ? MU_SCHED_HEALTH_UNKNOWN
                                : MU_SCHED_HEALTH_UP;
        if (rnd_in(0, 2) == 0)
            node->reserved_mem_mib = 256 * rnd_in(0, 8);
        if (rnd_in(0, 9) < 7)
            mu_sched_node_set_label(node, "site", rnd_in(0, 1) ? "a" : "b");
        if (rnd_in(0, 1))
            mu_sched_node_set_label(node, "zone", rnd_in(0, 1) ? "x" : "y");
        for (int64_t k = rnd_in(0, 4); k > 0; k--)
            mu_sched_node_add_vm(node, vm_id++, rnd_in(0, 4), 256 * rnd_in(0, 16), rnd_in(0, 40),
                                 rnd_in(0, 1) ? rnd_in(1, 3) : 0);
    }
    p->cpu_ratio = (double)rnd_in(100, 8000) / 1000.0;
    p->ram_ratio = (double)rnd_in(100, 2000) / 1000.0;
    p->disk_ratio = (double)rnd_in(100, 3000) / 1000.0;
    p->reserved_mem_mib = 256 * rnd_in(0, 8);
    p->weigher = rnd_in(0, 1) ? MU_SCHED_PACK : MU_SCHED_SPREAD;
    p->unknown_health_eligible = rnd_in(0, 1);
    return s;
}

static void test_headroom_property(void **state)
{
    uint64_t seed = test_seed();
    fprintf(stderr, "headroom property: seed=%" PRIu64 " (MU_TEST_SEED to replay)\n", seed);
    rng = seed ? seed : 1;
    const char *labels[2];
    int64_t ex[1];
    int64_t placed_total = 0;

    for (int iter = 0; iter < 3000; iter++) {
        struct mu_sched_policy p;
        struct mu_sched_snapshot *s = random_layout(&p);
        struct mu_sched_request req = {
            .vcpus = rnd_in(0, 4),
            .ram_mib = 256 * rnd_in(0, 12),
            .disk_gib = rnd_in(0, 30),
            .group_id = rnd_in(0, 1) ? rnd_in(1, 3) : 0,
        };
        if (req.vcpus == 0 && req.ram_mib == 0 && req.disk_gib == 0)
            req.vcpus = 1;
        size_t nl = 0;
        if (rnd_in(0, 2) == 0)
            labels[nl++] = sites[rnd_in(0, 1)];
        if (rnd_in(0, 3) == 0)
            labels[nl++] = zones[rnd_in(0, 1)];
        req.labels = labels;
        req.n_labels = nl;
        if (rnd_in(0, 4) == 0) {
            ex[0] = s->nodes[rnd_in(0, (int64_t)s->n_nodes - 1)].id;
            req.exclude = ex;
            req.n_exclude = 1;
        }

        int64_t per[8], total = -1;
        assert_int_equal(mu_sched_headroom(s, &p, &req, per, &total, NULL), 0);

        /* Now the real thing: place until refused, each VM counting against the next. */
        int64_t got[8] = {0}, count = 0;
        for (;;) {
            struct mu_sched_decision d;
            int rc = mu_sched_place(s, &p, &req, &d, NULL);
            if (rc == MU_EQUOTA)
                break;
            assert_int_equal(rc, 0);
            got[d.node_index]++;
            mu_sched_node_add_vm(&s->nodes[d.node_index], 100000 + count, req.vcpus, req.ram_mib,
                                 req.disk_gib, req.group_id);
            if (++count > total)
                fail_msg("seed %" PRIu64 " iteration %d: placed more than the headroom %" PRId64,
                         seed, iter, total);
        }
        if (count != total)
            fail_msg("seed %" PRIu64 " iteration %d: headroom %" PRId64 " but placed %" PRId64,
                     seed, iter, total, count);
        for (size_t i = 0; i < s->n_nodes; i++)
            if (got[i] != per[i])
                fail_msg("seed %" PRIu64 " iteration %d: node %zu: headroom %" PRId64
                         " but placed %" PRId64,
                         seed, iter, i, per[i], got[i]);
        /* And the headroom is now 0. */
        assert_int_equal(mu_sched_headroom(s, &p, &req, NULL, &total, NULL), 0);
        assert_int_equal(total, 0);
        placed_total += count;
        mu_sched_snapshot_free(s);
    }
    /* The layouts are not all trivially empty or full. */
    assert_true(placed_total > 3000);
}

/* ---- N+1 ---------------------------------------------------------------------------------- */

static void check_n1(const struct mu_sched_snapshot *s, const struct mu_sched_policy *p,
                     struct mu_sched_n1_node *per, struct mu_sched_n1 *v)
{
    /* The check only reads the snapshot. */
    int64_t *before = calloc(s->n_nodes + 1, sizeof *before);
    for (size_t i = 0; i < s->n_nodes; i++)
        before[i] = s->nodes[i].alloc_ram_mib + s->nodes[i].alloc_vcpus * 1000000 +
                    s->nodes[i].alloc_disk_gib * 1000000000 + (int64_t)s->nodes[i].n_groups;
    assert_int_equal(mu_sched_n1_check(s, p, per, v, NULL), 0);
    for (size_t i = 0; i < s->n_nodes; i++)
        assert_int_equal(before[i], s->nodes[i].alloc_ram_mib + s->nodes[i].alloc_vcpus * 1000000 +
                                        s->nodes[i].alloc_disk_gib * 1000000000 +
                                        (int64_t)s->nodes[i].n_groups);
    free(before);
}

static void test_n1_holds(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    for (int64_t id = 1; id <= 3; id++)
        mu_sched_node_add_vm(add(s, id, 8, 9216, 100), id, 2, 4096, 10, 0);
    add(s, 4, 8, 9216, 100)->op_state = MU_SCHED_OP_MAINTENANCE; /* no VMs: not checked */

    struct mu_sched_n1_node per[4];
    struct mu_sched_n1 v;
    check_n1(s, &p, per, &v);
    assert_true(v.ok);
    assert_int_equal(v.nodes_checked, 3);
    assert_int_equal(v.nodes_failing, 0);
    assert_int_equal(v.worst_node_id, 0);
    assert_string_equal(v.summary, "N+1 holds: the VMs of any one of 3 nodes fit on the others");
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(per[i].node_id, (int64_t)i + 1);
        assert_int_equal(per[i].unplaced, 0);
    }
    assert_int_equal(per[0].vms, 1);
    assert_int_equal(per[3].vms, 0);

    /* One more 4 GiB VM on nodes 1 and 2 fills them: any loss strands 4 GiB, and the
     * lowest id is named among equals. */
    mu_sched_node_add_vm(&s->nodes[0], 10, 2, 4096, 10, 0);
    mu_sched_node_add_vm(&s->nodes[1], 11, 2, 4096, 10, 0);
    check_n1(s, &p, per, &v);
    assert_false(v.ok);
    assert_int_equal(v.nodes_failing, 3);
    assert_int_equal(v.worst_node_id, 1);
    assert_int_equal(v.worst.unplaced, 1);
    assert_int_equal(v.worst.short_ram_mib, 4096);
    assert_int_equal(per[2].unplaced, 1);
    assert_string_equal(v.summary, "short by 4 GiB of memory if node-1 fails "
                                   "(1 of 2 VMs without a node; 3 nodes fail the check)");

    struct mu_sched_snapshot *empty = mu_sched_snapshot_new(0);
    check_n1(empty, &p, NULL, &v);
    assert_true(v.ok);
    assert_string_equal(v.summary, "N+1 holds: no node has VMs");
    mu_sched_snapshot_free(empty);
    mu_sched_snapshot_free(s);
}

/* The example of the capacity issue: node-3 strands 12 GiB. */
static void test_n1_short(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    for (int64_t id = 1; id <= 2; id++) {
        struct mu_sched_node *n = add(s, id, 16, 17408, 500); /* 16384 MiB */
        for (int k = 0; k < 3; k++)
            mu_sched_node_add_vm(n, id * 10 + k, 2, 4096, 20, 0); /* 4096 free */
    }
    struct mu_sched_node *n3 = add(s, 3, 32, 33792, 500); /* 32768 MiB */
    for (int k = 0; k < 5; k++)
        mu_sched_node_add_vm(n3, 30 + k, 2, 4096, 20, 0); /* 12288 free */

    struct mu_sched_n1_node per[3];
    struct mu_sched_n1 v;
    check_n1(s, &p, per, &v);
    assert_false(v.ok);
    assert_int_equal(v.nodes_checked, 3);
    assert_int_equal(v.nodes_failing, 1);
    assert_int_equal(v.worst_node_id, 3);
    assert_int_equal(per[0].unplaced, 0);
    assert_int_equal(per[1].unplaced, 0);
    assert_int_equal(per[2].unplaced, 3);
    assert_int_equal(per[2].short_ram_mib, 12288);
    assert_int_equal(per[2].short_vcpus, 0);
    assert_string_equal(v.summary, "short by 12 GiB of memory if node-3 fails "
                                   "(3 of 5 VMs without a node)");

    /* Node 1 in maintenance takes nothing (its own VMs still fit elsewhere). */
    s->nodes[0].op_state = MU_SCHED_OP_MAINTENANCE;
    check_n1(s, &p, per, &v);
    assert_int_equal(v.nodes_failing, 1);
    assert_int_equal(v.worst_node_id, 3);
    assert_int_equal(v.worst.unplaced, 4);
    assert_string_equal(v.summary, "short by 16 GiB of memory if node-3 fails "
                                   "(4 of 5 VMs without a node)");
    mu_sched_snapshot_free(s);
}

/* Largest first: 6 GiB then 3 + 3 fit in two holes of 6 GiB; smallest first would not. */
static void test_n1_largest_first(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    struct mu_sched_node *n1 = add(s, 1, 16, 33792, 500); /* 32768 MiB */
    mu_sched_node_add_vm(n1, 1, 1, 3072, 10, 0);
    mu_sched_node_add_vm(n1, 2, 1, 3072, 10, 0);
    mu_sched_node_add_vm(n1, 3, 1, 6144, 10, 0);
    for (int64_t id = 2; id <= 3; id++) {
        struct mu_sched_node *n = add(s, id, 16, 17408, 500); /* 16384 MiB */
        for (int k = 0; k < 10; k++)
            mu_sched_node_add_vm(n, id * 100 + k, 1, 1024, 10, 0); /* 6144 free */
    }
    struct mu_sched_n1 v;
    check_n1(s, &p, NULL, &v);
    assert_true(v.ok);
    assert_int_equal(v.nodes_checked, 3);

    /* With a 1 GiB VM more on node 1, something is left over. */
    mu_sched_node_add_vm(n1, 4, 1, 1024, 10, 0);
    check_n1(s, &p, NULL, &v);
    assert_false(v.ok);
    assert_int_equal(v.worst_node_id, 1);
    assert_int_equal(v.worst.unplaced, 1);
    assert_int_equal(v.worst.short_ram_mib, 1024);
    assert_string_equal(v.summary, "short by 1 GiB of memory if node-1 fails "
                                   "(1 of 4 VMs without a node)");
    mu_sched_snapshot_free(s);
}

/* Rules, not size: anti-affinity and labels keep VMs off the survivors. */
static void test_n1_rules(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    mu_sched_node_add_vm(add(s, 1, 16, 65536, 500), 1, 2, 2048, 10, 5);
    mu_sched_node_add_vm(add(s, 2, 16, 65536, 500), 2, 2, 2048, 10, 5);

    struct mu_sched_n1 v;
    check_n1(s, &p, NULL, &v);
    assert_false(v.ok);
    assert_int_equal(v.nodes_failing, 2);
    assert_int_equal(v.worst_node_id, 1);
    assert_int_equal(v.worst.unplaced_rules, 1);
    assert_int_equal(v.worst.short_ram_mib, 0);
    assert_string_equal(v.summary, "if node-1 fails, 1 VM has no other node its rules allow "
                                   "(1 of 1 VMs without a node; 2 nodes fail the check)");

    /* A third node takes either VM. */
    add(s, 3, 16, 65536, 500);
    check_n1(s, &p, NULL, &v);
    assert_true(v.ok);

    /* Unless the VMs must stay on site a, which node 3 is not. */
    for (size_t i = 0; i < 2; i++) {
        mu_sched_node_set_label(&s->nodes[i], "site", "a");
        mu_sched_vm_add_label(&s->nodes[i].vms[0], "site=a");
    }
    mu_sched_node_set_label(&s->nodes[2], "site", "b");
    check_n1(s, &p, NULL, &v);
    assert_false(v.ok);
    assert_int_equal(v.worst.unplaced_rules, 1);
    mu_sched_snapshot_free(s);
}

/* Short of vCPUs rather than memory, and of both at once. */
static void test_n1_vcpus(void **state)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(0);
    struct mu_sched_policy p = defaults();
    struct mu_sched_node *n1 = add(s, 1, 2, 65536, 500); /* 8 vCPU */
    mu_sched_node_add_vm(n1, 1, 4, 1024, 10, 0);
    mu_sched_node_add_vm(n1, 2, 4, 1024, 10, 0);
    mu_sched_node_add_vm(add(s, 2, 4, 65536, 500), 3, 4, 1024, 10, 0); /* 16 vCPU */

    struct mu_sched_n1 v;
    check_n1(s, &p, NULL, &v);
    assert_false(v.ok);
    assert_int_equal(v.nodes_failing, 1);
    assert_int_equal(v.worst_node_id, 2);
    assert_int_equal(v.worst.short_vcpus, 4);
    assert_string_equal(v.summary, "short by 4 vCPUs if node-2 fails "
                                   "(1 of 1 VMs without a node)");

    /* A third node with room for memory but not vCPUs, another with neither. */
    struct mu_sched_node *n3 = add(s, 3, 1, 5120, 500); /* 4 vCPU, 4096 MiB */
    mu_sched_node_add_vm(n3, 4, 4, 1024, 10, 0);
    add(s, 4, 64, 2048, 500); /* 1024 MiB */
    s->nodes[1].vms[0].ram_mib = 8192;
    s->nodes[1].alloc_ram_mib = 8192;
    check_n1(s, &p, NULL, &v);
    assert_int_equal(v.worst_node_id, 2);
    assert_int_equal(v.worst.short_vcpus, 4);
    assert_int_equal(v.worst.short_ram_mib, 8192);
    assert_string_equal(v.summary, "short by 8 GiB of memory and 4 vCPUs if node-2 fails "
                                   "(1 of 1 VMs without a node)");
    mu_sched_snapshot_free(s);
}

/* 2,000 nodes: the check runs and agrees with a simple count. */
static void test_n1_thousands(void **state)
{
    enum { N = 2000 };
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(N);
    struct mu_sched_policy p = defaults();
    for (int64_t id = 1; id <= N; id++) {
        struct mu_sched_node *n = add(s, id, 32, 66560, 2000); /* 65536 MiB */
        for (int k = 0; k < 10; k++)
            mu_sched_node_add_vm(n, id * 100 + k, 2, 4096, 20, 0);
    }
    struct mu_sched_n1 v;
    struct mu_sched_n1_node *per = calloc(N, sizeof *per);
    check_n1(s, &p, per, &v);
    assert_true(v.ok);
    assert_int_equal(v.nodes_checked, N);

    /* Fill every node but the first to the brim: the first has room for 6 VMs only. */
    for (size_t i = 1; i < N; i++)
        for (int k = 0; k < 6; k++)
            mu_sched_node_add_vm(&s->nodes[i], 1000000 + (int64_t)i * 10 + k, 2, 4096, 20, 0);
    check_n1(s, &p, per, &v);
    assert_false(v.ok);
    assert_int_equal(v.nodes_failing, N);
    assert_int_equal(per[0].unplaced, 10);
    assert_int_equal(per[1].vms, 16);
    assert_int_equal(per[1].unplaced, 16 - 6);
    assert_int_equal(per[1].short_ram_mib, 10 * 4096);
    assert_int_equal(v.worst_node_id, 1);
    assert_string_equal(v.summary, "short by 40 GiB of memory if node-1 fails "
                                   "(10 of 10 VMs without a node; 2000 nodes fail the check)");
    free(per);
    mu_sched_snapshot_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_and_cluster_capacity),
        cmocka_unit_test(test_headroom_hand_computed),
        cmocka_unit_test(test_format_mib),
        cmocka_unit_test(test_headroom_property),
        cmocka_unit_test(test_n1_holds),
        cmocka_unit_test(test_n1_short),
        cmocka_unit_test(test_n1_largest_first),
        cmocka_unit_test(test_n1_rules),
        cmocka_unit_test(test_n1_vcpus),
        cmocka_unit_test(test_n1_thousands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
