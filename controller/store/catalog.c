/* What VMs are made from and grouped by: flavors (sizes), base images and the nodes that
 * hold a verified copy, and anti-affinity groups. Each refuses deletion while a VM row
 * still refers to it. */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/validate.h"

#define FLAVOR_COLS "id, name, vcpus, ram_mib, disk_gib, created_ms"
#define IMAGE_COLS                                                                                 \
    "id, name, format, size_bytes, sha256, path, status, kernel, initrd, cmdline, created_ms"
#define GROUP_COLS "g.id, g.tenant_id, g.name, g.created_ms"

/* ---- shared ---------------------------------------------------------------------- */

/* Grows *arr (of elem bytes) to hold one more than n. */
static void *grow(void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 16;
    return mu_xrealloc(arr, *cap * elem);
}

/* Counts rows of sql (one ?1 parameter) into *ret. */
static int count_rows(struct st_conn *c, const char *sql, int64_t id, int64_t *ret,
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

/* Name of row id through sql (?1); MU_ENOTFOUND with "<what> <id> does not exist". */
static int name_of(struct st_conn *c, const char *sql, const char *what, int64_t id,
                   char **ret_name, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_name = st_col_str(s, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "%s %" PRId64 " does not exist", what, id);
    } else {
        rc = st_sql_err(c, rc, "reading", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* Deletes row id (sql_delete, ?1) unless VM rows refer to it (sql_count), auditing. */
static int delete_unused(struct mu_store *st, int64_t id, const char *what, const char *sql_name,
                         const char *sql_count, const char *sql_delete, int64_t tenant_id,
                         const struct mu_audit_rec *audit, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    MU_AUTOFREE char *name = NULL;
    char target[64];
    sqlite3_stmt *s;
    int64_t used = 0;
    int rc;

    if (!c)
        return MU_EIO;
    rc = name_of(c, sql_name, what, id, &name, err);
    if (rc == 0)
        rc = count_rows(c, sql_count, id, &used, err);
    if (rc == 0 && used > 0)
        rc = mu_err_set(err, MU_ECONFLICT,
                        "%s %s is still used by %" PRId64 " VM(s): delete them first", what, name,
                        used);
    if (rc == 0) {
        snprintf(target, sizeof target, "%s/%" PRId64, what, id);
        rc = st_audit_append_tx(st, audit, tenant_id, target, name, err);
    }
    if (rc == 0) {
        s = st_stmt(c, sql_delete, err);
        rc = s ? 0 : MU_EIO;
        if (s) {
            sqlite3_bind_int64(s, 1, id);
            rc = st_run(c, s, "deleting", err);
            st_stmt_done(c, s);
        }
    }
    return st_tx_end(st, rc, err);
}

/* Fails with MU_ECONFLICT naming the holder if sql (?1 text, ?2 id) finds a row. */
static int check_free(struct st_conn *c, const char *sql, const char *value, int64_t id,
                      const char *field, const char *what, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, value);
    sqlite3_bind_int64(s, 2, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = mu_err_setf(err, MU_ECONFLICT, field, "%s name %s is already taken (%s %" PRId64 ")",
                         what, value, what, (int64_t)sqlite3_column_int64(s, 0));
    else
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "checking uniqueness", err);
    st_stmt_done(c, s);
    return rc;
}

static int bad_name(const char *what, const char *name, struct mu_err *err)
{
    return mu_err_setf(err, MU_EINVAL, "name",
                       "%s name %s is not valid: use lower-case letters, digits, '.', '_' and "
                       "'-' (at most 63 characters)",
                       what, name ? name : "(none)");
}

/* ---- flavors ---------------------------------------------------------------------- */

void mu_flavor_clear(struct mu_flavor *f)
{
    if (!f)
        return;
    free(f->name);
    memset(f, 0, sizeof *f);
}

void mu_flavors_free(struct mu_flavor *f, size_t n)
{
    if (!f)
        return;
    for (size_t i = 0; i < n; i++)
        mu_flavor_clear(&f[i]);
    free(f);
}

static void flavor_from_row(sqlite3_stmt *s, struct mu_flavor *f)
{
    memset(f, 0, sizeof *f);
    f->id = sqlite3_column_int64(s, 0);
    f->name = st_col_str(s, 1);
    f->vcpus = sqlite3_column_int64(s, 2);
    f->ram_mib = sqlite3_column_int64(s, 3);
    f->disk_gib = sqlite3_column_int64(s, 4);
    f->created_ms = sqlite3_column_int64(s, 5);
}

int mu_store_flavor_insert(struct mu_store *st, const struct mu_flavor *f,
                           const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    char target[48], detail[160];
    int64_t id = 0;
    int rc;

    if (!f->name || !mu_ident_valid(f->name))
        return bad_name("flavor", f->name, err);
    if (f->vcpus < 1 || f->ram_mib < 1 || f->disk_gib < 0)
        return mu_err_setf(err, MU_EINVAL, "vcpus",
                           "flavor %s needs at least 1 vCPU and 1 MiB of memory, and a disk "
                           "size of 0 GiB or more",
                           f->name);
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = check_free(c, "SELECT id FROM flavors WHERE name = ?1 AND id != ?2", f->name, 0, "name",
                    "flavor", err);
    if (rc < 0)
        goto out;
    s = st_stmt(c,
                "INSERT INTO flavors (name, vcpus, ram_mib, disk_gib, created_ms) "
                "VALUES (?1, ?2, ?3, ?4, ?5)",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_str(s, 1, f->name);
    sqlite3_bind_int64(s, 2, f->vcpus);
    sqlite3_bind_int64(s, 3, f->ram_mib);
    sqlite3_bind_int64(s, 4, f->disk_gib);
    sqlite3_bind_int64(s, 5, mu_now_ms());
    rc = st_run(c, s, "inserting a flavor", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    id = sqlite3_last_insert_rowid(c->db);
    snprintf(target, sizeof target, "flavor/%" PRId64, id);
    snprintf(detail, sizeof detail, "%s: %" PRId64 " vCPU, %" PRId64 " MiB, %" PRId64 " GiB",
             f->name, f->vcpus, f->ram_mib, f->disk_gib);
    rc = st_audit_append_tx(st, audit, 0, target, detail, err);

out:
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

/* One flavor by sql (?1 bound by bind_id or bind_name). */
static int flavor_one(struct mu_store *st, const char *sql, int64_t id, const char *name,
                      struct mu_flavor *ret, struct mu_err *err)
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
        flavor_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = name ? mu_err_set(err, MU_ENOTFOUND, "flavor %s does not exist", name)
                  : mu_err_set(err, MU_ENOTFOUND, "flavor %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a flavor", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_flavor_get(struct mu_store *st, int64_t id, struct mu_flavor *ret, struct mu_err *err)
{
    return flavor_one(st, "SELECT " FLAVOR_COLS " FROM flavors WHERE id = ?1", id, NULL, ret, err);
}

int mu_store_flavor_get_by_name(struct mu_store *st, const char *name, struct mu_flavor *ret,
                                struct mu_err *err)
{
    if (!name)
        return mu_err_setf(err, MU_EINVAL, "name", "no flavor name given");
    return flavor_one(st, "SELECT " FLAVOR_COLS " FROM flavors WHERE name = ?1", 0, name, ret, err);
}

int mu_store_flavor_list(struct mu_store *st, struct mu_flavor **ret, size_t *ret_n,
                         struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_flavor *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " FLAVOR_COLS " FROM flavors ORDER BY id", err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        out = grow(out, n, &cap, sizeof *out);
        flavor_from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing flavors", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_flavors_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_flavor_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                           struct mu_err *err)
{
    return delete_unused(st, id, "flavor", "SELECT name FROM flavors WHERE id = ?1",
                         "SELECT count(*) FROM vms WHERE flavor_id = ?1",
                         "DELETE FROM flavors WHERE id = ?1", 0, audit, err);
}

/* ---- images ----------------------------------------------------------------------- */

void mu_image_clear(struct mu_image *i)
{
    if (!i)
        return;
    free(i->name);
    free(i->format);
    free(i->path);
    free(i->status);
    free(i->kernel);
    free(i->initrd);
    free(i->cmdline);
    memset(i, 0, sizeof *i);
}

void mu_images_free(struct mu_image *i, size_t n)
{
    if (!i)
        return;
    for (size_t k = 0; k < n; k++)
        mu_image_clear(&i[k]);
    free(i);
}

static void image_from_row(sqlite3_stmt *s, struct mu_image *i)
{
    const unsigned char *sha;

    memset(i, 0, sizeof *i);
    i->id = sqlite3_column_int64(s, 0);
    i->name = st_col_str(s, 1);
    i->format = st_col_str(s, 2);
    i->size_bytes = sqlite3_column_int64(s, 3);
    sha = sqlite3_column_text(s, 4);
    snprintf(i->sha256, sizeof i->sha256, "%s", sha ? (const char *)sha : "");
    i->path = st_col_str(s, 5);
    i->status = st_col_str(s, 6);
    i->kernel = st_col_str(s, 7);
    i->initrd = st_col_str(s, 8);
    i->cmdline = st_col_str(s, 9);
    i->created_ms = sqlite3_column_int64(s, 10);
}

static bool sha256_valid(const char *h)
{
    size_t n = strlen(h);

    if (n != 64)
        return false;
    for (size_t k = 0; k < n; k++)
        if (!((h[k] >= '0' && h[k] <= '9') || (h[k] >= 'a' && h[k] <= 'f')))
            return false;
    return true;
}

int mu_store_image_insert(struct mu_store *st, const struct mu_image *i,
                          const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    char target[48];
    int64_t id = 0;
    int rc;

    if (!i->name || !mu_ident_valid(i->name))
        return bad_name("image", i->name, err);
    if (!i->format || (strcmp(i->format, "qcow2") != 0 && strcmp(i->format, "raw") != 0))
        return mu_err_setf(err, MU_EINVAL, "format",
                           "image %s: format must be given explicitly, qcow2 or raw", i->name);
    if (i->sha256[0] && !sha256_valid(i->sha256))
        return mu_err_setf(err, MU_EINVAL, "sha256",
                           "image %s: sha256 must be 64 lower-case hex digits", i->name);
    if (i->status && strcmp(i->status, "uploading") != 0 && strcmp(i->status, "ready") != 0)
        return mu_err_setf(err, MU_EINVAL, "status", "image %s: status must be uploading or ready",
                           i->name);
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = check_free(c, "SELECT id FROM images WHERE name = ?1 AND id != ?2", i->name, 0, "name",
                    "image", err);
    if (rc < 0)
        goto out;
    s = st_stmt(c,
                "INSERT INTO images (name, format, size_bytes, sha256, path, status, kernel, "
                "initrd, cmdline, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, "
                "COALESCE(?6, 'uploading'), ?7, ?8, ?9, ?10)",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_str(s, 1, i->name);
    st_bind_str(s, 2, i->format);
    sqlite3_bind_int64(s, 3, i->size_bytes);
    st_bind_str(s, 4, i->sha256[0] ? i->sha256 : NULL);
    st_bind_str(s, 5, i->path);
    st_bind_str(s, 6, i->status);
    st_bind_str(s, 7, i->kernel);
    st_bind_str(s, 8, i->initrd);
    st_bind_str(s, 9, i->cmdline);
    sqlite3_bind_int64(s, 10, mu_now_ms());
    rc = st_run(c, s, "inserting an image", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    id = sqlite3_last_insert_rowid(c->db);
    snprintf(target, sizeof target, "image/%" PRId64, id);
    rc = st_audit_append_tx(st, audit, 0, target, i->name, err);

out:
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

int mu_store_image_set_ready(struct mu_store *st, int64_t id, int64_t size_bytes,
                             const char *sha256, const char *path, struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    if (!sha256 || !sha256_valid(sha256))
        return mu_err_setf(err, MU_EINVAL, "sha256",
                           "image %" PRId64 ": sha256 must be 64 lower-case hex digits", id);
    if (!path || !path[0] || size_bytes <= 0)
        return mu_err_setf(err, MU_EINVAL, "path",
                           "image %" PRId64 ": a ready image needs its path and its size", id);
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "UPDATE images SET size_bytes = ?2, sha256 = ?3, path = ?4, status = 'ready' "
                "WHERE id = ?1",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, size_bytes);
    st_bind_str(s, 3, sha256);
    st_bind_str(s, 4, path);
    rc = st_run(c, s, "marking an image ready", err);
    st_stmt_done(c, s);
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = mu_err_set(err, MU_ENOTFOUND, "image %" PRId64 " does not exist", id);
    return st_tx_end(st, rc, err);
}

int mu_store_image_get(struct mu_store *st, int64_t id, struct mu_image *ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " IMAGE_COLS " FROM images WHERE id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        image_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "image %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading an image", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_image_list(struct mu_store *st, struct mu_image **ret, size_t *ret_n,
                        struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_image *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " IMAGE_COLS " FROM images ORDER BY id", err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        out = grow(out, n, &cap, sizeof *out);
        image_from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing images", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_images_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_image_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                          struct mu_err *err)
{
    /* A VM disk is an overlay on its base image: the image stays while VMs use it. */
    return delete_unused(st, id, "image", "SELECT name FROM images WHERE id = ?1",
                         "SELECT count(*) FROM vms WHERE image_id = ?1",
                         "DELETE FROM images WHERE id = ?1", 0, audit, err);
}

int mu_store_image_copy_set(struct mu_store *st, int64_t image_id, int64_t node_id,
                            struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    MU_AUTOFREE char *iname = NULL, *nname = NULL;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    rc = name_of(c, "SELECT name FROM images WHERE id = ?1", "image", image_id, &iname, err);
    if (rc == 0)
        rc = name_of(c, "SELECT name FROM nodes WHERE id = ?1", "node", node_id, &nname, err);
    if (rc == 0) {
        s = st_stmt(c,
                    "INSERT INTO image_copies (image_id, node_id, copied_ms) VALUES (?1, ?2, ?3) "
                    "ON CONFLICT (image_id, node_id) DO UPDATE SET copied_ms = excluded.copied_ms",
                    err);
        rc = s ? 0 : MU_EIO;
        if (s) {
            sqlite3_bind_int64(s, 1, image_id);
            sqlite3_bind_int64(s, 2, node_id);
            sqlite3_bind_int64(s, 3, mu_now_ms());
            rc = st_run(c, s, "recording an image copy", err);
            st_stmt_done(c, s);
        }
    }
    return st_tx_end(st, rc, err);
}

int mu_store_image_copy_has(struct mu_store *st, int64_t image_id, int64_t node_id,
                            struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT 1 FROM image_copies WHERE image_id = ?1 AND node_id = ?2", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, image_id);
    sqlite3_bind_int64(s, 2, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = 1;
    else
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading image copies", err);
    st_stmt_done(c, s);
    return rc;
}

/* ---- anti-affinity groups ----------------------------------------------------------- */

void mu_group_clear(struct mu_group *g)
{
    if (!g)
        return;
    free(g->name);
    memset(g, 0, sizeof *g);
}

void mu_groups_free(struct mu_group *g, size_t n)
{
    if (!g)
        return;
    for (size_t i = 0; i < n; i++)
        mu_group_clear(&g[i]);
    free(g);
}

static void group_from_row(sqlite3_stmt *s, struct mu_group *g)
{
    memset(g, 0, sizeof *g);
    g->id = sqlite3_column_int64(s, 0);
    g->tenant_id = sqlite3_column_int64(s, 1);
    g->name = st_col_str(s, 2);
    g->created_ms = sqlite3_column_int64(s, 3);
}

int mu_store_group_insert(struct mu_store *st, const struct mu_group *g,
                          const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    struct st_tenant_loc loc = {0};
    struct st_conn *c;
    sqlite3_stmt *s;
    char target[48];
    int64_t id = 0;
    int rc;

    if (!g->name || !mu_ident_valid(g->name))
        return bad_name("group", g->name, err);
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = st_tenant_locate(c, g->tenant_id, &loc, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_setf(err, MU_EINVAL, "tenant_id", "tenant %" PRId64 " does not exist",
                         g->tenant_id);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "SELECT id FROM groups WHERE tenant_id = ?1 AND name = ?2", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, g->tenant_id);
    st_bind_str(s, 2, g->name);
    if (sqlite3_step(s) == SQLITE_ROW)
        rc = mu_err_setf(err, MU_ECONFLICT, "name",
                         "tenant %s already has a group named %s (group %" PRId64 ")", loc.name,
                         g->name, (int64_t)sqlite3_column_int64(s, 0));
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "INSERT INTO groups (tenant_id, name, created_ms) VALUES (?1, ?2, ?3)", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, g->tenant_id);
    st_bind_str(s, 2, g->name);
    sqlite3_bind_int64(s, 3, mu_now_ms());
    rc = st_run(c, s, "inserting a group", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    id = sqlite3_last_insert_rowid(c->db);
    snprintf(target, sizeof target, "group/%" PRId64, id);
    rc = st_audit_append_tx(st, audit, g->tenant_id, target, g->name, err);

out:
    st_tenant_loc_clear(&loc);
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

int mu_store_group_get(struct mu_store *st, int64_t id, struct mu_group *ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " GROUP_COLS " FROM groups g WHERE g.id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        group_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "group %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a group", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_group_list(struct mu_store *st, int64_t scope_id, struct mu_group **ret, size_t *ret_n,
                        struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_group *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    if (scope_id > 0)
        s = st_stmt(c,
                    "SELECT " GROUP_COLS " FROM groups g JOIN tenants t ON t.id = g.tenant_id, "
                    "tenants sc WHERE sc.id = ?1 AND t.path >= sc.path "
                    "AND t.path < substr(sc.path, 1, length(sc.path) - 1) || '0' ORDER BY g.id",
                    err);
    else
        s = st_stmt(c, "SELECT " GROUP_COLS " FROM groups g ORDER BY g.id", err);
    if (!s)
        return MU_EIO;
    if (scope_id > 0)
        sqlite3_bind_int64(s, 1, scope_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        out = grow(out, n, &cap, sizeof *out);
        group_from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing groups", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_groups_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_group_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                          struct mu_err *err)
{
    struct mu_group g = {0};
    int rc;

    /* The tenant id goes on the audit row; a concurrent delete is caught again inside. */
    rc = mu_store_group_get(st, id, &g, err);
    if (rc < 0)
        return rc;
    rc = delete_unused(st, id, "group", "SELECT name FROM groups WHERE id = ?1",
                       "SELECT count(*) FROM vms WHERE group_id = ?1",
                       "DELETE FROM groups WHERE id = ?1", g.tenant_id, audit, err);
    mu_group_clear(&g);
    return rc;
}

int mu_store_group_nodes(struct mu_store *st, int64_t group_id, int64_t **ret_ids, size_t *ret_n,
                         struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT DISTINCT node_id FROM vms WHERE group_id = ?1 AND node_id IS NOT NULL "
                "ORDER BY node_id",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, group_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ids = grow(ids, n, &cap, sizeof *ids);
        ids[n++] = sqlite3_column_int64(s, 0);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing a group's nodes", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        free(ids);
        return rc;
    }
    *ret_ids = ids;
    *ret_n = n;
    return 0;
}
