/* Node enrolment records (store/enrolment.h): pinned SSH host keys and what the last
 * successful enrolment installed. The pin is compared and written inside one transaction,
 * so two enrolments racing on a new node cannot pin two different keys. */
#include "store/enrolment.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define ENR_COLS                                                                                   \
    "node_id, host_key, ssh_host, ssh_port, ssh_user, agent_sha256, cert_serial, "                 \
    "cert_not_after_ms, libvirt_uri, supervisor, enrolled_ms, updated_ms"

static const char *const enrolment_states[] = {"none", "pending", "enrolled", NULL};

void mu_enrolment_clear(struct mu_enrolment *e)
{
    if (!e)
        return;
    free(e->host_key);
    free(e->ssh_host);
    free(e->ssh_user);
    free(e->agent_sha256);
    free(e->cert_serial);
    free(e->libvirt_uri);
    free(e->supervisor);
    memset(e, 0, sizeof *e);
}

static void enrolment_from_row(sqlite3_stmt *s, struct mu_enrolment *e)
{
    e->node_id = sqlite3_column_int64(s, 0);
    e->host_key = st_col_str(s, 1);
    e->ssh_host = st_col_str(s, 2);
    e->ssh_port = sqlite3_column_int64(s, 3);
    e->ssh_user = st_col_str(s, 4);
    e->agent_sha256 = st_col_str(s, 5);
    e->cert_serial = st_col_str(s, 6);
    e->cert_not_after_ms = sqlite3_column_int64(s, 7);
    e->libvirt_uri = st_col_str(s, 8);
    e->supervisor = st_col_str(s, 9);
    e->enrolled_ms = sqlite3_column_int64(s, 10);
    e->updated_ms = sqlite3_column_int64(s, 11);
}

