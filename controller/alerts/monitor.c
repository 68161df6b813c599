/* The alert monitor (alerts.h): every interval, gathers the conditions of the enabled
 * rules from the store and the capacity code, steps the evaluator, and records the
 * transitions (store/alerts.h). Logs one line per transition. */
#include "alerts/alerts.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mutualis/log.h"
#include "mutualis/util.h"
#include "store/telemetry.h"

struct mu_alerts {
    struct mu_alerts_opts o;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* stop, and one pass at a time */
    pthread_cond_t cond;
    bool stop;
    struct mu_alert_track *tracks;
    size_t ntracks;
};

/* ---- gathering ------------------------------------------------------------------------ */

struct conds {
    struct mu_alert_cond *v;
    size_t n, cap;
    bool known[MU_ALERT_RULES];
};

static struct mu_alert_cond *cond_add(struct conds *cs, int rule, const char *subject)
{
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 32;
        cs->v = mu_xrealloc(cs->v, cs->cap * sizeof *cs->v);
    }
    struct mu_alert_cond *c = &cs->v[cs->n++];
    memset(c, 0, sizeof *c);
    c->rule = rule;
    snprintf(c->subject, sizeof c->subject, "%s", subject);
    return c;
}

/* What the policies say, copied out under their lock (with the tenants, whose effective
 * limits need the quota policy). */
struct polcopy {
    struct mu_store *store;
    struct mu_alert_policy alerts;
    struct mu_sched_policy placement;
    struct mu_alert_tenant *tenants;
    size_t ntenants;
    int tenants_rc;
    struct mu_err tenants_err;
};

static void copy_policies(void *arg, const struct mu_alert_policy *alerts,
                          const struct mu_sched_policy *placement,
                          const struct mu_quota_defaults *quota_defaults)
{
    struct polcopy *pc = arg;
    pc->alerts = *alerts;
    pc->placement = *placement;
    pc->tenants_rc = 0;
    if (pc->alerts.rules[MU_ALERT_TENANT_QUOTA_HIGH].enabled)
        pc->tenants_rc = mu_store_alert_tenants(pc->store, quota_defaults, &pc->tenants,
                                                &pc->ntenants, &pc->tenants_err);
}

static const char *const res_names[3] = {"vcpus", "ram_mib", "disk_gib"};
static const char *const res_words[3] = {"vCPU", "memory", "disk"};

static void fmt_amount(int k, int64_t v, char *out, size_t len)
{
    if (k == 1)
        mu_sched_format_mib(v, out, len);
    else if (k == 2)
        snprintf(out, len, "%" PRId64 " GiB", v);
    else
        snprintf(out, len, "%" PRId64, v);
}

