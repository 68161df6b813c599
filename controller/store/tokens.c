/* API tokens: stored as the hex SHA-256 of the secret; looked up on every request through
 * the calling thread's read connection and a cached statement. */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_COLS "id, user_id, name, hash, created_ms, expires_ms, revoked_ms, last_used_ms"

void mu_token_clear(struct mu_token *t)
{
    if (!t)
        return;
    free(t->name);
    memset(t, 0, sizeof *t);
}

void mu_tokens_free(struct mu_token *t, size_t n)
{
    if (!t)
        return;
    for (size_t i = 0; i < n; i++)
        mu_token_clear(&t[i]);
    free(t);
}

static void token_from_row(sqlite3_stmt *s, struct mu_token *t)
{
    const unsigned char *hash = sqlite3_column_text(s, 3);

    t->id = sqlite3_column_int64(s, 0);
    t->user_id = sqlite3_column_int64(s, 1);
    t->name = st_col_str(s, 2);
    snprintf(t->hash, sizeof t->hash, "%s", hash ? (const char *)hash : "");
    t->created_ms = sqlite3_column_int64(s, 4);
    t->expires_ms = sqlite3_column_int64(s, 5);
    t->revoked_ms = sqlite3_column_int64(s, 6);
    t->last_used_ms = sqlite3_column_int64(s, 7);
}

/* 1 and the user's name and tenant if the user exists, 0 if not, or < 0. */
static int token_owner(struct st_conn *c, int64_t user_id, char **ret_name, int64_t *ret_tenant,
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
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading a token's user", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_token_insert(struct mu_store *st, const struct mu_token *t,
                          const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    MU_AUTOFREE char *owner = NULL;
    MU_AUTOFREE char *target = NULL;
    int64_t tenant = 0, id = 0;
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    if (!t->name || strlen(t->hash) != 64)
        return mu_err_set(err, MU_EINVAL, "a token needs a name and a 64-digit hash");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = token_owner(c, t->user_id, &owner, &tenant, err);
    if (rc == 0)
        rc = mu_err_setf(err, MU_EINVAL, "user_id", "user %" PRId64 " does not exist", t->user_id);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "SELECT id FROM tokens WHERE hash = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_str(s, 1, t->hash);
    rc = sqlite3_step(s) == SQLITE_ROW
             ? mu_err_set(err, MU_ECONFLICT, "a token with the same hash already exists")
             : 0;
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    s = st_stmt(c,
                "INSERT INTO tokens (user_id, name, hash, created_ms, expires_ms, revoked_ms, "
                "last_used_ms) VALUES (?1, ?2, ?3, ?4, ?5, 0, 0)",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, t->user_id);
    st_bind_str(s, 2, t->name);
    st_bind_str(s, 3, t->hash);
    sqlite3_bind_int64(s, 4, t->created_ms > 0 ? t->created_ms : mu_now_ms());
    sqlite3_bind_int64(s, 5, t->expires_ms > 0 ? t->expires_ms : 0);
    rc = st_run(c, s, "inserting a token", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    id = sqlite3_last_insert_rowid(c->db);
    target = mu_xasprintf("token/%" PRId64, id);
    rc = st_audit_append_tx(st, audit, tenant, target, owner, err);

out:
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

static int token_get_by(struct mu_store *st, const char *sql, int64_t id, const char *hash,
                        struct mu_token *ret, struct mu_err *err)
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
        memset(ret, 0, sizeof *ret);
        token_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        /* Never echo a hash: it identifies a secret. */
        if (hash)
            rc = mu_err_set(err, MU_ENOTFOUND, "no such token");
        else
            rc = mu_err_set(err, MU_ENOTFOUND, "token %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a token", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_token_get_by_hash(struct mu_store *st, const char *hash, struct mu_token *ret,
                               struct mu_err *err)
{
    return token_get_by(st, "SELECT " TOKEN_COLS " FROM tokens WHERE hash = ?1", 0, hash, ret, err);
}

int mu_store_token_get(struct mu_store *st, int64_t id, struct mu_token *ret, struct mu_err *err)
{
    return token_get_by(st, "SELECT " TOKEN_COLS " FROM tokens WHERE id = ?1", id, NULL, ret, err);
}

int mu_store_token_revoke(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                          struct mu_err *err)
{
    MU_AUTOFREE char *owner = NULL;
    MU_AUTOFREE char *target = NULL;
    int64_t user_id = 0, tenant = 0;
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT user_id FROM tokens WHERE id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        user_id = sqlite3_column_int64(s, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "token %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a token", err);
    }
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    rc = token_owner(c, user_id, &owner, &tenant, err);
    if (rc < 0)
        goto out;
    /* Revoking twice keeps the first time. */
    s = st_stmt(c, "UPDATE tokens SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms = 0", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, mu_now_ms());
    sqlite3_bind_int64(s, 2, id);
    rc = st_run(c, s, "revoking a token", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    target = mu_xasprintf("token/%" PRId64, id);
    rc = st_audit_append_tx(st, audit, tenant, target, owner, err);

out:
    rc = st_tx_end(st, rc, err);
    st_auth_changed();
    return rc;
}

int mu_store_token_list(struct mu_store *st, int64_t user_id, int64_t after_id, int limit,
                        struct mu_token **ret, size_t *ret_n, struct mu_err *err)
{
    struct mu_token *out = NULL;
    struct st_conn *c;
    sqlite3_stmt *s;
    size_t n = 0;
    int rc;

    if (limit < 1 || limit > 1000)
        return mu_err_setf(err, MU_EINVAL, "limit", "limit must be between 1 and 1000");
    c = st_reader(st, err);
    if (!c)
        return MU_EIO;
    if (user_id > 0)
        s = st_stmt(c,
                    "SELECT " TOKEN_COLS " FROM tokens WHERE user_id = ?1 AND id > ?2 "
                    "ORDER BY id LIMIT ?3",
                    err);
    else
        s = st_stmt(c,
                    "SELECT " TOKEN_COLS " FROM tokens WHERE ?1 = 0 AND id > ?2 "
                    "ORDER BY id LIMIT ?3",
                    err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, user_id > 0 ? user_id : 0);
    sqlite3_bind_int64(s, 2, after_id > 0 ? after_id : 0);
    sqlite3_bind_int(s, 3, limit);
    out = mu_xcalloc((size_t)limit, sizeof *out);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        token_from_row(s, &out[n++]);
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing tokens", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_tokens_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_token_touch_many(struct mu_store *st, const int64_t *ids, const int64_t *ms, size_t n,
                              struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc = 0;

    if (n == 0)
        return 0;
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "UPDATE tokens SET last_used_ms = max(last_used_ms, ?1) WHERE id = ?2", err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    /* A token deleted meanwhile simply matches no row. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, ms[i]);
        sqlite3_bind_int64(s, 2, ids[i]);
        rc = st_run(c, s, "recording token use", err);
    }
    st_stmt_done(c, s);
    return st_tx_end(st, rc, err);
}
