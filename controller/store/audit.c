/* The audit trail: an append-only table whose entries are chained by HMAC-SHA256.
 * mac_i = HMAC(key, mac_{i-1} "\n" fields_i), the first entry chaining from 64 '0'.
 * Fields are serialised with a length prefix each ("5:alice;", NULL as "-;"), so no two
 * different entries serialise alike. Ids are contiguous from 1: a missing id is a removed
 * entry. */
#include "store/store_int.h"

#include <gnutls/crypto.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct audit_fields {
    int64_t id, ts_ms, tenant_id;
    const char *actor, *role, *action, *target, *outcome, *request_id, *detail;
};

static void put_str(struct mu_buf *b, const char *s)
{
    if (!s) {
        mu_buf_puts(b, "-;");
        return;
    }
    mu_buf_printf(b, "%zu:", strlen(s));
    mu_buf_puts(b, s);
    mu_buf_puts(b, ";");
}

static void put_i64(struct mu_buf *b, int64_t v)
{
    char tmp[32];

    snprintf(tmp, sizeof tmp, "%" PRId64, v);
    put_str(b, tmp);
}

static int audit_mac(const struct mu_store *st, const char *prev_mac, const struct audit_fields *f,
                     char out[65], struct mu_err *err)
{
    unsigned char digest[32];
    struct mu_buf b;
    int rc;

    mu_buf_init(&b);
    mu_buf_puts(&b, prev_mac);
    mu_buf_puts(&b, "\n");
    put_i64(&b, f->id);
    put_i64(&b, f->ts_ms);
    put_str(&b, f->actor);
    put_str(&b, f->role);
    put_i64(&b, f->tenant_id);
    put_str(&b, f->action);
    put_str(&b, f->target);
    put_str(&b, f->outcome);
    put_str(&b, f->request_id);
    put_str(&b, f->detail);
    rc = gnutls_hmac_fast(GNUTLS_MAC_SHA256, st->audit_key, st->audit_key_len, b.data, b.len,
                          digest);
    mu_buf_free(&b);
    if (rc < 0)
        return mu_err_set(err, MU_EINTERNAL, "HMAC-SHA256 failed: %s", gnutls_strerror(rc));
    mu_hex_encode(digest, sizeof digest, out);
    return 0;
}

int st_audit_load_head(struct mu_store *st, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(&st->w, "SELECT id, mac FROM audit ORDER BY id DESC LIMIT 1", err);
    int rc;

    if (!s)
        return MU_EIO;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        st->head_id = sqlite3_column_int64(s, 0);
        snprintf(st->head_mac, sizeof st->head_mac, "%s", (const char *)sqlite3_column_text(s, 1));
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        st->head_id = 0;
        memcpy(st->head_mac, ST_MAC_ZERO, sizeof st->head_mac);
        rc = 0;
    } else {
        rc = st_sql_err(&st->w, rc, "reading the audit head", err);
    }
    st_stmt_done(&st->w, s);
    return rc;
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

int st_audit_append_tx(struct mu_store *st, const struct mu_audit_rec *rec, int64_t tenant_id,
                       const char *target, const char *detail, struct mu_err *err)
{
    struct audit_fields f;
    char mac[65];
    sqlite3_stmt *s;
    int rc;

    if (!rec)
        return 0;
    f = (struct audit_fields){
        .id = st->tx_head_id + 1,
        .ts_ms = mu_now_ms(),
        .tenant_id = rec->tenant_id > 0 ? rec->tenant_id : (tenant_id > 0 ? tenant_id : 0),
        .actor = or_empty(rec->actor),
        .role = or_empty(rec->role),
        .action = or_empty(rec->action),
        .target = rec->target ? rec->target : or_empty(target),
        .outcome = rec->outcome ? rec->outcome : "ok",
        .request_id = rec->request_id,
        .detail = rec->detail ? rec->detail : detail,
    };
    rc = audit_mac(st, st->tx_head_mac, &f, mac, err);
    if (rc < 0)
        return rc;
    s = st_stmt(&st->w,
                "INSERT INTO audit (id, ts_ms, actor, role, tenant_id, tenant_path, action, "
                "target, outcome, request_id, detail, mac) VALUES (?1, ?2, ?3, ?4, ?5, "
                "(SELECT path FROM tenants WHERE id = ?5), ?6, ?7, ?8, ?9, ?10, ?11)",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, f.id);
    sqlite3_bind_int64(s, 2, f.ts_ms);
    st_bind_str(s, 3, f.actor);
    st_bind_str(s, 4, f.role);
    sqlite3_bind_int64(s, 5, f.tenant_id);
    st_bind_str(s, 6, f.action);
    st_bind_str(s, 7, f.target);
    st_bind_str(s, 8, f.outcome);
    st_bind_str(s, 9, f.request_id);
    st_bind_str(s, 10, f.detail);
    st_bind_str(s, 11, mac);
    rc = st_run(&st->w, s, "appending to the audit trail", err);
    st_stmt_done(&st->w, s);
    if (rc < 0)
        return rc;
    st->tx_head_id = f.id;
    memcpy(st->tx_head_mac, mac, sizeof mac);
    return 0;
}

