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

#endif
