/* virt/seed: the NoCloud seed is an ISO 9660 volume "cidata" whose Rock Ridge names are
 * meta-data, network-config and user-data, checked with isoinfo (genisoimage) reading the
 * image we built; the YAML holds exactly the validated values, quoted; hostile values are
 * refused; the same inputs give the same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mutualis/util.h"
#include "virt/virt.h"
#include "virt/virt_int.h"

#define UUID "0b7c1f4e-8a4a-4b6b-9d3e-0a1b2c3d4e5f"

static void nic_fill(struct mu_nic *n, int idx, const char *mac, const char *ip, const char *gw)
{
    memset(n, 0, sizeof *n);
    n->idx = idx;
    n->network_id = 5;
    snprintf(n->mac, sizeof n->mac, "%s", mac);
    snprintf(n->ip, sizeof n->ip, "%s", ip);
    n->prefix = 24;
    snprintf(n->gateway, sizeof n->gateway, "%s", gw);
    n->mtu = 1450;
    snprintf(n->bridge, sizeof n->bridge, "mubr1005");
    snprintf(n->network_cidr, sizeof n->network_cidr, "10.20.0.0/24");
}

static char *run_capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    struct mu_buf b;
    mu_buf_init(&b);
    char line[512];
    while (fgets(line, sizeof line, p))
        mu_buf_puts(&b, line);
    int st = pclose(p);
    assert_int_equal(WEXITSTATUS(st), 0);
    return mu_buf_steal(&b);
}

static void write_tmp(const unsigned char *buf, size_t len, char *path, size_t pathlen)
{
    snprintf(path, pathlen, "/tmp/mu-test-seed-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static void test_iso_readable(void **state)
{
    (void)state;
    struct mu_nic nics[2];
    nic_fill(&nics[0], 0, "52:54:00:aa:bb:01", "10.20.0.5", "");
    nic_fill(&nics[1], 1, "52:54:00:aa:bb:02", "192.0.2.10", "192.0.2.1");
    struct mu_virt_seed s = {.instance_id = UUID,
                             .hostname = "web-1",
                             .nics = nics,
                             .n_nics = 2,
                             .user_data = "#cloud-config\nmutualis_http_port: 80\n"};
    unsigned char *buf = NULL;
    size_t len = 0;
    struct mu_err err = {0};
    assert_int_equal(mu_virt_seed_build(&s, &buf, &len, &err), 0);
    assert_true(len >= 16 * 2048 && len % 2048 == 0);

    char path[64], cmd[256];
    write_tmp(buf, len, path, sizeof path);
    snprintf(cmd, sizeof cmd, "isoinfo -d -i %s", path);
    char *d = run_capture(cmd);
    assert_non_null(strstr(d, "Volume id: cidata\n"));
    assert_non_null(strstr(d, "Rock Ridge signatures version"));
    assert_non_null(strstr(d, "Joliet with UCS level"));
    free(d);
    snprintf(cmd, sizeof cmd, "isoinfo -R -f -i %s | sort", path);
    char *f = run_capture(cmd);
    assert_string_equal(f, "/meta-data\n/network-config\n/user-data\n");
    free(f);
    snprintf(cmd, sizeof cmd, "isoinfo -J -f -i %s | sort", path);
    f = run_capture(cmd);
    assert_string_equal(f, "/meta-data\n/network-config\n/user-data\n");
    free(f);
    snprintf(cmd, sizeof cmd, "isoinfo -R -i %s -x /meta-data", path);
    char *meta = run_capture(cmd);
    assert_string_equal(meta, "instance-id: \"" UUID "\"\nlocal-hostname: \"web-1\"\n");
    free(meta);
    snprintf(cmd, sizeof cmd, "isoinfo -R -i %s -x /network-config", path);
    char *net = run_capture(cmd);
    assert_string_equal(net, "version: 2\n"
                             "ethernets:\n"
                             "  eth0:\n"
                             "    match:\n"
                             "      macaddress: \"52:54:00:aa:bb:01\"\n"
                             "    set-name: \"eth0\"\n"
                             "    mtu: 1450\n"
                             "    addresses: [\"10.20.0.5/24\"]\n"
                             "  eth1:\n"
                             "    match:\n"
                             "      macaddress: \"52:54:00:aa:bb:02\"\n"
                             "    set-name: \"eth1\"\n"
                             "    mtu: 1450\n"
                             "    addresses: [\"192.0.2.10/24\"]\n"
                             "    gateway4: \"192.0.2.1\"\n");
    free(net);
    snprintf(cmd, sizeof cmd, "isoinfo -R -i %s -x /user-data", path);
    char *ud = run_capture(cmd);
    assert_string_equal(ud, "#cloud-config\nmutualis_http_port: 80\n");
    free(ud);
    unlink(path);

    /* Reproducible: the same inputs give the same bytes. */
    unsigned char *buf2 = NULL;
    size_t len2 = 0;
    assert_int_equal(mu_virt_seed_build(&s, &buf2, &len2, &err), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    free(buf);
    free(buf2);
}

