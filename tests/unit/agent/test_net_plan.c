/* agents/net: the node plan parser takes exactly what network.h documents and refuses any
 * value that could reach ip/bridge/nft in an unexpected shape; the command runner passes
 * arguments without a shell and reports exit codes and stderr. (Devices themselves are
 * checked for real by tests/integration/test_networks_real.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"
#include "net/net.h"

static const char *const GOOD =
    "{\"generation\": 7, \"node\": \"node-1\", \"local\": \"10.99.0.11\", \"underlay_mtu\": 1500,"
    " \"vxlan_port\": 4789, \"allowed_peers\": [\"10.99.0.11\", \"10.99.0.12\", \"10.99.0.12\"],"
    " \"segments\": [{\"network\": 5, \"mode\": \"vxlan\", \"segment\": 1005, \"bridge\": "
    "\"mubr1005\", \"mtu\": 1450, \"peers\": [\"10.99.0.12\"]},"
    " {\"network\": 2, \"mode\": \"bridge\", \"bridge\": \"br-public\", \"mtu\": 1500, "
    "\"peers\": []}], \"future_field\": true}";

static void test_parse_good(void **state)
{
    (void)state;
    struct mu_net_plan p;
    struct mu_err err = {0};
    assert_int_equal(mu_net_plan_parse(GOOD, strlen(GOOD), &p, &err), 0);
    assert_int_equal(p.generation, 7);
    assert_int_equal(p.local, 0x0a63000b);
    assert_int_equal(p.vxlan_port, 4789);
    assert_int_equal(p.n_allowed, 2); /* duplicates folded */
    assert_int_equal(p.n_segs, 2);
    assert_string_equal(p.segs[0].mode, "vxlan");
    assert_int_equal(p.segs[0].segment, 1005);
    assert_string_equal(p.segs[0].bridge, "mubr1005");
    assert_int_equal(p.segs[0].mtu, 1450);
    assert_int_equal(p.segs[0].n_peers, 1);
    assert_int_equal(p.segs[0].peers[0], 0x0a63000c);
    assert_string_equal(p.segs[1].mode, "bridge");
    mu_net_plan_clear(&p);

    /* A node without an underlay address: nothing to realise, apply does nothing. */
    const char *none = "{\"generation\": 1, \"local\": \"\", \"segments\": []}";
    assert_int_equal(mu_net_plan_parse(none, strlen(none), &p, &err), 0);
    assert_int_equal(p.local, 0);
    struct mu_net_apply_stats st;
    assert_int_equal(mu_net_apply(&p, &st, &err), 0);
    assert_int_equal(st.created + st.removed + st.fdb_added, 0);
    assert_false(st.nft_applied);
    mu_net_plan_clear(&p);
}

/* GOOD with one substring replaced must be refused, naming field. */
static void refused(const char *from, const char *to, const char *field)
{
    const char *at = strstr(GOOD, from);
    assert_non_null(at);
    char *doc = mu_xasprintf("%.*s%s%s", (int)(at - GOOD), GOOD, to, at + strlen(from));
    struct mu_net_plan p;
    memset(&p, 0x5a, sizeof p);
    struct mu_err err = {0};
    int rc = mu_net_plan_parse(doc, strlen(doc), &p, &err);
    if (rc != MU_EINVAL)
        print_error("accepted: %s\n", doc);
    assert_int_equal(rc, MU_EINVAL);
    if (field)
        assert_string_equal(err.field, field);
    assert_int_equal(p.generation, 0x5a5a5a5a5a5a5a5a); /* untouched */
    free(doc);
}

static void test_parse_hostile(void **state)
{
    (void)state;
    refused("\"mubr1005\"", "\"mubr1005;reboot\"", "bridge");
    refused("\"mubr1005\"", "\"mubr1006\"", "bridge"); /* vxlan bridge must be mubr<VNI> */
    refused("\"br-public\"", "\"br public\"", "bridge");
    refused("\"br-public\"", "\"-public\"", "bridge");
    refused("\"br-public\"", "\"a-very-long-bridge-name\"", "bridge");
    refused("\"segment\": 1005", "\"segment\": 16777216", "segment");
    refused("\"segment\": 1005", "\"segment\": 0", "segment");
    refused("\"segment\": 1005", "\"segment\": \"1005\"", "segment");
    refused("\"local\": \"10.99.0.11\"", "\"local\": \"10.99.0.11 dev lo\"", "local");
    refused("\"local\": \"10.99.0.11\"", "\"local\": \"010.99.0.11\"", "local");
    refused("\"local\": \"10.99.0.11\"", "\"local\": \"239.1.1.1\"", "local");
    refused("\"peers\": [\"10.99.0.12\"]", "\"peers\": [\"10.99.0.256\"]", "peers");
    refused("\"peers\": [\"10.99.0.12\"]", "\"peers\": [12]", "peers");
    refused("\"allowed_peers\": [", "\"allowed_peers\": [\"0.0.0.0\", ", "allowed_peers");
    refused("\"mode\": \"vxlan\"", "\"mode\": \"gre\"", "mode");
    refused("\"mtu\": 1450", "\"mtu\": 100", "mtu");
    refused("\"vxlan_port\": 4789", "\"vxlan_port\": 70000", "vxlan_port");
    refused("\"generation\": 7", "\"generation\": -1", "generation");
    refused("\"generation\": 7,", "\"generation\": 7, \"generation\": 8,", NULL); /* dup key */
}

