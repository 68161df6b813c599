/* virt/virt_libvirt against libvirt's in-memory test driver: domain lifecycle, idempotency,
 * listing by metadata, pools and volumes, node information, connection backoff, and the
 * event-loop thread. Domains are inspected through a second connection to test:///default
 * (one state per process); pools and node figures use a node file of our own in a temporary
 * directory (test:///DIR/node.xml: that state belongs to the one connection that opened it).
 * The test driver has no volume upload or resize: those run against a real daemon in
 * test_virt_real.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mutualis/util.h"
#include "virt/virt.h"

struct fixture {
    char dir[64];
    char uri[160];
    char pool_dir[96];
    char image[128]; /* a local file for the upload attempt */
};

static const char node_xml_fmt[] =
    "<node>\n"
    "  <cpu><mhz>2000</mhz><model>x86_64</model><active>6</active><total>6</total>"
    "<nodes>1</nodes><sockets>1</sockets><cores>6</cores><threads>1</threads></cpu>\n"
    "  <memory>12582912</memory>\n" /* KiB: 12 GiB */
    "  <pool type='dir'>\n"
    "    <name>mu-pool</name>\n"
    "    <capacity unit='GiB'>100</capacity><allocation unit='GiB'>10</allocation>"
    "<available unit='GiB'>90</available>\n"
    "    <target><path>%s</path></target>\n"
    "    <volume type='file'><name>mu-image-1.qcow2</name><capacity unit='MiB'>64</capacity>"
    "<target><format type='qcow2'/></target></volume>\n"
    "    <volume type='file'><name>mu-image-2.raw</name><capacity unit='MiB'>64</capacity>"
    "<target><format type='raw'/></target></volume>\n"
    "  </pool>\n"
    "</node>\n";

