/* virt/virt_libvirt against a real libvirt daemon running QEMU: skipped unless
 * MU_TEST_LIBVIRT_URI names one (tests/integration/test_virt_injection.sh sets it up: a
 * throw-away user's session daemon behind a loopback sshd).
 *
 *   MU_TEST_LIBVIRT_URI        e.g.
 * qemu+ssh://mu-virttest@127.0.0.1:22300/session?keyfile=K&no_verify=1 MU_TEST_LIBVIRT_POOL_PATH  a
 * directory on the node, writable by the daemon, that does not hold a pool yet: the test creates
 * pool MU_TEST_LIBVIRT_POOL (default "mu-virttest") there and removes it at the end
 *
 * Checks, each independently of Mutualis (virsh, qemu-img): a domain defined from hostile
 * names shows exactly the devices Mutualis meant; a qcow2 base image is uploaded and verified
 * (and re-uploaded when damaged on the node, refused when it names a backing file); an overlay
 * has the base as its backing file; a firmware-only TCG guest starts and, deaf to ACPI, is
 * stopped by a forced destroy; a killed transport is reopened on the next call.
 * The node's files are read directly (qemu-img info) when they are visible from here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mutualis/util.h"
#include "virt/virt.h"

struct env {
    const char *uri;
    const char *pool;
    const char *pool_path;
    char dir[64]; /* local temporary directory (controller side) */
    char base[128], raw[128], child[128];
    char base_sha[65], raw_sha[65];
    char base_vol[64], raw_vol[64];
    char uuid[MU_UUID_LEN + 1];
    char overlay_vol[64];
    char overlay_path[4096];
    char console[4200];
    struct mu_virt_conn *c;
    struct mu_virt_node_info ni;
};

static struct env G;

#define CHECK(call)                                                                                \
    do {                                                                                           \
        struct mu_err e_ = {0};                                                                    \
        int r_ = (call);                                                                           \
        if (r_ < 0)                                                                                \
            fail_msg("%s failed: %d %s", #call, r_, e_.detail);                                    \
    } while (0)
#define E (&e_)

/* ---- helpers: commands without a shell, hashes, timing ----------------------------- */

/* Runs argv, returns its stdout (caller frees) and exit status in *ret_status. */
static char *run(char *const argv[], int *ret_status)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    struct mu_buf b;
    mu_buf_init(&b);
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        mu_buf_append(&b, buf, (size_t)n);
    }
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    *ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return mu_buf_steal(&b);
}

static char *run_ok(char *const argv[])
{
    int st;
    char *out = run(argv, &st);
    if (st != 0)
        fail_msg("%s %s failed (exit %d)", argv[0], argv[1], st);
    return out;
}

static void sha256_file(const char *path, char out[65])
{
    size_t len = 0;
    char *data = mu_read_file(path, SIZE_MAX / 2, &len);
    assert_non_null(data);
    unsigned char d[32];
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, d), 0);
    mu_hex_encode(d, sizeof d, out);
    free(data);
}

static double secs_since(int64_t t0)
{
    return (double)(mu_mono_ms() - t0) / 1000.0;
}

static cJSON *qemu_img_info(const char *path)
{
    char *argv[] = {"qemu-img", "info", "-U", "--output=json", (char *)path, NULL};
    char *out = run_ok(argv);
    cJSON *j = cJSON_Parse(out);
    free(out);
    assert_non_null(j);
    return j;
}

