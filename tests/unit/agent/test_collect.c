/* collect/: host figures from fake /proc files (CPU use between samples, memory, load,
 * uptime, broken files), the metadata element's vm-id, the typed parameters of a domain
 * stats record (as QEMU gives them), and pools and domains from libvirt's test driver
 * (test:///DIR/node.xml: a domain with Mutualis metadata, one without, one shut off). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libvirt/libvirt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collect/collect.h"
#include "collect/collect_int.h"
#include "mutualis/report.h"
#include "mutualis/util.h"

struct fixture {
    char dir[64];
};

static const char *const proc_files[] = {"stat", "loadavg", "meminfo", "uptime", "node.xml"};

static int setup(void **state)
{
    struct fixture *f = mu_xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu-collect-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < MU_ARRAY_LEN(proc_files); i++) {
        char *p = mu_xasprintf("%s/%s", f->dir, proc_files[i]);
        unlink(p);
        free(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void put(const struct fixture *f, const char *name, const char *text)
{
    char *p = mu_xasprintf("%s/%s", f->dir, name);
    assert_int_equal(mu_write_file_atomic(p, text, strlen(text), 0600), 0);
    free(p);
}

static void stat_file(const struct fixture *f, unsigned long busy, unsigned long idle)
{
    /* user nice system idle iowait irq softirq steal guest guest_nice; a long intr line
     * after the cpu lines, as on a real host. */
    char intr[3000];
    memset(intr, '1', sizeof intr - 1);
    intr[sizeof intr - 1] = '\0';
    char *text = mu_xasprintf("cpu  %lu 0 0 %lu 0 0 0 0 0 0\n"
                              "cpu0 1 0 0 1 0 0 0 0 0 0\n"
                              "cpu1 1 0 0 1 0 0 0 0 0 0\n"
                              "cpu2 1 0 0 1 0 0 0 0 0 0\n"
                              "intr %s\nctxt 123\n",
                              busy, idle, intr);
    put(f, "stat", text);
    free(text);
}

