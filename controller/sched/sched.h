/* Placement and capacity maths: pure functions over a snapshot of the nodes. No I/O, no
 * logging, no threads, no global state; every function is safe to call from any thread on
 * its own data, and gives the same answer for the same inputs.
 *
 * Units everywhere: vCPUs and physical CPUs as counts, memory in MiB, disk in GiB (of the
 * node's storage pool).
 *
 * Capacity of a node for one resource:
 *     allocatable = floor(physical × ratio)                 (CPU, disk)
 *     allocatable = floor((physical − reserved) × ratio)    (memory)
 *     free        = allocatable − allocated                 (negative when over-committed
 *                                                            after a policy change)
 * Ratios are taken to the thousandth, and the arithmetic is done in integers, so that a
 * ratio of 1.1 never loses a unit to floating-point rounding.
 *
 * A request fits a node if, for every resource, allocated + need <= allocatable. */
#ifndef MU_SCHED_H
#define MU_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"

/* ---- snapshot --------------------------------------------------------------------- */

/* What the operator set (design.md: node state is three separate fields). */
enum mu_sched_op_state {
    MU_SCHED_OP_ACTIVE = 0,
    MU_SCHED_OP_MAINTENANCE, /* no new VMs */
    MU_SCHED_OP_DRAINING,    /* no new VMs; the remaining ones are being moved */
};

/* Health from agent reports: unknown right after a controller start. */
enum mu_sched_health {
    MU_SCHED_HEALTH_UP = 0,
    MU_SCHED_HEALTH_DOWN,
    MU_SCHED_HEALTH_UNKNOWN,
};

/* A VM already on a node, as far as placement cares: what it would need elsewhere.
 * Used by the N+1 check, which re-places the VMs of a failed node. */
struct mu_sched_vm {
    int64_t id;
    int64_t vcpus;
    int64_t ram_mib;
    int64_t disk_gib;
    int64_t group_id; /* anti-affinity group, 0 for none */
    char **labels;    /* required labels, "key=value", owned */
    size_t n_labels;
};

/* Fields read on every placement come first (they share the first cache lines of a node).
 * Labels and groups are set only through mu_sched_node_set_label, mu_sched_node_add_group
 * and mu_sched_node_add_vm, which also keep the two filters that let placement skip most
 * string and group comparisons; the other fields may be written directly. */
struct mu_sched_node {
    int64_t id; /* > 0, unique in the snapshot */
    enum mu_sched_op_state op_state;
    enum mu_sched_health health;
    int64_t cpus;             /* physical CPUs (threads) */
    int64_t mem_mib;          /* physical memory */
    int64_t disk_gib;         /* size of the storage pool */
    int64_t reserved_mem_mib; /* host memory kept back; < 0: the policy's default */
    /* Sums of the flavors of the VMs on the node (mu_sched_node_add_vm adds to them; a
     * caller that keeps counters may set them directly). */
    int64_t alloc_vcpus;
    int64_t alloc_ram_mib;
    int64_t alloc_disk_gib;
    uint64_t label_bloom; /* internal: one bit per label hash */
    uint64_t group_bloom; /* internal: one bit per group hash */
    char **labels;        /* "key=value", one per key, owned */
    size_t n_labels;
    int64_t *groups; /* anti-affinity groups with a VM on this node, no duplicates */
    size_t n_groups;

    char *name;              /* owned */
    bool kvm;                /* hardware virtualisation (else QEMU emulation); informational */
    struct mu_sched_vm *vms; /* optional: needed only by the N+1 check */
    size_t n_vms;
    size_t cap_labels, cap_groups, cap_vms; /* internal */
};

struct mu_sched_snapshot {
    struct mu_sched_node *nodes;
    size_t n_nodes;
    size_t cap_nodes; /* internal */
};

/* An empty snapshot with room for size_hint nodes. Free with mu_sched_snapshot_free. */
struct mu_sched_snapshot *mu_sched_snapshot_new(size_t size_hint);
void mu_sched_snapshot_free(struct mu_sched_snapshot *snap); /* NULL is fine */

