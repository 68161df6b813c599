/* virt/nwfilter: the network filter holds clean-traffic and the rules in the documented
 * order (operator rules first whatever order they come in, tenant rules, then drop); hostile
 * rule values are refused; the domain XML gets one filtered bridge interface per NIC; the
 * IPv4, CIDR and MAC allow-lists. XML is parsed back with libxml2, never string-matched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"
#include "virt/virt.h"
#include "virt/virt_int.h"

#define UUID "0b7c1f4e-8a4a-4b6b-9d3e-0a1b2c3d4e5f"

static xmlDocPtr parse_ok(const char *xml)
{
    assert_non_null(xml);
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "f.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    assert_non_null(doc);
    return doc;
}

static char *attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    char *s = v ? strdup((const char *)v) : strdup("");
    xmlFree(v);
    return s;
}

static xmlNodePtr first_child(xmlNodePtr parent)
{
    for (xmlNodePtr n = parent->children; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE)
            return n;
    return NULL;
}

static struct mu_sec_rule mk_rule(bool op, const char *action, const char *proto, int lo, int hi,
                                  const char *src)
{
    struct mu_sec_rule r = {.operator_rule = op, .port_min = lo, .port_max = hi};
    snprintf(r.action, sizeof r.action, "%s", action);
    snprintf(r.proto, sizeof r.proto, "%s", proto);
    snprintf(r.source, sizeof r.source, "%s", src);
    return r;
}

/* One line per element of the filter: "filterref clean-traffic" or
 * "rule <action> <dir> <prio> <proto> src=<ip>/<mask> ports=<a>-<b> state=<s>". */
static char *summarise(const char *xml)
{
    xmlDocPtr doc = parse_ok(xml);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    struct mu_buf b;
    mu_buf_init(&b);
    char *name = attr(root, "name"), *chain = attr(root, "chain");
    mu_buf_printf(&b, "filter %s %s\n", name, chain);
    free(name);
    free(chain);
    for (xmlNodePtr n = root->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp((const char *)n->name, "uuid") == 0) {
            xmlChar *t = xmlNodeGetContent(n);
            mu_buf_printf(&b, "uuid %s\n", (const char *)t);
            xmlFree(t);
        } else if (strcmp((const char *)n->name, "filterref") == 0) {
            char *f = attr(n, "filter");
            mu_buf_printf(&b, "filterref %s\n", f);
            free(f);
        } else {
            assert_string_equal((const char *)n->name, "rule");
            char *a = attr(n, "action"), *d = attr(n, "direction"), *p = attr(n, "priority");
            xmlNodePtr m = first_child(n);
            assert_non_null(m);
            char *ip = attr(m, "srcipaddr"), *mask = attr(m, "srcipmask");
            char *ps = attr(m, "dstportstart"), *pe = attr(m, "dstportend");
            char *st = attr(m, "state");
            mu_buf_printf(&b, "rule %s %s %s %s", a, d, p, (const char *)m->name);
            if (ip[0])
                mu_buf_printf(&b, " src=%s/%s", ip, mask);
            if (ps[0])
                mu_buf_printf(&b, " ports=%s-%s", ps, pe);
            if (st[0])
                mu_buf_printf(&b, " state=%s", st);
            mu_buf_puts(&b, "\n");
            free(a), free(d), free(p), free(ip), free(mask), free(ps), free(pe), free(st);
        }
    }
    xmlFreeDoc(doc);
    return mu_buf_steal(&b);
}

