/* Capacity answers for operators: per node and cluster figures, headroom per flavor in
 * closed form, and the N+1 check, which re-places VMs with the placement core itself. */
#include "sched/sched_impl.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mutualis/util.h"

static void resource(struct mu_sched_resource *res, int64_t physical, int64_t allocatable,
                     int64_t allocated)
{
    res->physical = physical;
    res->allocatable = allocatable;
    res->allocated = allocated;
    res->free = allocatable - allocated;
}

void mu_sched_node_capacity(const struct mu_sched_node *node, const struct mu_sched_policy *policy,
                            struct mu_sched_capacity *ret_cap)
{
    struct mu_sched_rules r;
    struct mu_sched_capacity cap;
    mu_sched_rules_init(policy, &r);
    resource(&cap.vcpus, node->cpus, mu_sched_alloc_vcpus(node, &r), node->alloc_vcpus);
    resource(&cap.ram_mib, node->mem_mib, mu_sched_alloc_ram(node, &r), node->alloc_ram_mib);
    resource(&cap.disk_gib, node->disk_gib, mu_sched_alloc_disk(node, &r), node->alloc_disk_gib);
    *ret_cap = cap;
}

bool mu_sched_node_schedulable(const struct mu_sched_node *node,
                               const struct mu_sched_policy *policy)
{
    if (node->op_state != MU_SCHED_OP_ACTIVE)
        return false;
    return node->health == MU_SCHED_HEALTH_UP ||
           (node->health == MU_SCHED_HEALTH_UNKNOWN && policy->unknown_health_eligible);
}

static void add_resource(struct mu_sched_resource *sum, const struct mu_sched_resource *res)
{
    sum->physical += res->physical;
    sum->allocatable += res->allocatable;
    sum->allocated += res->allocated;
    sum->free += res->free;
}

static void add_capacity(struct mu_sched_capacity *sum, const struct mu_sched_capacity *cap)
{
    add_resource(&sum->vcpus, &cap->vcpus);
    add_resource(&sum->ram_mib, &cap->ram_mib);
    add_resource(&sum->disk_gib, &cap->disk_gib);
}

void mu_sched_cluster_capacity(const struct mu_sched_snapshot *snap,
                               const struct mu_sched_policy *policy,
                               struct mu_sched_capacity *ret_all,
                               struct mu_sched_capacity *ret_schedulable)
{
    struct mu_sched_capacity all = {0}, sched = {0};
    for (size_t i = 0; i < snap->n_nodes; i++) {
        struct mu_sched_capacity cap;
        mu_sched_node_capacity(&snap->nodes[i], policy, &cap);
        add_capacity(&all, &cap);
        if (mu_sched_node_schedulable(&snap->nodes[i], policy))
            add_capacity(&sched, &cap);
    }
    if (ret_all)
        *ret_all = all;
    if (ret_schedulable)
        *ret_schedulable = sched;
}

/* How many of need fit in free: a resource the request does not use only asks that the
 * node is not already over its allocatable amount (allocated + 0 <= allocatable). */