static const char *jstr(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static bool node_file_visible(const char *path)
{
    return access(path, R_OK) == 0;
}

static char *virsh(const char *a1, const char *a2, const char *a3, int *ret_status)
{
    char *argv[] = {"virsh", "-q", "-c", (char *)G.uri, (char *)a1, (char *)a2, (char *)a3, NULL};
    return run(argv, ret_status);
}

/* ---- setup ------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    G.uri = getenv("MU_TEST_LIBVIRT_URI");
    G.pool_path = getenv("MU_TEST_LIBVIRT_POOL_PATH");
    G.pool = getenv("MU_TEST_LIBVIRT_POOL");
    if (!G.pool || !G.pool[0])
        G.pool = "mu-virttest";
    if (!G.uri || !G.uri[0] || !G.pool_path || !G.pool_path[0]) {
        G.uri = NULL;
        return 0;
    }
    struct mu_err err = {0};
    if (mu_virt_init(&err) < 0)
        return -1;
    snprintf(G.dir, sizeof G.dir, "/tmp/mu-virt-real-XXXXXX");
    if (!mkdtemp(G.dir))
        return -1;
    snprintf(G.base, sizeof G.base, "%s/base.qcow2", G.dir);
    snprintf(G.raw, sizeof G.raw, "%s/base.raw", G.dir);
    snprintf(G.child, sizeof G.child, "%s/child.qcow2", G.dir);
    mu_uuid_generate(G.uuid);
    snprintf(G.base_vol, sizeof G.base_vol, "mu-image-t%d.qcow2", (int)getpid());
    snprintf(G.raw_vol, sizeof G.raw_vol, "mu-image-t%d.raw", (int)getpid());
    snprintf(G.overlay_vol, sizeof G.overlay_vol, "mu-%s.qcow2", G.uuid);
    snprintf(G.console, sizeof G.console, "%s-console-%s.log", G.pool_path, G.uuid);
    G.c = mu_virt_conn_new(G.uri, G.pool, G.pool_path);
    return G.c ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!G.uri)
        return 0;
    struct mu_err err = {0};
    mu_virt_domain_destroy(G.c, G.uuid, &err);
    mu_virt_domain_undefine(G.c, G.uuid, &err);
    const char *vols[] = {G.overlay_vol, G.base_vol, G.raw_vol, "mu-image-wrong.qcow2",
                          "mu-image-child.qcow2"};
    for (size_t i = 0; i < MU_ARRAY_LEN(vols); i++)
        mu_virt_volume_delete(G.c, vols[i], &err);
    mu_virt_conn_free(G.c);
    int st;
    free(virsh("pool-destroy", G.pool, NULL, &st));
    free(virsh("pool-undefine", G.pool, NULL, &st));
    /* The pool directory and console log are the node user's (same machine here). */
    unlink(G.console);
    rmdir(G.pool_path);
    const char *files[] = {G.base, G.raw, G.child};
    for (size_t i = 0; i < MU_ARRAY_LEN(files); i++)
        unlink(files[i]);
    rmdir(G.dir);
    mu_virt_shutdown();
    return 0;
}

