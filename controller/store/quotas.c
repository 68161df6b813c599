/* Quotas and usage counters. A tenant's limits are its explicit row in quotas, or the
 * policy's default for its kind and population. Its usage (tenant_usage) is the allocation
 * of every VM in its subtree, kept as counters that change only in the transactions that
 * change VM rows, so that an admission reads one row per level of the tree. The recount
 * recomputes every counter from the VM rows and corrects (and reports) any drift. */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int st_path_ids(const char *path, int64_t **ret_ids, size_t *ret_n, struct mu_err *err)
{
    size_t cap = 0, n = 0;
    int64_t *ids;
    const char *p;

    for (p = path; *p; p++)
        cap += *p == '/';
    if (path[0] != '/' || cap < 2)
        return mu_err_set(err, MU_EIO, "corrupt tenant path %s", path);
    ids = mu_xcalloc(cap, sizeof *ids);
    for (p = path + 1; *p;) {
        const char *slash = strchr(p, '/');
        char seg[24];

        if (!slash || slash == p || (size_t)(slash - p) >= sizeof seg) {
            free(ids);
            return mu_err_set(err, MU_EIO, "corrupt tenant path %s", path);
        }
        memcpy(seg, p, (size_t)(slash - p));
        seg[slash - p] = '\0';
        if (mu_parse_i64(seg, 1, INT64_MAX, &ids[n]) < 0) {
            free(ids);
            return mu_err_set(err, MU_EIO, "corrupt tenant path %s", path);
        }
        n++;
        p = slash + 1;
    }
    *ret_ids = ids;
    *ret_n = n;
    return 0;
}

static void limits_unlimited(struct mu_limits *l)
{
    l->vcpus = l->ram_mib = l->disk_gib = l->vms = MU_UNLIMITED;
    l->networks = l->public_ips = MU_UNLIMITED;
}

