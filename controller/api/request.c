/* Request helpers for handlers: query and header lookup, the JSON body, path ids,
 * pagination, tenant scope and audit records. */
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "mutualis/json.h"

#define PAGE_LIMIT_DEFAULT 100
#define PAGE_LIMIT_MAX     1000

const char *mu_req_query(const struct mu_req *req, const char *key)
{
    if (!req->lookup || !key)
        return NULL;
    return req->lookup(req->conn, MU_REQ_QUERY, key);
}

const char *mu_req_header(const struct mu_req *req, const char *key)
{
    if (!req->lookup || !key)
        return NULL;
    return req->lookup(req->conn, MU_REQ_HEADER, key);
}

/* "application/json", optionally followed by parameters ("; charset=utf-8"). */
static bool media_type_is_json(const char *ct)
{
    static const char json[] = "application/json";
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, json, sizeof json - 1) != 0)
        return false;
    ct += sizeof json - 1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

cJSON *mu_req_json(const struct mu_req *req, struct mu_err *err)
{
    if (!req->body || req->body_len == 0) {
        mu_err_set(err, MU_EINVAL, "this request needs a JSON object as its body");
        return NULL;
    }
    if (!media_type_is_json(mu_req_header(req, "Content-Type"))) {
        mu_err_set(err, MU_EUNSUPPORTED,
                   "send the body as JSON with the header 'Content-Type: application/json'");
        return NULL;
    }
    cJSON *root = mu_json_parse(req->body, req->body_len, "request body", err);
    if (!root)
        return NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        mu_err_set(err, MU_EINVAL, "the request body must be a JSON object ({...})");
        return NULL;
    }
    return root;
}

/* True if s is short and made of characters that are safe to echo in a message. */
static bool echo_safe(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok || n >= 40)
            return false;
    }
    return true;
}

int mu_req_param_id(const struct mu_req *req, size_t i, const char *what, int64_t *ret,
                    struct mu_err *err)
{
    if (i >= req->nparams || !req->params[i])
        return mu_err_set(err, MU_EINTERNAL, "route has no path parameter %zu", i);
    const char *s = req->params[i];
    /* Digits only: "+5", " 5" or "0x5" are not ids. */
    bool digits = *s != '\0';
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            digits = false;
    int64_t v = 0;
    if (!digits || mu_parse_i64(s, 1, INT64_MAX, &v) != 0) {
        if (echo_safe(s))
            return mu_err_set(err, MU_ENOTFOUND, "no %s %s", what, s);
        return mu_err_set(err, MU_ENOTFOUND, "no %s with this id", what);
    }
    *ret = v;
    return MU_OK;
}

int mu_req_page(const struct mu_req *req, int *ret_limit, int64_t *ret_after, struct mu_err *err)
{
    int64_t limit = PAGE_LIMIT_DEFAULT, after = 0;
    const char *v = mu_req_query(req, "limit");
    if (v && mu_parse_i64(v, 1, PAGE_LIMIT_MAX, &limit) != 0)
        return mu_err_setf(err, MU_EINVAL, "limit", "limit must be an integer from 1 to %d",
                           PAGE_LIMIT_MAX);
    v = mu_req_query(req, "after");
    if (v && mu_parse_i64(v, 0, INT64_MAX, &after) != 0)
        return mu_err_setf(err, MU_EINVAL, "after",
                           "after must be an id (an integer >= 0) from a previous page");
    *ret_limit = (int)limit;
    *ret_after = after;
    return MU_OK;
}

int mu_req_check_tenant(const struct mu_req *req, int64_t tenant_id, struct mu_err *err)
{
    if (req->authenticated && mu_principal_is_global(&req->principal))
        return MU_OK;
    if (req->authenticated && req->principal.tenant_id > 0 && tenant_id > 0 &&
        mu_store_tenant_in_subtree(req->app->store, req->principal.tenant_id, tenant_id))
        return MU_OK;
    /* Cross-tenant access answers as if the tenant did not exist. */
    return mu_err_set(err, MU_ENOTFOUND, "no tenant %lld", (long long)tenant_id);
}

void mu_req_audit(const struct mu_req *req, struct mu_audit_rec *rec, int64_t tenant_id,
                  const char *target)
{
    memset(rec, 0, sizeof *rec);
    rec->actor = req->authenticated ? req->principal.user_name : "anonymous";
    rec->role = req->authenticated ? req->principal.role : "";
    rec->tenant_id = tenant_id;
    rec->action = req->route ? req->route->action : NULL;
    rec->target = target;
    rec->outcome = "ok";
    rec->request_id = req->request_id;
    rec->detail = NULL;
}
