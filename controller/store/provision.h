/* The provisioning half of the store: nodes, flavors, images, anti-affinity groups, VMs,
 * quotas and usage counters, operations. Same rules as store.h: every mutation in one
 * BEGIN IMMEDIATE transaction with its audit entry, synced before returning.
 *
 * Admission (mu_store_vm_admit) is the one place that checks quotas and node capacity and
 * inserts a VM. Usage is kept as counters: for each tenant, the sum of the allocations of
 * the VMs in its whole subtree (tenant_usage), and for each node the sum of its VMs
 * (nodes.alloc_*). Counters change only inside the transactions that change VMs, so the
 * admission reads O(depth) rows under the lock, never the subtree; mu_store_usage_recount
 * recomputes them from the VM rows and reports any mismatch. */
#ifndef MU_STORE_PROVISION_H
#define MU_STORE_PROVISION_H

#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/store.h"

/* ---- nodes ------------------------------------------------------------------------- */
struct mu_node {
    int64_t id;
    char *name;                      /* mu_ident_valid */
    char *uri;                       /* libvirt URI (mu_virt_uri_valid) */
    char *pool;                      /* storage pool name on the node ("mutualis") */
    char *pool_path;                 /* where to create it if absent, or NULL */
    char *op_state;                  /* active, maintenance, draining (the operator's) */
    char *health;                    /* up, down, unknown (from agents; "unknown" at start) */
    char *enrolment;                 /* none, pending, enrolled */
    int64_t cpus, mem_mib, disk_gib; /* physical, as last read from libvirt (0: not yet) */
    int64_t reserved_mem_mib;        /* -1: the placement policy's default */
    bool kvm;
    char *labels_json;                                            /* {"site":"a","zone":"1"} */
    int64_t alloc_vcpus, alloc_ram_mib, alloc_disk_gib, vm_count; /* counters */
    int64_t created_ms, updated_ms, info_ms;                      /* info_ms: last capacity read */
    char *last_error;       /* last connection error, or NULL */
    int64_t health_ms;      /* last change of health (0: never recorded) */
    int64_t last_report_ms; /* the agent's last stored report (0: never) */
};
void mu_node_clear(struct mu_node *n);
void mu_nodes_free(struct mu_node *n, size_t count);

int mu_store_node_insert(struct mu_store *st, const struct mu_node *n,
                         const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
int mu_store_node_get(struct mu_store *st, int64_t id, struct mu_node *ret, struct mu_err *err);
/* All nodes by id (a data centre has at most a few thousand). */
int mu_store_node_list(struct mu_store *st, struct mu_node **ret, size_t *ret_n,
                       struct mu_err *err);
/* Operator state change (audited); MU_EINVAL for an unknown state. */
int mu_store_node_set_state(struct mu_store *st, int64_t id, const char *op_state,
                            const struct mu_audit_rec *audit, struct mu_err *err);
int mu_store_node_set_labels(struct mu_store *st, int64_t id, const char *labels_json,
                             const struct mu_audit_rec *audit, struct mu_err *err);
/* Capacity read from libvirt (not audited: an observation). error NULL on success. */
int mu_store_node_set_info(struct mu_store *st, int64_t id, int64_t cpus, int64_t mem_mib,
                           int64_t disk_gib, bool kvm, const char *error, struct mu_err *err);
/* Health from the libvirt probe, for nodes without an agent (not audited); health_ms
 * records the time of a change. Agent-managed nodes: store/telemetry.h. */
int mu_store_node_set_health(struct mu_store *st, int64_t id, const char *health,
                             struct mu_err *err);
/* Deletes a node without VMs (MU_ECONFLICT otherwise, naming how many remain), revoking
 * its client certificates and removing its reports (store/telemetry.h). */
int mu_store_node_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                         struct mu_err *err);

/* ---- flavors and images ------------------------------------------------------------ */
struct mu_flavor {
    int64_t id;
    char *name;
    int64_t vcpus, ram_mib, disk_gib;
    int64_t created_ms;
};
void mu_flavor_clear(struct mu_flavor *f);
void mu_flavors_free(struct mu_flavor *f, size_t n);
int mu_store_flavor_insert(struct mu_store *st, const struct mu_flavor *f,
                           const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
int mu_store_flavor_get(struct mu_store *st, int64_t id, struct mu_flavor *ret, struct mu_err *err);
int mu_store_flavor_get_by_name(struct mu_store *st, const char *name, struct mu_flavor *ret,
                                struct mu_err *err);
int mu_store_flavor_list(struct mu_store *st, struct mu_flavor **ret, size_t *ret_n,
                         struct mu_err *err);
/* Refused (MU_ECONFLICT) while VMs use it. */
int mu_store_flavor_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                           struct mu_err *err);

