/* Portal sessions: a person logged in through the portal. The cookie's secret is never
 * stored, only its hex SHA-256; the CSRF token is stored as is (it is not a credential on
 * its own: it is only checked next to a valid cookie). A session ends at its absolute
 * expiry, after idle_ms without a request, when it is revoked (logout), and with its user
 * (the rows are deleted with the user; a disabled user is refused by the caller). */
#ifndef MU_STORE_SESSIONS_H
#define MU_STORE_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"

struct mu_store;
struct mu_audit_rec;

struct mu_session {
    int64_t id;
    int64_t user_id;
    char hash[65];        /* hex SHA-256 of the cookie's secret */
    char csrf[65];        /* the CSRF token (64 hex digits) */
    int64_t created_ms;   /* login */
    int64_t last_seen_ms; /* as last written (written at most once a minute by the caller) */
    int64_t expires_ms;   /* absolute end */
    int64_t revoked_ms;   /* 0: not revoked */
    char source[48];      /* the address the login came from */
};

/* Inserts s (id ignored) and appends audit (the login) in the same transaction; the user
 * must exist (MU_EINVAL otherwise). ret_id may be NULL. */
int mu_store_session_insert(struct mu_store *st, const struct mu_session *s,
                            const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
/* By hash (every cookie-authenticated request; read connection, no write). MU_ENOTFOUND
 * ("no such session") if absent. */
int mu_store_session_get_by_hash(struct mu_store *st, const char *hash, struct mu_session *ret,
                                 struct mu_err *err);
int mu_store_session_get(struct mu_store *st, int64_t id, struct mu_session *ret,
                         struct mu_err *err);
/* Records activity at now_ms (no audit: a read is not a change). */
int mu_store_session_touch(struct mu_store *st, int64_t id, int64_t now_ms, struct mu_err *err);
/* Revokes the session (logout) and appends audit in the same transaction. Revoking a
 * revoked session changes nothing and succeeds. MU_ENOTFOUND if absent. */
int mu_store_session_revoke(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                            struct mu_err *err);
/* Deletes sessions that ended before now_ms - keep_ms (expired or revoked). Returns the
 * number deleted or a negative code. No audit: their start and end are audited already. */
int mu_store_session_purge(struct mu_store *st, int64_t now_ms, int64_t keep_ms,
                           struct mu_err *err);
/* Number of sessions of a user that are neither revoked nor past expires_ms at now_ms. */
int64_t mu_store_session_count_live(struct mu_store *st, int64_t user_id, int64_t now_ms);

#endif