/* Appends a node (active, up, everything else zero, reserved memory from the policy) and
 * returns it for the caller to fill in. The pointer stays valid until the next
 * mu_sched_snapshot_add_node on the same snapshot. name is copied (NULL allowed). */
struct mu_sched_node *mu_sched_snapshot_add_node(struct mu_sched_snapshot *snap, int64_t id,
                                                 const char *name);

/* Sets label key=value on the node, replacing an earlier value of the same key.
 * Both strings are copied. */
void mu_sched_node_set_label(struct mu_sched_node *node, const char *key, const char *value);

/* Records that a VM of anti-affinity group group_id is on the node (idempotent; 0 ignored). */
void mu_sched_node_add_group(struct mu_sched_node *node, int64_t group_id);

/* Records a VM on the node: adds its flavor to the node's allocated sums and its group to
 * the node's groups. Returns the VM record (valid until the next mu_sched_node_add_vm on the
 * same node) so that required labels can be added to it. */
struct mu_sched_vm *mu_sched_node_add_vm(struct mu_sched_node *node, int64_t vm_id, int64_t vcpus,
                                         int64_t ram_mib, int64_t disk_gib, int64_t group_id);

/* Adds a required label ("key=value", copied) to a VM record. */
void mu_sched_vm_add_label(struct mu_sched_vm *vm, const char *label);

/* ---- policy (policies/placement.json) --------------------------------------------- */

enum mu_sched_weigher {
    MU_SCHED_SPREAD = 0, /* the node left with the largest free memory fraction */
    MU_SCHED_PACK,       /* the node left with the smallest free memory fraction */
};

struct mu_sched_policy {
    double cpu_ratio; /* overcommit ratios, taken to the thousandth */
    double ram_ratio;
    double disk_ratio;
    int64_t reserved_mem_mib; /* host memory kept back on nodes that do not set their own */
    enum mu_sched_weigher weigher;
    bool unknown_health_eligible; /* place on nodes whose health is not known yet */
};

/* Limits the parser enforces. */
#define MU_SCHED_RATIO_MIN        0.1
#define MU_SCHED_RATIO_MAX        64.0
#define MU_SCHED_RESERVED_MAX_MIB (1024 * 1024)

/* The defaults: cpu 4.0, ram 1.0, disk 1.0, 1024 MiB reserved, spread, unknown not
 * eligible. Writes *ret_policy. */
void mu_sched_policy_defaults(struct mu_sched_policy *ret_policy);

/* Parses a placement policy (len bytes of JSON, need not be NUL-terminated). origin names
 * the input in messages ("policies/placement.json"). Keys left out keep their default;
 * unknown keys, wrong types and out-of-range values are refused. Returns 0 and writes
 * *ret_policy, or MU_EINVAL with err naming file, line and column
 * ("policies/placement.json: line 3, column 5: unknown key \"cpu_ratoi\" in overcommit"). */
int mu_sched_policy_parse(const char *buf, size_t len, const char *origin,
                          struct mu_sched_policy *ret_policy, struct mu_err *err);

/* ---- placement -------------------------------------------------------------------- */

struct mu_sched_request {
    int64_t vcpus; /* each in [0, 2^40]; at least one > 0 */
    int64_t ram_mib;
    int64_t disk_gib;
    int64_t group_id;          /* anti-affinity group, 0 for none */
    const char *const *labels; /* required labels "key=value", all must match */
    size_t n_labels;
    const int64_t *exclude; /* node ids to skip (admission retries), may be NULL */
    size_t n_exclude;
};

/* How many nodes each filter removed. Filters run in this order and a node is counted by
 * the first one that removes it, so the counts and `fit` add up to the node count. */