#define NEED_NODE()                                                                                \
    do {                                                                                           \
        if (!G.uri) {                                                                              \
            print_message("MU_TEST_LIBVIRT_URI / MU_TEST_LIBVIRT_POOL_PATH not set: skipped\n");   \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- tests ------------------------------------------------------------------------- */

static void test_node_info(void **state)
{
    (void)state;
    NEED_NODE();
    int64_t t0 = mu_mono_ms();
    CHECK(mu_virt_node_info(G.c, &G.ni, E));
    print_message(
        "node %s: libvirt %s, %" PRId64 " cpus, %" PRId64 " MiB, kvm=%s, pool %s "
        "%" PRId64 "/%" PRId64
        " GiB free (first call: connect, session daemon auto-start, pool creation: %.2f s)\n",
        G.ni.hostname, G.ni.libvirt_version, G.ni.cpus, G.ni.mem_mib, G.ni.kvm ? "yes" : "no",
        G.pool, G.ni.pool_available_gib, G.ni.pool_capacity_gib, secs_since(t0));
    assert_true(G.ni.cpus > 0);
    assert_true(G.ni.mem_mib > 0);
    assert_true(mu_virt_conn_alive(G.c));
    /* The pool was created, persistent and autostarted, where we asked. */
    int st;
    char *out = virsh("pool-dumpxml", G.pool, NULL, &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, G.pool_path));
    free(out);
    out = virsh("pool-info", G.pool, NULL, &st);
    assert_non_null(strstr(out, "running"));
    free(out);
}

static void test_image_upload(void **state)
{
    (void)state;
    NEED_NODE();
    char *mk[] = {"qemu-img", "create", "-q", "-f", "qcow2", G.base, "64M", NULL};
    free(run_ok(mk));
    sha256_file(G.base, G.base_sha);

    int64_t t0 = mu_mono_ms();
    CHECK(mu_virt_image_ensure(G.c, G.base_vol, G.base, "qcow2", G.base_sha, E));
    print_message("qcow2 image upload + read-back check: %.2f s\n", secs_since(t0));
    struct mu_err err = {0};
    assert_int_equal(mu_virt_volume_exists(G.c, G.base_vol, &err), 1);
    CHECK(mu_virt_image_ensure(G.c, G.base_vol, G.base, "qcow2", G.base_sha, E)); /* cached */

    /* A fresh connection verifies what is there by reading it back. */
    struct mu_virt_conn *c2 = mu_virt_conn_new(G.uri, G.pool, G.pool_path);
    CHECK(mu_virt_image_ensure(c2, G.base_vol, G.base, "qcow2", G.base_sha, E));

    char vol_path[4200];
    snprintf(vol_path, sizeof vol_path, "%s/%s", G.pool_path, G.base_vol);
    if (node_file_visible(vol_path)) {
        char on_node[65];
        sha256_file(vol_path, on_node);
        assert_string_equal(on_node, G.base_sha);
        cJSON *j = qemu_img_info(vol_path);
        assert_string_equal(jstr(j, "format"), "qcow2");
        assert_true(jnum(j, "virtual-size") == 64.0 * 1024 * 1024);
        cJSON_Delete(j);

        /* Damage it on the node: a new connection notices and uploads it again. */
        int fd = open(vol_path, O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "garbage", 7, 70000), 7);
        close(fd);
        struct mu_virt_conn *c3 = mu_virt_conn_new(G.uri, G.pool, G.pool_path);
        CHECK(mu_virt_image_ensure(c3, G.base_vol, G.base, "qcow2", G.base_sha, E));
        mu_virt_conn_free(c3);
        sha256_file(vol_path, on_node);
        assert_string_equal(on_node, G.base_sha);
    } else {
        print_message("pool files not visible from here: on-node checks skipped\n");
    }

    /* A wrong expected checksum: a new volume is not left behind; an existing good one is
     * not deleted. */
    const char *wrong = "0000000000000000000000000000000000000000000000000000000000000000";
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_image_ensure(c2, "mu-image-wrong.qcow2", G.base, "qcow2", wrong, &err),
                     MU_EINVAL);
    assert_string_equal(err.field, "sha256");
    assert_int_equal(mu_virt_volume_exists(c2, "mu-image-wrong.qcow2", &err), 0);
    memset(&err, 0, sizeof err);
    struct mu_virt_conn *c4 = mu_virt_conn_new(G.uri, G.pool, G.pool_path);
    assert_int_equal(mu_virt_image_ensure(c4, G.base_vol, G.base, "qcow2", wrong, &err), MU_EINVAL);
    mu_virt_conn_free(c4);
    assert_int_equal(mu_virt_volume_exists(c2, G.base_vol, &err), 1);

    /* An image that names a backing file is refused before anything is sent. */
    char *mkchild[] = {"qemu-img", "create", "-q",    "-f",    "qcow2", "-b",
                       G.base,     "-F",     "qcow2", G.child, NULL};
    free(run_ok(mkchild));
    char child_sha[65];
    sha256_file(G.child, child_sha);
    memset(&err, 0, sizeof err);
    assert_int_equal(
        mu_virt_image_ensure(c2, "mu-image-child.qcow2", G.child, "qcow2", child_sha, &err),
        MU_EINVAL);
    assert_string_equal(err.field, "image");
    assert_non_null(strstr(err.detail, "backing file"));
    assert_int_equal(mu_virt_volume_exists(c2, "mu-image-child.qcow2", &err), 0);
    mu_virt_conn_free(c2);

    /* A raw image of odd size, uploaded as it is. */
    size_t n = 3 * 1024 * 1024 + 123;
    unsigned char *data = mu_xmalloc(n);
    mu_random_bytes(data, n);
    assert_int_equal(mu_write_file_atomic(G.raw, data, n, 0600), 0);
    free(data);
    sha256_file(G.raw, G.raw_sha);
    t0 = mu_mono_ms();
    CHECK(mu_virt_image_ensure(G.c, G.raw_vol, G.raw, "raw", G.raw_sha, E));
    print_message("raw image (3 MiB) upload + read-back check: %.2f s\n", secs_since(t0));
}