static int setup(void **state)
{
    struct fixture *f = mu_xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu-virt-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->pool_dir, sizeof f->pool_dir, "%s/pool", f->dir);
    assert_int_equal(mkdir(f->pool_dir, 0700), 0);
    char *xml = mu_xasprintf(node_xml_fmt, f->pool_dir);
    char *path = mu_xasprintf("%s/node.xml", f->dir);
    assert_int_equal(mu_write_file_atomic(path, xml, strlen(xml), 0600), 0);
    snprintf(f->uri, sizeof f->uri, "test://%s", path);
    free(xml);
    free(path);
    snprintf(f->image, sizeof f->image, "%s/image.raw", f->dir);
    assert_int_equal(mu_write_file_atomic(f->image, "0123456789abcdef", 16, 0600), 0);
    struct mu_err err = {0};
    assert_int_equal(mu_virt_init(&err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char *p = mu_xasprintf("%s/node.xml", f->dir);
    unlink(p);
    free(p);
    unlink(f->image);
    rmdir(f->pool_dir);
    rmdir(f->dir);
    free(f);
    mu_virt_shutdown();
    return 0;
}

static struct mu_virt_domain_spec spec_for(const char *uuid, int64_t vm_id, const char *name)
{
    struct mu_virt_domain_spec s = {
        .vm_id = vm_id,
        .tenant_id = 100 + vm_id,
        .vm_name = name,
        .tenant_name = "CC du Pays <Test> & Co",
        .vcpus = 1,
        .ram_mib = 64,
        .disk_path = "/default-pool/disk.qcow2",
        .serial_log = "/tmp/console.log",
    };
    snprintf(s.uuid, sizeof s.uuid, "%.36s", uuid);
    return s;
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        struct mu_err e_ = {0};                                                                    \
        int r_ = (call);                                                                           \
        if (r_ < 0)                                                                                \
            fail_msg("%s failed: %d %s", #call, r_, e_.detail);                                    \
    } while (0)
#define E (&e_)

static enum mu_virt_state state_of(struct mu_virt_conn *c, const char *uuid)
{
    enum mu_virt_state s = MU_VIRT_OTHER;
    CHECK(mu_virt_domain_state(c, uuid, &s, E));
    return s;
}

/* XML of a domain as libvirt holds it, read through a connection of the test's own. */
static xmlDocPtr dumpxml(virConnectPtr vc, const char *uuid)
{
    virDomainPtr d = virDomainLookupByUUIDString(vc, uuid);
    assert_non_null(d);
    char *xml = virDomainGetXMLDesc(d, 0);
    assert_non_null(xml);
    virDomainFree(d);
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "d.xml", NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    free(xml);
    return doc;
}

static xmlNodePtr elem(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
            return n;
    return NULL;
}

static size_t count(xmlNodePtr parent, const char *name)
{
    size_t k = 0;
    for (xmlNodePtr n = parent->children; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
            k++;
    return k;
}

static void assert_text(xmlNodePtr n, const char *want)
{
    assert_non_null(n);
    xmlChar *t = xmlNodeGetContent(n);
    assert_string_equal((const char *)t, want);
    xmlFree(t);
}

static void test_domain_lifecycle(void **state)
{
    (void)state;
    struct mu_virt_conn *c = mu_virt_conn_new("test:///default", "default-pool", NULL);
    assert_non_null(c);
    virConnectPtr vc = virConnectOpen("test:///default");
    assert_non_null(vc);
    char uuid[MU_UUID_LEN + 1];
    mu_uuid_generate(uuid);
    const char *hostile = "</title><devices><disk type='file' device='disk'>"
                          "<source file='/etc/shadow'/><target dev='vdb'/></disk></devices>&amp;";
    struct mu_virt_domain_spec s = spec_for(uuid, 1, hostile);

    assert_int_equal(state_of(c, uuid), MU_VIRT_ABSENT);
    CHECK(mu_virt_domain_define(c, &s, false, E));
    assert_true(mu_virt_conn_alive(c));
    assert_int_equal(state_of(c, uuid), MU_VIRT_SHUTOFF);
    /* libvirt holds exactly what we meant: one disk, the hostile name as text. */
    xmlDocPtr doc = dumpxml(vc, uuid);
    xmlNodePtr dom = xmlDocGetRootElement(doc);
    assert_text(elem(dom, "title"), hostile);
    char name[64];
    snprintf(name, sizeof name, "mu-%s", uuid);
    assert_text(elem(dom, "name"), name);
    assert_int_equal(count(elem(dom, "devices"), "disk"), 1);
    xmlFreeDoc(doc);

    /* Define again: kept as is (no redefine), or replaced (redefine, e.g. resize). */
    s.ram_mib = 128;
    CHECK(mu_virt_domain_define(c, &s, false, E));
    doc = dumpxml(vc, uuid);
    assert_text(elem(xmlDocGetRootElement(doc), "memory"), "65536");
    xmlFreeDoc(doc);
    CHECK(mu_virt_domain_define(c, &s, true, E));
    doc = dumpxml(vc, uuid);
    assert_text(elem(xmlDocGetRootElement(doc), "memory"), "131072");
    assert_int_equal(count(elem(xmlDocGetRootElement(doc), "devices"), "disk"), 1);
    xmlFreeDoc(doc);

    CHECK(mu_virt_domain_start(c, uuid, E));
    assert_int_equal(state_of(c, uuid), MU_VIRT_RUNNING);
    CHECK(mu_virt_domain_start(c, uuid, E)); /* no-op */
    CHECK(mu_virt_domain_reboot(c, uuid, E));
    assert_int_equal(state_of(c, uuid), MU_VIRT_RUNNING);

    /* Undefining a running domain is refused. */
    struct mu_err err = {0};
    assert_int_equal(mu_virt_domain_undefine(c, uuid, &err), MU_ECONFLICT);
    assert_int_equal(state_of(c, uuid), MU_VIRT_RUNNING);

    /* The test driver powers off at once on shutdown: no destroy needed. */
    bool forced = true;
    CHECK(mu_virt_domain_stop(c, uuid, 2000, &forced, E));
    assert_false(forced);
    assert_int_equal(state_of(c, uuid), MU_VIRT_SHUTOFF);
    forced = true;
    CHECK(mu_virt_domain_stop(c, uuid, 2000, &forced, E)); /* no-op when off */
    assert_false(forced);

    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_domain_reboot(c, uuid, &err), MU_ECONFLICT);

    /* Paused: ACPI cannot work, stop destroys (forced). */
    CHECK(mu_virt_domain_start(c, uuid, E));
    virDomainPtr d = virDomainLookupByUUIDString(vc, uuid);
    assert_int_equal(virDomainSuspend(d), 0);
    assert_int_equal(state_of(c, uuid), MU_VIRT_PAUSED);
    CHECK(mu_virt_domain_stop(c, uuid, 300, &forced, E));
    assert_true(forced);
    assert_int_equal(state_of(c, uuid), MU_VIRT_SHUTOFF);
    /* Start resumes a paused domain. */
    CHECK(mu_virt_domain_start(c, uuid, E));
    assert_int_equal(virDomainSuspend(d), 0);
    CHECK(mu_virt_domain_start(c, uuid, E));
    assert_int_equal(state_of(c, uuid), MU_VIRT_RUNNING);
    virDomainFree(d);

    CHECK(mu_virt_domain_destroy(c, uuid, E));
    assert_int_equal(state_of(c, uuid), MU_VIRT_SHUTOFF);
    CHECK(mu_virt_domain_destroy(c, uuid, E)); /* off: success */
    CHECK(mu_virt_domain_undefine(c, uuid, E));
    assert_int_equal(state_of(c, uuid), MU_VIRT_ABSENT);
    CHECK(mu_virt_domain_undefine(c, uuid, E)); /* absent: success */
    CHECK(mu_virt_domain_destroy(c, uuid, E));  /* absent: success */

    /* Absent: start, stop and reboot say so. */
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_domain_start(c, uuid, &err), MU_ENOTFOUND);
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_domain_stop(c, uuid, 10, &forced, &err), MU_ENOTFOUND);
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_domain_reboot(c, uuid, &err), MU_ENOTFOUND);

    /* Bad input changes nothing. */
    s.disk_path = "/tmp/x'/><disk";
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_domain_define(c, &s, false, &err), MU_EINVAL);
    assert_string_equal(err.field, "disk_path");
    assert_int_equal(state_of(c, uuid), MU_VIRT_ABSENT);
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_domain_state(c, "../../etc", &(enum mu_virt_state){0}, &err),
                     MU_EINVAL);
    assert_string_equal(err.field, "uuid");

    /* Everything the builder can emit passes libvirt's own schema. */
    s = spec_for(uuid, 1, hostile);
    s.kernel = "/boot/vmlinuz";
    s.initrd = "/boot/initrd.gz";
    s.cmdline = "console=ttyS0 quiet";
    s.seed_iso = "/default-pool/seed.iso";
    char *xml = mu_virt_domain_xml(&s, NULL);
    assert_non_null(xml);
    virDomainPtr v = virDomainDefineXMLFlags(vc, xml, VIR_DOMAIN_DEFINE_VALIDATE);
    if (!v)
        fail_msg("schema: %s", virGetLastErrorMessage());
    assert_int_equal(virDomainUndefine(v), 0);
    virDomainFree(v);
    free(xml);
    s.serial_log = NULL; /* pty console */
    s.kvm = true;
    xml = mu_virt_domain_xml(&s, NULL);
    v = virDomainDefineXMLFlags(vc, xml, VIR_DOMAIN_DEFINE_VALIDATE);
    if (!v)
        fail_msg("schema: %s", virGetLastErrorMessage());
    assert_int_equal(virDomainUndefine(v), 0);
    virDomainFree(v);
    free(xml);

    virConnectClose(vc);
    mu_virt_conn_free(c);
}

