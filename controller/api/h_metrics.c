/* GET /metrics: the Prometheus text exposition format (0.0.4). Node capacity, allocation
 * (under the placement policy) and use (from agent reports), node states, VM counts by
 * observed state, per-tenant allocation against quota only for the tenants the
 * configuration names (metrics_tenants: bounded cardinality), the API's request counters
 * and latency histograms (api/metrics.c), report ingestion counters and lag, and the
 * operation queue depth. Readable with a token allowed metrics.read, or without one from an
 * address of metrics_allow (the route's MU_ROUTE_ADDR_ALLOW). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/alerts.h"
#include "api/handlers.h"
#include "api/metrics.h"
#include "fleet/ingest.h"
#include "mutualis/util.h"
#include "store/provision.h"
#include "tenancy/quotas.h"

static const char *const resources[3] = {"vcpus", "ram_mib", "disk_gib"};

static void node_series(struct mu_buf *b, const char *family, const char *node, const int64_t v[3])
{
    for (size_t k = 0; k < 3; k++) {
        const char *labels[] = {"node", node, "resource", resources[k], NULL};
        mu_metrics_sample(b, family, labels, (double)v[k]);
    }
}

static int write_nodes(struct mu_app *app, struct mu_buf *b, struct mu_err *err)
{
    struct mu_node *rows = NULL;
    size_t nrows = 0;
    if (mu_store_node_list(app->store, &rows, &nrows, err) < 0)
        return err->code;
    struct mu_sched_snapshot *snap = mu_api_snapshot_build(app->store, 0, false, err);
    if (!snap) {
        mu_nodes_free(rows, nrows);
        return err->code;
    }
    struct mu_cap_used *used = mu_xcalloc(snap->n_nodes + 1, sizeof *used);
    mu_capacity_used_fill(app->store, snap, rows, nrows, used);
    pthread_rwlock_rdlock(&app->policy_lock);
    struct mu_sched_policy policy = *app->placement;
    pthread_rwlock_unlock(&app->policy_lock);
    struct mu_sched_capacity *cap = mu_xcalloc(snap->n_nodes + 1, sizeof *cap);
    for (size_t i = 0; i < snap->n_nodes; i++)
        mu_sched_node_capacity(&snap->nodes[i], &policy, &cap[i]);

    static const struct {
        const char *name, *help;
    } fam[3] = {
        {"mutualis_node_capacity",
         "Physical capacity of a node: CPUs, memory (MiB), storage pool (GiB)."},
        {"mutualis_node_allocatable",
         "What placement may allocate on a node: physical after overcommit ratios and "
         "reserved memory."},
        {"mutualis_node_allocated", "Sum of the flavors of the VMs on a node."},
    };
    for (size_t f = 0; f < 3; f++) {
        mu_metrics_family(b, fam[f].name, "gauge", fam[f].help);
        for (size_t i = 0; i < snap->n_nodes; i++) {
            const struct mu_sched_capacity *c = &cap[i];
            int64_t v[3];
            if (f == 0) {
                v[0] = c->vcpus.physical, v[1] = c->ram_mib.physical, v[2] = c->disk_gib.physical;
            } else if (f == 1) {
                v[0] = c->vcpus.allocatable, v[1] = c->ram_mib.allocatable,
                v[2] = c->disk_gib.allocatable;
            } else {
                v[0] = c->vcpus.allocated, v[1] = c->ram_mib.allocated,
                v[2] = c->disk_gib.allocated;
            }
            node_series(b, fam[f].name, snap->nodes[i].name, v);
        }
    }
    mu_metrics_family(b, "mutualis_node_used", "gauge",
                      "What a node really uses by its agent's last report: busy CPUs, host "
                      "memory in use (MiB), storage pool allocation (GiB).");
    for (size_t i = 0; i < snap->n_nodes; i++) {
        if (!used[i].reported)
            continue;
        const double v[3] = {used[i].cpus_busy, (double)used[i].ram_mib, (double)used[i].disk_gib};
        for (size_t k = 0; k < 3; k++) {
            const char *labels[] = {"node", snap->nodes[i].name, "resource", resources[k], NULL};
            mu_metrics_sample(b, "mutualis_node_used", labels, v[k]);
        }
    }

    static const char *const states[] = {"active", "maintenance", "draining"};
    mu_metrics_family(b, "mutualis_node_state", "gauge",
                      "The operator's state of a node: 1 for the current one.");
    for (size_t i = 0; i < nrows; i++)
        for (size_t k = 0; k < 3; k++) {
            const char *labels[] = {"node", rows[i].name, "state", states[k], NULL};
            mu_metrics_sample(b, "mutualis_node_state", labels,
                              strcmp(rows[i].op_state, states[k]) == 0 ? 1 : 0);
        }
    static const char *const healths[] = {"up", "down", "unknown"};
    mu_metrics_family(b, "mutualis_node_health", "gauge",
                      "A node's health from agent reports or the libvirt probe: 1 for the "
                      "current one.");
    for (size_t i = 0; i < nrows; i++)
        for (size_t k = 0; k < 3; k++) {
            const char *labels[] = {"node", rows[i].name, "health", healths[k], NULL};
            mu_metrics_sample(b, "mutualis_node_health", labels,
                              strcmp(rows[i].health, healths[k]) == 0 ? 1 : 0);
        }
    mu_metrics_family(b, "mutualis_node_report_age_seconds", "gauge",
                      "Time since a node's agent last delivered a report (nodes that ever "
                      "reported).");
    int64_t now = mu_now_ms();
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].last_report_ms <= 0)
            continue;
        const char *labels[] = {"node", rows[i].name, NULL};
        double age = (double)(now - rows[i].last_report_ms) / 1e3;
        mu_metrics_sample(b, "mutualis_node_report_age_seconds", labels, age > 0 ? age : 0);
    }
    free(cap);
    free(used);
    mu_sched_snapshot_free(snap);
    mu_nodes_free(rows, nrows);
    return MU_OK;
}

static int write_vms(struct mu_app *app, struct mu_buf *b, struct mu_err *err)
{
    static const char *const states[] = {"pending", "running", "shutoff", "missing",
                                         "unknown", "error",   "deleted"};
    enum { N_STATES = sizeof states / sizeof states[0] };
    int64_t counts[N_STATES + 1] = {0}; /* the last slot: any other state */
    if (mu_store_vm_state_counts(app->store, states, N_STATES, counts, err) < 0)
        return err->code;
    mu_metrics_family(b, "mutualis_vms", "gauge", "VMs by observed state.");
    for (size_t k = 0; k <= N_STATES; k++) {
        const char *labels[] = {"state", k < N_STATES ? states[k] : "other", NULL};
        mu_metrics_sample(b, "mutualis_vms", labels, (double)counts[k]);
    }
    return MU_OK;
}