static void gather_nodes(struct mu_alerts *a, const struct polcopy *pc, int64_t now_ms,
                         struct conds *cs)
{
    struct mu_node *ns = NULL;
    size_t n = 0;
    struct mu_err err = {0};
    const struct mu_alert_rule *rules = pc->alerts.rules;
    if (mu_store_node_list(a->o.store, &ns, &n, &err) < 0) {
        mu_log_warn("alerts: cannot read the nodes detail=\"%s\"", err.detail);
        cs->known[MU_ALERT_NODE_DOWN] = cs->known[MU_ALERT_ALLOCATION_HIGH] = false;
        cs->known[MU_ALERT_REPORTS_LATE] = false;
        return;
    }
    struct mu_sched_snapshot *snap = mu_sched_snapshot_new(n);
    for (size_t i = 0; i < n; i++) {
        const struct mu_node *nd = &ns[i];
        bool maint = strcmp(nd->op_state, "maintenance") == 0;
        char when[40];
        if (!maint && strcmp(nd->health, "down") == 0) {
            mu_format_time(nd->health_ms, when, sizeof when);
            struct mu_alert_cond *c = cond_add(cs, MU_ALERT_NODE_DOWN, nd->name);
            snprintf(c->detail, sizeof c->detail, "node %s is down (since %s)", nd->name,
                     nd->health_ms ? when : "the controller started");
        }
        int64_t late = rules[MU_ALERT_REPORTS_LATE].late_ms;
        if (!maint && nd->last_report_ms > 0 && strcmp(nd->health, "down") != 0 &&
            now_ms - nd->last_report_ms > late) {
            mu_format_time(nd->last_report_ms, when, sizeof when);
            struct mu_alert_cond *c = cond_add(cs, MU_ALERT_REPORTS_LATE, nd->name);
            snprintf(c->detail, sizeof c->detail,
                     "node %s: no agent report since %s (more than %" PRId64 " s)", nd->name, when,
                     late / 1000);
        }
        struct mu_sched_node *sn = mu_sched_snapshot_add_node(snap, nd->id, nd->name);
        sn->cpus = nd->cpus;
        sn->mem_mib = nd->mem_mib;
        sn->disk_gib = nd->disk_gib;
        sn->reserved_mem_mib = nd->reserved_mem_mib;
        sn->alloc_vcpus = nd->alloc_vcpus;
        sn->alloc_ram_mib = nd->alloc_ram_mib;
        sn->alloc_disk_gib = nd->alloc_disk_gib;
    }
    struct mu_sched_capacity all;
    mu_sched_cluster_capacity(snap, &pc->placement, &all, NULL);
    const struct mu_sched_resource *res[3] = {&all.vcpus, &all.ram_mib, &all.disk_gib};
    int64_t pct = rules[MU_ALERT_ALLOCATION_HIGH].percent;
    for (int k = 0; k < 3; k++) {
        const struct mu_sched_resource *r = res[k];
        if (r->allocatable <= 0 || r->allocated * 100 <= pct * r->allocatable)
            continue;
        char al[32], cap[32];
        fmt_amount(k, r->allocated, al, sizeof al);
        fmt_amount(k, r->allocatable, cap, sizeof cap);
        struct mu_alert_cond *c = cond_add(cs, MU_ALERT_ALLOCATION_HIGH, res_names[k]);
        snprintf(c->detail, sizeof c->detail,
                 "cluster %s allocation at %" PRId64 "%% of allocatable (%s of %s; threshold "
                 "%" PRId64 "%%)",
                 res_words[k], r->allocated * 100 / r->allocatable, al, cap, pct);
    }
    mu_sched_snapshot_free(snap);
    mu_nodes_free(ns, n);
}

static void gather_tenants(const struct polcopy *pc, struct conds *cs)
{
    int64_t pct = pc->alerts.rules[MU_ALERT_TENANT_QUOTA_HIGH].percent;
    for (size_t i = 0; i < pc->ntenants; i++) {
        const struct mu_alert_tenant *t = &pc->tenants[i];
        const int64_t lim[4] = {t->limits.vcpus, t->limits.ram_mib, t->limits.disk_gib,
                                t->limits.vms};
        const int64_t use[4] = {t->usage.vcpus, t->usage.ram_mib, t->usage.disk_gib, t->usage.vms};
        static const char *const words[4] = {"vCPU", "memory", "disk", "VMs"};
        char parts[MU_ALERT_DETAIL_MAX] = "";
        size_t len = 0;
        for (int k = 0; k < 4; k++) {
            if (lim[k] == MU_UNLIMITED || use[k] <= 0 || use[k] * 100 <= pct * lim[k])
                continue;
            char u[32], l[32];
            fmt_amount(k < 3 ? k : 0, use[k], u, sizeof u);
            fmt_amount(k < 3 ? k : 0, lim[k], l, sizeof l);
            int w =
                snprintf(parts + len, sizeof parts - len, "%s%s %s of %s (%" PRId64 "%%)",
                         len ? ", " : "", words[k], u, l, lim[k] > 0 ? use[k] * 100 / lim[k] : 100);
            if (w > 0)
                len = len + (size_t)w < sizeof parts ? len + (size_t)w : sizeof parts - 1;
        }
        if (!len)
            continue;
        char subject[32];
        snprintf(subject, sizeof subject, "tenant-%" PRId64, t->id);
        struct mu_alert_cond *c = cond_add(cs, MU_ALERT_TENANT_QUOTA_HIGH, subject);
        snprintf(c->detail, sizeof c->detail,
                 "%.80s (tenant %" PRId64 ") above %" PRId64 "%% of its quota: %.160s", t->name,
                 t->id, pct, parts);
    }
}