static int cmp_vm_id(const void *a, const void *b)
{
    const struct mu_virt_domain_info *x = a, *y = b;
    return (x->vm_id > y->vm_id) - (x->vm_id < y->vm_id);
}

static void test_list_metadata(void **state)
{
    (void)state;
    struct mu_virt_conn *c = mu_virt_conn_new("test:///default", "default-pool", NULL);
    char uuids[3][MU_UUID_LEN + 1];
    for (int i = 0; i < 3; i++) {
        mu_uuid_generate(uuids[i]);
        struct mu_virt_domain_spec s = spec_for(uuids[i], 10 + i, "vm & <friends>");
        CHECK(mu_virt_domain_define(c, &s, false, E));
    }
    CHECK(mu_virt_domain_start(c, uuids[1], E));

    struct mu_virt_domain_info *list = NULL;
    size_t n = 0;
    CHECK(mu_virt_domain_list(c, &list, &n, E));
    /* test:///default also holds its own domain "test", without our metadata: skipped. */
    assert_int_equal(n, 3);
    qsort(list, n, sizeof *list, cmp_vm_id);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(list[i].vm_id, 10 + i);
        assert_int_equal(list[i].tenant_id, 110 + i);
        assert_string_equal(list[i].uuid, uuids[i]);
        assert_int_equal(list[i].state, i == 1 ? MU_VIRT_RUNNING : MU_VIRT_SHUTOFF);
    }
    free(list);
    for (int i = 0; i < 3; i++) {
        CHECK(mu_virt_domain_destroy(c, uuids[i], E));
        CHECK(mu_virt_domain_undefine(c, uuids[i], E));
    }
    CHECK(mu_virt_domain_list(c, &list, &n, E));
    assert_int_equal(n, 0);
    free(list);
    mu_virt_conn_free(c);
}