static void test_overlay(void **state)
{
    (void)state;
    NEED_NODE();
    CHECK(mu_virt_overlay_ensure(G.c, G.overlay_vol, G.base_vol, "qcow2", 1, G.overlay_path, E));
    char again[4096];
    CHECK(mu_virt_overlay_ensure(G.c, G.overlay_vol, G.base_vol, "qcow2", 1, again, E));
    assert_string_equal(again, G.overlay_path);
    struct mu_err err = {0};
    assert_int_equal(mu_virt_overlay_ensure(G.c, "mu-'x.qcow2", G.base_vol, "qcow2", 1, NULL, &err),
                     MU_EINVAL);

    char base_path[4200];
    snprintf(base_path, sizeof base_path, "%s/%s", G.pool_path, G.base_vol);
    if (node_file_visible(G.overlay_path)) {
        cJSON *j = qemu_img_info(G.overlay_path);
        assert_string_equal(jstr(j, "format"), "qcow2");
        assert_string_equal(jstr(j, "backing-filename"), base_path);
        assert_string_equal(jstr(j, "backing-filename-format"), "qcow2");
        assert_true(jnum(j, "virtual-size") == 1024.0 * 1024 * 1024);
        cJSON_Delete(j);
    }
    /* Grows, never shrinks; the same size again is a no-op. */
    CHECK(mu_virt_volume_resize(G.c, G.overlay_vol, 2, E));
    CHECK(mu_virt_volume_resize(G.c, G.overlay_vol, 2, E));
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_volume_resize(G.c, G.overlay_vol, 1, &err), MU_EINVAL);
    if (node_file_visible(G.overlay_path)) {
        cJSON *j = qemu_img_info(G.overlay_path);
        assert_true(jnum(j, "virtual-size") == 2048.0 * 1024 * 1024);
        assert_string_equal(jstr(j, "backing-filename"), base_path);
        cJSON_Delete(j);
    }
}

static xmlNodePtr elem(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
            return n;
    return NULL;
}

static char *attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = n ? xmlGetNoNsProp(n, (const xmlChar *)name) : NULL;
    char *s = mu_xstrdup(v ? (const char *)v : "");
    xmlFree(v);
    return s;
}

static void assert_text(xmlNodePtr n, const char *want)
{
    assert_non_null(n);
    xmlChar *t = xmlNodeGetContent(n);
    assert_string_equal((const char *)t, want);
    xmlFree(t);
}

static const char hostile_name[] =
    "</title><devices><disk type='file' device='disk'><source file='/etc/shadow'/>"
    "<target dev='vdb' bus='virtio'/></disk><hostdev/></devices>&amp; \"quotes\" ../../etc "
    "Mairie de Saint-Étienne 🏛";
static const char hostile_tenant[] = "</mu:name></mu:vm></metadata><devices><disk/> & <b>";

/* Every device libvirt shows, checked against what we asked for (libvirt adds controllers
 * the machine needs; nothing that reads a file or reaches a network may appear). */
