/* The router: matches method + path against the route table, then runs a request
 * through authentication, RBAC, the handler and auditing. Unauthenticated refusals are
 * counted per (source address, minute) and audited as one summary entry each, so that a
 * password-spraying client cannot grow the audit chain at the rate it sends requests. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "mutualis/log.h"
#include "mutualis/util.h"

#define ROUTER_MAX_SEGMENTS 32
#define ROUTER_TLS_SCRATCH  2048
#define REFUSALS_MAX        4096 /* distinct (source, minute) pairs kept; then one "other" bucket */
#define REFUSALS_OTHER      "other sources"

/* ---- matching --------------------------------------------------------------------- */

/* Splits the writable copy of a path into segments in place. -1 if the path does not
 * start with '/', has an empty segment or too many. */
static int split_path(char *p, char *seg[ROUTER_MAX_SEGMENTS])
{
    if (*p != '/')
        return -1;
    int n = 0;
    while (*p == '/') {
        *p++ = '\0';
        if (*p == '\0' || *p == '/' || n == ROUTER_MAX_SEGMENTS)
            return -1;
        seg[n++] = p;
        while (*p && *p != '/')
            p++;
    }
    return n;
}

static bool seg_is_param(const char *s, size_t len)
{
    return len >= 3 && s[0] == '{' && s[len - 1] == '}';
}

/* Matches pattern against the path segments. Returns false or true with *ret_score (one
 * bit per literal segment, the first segment the heaviest: a literal beats a parameter at
 * the first place they differ) and the params. */
static bool pattern_match(const char *pattern, char *const *seg, int nseg, uint64_t *ret_score,
                          const char *params[MU_MAX_PATH_PARAMS], size_t *ret_n)
{
    const char *p = pattern;
    uint64_t score = 0;
    size_t np = 0;
    for (int i = 0; i < nseg; i++) {
        if (*p != '/')
            return false;
        p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (seg_is_param(p, len)) {
            if (np == MU_MAX_PATH_PARAMS)
                return false;
            params[np++] = seg[i];
        } else {
            if (strlen(seg[i]) != len || memcmp(seg[i], p, len) != 0)
                return false;
            score |= (uint64_t)1 << (ROUTER_MAX_SEGMENTS - 1 - i);
        }
        p += len;
    }
    if (*p != '\0')
        return false;
    *ret_score = score;
    *ret_n = np;
    return true;
}

/* The most specific pattern of the table that matches the segments, or NULL. */
static const char *best_pattern(const struct mu_route *table, size_t n, char *const *seg, int nseg)
{
    const char *best = NULL;
    uint64_t best_score = 0;
    for (size_t i = 0; i < n; i++) {
        const char *tmp[MU_MAX_PATH_PARAMS];
        size_t tn = 0;
        uint64_t score = 0;
        if (pattern_match(table[i].pattern, seg, nseg, &score, tmp, &tn) &&
            (!best || score > best_score)) {
            best = table[i].pattern;
            best_score = score;
        }
    }
    return best;
}

const struct mu_route *mu_router_match_in(const struct mu_route *table, size_t n,
                                          const char *method, const char *path, char *scratch,
                                          const char *params[MU_MAX_PATH_PARAMS], size_t *ret_n,
                                          bool *ret_path_known)
{
    char *seg[ROUTER_MAX_SEGMENTS];
    *ret_path_known = false;
    *ret_n = 0;
    memcpy(scratch, path, strlen(path) + 1);
    /* The site root ("/", the portal) has no segment: only a "/" pattern matches it. */
    if (strcmp(path, "/") == 0) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(table[i].pattern, "/") != 0)
                continue;
            *ret_path_known = true;
            if (strcmp(table[i].method, method) == 0)
                return &table[i];
        }
        return NULL;
    }
    int nseg = split_path(scratch, seg);
    if (nseg <= 0)
        return NULL;
    /* The most specific pattern that matches the path decides the resource; the method
     * then picks the route among those with that very pattern (or it is a 405). */
    const char *best = best_pattern(table, n, seg, nseg);
    if (!best)
        return NULL;
    *ret_path_known = true;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].pattern, best) != 0 || strcmp(table[i].method, method) != 0)
            continue;
        uint64_t score = 0;
        pattern_match(table[i].pattern, seg, nseg, &score, params, ret_n);
        return &table[i];
    }
    return NULL;
}