static void test_node_and_volumes(void **state)
{
    struct fixture *f = *state;
    struct mu_virt_conn *c = mu_virt_conn_new(f->uri, "mu-pool", NULL);
    assert_non_null(c);
    struct mu_virt_node_info ni;
    CHECK(mu_virt_node_info(c, &ni, E));
    assert_int_equal(ni.cpus, 6);
    assert_int_equal(ni.mem_mib, 12288);
    assert_false(ni.kvm); /* the test driver offers type 'test' only */
    assert_true(ni.hostname[0] != '\0');
    assert_true(ni.libvirt_version[0] >= '1' && strchr(ni.libvirt_version, '.'));
    assert_int_equal(ni.pool_capacity_gib, 100);
    assert_true(ni.pool_available_gib > 0 && ni.pool_available_gib <= 100);

    /* Overlay on a base image, idempotent. */
    char uuid[MU_UUID_LEN + 1], vol[64], path[4096], path2[4096];
    mu_uuid_generate(uuid);
    snprintf(vol, sizeof vol, "mu-%s.qcow2", uuid);
    struct mu_err err = {0};
    assert_int_equal(mu_virt_volume_exists(c, vol, &err), 0);
    CHECK(mu_virt_overlay_ensure(c, vol, "mu-image-1.qcow2", "qcow2", 10, path, E));
    char *want = mu_xasprintf("%s/%s", f->pool_dir, vol);
    assert_string_equal(path, want);
    free(want);
    assert_int_equal(mu_virt_volume_exists(c, vol, &err), 1);
    CHECK(mu_virt_overlay_ensure(c, vol, "mu-image-1.qcow2", "qcow2", 10, path2, E));
    assert_string_equal(path, path2);
    CHECK(mu_virt_overlay_ensure(c, vol, "mu-image-1.qcow2", "qcow2", 10, NULL, E));
    /* The same name on another base is not ours to reuse. */
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_overlay_ensure(c, vol, "mu-image-2.raw", "raw", 10, NULL, &err),
                     MU_ECONFLICT);
    /* Missing base; bad names and sizes. */
    memset(&err, 0, sizeof err);
    assert_int_equal(
        mu_virt_overlay_ensure(c, "mu-x.qcow2", "mu-image-9.qcow2", "qcow2", 10, NULL, &err),
        MU_ENOTFOUND);
    assert_int_equal(mu_virt_volume_exists(c, "mu-x.qcow2", &err), 0);
    const char *bad_names[] = {"../x", "a/b", "x'", ".x", ""};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad_names); i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(
            mu_virt_overlay_ensure(c, bad_names[i], "mu-image-1.qcow2", "qcow2", 1, NULL, &err),
            MU_EINVAL);
        assert_string_equal(err.field, "vol_name");
        memset(&err, 0, sizeof err);
        assert_int_equal(mu_virt_volume_delete(c, bad_names[i], &err), MU_EINVAL);
    }
    memset(&err, 0, sizeof err);
    assert_int_equal(
        mu_virt_overlay_ensure(c, "mu-y.qcow2", "mu-image-1.qcow2", "vmdk", 1, NULL, &err),
        MU_EINVAL);
    memset(&err, 0, sizeof err);
    assert_int_equal(
        mu_virt_overlay_ensure(c, "mu-y.qcow2", "mu-image-1.qcow2", "qcow2", 0, NULL, &err),
        MU_EINVAL);

    CHECK(mu_virt_volume_delete(c, vol, E));
    assert_int_equal(mu_virt_volume_exists(c, vol, &err), 0);
    CHECK(mu_virt_volume_delete(c, vol, E)); /* absent: success */

    /* Upload: the test driver has no volume streams; the volume is created with the image's
     * size and no bytes (the real upload is tested against a real daemon). */
    memset(&err, 0, sizeof err);
    int r = mu_virt_image_ensure(c, "mu-image-3.raw", f->image, "raw",
                                 "9f9f5111f7b27a781f1f1ddde5ebc2dd2b796bfc7365c9c28b548e564176929f",
                                 &err);
    assert_int_equal(r, 0);
    assert_int_equal(mu_virt_volume_exists(c, "mu-image-3.raw", &err), 1);
    CHECK(mu_virt_volume_delete(c, "mu-image-3.raw", E));
    /* A file that is not the qcow2 it claims to be never leaves the controller. */
    memset(&err, 0, sizeof err);
    r = mu_virt_image_ensure(c, "mu-image-3.qcow2", f->image, "qcow2",
                             "9f9f5111f7b27a781f1f1ddde5ebc2dd2b796bfc7365c9c28b548e564176929f",
                             &err);
    assert_int_equal(r, MU_EINVAL);
    assert_string_equal(err.field, "format");
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_image_ensure(c, "mu-image-3.raw", f->image, "raw", "XYZ", &err),
                     MU_EINVAL);
    assert_string_equal(err.field, "sha256");

    mu_virt_conn_free(c);
}

