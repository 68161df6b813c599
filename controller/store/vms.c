/* VMs after admission: desired-state requests (each with its operation), observed state
 * from the hypervisor, purge, reads and lists, and the lifecycle events the capacity
 * forecast reads. The VM row carries its tenant's path so that a subtree's VMs are one
 * index range. */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VM_COLS                                                                                    \
    "id, uuid, tenant_id, name, flavor_id, vcpus, ram_mib, disk_gib, image_id, node_id, "          \
    "group_id, labels_json, desired_state, observed_state, last_error, created_ms, updated_ms, "   \
    "desired_ms, observed_ms"

void mu_vm_clear(struct mu_vm *v)
{
    if (!v)
        return;
    free(v->name);
    free(v->labels_json);
    free(v->desired_state);
    free(v->observed_state);
    free(v->last_error);
    memset(v, 0, sizeof *v);
}

void mu_vms_free(struct mu_vm *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        mu_vm_clear(&v[i]);
    free(v);
}

void mu_vm_events_free(struct mu_vm_event *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++)
        free(e[i].kind);
    free(e);
}

static void vm_from_row(sqlite3_stmt *s, struct mu_vm *v)
{
    const unsigned char *uuid = sqlite3_column_text(s, 1);

    memset(v, 0, sizeof *v);
    v->id = sqlite3_column_int64(s, 0);
    snprintf(v->uuid, sizeof v->uuid, "%s", uuid ? (const char *)uuid : "");
    v->tenant_id = sqlite3_column_int64(s, 2);
    v->name = st_col_str(s, 3);
    v->flavor_id = sqlite3_column_int64(s, 4);
    v->vcpus = sqlite3_column_int64(s, 5);
    v->ram_mib = sqlite3_column_int64(s, 6);
    v->disk_gib = sqlite3_column_int64(s, 7);
    v->image_id = sqlite3_column_int64(s, 8);
    v->node_id = sqlite3_column_int64(s, 9);
    v->group_id = sqlite3_column_int64(s, 10);
    v->labels_json = st_col_str(s, 11);
    v->desired_state = st_col_str(s, 12);
    v->observed_state = st_col_str(s, 13);
    v->last_error = st_col_str(s, 14);
    v->created_ms = sqlite3_column_int64(s, 15);
    v->updated_ms = sqlite3_column_int64(s, 16);
    v->desired_ms = sqlite3_column_int64(s, 17);
    v->observed_ms = sqlite3_column_int64(s, 18);
}

static bool one_of(const char *v, const char *const *set)
{
    for (size_t i = 0; v && set[i]; i++)
        if (strcmp(v, set[i]) == 0)
            return true;
    return false;
}

int st_vm_event_tx(struct st_conn *c, int64_t vm_id, int64_t tenant_id, int64_t node_id,
                   const char *kind, int64_t vcpus, int64_t ram_mib, int64_t disk_gib, int64_t now,
                   struct mu_err *err)
{
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c,
                "INSERT INTO vm_events (vm_id, tenant_id, node_id, ts_ms, kind, vcpus, ram_mib, "
                "disk_gib) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, vm_id);
    sqlite3_bind_int64(s, 2, tenant_id);
    st_bind_id(s, 3, node_id);
    sqlite3_bind_int64(s, 4, now);
    st_bind_str(s, 5, kind);
    sqlite3_bind_int64(s, 6, vcpus);
    sqlite3_bind_int64(s, 7, ram_mib);
    sqlite3_bind_int64(s, 8, disk_gib);
    rc = st_run(c, s, "recording a VM event", err);
    st_stmt_done(c, s);
    return rc;
}

/* The VM row as the writer sees it; MU_ENOTFOUND with err set. */
static int vm_read_tx(struct st_conn *c, int64_t id, struct mu_vm *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, "SELECT " VM_COLS " FROM vms WHERE id = ?1", err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        vm_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "vm %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a VM", err);
    }
    st_stmt_done(c, s);
    return rc;
}

static const char *const request_kinds[] = {"vm.start", "vm.stop", "vm.reboot", "vm.delete", NULL};
static const char *const desired_states[] = {"running", "stopped", "deleted", NULL};
static const char *const observed_states[] = {"pending", "running", "shutoff", "missing",
                                              "unknown", "error",   "deleted", NULL};