static void test_run(void **state)
{
    (void)state;
    struct mu_err err = {0};
    char *out = NULL;
    /* No shell: metacharacters are plain bytes of one argument. */
    const char *echo[] = {"/bin/echo", "$(id)", ";", "`x`", NULL};
    assert_int_equal(mu_net_run(echo, NULL, &out, &err), 0);
    assert_string_equal(out, "$(id) ; `x`\n");
    free(out);
    out = NULL;
    const char *cat[] = {"/bin/cat", NULL};
    assert_int_equal(mu_net_run(cat, "fed through stdin\n", &out, &err), 0);
    assert_string_equal(out, "fed through stdin\n");
    free(out);
    out = NULL;
    const char *fail[] = {"/bin/sh", "-c", "echo oops >&2; exit 3", NULL};
    assert_int_equal(mu_net_run(fail, NULL, &out, &err), 3);
    assert_non_null(strstr(err.detail, "exited with 3: oops"));
    free(out);
    mu_err_clear(&err);
    const char *rel[] = {"echo", "x", NULL};
    assert_int_equal(mu_net_run(rel, NULL, NULL, &err), MU_EINVAL);
    mu_err_clear(&err);
    const char *missing[] = {"/nonexistent/tool", NULL};
    assert_int_equal(mu_net_run(missing, NULL, NULL, &err), MU_EIO);
}

static const char *const VLAN =
    "{\"generation\": 9, \"local\": \"\", \"segments\": ["
    "{\"network\": 7, \"mode\": \"vlan\", \"segment\": 101, \"bridge\": \"br-trunk\","
    " \"uplink\": \"eth1\", \"mtu\": 1500, \"peers\": [],"
    " \"macs\": [\"52:54:00:aa:00:01\", \"52:54:00:AA:00:02\", \"52:54:00:aa:00:01\"]},"
    " {\"network\": 8, \"mode\": \"vlan\", \"segment\": 102, \"bridge\": \"br-trunk\","
    " \"uplink\": \"eth1\", \"mtu\": 1500, \"peers\": [],"
    " \"macs\": [\"52:54:00:bb:00:01\"]}]}";

/* VLAN segments: two on one trunk (shared bridge allowed), MACs lowercased and folded, and
 * the port decision: a libvirt tap (first byte fe) or the guest MAC itself gets its segment's
 * VLAN, anything else none. */
static void test_vlan(void **state)
{
    (void)state;
    struct mu_net_plan p;
    struct mu_err err = {0};
    assert_int_equal(mu_net_plan_parse(VLAN, strlen(VLAN), &p, &err), 0);
    assert_int_equal(p.n_segs, 2);
    assert_int_equal(p.segs[0].segment, 101);
    assert_string_equal(p.segs[0].uplink, "eth1");
    assert_int_equal(p.segs[0].n_macs, 2);
    assert_string_equal(p.segs[0].macs[1], "52:54:00:aa:00:02");
    assert_int_equal(mu_net_vlan_of_port(&p, "br-trunk", "fe:54:00:aa:00:01"), 101);
    assert_int_equal(mu_net_vlan_of_port(&p, "br-trunk", "FE:54:00:AA:00:02"), 101);
    assert_int_equal(mu_net_vlan_of_port(&p, "br-trunk", "52:54:00:bb:00:01"), 102);
    assert_int_equal(mu_net_vlan_of_port(&p, "br-trunk", "fe:54:00:bb:00:01"), 102);
    assert_int_equal(mu_net_vlan_of_port(&p, "br-trunk", "fe:54:00:cc:00:01"), 0);
    assert_int_equal(mu_net_vlan_of_port(&p, "br-trunk", "fe:55:00:aa:00:01"), 0);
    assert_int_equal(mu_net_vlan_of_port(&p, "br-other", "fe:54:00:aa:00:01"), 0);
    assert_int_equal(mu_net_vlan_of_port(&p, "br-trunk", "garbage"), 0);
    assert_int_equal(mu_net_vlan_of_port(&p, "br-trunk", NULL), 0);
    mu_net_plan_clear(&p);

    /* Hostile values never reach bridge(8). */
    static const char *const bad[][3] = {
        {"\"segment\": 101", "\"segment\": 4095", "segment"},
        {"\"segment\": 101", "\"segment\": 0", "segment"},
        {"\"uplink\": \"eth1\"", "\"uplink\": \"eth1 vid 5\"", "uplink"},
        {"\"uplink\": \"eth1\"", "\"uplink\": \"-eth1\"", "uplink"},
        {"\"uplink\": \"eth1\"", "\"uplink\": \"br-trunk\"", "uplink"},
        {"\"52:54:00:aa:00:01\", ", "\"52:54:00:aa:00:0g\", ", "macs"},
        {"\"52:54:00:aa:00:01\", ", "\"01:00:5e:00:00:01\", ", "macs"}, /* multicast */
        {"\"52:54:00:aa:00:01\", ", "\"52-54-00-aa-00-01\", ", "macs"},
        {"\"52:54:00:aa:00:01\", ", "5, ", "macs"},
        {"\"bridge\": \"br-trunk\", \"uplink", "\"bridge\": \"br trunk\", \"uplink", "bridge"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        const char *at = strstr(VLAN, bad[i][0]);
        assert_non_null(at);
        char *doc =
            mu_xasprintf("%.*s%s%s", (int)(at - VLAN), VLAN, bad[i][1], at + strlen(bad[i][0]));
        int rc = mu_net_plan_parse(doc, strlen(doc), &p, &err);
        if (rc != MU_EINVAL)
            print_error("accepted: %s\n", doc);
        assert_int_equal(rc, MU_EINVAL);
        assert_string_equal(err.field, bad[i][2]);
        mu_err_clear(&err);
        free(doc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_run),
        cmocka_unit_test(test_vlan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
