/* Networks in a real SQLite file: creation (segment ids lowest free, bridge and MTU from the
 * configuration, bad input refused with nothing changed), address management inside the
 * admission transaction (first free, requested, reserved, gateway, full networks, release
 * on purge with ranges merged, never one address twice), provider networks and public
 * addresses, the network and public-address quotas naming the level, security rules and
 * their net.filter operations, node plans with known answers as nodes join and leave, the
 * recount. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "provision_test.h"
#include "store/network.h"

struct fixture {
    struct mu_test_db db;
    struct mu_store *st;
    int64_t synd, epci, ca, cb; /* syndicat > EPCI > communes A and B */
    int64_t n1, n2, n3, img;
};

static int setup(void **state)
{
    struct fixture *f = mu_xcalloc(1, sizeof *f);
    const struct mu_net_config conf = {.mode = "vxlan",
                                       .segment_min = 1000,
                                       .segment_max = 1003,
                                       .underlay_mtu = 1500,
                                       .vxlan_overhead = 50,
                                       .vxlan_port = 4789};

    mu_test_db_init(&f->db, NULL);
    f->st = f->db.st;
    mu_store_net_config_set(f->st, &conf);
    f->synd = pt_tenant(f->st, "Syndicat du Numérique", "syndicat", 0);
    f->epci = pt_tenant(f->st, "CC du Pays X", "epci", f->synd);
    f->ca = pt_tenant(f->st, "Commune A", "commune", f->epci);
    f->cb = pt_tenant(f->st, "Commune B", "commune", f->epci);
    f->n1 = pt_node(f->st, "n1");
    f->n2 = pt_node(f->st, "n2");
    f->n3 = pt_node(f->st, "n3");
    f->img = pt_image(f->st, "debian");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mu_test_db_fini(&f->db);
    free(f);
    return 0;
}

static int net_create(struct fixture *f, int64_t tenant, const char *name, const char *cidr,
                      const char *reserved, int64_t *ret_id, struct mu_err *err)
{
    const struct mu_network_spec sp = {.tenant_id = tenant,
                                       .name = name,
                                       .kind = "private",
                                       .cidr = cidr,
                                       .reserved_json = reserved};
    struct mu_audit_rec rec = mu_test_rec("network.create", tenant);
    int64_t id = 0;

    return mu_store_network_create(f->st, &sp, NULL, &rec, ret_id ? ret_id : &id, err);
}

static int64_t net_ok(struct fixture *f, int64_t tenant, const char *name, const char *cidr,
                      const char *reserved)
{
    struct mu_err err = {0};
    int64_t id = 0;

    pt_check(net_create(f, tenant, name, cidr, reserved, &id, &err), &err, "network create");
    return id;
}

static int provider_create(struct fixture *f, const char *name, const char *cidr, const char *gw,
                           const char *pools, bool shared, int64_t *ret_id, struct mu_err *err)
{
    const struct mu_network_spec sp = {.name = name,
                                       .kind = "provider",
                                       .cidr = cidr,
                                       .gateway = gw,
                                       .bridge = "br-public",
                                       .pool_json = pools,
                                       .shared = shared};
    struct mu_audit_rec rec = mu_test_rec("network.create", 0);

    return mu_store_network_create(f->st, &sp, NULL, &rec, ret_id, err);
}

/* Admits a small VM with the given NICs on node. */
static int vm_nics(struct fixture *f, int64_t tenant, int64_t node, const char *name,
                   const struct mu_nic_req *nics, size_t n, int64_t *ret_vm, struct mu_err *err)
{
    struct mu_admit_req req = {
        .vm = {.tenant_id = tenant,
               .name = (char *)name,
               .vcpus = 1,
               .ram_mib = 64,
               .disk_gib = 1,
               .image_id = f->img},
        .node_id = node,
        .node_cap_vcpus = PT_BIG,
        .node_cap_ram_mib = PT_BIG,
        .node_cap_disk_gib = PT_BIG,
        .nics = nics,
        .n_nics = n,
    };
    struct mu_audit_rec rec = mu_test_rec("vm.create", tenant);
    int64_t vm = 0, op = 0;
    int rc;

    rc = mu_store_vm_admit(f->st, &req, &rec, ret_vm ? ret_vm : &vm, &op, err);
    if (rc == 0)
        pt_check(mu_store_op_finish(f->st, op, true, NULL, err), err, "op finish");
    return rc;
}

/* The address of the VM's NIC idx. */
static void nic_ip(struct fixture *f, int64_t vm, size_t idx, char out[MU_IPV4_TEXT_MAX])
{
    struct mu_nic *nics = NULL;
    struct mu_err err = {0};
    size_t n = 0;

    pt_check(mu_store_vm_nics(f->st, vm, &nics, &n, &err), &err, "vm nics");
    assert_true(idx < n);
    snprintf(out, MU_IPV4_TEXT_MAX, "%s", nics[idx].ip);
    free(nics);
}

static int64_t vm_ok(struct fixture *f, int64_t tenant, int64_t node, const char *name, int64_t net,
                     const char *ip, char out_ip[MU_IPV4_TEXT_MAX])
{
    const struct mu_nic_req nic = {.network_id = net, .ip = ip};
    struct mu_err err = {0};
    int64_t vm = 0;

    pt_check(vm_nics(f, tenant, node, name, &nic, 1, &vm, &err), &err, name);
    if (out_ip)
        nic_ip(f, vm, 0, out_ip);
    return vm;
}

static void vm_gone(struct fixture *f, int64_t vm)
{
    struct mu_err err = {0};

    pt_check(mu_store_vm_purge(f->st, vm, &err), &err, "purge");
}

static void vm_delete_requested(struct fixture *f, int64_t vm)
{
    struct mu_audit_rec rec = mu_test_rec("vm.delete", 0);
    struct mu_err err = {0};
    int64_t op = 0;

    pt_check(mu_store_vm_request(f->st, vm, "vm.delete", "deleted", &rec, &op, &err), &err,
             "delete request");
}

