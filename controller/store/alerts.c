/* Alerts (store/alerts.h): firing and resolved rows, each transition with its audit entry
 * and its event in one transaction; the reads the alert evaluator gathers from. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "store/alerts.h"
#include "store/store_int.h"

#define ALERT_COLS                                                                                 \
    "id, rule, subject, severity, state, detail, pending_ms, since_ms, resolved_ms, last_eval_ms"

void mu_alert_clear(struct mu_alert *a)
{
    if (!a)
        return;
    free(a->rule);
    free(a->subject);
    free(a->severity);
    free(a->state);
    free(a->detail);
    memset(a, 0, sizeof *a);
}

void mu_alerts_free(struct mu_alert *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        mu_alert_clear(&a[i]);
    free(a);
}

static void alert_from_row(sqlite3_stmt *s, struct mu_alert *a)
{
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(s, 0);
    a->rule = st_col_str(s, 1);
    a->subject = st_col_str(s, 2);
    a->severity = st_col_str(s, 3);
    a->state = st_col_str(s, 4);
    a->detail = st_col_str(s, 5);
    a->pending_ms = sqlite3_column_int64(s, 6);
    a->since_ms = sqlite3_column_int64(s, 7);
    a->resolved_ms = sqlite3_column_int64(s, 8);
    a->last_eval_ms = sqlite3_column_int64(s, 9);
}

/* Rule and subject names end up in audit targets and event subjects: allow-listed. */
static bool name_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The root tenant (lowest id without a parent): 0 when there is none. */
static int root_tenant(struct st_conn *c, int64_t *ret, struct mu_err *err)
{
    sqlite3_stmt *s =
        st_stmt(c, "SELECT id FROM tenants WHERE parent_id IS NULL ORDER BY id LIMIT 1", err);
    int rc;
    if (!s)
        return MU_EIO;
    rc = sqlite3_step(s);
    *ret = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "finding the root", err);
    st_stmt_done(c, s);
    return rc;
}

/* Audit entry and event of a transition of a (read back from the row). */
static int transition_tx(struct mu_store *st, struct st_conn *c, const struct mu_alert *a,
                         bool firing, struct mu_err *err)
{
    char target[160];
    int64_t root = 0;
    int rc;

    snprintf(target, sizeof target, "alert/%s/%s", a->rule, a->subject);
    struct mu_audit_rec rec = {.actor = "mutualisd",
                               .role = "",
                               .action = firing ? "alert.fire" : "alert.resolve",
                               .target = target,
                               .outcome = "ok",
                               .request_id = "alerts",
                               .detail = a->detail};
    rc = st_audit_append_tx(st, &rec, 0, target, a->detail, err);
    if (rc < 0)
        return rc;
    rc = root_tenant(c, &root, err);
    if (rc < 0 || root == 0)
        return rc;
    cJSON *data = mu_json_obj();
    mu_json_add_i64(data, "id", a->id);
    mu_json_add_str(data, "rule", a->rule);
    mu_json_add_str(data, "subject", a->subject);
    mu_json_add_str(data, "severity", a->severity);
    mu_json_add_str(data, "state", a->state);
    mu_json_add_str(data, "detail", a->detail);
    mu_json_add_time(data, "since", a->since_ms);
    mu_json_add_time(data, "resolved", a->resolved_ms);
    MU_AUTOFREE char *text = mu_json_print(data);
    cJSON_Delete(data);
    return st_event_append_tx(c, root, firing ? "alert.firing" : "alert.resolved", target, text,
                              NULL, err);
}