int st_level_read(struct st_conn *c, int64_t tenant_id, const struct mu_quota_defaults *defaults,
                  struct mu_quota_level *ret, struct mu_err *err)
{
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c,
                "SELECT t.name, t.kind, t.population, q.tenant_id IS NOT NULL, q.vcpus, "
                "q.ram_mib, q.disk_gib, q.vms, COALESCE(u.vcpus, 0), COALESCE(u.ram_mib, 0), "
                "COALESCE(u.disk_gib, 0), COALESCE(u.vms, 0), q.networks, q.public_ips, "
                "COALESCE(u.networks, 0), COALESCE(u.public_ips, 0) FROM tenants t "
                "LEFT JOIN quotas q ON q.tenant_id = t.id "
                "LEFT JOIN tenant_usage u ON u.tenant_id = t.id WHERE t.id = ?1",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, tenant_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(ret, 0, sizeof *ret);
        ret->tenant_id = tenant_id;
        ret->tenant_name = st_col_str(s, 0);
        ret->explicit_limits = sqlite3_column_int(s, 3) != 0;
        if (ret->explicit_limits) {
            ret->limits.vcpus = sqlite3_column_int64(s, 4);
            ret->limits.ram_mib = sqlite3_column_int64(s, 5);
            ret->limits.disk_gib = sqlite3_column_int64(s, 6);
            ret->limits.vms = sqlite3_column_int64(s, 7);
            ret->limits.networks = sqlite3_column_int64(s, 12);
            ret->limits.public_ips = sqlite3_column_int64(s, 13);
        } else if (defaults && defaults->fn) {
            const unsigned char *kind = sqlite3_column_text(s, 1);

            limits_unlimited(&ret->limits);
            defaults->fn(defaults->ctx, kind ? (const char *)kind : "", sqlite3_column_int64(s, 2),
                         &ret->limits);
        } else {
            limits_unlimited(&ret->limits);
        }
        ret->usage.vcpus = sqlite3_column_int64(s, 8);
        ret->usage.ram_mib = sqlite3_column_int64(s, 9);
        ret->usage.disk_gib = sqlite3_column_int64(s, 10);
        ret->usage.vms = sqlite3_column_int64(s, 11);
        ret->usage.networks = sqlite3_column_int64(s, 14);
        ret->usage.public_ips = sqlite3_column_int64(s, 15);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = MU_ENOTFOUND;
    } else {
        rc = st_sql_err(c, rc, "reading a tenant's quota", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int st_usage_add(struct st_conn *c, int64_t tenant_id, const struct mu_usage *d, struct mu_err *err)
{
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c,
                "INSERT INTO tenant_usage (tenant_id, vcpus, ram_mib, disk_gib, vms, networks, "
                "public_ips) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (tenant_id) DO "
                "UPDATE SET vcpus = vcpus + excluded.vcpus, ram_mib = ram_mib + excluded.ram_mib, "
                "disk_gib = disk_gib + excluded.disk_gib, vms = vms + excluded.vms, "
                "networks = networks + excluded.networks, "
                "public_ips = public_ips + excluded.public_ips",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, tenant_id);
    sqlite3_bind_int64(s, 2, d->vcpus);
    sqlite3_bind_int64(s, 3, d->ram_mib);
    sqlite3_bind_int64(s, 4, d->disk_gib);
    sqlite3_bind_int64(s, 5, d->vms);
    sqlite3_bind_int64(s, 6, d->networks);
    sqlite3_bind_int64(s, 7, d->public_ips);
    rc = st_run(c, s, "updating usage counters", err);
    st_stmt_done(c, s);
    return rc;
}

int st_usage_add_path(struct st_conn *c, const char *path, const struct mu_usage *d,
                      struct mu_err *err)
{
    int64_t *ids = NULL;
    size_t n = 0;
    int rc;

    rc = st_path_ids(path, &ids, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = st_usage_add(c, ids[i], d, err);
    free(ids);
    return rc;
}

static bool has_id(const int64_t *ids, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

int st_usage_move_subtree(struct st_conn *c, const char *old_path, const char *new_path,
                          struct mu_err *err)
{
    MU_AUTOFREE char *upper = st_path_upper(old_path);
    int64_t *old_ids = NULL, *new_ids = NULL;
    size_t n_old = 0, n_new = 0;
    struct mu_usage sum = {0}, neg;
    sqlite3_stmt *s;
    int rc;

    /* The moved subtree's allocation, from its VM rows (the truth, not a counter). */
    s = st_stmt(c,
                "SELECT COALESCE(sum(vcpus), 0), COALESCE(sum(ram_mib), 0), "
                "COALESCE(sum(disk_gib), 0), count(*) FROM vms "
                "WHERE tenant_path >= ?1 AND tenant_path < ?2",
                err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, old_path);
    st_bind_str(s, 2, upper);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sum.vcpus = sqlite3_column_int64(s, 0);
        sum.ram_mib = sqlite3_column_int64(s, 1);
        sum.disk_gib = sqlite3_column_int64(s, 2);
        sum.vms = sqlite3_column_int64(s, 3);
        rc = 0;
    } else {
        rc = st_sql_err(c, rc, "summing a subtree's VMs", err);
    }
    st_stmt_done(c, s);
    if (rc == 0) {
        /* Tenants' paths may already be the new ones: look in both ranges (one is empty). */
        MU_AUTOFREE char *new_upper = st_path_upper(new_path);
        int64_t nets = 0, pubs = 0;

        rc = st_net_usage_subtree(c, old_path, upper, &sum.networks, &sum.public_ips, err);
        if (rc == 0)
            rc = st_net_usage_subtree(c, new_path, new_upper, &nets, &pubs, err);
        sum.networks += nets;
        sum.public_ips += pubs;
    }
    if (rc < 0 || (sum.vms == 0 && sum.networks == 0))
        return rc; /* no VM or network below: nothing follows, nothing to count */

    rc = st_path_ids(old_path, &old_ids, &n_old, err);
    if (rc == 0)
        rc = st_path_ids(new_path, &new_ids, &n_new, err);
    /* The last id of each path is the moved tenant itself: its own counter stays. */
    neg = (struct mu_usage){-sum.vcpus, -sum.ram_mib,  -sum.disk_gib,
                            -sum.vms,   -sum.networks, -sum.public_ips};
    for (size_t i = 0; rc == 0 && i + 1 < n_old; i++)
        if (!has_id(new_ids, n_new - 1, old_ids[i]))
            rc = st_usage_add(c, old_ids[i], &neg, err);
    for (size_t i = 0; rc == 0 && i + 1 < n_new; i++)
        if (!has_id(old_ids, n_old - 1, new_ids[i]))
            rc = st_usage_add(c, new_ids[i], &sum, err);
    free(old_ids);
    free(new_ids);
    if (rc < 0)
        return rc;

    s = st_stmt(c,
                "UPDATE vms SET tenant_path = ?1 || substr(tenant_path, ?2) "
                "WHERE tenant_path >= ?3 AND tenant_path < ?4",
                err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, new_path);
    sqlite3_bind_int64(s, 2, (int64_t)strlen(old_path) + 1);
    st_bind_str(s, 3, old_path);
    st_bind_str(s, 4, upper);
    rc = st_run(c, s, "moving a subtree's VMs", err);
    st_stmt_done(c, s);
    return rc;
}

/* ---- quotas ------------------------------------------------------------------------ */

static void fmt_limit(char *buf, size_t len, int64_t v)
{
    if (v == MU_UNLIMITED)
        snprintf(buf, len, "unlimited");
    else
        snprintf(buf, len, "%" PRId64, v);
}

static int check_limits(const struct mu_limits *l, struct mu_err *err)
{
    static const char *const names[] = {"vcpus", "ram_mib",  "disk_gib",
                                        "vms",   "networks", "public_ips"};
    const int64_t v[] = {l->vcpus, l->ram_mib, l->disk_gib, l->vms, l->networks, l->public_ips};

    for (size_t i = 0; i < MU_ARRAY_LEN(v); i++)
        if (v[i] < MU_UNLIMITED)
            return mu_err_setf(err, MU_EINVAL, names[i], "quota %s must be 0 or more, or unlimited",
                               names[i]);
    return 0;
}

int mu_store_quota_set(struct mu_store *st, int64_t tenant_id, const struct mu_limits *limits,
                       const struct mu_audit_rec *audit, struct mu_err *err)
{
    struct st_tenant_loc loc = {0};
    char target[48], detail[256], a[24], b[24], cc[24], d[24], e[24], f[24];
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    if (limits) {
        rc = check_limits(limits, err);
        if (rc < 0)
            return rc;
    }
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = st_tenant_locate(c, tenant_id, &loc, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", tenant_id);
    if (rc < 0)
        goto out;
    if (limits)
        s = st_stmt(c,
                    "INSERT INTO quotas (tenant_id, vcpus, ram_mib, disk_gib, vms, updated_ms, "
                    "networks, public_ips) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                    "ON CONFLICT (tenant_id) DO UPDATE SET "
                    "vcpus = excluded.vcpus, ram_mib = excluded.ram_mib, "
                    "disk_gib = excluded.disk_gib, vms = excluded.vms, "
                    "updated_ms = excluded.updated_ms, networks = excluded.networks, "
                    "public_ips = excluded.public_ips",
                    err);
    else
        s = st_stmt(c, "DELETE FROM quotas WHERE tenant_id = ?1", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, tenant_id);
    if (limits) {
        sqlite3_bind_int64(s, 2, limits->vcpus);
        sqlite3_bind_int64(s, 3, limits->ram_mib);
        sqlite3_bind_int64(s, 4, limits->disk_gib);
        sqlite3_bind_int64(s, 5, limits->vms);
        sqlite3_bind_int64(s, 6, mu_now_ms());
        sqlite3_bind_int64(s, 7, limits->networks);
        sqlite3_bind_int64(s, 8, limits->public_ips);
    }
    rc = st_run(c, s, "setting a quota", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    snprintf(target, sizeof target, "tenant/%" PRId64, tenant_id);
    if (limits) {
        fmt_limit(a, sizeof a, limits->vcpus);
        fmt_limit(b, sizeof b, limits->ram_mib);
        fmt_limit(cc, sizeof cc, limits->disk_gib);
        fmt_limit(d, sizeof d, limits->vms);
        fmt_limit(e, sizeof e, limits->networks);
        fmt_limit(f, sizeof f, limits->public_ips);
        snprintf(detail, sizeof detail,
                 "quota vcpus=%s ram_mib=%s disk_gib=%s vms=%s networks=%s public_ips=%s", a, b, cc,
                 d, e, f);
    } else {
        snprintf(detail, sizeof detail, "quota back to the policy defaults");
    }
    rc = st_audit_append_tx(st, audit, tenant_id, target, detail, err);

out:
    st_tenant_loc_clear(&loc);
    return st_tx_end(st, rc, err);
}

void mu_quota_levels_free(struct mu_quota_level *l, size_t n)
{
    if (!l)
        return;
    for (size_t i = 0; i < n; i++)
        free(l[i].tenant_name);
    free(l);
}

int mu_store_quota_levels(struct mu_store *st, int64_t tenant_id,
                          const struct mu_quota_defaults *defaults, struct mu_quota_level **ret,
                          size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct st_tenant_loc loc = {0};
    struct mu_quota_level *out = NULL;
    int64_t *ids = NULL;
    size_t n = 0, done = 0;
    int rc;

    if (!c)
        return MU_EIO;
    /* One snapshot, so that the levels' usage add up. */
    rc = st_exec(c, "BEGIN", "reading quotas", err);
    if (rc < 0)
        return rc;
    rc = st_tenant_locate(c, tenant_id, &loc, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", tenant_id);
    if (rc == 0)
        rc = st_path_ids(loc.path, &ids, &n, err);
    if (rc == 0)
        out = mu_xcalloc(n, sizeof *out);
    for (; rc == 0 && done < n; done++) {
        rc = st_level_read(c, ids[done], defaults, &out[done], err);
        if (rc == MU_ENOTFOUND)
            rc = mu_err_set(err, MU_EIO, "tenant %" PRId64 " has a missing ancestor %" PRId64,
                            tenant_id, ids[done]);
    }
    st_exec(c, "COMMIT", "reading quotas", NULL);
    st_tenant_loc_clear(&loc);
    free(ids);
    if (rc < 0) {
        mu_quota_levels_free(out, done);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_quota_own_levels(struct mu_store *st, const int64_t *ids, size_t n,
                              const struct mu_quota_defaults *defaults, struct mu_quota_level **ret,
                              struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_quota_level *out;
    size_t done = 0;
    int rc;

    if (!c)
        return MU_EIO;
    rc = st_exec(c, "BEGIN", "reading quotas", err);
    if (rc < 0)
        return rc;
    out = mu_xcalloc(n + 1, sizeof *out);
    for (; rc == 0 && done < n; done++) {
        rc = st_level_read(c, ids[done], defaults, &out[done], err);
        if (rc == MU_ENOTFOUND)
            rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", ids[done]);
    }
    st_exec(c, "COMMIT", "reading quotas", NULL);
    if (rc < 0) {
        mu_quota_levels_free(out, done);
        return rc;
    }
    *ret = out;
    return 0;
}

/* ---- recount --------------------------------------------------------------------------- */

#define RECOUNT_DETAIL_MAX 5

struct recount_fix {
    bool node; /* a node's counters, else a tenant's */
    int64_t id;
    char *name;          /* nodes only (tenants are named when reported) */
    struct mu_usage had; /* as recorded */
    struct mu_usage truth;
    bool had_row;
};

struct recount {
    struct recount_fix *fixes;
    size_t n, cap;
    int64_t stale_paths; /* VM rows whose tenant_path is not their tenant's */
};

static bool usage_eq(const struct mu_usage *a, const struct mu_usage *b)
{
    return a->vcpus == b->vcpus && a->ram_mib == b->ram_mib && a->disk_gib == b->disk_gib &&
           a->vms == b->vms && a->networks == b->networks && a->public_ips == b->public_ips;
}

static bool usage_zero(const struct mu_usage *a)
{
    return a->vcpus == 0 && a->ram_mib == 0 && a->disk_gib == 0 && a->vms == 0 &&
           a->networks == 0 && a->public_ips == 0;
}

static void recount_add(struct recount *r, bool node, int64_t id, const char *name,
                        const struct mu_usage *had, const struct mu_usage *truth, bool had_row)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->fixes = mu_xrealloc(r->fixes, r->cap * sizeof *r->fixes);
    }
    r->fixes[r->n++] = (struct recount_fix){.node = node,
                                            .id = id,
                                            .name = mu_xstrdup(name),
                                            .had = *had,
                                            .truth = *truth,
                                            .had_row = had_row};
}

static void recount_clear(struct recount *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->fixes[i].name);
    free(r->fixes);
    memset(r, 0, sizeof *r);
}

static void usage_from(sqlite3_stmt *s, int col, struct mu_usage *u)
{
    u->vcpus = sqlite3_column_int64(s, col);
    u->ram_mib = sqlite3_column_int64(s, col + 1);
    u->disk_gib = sqlite3_column_int64(s, col + 2);
    u->vms = sqlite3_column_int64(s, col + 3);
    u->networks = u->public_ips = 0;
}

static void usage_plus(struct mu_usage *a, const struct mu_usage *b)
{
    a->vcpus += b->vcpus;
    a->ram_mib += b->ram_mib;
    a->disk_gib += b->disk_gib;
    a->vms += b->vms;
    a->networks += b->networks;
    a->public_ips += b->public_ips;
}

/* What the counters should hold, from one sequential scan of the VM rows (random lookups
 * through an index would cost a page read per row). Arrays are indexed by id. */
struct truth {
    int64_t max_tenant, max_node;
    char **path;             /* each tenant's path (NULL: no such tenant) */
    struct mu_usage *own;    /* each tenant's own VMs */
    struct mu_usage *tenant; /* each tenant's subtree */
    struct mu_usage *node;
};

static void truth_clear(struct truth *t)
{
    for (int64_t i = 0; t->path && i <= t->max_tenant; i++)
        free(t->path[i]);
    free(t->path);
    free(t->own);
    free(t->tenant);
    free(t->node);
    memset(t, 0, sizeof *t);
}

static int max_id(struct st_conn *c, const char *sql, int64_t *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    rc = sqlite3_step(s);
    *ret = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    rc = rc == SQLITE_ROW ? 0 : st_sql_err(c, rc, "recounting", err);
    st_stmt_done(c, s);
    return rc;
}

static int truth_compute(struct st_conn *c, struct truth *t, int64_t *ret_stale, struct mu_err *err)
{
    sqlite3_stmt *s;
    int rc;

    rc = max_id(c, "SELECT COALESCE(max(id), 0) FROM tenants", &t->max_tenant, err);
    if (rc == 0)
        rc = max_id(c, "SELECT COALESCE(max(id), 0) FROM nodes", &t->max_node, err);
    if (rc < 0)
        return rc;
    t->path = mu_xcalloc((size_t)t->max_tenant + 1, sizeof *t->path);
    t->own = mu_xcalloc((size_t)t->max_tenant + 1, sizeof *t->own);
    t->tenant = mu_xcalloc((size_t)t->max_tenant + 1, sizeof *t->tenant);
    t->node = mu_xcalloc((size_t)t->max_node + 1, sizeof *t->node);

    s = st_stmt(c, "SELECT id, path FROM tenants", err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0);

        if (id >= 0 && id <= t->max_tenant)
            t->path[id] = st_col_str(s, 1);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "recounting", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;

    s = st_stmt(c, "SELECT tenant_id, tenant_path, node_id, vcpus, ram_mib, disk_gib FROM vms",
                err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t tid = sqlite3_column_int64(s, 0), nid = sqlite3_column_int64(s, 2);
        const unsigned char *vpath = sqlite3_column_text(s, 1);
        struct mu_usage u = {.vcpus = sqlite3_column_int64(s, 3),
                             .ram_mib = sqlite3_column_int64(s, 4),
                             .disk_gib = sqlite3_column_int64(s, 5),
                             .vms = 1};

        if (tid > 0 && tid <= t->max_tenant && t->path[tid]) {
            usage_plus(&t->own[tid], &u);
            if (!vpath || strcmp((const char *)vpath, t->path[tid]) != 0)
                (*ret_stale)++;
        }
        if (nid > 0 && nid <= t->max_node)
            usage_plus(&t->node[nid], &u);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "recounting", err);
    st_stmt_done(c, s);

    /* Private networks count against their tenant, public addresses against the VM's. */
    if (rc == 0) {
        s = st_stmt(c,
                    "SELECT tenant_id, count(*), 0 FROM networks WHERE kind = 'private' "
                    "GROUP BY tenant_id UNION ALL SELECT v.tenant_id, 0, count(*) FROM nics x "
                    "JOIN vms v ON v.id = x.vm_id WHERE x.public = 1 GROUP BY v.tenant_id",
                    err);
        if (!s)
            return MU_EIO;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            int64_t tid = sqlite3_column_int64(s, 0);

            if (tid > 0 && tid <= t->max_tenant && t->path[tid]) {
                t->own[tid].networks += sqlite3_column_int64(s, 1);
                t->own[tid].public_ips += sqlite3_column_int64(s, 2);
            }
        }
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "recounting networks", err);
        st_stmt_done(c, s);
    }

    /* Each tenant's own VMs count at every level of its path. */
    for (int64_t id = 1; rc == 0 && id <= t->max_tenant; id++) {
        int64_t *ids = NULL;
        size_t n = 0;

        if (usage_zero(&t->own[id]))
            continue;
        rc = st_path_ids(t->path[id], &ids, &n, err);
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (ids[i] <= t->max_tenant)
                usage_plus(&t->tenant[ids[i]], &t->own[id]);
        free(ids);
    }
    return rc;
}

static int recount_tenants(struct st_conn *c, const struct truth *t, struct recount *r,
                           struct mu_err *err)
{
    bool *seen = mu_xcalloc((size_t)t->max_tenant + 1, sizeof *seen);
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c,
                "SELECT tenant_id, vcpus, ram_mib, disk_gib, vms, networks, public_ips "
                "FROM tenant_usage ORDER BY tenant_id",
                err);
    if (!s) {
        free(seen);
        return MU_EIO;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0);
        struct mu_usage had, zero = {0};
        bool known = id > 0 && id <= t->max_tenant;
        const struct mu_usage *want = known ? &t->tenant[id] : &zero;

        usage_from(s, 1, &had);
        had.networks = sqlite3_column_int64(s, 5);
        had.public_ips = sqlite3_column_int64(s, 6);
        if (known)
            seen[id] = true;
        if (!usage_eq(&had, want))
            recount_add(r, false, id, NULL, &had, want, true);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "recounting tenants", err);
    st_stmt_done(c, s);
    for (int64_t id = 1; rc == 0 && id <= t->max_tenant; id++) {
        struct mu_usage zero = {0};

        if (!seen[id] && !usage_zero(&t->tenant[id]))
            recount_add(r, false, id, NULL, &zero, &t->tenant[id], false);
    }
    free(seen);
    return rc;
}

