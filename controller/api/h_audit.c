/* /v1/audit: the HMAC-chained audit trail. Tenant roles see entries of their subtree. */
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "mutualis/json.h"
#include "mutualis/validate.h"

static int query_time(struct mu_req *req, const char *key, int64_t *ret, struct mu_err *err)
{
    const char *v = mu_req_query(req, key);
    if (v && mu_parse_time(v, ret) != 0)
        return mu_err_setf(err, MU_EINVAL, key,
                           "%s must be an RFC 3339 UTC time like 2026-11-28T00:00:00Z", key);
    return MU_OK;
}

int mu_h_audit_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_audit_filter f = {0};
    int r = mu_req_page(req, &f.limit, &f.after_id, err);
    if (r < 0)
        return r;
    const char *tenant = mu_req_query(req, "tenant");
    if (tenant) {
        if (mu_parse_i64(tenant, 1, INT64_MAX, &f.tenant_id) != 0)
            return mu_err_setf(err, MU_EINVAL, "tenant", "tenant must be a tenant id");
        if ((r = mu_req_check_tenant(req, f.tenant_id, err)) < 0)
            return r;
    }
    f.actor = mu_req_query(req, "actor");
    if (f.actor && strlen(f.actor) > 63)
        return mu_err_setf(err, MU_EINVAL, "actor", "actor must be a user name");
    if ((r = query_time(req, "since", &f.since_ms, err)) < 0 ||
        (r = query_time(req, "until", &f.until_ms, err)) < 0)
        return r;
    if (!mu_principal_is_global(&req->principal))
        f.scope_tenant_id = req->principal.tenant_id;

    struct mu_audit_entry *es = NULL;
    size_t n = 0;
    r = mu_store_audit_list(req->app->store, &f, &es, &n, err);
    if (r < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++) {
        const struct mu_audit_entry *e = &es[i];
        cJSON *o = mu_json_obj();
        mu_json_add_i64(o, "id", e->id);
        mu_json_add_time(o, "time", e->ts_ms);
        mu_json_add_str(o, "actor", e->actor);
        mu_json_add_str(o, "role", e->role);
        mu_json_add_i64_pos(o, "tenant_id", e->tenant_id);
        mu_json_add_str(o, "action", e->action);
        mu_json_add_str(o, "target", e->target);
        mu_json_add_str(o, "outcome", e->outcome);
        mu_json_add_str(o, "request_id", e->request_id);
        mu_json_add_str(o, "detail", e->detail);
        mu_json_add_str(o, "mac", e->mac);
        cJSON_AddItemToArray(items, o);
    }
    resp->json = mu_h_list_answer(items, n, f.limit, n ? es[n - 1].id : 0);
    mu_audit_entries_free(es, n);
    return MU_OK;
}

/* The last head the controller wrote beside the database (see main.c), if any. */
static void last_written_head(struct mu_app *app, int64_t *ret_id, char mac[65])
{
    MU_AUTOFREE char *path = mu_xasprintf("%s/audit.head", app->data_dir);
    MU_AUTOFREE char *text = mu_read_file(path, 256, NULL);
    long long id = 0;
    char m[65] = "";
    if (text && sscanf(text, "%lld %64[0-9a-f]", &id, m) == 2 && strlen(m) == 64) {
        *ret_id = id;
        memcpy(mac, m, 65);
    }
}

int mu_h_audit_verify(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"head_id", "head_mac", NULL};
    int64_t head_id = 0;
    const char *head_mac = NULL;
    char file_mac[65] = "";
    if (req->body && req->body_len > 0) {
        cJSON *body = mu_req_json(req, err);
        if (!body)
            return err->code;
        int r = mu_json_expect_object(body, allowed, "verify", err);
        if (r >= 0)
            r = mu_json_get_i64(body, "head_id", false, 1, INT64_MAX, &head_id, err);
        if (r >= 0)
            r = mu_json_get_str(body, "head_mac", head_id > 0, 64, &head_mac, err);
        if (r >= 0 && head_mac && strlen(head_mac) != 64)
            r = mu_err_setf(err, MU_EINVAL, "head_mac", "head_mac must be 64 hex characters");
        if (r >= 0 && head_mac)
            memcpy(file_mac, head_mac, 65);
        cJSON_Delete(body);
        if (r < 0)
            return r;
    }
    if (head_id == 0)
        last_written_head(req->app, &head_id, file_mac);
    struct mu_audit_verdict v;
    memset(&v, 0, sizeof v);
    int r = mu_store_audit_verify(req->app->store, head_id, head_id > 0 ? file_mac : NULL, &v, err);
    if (r < 0)
        return r;
    cJSON *o = mu_json_obj();
    mu_json_add_bool(o, "ok", v.ok);
    mu_json_add_i64(o, "checked", v.checked);
    mu_json_add_i64_pos(o, "first_bad_id", v.first_bad_id);
    mu_json_add_str(o, "reason", v.reason[0] ? v.reason : NULL);
    mu_json_add_i64(o, "head_id", v.head_id);
    mu_json_add_str(o, "head_mac", v.head_mac);
    if (head_id > 0)
        mu_json_add_i64(o, "expected_head_id", head_id);
    resp->json = o;
    return MU_OK;
}
