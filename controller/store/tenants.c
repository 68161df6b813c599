/* Tenants: a tree kept as a materialized path ("/1/5/77/") so that a subtree is one index
 * range and a move is one UPDATE of the path prefix. */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/log.h"
#include "mutualis/validate.h"

void mu_tenant_clear(struct mu_tenant *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->kind);
    free(t->epci_form);
    free(t->siren);
    free(t->insee);
    free(t->dept);
    free(t->region);
    free(t->contact_name);
    free(t->contact_email);
    free(t->contact_phone);
    free(t->status);
    memset(t, 0, sizeof *t);
}

void mu_tenants_free(struct mu_tenant *t, size_t n)
{
    if (!t)
        return;
    for (size_t i = 0; i < n; i++)
        mu_tenant_clear(&t[i]);
    free(t);
}

void st_tenant_from_row(sqlite3_stmt *s, struct mu_tenant *t)
{
    t->id = sqlite3_column_int64(s, 0);
    t->parent_id = sqlite3_column_int64(s, 1); /* NULL reads as 0 */
    t->name = st_col_str(s, 2);
    t->kind = st_col_str(s, 3);
    t->epci_form = st_col_str(s, 4);
    t->siren = st_col_str(s, 5);
    t->insee = st_col_str(s, 6);
    t->dept = st_col_str(s, 7);
    t->region = st_col_str(s, 8);
    t->population = sqlite3_column_int64(s, 9);
    t->contact_name = st_col_str(s, 10);
    t->contact_email = st_col_str(s, 11);
    t->contact_phone = st_col_str(s, 12);
    t->status = st_col_str(s, 13);
    t->depth = sqlite3_column_int(s, 14);
    t->created_ms = sqlite3_column_int64(s, 15);
    t->updated_ms = sqlite3_column_int64(s, 16);
}

void st_tenant_loc_clear(struct st_tenant_loc *l)
{
    free(l->path);
    free(l->name);
    memset(l, 0, sizeof *l);
}

