/* /v1/tenants: the contractual tree. Validation lives in tenancy/, storage in store/;
 * handlers add scope (tenant roles see their subtree; others get 404) and auditing. */
#include <malloc.h>
#include <string.h>

#include "api/handlers.h"
#include "mutualis/json.h"
#include "mutualis/validate.h"
#include "tenancy/tenancy.h"

static int tenant_answer(struct mu_req *req, int64_t id, struct mu_resp *resp, int status,
                         struct mu_err *err)
{
    struct mu_tenant t = {0};
    int r = mu_store_tenant_get(req->app->store, id, &t, err);
    if (r < 0)
        return r;
    resp->json = mu_tenancy_to_json(&t);
    resp->status = status;
    mu_tenant_clear(&t);
    return MU_OK;
}

/* Reads {id} and checks the caller may see it (404 otherwise). */
static int tenant_param(struct mu_req *req, int64_t *ret_id, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "tenant", &id, err);
    if (r < 0)
        return r;
    r = mu_req_check_tenant(req, id, err);
    if (r < 0)
        return r;
    *ret_id = id;
    return MU_OK;
}

/* Optional integer query parameter >= min. 1 if absent. */
static int query_id(struct mu_req *req, const char *key, int64_t min, int64_t *ret,
                    struct mu_err *err)
{
    const char *v = mu_req_query(req, key);
    if (!v)
        return 1;
    if (mu_parse_i64(v, min, INT64_MAX, ret) != 0)
        return mu_err_setf(err, MU_EINVAL, key, "query parameter %s must be an integer >= %lld",
                           key, (long long)min);
    return MU_OK;
}

int mu_h_tenant_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_tenant_filter f = {.parent_id = -1};
    int r = mu_req_page(req, &f.limit, &f.after_id, err);
    if (r < 0)
        return r;
    if (mu_req_query(req, "parent") && mu_req_query(req, "subtree"))
        return mu_err_setf(err, MU_EINVAL, "parent", "use either parent or subtree, not both");
    if ((r = query_id(req, "parent", 0, &f.parent_id, err)) < 0)
        return r;
    if ((r = query_id(req, "subtree", 1, &f.subtree_of, err)) < 0)
        return r;
    f.kind = mu_req_query(req, "kind");
    if (f.kind && !mu_tenant_kind_valid(f.kind))
        return mu_err_setf(err, MU_EINVAL, "kind",
                           "kind must be one of syndicat, epci, commune, departement, other");
    f.status = mu_req_query(req, "status");
    if (f.status && !mu_tenant_status_valid(f.status))
        return mu_err_setf(err, MU_EINVAL, "status",
                           "status must be one of active, suspended, archived");
    f.q = mu_req_query(req, "q");
    if (f.q && (strlen(f.q) > 200 || !mu_utf8_valid(f.q, strlen(f.q))))
        return mu_err_setf(err, MU_EINVAL, "q", "q must be UTF-8 text of at most 200 bytes");
    if (!mu_principal_is_global(&req->principal))
        f.scope_id = req->principal.tenant_id;

    struct mu_tenant *ts = NULL;
    size_t n = 0;
    r = mu_store_tenant_list(req->app->store, &f, &ts, &n, err);
    if (r < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, mu_tenancy_to_json(&ts[i]));
    resp->json = mu_h_list_answer(items, n, f.limit, n ? ts[n - 1].id : 0);
    mu_tenants_free(ts, n);
    return MU_OK;
}

int mu_h_tenant_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    struct mu_tenant t = {0};
    int r = mu_tenancy_from_create(body, &t, err);
    cJSON_Delete(body);
    if (r < 0)
        return r;
    if (!mu_principal_is_global(&req->principal)) {
        /* A tenant-scoped creator (if the policy allows one) creates inside its subtree. */
        if (t.parent_id <= 0) {
            mu_tenant_clear(&t);
            return mu_err_setf(err, MU_EFORBIDDEN, "parent_id",
                               "you may only create tenants under your own tenant");
        }
    }
    if (t.parent_id > 0 && (r = mu_req_check_tenant(req, t.parent_id, err)) < 0) {
        mu_tenant_clear(&t);
        return mu_err_setf(err, r, "parent_id", "parent tenant %lld does not exist",
                           (long long)t.parent_id);
    }
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("tenant:%s", t.name);
    mu_req_audit(req, &rec, t.parent_id, target);
    int64_t id = 0;
    r = mu_store_tenant_insert(req->app->store, &t, &rec, &id, err);
    mu_tenant_clear(&t);
    if (r < 0)
        return r;
    resp->location = mu_xasprintf("/v1/tenants/%lld", (long long)id);
    return tenant_answer(req, id, resp, 201, err);
}

int mu_h_tenant_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = tenant_param(req, &id, err);
    if (r < 0)
        return r;
    return tenant_answer(req, id, resp, 200, err);
}

int mu_h_tenant_update(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = tenant_param(req, &id, err);
    if (r < 0)
        return r;
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    struct mu_tenant t = {0};
    r = mu_store_tenant_get(req->app->store, id, &t, err);
    if (r == 0)
        r = mu_tenancy_apply_patch(body, &t, err);
    cJSON_Delete(body);
    if (r == 0) {
        struct mu_audit_rec rec;
        MU_AUTOFREE char *target = mu_xasprintf("tenant/%lld", (long long)id);
        mu_req_audit(req, &rec, id, target);
        r = mu_store_tenant_update(req->app->store, &t, &rec, err);
    }
    mu_tenant_clear(&t);
    if (r < 0)
        return r;
    return tenant_answer(req, id, resp, 200, err);
}