static void check_dumpxml(void)
{
    char name[64];
    snprintf(name, sizeof name, "mu-%s", G.uuid);
    int st;
    char *xml = virsh("dumpxml", name, NULL, &st);
    assert_int_equal(st, 0);
    if (getenv("MU_TEST_VERBOSE")) {
        printf("virsh dumpxml %s:\n", name);
        fputs(xml, stdout);
    }
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "d.xml", NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    xmlNodePtr dom = xmlDocGetRootElement(doc);
    char *type = attr(dom, "type");
    assert_string_equal(type, G.ni.kvm ? "kvm" : "qemu");
    free(type);
    assert_text(elem(dom, "name"), name);
    assert_text(elem(dom, "title"), hostile_name);
    xmlNodePtr vm = elem(elem(dom, "metadata"), "vm");
    assert_non_null(vm);
    assert_text(elem(vm, "name"), hostile_name);
    assert_text(elem(vm, "tenant"), hostile_tenant);

    size_t disks = 0, serials = 0, consoles = 0;
    for (xmlNodePtr d = elem(dom, "devices")->children; d; d = d->next) {
        if (d->type != XML_ELEMENT_NODE)
            continue;
        const char *n = (const char *)d->name;
        if (strcmp(n, "disk") == 0) {
            disks++;
            char *dev = attr(d, "device"), *src = attr(elem(d, "source"), "file");
            char *fmt = attr(elem(d, "driver"), "type"), *tgt = attr(elem(d, "target"), "dev");
            assert_string_equal(dev, "disk");
            assert_string_equal(src, G.overlay_path);
            assert_string_equal(fmt, "qcow2");
            assert_string_equal(tgt, "vda");
            free(dev);
            free(src);
            free(fmt);
            free(tgt);
        } else if (strcmp(n, "serial") == 0 || strcmp(n, "console") == 0) {
            if (n[0] == 's')
                serials++;
            else
                consoles++;
            char *p = attr(elem(d, "source"), "path");
            assert_string_equal(p, G.console);
            free(p);
        } else if (strcmp(n, "emulator") != 0 && strcmp(n, "controller") != 0 &&
                   strcmp(n, "input") != 0 && strcmp(n, "memballoon") != 0 &&
                   strcmp(n, "audio") != 0) {
            /* input/audio: the PS/2 devices and null audio the pc machine always has. */
            fail_msg("unexpected device <%s> in the domain", n);
        }
    }
    assert_int_equal(disks, 1);
    assert_int_equal(serials, 1);
    assert_int_equal(consoles, 1);
    xmlFreeDoc(doc);
    free(xml);
}

static void test_domain_injection_and_lifecycle(void **state)
{
    (void)state;
    NEED_NODE();
    assert_true(G.overlay_path[0] != '\0');
    struct mu_virt_domain_spec s = {
        .vm_id = 4242,
        .tenant_id = 77,
        .vm_name = hostile_name,
        .tenant_name = hostile_tenant,
        .vcpus = 1,
        .ram_mib = 64,
        .kvm = G.ni.kvm,
        .disk_path = G.overlay_path,
        .serial_log = G.console,
    };
    snprintf(s.uuid, sizeof s.uuid, "%s", G.uuid);

    /* Hostile paths never reach the node. */
    struct mu_virt_domain_spec bad = s;
    bad.disk_path = "/tmp/x'/><disk type='file' device='disk'><source file='/etc/shadow'/>";
    struct mu_err err = {0};
    assert_int_equal(mu_virt_domain_define(G.c, &bad, false, &err), MU_EINVAL);
    bad = s;
    bad.cmdline = "console=ttyS0 init=/bin/sh;reboot";
    bad.kernel = "/boot/vmlinuz";
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_domain_define(G.c, &bad, false, &err), MU_EINVAL);
    enum mu_virt_state st;
    CHECK(mu_virt_domain_state(G.c, G.uuid, &st, E));
    assert_int_equal(st, MU_VIRT_ABSENT);

    int64_t t0 = mu_mono_ms();
    CHECK(mu_virt_domain_define(G.c, &s, false, E));
    double t_define = secs_since(t0);
    CHECK(mu_virt_domain_define(G.c, &s, false, E));
    check_dumpxml();

    struct mu_virt_domain_info *list = NULL;
    size_t n = 0;
    CHECK(mu_virt_domain_list(G.c, &list, &n, E));
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].uuid, G.uuid) == 0) {
            found = true;
            assert_int_equal(list[i].vm_id, 4242);
            assert_int_equal(list[i].tenant_id, 77);
            assert_int_equal(list[i].state, MU_VIRT_SHUTOFF);
        }
    }
    free(list);
    assert_true(found);

    t0 = mu_mono_ms();
    CHECK(mu_virt_domain_start(G.c, G.uuid, E));
    double t_start = secs_since(t0);
    CHECK(mu_virt_domain_state(G.c, G.uuid, &st, E));
    assert_int_equal(st, MU_VIRT_RUNNING);
    CHECK(mu_virt_domain_start(G.c, G.uuid, E));
    CHECK(mu_virt_domain_reboot(G.c, G.uuid, E));
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_virt_domain_undefine(G.c, G.uuid, &err), MU_ECONFLICT);

    /* Firmware only: the power button goes unheard, so stop ends with destroy. */
    bool forced = false;
    t0 = mu_mono_ms();
    CHECK(mu_virt_domain_stop(G.c, G.uuid, 2000, &forced, E));
    double t_stop = secs_since(t0);
    assert_true(forced);
    assert_true(t_stop >= 1.9);
    CHECK(mu_virt_domain_state(G.c, G.uuid, &st, E));
    assert_int_equal(st, MU_VIRT_SHUTOFF);
    int vst;
    char name[64];
    snprintf(name, sizeof name, "mu-%s", G.uuid);
    char *out = virsh("domstate", name, NULL, &vst);
    assert_non_null(strstr(out, "shut off"));
    free(out);
    print_message("real node: define %.3f s, start %.3f s (TCG, 64 MiB), stop after 2 s "
                  "timeout + destroy %.3f s\n",
                  t_define, t_start, t_stop);

    CHECK(mu_virt_domain_start(G.c, G.uuid, E));
    CHECK(mu_virt_domain_destroy(G.c, G.uuid, E));
    CHECK(mu_virt_domain_undefine(G.c, G.uuid, E));
    CHECK(mu_virt_domain_undefine(G.c, G.uuid, E));
    CHECK(mu_virt_domain_state(G.c, G.uuid, &st, E));
    assert_int_equal(st, MU_VIRT_ABSENT);
    out = virsh("dominfo", name, NULL, &vst);
    assert_int_not_equal(vst, 0);
    free(out);

    CHECK(mu_virt_volume_delete(G.c, G.overlay_vol, E));
    CHECK(mu_virt_volume_delete(G.c, G.overlay_vol, E));
    assert_int_equal(mu_virt_volume_exists(G.c, G.overlay_vol, &err), 0);
}

