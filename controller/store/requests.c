/* Catalogue requests (store/requests.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "store/requests.h"
#include "store/store_int.h"

#define REQ_COLS                                                                                   \
    "r.id, r.tenant_id, t.name, r.item, r.flavor, r.parameters, r.justification, r.status, "       \
    "r.reason, r.vm_id, r.op_id, r.probe_port, r.ready_deadline_ms, r.requested_by, "              \
    "r.decided_by, r.created_ms, r.updated_ms"

void mu_request_clear(struct mu_request *r)
{
    if (!r)
        return;
    free(r->tenant_name);
    free(r->item);
    free(r->flavor);
    free(r->parameters);
    free(r->justification);
    free(r->status);
    free(r->reason);
    free(r->requested_by);
    free(r->decided_by);
    memset(r, 0, sizeof *r);
}

void mu_requests_free(struct mu_request *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++)
        mu_request_clear(&r[i]);
    free(r);
}

static void from_row(sqlite3_stmt *s, struct mu_request *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, 0);
    r->tenant_id = sqlite3_column_int64(s, 1);
    r->tenant_name = st_col_str(s, 2);
    r->item = st_col_str(s, 3);
    r->flavor = st_col_str(s, 4);
    r->parameters = st_col_str(s, 5);
    r->justification = st_col_str(s, 6);
    r->status = st_col_str(s, 7);
    r->reason = st_col_str(s, 8);
    r->vm_id = sqlite3_column_int64(s, 9);
    r->op_id = sqlite3_column_int64(s, 10);
    r->probe_port = sqlite3_column_int(s, 11);
    r->ready_deadline_ms = sqlite3_column_int64(s, 12);
    r->requested_by = st_col_str(s, 13);
    r->decided_by = st_col_str(s, 14);
    r->created_ms = sqlite3_column_int64(s, 15);
    r->updated_ms = sqlite3_column_int64(s, 16);
}

/* The event of a change, on the request's tenant. */
static int event_tx(struct st_conn *c, int64_t id, int64_t tenant_id, const char *item,
                    const char *status, const char *reason, int64_t vm_id, struct mu_err *err)
{
    char type[48], subject[40];
    snprintf(type, sizeof type, "request.%s", status);
    snprintf(subject, sizeof subject, "request/%" PRId64, id);
    cJSON *d = mu_json_obj();
    mu_json_add_i64(d, "request_id", id);
    mu_json_add_str(d, "item", item);
    mu_json_add_str(d, "status", status);
    mu_json_add_str(d, "reason", reason);
    if (vm_id > 0)
        mu_json_add_i64(d, "vm_id", vm_id);
    else
        mu_json_add_null(d, "vm_id");
    MU_AUTOFREE char *data = mu_json_print(d);
    cJSON_Delete(d);
    return st_event_append_tx(c, tenant_id, type, subject, data, NULL, err);
}

