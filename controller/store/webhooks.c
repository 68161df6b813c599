/* Webhooks, their delivery queue and attempt records (store/webhooks.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"
#include "store/store_int.h"
#include "store/webhooks.h"

#define WH_COLS                                                                                    \
    "w.id, w.tenant_id, w.url, w.enabled, w.types_json, w.cursor, w.secret_ms, w.created_ms, "     \
    "w.updated_ms, w.consecutive_failures, w.delivered, w.failed, w.last_event_id, "               \
    "w.last_attempt_ms, w.last_http_status, w.last_outcome, w.last_error, "                        \
    "(SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id "                        \
    "AND d.state = 'pending')"

void mu_webhook_clear(struct mu_webhook *w)
{
    if (!w)
        return;
    free(w->url);
    free(w->types_json);
    free(w->last_outcome);
    free(w->last_error);
    memset(w, 0, sizeof *w);
}

static void webhook_from_row(sqlite3_stmt *s, struct mu_webhook *w)
{
    memset(w, 0, sizeof *w);
    w->id = sqlite3_column_int64(s, 0);
    w->tenant_id = sqlite3_column_int64(s, 1);
    w->url = st_col_str(s, 2);
    w->enabled = sqlite3_column_int(s, 3) != 0;
    w->types_json = st_col_str(s, 4);
    w->cursor = sqlite3_column_int64(s, 5);
    w->secret_ms = sqlite3_column_int64(s, 6);
    w->created_ms = sqlite3_column_int64(s, 7);
    w->updated_ms = sqlite3_column_int64(s, 8);
    w->consecutive_failures = sqlite3_column_int64(s, 9);
    w->delivered = sqlite3_column_int64(s, 10);
    w->failed = sqlite3_column_int64(s, 11);
    w->last_event_id = sqlite3_column_int64(s, 12);
    w->last_attempt_ms = sqlite3_column_int64(s, 13);
    w->last_http_status = sqlite3_column_int64(s, 14);
    w->last_outcome = st_col_str(s, 15);
    w->last_error = st_col_str(s, 16);
    w->pending = sqlite3_column_int64(s, 17);
}

int mu_store_webhook_get(struct mu_store *st, int64_t tenant_id, struct mu_webhook *ret,
                         struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " WH_COLS " FROM webhooks w WHERE w.tenant_id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, tenant_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        webhook_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " has no webhook", tenant_id);
    } else {
        rc = st_sql_err(c, rc, "reading a webhook", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* "https://host:port" of url, for audit details: a path or query may carry a token. */
static void url_origin(const char *url, char *out, size_t outlen)
{
    size_t n = strlen(url), start = 0;
    const char *p = strstr(url, "://");

    if (p)
        start = (size_t)(p - url) + 3;
    n = start + strcspn(url + start, "/?#");
    snprintf(out, outlen, "%.*s", (int)n, url);
}

int mu_store_webhook_put(struct mu_store *st, const struct mu_webhook_set *set,
                         const struct mu_audit_rec *audit, bool *ret_created, struct mu_err *err)
{
    struct st_tenant_loc loc = {0};
    struct st_conn *c;
    sqlite3_stmt *s;
    int64_t now = mu_now_ms(), existing = 0;
    char target[48], origin[300], detail[512];
    int rc;

    if (!set->url || !set->types_json)
        return mu_err_set(err, MU_EINVAL, "a webhook needs a URL and its types");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = st_tenant_locate(c, set->tenant_id, &loc, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", set->tenant_id);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "SELECT id FROM webhooks WHERE tenant_id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, set->tenant_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        existing = sqlite3_column_int64(s, 0);
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading a webhook", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    if (!existing && !set->secret) {
        rc = mu_err_set(err, MU_EINVAL, "a new webhook needs a secret");
        goto out;
    }
    if (existing)
        s = st_stmt(c,
                    "UPDATE webhooks SET url = ?2, enabled = ?3, types_json = ?4, "
                    "secret = coalesce(?5, secret), "
                    "secret_ms = CASE WHEN ?5 IS NULL THEN secret_ms ELSE ?6 END, "
                    "updated_ms = ?6 WHERE tenant_id = ?1",
                    err);
    else
        /* A new webhook hears what happens from now on: its cursor is the feed's end. */
        s = st_stmt(c,
                    "INSERT INTO webhooks (tenant_id, url, enabled, types_json, secret, cursor, "
                    "secret_ms, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, "
                    "(SELECT coalesce(max(id), 0) FROM events), ?6, ?6, ?6)",
                    err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, set->tenant_id);
    st_bind_str(s, 2, set->url);
    sqlite3_bind_int(s, 3, set->enabled ? 1 : 0);
    st_bind_str(s, 4, set->types_json);
    st_bind_str(s, 5, set->secret);
    sqlite3_bind_int64(s, 6, now);
    rc = st_run(c, s, "writing a webhook", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    snprintf(target, sizeof target, "tenant/%" PRId64 "/webhook", set->tenant_id);
    url_origin(set->url, origin, sizeof origin);
    snprintf(detail, sizeof detail, "%s url=%s enabled=%s types=%s%s",
             existing ? "updated" : "created", origin, set->enabled ? "yes" : "no", set->types_json,
             set->secret && existing ? " secret rotated" : "");
    if (audit) {
        struct mu_audit_rec rec = *audit;
        if (!rec.detail)
            rec.detail = detail;
        rc = st_audit_append_tx(st, &rec, set->tenant_id, target, NULL, err);
    }
out:
    st_tenant_loc_clear(&loc);
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_created)
        *ret_created = existing == 0;
    return rc;
}

