/* Shared by the provisioning store tests: builders for nodes, flavors, images and tenants
 * with quotas, an admission shorthand and a fake quota-defaults policy. Header-only, on
 * top of store_test.h. */
#ifndef MU_PROVISION_TEST_H
#define MU_PROVISION_TEST_H

#include <inttypes.h>

#include "store/provision.h"
#include "store_test.h"

#define PT_BIG 1000000000 /* node capacities that never bind */

static inline void pt_check(int rc, const struct mu_err *err, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s: rc=%d %s\n", what, rc, err->detail);
        abort();
    }
}

/* An active node, health up. */
static inline int64_t pt_node(struct mu_store *st, const char *name)
{
    struct mu_node n = {.name = (char *)name,
                        .uri = (char *)"test:///default",
                        .health = (char *)"up",
                        .cpus = 64,
                        .mem_mib = 262144,
                        .disk_gib = 4096,
                        .reserved_mem_mib = -1,
                        .kvm = true};
    struct mu_audit_rec rec = mu_test_rec("node.create", 0);
    struct mu_err err = {0};
    int64_t id = 0;

    pt_check(mu_store_node_insert(st, &n, &rec, &id, &err), &err, "node insert");
    return id;
}

static inline int64_t pt_image(struct mu_store *st, const char *name)
{
    struct mu_image i = {.name = (char *)name, .format = (char *)"qcow2"};
    struct mu_audit_rec rec = mu_test_rec("image.create", 0);
    struct mu_err err = {0};
    int64_t id = 0;

    pt_check(mu_store_image_insert(st, &i, &rec, &id, &err), &err, "image insert");
    pt_check(mu_store_image_set_ready(st, id, 1 << 20,
                                      "0123456789abcdef0123456789abcdef"
                                      "0123456789abcdef0123456789abcdef",
                                      "/var/lib/mutualis/images/1.qcow2", &err),
             &err, "image ready");
    return id;
}

static inline int64_t pt_tenant(struct mu_store *st, const char *name, const char *kind,
                                int64_t parent)
{
    struct mu_tenant t = mu_test_tenant(name, kind, parent, NULL, NULL);
    struct mu_audit_rec rec = mu_test_rec("tenant.create", 0);
    struct mu_err err = {0};
    int64_t id = 0;

    pt_check(mu_store_tenant_insert(st, &t, &rec, &id, &err), &err, "tenant insert");
    return id;
}

static inline void pt_quota(struct mu_store *st, int64_t tenant, int64_t vcpus, int64_t ram_mib,
                            int64_t disk_gib, int64_t vms)
{
    struct mu_limits l = {vcpus, ram_mib, disk_gib, vms, MU_UNLIMITED, MU_UNLIMITED};
    struct mu_audit_rec rec = mu_test_rec("quota.set", tenant);
    struct mu_err err = {0};

    pt_check(mu_store_quota_set(st, tenant, &l, &rec, &err), &err, "quota set");
}

struct pt_vm {
    int64_t tenant, node, vcpus, ram_mib, disk_gib, image, group, flavor;
    int64_t cap_vcpus, cap_ram_mib, cap_disk_gib; /* 0: PT_BIG */
    bool allow_unknown;
    const struct mu_quota_defaults *defaults;
};

/* Admits name with the sizes in v; returns the code, *ret_vm / *ret_op on success. */
static inline int pt_admit(struct mu_store *st, const struct pt_vm *v, const char *name,
                           int64_t *ret_vm, int64_t *ret_op, struct mu_err *err)
{
    struct mu_admit_req req = {
        .vm = {.tenant_id = v->tenant,
               .name = (char *)name,
               .flavor_id = v->flavor,
               .vcpus = v->vcpus,
               .ram_mib = v->ram_mib,
               .disk_gib = v->disk_gib,
               .image_id = v->image,
               .group_id = v->group},
        .node_id = v->node,
        .node_cap_vcpus = v->cap_vcpus ? v->cap_vcpus : PT_BIG,
        .node_cap_ram_mib = v->cap_ram_mib ? v->cap_ram_mib : PT_BIG,
        .node_cap_disk_gib = v->cap_disk_gib ? v->cap_disk_gib : PT_BIG,
        .allow_unknown_health = v->allow_unknown,
        .defaults = v->defaults,
        .op_params_json = "{\"image\":\"test\"}",
    };
    struct mu_audit_rec rec = mu_test_rec("vm.create", v->tenant);
    int64_t vm = 0, op = 0;

    return mu_store_vm_admit(st, &req, &rec, ret_vm ? ret_vm : &vm, ret_op ? ret_op : &op, err);
}

/* Usage of one tenant's subtree, read through mu_store_quota_levels (last level). */
static inline struct mu_usage pt_usage(struct mu_store *st, int64_t tenant)
{
    struct mu_quota_level *l = NULL;
    struct mu_err err = {0};
    struct mu_usage u;
    size_t n = 0;

    pt_check(mu_store_quota_levels(st, tenant, NULL, &l, &n, &err), &err, "quota levels");
    u = l[n - 1].usage;
    mu_quota_levels_free(l, n);
    return u;
}

static inline struct mu_usage pt_node_alloc(struct mu_store *st, int64_t node)
{
    struct mu_node n = {0};
    struct mu_err err = {0};
    struct mu_usage u;

    pt_check(mu_store_node_get(st, node, &n, &err), &err, "node get");
    u = (struct mu_usage){n.alloc_vcpus, n.alloc_ram_mib, n.alloc_disk_gib, n.vm_count, 0, 0};
    mu_node_clear(&n);
    return u;
}

static inline int64_t pt_recount(struct mu_store *st, char *detail, size_t len)
{
    struct mu_err err = {0};
    int64_t mismatches = -1;

    pt_check(mu_store_usage_recount(st, &mismatches, detail, len, &err), &err, "recount");
    return mismatches;
}

/* A fake quota policy: communes by population, EPCI fixed, everything else unlimited.
 * ctx counts the calls. */
static inline void pt_defaults_fn(void *ctx, const char *kind, int64_t population,
                                  struct mu_limits *ret)
{
    if (ctx)
        (*(int *)ctx)++;
    if (strcmp(kind, "commune") == 0) {
        if (population >= 0 && population < 1000)
            *ret = (struct mu_limits){2, 4096, 50, 2, MU_UNLIMITED, MU_UNLIMITED};
        else
            *ret = (struct mu_limits){8, 16384, 200, 10, MU_UNLIMITED, MU_UNLIMITED};
    } else if (strcmp(kind, "epci") == 0) {
        *ret = (struct mu_limits){32, 65536, 1000, 40, MU_UNLIMITED, MU_UNLIMITED};
    } else {
        *ret = (struct mu_limits){MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED,
                                  MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED};
    }
}

#define PT_ASSERT_USAGE(u, v, r, d, n)                                                             \
    do {                                                                                           \
        struct mu_usage pt_u_ = (u);                                                               \
        assert_int_equal(pt_u_.vcpus, (v));                                                        \
        assert_int_equal(pt_u_.ram_mib, (r));                                                      \
        assert_int_equal(pt_u_.disk_gib, (d));                                                     \
        assert_int_equal(pt_u_.vms, (n));                                                          \
    } while (0)

#endif
