/* The steps of each operation kind, run by the node's worker. Every step is idempotent
 * (virt.h looks things up by UUID or volume name first; deleting what is absent succeeds),
 * so an operation resumed after a crash simply redoes the step it was in.
 *
 * Around each step: the fault points "<kind>.before_<first step>" and
 * "<kind>.after_<step>" (kind without "vm."), the latter between the step's effect and
 * its record, so a crash test kills the process exactly where a step has acted but the
 * store does not know it yet. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "mutualis/json.h"
#include "mutualis/log.h"
#include "mutualis/util.h"
#include "ops/ops_int.h"
#include "store/network.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000

struct step_ctx {
    struct mu_ops *ops;
    struct mu_ops_worker *w;
    const struct mu_op *op;
    struct mu_vm vm;
    struct mu_node node;
    struct mu_image img;
    bool have_img;
    char disk_path[4096];
    /* Networks (store/network.h): the VM's NICs, loaded once; the seed volume's path. */
    struct mu_nic *nics;
    size_t n_nics;
    bool have_nics;
    char seed_path[4096];
    int64_t network_id; /* net.filter: the network whose filter is redefined */
};

typedef int (*step_fn)(struct step_ctx *c, struct mu_err *err);
struct step {
    const char *name;
    step_fn fn;
};

/* ---- helpers ------------------------------------------------------------------------------ */

void mu_ops_disk_vol(const char *uuid, char *out, size_t outlen)
{
    snprintf(out, outlen, "mu-%s.qcow2", uuid);
}

const char *mu_ops_observed_of(enum mu_virt_state s)
{
    switch (s) {
    case MU_VIRT_ABSENT:
        return "missing";
    case MU_VIRT_RUNNING:
        return "running";
    case MU_VIRT_SHUTOFF:
        return "shutoff";
    case MU_VIRT_CRASHED:
        return "error";
    default:
        return "unknown";
    }
}

static void base_vol(const struct mu_image *img, char *out, size_t outlen)
{
    snprintf(out, outlen, "mu-image-%lld.%s", (long long)img->id, img->format);
}

static int ctx_image(struct step_ctx *c, struct mu_err *err)
{
    if (c->have_img)
        return 0;
    int rc = mu_store_image_get(c->ops->store, c->vm.image_id, &c->img, err);
    if (rc < 0)
        return rc;
    c->have_img = true;
    return 0;
}

/* The overlay's path (creating the overlay if a crash lost it). */
static int ctx_disk(struct step_ctx *c, struct mu_err *err)
{
    char disk[128], base[128];
    int rc;

    if (c->disk_path[0])
        return 0;
    rc = ctx_image(c, err);
    if (rc < 0)
        return rc;
    mu_ops_disk_vol(c->vm.uuid, disk, sizeof disk);
    base_vol(&c->img, base, sizeof base);
    return mu_virt_overlay_ensure(c->w->conn, disk, base, c->img.format, c->vm.disk_gib,
                                  c->disk_path, err);
}

/* The serial console log lives beside the VM's disk, in the node's pool directory: it is
 * on the node (nodes are usually remote) and writable by the node's QEMU, whatever user
 * its libvirtd runs as. */
static void console_path(const char *disk_path, const char *uuid, char *out, size_t outlen)
{
    const char *slash = strrchr(disk_path, '/');
    int dirlen = slash ? (int)(slash - disk_path) : 0;
    snprintf(out, outlen, "%.*s/mu-%s.console.log", dirlen, disk_path, uuid);
}

void mu_ops_seed_vol(const char *uuid, char *out, size_t outlen)
{
    snprintf(out, outlen, "mu-%s.seed.iso", uuid);
}

static int ctx_nics(struct step_ctx *c, struct mu_err *err)
{
    if (c->have_nics)
        return 0;
    int rc = mu_store_vm_nics(c->ops->store, c->vm.id, &c->nics, &c->n_nics, err);
    if (rc < 0)
        return rc;
    c->have_nics = true;
    return 0;
}

