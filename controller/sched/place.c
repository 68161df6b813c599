/* Placement: filters, weigher and the refusal that explains itself, in one linear pass
 * over the snapshot with no allocation. */
#include "sched/sched_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Largest size a request may ask for: keeps every sum far from overflow. */
#define REQ_MAX ((int64_t)1 << 40)

static int64_t ratio_milli(double ratio)
{
    if (!(ratio > 0))
        return 0;
    if (ratio > MU_SCHED_RATIO_MAX)
        ratio = MU_SCHED_RATIO_MAX;
    return (int64_t)llround(ratio * 1000.0);
}

void mu_sched_rules_init(const struct mu_sched_policy *policy, struct mu_sched_rules *ret_rules)
{
    struct mu_sched_rules r = {
        .cpu_milli = ratio_milli(policy->cpu_ratio),
        .ram_milli = ratio_milli(policy->ram_ratio),
        .disk_milli = ratio_milli(policy->disk_ratio),
        .reserved_mem_mib = policy->reserved_mem_mib > 0 ? policy->reserved_mem_mib : 0,
        .weigher = policy->weigher,
        .unknown_ok = policy->unknown_health_eligible,
    };
    *ret_rules = r;
}

/* floor(x × milli / 1000) for x >= 0 without overflowing for any realistic x. */
static inline int64_t scale(int64_t x, int64_t milli)
{
    if (x <= 0)
        return 0;
    return x / 1000 * milli + x % 1000 * milli / 1000;
}

static inline int64_t alloc_vcpus(const struct mu_sched_node *n, const struct mu_sched_rules *r)
{
    return scale(n->cpus, r->cpu_milli);
}

static inline int64_t alloc_ram(const struct mu_sched_node *n, const struct mu_sched_rules *r)
{
    int64_t reserved = n->reserved_mem_mib >= 0 ? n->reserved_mem_mib : r->reserved_mem_mib;
    return scale(n->mem_mib - reserved, r->ram_milli);
}

static inline int64_t alloc_disk(const struct mu_sched_node *n, const struct mu_sched_rules *r)
{
    return scale(n->disk_gib, r->disk_milli);
}

int64_t mu_sched_alloc_vcpus(const struct mu_sched_node *node, const struct mu_sched_rules *r)
{
    return alloc_vcpus(node, r);
}

int64_t mu_sched_alloc_ram(const struct mu_sched_node *node, const struct mu_sched_rules *r)
{
    return alloc_ram(node, r);
}

int64_t mu_sched_alloc_disk(const struct mu_sched_node *node, const struct mu_sched_rules *r)
{
    return alloc_disk(node, r);
}

static bool label_ok(const char *label)
{
    const char *eq = strchr(label, '=');
    return eq && eq != label;
}

int mu_sched_request_check(const struct mu_sched_request *req, struct mu_err *err)
{
    if (req->vcpus < 0 || req->vcpus > REQ_MAX || req->ram_mib < 0 || req->ram_mib > REQ_MAX ||
        req->disk_gib < 0 || req->disk_gib > REQ_MAX)
        return mu_err_setf(err, MU_EINVAL, "flavor",
                           "vCPU, memory and disk must be between 0 and %" PRId64, REQ_MAX);
    if (req->vcpus == 0 && req->ram_mib == 0 && req->disk_gib == 0)
        return mu_err_setf(err, MU_EINVAL, "flavor", "a VM must need some vCPU, memory or disk");
    if (req->group_id < 0)
        return mu_err_setf(err, MU_EINVAL, "group", "anti-affinity group id must not be negative");
    if (req->n_labels > 0 && !req->labels)
        return mu_err_setf(err, MU_EINVAL, "labels", "required labels missing");
    for (size_t i = 0; i < req->n_labels; i++)
        if (!req->labels[i] || !label_ok(req->labels[i]))
            return mu_err_setf(err, MU_EINVAL, "labels",
                               "required label \"%s\" must read key=value",
                               req->labels[i] ? req->labels[i] : "");
    if (req->n_exclude > 0 && !req->exclude)
        return mu_err_setf(err, MU_EINVAL, "exclude", "excluded nodes missing");
    return 0;
}

uint64_t mu_sched_label_bit(const char *label)
{
    /* FNV-1a */
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *c = (const unsigned char *)label; *c; c++)
        h = (h ^ *c) * 1099511628211ULL;
    return (uint64_t)1 << (h >> 58);
}

uint64_t mu_sched_group_bit(int64_t group_id)
{
    /* splitmix64's finaliser */
    uint64_t h = (uint64_t)group_id;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return (uint64_t)1 << (h >> 58);
}

void mu_sched_prepare(const struct mu_sched_request *req, struct mu_sched_prepared *ret_prep)
{
    struct mu_sched_prepared pr = {.req = req};
    for (size_t i = 0; i < req->n_labels; i++)
        pr.label_mask |= mu_sched_label_bit(req->labels[i]);
    if (req->group_id != 0)
        pr.group_bit = mu_sched_group_bit(req->group_id);
    *ret_prep = pr;
}