static void test_filter_order(void **state)
{
    (void)state;
    struct mu_sec_rule rules[] = {
        mk_rule(false, "accept", "tcp", 80, 80, "0.0.0.0/0"),
        mk_rule(true, "drop", "tcp", 22, 22, "0.0.0.0/0"),
        mk_rule(false, "accept", "udp", 5000, 5010, "192.0.2.0/24"),
        mk_rule(true, "accept", "icmp", 0, 0, "198.51.100.7/32"),
        mk_rule(false, "accept", "any", 0, 0, "203.0.113.0/28"),
    };
    char *xml = NULL;
    struct mu_err err = {0};
    assert_int_equal(
        mu_virt_nwfilter_xml_build(5, "10.20.0.0/24", rules, MU_ARRAY_LEN(rules), &xml, &err), 0);
    char *sum = summarise(xml);
    assert_string_equal(sum, "filter mu-net-5 root\n"
                             "uuid 6d752d6e-6574-4000-8000-000000000005\n"
                             "filterref clean-traffic\n"
                             "rule accept out 100 all\n"
                             "rule accept in 110 all state=ESTABLISHED,RELATED\n"
                             "rule accept in 120 all src=10.20.0.0/24\n"
                             "rule drop in 200 tcp ports=22-22\n"
                             "rule accept in 201 icmp src=198.51.100.7/32\n"
                             "rule accept in 500 tcp ports=80-80\n"
                             "rule accept in 501 udp src=192.0.2.0/24 ports=5000-5010\n"
                             "rule accept in 502 all src=203.0.113.0/28\n"
                             "rule drop in 900 all\n");
    free(sum);
    free(xml);

    /* No rules: inside and replies only. */
    assert_int_equal(mu_virt_nwfilter_xml_build(12, "172.16.0.0/12", NULL, 0, &xml, &err), 0);
    sum = summarise(xml);
    assert_non_null(
        strstr(sum, "rule accept in 120 all src=172.16.0.0/12\nrule drop in 900 all\n"));
    free(sum);
    free(xml);
}

static void expect_bad(const struct mu_sec_rule *r, const char *field)
{
    char *xml = (char *)"untouched";
    struct mu_err err = {0};
    assert_int_equal(mu_virt_nwfilter_xml_build(5, "10.20.0.0/24", r, 1, &xml, &err), MU_EINVAL);
    assert_string_equal(err.field, field);
    assert_string_equal(xml, "untouched");
}

static void test_filter_refuses(void **state)
{
    (void)state;
    struct mu_sec_rule r = mk_rule(false, "drop", "tcp", 22, 22, "0.0.0.0/0");
    expect_bad(&r, "action"); /* tenants cannot drop */
    r = mk_rule(false, "reject", "tcp", 22, 22, "0.0.0.0/0");
    expect_bad(&r, "action");
    r = mk_rule(false, "accept", "sctp", 22, 22, "0.0.0.0/0");
    expect_bad(&r, "proto");
    r = mk_rule(false, "accept", "tcp", 0, 22, "0.0.0.0/0");
    expect_bad(&r, "port");
    r = mk_rule(false, "accept", "tcp", 30, 22, "0.0.0.0/0");
    expect_bad(&r, "port");
    r = mk_rule(false, "accept", "udp", 1, 65536, "0.0.0.0/0");
    expect_bad(&r, "port");
    const char *bad_src[] = {"10.0.0.1/24", "10.0.0.0",     "10.0.0.0/33",
                             "10.0.0.0/08", "10.0.0.0/24'", "any"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad_src); i++) {
        r = mk_rule(false, "accept", "tcp", 22, 22, bad_src[i]);
        expect_bad(&r, "source");
    }
    char *xml = NULL;
    struct mu_err err = {0};
    assert_int_equal(mu_virt_nwfilter_xml_build(5, "10.20.0.1/24", NULL, 0, &xml, &err), MU_EINVAL);
    assert_int_equal(mu_virt_nwfilter_xml_build(0, "10.20.0.0/24", NULL, 0, &xml, &err), MU_EINVAL);
    assert_null(xml);
}

static void test_parsers(void **state)
{
    (void)state;
    uint32_t v;
    int p;
    assert_int_equal(mu_virt_ipv4_parse("10.20.0.5", &v), 0);
    assert_int_equal(v, 0x0a140005u);
    assert_int_equal(mu_virt_ipv4_parse("255.255.255.255", &v), 0);
    assert_int_equal(mu_virt_ipv4_parse("0.0.0.0", &v), 0);
    const char *bad[] = {"",       "1.2.3",    "1.2.3.4.5", "1.2.3.256", "01.2.3.4",
                         "1..3.4", "1.2.3.4 ", "a.b.c.d",   "1.2.3.-4",  "1.2.3.4/"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++)
        assert_int_equal(mu_virt_ipv4_parse(bad[i], &v), -1);
    char out[16];
    mu_virt_ipv4_format(0xc0000201u, out);
    assert_string_equal(out, "192.0.2.1");
    assert_int_equal(mu_virt_cidr_parse("0.0.0.0/0", &v, &p), 0);
    assert_int_equal(p, 0);
    assert_int_equal(mu_virt_cidr_parse("10.0.0.0/8", &v, &p), 0);
    assert_int_equal(mu_virt_cidr_parse("10.0.0.0/33", &v, &p), -1);
    assert_int_equal(mu_virt_cidr_parse("10.0.0.0/08", &v, &p), -1);
    assert_true(mu_virt_mac_valid("52:54:00:12:ab:ff"));
    assert_false(mu_virt_mac_valid("52:54:00:12:AB:ff"));
    assert_false(mu_virt_mac_valid("01:00:5e:00:00:01")); /* multicast */
    assert_false(mu_virt_mac_valid("52:54:00:12:ab:f"));
}

