/* GET /v1/capacity: how full the data centre is, per node and for the cluster, under the
 * very rules placement applies (sched/: overcommit ratios, reserved memory, operator state
 * and health); what the agents report is really used; how many more VMs of each flavor fit
 * (closed form, mu_sched_headroom); whether the VMs of any one node would fit on the others
 * (N+1, mu_sched_n1_check, recomputed in the background by the capacity monitor when the
 * nodes or their allocation change); and each top-level tenant's allocation. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "mutualis/json.h"
#include "mutualis/log.h"
#include "mutualis/util.h"
#include "store/history.h"
#include "store/provision.h"
#include "store/telemetry.h"
#include "tenancy/quotas.h"

/* ---- the pure document -------------------------------------------------------------- */

static bool node_has_label(const struct mu_sched_node *n, const char *label)
{
    if (!label)
        return true;
    for (size_t i = 0; i < n->n_labels; i++)
        if (strcmp(n->labels[i], label) == 0)
            return true;
    return false;
}

static const char *op_state_name(enum mu_sched_op_state s)
{
    return s == MU_SCHED_OP_MAINTENANCE ? "maintenance"
           : s == MU_SCHED_OP_DRAINING  ? "draining"
                                        : "active";
}

static const char *health_name(enum mu_sched_health h)
{
    return h == MU_SCHED_HEALTH_UP ? "up" : h == MU_SCHED_HEALTH_DOWN ? "down" : "unknown";
}

/* {"physical", "allocatable", "allocated", "free", "used"}: used is a number when
 * have_used, else null. */
static cJSON *resource_json(const struct mu_sched_resource *r, bool have_used, double used)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "physical", r->physical);
    mu_json_add_i64(o, "allocatable", r->allocatable);
    mu_json_add_i64(o, "allocated", r->allocated);
    mu_json_add_i64(o, "free", r->free);
    if (have_used)
        cJSON_AddNumberToObject(o, "used", used);
    else
        mu_json_add_null(o, "used");
    return o;
}

static void add_res(struct mu_sched_resource *sum, const struct mu_sched_resource *r)
{
    sum->physical += r->physical;
    sum->allocatable += r->allocatable;
    sum->allocated += r->allocated;
    sum->free += r->free;
}

struct used_sum {
    size_t reporting;
    double cpus_busy;
    int64_t ram_mib, disk_gib;
};

static cJSON *capacity_sum_json(const struct mu_sched_capacity *c, size_t nodes,
                                const struct used_sum *u)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "nodes", (int64_t)nodes);
    mu_json_add_i64(o, "nodes_reporting", (int64_t)u->reporting);
    bool have = u->reporting > 0;
    cJSON_AddItemToObject(o, "vcpus", resource_json(&c->vcpus, have, u->cpus_busy));
    cJSON_AddItemToObject(o, "ram_mib", resource_json(&c->ram_mib, have, (double)u->ram_mib));
    cJSON_AddItemToObject(o, "disk_gib", resource_json(&c->disk_gib, have, (double)u->disk_gib));
    return o;
}

