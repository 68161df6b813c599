/* GET /v1/alerts: the alerts the monitor recorded (store/alerts.h), firing by default,
 * ?state=firing|resolved|all, paginated by id. And the wiring of the alert monitor
 * (alerts/alerts.h) to the application: its policies under policy_lock, and the N+1
 * verdict of the capacity monitor. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "alerts/alerts.h"
#include "api/handlers.h"
#include "mutualis/json.h"
#include "mutualis/util.h"
#include "store/alerts.h"
#include "tenancy/quotas.h"

int mu_h_alert_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_alert_filter f = {.state = "firing"};
    int r = mu_req_page(req, &f.limit, &f.after_id, err);
    if (r < 0)
        return r;
    const char *state = mu_req_query(req, "state");
    if (state) {
        if (strcmp(state, "all") == 0)
            f.state = NULL;
        else if (strcmp(state, "firing") == 0 || strcmp(state, "resolved") == 0)
            f.state = state;
        else
            return mu_err_setf(err, MU_EINVAL, "state",
                               "state must be firing, resolved or all (default firing)");
    }
    struct mu_alert *as = NULL;
    size_t n = 0;
    if ((r = mu_store_alert_list(req->app->store, &f, &as, &n, err)) < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++) {
        const struct mu_alert *a = &as[i];
        cJSON *o = mu_json_obj();
        mu_json_add_i64(o, "id", a->id);
        mu_json_add_str(o, "rule", a->rule);
        mu_json_add_str(o, "subject", a->subject);
        mu_json_add_str(o, "severity", a->severity);
        mu_json_add_str(o, "state", a->state);
        mu_json_add_str(o, "detail", a->detail);
        mu_json_add_i64(o, "pending_ms", a->pending_ms);
        mu_json_add_i64(o, "since_ms", a->since_ms);
        mu_json_add_i64_pos(o, "resolved_ms", a->resolved_ms);
        mu_json_add_i64(o, "last_eval_ms", a->last_eval_ms);
        mu_json_add_time(o, "since", a->since_ms);
        mu_json_add_time(o, "resolved", a->resolved_ms);
        cJSON_AddItemToArray(items, o);
    }
    resp->json = mu_h_list_answer(items, n, f.limit, n ? as[n - 1].id : 0);
    mu_alerts_free(as, n);
    return MU_OK;
}

/* ---- the monitor's view of the application ------------------------------------------- */

static void with_policies(void *ctx, mu_alerts_policies_fn fn, void *arg)
{
    struct mu_app *app = ctx;
    struct mu_alert_policy defaults;
    pthread_rwlock_rdlock(&app->policy_lock);
    const struct mu_alert_policy *ap = app->alert_policy;
    if (!ap) {
        mu_alert_policy_defaults(&defaults);
        ap = &defaults;
    }
    struct mu_quota_defaults qd = mu_quota_policy_defaults(app->quotas);
    fn(arg, ap, app->placement, &qd);
    pthread_rwlock_unlock(&app->policy_lock);
}

static int n_plus_1(void *ctx, bool *ret_ok, char *summary, size_t summary_len)
{
    struct mu_app *app = ctx;
    struct mu_err err = {0};
    if (!app->capmon) /* no background check: not computed here on the alert thread */
        return 0;
    return mu_capmon_verdict(app, ret_ok, summary, summary_len, &err) == 1 ? 1 : 0;
}

struct mu_alerts *mu_api_alerts_start(struct mu_app *app, int64_t interval_ms, struct mu_err *err)
{
    struct mu_alerts_opts o = {.store = app->store,
                               .interval_ms = interval_ms,
                               .with_policies = with_policies,
                               .n_plus_1 = n_plus_1,
                               .ctx = app};
    return mu_alerts_start(&o, err);
}