int mu_store_webhook_delete(struct mu_store *st, int64_t tenant_id,
                            const struct mu_audit_rec *audit, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    sqlite3_stmt *s;
    char target[48];
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "DELETE FROM webhooks WHERE tenant_id = ?1", err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, tenant_id);
    rc = st_run(c, s, "deleting a webhook", err);
    st_stmt_done(c, s);
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " has no webhook", tenant_id);
    snprintf(target, sizeof target, "tenant/%" PRId64 "/webhook", tenant_id);
    if (rc == 0 && audit)
        rc = st_audit_append_tx(st, audit, tenant_id, target, NULL, err);
    return st_tx_end(st, rc, err);
}

/* ---- dispatcher ----------------------------------------------------------------------- */

int mu_store_webhook_enqueue(struct mu_store *st, int64_t now, int64_t give_up_ms,
                             size_t max_per_hook, size_t *ret_queued, struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    int64_t last = 0;
    int rc, queued = 0;

    if (max_per_hook == 0)
        max_per_hook = 1000;
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT coalesce(max(id), 0) FROM events", err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        last = sqlite3_column_int64(s, 0);
    rc = rc == SQLITE_ROW ? 0 : st_sql_err(c, rc, "reading the event feed", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return st_tx_end(st, rc, err);
    /* Every enabled webhook behind the feed: its window (cursor, min(last, cursor + max)]
     * of its tenant's subtree, type-filtered, becomes deliveries; the whole window is then
     * behind the cursor, matching or not. The writer lock holds new events back meanwhile. */
    s = st_stmt(c,
                "INSERT OR IGNORE INTO webhook_deliveries (webhook_id, event_id, next_ms, "
                "deadline_ms, created_ms) "
                "SELECT w.id, e.id, ?2, ?2 + ?3, ?2 FROM webhooks w "
                "JOIN tenants t ON t.id = w.tenant_id "
                "JOIN events e ON e.id > w.cursor AND e.id <= min(?1, w.cursor + ?4) "
                "AND e.tenant_path >= t.path "
                "AND e.tenant_path < substr(t.path, 1, length(t.path) - 1) || '0' "
                "WHERE w.enabled = 1 AND w.cursor < ?1 "
                "AND (w.types_json = '[]' OR EXISTS (SELECT 1 FROM json_each(w.types_json) j "
                "WHERE substr(e.type, 1, length(j.value)) = j.value))",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, last);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, give_up_ms);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)max_per_hook);
    rc = st_run(c, s, "queueing webhook deliveries", err);
    st_stmt_done(c, s);
    if (rc == 0)
        queued = sqlite3_changes(c->db);
    if (rc == 0) {
        s = st_stmt(c,
                    "UPDATE webhooks SET cursor = min(?1, cursor + ?2) "
                    "WHERE enabled = 1 AND cursor < ?1",
                    err);
        if (!s)
            return st_tx_end(st, MU_EIO, err);
        sqlite3_bind_int64(s, 1, last);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)max_per_hook);
        rc = st_run(c, s, "moving webhook cursors", err);
        st_stmt_done(c, s);
    }
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_queued)
        *ret_queued = (size_t)queued;
    return rc;
}

void mu_webhook_jobs_free(struct mu_webhook_job *j, size_t n)
{
    if (!j)
        return;
    for (size_t i = 0; i < n; i++) {
        free(j[i].url);
        if (j[i].secret) {
            memset(j[i].secret, 0, strlen(j[i].secret));
            free(j[i].secret);
        }
        mu_event_clear(&j[i].event);
    }
    free(j);
}