cJSON *mu_capacity_json(const struct mu_sched_snapshot *snap, const struct mu_sched_policy *policy,
                        const struct mu_flavor *flavors, size_t nflavors,
                        const struct mu_cap_used *used, const char *label)
{
    size_t n = snap->n_nodes;
    /* Headroom per flavor and node: per_node[f * n + i]. A flavor is a plain request (no
     * group, no required label), as a new VM of that size would be. */
    int64_t *per_node = mu_xcalloc(nflavors * n + 1, sizeof *per_node);
    for (size_t f = 0; f < nflavors; f++) {
        struct mu_sched_request rq = {.vcpus = flavors[f].vcpus,
                                      .ram_mib = flavors[f].ram_mib,
                                      .disk_gib = flavors[f].disk_gib};
        int64_t total = 0;
        struct mu_err e = {0};
        if (mu_sched_headroom(snap, policy, &rq, per_node + f * n, &total, &e) < 0)
            memset(per_node + f * n, 0, n * sizeof *per_node); /* a malformed flavor fits 0 */
    }

    cJSON *doc = mu_json_obj();
    cJSON *nodes = cJSON_AddArrayToObject(doc, "nodes");
    struct mu_sched_capacity all = {0}, sched = {0};
    struct used_sum u_all = {0}, u_sched = {0};
    size_t n_all = 0, n_sched = 0;
    int64_t *flavor_total = mu_xcalloc(nflavors + 1, sizeof *flavor_total);
    for (size_t i = 0; i < n; i++) {
        const struct mu_sched_node *sn = &snap->nodes[i];
        if (!node_has_label(sn, label))
            continue;
        struct mu_sched_capacity cap;
        mu_sched_node_capacity(sn, policy, &cap);
        bool schedulable = mu_sched_node_schedulable(sn, policy);
        const struct mu_cap_used *u = used && used[i].reported ? &used[i] : NULL;

        cJSON *o = mu_json_obj();
        mu_json_add_i64(o, "id", sn->id);
        mu_json_add_str(o, "name", sn->name);
        mu_json_add_str(o, "state", op_state_name(sn->op_state));
        mu_json_add_str(o, "health", health_name(sn->health));
        mu_json_add_bool(o, "schedulable", schedulable);
        cJSON *labels = mu_json_obj();
        for (size_t l = 0; l < sn->n_labels; l++) {
            const char *eq = strchr(sn->labels[l], '=');
            if (!eq)
                continue;
            MU_AUTOFREE char *key = mu_xstrndup(sn->labels[l], (size_t)(eq - sn->labels[l]));
            mu_json_add_str(labels, key, eq + 1);
        }
        cJSON_AddItemToObject(o, "labels", labels);
        cJSON_AddItemToObject(o, "vcpus", resource_json(&cap.vcpus, u, u ? u->cpus_busy : 0));
        cJSON_AddItemToObject(o, "ram_mib",
                              resource_json(&cap.ram_mib, u, u ? (double)u->ram_mib : 0));
        cJSON_AddItemToObject(o, "disk_gib",
                              resource_json(&cap.disk_gib, u, u ? (double)u->disk_gib : 0));
        if (u) {
            cJSON_AddNumberToObject(o, "cpu_percent", u->cpu_percent);
            mu_json_add_time(o, "reported_at", u->time_ms);
        } else {
            mu_json_add_null(o, "cpu_percent");
            mu_json_add_null(o, "reported_at");
        }
        cJSON *hr = mu_json_obj();
        for (size_t f = 0; f < nflavors; f++) {
            mu_json_add_i64(hr, flavors[f].name, per_node[f * n + i]);
            flavor_total[f] += per_node[f * n + i];
        }
        cJSON_AddItemToObject(o, "headroom", hr);
        cJSON_AddItemToArray(nodes, o);

        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1 && !schedulable)
                break;
            struct mu_sched_capacity *sum = pass ? &sched : &all;
            struct used_sum *us = pass ? &u_sched : &u_all;
            add_res(&sum->vcpus, &cap.vcpus);
            add_res(&sum->ram_mib, &cap.ram_mib);
            add_res(&sum->disk_gib, &cap.disk_gib);
            *(pass ? &n_sched : &n_all) += 1;
            if (u) {
                us->reporting++;
                us->cpus_busy += u->cpus_busy;
                us->ram_mib += u->ram_mib;
                us->disk_gib += u->disk_gib;
            }
        }
    }

    cJSON *cluster = mu_json_obj();
    cJSON_AddItemToObject(cluster, "all", capacity_sum_json(&all, n_all, &u_all));
    cJSON_AddItemToObject(cluster, "schedulable", capacity_sum_json(&sched, n_sched, &u_sched));
    cJSON_AddItemToObject(doc, "cluster", cluster);

    cJSON *headroom = cJSON_AddArrayToObject(doc, "headroom");
    for (size_t f = 0; f < nflavors; f++) {
        cJSON *o = mu_json_obj();
        mu_json_add_i64(o, "flavor_id", flavors[f].id);
        mu_json_add_str(o, "flavor", flavors[f].name);
        mu_json_add_i64(o, "vcpus", flavors[f].vcpus);
        mu_json_add_i64(o, "ram_mib", flavors[f].ram_mib);
        mu_json_add_i64(o, "disk_gib", flavors[f].disk_gib);
        mu_json_add_i64(o, "fit", flavor_total[f]);
        cJSON_AddItemToArray(headroom, o);
    }
    free(flavor_total);
    free(per_node);
    return doc;
}