/* Defines (or redefines when its rules changed) the nwfilter of one network on the node. */
static int filter_define(struct step_ctx *c, int64_t network_id, struct mu_err *err)
{
    struct mu_network net = {0};
    struct mu_sec_rule *rules = NULL;
    size_t n = 0;
    int rc = mu_store_network_get(c->ops->store, network_id, &net, err);
    if (rc == 0)
        rc = mu_store_sec_rules(c->ops->store, network_id, &rules, &n, err);
    if (rc == 0)
        rc = mu_virt_nwfilter_define(c->w->conn, network_id, net.cidr, rules, n, err);
    mu_sec_rules_free(rules, n);
    mu_network_clear(&net);
    return rc;
}

/* The NoCloud seed (instance-id, host name, the NICs' addresses and MTU, user-data) built and
 * uploaded to the node's pool; idempotent (same content: kept). */
static int ctx_seed(struct step_ctx *c, struct mu_err *err)
{
    char vol[128];
    MU_AUTOFREE char *user_data = NULL;
    unsigned char *iso = NULL;
    size_t len = 0;
    if (c->seed_path[0])
        return 0;
    int rc = ctx_nics(c, err);
    if (rc == 0)
        rc = mu_store_vm_user_data(c->ops->store, c->vm.id, &user_data, err);
    if (rc < 0)
        return rc;
    struct mu_virt_seed seed = {.instance_id = c->vm.uuid,
                                .hostname = c->vm.name,
                                .nics = c->nics,
                                .n_nics = c->n_nics,
                                .user_data = user_data};
    rc = mu_virt_seed_build(&seed, &iso, &len, err);
    if (rc < 0)
        return rc;
    mu_ops_seed_vol(c->vm.uuid, vol, sizeof vol);
    rc = mu_virt_seed_ensure(c->w->conn, vol, iso, len, c->seed_path, err);
    free(iso);
    if (rc < 0)
        c->seed_path[0] = '\0';
    return rc;
}

static int define_domain(struct step_ctx *c, bool redefine, struct mu_err *err)
{
    struct mu_tenant t = {0};
    char log[4096];
    int rc;

    rc = ctx_disk(c, err);
    if (rc == 0)
        rc = ctx_seed(c, err); /* a redefinition keeps the seed and the NICs */
    if (rc < 0)
        return rc;
    rc = mu_store_tenant_get(c->ops->store, c->vm.tenant_id, &t, err);
    if (rc < 0)
        return rc;
    struct mu_virt_domain_spec spec = {
        .vm_id = c->vm.id,
        .tenant_id = c->vm.tenant_id,
        .vm_name = c->vm.name,
        .tenant_name = t.name,
        .vcpus = c->vm.vcpus,
        .ram_mib = c->vm.ram_mib,
        .kvm = c->node.kvm,
        .disk_path = c->disk_path,
        .kernel = c->img.kernel,
        .initrd = c->img.initrd,
        .cmdline = c->img.cmdline,
        .seed_iso = c->seed_path[0] == '/' ? c->seed_path : NULL,
        .nics = c->nics,
        .n_nics = c->n_nics,
    };
    snprintf(spec.uuid, sizeof spec.uuid, "%s", c->vm.uuid);
    if (c->disk_path[0] == '/') {
        console_path(c->disk_path, c->vm.uuid, log, sizeof log);
        spec.serial_log = log;
    }
    rc = mu_virt_domain_define(c->w->conn, &spec, redefine, err);
    mu_tenant_clear(&t);
    return rc;
}

/* ---- steps --------------------------------------------------------------------------------- */

static int step_image(struct step_ctx *c, struct mu_err *err)
{
    char vol[128];
    int rc = ctx_image(c, err);

    if (rc < 0)
        return rc;
    if (!c->img.status || strcmp(c->img.status, "ready") != 0)
        return mu_err_set(err, MU_EINVAL, "image %s is not ready (%s)", c->img.name,
                          c->img.status ? c->img.status : "no status");
    rc = mu_store_image_copy_has(c->ops->store, c->img.id, c->node.id, err);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return 0;
    base_vol(&c->img, vol, sizeof vol);
    rc = mu_virt_image_ensure(c->w->conn, vol, c->img.path, c->img.format, c->img.sha256, err);
    if (rc < 0)
        return rc;
    return mu_store_image_copy_set(c->ops->store, c->img.id, c->node.id, err);
}