static int read_tx(struct st_conn *c, int64_t id, struct mu_alert *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, "SELECT " ALERT_COLS " FROM alerts WHERE id = ?1", err);
    int rc;
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        alert_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "no alert %" PRId64, id);
    } else {
        rc = st_sql_err(c, rc, "reading an alert", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_alert_fire(struct mu_store *st, const struct mu_alert *a, int64_t *ret_id,
                        struct mu_err *err)
{
    struct mu_alert row = {0};
    struct st_conn *c;
    sqlite3_stmt *s;
    int64_t id = 0;
    int rc;

    if (!name_ok(a->rule, 64) || !name_ok(a->subject, 64))
        return mu_err_set(err, MU_EINVAL, "an alert's rule and subject are [A-Za-z0-9._-]{1,64}");
    if (!a->severity || !a->detail)
        return mu_err_set(err, MU_EINVAL, "an alert needs a severity and a detail");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "INSERT INTO alerts (rule, subject, severity, state, detail, pending_ms, "
                "since_ms, resolved_ms, last_eval_ms) VALUES (?1, ?2, ?3, 'firing', ?4, ?5, ?6, "
                "0, ?6)",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    st_bind_str(s, 1, a->rule);
    st_bind_str(s, 2, a->subject);
    st_bind_str(s, 3, a->severity);
    st_bind_str(s, 4, a->detail);
    sqlite3_bind_int64(s, 5, a->pending_ms);
    sqlite3_bind_int64(s, 6, a->since_ms);
    rc = st_run(c, s, "recording an alert", err);
    st_stmt_done(c, s);
    if (rc == MU_ECONFLICT)
        mu_err_set(err, MU_ECONFLICT, "alert %s on %s is already firing", a->rule, a->subject);
    if (rc == 0) {
        id = sqlite3_last_insert_rowid(c->db);
        rc = read_tx(c, id, &row, err);
    }
    if (rc == 0)
        rc = transition_tx(st, c, &row, true, err);
    mu_alert_clear(&row);
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

int mu_store_alert_resolve(struct mu_store *st, int64_t id, int64_t now_ms, const char *detail,
                           struct mu_err *err)
{
    struct mu_alert row = {0};
    struct st_conn *c = st_tx_begin(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "UPDATE alerts SET state = 'resolved', resolved_ms = ?2, last_eval_ms = ?2, "
                "detail = COALESCE(?3, detail) WHERE id = ?1 AND state = 'firing'",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    st_bind_str(s, 3, detail);
    rc = st_run(c, s, "resolving an alert", err);
    st_stmt_done(c, s);
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = mu_err_set(err, MU_ENOTFOUND, "alert %" PRId64 " is not firing", id);
    if (rc == 0)
        rc = read_tx(c, id, &row, err);
    if (rc == 0)
        rc = transition_tx(st, c, &row, false, err);
    mu_alert_clear(&row);
    return st_tx_end(st, rc, err);
}

int mu_store_alert_touch(struct mu_store *st, int64_t now_ms, const int64_t *ids,
                         const char *const *details, size_t n, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "UPDATE alerts SET last_eval_ms = ?1 WHERE state = 'firing'", err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, now_ms);
    rc = st_run(c, s, "recording an alert pass", err);
    st_stmt_done(c, s);
    for (size_t i = 0; i < n && rc == 0; i++) {
        s = st_stmt(c,
                    "UPDATE alerts SET detail = ?2 WHERE id = ?1 AND state = 'firing' AND "
                    "detail != ?2",
                    err);
        if (!s) {
            rc = MU_EIO;
            break;
        }
        sqlite3_bind_int64(s, 1, ids[i]);
        st_bind_str(s, 2, details[i] ? details[i] : "");
        rc = st_run(c, s, "updating an alert's detail", err);
        st_stmt_done(c, s);
    }
    return st_tx_end(st, rc, err);
}

int mu_store_alert_list(struct mu_store *st, const struct mu_alert_filter *f, struct mu_alert **ret,
                        size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_alert *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT " ALERT_COLS " FROM alerts WHERE (?1 IS NULL OR state = ?1) AND id > ?2 "
                "ORDER BY id LIMIT ?3",
                err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, f->state);
    sqlite3_bind_int64(s, 2, f->after_id);
    sqlite3_bind_int64(s, 3, f->limit > 0 ? f->limit : -1);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        alert_from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing alerts", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_alerts_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_alert_tenants(struct mu_store *st, const struct mu_quota_defaults *defaults,
                           struct mu_alert_tenant **ret, size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_alert_tenant *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT t.id, t.name, t.kind, t.population, q.tenant_id IS NOT NULL, q.vcpus, "
                "q.ram_mib, q.disk_gib, q.vms, u.vcpus, u.ram_mib, u.disk_gib, u.vms "
                "FROM tenant_usage u JOIN tenants t ON t.id = u.tenant_id "
                "LEFT JOIN quotas q ON q.tenant_id = t.id "
                "WHERE u.vcpus > 0 OR u.ram_mib > 0 OR u.disk_gib > 0 OR u.vms > 0 ORDER BY t.id",
                err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        struct mu_alert_tenant *t = &out[n++];
        const unsigned char *name = sqlite3_column_text(s, 1);
        const unsigned char *kind = sqlite3_column_text(s, 2);
        memset(t, 0, sizeof *t);
        t->id = sqlite3_column_int64(s, 0);
        snprintf(t->name, sizeof t->name, "%s", name ? (const char *)name : "");
        t->limits.vcpus = t->limits.ram_mib = t->limits.disk_gib = MU_UNLIMITED;
        t->limits.vms = MU_UNLIMITED;
        if (sqlite3_column_int(s, 4)) {
            t->limits.vcpus = sqlite3_column_int64(s, 5);
            t->limits.ram_mib = sqlite3_column_int64(s, 6);
            t->limits.disk_gib = sqlite3_column_int64(s, 7);
            t->limits.vms = sqlite3_column_int64(s, 8);
        } else if (defaults && defaults->fn)
            defaults->fn(defaults->ctx, kind ? (const char *)kind : "", sqlite3_column_int64(s, 3),
                         &t->limits);
        t->usage.vcpus = sqlite3_column_int64(s, 9);
        t->usage.ram_mib = sqlite3_column_int64(s, 10);
        t->usage.disk_gib = sqlite3_column_int64(s, 11);
        t->usage.vms = sqlite3_column_int64(s, 12);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading tenants' allocation", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        free(out);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_alert_ops_failed(struct mu_store *st, int64_t since_ms, int64_t *ret_n,
                              struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT count(*) FROM operations WHERE state = 'failed' AND finished_ms >= ?1",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, since_ms);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_n = sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        rc = st_sql_err(c, rc, "counting failed operations", err);
    }
    st_stmt_done(c, s);
    return rc;
}