static void test_pool_created(void **state)
{
    struct fixture *f = *state;
    struct mu_err err = {0};
    /* Absent pool without a path: a clear error. */
    struct mu_virt_conn *c = mu_virt_conn_new(f->uri, "mu-other", NULL);
    assert_int_equal(mu_virt_volume_exists(c, "x.qcow2", &err), MU_EIO);
    assert_non_null(strstr(err.detail, "mu-other"));
    assert_true(mu_virt_conn_alive(c)); /* the node answered */
    mu_virt_conn_free(c);

    /* With a path: defined as a dir pool, built, started, then used. */
    char *dir = mu_xasprintf("%s/newpool", f->dir);
    c = mu_virt_conn_new(f->uri, "mu-new", dir);
    struct mu_virt_node_info ni;
    CHECK(mu_virt_node_info(c, &ni, E));
    assert_int_equal(mu_virt_volume_exists(c, "x.qcow2", &err), 0);
    mu_virt_conn_free(c);
    rmdir(dir); /* in case the driver made it */
    free(dir);
}

static void test_unreachable_backoff(void **state)
{
    (void)state;
    assert_null(mu_virt_conn_new("ssh://x", "p", NULL));
    assert_null(mu_virt_conn_new("test:///default", "../p", NULL));
    assert_null(mu_virt_conn_new("test:///default", "p", "relative"));

    struct mu_virt_conn *c = mu_virt_conn_new("test:///nonexistent/mu/node.xml", "p", NULL);
    assert_non_null(c);
    struct mu_err err = {0};
    struct mu_virt_node_info ni;
    assert_int_equal(mu_virt_node_info(c, &ni, &err), MU_EUNAVAIL);
    assert_false(mu_virt_conn_alive(c));
    assert_non_null(strstr(err.detail, "node unreachable: "));
    assert_non_null(strstr(err.detail, "next attempt in 1 s"));
    /* Within the backoff: no new attempt, an immediate answer. */
    int64_t t0 = mu_mono_ms();
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_domain_state(c, "0b7c1f4e-8a4a-4b6b-9d3e-0a1b2c3d4e5f",
                                          &(enum mu_virt_state){0}, &err),
                     MU_EUNAVAIL);
    assert_true(mu_mono_ms() - t0 < 100);
    assert_non_null(strstr(err.detail, "next attempt in 1 s"));
    /* After it: a new attempt, and the next delay doubles. */
    struct timespec ts = {1, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_volume_exists(c, "x", &err), MU_EUNAVAIL);
    assert_non_null(strstr(err.detail, "next attempt in 2 s"));
    mu_virt_conn_free(c);
}

