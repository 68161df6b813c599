/* Nodes: the hypervisors. Three independent fields describe a node's state (the operator's
 * op_state, health from the agents, enrolment); alloc_* and vm_count are counters over its
 * VM rows, changed only by the VM transactions (admission.c, vms.c). */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/validate.h"
#include "store/telemetry.h"

#define NODE_COLS                                                                                  \
    "id, name, uri, pool, pool_path, op_state, health, enrolment, cpus, mem_mib, disk_gib, "       \
    "reserved_mem_mib, kvm, labels_json, alloc_vcpus, alloc_ram_mib, alloc_disk_gib, vm_count, "   \
    "created_ms, updated_ms, info_ms, last_error, health_ms, last_report_ms"

static const char *const op_states[] = {"active", "maintenance", "draining", NULL};
static const char *const healths[] = {"up", "down", "unknown", NULL};
static const char *const enrolments[] = {"none", "pending", "enrolled", NULL};

void mu_node_clear(struct mu_node *n)
{
    if (!n)
        return;
    free(n->name);
    free(n->uri);
    free(n->pool);
    free(n->pool_path);
    free(n->op_state);
    free(n->health);
    free(n->enrolment);
    free(n->labels_json);
    free(n->last_error);
    memset(n, 0, sizeof *n);
}

void mu_nodes_free(struct mu_node *n, size_t count)
{
    if (!n)
        return;
    for (size_t i = 0; i < count; i++)
        mu_node_clear(&n[i]);
    free(n);
}

static bool one_of(const char *v, const char *const *set)
{
    for (size_t i = 0; v && set[i]; i++)
        if (strcmp(v, set[i]) == 0)
            return true;
    return false;
}

static void node_from_row(sqlite3_stmt *s, struct mu_node *n)
{
    n->id = sqlite3_column_int64(s, 0);
    n->name = st_col_str(s, 1);
    n->uri = st_col_str(s, 2);
    n->pool = st_col_str(s, 3);
    n->pool_path = st_col_str(s, 4);
    n->op_state = st_col_str(s, 5);
    n->health = st_col_str(s, 6);
    n->enrolment = st_col_str(s, 7);
    n->cpus = sqlite3_column_int64(s, 8);
    n->mem_mib = sqlite3_column_int64(s, 9);
    n->disk_gib = sqlite3_column_int64(s, 10);
    n->reserved_mem_mib = sqlite3_column_int64(s, 11);
    n->kvm = sqlite3_column_int(s, 12) != 0;
    n->labels_json = st_col_str(s, 13);
    n->alloc_vcpus = sqlite3_column_int64(s, 14);
    n->alloc_ram_mib = sqlite3_column_int64(s, 15);
    n->alloc_disk_gib = sqlite3_column_int64(s, 16);
    n->vm_count = sqlite3_column_int64(s, 17);
    n->created_ms = sqlite3_column_int64(s, 18);
    n->updated_ms = sqlite3_column_int64(s, 19);
    n->info_ms = sqlite3_column_int64(s, 20);
    n->last_error = st_col_str(s, 21);
    n->health_ms = sqlite3_column_int64(s, 22);
    n->last_report_ms = sqlite3_column_int64(s, 23);
}

/* Labels are a flat JSON object of strings ({"site":"a"}). */
static int check_labels(const char *labels_json, struct mu_err *err)
{
    cJSON *root, *it;
    int rc = 0;

    if (!labels_json)
        return 0;
    root = mu_json_parse(labels_json, strlen(labels_json), "node labels", err);
    if (!root)
        return MU_EINVAL;
    if (!cJSON_IsObject(root))
        rc = mu_err_setf(err, MU_EINVAL, "labels",
                         "node labels must be a JSON object of strings, like {\"site\":\"a\"}");
    cJSON_ArrayForEach(it, root)
    {
        if (rc == 0 && !cJSON_IsString(it))
            rc = mu_err_setf(err, MU_EINVAL, "labels", "node label %s must be a string",
                             it->string ? it->string : "?");
    }
    cJSON_Delete(root);
    return rc;
}

