/* /v1/tokens: API tokens. The secret is returned once, at creation; only its SHA-256 is
 * kept. Operators manage all tokens, tenant-admins those of users in their subtree, and
 * everyone their own. */
#include <string.h>

#include "api/handlers.h"
#include "mutualis/json.h"
#include "mutualis/validate.h"

static cJSON *token_json(const struct mu_token *t)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", t->id);
    mu_json_add_i64(o, "user_id", t->user_id);
    mu_json_add_str(o, "name", t->name);
    mu_json_add_time(o, "created_at", t->created_ms);
    mu_json_add_time(o, "expires_at", t->expires_ms);
    mu_json_add_time(o, "revoked_at", t->revoked_ms);
    mu_json_add_time(o, "last_used_at", t->last_used_ms);
    return o;
}

static bool is_operator(const struct mu_req *req)
{
    return strcmp(req->principal.role, MU_ROLE_OPERATOR) == 0;
}

/* May the caller manage the tokens of user_id? Answers 404 when not, like any data the
 * caller cannot see. On success *ret_tenant is the user's tenant (for the audit). */
static int may_manage_user(struct mu_req *req, int64_t user_id, int64_t *ret_tenant,
                           struct mu_err *err)
{
    struct mu_user u = {0};
    int r = mu_store_user_get(req->app->store, user_id, &u, err);
    if (r < 0)
        return r;
    bool ok = user_id == req->principal.user_id || is_operator(req) ||
              (strcmp(req->principal.role, MU_ROLE_TENANT_ADMIN) == 0 && u.tenant_id > 0 &&
               mu_store_tenant_in_subtree(req->app->store, req->principal.tenant_id, u.tenant_id));
    *ret_tenant = u.tenant_id;
    mu_user_clear(&u);
    if (!ok)
        return mu_err_set(err, MU_ENOTFOUND, "no user %lld", (long long)user_id);
    return MU_OK;
}

int mu_h_token_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int limit;
    int64_t after;
    int r = mu_req_page(req, &limit, &after, err);
    if (r < 0)
        return r;
    int64_t user_id = is_operator(req) ? 0 : req->principal.user_id;
    const char *u = mu_req_query(req, "user");
    if (u) {
        if (mu_parse_i64(u, 1, INT64_MAX, &user_id) != 0)
            return mu_err_setf(err, MU_EINVAL, "user", "query parameter user must be a user id");
        int64_t tenant;
        if ((r = may_manage_user(req, user_id, &tenant, err)) < 0)
            return r;
    }
    struct mu_token *ts = NULL;
    size_t n = 0;
    r = mu_store_token_list(req->app->store, user_id, after, limit, &ts, &n, err);
    if (r < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, token_json(&ts[i]));
    resp->json = mu_h_list_answer(items, n, limit, n ? ts[n - 1].id : 0);
    mu_tokens_free(ts, n);
    return MU_OK;
}

int mu_h_token_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"name", "user_id", "expires_at", NULL};
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    struct mu_token t = {0};
    const char *name = NULL, *expires = NULL;
    int64_t tenant = 0;
    t.user_id = req->principal.user_id;
    int r = mu_json_expect_object(body, allowed, "token", err);
    if (r == 0)
        r = mu_json_get_str(body, "name", true, 63, &name, err);
    if (r == 0 && !mu_ident_valid(name))
        r = mu_err_setf(err, MU_EINVAL, "name",
                        "name must be 1-63 characters of a-z, 0-9, '.', '_' or '-'");
    if (r >= 0)
        r = mu_json_get_i64(body, "user_id", false, 1, INT64_MAX, &t.user_id, err);
    if (r >= 0 && (r = mu_json_get_str(body, "expires_at", false, 40, &expires, err)) == 0) {
        if (mu_parse_time(expires, &t.expires_ms) != 0)
            r = mu_err_setf(err, MU_EINVAL, "expires_at",
                            "expires_at must be an RFC 3339 UTC time like "
                            "2027-01-31T00:00:00Z");
        else if (t.expires_ms <= mu_now_ms())
            r = mu_err_setf(err, MU_EINVAL, "expires_at", "expires_at must be in the future");
    }
    if (r >= 0)
        r = may_manage_user(req, t.user_id, &tenant, err);
    if (r >= 0)
        t.name = mu_xstrdup(name);
    cJSON_Delete(body);
    if (r < 0) {
        mu_token_clear(&t);
        return r;
    }
    char secret[MU_TOKEN_LEN + 1];
    mu_auth_token_generate(secret, t.hash);
    t.created_ms = mu_now_ms();
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("user/%lld/token:%s", (long long)t.user_id, t.name);
    mu_req_audit(req, &rec, tenant, target);
    int64_t id = 0;
    r = mu_store_token_insert(req->app->store, &t, &rec, &id, err);
    mu_token_clear(&t);
    if (r == 0) {
        struct mu_token got = {0};
        r = mu_store_token_get(req->app->store, id, &got, err);
        if (r == 0) {
            resp->json = token_json(&got);
            mu_json_add_str(resp->json, "secret", secret);
            resp->status = 201;
            resp->location = mu_xasprintf("/v1/tokens/%lld", (long long)id);
        }
        mu_token_clear(&got);
    }
    memset(secret, 0, sizeof secret);
    return r;
}

int mu_h_token_revoke(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id, tenant = 0;
    int r = mu_req_param_id(req, 0, "token", &id, err);
    if (r < 0)
        return r;
    struct mu_token t = {0};
    r = mu_store_token_get(req->app->store, id, &t, err);
    if (r == 0 && (r = may_manage_user(req, t.user_id, &tenant, err)) < 0) {
        mu_err_clear(err);
        r = mu_err_set(err, MU_ENOTFOUND, "no token %lld", (long long)id);
    }
    mu_token_clear(&t);
    if (r < 0)
        return r;
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("token/%lld", (long long)id);
    mu_req_audit(req, &rec, tenant, target);
    r = mu_store_token_revoke(req->app->store, id, &rec, err);
    if (r < 0)
        return r;
    resp->status = 204;
    return MU_OK;
}
