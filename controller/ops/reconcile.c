/* The reconcile pass over one node, run on that node's worker (so it never races the
 * node's own operations) at start and every reconcile_interval_ms:
 *
 *  1. capacity: node info from libvirt into the node row, or the connection error;
 *  2. orphans: a Mutualis domain that no VM of this node owns (no VM row with its UUID, or
 *     a VM whose deletion failed and has no unfinished operation) is removed (destroy,
 *     undefine, delete its disk volume; then the failed-deletion VM row is purged) or, with
 *     orphan_policy "quarantine", left alone and logged;
 *  3. drift: for each VM of the node without an unfinished operation, the observed state
 *     follows the domain (absent: "missing"), and a power state that differs from the
 *     desired one queues vm.start / vm.stop, audited with actor "reconciler".
 *
 * VMs with an unfinished operation are left to it: the dispatcher resumes those operations
 * from their last recorded step. Any store error aborts the pass before it touches the node:
 * a failed read must never look like "no VMs here". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/log.h"
#include "mutualis/util.h"
#include "ops/ops_int.h"
#include "store/telemetry.h"

/* ---- capacity ------------------------------------------------------------------------------ */

/* Reads node info and stores it; on failure stores the error (keeping the last figures). */
static int probe(struct mu_ops *ops, struct mu_ops_worker *w, const struct mu_node *n,
                 struct mu_err *err)
{
    struct mu_virt_node_info info;
    struct mu_err e = {0};
    int rc = mu_virt_node_info(w->conn, &info, &e);

    if (rc < 0) {
        struct mu_err ignored = {0};
        mu_store_node_set_info(ops->store, n->id, n->cpus, n->mem_mib, n->disk_gib, n->kvm,
                               e.detail[0] ? e.detail : mu_err_name(rc), &ignored);
        /* For a node without an agent, reaching its libvirt is the health signal; an
         * agent's reports decide the others' (fleet/health.h). */
        if (!mu_store_node_agent_managed(ops->store, n->id))
            mu_store_node_set_health(ops->store, n->id, "down", &ignored);
        if (err && err->code == 0)
            *err = e;
        return rc;
    }
    rc = mu_store_node_set_info(ops->store, n->id, info.cpus, info.mem_mib, info.pool_capacity_gib,
                                info.kvm, NULL, err);
    if (rc == 0 && !mu_store_node_agent_managed(ops->store, n->id))
        rc = mu_store_node_set_health(ops->store, n->id, "up", err);
    return rc;
}

int mu_ops_probe_node(struct mu_ops *ops, struct mu_ops_worker *w, int64_t node_id,
                      struct mu_err *err)
{
    struct mu_node n = {0};
    int rc = mu_store_node_get(ops->store, node_id, &n, err);
    if (rc == 0)
        rc = probe(ops, w, &n, err);
    mu_node_clear(&n);
    return rc;
}

/* ---- lookups -------------------------------------------------------------------------------- */

static int cmp_vm_uuid(const void *a, const void *b)
{
    return strcmp(((const struct mu_vm *)a)->uuid, ((const struct mu_vm *)b)->uuid);
}