int mu_store_vm_request(struct mu_store *st, int64_t vm_id, const char *kind,
                        const char *desired_state, const struct mu_audit_rec *audit,
                        int64_t *ret_op_id, struct mu_err *err)
{
    MU_AUTOFREE char *other_kind = NULL;
    struct mu_vm vm = {0};
    int64_t other = 0, op_id = 0, now;
    char target[48], detail[160];
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    if (!one_of(kind, request_kinds))
        return mu_err_setf(err, MU_EINVAL, "kind",
                           "unknown VM action %s: use vm.start, vm.stop, vm.reboot or vm.delete",
                           kind ? kind : "(none)");
    if (!one_of(desired_state, desired_states))
        return mu_err_setf(err, MU_EINVAL, "desired_state",
                           "unknown desired state %s: use running, stopped or deleted",
                           desired_state ? desired_state : "(none)");
    if ((strcmp(kind, "vm.delete") == 0) != (strcmp(desired_state, "deleted") == 0))
        return mu_err_setf(err, MU_EINVAL, "desired_state",
                           "%s cannot leave a VM %s: only vm.delete leads to deleted", kind,
                           desired_state);
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    now = mu_now_ms();
    rc = vm_read_tx(c, vm_id, &vm, err);
    if (rc < 0)
        goto out;
    if (strcmp(vm.desired_state, "deleted") == 0) {
        rc = mu_err_set(err, MU_ECONFLICT, "VM %s is being deleted", vm.name);
        goto out;
    }
    rc = st_op_unfinished_of(c, vm_id, &other, &other_kind, err);
    if (rc == 1)
        rc = mu_err_set(err, MU_ECONFLICT,
                        "VM %s already has operation %" PRId64
                        " (%s) in progress: wait for it to finish",
                        vm.name, other, other_kind);
    if (rc < 0)
        goto out;
    s = st_stmt(c,
                "UPDATE vms SET desired_state = ?2, desired_ms = CASE WHEN desired_state = ?2 "
                "THEN desired_ms ELSE ?3 END, updated_ms = ?3 WHERE id = ?1",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, vm_id);
    st_bind_str(s, 2, desired_state);
    sqlite3_bind_int64(s, 3, now);
    rc = st_run(c, s, "setting a VM's desired state", err);
    st_stmt_done(c, s);
    if (rc == 0)
        rc = st_op_insert_tx(c, kind, vm_id, vm.node_id, NULL, audit, now, &op_id, err);
    if (rc == 0) {
        snprintf(target, sizeof target, "vm/%" PRId64, vm_id);
        snprintf(detail, sizeof detail, "%s: desired %s -> %s (operation %" PRId64 ")", vm.name,
                 vm.desired_state, desired_state, op_id);
        rc = st_audit_append_tx(st, audit, vm.tenant_id, target, detail, err);
    }

out:
    mu_vm_clear(&vm);
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_op_id)
        *ret_op_id = op_id;
    return rc;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int mu_store_vm_set_observed(struct mu_store *st, int64_t vm_id, const char *observed,
                             const char *error, struct mu_err *err)
{
    struct mu_vm vm = {0};
    const char *event = NULL;
    struct st_conn *c;
    sqlite3_stmt *s;
    int64_t now;
    int rc;

    if (!one_of(observed, observed_states))
        return mu_err_setf(err, MU_EINVAL, "observed_state",
                           "unknown observed state %s: use pending, running, shutoff, missing, "
                           "unknown, error or deleted",
                           observed ? observed : "(none)");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    now = mu_now_ms();
    rc = vm_read_tx(c, vm_id, &vm, err);
    if (rc < 0)
        goto out;
    if (strcmp(vm.observed_state, observed) == 0 && same_str(vm.last_error, error))
        goto out; /* nothing new: no write */
    s = st_stmt(c,
                "UPDATE vms SET observed_state = ?2, last_error = ?3, observed_ms = CASE WHEN "
                "observed_state = ?2 THEN observed_ms ELSE ?4 END, updated_ms = ?4 WHERE id = ?1",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, vm_id);
    st_bind_str(s, 2, observed);
    st_bind_str(s, 3, error);
    sqlite3_bind_int64(s, 4, now);
    rc = st_run(c, s, "recording a VM's observed state", err);
    st_stmt_done(c, s);
    if (strcmp(observed, "running") == 0 && strcmp(vm.observed_state, "running") != 0)
        event = "started";
    else if (strcmp(observed, "shutoff") == 0 && strcmp(vm.observed_state, "shutoff") != 0)
        event = "stopped";
    if (rc == 0 && event)
        rc = st_vm_event_tx(c, vm_id, vm.tenant_id, vm.node_id, event, vm.vcpus, vm.ram_mib,
                            vm.disk_gib, now, err);

out:
    mu_vm_clear(&vm);
    return st_tx_end(st, rc, err);
}

