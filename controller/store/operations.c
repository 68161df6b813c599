/* Operations: every mutating VM action as a persisted row (the intent), inserted in the
 * transaction that made the change, then advanced step by step by ops/. At most one
 * unfinished (pending or running) operation per VM, enforced by a unique partial index. */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OP_COLS                                                                                    \
    "id, kind, vm_id, node_id, state, step, attempts, next_run_ms, deadline_ms, params_json, "     \
    "error, actor, request_id, created_ms, updated_ms, finished_ms"

void mu_op_clear(struct mu_op *o)
{
    if (!o)
        return;
    free(o->kind);
    free(o->state);
    free(o->step);
    free(o->params_json);
    free(o->error);
    free(o->actor);
    free(o->request_id);
    memset(o, 0, sizeof *o);
}

void mu_ops_free(struct mu_op *o, size_t n)
{
    if (!o)
        return;
    for (size_t i = 0; i < n; i++)
        mu_op_clear(&o[i]);
    free(o);
}

static void op_from_row(sqlite3_stmt *s, struct mu_op *o)
{
    memset(o, 0, sizeof *o);
    o->id = sqlite3_column_int64(s, 0);
    o->kind = st_col_str(s, 1);
    o->vm_id = sqlite3_column_int64(s, 2);
    o->node_id = sqlite3_column_int64(s, 3);
    o->state = st_col_str(s, 4);
    o->step = st_col_str(s, 5);
    o->attempts = sqlite3_column_int64(s, 6);
    o->next_run_ms = sqlite3_column_int64(s, 7);
    o->deadline_ms = sqlite3_column_int64(s, 8);
    o->params_json = st_col_str(s, 9);
    o->error = st_col_str(s, 10);
    o->actor = st_col_str(s, 11);
    o->request_id = st_col_str(s, 12);
    o->created_ms = sqlite3_column_int64(s, 13);
    o->updated_ms = sqlite3_column_int64(s, 14);
    o->finished_ms = sqlite3_column_int64(s, 15);
}

int st_op_insert_tx(struct st_conn *c, const char *kind, int64_t vm_id, int64_t node_id,
                    const char *params_json, const struct mu_audit_rec *audit, int64_t now,
                    int64_t *ret_id, struct mu_err *err)
{
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c,
                "INSERT INTO operations (kind, vm_id, node_id, state, step, attempts, "
                "next_run_ms, deadline_ms, params_json, actor, request_id, created_ms, "
                "updated_ms) VALUES (?1, ?2, ?3, 'pending', '', 0, ?4, ?5, ?6, ?7, ?8, ?4, ?4)",
                err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, kind);
    sqlite3_bind_int64(s, 2, vm_id);
    st_bind_id(s, 3, node_id);
    sqlite3_bind_int64(s, 4, now);
    sqlite3_bind_int64(s, 5, now + ST_OP_DEADLINE_MS);
    st_bind_str(s, 6, params_json);
    st_bind_str(s, 7, audit ? audit->actor : NULL);
    st_bind_str(s, 8, audit ? audit->request_id : NULL);
    rc = st_run(c, s, "inserting an operation", err);
    st_stmt_done(c, s);
    if (rc == 0)
        *ret_id = sqlite3_last_insert_rowid(c->db);
    return rc;
}

int st_op_unfinished_of(struct st_conn *c, int64_t vm_id, int64_t *ret_id, char **ret_kind,
                        struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT id, kind FROM operations WHERE vm_id = ?1 "
                              "AND state IN ('pending', 'running')",
                              err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, vm_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_id = sqlite3_column_int64(s, 0);
        *ret_kind = st_col_str(s, 1);
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading operations", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_op_get(struct mu_store *st, int64_t id, struct mu_op *ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " OP_COLS " FROM operations WHERE id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        op_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "operation %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading an operation", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* Runs a list query on the reader; ?1 and ?2 bound when given (>= 0). */
static int op_list(struct mu_store *st, const char *sql, int64_t p1, int64_t p2, struct mu_op **ret,
                   size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_op *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, sql, err);
    if (!s)
        return MU_EIO;
    if (p1 >= 0)
        sqlite3_bind_int64(s, 1, p1);
    if (p2 >= 0)
        sqlite3_bind_int64(s, 2, p2);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        op_from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing operations", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_ops_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_op_due(struct mu_store *st, int64_t now_ms, int limit, struct mu_op **ret,
                    size_t *ret_n, struct mu_err *err)
{
    if (limit < 1 || limit > 1000)
        return mu_err_setf(err, MU_EINVAL, "limit", "limit must be between 1 and 1000");
    return op_list(st,
                   "SELECT " OP_COLS " FROM operations WHERE state IN ('pending', 'running') "
                   "AND next_run_ms <= ?1 ORDER BY next_run_ms, id LIMIT ?2",
                   now_ms < 0 ? 0 : now_ms, limit, ret, ret_n, err);
}

