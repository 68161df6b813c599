/* notify/url.c: the webhook URL rules. Address classes (IPv4, IPv6, IPv4 embedded in IPv6),
 * CIDR parsing and the allow-list, the URL syntax (every refusal names what is wrong), the
 * host of libvirt URIs, and the full check with node addresses and the allow-list
 * (literal hosts only: no DNS here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "notify/notify.h"

static enum mu_notify_addr_class cls(const char *text)
{
    struct mu_notify_addr a;
    if (mu_notify_addr_parse(text, &a) != 0)
        fail_msg("not an address: %s", text);
    return mu_notify_addr_classify(&a);
}

static void test_classes_v4(void **state)
{
    (void)state;
    assert_int_equal(cls("8.8.8.8"), MU_NOTIFY_ADDR_PUBLIC);
    assert_int_equal(cls("203.0.113.10"), MU_NOTIFY_ADDR_PUBLIC);
    assert_int_equal(cls("0.0.0.0"), MU_NOTIFY_ADDR_UNSPECIFIED);
    assert_int_equal(cls("0.1.2.3"), MU_NOTIFY_ADDR_UNSPECIFIED);
    assert_int_equal(cls("127.0.0.1"), MU_NOTIFY_ADDR_LOOPBACK);
    assert_int_equal(cls("127.255.255.254"), MU_NOTIFY_ADDR_LOOPBACK);
    assert_int_equal(cls("10.0.0.1"), MU_NOTIFY_ADDR_PRIVATE);
    assert_int_equal(cls("172.16.0.1"), MU_NOTIFY_ADDR_PRIVATE);
    assert_int_equal(cls("172.31.255.255"), MU_NOTIFY_ADDR_PRIVATE);
    assert_int_equal(cls("172.15.255.255"), MU_NOTIFY_ADDR_PUBLIC); /* just outside /12 */
    assert_int_equal(cls("172.32.0.0"), MU_NOTIFY_ADDR_PUBLIC);
    assert_int_equal(cls("192.168.1.1"), MU_NOTIFY_ADDR_PRIVATE);
    assert_int_equal(cls("192.169.0.1"), MU_NOTIFY_ADDR_PUBLIC);
    assert_int_equal(cls("169.254.169.254"), MU_NOTIFY_ADDR_LINK_LOCAL);
    assert_int_equal(cls("100.64.0.0"), MU_NOTIFY_ADDR_CGNAT);
    assert_int_equal(cls("100.127.255.255"), MU_NOTIFY_ADDR_CGNAT);
    assert_int_equal(cls("100.63.255.255"), MU_NOTIFY_ADDR_PUBLIC);
    assert_int_equal(cls("100.128.0.0"), MU_NOTIFY_ADDR_PUBLIC);
    assert_int_equal(cls("224.0.0.1"), MU_NOTIFY_ADDR_MULTICAST);
    assert_int_equal(cls("239.255.255.255"), MU_NOTIFY_ADDR_MULTICAST);
    assert_int_equal(cls("240.0.0.1"), MU_NOTIFY_ADDR_RESERVED);
    assert_int_equal(cls("255.255.255.255"), MU_NOTIFY_ADDR_RESERVED);
    assert_int_equal(cls("192.0.0.8"), MU_NOTIFY_ADDR_RESERVED);
    assert_int_equal(cls("198.18.0.1"), MU_NOTIFY_ADDR_RESERVED);
    assert_int_equal(cls("198.19.255.255"), MU_NOTIFY_ADDR_RESERVED);
    assert_int_equal(cls("198.20.0.0"), MU_NOTIFY_ADDR_PUBLIC);
}