static int step_disk(struct step_ctx *c, struct mu_err *err)
{
    c->disk_path[0] = '\0'; /* ask again: ensure it exists now */
    return ctx_disk(c, err);
}

/* Every network of the VM's NICs has its filter on the node before the domain names it. */
static int step_filters(struct step_ctx *c, struct mu_err *err)
{
    int rc = ctx_nics(c, err);
    for (size_t i = 0; rc == 0 && i < c->n_nics; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen = seen || c->nics[j].network_id == c->nics[i].network_id;
        if (!seen)
            rc = filter_define(c, c->nics[i].network_id, err);
    }
    return rc;
}

static int step_seed(struct step_ctx *c, struct mu_err *err)
{
    c->seed_path[0] = '\0'; /* ask again: ensure it exists now */
    return ctx_seed(c, err);
}

static int step_claim(struct step_ctx *c, struct mu_err *err)
{
    (void)c;
    (void)err;
    return 0;
}

/* net.filter: redefine the network's filter on this node after a rule change. */
static int step_net_filter(struct step_ctx *c, struct mu_err *err)
{
    return filter_define(c, c->network_id, err);
}

static int step_define(struct step_ctx *c, struct mu_err *err)
{
    return define_domain(c, false, err);
}

static int step_redefine(struct step_ctx *c, struct mu_err *err)
{
    return define_domain(c, true, err);
}

/* The first VM of a network on a node waits for the node's agent to create the segment's
 * bridge (it reads the new plan on its next interval): while the start fails and the VM has
 * NICs, it is retried every second for NET_WAIT_MS inside the step, instead of through the
 * operation's exponential backoff (which would add up to a minute). */
#define NET_WAIT_MS 25000

static int step_start(struct step_ctx *c, struct mu_err *err)
{
    int rc = mu_virt_domain_start(c->w->conn, c->vm.uuid, err);
    int64_t deadline = mu_mono_ms() + NET_WAIT_MS;
    struct mu_err nerr = {0};
    while (rc == MU_EIO && ctx_nics(c, &nerr) == 0 && c->n_nics > 0 && mu_mono_ms() < deadline) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        mu_err_clear(err);
        rc = mu_virt_domain_start(c->w->conn, c->vm.uuid, err);
    }
    return rc;
}

static int step_stop(struct step_ctx *c, struct mu_err *err)
{
    bool forced = false;
    int rc = mu_virt_domain_stop(c->w->conn, c->vm.uuid, c->ops->stop_timeout_ms, &forced, err);
    if (rc == 0 && forced)
        mu_log_warn("graceful stop timed out, domain powered off vm=%lld uuid=%s timeout_ms=%lld",
                    (long long)c->vm.id, c->vm.uuid, (long long)c->ops->stop_timeout_ms);
    return rc;
}

static int step_reboot(struct step_ctx *c, struct mu_err *err)
{
    return mu_virt_domain_reboot(c->w->conn, c->vm.uuid, err);
}

static int step_destroy(struct step_ctx *c, struct mu_err *err)
{
    return mu_virt_domain_destroy(c->w->conn, c->vm.uuid, err);
}

static int step_undefine(struct step_ctx *c, struct mu_err *err)
{
    int rc = mu_virt_domain_undefine(c->w->conn, c->vm.uuid, err);
    if (rc < 0)
        return rc;
    /* The domain is gone: until the purge, the row says so. */
    return mu_store_vm_set_observed(c->ops->store, c->vm.id, "deleted", NULL, err);
}

static int step_delete_disk(struct step_ctx *c, struct mu_err *err)
{
    char vol[128];
    mu_ops_disk_vol(c->vm.uuid, vol, sizeof vol);
    int rc = mu_virt_volume_delete(c->w->conn, vol, err);
    if (rc < 0)
        return rc;
    /* The serial console log sits beside the disk in the pool (see console_path). */
    snprintf(vol, sizeof vol, "mu-%s.console.log", c->vm.uuid);
    rc = mu_virt_volume_delete(c->w->conn, vol, err);
    if (rc < 0)
        return rc;
    mu_ops_seed_vol(c->vm.uuid, vol, sizeof vol);
    return mu_virt_volume_delete(c->w->conn, vol, err);
}