static int recount_nodes(struct st_conn *c, const struct truth *t, struct recount *r,
                         struct mu_err *err)
{
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c,
                "SELECT id, name, alloc_vcpus, alloc_ram_mib, alloc_disk_gib, vm_count "
                "FROM nodes ORDER BY id",
                err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0);
        struct mu_usage had, zero = {0};
        const struct mu_usage *want = id > 0 && id <= t->max_node ? &t->node[id] : &zero;

        usage_from(s, 2, &had);
        if (!usage_eq(&had, want))
            recount_add(r, true, id, (const char *)sqlite3_column_text(s, 1), &had, want, true);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "recounting nodes", err);
    st_stmt_done(c, s);
    return rc;
}

static int recount_fix_one(struct st_conn *c, const struct recount_fix *f, struct mu_err *err)
{
    sqlite3_stmt *s;
    int rc;

    if (f->node)
        s = st_stmt(c,
                    "UPDATE nodes SET alloc_vcpus = ?2, alloc_ram_mib = ?3, alloc_disk_gib = ?4, "
                    "vm_count = ?5 WHERE id = ?1",
                    err);
    else
        s = st_stmt(c,
                    "INSERT INTO tenant_usage (tenant_id, vcpus, ram_mib, disk_gib, vms, "
                    "networks, public_ips) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                    "ON CONFLICT (tenant_id) DO UPDATE SET "
                    "vcpus = excluded.vcpus, ram_mib = excluded.ram_mib, "
                    "disk_gib = excluded.disk_gib, vms = excluded.vms, "
                    "networks = excluded.networks, public_ips = excluded.public_ips",
                    err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, f->id);
    sqlite3_bind_int64(s, 2, f->truth.vcpus);
    sqlite3_bind_int64(s, 3, f->truth.ram_mib);
    sqlite3_bind_int64(s, 4, f->truth.disk_gib);
    sqlite3_bind_int64(s, 5, f->truth.vms);
    if (!f->node) {
        sqlite3_bind_int64(s, 6, f->truth.networks);
        sqlite3_bind_int64(s, 7, f->truth.public_ips);
    }
    rc = st_run(c, s, "correcting a counter", err);
    st_stmt_done(c, s);
    return rc;
}

