/* auth/: API tokens, passwords, the RBAC policy and request authentication.
 * Tokens: "mut_" + 43 base64url characters (256 random bits), shown once, stored as the
 * hex SHA-256 of the whole string. Passwords: argon2id (libargon2), encoded form stored.
 * RBAC: policies/rbac.json maps each action to the roles allowed; an action the policy
 * does not name is denied. */
#ifndef MU_AUTH_H
#define MU_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/store.h"

#define MU_TOKEN_PREFIX "mut_"
#define MU_TOKEN_LEN    47 /* prefix + 43 */

/* Role names. */
#define MU_ROLE_OPERATOR      "operator"
#define MU_ROLE_OBSERVER      "observer"
#define MU_ROLE_TENANT_ADMIN  "tenant-admin"
#define MU_ROLE_TENANT_READER "tenant-reader"
bool mu_role_valid(const char *role);
/* Tenant roles need a tenant scope; operator and observer must not have one. */
bool mu_role_is_tenant(const char *role);

/* Writes a new secret (NUL-terminated, MU_TOKEN_LEN chars) into out[MU_TOKEN_LEN+1] and its
 * hash into hash[65]. */
void mu_auth_token_generate(char out[MU_TOKEN_LEN + 1], char hash[65]);
/* Hex SHA-256 of secret. */
void mu_auth_token_hash(const char *secret, char hash[65]);
/* Cheap syntactic check before any lookup. */
bool mu_auth_token_well_formed(const char *secret);

/* Argon2id with a random salt; returns the encoded string (caller frees). */
char *mu_auth_password_hash(const char *password);
/* Constant-time verification against an encoded hash. */
bool mu_auth_password_verify(const char *encoded, const char *password);
/* 12..256 bytes of valid UTF-8, not all one character. MU_EINVAL with a detail otherwise. */
int mu_auth_password_check(const char *password, struct mu_err *err);

/* ---- RBAC ---------------------------------------------------------------------- */
struct mu_rbac;
/* Loads and validates a policy file: {"version":1,"actions":{"tenant.read":["operator",...]}}.
 * Unknown roles, unknown top-level keys, duplicate keys, syntax errors (with line and
 * column) are refused with err naming the file. */
struct mu_rbac *mu_rbac_load(const char *path, struct mu_err *err);
struct mu_rbac *mu_rbac_parse(const char *text, size_t len, const char *origin, struct mu_err *err);
void mu_rbac_free(struct mu_rbac *r);
bool mu_rbac_allows(const struct mu_rbac *r, const char *role, const char *action);
bool mu_rbac_names(const struct mu_rbac *r, const char *action);

/* ---- authenticated caller --------------------------------------------------------- */
struct mu_principal {
    int64_t user_id;
    char user_name[64];
    char role[32];
    int64_t tenant_id; /* scope: 0 for operator/observer */
    int64_t token_id;  /* 0 for a session */
    /* The portal session (0 for a token). */
    int64_t session_id;
};
/* Operator and observer see everything; tenant roles their tenant's subtree. */
bool mu_principal_is_global(const struct mu_principal *p);

/* Resolves bearer tokens. Last-use times are kept in memory and written by
 * mu_authn_flush at most once a minute (a read never adds a write). */
struct mu_authn;
struct mu_authn *mu_authn_new(struct mu_store *st);
void mu_authn_free(struct mu_authn *a);
/* header: the Authorization header value or NULL. MU_EUNAUTH with detail for missing,
 * malformed, unknown, expired, revoked tokens, and disabled users. */
int mu_authn_bearer(struct mu_authn *a, const char *header, struct mu_principal *ret,
                    struct mu_err *err);
/* Writes pending last-use times if at least min_interval_ms passed since the last flush
 * (0: now). Returns the number written or a negative code. */
int mu_authn_flush(struct mu_authn *a, int64_t min_interval_ms);

/* ---- portal sessions (session.c) ------------------------------------------------------
 * A person logs in through POST /v1/session and gets the cookie mu_session=<64 hex digits>
 * (256 random bits; only its SHA-256 is stored) and a CSRF token (64 hex digits) that every
 * cookie-authenticated request other than GET/HEAD must echo in X-CSRF-Token. A session
 * ends after MU_SESSION_IDLE_MS without a request, MU_SESSION_MAX_MS after the login, on
 * logout, and with its user (deleted or disabled). */
#define MU_SESSION_COOKIE     "mu_session"
#define MU_SESSION_SECRET_LEN 64
#define MU_SESSION_IDLE_MS    (30LL * 60 * 1000)
#define MU_SESSION_MAX_MS     (12LL * 60 * 60 * 1000)
#define MU_SESSION_TOUCH_MS   (60LL * 1000) /* last_seen is written at most this often */
#define MU_LOGIN_FAILURES_MAX 10            /* per source and per user name ... */
#define MU_LOGIN_WINDOW_MS    (60LL * 1000) /* ... per minute, then 429 */

/* A new cookie secret (64 hex digits + NUL) and its hex SHA-256. */
void mu_session_secret_generate(char secret[MU_SESSION_SECRET_LEN + 1], char hash[65]);
/* A new CSRF token (64 hex digits + NUL). */
void mu_session_csrf_generate(char csrf[65]);
/* Finds mu_session in a Cookie header value ("a=b; mu_session=..."): 1 with the secret
 * copied to out if present and well formed (64 lower-case hex digits), 0 otherwise. */
int mu_session_cookie_get(const char *cookie_header, char out[MU_SESSION_SECRET_LEN + 1]);
/* Constant-time comparison of a presented CSRF token (may be NULL) with the session's. */
bool mu_session_csrf_equal(const char *presented, const char *expected);
/* Authenticates a cookie secret at now_ms with idle timeout idle_ms: fills ret (token_id 0,
 * session_id set) and ret_csrf (65 bytes). Records activity when the last record is older
 * than MU_SESSION_TOUCH_MS. MU_EUNAUTH with a detail for unknown, revoked, expired and idle
 * sessions and for deleted or disabled users; other codes for store failures. */
int mu_authn_session(struct mu_store *st, const char *secret, int64_t now_ms, int64_t idle_ms,
                     struct mu_principal *ret, char ret_csrf[65], struct mu_err *err);
/* Checks name/password like a login: 0 and *ret_user (caller clears) on success;
 * MU_EUNAUTH ("wrong user name or password") when the user is unknown, has no password or
 * the password is wrong (the same argon2id work is done in every case), or is disabled
 * (a detail that says so, only once the password matched). */
int mu_session_check_password(struct mu_store *st, const char *name, const char *password,
                              struct mu_user *ret_user, struct mu_err *err);

/* Failure counter per key (source address, user name) in a fixed window: blocked once max
 * failures were counted in the current window. Bounded memory: past a few thousand live
 * keys, new keys share one bucket. Thread-safe; time is passed in (tests inject it). */
struct mu_ratelimit;
struct mu_ratelimit *mu_ratelimit_new(unsigned max, int64_t window_ms);
void mu_ratelimit_free(struct mu_ratelimit *rl);
/* True if key is blocked at now_ms; *ret_retry_ms (may be NULL) is the wait until the
 * window ends. */
bool mu_ratelimit_blocked(struct mu_ratelimit *rl, const char *key, int64_t now_ms,
                          int64_t *ret_retry_ms);
/* Counts one failure of key at now_ms. */
void mu_ratelimit_fail(struct mu_ratelimit *rl, const char *key, int64_t now_ms);
/* Forgets key's failures (a successful login of that user). */
void mu_ratelimit_reset(struct mu_ratelimit *rl, const char *key);

#endif