static int step_grow_disk(struct step_ctx *c, struct mu_err *err)
{
    char vol[128];
    mu_ops_disk_vol(c->vm.uuid, vol, sizeof vol);
    return mu_virt_volume_resize(c->w->conn, vol, c->vm.disk_gib, err); /* never shrinks */
}

static int step_purge(struct step_ctx *c, struct mu_err *err)
{
    return mu_store_vm_purge(c->ops->store, c->vm.id, err);
}

static const struct step create_steps[] = {{"image", step_image},     {"disk", step_disk},
                                           {"filters", step_filters}, {"seed", step_seed},
                                           {"define", step_define},   {"start", step_start}};
static const struct step start_steps[] = {{"start", step_start}};
static const struct step stop_steps[] = {{"stop", step_stop}};
static const struct step reboot_steps[] = {{"reboot", step_reboot}};
static const struct step resize_steps[] = {{"define", step_redefine}, {"disk", step_grow_disk}};
static const struct step delete_steps[] = {{"destroy", step_destroy},
                                           {"undefine", step_undefine},
                                           {"disk", step_delete_disk},
                                           {"purge", step_purge}};
/* "claim" records the operation as started before the rules are read: the store queues a
 * new net.filter for a rule change only while an earlier one is still untouched, so a change
 * committed after the claim gets its own operation and none is lost. */
static const struct step net_filter_steps[] = {{"claim", step_claim}, {"define", step_net_filter}};

struct kind_def {
    const char *kind;
    const char *short_name; /* fault point prefix */
    const struct step *steps;
    size_t n;
    const char *observed; /* observed state on success; NULL: read it (resize) or none */
};

#define KIND(k, s, steps, obs)                                                                     \
    {                                                                                              \
        k, s, steps, MU_ARRAY_LEN(steps), obs                                                      \
    }
static const struct kind_def kinds[] = {
    KIND("vm.create", "create", create_steps, "running"),
    KIND("vm.start", "start", start_steps, "running"),
    KIND("vm.stop", "stop", stop_steps, "shutoff"),
    KIND("vm.reboot", "reboot", reboot_steps, "running"),
    KIND("vm.resize", "resize", resize_steps, NULL),
    KIND("vm.delete", "delete", delete_steps, NULL),
    KIND("net.filter", "filter", net_filter_steps, NULL),
};

static const struct kind_def *kind_find(const char *kind)
{
    for (size_t i = 0; kind && i < MU_ARRAY_LEN(kinds); i++)
        if (strcmp(kinds[i].kind, kind) == 0)
            return &kinds[i];
    return NULL;
}

static void fault(const struct kind_def *k, const char *when, const char *step)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s_%s", k->short_name, when, step);
    mu_fault_point(name);
}

/* ---- outcome ------------------------------------------------------------------------------ */

static int64_t elapsed_ms(const struct mu_op *op)
{
    return op->created_ms > 0 ? mu_now_ms() - op->created_ms : 0;
}

void mu_ops_fail_op(struct mu_ops *ops, const struct mu_op *op, const char *error)
{
    struct mu_err err = {0};
    if (mu_store_op_finish(ops->store, op->id, false, error, &err) < 0)
        mu_log_error("cannot record a failed operation id=%lld error=\"%s\"", (long long)op->id,
                     err.detail);
    mu_log_warn("operation finished id=%lld kind=%s vm=%lld ms=%lld outcome=failed error=\"%s\"",
                (long long)op->id, op->kind, (long long)op->vm_id, (long long)elapsed_ms(op),
                error);
}

/* A failed operation: the VM's observed state says what is there now and carries the
 * error (a create that gave up before its domain ran is "error"). */