static inline bool has_label(const struct mu_sched_node *n, const char *label)
{
    for (size_t i = 0; i < n->n_labels; i++)
        if (strcmp(n->labels[i], label) == 0)
            return true;
    return false;
}

static inline bool has_group(const struct mu_sched_node *n, size_t idx, int64_t group, uint64_t bit,
                             const struct mu_sched_overlay *ov)
{
    if (n->group_bloom & bit)
        for (size_t i = 0; i < n->n_groups; i++)
            if (n->groups[i] == group)
                return true;
    if (ov)
        for (size_t i = 0; i < ov->n_groups; i++)
            if (ov->group_node[i] == idx && ov->group_id[i] == group)
                return true;
    return false;
}

static inline enum mu_sched_rule rule(const struct mu_sched_node *n, size_t idx,
                                      const struct mu_sched_rules *r,
                                      const struct mu_sched_prepared *pr,
                                      const struct mu_sched_overlay *ov)
{
    const struct mu_sched_request *req = pr->req;
    for (size_t i = 0; i < req->n_exclude; i++)
        if (req->exclude[i] == n->id)
            return MU_SCHED_RULE_EXCLUDED;
    if (n->op_state == MU_SCHED_OP_MAINTENANCE)
        return MU_SCHED_RULE_MAINTENANCE;
    if (n->op_state != MU_SCHED_OP_ACTIVE)
        return MU_SCHED_RULE_DRAINING;
    if (n->health == MU_SCHED_HEALTH_UNKNOWN) {
        if (!r->unknown_ok)
            return MU_SCHED_RULE_UNKNOWN;
    } else if (n->health != MU_SCHED_HEALTH_UP) {
        return MU_SCHED_RULE_DOWN;
    }
    if (req->n_labels > 0) {
        if ((n->label_bloom & pr->label_mask) != pr->label_mask)
            return MU_SCHED_RULE_LABELS;
        for (size_t i = 0; i < req->n_labels; i++)
            if (!has_label(n, req->labels[i]))
                return MU_SCHED_RULE_LABELS;
    }
    if (req->group_id != 0 && has_group(n, idx, req->group_id, pr->group_bit, ov))
        return MU_SCHED_RULE_GROUP;
    return MU_SCHED_RULE_PASS;
}

enum mu_sched_rule mu_sched_node_rule(const struct mu_sched_node *node,
                                      const struct mu_sched_rules *r,
                                      const struct mu_sched_prepared *pr)
{
    return rule(node, 0, r, pr, NULL);
}

/* The free fraction a node is left with, as an exact ratio num/den (den > 0), so that
 * ranking needs no division and equal fractions compare equal (1/2 = 2/4). */
struct frac {
    int64_t num;
    int64_t den;
};

static inline struct frac left_fraction(int64_t free, int64_t need, int64_t allocatable)
{
    if (allocatable <= 0)
        return (struct frac){0, 1};
    return (struct frac){free - need, allocatable};
}

/* Sign of a − b. Sizes stay below 2^42 (REQ_MAX and realistic hardware), so the products
 * fit in 128 bits. */
static inline int frac_cmp(struct frac a, struct frac b)
{
    __extension__ __int128 x = (__int128)a.num * b.den;
    __extension__ __int128 y = (__int128)b.num * a.den;
    return (x > y) - (x < y);
}

/* A sentence built into a fixed buffer, truncated quietly if it runs long. */
struct text {
    char *buf;
    size_t cap;
    size_t len;
    size_t parts;
};