int mu_h_tenant_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = tenant_param(req, &id, err);
    if (r < 0)
        return r;
    if (!mu_principal_is_global(&req->principal) && id == req->principal.tenant_id)
        return mu_err_set(err, MU_EFORBIDDEN, "you cannot delete your own tenant");
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("tenant/%lld", (long long)id);
    mu_req_audit(req, &rec, id, target);
    r = mu_store_tenant_delete(req->app->store, id, &rec, err);
    if (r < 0)
        return r;
    resp->status = 204;
    return MU_OK;
}

int mu_h_tenant_move(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = tenant_param(req, &id, err);
    if (r < 0)
        return r;
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    static const char *const allowed[] = {"parent_id", NULL};
    int64_t parent = 0;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "parent_id");
    r = mu_json_expect_object(body, allowed, "move", err);
    if (r == 0 && !p)
        r = mu_err_setf(err, MU_EINVAL, "parent_id",
                        "parent_id is required (an id, or null to make the tenant a root)");
    if (r == 0 && !cJSON_IsNull(p))
        r = mu_json_get_i64(body, "parent_id", true, 1, INT64_MAX, &parent, err);
    cJSON_Delete(body);
    if (r < 0)
        return r;
    if (parent == 0 && !mu_principal_is_global(&req->principal))
        return mu_err_setf(err, MU_EFORBIDDEN, "parent_id",
                           "only operators may make a tenant a root");
    if (parent > 0 && (r = mu_req_check_tenant(req, parent, err)) < 0)
        return r;
    if (!mu_principal_is_global(&req->principal) && id == req->principal.tenant_id)
        return mu_err_set(err, MU_EFORBIDDEN, "you cannot move your own tenant");
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("tenant/%lld", (long long)id);
    MU_AUTOFREE char *detail = mu_xasprintf("new parent %lld", (long long)parent);
    mu_req_audit(req, &rec, id, target);
    rec.detail = detail;
    r = mu_store_tenant_move(req->app->store, id, parent, &rec, err);
    if (r < 0)
        return r;
    return tenant_answer(req, id, resp, 200, err);
}

int mu_h_tenant_import(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    if (!req->body || req->body_len == 0)
        return mu_err_set(err, MU_EINVAL,
                          "the import body is empty: send {\"parent_id\": …, "
                          "\"epci\": […], \"communes\": […]}");
    /* Parse and plan without any lock: the store's write lock is held only for the apply. */
    struct mu_import_plan *plan = NULL;
    int r = mu_import_plan_build(req->body, req->body_len, &plan, err);
    if (r < 0)
        goto out;
    r = mu_req_check_tenant(req, plan->parent_id, err);
    if (r < 0)
        goto out;
    struct mu_tenant parent = {0};
    r = mu_store_tenant_get(req->app->store, plan->parent_id, &parent, err);
    mu_tenant_clear(&parent);
    if (r == MU_ENOTFOUND) {
        mu_err_clear(err);
        r = mu_err_setf(err, MU_EINVAL, "parent_id",
                        "parent tenant %lld does not exist: create the syndicat first, or name "
                        "an existing tenant",
                        (long long)plan->parent_id);
    }
    if (r < 0)
        goto out;
    struct mu_import_counts counts = {0};
    if (!plan->dry_run) {
        struct mu_audit_rec rec;
        MU_AUTOFREE char *target = mu_xasprintf("tenant/%lld", (long long)plan->parent_id);
        MU_AUTOFREE char *detail =
            mu_xasprintf("import of %zu entries, %zu rejected", plan->n, plan->nrejects);
        mu_req_audit(req, &rec, plan->parent_id, target);
        rec.detail = detail;
        r = mu_store_tenant_upsert_many(req->app->store, plan->entries, plan->n, &rec, &counts,
                                        err);
        if (r < 0)
            goto out;
    }
    cJSON *o = mu_json_obj();
    mu_json_add_bool(o, "dry_run", plan->dry_run);
    if (plan->dry_run) {
        mu_json_add_i64(o, "planned", (int64_t)plan->n);
    } else {
        mu_json_add_i64(o, "created", counts.created);
        mu_json_add_i64(o, "updated", counts.updated);
        mu_json_add_i64(o, "unchanged", counts.unchanged);
    }
    mu_json_add_i64(o, "rejected", (int64_t)plan->nrejects);
    mu_json_add_i64(o, "skipped", (int64_t)plan->skipped);
    cJSON *rej = mu_json_arr();
    for (size_t i = 0; i < plan->nrejects; i++) {
        cJSON *e = mu_json_obj();
        mu_json_add_str(e, "key", plan->rejects[i].key);
        mu_json_add_str(e, "reason", plan->rejects[i].reason);
        cJSON_AddItemToArray(rej, e);
    }
    cJSON_AddItemToObject(o, "rejects", rej);
    resp->json = o;
out:
    mu_import_plan_free(plan);
    /* A national import allocates tens of MB of short-lived nodes: give them back. */
    malloc_trim(0);
    return r;
}
