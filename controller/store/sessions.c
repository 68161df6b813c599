/* Portal sessions (sessions.h): looked up by the hash of the cookie's secret through the
 * calling thread's read connection; login and logout are audited in their transaction. */
#include "store/sessions.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define SESSION_COLS                                                                               \
    "id, user_id, hash, csrf, created_ms, last_seen_ms, expires_ms, revoked_ms, source"

static void session_from_row(sqlite3_stmt *s, struct mu_session *r)
{
    const unsigned char *hash = sqlite3_column_text(s, 2);
    const unsigned char *csrf = sqlite3_column_text(s, 3);
    const unsigned char *src = sqlite3_column_text(s, 8);

    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, 0);
    r->user_id = sqlite3_column_int64(s, 1);
    snprintf(r->hash, sizeof r->hash, "%s", hash ? (const char *)hash : "");
    snprintf(r->csrf, sizeof r->csrf, "%s", csrf ? (const char *)csrf : "");
    r->created_ms = sqlite3_column_int64(s, 4);
    r->last_seen_ms = sqlite3_column_int64(s, 5);
    r->expires_ms = sqlite3_column_int64(s, 6);
    r->revoked_ms = sqlite3_column_int64(s, 7);
    snprintf(r->source, sizeof r->source, "%s", src ? (const char *)src : "");
}

/* 1 with the user's name and tenant if the user exists, 0 if not, or < 0. */
static int session_owner(struct st_conn *c, int64_t user_id, char **ret_name, int64_t *ret_tenant,
                         struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, "SELECT name, tenant_id FROM users WHERE id = ?1", err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, user_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_name = st_col_str(s, 0);
        *ret_tenant = sqlite3_column_int64(s, 1);
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading a session's user", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_session_insert(struct mu_store *st, const struct mu_session *s,
                            const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    MU_AUTOFREE char *owner = NULL;
    MU_AUTOFREE char *target = NULL;
    int64_t tenant = 0, id = 0;
    struct st_conn *c;
    sqlite3_stmt *q;
    int rc;

    if (strlen(s->hash) != 64 || strlen(s->csrf) != 64 || s->expires_ms <= 0)
        return mu_err_set(err, MU_EINVAL,
                          "a session needs a 64-digit hash, a 64-digit CSRF token and an expiry");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = session_owner(c, s->user_id, &owner, &tenant, err);
    if (rc == 0)
        rc = mu_err_setf(err, MU_EINVAL, "user_id", "user %" PRId64 " does not exist", s->user_id);
    if (rc < 0)
        goto out;
    q = st_stmt(c,
                "INSERT INTO sessions (user_id, hash, csrf, created_ms, last_seen_ms, expires_ms, "
                "revoked_ms, source) VALUES (?1, ?2, ?3, ?4, ?4, ?5, 0, ?6)",
                err);
    if (!q) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(q, 1, s->user_id);
    st_bind_str(q, 2, s->hash);
    st_bind_str(q, 3, s->csrf);
    sqlite3_bind_int64(q, 4, s->created_ms > 0 ? s->created_ms : mu_now_ms());
    sqlite3_bind_int64(q, 5, s->expires_ms);
    st_bind_str(q, 6, s->source);
    rc = st_run(c, q, "inserting a session", err);
    st_stmt_done(c, q);
    if (rc < 0)
        goto out;
    id = sqlite3_last_insert_rowid(c->db);
    target = mu_xasprintf("session/%" PRId64, id);
    rc = st_audit_append_tx(st, audit, tenant, target, owner, err);

out:
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

static int session_get_by(struct mu_store *st, const char *sql, int64_t id, const char *hash,
                          struct mu_session *ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, sql, err);
    if (!s)
        return MU_EIO;
    if (hash)
        sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        session_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        /* Never echo a hash: it identifies a secret. */
        if (hash)
            rc = mu_err_set(err, MU_ENOTFOUND, "no such session");
        else
            rc = mu_err_set(err, MU_ENOTFOUND, "session %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a session", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_session_get_by_hash(struct mu_store *st, const char *hash, struct mu_session *ret,
                                 struct mu_err *err)
{
    return session_get_by(st, "SELECT " SESSION_COLS " FROM sessions WHERE hash = ?1", 0, hash, ret,
                          err);
}

int mu_store_session_get(struct mu_store *st, int64_t id, struct mu_session *ret,
                         struct mu_err *err)
{
    return session_get_by(st, "SELECT " SESSION_COLS " FROM sessions WHERE id = ?1", id, NULL, ret,
                          err);
}

int mu_store_session_touch(struct mu_store *st, int64_t id, int64_t now_ms, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "UPDATE sessions SET last_seen_ms = max(last_seen_ms, ?2) WHERE id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    rc = st_run(c, s, "recording a session's activity", err);
    st_stmt_done(c, s);
out:
    return st_tx_end(st, rc, err);
}

int mu_store_session_revoke(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                            struct mu_err *err)
{
    MU_AUTOFREE char *owner = NULL;
    MU_AUTOFREE char *target = NULL;
    int64_t user_id = 0, revoked = 0, tenant = 0;
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT user_id, revoked_ms FROM sessions WHERE id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        user_id = sqlite3_column_int64(s, 0);
        revoked = sqlite3_column_int64(s, 1);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "session %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a session", err);
    }
    st_stmt_done(c, s);
    if (rc < 0 || revoked)
        goto out;
    s = st_stmt(c, "UPDATE sessions SET revoked_ms = ?2 WHERE id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, mu_now_ms());
    rc = st_run(c, s, "revoking a session", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    rc = session_owner(c, user_id, &owner, &tenant, err);
    if (rc < 0)
        goto out;
    target = mu_xasprintf("session/%" PRId64, id);
    rc = st_audit_append_tx(st, audit, tenant, target, owner, err);

out:
    return st_tx_end(st, rc, err);
}

int mu_store_session_purge(struct mu_store *st, int64_t now_ms, int64_t keep_ms, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    sqlite3_stmt *s;
    int rc, n = 0;

    if (!c)
        return MU_EIO;
    s = st_stmt(
        c, "DELETE FROM sessions WHERE expires_ms < ?1 OR (revoked_ms > 0 AND revoked_ms < ?1)",
        err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, now_ms - keep_ms);
    rc = st_run(c, s, "purging ended sessions", err);
    st_stmt_done(c, s);
    if (rc == 0)
        n = sqlite3_changes(c->db);
out:
    rc = st_tx_end(st, rc, err);
    return rc < 0 ? rc : n;
}

int64_t mu_store_session_count_live(struct mu_store *st, int64_t user_id, int64_t now_ms)
{
    struct mu_err err = {0};
    struct st_conn *c = st_reader(st, &err);
    sqlite3_stmt *s;
    int64_t n = -1;

    if (!c)
        return -1;
    s = st_stmt(c,
                "SELECT count(*) FROM sessions WHERE user_id = ?1 AND revoked_ms = 0 AND "
                "expires_ms > ?2",
                &err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, now_ms);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    st_stmt_done(c, s);
    return n;
}