static int64_t free_count(struct fixture *f, int64_t net)
{
    struct mu_err err = {0};
    int64_t nics = 0, fr = 0;

    pt_check(mu_store_network_counts(f->st, net, &nics, &fr, &err), &err, "counts");
    return fr;
}

/* ---- IPv4 text ------------------------------------------------------------------------ */

static void test_ipv4_text(void **state)
{
    struct mu_err err = {0};
    uint32_t a = 0, net = 0;
    char out[MU_IPV4_TEXT_MAX];
    int prefix = 0;

    (void)state;
    assert_int_equal(mu_ipv4_parse("10.0.0.1", &a), 0);
    assert_int_equal(a, 0x0a000001u);
    mu_ipv4_format(0xffffffffu, out);
    assert_string_equal(out, "255.255.255.255");
    static const char *const bad[] = {"",          "10.0.0",    "10.0.0.256", "010.0.0.1",
                                      "10.0.0.1 ", " 10.0.0.1", "10.0.0.1.2", "::1",
                                      "1e1.0.0.1", "10.0.0.-1", "0x0a.0.0.1"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++)
        assert_int_equal(mu_ipv4_parse(bad[i], &a), MU_EINVAL);
    assert_int_equal(mu_ipv4_parse("0.0.0.0", &a), 0);

    assert_int_equal(mu_cidr_parse("192.168.4.0/22", "cidr", &net, &prefix, &err), 0);
    assert_int_equal(prefix, 22);
    assert_int_equal(net, 0xc0a80400u);
    static const char *const badc[] = {"192.168.5.0/22", "10.0.0.0/31", "10.0.0.0/7",
                                       "10.0.0.0/024",   "10.0.0.0",    "10.0.0.0/",
                                       "fd00::/64",      "10.0.0.0/24x"};
    for (size_t i = 0; i < MU_ARRAY_LEN(badc); i++) {
        mu_err_clear(&err);
        assert_int_equal(mu_cidr_parse(badc[i], "cidr", &net, &prefix, &err), MU_EINVAL);
        assert_string_equal(err.field, "cidr");
    }
    mu_err_clear(&err);
    assert_int_equal(mu_cidr_parse("192.168.5.0/22", "cidr", &net, &prefix, &err), MU_EINVAL);
    assert_non_null(strstr(err.detail, "192.168.4.0/22"));
}

/* ---- networks ---------------------------------------------------------------------------- */

static void test_create_segments(void **state)
{
    struct fixture *f = *state;
    struct mu_network n = {0};
    struct mu_err err = {0};
    int64_t a, b, c, d, id = 0;

    a = net_ok(f, f->ca, "lan", "10.0.0.0/24", NULL);
    /* Overlapping CIDRs of two tenants are allowed (isolated segments). */
    b = net_ok(f, f->cb, "lan", "10.0.0.0/24", NULL);
    pt_check(mu_store_network_get(f->st, a, &n, &err), &err, "get");
    assert_string_equal(n.kind, "private");
    assert_string_equal(n.mode, "vxlan");
    assert_int_equal(n.segment, 1000);
    assert_string_equal(n.bridge, "mubr1000");
    assert_int_equal(n.mtu, 1450);
    assert_string_equal(n.cidr, "10.0.0.0/24");
    assert_string_equal(n.gateway, "");
    mu_network_clear(&n);
    pt_check(mu_store_network_get(f->st, b, &n, &err), &err, "get");
    assert_int_equal(n.segment, 1001);
    mu_network_clear(&n);

    /* Same name in one tenant: conflict. */
    assert_int_equal(net_create(f, f->ca, "lan", "10.1.0.0/24", NULL, &id, &err), MU_ECONFLICT);
    mu_err_clear(&err);
    /* Bad input: nothing created. */
    assert_int_equal(net_create(f, f->ca, "Bad Name", "10.1.0.0/24", NULL, &id, &err), MU_EINVAL);
    assert_string_equal(err.field, "name");
    mu_err_clear(&err);
    assert_int_equal(net_create(f, f->ca, "x", "10.1.0.1/24", NULL, &id, &err), MU_EINVAL);
    assert_string_equal(err.field, "cidr");
    mu_err_clear(&err);
    assert_int_equal(
        net_create(f, f->ca, "x", "10.1.0.0/24", "[[\"10.2.0.1\",\"10.2.0.5\"]]", &id, &err),
        MU_EINVAL);
    assert_string_equal(err.field, "reserved");
    mu_err_clear(&err);

    /* The range 1000..1003 holds four: the fifth is refused, a freed id is reused lowest
     * first. */
    c = net_ok(f, f->ca, "c", "10.3.0.0/24", NULL);
    d = net_ok(f, f->ca, "d", "10.4.0.0/24", NULL);
    assert_int_equal(net_create(f, f->ca, "e", "10.5.0.0/24", NULL, &id, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "1000-1003"));
    mu_err_clear(&err);
    {
        struct mu_audit_rec rec = mu_test_rec("network.delete", f->cb);

        pt_check(mu_store_network_delete(f->st, b, &rec, &err), &err, "delete");
    }
    id = net_ok(f, f->ca, "e", "10.5.0.0/24", NULL);
    pt_check(mu_store_network_get(f->st, id, &n, &err), &err, "get");
    assert_int_equal(n.segment, 1001);
    mu_network_clear(&n);
    (void)c;
    (void)d;

    /* Counted at every level. */
    assert_int_equal(pt_usage(f->st, f->ca).networks, 4);
    assert_int_equal(pt_usage(f->st, f->cb).networks, 0);
    assert_int_equal(pt_usage(f->st, f->epci).networks, 4);
    assert_int_equal(pt_usage(f->st, f->synd).networks, 4);
    assert_int_equal(pt_recount(f->st, NULL, 0), 0);
}

