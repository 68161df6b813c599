/* net/: the shipped policies/networks.json, strict parsing with line and column, the MTU
 * arithmetic, bridge names, port syntax and rule bodies; and applying a policy to a store
 * (declared provider networks created once). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../store/store_test.h"
#include "mutualis/json.h"
#include "net/net.h"

static struct mu_net_policy *parse_ok(const char *text)
{
    struct mu_net_policy *p = NULL;
    struct mu_err err = {0};

    if (mu_net_policy_parse(text, strlen(text), "networks.json", &p, &err) < 0) {
        fprintf(stderr, "%s\n", err.detail);
        fail();
    }
    return p;
}

static void parse_bad(const char *text, const char *expect)
{
    struct mu_net_policy *p = NULL;
    struct mu_err err = {0};

    assert_int_equal(mu_net_policy_parse(text, strlen(text), "networks.json", &p, &err), MU_EINVAL);
    assert_null(p);
    if (!strstr(err.detail, expect)) {
        fprintf(stderr, "got \"%s\", expected \"%s\"\n", err.detail, expect);
        fail();
    }
}

static void test_shipped(void **state)
{
    struct mu_net_policy *p = NULL;
    struct mu_net_config c;
    struct mu_err err = {0};
    char path[512];

    (void)state;
    snprintf(path, sizeof path, "%s/policies/networks.json", MU_SOURCE_DIR);
    assert_int_equal(mu_net_policy_load(path, &p, &err), 0);
    mu_net_policy_config(p, &c);
    assert_string_equal(c.mode, "vxlan");
    assert_int_equal(c.vxlan_port, 4789);
    assert_int_equal(c.underlay_mtu, 1500);
    assert_int_equal(c.vxlan_overhead, 50);
    assert_int_equal(mu_net_guest_mtu(c.underlay_mtu, c.vxlan_overhead), 1450);
    assert_string_equal(mu_net_policy_default_cidr(p), "10.0.0.0/24");
    mu_net_policy_free(p);
}

static void test_parse(void **state)
{
    struct mu_net_config c;
    struct mu_net_policy *p;

    (void)state;
    p = parse_ok("{\"version\": 1, \"private\": {\"mode\": \"vlan\", \"vlan\": "
                 "{\"trunk_bridge\": \"br-trunk\", \"vlan_min\": 100, \"vlan_max\": 199}}, "
                 "\"underlay_mtu\": 9000}");
    mu_net_policy_config(p, &c);
    assert_string_equal(c.mode, "vlan");
    assert_string_equal(c.trunk_bridge, "br-trunk");
    assert_int_equal(c.segment_min, 100);
    assert_int_equal(c.segment_max, 199);
    assert_int_equal(c.underlay_mtu, 9000);
    mu_net_policy_free(p);

    /* The trunk's uplink: a node interface name, never the trunk itself. */
    p = parse_ok("{\"version\": 1, \"private\": {\"mode\": \"vlan\", \"vlan\": "
                 "{\"trunk_bridge\": \"br-trunk\", \"uplink\": \"eno1.trunk\"}}}");
    mu_net_policy_config(p, &c);
    assert_string_equal(c.trunk_uplink, "eno1.trunk");
    mu_net_policy_free(p);
    parse_bad("{\"version\": 1, \"private\": {\"mode\": \"vlan\", \"vlan\": "
              "{\"trunk_bridge\": \"br-trunk\", \"uplink\": \"br-trunk\"}}}",
              "uplink must name");
    parse_bad("{\"version\": 1, \"private\": {\"mode\": \"vlan\", \"vlan\": "
              "{\"trunk_bridge\": \"br-trunk\", \"uplink\": \"eth0;reboot\"}}}",
              "uplink must name");

    parse_bad("{\"version\": 1}", "\"private\" is required");
    parse_bad("{\"version\": 1, \"private\": {},\n \"ipv6\": true}",
              "networks.json: line 2, column 2: unknown key \"ipv6\"");
    parse_bad("{\"version\": 1, \"private\": {\"mode\": \"gre\"}}", "mode must be");
    parse_bad("{\"version\": 1, \"private\": {\"mode\": \"vlan\"}}", "needs \"vlan\"");
    parse_bad("{\"version\": 1, \"private\": {\"vxlan\": {\"vni_min\": 0}}}",
              "vni_min must be an integer between 1 and 16777215");
    parse_bad("{\"version\": 1, \"private\": {\"vxlan\": {\"vni_min\": 9, \"vni_max\": 8}}}",
              "vni_min must not be above");
    parse_bad("{\"version\": 1, \"private\": {\"default_cidr\": \"10.0.0.1/24\"}}",
              "host bits set");
    parse_bad("{\"version\": 1, \"private\": {}, \"underlay_mtu\": 600, \"vxlan_overhead\": 50}",
              "at least 576");
    parse_bad("{\"version\": 1, \"private\": {}, \"providers\": [{\"name\": \"public\", "
              "\"cidr\": \"203.0.113.0/24\", \"bridge\": \"br;rm -rf\"}]}",
              "needs \"bridge\"");
    parse_bad("{\"version\": 1, \"private\": {}, \"providers\": [{\"name\": \"public\", "
              "\"cidr\": \"203.0.113.0/24\", \"gateway\": \"203.0.114.1\", \"bridge\": "
              "\"br0\"}]}",
              "not inside");
    parse_bad("{\"version\": 1, \"private\": {}, \"providers\": [{\"name\": \"p\", \"cidr\": "
              "\"203.0.113.0/24\", \"bridge\": \"br0\"}, {\"name\": \"p\", \"cidr\": "
              "\"203.0.114.0/24\", \"bridge\": \"br1\"}]}",
              "declared twice");
    parse_bad("{\"version\": 2, \"private\": {}}", "version must be");
}