static int check_node(const struct mu_node *n, struct mu_err *err)
{
    if (!n->name || !mu_ident_valid(n->name))
        return mu_err_setf(err, MU_EINVAL, "name",
                           "node name %s is not valid: use lower-case letters, digits, '.', "
                           "'_' and '-' (at most 63 characters)",
                           n->name ? n->name : "(none)");
    if (!n->uri || !n->uri[0])
        return mu_err_setf(err, MU_EINVAL, "uri", "node %s needs a libvirt URI", n->name);
    if (n->op_state && !one_of(n->op_state, op_states))
        return mu_err_setf(err, MU_EINVAL, "op_state",
                           "unknown node state %s: use active, maintenance or draining",
                           n->op_state);
    if (n->health && !one_of(n->health, healths))
        return mu_err_setf(err, MU_EINVAL, "health",
                           "unknown node health %s: use up, down or unknown", n->health);
    if (n->enrolment && !one_of(n->enrolment, enrolments))
        return mu_err_setf(err, MU_EINVAL, "enrolment",
                           "unknown enrolment %s: use none, pending or enrolled", n->enrolment);
    return check_labels(n->labels_json, err);
}

static void node_target(char *buf, size_t len, int64_t id)
{
    snprintf(buf, len, "node/%" PRId64, id);
}

