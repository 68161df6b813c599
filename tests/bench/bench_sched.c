/* Placement and capacity benchmarks (run by hand from a Release build, never in CTest).
 *
 *   place:    10,000 nodes, 200,000 VMs; 10,000 decisions, each placed VM counting
 *             against the next; p50/p99/max per decision (target p99 <= 1 ms).
 *   headroom: 2,000 nodes, 100,000 VMs; 10 flavors (target <= 20 ms).
 *   n+1:      2,000 nodes, 100,000 VMs; a full pass (target <= 5 s).
 *
 * Each figure is given twice: wall-clock time, and the CPU time of the thread, which leaves
 * out the time the process spent preempted (on a loaded machine, the wall-clock tail is the
 * scheduler's, not ours).
 *
 * Usage: bench_sched [seed]   (the seed is printed so a run can be repeated) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mutualis/util.h"
#include "sched/sched.h"

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static int64_t rnd_in(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

static int64_t cpu_ns(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

struct flavor {
    int64_t vcpus, ram_mib, disk_gib;
};

static const struct flavor flavors[] = {
    {1, 1024, 10}, {1, 2048, 20}, {2, 2048, 20},   {2, 4096, 40},    {4, 4096, 40},
    {4, 8192, 80}, {8, 8192, 80}, {8, 16384, 160}, {16, 32768, 200}, {2, 1024, 10},
};
#define N_FLAVORS (sizeof flavors / sizeof flavors[0])

static const char *const sites[] = {"a", "b", "c"};

/* A cluster of n nodes carrying about vms VMs, spread at random (some in anti-affinity
 * groups), with a few nodes in maintenance, draining, down or unknown. */
static struct mu_sched_snapshot *build(size_t n, size_t vms)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(n);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "node-%zu", i + 1);
        struct mu_sched_node *node = mu_sched_snapshot_add_node(s, (int64_t)i + 1, name);
        node->cpus = 32 * rnd_in(1, 4);
        node->mem_mib = 131072 * rnd_in(2, 8);
        node->disk_gib = 2048 * rnd_in(1, 4);
        node->kvm = true;
        int64_t st = rnd_in(0, 199);
        if (st == 0)
            node->op_state = MU_SCHED_OP_MAINTENANCE;
        else if (st == 1)
            node->op_state = MU_SCHED_OP_DRAINING;
        else if (st == 2)
            node->health = MU_SCHED_HEALTH_DOWN;
        else if (st == 3)
            node->health = MU_SCHED_HEALTH_UNKNOWN;
        mu_sched_node_set_label(node, "site", sites[i % 3]);
        mu_sched_node_set_label(node, "rack", i % 2 ? "r1" : "r2");
    }
    for (size_t v = 0; v < vms; v++) {
        const struct flavor *f = &flavors[rnd_in(0, N_FLAVORS - 2)];
        struct mu_sched_node *node = &s->nodes[rnd_in(0, (int64_t)n - 1)];
        int64_t group = rnd_in(0, 2) == 0 ? rnd_in(1, (int64_t)vms / 10) : 0;
        struct mu_sched_vm *vm =
            mu_sched_node_add_vm(node, (int64_t)v + 1, f->vcpus, f->ram_mib, f->disk_gib, group);
        if (rnd_in(0, 9) == 0) {
            char label[16];
            snprintf(label, sizeof label, "site=%s", sites[(node->id - 1) % 3]);
            mu_sched_vm_add_label(vm, label);
        }
    }
    return s;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts ns and prints its p50/p99/max in microseconds. */
static void print_dist(const char *what, int64_t *ns, size_t n)
{
    qsort(ns, n, sizeof *ns, cmp_i64);
    printf("  %-5s p50=%.1f us p99=%.1f us max=%.1f us\n", what, (double)ns[n / 2] / 1e3,
           (double)ns[n * 99 / 100] / 1e3, (double)ns[n - 1] / 1e3);
}