int mu_store_vm_purge(struct mu_store *st, int64_t vm_id, struct mu_err *err)
{
    MU_AUTOFREE char *path = NULL;
    struct mu_usage gone = {0};
    int64_t tenant_id = 0, node_id = 0, now;
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    now = mu_now_ms();
    /* The tenant's path, not the row's copy: the counters follow the tenant tree. */
    s = st_stmt(c,
                "SELECT COALESCE(t.path, v.tenant_path), v.tenant_id, v.node_id, v.vcpus, "
                "v.ram_mib, v.disk_gib FROM vms v LEFT JOIN tenants t ON t.id = v.tenant_id "
                "WHERE v.id = ?1",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, vm_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        path = st_col_str(s, 0);
        tenant_id = sqlite3_column_int64(s, 1);
        node_id = sqlite3_column_int64(s, 2);
        gone = (struct mu_usage){.vcpus = -sqlite3_column_int64(s, 3),
                                 .ram_mib = -sqlite3_column_int64(s, 4),
                                 .disk_gib = -sqlite3_column_int64(s, 5),
                                 .vms = -1};
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? 1 : st_sql_err(c, rc, "reading a VM", err);
    }
    st_stmt_done(c, s);
    if (rc != 0)
        return st_tx_end(st, rc < 0 ? rc : 0, err); /* already gone: done */

    /* Its addresses go back to their networks, and its public ones leave the quotas. */
    rc = st_vm_nics_release_tx(c, vm_id, &gone.public_ips, err);
    gone.public_ips = -gone.public_ips;
    if (rc == 0)
        rc = st_usage_add_path(c, path, &gone, err);
    gone.public_ips = 0; /* not a node counter */
    if (rc == 0)
        rc = st_node_alloc_add(c, node_id, &gone, err);
    if (rc == 0) {
        s = st_stmt(c, "DELETE FROM vms WHERE id = ?1", err);
        rc = s ? 0 : MU_EIO;
        if (s) {
            sqlite3_bind_int64(s, 1, vm_id);
            rc = st_run(c, s, "purging a VM", err);
            st_stmt_done(c, s);
        }
    }
    if (rc == 0)
        rc = st_vm_event_tx(c, vm_id, tenant_id, node_id, "deleted", 0, 0, 0, now, err);
    return st_tx_end(st, rc, err);
}