static void gather_certs(struct mu_alerts *a, const struct polcopy *pc, int64_t now_ms,
                         struct conds *cs)
{
    int64_t days = pc->alerts.rules[MU_ALERT_CERT_EXPIRING].days;
    struct mu_node_cert_current *certs = NULL;
    size_t n = 0;
    struct mu_err err = {0};
    if (mu_store_node_certs_expiring(a->o.store, now_ms + days * 86400000, &certs, &n, &err) < 0) {
        mu_log_warn("alerts: cannot read node certificates detail=\"%s\"", err.detail);
        cs->known[MU_ALERT_CERT_EXPIRING] = false;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char when[40];
        mu_format_time(certs[i].cert.not_after_ms, when, sizeof when);
        struct mu_alert_cond *c = cond_add(cs, MU_ALERT_CERT_EXPIRING, certs[i].node);
        int64_t left = certs[i].cert.not_after_ms - now_ms;
        if (left <= 0)
            snprintf(c->detail, sizeof c->detail, "node %s: certificate %s expired at %s",
                     certs[i].node, certs[i].cert.serial, when);
        else
            snprintf(c->detail, sizeof c->detail,
                     "node %s: certificate %s expires at %s (in %" PRId64 " days)", certs[i].node,
                     certs[i].cert.serial, when, left / 86400000);
    }
    free(certs);
}

static void gather(struct mu_alerts *a, struct polcopy *pc, int64_t now_ms, struct conds *cs)
{
    const struct mu_alert_rule *rules = pc->alerts.rules;
    for (int r = 0; r < MU_ALERT_RULES; r++)
        cs->known[r] = true;
    if (rules[MU_ALERT_NODE_DOWN].enabled || rules[MU_ALERT_ALLOCATION_HIGH].enabled ||
        rules[MU_ALERT_REPORTS_LATE].enabled)
        gather_nodes(a, pc, now_ms, cs);
    if (rules[MU_ALERT_TENANT_QUOTA_HIGH].enabled) {
        if (pc->tenants_rc < 0) {
            mu_log_warn("alerts: cannot read tenants' allocation detail=\"%s\"",
                        pc->tenants_err.detail);
            cs->known[MU_ALERT_TENANT_QUOTA_HIGH] = false;
        } else {
            gather_tenants(pc, cs);
        }
    }
    if (rules[MU_ALERT_CERT_EXPIRING].enabled)
        gather_certs(a, pc, now_ms, cs);
    if (rules[MU_ALERT_N_PLUS_1_LOST].enabled) {
        bool ok = true;
        char summary[MU_ALERT_DETAIL_MAX] = "";
        if (!a->o.n_plus_1 || a->o.n_plus_1(a->o.ctx, &ok, summary, sizeof summary) != 1)
            cs->known[MU_ALERT_N_PLUS_1_LOST] = false;
        else if (!ok)
            snprintf(cond_add(cs, MU_ALERT_N_PLUS_1_LOST, "cluster")->detail, MU_ALERT_DETAIL_MAX,
                     "N+1 lost: %.300s", summary);
    }
    if (rules[MU_ALERT_OPERATIONS_FAILING].enabled) {
        const struct mu_alert_rule *r = &rules[MU_ALERT_OPERATIONS_FAILING];
        int64_t failed = 0;
        struct mu_err err = {0};
        if (mu_store_alert_ops_failed(a->o.store, now_ms - r->window_ms, &failed, &err) < 0) {
            mu_log_warn("alerts: cannot count failed operations detail=\"%s\"", err.detail);
            cs->known[MU_ALERT_OPERATIONS_FAILING] = false;
        } else if (failed >= r->count) {
            snprintf(
                cond_add(cs, MU_ALERT_OPERATIONS_FAILING, "cluster")->detail, MU_ALERT_DETAIL_MAX,
                "%" PRId64 " operations failed in the last %" PRId64 " s (threshold %" PRId64 ")",
                failed, r->window_ms / 1000, r->count);
        }
    }
}

