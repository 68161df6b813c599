/* Node health from agent reports (see health.h). */
#include "fleet/health.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mutualis/log.h"
#include "store/provision.h"
#include "store/telemetry.h"

#define DEFAULT_INTERVAL_MS 10000
#define DEFAULT_MISSED      3
#define DEFAULT_PRUNE_MS    300000
#define DAY_MS              ((int64_t)86400 * 1000)

struct mu_health {
    struct mu_store *store;
    int64_t interval_ms;
    unsigned missed;
    int64_t prune_every_ms;
    int64_t started_ms; /* wall clock: the controller's start counts as a last report */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;
    /* Serials whose alert is known to be in the audit trail (fired now or before): the
     * store is asked once per certificate, not at every pass. Guarded by mu. */
    char (*alerted)[MU_TELEMETRY_SERIAL_MAX];
    size_t nalerted, alerted_cap;
};

static struct mu_audit_rec health_rec(void)
{
    return (struct mu_audit_rec){
        .actor = "health", .role = "", .action = "node.health", .outcome = "ok", .request_id = ""};
}

/* The node's VMs are no longer observed: "unknown" until a report or a probe says more. */
static void vms_unknown(struct mu_health *h, const struct mu_node_liveness *l)
{
    struct mu_vm_filter f = {.node_id = l->id, .limit = 0};
    struct mu_vm *vms = NULL;
    size_t n = 0;
    struct mu_err err = {0};
    char why[128];

    if (mu_store_vm_list(h->store, &f, &vms, &n, &err) < 0) {
        mu_log_warn("cannot list the VMs of a node that went down node=%s error=\"%s\"", l->name,
                    err.detail);
        return;
    }
    snprintf(why, sizeof why, "node %s stopped reporting", l->name);
    for (size_t i = 0; i < n; i++) {
        const char *o = vms[i].observed_state;
        if (strcmp(o, "pending") == 0 || strcmp(o, "deleted") == 0 || strcmp(o, "unknown") == 0)
            continue;
        struct mu_err e = {0};
        if (mu_store_vm_set_observed(h->store, vms[i].id, "unknown", why, &e) < 0)
            mu_log_warn("cannot mark a VM unknown vm=%" PRId64 " error=\"%s\"", vms[i].id,
                        e.detail);
    }
    mu_vms_free(vms, n);
}

int mu_health_check(struct mu_health *h, int64_t now_ms, struct mu_err *err)
{
    struct mu_node_liveness *ls = NULL;
    size_t n = 0;
    int down = 0;
    int rc = mu_store_node_liveness(h->store, &ls, &n, err);

    if (rc < 0)
        return rc;
    int64_t limit = h->interval_ms * h->missed;
    for (size_t i = 0; i < n; i++) {
        const struct mu_node_liveness *l = &ls[i];
        int64_t since = l->last_report_ms > h->started_ms ? l->last_report_ms : h->started_ms;
        if (strcmp(l->health, "down") == 0 || now_ms - since < limit)
            continue;
        char why[96];
        snprintf(why, sizeof why, "no report for %" PRId64 " s", (now_ms - since) / 1000);
        struct mu_audit_rec rec = health_rec();
        bool changed = false;
        struct mu_err e = {0};
        /* Only if no report was stored since the list was read: a report wins. */
        if (mu_store_node_health_set(h->store, l->id, "down", now_ms, l->last_report_ms, why, &rec,
                                     &changed, &e) < 0) {
            mu_log_warn("cannot record a node's health node=%s error=\"%s\"", l->name, e.detail);
            continue;
        }
        if (!changed)
            continue;
        down++;
        mu_log_warn("node down: no report node=%s last_report_ms=%" PRId64 " missed=%u", l->name,
                    l->last_report_ms, h->missed);
        vms_unknown(h, l);
    }
    free(ls);
    return down;
}

int64_t mu_health_cert_days_left(int64_t not_after_ms, int64_t now_ms)
{
    int64_t left = not_after_ms - now_ms;
    /* Floor division: 1 ms past the expiry is day -1, not day 0. */
    return left >= 0 ? left / DAY_MS : -((-left + DAY_MS - 1) / DAY_MS);
}

bool mu_health_cert_expiring(int64_t not_after_ms, int64_t now_ms)
{
    return not_after_ms - now_ms <= (int64_t)MU_CERT_ALERT_DAYS * DAY_MS;
}

static bool alerted(const struct mu_health *h, const char *serial)
{
    for (size_t i = 0; i < h->nalerted; i++)
        if (strcmp(h->alerted[i], serial) == 0)
            return true;
    return false;
}

static void alerted_add(struct mu_health *h, const char *serial)
{
    if (h->nalerted == h->alerted_cap) {
        h->alerted_cap = h->alerted_cap ? h->alerted_cap * 2 : 16;
        h->alerted = mu_xrealloc(h->alerted, h->alerted_cap * sizeof *h->alerted);
    }
    snprintf(h->alerted[h->nalerted++], MU_TELEMETRY_SERIAL_MAX, "%s", serial);
}