int mu_store_node_insert(struct mu_store *st, const struct mu_node *n,
                         const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    char target[48];
    int64_t id = 0, now = mu_now_ms();
    int rc;

    rc = check_node(n, err);
    if (rc < 0)
        return rc;
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT id FROM nodes WHERE name = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_str(s, 1, n->name);
    if (sqlite3_step(s) == SQLITE_ROW)
        rc = mu_err_setf(err, MU_ECONFLICT, "name",
                         "node name %s is already taken (node %" PRId64 ")", n->name,
                         (int64_t)sqlite3_column_int64(s, 0));
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    s = st_stmt(c,
                "INSERT INTO nodes (name, uri, pool, pool_path, op_state, health, enrolment, "
                "cpus, mem_mib, disk_gib, reserved_mem_mib, kvm, labels_json, created_ms, "
                "updated_ms) VALUES (?1, ?2, COALESCE(?3, 'mutualis'), ?4, "
                "COALESCE(?5, 'active'), COALESCE(?6, 'unknown'), COALESCE(?7, 'none'), ?8, ?9, "
                "?10, ?11, ?12, COALESCE(?13, '{}'), ?14, ?14)",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    st_bind_str(s, 1, n->name);
    st_bind_str(s, 2, n->uri);
    st_bind_str(s, 3, n->pool && n->pool[0] ? n->pool : NULL);
    st_bind_str(s, 4, n->pool_path);
    st_bind_str(s, 5, n->op_state);
    st_bind_str(s, 6, n->health);
    st_bind_str(s, 7, n->enrolment);
    sqlite3_bind_int64(s, 8, n->cpus);
    sqlite3_bind_int64(s, 9, n->mem_mib);
    sqlite3_bind_int64(s, 10, n->disk_gib);
    sqlite3_bind_int64(s, 11, n->reserved_mem_mib);
    sqlite3_bind_int(s, 12, n->kvm ? 1 : 0);
    st_bind_str(s, 13, n->labels_json);
    sqlite3_bind_int64(s, 14, now);
    rc = st_run(c, s, "inserting a node", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    id = sqlite3_last_insert_rowid(c->db);
    node_target(target, sizeof target, id);
    rc = st_audit_append_tx(st, audit, 0, target, n->name, err);

out:
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

int mu_store_node_get(struct mu_store *st, int64_t id, struct mu_node *ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " NODE_COLS " FROM nodes WHERE id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(ret, 0, sizeof *ret);
        node_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a node", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_node_list(struct mu_store *st, struct mu_node **ret, size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_node *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " NODE_COLS " FROM nodes ORDER BY id", err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        memset(&out[n], 0, sizeof out[n]);
        node_from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing nodes", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_nodes_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

/* Name and one text column of a node, inside the transaction. MU_ENOTFOUND with err set. */
static int node_read(struct st_conn *c, int64_t id, const char *sql, char **ret_name,
                     char **ret_value, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_name = st_col_str(s, 0);
        *ret_value = st_col_str(s, 1);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a node", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* Runs an UPDATE of node id whose parameters are ?1 id, ?2 value, ?3 now. */
static int node_write(struct st_conn *c, const char *sql, int64_t id, const char *value,
                      struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    st_bind_str(s, 2, value);
    sqlite3_bind_int64(s, 3, mu_now_ms());
    rc = st_run(c, s, "updating a node", err);
    st_stmt_done(c, s);
    return rc;
}

int mu_store_node_set_state(struct mu_store *st, int64_t id, const char *op_state,
                            const struct mu_audit_rec *audit, struct mu_err *err)
{
    MU_AUTOFREE char *name = NULL, *old = NULL, *detail = NULL;
    struct st_conn *c;
    char target[48];
    int rc;

    if (!one_of(op_state, op_states))
        return mu_err_setf(err, MU_EINVAL, "op_state",
                           "unknown node state %s: use active, maintenance or draining",
                           op_state ? op_state : "(none)");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = node_read(c, id, "SELECT name, op_state FROM nodes WHERE id = ?1", &name, &old, err);
    if (rc == 0)
        rc = node_write(c, "UPDATE nodes SET op_state = ?2, updated_ms = ?3 WHERE id = ?1", id,
                        op_state, err);
    if (rc == 0) {
        node_target(target, sizeof target, id);
        detail = mu_xasprintf("%s: %s -> %s", name, old, op_state);
        rc = st_audit_append_tx(st, audit, 0, target, detail, err);
    }
    return st_tx_end(st, rc, err);
}

int mu_store_node_set_labels(struct mu_store *st, int64_t id, const char *labels_json,
                             const struct mu_audit_rec *audit, struct mu_err *err)
{
    MU_AUTOFREE char *name = NULL, *old = NULL, *detail = NULL;
    struct st_conn *c;
    char target[48];
    int rc;

    rc = check_labels(labels_json, err);
    if (rc < 0)
        return rc;
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = node_read(c, id, "SELECT name, labels_json FROM nodes WHERE id = ?1", &name, &old, err);
    if (rc == 0)
        rc = node_write(c,
                        "UPDATE nodes SET labels_json = COALESCE(?2, '{}'), updated_ms = ?3 "
                        "WHERE id = ?1",
                        id, labels_json, err);
    if (rc == 0) {
        node_target(target, sizeof target, id);
        detail = mu_xasprintf("%s: labels %s -> %s", name, old, labels_json ? labels_json : "{}");
        rc = st_audit_append_tx(st, audit, 0, target, detail, err);
    }
    return st_tx_end(st, rc, err);
}

int mu_store_node_set_info(struct mu_store *st, int64_t id, int64_t cpus, int64_t mem_mib,
                           int64_t disk_gib, bool kvm, const char *error, struct mu_err *err)
{
    struct st_conn *c = st_tx_begin(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    /* A failed read keeps the last known capacity and records why. */
    s = st_stmt(c,
                "UPDATE nodes SET cpus = CASE WHEN ?6 IS NULL THEN ?2 ELSE cpus END, "
                "mem_mib = CASE WHEN ?6 IS NULL THEN ?3 ELSE mem_mib END, "
                "disk_gib = CASE WHEN ?6 IS NULL THEN ?4 ELSE disk_gib END, "
                "kvm = CASE WHEN ?6 IS NULL THEN ?5 ELSE kvm END, "
                "info_ms = CASE WHEN ?6 IS NULL THEN ?7 ELSE info_ms END, "
                "last_error = ?6, updated_ms = ?7 WHERE id = ?1",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, cpus);
    sqlite3_bind_int64(s, 3, mem_mib);
    sqlite3_bind_int64(s, 4, disk_gib);
    sqlite3_bind_int(s, 5, kvm ? 1 : 0);
    st_bind_str(s, 6, error);
    sqlite3_bind_int64(s, 7, mu_now_ms());
    rc = st_run(c, s, "recording a node's capacity", err);
    st_stmt_done(c, s);
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", id);
    return st_tx_end(st, rc, err);
}

int mu_store_node_set_health(struct mu_store *st, int64_t id, const char *health,
                             struct mu_err *err)
{
    struct st_conn *c;
    int rc;

    if (!one_of(health, healths))
        return mu_err_setf(err, MU_EINVAL, "health",
                           "unknown node health %s: use up, down or unknown",
                           health ? health : "(none)");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = node_write(c,
                    "UPDATE nodes SET health_ms = CASE WHEN health = ?2 THEN health_ms ELSE ?3 "
                    "END, health = ?2, updated_ms = ?3 WHERE id = ?1",
                    id, health, err);
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", id);
    return st_tx_end(st, rc, err);
}

int mu_store_node_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                         struct mu_err *err)
{
    MU_AUTOFREE char *name = NULL, *op_state = NULL, *detail = NULL;
    struct st_conn *c = st_tx_begin(st, err);
    char target[48];
    sqlite3_stmt *s;
    int64_t vms = 0;
    int rc;

    if (!c)
        return MU_EIO;
    rc = node_read(c, id, "SELECT name, op_state FROM nodes WHERE id = ?1", &name, &op_state, err);
    if (rc < 0)
        goto out;
    /* The VM rows, not the counter: a delete must not trust a counter gone wrong. */
    s = st_stmt(c, "SELECT count(*) FROM vms WHERE node_id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) == SQLITE_ROW)
        vms = sqlite3_column_int64(s, 0);
    st_stmt_done(c, s);
    if (vms > 0) {
        rc = mu_err_set(err, MU_ECONFLICT,
                        "node %s still hosts %" PRId64
                        " VM(s): drain it (the VMs left are listed) and delete them first",
                        name, vms);
        goto out;
    }
    /* Its certificates are revoked (checked at every agent request: no restart needed) and
     * its reports go with it; the hourly rollups stay until pruned. */
    int64_t revoked = 0;
    rc = st_node_certs_revoke_tx(c, id, mu_now_ms(), &revoked, err);
    if (rc == 0)
        rc = st_node_telemetry_delete_tx(c, id, err);
    if (rc < 0)
        goto out;
    node_target(target, sizeof target, id);
    detail = revoked ? mu_xasprintf("%s (%" PRId64 " certificate(s) revoked)", name, revoked)
                     : mu_xstrdup(name);
    rc = st_audit_append_tx(st, audit, 0, target, detail, err);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "DELETE FROM nodes WHERE id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, id);
    rc = st_run(c, s, "deleting a node", err);
    st_stmt_done(c, s);

out:
    return st_tx_end(st, rc, err);
}

int st_node_alloc_add(struct st_conn *c, int64_t node_id, const struct mu_usage *d,
                      struct mu_err *err)
{
    sqlite3_stmt *s;
    int rc;

    if (node_id <= 0)
        return 0;
    s = st_stmt(c,
                "UPDATE nodes SET alloc_vcpus = alloc_vcpus + ?2, alloc_ram_mib = alloc_ram_mib "
                "+ ?3, alloc_disk_gib = alloc_disk_gib + ?4, vm_count = vm_count + ?5 "
                "WHERE id = ?1",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    sqlite3_bind_int64(s, 2, d->vcpus);
    sqlite3_bind_int64(s, 3, d->ram_mib);
    sqlite3_bind_int64(s, 4, d->disk_gib);
    sqlite3_bind_int64(s, 5, d->vms);
    rc = st_run(c, s, "updating a node's allocation", err);
    st_stmt_done(c, s);
    return rc;
}