static void test_network_quota(void **state)
{
    struct fixture *f = *state;
    struct mu_limits l = {MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, 2, MU_UNLIMITED};
    struct mu_audit_rec rec = mu_test_rec("quota.set", f->epci);
    struct mu_err err = {0};
    int64_t id = 0;

    pt_check(mu_store_quota_set(f->st, f->epci, &l, &rec, &err), &err, "quota");
    net_ok(f, f->ca, "a1", "10.0.0.0/24", NULL);
    net_ok(f, f->cb, "b1", "10.0.0.0/24", NULL);
    assert_int_equal(net_create(f, f->ca, "a2", "10.1.0.0/24", NULL, &id, &err), MU_EQUOTA);
    assert_string_equal(err.detail, "CC du Pays X: networks 2 of 2 used, this network needs 1");
    assert_int_equal(pt_usage(f->st, f->ca).networks, 1);
}

/* A tenant that still owns a network cannot be deleted: the refusal says what to do. */
static void test_tenant_delete_with_network(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("tenant.delete", f->cb);
    struct mu_err err = {0};

    net_ok(f, f->cb, "b1", "10.0.0.0/24", NULL);
    assert_int_equal(mu_store_tenant_delete(f->st, f->cb, &rec, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "still has 1 network(s): delete them first"));
}

/* ---- address management ------------------------------------------------------------------- */

static void test_ipam_basics(void **state)
{
    struct fixture *f = *state;
    const struct mu_nic_req two[] = {{0}, {0}};
    struct mu_nic_req req[2];
    struct mu_err err = {0};
    char ip[MU_IPV4_TEXT_MAX];
    int64_t net, v1, v2, v3, vm = 0;

    (void)two;
    /* /29: .1 - .6 usable; .1 - .2 reserved. */
    net = net_ok(f, f->ca, "small", "192.168.1.0/29", "[[\"192.168.1.1\",\"192.168.1.2\"]]");
    assert_int_equal(free_count(f, net), 4);
    v1 = vm_ok(f, f->ca, f->n1, "v1", net, NULL, ip);
    assert_string_equal(ip, "192.168.1.3");
    v2 = vm_ok(f, f->ca, f->n1, "v2", net, "192.168.1.6", ip);
    assert_string_equal(ip, "192.168.1.6");

    /* Taken, reserved, network, broadcast, foreign: refused, nothing changed. */
    req[0] = (struct mu_nic_req){.network_id = net, .ip = "192.168.1.6"};
    assert_int_equal(vm_nics(f, f->ca, f->n1, "x", req, 1, &vm, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "already used by vm"));
    static const char *const refused[] = {"192.168.1.1", "192.168.1.0", "192.168.1.7",
                                          "192.168.2.4", "192.168.1"};
    for (size_t i = 0; i < MU_ARRAY_LEN(refused); i++) {
        mu_err_clear(&err);
        req[0].ip = refused[i];
        assert_int_equal(vm_nics(f, f->ca, f->n1, "x", req, 1, &vm, &err), MU_EINVAL);
        assert_string_equal(err.field, "nics");
    }
    assert_int_equal(free_count(f, net), 2);
    assert_int_equal(pt_usage(f->st, f->ca).vms, 2);

    /* Two NICs on one network in one VM: .4 and .5; then the network is full. */
    req[0] = (struct mu_nic_req){.network_id = net};
    req[1] = (struct mu_nic_req){.network_id = net};
    pt_check(vm_nics(f, f->ca, f->n1, "v3", req, 2, &v3, &err), &err, "v3");
    nic_ip(f, v3, 0, ip);
    assert_string_equal(ip, "192.168.1.4");
    nic_ip(f, v3, 1, ip);
    assert_string_equal(ip, "192.168.1.5");
    mu_err_clear(&err);
    assert_int_equal(vm_nics(f, f->ca, f->n1, "full", req, 1, &vm, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "no free address"));
    assert_int_equal(pt_usage(f->st, f->ca).vms, 3);

    /* Another tenant cannot use it: as if it did not exist. */
    mu_err_clear(&err);
    assert_int_equal(vm_nics(f, f->cb, f->n1, "y", req, 1, &vm, &err), MU_EINVAL);
    assert_non_null(strstr(err.detail, "does not exist"));

    /* Delete refused while NICs use it. */
    {
        struct mu_audit_rec rec = mu_test_rec("network.delete", f->ca);

        mu_err_clear(&err);
        assert_int_equal(mu_store_network_delete(f->st, net, &rec, &err), MU_ECONFLICT);
        assert_non_null(strstr(err.detail, "4 NIC"));
    }

    /* Release: v3's two addresses merge with the free ranges, and come back first. */
    vm_gone(f, v3);
    assert_int_equal(free_count(f, net), 2);
    vm_gone(f, v1);
    vm_gone(f, v2);
    assert_int_equal(free_count(f, net), 4);
    v1 = vm_ok(f, f->ca, f->n1, "again", net, NULL, ip);
    assert_string_equal(ip, "192.168.1.3");
    vm_gone(f, v1);
    {
        struct mu_audit_rec rec = mu_test_rec("network.delete", f->ca);

        pt_check(mu_store_network_delete(f->st, net, &rec, &err), &err, "delete");
    }
    assert_int_equal(pt_usage(f->st, f->ca).networks, 0);
    assert_int_equal(pt_recount(f->st, NULL, 0), 0);
}

/* Fill a /24, free every third address, refill: the freed ones come back lowest first and
 * no address is ever held by two NICs. */
