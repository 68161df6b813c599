/* /v1/session: the portal's login (POST, public), who-am-I with the CSRF token (GET) and
 * logout (DELETE). The cookie is HttpOnly, Secure, SameSite=Strict; failed logins are
 * counted per source address and per user name, and past MU_LOGIN_FAILURES_MAX in a
 * minute the login answers 429 without checking anything. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/handlers.h"
#include "mutualis/json.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"
#include "store/sessions.h"

#define SESSION_NAME_MAX 64
#define SESSION_PW_MAX   256

static struct mu_ratelimit *by_source, *by_user;
static pthread_once_t limits_once = PTHREAD_ONCE_INIT;

static void limits_init(void)
{
    by_source = mu_ratelimit_new(MU_LOGIN_FAILURES_MAX, MU_LOGIN_WINDOW_MS);
    by_user = mu_ratelimit_new(MU_LOGIN_FAILURES_MAX, MU_LOGIN_WINDOW_MS);
}

static void cookie_set(struct mu_resp *resp, const char *secret, int64_t max_age_s)
{
    char v[256];
    snprintf(v, sizeof v,
             MU_SESSION_COOKIE "=%s; Path=/; HttpOnly; Secure; SameSite=Strict; "
                               "Max-Age=%lld",
             secret, (long long)max_age_s);
    mu_resp_header_add(resp, "Set-Cookie", v);
}

/* The session document: who is logged in and the CSRF token to echo. */
static cJSON *session_json(struct mu_req *req, const struct mu_principal *p,
                           const struct mu_session *s)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "user_id", p->user_id);
    mu_json_add_str(o, "user", p->user_name);
    mu_json_add_str(o, "role", p->role);
    if (p->tenant_id > 0) {
        struct mu_tenant t = {0};
        struct mu_err e = {0};
        mu_json_add_i64(o, "tenant_id", p->tenant_id);
        if (mu_store_tenant_get(req->app->store, p->tenant_id, &t, &e) == 0)
            mu_json_add_str(o, "tenant_name", t.name);
        else
            mu_json_add_null(o, "tenant_name");
        mu_tenant_clear(&t);
    } else {
        mu_json_add_null(o, "tenant_id");
        mu_json_add_null(o, "tenant_name");
    }
    if (s) {
        mu_json_add_str(o, "csrf_token", s->csrf);
        mu_json_add_time(o, "created_at", s->created_ms);
        mu_json_add_time(o, "expires_at", s->expires_ms);
        mu_json_add_i64(o, "idle_timeout_s", MU_SESSION_IDLE_MS / 1000);
    } else {
        /* Authenticated with an API token: there is no session and no CSRF token. */
        mu_json_add_null(o, "csrf_token");
    }
    return o;
}

/* 429 with Retry-After (a handled answer, not a failure). */
static int too_many(struct mu_req *req, struct mu_resp *resp, int64_t retry_ms)
{
    struct mu_err e = {0};
    int64_t s = retry_ms > 0 ? (retry_ms + 999) / 1000 : 1;
    mu_err_set(&e, MU_EBUSY,
               "too many failed logins: wait %lld seconds, then try again (ask an operator if "
               "you forgot your password)",
               (long long)s);
    resp->status = 429;
    resp->json = mu_problem_new(429, &e, req->request_id);
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)s);
    mu_resp_header_add(resp, "Retry-After", v);
    return MU_OK;
}

int mu_h_session_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"username", "password", NULL};
    const char *src = req->remote_addr[0] ? req->remote_addr : "unknown";
    char user_key[SESSION_NAME_MAX + 8];
    const char *name = NULL, *pw = NULL;
    struct mu_user u = {0};
    int64_t now = mu_now_ms(), retry = 0;
    int rc;

    pthread_once(&limits_once, limits_init);
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return MU_EINVAL;
    rc = mu_json_expect_object(body, allowed, "the login", err);
    if (rc == 0)
        rc = mu_json_get_str(body, "username", true, SESSION_NAME_MAX, &name, err);
    if (rc == 0)
        rc = mu_json_get_str(body, "password", true, SESSION_PW_MAX, &pw, err);
    if (rc == 0 && !mu_ident_valid(name))
        rc = mu_err_setf(err, MU_EINVAL, "username",
                         "a user name is made of lower-case letters, digits, '-', '_' and '.'");
    if (rc < 0)
        goto out;
    snprintf(user_key, sizeof user_key, "user:%s", name);
    if (mu_ratelimit_blocked(by_source, src, now, &retry) ||
        mu_ratelimit_blocked(by_user, user_key, now, &retry)) {
        rc = too_many(req, resp, retry);
        goto out;
    }
    rc = mu_session_check_password(req->app->store, name, pw, &u, err);
    if (rc == MU_EUNAUTH) {
        mu_ratelimit_fail(by_source, src, now);
        mu_ratelimit_fail(by_user, user_key, now);
        mu_router_count_refusal(req->app, src);
        goto out;
    }
    if (rc < 0)
        goto out;
    mu_ratelimit_reset(by_user, user_key);

    char secret[MU_SESSION_SECRET_LEN + 1];
    struct mu_session s = {
        .user_id = u.id, .created_ms = now, .expires_ms = now + MU_SESSION_MAX_MS};
    mu_session_secret_generate(secret, s.hash);
    mu_session_csrf_generate(s.csrf);
    snprintf(s.source, sizeof s.source, "%s", src);
    struct mu_audit_rec rec = {.actor = u.name,
                               .role = u.role,
                               .tenant_id = u.tenant_id,
                               .action = "session.create",
                               .outcome = "ok",
                               .request_id = req->request_id,
                               .detail = NULL};
    char detail[96];
    snprintf(detail, sizeof detail, "login from %s", src);
    rec.detail = detail;
    rc = mu_store_session_insert(req->app->store, &s, &rec, &s.id, err);
    if (rc < 0)
        goto out;

    struct mu_principal p = {.user_id = u.id, .tenant_id = u.tenant_id, .session_id = s.id};
    snprintf(p.user_name, sizeof p.user_name, "%s", u.name);
    snprintf(p.role, sizeof p.role, "%s", u.role);
    resp->status = 200; /* a login, not a resource the client may address */
    resp->json = session_json(req, &p, &s);
    cookie_set(resp, secret, MU_SESSION_MAX_MS / 1000);
    /* An occasional sweep keeps the table to the sessions that may still be shown. */
    if (s.id % 64 == 0)
        (void)mu_store_session_purge(req->app->store, now, 24LL * 3600 * 1000, &(struct mu_err){0});
    rc = MU_OK;
out:
    mu_user_clear(&u);
    cJSON_Delete(body);
    return rc;
}

int mu_h_session_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_session s;
    if (req->principal.session_id == 0) {
        resp->json = session_json(req, &req->principal, NULL);
        return MU_OK;
    }
    int rc = mu_store_session_get(req->app->store, req->principal.session_id, &s, err);
    if (rc < 0)
        return rc;
    resp->json = session_json(req, &req->principal, &s);
    return MU_OK;
}

int mu_h_session_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    /* With an API token there is no session to end: nothing changes. */
    if (req->principal.session_id > 0) {
        struct mu_audit_rec rec;
        mu_req_audit(req, &rec, req->principal.tenant_id, NULL);
        rec.detail = "logout";
        int rc = mu_store_session_revoke(req->app->store, req->principal.session_id, &rec, err);
        if (rc < 0)
            return rc;
    }
    cookie_set(resp, "", 0);
    resp->status = 204;
    return MU_OK;
}
