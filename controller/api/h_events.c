/* /v1/events: the event feed. Operators and observers read every tenant's events (or a
 * subtree with ?tenant=); tenant roles read their own scope's subtree only. */
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "mutualis/json.h"
#include "notify/notify.h"
#include "store/events.h"

int mu_h_event_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_event_filter f = {0};
    int limit = 0;
    int r = mu_req_page(req, &limit, &f.after_id, err);
    if (r < 0)
        return r;
    f.limit = (size_t)limit;
    const char *tenant = mu_req_query(req, "tenant");
    if (tenant) {
        if (mu_parse_i64(tenant, 1, INT64_MAX, &f.tenant_id) != 0)
            return mu_err_setf(err, MU_EINVAL, "tenant", "tenant must be a tenant id");
        if ((r = mu_req_check_tenant(req, f.tenant_id, err)) < 0)
            return r;
    } else if (!mu_principal_is_global(&req->principal)) {
        f.tenant_id = req->principal.tenant_id;
    }
    f.type_prefix = mu_req_query(req, "type");
    if (f.type_prefix && !mu_notify_type_prefix_valid(f.type_prefix))
        return mu_err_setf(err, MU_EINVAL, "type",
                           "type must be an event type or its beginning, such as \"request.\" "
                           "(1 to 64 of a-z, 0-9, '.', '_', '-')");

    struct mu_event *es = NULL;
    size_t n = 0;
    if ((r = mu_store_event_list(req->app->store, &f, &es, &n, err)) < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++) {
        const struct mu_event *e = &es[i];
        struct mu_err perr = {0};
        cJSON *o = mu_json_obj();
        cJSON *data = e->data ? mu_json_parse(e->data, strlen(e->data), "event data", &perr) : NULL;
        mu_json_add_i64(o, "id", e->id);
        mu_json_add_i64(o, "at_ms", e->at_ms);
        mu_json_add_time(o, "at", e->at_ms);
        mu_json_add_i64(o, "tenant_id", e->tenant_id);
        mu_json_add_str(o, "type", e->type);
        mu_json_add_str(o, "subject", e->subject);
        cJSON_AddItemToObject(o, "data", data ? data : mu_json_obj());
        cJSON_AddItemToArray(items, o);
    }
    int64_t last = n ? es[n - 1].id : 0;
    resp->json = mu_h_list_answer(items, n, limit, last);
    /* "next" is the feed's own name for the cursor; next_after is every list's. */
    cJSON_AddItemToObject(
        resp->json, "next",
        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(resp->json, "next_after"), false));
    mu_events_free(es, n);
    return MU_OK;
}
