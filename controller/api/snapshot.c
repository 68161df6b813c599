/* The placement snapshot built from the store's node rows and their counters, shared by
 * VM admission (h_vms.c) and the capacity answers (h_capacity.c), so that capacity is
 * computed from exactly what placement sees. */
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "mutualis/util.h"
#include "store/provision.h"

static enum mu_sched_op_state op_state_of(const char *s)
{
    if (s && strcmp(s, "maintenance") == 0)
        return MU_SCHED_OP_MAINTENANCE;
    if (s && strcmp(s, "draining") == 0)
        return MU_SCHED_OP_DRAINING;
    return MU_SCHED_OP_ACTIVE;
}

static enum mu_sched_health health_of(const char *s)
{
    if (s && strcmp(s, "up") == 0)
        return MU_SCHED_HEALTH_UP;
    if (s && strcmp(s, "down") == 0)
        return MU_SCHED_HEALTH_DOWN;
    return MU_SCHED_HEALTH_UNKNOWN;
}

/* The node of snap with this id (nodes come by ascending id from the store), or NULL. */
static struct mu_sched_node *node_by_id(struct mu_sched_snapshot *snap, int64_t id)
{
    size_t lo = 0, hi = snap->n_nodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (snap->nodes[mid].id == id)
            return &snap->nodes[mid];
        if (snap->nodes[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Adds every VM row that sits on a node to that node's VM list (for the N+1 check). The
 * node counters are the source of the sums (they are what admission checks), so the sums
 * mu_sched_node_add_vm accumulates are put back to them afterwards. */
static int add_vms(struct mu_store *st, struct mu_sched_snapshot *snap, struct mu_err *err)
{
    struct mu_vm_filter f = {0};
    struct mu_vm *vms = NULL;
    size_t nv = 0;
    if (mu_store_vm_list(st, &f, &vms, &nv, err) < 0)
        return err->code;
    struct mu_sched_capacity *saved = mu_xcalloc(snap->n_nodes + 1, sizeof *saved);
    for (size_t i = 0; i < snap->n_nodes; i++) {
        saved[i].vcpus.allocated = snap->nodes[i].alloc_vcpus;
        saved[i].ram_mib.allocated = snap->nodes[i].alloc_ram_mib;
        saved[i].disk_gib.allocated = snap->nodes[i].alloc_disk_gib;
    }
    for (size_t k = 0; k < nv; k++) {
        struct mu_sched_node *sn = vms[k].node_id > 0 ? node_by_id(snap, vms[k].node_id) : NULL;
        if (!sn)
            continue;
        struct mu_sched_vm *sv = mu_sched_node_add_vm(sn, vms[k].id, vms[k].vcpus, vms[k].ram_mib,
                                                      vms[k].disk_gib, vms[k].group_id);
        cJSON *labels = vms[k].labels_json ? cJSON_Parse(vms[k].labels_json) : NULL;
        const cJSON *it;
        cJSON_ArrayForEach(it, labels)
        {
            if (cJSON_IsString(it))
                mu_sched_vm_add_label(sv, it->valuestring);
        }
        cJSON_Delete(labels);
    }
    for (size_t i = 0; i < snap->n_nodes; i++) {
        snap->nodes[i].alloc_vcpus = saved[i].vcpus.allocated;
        snap->nodes[i].alloc_ram_mib = saved[i].ram_mib.allocated;
        snap->nodes[i].alloc_disk_gib = saved[i].disk_gib.allocated;
    }
    free(saved);
    mu_vms_free(vms, nv);
    return MU_OK;
}

struct mu_sched_snapshot *mu_api_snapshot_build(struct mu_store *st, int64_t group_id,
                                                bool with_vms, struct mu_err *err)
{
    struct mu_node *ns = NULL;
    size_t n = 0;
    if (mu_store_node_list(st, &ns, &n, err) < 0)
        return NULL;
    int64_t *gnodes = NULL;
    size_t ng = 0;
    if (group_id > 0 && mu_store_group_nodes(st, group_id, &gnodes, &ng, err) < 0) {
        mu_nodes_free(ns, n);
        return NULL;
    }
    struct mu_sched_snapshot *snap = mu_sched_snapshot_new(n);
    for (size_t i = 0; i < n; i++) {
        struct mu_sched_node *sn = mu_sched_snapshot_add_node(snap, ns[i].id, ns[i].name);
        sn->op_state = op_state_of(ns[i].op_state);
        sn->health = health_of(ns[i].health);
        sn->cpus = ns[i].cpus;
        sn->mem_mib = ns[i].mem_mib;
        sn->disk_gib = ns[i].disk_gib;
        sn->reserved_mem_mib = ns[i].reserved_mem_mib;
        sn->kvm = ns[i].kvm;
        sn->alloc_vcpus = ns[i].alloc_vcpus;
        sn->alloc_ram_mib = ns[i].alloc_ram_mib;
        sn->alloc_disk_gib = ns[i].alloc_disk_gib;
        cJSON *labels = ns[i].labels_json ? cJSON_Parse(ns[i].labels_json) : NULL;
        const cJSON *it;
        cJSON_ArrayForEach(it, labels)
        {
            if (cJSON_IsString(it))
                mu_sched_node_set_label(sn, it->string, it->valuestring);
        }
        cJSON_Delete(labels);
        for (size_t g = 0; g < ng; g++)
            if (gnodes[g] == ns[i].id)
                mu_sched_node_add_group(sn, group_id);
    }
    free(gnodes);
    mu_nodes_free(ns, n);
    if (with_vms && add_vms(st, snap, err) < 0) {
        mu_sched_snapshot_free(snap);
        return NULL;
    }
    return snap;
}