/* ---- one pass -------------------------------------------------------------------------- */

/* Holds that start or end without a transition: one line each, so that an operator (and a
 * test) sees a flapping condition that never fired. Both lists are sorted by key. */
static void log_holds(const struct mu_alert_policy *pol, const struct mu_alert_track *prev,
                      size_t nprev, const struct mu_alert_track *next, size_t nnext)
{
    size_t i = 0, j = 0;
    while (i < nprev || j < nnext) {
        int cmp = i >= nprev                     ? 1
                  : j >= nnext                   ? -1
                  : prev[i].rule != next[j].rule ? (prev[i].rule < next[j].rule ? -1 : 1)
                                                 : strcmp(prev[i].subject, next[j].subject);
        if (cmp < 0 && prev[i].phase == MU_ALERT_PENDING)
            mu_log_info("alert hold ended before firing rule=%s subject=%s",
                        mu_alert_rule_name(prev[i].rule), prev[i].subject);
        if (cmp > 0 && next[j].phase == MU_ALERT_PENDING)
            mu_log_info("alert hold started rule=%s subject=%s for_s=%" PRId64,
                        mu_alert_rule_name(next[j].rule), next[j].subject,
                        pol->rules[next[j].rule].for_ms / 1000);
        i += cmp <= 0;
        j += cmp >= 0;
    }
}

static int pass_locked(struct mu_alerts *a, int64_t now_ms, struct mu_err *err)
{
    struct polcopy pc = {.store = a->o.store};
    struct conds cs = {0};
    a->o.with_policies(a->o.ctx, copy_policies, &pc);
    gather(a, &pc, now_ms, &cs);

    struct mu_alert_track *next = NULL;
    struct mu_alert_transition *tr = NULL;
    size_t nnext = 0, ntr = 0;
    mu_alert_step(&pc.alerts, cs.v, cs.n, cs.known, a->tracks, a->ntracks, now_ms, &next, &nnext,
                  &tr, &ntr);
    log_holds(&pc.alerts, a->tracks, a->ntracks, next, nnext);
    int recorded = 0, rc = 0;
    size_t extra = 0; /* resolutions that could not be recorded go back into next */
    for (size_t i = 0; i < ntr; i++) {
        struct mu_alert_track *t = &tr[i].track;
        const char *rule = mu_alert_rule_name(t->rule);
        const char *sev = mu_alert_severity_name(pc.alerts.rules[t->rule].severity);
        struct mu_err e = {0};
        if (tr[i].change == MU_ALERT_FIRE) {
            struct mu_alert row = {.rule = (char *)rule,
                                   .subject = t->subject,
                                   .severity = (char *)sev,
                                   .detail = t->detail,
                                   .pending_ms = t->pending_ms,
                                   .since_ms = t->since_ms};
            int64_t id = 0;
            if (mu_store_alert_fire(a->o.store, &row, &id, &e) == 0) {
                next[tr[i].next_index].id = id;
                recorded++;
                mu_log_warn("alert firing rule=%s subject=%s severity=%s id=%" PRId64
                            " detail=\"%s\"",
                            rule, t->subject, sev, id, t->detail);
            } else {
                /* Not recorded: stays pending (already due), tried again next pass. */
                next[tr[i].next_index].phase = MU_ALERT_PENDING;
                rc = rc ? rc : e.code;
                if (err && !err->code)
                    *err = e;
            }
        } else {
            if (t->id == 0 ||
                mu_store_alert_resolve(a->o.store, t->id, now_ms, t->detail, &e) == 0 ||
                e.code == MU_ENOTFOUND) {
                recorded += t->id ? 1 : 0;
                mu_log_info("alert resolved rule=%s subject=%s id=%" PRId64, rule, t->subject,
                            t->id);
            } else {
                next = mu_xrealloc(next, (nnext + extra + 1) * sizeof *next);
                next[nnext + extra++] = *t;
                rc = rc ? rc : e.code;
                if (err && !err->code)
                    *err = e;
            }
        }
    }
    nnext += extra;

    /* last_eval_ms of the firing rows, and their detail as seen now. */
    size_t nf = 0;
    int64_t *ids = mu_xcalloc(nnext + 1, sizeof *ids);
    const char **details = mu_xcalloc(nnext + 1, sizeof *details);
    for (size_t i = 0; i < nnext; i++)
        if (next[i].id > 0 && next[i].phase == MU_ALERT_FIRING) {
            ids[nf] = next[i].id;
            details[nf++] = next[i].detail;
        }
    struct mu_err e = {0};
    bool any_firing = false;
    for (size_t i = 0; i < nnext; i++)
        any_firing = any_firing || next[i].id > 0;
    if (any_firing && mu_store_alert_touch(a->o.store, now_ms, ids, details, nf, &e) < 0)
        mu_log_warn("alerts: cannot record the pass detail=\"%s\"", e.detail);
    free(ids);
    free(details);

    free(a->tracks);
    a->tracks = next;
    a->ntracks = nnext;
    free(tr);
    free(cs.v);
    free(pc.tenants);
    return rc < 0 ? rc : recorded;
}