int mu_store_audit_append(struct mu_store *st, const struct mu_audit_rec *rec, struct mu_err *err)
{
    int rc;

    if (!rec)
        return mu_err_set(err, MU_EINVAL, "no audit record given");
    if (!st_tx_begin(st, err))
        return MU_EIO;
    rc = st_audit_append_tx(st, rec, 0, NULL, NULL, err);
    return st_tx_end(st, rc, err);
}

#define AUDIT_COLS                                                                                 \
    "id, ts_ms, actor, role, tenant_id, action, target, outcome, request_id, detail, mac"

static void entry_from_row(sqlite3_stmt *s, struct mu_audit_entry *e)
{
    const unsigned char *mac;

    e->id = sqlite3_column_int64(s, 0);
    e->ts_ms = sqlite3_column_int64(s, 1);
    e->actor = st_col_str(s, 2);
    e->role = st_col_str(s, 3);
    e->tenant_id = sqlite3_column_int64(s, 4);
    e->action = st_col_str(s, 5);
    e->target = st_col_str(s, 6);
    e->outcome = st_col_str(s, 7);
    e->request_id = st_col_str(s, 8);
    e->detail = st_col_str(s, 9);
    mac = sqlite3_column_text(s, 10);
    snprintf(e->mac, sizeof e->mac, "%s", mac ? (const char *)mac : "");
}

static void entry_clear(struct mu_audit_entry *e)
{
    free(e->actor);
    free(e->role);
    free(e->action);
    free(e->target);
    free(e->outcome);
    free(e->request_id);
    free(e->detail);
}

void mu_audit_entries_free(struct mu_audit_entry *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++)
        entry_clear(&e[i]);
    free(e);
}

#define SUBTREE_OF(col, p)                                                                         \
    " AND " col " >= (SELECT path FROM tenants WHERE id = " p ")"                                  \
    " AND " col " < (SELECT substr(path, 1, length(path) - 1) || '0' FROM tenants"                 \
    " WHERE id = " p ")"

int mu_store_audit_list(struct mu_store *st, const struct mu_audit_filter *f,
                        struct mu_audit_entry **ret_entries, size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c;
    struct mu_buf sql;
    struct mu_audit_entry *out = NULL;
    size_t n = 0;
    sqlite3_stmt *s = NULL;
    int rc = 0;

    if (f->limit < 1 || f->limit > 1000)
        return mu_err_setf(err, MU_EINVAL, "limit", "limit must be between 1 and 1000");
    c = st_reader(st, err);
    if (!c)
        return MU_EIO;
    mu_buf_init(&sql);
    mu_buf_puts(&sql, "SELECT " AUDIT_COLS " FROM audit WHERE id > ?1");
    if (f->scope_tenant_id > 0)
        mu_buf_puts(&sql, SUBTREE_OF("tenant_path", "?2"));
    if (f->tenant_id > 0)
        mu_buf_puts(&sql, SUBTREE_OF("tenant_path", "?3"));
    if (f->actor)
        mu_buf_puts(&sql, " AND actor = ?4");
    if (f->since_ms > 0)
        mu_buf_puts(&sql, " AND ts_ms >= ?5");
    if (f->until_ms > 0)
        mu_buf_puts(&sql, " AND ts_ms < ?6");
    mu_buf_puts(&sql, " ORDER BY id LIMIT ?7");
    s = st_stmt_dyn(c, sql.data, err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, f->after_id > 0 ? f->after_id : 0);
    sqlite3_bind_int64(s, 2, f->scope_tenant_id);
    sqlite3_bind_int64(s, 3, f->tenant_id);
    st_bind_str(s, 4, f->actor);
    sqlite3_bind_int64(s, 5, f->since_ms);
    sqlite3_bind_int64(s, 6, f->until_ms);
    sqlite3_bind_int(s, 7, f->limit);
    out = mu_xcalloc((size_t)f->limit, sizeof *out);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        entry_from_row(s, &out[n++]);
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing the audit trail", err);

out:
    st_stmt_done(c, s);
    mu_buf_free(&sql);
    if (rc < 0) {
        mu_audit_entries_free(out, n);
        return rc;
    }
    *ret_entries = out;
    *ret_n = n;
    return 0;
}