/* Children of this process named ssh: libvirt's transport for qemu+ssh. */
static size_t ssh_children(pid_t *out, size_t max)
{
    size_t k = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) && k < max) {
        int64_t pid;
        if (mu_parse_i64(de->d_name, 1, INT32_MAX, &pid) < 0)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%" PRId64 "/stat", pid);
        char *stat = mu_read_file(path, 4096, NULL);
        if (!stat)
            continue;
        char *rp = strrchr(stat, ')');
        int64_t ppid;
        char pbuf[32];
        if (rp && strncmp(strchr(stat, '(') + 1, "ssh)", 4) == 0 &&
            sscanf(rp + 2, "%*c %31s", pbuf) == 1 && mu_parse_i64(pbuf, 0, INT32_MAX, &ppid) == 0 &&
            ppid == getpid())
            out[k++] = (pid_t)pid;
        free(stat);
    }
    closedir(d);
    return k;
}

static void test_reconnect(void **state)
{
    (void)state;
    NEED_NODE();
    if (strncmp(G.uri, "qemu+ssh://", 11) != 0) {
        print_message("not a qemu+ssh URI: transport-kill test skipped\n");
        skip();
    }
    struct mu_virt_conn *c = mu_virt_conn_new(G.uri, G.pool, G.pool_path);
    enum mu_virt_state st;
    CHECK(mu_virt_domain_state(c, G.uuid, &st, E));
    assert_true(mu_virt_conn_alive(c));
    pid_t before[16];
    size_t n = ssh_children(before, 16);
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++)
        kill(before[i], SIGKILL);
    /* The close callback, on the event-loop thread, marks the connection broken. */
    int64_t t0 = mu_mono_ms();
    while (mu_virt_conn_alive(c) && mu_mono_ms() - t0 < 5000) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_false(mu_virt_conn_alive(c));
    print_message("transport killed: connection marked broken after %.2f s\n", secs_since(t0));
    for (size_t i = 0; i < n; i++)
        waitpid(before[i], NULL, WNOHANG);
    /* The next call reopens it. */
    t0 = mu_mono_ms();
    CHECK(mu_virt_domain_state(c, G.uuid, &st, E));
    assert_true(mu_virt_conn_alive(c));
    print_message("reopened on the next call in %.2f s\n", secs_since(t0));
    mu_virt_conn_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_info), cmocka_unit_test(test_image_upload),
        cmocka_unit_test(test_overlay),   cmocka_unit_test(test_domain_injection_and_lifecycle),
        cmocka_unit_test(test_reconnect),
    };
    int r = cmocka_run_group_tests(tests, group_setup, group_teardown);
    xmlCleanupParser();
    return r;
}