static void test_domain_interfaces(void **state)
{
    (void)state;
    struct mu_nic nics[2] = {0};
    for (int i = 0; i < 2; i++) {
        nics[i].idx = i;
        nics[i].network_id = 5 + i;
        snprintf(nics[i].mac, sizeof nics[i].mac, "52:54:00:00:00:0%d", i + 1);
        snprintf(nics[i].ip, sizeof nics[i].ip, "10.20.0.%d", 10 + i);
        nics[i].prefix = 24;
        nics[i].mtu = 1450;
        snprintf(nics[i].bridge, sizeof nics[i].bridge, "mubr100%d", i);
    }
    struct mu_virt_domain_spec s = {
        .vm_id = 42,
        .tenant_id = 7,
        .vm_name = "web-1",
        .vcpus = 1,
        .ram_mib = 128,
        .disk_path = "/var/lib/mutualis/pool/mu-" UUID ".qcow2",
        .seed_iso = "/var/lib/mutualis/pool/mu-" UUID ".seed.iso",
        .nics = nics,
        .n_nics = 2,
    };
    snprintf(s.uuid, sizeof s.uuid, "%s", UUID);
    struct mu_err err = {0};
    char *xml = NULL;
    assert_int_equal(mu_virt_domain_xml_build(&s, &xml, &err), 0);
    xmlDocPtr doc = parse_ok(xml);
    xmlNodePtr devs = NULL;
    for (xmlNodePtr n = xmlDocGetRootElement(doc)->children; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, "devices") == 0)
            devs = n;
    assert_non_null(devs);
    int k = 0;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, "interface") != 0)
            continue;
        struct mu_buf b;
        mu_buf_init(&b);
        char *t = attr(n, "type");
        mu_buf_printf(&b, "%s", t);
        free(t);
        for (xmlNodePtr c = n->children; c; c = c->next) {
            if (c->type != XML_ELEMENT_NODE)
                continue;
            mu_buf_printf(&b, " %s", (const char *)c->name);
            for (xmlAttrPtr a = c->properties; a; a = a->next) {
                char *v = attr(c, (const char *)a->name);
                mu_buf_printf(&b, ":%s=%s", (const char *)a->name, v);
                free(v);
            }
            for (xmlNodePtr pn = c->children; pn; pn = pn->next) {
                if (pn->type != XML_ELEMENT_NODE)
                    continue;
                char *nm = attr(pn, "name"), *vv = attr(pn, "value");
                mu_buf_printf(&b, "[%s=%s]", nm, vv);
                free(nm);
                free(vv);
            }
        }
        char want[400];
        snprintf(want, sizeof want,
                 "bridge mac:address=52:54:00:00:00:0%d source:bridge=mubr100%d model:type=virtio "
                 "mtu:size=1450 filterref:filter=mu-net-%d[IP=10.20.0.%d][MAC=52:54:00:00:00:0%d]",
                 k + 1, k, 5 + k, 10 + k, k + 1);
        char *got = mu_buf_steal(&b);
        assert_string_equal(got, want);
        free(got);
        k++;
    }
    assert_int_equal(k, 2);
    xmlFreeDoc(doc);
    free(xml);

    /* Hostile NIC values are refused before any XML exists. */
    snprintf(nics[1].bridge, sizeof nics[1].bridge, "br0'/><x");
    assert_int_equal(mu_virt_domain_xml_build(&s, &xml, &err), MU_EINVAL);
    assert_string_equal(err.field, "bridge");
    snprintf(nics[1].bridge, sizeof nics[1].bridge, "mubr1001");
    snprintf(nics[1].ip, sizeof nics[1].ip, "10.20.0.1'");
    mu_err_clear(&err);
    assert_int_equal(mu_virt_domain_xml_build(&s, &xml, &err), MU_EINVAL);
    assert_string_equal(err.field, "ip");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_order),
        cmocka_unit_test(test_filter_refuses),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_domain_interfaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