int mu_store_op_unfinished(struct mu_store *st, struct mu_op **ret, size_t *ret_n,
                           struct mu_err *err)
{
    return op_list(st,
                   "SELECT " OP_COLS " FROM operations WHERE state IN ('pending', 'running') "
                   "ORDER BY id",
                   -1, -1, ret, ret_n, err);
}

/* Applies an UPDATE to an unfinished operation (?1 id, ?2 text, ?3 number, ?4 now): when
 * it changed nothing, says whether the operation is missing or already finished. */
static int op_update(struct mu_store *st, const char *sql, int64_t id, const char *text,
                     int64_t num, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, sql, err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, id);
    st_bind_str(s, 2, text);
    sqlite3_bind_int64(s, 3, num);
    sqlite3_bind_int64(s, 4, mu_now_ms());
    rc = st_run(c, s, "updating an operation", err);
    st_stmt_done(c, s);
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        s = st_stmt(c, "SELECT kind, state FROM operations WHERE id = ?1", err);
        if (!s)
            return st_tx_end(st, MU_EIO, err);
        sqlite3_bind_int64(s, 1, id);
        if (sqlite3_step(s) == SQLITE_ROW)
            rc = mu_err_set(err, MU_ECONFLICT, "operation %" PRId64 " (%s) has already %s", id,
                            (const char *)sqlite3_column_text(s, 0),
                            (const char *)sqlite3_column_text(s, 1));
        else
            rc = mu_err_set(err, MU_ENOTFOUND, "operation %" PRId64 " does not exist", id);
        st_stmt_done(c, s);
    }
    return st_tx_end(st, rc, err);
}

int mu_store_op_step(struct mu_store *st, int64_t id, const char *step, struct mu_err *err)
{
    if (!step)
        return mu_err_setf(err, MU_EINVAL, "step", "no step name given");
    /* A step done clears the last transient error: it was overcome. */
    return op_update(st,
                     "UPDATE operations SET state = 'running', step = ?2, error = NULL, "
                     "updated_ms = ?4 WHERE id = ?1 AND state IN ('pending', 'running')",
                     id, step, 0, err);
}

int mu_store_op_retry(struct mu_store *st, int64_t id, int64_t next_run_ms, const char *error,
                      struct mu_err *err)
{
    return op_update(st,
                     "UPDATE operations SET attempts = attempts + 1, next_run_ms = ?3, "
                     "error = ?2, updated_ms = ?4 WHERE id = ?1 "
                     "AND state IN ('pending', 'running')",
                     id, error, next_run_ms, err);
}

int mu_store_op_finish(struct mu_store *st, int64_t id, bool ok, const char *error,
                       struct mu_err *err)
{
    if (!ok && (!error || !error[0]))
        return mu_err_setf(err, MU_EINVAL, "error", "a failed operation needs its reason");
    return op_update(st,
                     "UPDATE operations SET state = CASE WHEN ?3 THEN 'succeeded' ELSE 'failed' "
                     "END, error = ?2, finished_ms = ?4, updated_ms = ?4 WHERE id = ?1 "
                     "AND state IN ('pending', 'running')",
                     id, ok ? NULL : error, ok ? 1 : 0, err);
}

int64_t mu_store_op_pending_count(struct mu_store *st)
{
    struct st_conn *c = st_reader(st, NULL);
    sqlite3_stmt *s;
    int64_t n = -1;

    if (!c)
        return -1;
    s = st_stmt(c, "SELECT count(*) FROM operations WHERE state IN ('pending', 'running')", NULL);
    if (!s)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    st_stmt_done(c, s);
    return n;
}
