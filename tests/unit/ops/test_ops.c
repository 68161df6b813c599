/* ops/: the operations engine and the reconciler against libvirt's test driver and a real
 * SQLite store in a temporary directory.
 *
 * The node is test:///default: libvirt shares that state between every connection of the
 * process, so the test's own connection (through virt.h) sees what the engine's worker did.
 * (A test:///PATH/node.xml URI would give each connection its own private state.) Its
 * "default-pool" storage pool is in memory.
 *
 * The test driver has no volume upload (virStorageVolUpload), so the image step cannot copy
 * an image there: the tests create the base volume with libvirt directly and mark the copy
 * with mu_store_image_copy_set, which makes the image step a look-up. One test keeps the
 * copy unmarked to exercise the retry-until-deadline path on that very limitation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "mutualis/log.h"
#include "mutualis/util.h"
#include "ops/ops.h"
#include "store/provision.h"
#include "virt/virt.h"

#define NODE_URI  "test:///default"
#define NODE_POOL "default-pool"
#define WAIT_MS   30000

static const char test_key[32] = "0123456789abcdef0123456789abcdef";

struct fx {
    char dir[64];
    struct mu_store *st;
    struct mu_virt_conn *vc; /* the test's own view of the node */
    int64_t tenant_id, flavor_id, image_id, node_id;
    struct mu_ops *ops;
};

/* ---- helpers ------------------------------------------------------------------------- */

static void unlimited(void *ctx, const char *kind, int64_t population, struct mu_limits *ret)
{
    (void)ctx;
    (void)kind;
    (void)population;
    *ret = (struct mu_limits){MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED,
                              MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED};
}
static const struct mu_quota_defaults no_quota = {unlimited, NULL};

static struct mu_audit_rec rec(const char *action)
{
    return (struct mu_audit_rec){.actor = "alice",
                                 .role = "operator",
                                 .action = action,
                                 .target = "test",
                                 .outcome = "ok",
                                 .request_id = "req-1"};
}

static void rm_rf(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) < 0)
        return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_rf(p);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Creates the image's base volume in the test driver's pool (it cannot be uploaded there). */
/* Held open for the whole run: test:///default's state lives while a connection does. */
static virConnectPtr keeper;