static void test_ipam_never_twice(void **state)
{
    struct fixture *f = *state;
    struct mu_limits l = {MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED,
                          MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED};
    struct mu_audit_rec rec = mu_test_rec("quota.set", 0);
    struct mu_err err = {0};
    int64_t net, vms[254];
    bool seen[256] = {false};
    char ip[MU_IPV4_TEXT_MAX], name[32];

    for (int64_t t = f->synd; t <= f->ca; t++)
        pt_check(mu_store_quota_set(f->st, t, &l, &rec, &err), &err, "quota");
    net = net_ok(f, f->ca, "big", "10.9.8.0/24", NULL);
    for (int i = 0; i < 254; i++) {
        uint32_t a;

        snprintf(name, sizeof name, "v%d", i);
        vms[i] = vm_ok(f, f->ca, f->n1 + i % 3, name, net, NULL, ip);
        assert_int_equal(mu_ipv4_parse(ip, &a), 0);
        assert_int_equal(a & 0xff, i + 1);
        assert_false(seen[a & 0xff]);
        seen[a & 0xff] = true;
    }
    assert_int_equal(free_count(f, net), 0);
    for (int i = 0; i < 254; i += 3)
        vm_gone(f, vms[i]);
    assert_int_equal(free_count(f, net), 85);
    for (int i = 0; i < 254; i += 3) {
        snprintf(name, sizeof name, "w%d", i);
        vms[i] = vm_ok(f, f->ca, f->n2, name, net, NULL, ip);
        snprintf(name, sizeof name, "10.9.8.%d", i + 1);
        assert_string_equal(ip, name);
    }
    assert_int_equal(free_count(f, net), 0);
    {
        struct mu_net_address *a = NULL;
        size_t n = 0;

        pt_check(mu_store_network_addresses(f->st, net, NULL, 1000, &a, &n, &err), &err,
                 "addresses");
        assert_int_equal(n, 254);
        for (size_t i = 1; i < n; i++)
            assert_true(strcmp(a[i - 1].mac, a[i].mac) != 0);
        assert_string_equal(a[0].ip, "10.9.8.1");
        assert_string_equal(a[0].vm_name, "w0");
        assert_int_equal(strncmp(a[0].mac, "52:54:00:", 9), 0);
        mu_net_addresses_free(a, n);
        pt_check(mu_store_network_addresses(f->st, net, "10.9.8.250", 10, &a, &n, &err), &err,
                 "addresses after");
        assert_int_equal(n, 4);
        assert_string_equal(a[0].ip, "10.9.8.251");
        mu_net_addresses_free(a, n);
    }
}

/* ---- provider networks and public addresses ------------------------------------------------ */

static void test_provider_public(void **state)
{
    struct fixture *f = *state;
    struct mu_limits l = {MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, 1};
    struct mu_audit_rec rec = mu_test_rec("quota.set", f->ca);
    struct mu_network n = {0};
    struct mu_err err = {0};
    struct mu_nic_req req[2];
    char ip[MU_IPV4_TEXT_MAX];
    int64_t pub = 0, closed = 0, priv, v1, vm = 0, found = 0;
    struct mu_nic *nics = NULL;
    size_t nn = 0;

    pt_check(provider_create(f, "public", "203.0.113.0/24", "203.0.113.1",
                             "[[\"203.0.113.10\",\"203.0.113.12\"]]", true, &pub, &err),
             &err, "provider");
    pt_check(provider_create(f, "closed", "198.51.100.0/24", NULL, NULL, false, &closed, &err),
             &err, "provider closed");
    mu_err_clear(&err);
    assert_int_equal(
        provider_create(f, "bad", "198.51.0.0/24", "198.51.1.1", NULL, true, &vm, &err), MU_EINVAL);
    assert_string_equal(err.field, "gateway");
    pt_check(mu_store_network_get(f->st, pub, &n, &err), &err, "get");
    assert_int_equal(n.tenant_id, f->synd); /* the root owns them */
    assert_string_equal(n.mode, "bridge");
    assert_string_equal(n.bridge, "br-public");
    assert_int_equal(n.mtu, 1500);
    assert_int_equal(n.segment, 0);
    assert_string_equal(n.gateway, "203.0.113.1");
    assert_true(n.shared);
    mu_network_clear(&n);
    assert_int_equal(free_count(f, pub), 3);
    pt_check(mu_store_network_find_provider(f->st, "public", &found, &err), &err, "find");
    assert_int_equal(found, pub);
    pt_check(mu_store_network_find(f->st, f->ca, "public", &found, &err), &err, "find");
    assert_int_equal(found, pub);
    assert_int_equal(mu_store_network_find(f->st, f->ca, "closed", &found, &err), MU_ENOTFOUND);
    mu_err_clear(&err);

    pt_check(mu_store_quota_set(f->st, f->ca, &l, &rec, &err), &err, "quota");
    priv = net_ok(f, f->ca, "lan", "10.0.0.0/24", NULL);
    req[0] = (struct mu_nic_req){.network_id = priv};
    req[1] = (struct mu_nic_req){.network_id = pub};
    pt_check(vm_nics(f, f->ca, f->n1, "www", req, 2, &v1, &err), &err, "www");
    pt_check(mu_store_vm_nics(f->st, v1, &nics, &nn, &err), &err, "nics");
    assert_int_equal(nn, 2);
    assert_false(nics[0].public_addr);
    assert_string_equal(nics[0].ip, "10.0.0.1");
    assert_string_equal(nics[0].bridge, "mubr1000");
    assert_int_equal(nics[0].mtu, 1450);
    assert_int_equal(nics[0].prefix, 24);
    assert_string_equal(nics[0].network_cidr, "10.0.0.0/24");
    assert_true(nics[1].public_addr);
    assert_string_equal(nics[1].ip, "203.0.113.10");
    assert_string_equal(nics[1].gateway, "203.0.113.1");
    assert_string_equal(nics[1].bridge, "br-public");
    assert_int_equal(nics[1].idx, 1);
    free(nics);
    assert_int_equal(pt_usage(f->st, f->ca).public_ips, 1);
    assert_int_equal(pt_usage(f->st, f->synd).public_ips, 1);

    /* Quota of public addresses, named by level; nothing changed. */
    assert_int_equal(vm_nics(f, f->ca, f->n1, "www2", &req[1], 1, &vm, &err), MU_EQUOTA);
    assert_string_equal(err.detail, "Commune A: public addresses 1 of 1 used, this VM needs 1");
    assert_int_equal(free_count(f, pub), 2);
    /* Commune B has no such limit: it gets the next one. Not the closed network. */
    pt_check(vm_ok(f, f->cb, f->n1, "bwww", pub, "203.0.113.12", ip) > 0 ? 0 : -1, &err, "b");
    mu_err_clear(&err);
    req[0] = (struct mu_nic_req){.network_id = closed};
    assert_int_equal(vm_nics(f, f->cb, f->n1, "bx", req, 1, &vm, &err), MU_EINVAL);
    assert_int_equal(pt_usage(f->st, f->synd).public_ips, 2);
    assert_int_equal(pt_recount(f->st, NULL, 0), 0);

    vm_gone(f, v1);
    assert_int_equal(pt_usage(f->st, f->ca).public_ips, 0);
    assert_int_equal(pt_usage(f->st, f->synd).public_ips, 1);
    assert_int_equal(free_count(f, pub), 2);
    assert_int_equal(pt_recount(f->st, NULL, 0), 0);
}

