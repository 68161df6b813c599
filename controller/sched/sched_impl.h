/* Inside the sched module only: the compiled policy and the placement core that
 * mu_sched_place, the headroom and the N+1 check share, so that capacity answers come from
 * the very code that places VMs. */
#ifndef MU_SCHED_IMPL_H
#define MU_SCHED_IMPL_H

#include "sched/sched.h"

/* A policy turned into integers: ratios in thousandths. */
struct mu_sched_rules {
    int64_t cpu_milli;
    int64_t ram_milli;
    int64_t disk_milli;
    int64_t reserved_mem_mib;
    enum mu_sched_weigher weigher;
    bool unknown_ok;
};

void mu_sched_rules_init(const struct mu_sched_policy *policy, struct mu_sched_rules *ret_rules);

/* Allocatable amounts of a node under the rules. */
int64_t mu_sched_alloc_vcpus(const struct mu_sched_node *node, const struct mu_sched_rules *r);
int64_t mu_sched_alloc_ram(const struct mu_sched_node *node, const struct mu_sched_rules *r);
int64_t mu_sched_alloc_disk(const struct mu_sched_node *node, const struct mu_sched_rules *r);

/* Allocations made on top of the snapshot during one what-if (the N+1 check): per node
 * index, sums added to the node's allocated amounts, and (node index, group) pairs added
 * to the nodes' anti-affinity groups. */
struct mu_sched_overlay {
    const int64_t *vcpus;
    const int64_t *ram_mib;
    const int64_t *disk_gib;
    const size_t *group_node;
    const int64_t *group_id;
    size_t n_groups;
};

/* 0 if req is well formed, else MU_EINVAL with err set. */
int mu_sched_request_check(const struct mu_sched_request *req, struct mu_err *err);

/* The filter bits of labels and groups (a node whose bloom lacks a bit lacks the label or
 * group; a bit present still needs the exact comparison). */
uint64_t mu_sched_label_bit(const char *label);
uint64_t mu_sched_group_bit(int64_t group_id);

/* A checked request with its filter bits computed once. */
struct mu_sched_prepared {
    const struct mu_sched_request *req;
    uint64_t label_mask;
    uint64_t group_bit;
};
void mu_sched_prepare(const struct mu_sched_request *req, struct mu_sched_prepared *ret_prep);

/* The one placement pass (req already checked). ov may be NULL. Fills *d; returns true
 * when a node was chosen. */
bool mu_sched_place_core(const struct mu_sched_snapshot *snap, const struct mu_sched_rules *r,
                         const struct mu_sched_prepared *pr, const struct mu_sched_overlay *ov,
                         struct mu_sched_decision *d);

/* Why a node is removed before capacity is looked at. */
enum mu_sched_rule {
    MU_SCHED_RULE_PASS = 0,
    MU_SCHED_RULE_EXCLUDED,
    MU_SCHED_RULE_MAINTENANCE,
    MU_SCHED_RULE_DRAINING,
    MU_SCHED_RULE_DOWN,
    MU_SCHED_RULE_UNKNOWN,
    MU_SCHED_RULE_LABELS,
    MU_SCHED_RULE_GROUP,
};

/* The filters other than capacity, for one node without overlay, exactly as
 * mu_sched_place_core applies them. */
enum mu_sched_rule mu_sched_node_rule(const struct mu_sched_node *node,
                                      const struct mu_sched_rules *r,
                                      const struct mu_sched_prepared *pr);

#endif