int st_tenant_locate(struct st_conn *c, int64_t id, struct st_tenant_loc *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, "SELECT path, depth, name FROM tenants WHERE id = ?1", err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        ret->id = id;
        ret->path = st_col_str(s, 0);
        ret->depth = sqlite3_column_int(s, 1);
        ret->name = st_col_str(s, 2);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = MU_ENOTFOUND;
    } else {
        rc = st_sql_err(c, rc, "reading a tenant", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* Who already holds value in the unique column: 0 (free), 1 (*ret_id, *ret_name) or < 0. */
static int holder(struct st_conn *c, const char *sql, const char *value, int64_t self_id,
                  int64_t *ret_id, char **ret_name, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, value);
    sqlite3_bind_int64(s, 2, self_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_id = sqlite3_column_int64(s, 0);
        *ret_name = st_col_str(s, 1);
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "checking uniqueness", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int st_tenant_check_unique(struct st_conn *c, const struct mu_tenant *t, int64_t self_id,
                           struct mu_err *err)
{
    int64_t other = 0;
    char *name = NULL;
    int rc = 0;

    if (t->siren) {
        rc = holder(c, "SELECT id, name FROM tenants WHERE siren = ?1 AND id != ?2", t->siren,
                    self_id, &other, &name, err);
        if (rc == 1)
            rc = mu_err_setf(err, MU_ECONFLICT, "siren",
                             "SIREN %s is already used by tenant %" PRId64 " (%s)", t->siren, other,
                             name);
    }
    if (rc == 0 && t->insee && t->kind && strcmp(t->kind, "commune") == 0) {
        rc = holder(c,
                    "SELECT id, name FROM tenants WHERE kind = 'commune' AND insee = ?1 "
                    "AND id != ?2",
                    t->insee, self_id, &other, &name, err);
        if (rc == 1)
            rc = mu_err_setf(err, MU_ECONFLICT, "insee",
                             "INSEE code %s is already used by commune %" PRId64 " (%s)", t->insee,
                             other, name);
    }
    free(name);
    return rc;
}

/* Binds the fields shared by insert and update at positions 1..13. */
static void bind_fields(sqlite3_stmt *s, const struct mu_tenant *t, const char *fold)
{
    st_bind_str(s, 1, t->name);
    st_bind_str(s, 2, fold);
    st_bind_str(s, 3, t->kind);
    st_bind_str(s, 4, t->epci_form);
    st_bind_str(s, 5, t->siren);
    st_bind_str(s, 6, t->insee);
    st_bind_str(s, 7, t->dept);
    st_bind_str(s, 8, t->region);
    sqlite3_bind_int64(s, 9, t->population);
    st_bind_str(s, 10, t->contact_name);
    st_bind_str(s, 11, t->contact_email);
    st_bind_str(s, 12, t->contact_phone);
    st_bind_str(s, 13, t->status);
}

static int check_required(const struct mu_tenant *t, struct mu_err *err)
{
    if (!t->name || !t->name[0])
        return mu_err_setf(err, MU_EINVAL, "name", "a tenant needs a name");
    if (!t->kind || !t->kind[0])
        return mu_err_setf(err, MU_EINVAL, "kind", "a tenant needs a kind");
    return 0;
}

int st_tenant_insert_tx(struct st_conn *c, const struct mu_tenant *t, int64_t now, int64_t *ret_id,
                        char **ret_path, struct mu_err *err)
{
    struct st_tenant_loc parent = {0};
    MU_AUTOFREE char *fold = NULL;
    sqlite3_stmt *s = NULL;
    char *path = NULL;
    int64_t id = 0;
    int rc;

    rc = check_required(t, err);
    if (rc < 0)
        return rc;
    if (t->parent_id > 0) {
        rc = st_tenant_locate(c, t->parent_id, &parent, err);
        if (rc == MU_ENOTFOUND)
            rc = mu_err_setf(err, MU_EINVAL, "parent_id",
                             "parent tenant %" PRId64 " does not exist", t->parent_id);
        if (rc < 0)
            goto out;
    }
    rc = st_tenant_check_unique(c, t, 0, err);
    if (rc < 0)
        goto out;
    fold = mu_text_fold(t->name);
    s = st_stmt(c,
                "INSERT INTO tenants (name, name_fold, kind, epci_form, siren, insee, dept, "
                "region, population, contact_name, contact_email, contact_phone, status, "
                "parent_id, depth, path, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, "
                "?6, ?7, ?8, ?9, ?10, ?11, ?12, COALESCE(?13, 'active'), ?14, ?15, '#', ?16, ?16)",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    bind_fields(s, t, fold ? fold : "");
    st_bind_id(s, 14, t->parent_id);
    sqlite3_bind_int(s, 15, t->parent_id > 0 ? parent.depth + 1 : 0);
    sqlite3_bind_int64(s, 16, now);
    rc = st_run(c, s, "inserting a tenant", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    /* The path ends with the new id, known only now. */
    id = sqlite3_last_insert_rowid(c->db);
    path = mu_xasprintf("%s%" PRId64 "/", t->parent_id > 0 ? parent.path : "/", id);
    s = st_stmt(c, "UPDATE tenants SET path = ?1 WHERE id = ?2", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_str(s, 1, path);
    sqlite3_bind_int64(s, 2, id);
    rc = st_run(c, s, "setting a tenant's path", err);
    st_stmt_done(c, s);

out:
    st_tenant_loc_clear(&parent);
    if (rc < 0) {
        free(path);
        return rc;
    }
    *ret_id = id;
    if (ret_path)
        *ret_path = path;
    else
        free(path);
    return 0;
}

int st_tenant_write_fields(struct st_conn *c, const struct mu_tenant *t, int64_t now,
                           struct mu_err *err)
{
    MU_AUTOFREE char *fold = NULL;
    sqlite3_stmt *s;
    int rc;

    rc = check_required(t, err);
    if (rc < 0)
        return rc;
    fold = mu_text_fold(t->name);
    s = st_stmt(c,
                "UPDATE tenants SET name = ?1, name_fold = ?2, kind = ?3, epci_form = ?4, "
                "siren = ?5, insee = ?6, dept = ?7, region = ?8, population = ?9, "
                "contact_name = ?10, contact_email = ?11, contact_phone = ?12, "
                "status = COALESCE(?13, status), updated_ms = ?14 WHERE id = ?15",
                err);
    if (!s)
        return MU_EIO;
    bind_fields(s, t, fold ? fold : "");
    sqlite3_bind_int64(s, 14, now);
    sqlite3_bind_int64(s, 15, t->id);
    rc = st_run(c, s, "updating a tenant", err);
    st_stmt_done(c, s);
    return rc;
}

/* Rewrites the prefix old_path of every path in the subtree (tenants and audit rows). */
static int rewrite_prefix(struct st_conn *c, const char *sql, const char *old_path,
                          const char *new_path, int depth_delta, struct mu_err *err)
{
    MU_AUTOFREE char *upper = st_path_upper(old_path);
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, new_path);
    sqlite3_bind_int64(s, 2, (int64_t)strlen(old_path) + 1);
    st_bind_str(s, 3, old_path);
    st_bind_str(s, 4, upper);
    if (sqlite3_bind_parameter_count(s) >= 5)
        sqlite3_bind_int(s, 5, depth_delta);
    rc = st_run(c, s, "moving a subtree", err);
    st_stmt_done(c, s);
    return rc;
}

int st_tenant_move_tx(struct st_conn *c, int64_t id, int64_t new_parent_id, int64_t now,
                      struct mu_err *err)
{
    struct st_tenant_loc self = {0}, parent = {0};
    MU_AUTOFREE char *new_path = NULL;
    sqlite3_stmt *s;
    int new_depth = 0;
    int rc;

    rc = st_tenant_locate(c, id, &self, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", id);
    if (rc < 0)
        goto out;
    if (new_parent_id > 0) {
        rc = st_tenant_locate(c, new_parent_id, &parent, err);
        if (rc == MU_ENOTFOUND)
            rc = mu_err_setf(err, MU_EINVAL, "parent_id",
                             "new parent tenant %" PRId64 " does not exist", new_parent_id);
        if (rc < 0)
            goto out;
        if (strncmp(parent.path, self.path, strlen(self.path)) == 0) {
            rc = mu_err_setf(err, MU_ECONFLICT, "parent_id",
                             "cannot move tenant %" PRId64 " (%s) under tenant %" PRId64
                             " (%s): tenant %" PRId64 " is inside tenant %" PRId64 "'s subtree",
                             id, self.name, new_parent_id, parent.name, new_parent_id, id);
            goto out;
        }
        new_path = mu_xasprintf("%s%" PRId64 "/", parent.path, id);
        new_depth = parent.depth + 1;
    } else {
        new_path = mu_xasprintf("/%" PRId64 "/", id);
    }
    if (strcmp(new_path, self.path) == 0)
        goto out; /* already there */
    rc = rewrite_prefix(c,
                        "UPDATE tenants SET path = ?1 || substr(path, ?2), depth = depth + ?5 "
                        "WHERE path >= ?3 AND path < ?4",
                        self.path, new_path, new_depth - self.depth, err);
    if (rc == 0)
        rc = rewrite_prefix(c,
                            "UPDATE audit SET tenant_path = ?1 || substr(tenant_path, ?2) "
                            "WHERE tenant_path >= ?3 AND tenant_path < ?4",
                            self.path, new_path, 0, err);
    if (rc == 0)
        rc = rewrite_prefix(c,
                            "UPDATE events SET tenant_path = ?1 || substr(tenant_path, ?2) "
                            "WHERE tenant_path >= ?3 AND tenant_path < ?4",
                            self.path, new_path, 0, err);
    /* The subtree's VMs follow, and their allocation moves between the ancestors'
     * usage counters, in this same transaction. */
    if (rc == 0)
        rc = st_usage_move_subtree(c, self.path, new_path, err);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "UPDATE tenants SET parent_id = ?1, updated_ms = ?2 WHERE id = ?3", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_id(s, 1, new_parent_id);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, id);
    rc = st_run(c, s, "moving a tenant", err);
    st_stmt_done(c, s);

out:
    st_tenant_loc_clear(&self);
    st_tenant_loc_clear(&parent);
    return rc;
}

int mu_store_tenant_insert(struct mu_store *st, const struct mu_tenant *t,
                           const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    char target[48];
    int64_t id = 0;
    int rc;

    if (!c)
        return MU_EIO;
    rc = st_tenant_insert_tx(c, t, mu_now_ms(), &id, NULL, err);
    if (rc == 0) {
        snprintf(target, sizeof target, "tenant/%" PRId64, id);
        rc = st_audit_append_tx(st, audit, id, target, NULL, err);
    }
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

int mu_store_tenant_update(struct mu_store *st, const struct mu_tenant *t,
                           const struct mu_audit_rec *audit, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    struct st_tenant_loc self = {0};
    char target[48];
    int rc;

    if (!c)
        return MU_EIO;
    rc = st_tenant_locate(c, t->id, &self, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", t->id);
    if (rc == 0)
        rc = st_tenant_check_unique(c, t, t->id, err);
    if (rc == 0)
        rc = st_tenant_write_fields(c, t, mu_now_ms(), err);
    if (rc == 0) {
        snprintf(target, sizeof target, "tenant/%" PRId64, t->id);
        rc = st_audit_append_tx(st, audit, t->id, target, NULL, err);
    }
    st_tenant_loc_clear(&self);
    return st_tx_end(st, rc, err);
}

int mu_store_tenant_move(struct mu_store *st, int64_t id, int64_t new_parent_id,
                         const struct mu_audit_rec *audit, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    char target[48], detail[96];
    sqlite3_stmt *s;
    int64_t old_parent = 0;
    int rc = 0;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT parent_id FROM tenants WHERE id = ?1", err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) == SQLITE_ROW)
        old_parent = sqlite3_column_int64(s, 0);
    st_stmt_done(c, s);
    rc = st_tenant_move_tx(c, id, new_parent_id, mu_now_ms(), err);
    if (rc == 0) {
        snprintf(target, sizeof target, "tenant/%" PRId64, id);
        snprintf(detail, sizeof detail, "moved from %" PRId64 " to %" PRId64, old_parent,
                 new_parent_id);
        rc = st_audit_append_tx(st, audit, id, target, detail, err);
    }
    return st_tx_end(st, rc, err);
}

static int count_of(struct st_conn *c, const char *sql, int64_t id, int64_t *ret,
                    struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    *ret = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    rc = rc == SQLITE_ROW ? 0 : st_sql_err(c, rc, "counting", err);
    st_stmt_done(c, s);
    return rc;
}

int mu_store_tenant_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                           struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    struct st_tenant_loc self = {0};
    int64_t children = 0, users = 0, vms = 0, networks = 0;
    char target[48];
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    rc = st_tenant_locate(c, id, &self, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", id);
    if (rc == 0)
        rc = count_of(c, "SELECT count(*) FROM tenants WHERE parent_id = ?1", id, &children, err);
    if (rc == 0)
        rc = count_of(c, "SELECT count(*) FROM users WHERE tenant_id = ?1", id, &users, err);
    if (rc == 0)
        rc = count_of(c, "SELECT count(*) FROM vms WHERE tenant_id = ?1", id, &vms, err);
    if (rc == 0)
        rc = count_of(c, "SELECT count(*) FROM networks WHERE tenant_id = ?1", id, &networks, err);
    if (rc == 0 && children > 0)
        rc = mu_err_set(err, MU_ECONFLICT,
                        "tenant %" PRId64 " (%s) still has %" PRId64
                        " child tenant(s): move or delete them first",
                        id, self.name, children);
    if (rc == 0 && users > 0)
        rc = mu_err_set(err, MU_ECONFLICT,
                        "tenant %" PRId64 " (%s) still has %" PRId64
                        " user(s): delete them or move them to another tenant first",
                        id, self.name, users);
    if (rc == 0 && vms > 0)
        rc = mu_err_set(err, MU_ECONFLICT,
                        "tenant %" PRId64 " (%s) still has %" PRId64 " VM(s): delete them first",
                        id, self.name, vms);
    if (rc == 0 && networks > 0)
        rc = mu_err_set(err, MU_ECONFLICT,
                        "tenant %" PRId64 " (%s) still has %" PRId64
                        " network(s): delete them first",
                        id, self.name, networks);
    /* The audit row first: it takes the tenant's path while the tenant still exists. */
    if (rc == 0) {
        snprintf(target, sizeof target, "tenant/%" PRId64, id);
        rc = st_audit_append_tx(st, audit, id, target, self.name, err);
    }
    if (rc == 0) {
        s = st_stmt(c, "DELETE FROM tenants WHERE id = ?1", err);
        rc = s ? 0 : MU_EIO;
        if (s) {
            sqlite3_bind_int64(s, 1, id);
            rc = st_run(c, s, "deleting a tenant", err);
            st_stmt_done(c, s);
        }
    }
    st_tenant_loc_clear(&self);
    return st_tx_end(st, rc, err);
}

int mu_store_tenant_get(struct mu_store *st, int64_t id, struct mu_tenant *ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " ST_TENANT_COLS " FROM tenants WHERE id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(ret, 0, sizeof *ret);
        st_tenant_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a tenant", err);
    }
    st_stmt_done(c, s);
    return rc;
}

bool mu_store_tenant_in_subtree(struct mu_store *st, int64_t ancestor_id, int64_t tenant_id)
{
    struct st_conn *c = st_reader(st, NULL);
    sqlite3_stmt *s;
    bool in;

    if (!c)
        return false;
    s = st_stmt(c,
                "SELECT 1 FROM tenants a, tenants t WHERE a.id = ?1 AND t.id = ?2 "
                "AND substr(t.path, 1, length(a.path)) = a.path",
                NULL);
    if (!s)
        return false;
    sqlite3_bind_int64(s, 1, ancestor_id);
    sqlite3_bind_int64(s, 2, tenant_id);
    in = sqlite3_step(s) == SQLITE_ROW;
    st_stmt_done(c, s);
    return in;
}

int mu_store_tenant_ancestors(struct mu_store *st, int64_t id, int64_t **ret_ids, size_t *ret_n,
                              struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct st_tenant_loc self = {0};
    int64_t *ids = NULL;
    size_t n = 0;
    int rc;

    if (!c)
        return MU_EIO;
    rc = st_tenant_locate(c, id, &self, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", id);
    if (rc < 0)
        goto out;
    ids = mu_xcalloc((size_t)self.depth + 1, sizeof *ids);
    for (char *p = self.path + 1; *p && n < (size_t)self.depth + 1;) {
        char *slash = strchr(p, '/');
        MU_AUTOFREE char *seg = NULL;

        if (!slash)
            break;
        seg = mu_xstrndup(p, (size_t)(slash - p));
        if (mu_parse_i64(seg, 1, INT64_MAX, &ids[n]) < 0) {
            rc = mu_err_set(err, MU_EIO, "tenant %" PRId64 " has a corrupt path %s", id, self.path);
            goto out;
        }
        n++;
        p = slash + 1;
    }

out:
    st_tenant_loc_clear(&self);
    if (rc < 0) {
        free(ids);
        return rc;
    }
    *ret_ids = ids;
    *ret_n = n;
    return 0;
}

#define SUBTREE_OF(p)                                                                              \
    " AND path >= (SELECT path FROM tenants WHERE id = " p ")"                                     \
    " AND path < (SELECT substr(path, 1, length(path) - 1) || '0' FROM tenants WHERE id = " p ")"

/* The index path's work budget: 50 x 1,000 SQLite VM instructions, about 2 ms (a page of
 * a common word costs under 10, reading all 36,000 rows of a word every name has, 675).
 * Past it the page is asked of the scan instead (mu_store_tenant_list). */
#define FTS_BUDGET_STEPS 1000
#define FTS_BUDGET_CALLS 50

/* The filters other than q, appended to a WHERE clause (parameters ?2..?6). */
static void list_filters(struct mu_buf *sql, const struct mu_tenant_filter *f)
{
    if (f->scope_id > 0)
        mu_buf_puts(sql, SUBTREE_OF("?2"));
    if (f->parent_id == 0)
        mu_buf_puts(sql, " AND parent_id IS NULL");
    else if (f->parent_id > 0)
        mu_buf_puts(sql, " AND parent_id = ?3");
    if (f->subtree_of > 0)
        mu_buf_puts(sql, SUBTREE_OF("?4"));
    if (f->kind)
        mu_buf_puts(sql, " AND kind = ?5");
    if (f->status)
        mu_buf_puts(sql, " AND status = ?6");
}

/* The query of a page. With use_fts, the folded q (?7) is looked up in tenant_fts, whose
 * trigram index serves LIKE '%q%' for q of 3 characters or more: rows come out of it in
 * rowid order, joined to tenants (CROSS JOIN keeps that order, so the first page stops
 * early), merged with the exact SIREN / INSEE matches (?8) that the name did not match.
 * Without, the names are scanned (instr). Both give the same rows: LIKE and instr agree on
 * folded text (no ASCII capitals; LIKE is case-sensitive beyond ASCII), and q holds no
 * LIKE wildcard (the caller checks; '_' never survives folding). */
static void list_sql(struct mu_buf *sql, const struct mu_tenant_filter *f, const char *fold,
                     bool use_fts)
{
    if (use_fts) {
        mu_buf_puts(sql, "SELECT f.rowid AS id, t.parent_id, t.name, t.kind, t.epci_form, "
                         "t.siren, t.insee, t.dept, t.region, t.population, t.contact_name, "
                         "t.contact_email, t.contact_phone, t.status, t.depth, t.created_ms, "
                         "t.updated_ms FROM tenant_fts f CROSS JOIN tenants t ON t.id = f.rowid "
                         "WHERE f.name_fold LIKE '%' || ?7 || '%' AND f.rowid > ?1");
        list_filters(sql, f);
        mu_buf_puts(sql, " UNION ALL SELECT " ST_TENANT_COLS " FROM tenants WHERE id > ?1 "
                         "AND (siren = ?8 OR insee = ?8) AND NOT name_fold LIKE '%' || ?7 || '%'");
        list_filters(sql, f);
        mu_buf_puts(sql, " ORDER BY 1 LIMIT ?9");
        return;
    }
    mu_buf_puts(sql, "SELECT " ST_TENANT_COLS " FROM tenants WHERE id > ?1");
    list_filters(sql, f);
    if (f->q && fold && fold[0])
        mu_buf_puts(sql, " AND (instr(name_fold, ?7) > 0 OR siren = ?8 OR insee = ?8)");
    else if (f->q)
        mu_buf_puts(sql, " AND (siren = ?8 OR insee = ?8)");
    mu_buf_puts(sql, " ORDER BY id LIMIT ?9");
}

/* Counts progress callbacks; past the budget, interrupts the statement. */
static int fts_budget(void *p)
{
    int *calls = p;

    return ++*calls > FTS_BUDGET_CALLS;
}

/* Runs one page query into out (room for f->limit). 0, or 1 without touching err when
 * budget is set and the query ran past it (the rows read so far are then freed), or < 0. */
static int tenant_list_run(struct st_conn *c, const struct mu_tenant_filter *f, const char *fold,
                           bool use_fts, bool budget, struct mu_tenant *out, size_t *ret_n,
                           struct mu_err *err)
{
    struct mu_buf sql;
    sqlite3_stmt *s;
    size_t n = 0;
    int calls = 0;
    int rc;

    mu_buf_init(&sql);
    list_sql(&sql, f, fold, use_fts);
    s = st_stmt_dyn(c, sql.data, err);
    mu_buf_free(&sql);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, f->after_id > 0 ? f->after_id : 0);
    sqlite3_bind_int64(s, 2, f->scope_id);
    sqlite3_bind_int64(s, 3, f->parent_id);
    sqlite3_bind_int64(s, 4, f->subtree_of);
    st_bind_str(s, 5, f->kind);
    st_bind_str(s, 6, f->status);
    st_bind_str(s, 7, fold);
    st_bind_str(s, 8, f->q);
    sqlite3_bind_int(s, 9, f->limit);
    if (budget)
        sqlite3_progress_handler(c->db, FTS_BUDGET_STEPS, fts_budget, &calls);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        st_tenant_from_row(s, &out[n++]);
    if (budget)
        sqlite3_progress_handler(c->db, 0, NULL, NULL);
    if (rc == SQLITE_INTERRUPT && budget) {
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing tenants", err);
    }
    st_stmt_done(c, s);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            mu_tenant_clear(&out[i]);
        n = 0;
    }
    *ret_n = n;
    return rc;
}

/* Unicode characters of a UTF-8 string (its continuation bytes not counted). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

int mu_store_tenant_list(struct mu_store *st, const struct mu_tenant_filter *f,
                         struct mu_tenant **ret, size_t *ret_n, struct mu_err *err)
{
    MU_AUTOFREE char *fold = NULL;
    struct mu_tenant *out = NULL;
    struct st_conn *c;
    bool use_fts;
    size_t n = 0;
    int rc;

    if (f->limit < 1 || f->limit > 1000)
        return mu_err_setf(err, MU_EINVAL, "limit", "limit must be between 1 and 1000");
    c = st_reader(st, err);
    if (!c)
        return MU_EIO;
    fold = f->q ? mu_text_fold(f->q) : NULL;
    use_fts = fold && utf8_chars(fold) >= 3 && !strpbrk(fold, "%_");
    out = mu_xcalloc((size_t)f->limit, sizeof *out);
    /* The index path reads the rows whose name matches, in id order, until the page is
     * full: quick unless most of them fail the other filters (a common word asked within
     * a small subtree or of a rare kind). Past its budget the same page is asked of the
     * scan, which the filters' indexes then keep short. */
    rc = tenant_list_run(c, f, fold, use_fts, use_fts, out, &n, err);
    if (rc == 1) {
        mu_log_debug("tenant search over budget, scanning q_len=%zu", strlen(fold));
        rc = tenant_list_run(c, f, fold, false, false, out, &n, err);
    }
    if (rc < 0) {
        free(out);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}