static void test_classes_v6(void **state)
{
    (void)state;
    assert_int_equal(cls("2001:4860:4860::8888"), MU_NOTIFY_ADDR_PUBLIC);
    assert_int_equal(cls("::"), MU_NOTIFY_ADDR_UNSPECIFIED);
    assert_int_equal(cls("::1"), MU_NOTIFY_ADDR_LOOPBACK);
    assert_int_equal(cls("fc00::1"), MU_NOTIFY_ADDR_PRIVATE);
    assert_int_equal(cls("fdff:ffff::1"), MU_NOTIFY_ADDR_PRIVATE);
    assert_int_equal(cls("fec0::1"), MU_NOTIFY_ADDR_PRIVATE);
    assert_int_equal(cls("fe80::1"), MU_NOTIFY_ADDR_LINK_LOCAL);
    assert_int_equal(cls("febf::1"), MU_NOTIFY_ADDR_LINK_LOCAL);
    assert_int_equal(cls("ff02::1"), MU_NOTIFY_ADDR_MULTICAST);
    assert_int_equal(cls("100::1"), MU_NOTIFY_ADDR_RESERVED);
    /* IPv4 inside IPv6 is judged as IPv4. */
    assert_int_equal(cls("::ffff:127.0.0.1"), MU_NOTIFY_ADDR_LOOPBACK);
    assert_int_equal(cls("::ffff:10.0.0.1"), MU_NOTIFY_ADDR_PRIVATE);
    assert_int_equal(cls("::ffff:8.8.8.8"), MU_NOTIFY_ADDR_PUBLIC);
    assert_int_equal(cls("::127.0.0.1"), MU_NOTIFY_ADDR_LOOPBACK);
    assert_int_equal(cls("64:ff9b::a9fe:a9fe"), MU_NOTIFY_ADDR_LINK_LOCAL); /* NAT64 */
    assert_int_equal(cls("64:ff9b:1::1"), MU_NOTIFY_ADDR_RESERVED);
    assert_int_equal(cls("2002:7f00:1::1"), MU_NOTIFY_ADDR_LOOPBACK); /* 6to4 of 127.0.0.1 */
    assert_int_equal(cls("2002:c0a8:101::1"), MU_NOTIFY_ADDR_PRIVATE);
    assert_int_equal(cls("2002:808:808::1"), MU_NOTIFY_ADDR_PUBLIC);
    assert_string_equal(mu_notify_addr_class_name(MU_NOTIFY_ADDR_LOOPBACK), "loopback");
}