struct mu_image {
    int64_t id;
    char *name;
    char *format; /* qcow2 or raw: explicit, never guessed */
    int64_t size_bytes;
    char sha256[65];
    char *path;   /* the controller's copy: <data_dir>/images/<id>.<format> */
    char *status; /* uploading, ready */
    /* Optional direct kernel boot, for images that carry a kernel outside the disk (the
     * test guest): absolute paths on the nodes, or NULL. */
    char *kernel, *initrd, *cmdline;
    int64_t created_ms;
};
void mu_image_clear(struct mu_image *i);
void mu_images_free(struct mu_image *i, size_t n);
int mu_store_image_insert(struct mu_store *st, const struct mu_image *i,
                          const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
/* Marks an uploaded image ready with its final size, checksum and path. */
int mu_store_image_set_ready(struct mu_store *st, int64_t id, int64_t size_bytes,
                             const char *sha256, const char *path, struct mu_err *err);
int mu_store_image_get(struct mu_store *st, int64_t id, struct mu_image *ret, struct mu_err *err);
int mu_store_image_list(struct mu_store *st, struct mu_image **ret, size_t *ret_n,
                        struct mu_err *err);
int mu_store_image_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                          struct mu_err *err);
/* Records that node_id holds a verified copy of image_id (0 no, 1 yes for _has). */
int mu_store_image_copy_set(struct mu_store *st, int64_t image_id, int64_t node_id,
                            struct mu_err *err);
int mu_store_image_copy_has(struct mu_store *st, int64_t image_id, int64_t node_id,
                            struct mu_err *err);

/* ---- anti-affinity groups ---------------------------------------------------------- */
struct mu_group {
    int64_t id;
    int64_t tenant_id;
    char *name;
    int64_t created_ms;
};
void mu_group_clear(struct mu_group *g);
void mu_groups_free(struct mu_group *g, size_t n);
int mu_store_group_insert(struct mu_store *st, const struct mu_group *g,
                          const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
int mu_store_group_get(struct mu_store *st, int64_t id, struct mu_group *ret, struct mu_err *err);
/* scope_id 0: all; else groups of tenants in that subtree. */
int mu_store_group_list(struct mu_store *st, int64_t scope_id, struct mu_group **ret, size_t *ret_n,
                        struct mu_err *err);
int mu_store_group_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                          struct mu_err *err);
/* Node ids hosting a VM of the group (for the placement snapshot). */
int mu_store_group_nodes(struct mu_store *st, int64_t group_id, int64_t **ret_ids, size_t *ret_n,
                         struct mu_err *err);

/* ---- quotas ------------------------------------------------------------------------ */
#define MU_UNLIMITED (-1)
struct mu_limits {
    int64_t vcpus, ram_mib, disk_gib, vms; /* MU_UNLIMITED or >= 0 */
    int64_t networks, public_ips;          /* private networks; NICs on provider networks */
};
struct mu_usage {
    int64_t vcpus, ram_mib, disk_gib, vms;
    int64_t networks, public_ips;
};
/* Default limits for a tenant with no explicit quota, from policies/quotas.json (the
 * caller's policy: kind and population bands). Must be pure and fast. */
typedef void (*mu_quota_default_fn)(void *ctx, const char *kind, int64_t population,
                                    struct mu_limits *ret);
struct mu_quota_defaults {
    mu_quota_default_fn fn;
    void *ctx;
};
/* Explicit limits for a tenant (audited); NULL limits removes them (back to defaults). */
int mu_store_quota_set(struct mu_store *st, int64_t tenant_id, const struct mu_limits *limits,
                       const struct mu_audit_rec *audit, struct mu_err *err);

struct mu_quota_level {
    int64_t tenant_id;
    char *tenant_name;
    struct mu_limits limits; /* effective */
    bool explicit_limits;    /* set by an operator, not from the policy */
    struct mu_usage usage;   /* the whole subtree's allocation */
};
void mu_quota_levels_free(struct mu_quota_level *l, size_t n);
/* Limits and usage of the tenant and each ancestor, root first. */
int mu_store_quota_levels(struct mu_store *st, int64_t tenant_id,
                          const struct mu_quota_defaults *defaults, struct mu_quota_level **ret,
                          size_t *ret_n, struct mu_err *err);
/* The own level (effective limits and subtree usage) of each of n tenants, read in one
 * snapshot: (*ret)[i] is ids[i]'s (free with mu_quota_levels_free(*ret, n)). For views
 * that list many tenants; MU_ENOTFOUND names a tenant that does not exist. */