/* ---- rules ----------------------------------------------------------------------------- */

static int64_t count_filter_ops(struct fixture *f, int64_t node)
{
    struct mu_op *ops = NULL;
    struct mu_err err = {0};
    size_t n = 0;
    int64_t k = 0;

    pt_check(mu_store_op_unfinished(f->st, &ops, &n, &err), &err, "ops");
    for (size_t i = 0; i < n; i++)
        if (strcmp(ops[i].kind, "net.filter") == 0 && ops[i].node_id == node) {
            assert_int_equal(ops[i].vm_id, 0);
            k++;
        }
    mu_ops_free(ops, n);
    return k;
}

static void test_rules(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("network.rules", f->ca);
    struct mu_sec_rule r = {.action = "accept",
                            .proto = "tcp",
                            .port_min = 443,
                            .port_max = 443,
                            .source = "0.0.0.0/0"};
    struct mu_sec_rule *rules = NULL;
    struct mu_network n = {0};
    struct mu_err err = {0};
    int64_t net, tenant_rule = 0, op_rule = 0;
    size_t nr = 0;

    net = net_ok(f, f->ca, "lan", "10.0.0.0/24", NULL);
    vm_ok(f, f->ca, f->n1, "a", net, NULL, NULL);
    vm_ok(f, f->ca, f->n2, "b", net, NULL, NULL);
    r.network_id = net;
    pt_check(mu_store_sec_rule_add(f->st, &r, &rec, &tenant_rule, &err), &err, "rule");
    assert_int_equal(count_filter_ops(f, f->n1), 1);
    assert_int_equal(count_filter_ops(f, f->n2), 1);
    assert_int_equal(count_filter_ops(f, f->n3), 0);

    /* A tenant may not drop; an operator may, and its rule comes first. */
    struct mu_sec_rule d = {.network_id = net,
                            .action = "drop",
                            .proto = "udp",
                            .port_min = 53,
                            .port_max = 53,
                            .source = "192.0.2.0/24"};
    assert_int_equal(mu_store_sec_rule_add(f->st, &d, &rec, &op_rule, &err), MU_EINVAL);
    mu_err_clear(&err);
    d.operator_rule = true;
    pt_check(mu_store_sec_rule_add(f->st, &d, &rec, &op_rule, &err), &err, "op rule");
    /* The untouched pending operation covers the second change too. */
    assert_int_equal(count_filter_ops(f, f->n1), 1);
    pt_check(mu_store_sec_rules(f->st, net, &rules, &nr, &err), &err, "rules");
    assert_int_equal(nr, 2);
    assert_int_equal(rules[0].id, op_rule);
    assert_true(rules[0].operator_rule);
    assert_string_equal(rules[1].proto, "tcp");
    assert_int_equal(rules[1].port_min, 443);
    mu_sec_rules_free(rules, nr);
    pt_check(mu_store_network_get(f->st, net, &n, &err), &err, "get");
    assert_int_equal(n.rules_gen, 2);
    mu_network_clear(&n);

    /* Bad rules: nothing changes. */
    static const struct {
        const char *proto;
        int lo, hi;
        const char *src, *field;
    } bad[] = {{"tcp", 0, 0, "0.0.0.0/0", "ports"},      {"tcp", 90, 80, "0.0.0.0/0", "ports"},
               {"icmp", 1, 1, "0.0.0.0/0", "ports"},     {"sctp", 1, 1, "0.0.0.0/0", "proto"},
               {"tcp", 22, 22, "10.0.0.1/24", "source"}, {"tcp", 22, 22, "10.0.0.0/33", "source"},
               {"tcp", 1, 70000, "0.0.0.0/0", "ports"}};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        struct mu_sec_rule b = {
            .network_id = net, .action = "accept", .port_min = bad[i].lo, .port_max = bad[i].hi};
        int64_t id = 0;

        snprintf(b.proto, sizeof b.proto, "%s", bad[i].proto);
        snprintf(b.source, sizeof b.source, "%s", bad[i].src);
        mu_err_clear(&err);
        assert_int_equal(mu_store_sec_rule_add(f->st, &b, &rec, &id, &err), MU_EINVAL);
        assert_string_equal(err.field, bad[i].field);
    }
    pt_check(mu_store_network_get(f->st, net, &n, &err), &err, "get");
    assert_int_equal(n.rules_gen, 2);
    mu_network_clear(&n);

    /* Tenants cannot delete an operator rule; operators can; unknown rule: 404. */
    mu_err_clear(&err);
    assert_int_equal(mu_store_sec_rule_delete(f->st, net, op_rule, false, &rec, &err),
                     MU_EFORBIDDEN);
    mu_err_clear(&err);
    assert_int_equal(mu_store_sec_rule_delete(f->st, net, 9999, true, &rec, &err), MU_ENOTFOUND);
    pt_check(mu_store_sec_rule_delete(f->st, net, op_rule, true, &rec, &err), &err, "delete");
    pt_check(mu_store_sec_rule_delete(f->st, net, tenant_rule, false, &rec, &err), &err, "del");
    pt_check(mu_store_sec_rules(f->st, net, &rules, &nr, &err), &err, "rules");
    assert_int_equal(nr, 0);
    free(rules);
    pt_check(mu_store_network_get(f->st, net, &n, &err), &err, "get");
    assert_int_equal(n.rules_gen, 4);
    mu_network_clear(&n);
}