struct mu_sched_counts {
    size_t excluded;
    size_t maintenance;
    size_t draining;
    size_t down;
    size_t unknown;
    size_t labels; /* lack a required label */
    size_t group;  /* already host a VM of the request's anti-affinity group */
    size_t no_ram; /* capacity, checked memory first, then vCPU, then disk */
    size_t no_vcpus;
    size_t no_disk;
    size_t fit; /* nodes that passed every filter */
    /* Best remaining fit: the largest free amount among the nodes refused for that
     * resource (-1 when no node was refused for it). */
    int64_t max_free_ram_mib;
    int64_t max_free_vcpus;
    int64_t max_free_disk_gib;
};

#define MU_SCHED_REASON_MAX 512

struct mu_sched_decision {
    bool placed;
    int64_t node_id;   /* the chosen node, 0 when refused */
    size_t node_index; /* its index in snap->nodes, meaningful only when placed */
    struct mu_sched_counts counts;
    /* When refused, a sentence for a person: "no node: 2 in maintenance, 1 down,
     * 5 lack memory (need 4096 MiB, largest free 2048 MiB)". Empty when placed. */
    char reason[MU_SCHED_REASON_MAX];
};

/* Chooses a node for req in one linear pass over snap (no allocation). Filters: node not
 * excluded; operator state active; health up (or unknown, if the policy says so); every
 * required label present; no VM of the request's anti-affinity group on the node; the
 * request fits. The weigher then ranks the survivors by the free memory fraction the node
 * would have left (spread: most, pack: least), then the free vCPU fraction the same way,
 * then the lowest node id, so that equal inputs always give the same node.
 *
 * Returns 0 with the chosen node in *decision; MU_EQUOTA when no node fits, with
 * *decision filled too (a refusal is an answer: counts and reason) and err set to the
 * reason (field "node"); MU_EINVAL for a malformed request (negative sizes, all zero,
 * a label without '='), *decision untouched. Nothing is kept: snap is only read. */
int mu_sched_place(const struct mu_sched_snapshot *snap, const struct mu_sched_policy *policy,
                   const struct mu_sched_request *req, struct mu_sched_decision *decision,
                   struct mu_err *err);

/* ---- capacity ----------------------------------------------------------------------- */

struct mu_sched_resource {
    int64_t physical;
    int64_t allocatable;
    int64_t allocated;
    int64_t free; /* allocatable − allocated; may be negative */
};

struct mu_sched_capacity {
    struct mu_sched_resource vcpus;
    struct mu_sched_resource ram_mib;
    struct mu_sched_resource disk_gib;
};

/* Capacity of one node under the policy. Writes *ret_cap. */
void mu_sched_node_capacity(const struct mu_sched_node *node, const struct mu_sched_policy *policy,
                            struct mu_sched_capacity *ret_cap);

/* True if the node takes new VMs at all under the policy (operator state and health). */
bool mu_sched_node_schedulable(const struct mu_sched_node *node,
                               const struct mu_sched_policy *policy);

/* Cluster sums: *ret_all over every node, *ret_schedulable over the nodes that take new
 * VMs (mu_sched_node_schedulable). Either output may be NULL. */
void mu_sched_cluster_capacity(const struct mu_sched_snapshot *snap,
                               const struct mu_sched_policy *policy,
                               struct mu_sched_capacity *ret_all,
                               struct mu_sched_capacity *ret_schedulable);

/* How many more VMs like req fit, in closed form: per node min over resources of
 * floor(free / need) (a resource with need 0 only asks free >= 0), at most 1 if req names an
 * anti-affinity group the node does not host yet, 0 if any other placement filter removes
 * the node; summed over the nodes. This is exactly how many times mu_sched_place would
 * admit req, one after the other, before it refuses. ret_per_node, if not NULL, has
 * snap->n_nodes entries and receives the per-node figures. Returns 0 and writes
 * *ret_total (and ret_per_node), or MU_EINVAL for a malformed request. */
int mu_sched_headroom(const struct mu_sched_snapshot *snap, const struct mu_sched_policy *policy,
                      const struct mu_sched_request *req, int64_t *ret_per_node, int64_t *ret_total,
                      struct mu_err *err);