int mu_store_quota_own_levels(struct mu_store *st, const int64_t *ids, size_t n,
                              const struct mu_quota_defaults *defaults, struct mu_quota_level **ret,
                              struct mu_err *err);

/* ---- VMs --------------------------------------------------------------------------- */
struct mu_vm {
    int64_t id;
    char uuid[37];
    int64_t tenant_id;
    char *name; /* mu_ident_valid-like: [a-z0-9][a-z0-9-]{0,62} */
    int64_t flavor_id;
    int64_t vcpus, ram_mib, disk_gib; /* the allocation (copied from the flavor) */
    int64_t image_id;
    int64_t node_id;      /* 0 before placement */
    int64_t group_id;     /* 0: none */
    char *labels_json;    /* required node labels, ["site=a"], or NULL */
    char *desired_state;  /* running, stopped, deleted */
    char *observed_state; /* pending, running, shutoff, missing, unknown, error, deleted */
    char *last_error;     /* NULL when fine */
    int64_t created_ms, updated_ms;
    int64_t desired_ms;  /* last change of desired_state */
    int64_t observed_ms; /* last change of observed_state */
};
void mu_vm_clear(struct mu_vm *v);
void mu_vms_free(struct mu_vm *v, size_t n);

struct mu_nic_req; /* store/network.h */
struct mu_admit_req {
    struct mu_vm vm; /* tenant_id, name, uuid, flavor_id, vcpus, ram_mib,
                        disk_gib, image_id, group_id, labels_json; an empty
                        uuid gets a random one */
    int64_t node_id; /* placement's choice */
    /* The chosen node's allocatable amounts under the placement policy (after overcommit
     * and reserved memory), computed by the caller with sched/: the transaction re-checks
     * alloc + request <= allocatable against the counters as they are now. */
    int64_t node_cap_vcpus, node_cap_ram_mib, node_cap_disk_gib; /* < 0: not checked */
    bool allow_unknown_health; /* placement policy's place_on_unknown_health */
    const struct mu_quota_defaults *defaults;
    const char *op_params_json; /* stored on the create operation (may be NULL) */
    /* Networks (store/network.h): one NIC per entry, addresses allocated in this same
     * transaction (never twice), public addresses and networks checked against every
     * level's quota. NULL/0: no NIC. */
    const struct mu_nic_req *nics;
    size_t n_nics;
    const char *user_data; /* cloud-init user-data stored with the VM (NULL: none) */
};
/* In one BEGIN IMMEDIATE transaction: re-checks every level's quota (tenant and each
 * ancestor) against the usage counters, the node's state (active), health (up, or unknown
 * if allowed), capacity and the anti-affinity group; inserts the VM (desired running,
 * observed pending), adds its allocation to every level's counters and the node's, records
 * the lifecycle event, and inserts a pending "vm.create" operation; then commits.
 * Refusals: MU_EQUOTA naming the level and figures ("CC du Pays X: memory 62 of 64 GiB
 * used, this VM needs 4 GiB"); MU_ERETRY when the node no longer fits (the caller places
 * again without it); MU_ECONFLICT for a duplicate name in the tenant. */
int mu_store_vm_admit(struct mu_store *st, const struct mu_admit_req *req,
                      const struct mu_audit_rec *audit, int64_t *ret_vm_id, int64_t *ret_op_id,
                      struct mu_err *err);
/* Cold resize admission: same checks for the difference (new - old) at every level and on
 * the VM's node; updates the VM's allocation and counters; inserts a "vm.resize" operation
 * with params. MU_ECONFLICT unless the VM is stopped (desired stopped and observed shutoff).
 * The VM's node refusing the difference is MU_EQUOTA (a resize cannot go elsewhere); a disk
 * only grows (MU_EINVAL). */
int mu_store_vm_resize(struct mu_store *st, int64_t vm_id, int64_t flavor_id, int64_t vcpus,
                       int64_t ram_mib, int64_t disk_gib, int64_t node_cap_vcpus,
                       int64_t node_cap_ram_mib, int64_t node_cap_disk_gib,
                       const struct mu_quota_defaults *defaults, const struct mu_audit_rec *audit,
                       int64_t *ret_op_id, struct mu_err *err);
/* Sets desired_state and inserts the matching operation (vm.start, vm.stop, vm.reboot,
 * vm.delete) in one transaction. kind is the operation kind. MU_ECONFLICT if another
 * operation of the VM is still pending or running (naming it), or the VM is deleted. */