/* ---- node plans -------------------------------------------------------------------------- */

static cJSON *plan(struct fixture *f, int64_t node, int64_t *ret_gen)
{
    struct mu_err err = {0};
    char *text = NULL;
    cJSON *j;

    pt_check(mu_store_node_net_plan_json(f->st, node, &text, &err), &err, "plan");
    j = cJSON_Parse(text);
    assert_non_null(j);
    free(text);
    if (ret_gen)
        *ret_gen = (int64_t)cJSON_GetObjectItem(j, "generation")->valuedouble;
    return j;
}

/* "a,b" from a JSON array of strings. */
static void join(const cJSON *arr, char *out, size_t len)
{
    const cJSON *it;
    size_t used = 0;

    out[0] = '\0';
    cJSON_ArrayForEach(it, arr)
    {
        used += (size_t)snprintf(out + used, len - used, "%s%s", used ? "," : "", it->valuestring);
    }
}

/* The peers of network net in node's plan, or "-" if the network is absent. */
static void peers_of(struct fixture *f, int64_t node, int64_t net, char *out, size_t len)
{
    cJSON *j = plan(f, node, NULL), *seg;

    snprintf(out, len, "-");
    cJSON_ArrayForEach(seg, cJSON_GetObjectItem(j, "segments"))
    {
        if ((int64_t)cJSON_GetObjectItem(seg, "network")->valuedouble == net)
            join(cJSON_GetObjectItem(seg, "peers"), out, len);
    }
    cJSON_Delete(j);
}

static void test_plans(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("node.update", 0);
    struct mu_err err = {0};
    int64_t net, other, g1, g2, g3, va, vb, vc, pub = 0;
    char buf[200];
    cJSON *j, *seg;

    pt_check(mu_store_node_set_underlay(f->st, f->n1, "10.99.0.11", &rec, &err), &err, "ul");
    pt_check(mu_store_node_set_underlay(f->st, f->n2, "10.99.0.12", &rec, &err), &err, "ul");
    assert_int_equal(mu_store_node_set_underlay(f->st, f->n3, "10.99.0.12", &rec, &err),
                     MU_ECONFLICT);
    mu_err_clear(&err);
    assert_int_equal(mu_store_node_set_underlay(f->st, f->n3, "10.99.0.300", &rec, &err),
                     MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_node_set_underlay(f->st, f->n3, "127.0.0.1", &rec, &err), MU_EINVAL);
    mu_err_clear(&err);

    /* Empty plan. */
    j = plan(f, f->n1, &g1);
    assert_string_equal(cJSON_GetObjectItem(j, "node")->valuestring, "n1");
    assert_string_equal(cJSON_GetObjectItem(j, "local")->valuestring, "10.99.0.11");
    assert_int_equal(cJSON_GetObjectItem(j, "vxlan_port")->valueint, 4789);
    assert_int_equal(cJSON_GetObjectItem(j, "underlay_mtu")->valueint, 1500);
    join(cJSON_GetObjectItem(j, "allowed_peers"), buf, sizeof buf);
    assert_string_equal(buf, "10.99.0.11,10.99.0.12");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "segments")), 0);
    cJSON_Delete(j);
    cJSON_Delete(plan(f, f->n1, &g2));
    assert_int_equal(g1, g2); /* nothing changed, same generation */

    net = net_ok(f, f->ca, "lan", "10.0.0.0/24", NULL);
    other = net_ok(f, f->cb, "lan", "10.0.0.0/24", NULL);
    va = vm_ok(f, f->ca, f->n1, "a", net, NULL, NULL);
    j = plan(f, f->n1, &g2);
    assert_true(g2 != g1);
    seg = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "segments"), 0);
    assert_int_equal(cJSON_GetObjectItem(seg, "network")->valueint, net);
    assert_string_equal(cJSON_GetObjectItem(seg, "mode")->valuestring, "vxlan");
    assert_int_equal(cJSON_GetObjectItem(seg, "segment")->valueint, 1000);
    assert_string_equal(cJSON_GetObjectItem(seg, "bridge")->valuestring, "mubr1000");
    assert_int_equal(cJSON_GetObjectItem(seg, "mtu")->valueint, 1450);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(seg, "peers")), 0);
    cJSON_Delete(j);
    peers_of(f, f->n2, net, buf, sizeof buf);
    assert_string_equal(buf, "-"); /* not realised where no VM of it runs */

    /* n2 joins: each lists the other. */
    vb = vm_ok(f, f->ca, f->n2, "b", net, NULL, NULL);
    peers_of(f, f->n1, net, buf, sizeof buf);
    assert_string_equal(buf, "10.99.0.12");
    peers_of(f, f->n2, net, buf, sizeof buf);
    assert_string_equal(buf, "10.99.0.11");
    /* n3 hosts one but has no underlay yet: not a peer; once it has one, it is. */
    vc = vm_ok(f, f->ca, f->n3, "c", net, NULL, NULL);
    peers_of(f, f->n1, net, buf, sizeof buf);
    assert_string_equal(buf, "10.99.0.12");
    cJSON_Delete(plan(f, f->n1, &g2));
    pt_check(mu_store_node_set_underlay(f->st, f->n3, "10.99.0.13", &rec, &err), &err, "ul");
    peers_of(f, f->n1, net, buf, sizeof buf);
    assert_string_equal(buf, "10.99.0.12,10.99.0.13");
    cJSON_Delete(plan(f, f->n1, &g3));
    assert_true(g3 != g2);
    peers_of(f, f->n3, net, buf, sizeof buf);
    assert_string_equal(buf, "10.99.0.11,10.99.0.12");
    /* Another tenant's network with the same CIDR on n1: its own segment, no peers. */
    vm_ok(f, f->cb, f->n1, "o", other, NULL, NULL);
    peers_of(f, f->n1, other, buf, sizeof buf);
    assert_string_equal(buf, "");

    /* n2 leaves (its VM is being deleted), then the VM on n3 is purged. */
    vm_delete_requested(f, vb);
    peers_of(f, f->n1, net, buf, sizeof buf);
    assert_string_equal(buf, "10.99.0.13");
    peers_of(f, f->n2, net, buf, sizeof buf);
    assert_string_equal(buf, "-");
    vm_gone(f, vb);
    vm_gone(f, vc);
    peers_of(f, f->n1, net, buf, sizeof buf);
    assert_string_equal(buf, "");

    /* A provider network: bridge mode, no segment. */
    pt_check(provider_create(f, "public", "203.0.113.0/24", "203.0.113.1", NULL, true, &pub, &err),
             &err, "provider");
    vm_ok(f, f->ca, f->n1, "w", pub, NULL, NULL);
    j = plan(f, f->n1, NULL);
    seg = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "segments"), 2);
    assert_string_equal(cJSON_GetObjectItem(seg, "mode")->valuestring, "bridge");
    assert_string_equal(cJSON_GetObjectItem(seg, "bridge")->valuestring, "br-public");
    assert_null(cJSON_GetObjectItem(seg, "segment"));
    cJSON_Delete(j);
    (void)va;

    /* Unknown node. */
    {
        char *text = NULL;

        assert_int_equal(mu_store_node_net_plan_json(f->st, 999, &text, &err), MU_ENOTFOUND);
    }
}

