/* The snapshot placement reads: nodes, their labels, groups and VMs, built by the caller. */
#include "sched/sched_impl.h"

#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"

struct mu_sched_snapshot *mu_sched_snapshot_new(size_t size_hint)
{
    struct mu_sched_snapshot *snap = mu_xcalloc(1, sizeof *snap);
    if (size_hint > 0) {
        snap->nodes = mu_xcalloc(size_hint, sizeof *snap->nodes);
        snap->cap_nodes = size_hint;
    }
    return snap;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void node_clear(struct mu_sched_node *node)
{
    free(node->name);
    strv_free(node->labels, node->n_labels);
    free(node->groups);
    for (size_t i = 0; i < node->n_vms; i++)
        strv_free(node->vms[i].labels, node->vms[i].n_labels);
    free(node->vms);
}

void mu_sched_snapshot_free(struct mu_sched_snapshot *snap)
{
    if (!snap)
        return;
    for (size_t i = 0; i < snap->n_nodes; i++)
        node_clear(&snap->nodes[i]);
    free(snap->nodes);
    free(snap);
}

/* Grows an array of elem-sized items so that one more fits. */
static void *grow(void *p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return p;
    size_t ncap = *cap ? *cap * 2 : 4;
    p = mu_xrealloc(p, ncap * elem);
    memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
    *cap = ncap;
    return p;
}

struct mu_sched_node *mu_sched_snapshot_add_node(struct mu_sched_snapshot *snap, int64_t id,
                                                 const char *name)
{
    snap->nodes = grow(snap->nodes, &snap->cap_nodes, snap->n_nodes, sizeof *snap->nodes);
    struct mu_sched_node *node = &snap->nodes[snap->n_nodes++];
    memset(node, 0, sizeof *node);
    node->id = id;
    node->name = mu_xstrdup(name);
    node->op_state = MU_SCHED_OP_ACTIVE;
    node->health = MU_SCHED_HEALTH_UP;
    node->reserved_mem_mib = -1;
    return node;
}

void mu_sched_node_set_label(struct mu_sched_node *node, const char *key, const char *value)
{
    size_t klen = strlen(key);
    char *label = mu_xasprintf("%s=%s", key, value);
    for (size_t i = 0; i < node->n_labels; i++) {
        if (strncmp(node->labels[i], key, klen) == 0 && node->labels[i][klen] == '=') {
            free(node->labels[i]);
            node->labels[i] = label;
            node->label_bloom = 0; /* recomputed: the old value's bit may be shared */
            for (size_t j = 0; j < node->n_labels; j++)
                node->label_bloom |= mu_sched_label_bit(node->labels[j]);
            return;
        }
    }
    node->labels = grow(node->labels, &node->cap_labels, node->n_labels, sizeof *node->labels);
    node->labels[node->n_labels++] = label;
    node->label_bloom |= mu_sched_label_bit(label);
}

void mu_sched_node_add_group(struct mu_sched_node *node, int64_t group_id)
{
    if (group_id == 0)
        return;
    for (size_t i = 0; i < node->n_groups; i++)
        if (node->groups[i] == group_id)
            return;
    node->groups = grow(node->groups, &node->cap_groups, node->n_groups, sizeof *node->groups);
    node->groups[node->n_groups++] = group_id;
    node->group_bloom |= mu_sched_group_bit(group_id);
}

struct mu_sched_vm *mu_sched_node_add_vm(struct mu_sched_node *node, int64_t vm_id, int64_t vcpus,
                                         int64_t ram_mib, int64_t disk_gib, int64_t group_id)
{
    node->vms = grow(node->vms, &node->cap_vms, node->n_vms, sizeof *node->vms);
    struct mu_sched_vm *vm = &node->vms[node->n_vms++];
    memset(vm, 0, sizeof *vm);
    vm->id = vm_id;
    vm->vcpus = vcpus;
    vm->ram_mib = ram_mib;
    vm->disk_gib = disk_gib;
    vm->group_id = group_id;
    node->alloc_vcpus += vcpus;
    node->alloc_ram_mib += ram_mib;
    node->alloc_disk_gib += disk_gib;
    mu_sched_node_add_group(node, group_id);
    return vm;
}

void mu_sched_vm_add_label(struct mu_sched_vm *vm, const char *label)
{
    vm->labels = mu_xrealloc(vm->labels, (vm->n_labels + 1) * sizeof *vm->labels);
    vm->labels[vm->n_labels++] = mu_xstrdup(label);
}