static void test_cidr_allow(void **state)
{
    (void)state;
    struct mu_err err = {0};
    struct mu_notify_cidr c;
    assert_int_equal(mu_notify_cidr_parse("127.0.0.1/32", &c, &err), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(mu_notify_cidr_parse("10.0.0.0/8", &c, &err), 0);
    assert_int_equal(mu_notify_cidr_parse("::1", &c, &err), 0);
    assert_int_equal(c.prefix, 128);
    assert_int_equal(mu_notify_cidr_parse("fd00::/8", &c, &err), 0);
    assert_int_equal(mu_notify_cidr_parse("0.0.0.0/0", &c, &err), 0);

    static const char *const bad[] = {
        "",           "10.0.0.1/8",  "10.0.0.0/33", "10.0.0.0/",   "10.0.0.0/x",
        "fd00::/129", "example.org", "10.0.0.0/-1", "10.0.0.0/8/8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mu_err_clear(&err);
        if (mu_notify_cidr_parse(bad[i], &c, &err) != MU_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_string_equal(err.field, "webhook_allow");
        assert_true(err.detail[0] != '\0');
    }

    char *texts[] = {(char *)"127.0.0.1/32", (char *)"10.20.0.0/16", (char *)"fd00:1::/32", NULL};
    struct mu_notify_allow *allow = NULL;
    assert_int_equal(mu_notify_allow_parse(texts, &allow, &err), 0);
    assert_int_equal(allow->n, 3);
    struct mu_notify_addr a;
    mu_notify_addr_parse("127.0.0.1", &a);
    assert_true(mu_notify_allow_contains(allow, &a));
    mu_notify_addr_parse("127.0.0.2", &a);
    assert_false(mu_notify_allow_contains(allow, &a));
    mu_notify_addr_parse("10.20.255.1", &a);
    assert_true(mu_notify_allow_contains(allow, &a));
    mu_notify_addr_parse("10.21.0.1", &a);
    assert_false(mu_notify_allow_contains(allow, &a));
    mu_notify_addr_parse("::ffff:127.0.0.1", &a); /* mapped: matches the IPv4 block */
    assert_true(mu_notify_allow_contains(allow, &a));
    mu_notify_addr_parse("fd00:1:ffff::1", &a);
    assert_true(mu_notify_allow_contains(allow, &a));
    mu_notify_addr_parse("fd00:2::1", &a);
    assert_false(mu_notify_allow_contains(allow, &a));
    assert_false(mu_notify_allow_contains(NULL, &a));
    mu_notify_allow_free(allow);

    char *bad_list[] = {(char *)"127.0.0.1/32", (char *)"nonsense", NULL};
    allow = NULL;
    assert_int_equal(mu_notify_allow_parse(bad_list, &allow, &err), MU_EINVAL);
    assert_null(allow);
    assert_int_equal(mu_notify_allow_parse(NULL, &allow, &err), 0);
    assert_int_equal(allow->n, 0);
    mu_notify_allow_free(allow);
    mu_notify_allow_free(NULL);
}

static void expect_url(const char *url, const char *host, unsigned port, bool literal)
{
    struct mu_notify_url u;
    struct mu_err err = {0};
    if (mu_notify_url_parse(url, &u, &err) != 0)
        fail_msg("refused %s: %s", url, err.detail);
    assert_string_equal(u.host, host);
    assert_int_equal(u.port, port);
    assert_int_equal(u.host_literal, literal);
}

static void refuse_url(const char *url, const char *words)
{
    struct mu_notify_url u;
    struct mu_err err = {0};
    if (mu_notify_url_parse(url, &u, &err) != MU_EINVAL)
        fail_msg("accepted %s", url);
    assert_string_equal(err.field, "url");
    if (!strstr(err.detail, words))
        fail_msg("%s: detail \"%s\" lacks \"%s\"", url, err.detail, words);
}

static void test_url_syntax(void **state)
{
    (void)state;
    expect_url("https://hooks.example.org/mutualis", "hooks.example.org", 443, false);
    expect_url("HTTPS://Hooks.Example.ORG:8443/a/b?c=d&e=%20f", "hooks.example.org", 8443, false);
    expect_url("https://203.0.113.10", "203.0.113.10", 443, true);
    expect_url("https://203.0.113.10:1/x", "203.0.113.10", 1, true);
    expect_url("https://[2001:db8::1]:65535/x", "2001:db8::1", 65535, true);
    expect_url("https://a-b.c0.example/~x/y;z=1@:!$'()*+,", "a-b.c0.example", 443, false);
    expect_url("https://xn--mairie-dcb.fr/", "xn--mairie-dcb.fr", 443, false);

    refuse_url("", "empty");
    refuse_url(NULL, "empty");
    refuse_url("http://example.org/", "https://");
    refuse_url("ftp://example.org/", "https://");
    refuse_url("example.org/hook", "https://");
    refuse_url("https://user@example.org/", "user name");
    refuse_url("https://user:pw@example.org/", "user name");
    refuse_url("https://example.org@evil.example/", "user name");
    refuse_url("https:///x", "no host");
    refuse_url("https://:443/x", "no host");
    refuse_url("https://example.org:/", "port");
    refuse_url("https://example.org:0/", "port");
    refuse_url("https://example.org:65536/", "port");
    refuse_url("https://example.org:123456/", "port");
    refuse_url("https://example.org:8o/", "port");
    refuse_url("https://example.org:+80/", "port");
    refuse_url("https://exa mple.org/", "spaces");
    refuse_url("https://example.org/\x01", "control");
    refuse_url("https://exampl\xc3\xa9.org/", "non-ASCII");
    refuse_url("https://example.org/a#b", "fragment");
    refuse_url("https://example.org/a\"b", "percent-encoded");
    refuse_url("https://example.org/a<b", "percent-encoded");
    refuse_url("https://example.org/a%zz", "percent-encoded");
    refuse_url("https://example.org/a\\b", "percent-encoded");
    refuse_url("https://ex_ample.org/", "invalid host");
    refuse_url("https://-example.org/", "invalid host");
    refuse_url("https://example-.org/", "invalid host");
    refuse_url("https://example..org/", "invalid host");
    refuse_url("https://example.org./", "invalid host");
    refuse_url("https://0x7f000001/", "invalid host");
    refuse_url("https://0x7f.1/", "invalid host");
    refuse_url("https://127.1/", "invalid host");
    refuse_url("https://2130706433/", "invalid host");
    refuse_url("https://127.000.0.1/", "invalid host");
    refuse_url("https://256.1.1.1/", "invalid host");
    refuse_url("https://1.2.3.4.5/", "invalid host");
    refuse_url("https://[fe80::1%25eth0]/", "IPv6");
    refuse_url("https://[::1/", "IPv6");
    refuse_url("https://[::1]x/", "after its IPv6");
    refuse_url("https://[not:v6]/", "IPv6");

    char label[80];
    memset(label, 'a', 64);
    label[64] = '\0';
    char url[200];
    snprintf(url, sizeof url, "https://%s.example/", label);
    refuse_url(url, "invalid host");

    static char big[MU_NOTIFY_URL_MAX + 64];
    memcpy(big, "https://example.org/", 20);
    memset(big + 20, 'a', sizeof big - 21);
    big[sizeof big - 1] = '\0';
    refuse_url(big, "longer than 2048");
    big[MU_NOTIFY_URL_MAX] = '\0'; /* exactly the limit: fine */
    expect_url(big, "example.org", 443, false);
}

static void test_uri_host(void **state)
{
    (void)state;
    char h[256];
    assert_int_equal(
        mu_notify_uri_host("qemu+ssh://root@10.0.0.5:22/system?keyfile=/k", h, sizeof h), 0);
    assert_string_equal(h, "10.0.0.5");
    assert_int_equal(mu_notify_uri_host("qemu+tls://node-2.example.org/system", h, sizeof h), 0);
    assert_string_equal(h, "node-2.example.org");
    assert_int_equal(mu_notify_uri_host("qemu+libssh://u@[2001:db8::5]:2222/session", h, sizeof h),
                     0);
    assert_string_equal(h, "2001:db8::5");
    assert_int_equal(mu_notify_uri_host("qemu+ssh://a@b@198.51.100.1/system", h, sizeof h), 0);
    assert_string_equal(h, "198.51.100.1");
    assert_int_equal(mu_notify_uri_host("qemu:///system", h, sizeof h), -1);
    assert_int_equal(mu_notify_uri_host("test:///default", h, sizeof h), -1);
    assert_int_equal(mu_notify_uri_host("nonsense", h, sizeof h), -1);
    assert_int_equal(mu_notify_uri_host(NULL, h, sizeof h), -1);
    assert_int_equal(mu_notify_uri_host("qemu+ssh://root@10.0.0.5/system", h, 4), -1);
}

static void test_check(void **state)
{
    (void)state;
    struct mu_err err = {0};
    struct mu_notify_target t;
    struct mu_notify_addr node_addrs[2];
    char *node_names[2] = {(char *)"node-1", (char *)"node-2"};
    mu_notify_addr_parse("198.51.100.7", &node_addrs[0]);
    mu_notify_addr_parse("2001:db8::7", &node_addrs[1]);
    struct mu_notify_nodes nodes = {.addrs = node_addrs, .names = node_names, .n = 2};

    assert_int_equal(
        mu_notify_url_check("https://203.0.113.10:8443/h", NULL, &nodes, NULL, &t, &err), 0);
    assert_int_equal(t.n_addrs, 1);
    assert_int_equal(t.url.port, 8443);
    char text[64];
    mu_notify_addr_text(&t.addrs[0], text, sizeof text);
    assert_string_equal(text, "203.0.113.10");

    mu_err_clear(&err);
    assert_int_equal(mu_notify_url_check("https://127.0.0.1/h", NULL, &nodes, NULL, &t, &err),
                     MU_EINVAL);
    assert_non_null(strstr(err.detail, "loopback"));
    assert_non_null(strstr(err.detail, "webhook_allow"));

    mu_err_clear(&err);
    assert_int_equal(mu_notify_url_check("https://198.51.100.7/h", NULL, &nodes, NULL, &t, &err),
                     MU_EINVAL);
    assert_non_null(strstr(err.detail, "node-1"));
    mu_err_clear(&err);
    assert_int_equal(
        mu_notify_url_check("https://[::ffff:198.51.100.7]/h", NULL, &nodes, NULL, &t, &err),
        MU_EINVAL);
    assert_non_null(strstr(err.detail, "node-1"));
    mu_err_clear(&err);
    assert_int_equal(mu_notify_url_check("https://[2001:db8::7]/h", NULL, &nodes, NULL, &t, &err),
                     MU_EINVAL);
    assert_non_null(strstr(err.detail, "node-2"));

    /* The allow-list lifts the refusal, for that block only. */
    char *texts[] = {(char *)"127.0.0.1/32", (char *)"198.51.100.0/24", NULL};
    struct mu_notify_allow *allow = NULL;
    assert_int_equal(mu_notify_allow_parse(texts, &allow, &err), 0);
    assert_int_equal(mu_notify_url_check("https://127.0.0.1:9/h", allow, &nodes, NULL, &t, &err),
                     0);
    assert_int_equal(mu_notify_url_check("https://198.51.100.7/h", allow, &nodes, NULL, &t, &err),
                     0);
    mu_err_clear(&err);
    assert_int_equal(mu_notify_url_check("https://127.0.0.2/h", allow, &nodes, NULL, &t, &err),
                     MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_notify_url_check("http://127.0.0.1/h", allow, &nodes, NULL, &t, &err),
                     MU_EINVAL);
    mu_notify_allow_free(allow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_v4), cmocka_unit_test(test_classes_v6),
        cmocka_unit_test(test_cidr_allow), cmocka_unit_test(test_url_syntax),
        cmocka_unit_test(test_uri_host),   cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
