/* /v1/tenants/{id}/webhook: one webhook per tenant. The signing secret is generated here and
 * answered once (at creation and when rotated); never shown again. The URL is checked
 * against the webhook rules (notify/notify.h) before anything is stored. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "mutualis/json.h"
#include "notify/notify.h"
#include "store/webhooks.h"

#define TYPES_MAX    16
#define ATTEMPTS_MAX 10

static cJSON *webhook_json(struct mu_req *req, const struct mu_webhook *w)
{
    cJSON *o = mu_json_obj();
    struct mu_err perr = {0};
    cJSON *types = mu_json_parse(w->types_json, strlen(w->types_json), "types", &perr);
    mu_json_add_i64(o, "tenant_id", w->tenant_id);
    mu_json_add_str(o, "url", w->url);
    mu_json_add_bool(o, "enabled", w->enabled);
    cJSON_AddItemToObject(o, "types", types ? types : mu_json_arr());
    mu_json_add_time(o, "created_at", w->created_ms);
    mu_json_add_time(o, "updated_at", w->updated_ms);
    mu_json_add_time(o, "secret_created_at", w->secret_ms);
    mu_json_add_i64(o, "cursor", w->cursor);

    cJSON *s = mu_json_obj();
    mu_json_add_str(s, "last_outcome", w->last_outcome);
    mu_json_add_time(s, "last_attempt_at", w->last_attempt_ms);
    mu_json_add_i64_pos(s, "last_event_id", w->last_event_id);
    mu_json_add_i64_pos(s, "last_http_status", w->last_http_status);
    mu_json_add_str(s, "last_error", w->last_error);
    mu_json_add_i64(s, "consecutive_failures", w->consecutive_failures);
    mu_json_add_i64(s, "pending", w->pending);
    mu_json_add_i64(s, "delivered", w->delivered);
    mu_json_add_i64(s, "failed", w->failed);
    cJSON_AddItemToObject(o, "status", s);

    struct mu_webhook_attempt_row *rows = NULL;
    size_t n = 0;
    struct mu_err err = {0};
    cJSON *arr = mu_json_arr();
    if (mu_store_webhook_attempts(req->app->store, w->tenant_id, ATTEMPTS_MAX, &rows, &n, &err) ==
        0) {
        for (size_t i = 0; i < n; i++) {
            cJSON *a = mu_json_obj();
            mu_json_add_i64(a, "event_id", rows[i].event_id);
            mu_json_add_time(a, "at", rows[i].at_ms);
            mu_json_add_i64(a, "duration_ms", rows[i].duration_ms);
            mu_json_add_str(a, "outcome", rows[i].outcome);
            mu_json_add_i64_pos(a, "http_status", rows[i].http_status);
            mu_json_add_str(a, "error", rows[i].error);
            cJSON_AddItemToArray(arr, a);
        }
        mu_webhook_attempt_rows_free(rows, n);
    }
    cJSON_AddItemToObject(o, "recent_attempts", arr);
    return o;
}

int mu_h_webhook_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "tenant", &id, err);
    if (r < 0 || (r = mu_req_check_tenant(req, id, err)) < 0)
        return r;
    struct mu_webhook w;
    if ((r = mu_store_webhook_get(req->app->store, id, &w, err)) < 0)
        return r;
    resp->json = webhook_json(req, &w);
    mu_webhook_clear(&w);
    return MU_OK;
}

/* types: an array of distinct type prefixes, as canonical JSON text (caller frees). */
static int types_field(const cJSON *body, char **ret, struct mu_err *err)
{
    const cJSON *arr = NULL, *it;
    int r = mu_json_get_array(body, "types", false, &arr, err);
    if (r < 0)
        return r;
    cJSON *out = mu_json_arr();
    if (arr && cJSON_GetArraySize(arr) > TYPES_MAX) {
        cJSON_Delete(out);
        return mu_err_setf(err, MU_EINVAL, "types", "types lists at most %d prefixes", TYPES_MAX);
    }
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || !mu_notify_type_prefix_valid(it->valuestring)) {
            cJSON_Delete(out);
            return mu_err_setf(err, MU_EINVAL, "types",
                               "types must list event types or their beginnings, such as "
                               "\"request.\" or \"alert.firing\" (1 to 64 of a-z, 0-9, '.', '_', "
                               "'-')");
        }
        bool dup = false;
        const cJSON *seen;
        cJSON_ArrayForEach(seen, out) dup = dup || strcmp(seen->valuestring, it->valuestring) == 0;
        if (!dup)
            cJSON_AddItemToArray(out, cJSON_CreateString(it->valuestring));
    }
    *ret = mu_json_print(out);
    cJSON_Delete(out);
    return MU_OK;
}

