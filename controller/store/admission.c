/* Admission: the one place that checks quotas and node capacity and inserts a VM, and its
 * sibling for cold resizes. Everything happens in one BEGIN IMMEDIATE transaction under
 * the writer lock, reading O(depth) rows: one per level of the tenant's path (limits and
 * the subtree's usage counters), the node row, and one indexed probe for anti-affinity.
 * Nothing here scans a subtree, so the time does not grow with the number of VMs. */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"

/* ---- checks on the input ---------------------------------------------------------- */

/* [a-z0-9][a-z0-9-]{0,62} */
static bool vm_name_valid(const char *s)
{
    size_t n;

    if (!s || !s[0])
        return false;
    n = strlen(s);
    if (n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (i > 0 && ch == '-');

        if (!ok)
            return false;
    }
    return true;
}

/* 8-4-4-4-12 lower-case hex. */
static bool uuid_valid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        char ch = s[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return false;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* A random (version 4) UUID. */
static void uuid_new(char out[37])
{
    unsigned char b[16];
    char hex[33];

    mu_random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    mu_hex_encode(b, sizeof b, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* Required node labels: a JSON array of "key=value" strings, or NULL. */
static int check_vm_labels(const char *labels_json, struct mu_err *err)
{
    cJSON *root, *it;
    int rc = 0;

    if (!labels_json)
        return 0;
    root = mu_json_parse(labels_json, strlen(labels_json), "required labels", err);
    if (!root)
        return MU_EINVAL;
    if (!cJSON_IsArray(root))
        rc = mu_err_setf(err, MU_EINVAL, "labels",
                         "required labels must be a JSON array like [\"site=a\"]");
    cJSON_ArrayForEach(it, root)
    {
        if (rc == 0 && (!cJSON_IsString(it) || !strchr(it->valuestring, '=')))
            rc = mu_err_setf(err, MU_EINVAL, "labels",
                             "each required label must be a \"key=value\" string");
    }
    cJSON_Delete(root);
    return rc;
}

static int check_sizes(int64_t vcpus, int64_t ram_mib, int64_t disk_gib, struct mu_err *err)
{
    if (vcpus < 1)
        return mu_err_setf(err, MU_EINVAL, "vcpus", "a VM needs at least 1 vCPU");
    if (ram_mib < 1)
        return mu_err_setf(err, MU_EINVAL, "ram_mib", "a VM needs some memory");
    if (disk_gib < 0)
        return mu_err_setf(err, MU_EINVAL, "disk_gib", "a disk size cannot be negative");
    return 0;
}

/* ---- refusal texts ------------------------------------------------------------------- */

/* Memory as a person reads it: "512 MiB", "4 GiB", "1.5 GiB" (truncated to a tenth). */
static void fmt_mib(int64_t mib, char *num, size_t len, const char **unit)
{
    int64_t a = mib < 0 ? -mib : mib;

    if (a < 1024) {
        snprintf(num, len, "%" PRId64, mib);
        *unit = "MiB";
    } else if (a % 1024 == 0) {
        snprintf(num, len, "%" PRId64, mib / 1024);
        *unit = "GiB";
    } else {
        snprintf(num, len, "%s%" PRId64 ".%" PRId64, mib < 0 ? "-" : "", a / 1024,
                 (a % 1024) * 10 / 1024);
        *unit = "GiB";
    }
}

/* "memory 62 of 64 GiB used, this VM needs 4 GiB" (the first unit left out when both
 * figures share it). verb: "used" or "allocated". */
static void fmt_memory(char *buf, size_t len, int64_t used, int64_t limit, const char *verb,
                       const char *needs, int64_t need)
{
    char u[32], l[32], n[32];
    const char *uu, *lu, *nu;

    fmt_mib(used, u, sizeof u, &uu);
    fmt_mib(limit, l, sizeof l, &lu);
    fmt_mib(need, n, sizeof n, &nu);
    if (strcmp(uu, lu) == 0)
        snprintf(buf, len, "memory %s of %s %s %s, %s %s %s", u, l, lu, verb, needs, n, nu);
    else
        snprintf(buf, len, "memory %s %s of %s %s %s, %s %s %s", u, uu, l, lu, verb, needs, n, nu);
}

/* The first resource of one level (or node) that would overshoot: a text without the
 * level's name, or false when everything fits. Limits < 0 (MU_UNLIMITED) are skipped, as
 * are resources the request does not grow. */
static bool overshoot(const struct mu_limits *lim, const struct mu_usage *used,
                      const struct mu_usage *need, bool node, const char *needs, char *buf,
                      size_t len)
{
    const char *verb = node ? "allocated" : "used";

    if (need->vcpus > 0 && lim->vcpus >= 0 && used->vcpus + need->vcpus > lim->vcpus) {
        snprintf(buf, len, "vCPU %" PRId64 " of %" PRId64 " %s, %s %" PRId64, used->vcpus,
                 lim->vcpus, verb, needs, need->vcpus);
        return true;
    }
    if (need->ram_mib > 0 && lim->ram_mib >= 0 && used->ram_mib + need->ram_mib > lim->ram_mib) {
        fmt_memory(buf, len, used->ram_mib, lim->ram_mib, verb, needs, need->ram_mib);
        return true;
    }
    if (need->disk_gib > 0 && lim->disk_gib >= 0 &&
        used->disk_gib + need->disk_gib > lim->disk_gib) {
        snprintf(buf, len, "disk %" PRId64 " of %" PRId64 " GiB %s, %s %" PRId64 " GiB",
                 used->disk_gib, lim->disk_gib, verb, needs, need->disk_gib);
        return true;
    }
    if (need->vms > 0 && lim->vms >= 0 && used->vms + need->vms > lim->vms) {
        snprintf(buf, len, "VM count %" PRId64 " of %" PRId64, used->vms, lim->vms);
        return true;
    }
    if (need->networks > 0 && lim->networks >= 0 &&
        used->networks + need->networks > lim->networks) {
        snprintf(buf, len, "networks %" PRId64 " of %" PRId64 " %s, %s %" PRId64, used->networks,
                 lim->networks, verb, needs, need->networks);
        return true;
    }
    if (need->public_ips > 0 && lim->public_ips >= 0 &&
        used->public_ips + need->public_ips > lim->public_ips) {
        snprintf(buf, len, "public addresses %" PRId64 " of %" PRId64 " %s, %s %" PRId64,
                 used->public_ips, lim->public_ips, verb, needs, need->public_ips);
        return true;
    }
    return false;
}

/* ---- checks inside the transaction ----------------------------------------------------- */

/* Every level of the path ids (the VM's tenant first, then up to the root) must take
 * need on top of its subtree's usage. MU_EQUOTA names the first level that cannot. */
static int check_quotas(struct st_conn *c, const int64_t *ids, size_t n,
                        const struct mu_usage *need, const struct mu_quota_defaults *defaults,
                        const char *needs, struct mu_err *err)
{
    int rc = 0;

    for (size_t i = n; rc == 0 && i-- > 0;) {
        struct mu_quota_level lvl = {0};
        char why[200];

        rc = st_level_read(c, ids[i], defaults, &lvl, err);
        if (rc == MU_ENOTFOUND)
            rc = mu_err_set(err, MU_EIO, "tenant %" PRId64 " on a tenant path is missing", ids[i]);
        if (rc == 0 && overshoot(&lvl.limits, &lvl.usage, need, false, needs, why, sizeof why))
            rc = mu_err_set(err, MU_EQUOTA, "%s: %s", lvl.tenant_name, why);
        free(lvl.tenant_name);
    }
    return rc;
}

int st_quota_check_tx(struct st_conn *c, const int64_t *ids, size_t n, const struct mu_usage *need,
                      const struct mu_quota_defaults *defaults, const char *needs,
                      struct mu_err *err)
{
    return check_quotas(c, ids, n, need, defaults, needs, err);
}

struct node_row {
    char *name, *op_state, *health;
    struct mu_usage alloc;
};

static void node_row_clear(struct node_row *n)
{
    free(n->name);
    free(n->op_state);
    free(n->health);
    memset(n, 0, sizeof *n);
}

/* MU_ENOTFOUND (err untouched) when the node is gone. */
static int node_read(struct st_conn *c, int64_t id, struct node_row *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT name, op_state, health, alloc_vcpus, alloc_ram_mib, "
                              "alloc_disk_gib, vm_count FROM nodes WHERE id = ?1",
                              err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        ret->name = st_col_str(s, 0);
        ret->op_state = st_col_str(s, 1);
        ret->health = st_col_str(s, 2);
        ret->alloc.vcpus = sqlite3_column_int64(s, 3);
        ret->alloc.ram_mib = sqlite3_column_int64(s, 4);
        ret->alloc.disk_gib = sqlite3_column_int64(s, 5);
        ret->alloc.vms = sqlite3_column_int64(s, 6);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = MU_ENOTFOUND;
    } else {
        rc = st_sql_err(c, rc, "reading a node", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* The node takes new VMs: operator state active, health up (or unknown when allowed). */
static int check_node_open(const struct node_row *n, bool allow_unknown, struct mu_err *err)
{
    if (strcmp(n->op_state, "active") != 0)
        return mu_err_set(err, MU_ERETRY, "node %s is %s%s: it takes no new VMs", n->name,
                          strcmp(n->op_state, "maintenance") == 0 ? "in " : "", n->op_state);
    if (strcmp(n->health, "up") == 0)
        return 0;
    if (strcmp(n->health, "unknown") == 0) {
        if (allow_unknown)
            return 0;
        return mu_err_set(err, MU_ERETRY,
                          "node %s has not reported since the controller started (health "
                          "unknown): it takes no new VMs until it does",
                          n->name);
    }
    return mu_err_set(err, MU_ERETRY, "node %s is %s: it takes no new VMs", n->name, n->health);
}

static int check_node_room(const struct node_row *n, const struct mu_limits *cap,
                           const struct mu_usage *need, int code, const char *needs,
                           struct mu_err *err)
{
    struct mu_limits c = *cap;
    char why[200];

    c.vms = MU_UNLIMITED; /* no VM-count limit on a node */
    if (overshoot(&c, &n->alloc, need, true, needs, why, sizeof why))
        return mu_err_set(err, code, "node %s: %s", n->name, why);
    return 0;
}

/* The group exists and belongs to the VM's tenant or one of its ancestors (ids), and the
 * node hosts no VM of it yet. */
static int check_group(struct st_conn *c, int64_t group_id, const int64_t *ids, size_t n,
                       int64_t node_id, const char *node_name, struct mu_err *err)
{
    MU_AUTOFREE char *gname = NULL;
    int64_t owner = 0;
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c, "SELECT tenant_id, name FROM groups WHERE id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, group_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        owner = sqlite3_column_int64(s, 0);
        gname = st_col_str(s, 1);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_setf(err, MU_EINVAL, "group_id",
                               "anti-affinity group %" PRId64 " does not exist", group_id)
                 : st_sql_err(c, rc, "reading a group", err);
    }
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;
    rc = MU_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == owner)
            rc = 0;
    if (rc < 0)
        return mu_err_setf(err, MU_EINVAL, "group_id",
                           "anti-affinity group %s belongs to another tenant", gname);

    s = st_stmt(c, "SELECT name FROM vms WHERE group_id = ?1 AND node_id = ?2 LIMIT 1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, group_id);
    sqlite3_bind_int64(s, 2, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = mu_err_set(err, MU_ERETRY, "node %s already hosts VM %s of anti-affinity group %s",
                        node_name, (const char *)sqlite3_column_text(s, 0), gname);
    else
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "checking anti-affinity", err);
    st_stmt_done(c, s);
    return rc;
}

/* A row exists: 1 (with its first columns), absent: 0, or < 0. ?1 is id, or text when
 * text is given. */
static int row_exists(struct st_conn *c, const char *sql, int64_t id, const char *text,
                      int64_t *ret_col0, char **ret_col1, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    if (text)
        st_bind_str(s, 1, text);
    else
        sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        if (ret_col0)
            *ret_col0 = sqlite3_column_int64(s, 0);
        if (ret_col1 && sqlite3_column_count(s) > 1)
            *ret_col1 = st_col_str(s, 1);
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* A live VM of the tenant already has the name: MU_ECONFLICT. */
static int check_name_free(struct st_conn *c, int64_t tenant_id, const char *tenant_name,
                           const char *name, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT id FROM vms WHERE tenant_id = ?1 AND name = ?2 "
                              "AND desired_state != 'deleted'",
                              err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, tenant_id);
    st_bind_str(s, 2, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = mu_err_setf(err, MU_ECONFLICT, "name",
                         "tenant %s already has a VM named %s (vm %" PRId64 ")", tenant_name, name,
                         (int64_t)sqlite3_column_int64(s, 0));
    else
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "checking VM names", err);
    st_stmt_done(c, s);
    return rc;
}

static int check_flavor(struct st_conn *c, int64_t flavor_id, struct mu_err *err)
{
    int rc;

    if (flavor_id <= 0)
        return 0;
    rc = row_exists(c, "SELECT id FROM flavors WHERE id = ?1", flavor_id, NULL, NULL, NULL, err);
    if (rc == 0)
        return mu_err_setf(err, MU_EINVAL, "flavor_id", "flavor %" PRId64 " does not exist",
                           flavor_id);
    return rc < 0 ? rc : 0;
}

static int check_image(struct st_conn *c, int64_t image_id, struct mu_err *err)
{
    MU_AUTOFREE char *status = NULL;
    int64_t id = 0;
    int rc;

    if (image_id <= 0)
        return mu_err_setf(err, MU_EINVAL, "image_id", "a VM needs an image");
    rc = row_exists(c, "SELECT id, status FROM images WHERE id = ?1", image_id, NULL, &id, &status,
                    err);
    if (rc == 0)
        return mu_err_setf(err, MU_EINVAL, "image_id", "image %" PRId64 " does not exist",
                           image_id);
    if (rc < 0)
        return rc;
    if (!status || strcmp(status, "ready") != 0)
        return mu_err_setf(err, MU_ECONFLICT, "image_id",
                           "image %" PRId64 " is not ready yet (%s): wait for its upload to end",
                           image_id, status ? status : "?");
    return 0;
}

/* ---- admission ----------------------------------------------------------------------- */

static int insert_vm(struct st_conn *c, const struct mu_admit_req *req, const char *uuid,
                     const char *tenant_path, int64_t now, int64_t *ret_id, struct mu_err *err)
{
    const struct mu_vm *v = &req->vm;
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c,
                "INSERT INTO vms (uuid, tenant_id, tenant_path, name, flavor_id, vcpus, ram_mib, "
                "disk_gib, image_id, node_id, group_id, labels_json, desired_state, "
                "observed_state, created_ms, updated_ms, desired_ms, observed_ms) VALUES (?1, "
                "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'running', 'pending', ?13, ?13, "
                "?13, ?13)",
                err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, uuid);
    sqlite3_bind_int64(s, 2, v->tenant_id);
    st_bind_str(s, 3, tenant_path);
    st_bind_str(s, 4, v->name);
    st_bind_id(s, 5, v->flavor_id);
    sqlite3_bind_int64(s, 6, v->vcpus);
    sqlite3_bind_int64(s, 7, v->ram_mib);
    sqlite3_bind_int64(s, 8, v->disk_gib);
    st_bind_id(s, 9, v->image_id);
    st_bind_id(s, 10, req->node_id);
    st_bind_id(s, 11, v->group_id);
    st_bind_str(s, 12, v->labels_json);
    sqlite3_bind_int64(s, 13, now);
    rc = st_run(c, s, "inserting a VM", err);
    st_stmt_done(c, s);
    if (rc == 0)
        *ret_id = sqlite3_last_insert_rowid(c->db);
    return rc;
}

static int check_admit_input(const struct mu_admit_req *req, struct mu_err *err)
{
    const struct mu_vm *v = &req->vm;
    int rc;

    if (v->tenant_id <= 0)
        return mu_err_setf(err, MU_EINVAL, "tenant_id", "a VM needs a tenant");
    if (!vm_name_valid(v->name))
        return mu_err_setf(err, MU_EINVAL, "name",
                           "VM name %s is not valid: use lower-case letters, digits and '-', "
                           "starting with a letter or digit (at most 63 characters)",
                           v->name ? v->name : "(none)");
    if (v->uuid[0] && !uuid_valid(v->uuid))
        return mu_err_setf(err, MU_EINVAL, "uuid", "%.36s is not a lower-case UUID", v->uuid);
    if (req->node_id <= 0)
        return mu_err_setf(err, MU_EINVAL, "node_id", "admission needs the node placement chose");
    rc = check_sizes(v->vcpus, v->ram_mib, v->disk_gib, err);
    if (rc == 0)
        rc = check_vm_labels(v->labels_json, err);
    return rc;
}

int mu_store_vm_admit(struct mu_store *st, const struct mu_admit_req *req,
                      const struct mu_audit_rec *audit, int64_t *ret_vm_id, int64_t *ret_op_id,
                      struct mu_err *err)
{
    const struct mu_vm *v = &req->vm;
    struct mu_usage need = {v->vcpus, v->ram_mib, v->disk_gib, 1, 0, 0};
    const struct mu_limits cap = {req->node_cap_vcpus,    req->node_cap_ram_mib,
                                  req->node_cap_disk_gib, MU_UNLIMITED,
                                  MU_UNLIMITED,           MU_UNLIMITED};
    struct st_tenant_loc loc = {0};
    struct node_row node = {0};
    int64_t *ids = NULL, vm_id = 0, op_id = 0, other = 0, now;
    char uuid[37], target[48], detail[256], mem[32];
    const char *mem_unit;
    struct st_conn *c;
    size_t n = 0;
    int rc;

    rc = check_admit_input(req, err);
    if (rc == 0)
        rc = st_vm_user_data_check(req->user_data, err);
    if (rc < 0)
        return rc;
    if (v->uuid[0])
        memcpy(uuid, v->uuid, sizeof uuid);
    else
        uuid_new(uuid);
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    now = mu_now_ms();

    rc = st_tenant_locate(c, v->tenant_id, &loc, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_setf(err, MU_EINVAL, "tenant_id", "tenant %" PRId64 " does not exist",
                         v->tenant_id);
    if (rc == 0)
        rc = st_path_ids(loc.path, &ids, &n, err);
    if (rc < 0)
        goto out;
    rc = check_name_free(c, v->tenant_id, loc.name, v->name, err);
    if (rc < 0)
        goto out;
    rc = row_exists(c, "SELECT id FROM vms WHERE uuid = ?1", 0, uuid, &other, NULL, err);
    if (rc == 1)
        rc = mu_err_setf(err, MU_ECONFLICT, "uuid", "UUID %s is already used by vm %" PRId64, uuid,
                         other);
    if (rc == 0)
        rc = check_flavor(c, v->flavor_id, err);
    if (rc == 0)
        rc = check_image(c, v->image_id, err);
    /* NICs: the tenant's own networks or shared provider ones; public addresses count. */
    if (rc == 0 && req->n_nics > 0)
        rc = st_vm_nics_check_tx(c, v->tenant_id, req->nics, req->n_nics, &need.public_ips, err);
    if (rc == 0)
        rc = check_quotas(c, ids, n, &need, req->defaults, "this VM needs", err);
    if (rc < 0)
        goto out;

    rc = node_read(c, req->node_id, &node, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_set(err, MU_ERETRY, "node %" PRId64 " no longer exists", req->node_id);
    if (rc == 0)
        rc = check_node_open(&node, req->allow_unknown_health, err);
    if (rc == 0)
        rc = check_node_room(&node, &cap, &need, MU_ERETRY, "this VM needs", err);
    if (rc == 0 && v->group_id > 0)
        rc = check_group(c, v->group_id, ids, n, req->node_id, node.name, err);
    if (rc < 0)
        goto out;

    rc = insert_vm(c, req, uuid, loc.path, now, &vm_id, err);
    if (rc == 0 && req->n_nics > 0)
        rc = st_vm_nics_insert_tx(c, vm_id, req->nics, req->n_nics, now, err);
    if (rc == 0 && req->user_data) {
        sqlite3_stmt *s = st_stmt(c, "UPDATE vms SET user_data = ?2 WHERE id = ?1", err);

        rc = s ? 0 : MU_EIO;
        if (s) {
            sqlite3_bind_int64(s, 1, vm_id);
            st_bind_str(s, 2, req->user_data);
            rc = st_run(c, s, "storing user-data", err);
            st_stmt_done(c, s);
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = st_usage_add(c, ids[i], &need, err);
    if (rc == 0)
        rc = st_node_alloc_add(c, req->node_id, &need, err);
    if (rc == 0)
        rc = st_vm_event_tx(c, vm_id, v->tenant_id, req->node_id, "created", v->vcpus, v->ram_mib,
                            v->disk_gib, now, err);
    if (rc == 0)
        rc = st_op_insert_tx(c, "vm.create", vm_id, req->node_id, req->op_params_json, audit, now,
                             &op_id, err);
    if (rc == 0) {
        fmt_mib(v->ram_mib, mem, sizeof mem, &mem_unit);
        snprintf(target, sizeof target, "vm/%" PRId64, vm_id);
        snprintf(detail, sizeof detail,
                 "%s (%s) on node %s: %" PRId64 " vCPU, %s %s, %" PRId64 " GiB disk", v->name, uuid,
                 node.name, v->vcpus, mem, mem_unit, v->disk_gib);
        rc = st_audit_append_tx(st, audit, v->tenant_id, target, detail, err);
    }

out:
    st_tenant_loc_clear(&loc);
    node_row_clear(&node);
    free(ids);
    rc = st_tx_end(st, rc, err);
    if (rc == 0) {
        if (ret_vm_id)
            *ret_vm_id = vm_id;
        if (ret_op_id)
            *ret_op_id = op_id;
    }
    return rc;
}

/* ---- cold resize ------------------------------------------------------------------- */

int mu_store_vm_resize(struct mu_store *st, int64_t vm_id, int64_t flavor_id, int64_t vcpus,
                       int64_t ram_mib, int64_t disk_gib, int64_t node_cap_vcpus,
                       int64_t node_cap_ram_mib, int64_t node_cap_disk_gib,
                       const struct mu_quota_defaults *defaults, const struct mu_audit_rec *audit,
                       int64_t *ret_op_id, struct mu_err *err)
{
    const struct mu_limits cap = {node_cap_vcpus, node_cap_ram_mib, node_cap_disk_gib,
                                  MU_UNLIMITED,   MU_UNLIMITED,     MU_UNLIMITED};
    MU_AUTOFREE char *name = NULL, *path = NULL, *desired = NULL, *observed = NULL;
    MU_AUTOFREE char *op_kind = NULL, *params = NULL;
    struct node_row node = {0};
    struct mu_usage old = {0}, delta;
    int64_t tenant_id = 0, node_id = 0, op_id = 0, other_op = 0, now;
    int64_t *ids = NULL;
    char target[48], detail[256];
    struct st_conn *c;
    sqlite3_stmt *s;
    size_t n = 0;
    int rc;

    rc = check_sizes(vcpus, ram_mib, disk_gib, err);
    if (rc < 0)
        return rc;
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    now = mu_now_ms();
    s = st_stmt(c,
                "SELECT v.name, t.path, v.tenant_id, v.node_id, v.vcpus, v.ram_mib, v.disk_gib, "
                "v.desired_state, v.observed_state FROM vms v JOIN tenants t "
                "ON t.id = v.tenant_id WHERE v.id = ?1",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, vm_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        name = st_col_str(s, 0);
        path = st_col_str(s, 1);
        tenant_id = sqlite3_column_int64(s, 2);
        node_id = sqlite3_column_int64(s, 3);
        old = (struct mu_usage){.vcpus = sqlite3_column_int64(s, 4),
                                .ram_mib = sqlite3_column_int64(s, 5),
                                .disk_gib = sqlite3_column_int64(s, 6)};
        desired = st_col_str(s, 7);
        observed = st_col_str(s, 8);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_set(err, MU_ENOTFOUND, "vm %" PRId64 " does not exist", vm_id)
                 : st_sql_err(c, rc, "reading a VM", err);
    }
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    if (strcmp(desired, "deleted") == 0) {
        rc = mu_err_set(err, MU_ECONFLICT, "VM %s is being deleted", name);
        goto out;
    }
    if (strcmp(desired, "stopped") != 0 || strcmp(observed, "shutoff") != 0) {
        rc = mu_err_set(err, MU_ECONFLICT,
                        "VM %s must be stopped before a resize (desired %s, observed %s): "
                        "stop it and wait until it is shut off",
                        name, desired, observed);
        goto out;
    }
    if (disk_gib < old.disk_gib) {
        rc = mu_err_setf(err, MU_EINVAL, "disk_gib",
                         "VM %s has a %" PRId64
                         " GiB disk: a disk can grow, not shrink (asked %" PRId64 " GiB)",
                         name, old.disk_gib, disk_gib);
        goto out;
    }
    rc = st_op_unfinished_of(c, vm_id, &other_op, &op_kind, err);
    if (rc == 1)
        rc = mu_err_set(err, MU_ECONFLICT,
                        "VM %s already has operation %" PRId64
                        " (%s) in progress: wait for it to finish",
                        name, other_op, op_kind);
    if (rc == 0)
        rc = check_flavor(c, flavor_id, err);
    if (rc < 0)
        goto out;

    delta = (struct mu_usage){
        vcpus - old.vcpus, ram_mib - old.ram_mib, disk_gib - old.disk_gib, 0, 0, 0};
    rc = st_path_ids(path, &ids, &n, err);
    if (rc == 0)
        rc = check_quotas(c, ids, n, &delta, defaults, "this resize needs", err);
    if (rc == 0 && node_id > 0) {
        rc = node_read(c, node_id, &node, err);
        if (rc == MU_ENOTFOUND)
            rc = mu_err_set(err, MU_EIO, "VM %s is on node %" PRId64 ", which does not exist", name,
                            node_id);
        if (rc == 0)
            rc = check_node_room(&node, &cap, &delta, MU_EQUOTA, "this resize needs", err);
    }
    if (rc < 0)
        goto out;

    s = st_stmt(c,
                "UPDATE vms SET flavor_id = ?2, vcpus = ?3, ram_mib = ?4, disk_gib = ?5, "
                "updated_ms = ?6 WHERE id = ?1",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, vm_id);
    st_bind_id(s, 2, flavor_id);
    sqlite3_bind_int64(s, 3, vcpus);
    sqlite3_bind_int64(s, 4, ram_mib);
    sqlite3_bind_int64(s, 5, disk_gib);
    sqlite3_bind_int64(s, 6, now);
    rc = st_run(c, s, "resizing a VM", err);
    st_stmt_done(c, s);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = st_usage_add(c, ids[i], &delta, err);
    if (rc == 0)
        rc = st_node_alloc_add(c, node_id, &delta, err);
    if (rc == 0)
        rc = st_vm_event_tx(c, vm_id, tenant_id, node_id, "resized", vcpus, ram_mib, disk_gib, now,
                            err);
    if (rc == 0) {
        params = mu_xasprintf("{\"vcpus\":%" PRId64 ",\"ram_mib\":%" PRId64 ",\"disk_gib\":%" PRId64
                              ",\"old_vcpus\":%" PRId64 ",\"old_ram_mib\":%" PRId64
                              ",\"old_disk_gib\":%" PRId64 "}",
                              vcpus, ram_mib, disk_gib, old.vcpus, old.ram_mib, old.disk_gib);
        rc = st_op_insert_tx(c, "vm.resize", vm_id, node_id, params, audit, now, &op_id, err);
    }
    if (rc == 0) {
        snprintf(target, sizeof target, "vm/%" PRId64, vm_id);
        snprintf(detail, sizeof detail,
                 "%s: %" PRId64 " -> %" PRId64 " vCPU, %" PRId64 " -> %" PRId64 " MiB, %" PRId64
                 " -> %" PRId64 " GiB disk",
                 name, old.vcpus, vcpus, old.ram_mib, ram_mib, old.disk_gib, disk_gib);
        rc = st_audit_append_tx(st, audit, tenant_id, target, detail, err);
    }

out:
    node_row_clear(&node);
    free(ids);
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_op_id)
        *ret_op_id = op_id;
    return rc;
}