int mu_alerts_pass(struct mu_alerts *a, int64_t now_ms, struct mu_err *err)
{
    pthread_mutex_lock(&a->lock);
    int r = pass_locked(a, now_ms, err);
    pthread_mutex_unlock(&a->lock);
    return r;
}

/* ---- the thread ----------------------------------------------------------------------- */

static void *alerts_main(void *arg)
{
    struct mu_alerts *a = arg;
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        struct mu_err err = {0};
        if (pass_locked(a, mu_now_ms(), &err) < 0)
            mu_log_warn("alerts: a transition could not be recorded, tried again next pass "
                        "detail=\"%s\"",
                        err.detail);
        if (a->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (a->o.interval_ms % 1000) * 1000000;
        ts.tv_sec += (time_t)(a->o.interval_ms / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&a->cond, &a->lock, &ts);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* The firing rows become FIRING tracks: their holds resume from the store. */
static int load_firing(struct mu_alerts *a, struct mu_err *err)
{
    struct mu_alert_filter f = {.state = "firing"};
    struct mu_alert *rows = NULL;
    size_t n = 0;
    int rc = mu_store_alert_list(a->o.store, &f, &rows, &n, err);
    if (rc < 0)
        return rc;
    a->tracks = mu_xcalloc(n + 1, sizeof *a->tracks);
    for (size_t i = 0; i < n; i++) {
        int rule = mu_alert_rule_from_name(rows[i].rule);
        if (rule < 0)
            continue; /* a rule this version does not know: left as recorded */
        struct mu_alert_track *t = &a->tracks[a->ntracks++];
        t->rule = rule;
        snprintf(t->subject, sizeof t->subject, "%s", rows[i].subject);
        snprintf(t->detail, sizeof t->detail, "%s", rows[i].detail);
        t->phase = MU_ALERT_FIRING;
        t->pending_ms = rows[i].pending_ms;
        t->since_ms = rows[i].since_ms;
        t->id = rows[i].id;
    }
    mu_alerts_free(rows, n);
    return 0;
}

struct mu_alerts *mu_alerts_start(const struct mu_alerts_opts *opts, struct mu_err *err)
{
    if (!opts->store || !opts->with_policies) {
        mu_err_set(err, MU_EINVAL, "the alert monitor needs a store and the policies");
        return NULL;
    }
    struct mu_alerts *a = mu_xcalloc(1, sizeof *a);
    a->o = *opts;
    if (a->o.interval_ms <= 0)
        a->o.interval_ms = 10000;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    if (load_firing(a, err) < 0)
        goto fail;
    if (!opts->no_thread) {
        if (pthread_create(&a->thread, NULL, alerts_main, a) != 0) {
            mu_err_set(err, MU_EINTERNAL, "cannot start the alert monitor thread");
            goto fail;
        }
        a->started = true;
    }
    return a;
fail:
    free(a->tracks);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    free(a);
    return NULL;
}

void mu_alerts_stop(struct mu_alerts *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
    if (a->started)
        pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    free(a->tracks);
    free(a);
}