int mu_store_webhook_due(struct mu_store *st, int64_t now, size_t max, struct mu_webhook_job **ret,
                         size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_webhook_job *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT d.id, w.id, w.tenant_id, w.url, w.secret, d.attempts, d.deadline_ms, "
                "e.id, e.at_ms, e.tenant_id, e.type, e.subject, e.data "
                "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
                "JOIN events e ON e.id = d.event_id "
                "WHERE d.state = 'pending' AND d.next_ms <= ?1 AND w.enabled = 1 "
                "ORDER BY w.id, e.id LIMIT ?2",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)(max ? max : 100));
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct mu_webhook_job *j;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        j = &out[n++];
        memset(j, 0, sizeof *j);
        j->delivery_id = sqlite3_column_int64(s, 0);
        j->webhook_id = sqlite3_column_int64(s, 1);
        j->tenant_id = sqlite3_column_int64(s, 2);
        j->url = st_col_str(s, 3);
        j->secret = st_col_str(s, 4);
        j->attempts = sqlite3_column_int64(s, 5);
        j->deadline_ms = sqlite3_column_int64(s, 6);
        j->event.id = sqlite3_column_int64(s, 7);
        j->event.at_ms = sqlite3_column_int64(s, 8);
        j->event.tenant_id = sqlite3_column_int64(s, 9);
        j->event.type = st_col_str(s, 10);
        j->event.subject = st_col_str(s, 11);
        j->event.data = st_col_str(s, 12);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing due webhook deliveries", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_webhook_jobs_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_webhook_next_due(struct mu_store *st, int64_t *ret_ms, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT coalesce(min(d.next_ms), 0) FROM webhook_deliveries d "
                "JOIN webhooks w ON w.id = d.webhook_id "
                "WHERE d.state = 'pending' AND w.enabled = 1",
                err);
    if (!s)
        return MU_EIO;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_ms = sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        rc = st_sql_err(c, rc, "reading the next webhook delivery", err);
    }
    st_stmt_done(c, s);
    return rc;
}

static const char *outcome_name(enum mu_webhook_outcome o)
{
    switch (o) {
    case MU_WEBHOOK_DELIVERED:
        return "delivered";
    case MU_WEBHOOK_RETRY:
        return "retry";
    case MU_WEBHOOK_FAILED:
        return "failed";
    }
    return "failed";
}

int mu_store_webhook_record(struct mu_store *st, const struct mu_webhook_attempt *a,
                            struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    const char *oname = outcome_name(a->outcome);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_http_status = ?2, "
                "last_error = ?3, "
                "state = CASE ?4 WHEN 'retry' THEN 'pending' ELSE ?4 END, "
                "next_ms = CASE ?4 WHEN 'retry' THEN ?5 ELSE next_ms END, "
                "done_ms = CASE ?4 WHEN 'retry' THEN 0 ELSE ?6 END "
                "WHERE id = ?1 AND state = 'pending'",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, a->delivery_id);
    sqlite3_bind_int64(s, 2, a->http_status);
    st_bind_str(s, 3, a->error);
    st_bind_str(s, 4, oname);
    sqlite3_bind_int64(s, 5, a->next_ms);
    sqlite3_bind_int64(s, 6, a->at_ms + a->duration_ms);
    rc = st_run(c, s, "recording a webhook delivery", err);
    st_stmt_done(c, s);
    if (rc < 0 || sqlite3_changes(c->db) == 0)
        return st_tx_end(st, rc, err); /* gone meanwhile (webhook deleted) */
    s = st_stmt(c,
                "INSERT INTO webhook_attempts (delivery_id, at_ms, duration_ms, outcome, "
                "http_status, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, a->delivery_id);
    sqlite3_bind_int64(s, 2, a->at_ms);
    sqlite3_bind_int64(s, 3, a->duration_ms);
    st_bind_str(s, 4, oname);
    sqlite3_bind_int64(s, 5, a->http_status);
    st_bind_str(s, 6, a->error);
    rc = st_run(c, s, "recording a webhook attempt", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return st_tx_end(st, rc, err);
    s = st_stmt(c,
                "UPDATE webhooks SET last_attempt_ms = ?2, last_outcome = ?3, "
                "last_http_status = ?4, last_error = ?5, "
                "last_event_id = (SELECT event_id FROM webhook_deliveries WHERE id = ?1), "
                "consecutive_failures = CASE ?3 WHEN 'delivered' THEN 0 "
                "ELSE consecutive_failures + 1 END, "
                "delivered = delivered + (?3 = 'delivered'), failed = failed + (?3 = 'failed') "
                "WHERE id = (SELECT webhook_id FROM webhook_deliveries WHERE id = ?1)",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, a->delivery_id);
    sqlite3_bind_int64(s, 2, a->at_ms);
    st_bind_str(s, 3, oname);
    sqlite3_bind_int64(s, 4, a->http_status);
    st_bind_str(s, 5, a->error);
    rc = st_run(c, s, "recording a webhook's status", err);
    st_stmt_done(c, s);
    return st_tx_end(st, rc, err);
}

void mu_webhook_attempt_rows_free(struct mu_webhook_attempt_row *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++) {
        free(r[i].outcome);
        free(r[i].error);
    }
    free(r);
}