int mu_store_audit_head(struct mu_store *st, int64_t *ret_id, char ret_mac[65])
{
    pthread_mutex_lock(&st->wmu);
    *ret_id = st->head_id;
    memcpy(ret_mac, st->head_mac, 65);
    pthread_mutex_unlock(&st->wmu);
    return 0;
}

static void verdict_bad(struct mu_audit_verdict *v, int64_t id, const char *fmt, ...)
    MU_PRINTF(3, 4);

static void verdict_bad(struct mu_audit_verdict *v, int64_t id, const char *fmt, ...)
{
    va_list ap;

    if (!v->ok)
        return;
    v->ok = false;
    v->first_bad_id = id;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
}

/* The expected head (from the log, or this process's own memory) must still be there. */
static void check_head(struct mu_audit_verdict *v, int64_t last_id, int64_t head_id,
                       const char *head_mac, const char *mac_at_head, const char *origin)
{
    if (head_id <= 0)
        return;
    if (head_id > last_id) {
        verdict_bad(v, head_id,
                    "entry %" PRId64
                    " (%s) is missing: the trail was truncated after entry %" PRId64,
                    head_id, origin, last_id);
        return;
    }
    if (head_mac && mac_at_head && strcmp(head_mac, mac_at_head) != 0)
        verdict_bad(v, head_id,
                    "entry %" PRId64 " does not carry the mac of %s: the trail was rewritten",
                    head_id, origin);
}

int mu_store_audit_verify(struct mu_store *st, int64_t expect_head_id, const char *expect_head_mac,
                          struct mu_audit_verdict *ret, struct mu_err *err)
{
    struct mu_audit_verdict v = {.ok = true};
    char prev[65] = ST_MAC_ZERO, mac[65], mem_mac[65];
    char *mac_at_expected = NULL, *mac_at_mem = NULL;
    int64_t mem_id, expect = 1;
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    /* Read our own head first: whatever commits after it is also in the snapshot below. */
    mu_store_audit_head(st, &mem_id, mem_mac);
    c = st_reader(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " AUDIT_COLS " FROM audit ORDER BY id", err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct mu_audit_entry e = {0};
        struct audit_fields f;

        entry_from_row(s, &e);
        f = (struct audit_fields){e.id,     e.ts_ms,  e.tenant_id, e.actor,      e.role,
                                  e.action, e.target, e.outcome,   e.request_id, e.detail};
        if (v.ok && e.id != expect) {
            if (expect == 1)
                verdict_bad(&v, 1, "entry 1 is missing: the trail starts at entry %" PRId64, e.id);
            else
                verdict_bad(&v, expect,
                            "entry %" PRId64 " is missing: the trail jumps from entry %" PRId64
                            " to entry %" PRId64,
                            expect, expect - 1, e.id);
        }
        if (v.ok) {
            rc = audit_mac(st, prev, &f, mac, err);
            if (rc < 0) {
                entry_clear(&e);
                goto out;
            }
            if (strcmp(mac, e.mac) != 0)
                verdict_bad(&v, e.id,
                            "entry %" PRId64 ": mac does not match (the entry was edited, or "
                            "one before it was removed)",
                            e.id);
            v.checked++;
        }
        if (e.id == expect_head_id)
            mac_at_expected = mu_xstrdup(e.mac);
        if (e.id == mem_id)
            mac_at_mem = mu_xstrdup(e.mac);
        v.head_id = e.id;
        memcpy(v.head_mac, e.mac, sizeof v.head_mac);
        memcpy(prev, e.mac, sizeof prev);
        expect = e.id + 1;
        entry_clear(&e);
    }
    if (rc != SQLITE_DONE) {
        rc = st_sql_err(c, rc, "reading the audit trail", err);
        goto out;
    }
    rc = 0;
    check_head(&v, v.head_id, expect_head_id, expect_head_mac, mac_at_expected,
               "the last head written to the log");
    check_head(&v, v.head_id, mem_id, mem_mac, mac_at_mem, "the last entry this process wrote");
    if (v.head_id == 0)
        memcpy(v.head_mac, ST_MAC_ZERO, sizeof v.head_mac);
    *ret = v;

out:
    st_stmt_done(c, s);
    free(mac_at_expected);
    free(mac_at_mem);
    return rc;
}