int mu_store_request_insert(struct mu_store *st, const struct mu_request *r,
                            const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    int64_t now = mu_now_ms(), id = 0;
    char target[40];
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "INSERT INTO requests (tenant_id, item, flavor, parameters, justification, "
                "status, requested_by, created_ms, updated_ms) "
                "VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7)",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, r->tenant_id);
    st_bind_str(s, 2, r->item);
    st_bind_str(s, 3, r->flavor);
    st_bind_str(s, 4, r->parameters ? r->parameters : "{}");
    st_bind_str(s, 5, r->justification ? r->justification : "");
    st_bind_str(s, 6, r->requested_by ? r->requested_by : "");
    sqlite3_bind_int64(s, 7, now);
    rc = st_run(c, s, "inserting a request", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    id = sqlite3_last_insert_rowid(c->db);
    snprintf(target, sizeof target, "request/%" PRId64, id);
    rc = st_audit_append_tx(st, audit, r->tenant_id, target, NULL, err);
    if (rc == 0)
        rc = event_tx(c, id, r->tenant_id, r->item, "created", NULL, 0, err);
out:
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

static int get_on(struct st_conn *c, int64_t id, struct mu_request *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT " REQ_COLS " FROM requests r LEFT JOIN tenants t ON "
                              "t.id = r.tenant_id WHERE r.id = ?1",
                              err);
    int rc;
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "no request %" PRId64, id);
    } else {
        rc = st_sql_err(c, rc, "reading a request", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_request_get(struct mu_store *st, int64_t id, struct mu_request *ret,
                         struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    if (!c)
        return MU_EIO;
    return get_on(c, id, ret, err);
}

int mu_store_request_list(struct mu_store *st, const struct mu_request_filter *f,
                          struct mu_request **ret, size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_request *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT " REQ_COLS " FROM requests r JOIN tenants t ON t.id = r.tenant_id "
                "WHERE r.id > ?1 AND (?2 IS NULL OR r.status = ?2) "
                "AND (?3 = 0 OR substr(t.path, 1, length((SELECT path FROM tenants WHERE id = "
                "?3))) = (SELECT path FROM tenants WHERE id = ?3)) "
                "AND (?4 = 0 OR substr(t.path, 1, length((SELECT path FROM tenants WHERE id = "
                "?4))) = (SELECT path FROM tenants WHERE id = ?4)) "
                "ORDER BY r.id LIMIT ?5",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, f->after_id);
    st_bind_str(s, 2, f->status);
    sqlite3_bind_int64(s, 3, f->scope_id);
    sqlite3_bind_int64(s, 4, f->tenant_id);
    sqlite3_bind_int64(s, 5, f->limit > 0 ? f->limit : -1);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing requests", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_requests_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_request_change(struct mu_store *st, int64_t id, const struct mu_request_change *ch,
                            const struct mu_audit_rec *audit, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    struct mu_request cur = {0};
    char target[40];
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    rc = get_on(c, id, &cur, err);
    if (rc < 0)
        goto out;
    if (strcmp(cur.status, ch->from) != 0) {
        rc = mu_err_set(err, MU_ECONFLICT,
                        "request %" PRId64 " is %s%s%s%s, not %s: nothing changed", id, cur.status,
                        cur.decided_by ? " (decided by " : "", cur.decided_by ? cur.decided_by : "",
                        cur.decided_by ? ")" : "", ch->from);
        goto out;
    }
    s = st_stmt(c,
                "UPDATE requests SET status = ?2, reason = COALESCE(?3, reason), "
                "decided_by = COALESCE(?4, decided_by), "
                "vm_id = CASE WHEN ?5 > 0 THEN ?5 ELSE vm_id END, "
                "op_id = CASE WHEN ?6 > 0 THEN ?6 ELSE op_id END, "
                "probe_port = CASE WHEN ?7 > 0 THEN ?7 ELSE probe_port END, "
                "ready_deadline_ms = CASE WHEN ?8 > 0 THEN ?8 ELSE ready_deadline_ms END, "
                "updated_ms = ?9 WHERE id = ?1 AND status = ?10",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, id);
    st_bind_str(s, 2, ch->to);
    st_bind_str(s, 3, ch->reason);
    st_bind_str(s, 4, ch->decided_by);
    sqlite3_bind_int64(s, 5, ch->vm_id);
    sqlite3_bind_int64(s, 6, ch->op_id);
    sqlite3_bind_int(s, 7, ch->probe_port);
    sqlite3_bind_int64(s, 8, ch->ready_deadline_ms);
    sqlite3_bind_int64(s, 9, mu_now_ms());
    st_bind_str(s, 10, ch->from);
    rc = st_run(c, s, "changing a request", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    snprintf(target, sizeof target, "request/%" PRId64, id);
    rc = st_audit_append_tx(st, audit, cur.tenant_id, target, ch->reason, err);
    if (rc == 0)
        rc = event_tx(c, id, cur.tenant_id, cur.item, ch->to, ch->reason ? ch->reason : cur.reason,
                      ch->vm_id > 0 ? ch->vm_id : cur.vm_id, err);
out:
    mu_request_clear(&cur);
    return st_tx_end(st, rc, err);
}