const struct mu_route *mu_router_match(const char *method, const char *path,
                                       const char *params[MU_MAX_PATH_PARAMS], size_t *ret_n,
                                       bool *ret_path_known)
{
    static _Thread_local char scratch[ROUTER_TLS_SCRATCH];
    if (strlen(path) >= sizeof scratch) {
        *ret_n = 0;
        *ret_path_known = false;
        return NULL;
    }
    return mu_router_match_in(mu_routes, mu_routes_count, method, path, scratch, params, ret_n,
                              ret_path_known);
}

/* "GET, PATCH, DELETE": the methods of the resource at path (caller frees), or NULL if
 * no pattern matches. */
static char *allow_list(const struct mu_route *table, size_t n, const char *path)
{
    MU_AUTOFREE char *scratch = mu_xstrdup(path);
    char *seg[ROUTER_MAX_SEGMENTS];
    int nseg = split_path(scratch, seg);
    const char *best = nseg > 0 ? best_pattern(table, n, seg, nseg) : NULL;
    if (!best)
        return NULL;
    struct mu_buf b;
    mu_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].pattern, best) != 0)
            continue;
        if (b.len)
            mu_buf_puts(&b, ", ");
        mu_buf_puts(&b, table[i].method);
    }
    return mu_buf_steal(&b);
}

/* ---- responses -------------------------------------------------------------------- */

void mu_resp_header_add(struct mu_resp *resp, const char *name, const char *value)
{
    if (resp->nheaders >= MU_RESP_MAX_HEADERS)
        return;
    resp->headers[resp->nheaders].name = mu_xstrdup(name);
    resp->headers[resp->nheaders].value = mu_xstrdup(value);
    resp->nheaders++;
}