static void test_host(void **state)
{
    struct fixture *f = *state;
    stat_file(f, 1000, 3000);
    put(f, "loadavg", "0.52 1.25 12.00 1/467 12345\n");
    put(f, "meminfo",
        "MemTotal:       16314180 kB\nMemFree:         1000000 kB\n"
        "MemAvailable:    8157090 kB\nBuffers:  1 kB\n");
    put(f, "uptime", "86400.57 12345.00\n");
    struct mu_collect_host h;
    mu_collect_host_init(&h, f->dir);
    struct mu_report_host out;
    struct mu_err err = {0};
    /* First sample: a second reading of the same figures, no time passed: 0 %. */
    assert_int_equal(mu_collect_host_sample(&h, &out, &err), 0);
    assert_int_equal(out.cpus, 3);
    assert_true(out.cpu_percent == 0);
    assert_true(out.load1 == 0.52 && out.load5 == 1.25 && out.load15 == 12.0);
    assert_int_equal(out.mem_total_mib, 15931);
    assert_int_equal(out.mem_available_mib, 7965);
    assert_int_equal(out.uptime_s, 86400);
    /* 150 busy out of 200 jiffies since then. */
    stat_file(f, 1150, 3050);
    assert_int_equal(mu_collect_host_sample(&h, &out, &err), 0);
    assert_true(out.cpu_percent == 75.0);
    /* 1 busy out of 3: two decimals. */
    stat_file(f, 1151, 3052);
    assert_int_equal(mu_collect_host_sample(&h, &out, &err), 0);
    assert_true(out.cpu_percent == 33.33);
    /* Counters that go back (CPU unplugged): 0, not nonsense. */
    stat_file(f, 10, 10);
    assert_int_equal(mu_collect_host_sample(&h, &out, &err), 0);
    assert_true(out.cpu_percent == 0);
    /* MemAvailable above MemTotal is clamped. */
    put(f, "meminfo", "MemTotal: 2048 kB\nMemAvailable: 4096 kB\n");
    assert_int_equal(mu_collect_host_sample(&h, &out, &err), 0);
    assert_int_equal(out.mem_available_mib, out.mem_total_mib);

    static const struct {
        const char *file, *text, *want, *good;
    } broken[] = {
        {"meminfo", "MemTotal: 2048 kB\n", "no MemTotal or MemAvailable",
         "MemTotal: 2048 kB\nMemAvailable: 1024 kB\n"},
        {"loadavg", "high\n", "loadavg: unexpected contents", "0 0 0 1/1 1\n"},
        {"uptime", "\n", "uptime: unexpected contents", "1.0 1.0\n"},
        {"stat", "intr 1 2 3\n", "stat: no cpu lines", "cpu  1 0 0 1\ncpu0 1 0 0 1\n"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(broken); i++) {
        put(f, broken[i].file, broken[i].text);
        mu_err_clear(&err);
        assert_int_equal(mu_collect_host_sample(&h, &out, &err), MU_EIO);
        if (!strstr(err.detail, broken[i].want))
            fail_msg("%s: %s", broken[i].file, err.detail);
        put(f, broken[i].file, broken[i].good);
        assert_int_equal(mu_collect_host_sample(&h, &out, &err), 0);
    }
    char *none = mu_xasprintf("%s/none", f->dir);
    mu_collect_host_init(&h, none);
    mu_err_clear(&err);
    assert_int_equal(mu_collect_host_sample(&h, &out, &err), MU_EIO);
    assert_non_null(strstr(err.detail, "cannot read"));
    free(none);

    /* The real /proc. */
    mu_collect_host_init(&h, NULL);
    assert_int_equal(mu_collect_host_sample(&h, &out, &err), 0);
    assert_true(out.cpus >= 1 && out.mem_total_mib > 0 && out.cpu_percent <= 100);
}

static void test_metadata(void **state)
{
    (void)state;
    static const struct {
        const char *xml;
        int rc;
        int64_t id;
    } cases[] = {
        {"<vm vm-id=\"12\" tenant-id=\"3\">\n  <name>Mairie</name>\n</vm>", 0, 12},
        {"<mu:vm xmlns:mu=\"https://mutualis.example/xmlns/libvirt/1\" tenant-id='3' "
         "vm-id='9007199254740991'/>",
         0, 9007199254740991LL},
        {"<?xml version=\"1.0\"?>\n<!-- c --><vm\n vm-id = \"7\"/>", 0, 7},
        /* The tenant's names are children: they cannot forge the attribute. */
        {"<vm tenant-id=\"3\"><name>vm-id=\"66\"</name></vm>", -1, 0},
        {"<vm tenant-id=\"a > b\" vm-id=\"5\"/>", 0, 5},
        {"<vmx vm-id=\"12\"/>", -1, 0},
        {"<vm vm-id=\"0\"/>", -1, 0},
        {"<vm vm-id=\"-3\"/>", -1, 0},
        {"<vm vm-id=\" 3\"/>", -1, 0},
        {"<vm vm-id=\"3x\"/>", -1, 0},
        {"<vm vm-id=\"9007199254740992\"/>", -1, 0},
        {"<vm vm-id=\"12", -1, 0},
        {"<vm vm-id=12/>", -1, 0},
        {"", -1, 0},
        {NULL, -1, 0},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        int64_t id = 0;
        int rc = mu_collect_metadata_vm_id(cases[i].xml, &id);
        if (rc != cases[i].rc || (rc == 0 && id != cases[i].id))
            fail_msg("case %zu: rc=%d id=%lld", i, rc, (long long)id);
    }
}

static void test_stats_params(void **state)
{
    (void)state;
    virTypedParameterPtr params = NULL;
    int n = 0, max = 0;
    assert_int_equal(virTypedParamsAddInt(&params, &n, &max, "state.state", VIR_DOMAIN_PAUSED), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "cpu.time", UINT64_MAX), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "balloon.current", 1048576), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "balloon.rss", 300000), 0);
    assert_int_equal(virTypedParamsAddUInt(&params, &n, &max, "vcpu.current", 4), 0);
    assert_int_equal(virTypedParamsAddUInt(&params, &n, &max, "net.count", 2), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "net.0.rx.bytes", 1000), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "net.1.rx.bytes", 234), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "net.0.tx.bytes", 50), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "net.0.rx.pkts", 99), 0);
    assert_int_equal(virTypedParamsAddString(&params, &n, &max, "net.0.name", "vnet0"), 0);
    assert_int_equal(virTypedParamsAddUInt(&params, &n, &max, "block.count", 2), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "block.0.allocation", 196608), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "block.0.capacity", 1 << 30), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "block.0.physical", 200704), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "block.1.allocation", 4096), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "block.1.capacity", 376832), 0);
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "block.x.capacity", 1), 0);
    struct mu_report_domain d = {0};
    unsigned found = mu_collect_domain_from_params(params, n, &d);
    assert_int_equal(found, MU_STAT_STATE | MU_STAT_CPU | MU_STAT_BALLOON | MU_STAT_RSS |
                                MU_STAT_VCPUS | MU_STAT_NET | MU_STAT_BLOCK);
    assert_string_equal(d.state, "paused");
    assert_int_equal(d.cpu_time_ns, 4611686018427387904LL); /* capped at the wire bound */
    assert_int_equal(d.mem_balloon_kib, 1048576);
    assert_int_equal(d.mem_rss_kib, 300000);
    assert_int_equal(d.vcpus, 4);
    assert_int_equal(d.net_rx_bytes, 1234);
    assert_int_equal(d.net_tx_bytes, 50);
    assert_int_equal(d.disk_allocation_bytes, 200704); /* the image files' size */
    assert_int_equal(d.disk_capacity_bytes, (1 << 30) + 376832);
    virTypedParamsFree(params, n);

    /* Without the file's size, the highest written offset stands in. */
    params = NULL;
    n = max = 0;
    assert_int_equal(virTypedParamsAddULLong(&params, &n, &max, "block.0.allocation", 8192), 0);
    memset(&d, 0, sizeof d);
    assert_int_equal(mu_collect_domain_from_params(params, n, &d), MU_STAT_BLOCK);
    assert_int_equal(d.disk_allocation_bytes, 8192);
    virTypedParamsFree(params, n);

    static const struct {
        int state;
        const char *name;
    } states[] = {
        {VIR_DOMAIN_RUNNING, "running"},
        {VIR_DOMAIN_BLOCKED, "running"},
        {VIR_DOMAIN_PAUSED, "paused"},
        {VIR_DOMAIN_SHUTDOWN, "shutdown"},
        {VIR_DOMAIN_SHUTOFF, "shutoff"},
        {VIR_DOMAIN_CRASHED, "crashed"},
        {VIR_DOMAIN_PMSUSPENDED, "other"},
        {VIR_DOMAIN_NOSTATE, "other"},
        {99, "other"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(states); i++)
        assert_string_equal(mu_collect_state_name(states[i].state), states[i].name);
}

