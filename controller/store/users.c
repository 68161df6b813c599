/* Users: a name, a role and (for tenant roles) the tenant their scope starts at. */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_COLS                                                                                  \
    "u.id, u.name, u.display_name, u.email, u.role, u.tenant_id, u.password_hash, u.disabled, "    \
    "u.created_ms"

void mu_user_clear(struct mu_user *u)
{
    if (!u)
        return;
    free(u->name);
    free(u->display_name);
    free(u->email);
    free(u->role);
    free(u->password_hash);
    memset(u, 0, sizeof *u);
}

void mu_users_free(struct mu_user *u, size_t n)
{
    if (!u)
        return;
    for (size_t i = 0; i < n; i++)
        mu_user_clear(&u[i]);
    free(u);
}

static void user_from_row(sqlite3_stmt *s, struct mu_user *u)
{
    u->id = sqlite3_column_int64(s, 0);
    u->name = st_col_str(s, 1);
    u->display_name = st_col_str(s, 2);
    u->email = st_col_str(s, 3);
    u->role = st_col_str(s, 4);
    u->tenant_id = sqlite3_column_int64(s, 5);
    u->password_hash = st_col_str(s, 6);
    u->disabled = sqlite3_column_int(s, 7) != 0;
    u->created_ms = sqlite3_column_int64(s, 8);
}

static int check_tenant(struct st_conn *c, int64_t tenant_id, struct mu_err *err)
{
    struct st_tenant_loc loc = {0};
    int rc;

    if (tenant_id <= 0)
        return 0;
    rc = st_tenant_locate(c, tenant_id, &loc, err);
    st_tenant_loc_clear(&loc);
    if (rc == MU_ENOTFOUND)
        return mu_err_setf(err, MU_EINVAL, "tenant_id", "tenant %" PRId64 " does not exist",
                           tenant_id);
    return rc;
}