static void finish_failed(struct step_ctx *c, const struct kind_def *k, const char *msg)
{
    struct mu_err err = {0};
    enum mu_virt_state st = MU_VIRT_OTHER;
    const char *obs = "error";

    if (c->vm.id > 0 && mu_virt_domain_state(c->w->conn, c->vm.uuid, &st, &err) == 0 &&
        !(st == MU_VIRT_ABSENT && strcmp(k->short_name, "create") == 0))
        obs = mu_ops_observed_of(st);
    mu_err_clear(&err);
    if (c->vm.id > 0 && mu_store_vm_set_observed(c->ops->store, c->vm.id, obs, msg, &err) < 0)
        mu_log_warn("cannot record observed state vm=%lld error=\"%s\"", (long long)c->vm.id,
                    err.detail);
    mu_ops_fail_op(c->ops, c->op, msg);
}

/* Transient errors (node unreachable, I/O) are retried with backoff until the deadline;
 * anything else (bad input, missing image) fails at once. */
static void step_failed(struct step_ctx *c, const struct kind_def *k, const char *step, int rc,
                        const struct mu_err *err)
{
    const struct mu_op *op = c->op;
    const char *detail = err->detail[0] ? err->detail : mu_err_name(rc);
    char msg[800];

    if (rc == MU_EUNAVAIL || rc == MU_EIO || rc == MU_EBUSY) {
        int64_t attempts = op->attempts + 1;
        int64_t backoff = op->attempts >= 6 ? BACKOFF_MAX_MS : BACKOFF_MIN_MS << op->attempts;
        /* The operation's own deadline, and never later than op_timeout_ms after it was
         * asked for. */
        int64_t deadline = op->deadline_ms > 0 ? op->deadline_ms : INT64_MAX;
        if (op->created_ms > 0 && op->created_ms + c->ops->op_timeout_ms < deadline)
            deadline = op->created_ms + c->ops->op_timeout_ms;
        if (backoff > BACKOFF_MAX_MS)
            backoff = BACKOFF_MAX_MS;
        int64_t next = mu_now_ms() + backoff;
        if (next <= deadline) {
            struct mu_err e = {0};
            snprintf(msg, sizeof msg, "step %s: %s", step, detail);
            if (mu_store_op_retry(c->ops->store, op->id, next, msg, &e) < 0) {
                /* Left due: the dispatcher hands it out again on its next tick. */
                mu_log_error("cannot schedule a retry id=%lld error=\"%s\"", (long long)op->id,
                             e.detail);
                return;
            }
            mu_log_warn("operation step failed, will retry id=%lld kind=%s vm=%lld step=%s "
                        "attempt=%lld retry_ms=%lld error=\"%s\"",
                        (long long)op->id, op->kind, (long long)op->vm_id, step,
                        (long long)attempts, (long long)backoff, detail);
            return;
        }
        snprintf(msg, sizeof msg, "step %s failed after %lld attempts: %s", step,
                 (long long)attempts, detail);
    } else {
        snprintf(msg, sizeof msg, "step %s failed: %s", step, detail);
    }
    finish_failed(c, k, msg);
}

static void succeed(struct step_ctx *c, const struct kind_def *k)
{
    struct mu_err err = {0};
    const char *obs = k->observed;
    enum mu_virt_state st;

    if (strcmp(k->short_name, "resize") == 0) {
        obs = "shutoff";
        if (mu_virt_domain_state(c->w->conn, c->vm.uuid, &st, &err) == 0)
            obs = mu_ops_observed_of(st);
        mu_err_clear(&err);
    }
    /* Observed first: whoever sees the operation succeeded finds the VM in its new state. */
    if (obs && mu_store_vm_set_observed(c->ops->store, c->vm.id, obs, NULL, &err) < 0) {
        mu_log_warn("cannot record observed state vm=%lld error=\"%s\"", (long long)c->vm.id,
                    err.detail);
        mu_err_clear(&err);
    }
    if (mu_store_op_finish(c->ops->store, c->op->id, true, NULL, &err) < 0) {
        /* Still running in the store: it is dispatched again and its steps are redone. */
        mu_log_error("cannot record a finished operation id=%lld error=\"%s\"",
                     (long long)c->op->id, err.detail);
        return;
    }
    mu_log_info("operation finished id=%lld kind=%s vm=%lld ms=%lld outcome=succeeded",
                (long long)c->op->id, c->op->kind, (long long)c->op->vm_id,
                (long long)elapsed_ms(c->op));
}

