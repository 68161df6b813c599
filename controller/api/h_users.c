/* /v1/users: accounts with a role and, for tenant roles, a tenant scope. Operators manage
 * everyone; a tenant-admin manages tenant-role users inside its own subtree. */
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "mutualis/json.h"
#include "mutualis/validate.h"

static cJSON *user_json(const struct mu_user *u)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", u->id);
    mu_json_add_str(o, "name", u->name);
    mu_json_add_str(o, "display_name", u->display_name);
    mu_json_add_str(o, "email", u->email);
    mu_json_add_str(o, "role", u->role);
    mu_json_add_i64_pos(o, "tenant_id", u->tenant_id);
    mu_json_add_bool(o, "disabled", u->disabled);
    mu_json_add_bool(o, "has_password", u->password_hash != NULL);
    mu_json_add_time(o, "created_at", u->created_ms);
    return o;
}

/* May the caller see/manage user u? Global roles: yes; tenant roles: only tenant-role users
 * whose tenant lies in the caller's subtree. Otherwise 404, as for any other tenant's data. */
static int user_visible(struct mu_req *req, const struct mu_user *u, struct mu_err *err)
{
    if (mu_principal_is_global(&req->principal))
        return MU_OK;
    if (u->tenant_id <= 0 ||
        !mu_store_tenant_in_subtree(req->app->store, req->principal.tenant_id, u->tenant_id))
        return mu_err_set(err, MU_ENOTFOUND, "no user %lld", (long long)u->id);
    return MU_OK;
}

static int load_user(struct mu_req *req, struct mu_user *ret, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "user", &id, err);
    if (r < 0)
        return r;
    r = mu_store_user_get(req->app->store, id, ret, err);
    if (r < 0)
        return r;
    r = user_visible(req, ret, err);
    if (r < 0)
        mu_user_clear(ret);
    return r;
}

/* Checks role/tenant coherence and that the caller may grant them. */
static int check_grant(struct mu_req *req, const char *role, int64_t tenant_id, struct mu_err *err)
{
    if (!mu_role_valid(role))
        return mu_err_setf(err, MU_EINVAL, "role",
                           "role must be one of operator, observer, tenant-admin, tenant-reader");
    if (mu_role_is_tenant(role) && tenant_id <= 0)
        return mu_err_setf(err, MU_EINVAL, "tenant_id", "role %s needs a tenant_id", role);
    if (!mu_role_is_tenant(role) && tenant_id > 0)
        return mu_err_setf(err, MU_EINVAL, "tenant_id",
                           "role %s applies to the whole data centre: omit tenant_id", role);
    if (!mu_principal_is_global(&req->principal) && !mu_role_is_tenant(role))
        return mu_err_setf(err, MU_EFORBIDDEN, "role", "you may only grant tenant roles");
    if (tenant_id > 0) {
        int r = mu_req_check_tenant(req, tenant_id, err);
        if (r < 0)
            return r;
        struct mu_tenant t = {0};
        r = mu_store_tenant_get(req->app->store, tenant_id, &t, err);
        mu_tenant_clear(&t);
        if (r < 0)
            return r;
    }
    return MU_OK;
}

static int read_password(const cJSON *body, char **ret_hash, struct mu_err *err)
{
    const char *pw = NULL;
    int r = mu_json_get_str(body, "password", false, 256, &pw, err);
    if (r < 0)
        return r;
    if (r == 1)
        return 1;
    r = mu_auth_password_check(pw, err);
    if (r < 0)
        return r;
    *ret_hash = mu_auth_password_hash(pw);
    return MU_OK;
}

int mu_h_user_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_user_filter f = {0};
    int r = mu_req_page(req, &f.limit, &f.after_id, err);
    if (r < 0)
        return r;
    if (!mu_principal_is_global(&req->principal))
        f.scope_id = req->principal.tenant_id;
    struct mu_user *us = NULL;
    size_t n = 0;
    r = mu_store_user_list(req->app->store, &f, &us, &n, err);
    if (r < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, user_json(&us[i]));
    resp->json = mu_h_list_answer(items, n, f.limit, n ? us[n - 1].id : 0);
    mu_users_free(us, n);
    return MU_OK;
}