int mu_store_user_insert(struct mu_store *st, const struct mu_user *u,
                         const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    char target[96];
    int64_t id = 0;
    int rc;

    if (!u->name || !u->name[0] || !u->role)
        return mu_err_setf(err, MU_EINVAL, "name", "a user needs a name and a role");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = check_tenant(c, u->tenant_id, err);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "SELECT id FROM users WHERE name = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_str(s, 1, u->name);
    if (sqlite3_step(s) == SQLITE_ROW)
        rc = mu_err_setf(err, MU_ECONFLICT, "name",
                         "user name %s is already taken (user %" PRId64 ")", u->name,
                         (int64_t)sqlite3_column_int64(s, 0));
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    s = st_stmt(c,
                "INSERT INTO users (name, display_name, email, role, tenant_id, password_hash, "
                "disabled, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_str(s, 1, u->name);
    st_bind_str(s, 2, u->display_name);
    st_bind_str(s, 3, u->email);
    st_bind_str(s, 4, u->role);
    st_bind_id(s, 5, u->tenant_id);
    st_bind_str(s, 6, u->password_hash);
    sqlite3_bind_int(s, 7, u->disabled ? 1 : 0);
    sqlite3_bind_int64(s, 8, mu_now_ms());
    rc = st_run(c, s, "inserting a user", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    id = sqlite3_last_insert_rowid(c->db);
    snprintf(target, sizeof target, "user/%s", u->name);
    rc = st_audit_append_tx(st, audit, u->tenant_id, target, NULL, err);

out:
    rc = st_tx_end(st, rc, err);
    st_auth_changed();
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

static int user_get_by(struct mu_store *st, const char *sql, int64_t id, const char *name,
                       struct mu_user *ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, sql, err);
    if (!s)
        return MU_EIO;
    if (name)
        st_bind_str(s, 1, name);
    else
        sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(ret, 0, sizeof *ret);
        user_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        if (name)
            rc = mu_err_set(err, MU_ENOTFOUND, "user %s does not exist", name);
        else
            rc = mu_err_set(err, MU_ENOTFOUND, "user %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a user", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_user_get(struct mu_store *st, int64_t id, struct mu_user *ret, struct mu_err *err)
{
    return user_get_by(st, "SELECT " USER_COLS " FROM users u WHERE u.id = ?1", id, NULL, ret, err);
}

int mu_store_user_get_by_name(struct mu_store *st, const char *name, struct mu_user *ret,
                              struct mu_err *err)
{
    return user_get_by(st, "SELECT " USER_COLS " FROM users u WHERE u.name = ?1", 0, name, ret,
                       err);
}

/* Name and tenant of user id (for the audit entry), or MU_ENOTFOUND with err set. */
static int user_ref(struct st_conn *c, int64_t id, char **ret, int64_t *ret_tenant,
                    struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, "SELECT name, tenant_id FROM users WHERE id = ?1", err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret = st_col_str(s, 0);
        *ret_tenant = sqlite3_column_int64(s, 1);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "user %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a user", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_user_update(struct mu_store *st, const struct mu_user *u,
                         const struct mu_audit_rec *audit, struct mu_err *err)
{
    MU_AUTOFREE char *name = NULL;
    MU_AUTOFREE char *target = NULL;
    int64_t old_tenant = 0;
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    if (!u->role)
        return mu_err_setf(err, MU_EINVAL, "role", "a user needs a role");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = user_ref(c, u->id, &name, &old_tenant, err);
    if (rc == 0)
        rc = check_tenant(c, u->tenant_id, err);
    if (rc < 0)
        goto out;
    s = st_stmt(c,
                "UPDATE users SET display_name = ?1, email = ?2, role = ?3, tenant_id = ?4, "
                "password_hash = ?5, disabled = ?6 WHERE id = ?7",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_str(s, 1, u->display_name);
    st_bind_str(s, 2, u->email);
    st_bind_str(s, 3, u->role);
    st_bind_id(s, 4, u->tenant_id);
    st_bind_str(s, 5, u->password_hash);
    sqlite3_bind_int(s, 6, u->disabled ? 1 : 0);
    sqlite3_bind_int64(s, 7, u->id);
    rc = st_run(c, s, "updating a user", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    target = mu_xasprintf("user/%s", name);
    rc = st_audit_append_tx(st, audit, u->tenant_id, target, NULL, err);

out:
    rc = st_tx_end(st, rc, err);
    st_auth_changed();
    return rc;
}

int mu_store_user_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                         struct mu_err *err)
{
    MU_AUTOFREE char *name = NULL;
    MU_AUTOFREE char *target = NULL;
    int64_t tenant = 0;
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = user_ref(c, id, &name, &tenant, err);
    if (rc < 0)
        goto out;
    /* The tokens go with the user: nothing can authenticate as a deleted account. */
    s = st_stmt(c, "DELETE FROM tokens WHERE user_id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, id);
    rc = st_run(c, s, "revoking a user's tokens", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "DELETE FROM users WHERE id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, id);
    rc = st_run(c, s, "deleting a user", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    target = mu_xasprintf("user/%s", name);
    rc = st_audit_append_tx(st, audit, tenant, target, NULL, err);

out:
    rc = st_tx_end(st, rc, err);
    st_auth_changed();
    return rc;
}

int mu_store_user_list(struct mu_store *st, const struct mu_user_filter *f, struct mu_user **ret,
                       size_t *ret_n, struct mu_err *err)
{
    struct mu_user *out = NULL;
    struct st_conn *c;
    sqlite3_stmt *s;
    size_t n = 0;
    int rc;

    if (f->limit < 1 || f->limit > 1000)
        return mu_err_setf(err, MU_EINVAL, "limit", "limit must be between 1 and 1000");
    c = st_reader(st, err);
    if (!c)
        return MU_EIO;
    if (f->scope_id > 0)
        s = st_stmt(c,
                    "SELECT " USER_COLS " FROM users u JOIN tenants t ON t.id = u.tenant_id "
                    "WHERE u.id > ?1 AND t.path >= (SELECT path FROM tenants WHERE id = ?2) "
                    "AND t.path < (SELECT substr(path, 1, length(path) - 1) || '0' "
                    "FROM tenants WHERE id = ?2) ORDER BY u.id LIMIT ?3",
                    err);
    else
        s = st_stmt(c,
                    "SELECT " USER_COLS " FROM users u WHERE u.id > ?1 AND ?2 = 0 "
                    "ORDER BY u.id LIMIT ?3",
                    err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, f->after_id > 0 ? f->after_id : 0);
    sqlite3_bind_int64(s, 2, f->scope_id > 0 ? f->scope_id : 0);
    sqlite3_bind_int(s, 3, f->limit);
    out = mu_xcalloc((size_t)f->limit, sizeof *out);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        user_from_row(s, &out[n++]);
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing users", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_users_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int64_t mu_store_user_count(struct mu_store *st)
{
    struct st_conn *c = st_reader(st, NULL);
    sqlite3_stmt *s;
    int64_t n = -1;

    if (!c)
        return -1;
    s = st_stmt(c, "SELECT count(*) FROM users", NULL);
    if (!s)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    st_stmt_done(c, s);
    return n;
}

/* Users and tokens change rarely and are read on every request: the authenticator caches
 * them and drops its cache when this generation moves (after any commit that touched a
 * user or a token, so a cached entry is never newer than the store). Process-wide: a
 * change in any store of the process invalidates every cache, which is only conservative. */
static _Atomic uint64_t auth_generation = 1;

void st_auth_changed(void)
{
    auth_generation++;
}

uint64_t mu_store_auth_generation(struct mu_store *st)
{
    (void)st;
    return auth_generation;
}