int mu_h_webhook_put(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"url", "enabled", "types", "rotate_secret", NULL};
    int64_t id;
    int r = mu_req_param_id(req, 0, "tenant", &id, err);
    if (r < 0 || (r = mu_req_check_tenant(req, id, err)) < 0)
        return r;
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    const char *url = NULL;
    bool enabled = true, rotate = false;
    MU_AUTOFREE char *types = NULL;
    MU_AUTOFREE char *url_copy = NULL;
    r = mu_json_expect_object(body, allowed, "webhook", err);
    if (r >= 0)
        r = mu_json_get_str(body, "url", true, MU_NOTIFY_URL_MAX, &url, err);
    if (r >= 0)
        r = mu_json_get_bool(body, "enabled", false, &enabled, err);
    if (r >= 0)
        r = mu_json_get_bool(body, "rotate_secret", false, &rotate, err);
    if (r >= 0)
        r = types_field(body, &types, err);
    if (r >= 0)
        r = mu_notify_url_check(url, req->app->webhook_allow, NULL, req->app->store, NULL, err);
    if (r >= 0)
        url_copy = mu_xstrdup(url);
    cJSON_Delete(body);
    if (r < 0)
        return r;

    /* A secret for a new webhook or on request; the existing one otherwise. */
    struct mu_webhook w;
    char secret[MU_NOTIFY_SECRET_HEX + 1] = "";
    r = mu_store_webhook_get(req->app->store, id, &w, err);
    if (r == MU_ENOTFOUND) {
        mu_err_clear(err);
        rotate = true;
    } else if (r < 0) {
        return r;
    } else {
        mu_webhook_clear(&w);
    }
    if (rotate)
        mu_notify_secret_new(secret);
    struct mu_webhook_set set = {.tenant_id = id,
                                 .url = url_copy,
                                 .enabled = enabled,
                                 .types_json = types,
                                 .secret = rotate ? secret : NULL};
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("tenant/%" PRId64 "/webhook", id);
    mu_req_audit(req, &rec, id, target);
    bool created = false;
    r = mu_store_webhook_put(req->app->store, &set, &rec, &created, err);
    if (r >= 0)
        r = mu_store_webhook_get(req->app->store, id, &w, err);
    if (r < 0) {
        memset(secret, 0, sizeof secret);
        return r;
    }
    resp->json = webhook_json(req, &w);
    mu_webhook_clear(&w);
    if (rotate)
        mu_json_add_str(resp->json, "secret", secret);
    memset(secret, 0, sizeof secret);
    resp->status = created ? 201 : 200;
    mu_notify_wake(req->app->notify);
    return MU_OK;
}

int mu_h_webhook_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "tenant", &id, err);
    if (r < 0 || (r = mu_req_check_tenant(req, id, err)) < 0)
        return r;
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("tenant/%" PRId64 "/webhook", id);
    mu_req_audit(req, &rec, id, target);
    if ((r = mu_store_webhook_delete(req->app->store, id, &rec, err)) < 0)
        return r;
    resp->status = 204;
    return MU_OK;
}