static const char node_xml[] =
    "<node>\n"
    "  <cpu><mhz>2000</mhz><model>x86_64</model><active>4</active><total>4</total>"
    "<nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>\n"
    "  <memory>8388608</memory>\n"
    "  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
    "    <name>mu-a</name><uuid>11111111-2222-4333-8444-555555555555</uuid>\n"
    "    <metadata><mu:vm xmlns:mu='https://mutualis.example/xmlns/libvirt/1' vm-id='12' "
    "tenant-id='3'><mu:name>Mairie vm-id=\"99\"</mu:name></mu:vm></metadata>\n"
    "    <memory unit='MiB'>512</memory><currentMemory unit='MiB'>256</currentMemory>"
    "<vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os>\n"
    "  </domain>\n"
    "  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
    "    <name>not-ours</name><uuid>aaaaaaaa-2222-4333-8444-555555555555</uuid>\n"
    "    <memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>\n"
    "    <test:runstate>5</test:runstate>\n"
    "  </domain>\n"
    "  <pool type='dir'><name>mu-pool</name><capacity unit='GiB'>100</capacity>"
    "<allocation unit='GiB'>10</allocation><available unit='GiB'>90</available>"
    "<target><path>/tmp</path></target></pool>\n"
    "  <pool type='dir'><name>Pool\tTab</name><capacity unit='GiB'>1</capacity>"
    "<target><path>/var/tmp</path></target></pool>\n"
    "</node>\n";