/* ---- N+1 verdicts --------------------------------------------------------------------- */

struct n1_result {
    bool have;
    struct mu_sched_n1 v;
    char worst_name[64];
    int64_t computed_ms;
    uint64_t generation;
    double seconds; /* how long the check took */
};

/* Runs the N+1 check over the store as it is now. */
static int n1_compute(struct mu_app *app, struct n1_result *ret, struct mu_err *err)
{
    int64_t t0 = mu_mono_ms();
    struct mu_sched_snapshot *snap = mu_api_snapshot_build(app->store, 0, true, err);
    if (!snap)
        return err->code;
    pthread_rwlock_rdlock(&app->policy_lock);
    struct mu_sched_policy policy = *app->placement;
    pthread_rwlock_unlock(&app->policy_lock);
    struct mu_sched_n1 v;
    int r = mu_sched_n1_check(snap, &policy, NULL, &v, err);
    if (r == 0) {
        memset(ret, 0, sizeof *ret);
        ret->have = true;
        ret->v = v;
        for (size_t i = 0; i < snap->n_nodes; i++)
            if (snap->nodes[i].id == v.worst_node_id && snap->nodes[i].name)
                snprintf(ret->worst_name, sizeof ret->worst_name, "%s", snap->nodes[i].name);
        ret->computed_ms = mu_now_ms();
        ret->seconds = (double)(mu_mono_ms() - t0) / 1e3;
    }
    mu_sched_snapshot_free(snap);
    return r;
}

static cJSON *n1_json(const struct n1_result *n1)
{
    cJSON *o = mu_json_obj();
    if (!n1->have) {
        mu_json_add_null(o, "ok");
        mu_json_add_str(o, "summary", "not computed yet");
        mu_json_add_null(o, "worst_node");
        mu_json_add_null(o, "computed_at");
        mu_json_add_i64(o, "generation", 0);
        return o;
    }
    const struct mu_sched_n1 *v = &n1->v;
    mu_json_add_bool(o, "ok", v->ok);
    mu_json_add_str(o, "summary", v->summary);
    mu_json_add_i64(o, "nodes_checked", (int64_t)v->nodes_checked);
    mu_json_add_i64(o, "nodes_failing", (int64_t)v->nodes_failing);
    if (v->ok || v->worst_node_id == 0) {
        mu_json_add_null(o, "worst_node");
    } else {
        cJSON *w = mu_json_obj();
        mu_json_add_i64(w, "id", v->worst_node_id);
        mu_json_add_str(w, "name", n1->worst_name);
        mu_json_add_i64(w, "vms", (int64_t)v->worst.vms);
        mu_json_add_i64(w, "unplaced_vms", (int64_t)v->worst.unplaced);
        mu_json_add_i64(w, "unplaced_for_rules", (int64_t)v->worst.unplaced_rules);
        cJSON *s = mu_json_obj();
        mu_json_add_i64(s, "vcpus", v->worst.short_vcpus);
        mu_json_add_i64(s, "ram_mib", v->worst.short_ram_mib);
        mu_json_add_i64(s, "disk_gib", v->worst.short_disk_gib);
        cJSON_AddItemToObject(w, "short", s);
        cJSON_AddItemToObject(o, "worst_node", w);
    }
    mu_json_add_time(o, "computed_at", n1->computed_ms);
    mu_json_add_i64(o, "generation", (int64_t)n1->generation);
    cJSON_AddNumberToObject(o, "duration_seconds", n1->seconds);
    return o;
}