static void bench_place(void)
{
    enum { NODES = 10000, VMS = 200000, DECISIONS = 10000 };
    struct mu_sched_policy p;
    mu_sched_policy_defaults(&p);
    int64_t t0 = now_ns();
    struct mu_sched_snapshot *s = build(NODES, VMS);
    printf("place: snapshot of %d nodes and %d VMs built in %.0f ms\n", NODES, VMS,
           (double)(now_ns() - t0) / 1e6);

    int64_t *ns = mu_xcalloc(DECISIONS, sizeof *ns);
    int64_t *cpu = mu_xcalloc(DECISIONS, sizeof *cpu);
    size_t placed = 0, refused = 0;
    for (int k = 0; k < DECISIONS; k++) {
        const struct flavor *f = &flavors[rnd_in(0, N_FLAVORS - 1)];
        const char *labels[2];
        char site[16];
        int64_t exclude[2];
        struct mu_sched_request req = {
            .vcpus = f->vcpus,
            .ram_mib = f->ram_mib,
            .disk_gib = f->disk_gib,
            .labels = labels,
        };
        if (rnd_in(0, 2) == 0)
            req.group_id = rnd_in(1, VMS / 10);
        if (rnd_in(0, 4) == 0) {
            snprintf(site, sizeof site, "site=%s", sites[rnd_in(0, 2)]);
            labels[req.n_labels++] = site;
            if (rnd_in(0, 1))
                labels[req.n_labels++] = "rack=r1";
        }
        if (rnd_in(0, 9) == 0) { /* an admission retry */
            exclude[0] = rnd_in(1, NODES);
            exclude[1] = rnd_in(1, NODES);
            req.exclude = exclude;
            req.n_exclude = 2;
        }
        struct mu_sched_decision d;
        int64_t a = now_ns(), c = cpu_ns();
        int rc = mu_sched_place(s, &p, &req, &d, NULL);
        cpu[k] = cpu_ns() - c;
        ns[k] = now_ns() - a;
        if (rc == 0) {
            placed++;
            mu_sched_node_add_vm(&s->nodes[d.node_index], VMS + k + 1, req.vcpus, req.ram_mib,
                                 req.disk_gib, req.group_id);
        } else {
            refused++;
        }
    }
    printf("place: nodes=%d vms=%d decisions=%d placed=%zu refused=%zu (target p99 <= 1000 us)\n",
           NODES, VMS, DECISIONS, placed, refused);
    print_dist("wall", ns, DECISIONS);
    print_dist("cpu", cpu, DECISIONS);
    free(ns);
    free(cpu);
    mu_sched_snapshot_free(s);
}

static void bench_capacity(void)
{
    enum { NODES = 2000, VMS = 100000, ROUNDS = 20 };
    struct mu_sched_policy p;
    mu_sched_policy_defaults(&p);
    struct mu_sched_snapshot *s = build(NODES, VMS);

    /* Headroom for the 10 flavors, repeated to get a stable figure. */
    int64_t best = INT64_MAX, best_cpu = INT64_MAX, sum = 0;
    for (int r = 0; r < ROUNDS; r++) {
        int64_t a = now_ns(), c = cpu_ns();
        for (size_t f = 0; f < N_FLAVORS; f++) {
            struct mu_sched_request req = {
                .vcpus = flavors[f].vcpus,
                .ram_mib = flavors[f].ram_mib,
                .disk_gib = flavors[f].disk_gib,
            };
            int64_t total;
            if (mu_sched_headroom(s, &p, &req, NULL, &total, NULL) == 0)
                sum += total;
        }
        int64_t t = now_ns() - a, tc = cpu_ns() - c;
        if (t < best)
            best = t;
        if (tc < best_cpu)
            best_cpu = tc;
    }
    printf("headroom: nodes=%d vms=%d flavors=%zu wall=%.3f ms cpu=%.3f ms (best of %d; "
           "target <= 20 ms; %" PRId64 " VMs fit)\n",
           NODES, VMS, N_FLAVORS, (double)best / 1e6, (double)best_cpu / 1e6, ROUNDS, sum / ROUNDS);

    struct mu_sched_n1 v;
    int64_t a = now_ns(), c = cpu_ns();
    mu_sched_n1_check(s, &p, NULL, &v, NULL);
    printf("n+1: nodes=%d vms=%d full pass wall=%.0f ms cpu=%.0f ms (target <= 5000 ms)\n"
           "  %s\n",
           NODES, VMS, (double)(now_ns() - a) / 1e6, (double)(cpu_ns() - c) / 1e6, v.summary);
    mu_sched_snapshot_free(s);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : (uint64_t)time(NULL);
    printf("bench_sched: seed=%" PRIu64 "\n", seed);
    rng = seed ? seed : 1;
    bench_place();
    bench_capacity();
    return 0;
}