static void test_helpers(void **state)
{
    char b[MU_BRIDGE_MAX];
    struct mu_err err = {0};
    int lo = 0, hi = 0;

    (void)state;
    assert_true(mu_net_bridge_name(1005, b));
    assert_string_equal(b, "mubr1005");
    assert_true(mu_net_bridge_name(16777215, b));
    assert_string_equal(b, "mubr16777215");

    static const struct {
        const char *json;
        int lo, hi;
    } ok[] = {{"443", 443, 443},
              {"\"22\"", 22, 22},
              {"\"8000-8080\"", 8000, 8080},
              {"65535", 65535, 65535}};
    for (size_t i = 0; i < MU_ARRAY_LEN(ok); i++) {
        cJSON *v = cJSON_Parse(ok[i].json);

        assert_int_equal(mu_net_ports_parse(v, "ports", &lo, &hi, &err), 0);
        assert_int_equal(lo, ok[i].lo);
        assert_int_equal(hi, ok[i].hi);
        cJSON_Delete(v);
    }
    static const char *const bad[] = {"0",         "65536", "\"80-70\"", "\"-1\"", "\"08\"",
                                      "\"1-2-3\"", "1.5",   "true",      "\"\"",   "\"443 \""};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        cJSON *v = cJSON_Parse(bad[i]);

        mu_err_clear(&err);
        assert_int_equal(mu_net_ports_parse(v, "ports", &lo, &hi, &err), MU_EINVAL);
        assert_string_equal(err.field, "ports");
        cJSON_Delete(v);
    }
}

static void test_rule_json(void **state)
{
    struct mu_sec_rule r;
    struct mu_err err = {0};
    cJSON *b;

    (void)state;
    b = cJSON_Parse("{\"proto\": \"tcp\", \"ports\": \"80-81\", \"source\": \"192.0.2.0/24\", "
                    "\"description\": \"web\"}");
    assert_int_equal(mu_net_rule_from_json(b, false, &r, &err), 0);
    assert_string_equal(r.proto, "tcp");
    assert_int_equal(r.port_min, 80);
    assert_int_equal(r.port_max, 81);
    assert_string_equal(r.source, "192.0.2.0/24");
    assert_string_equal(r.action, "accept");
    assert_string_equal(r.description, "web");
    assert_false(r.operator_rule);
    free(r.description);
    cJSON_Delete(b);

    static const struct {
        const char *json, *field;
    } bad[] = {{"{\"proto\": \"tcp\"}", "ports"},
               {"{\"proto\": \"icmp\", \"ports\": 1}", "ports"},
               {"{\"proto\": \"esp\"}", "proto"},
               {"{\"proto\": \"any\", \"action\": \"drop\"}", "action"},
               {"{\"proto\": \"any\", \"source\": \"::/0\"}", "source"},
               {"{\"proto\": \"any\", \"direction\": \"egress\"}", ""}};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        b = cJSON_Parse(bad[i].json);
        mu_err_clear(&err);
        assert_int_equal(mu_net_rule_from_json(b, false, &r, &err), MU_EINVAL);
        if (bad[i].field[0])
            assert_string_equal(err.field, bad[i].field);
        cJSON_Delete(b);
    }
    b = cJSON_Parse("{\"proto\": \"any\", \"action\": \"drop\"}");
    assert_int_equal(mu_net_rule_from_json(b, true, &r, &err), 0);
    assert_true(r.operator_rule);
    free(r.description);
    cJSON_Delete(b);
}

static void test_apply(void **state)
{
    struct mu_test_db db;
    struct mu_net_policy *p;
    struct mu_audit_rec rec = mu_test_rec("policy.reload", 0);
    struct mu_tenant t = mu_test_tenant("Syndicat", "syndicat", 0, NULL, NULL);
    struct mu_network n = {0};
    struct mu_net_config c;
    struct mu_err err = {0};
    int64_t root = 0, id = 0;
    int created = -1;

    (void)state;
    mu_test_db_init(&db, NULL);
    assert_int_equal(mu_store_tenant_insert(db.st, &t, &rec, &root, &err), 0);
    p = parse_ok("{\"version\": 1, \"private\": {\"vxlan\": {\"vni_min\": 5000, \"vni_max\": "
                 "5009}}, \"underlay_mtu\": 9000, \"providers\": [{\"name\": \"public\", "
                 "\"cidr\": \"203.0.113.0/24\", \"gateway\": \"203.0.113.1\", \"bridge\": "
                 "\"br-public\", \"pools\": [[\"203.0.113.10\", \"203.0.113.20\"]], \"shared\": "
                 "true}]}");
    assert_int_equal(mu_net_policy_apply(p, db.st, &rec, &created, &err), 0);
    assert_int_equal(created, 1);
    assert_int_equal(mu_net_policy_apply(p, db.st, &rec, &created, &err), 0);
    assert_int_equal(created, 0);
    mu_store_net_config_get(db.st, &c);
    assert_int_equal(c.segment_min, 5000);
    assert_int_equal(c.underlay_mtu, 9000);
    assert_int_equal(mu_store_network_find_provider(db.st, "public", &id, &err), 0);
    assert_int_equal(mu_store_network_get(db.st, id, &n, &err), 0);
    assert_int_equal(n.tenant_id, root);
    assert_true(n.shared);
    assert_int_equal(n.mtu, 9000);
    assert_string_equal(n.pool_json, "[[\"203.0.113.10\",\"203.0.113.20\"]]");
    mu_network_clear(&n);
    mu_net_policy_free(p);
    mu_test_db_fini(&db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped), cmocka_unit_test(test_parse),
        cmocka_unit_test(test_helpers), cmocka_unit_test(test_rule_json),
        cmocka_unit_test(test_apply),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