static void MU_PRINTF(2, 3) append(struct text *t, const char *fmt, ...)
{
    if (t->len + 1 >= t->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    t->len += (size_t)n < t->cap - t->len ? (size_t)n : t->cap - t->len - 1;
}

/* "2 in maintenance", comma-separated from the previous part. False if count is 0. */
static bool part(struct text *t, size_t count, const char *one, const char *many)
{
    if (count == 0)
        return false;
    append(t, "%s%zu %s", t->parts++ ? ", " : "", count, count == 1 ? one : many);
    return true;
}

static void explain(const struct mu_sched_snapshot *snap, const struct mu_sched_request *req,
                    const struct mu_sched_counts *c, char *buf, size_t cap)
{
    struct text t = {.buf = buf, .cap = cap};
    buf[0] = '\0';
    append(&t, "no node: ");
    if (snap->n_nodes == 0) {
        append(&t, "the cluster has no nodes");
        return;
    }
    part(&t, c->excluded, "already tried", "already tried");
    part(&t, c->maintenance, "in maintenance", "in maintenance");
    part(&t, c->draining, "draining", "draining");
    part(&t, c->down, "down", "down");
    part(&t, c->unknown, "with unknown health", "with unknown health");
    if (part(&t, c->labels, req->n_labels == 1 ? "lacks label" : "lacks labels",
             req->n_labels == 1 ? "lack label" : "lack labels"))
        for (size_t i = 0; i < req->n_labels; i++)
            append(&t, "%s%s", i ? " and " : " ", req->labels[i]);
    if (part(&t, c->group, "already hosts", "already host"))
        append(&t, " anti-affinity group %" PRId64, req->group_id);
    if (part(&t, c->no_ram, "lacks memory", "lack memory"))
        append(&t, " (need %" PRId64 " MiB, largest free %" PRId64 " MiB)", req->ram_mib,
               c->max_free_ram_mib);
    if (part(&t, c->no_vcpus, "lacks vCPUs", "lack vCPUs"))
        append(&t, " (need %" PRId64 ", largest free %" PRId64 ")", req->vcpus, c->max_free_vcpus);
    if (part(&t, c->no_disk, "lacks disk", "lack disk"))
        append(&t, " (need %" PRId64 " GiB, largest free %" PRId64 " GiB)", req->disk_gib,
               c->max_free_disk_gib);
}

static inline void note_max(int64_t *max, int64_t free)
{
    if (free < 0)
        free = 0;
    if (free > *max)
        *max = free;
}

bool mu_sched_place_core(const struct mu_sched_snapshot *snap, const struct mu_sched_rules *r,
                         const struct mu_sched_prepared *pr, const struct mu_sched_overlay *ov,
                         struct mu_sched_decision *d)
{
    const struct mu_sched_request *req = pr->req;
    struct mu_sched_counts c = {
        .max_free_ram_mib = -1,
        .max_free_vcpus = -1,
        .max_free_disk_gib = -1,
    };
    size_t best = SIZE_MAX;
    struct frac best_ram = {0, 1}, best_cpu = {0, 1};
    int64_t best_id = 0;
    bool spread = r->weigher != MU_SCHED_PACK;

    for (size_t i = 0; i < snap->n_nodes; i++) {
        const struct mu_sched_node *n = &snap->nodes[i];
        switch (rule(n, i, r, pr, ov)) {
        case MU_SCHED_RULE_PASS:
            break;
        case MU_SCHED_RULE_EXCLUDED:
            c.excluded++;
            continue;
        case MU_SCHED_RULE_MAINTENANCE:
            c.maintenance++;
            continue;
        case MU_SCHED_RULE_DRAINING:
            c.draining++;
            continue;
        case MU_SCHED_RULE_DOWN:
            c.down++;
            continue;
        case MU_SCHED_RULE_UNKNOWN:
            c.unknown++;
            continue;
        case MU_SCHED_RULE_LABELS:
            c.labels++;
            continue;
        case MU_SCHED_RULE_GROUP:
            c.group++;
            continue;
        }

        int64_t cap_ram = alloc_ram(n, r);
        int64_t free_ram = cap_ram - n->alloc_ram_mib - (ov ? ov->ram_mib[i] : 0);
        if (req->ram_mib > free_ram) {
            c.no_ram++;
            note_max(&c.max_free_ram_mib, free_ram);
            continue;
        }
        int64_t cap_cpu = alloc_vcpus(n, r);
        int64_t free_cpu = cap_cpu - n->alloc_vcpus - (ov ? ov->vcpus[i] : 0);
        if (req->vcpus > free_cpu) {
            c.no_vcpus++;
            note_max(&c.max_free_vcpus, free_cpu);
            continue;
        }
        int64_t free_disk = alloc_disk(n, r) - n->alloc_disk_gib - (ov ? ov->disk_gib[i] : 0);
        if (req->disk_gib > free_disk) {
            c.no_disk++;
            note_max(&c.max_free_disk_gib, free_disk);
            continue;
        }
        c.fit++;

        struct frac fr = left_fraction(free_ram, req->ram_mib, cap_ram);
        struct frac fc = left_fraction(free_cpu, req->vcpus, cap_cpu);
        bool better = true;
        if (best != SIZE_MAX) {
            int cmp = frac_cmp(fr, best_ram);
            if (cmp == 0)
                cmp = frac_cmp(fc, best_cpu);
            if (cmp == 0)
                better = n->id < best_id;
            else
                better = spread ? cmp > 0 : cmp < 0;
        }
        if (better) {
            best = i;
            best_ram = fr;
            best_cpu = fc;
            best_id = n->id;
        }
    }

    d->counts = c;
    d->reason[0] = '\0';
    if (best == SIZE_MAX) {
        d->placed = false;
        d->node_id = 0;
        d->node_index = 0;
        explain(snap, req, &c, d->reason, sizeof d->reason);
        return false;
    }
    d->placed = true;
    d->node_id = best_id;
    d->node_index = best;
    return true;
}

int mu_sched_place(const struct mu_sched_snapshot *snap, const struct mu_sched_policy *policy,
                   const struct mu_sched_request *req, struct mu_sched_decision *decision,
                   struct mu_err *err)
{
    struct mu_sched_rules r;
    struct mu_sched_prepared pr;
    int rc = mu_sched_request_check(req, err);
    if (rc < 0)
        return rc;
    mu_sched_rules_init(policy, &r);
    mu_sched_prepare(req, &pr);
    if (mu_sched_place_core(snap, &r, &pr, NULL, decision))
        return 0;
    return mu_err_setf(err, MU_EQUOTA, "node", "%s", decision->reason);
}