static int write_tenants(struct mu_app *app, struct mu_buf *b, struct mu_err *err)
{
    if (app->n_metrics_tenants == 0)
        return MU_OK;
    static const char *const res4[] = {"vcpus", "ram_mib", "disk_gib", "vms"};
    struct mu_buf alloc, limit;
    mu_buf_init(&alloc);
    mu_buf_init(&limit);
    for (size_t t = 0; t < app->n_metrics_tenants; t++) {
        struct mu_quota_level *lv = NULL;
        size_t nl = 0;
        struct mu_err e = {0};
        pthread_rwlock_rdlock(&app->policy_lock);
        struct mu_quota_defaults defaults = mu_quota_policy_defaults(app->quotas);
        int r = mu_store_quota_levels(app->store, app->metrics_tenants[t], &defaults, &lv, &nl, &e);
        pthread_rwlock_unlock(&app->policy_lock);
        if (r < 0 || nl == 0) { /* a configured tenant deleted since: no series */
            mu_quota_levels_free(lv, nl);
            continue;
        }
        const struct mu_quota_level *me = &lv[nl - 1];
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)me->tenant_id);
        const int64_t used[4] = {me->usage.vcpus, me->usage.ram_mib, me->usage.disk_gib,
                                 me->usage.vms};
        const int64_t lim[4] = {me->limits.vcpus, me->limits.ram_mib, me->limits.disk_gib,
                                me->limits.vms};
        for (size_t k = 0; k < 4; k++) {
            const char *labels[] = {"tenant",    me->tenant_name ? me->tenant_name : "",
                                    "tenant_id", id,
                                    "resource",  res4[k],
                                    NULL};
            mu_metrics_sample(&alloc, "mutualis_tenant_allocated", labels, (double)used[k]);
            if (lim[k] != MU_UNLIMITED)
                mu_metrics_sample(&limit, "mutualis_tenant_limit", labels, (double)lim[k]);
        }
        mu_quota_levels_free(lv, nl);
    }
    mu_metrics_family(b, "mutualis_tenant_allocated", "gauge",
                      "Allocation of a tenant's whole subtree (configured tenants only).");
    if (alloc.len)
        mu_buf_append(b, alloc.data, alloc.len);
    mu_metrics_family(b, "mutualis_tenant_limit", "gauge",
                      "A tenant's effective quota (configured tenants only; unlimited "
                      "resources have no series).");
    if (limit.len)
        mu_buf_append(b, limit.data, limit.len);
    mu_buf_free(&alloc);
    mu_buf_free(&limit);
    (void)err;
    return MU_OK;
}