static void test_test_driver(void **state)
{
    struct fixture *f = *state;
    put(f, "node.xml", node_xml);
    char *uri = mu_xasprintf("test://%s/node.xml", f->dir);
    struct mu_collect_virt *v = mu_collect_virt_new(uri);
    struct mu_collect_host h;
    mu_collect_host_init(&h, NULL);
    struct mu_report r = {0};
    struct mu_err err = {0};
    if (mu_collect_report(&h, v, &r, &err) != 0)
        fail_msg("%s", err.detail);
    assert_true(r.time_ms > 0);
    /* The pool whose name has a control character is left out. */
    assert_int_equal(r.npools, 1);
    assert_string_equal(r.pools[0].name, "mu-pool");
    assert_int_equal(r.pools[0].capacity_gib, 100);
    assert_int_equal(r.ndomains, 2);
    const struct mu_report_domain *a = NULL, *b = NULL;
    for (size_t i = 0; i < r.ndomains; i++) {
        if (strcmp(r.domains[i].uuid, "11111111-2222-4333-8444-555555555555") == 0)
            a = &r.domains[i];
        if (strcmp(r.domains[i].uuid, "aaaaaaaa-2222-4333-8444-555555555555") == 0)
            b = &r.domains[i];
    }
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->vm_id, 12);
    assert_string_equal(a->state, "running");
    assert_int_equal(a->vcpus, 2);
    assert_int_equal(a->mem_balloon_kib, 256 * 1024);
    assert_true(a->cpu_time_ns > 0);
    assert_int_equal(b->vm_id, 0);
    assert_string_equal(b->state, "shutoff");
    assert_int_equal(b->vcpus, 1);

    /* What was collected is a report the controller takes. */
    snprintf(r.node, sizeof r.node, "node-1");
    memset(r.epoch, 'a', MU_EPOCH_HEX_LEN);
    r.seq = 1;
    char *text = mu_report_print(&r);
    struct mu_report p = {0};
    if (mu_report_parse(text, strlen(text), &p, &err) != 0)
        fail_msg("%s\n%s", err.detail, text);
    mu_report_clear(&p);
    free(text);

    /* A second cycle on the same connection frees and refills. */
    assert_int_equal(mu_collect_virt_sample(v, &r, &err), 0);
    assert_int_equal(r.ndomains, 2);
    mu_report_clear(&r);
    mu_collect_virt_free(v);
    free(uri);

    /* The shared default driver has its own domain "test". */
    v = mu_collect_virt_new("test:///default");
    assert_int_equal(mu_collect_virt_sample(v, &r, &err), 0);
    assert_true(r.ndomains >= 1 && r.npools >= 1);
    mu_report_clear(&r);
    mu_collect_virt_free(v);
}

static void test_unreachable(void **state)
{
    struct fixture *f = *state;
    char *uri = mu_xasprintf("test://%s/missing.xml", f->dir);
    struct mu_collect_virt *v = mu_collect_virt_new(uri);
    struct mu_report r = {0};
    r.domains = mu_xcalloc(1, sizeof *r.domains); /* whatever was there goes */
    r.ndomains = 1;
    struct mu_err err = {0};
    assert_int_equal(mu_collect_virt_sample(v, &r, &err), MU_EUNAVAIL);
    assert_non_null(strstr(err.detail, "cannot connect"));
    assert_null(r.domains);
    assert_int_equal(r.ndomains, 0);
    /* And again: a new attempt each cycle. */
    mu_err_clear(&err);
    assert_int_equal(mu_collect_virt_sample(v, &r, &err), MU_EUNAVAIL);
    mu_collect_virt_free(v);
    free(uri);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_host, setup, teardown),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_stats_params),
        cmocka_unit_test_setup_teardown(test_test_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
