/* The readiness prober (catalog.h): provisioning requests become ready once their guest
 * answers on the item's port, or failed with the reason. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "mutualis/log.h"
#include "mutualis/util.h"
#include "store/provision.h" /* before network.h, which uses its types */
#include "store/network.h"
#include "store/requests.h"

int mu_catalog_probe_tcp(const char *ip, int port, int64_t timeout_ms, struct mu_err *err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd, rc;
    if (!ip || inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
        return mu_err_set(err, MU_EINVAL, "\"%s\" is not an IPv4 address", ip ? ip : "");
    if (port < 1 || port > 65535)
        return mu_err_set(err, MU_EINVAL, "port %d is not a TCP port", port);
    sa.sin_port = htons((uint16_t)port);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mu_err_set(err, MU_EUNAVAIL, "cannot open a socket: %s", strerror(errno));
    rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n;
        do
            n = poll(&p, 1, (int)timeout_ms);
        while (n < 0 && errno == EINTR);
        if (n == 0) {
            close(fd);
            return mu_err_set(err, MU_EUNAVAIL, "%s:%d did not answer within %lld ms", ip, port,
                              (long long)timeout_ms);
        }
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            soerr = errno;
        rc = soerr ? -1 : 0;
        errno = soerr;
    }
    int saved = errno;
    close(fd);
    if (rc < 0)
        return mu_err_set(err, MU_EUNAVAIL, "%s:%d: %s", ip, port, strerror(saved));
    return 0;
}

#define MU_PROBER_RECOVER_MS (60 * 1000)

struct backoff {
    int64_t id;
    int64_t next_ms;
    int64_t delay_ms;
    bool seen;
};

struct mu_prober {
    struct mu_prober_opts o;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
    struct backoff *b;
    size_t nb, capb;
};

static int64_t now_of(const struct mu_prober *p)
{
    return p->o.now_ms ? p->o.now_ms() : mu_now_ms();
}

static struct backoff *backoff_of(struct mu_prober *p, int64_t id)
{
    for (size_t i = 0; i < p->nb; i++)
        if (p->b[i].id == id)
            return &p->b[i];
    if (p->nb == p->capb) {
        p->capb = p->capb ? p->capb * 2 : 16;
        p->b = mu_xrealloc(p->b, p->capb * sizeof *p->b);
    }
    p->b[p->nb] = (struct backoff){.id = id, .delay_ms = p->o.interval_ms};
    return &p->b[p->nb++];
}

static int finish(struct mu_prober *p, const struct mu_request *r, bool ok, const char *reason,
                  struct mu_err *err)
{
    struct mu_audit_rec rec = {.actor = "mutualisd",
                               .role = "",
                               .action = ok ? "request.ready" : "request.failed",
                               .outcome = "ok",
                               .request_id = "prober",
                               .detail = reason};
    struct mu_request_change ch = {
        .from = "provisioning", .to = ok ? "ready" : "failed", .reason = reason};
    int rc = mu_store_request_change(p->o.store, r->id, &ch, &rec, err);
    if (rc == MU_ECONFLICT) { /* someone else moved it: nothing to do */
        mu_err_clear(err);
        return 0;
    }
    return rc < 0 ? rc : 1;
}

/* Where to reach the VM: its public NIC if any, else its first NIC. "" if none. */
static int vm_address(struct mu_store *st, int64_t vm_id, char ip[MU_IPV4_TEXT_MAX],
                      struct mu_err *err)
{
    struct mu_nic *nics = NULL;
    size_t n = 0;
    ip[0] = '\0';
    int rc = mu_store_vm_nics(st, vm_id, &nics, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && !ip[0]; i++)
        if (nics[i].public_addr)
            snprintf(ip, MU_IPV4_TEXT_MAX, "%s", nics[i].ip);
    if (!ip[0] && n > 0)
        snprintf(ip, MU_IPV4_TEXT_MAX, "%s", nics[0].ip);
    free(nics);
    return 0;
}