static void test_event_loop_restart(void **state)
{
    (void)state;
    struct mu_err err = {0};
    assert_int_equal(mu_virt_init(&err), 0); /* again: no second thread */
    int64_t t0 = mu_mono_ms();
    mu_virt_shutdown();
    mu_virt_shutdown(); /* twice: no-op */
    assert_true(mu_mono_ms() - t0 < 1000);
    assert_int_equal(mu_virt_init(&err), 0);
    struct mu_virt_conn *c = mu_virt_conn_new("test:///default", "default-pool", NULL);
    struct mu_virt_node_info ni;
    CHECK(mu_virt_node_info(c, &ni, E));
    mu_virt_conn_free(c);
}

/* Not a pass/fail check: the figure for the closing note. */
static void test_measure_define_start(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct mu_virt_conn *c = mu_virt_conn_new("test:///default", "default-pool", NULL);
    char(*uuids)[MU_UUID_LEN + 1] = mu_xcalloc(N, sizeof *uuids);
    int64_t t0 = mu_mono_ms();
    for (int i = 0; i < N; i++) {
        mu_uuid_generate(uuids[i]);
        struct mu_virt_domain_spec s = spec_for(uuids[i], i + 1, "bench");
        CHECK(mu_virt_domain_define(c, &s, false, E));
    }
    int64_t t1 = mu_mono_ms();
    for (int i = 0; i < N; i++)
        CHECK(mu_virt_domain_start(c, uuids[i], E));
    int64_t t2 = mu_mono_ms();
    struct mu_virt_domain_info *list = NULL;
    size_t n = 0;
    CHECK(mu_virt_domain_list(c, &list, &n, E));
    int64_t t3 = mu_mono_ms();
    assert_int_equal(n, N);
    free(list);
    for (int i = 0; i < N; i++) {
        CHECK(mu_virt_domain_destroy(c, uuids[i], E));
        CHECK(mu_virt_domain_undefine(c, uuids[i], E));
    }
    print_message("test driver: %d defines in %" PRId64 " ms, %d starts in %" PRId64
                  " ms, list of %d with metadata in %" PRId64 " ms\n",
                  N, t1 - t0, N, t2 - t1, N, t3 - t2);
    free(uuids);
    mu_virt_conn_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_domain_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_and_volumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_created, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_loop_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_measure_define_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