int mu_store_vm_request(struct mu_store *st, int64_t vm_id, const char *kind,
                        const char *desired_state, const struct mu_audit_rec *audit,
                        int64_t *ret_op_id, struct mu_err *err);
/* Observed state from the hypervisor (not audited); records a lifecycle event when it
 * changes. error may be NULL. */
int mu_store_vm_set_observed(struct mu_store *st, int64_t vm_id, const char *observed,
                             const char *error, struct mu_err *err);
/* Final removal after the domain and disk are gone: deletes the VM row, subtracts its
 * allocation from every level's counters and the node's, records the event. Idempotent. */
int mu_store_vm_purge(struct mu_store *st, int64_t vm_id, struct mu_err *err);
int mu_store_vm_get(struct mu_store *st, int64_t id, struct mu_vm *ret, struct mu_err *err);
int mu_store_vm_get_by_uuid(struct mu_store *st, const char *uuid, struct mu_vm *ret,
                            struct mu_err *err);
struct mu_vm_filter {
    int64_t scope_id;  /* 0: all; else VMs of tenants in this subtree */
    int64_t tenant_id; /* 0: any; else this tenant's subtree */
    int64_t node_id;   /* 0: any */
    const char *state; /* NULL: any; matches observed_state */
    int64_t after_id;
    int limit; /* 1..1000; 0 means no limit (internal callers: reconciler) */
};
int mu_store_vm_list(struct mu_store *st, const struct mu_vm_filter *f, struct mu_vm **ret,
                     size_t *ret_n, struct mu_err *err);
/* How many VMs are in each observed state: counts[i] for states[i], and counts[n] for any
 * state not named (counts has n + 1 slots). One grouped query, no row is materialised. */
int mu_store_vm_state_counts(struct mu_store *st, const char *const *states, size_t n,
                             int64_t *counts, struct mu_err *err);

/* Lifecycle events (for the capacity forecast): created, started, stopped, resized,
 * deleted, with the allocation after the event (zero for deleted). */
struct mu_vm_event {
    int64_t id, vm_id, ts_ms;
    char *kind;
    int64_t vcpus, ram_mib, disk_gib;
};
void mu_vm_events_free(struct mu_vm_event *e, size_t n);
int mu_store_vm_events(struct mu_store *st, int64_t vm_id, struct mu_vm_event **ret, size_t *ret_n,
                       struct mu_err *err);

/* Recomputes tenant and node counters from the VM rows. *ret_mismatches counts counters
 * that differed (and were corrected); detail in err-like text buffer (may be NULL). */
int mu_store_usage_recount(struct mu_store *st, int64_t *ret_mismatches, char *detail,
                           size_t detail_len, struct mu_err *err);

/* ---- operations -------------------------------------------------------------------- */
struct mu_op {
    int64_t id;
    char *kind; /* vm.create, vm.start, vm.stop, vm.reboot, vm.resize, vm.delete */
    int64_t vm_id;
    int64_t node_id;
    char *state; /* pending, running, succeeded, failed */
    char *step;  /* the last step completed ("" at first) */
    int64_t attempts;
    int64_t next_run_ms;
    int64_t deadline_ms;
    char *params_json; /* may be NULL */
    char *error;       /* why it failed, or the last transient error */
    char *actor;
    char *request_id;
    int64_t created_ms, updated_ms, finished_ms;
};
void mu_op_clear(struct mu_op *o);
void mu_ops_free(struct mu_op *o, size_t n);
int mu_store_op_get(struct mu_store *st, int64_t id, struct mu_op *ret, struct mu_err *err);
/* Operations in state pending or running whose next_run_ms <= now_ms, oldest first. */
int mu_store_op_due(struct mu_store *st, int64_t now_ms, int limit, struct mu_op **ret,
                    size_t *ret_n, struct mu_err *err);
/* Unfinished operations (pending or running), for the reconciler at start. */
int mu_store_op_unfinished(struct mu_store *st, struct mu_op **ret, size_t *ret_n,
                           struct mu_err *err);
/* Records a completed step (state becomes running). */
int mu_store_op_step(struct mu_store *st, int64_t id, const char *step, struct mu_err *err);
/* Schedules a retry after a transient error. */
int mu_store_op_retry(struct mu_store *st, int64_t id, int64_t next_run_ms, const char *error,
                      struct mu_err *err);
/* Finishes: succeeded (error NULL) or failed (error says which step and why). */
int mu_store_op_finish(struct mu_store *st, int64_t id, bool ok, const char *error,
                       struct mu_err *err);
/* Pending/running operations count (Prometheus queue depth). */
int64_t mu_store_op_pending_count(struct mu_store *st);

#endif