/* "tenant 12 (Commune A): vcpus 8 recorded, 6 in VM rows, vms 3 recorded, 2 in VM rows" */
static void describe(struct st_conn *c, const struct recount_fix *f, struct mu_buf *b)
{
    static const char *const tnames[] = {"vcpus", "ram_mib",  "disk_gib",
                                         "vms",   "networks", "public_ips"};
    static const char *const nnames[] = {"alloc_vcpus", "alloc_ram_mib", "alloc_disk_gib",
                                         "vm_count",    "networks",      "public_ips"};
    const int64_t had[] = {f->had.vcpus, f->had.ram_mib,  f->had.disk_gib,
                           f->had.vms,   f->had.networks, f->had.public_ips};
    const int64_t truth[] = {f->truth.vcpus, f->truth.ram_mib,  f->truth.disk_gib,
                             f->truth.vms,   f->truth.networks, f->truth.public_ips};
    const char *sep = ": ";

    if (f->node) {
        mu_buf_printf(b, "node %" PRId64 " (%s)", f->id, f->name ? f->name : "?");
    } else {
        struct st_tenant_loc loc = {0};

        if (st_tenant_locate(c, f->id, &loc, NULL) == 0)
            mu_buf_printf(b, "tenant %" PRId64 " (%s)", f->id, loc.name);
        else
            mu_buf_printf(b, "tenant %" PRId64, f->id);
        st_tenant_loc_clear(&loc);
    }
    for (size_t i = 0; i < MU_ARRAY_LEN(had); i++) {
        if (had[i] == truth[i])
            continue;
        mu_buf_printf(b, "%s%s %" PRId64 " recorded, %" PRId64 " in VM rows", sep,
                      f->node ? nnames[i] : tnames[i], had[i], truth[i]);
        sep = ", ";
    }
}