int mu_store_webhook_attempts(struct mu_store *st, int64_t tenant_id, size_t max,
                              struct mu_webhook_attempt_row **ret, size_t *ret_n,
                              struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_webhook_attempt_row *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT a.id, a.delivery_id, d.event_id, a.at_ms, a.duration_ms, a.http_status, "
                "a.outcome, a.error FROM webhook_attempts a "
                "JOIN webhook_deliveries d ON d.id = a.delivery_id "
                "JOIN webhooks w ON w.id = d.webhook_id WHERE w.tenant_id = ?1 "
                "ORDER BY a.id DESC LIMIT ?2",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, tenant_id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)(max ? max : 20));
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct mu_webhook_attempt_row *r;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        r = &out[n++];
        r->id = sqlite3_column_int64(s, 0);
        r->delivery_id = sqlite3_column_int64(s, 1);
        r->event_id = sqlite3_column_int64(s, 2);
        r->at_ms = sqlite3_column_int64(s, 3);
        r->duration_ms = sqlite3_column_int64(s, 4);
        r->http_status = sqlite3_column_int64(s, 5);
        r->outcome = st_col_str(s, 6);
        r->error = st_col_str(s, 7);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing webhook attempts", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_webhook_attempt_rows_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_webhook_prune(struct mu_store *st, int64_t before_ms, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    int rc;
    sqlite3_stmt *s;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "DELETE FROM webhook_attempts WHERE at_ms < ?1", err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, before_ms);
    rc = st_run(c, s, "pruning webhook attempts", err);
    st_stmt_done(c, s);
    if (rc == 0) {
        s = st_stmt(c, "DELETE FROM webhook_deliveries WHERE state != 'pending' AND done_ms < ?1",
                    err);
        if (!s)
            return st_tx_end(st, MU_EIO, err);
        sqlite3_bind_int64(s, 1, before_ms);
        rc = st_run(c, s, "pruning webhook deliveries", err);
        st_stmt_done(c, s);
    }
    return st_tx_end(st, rc, err);
}

/* ---- node addresses ------------------------------------------------------------------- */

void mu_node_addr_refs_free(struct mu_node_addr_ref *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++) {
        free(r[i].name);
        free(r[i].uri);
        free(r[i].underlay);
    }
    free(r);
}

int mu_store_node_addr_refs(struct mu_store *st, struct mu_node_addr_ref **ret, size_t *ret_n,
                            struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_node_addr_ref *out = NULL;
    size_t n = 0, cap = 0;
    MU_AUTOFREE char *col = NULL;
    MU_AUTOFREE char *sql = NULL;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    /* The networks work adds the underlay address to the nodes; read it where it exists. */
    s = st_stmt(c,
                "SELECT name FROM pragma_table_info('nodes') WHERE name LIKE 'underlay%' "
                "ORDER BY cid LIMIT 1",
                err);
    if (!s)
        return MU_EIO;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        col = st_col_str(s, 0);
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading nodes", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;
    if (col && strspn(col, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(col))
        col[0] = '\0'; /* never paste an odd name into SQL */
    sql =
        mu_xasprintf("SELECT id, name, uri, %s FROM nodes ORDER BY id", col && *col ? col : "NULL");
    s = st_stmt_dyn(c, sql, err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct mu_node_addr_ref *r;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        r = &out[n++];
        r->node_id = sqlite3_column_int64(s, 0);
        r->name = st_col_str(s, 1);
        r->uri = st_col_str(s, 2);
        r->underlay = st_col_str(s, 3);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading nodes", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_node_addr_refs_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}