int mu_h_user_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"name",      "display_name", "email", "role",
                                          "tenant_id", "password",     NULL};
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    struct mu_user u = {0};
    const char *name = NULL, *display = NULL, *email = NULL, *role = NULL;
    int r = mu_json_expect_object(body, allowed, "user", err);
    if (r == 0)
        r = mu_json_get_str(body, "name", true, 63, &name, err);
    if (r == 0 && !mu_ident_valid(name))
        r = mu_err_setf(err, MU_EINVAL, "name",
                        "name must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting "
                        "with a letter or digit");
    if (r >= 0)
        r = mu_json_get_str(body, "display_name", false, 200, &display, err);
    if (r >= 0 && display && !mu_name_valid(display, 200))
        r = mu_err_setf(err, MU_EINVAL, "display_name",
                        "display_name must be printable text without leading or trailing spaces");
    if (r >= 0)
        r = mu_json_get_str(body, "email", false, 254, &email, err);
    if (r >= 0 && email && !mu_email_valid(email))
        r = mu_err_setf(err, MU_EINVAL, "email", "email is not a valid e-mail address");
    if (r >= 0)
        r = mu_json_get_str(body, "role", true, 32, &role, err);
    if (r >= 0)
        r = mu_json_get_i64(body, "tenant_id", false, 1, INT64_MAX, &u.tenant_id, err);
    if (r >= 0)
        r = check_grant(req, role, u.tenant_id, err);
    if (r >= 0)
        r = read_password(body, &u.password_hash, err);
    if (r >= 0) {
        u.name = mu_xstrdup(name);
        u.display_name = mu_xstrdup(display);
        u.email = mu_xstrdup(email);
        u.role = mu_xstrdup(role);
    }
    cJSON_Delete(body);
    int64_t id = 0;
    if (r >= 0) {
        struct mu_audit_rec rec;
        MU_AUTOFREE char *target = mu_xasprintf("user:%s", u.name);
        mu_req_audit(req, &rec, u.tenant_id, target);
        r = mu_store_user_insert(req->app->store, &u, &rec, &id, err);
    }
    mu_user_clear(&u);
    if (r < 0)
        return r;
    struct mu_user got = {0};
    r = mu_store_user_get(req->app->store, id, &got, err);
    if (r < 0)
        return r;
    resp->json = user_json(&got);
    resp->status = 201;
    resp->location = mu_xasprintf("/v1/users/%lld", (long long)id);
    mu_user_clear(&got);
    return MU_OK;
}

int mu_h_user_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_user u = {0};
    int r = load_user(req, &u, err);
    if (r < 0)
        return r;
    resp->json = user_json(&u);
    mu_user_clear(&u);
    return MU_OK;
}

int mu_h_user_update(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"display_name", "email",    "role", "tenant_id",
                                          "password",     "disabled", NULL};
    struct mu_user u = {0};
    int r = load_user(req, &u, err);
    if (r < 0)
        return r;
    cJSON *body = mu_req_json(req, err);
    if (!body) {
        mu_user_clear(&u);
        return err->code;
    }
    const char *display = NULL, *email = NULL, *role = NULL;
    r = mu_json_expect_object(body, allowed, "user", err);
    if (r >= 0 && (r = mu_json_get_str(body, "display_name", false, 200, &display, err)) == 0) {
        if (!mu_name_valid(display, 200))
            r = mu_err_setf(err, MU_EINVAL, "display_name",
                            "display_name must be printable text without leading or trailing "
                            "spaces");
        else {
            free(u.display_name);
            u.display_name = mu_xstrdup(display);
        }
    }
    if (r >= 0 && (r = mu_json_get_str(body, "email", false, 254, &email, err)) == 0) {
        if (!mu_email_valid(email))
            r = mu_err_setf(err, MU_EINVAL, "email", "email is not a valid e-mail address");
        else {
            free(u.email);
            u.email = mu_xstrdup(email);
        }
    }
    if (r >= 0 && (r = mu_json_get_str(body, "role", false, 32, &role, err)) == 0) {
        free(u.role);
        u.role = mu_xstrdup(role);
    }
    if (r >= 0) {
        const cJSON *tid = cJSON_GetObjectItemCaseSensitive(body, "tenant_id");
        if (tid && cJSON_IsNull(tid))
            u.tenant_id = 0;
        else
            r = mu_json_get_i64(body, "tenant_id", false, 1, INT64_MAX, &u.tenant_id, err);
    }
    if (r >= 0)
        r = check_grant(req, u.role, u.tenant_id, err);
    bool disabled = u.disabled;
    if (r >= 0 && (r = mu_json_get_bool(body, "disabled", false, &disabled, err)) >= 0)
        u.disabled = disabled;
    char *hash = NULL;
    if (r >= 0 && (r = read_password(body, &hash, err)) == 0) {
        free(u.password_hash);
        u.password_hash = hash;
    }
    cJSON_Delete(body);
    if (r >= 0 && u.id == req->principal.user_id &&
        (u.disabled || strcmp(u.role, req->principal.role) != 0))
        r = mu_err_set(err, MU_ECONFLICT,
                       "you cannot disable yourself or change your own role: ask another "
                       "administrator");
    if (r >= 0) {
        struct mu_audit_rec rec;
        MU_AUTOFREE char *target = mu_xasprintf("user/%lld", (long long)u.id);
        mu_req_audit(req, &rec, u.tenant_id, target);
        r = mu_store_user_update(req->app->store, &u, &rec, err);
    }
    if (r >= 0)
        resp->json = user_json(&u);
    mu_user_clear(&u);
    return r < 0 ? r : MU_OK;
}

int mu_h_user_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_user u = {0};
    int r = load_user(req, &u, err);
    if (r < 0)
        return r;
    if (u.id == req->principal.user_id)
        r = mu_err_set(err, MU_ECONFLICT,
                       "you cannot delete your own account: ask another administrator");
    if (r >= 0) {
        struct mu_audit_rec rec;
        MU_AUTOFREE char *target = mu_xasprintf("user/%lld", (long long)u.id);
        mu_req_audit(req, &rec, u.tenant_id, target);
        r = mu_store_user_delete(req->app->store, u.id, &rec, err);
    }
    mu_user_clear(&u);
    if (r < 0)
        return r;
    resp->status = 204;
    return MU_OK;
}