static void test_no_user_data(void **state)
{
    (void)state;
    struct mu_virt_seed s = {.instance_id = UUID, .hostname = "db"};
    unsigned char *buf = NULL;
    size_t len = 0;
    struct mu_err err = {0};
    assert_int_equal(mu_virt_seed_build(&s, &buf, &len, &err), 0);
    char path[64], cmd[256];
    write_tmp(buf, len, path, sizeof path);
    snprintf(cmd, sizeof cmd, "isoinfo -R -f -i %s | sort", path);
    char *f = run_capture(cmd);
    assert_string_equal(f, "/meta-data\n/network-config\n");
    free(f);
    snprintf(cmd, sizeof cmd, "isoinfo -R -i %s -x /network-config", path);
    char *net = run_capture(cmd);
    assert_string_equal(net, "version: 2\n");
    free(net);
    unlink(path);
    free(buf);
}

static void expect_refused(const struct mu_virt_seed *s, const char *field)
{
    unsigned char *buf = (unsigned char *)"untouched";
    size_t len = 77;
    struct mu_err err = {0};
    int rc = mu_virt_seed_build(s, &buf, &len, &err);
    if (rc != MU_EINVAL)
        print_error("accepted %s: host=%s nic=%s/%s/%s\n", field, s->hostname,
                    s->n_nics ? s->nics[0].mac : "", s->n_nics ? s->nics[0].ip : "",
                    s->n_nics ? s->nics[0].gateway : "");
    assert_int_equal(rc, MU_EINVAL);
    assert_string_equal(err.field, field);
    assert_string_equal((const char *)buf, "untouched");
    assert_int_equal(len, 77);
}

static void test_hostile_values(void **state)
{
    (void)state;
    struct mu_nic n;
    struct mu_virt_seed s = {.instance_id = UUID, .hostname = "web-1", .nics = &n, .n_nics = 1};

    s.instance_id = "x\"\nlocal-hostname: evil";
    expect_refused(&s, "instance_id");
    s.instance_id = UUID;
    const char *bad_hosts[] = {"", "Web", "a b", "web\"", "web\nx: y", "-web", "w_b", "w.b"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad_hosts); i++) {
        s.hostname = bad_hosts[i];
        expect_refused(&s, "hostname");
    }
    s.hostname = "web-1";

    const char *bad_macs[] = {"52:54:00:AA:BB:01", "52:54:00:aa:bb", "53:54:00:aa:bb:01",
                              "52:54:00:aa:bb:0\"", "52-54-00-aa-bb-01"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad_macs); i++) {
        nic_fill(&n, 0, bad_macs[i], "10.20.0.5", "");
        expect_refused(&s, "mac");
    }
    const char *bad_ips[] = {
        "10.20.0", "10.20.0.256", "10.20.0.05", "10.20.0.5\"]", "10.20.0.5/24", " 10.20.0.5", ""};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad_ips); i++) {
        nic_fill(&n, 0, "52:54:00:aa:bb:01", bad_ips[i], "");
        expect_refused(&s, "ip");
    }
    nic_fill(&n, 0, "52:54:00:aa:bb:01", "10.20.0.5", "10.20.0.1\ngateway4: 1.2.3.4");
    expect_refused(&s, "gateway");
    nic_fill(&n, 0, "52:54:00:aa:bb:01", "10.20.0.5", "");
    n.mtu = 100;
    expect_refused(&s, "mtu");
    n.mtu = 1450;
    n.prefix = 31;
    expect_refused(&s, "prefix");
    n.prefix = 24;
    snprintf(n.network_cidr, sizeof n.network_cidr, "10.20.0.1/24");
    expect_refused(&s, "network_cidr");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iso_readable),
        cmocka_unit_test(test_no_user_data),
        cmocka_unit_test(test_hostile_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