/* ---- the capacity monitor --------------------------------------------------------- */

struct mu_capmon {
    struct mu_app *app;
    int64_t interval_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    uint64_t signature; /* of the inputs the last verdict was computed from */
    struct n1_result last;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return fnv(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

/* A cheap fingerprint of everything the N+1 verdict depends on: the nodes' states,
 * capacities, labels and allocation counters (a VM admitted, resized or purged moves them)
 * and the placement policy. 0 with err set on failure. */
static uint64_t inputs_signature(struct mu_app *app, struct mu_err *err)
{
    struct mu_node *ns = NULL;
    size_t n = 0;
    if (mu_store_node_list(app->store, &ns, &n, err) < 0)
        return 0;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        int64_t f[] = {ns[i].id,
                       ns[i].cpus,
                       ns[i].mem_mib,
                       ns[i].disk_gib,
                       ns[i].reserved_mem_mib,
                       ns[i].alloc_vcpus,
                       ns[i].alloc_ram_mib,
                       ns[i].alloc_disk_gib,
                       ns[i].vm_count};
        h = fnv(h, f, sizeof f);
        h = fnv_str(h, ns[i].op_state);
        h = fnv_str(h, ns[i].health);
        h = fnv_str(h, ns[i].labels_json);
    }
    mu_nodes_free(ns, n);
    pthread_rwlock_rdlock(&app->policy_lock);
    struct mu_sched_policy p = *app->placement;
    pthread_rwlock_unlock(&app->policy_lock);
    h = fnv(h, &p.cpu_ratio, sizeof p.cpu_ratio);
    h = fnv(h, &p.ram_ratio, sizeof p.ram_ratio);
    h = fnv(h, &p.disk_ratio, sizeof p.disk_ratio);
    h = fnv(h, &p.reserved_mem_mib, sizeof p.reserved_mem_mib);
    int flags[] = {(int)p.weigher, p.unknown_health_eligible};
    h = fnv(h, flags, sizeof flags);
    return h ? h : 1;
}

static void *capmon_main(void *arg)
{
    struct mu_capmon *m = arg;
    uint64_t generation = 0;
    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        uint64_t known = m->signature;
        pthread_mutex_unlock(&m->lock);

        struct mu_err err = {0};
        uint64_t sig = inputs_signature(m->app, &err);
        struct n1_result res;
        bool fresh = false;
        if (sig == 0) {
            mu_log_warn("capacity signature failed detail=\"%s\"", err.detail);
        } else if (sig != known) {
            if (n1_compute(m->app, &res, &err) == 0) {
                fresh = true;
                res.generation = ++generation;
                mu_log_debug("n+1 computed ok=%d seconds=%.3f summary=\"%s\"", res.v.ok,
                             res.seconds, res.v.summary);
            } else {
                mu_log_warn("n+1 check failed detail=\"%s\"", err.detail);
            }
        }

        pthread_mutex_lock(&m->lock);
        if (fresh) {
            m->last = res;
            m->signature = sig;
        }
        if (m->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (m->interval_ms % 1000) * 1000000;
        ts.tv_sec += (time_t)(m->interval_ms / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

struct mu_capmon *mu_capmon_start(struct mu_app *app, int64_t interval_ms, struct mu_err *err)
{
    struct mu_capmon *m = mu_xcalloc(1, sizeof *m);
    m->app = app;
    m->interval_ms = interval_ms > 0 ? interval_ms : 5000;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    if (pthread_create(&m->thread, NULL, capmon_main, m) != 0) {
        pthread_cond_destroy(&m->cond);
        pthread_mutex_destroy(&m->lock);
        free(m);
        mu_err_set(err, MU_EINTERNAL, "cannot start the capacity monitor thread");
        return NULL;
    }
    return m;
}

void mu_capmon_stop(struct mu_capmon *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* The last verdict (the monitor's, or one computed now when there is no monitor). */
static int n1_current(struct mu_app *app, struct n1_result *ret, struct mu_err *err)
{
    if (!app->capmon) {
        int r = n1_compute(app, ret, err);
        if (r == 0)
            ret->generation = 1;
        return r;
    }
    pthread_mutex_lock(&app->capmon->lock);
    *ret = app->capmon->last;
    pthread_mutex_unlock(&app->capmon->lock);
    return MU_OK;
}

int mu_capmon_verdict(struct mu_app *app, bool *ret_ok, char *summary, size_t summary_len,
                      struct mu_err *err)
{
    struct n1_result n1;
    int r = n1_current(app, &n1, err);
    if (r < 0)
        return r;
    if (!n1.have)
        return 0;
    *ret_ok = n1.v.ok;
    if (summary && summary_len)
        snprintf(summary, summary_len, "%s", n1.v.summary);
    return 1;
}

/* ---- the forecast ------------------------------------------------------------------ */

#define FORECAST_WINDOW_DAYS 30

/* The daily peaks are replayed from every VM event: kept until an event is added or the
 * day changes (one slot is enough: one store per process). */
static struct {
    pthread_mutex_t lock;
    const struct mu_store *st;
    int64_t max_id, today;
    struct mu_alloc_day *days;
    size_t n;
} forecast_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int history_cached(struct mu_store *st, int64_t now_ms, struct mu_alloc_day **ret,
                          size_t *ret_n, struct mu_err *err)
{
    int64_t max_id = mu_store_vm_events_max_id(st);
    int64_t today = now_ms / MU_DAY_MS;
    int r = 0;
    pthread_mutex_lock(&forecast_cache.lock);
    if (forecast_cache.st != st || forecast_cache.max_id != max_id ||
        forecast_cache.today != today || !forecast_cache.days) {
        struct mu_alloc_day *days = NULL;
        size_t n = 0;
        r = mu_store_alloc_history(st, now_ms, FORECAST_WINDOW_DAYS, &days, &n, err);
        if (r == 0) {
            free(forecast_cache.days);
            forecast_cache.days = days ? days : mu_xcalloc(1, sizeof *days);
            forecast_cache.n = n;
            forecast_cache.st = st;
            forecast_cache.max_id = max_id;
            forecast_cache.today = today;
        }
    }
    if (r == 0) {
        *ret = mu_xcalloc(forecast_cache.n + 1, sizeof **ret);
        if (forecast_cache.n)
            memcpy(*ret, forecast_cache.days, forecast_cache.n * sizeof **ret);
        *ret_n = forecast_cache.n;
    }
    pthread_mutex_unlock(&forecast_cache.lock);
    return r;
}

/* One resource's forecast from its daily peaks against capacity. */
static cJSON *forecast_resource_json(const struct mu_alloc_day *days, size_t n, int k,
                                     int64_t capacity)
{
    int64_t *peaks = mu_xcalloc(n + 1, sizeof *peaks);
    cJSON *o = mu_json_obj();
    cJSON *pts = mu_json_arr();
    for (size_t i = 0; i < n; i++) {
        peaks[i] = k == 0   ? days[i].peak_vcpus
                   : k == 1 ? days[i].peak_ram_mib
                            : days[i].peak_disk_gib;
        char day[40];
        mu_format_time(days[i].day_ms, day, sizeof day);
        day[10] = '\0'; /* the date part of RFC 3339 */
        cJSON *p = mu_json_obj();
        mu_json_add_str(p, "day", day);
        mu_json_add_i64(p, "peak", peaks[i]);
        cJSON_AddItemToArray(pts, p);
    }
    struct mu_sched_forecast f;
    struct mu_err e = {0};
    if (mu_sched_forecast(peaks, n, capacity, &f, &e) < 0)
        f.verdict = MU_SCHED_FORECAST_TOO_FEW;
    mu_json_add_i64(o, "capacity", capacity);
    static const char *const trends[] = {"too_few_points", "full", "not_growing", "growing"};
    mu_json_add_str(o, "trend", trends[f.verdict]);
    if (f.verdict == MU_SCHED_FORECAST_TOO_FEW) {
        mu_json_add_null(o, "days_to_full");
        mu_json_add_null(o, "slope_per_day");
        mu_json_add_null(o, "intercept");
        mu_json_add_null(o, "r2");
    } else {
        if (f.verdict == MU_SCHED_FORECAST_FULL || f.verdict == MU_SCHED_FORECAST_DAYS)
            cJSON_AddNumberToObject(o, "days_to_full", f.days_to_full);
        else
            mu_json_add_null(o, "days_to_full");
        cJSON_AddNumberToObject(o, "slope_per_day", f.slope_per_day);
        cJSON_AddNumberToObject(o, "intercept", f.intercept);
        cJSON_AddNumberToObject(o, "r2", f.r2);
    }
    mu_json_add_bool(o, "full", f.verdict == MU_SCHED_FORECAST_FULL);
    cJSON_AddItemToObject(o, "points", pts);
    free(peaks);
    return o;
}

/* "forecast": days until each resource is full (allocatable of every node), from the
 * daily peaks of allocation over the last FORECAST_WINDOW_DAYS days. */
static int forecast_json(struct mu_app *app, const struct mu_sched_snapshot *snap,
                         const struct mu_sched_policy *policy, int64_t now_ms, cJSON *doc,
                         struct mu_err *err)
{
    struct mu_alloc_day *days = NULL;
    size_t n = 0;
    int r = history_cached(app->store, now_ms, &days, &n, err);
    if (r < 0)
        return r;
    struct mu_sched_capacity all;
    mu_sched_cluster_capacity(snap, policy, &all, NULL);
    cJSON *fc = mu_json_obj();
    mu_json_add_i64(fc, "window_days", FORECAST_WINDOW_DAYS);
    mu_json_add_i64(fc, "history_days", (int64_t)n);
    mu_json_add_i64(fc, "min_points", MU_SCHED_FORECAST_MIN_POINTS);
    if (n < MU_SCHED_FORECAST_MIN_POINTS) {
        char why[96];
        snprintf(why, sizeof why, "needs %d days of history, have %zu",
                 MU_SCHED_FORECAST_MIN_POINTS, n);
        mu_json_add_str(fc, "reason", why);
    } else {
        mu_json_add_null(fc, "reason");
    }
    cJSON *res = mu_json_obj();
    cJSON_AddItemToObject(res, "vcpus", forecast_resource_json(days, n, 0, all.vcpus.allocatable));
    cJSON_AddItemToObject(res, "ram_mib",
                          forecast_resource_json(days, n, 1, all.ram_mib.allocatable));
    cJSON_AddItemToObject(res, "disk_gib",
                          forecast_resource_json(days, n, 2, all.disk_gib.allocatable));
    cJSON_AddItemToObject(fc, "resources", res);
    cJSON_AddItemToObject(doc, "forecast", fc);
    free(days);
    return MU_OK;
}

/* ---- the handler ------------------------------------------------------------------- */

/* The row of id in rows (sorted by id, as the store lists them), or NULL. */
static const struct mu_node *row_by_id(const struct mu_node *rows, size_t nrows, int64_t id)
{
    size_t lo = 0, hi = nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rows[mid].id == id)
            return &rows[mid];
        if (rows[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void mu_capacity_used_fill(struct mu_store *st, const struct mu_sched_snapshot *snap,
                           const struct mu_node *rows, size_t nrows, struct mu_cap_used *used)
{
    struct mu_node_last *lasts = NULL;
    size_t nl = 0, k = 0;
    struct mu_err err = {0};
    if (mu_store_node_last_all(st, &lasts, &nl, &err) < 0)
        return; /* no figures: "used" shows as not reported */
    for (size_t i = 0; i < snap->n_nodes; i++) {
        int64_t id = snap->nodes[i].id;
        /* Both lists are in node id order: one merge walk. */
        while (k < nl && lasts[k].node_id < id)
            k++;
        if (k == nl || lasts[k].node_id != id)
            continue;
        const struct mu_node_last *last = &lasts[k];
        const struct mu_node *row = row_by_id(rows, nrows, id);
        const char *pool = row ? row->pool : NULL;
        struct mu_cap_used *u = &used[i];
        u->reported = true;
        u->cpu_percent = last->host.cpu_percent;
        u->cpus_busy = last->host.cpu_percent * (double)last->host.cpus / 100.0;
        u->ram_mib = last->host.mem_total_mib - last->host.mem_available_mib;
        u->time_ms = last->time_ms;
        cJSON *pools = last->pools_json ? cJSON_Parse(last->pools_json) : NULL;
        const cJSON *it;
        cJSON_ArrayForEach(it, pools)
        {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *alloc = cJSON_GetObjectItemCaseSensitive(it, "allocation_gib");
            if (cJSON_IsString(name) && cJSON_IsNumber(alloc) && pool &&
                strcmp(name->valuestring, pool) == 0)
                u->disk_gib = (int64_t)alloc->valuedouble;
        }
        cJSON_Delete(pools);
    }
    mu_node_lasts_free(lasts, nl);
}

/* "tenants": each top-level tenant (a direct child of a root: the members that signed with
 * the data centre) with its whole subtree's allocation and its effective limits. */
static int tenants_json(struct mu_app *app, cJSON *doc, struct mu_err *err)
{
    cJSON *arr = cJSON_AddArrayToObject(doc, "tenants");
    struct mu_tenant *roots = NULL;
    size_t nroots = 0;
    struct mu_tenant_filter rf = {.parent_id = 0, .limit = 1000};
    int r = mu_store_tenant_list(app->store, &rf, &roots, &nroots, err);
    if (r < 0)
        return r;
    for (size_t ri = 0; ri < nroots && r >= 0; ri++) {
        int64_t after = 0;
        for (;;) {
            struct mu_tenant *ts = NULL;
            size_t nt = 0;
            struct mu_tenant_filter f = {
                .parent_id = roots[ri].id, .after_id = after, .limit = 1000};
            if ((r = mu_store_tenant_list(app->store, &f, &ts, &nt, err)) < 0)
                break;
            /* One read for the page's tenants: their own level is what is shown. */
            int64_t *ids = mu_xcalloc(nt + 1, sizeof *ids);
            for (size_t i = 0; i < nt; i++)
                ids[i] = ts[i].id;
            struct mu_quota_level *lv = NULL;
            pthread_rwlock_rdlock(&app->policy_lock);
            struct mu_quota_defaults defaults = mu_quota_policy_defaults(app->quotas);
            r = nt ? mu_store_quota_own_levels(app->store, ids, nt, &defaults, &lv, err) : 0;
            pthread_rwlock_unlock(&app->policy_lock);
            free(ids);
            for (size_t i = 0; i < nt && r >= 0; i++) {
                const struct mu_quota_level *me = &lv[i];
                cJSON *o = mu_json_obj();
                mu_json_add_i64(o, "id", ts[i].id);
                mu_json_add_str(o, "name", ts[i].name);
                mu_json_add_str(o, "kind", ts[i].kind);
                cJSON *a = mu_json_obj();
                mu_json_add_i64(a, "vcpus", me->usage.vcpus);
                mu_json_add_i64(a, "ram_mib", me->usage.ram_mib);
                mu_json_add_i64(a, "disk_gib", me->usage.disk_gib);
                mu_json_add_i64(a, "vms", me->usage.vms);
                cJSON_AddItemToObject(o, "allocated", a);
                cJSON *l = mu_json_obj();
                const int64_t lim[] = {me->limits.vcpus, me->limits.ram_mib, me->limits.disk_gib,
                                       me->limits.vms};
                const char *const keys[] = {"vcpus", "ram_mib", "disk_gib", "vms"};
                for (size_t k = 0; k < 4; k++) {
                    if (lim[k] == MU_UNLIMITED)
                        mu_json_add_str(l, keys[k], "unlimited");
                    else
                        mu_json_add_i64(l, keys[k], lim[k]);
                }
                cJSON_AddItemToObject(o, "limits", l);
                cJSON_AddItemToArray(arr, o);
            }
            if (r >= 0)
                mu_quota_levels_free(lv, nt);
            if (nt > 0)
                after = ts[nt - 1].id;
            mu_tenants_free(ts, nt);
            if (r < 0 || nt < 1000)
                break;
        }
    }
    mu_tenants_free(roots, nroots);
    return r < 0 ? r : MU_OK;
}

/* ?label=key=value: both sides allow-listed like node labels. */
static int label_param(const struct mu_req *req, const char **ret, struct mu_err *err)
{
    const char *v = mu_req_query(req, "label");
    *ret = NULL;
    if (!v)
        return MU_OK;
    const char *eq = strchr(v, '=');
    bool ok = eq && eq != v && eq[1] && strlen(v) <= 200;
    for (const char *p = v; ok && *p; p++)
        ok = p == eq || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
             *p == '_' || *p == '-';
    if (!ok)
        return mu_err_setf(err, MU_EINVAL, "label",
                           "label must be \"key=value\" (a-z, 0-9, '.', '_', '-'), such as "
                           "site=paris");
    *ret = v;
    return MU_OK;
}

int mu_h_capacity(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_app *app = req->app;
    const char *label = NULL;
    int r = label_param(req, &label, err);
    if (r < 0)
        return r;
    struct mu_sched_snapshot *snap = NULL;
    struct mu_node *rows = NULL;
    size_t nrows = 0;
    struct mu_flavor *fl = NULL;
    size_t nfl = 0;
    struct mu_cap_used *used = NULL;
    cJSON *doc = NULL;
    if ((r = mu_store_node_list(app->store, &rows, &nrows, err)) < 0)
        goto out;
    if ((r = mu_store_flavor_list(app->store, &fl, &nfl, err)) < 0)
        goto out;
    if (!(snap = mu_api_snapshot_build(app->store, 0, false, err))) {
        r = err->code;
        goto out;
    }
    used = mu_xcalloc(snap->n_nodes + 1, sizeof *used);
    mu_capacity_used_fill(app->store, snap, rows, nrows, used);

    pthread_rwlock_rdlock(&app->policy_lock);
    struct mu_sched_policy policy = *app->placement;
    pthread_rwlock_unlock(&app->policy_lock);
    doc = mu_capacity_json(snap, &policy, fl, nfl, used, label);
    if (label)
        mu_json_add_str(doc, "label", label);
    else
        mu_json_add_null(doc, "label");
    cJSON *pol = mu_json_obj();
    cJSON_AddNumberToObject(pol, "cpu_ratio", policy.cpu_ratio);
    cJSON_AddNumberToObject(pol, "ram_ratio", policy.ram_ratio);
    cJSON_AddNumberToObject(pol, "disk_ratio", policy.disk_ratio);
    mu_json_add_i64(pol, "reserved_mem_mib", policy.reserved_mem_mib);
    mu_json_add_bool(pol, "place_on_unknown_health", policy.unknown_health_eligible);
    cJSON_AddItemToObject(doc, "policy", pol);

    /* N+1 is a property of the whole cluster: a label filter does not narrow it. */
    struct n1_result n1;
    if ((r = n1_current(app, &n1, err)) < 0)
        goto out;
    cJSON_AddItemToObject(doc, "n_plus_1", n1_json(&n1));
    if ((r = forecast_json(app, snap, &policy, mu_now_ms(), doc, err)) < 0)
        goto out;
    if ((r = tenants_json(app, doc, err)) < 0)
        goto out;
    mu_json_add_time(doc, "generated_at", mu_now_ms());
    resp->json = MU_STEAL(doc);
    r = MU_OK;
out:
    cJSON_Delete(doc);
    free(used);
    mu_sched_snapshot_free(snap);
    mu_flavors_free(fl, nfl);
    mu_nodes_free(rows, nrows);
    return r;
}