static void test_default_private_and_user_data(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("network.create", f->ca);
    struct mu_err err = {0};
    int64_t a = 0, b = 0, vm = 0;
    char *ud = NULL;
    struct mu_admit_req req = {
        .vm = {.tenant_id = f->ca,
               .name = (char *)"ud",
               .vcpus = 1,
               .ram_mib = 64,
               .disk_gib = 1,
               .image_id = f->img},
        .node_id = f->n1,
        .node_cap_vcpus = PT_BIG,
        .node_cap_ram_mib = PT_BIG,
        .node_cap_disk_gib = PT_BIG,
        .user_data = "#cloud-config\nhostname: mairie\n",
    };
    int64_t op = 0;

    pt_check(mu_store_network_default_private(f->st, f->ca, "10.20.0.0/24", &rec, &a, &err), &err,
             "default");
    pt_check(mu_store_network_default_private(f->st, f->ca, "10.20.0.0/24", &rec, &b, &err), &err,
             "default again");
    assert_int_equal(a, b);
    assert_int_equal(pt_usage(f->st, f->ca).networks, 1);

    pt_check(mu_store_vm_admit(f->st, &req, &rec, &vm, &op, &err), &err, "admit");
    pt_check(mu_store_vm_user_data(f->st, vm, &ud, &err), &err, "user data");
    assert_string_equal(ud, "#cloud-config\nhostname: mairie\n");
    free(ud);
    req.vm.name = (char *)"ud2";
    req.user_data = "bad \xff";
    assert_int_equal(mu_store_vm_admit(f->st, &req, &rec, &vm, &op, &err), MU_EINVAL);
    assert_string_equal(err.field, "user_data");
}

/* Moving a commune to another EPCI moves its networks and public addresses too. */
static void test_move_counts(void **state)
{
    struct fixture *f = *state;
    struct mu_audit_rec rec = mu_test_rec("tenant.move", f->ca);
    struct mu_err err = {0};
    int64_t epci2, net, pub = 0;

    epci2 = pt_tenant(f->st, "CC du Pays Y", "epci", f->synd);
    net = net_ok(f, f->ca, "lan", "10.0.0.0/24", NULL);
    pt_check(provider_create(f, "public", "203.0.113.0/24", NULL, NULL, true, &pub, &err), &err,
             "provider");
    vm_ok(f, f->ca, f->n1, "a", net, NULL, NULL);
    vm_ok(f, f->ca, f->n1, "w", pub, NULL, NULL);
    assert_int_equal(pt_usage(f->st, f->epci).networks, 1);
    pt_check(mu_store_tenant_move(f->st, f->ca, epci2, &rec, &err), &err, "move");
    assert_int_equal(pt_usage(f->st, f->epci).networks, 0);
    assert_int_equal(pt_usage(f->st, f->epci).public_ips, 0);
    assert_int_equal(pt_usage(f->st, epci2).networks, 1);
    assert_int_equal(pt_usage(f->st, epci2).public_ips, 1);
    assert_int_equal(pt_recount(f->st, NULL, 0), 0);
}

/* The vlan segment of network net in node's plan (a new object, or NULL if absent). */
static cJSON *vlan_seg(struct fixture *f, int64_t node, int64_t net, int64_t *ret_gen)
{
    cJSON *j = plan(f, node, ret_gen), *seg, *found = NULL;

    cJSON_ArrayForEach(seg, cJSON_GetObjectItem(j, "segments"))
    {
        if ((int64_t)cJSON_GetObjectItem(seg, "network")->valuedouble == net)
            found = cJSON_Duplicate(seg, true);
    }
    cJSON_Delete(j);
    return found;
}

static void nic_mac(struct fixture *f, int64_t vm, char out[MU_MAC_TEXT_MAX])
{
    struct mu_nic *nics = NULL;
    struct mu_err err = {0};
    size_t n = 0;

    pt_check(mu_store_vm_nics(f->st, vm, &nics, &n, &err), &err, "vm nics");
    assert_true(n > 0);
    snprintf(out, MU_MAC_TEXT_MAX, "%s", nics[0].mac);
    free(nics);
}