int mu_health_check_certs(struct mu_health *h, int64_t now_ms, struct mu_err *err)
{
    struct mu_node_cert_current *cs = NULL;
    size_t n = 0;
    int fired_n = 0;
    int rc = mu_store_node_certs_expiring(
        h->store, now_ms + (int64_t)MU_CERT_ALERT_DAYS * DAY_MS + 1, &cs, &n, err);

    if (rc < 0)
        return rc;
    pthread_mutex_lock(&h->mu); /* the alerted set: the thread's, and a test's */
    for (size_t i = 0; i < n; i++) {
        const struct mu_node_cert *c = &cs[i].cert;
        if (!mu_health_cert_expiring(c->not_after_ms, now_ms) || alerted(h, c->serial))
            continue;
        int64_t days = mu_health_cert_days_left(c->not_after_ms, now_ms);
        char until[40], detail[160];
        mu_format_time(c->not_after_ms, until, sizeof until);
        if (days >= 0)
            snprintf(detail, sizeof detail, "certificate %s expires in %" PRId64 " days (%s)",
                     c->serial, days, until);
        else
            snprintf(detail, sizeof detail, "certificate %s expired %" PRId64 " days ago (%s)",
                     c->serial, -days, until);
        struct mu_audit_rec rec = {.actor = "alerts",
                                   .role = "",
                                   .action = "alert.fire",
                                   .outcome = "ok",
                                   .request_id = "",
                                   .detail = detail};
        bool fired = false;
        struct mu_err e = {0};
        if (mu_store_node_cert_alert(h->store, c, detail, &rec, &fired, &e) < 0) {
            mu_log_warn("cannot record a certificate alert node=%s serial=%s error=\"%s\"",
                        cs[i].node, c->serial, e.detail);
            continue;
        }
        alerted_add(h, c->serial);
        if (!fired)
            continue;
        fired_n++;
        mu_log_warn("alert certificate-expiring node=%s serial=%s not_after=%s days_left=%" PRId64,
                    cs[i].node, c->serial, until, days);
    }
    pthread_mutex_unlock(&h->mu);
    free(cs);
    return fired_n;
}

/* Right after a start nothing is known of any agent's node. */
static void mark_unknown(struct mu_health *h)
{
    struct mu_node_liveness *ls = NULL;
    size_t n = 0;
    struct mu_err err = {0};

    if (mu_store_node_liveness(h->store, &ls, &n, &err) < 0) {
        mu_log_warn("cannot list agent nodes at start error=\"%s\"", err.detail);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct mu_audit_rec rec = health_rec();
        struct mu_err e = {0};
        if (strcmp(ls[i].health, "unknown") != 0 &&
            mu_store_node_health_set(h->store, ls[i].id, "unknown", h->started_ms, -1,
                                     "controller started", &rec, NULL, &e) < 0)
            mu_log_warn("cannot record a node's health node=%s error=\"%s\"", ls[i].name, e.detail);
    }
    free(ls);
}

static void *health_main(void *arg)
{
    struct mu_health *h = arg;
    int64_t period = h->interval_ms / 4;
    int64_t next_prune = mu_mono_ms() + (h->prune_every_ms > 0 ? h->prune_every_ms : 0);
    int64_t next_certs = mu_mono_ms() + h->interval_ms; /* once per interval */

    if (period < 50)
        period = 50;
    if (period > 1000)
        period = 1000;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)period * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&h->cond, &h->mu, &ts);
        if (h->stopping)
            break;
        pthread_mutex_unlock(&h->mu);
        struct mu_err err = {0};
        if (mu_health_check(h, mu_now_ms(), &err) < 0)
            mu_log_warn("health check failed error=\"%s\"", err.detail);
        if (mu_mono_ms() >= next_certs) {
            struct mu_err e = {0};
            if (mu_health_check_certs(h, mu_now_ms(), &e) < 0)
                mu_log_warn("certificate check failed error=\"%s\"", e.detail);
            next_certs = mu_mono_ms() + h->interval_ms;
        }
        if (h->prune_every_ms > 0 && mu_mono_ms() >= next_prune) {
            int64_t deleted = 0;
            struct mu_err e = {0};
            if (mu_store_telemetry_prune(h->store, mu_now_ms(), &deleted, &e) < 0)
                mu_log_warn("telemetry prune failed error=\"%s\"", e.detail);
            else if (deleted > 0)
                mu_log_info("telemetry pruned rows=%" PRId64, deleted);
            next_prune = mu_mono_ms() + h->prune_every_ms;
        }
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

struct mu_health *mu_health_start(const struct mu_health_opts *opts, struct mu_err *err)
{
    if (!opts || !opts->store) {
        mu_err_set(err, MU_EINVAL, "the health monitor needs a store");
        return NULL;
    }
    struct mu_health *h = mu_xcalloc(1, sizeof *h);
    h->store = opts->store;
    h->interval_ms = opts->interval_ms > 0 ? opts->interval_ms : DEFAULT_INTERVAL_MS;
    h->missed = opts->missed ? opts->missed : DEFAULT_MISSED;
    h->prune_every_ms = opts->prune_every_ms == 0 ? DEFAULT_PRUNE_MS : opts->prune_every_ms;
    h->started_ms = mu_now_ms();
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &attr);
    pthread_condattr_destroy(&attr);
    mark_unknown(h);
    int e = pthread_create(&h->thread, NULL, health_main, h);
    if (e != 0) {
        mu_err_set(err, MU_EINTERNAL, "cannot start the health monitor: %s", strerror(e));
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    return h;
}

void mu_health_stop(struct mu_health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mu);
    free(h->alerted);
    free(h);
}
