/* Bulk upsert of tenants (the COG import): one transaction, all or nothing, statements
 * reused from the writer's cache; 35,000 communes take well under a second. */
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

/* The existing tenant an entry designates: by SIREN, else by commune INSEE code.
 * 1 and *ret filled, 0 if none, or < 0. */
static int find_match(struct st_conn *c, const struct mu_tenant *t, struct mu_tenant *ret,
                      struct mu_err *err)
{
    const char *sql, *key;
    sqlite3_stmt *s;
    int rc;

    if (t->siren) {
        sql = "SELECT " ST_TENANT_COLS " FROM tenants WHERE siren = ?1";
        key = t->siren;
    } else if (t->insee && str_eq(t->kind, "commune")) {
        sql = "SELECT " ST_TENANT_COLS " FROM tenants WHERE kind = 'commune' AND insee = ?1";
        key = t->insee;
    } else {
        return 0;
    }
    s = st_stmt(c, sql, err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, key);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        st_tenant_from_row(s, ret);
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "matching an imported tenant", err);
    }
    st_stmt_done(c, s);
    return rc;
}

static bool same_fields(const struct mu_tenant *a, const struct mu_tenant *b)
{
    return str_eq(a->name, b->name) && str_eq(a->kind, b->kind) &&
           str_eq(a->epci_form, b->epci_form) && str_eq(a->siren, b->siren) &&
           str_eq(a->insee, b->insee) && str_eq(a->dept, b->dept) && str_eq(a->region, b->region) &&
           a->population == b->population && str_eq(a->contact_name, b->contact_name) &&
           str_eq(a->contact_email, b->contact_email) &&
           str_eq(a->contact_phone, b->contact_phone) && str_eq(a->status, b->status);
}

/* One entry: 1 created, 2 updated, 3 unchanged, or < 0. */
static int upsert_one(struct st_conn *c, const struct mu_tenant *in, int64_t parent, int64_t now,
                      int64_t *ret_id, struct mu_err *err)
{
    struct mu_tenant ex = {0};
    struct mu_tenant t = *in; /* shallow: strings stay borrowed */
    bool fields_same, parent_same;
    int rc;

    t.parent_id = parent;
    rc = find_match(c, &t, &ex, err);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        rc = st_tenant_insert_tx(c, &t, now, ret_id, NULL, err);
        return rc < 0 ? rc : 1;
    }
    /* A match by SIREN must be the same kind of collectivity (and, for a commune, the same
     * INSEE code): an import never turns a syndicat into a commune, nor moves the tenant it
     * hangs under. */
    if (!str_eq(ex.kind, t.kind) || (str_eq(t.kind, "commune") && !str_eq(ex.insee, t.insee)) ||
        ex.id == parent) {
        rc = mu_err_set(err, MU_ECONFLICT,
                        "%s %s of %s %s is already that of tenant %lld (%s, %s): fix the "
                        "existing tenant or leave it out of the import",
                        t.siren ? "SIREN" : "INSEE code", t.siren ? t.siren : t.insee, t.kind,
                        t.name, (long long)ex.id, ex.name, ex.kind);
        mu_tenant_clear(&ex);
        return rc;
    }
    /* An import carries no contacts or status: absent means keep what operators set. */
    t.id = ex.id;
    if (!t.contact_name)
        t.contact_name = ex.contact_name;
    if (!t.contact_email)
        t.contact_email = ex.contact_email;
    if (!t.contact_phone)
        t.contact_phone = ex.contact_phone;
    if (!t.status)
        t.status = ex.status;
    fields_same = same_fields(&t, &ex);
    parent_same = ex.parent_id == parent;
    rc = 3;
    if (!fields_same) {
        rc = st_tenant_check_unique(c, &t, ex.id, err);
        if (rc == 0)
            rc = st_tenant_write_fields(c, &t, now, err);
        if (rc == 0)
            rc = 2;
    }
    if (rc > 0 && !parent_same) {
        rc = st_tenant_move_tx(c, ex.id, parent, now, err);
        if (rc == 0)
            rc = 2;
    }
    if (rc > 0)
        *ret_id = ex.id;
    mu_tenant_clear(&ex);
    return rc;
}

int mu_store_tenant_upsert_many(struct mu_store *st, const struct mu_tenant_upsert *entries,
                                size_t n, const struct mu_audit_rec *audit,
                                struct mu_import_counts *ret, struct mu_err *err)
{
    struct mu_import_counts counts = {0};
    int64_t *ids = mu_xcalloc(n ? n : 1, sizeof *ids);
    int64_t now = mu_now_ms();
    struct st_conn *c;
    MU_AUTOFREE char *detail = NULL;
    int rc = 0;

    c = st_tx_begin(st, err);
    if (!c) {
        free(ids);
        return MU_EIO;
    }
    for (size_t i = 0; i < n && rc >= 0; i++) {
        const struct mu_tenant_upsert *e = &entries[i];
        struct mu_err one = {0};
        int64_t parent = e->t.parent_id > 0 ? e->t.parent_id : 0;

        if (e->parent_index >= 0) {
            if ((size_t)e->parent_index >= i) {
                rc = mu_err_setf(err, MU_EINVAL, "parent_index",
                                 "entry %zu (%s): parent_index %d does not name an earlier "
                                 "entry",
                                 i, e->t.name ? e->t.name : "?", e->parent_index);
                break;
            }
            parent = ids[e->parent_index];
        }
        rc = upsert_one(c, &e->t, parent, now, &ids[i], &one);
        if (rc < 0) {
            mu_err_setf(err, one.code, one.field, "entry %zu (%s): %s", i,
                        e->t.name ? e->t.name : "?", one.detail);
            break;
        }
        if (rc == 1)
            counts.created++;
        else if (rc == 2)
            counts.updated++;
        else
            counts.unchanged++;
        rc = 0;
    }
    if (rc == 0 && audit) {
        /* The counts go into the entry, after the caller's own detail if any. */
        struct mu_audit_rec rec = *audit;

        detail = mu_xasprintf("%s%s%zu entries: created %" PRId64 ", updated %" PRId64
                              ", unchanged %" PRId64,
                              audit->detail ? audit->detail : "", audit->detail ? "; " : "", n,
                              counts.created, counts.updated, counts.unchanged);
        rec.detail = detail;
        rc = st_audit_append_tx(st, &rec, 0, "tenants", NULL, err);
    }
    free(ids);
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret)
        *ret = counts;
    return rc;
}