static int64_t fits(int64_t free, int64_t need)
{
    if (free < 0)
        return 0;
    if (need == 0)
        return INT64_MAX;
    return free / need;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int mu_sched_headroom(const struct mu_sched_snapshot *snap, const struct mu_sched_policy *policy,
                      const struct mu_sched_request *req, int64_t *ret_per_node, int64_t *ret_total,
                      struct mu_err *err)
{
    struct mu_sched_rules r;
    struct mu_sched_prepared pr;
    int rc = mu_sched_request_check(req, err);
    if (rc < 0)
        return rc;
    mu_sched_rules_init(policy, &r);
    mu_sched_prepare(req, &pr);

    int64_t total = 0;
    for (size_t i = 0; i < snap->n_nodes; i++) {
        const struct mu_sched_node *n = &snap->nodes[i];
        int64_t count = 0;
        if (mu_sched_node_rule(n, &r, &pr) == MU_SCHED_RULE_PASS) {
            count = fits(mu_sched_alloc_ram(n, &r) - n->alloc_ram_mib, req->ram_mib);
            count = min64(count, fits(mu_sched_alloc_vcpus(n, &r) - n->alloc_vcpus, req->vcpus));
            count =
                min64(count, fits(mu_sched_alloc_disk(n, &r) - n->alloc_disk_gib, req->disk_gib));
            if (req->group_id != 0)
                count = min64(count, 1);
        }
        if (ret_per_node)
            ret_per_node[i] = count;
        total += count;
    }
    *ret_total = total;
    return 0;
}

const char *mu_sched_format_mib(int64_t mib, char *out, size_t outlen)
{
    if (mib >= 1024 && mib % 1024 == 0)
        snprintf(out, outlen, "%" PRId64 " GiB", mib / 1024);
    else if (mib >= 1024)
        snprintf(out, outlen, "%.1f GiB", (double)mib / 1024.0);
    else
        snprintf(out, outlen, "%" PRId64 " MiB", mib);
    return out;
}

/* ---- N+1 ---------------------------------------------------------------------------- */

/* Largest first: memory, then vCPU, then disk; then the lowest id, for determinism. */
static int vm_cmp(const void *a, const void *b)
{
    const struct mu_sched_vm *x = *(const struct mu_sched_vm *const *)a;
    const struct mu_sched_vm *y = *(const struct mu_sched_vm *const *)b;
    if (x->ram_mib != y->ram_mib)
        return x->ram_mib > y->ram_mib ? -1 : 1;
    if (x->vcpus != y->vcpus)
        return x->vcpus > y->vcpus ? -1 : 1;
    if (x->disk_gib != y->disk_gib)
        return x->disk_gib > y->disk_gib ? -1 : 1;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return 0;
}

/* Scratch space of one N+1 pass. */
struct n1_scratch {
    int64_t *vcpus, *ram, *disk; /* overlay per node index */
    size_t *touched;             /* node indexes the current what-if wrote to */
    size_t n_touched;
    size_t *group_node;
    int64_t *group_id;
    size_t n_groups;
    const struct mu_sched_vm **order;
};

/* The loss of node f: its VMs placed on the others, each placement counting. */
static void n1_one(const struct mu_sched_snapshot *snap, const struct mu_sched_rules *r, size_t f,
                   struct n1_scratch *s, struct mu_sched_n1_node *out)
{
    const struct mu_sched_node *node = &snap->nodes[f];
    struct mu_sched_overlay ov = {
        .vcpus = s->vcpus,
        .ram_mib = s->ram,
        .disk_gib = s->disk,
        .group_node = s->group_node,
        .group_id = s->group_id,
    };
    struct mu_sched_n1_node res = {.node_id = node->id, .vms = node->n_vms};

    for (size_t i = 0; i < node->n_vms; i++)
        s->order[i] = &node->vms[i];
    qsort(s->order, node->n_vms, sizeof *s->order, vm_cmp);

    for (size_t i = 0; i < node->n_vms; i++) {
        const struct mu_sched_vm *vm = s->order[i];
        struct mu_sched_request req = {
            .vcpus = vm->vcpus,
            .ram_mib = vm->ram_mib,
            .disk_gib = vm->disk_gib,
            .group_id = vm->group_id,
            .labels = (const char *const *)vm->labels,
            .n_labels = vm->n_labels,
            .exclude = &node->id,
            .n_exclude = 1,
        };
        struct mu_sched_decision d;
        struct mu_sched_prepared pr;
        if (mu_sched_request_check(&req, NULL) < 0)
            continue; /* a VM that needs nothing needs no node */
        mu_sched_prepare(&req, &pr);
        ov.n_groups = s->n_groups;
        if (mu_sched_place_core(snap, r, &pr, &ov, &d)) {
            size_t j = d.node_index;
            if (s->vcpus[j] == 0 && s->ram[j] == 0 && s->disk[j] == 0)
                s->touched[s->n_touched++] = j;
            s->vcpus[j] += vm->vcpus;
            s->ram[j] += vm->ram_mib;
            s->disk[j] += vm->disk_gib;
            if (vm->group_id != 0) {
                s->group_node[s->n_groups] = j;
                s->group_id[s->n_groups++] = vm->group_id;
            }
            continue;
        }
        res.unplaced++;
        bool size = false;
        if (d.counts.no_ram > 0) {
            res.short_ram_mib += vm->ram_mib;
            size = true;
        }
        if (d.counts.no_vcpus > 0) {
            res.short_vcpus += vm->vcpus;
            size = true;
        }
        if (d.counts.no_disk > 0) {
            res.short_disk_gib += vm->disk_gib;
            size = true;
        }
        if (!size)
            res.unplaced_rules++;
    }

    /* Undo the what-if for the next node. */
    for (size_t i = 0; i < s->n_touched; i++) {
        size_t j = s->touched[i];
        s->vcpus[j] = s->ram[j] = s->disk[j] = 0;
    }
    s->n_touched = 0;
    s->n_groups = 0;
    *out = res;
}

/* The N+1 pass shares its what-ifs among threads from this many nodes on (below, one
 * thread is quicker than starting others), with at most N1_MAX_THREADS. */
#define N1_PARALLEL_MIN_NODES 256
#define N1_MAX_THREADS        4

struct n1_work {
    const struct mu_sched_snapshot *snap;
    const struct mu_sched_rules *rules;
    size_t first, step; /* the node indexes first, first + step, ... */
    size_t max_vms;
    struct mu_sched_n1_node *out; /* one per node, shared: each thread writes its own */
};

/* Runs the what-ifs of one share of the nodes with a scratch of its own. */
static void *n1_worker(void *arg)
{
    const struct n1_work *w = arg;
    size_t n = w->snap->n_nodes;
    struct n1_scratch s = {
        .vcpus = mu_xcalloc(n + 1, sizeof *s.vcpus),
        .ram = mu_xcalloc(n + 1, sizeof *s.ram),
        .disk = mu_xcalloc(n + 1, sizeof *s.disk),
        .touched = mu_xcalloc(w->max_vms + 1, sizeof *s.touched),
        .group_node = mu_xcalloc(w->max_vms + 1, sizeof *s.group_node),
        .group_id = mu_xcalloc(w->max_vms + 1, sizeof *s.group_id),
        .order = mu_xcalloc(w->max_vms + 1, sizeof *s.order),
    };
    for (size_t i = w->first; i < n; i += w->step) {
        w->out[i] = (struct mu_sched_n1_node){.node_id = w->snap->nodes[i].id};
        if (w->snap->nodes[i].n_vms > 0)
            n1_one(w->snap, w->rules, i, &s, &w->out[i]);
    }
    free(s.vcpus);
    free(s.ram);
    free(s.disk);
    free(s.touched);
    free(s.group_node);
    free(s.group_id);
    free(s.order);
    return NULL;
}

/* Is a worse than b: strands more memory, then more VMs, then more vCPU, then lower id. */
static bool n1_worse(const struct mu_sched_n1_node *a, const struct mu_sched_n1_node *b)
{
    if (a->short_ram_mib != b->short_ram_mib)
        return a->short_ram_mib > b->short_ram_mib;
    if (a->unplaced != b->unplaced)
        return a->unplaced > b->unplaced;
    if (a->short_vcpus != b->short_vcpus)
        return a->short_vcpus > b->short_vcpus;
    return a->node_id < b->node_id;
}

static void n1_summary(const struct mu_sched_n1 *v, const char *name, char *buf, size_t cap)
{
    if (v->ok) {
        if (v->nodes_checked == 0)
            snprintf(buf, cap, "N+1 holds: no node has VMs");
        else
            snprintf(buf, cap, "N+1 holds: the VMs of any one of %zu node%s fit on the others",
                     v->nodes_checked, v->nodes_checked == 1 ? "" : "s");
        return;
    }

    const struct mu_sched_n1_node *w = &v->worst;
    char what[192] = "", mem[32], tail[160];
    size_t len = 0, n = 0;
    const char *items[3];
    char cpu[48], disk[48], ram[48];
    if (w->short_ram_mib > 0) {
        snprintf(ram, sizeof ram, "%s of memory",
                 mu_sched_format_mib(w->short_ram_mib, mem, sizeof mem));
        items[n++] = ram;
    }
    if (w->short_vcpus > 0) {
        snprintf(cpu, sizeof cpu, "%" PRId64 " vCPU%s", w->short_vcpus,
                 w->short_vcpus == 1 ? "" : "s");
        items[n++] = cpu;
    }
    if (w->short_disk_gib > 0) {
        snprintf(disk, sizeof disk, "%" PRId64 " GiB of disk", w->short_disk_gib);
        items[n++] = disk;
    }
    for (size_t i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " and " : ", ";
        int k = snprintf(what + len, sizeof what - len, "%s%s", sep, items[i]);
        if (k > 0 && (size_t)k < sizeof what - len)
            len += (size_t)k;
    }

/* The summary is bounded by design (MU_SCHED_REASON_MAX): a cut sentence is acceptable. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
    if (v->nodes_failing > 1)
        snprintf(tail, sizeof tail, "(%zu of %zu VMs without a node; %zu nodes fail the check)",
                 w->unplaced, w->vms, v->nodes_failing);
    else
        snprintf(tail, sizeof tail, "(%zu of %zu VMs without a node)", w->unplaced, w->vms);

    if (n > 0 && w->unplaced_rules > 0)
        snprintf(buf, cap, "short by %s if %s fails, and %zu VM%s no other node %s rules allow %s",
                 what, name, w->unplaced_rules, w->unplaced_rules == 1 ? " has" : "s have",
                 w->unplaced_rules == 1 ? "its" : "their", tail);
    else if (n > 0)
        snprintf(buf, cap, "short by %s if %s fails %s", what, name, tail);
    else
        snprintf(buf, cap, "if %s fails, %zu VM%s no other node %s rules allow %s", name,
                 w->unplaced_rules, w->unplaced_rules == 1 ? " has" : "s have",
                 w->unplaced_rules == 1 ? "its" : "their", tail);
#pragma GCC diagnostic pop
}

int mu_sched_n1_check(const struct mu_sched_snapshot *snap, const struct mu_sched_policy *policy,
                      struct mu_sched_n1_node *ret_per_node, struct mu_sched_n1 *ret,
                      struct mu_err *err)
{
    struct mu_sched_rules r;
    struct mu_sched_n1 v = {.ok = true};
    size_t n = snap->n_nodes, max_vms = 0, worst = SIZE_MAX;
    mu_sched_rules_init(policy, &r);

    for (size_t i = 0; i < n; i++)
        if (snap->nodes[i].n_vms > max_vms)
            max_vms = snap->nodes[i].n_vms;

    /* Each node's loss is independent of the others': the what-ifs are shared out among
     * a few threads (each with its own scratch), then read back in node order, so the
     * verdict does not depend on how the work was shared. */
    struct mu_sched_n1_node *per = ret_per_node ? ret_per_node : mu_xcalloc(n + 1, sizeof *per);
    size_t nthreads = 1;
    if (n >= N1_PARALLEL_MIN_NODES) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = cpus > 1 ? (size_t)cpus : 1;
        if (nthreads > N1_MAX_THREADS)
            nthreads = N1_MAX_THREADS;
    }
    struct n1_work work[N1_MAX_THREADS];
    pthread_t threads[N1_MAX_THREADS];
    bool started[N1_MAX_THREADS] = {false};
    for (size_t t = 0; t < nthreads; t++)
        work[t] = (struct n1_work){.snap = snap,
                                   .rules = &r,
                                   .first = t,
                                   .step = nthreads,
                                   .max_vms = max_vms,
                                   .out = per};
    for (size_t t = 1; t < nthreads; t++)
        started[t] = pthread_create(&threads[t], NULL, n1_worker, &work[t]) == 0;
    n1_worker(&work[0]);
    for (size_t t = 1; t < nthreads; t++) {
        if (started[t])
            pthread_join(threads[t], NULL);
        else
            n1_worker(&work[t]); /* no thread: this share runs here */
    }

    for (size_t i = 0; i < n; i++) {
        const struct mu_sched_n1_node *res = &per[i];
        if (snap->nodes[i].n_vms == 0)
            continue;
        v.nodes_checked++;
        if (res->unplaced > 0) {
            v.nodes_failing++;
            if (worst == SIZE_MAX || n1_worse(res, &v.worst)) {
                worst = i;
                v.worst = *res;
            }
        }
    }
    if (per != ret_per_node)
        free(per);

    char name[96];
    if (worst != SIZE_MAX) {
        v.ok = false;
        v.worst_node_id = v.worst.node_id;
        if (snap->nodes[worst].name)
            snprintf(name, sizeof name, "%s", snap->nodes[worst].name);
        else
            snprintf(name, sizeof name, "node %" PRId64, v.worst.node_id);
    } else {
        name[0] = '\0';
    }
    n1_summary(&v, name, v.summary, sizeof v.summary);
    *ret = v;
    return 0;
}