static int cmp_dom_uuid(const void *a, const void *b)
{
    return strcmp(((const struct mu_virt_domain_info *)a)->uuid,
                  ((const struct mu_virt_domain_info *)b)->uuid);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static struct mu_vm *vm_by_uuid(struct mu_vm *vms, size_t n, const char *uuid)
{
    struct mu_vm key;
    memset(&key, 0, sizeof key);
    snprintf(key.uuid, sizeof key.uuid, "%s", uuid);
    return n ? bsearch(&key, vms, n, sizeof *vms, cmp_vm_uuid) : NULL;
}

static struct mu_virt_domain_info *dom_by_uuid(struct mu_virt_domain_info *d, size_t n,
                                               const char *uuid)
{
    struct mu_virt_domain_info key;
    memset(&key, 0, sizeof key);
    snprintf(key.uuid, sizeof key.uuid, "%s", uuid);
    return n ? bsearch(&key, d, n, sizeof *d, cmp_dom_uuid) : NULL;
}

static bool busy(const int64_t *ids, size_t n, int64_t vm_id)
{
    return n && bsearch(&vm_id, ids, n, sizeof *ids, cmp_i64) != NULL;
}

/* VM ids with an unfinished operation, sorted. */
static int busy_vms(struct mu_ops *ops, int64_t **ret, size_t *ret_n, struct mu_err *err)
{
    struct mu_op *o = NULL;
    size_t n = 0;
    int rc = mu_store_op_unfinished(ops->store, &o, &n, err);
    if (rc < 0)
        return rc;
    int64_t *ids = mu_xcalloc(n ? n : 1, sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = o[i].vm_id;
    if (n > 1)
        qsort(ids, n, sizeof *ids, cmp_i64);
    mu_ops_free(o, n);
    *ret = ids;
    *ret_n = n;
    return 0;
}

/* ---- orphans ----------------------------------------------------------------------------------
 */

/* Removes what is left of a domain and its disk; vm (may be NULL) is a VM whose deletion
 * failed, purged once its domain and disk are gone. */
static void remove_leftovers(struct mu_ops *ops, struct mu_ops_worker *w, const char *uuid,
                             int64_t meta_vm_id, const struct mu_vm *vm, bool has_domain)
{
    struct mu_err err = {0};
    char vol[128];
    int rc = 0;

    if (ops->quarantine) {
        mu_log_warn("orphan quarantined (orphan_policy=quarantine) node=%s uuid=%s vm=%lld%s",
                    w->node_name, uuid, (long long)meta_vm_id, has_domain ? "" : " domain=absent");
        return;
    }
    mu_ops_disk_vol(uuid, vol, sizeof vol);
    if (has_domain) {
        rc = mu_virt_domain_destroy(w->conn, uuid, &err);
        if (rc == 0)
            rc = mu_virt_domain_undefine(w->conn, uuid, &err);
    }
    if (rc == 0)
        rc = mu_virt_volume_delete(w->conn, vol, &err);
    if (rc == 0 && vm)
        rc = mu_store_vm_purge(ops->store, vm->id, &err);
    if (rc < 0) {
        mu_log_warn("cannot remove orphan node=%s uuid=%s vm=%lld error=\"%s\"", w->node_name, uuid,
                    (long long)meta_vm_id, err.detail);
        return;
    }
    if (vm)
        mu_log_warn("finished a failed deletion node=%s uuid=%s vm=%lld", w->node_name, uuid,
                    (long long)vm->id);
    else
        mu_log_warn("orphan domain removed node=%s uuid=%s vm=%lld", w->node_name, uuid,
                    (long long)meta_vm_id);
}

/* ---- drift ------------------------------------------------------------------------------------
 */

static void set_observed(struct mu_ops *ops, struct mu_vm *vm, const char *obs, const char *why)
{
    struct mu_err err = {0};
    if (vm->observed_state && strcmp(vm->observed_state, obs) == 0)
        return;
    if (mu_store_vm_set_observed(ops->store, vm->id, obs, why, &err) < 0) {
        mu_log_warn("cannot record observed state vm=%lld error=\"%s\"", (long long)vm->id,
                    err.detail);
        return;
    }
    mu_log_info("observed state changed vm=%lld uuid=%s from=%s to=%s", (long long)vm->id, vm->uuid,
                vm->observed_state ? vm->observed_state : "", obs);
}

/* Queues kind (vm.start or vm.stop) to bring the VM back to its desired state. 1 if queued. */
static int request(struct mu_ops *ops, const struct mu_vm *vm, const char *kind,
                   const char *observed)
{
    char target[48], detail[160];
    struct mu_err err = {0};
    int64_t op_id = 0;

    snprintf(target, sizeof target, "vm/%lld", (long long)vm->id);
    snprintf(detail, sizeof detail, "domain found %s, desired %s", observed, vm->desired_state);
    struct mu_audit_rec rec = {.actor = "reconciler",
                               .role = "",
                               .tenant_id = vm->tenant_id,
                               .action = kind,
                               .target = target,
                               .outcome = "ok",
                               .request_id = "",
                               .detail = detail};
    int rc = mu_store_vm_request(ops->store, vm->id, kind, vm->desired_state, &rec, &op_id, &err);
    if (rc == MU_ECONFLICT) /* someone asked for something meanwhile: theirs wins */
        return 0;
    if (rc < 0) {
        mu_log_warn("reconciler cannot queue an operation vm=%lld kind=%s error=\"%s\"",
                    (long long)vm->id, kind, err.detail);
        return 0;
    }
    mu_log_info("reconciler queued an operation vm=%lld kind=%s op=%lld reason=\"%s\"",
                (long long)vm->id, kind, (long long)op_id, detail);
    return 1;
}

static int converge(struct mu_ops *ops, struct mu_ops_worker *w, struct mu_vm *vm,
                    const struct mu_virt_domain_info *d)
{
    bool want_running = strcmp(vm->desired_state, "running") == 0;
    bool want_stopped = strcmp(vm->desired_state, "stopped") == 0;

    if (!d) {
        /* Never created (a failed create) stays "error"/"pending"; otherwise it vanished. */
        const char *o = vm->observed_state ? vm->observed_state : "";
        if (strcmp(o, "pending") == 0 || strcmp(o, "error") == 0 || strcmp(o, "missing") == 0)
            return 0;
        char why[200];
        snprintf(why, sizeof why, "domain mu-%s is not defined on node %s", vm->uuid, w->node_name);
        mu_log_warn("VM domain missing vm=%lld uuid=%s node=%s", (long long)vm->id, vm->uuid,
                    w->node_name);
        set_observed(ops, vm, "missing", why);
        return 0;
    }
    switch (d->state) {
    case MU_VIRT_RUNNING:
        set_observed(ops, vm, "running", NULL);
        return want_stopped ? request(ops, vm, "vm.stop", "running") : 0;
    case MU_VIRT_SHUTOFF:
        set_observed(ops, vm, "shutoff", NULL);
        return want_running ? request(ops, vm, "vm.start", "shutoff") : 0;
    case MU_VIRT_CRASHED:
        set_observed(ops, vm, "error", "the domain crashed");
        return want_running ? request(ops, vm, "vm.start", "crashed") : 0;
    default: /* paused, shutting down: transient or an operator's doing */
        set_observed(ops, vm, "unknown", NULL);
        return 0;
    }
}

/* ---- the pass ---------------------------------------------------------------------------------
 */

int mu_ops_reconcile_node(struct mu_ops *ops, struct mu_ops_worker *w, int64_t node_id,
                          struct mu_err *err)
{
    struct mu_node node = {0};
    struct mu_virt_domain_info *doms = NULL;
    struct mu_vm *vms = NULL;
    int64_t *busy_ids = NULL;
    size_t ndoms = 0, nvms = 0, nbusy = 0;
    int queued = 0;
    int rc;

    rc = mu_store_node_get(ops->store, node_id, &node, err);
    if (rc < 0)
        return rc;
    rc = probe(ops, w, &node, err);
    if (rc < 0) {
        if (!node.last_error || strcmp(node.last_error, err->detail) != 0)
            mu_log_warn("node unreachable node=%s uri=%s error=\"%s\"", node.name, node.uri,
                        err->detail);
        goto out;
    }
    if (node.last_error)
        mu_log_info("node reachable again node=%s uri=%s", node.name, node.uri);
    rc = mu_virt_domain_list(w->conn, &doms, &ndoms, err);
    if (rc < 0)
        goto out;
    struct mu_vm_filter f = {.node_id = node_id, .limit = 0};
    rc = mu_store_vm_list(ops->store, &f, &vms, &nvms, err);
    if (rc < 0)
        goto out;
    rc = busy_vms(ops, &busy_ids, &nbusy, err);
    if (rc < 0)
        goto out;
    if (nvms > 1)
        qsort(vms, nvms, sizeof *vms, cmp_vm_uuid);
    if (ndoms > 1)
        qsort(doms, ndoms, sizeof *doms, cmp_dom_uuid);

    for (size_t i = 0; i < ndoms; i++) {
        struct mu_vm *vm = vm_by_uuid(vms, nvms, doms[i].uuid);
        if (vm && busy(busy_ids, nbusy, vm->id))
            continue;
        if (vm && strcmp(vm->desired_state, "deleted") != 0)
            continue; /* owned */
        remove_leftovers(ops, w, doms[i].uuid, doms[i].vm_id, vm, true);
    }
    for (size_t i = 0; i < nvms; i++) {
        struct mu_vm *vm = &vms[i];
        if (busy(busy_ids, nbusy, vm->id))
            continue;
        struct mu_virt_domain_info *d = dom_by_uuid(doms, ndoms, vm->uuid);
        if (strcmp(vm->desired_state, "deleted") == 0) {
            if (!d) /* a failed deletion whose domain is already gone */
                remove_leftovers(ops, w, vm->uuid, vm->id, vm, false);
            continue;
        }
        queued += converge(ops, w, vm, d);
    }
    if (queued > 0)
        mu_ops_kick(ops);
out:
    free(doms);
    mu_vms_free(vms, nvms);
    free(busy_ids);
    mu_node_clear(&node);
    return rc;
}