/* mutualis_n_plus_1_ok (no sample until the first verdict) and mutualis_alerts_firing per
 * rule of alerts/alerts.h (every rule, 0 when none fires: bounded cardinality). */
static int write_alerts(struct mu_app *app, struct mu_buf *b, struct mu_err *err)
{
    bool ok = false;
    int known = mu_capmon_verdict(app, &ok, NULL, 0, err);
    if (known < 0)
        return known;
    mu_metrics_family(b, "mutualis_n_plus_1_ok", "gauge",
                      "1 when the VMs of any one node fit on the others (the last N+1 check), "
                      "else 0.");
    if (known == 1)
        mu_metrics_sample(b, "mutualis_n_plus_1_ok", NULL, ok ? 1 : 0);
    struct mu_alert_filter f = {.state = "firing"};
    struct mu_alert *as = NULL;
    size_t n = 0;
    if (mu_store_alert_list(app->store, &f, &as, &n, err) < 0)
        return err->code;
    int64_t counts[MU_ALERT_RULES] = {0};
    for (size_t i = 0; i < n; i++) {
        int rule = mu_alert_rule_from_name(as[i].rule);
        if (rule >= 0)
            counts[rule]++;
    }
    mu_alerts_free(as, n);
    mu_metrics_family(b, "mutualis_alerts_firing", "gauge",
                      "Alerts firing now, per rule of policies/alerts.json.");
    for (int r = 0; r < MU_ALERT_RULES; r++) {
        const char *labels[] = {"rule", mu_alert_rule_name(r), NULL};
        mu_metrics_sample(b, "mutualis_alerts_firing", labels, (double)counts[r]);
    }
    return MU_OK;
}

static void write_ingest(struct mu_app *app, struct mu_buf *b)
{
    if (!app->ingest)
        return;
    struct mu_ingest_stats st;
    mu_ingest_stats(app->ingest, &st);
    mu_metrics_family(b, "mutualis_report_ingest_reports_total", "counter",
                      "Agent reports handled by the report writer, by outcome.");
    const struct {
        const char *outcome;
        uint64_t v;
    } o[] = {{"stored", st.stored},
             {"replay", st.replays},
             {"refused", st.refused},
             {"failed", st.failed}};
    for (size_t k = 0; k < sizeof o / sizeof o[0]; k++) {
        const char *labels[] = {"outcome", o[k].outcome, NULL};
        mu_metrics_sample(b, "mutualis_report_ingest_reports_total", labels, (double)o[k].v);
    }
    mu_metrics_family(b, "mutualis_report_ingest_batches_total", "counter",
                      "Report batches committed (one transaction each).");
    mu_metrics_sample(b, "mutualis_report_ingest_batches_total", NULL, (double)st.batches);
    mu_metrics_family(b, "mutualis_report_ingest_max_batch", "gauge",
                      "The largest batch of reports committed at once.");
    mu_metrics_sample(b, "mutualis_report_ingest_max_batch", NULL, (double)st.max_batch);
    mu_metrics_family(b, "mutualis_report_ingest_queued", "gauge",
                      "Reports waiting for the writer now.");
    mu_metrics_sample(b, "mutualis_report_ingest_queued", NULL, (double)st.queued);
}

int mu_h_metrics(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_app *app = req->app;
    struct mu_buf b;
    mu_buf_init(&b);
    int r = write_nodes(app, &b, err);
    if (r >= 0)
        r = write_vms(app, &b, err);
    if (r >= 0)
        r = write_tenants(app, &b, err);
    if (r >= 0)
        r = write_alerts(app, &b, err);
    if (r < 0) {
        mu_buf_free(&b);
        return r;
    }
    write_ingest(app, &b);
    mu_metrics_family(&b, "mutualis_operations_pending", "gauge",
                      "Operations pending or running (the operation queue's depth).");
    mu_metrics_sample(&b, "mutualis_operations_pending", NULL,
                      (double)mu_store_op_pending_count(app->store));
    mu_metrics_write_http(&b);
    resp->raw_len = b.len;
    resp->raw = mu_buf_steal(&b);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return MU_OK;
}