int mu_store_enrolment_get(struct mu_store *st, int64_t node_id, struct mu_enrolment *ret,
                           struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " ENR_COLS " FROM node_enrolment WHERE node_id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(ret, 0, sizeof *ret);
        enrolment_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " was never enrolled", node_id);
    } else {
        rc = st_sql_err(c, rc, "reading a node's enrolment", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* The node's name inside the transaction: MU_ENOTFOUND with err set when absent. */
static int node_name_tx(struct st_conn *c, int64_t node_id, char **ret_name, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, "SELECT name FROM nodes WHERE id = ?1", err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_name = st_col_str(s, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", node_id);
    } else {
        rc = st_sql_err(c, rc, "reading a node", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* Makes sure the node has an enrolment row (every column at its default). */
static int row_ensure_tx(struct st_conn *c, int64_t node_id, int64_t now, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "INSERT INTO node_enrolment (node_id, updated_ms) VALUES (?1, ?2) "
                              "ON CONFLICT(node_id) DO NOTHING",
                              err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    sqlite3_bind_int64(s, 2, now);
    rc = st_run(c, s, "creating a node's enrolment record", err);
    st_stmt_done(c, s);
    return rc;
}

int mu_store_enrolment_pin(struct mu_store *st, int64_t node_id, const char *host_key, bool replace,
                           const struct mu_audit_rec *audit, bool *ret_pinned, char *ret_old,
                           struct mu_err *err)
{
    MU_AUTOFREE char *name = NULL, *old = NULL;
    struct st_conn *c;
    sqlite3_stmt *s;
    int64_t now = mu_now_ms();
    bool pinned = false;
    int rc;

    if (!host_key || strncmp(host_key, "SHA256:", 7) != 0)
        return mu_err_setf(err, MU_EINVAL, "host_key_sha256",
                           "a host key fingerprint looks like SHA256:<base64>");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = node_name_tx(c, node_id, &name, err);
    if (rc == 0)
        rc = row_ensure_tx(c, node_id, now, err);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "SELECT host_key FROM node_enrolment WHERE node_id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, node_id);
    if (sqlite3_step(s) == SQLITE_ROW)
        old = st_col_str(s, 0);
    st_stmt_done(c, s);
    if (old && strcmp(old, host_key) == 0)
        goto out; /* already pinned: nothing to write or audit */
    if (old && !replace) {
        if (ret_old)
            snprintf(ret_old, 128, "%s", old);
        rc = mu_err_setf(err, MU_ECONFLICT, "host_key_sha256",
                         "the host key of %s changed from %s to %s: if this is expected, give "
                         "the new fingerprint explicitly",
                         name, old, host_key);
        goto out;
    }
    s = st_stmt(c, "UPDATE node_enrolment SET host_key = ?2, updated_ms = ?3 WHERE node_id = ?1",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, node_id);
    st_bind_str(s, 2, host_key);
    sqlite3_bind_int64(s, 3, now);
    rc = st_run(c, s, "pinning a node's host key", err);
    st_stmt_done(c, s);
    if (rc == 0)
        rc = st_audit_append_tx(st, audit, 0, NULL, NULL, err);
    pinned = rc == 0;

out:
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_pinned)
        *ret_pinned = pinned;
    return rc;
}

int mu_store_enrolment_record(struct mu_store *st, const struct mu_enrolment *e,
                              const struct mu_audit_rec *audit, struct mu_err *err)
{
    MU_AUTOFREE char *name = NULL;
    struct st_conn *c;
    sqlite3_stmt *s;
    int64_t now = mu_now_ms();
    int rc;

    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = node_name_tx(c, e->node_id, &name, err);
    if (rc == 0)
        rc = row_ensure_tx(c, e->node_id, now, err);
    if (rc < 0)
        goto out;
    s = st_stmt(c,
                "UPDATE node_enrolment SET ssh_host = ?2, ssh_port = ?3, ssh_user = ?4, "
                "agent_sha256 = ?5, cert_serial = ?6, cert_not_after_ms = ?7, libvirt_uri = ?8, "
                "supervisor = ?9, enrolled_ms = ?10, updated_ms = ?10 WHERE node_id = ?1",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, e->node_id);
    st_bind_str(s, 2, e->ssh_host);
    sqlite3_bind_int64(s, 3, e->ssh_port);
    st_bind_str(s, 4, e->ssh_user);
    st_bind_str(s, 5, e->agent_sha256);
    st_bind_str(s, 6, e->cert_serial);
    sqlite3_bind_int64(s, 7, e->cert_not_after_ms);
    st_bind_str(s, 8, e->libvirt_uri);
    st_bind_str(s, 9, e->supervisor);
    sqlite3_bind_int64(s, 10, now);
    rc = st_run(c, s, "recording a node's enrolment", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "UPDATE nodes SET enrolment = 'enrolled', updated_ms = ?2 WHERE id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, e->node_id);
    sqlite3_bind_int64(s, 2, now);
    rc = st_run(c, s, "marking a node enrolled", err);
    st_stmt_done(c, s);
    if (rc == 0)
        rc = st_audit_append_tx(st, audit, 0, NULL, NULL, err);

out:
    return st_tx_end(st, rc, err);
}

int mu_store_node_set_enrolment(struct mu_store *st, int64_t node_id, const char *state,
                                struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    bool known = false;
    int rc;

    for (size_t i = 0; state && enrolment_states[i]; i++)
        known = known || strcmp(state, enrolment_states[i]) == 0;
    if (!known)
        return mu_err_setf(err, MU_EINVAL, "enrolment",
                           "unknown enrolment %s: use none, pending or enrolled",
                           state ? state : "(none)");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "UPDATE nodes SET enrolment = ?2, updated_ms = ?3 WHERE id = ?1", err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, node_id);
    st_bind_str(s, 2, state);
    sqlite3_bind_int64(s, 3, mu_now_ms());
    rc = st_run(c, s, "setting a node's enrolment", err);
    st_stmt_done(c, s);
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", node_id);
    return st_tx_end(st, rc, err);
}

int mu_store_node_set_uri(struct mu_store *st, int64_t node_id, const char *uri,
                          const struct mu_audit_rec *audit, struct mu_err *err)
{
    MU_AUTOFREE char *old = NULL, *detail = NULL;
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    if (!uri || !uri[0])
        return mu_err_setf(err, MU_EINVAL, "uri", "a node needs a libvirt URI");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT uri FROM nodes WHERE id = ?1", err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        old = st_col_str(s, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", node_id);
    } else {
        rc = st_sql_err(c, rc, "reading a node", err);
    }
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "UPDATE nodes SET uri = ?2, updated_ms = ?3 WHERE id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, node_id);
    st_bind_str(s, 2, uri);
    sqlite3_bind_int64(s, 3, mu_now_ms());
    rc = st_run(c, s, "setting a node's libvirt URI", err);
    st_stmt_done(c, s);
    if (rc == 0) {
        detail = mu_xasprintf("libvirt URI %s -> %s", old ? old : "(none)", uri);
        rc = st_audit_append_tx(st, audit, 0, NULL, detail, err);
    }

out:
    return st_tx_end(st, rc, err);
}