/* One request: 1 if its status changed, 0 if not yet, < 0 on a store failure. */
static int probe_one(struct mu_prober *p, const struct mu_request *r, int64_t now,
                     struct mu_err *err)
{
    struct mu_vm vm = {0};
    struct mu_op op = {0};
    char reason[600];
    int rc = mu_store_vm_get(p->o.store, r->vm_id, &vm, err);
    if (rc == MU_ENOTFOUND) {
        mu_err_clear(err);
        return finish(p, r, false, "the VM was deleted before the app was ready", err);
    }
    if (rc < 0)
        return rc;
    bool deleted = strcmp(vm.desired_state, "deleted") == 0;
    mu_vm_clear(&vm);
    if (deleted)
        return finish(p, r, false, "the VM is being deleted", err);
    bool op_failed, op_done;
    if (r->op_id > 0) {
        rc = mu_store_op_get(p->o.store, r->op_id, &op, err);
        if (rc < 0)
            return rc;
        op_failed = strcmp(op.state, "failed") == 0;
        op_done = strcmp(op.state, "succeeded") == 0;
        snprintf(reason, sizeof reason, "provisioning failed: %s",
                 op.error ? op.error : "no detail");
        mu_op_clear(&op);
    } else { /* recovered after a restart (recover_one): the VM's observed state tells */
        rc = mu_store_vm_get(p->o.store, r->vm_id, &vm, err);
        if (rc < 0)
            return rc;
        op_failed = strcmp(vm.observed_state, "error") == 0;
        op_done = strcmp(vm.observed_state, "running") == 0;
        snprintf(reason, sizeof reason, "provisioning failed: %s",
                 vm.last_error ? vm.last_error : "no detail");
        mu_vm_clear(&vm);
    }
    if (op_failed)
        return finish(p, r, false, reason, err);
    if (now > r->ready_deadline_ms) {
        snprintf(reason, sizeof reason,
                 "the app did not answer on port %d before the deadline (%s)", r->probe_port,
                 op_done ? "the VM was created" : "the VM was still being created");
        return finish(p, r, false, reason, err);
    }
    if (!op_done)
        return 0;
    char ip[MU_IPV4_TEXT_MAX];
    if ((rc = vm_address(p->o.store, r->vm_id, ip, err)) < 0)
        return rc;
    if (!ip[0])
        return 0; /* no address to probe: the deadline decides */
    int64_t timeout = p->o.probe_timeout_ms;
    bool allowed = true;
    if (p->o.catalog && p->o.lock) {
        pthread_rwlock_rdlock(p->o.lock);
        allowed = mu_catalog_probe_allowed(*p->o.catalog, ip);
        if (*p->o.catalog && (*p->o.catalog)->probe_timeout_ms > 0)
            timeout = (*p->o.catalog)->probe_timeout_ms;
        pthread_rwlock_unlock(p->o.lock);
    }
    if (!allowed)
        return 0; /* outside readiness.probe_networks: the deadline decides */
    struct mu_err perr = {0};
    if (mu_catalog_probe_tcp(ip, r->probe_port, timeout, &perr) == 0)
        return finish(p, r, true, NULL, err);
    return 0;
}

/* A request left "approved" longer than MU_PROBER_RECOVER_MS: the controller stopped
 * between the approval and the admission's outcome. The VM admitted for it (named
 * "req-<id>-<item>" in its tenant) is attached and watched like any other; with none, the
 * request fails and says so. 1 if changed, 0 if not yet due, < 0 on a store failure. */