/* Node plans of vlan segments: the VLAN id, the trunk, the uplink when the policy names one,
 * and exactly the MACs of this node's NICs on the network; the generation follows them. */
static void vlan_plan_checks(struct fixture *f, int64_t a, int64_t b)
{
    struct mu_net_config conf;
    struct mu_network na = {0};
    struct mu_err err = {0};
    char m1[MU_MAC_TEXT_MAX], m2[MU_MAC_TEXT_MAX], m3[MU_MAC_TEXT_MAX], buf[200];
    int64_t g1, g2, g3, v2, v3;
    cJSON *seg;

    pt_check(mu_store_network_get(f->st, a, &na, &err), &err, "get");
    seg = vlan_seg(f, f->n1, a, &g1);
    assert_non_null(seg);
    assert_string_equal(cJSON_GetObjectItem(seg, "mode")->valuestring, "vlan");
    assert_int_equal((int64_t)cJSON_GetObjectItem(seg, "segment")->valuedouble, na.segment);
    assert_string_equal(cJSON_GetObjectItem(seg, "bridge")->valuestring, "br-trunk");
    assert_null(cJSON_GetObjectItem(seg, "uplink")); /* the policy names none */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(seg, "macs")), 1);
    cJSON_Delete(seg);
    mu_network_clear(&na);

    /* A second VM of a on node 1 and one of b: node 1's a-segment lists both MACs (sorted),
     * the b-segment only b's; node 2 lists only its own. */
    v2 = vm_ok(f, f->ca, f->n1, "x2", a, NULL, NULL);
    v3 = vm_ok(f, f->cb, f->n1, "z", b, NULL, NULL);
    nic_mac(f, v2, m2);
    nic_mac(f, v3, m3);
    seg = vlan_seg(f, f->n1, a, &g2);
    assert_int_not_equal(g1, g2);
    join(cJSON_GetObjectItem(seg, "macs"), buf, sizeof buf);
    assert_non_null(strstr(buf, m2));
    assert_null(strstr(buf, m3));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(seg, "macs")), 2);
    snprintf(m1, sizeof m1, "%s",
             cJSON_GetArrayItem(cJSON_GetObjectItem(seg, "macs"), 0)->valuestring);
    assert_true(strcmp(m1, cJSON_GetArrayItem(cJSON_GetObjectItem(seg, "macs"), 1)->valuestring) <
                0);
    cJSON_Delete(seg);
    seg = vlan_seg(f, f->n1, b, NULL);
    join(cJSON_GetObjectItem(seg, "macs"), buf, sizeof buf);
    assert_string_equal(buf, m3);
    cJSON_Delete(seg);
    seg = vlan_seg(f, f->n2, a, NULL);
    join(cJSON_GetObjectItem(seg, "macs"), buf, sizeof buf);
    assert_null(strstr(buf, m2));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(seg, "macs")), 1);
    cJSON_Delete(seg);

    /* The uplink reaches the plan and changes the generation. */
    mu_store_net_config_get(f->st, &conf);
    snprintf(conf.trunk_uplink, sizeof conf.trunk_uplink, "%s", "eth1");
    mu_store_net_config_set(f->st, &conf);
    seg = vlan_seg(f, f->n1, a, &g3);
    assert_int_not_equal(g2, g3);
    assert_string_equal(cJSON_GetObjectItem(seg, "uplink")->valuestring, "eth1");
    cJSON_Delete(seg);

    /* A deleted VM's MAC leaves the plan; the last one takes the segment with it. */
    vm_delete_requested(f, v2);
    seg = vlan_seg(f, f->n1, a, NULL);
    join(cJSON_GetObjectItem(seg, "macs"), buf, sizeof buf);
    assert_null(strstr(buf, m2));
    cJSON_Delete(seg);
    vm_delete_requested(f, v3);
    assert_null(vlan_seg(f, f->n1, b, NULL));
}

/* VLAN mode on the operator's trunk bridge: VLAN ids from the policy's range, the trunk
 * bridge, the underlay MTU (no encapsulation). */
static void test_vlan_mode(void **state)
{
    struct fixture *f = *state;
    const struct mu_net_config conf = {.mode = "vlan",
                                       .segment_min = 100,
                                       .segment_max = 101,
                                       .trunk_bridge = "br-trunk",
                                       .underlay_mtu = 9000,
                                       .vxlan_overhead = 50,
                                       .vxlan_port = 4789};
    struct mu_network n = {0};
    struct mu_err err = {0};
    int64_t a, b, id = 0;
    char buf[64];

    mu_store_net_config_set(f->st, &conf);
    a = net_ok(f, f->ca, "a", "10.0.0.0/24", NULL);
    b = net_ok(f, f->cb, "b", "10.0.0.0/24", NULL);
    assert_int_equal(net_create(f, f->ca, "c", "10.1.0.0/24", NULL, &id, &err), MU_ECONFLICT);
    pt_check(mu_store_network_get(f->st, b, &n, &err), &err, "get");
    assert_string_equal(n.mode, "vlan");
    assert_int_equal(n.segment, 101);
    assert_string_equal(n.bridge, "br-trunk");
    assert_int_equal(n.mtu, 9000);
    mu_network_clear(&n);
    vm_ok(f, f->ca, f->n1, "x", a, NULL, NULL);
    vm_ok(f, f->ca, f->n2, "y", a, NULL, NULL);
    /* No head-end replication in VLAN mode: the trunk carries it. */
    peers_of(f, f->n1, a, buf, sizeof buf);
    assert_string_equal(buf, "");
    vlan_plan_checks(f, a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_text),
        cmocka_unit_test_setup_teardown(test_create_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_network_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_delete_with_network, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipam_basics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipam_never_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_public, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_private_and_user_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vlan_mode, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