/* One full comparison on c (inside a transaction). fix: correct what differs. */
static int recount_pass(struct st_conn *c, bool fix, int64_t *ret_mismatches, struct mu_buf *detail,
                        struct mu_err *err)
{
    struct recount r = {0};
    struct truth t = {0};
    int rc;

    rc = truth_compute(c, &t, &r.stale_paths, err);
    if (rc == 0)
        rc = recount_tenants(c, &t, &r, err);
    if (rc == 0)
        rc = recount_nodes(c, &t, &r, err);
    truth_clear(&t);
    if (rc == 0 && fix) {
        for (size_t i = 0; rc == 0 && i < r.n; i++)
            rc = recount_fix_one(c, &r.fixes[i], err);
        if (rc == 0 && r.stale_paths > 0)
            rc = st_exec(c,
                         "UPDATE vms SET tenant_path = (SELECT path FROM tenants t "
                         "WHERE t.id = vms.tenant_id) WHERE tenant_path != (SELECT path FROM "
                         "tenants t WHERE t.id = vms.tenant_id)",
                         "correcting VM tenant paths", err);
    }
    if (rc == 0 && detail) {
        for (size_t i = 0; i < r.n && i < RECOUNT_DETAIL_MAX; i++) {
            if (i > 0)
                mu_buf_puts(detail, "; ");
            describe(c, &r.fixes[i], detail);
        }
        if (r.n > RECOUNT_DETAIL_MAX)
            mu_buf_printf(detail, "; and %zu more", r.n - RECOUNT_DETAIL_MAX);
        if (r.stale_paths > 0)
            mu_buf_printf(detail, "%s%" PRId64 " VM row(s) carried a stale tenant path",
                          r.n > 0 ? "; " : "", r.stale_paths);
    }
    if (rc == 0)
        *ret_mismatches = (int64_t)r.n + r.stale_paths;
    recount_clear(&r);
    return rc;
}

int mu_store_usage_recount(struct mu_store *st, int64_t *ret_mismatches, char *detail,
                           size_t detail_len, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_buf b;
    int64_t found = 0;
    int rc;

    if (!c)
        return MU_EIO;
    /* First a read-only pass over one snapshot, without holding the writer: counters and
     * VM rows change together, so any difference there is a real drift. */
    rc = st_exec(c, "BEGIN", "recounting", err);
    if (rc < 0)
        return rc;
    rc = recount_pass(c, false, &found, NULL, err);
    st_exec(c, "COMMIT", "recounting", NULL);
    if (rc < 0)
        return rc;
    mu_buf_init(&b);
    if (found > 0) {
        /* Again under the writer, correcting. */
        c = st_tx_begin(st, err);
        if (!c) {
            mu_buf_free(&b);
            return MU_EIO;
        }
        rc = recount_pass(c, true, &found, &b, err);
        rc = st_tx_end(st, rc, err);
    }
    if (rc == 0) {
        if (detail && detail_len > 0)
            snprintf(detail, detail_len, "%s", found > 0 && b.data ? b.data : "all counters match");
        *ret_mismatches = found;
    }
    mu_buf_free(&b);
    return rc;
}