static int recover_one(struct mu_prober *p, const struct mu_request *r, int64_t now,
                       struct mu_err *err)
{
    if (now - r->updated_ms < MU_PROBER_RECOVER_MS)
        return 0;
    char name[64];
    snprintf(name, sizeof name, "req-%lld-%s", (long long)r->id, r->item);
    struct mu_vm_filter vf = {.tenant_id = r->tenant_id};
    struct mu_vm *vms = NULL;
    size_t n = 0;
    int64_t vm_id = 0;
    int rc = mu_store_vm_list(p->o.store, &vf, &vms, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (vms[i].tenant_id == r->tenant_id && strcmp(vms[i].name, name) == 0 &&
            strcmp(vms[i].desired_state, "deleted") != 0)
            vm_id = vms[i].id;
    mu_vms_free(vms, n);
    int port = 0;
    int64_t deadline = 600 * 1000;
    if (p->o.catalog && p->o.lock) {
        pthread_rwlock_rdlock(p->o.lock);
        const struct mu_catalog_item *it = mu_catalog_find(*p->o.catalog, r->item);
        if (it)
            port = it->ports[0];
        if (*p->o.catalog)
            deadline = (*p->o.catalog)->ready_deadline_ms;
        pthread_rwlock_unlock(p->o.lock);
    }
    struct mu_audit_rec rec = {.actor = "mutualisd",
                               .role = "",
                               .action = vm_id && port ? "request.provisioning" : "request.failed",
                               .outcome = "ok",
                               .request_id = "prober"};
    struct mu_request_change ch = {.from = "approved"};
    if (vm_id && port) {
        ch.to = "provisioning";
        ch.vm_id = vm_id;
        ch.probe_port = port;
        ch.ready_deadline_ms = now + deadline;
    } else {
        ch.to = "failed";
        ch.reason = vm_id ? "the approval was interrupted and the item is no longer in the "
                            "catalogue"
                          : "the approval was interrupted (controller restart) before the VM "
                            "was admitted: file the request again";
        rec.detail = ch.reason;
    }
    rc = mu_store_request_change(p->o.store, r->id, &ch, &rec, err);
    if (rc == MU_ECONFLICT) {
        mu_err_clear(err);
        return 0;
    }
    return rc < 0 ? rc : 1;
}

int mu_prober_pass(struct mu_prober *p, struct mu_err *err)
{
    struct mu_request_filter af = {.status = "approved"};
    struct mu_request *as = NULL;
    size_t na = 0;
    int recovered = 0;
    if (mu_store_request_list(p->o.store, &af, &as, &na, err) < 0)
        return err->code;
    for (size_t i = 0; i < na; i++) {
        int r = recover_one(p, &as[i], now_of(p), err);
        if (r < 0) {
            mu_requests_free(as, na);
            return r;
        }
        recovered += r;
    }
    mu_requests_free(as, na);

    struct mu_request_filter f = {.status = "provisioning"};
    struct mu_request *rs = NULL;
    size_t n = 0;
    int changed = 0, rc = mu_store_request_list(p->o.store, &f, &rs, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < p->nb; i++)
        p->b[i].seen = false;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        struct backoff *b = backoff_of(p, rs[i].id);
        int64_t now = now_of(p);
        b->seen = true;
        if (now < b->next_ms && now <= rs[i].ready_deadline_ms)
            continue;
        rc = probe_one(p, &rs[i], now, err);
        if (rc > 0) {
            changed++;
            b->seen = false;
        } else if (rc == 0) {
            b->next_ms = now_of(p) + b->delay_ms;
            b->delay_ms =
                b->delay_ms * 2 > p->o.backoff_max_ms ? p->o.backoff_max_ms : b->delay_ms * 2;
        }
    }
    /* forget the requests that left "provisioning" */
    size_t k = 0;
    for (size_t i = 0; i < p->nb; i++)
        if (p->b[i].seen)
            p->b[k++] = p->b[i];
    p->nb = k;
    mu_requests_free(rs, n);
    return rc < 0 ? rc : changed + recovered;
}

struct mu_prober *mu_prober_new(const struct mu_prober_opts *opts)
{
    struct mu_prober *p = mu_xcalloc(1, sizeof *p);
    p->o = *opts;
    if (p->o.interval_ms <= 0)
        p->o.interval_ms = 500;
    if (p->o.backoff_max_ms <= 0)
        p->o.backoff_max_ms = 10000;
    if (p->o.probe_timeout_ms <= 0)
        p->o.probe_timeout_ms = 1000;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    return p;
}

static void *prober_main(void *arg)
{
    struct mu_prober *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        pthread_mutex_unlock(&p->mu);
        struct mu_err err = {0};
        if (mu_prober_pass(p, &err) < 0)
            mu_log_warn("readiness pass failed detail=\"%s\"", err.detail);
        pthread_mutex_lock(&p->mu);
        if (p->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + p->o.interval_ms * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&p->cond, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct mu_prober *mu_prober_start(const struct mu_prober_opts *opts, struct mu_err *err)
{
    struct mu_prober *p = mu_prober_new(opts);
    int rc = pthread_create(&p->thread, NULL, prober_main, p);
    if (rc != 0) {
        mu_prober_stop(p);
        mu_err_set(err, MU_EIO, "cannot start the readiness prober: %s", strerror(rc));
        return NULL;
    }
    p->started = true;
    return p;
}

void mu_prober_stop(struct mu_prober *p)
{
    if (!p)
        return;
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cond);
    free(p->b);
    free(p);
}
