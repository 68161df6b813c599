/* Node client certificates: the serials issued to (or first seen from) each node, and their
 * revocation. The server asks mu_store_node_cert_revoked at every agent request, so that a
 * revocation takes effect at once, without a restart. Rows outlive their node: a deleted
 * node's certificates stay revoked. */
#include "store/store_int.h"
#include "store/telemetry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool serial_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n >= MU_TELEMETRY_SERIAL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int st_node_cert_record_tx(struct st_conn *c, int64_t node_id, const char *serial,
                           int64_t not_after_ms, int64_t now, struct mu_err *err)
{
    sqlite3_stmt *s;
    int rc;

    if (!serial_valid(serial))
        return mu_err_set(err, MU_EINVAL, "certificate serial \"%.60s\" is not lower-case hex",
                          serial ? serial : "");
    s = st_stmt(c,
                "INSERT INTO node_certs (serial, node_id, not_after_ms, created_ms) "
                "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (serial) DO NOTHING",
                err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, serial);
    sqlite3_bind_int64(s, 2, node_id);
    sqlite3_bind_int64(s, 3, not_after_ms);
    sqlite3_bind_int64(s, 4, now);
    rc = st_run(c, s, "recording a node certificate", err);
    st_stmt_done(c, s);
    return rc;
}

int mu_store_node_cert_record(struct mu_store *st, int64_t node_id, const char *serial,
                              int64_t not_after_ms, struct mu_err *err)
{
    struct st_conn *c;
    int rc;

    if (!serial_valid(serial))
        return mu_err_set(err, MU_EINVAL, "certificate serial \"%.60s\" is not lower-case hex",
                          serial ? serial : "");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = st_node_cert_record_tx(c, node_id, serial, not_after_ms, mu_now_ms(), err);
    return st_tx_end(st, rc, err);
}