static int vm_get(struct mu_store *st, const char *sql, int64_t id, const char *uuid,
                  struct mu_vm *ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, sql, err);
    if (!s)
        return MU_EIO;
    if (uuid)
        st_bind_str(s, 1, uuid);
    else
        sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        vm_from_row(s, ret);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = uuid ? mu_err_set(err, MU_ENOTFOUND, "no VM has UUID %s", uuid)
                  : mu_err_set(err, MU_ENOTFOUND, "vm %" PRId64 " does not exist", id);
    } else {
        rc = st_sql_err(c, rc, "reading a VM", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_vm_get(struct mu_store *st, int64_t id, struct mu_vm *ret, struct mu_err *err)
{
    return vm_get(st, "SELECT " VM_COLS " FROM vms WHERE id = ?1", id, NULL, ret, err);
}

int mu_store_vm_get_by_uuid(struct mu_store *st, const char *uuid, struct mu_vm *ret,
                            struct mu_err *err)
{
    if (!uuid)
        return mu_err_setf(err, MU_EINVAL, "uuid", "no UUID given");
    return vm_get(st, "SELECT " VM_COLS " FROM vms WHERE uuid = ?1", 0, uuid, ret, err);
}

/* Path and subtree VM count of a tenant, on the reader. 1 found, 0 absent, < 0. */
static int subtree_of(struct st_conn *c, int64_t id, char **ret_path, int64_t *ret_vms,
                      struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT t.path, COALESCE(u.vms, 0) FROM tenants t LEFT JOIN "
                              "tenant_usage u ON u.tenant_id = t.id WHERE t.id = ?1",
                              err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_path = st_col_str(s, 0);
        *ret_vms = sqlite3_column_int64(s, 1);
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading a tenant", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* All VMs: the roots' subtree counters. */
static int total_vms(struct st_conn *c, int64_t *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT COALESCE(sum(u.vms), 0) FROM tenants t JOIN tenant_usage u "
                              "ON u.tenant_id = t.id WHERE t.parent_id IS NULL",
                              err);
    int rc;

    if (!s)
        return MU_EIO;
    rc = sqlite3_step(s);
    *ret = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    rc = rc == SQLITE_ROW ? 0 : st_sql_err(c, rc, "counting VMs", err);
    st_stmt_done(c, s);
    return rc;
}

static bool path_within(const char *inner, const char *outer)
{
    return strncmp(inner, outer, strlen(outer)) == 0;
}

int mu_store_vm_list(struct mu_store *st, const struct mu_vm_filter *f, struct mu_vm **ret,
                     size_t *ret_n, struct mu_err *err)
{
    MU_AUTOFREE char *scope_path = NULL, *tenant_path = NULL, *upper = NULL;
    int64_t scope_vms = 0, tenant_vms = 0, range_vms = 0, total = 0;
    bool use_range;
    const char *range = NULL;
    struct mu_vm *out = NULL;
    size_t n = 0, cap = 0;
    struct st_conn *c;
    struct mu_buf sql;
    sqlite3_stmt *s = NULL;
    int rc;

    if (f->limit < 0 || f->limit > 1000)
        return mu_err_setf(err, MU_EINVAL, "limit", "limit must be between 1 and 1000");
    c = st_reader(st, err);
    if (!c)
        return MU_EIO;
    if (f->scope_id > 0) {
        rc = subtree_of(c, f->scope_id, &scope_path, &scope_vms, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            goto empty; /* a scope that no longer exists sees nothing */
    }
    if (f->tenant_id > 0) {
        rc = subtree_of(c, f->tenant_id, &tenant_path, &tenant_vms, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return mu_err_setf(err, MU_ENOTFOUND, "tenant_id", "tenant %" PRId64 " does not exist",
                               f->tenant_id);
    }
    /* Two subtrees are nested or disjoint: keep the inner one. */
    if (scope_path && tenant_path) {
        if (path_within(tenant_path, scope_path)) {
            range = tenant_path;
            range_vms = tenant_vms;
        } else if (path_within(scope_path, tenant_path)) {
            range = scope_path;
            range_vms = scope_vms;
        } else {
            goto empty;
        }
    } else if (scope_path || tenant_path) {
        range = scope_path ? scope_path : tenant_path;
        range_vms = scope_path ? scope_vms : tenant_vms;
    }

    /* The plan is chosen here rather than left to the planner, which cannot know how many
     * VMs a subtree holds (the counters can). Reading the subtree's index range and sorting
     * it costs about range_vms rows; walking all VMs by id until a page is full costs about
     * limit * total / range_vms: the range wins while range_vms^2 <= limit * total. */
    if (range && f->limit > 0 && !f->node_id) {
        rc = total_vms(c, &total, err);
        if (rc < 0)
            return rc;
        use_range = range_vms * range_vms <= (int64_t)f->limit * total;
    } else {
        use_range = range != NULL;
    }
    mu_buf_init(&sql);
    mu_buf_puts(&sql, "SELECT " VM_COLS " FROM vms");
    if (f->node_id > 0)
        mu_buf_puts(&sql, " INDEXED BY vms_node");
    else if (use_range)
        mu_buf_puts(&sql, " INDEXED BY vms_tenant_path");
    else if (!f->state)
        mu_buf_puts(&sql, " NOT INDEXED");
    mu_buf_puts(&sql, " WHERE id > ?1");
    if (range)
        mu_buf_puts(&sql, " AND tenant_path >= ?2 AND tenant_path < ?3");
    if (f->node_id > 0)
        mu_buf_puts(&sql, " AND node_id = ?4");
    if (f->state)
        mu_buf_puts(&sql, " AND observed_state = ?5");
    mu_buf_puts(&sql, " ORDER BY id");
    if (f->limit > 0)
        mu_buf_puts(&sql, " LIMIT ?6");
    s = st_stmt_dyn(c, sql.data, err);
    mu_buf_free(&sql);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, f->after_id > 0 ? f->after_id : 0);
    if (range) {
        upper = st_path_upper(range);
        st_bind_str(s, 2, range);
        st_bind_str(s, 3, upper);
    }
    if (f->node_id > 0)
        sqlite3_bind_int64(s, 4, f->node_id);
    if (f->state)
        st_bind_str(s, 5, f->state);
    if (f->limit > 0)
        sqlite3_bind_int(s, 6, f->limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : (f->limit > 0 ? (size_t)f->limit : 64);
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        vm_from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing VMs", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_vms_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;

empty:
    *ret = NULL;
    *ret_n = 0;
    return 0;
}

int mu_store_vm_events(struct mu_store *st, int64_t vm_id, struct mu_vm_event **ret, size_t *ret_n,
                       struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_vm_event *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT id, vm_id, ts_ms, kind, vcpus, ram_mib, disk_gib FROM vm_events "
                "WHERE vm_id = ?1 ORDER BY id",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, vm_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        out[n] = (struct mu_vm_event){.id = sqlite3_column_int64(s, 0),
                                      .vm_id = sqlite3_column_int64(s, 1),
                                      .ts_ms = sqlite3_column_int64(s, 2),
                                      .kind = st_col_str(s, 3),
                                      .vcpus = sqlite3_column_int64(s, 4),
                                      .ram_mib = sqlite3_column_int64(s, 5),
                                      .disk_gib = sqlite3_column_int64(s, 6)};
        n++;
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing VM events", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_vm_events_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}