/* What the loss of one node does: its VMs re-placed on the others, largest first (memory,
 * then vCPU, then disk, then id), with mu_sched_place's own filters and weigher, each
 * placement counting against the next. */
struct mu_sched_n1_node {
    int64_t node_id;
    size_t vms;      /* VMs on the node */
    size_t unplaced; /* of which found no other node */
    /* Demand left without a home, per resource, counting a VM's need for a resource only
     * when some node refused it for lack of that resource. */
    int64_t short_vcpus;
    int64_t short_ram_mib;
    int64_t short_disk_gib;
    size_t unplaced_rules; /* unplaced for rules (labels, anti-affinity, states), not size */
};

struct mu_sched_n1 {
    bool ok;                       /* every node's VMs fit elsewhere */
    size_t nodes_checked;          /* nodes with at least one VM */
    size_t nodes_failing;          /* nodes whose loss leaves a VM without a node */
    int64_t worst_node_id;         /* 0 when ok */
    struct mu_sched_n1_node worst; /* the failing node that strands the most memory (then
                                      the most VMs, vCPU, lowest id) */
    /* "N+1 holds: the VMs of any one of 12 nodes fit on the others", or
     * "short by 12 GiB of memory if node-3 fails (3 of 20 VMs without a node; 2 nodes fail
     * the check)". */
    char summary[MU_SCHED_REASON_MAX];
};

/* The N+1 check over every node that has VMs (snap's VM lists). ret_per_node, if not NULL,
 * has snap->n_nodes entries (nodes without VMs get zeros). Returns 0 and writes *ret.
 * Allocates scratch space proportional to the node count; snap is only read. From 256
 * nodes on, the what-ifs are shared among up to 4 threads (one per online CPU), each with
 * its own scratch; the verdict is the same as a single thread's. */
int mu_sched_n1_check(const struct mu_sched_snapshot *snap, const struct mu_sched_policy *policy,
                      struct mu_sched_n1_node *ret_per_node, struct mu_sched_n1 *ret,
                      struct mu_err *err);

/* Formats a MiB amount for people: "512 MiB", "12 GiB", "1.5 GiB". Returns out. */
const char *mu_sched_format_mib(int64_t mib, char *out, size_t outlen);

/* ---- forecast (forecast.c) ---------------------------------------------------------- */

/* A least-squares line y = intercept + slope_per_day * x through daily peaks of allocation
 * (x = 0 for the oldest day, one per day, the last being today), and when the line meets
 * the allocatable capacity. */
#define MU_SCHED_FORECAST_MIN_POINTS 7

enum mu_sched_forecast_verdict {
    MU_SCHED_FORECAST_TOO_FEW = 0, /* fewer than MU_SCHED_FORECAST_MIN_POINTS: no fit */
    MU_SCHED_FORECAST_FULL,        /* today's peak already reaches the capacity */
    MU_SCHED_FORECAST_NOT_GROWING, /* slope <= 0: never full at this trend */
    MU_SCHED_FORECAST_DAYS,        /* full in days_to_full days */
};

struct mu_sched_forecast {
    enum mu_sched_forecast_verdict verdict;
    double slope_per_day; /* the fit (meaningful unless TOO_FEW) */
    double intercept;
    double r2;           /* coefficient of determination; 1 when every point is on the line */
    double days_to_full; /* from today; 0 when FULL; meaningful for FULL and DAYS */
};

/* Fits peaks[0..n) (oldest first, one per day) against capacity. Returns 0 and writes
 * *ret (verdict TOO_FEW for n < MU_SCHED_FORECAST_MIN_POINTS), or MU_EINVAL for a negative
 * capacity or a NULL array with n > 0. */
int mu_sched_forecast(const int64_t *peaks, size_t n, int64_t capacity,
                      struct mu_sched_forecast *ret, struct mu_err *err);

#endif