void mu_resp_clear(struct mu_resp *resp)
{
    cJSON_Delete(resp->json);
    free(resp->location);
    free(resp->raw);
    for (size_t i = 0; i < resp->nheaders && i < MU_RESP_MAX_HEADERS; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    memset(resp, 0, sizeof *resp);
}

/* Replaces whatever resp holds with a problem document. */
static void resp_problem(struct mu_resp *resp, int status, const struct mu_err *err,
                         const char *request_id)
{
    mu_resp_clear(resp);
    resp->status = status;
    resp->json = mu_problem_new(status, err, request_id);
}

/* ---- refusal counting ------------------------------------------------------------- */

struct refusal {
    char addr[48];
    int64_t minute; /* wall-clock minutes since the epoch */
    unsigned count;
};

static pthread_mutex_t refusals_lock = PTHREAD_MUTEX_INITIALIZER;
static struct refusal *refusals;
static size_t refusals_n, refusals_cap;
static int64_t refusals_oldest = INT64_MAX; /* smallest minute pending */

static void refusal_count(const char *addr)
{
    int64_t minute = mu_now_ms() / 60000;
    pthread_mutex_lock(&refusals_lock);
    struct refusal *slot = NULL;
    for (size_t i = 0; i < refusals_n && !slot; i++)
        if (refusals[i].minute == minute && strcmp(refusals[i].addr, addr) == 0)
            slot = &refusals[i];
    if (!slot && refusals_n >= REFUSALS_MAX) {
        addr = REFUSALS_OTHER; /* bounded memory whatever the number of sources */
        for (size_t i = 0; i < refusals_n && !slot; i++)
            if (refusals[i].minute == minute && strcmp(refusals[i].addr, addr) == 0)
                slot = &refusals[i];
    }
    if (!slot) {
        if (refusals_n == refusals_cap) {
            refusals_cap = refusals_cap ? refusals_cap * 2 : 16;
            refusals = mu_xrealloc(refusals, refusals_cap * sizeof *refusals);
        }
        slot = &refusals[refusals_n++];
        memset(slot, 0, sizeof *slot);
        snprintf(slot->addr, sizeof slot->addr, "%s", addr);
        slot->minute = minute;
    }
    slot->count++;
    if (minute < refusals_oldest)
        refusals_oldest = minute;
    pthread_mutex_unlock(&refusals_lock);
}

/* True if some pending pair belongs to a minute that is over. */
static bool refusals_due(void)
{
    pthread_mutex_lock(&refusals_lock);
    bool due = refusals_n > 0 && refusals_oldest < mu_now_ms() / 60000;
    pthread_mutex_unlock(&refusals_lock);
    return due;
}

static int refusals_flush(struct mu_app *app, bool all)
{
    int64_t now_minute = mu_now_ms() / 60000;
    struct refusal *out = NULL;
    size_t nout = 0;
    pthread_mutex_lock(&refusals_lock);
    if (refusals_n) {
        out = mu_xmalloc(refusals_n * sizeof *out);
        size_t keep = 0;
        refusals_oldest = INT64_MAX;
        for (size_t i = 0; i < refusals_n; i++) {
            if (all || refusals[i].minute < now_minute) {
                out[nout++] = refusals[i];
            } else {
                refusals[keep++] = refusals[i];
                if (refusals[i].minute < refusals_oldest)
                    refusals_oldest = refusals[i].minute;
            }
        }
        refusals_n = keep;
    }
    pthread_mutex_unlock(&refusals_lock);

    int written = 0;
    for (size_t i = 0; i < nout; i++) {
        char detail[128], target[64], rid[32];
        snprintf(detail, sizeof detail, "%u refused attempts from %s", out[i].count, out[i].addr);
        snprintf(target, sizeof target, "source/%s", out[i].addr);
        snprintf(rid, sizeof rid, "minute-%lld", (long long)out[i].minute);
        struct mu_audit_rec rec = {.actor = "anonymous",
                                   .role = "",
                                   .tenant_id = 0,
                                   .action = "auth.refused",
                                   .target = target,
                                   .outcome = mu_err_name(MU_EUNAUTH),
                                   .request_id = rid,
                                   .detail = detail};
        struct mu_err err = {0};
        if (!app || !app->store || mu_store_audit_append(app->store, &rec, &err) < 0) {
            mu_log_error("refusal summary not audited source=%s count=%u detail=\"%s\"",
                         out[i].addr, out[i].count, err.detail);
            continue;
        }
        written++;
    }
    free(out);
    return written;
}

int mu_router_flush_refusals(struct mu_app *app)
{
    return refusals_flush(app, false);
}

int mu_router_flush_refusals_all(struct mu_app *app)
{
    return refusals_flush(app, true);
}

/* ---- dispatch --------------------------------------------------------------------- */

static void audit_failure(struct mu_req *req, int code, const char *outcome, const char *detail)
{
    struct mu_audit_rec rec;
    mu_req_audit(req, &rec, 0, req->path);
    rec.outcome = outcome ? outcome : mu_err_name(code);
    rec.detail = detail;
    struct mu_err err = {0};
    if (mu_store_audit_append(req->app->store, &rec, &err) < 0)
        mu_log_error("audit append failed id=%s action=%s detail=\"%s\"", req->request_id,
                     rec.action ? rec.action : "-", err.detail);
}

/* The handler (or authentication) failed with code: log internals, answer a problem. */
static void fail(struct mu_req *req, struct mu_resp *resp, int code, struct mu_err *err)
{
    if (code >= 0)
        code = MU_EINTERNAL; /* a handler that "failed" with a non-error code */
    if (err->code == 0)
        err->code = code;
    int status = mu_problem_status(code);
    if (status >= 500 && code != MU_EBUSY) {
        mu_log_error("request failed id=%s method=%s action=%s code=%s detail=\"%s\"",
                     req->request_id, req->method,
                     req->route && req->route->action ? req->route->action : "-", mu_err_name(code),
                     err->detail);
        struct mu_err generic = {.code = code};
        snprintf(generic.detail, sizeof generic.detail,
                 "internal error; the operator can find the cause in the controller log under "
                 "request id %s",
                 req->request_id);
        *err = generic;
    }
    resp_problem(resp, status, err, req->request_id);
}

void mu_router_dispatch(struct mu_req *req, struct mu_resp *resp)
{
    struct mu_err err = {0};
    const struct mu_route *route = req->route;
    if (!route) {
        MU_AUTOFREE char *allow = allow_list(mu_routes, mu_routes_count, req->path);
        if (allow) {
            mu_err_set(&err, MU_EUNSUPPORTED, "%s is not allowed here; this address accepts %s",
                       req->method, allow);
            resp_problem(resp, 405, &err, req->request_id);
            mu_resp_header_add(resp, "Allow", allow);
        } else {
            mu_err_set(&err, MU_ENOTFOUND,
                       "there is nothing at this address; see "
                       "/v1/openapi.json for the API's paths");
            resp_problem(resp, 404, &err, req->request_id);
        }
        return;
    }

    if (!mu_router_authorize(req, resp))
        return;
    mu_router_handle(req, resp);
}

void mu_router_count_refusal(struct mu_app *app, const char *addr)
{
    refusal_count(addr && addr[0] ? addr : "unknown");
    if (refusals_due())
        mu_router_flush_refusals(app);
}

/* A request without credentials from an address the configuration trusts (metrics_allow):
 * compared as text, as the server formats peers ("127.0.0.1", "::1"). */
static bool addr_allowed(const struct mu_req *req)
{
    if (!req->app->metrics_allow || !req->remote_addr[0] || mu_req_header(req, "Authorization"))
        return false;
    for (char **a = req->app->metrics_allow; *a; a++)
        if (strcmp(*a, req->remote_addr) == 0)
            return true;
    return false;
}

bool mu_router_authorize(struct mu_req *req, struct mu_resp *resp)
{
    struct mu_err err = {0};
    const struct mu_route *route = req->route;
    if (route->flags & MU_ROUTE_AGENT) {
        /* The certificate is the credential: the server verified it from the headers (and
         * refused the request already if it was missing or bad). A bearer token is no
         * substitute, and RBAC does not apply. */
        if (req->client_cn[0])
            return true;
        mu_err_set(&err, MU_EUNAUTH,
                   "this address is for node agents: it needs a client certificate signed by "
                   "this controller's CA");
        mu_router_count_refusal(req->app, req->remote_addr);
        resp_problem(resp, 401, &err, req->request_id);
        return false;
    }
    if ((route->flags & MU_ROUTE_ADDR_ALLOW) && addr_allowed(req))
        return true;
    if (!(route->flags & MU_ROUTE_PUBLIC)) {
        const char *authz = mu_req_header(req, "Authorization");
        /* Portal sessions: a mu_session cookie and no Authorization header. */
        const char *cookie = authz ? NULL : mu_req_header(req, "Cookie");
        char session_secret[MU_SESSION_SECRET_LEN + 1], session_csrf[65] = "";
        bool by_cookie = cookie && mu_session_cookie_get(cookie, session_secret) == 1;
        int r = by_cookie
                    ? mu_authn_session(req->app->store, session_secret, mu_now_ms(),
                                       MU_SESSION_IDLE_MS, &req->principal, session_csrf, &err)
                    : mu_authn_bearer(req->app->authn, authz, &req->principal, &err);
        if (r == MU_EUNAUTH) {
            refusal_count(req->remote_addr[0] ? req->remote_addr : "unknown");
            resp_problem(resp, 401, &err, req->request_id);
            mu_resp_header_add(resp, "WWW-Authenticate",
                               authz ? "Bearer realm=\"mutualis\", error=\"invalid_token\""
                                     : "Bearer realm=\"mutualis\"");
            if (refusals_due())
                mu_router_flush_refusals(req->app);
            return false;
        }
        if (r < 0) {
            fail(req, resp, r, &err);
            return false;
        }
        req->authenticated = true;
        /* A browser sends the cookie with any request a page makes, even one from another
         * site's page: a change made with a cookie must carry the session's CSRF token. */
        if (by_cookie && strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0 &&
            !mu_session_csrf_equal(mu_req_header(req, "X-CSRF-Token"), session_csrf)) {
            mu_err_set(&err, MU_EFORBIDDEN,
                       "missing or wrong CSRF token: send the X-CSRF-Token header with the "
                       "csrf_token of GET /v1/session (reload the portal page)");
            audit_failure(req, MU_EFORBIDDEN, "denied", err.detail);
            resp_problem(resp, 403, &err, req->request_id);
            return false;
        }

        pthread_rwlock_rdlock(&req->app->policy_lock);
        bool allowed =
            route->action && mu_rbac_allows(req->app->rbac, req->principal.role, route->action);
        pthread_rwlock_unlock(&req->app->policy_lock);
        if (!allowed) {
            mu_err_set(&err, MU_EFORBIDDEN, "role %s may not perform %s", req->principal.role,
                       route->action ? route->action : "this action");
            audit_failure(req, MU_EFORBIDDEN, "denied", err.detail);
            resp_problem(resp, 403, &err, req->request_id);
            return false;
        }
    }

    return true;
}

void mu_router_finish(struct mu_req *req,
                      int (*finish)(void *finish_arg, struct mu_resp *resp, struct mu_err *err),
                      void *finish_arg, struct mu_resp *resp)
{
    struct mu_err err = {0};
    int r = finish(finish_arg, resp, &err);
    if (r == MU_OK) {
        if (resp->status == 0)
            resp->status = 200;
        return;
    }
    fail(req, resp, r, &err);
}

void mu_router_handle(struct mu_req *req, struct mu_resp *resp)
{
    struct mu_err err = {0};
    const struct mu_route *route = req->route;
    if (!route->handler) {
        fail(req, resp, mu_err_set(&err, MU_EINTERNAL, "route without a handler"), &err);
        return;
    }
    int r = route->handler(req, resp, &err);
    if (r == MU_OK) {
        if (resp->status == 0)
            resp->status = 200;
        return;
    }
    fail(req, resp, r, &err);
    if (req->authenticated)
        audit_failure(req, err.code, NULL, err.detail);
}