/* ---- the runner ---------------------------------------------------------------------------- */

/* {"network_id": N} of a net.filter operation (strict: nothing else). */
static int op_network_id(const struct mu_op *op, int64_t *ret, struct mu_err *err)
{
    static const char *const allowed[] = {"network_id", NULL};
    const char *p = op->params_json ? op->params_json : "";
    cJSON *j = mu_json_parse(p, strlen(p), "operation parameters", err);
    if (!j)
        return MU_EINVAL;
    int rc = mu_json_expect_object(j, allowed, "operation parameters", err);
    if (rc == 0)
        rc = mu_json_get_i64(j, "network_id", true, 1, INT64_MAX, ret, err);
    cJSON_Delete(j);
    return rc;
}

void mu_ops_run_op(struct mu_ops *ops, struct mu_ops_worker *w, const struct mu_op *op)
{
    const struct kind_def *k = kind_find(op->kind);
    struct step_ctx c = {.ops = ops, .w = w, .op = op};
    struct mu_err err = {0};
    size_t first = 0;
    int rc;

    if (!k) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown operation kind \"%.64s\"", op->kind ? op->kind : "");
        mu_ops_fail_op(ops, op, msg);
        return;
    }
    if (strcmp(k->kind, "net.filter") == 0) {
        /* Not a VM's operation: params {"network_id":N} name the network. */
        rc = op_network_id(op, &c.network_id, &err);
        if (rc < 0) {
            char msg[400];
            snprintf(msg, sizeof msg, "bad parameters: %.300s", err.detail);
            mu_ops_fail_op(ops, op, msg);
            return;
        }
    } else {
        rc = mu_store_vm_get(ops->store, op->vm_id, &c.vm, &err);
    }
    if (rc == MU_ENOTFOUND && strcmp(k->short_name, "delete") == 0) {
        /* Purged already (a crash after the purge, before its record): done. */
        if (mu_store_op_finish(ops->store, op->id, true, NULL, &err) == 0)
            mu_log_info("operation finished id=%lld kind=%s vm=%lld ms=%lld outcome=succeeded",
                        (long long)op->id, op->kind, (long long)op->vm_id,
                        (long long)elapsed_ms(op));
        return;
    }
    if (rc == MU_ENOTFOUND) {
        mu_ops_fail_op(ops, op, "the VM no longer exists");
        return;
    }
    if (rc == 0)
        rc = mu_store_node_get(ops->store, op->node_id, &c.node, &err);
    if (rc < 0) {
        step_failed(&c, k, "load", rc, &err);
        goto out;
    }
    if (op->step && op->step[0]) {
        for (first = 0; first < k->n && strcmp(k->steps[first].name, op->step) != 0; first++)
            ;
        if (first == k->n) {
            char msg[160];
            snprintf(msg, sizeof msg, "unknown recorded step \"%.64s\"", op->step);
            finish_failed(&c, k, msg);
            goto out;
        }
        first++;
    }
    if (first == 0)
        fault(k, "before", k->steps[0].name);
    for (size_t i = first; i < k->n; i++) {
        const char *name = k->steps[i].name;
        mu_err_clear(&err);
        rc = k->steps[i].fn(&c, &err);
        if (rc == 0) {
            fault(k, "after", name);
            rc = mu_store_op_step(ops->store, op->id, name, &err);
        }
        if (rc < 0) {
            step_failed(&c, k, name, rc, &err);
            goto out;
        }
        mu_log_debug("operation step done id=%lld kind=%s step=%s", (long long)op->id, op->kind,
                     name);
    }
    succeed(&c, k);
out:
    mu_vm_clear(&c.vm);
    mu_node_clear(&c.node);
    if (c.have_img)
        mu_image_clear(&c.img);
    free(c.nics);
}