int mu_store_node_cert_revoked(struct mu_store *st, const char *serial, struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    if (!serial_valid(serial))
        return 0; /* never recorded, so never revoked */
    c = st_reader(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT revoked_ms FROM node_certs WHERE serial = ?1", err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, serial);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = sqlite3_column_int64(s, 0) > 0 ? 1 : 0;
    else if (rc == SQLITE_DONE)
        rc = 0;
    else
        rc = st_sql_err(c, rc, "checking a certificate's revocation", err);
    st_stmt_done(c, s);
    return rc;
}

int st_node_certs_revoke_tx(struct st_conn *c, int64_t node_id, int64_t now, int64_t *ret_n,
                            struct mu_err *err)
{
    sqlite3_stmt *s;
    int64_t n = 0;
    int rc;

    /* The certificate the last enrolment installed, even if it never reported. */
    s = st_stmt(c,
                "INSERT INTO node_certs (serial, node_id, not_after_ms, created_ms, revoked_ms) "
                "SELECT lower(cert_serial), node_id, cert_not_after_ms, ?2, ?2 "
                "FROM node_enrolment WHERE node_id = ?1 AND cert_serial IS NOT NULL "
                "AND cert_serial != '' "
                "ON CONFLICT (serial) DO UPDATE SET revoked_ms = excluded.revoked_ms "
                "WHERE node_certs.revoked_ms = 0",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    sqlite3_bind_int64(s, 2, now);
    rc = st_run(c, s, "revoking a node's certificates", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;
    n += sqlite3_changes(c->db);
    s = st_stmt(c, "UPDATE node_certs SET revoked_ms = ?2 WHERE node_id = ?1 AND revoked_ms = 0",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    sqlite3_bind_int64(s, 2, now);
    rc = st_run(c, s, "revoking a node's certificates", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;
    n += sqlite3_changes(c->db);
    if (ret_n)
        *ret_n = n;
    return 0;
}

int mu_store_node_certs_revoke(struct mu_store *st, int64_t node_id,
                               const struct mu_audit_rec *audit, int64_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    char target[48], detail[64];
    int64_t n = 0;
    int rc;

    if (!c)
        return MU_EIO;
    rc = st_node_certs_revoke_tx(c, node_id, mu_now_ms(), &n, err);
    if (rc == 0) {
        snprintf(target, sizeof target, "node/%" PRId64, node_id);
        snprintf(detail, sizeof detail, "%" PRId64 " certificate(s) revoked", n);
        rc = st_audit_append_tx(st, audit, 0, target, detail, err);
    }
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_n)
        *ret_n = n;
    return rc;
}

int mu_store_node_cert_list(struct mu_store *st, int64_t node_id, int limit,
                            struct mu_node_cert **ret, size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_node_cert *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    if (limit < 1 || limit > 10000)
        limit = 10000;
    s = st_stmt(c,
                "SELECT serial, node_id, not_after_ms, created_ms, revoked_ms FROM node_certs "
                "WHERE ?1 = 0 OR node_id = ?1 ORDER BY created_ms DESC, serial LIMIT ?2",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    sqlite3_bind_int(s, 2, limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        memset(&out[n], 0, sizeof out[n]);
        snprintf(out[n].serial, sizeof out[n].serial, "%s",
                 (const char *)sqlite3_column_text(s, 0));
        out[n].node_id = sqlite3_column_int64(s, 1);
        out[n].not_after_ms = sqlite3_column_int64(s, 2);
        out[n].created_ms = sqlite3_column_int64(s, 3);
        out[n].revoked_ms = sqlite3_column_int64(s, 4);
        n++;
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing node certificates", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        free(out);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_node_cert_issue(struct mu_store *st, int64_t node_id, const char *serial,
                             int64_t not_after_ms, const struct mu_audit_rec *audit,
                             struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    char target[48];
    int rc;

    if (!serial_valid(serial))
        return mu_err_set(err, MU_EINVAL, "certificate serial \"%.60s\" is not lower-case hex",
                          serial ? serial : "");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    /* The node may have been deleted while the certificate was signed: a certificate
     * recorded for no node would never be revoked. */
    s = st_stmt(c, "SELECT 1 FROM nodes WHERE id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    st_stmt_done(c, s);
    if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " no longer exists", node_id);
        goto out;
    }
    if (rc != SQLITE_ROW) {
        rc = st_sql_err(c, rc, "checking a node", err);
        goto out;
    }
    rc = st_node_cert_record_tx(c, node_id, serial, not_after_ms, mu_now_ms(), err);
    if (rc == 0) {
        snprintf(target, sizeof target, "node/%" PRId64, node_id);
        rc = st_audit_append_tx(st, audit, 0, target, NULL, err);
    }
out:
    return st_tx_end(st, rc, err);
}

/* The current certificate of a node: the valid (not revoked) one that expires last. */
#define CURRENT_CERT_SQL                                                                           \
    "SELECT c.serial, c.node_id, c.not_after_ms, c.created_ms, c.revoked_ms, n.name "              \
    "FROM node_certs c JOIN nodes n ON n.id = c.node_id "                                          \
    "WHERE c.revoked_ms = 0 AND c.serial = (SELECT c2.serial FROM node_certs c2 "                  \
    "WHERE c2.node_id = c.node_id AND c2.revoked_ms = 0 "                                          \
    "ORDER BY c2.not_after_ms DESC, c2.serial LIMIT 1) "

static void current_from_row(sqlite3_stmt *s, struct mu_node_cert_current *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->cert.serial, sizeof out->cert.serial, "%s",
             (const char *)sqlite3_column_text(s, 0));
    out->cert.node_id = sqlite3_column_int64(s, 1);
    out->cert.not_after_ms = sqlite3_column_int64(s, 2);
    out->cert.created_ms = sqlite3_column_int64(s, 3);
    out->cert.revoked_ms = sqlite3_column_int64(s, 4);
    snprintf(out->node, sizeof out->node, "%s", (const char *)sqlite3_column_text(s, 5));
}

int mu_store_node_cert_current(struct mu_store *st, int64_t node_id,
                               struct mu_node_cert_current *ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, CURRENT_CERT_SQL "AND c.node_id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        current_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " has no valid certificate", node_id);
    } else {
        rc = st_sql_err(c, rc, "reading a node's certificate", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_node_certs_expiring(struct mu_store *st, int64_t before_ms,
                                 struct mu_node_cert_current **ret, size_t *ret_n,
                                 struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_node_cert_current *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, CURRENT_CERT_SQL "AND c.not_after_ms < ?1 ORDER BY c.node_id", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, before_ms);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        current_from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing expiring certificates", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        free(out);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_node_cert_alert(struct mu_store *st, const struct mu_node_cert *cert,
                             const char *detail, const struct mu_audit_rec *audit, bool *ret_fired,
                             struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    char target[48], prefix[64];
    bool fired = false;
    int rc;

    if (!serial_valid(cert->serial) || !audit || !audit->actor || !audit->action)
        return mu_err_set(err, MU_EINVAL,
                          "an alert needs a certificate serial and an audit record");
    snprintf(target, sizeof target, "node/%" PRId64, cert->node_id);
    snprintf(prefix, sizeof prefix, "certificate %s %%", cert->serial);
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    /* Once per certificate, across restarts: the audit trail remembers what fired (the
     * actor index keeps this to the few alert entries). */
    s = st_stmt(c,
                "SELECT 1 FROM audit WHERE actor = ?1 AND action = ?2 AND target = ?3 "
                "AND detail LIKE ?4 LIMIT 1",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_str(s, 1, audit->actor);
    st_bind_str(s, 2, audit->action);
    st_bind_str(s, 3, target);
    st_bind_str(s, 4, prefix);
    rc = sqlite3_step(s);
    st_stmt_done(c, s);
    if (rc == SQLITE_ROW) {
        rc = 0;
        goto out;
    }
    if (rc != SQLITE_DONE) {
        rc = st_sql_err(c, rc, "looking for an earlier alert", err);
        goto out;
    }
    rc = st_audit_append_tx(st, audit, 0, target, detail, err);
    fired = rc == 0;
out:
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_fired)
        *ret_fired = fired;
    return rc;
}