static void silent(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

static void make_base_volume(int64_t image_id)
{
    char xml[512], name[64];
    snprintf(name, sizeof name, "mu-image-%lld.qcow2", (long long)image_id);
    virStoragePoolPtr p = virStoragePoolLookupByName(keeper, NODE_POOL);
    assert_non_null(p);
    virStorageVolPtr v = virStorageVolLookupByName(p, name);
    if (!v) {
        snprintf(xml, sizeof xml,
                 "<volume><name>%s</name><capacity>1073741824</capacity>"
                 "<target><format type='qcow2'/></target></volume>",
                 name);
        v = virStorageVolCreateXML(p, xml, 0);
    }
    assert_non_null(v);
    virStorageVolFree(v);
    virStoragePoolFree(p);
}

/* A store with a tenant, a flavor, a ready image (base volume present and its copy marked
 * unless mark_copy is false) and the node. */
static void fx_init(struct fx *f, bool mark_copy, const char *image_format)
{
    struct mu_err err = {0};
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu-ops-XXXXXX");
    assert_non_null(mkdtemp(f->dir));

    char path[256];
    snprintf(path, sizeof path, "%s/mutualis.db", f->dir);
    struct mu_store_opts so = {
        .path = path, .audit_key = test_key, .audit_key_len = sizeof test_key};
    f->st = mu_store_open(&so, &err);
    if (!f->st)
        fail_msg("mu_store_open: %s", err.detail);

    struct mu_audit_rec a = rec("setup");
    struct mu_tenant t = {
        .name = "Syndicat Test", .kind = "syndicat", .population = -1, .status = "active"};
    if (mu_store_tenant_insert(f->st, &t, &a, &f->tenant_id, &err) < 0)
        fail_msg("tenant: %s", err.detail);
    struct mu_flavor fl = {.name = "tiny", .vcpus = 1, .ram_mib = 64, .disk_gib = 1};
    if (mu_store_flavor_insert(f->st, &fl, &a, &f->flavor_id, &err) < 0)
        fail_msg("flavor: %s", err.detail);

    /* A small image file with its real checksum. */
    char img_path[256];
    snprintf(img_path, sizeof img_path, "%s/base.img", f->dir);
    assert_int_equal(mu_write_file_atomic(img_path, "mutualis test image\n", 20, 0644), 0);
    struct mu_image im = {.name = "base",
                          .format = (char *)image_format,
                          .size_bytes = 20,
                          .path = img_path,
                          .status = "ready"};
    /* sha256("mutualis test image\n") */
    snprintf(im.sha256, sizeof im.sha256, "%s",
             "c84595d521c4963e0f3d02dd3cbd28cce47f9c11d2b4bf453d98713d75fcb62b");
    if (mu_store_image_insert(f->st, &im, &a, &f->image_id, &err) < 0)
        fail_msg("image: %s", err.detail);

    struct mu_node n = {.name = "node1",
                        .uri = NODE_URI,
                        .pool = NODE_POOL,
                        .op_state = "active",
                        .health = "up",
                        .enrolment = "none",
                        .reserved_mem_mib = -1,
                        .labels_json = "{}"};
    if (mu_store_node_insert(f->st, &n, &a, &f->node_id, &err) < 0)
        fail_msg("node: %s", err.detail);

    if (mark_copy) {
        make_base_volume(f->image_id);
        if (mu_store_image_copy_set(f->st, f->image_id, f->node_id, &err) < 0)
            fail_msg("copy_set: %s", err.detail);
    }
    f->vc = mu_virt_conn_new(NODE_URI, NODE_POOL, NULL);
    assert_non_null(f->vc);
}

static void fx_start(struct fx *f, const char *orphan_policy, int64_t op_timeout_ms)
{
    struct mu_err err = {0};
    struct mu_ops_opts o = {.store = f->st,
                            .data_dir = f->dir,
                            .stop_timeout_ms = 2000,
                            .op_timeout_ms = op_timeout_ms,
                            .reconcile_interval_ms = 3600 * 1000, /* passes run by hand */
                            .orphan_policy = orphan_policy};
    f->ops = mu_ops_start(&o, &err);
    if (!f->ops)
        fail_msg("mu_ops_start: %s", err.detail);
}

static void fx_fini(struct fx *f)
{
    mu_ops_stop(f->ops);
    mu_virt_conn_free(f->vc);
    mu_store_close(f->st);
    rm_rf(f->dir);
}

/* Admits a VM of the tiny flavor on the node; returns its id, *ret_op the create op. */
static int64_t admit(struct fx *f, const char *name, int64_t *ret_op, char uuid[MU_UUID_LEN + 1])
{
    struct mu_err err = {0};
    struct mu_audit_rec a = rec("vm.create");
    struct mu_admit_req req = {.vm = {.tenant_id = f->tenant_id,
                                      .name = (char *)name,
                                      .flavor_id = f->flavor_id,
                                      .vcpus = 1,
                                      .ram_mib = 64,
                                      .disk_gib = 1,
                                      .image_id = f->image_id},
                               .node_id = f->node_id,
                               .node_cap_vcpus = 1000,
                               .node_cap_ram_mib = 1 << 20,
                               .node_cap_disk_gib = 1 << 20,
                               .allow_unknown_health = true,
                               .defaults = &no_quota};
    mu_uuid_generate(req.vm.uuid);
    int64_t vm_id = 0;
    if (mu_store_vm_admit(f->st, &req, &a, &vm_id, ret_op, &err) < 0)
        fail_msg("admit: %s", err.detail);
    if (uuid)
        snprintf(uuid, MU_UUID_LEN + 1, "%s", req.vm.uuid);
    return vm_id;
}

/* Polls the operation until it is finished; returns its final row (caller clears). */
static void wait_op(struct fx *f, int64_t op_id, struct mu_op *ret)
{
    int64_t deadline = mu_mono_ms() + WAIT_MS;
    for (;;) {
        struct mu_err err = {0};
        memset(ret, 0, sizeof *ret);
        if (mu_store_op_get(f->st, op_id, ret, &err) < 0)
            fail_msg("op_get %lld: %s", (long long)op_id, err.detail);
        if (strcmp(ret->state, "succeeded") == 0 || strcmp(ret->state, "failed") == 0)
            return;
        if (mu_mono_ms() > deadline)
            fail_msg("operation %lld still %s at step '%s' (error: %s)", (long long)op_id,
                     ret->state, ret->step, ret->error ? ret->error : "");
        mu_op_clear(ret);
        sleep_ms(20);
    }
}

static void expect_op_ok(struct fx *f, int64_t op_id)
{
    struct mu_op op;
    wait_op(f, op_id, &op);
    if (strcmp(op.state, "succeeded") != 0)
        fail_msg("operation %lld (%s) %s: %s", (long long)op_id, op.kind, op.state,
                 op.error ? op.error : "");
    mu_op_clear(&op);
}

static enum mu_virt_state dom_state(struct fx *f, const char *uuid)
{
    struct mu_err err = {0};
    enum mu_virt_state s = MU_VIRT_OTHER;
    if (mu_virt_domain_state(f->vc, uuid, &s, &err) < 0)
        fail_msg("domain_state: %s", err.detail);
    return s;
}

static void expect_observed(struct fx *f, int64_t vm_id, const char *want)
{
    struct mu_vm vm = {0};
    struct mu_err err = {0};
    if (mu_store_vm_get(f->st, vm_id, &vm, &err) < 0)
        fail_msg("vm_get: %s", err.detail);
    if (strcmp(vm.observed_state, want) != 0)
        fail_msg("vm %lld observed %s, expected %s (last error: %s)", (long long)vm_id,
                 vm.observed_state, want, vm.last_error ? vm.last_error : "");
    mu_vm_clear(&vm);
}

static int64_t request(struct fx *f, int64_t vm_id, const char *kind, const char *desired)
{
    struct mu_err err = {0};
    struct mu_audit_rec a = rec(kind);
    int64_t op_id = 0;
    if (mu_store_vm_request(f->st, vm_id, kind, desired, &a, &op_id, &err) < 0)
        fail_msg("request %s: %s", kind, err.detail);
    mu_ops_kick(f->ops);
    return op_id;
}

static bool volume_exists(struct fx *f, const char *uuid)
{
    char vol[96];
    struct mu_err err = {0};
    snprintf(vol, sizeof vol, "mu-%s.qcow2", uuid);
    int r = mu_virt_volume_exists(f->vc, vol, &err);
    if (r < 0)
        fail_msg("volume_exists: %s", err.detail);
    return r == 1;
}

/* Waits until no operation is pending or running (those the reconciler queued). */
static void wait_idle(struct fx *f)
{
    int64_t deadline = mu_mono_ms() + WAIT_MS;
    for (;;) {
        struct mu_op *o = NULL;
        size_t n = 0;
        struct mu_err err = {0};
        if (mu_store_op_unfinished(f->st, &o, &n, &err) < 0)
            fail_msg("op_unfinished: %s", err.detail);
        mu_ops_free(o, n);
        if (n == 0)
            return;
        if (mu_mono_ms() > deadline)
            fail_msg("%zu operations still unfinished", n);
        sleep_ms(20);
    }
}

/* Waits until the domain reaches want. */
static void wait_domain(struct fx *f, const char *uuid, enum mu_virt_state want)
{
    int64_t deadline = mu_mono_ms() + WAIT_MS;
    while (dom_state(f, uuid) != want) {
        if (mu_mono_ms() > deadline)
            fail_msg("domain %s is %s, expected %s", uuid, mu_virt_state_name(dom_state(f, uuid)),
                     mu_virt_state_name(want));
        sleep_ms(20);
    }
}

/* ---- tests ------------------------------------------------------------------------------ */

/* The fault hook kills the process with SIGKILL at the named point and only there. It runs
 * in a re-executed child (the hook reads MU_FAULT_POINT once per process). */
static void test_fault_point(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("MU_FAULT_POINT", "create.after_define", 1);
        execl("/proc/self/exe", "test_ops", "--fault-child", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    /* Unset: every point is a no-op. */
    mu_fault_point("create.after_define");
    mu_fault_point("delete.after_destroy");
}

static int fault_child(void)
{
    mu_fault_point("create.after_image");  /* not this one */
    mu_fault_point("create.after_define"); /* dies here */
    return 3;
}

/* create → stop → start → reboot → resize → delete, each checked on the node. */
static void test_lifecycle(void **state)
{
    (void)state;
    struct fx f;
    char uuid[MU_UUID_LEN + 1];
    int64_t op_id;

    fx_init(&f, true, "qcow2");
    fx_start(&f, NULL, 0);
    int64_t vm = admit(&f, "web-1", &op_id, uuid);
    mu_ops_kick(f.ops);
    expect_op_ok(&f, op_id);
    assert_int_equal(dom_state(&f, uuid), MU_VIRT_RUNNING);
    assert_true(volume_exists(&f, uuid));
    expect_observed(&f, vm, "running");

    /* The operation recorded every step. */
    struct mu_op op;
    wait_op(&f, op_id, &op);
    assert_string_equal(op.step, "start");
    mu_op_clear(&op);

    expect_op_ok(&f, request(&f, vm, "vm.stop", "stopped"));
    assert_int_equal(dom_state(&f, uuid), MU_VIRT_SHUTOFF);
    expect_observed(&f, vm, "shutoff");

    expect_op_ok(&f, request(&f, vm, "vm.start", "running"));
    assert_int_equal(dom_state(&f, uuid), MU_VIRT_RUNNING);
    expect_observed(&f, vm, "running");

    expect_op_ok(&f, request(&f, vm, "vm.reboot", "running"));
    assert_int_equal(dom_state(&f, uuid), MU_VIRT_RUNNING);
    expect_observed(&f, vm, "running");

    /* Cold resize: stopped first; more vCPUs and memory, same disk. */
    expect_op_ok(&f, request(&f, vm, "vm.stop", "stopped"));
    {
        struct mu_err err = {0};
        struct mu_audit_rec a = rec("vm.resize");
        int64_t rop = 0;
        if (mu_store_vm_resize(f.st, vm, f.flavor_id, 2, 128, 1, 1000, 1 << 20, 1 << 20, &no_quota,
                               &a, &rop, &err) < 0)
            fail_msg("resize: %s", err.detail);
        mu_ops_kick(f.ops);
        expect_op_ok(&f, rop);
    }
    assert_int_equal(dom_state(&f, uuid), MU_VIRT_SHUTOFF);
    expect_observed(&f, vm, "shutoff");

    op_id = request(&f, vm, "vm.delete", "deleted");
    expect_op_ok(&f, op_id);
    assert_int_equal(dom_state(&f, uuid), MU_VIRT_ABSENT);
    assert_false(volume_exists(&f, uuid));
    {
        struct mu_vm v = {0};
        struct mu_err err = {0};
        assert_int_equal(mu_store_vm_get(f.st, vm, &v, &err), MU_ENOTFOUND);
    }
    wait_op(&f, op_id, &op);
    assert_string_equal(op.step, "purge");
    mu_op_clear(&op);
    fx_fini(&f);
}

/* Operations left "running" by a crash resume after their last recorded step: a create
 * after "disk", a delete after "undefine", a delete whose purge happened but was not
 * recorded. */
static void test_resume_after_crash(void **state)
{
    (void)state;
    struct fx f;
    struct mu_err err = {0};
    char uuid[MU_UUID_LEN + 1], uuid2[MU_UUID_LEN + 1];
    int64_t op_id, op2;

    fx_init(&f, true, "qcow2");
    int64_t vm = admit(&f, "resumed", &op_id, uuid);
    int64_t vm2 = admit(&f, "other", &op2, uuid2);
    /* As if the controller had died right after recording "disk" (the overlay itself was
     * lost too: the define step makes sure it exists). */
    assert_int_equal(mu_store_op_step(f.st, op_id, "image", &err), 0);
    assert_int_equal(mu_store_op_step(f.st, op_id, "disk", &err), 0);
    fx_start(&f, NULL, 0);
    expect_op_ok(&f, op_id);
    expect_op_ok(&f, op2);
    assert_int_equal(dom_state(&f, uuid), MU_VIRT_RUNNING);
    assert_true(volume_exists(&f, uuid));
    expect_observed(&f, vm, "running");
    mu_ops_stop(f.ops);
    f.ops = NULL;

    /* Deletes interrupted: vm's after its undefine step, vm2's after its (unrecorded)
     * purge. */
    op_id = request(&f, vm, "vm.delete", "deleted");
    assert_int_equal(mu_virt_domain_destroy(f.vc, uuid, &err), 0);
    assert_int_equal(mu_virt_domain_undefine(f.vc, uuid, &err), 0);
    assert_int_equal(mu_store_op_step(f.st, op_id, "destroy", &err), 0);
    assert_int_equal(mu_store_op_step(f.st, op_id, "undefine", &err), 0);
    op2 = request(&f, vm2, "vm.delete", "deleted");
    char vol[96];
    snprintf(vol, sizeof vol, "mu-%s.qcow2", uuid2);
    assert_int_equal(mu_virt_domain_destroy(f.vc, uuid2, &err), 0);
    assert_int_equal(mu_virt_domain_undefine(f.vc, uuid2, &err), 0);
    assert_int_equal(mu_virt_volume_delete(f.vc, vol, &err), 0);
    assert_int_equal(mu_store_op_step(f.st, op2, "disk", &err), 0);
    assert_int_equal(mu_store_vm_purge(f.st, vm2, &err), 0);

    fx_start(&f, NULL, 0);
    expect_op_ok(&f, op_id);
    expect_op_ok(&f, op2);
    assert_false(volume_exists(&f, uuid));
    struct mu_vm v = {0};
    assert_int_equal(mu_store_vm_get(f.st, vm, &v, &err), MU_ENOTFOUND);
    assert_int_equal(mu_store_vm_get(f.st, vm2, &v, &err), MU_ENOTFOUND);
    fx_fini(&f);
}

/* Transient errors are retried with backoff until the deadline, then the operation fails
 * naming the step and the number of attempts; a permanent error fails at once. */
static void test_retry_and_permanent_failure(void **state)
{
    (void)state;
    struct fx f;
    struct mu_op op;
    int64_t op_id;

    /* raw image not on the node, and its file gone from the controller (an I/O error). */
    fx_init(&f, false, "raw");
    char img_path[256];
    snprintf(img_path, sizeof img_path, "%s/base.img", f.dir);
    assert_int_equal(unlink(img_path), 0);
    fx_start(&f, NULL, 2500);
    int64_t vm = admit(&f, "never", &op_id, NULL);
    mu_ops_kick(f.ops);
    wait_op(&f, op_id, &op);
    assert_string_equal(op.state, "failed");
    if (!strstr(op.error, "step image failed after 2 attempts"))
        fail_msg("error: %s", op.error);
    assert_true(op.attempts >= 1);
    mu_op_clear(&op);
    expect_observed(&f, vm, "error");
    fx_fini(&f);

    /* A "qcow2" image that is not one: refused at once, no retry. */
    fx_init(&f, false, "qcow2");
    fx_start(&f, NULL, 0);
    vm = admit(&f, "bad-image", &op_id, NULL);
    mu_ops_kick(f.ops);
    wait_op(&f, op_id, &op);
    assert_string_equal(op.state, "failed");
    if (!strstr(op.error, "step image failed: ") || !strstr(op.error, "not a qcow2 image"))
        fail_msg("error: %s", op.error);
    assert_int_equal(op.attempts, 0);
    mu_op_clear(&op);
    expect_observed(&f, vm, "error");
    fx_fini(&f);
}

/* Orphans removed, a domain destroyed behind the engine's back restarted, one undefined
 * behind its back marked missing, a desired-stopped VM started behind its back stopped. */
static void test_reconcile(void **state)
{
    (void)state;
    struct fx f;
    struct mu_err err = {0};
    char uuid[MU_UUID_LEN + 1], uuid2[MU_UUID_LEN + 1];
    int64_t op_id;

    fx_init(&f, true, "qcow2");
    fx_start(&f, NULL, 0);
    int64_t vm = admit(&f, "app", &op_id, uuid);
    mu_ops_kick(f.ops);
    expect_op_ok(&f, op_id);
    int64_t vm2 = admit(&f, "app2", &op_id, uuid2);
    mu_ops_kick(f.ops);
    expect_op_ok(&f, op_id);

    /* An orphan: Mutualis metadata, no VM row. */
    struct mu_virt_domain_spec spec = {.vm_id = 999999,
                                       .tenant_id = f.tenant_id,
                                       .vm_name = "ghost",
                                       .tenant_name = "nobody",
                                       .vcpus = 1,
                                       .ram_mib = 64,
                                       .disk_path = "/default-pool/ghost.qcow2"};
    mu_uuid_generate(spec.uuid);
    if (mu_virt_domain_define(f.vc, &spec, false, &err) < 0)
        fail_msg("define orphan: %s", err.detail);
    assert_int_equal(mu_virt_domain_start(f.vc, spec.uuid, &err), 0);
    assert_int_equal(dom_state(&f, spec.uuid), MU_VIRT_RUNNING);

    /* Behind the engine's back: vm destroyed, vm2 undefined. */
    assert_int_equal(mu_virt_domain_destroy(f.vc, uuid, &err), 0);
    assert_int_equal(mu_virt_domain_destroy(f.vc, uuid2, &err), 0);
    assert_int_equal(mu_virt_domain_undefine(f.vc, uuid2, &err), 0);

    if (mu_ops_reconcile(f.ops, &err) < 0)
        fail_msg("reconcile: %s", err.detail);
    assert_int_equal(dom_state(&f, spec.uuid), MU_VIRT_ABSENT);
    expect_observed(&f, vm2, "missing");
    /* vm was found shutoff while desired running: a vm.start was queued and runs. */
    wait_idle(&f);
    assert_int_equal(dom_state(&f, uuid), MU_VIRT_RUNNING);
    expect_observed(&f, vm, "running");
    /* A second pass finds nothing to do. */
    if (mu_ops_reconcile(f.ops, &err) < 0)
        fail_msg("reconcile: %s", err.detail);
    {
        struct mu_op *o = NULL;
        size_t n = 0;
        assert_int_equal(mu_store_op_unfinished(f.st, &o, &n, &err), 0);
        assert_int_equal(n, 0);
        mu_ops_free(o, n);
    }
    expect_observed(&f, vm2, "missing");

    /* Desired stopped, started behind the engine's back: stopped again. */
    expect_op_ok(&f, request(&f, vm, "vm.stop", "stopped"));
    assert_int_equal(mu_virt_domain_start(f.vc, uuid, &err), 0);
    if (mu_ops_reconcile(f.ops, &err) < 0)
        fail_msg("reconcile: %s", err.detail);
    wait_domain(&f, uuid, MU_VIRT_SHUTOFF);
    wait_idle(&f);
    expect_observed(&f, vm, "shutoff");

    /* The node's capacity was read by the pass. */
    struct mu_node n = {0};
    assert_int_equal(mu_store_node_get(f.st, f.node_id, &n, &err), 0);
    assert_true(n.cpus > 0);
    assert_true(n.mem_mib > 0);
    assert_null(n.last_error);
    mu_node_clear(&n);

    /* Clean up the node for the next tests. */
    expect_op_ok(&f, request(&f, vm, "vm.delete", "deleted"));
    expect_op_ok(&f, request(&f, vm2, "vm.delete", "deleted"));
    fx_fini(&f);
}

/* With orphan_policy "quarantine" an orphan is left in place. */
static void test_quarantine(void **state)
{
    (void)state;
    struct fx f;
    struct mu_err err = {0};

    fx_init(&f, true, "qcow2");
    fx_start(&f, "quarantine", 0);
    struct mu_virt_domain_spec spec = {.vm_id = 424242,
                                       .tenant_id = 1,
                                       .vm_name = "ghost",
                                       .tenant_name = "nobody",
                                       .vcpus = 1,
                                       .ram_mib = 64,
                                       .disk_path = "/default-pool/ghost2.qcow2"};
    mu_uuid_generate(spec.uuid);
    assert_int_equal(mu_virt_domain_define(f.vc, &spec, false, &err), 0);
    assert_int_equal(mu_ops_reconcile(f.ops, &err), 0);
    assert_int_equal(dom_state(&f, spec.uuid), MU_VIRT_SHUTOFF);
    mu_ops_stop(f.ops);

    /* The same orphan under the default policy goes. */
    fx_start(&f, "remove", 0);
    assert_int_equal(mu_ops_reconcile(f.ops, &err), 0);
    assert_int_equal(dom_state(&f, spec.uuid), MU_VIRT_ABSENT);

    struct mu_ops_opts bad = {.store = f.st, .orphan_policy = "shred"};
    memset(&err, 0, sizeof err);
    assert_null(mu_ops_start(&bad, &err));
    assert_int_equal(err.code, MU_EINVAL);
    fx_fini(&f);
}

/* A probe stores capacity; an unreachable node answers MU_EUNAVAIL and its error is kept. */
static void test_probe(void **state)
{
    (void)state;
    struct fx f;
    struct mu_err err = {0};
    struct mu_node n = {0};

    fx_init(&f, false, "qcow2");
    fx_start(&f, NULL, 0);
    if (mu_ops_node_probe(f.ops, f.node_id, 5000, &err) < 0)
        fail_msg("probe: %s", err.detail);
    assert_int_equal(mu_store_node_get(f.st, f.node_id, &n, &err), 0);
    assert_true(n.cpus > 0);
    assert_true(n.mem_mib > 0);
    assert_true(n.info_ms > 0);
    mu_node_clear(&n);

    struct mu_audit_rec a = rec("node.create");
    struct mu_node dead = {.name = "dead",
                           .uri = "test:///nonexistent/mu-node.xml",
                           .pool = NODE_POOL,
                           .reserved_mem_mib = -1};
    int64_t dead_id = 0;
    assert_int_equal(mu_store_node_insert(f.st, &dead, &a, &dead_id, &err), 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_ops_node_probe(f.ops, dead_id, 5000, &err), MU_EUNAVAIL);
    assert_int_equal(mu_store_node_get(f.st, dead_id, &n, &err), 0);
    assert_non_null(n.last_error);
    mu_node_clear(&n);
    /* A reconcile pass over both nodes copes with the dead one. */
    assert_int_equal(mu_ops_reconcile(f.ops, &err), 0);

    memset(&err, 0, sizeof err);
    assert_int_equal(mu_ops_node_probe(f.ops, 987654, 1000, &err), MU_ENOTFOUND);
    mu_ops_node_forget(f.ops, dead_id);
    mu_ops_node_forget(f.ops, dead_id); /* twice: harmless */
    fx_fini(&f);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--fault-child") == 0)
        return fault_child();
    mu_log_set_level(getenv("MU_TEST_VERBOSE") ? MU_LOG_DEBUG : MU_LOG_ERROR);
    virSetErrorFunc(NULL, silent);
    keeper = virConnectOpen(NODE_URI);
    if (!keeper)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_point),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_resume_after_crash),
        cmocka_unit_test(test_retry_and_permanent_failure),
        cmocka_unit_test(test_reconcile),
        cmocka_unit_test(test_quarantine),
        cmocka_unit_test(test_probe),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    virConnectClose(keeper);
    mu_virt_shutdown();
    return rc;
}
