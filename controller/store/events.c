/* The event feed (store/events.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"
#include "store/events.h"
#include "store/store_int.h"

void mu_event_clear(struct mu_event *e)
{
    if (!e)
        return;
    free(e->type);
    free(e->subject);
    free(e->data);
    memset(e, 0, sizeof(*e));
}

void mu_events_free(struct mu_event *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++)
        mu_event_clear(&e[i]);
    free(e);
}

int st_event_append_tx(struct st_conn *c, int64_t tenant_id, const char *type, const char *subject,
                       const char *data_json, int64_t *ret_id, struct mu_err *err)
{
    struct st_tenant_loc loc = {0};
    sqlite3_stmt *s;
    int rc;

    if (!type || !*type || !subject || !*subject)
        return mu_err_set(err, MU_EINVAL, "an event needs a type and a subject");
    rc = st_tenant_locate(c, tenant_id, &loc, err);
    if (rc == MU_ENOTFOUND)
        return mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", tenant_id);
    if (rc < 0)
        return rc;
    s = st_stmt(c,
                "INSERT INTO events (at_ms, tenant_id, tenant_path, type, subject, data) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                err);
    if (!s) {
        st_tenant_loc_clear(&loc);
        return MU_EIO;
    }
    sqlite3_bind_int64(s, 1, mu_now_ms());
    sqlite3_bind_int64(s, 2, tenant_id);
    st_bind_str(s, 3, loc.path);
    st_bind_str(s, 4, type);
    st_bind_str(s, 5, subject);
    st_bind_str(s, 6, data_json ? data_json : "{}");
    rc = st_run(c, s, "appending an event", err);
    st_stmt_done(c, s);
    if (rc == 0 && ret_id)
        *ret_id = sqlite3_last_insert_rowid(c->db);
    st_tenant_loc_clear(&loc);
    return rc;
}

int mu_store_event_append(struct mu_store *st, int64_t tenant_id, const char *type,
                          const char *subject, const char *data_json, int64_t *ret_id,
                          struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    int64_t id = 0;
    int rc;

    if (!c)
        return MU_EIO;
    rc = st_event_append_tx(c, tenant_id, type, subject, data_json, &id, err);
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

int mu_store_event_list(struct mu_store *st, const struct mu_event_filter *f, struct mu_event **ret,
                        size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct st_tenant_loc loc = {0};
    struct mu_event *out = NULL;
    size_t n = 0, cap = 0, limit = f->limit ? f->limit : 100;
    char *upper = NULL;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    if (limit > 1000)
        limit = 1000;
    if (f->tenant_id > 0) {
        rc = st_tenant_locate(c, f->tenant_id, &loc, err);
        if (rc == MU_ENOTFOUND)
            return mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", f->tenant_id);
        if (rc < 0)
            return rc;
        upper = st_path_upper(loc.path);
    }
    s = st_stmt(c,
                "SELECT id, at_ms, tenant_id, type, subject, data FROM events "
                "WHERE id > ?1 AND (?2 IS NULL OR (tenant_path >= ?2 AND tenant_path < ?3)) "
                "AND (?4 IS NULL OR substr(type, 1, length(?4)) = ?4) "
                "ORDER BY id LIMIT ?5",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, f->after_id);
    st_bind_str(s, 2, loc.path);
    st_bind_str(s, 3, upper);
    st_bind_str(s, 4, f->type_prefix);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct mu_event *e;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof(*out));
        }
        e = &out[n++];
        memset(e, 0, sizeof(*e));
        e->id = sqlite3_column_int64(s, 0);
        e->at_ms = sqlite3_column_int64(s, 1);
        e->tenant_id = sqlite3_column_int64(s, 2);
        e->type = st_col_str(s, 3);
        e->subject = st_col_str(s, 4);
        e->data = st_col_str(s, 5);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing events", err);
    st_stmt_done(c, s);
out:
    st_tenant_loc_clear(&loc);
    free(upper);
    if (rc < 0) {
        mu_events_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}
