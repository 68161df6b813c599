/* Tenants in a real SQLite file: tree paths, moves and cycle refusal, deletes, search,
 * pagination, uniqueness, the bulk upsert and its speed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "mutualis/validate.h"
#include "store_test.h"

static int setup(void **state)
{
    struct mu_test_db *db = mu_xcalloc(1, sizeof *db);

    mu_test_db_init(db, NULL);
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    struct mu_test_db *db = *state;

    mu_test_db_fini(db);
    free(db);
    return 0;
}

static int64_t add(struct mu_store *st, const char *name, const char *kind, int64_t parent,
                   const char *siren, const char *insee)
{
    struct mu_tenant t = mu_test_tenant(name, kind, parent, siren, insee);
    struct mu_audit_rec rec = mu_test_rec("tenant.create", 0);
    struct mu_err err = {0};
    int64_t id = 0;
    int rc = mu_store_tenant_insert(st, &t, &rec, &id, &err);

    if (rc != 0)
        fprintf(stderr, "insert %s: %s\n", name, err.detail);
    assert_int_equal(rc, 0);
    assert_true(id > 0);
    return id;
}

static int depth_of(struct mu_store *st, int64_t id)
{
    struct mu_tenant t = {0};
    struct mu_err err = {0};
    int d;

    assert_int_equal(mu_store_tenant_get(st, id, &t, &err), 0);
    d = t.depth;
    mu_tenant_clear(&t);
    return d;
}

static void test_schema_version_and_reopen(void **state)
{
    struct mu_test_db *db = *state;
    int v = mu_store_schema_version(db->st);

    assert_true(v >= 1);
    add(db->st, "Syndicat", "syndicat", 0, NULL, NULL);
    mu_store_close(db->st);
    db->st = mu_test_open_path(db->path, NULL);
    assert_non_null(db->st);
    assert_int_equal(mu_store_schema_version(db->st), v);
}

static void test_tree_get_ancestors(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_tenant t = {0};
    struct mu_err err = {0};
    int64_t *ids = NULL;
    size_t n = 0;
    int64_t root = add(st, "Syndicat mixte", "syndicat", 0, "200000172", NULL);
    int64_t epci = add(st, "CC de la Dombes", "epci", root, "200042935", NULL);
    int64_t com = add(st, "L'Abergement-Clémenciat", "commune", epci, "210100012", "01001");
    int64_t other = add(st, "Autre syndicat", "syndicat", 0, NULL, NULL);

    assert_int_equal(mu_store_tenant_get(st, com, &t, &err), 0);
    assert_string_equal(t.name, "L'Abergement-Clémenciat");
    assert_string_equal(t.insee, "01001");
    assert_int_equal(t.parent_id, epci);
    assert_int_equal(t.depth, 2);
    assert_null(t.epci_form);
    assert_int_equal(t.population, -1);
    assert_string_equal(t.status, "active");
    mu_tenant_clear(&t);

    assert_int_equal(mu_store_tenant_ancestors(st, com, &ids, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], root);
    assert_int_equal(ids[1], epci);
    assert_int_equal(ids[2], com);
    free(ids);

    assert_true(mu_store_tenant_in_subtree(st, root, com));
    assert_true(mu_store_tenant_in_subtree(st, com, com));
    assert_false(mu_store_tenant_in_subtree(st, com, root));
    assert_false(mu_store_tenant_in_subtree(st, other, com));

    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_get(st, 9999, &t, &err), MU_ENOTFOUND);

    /* A parent that does not exist. */
    struct mu_tenant bad = mu_test_tenant("Orphan", "commune", 9999, NULL, NULL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_insert(st, &bad, NULL, NULL, &err), MU_EINVAL);
    assert_string_equal(err.field, "parent_id");
}

static void test_move_and_cycles(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_err err = {0};
    int64_t root = add(st, "Root", "syndicat", 0, NULL, NULL);
    int64_t a = add(st, "A", "epci", root, NULL, NULL);
    int64_t b = add(st, "B", "epci", root, NULL, NULL);
    int64_t a1 = add(st, "A1", "commune", a, NULL, "01002");
    int64_t a11 = add(st, "A11", "other", a1, NULL, NULL);
    int64_t *ids = NULL;
    size_t n = 0;

    /* Decoy whose id starts like a's: /1/2/ must not catch /1/20/. */
    for (int i = 0; i < 20; i++)
        add(st, "filler", "other", root, NULL, NULL);

    assert_int_equal(mu_store_tenant_move(st, a, b, NULL, &err), 0);
    assert_int_equal(depth_of(st, a), 2);
    assert_int_equal(depth_of(st, a1), 3);
    assert_int_equal(depth_of(st, a11), 4);
    assert_int_equal(mu_store_tenant_ancestors(st, a11, &ids, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_int_equal(ids[0], root);
    assert_int_equal(ids[1], b);
    assert_int_equal(ids[2], a);
    assert_int_equal(ids[3], a1);
    assert_int_equal(ids[4], a11);
    free(ids);
    assert_true(mu_store_tenant_in_subtree(st, b, a11));

    /* Under itself, and under its own descendant. */
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_move(st, a, a, NULL, &err), MU_ECONFLICT);
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_move(st, a, a11, NULL, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "cannot move tenant"));
    assert_non_null(strstr(err.detail, "is inside tenant"));
    assert_int_equal(depth_of(st, a11), 4);

    /* Make it a root: the subtree follows. */
    assert_int_equal(mu_store_tenant_move(st, a, 0, NULL, &err), 0);
    assert_int_equal(depth_of(st, a), 0);
    assert_int_equal(depth_of(st, a11), 2);
    assert_false(mu_store_tenant_in_subtree(st, root, a11));

    struct mu_tenant_filter f = {.parent_id = -1, .subtree_of = a, .limit = 100};
    struct mu_tenant *list = NULL;
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    mu_tenants_free(list, n);
    f.subtree_of = root;
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 22); /* root, b, 20 fillers */
    mu_tenants_free(list, n);

    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_move(st, 424242, root, NULL, &err), MU_ENOTFOUND);
}

static void test_delete_refusals(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_err err = {0};
    int64_t root = add(st, "Root", "syndicat", 0, NULL, NULL);
    int64_t child = add(st, "Child", "commune", root, NULL, "01003");
    int64_t with_user = add(st, "Has user", "commune", root, NULL, "01004");
    struct mu_user u = {
        .name = (char *)"bob", .role = (char *)"tenant-admin", .tenant_id = with_user};
    struct mu_tenant t = {0};

    assert_int_equal(mu_store_user_insert(st, &u, NULL, NULL, &err), 0);
    assert_int_equal(mu_store_tenant_delete(st, root, NULL, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "child tenant"));
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_delete(st, with_user, NULL, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "user"));
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_delete(st, child, NULL, &err), 0);
    assert_int_equal(mu_store_tenant_get(st, child, &t, &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_delete(st, child, NULL, &err), MU_ENOTFOUND);
}

static size_t count_q(struct mu_store *st, const char *q)
{
    struct mu_tenant_filter f = {.parent_id = -1, .q = q, .limit = 1000};
    struct mu_tenant *list = NULL;
    struct mu_err err = {0};
    size_t n = 0;

    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
    mu_tenants_free(list, n);
    return n;
}

static void test_search(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    int64_t se;

    add(st, "Saint-Étienne-du-Bois", "commune", 0, "210103503", "01350");
    se = add(st, "Saint-Étienne", "commune", 0, "214202187", "42218");
    add(st, "Lyon", "commune", 0, "216901231", "69123");
    add(st, "Ajaccio", "commune", 0, "212000046", "2A004");

    assert_int_equal(count_q(st, "saint etienne"), 2);
    assert_int_equal(count_q(st, "SAINT-ÉTIENNE"), 2);
    assert_int_equal(count_q(st, "etienne du"), 1);
    assert_int_equal(count_q(st, "lyon"), 1);
    assert_int_equal(count_q(st, "214202187"), 1); /* exact SIREN */
    assert_int_equal(count_q(st, "42218"), 1);     /* exact INSEE */
    assert_int_equal(count_q(st, "2A004"), 1);
    assert_int_equal(count_q(st, "4220"), 0); /* no prefix match on codes */
    assert_int_equal(count_q(st, "marseille"), 0);

    struct mu_tenant_filter f = {.parent_id = -1, .q = "saint etienne", .limit = 1};
    struct mu_tenant *list = NULL;
    struct mu_err err = {0};
    size_t n = 0;
    f.after_id = se - 1;
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "Saint-Étienne");
    mu_tenants_free(list, n);
}

static void test_pagination_and_filters(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_tenant *list = NULL;
    struct mu_err err = {0};
    size_t n = 0, total = 0;
    int64_t root = add(st, "Root", "syndicat", 0, NULL, NULL);
    int64_t epci = add(st, "EPCI", "epci", root, NULL, NULL);
    int64_t last = 0;

    for (int i = 0; i < 25; i++) {
        char name[32], insee[8];

        snprintf(name, sizeof name, "Commune %02d", i);
        snprintf(insee, sizeof insee, "01%03d", i + 100);
        struct mu_tenant t = mu_test_tenant(name, "commune", i % 2 ? epci : root, NULL, insee);
        assert_int_equal(mu_store_tenant_insert(st, &t, NULL, NULL, &err), 0);
    }
    struct mu_tenant_filter f = {.parent_id = -1, .kind = "commune", .limit = 10};
    for (;;) {
        assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
        for (size_t i = 0; i < n; i++) {
            assert_true(list[i].id > last);
            last = list[i].id;
        }
        total += n;
        mu_tenants_free(list, n);
        if (n < 10)
            break;
        f.after_id = last;
    }
    assert_int_equal(total, 25);

    f = (struct mu_tenant_filter){.parent_id = epci, .limit = 1000};
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 12);
    mu_tenants_free(list, n);
    f = (struct mu_tenant_filter){.parent_id = 0, .limit = 1000};
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    mu_tenants_free(list, n);
    /* RBAC scope on the EPCI: its 12 communes and itself, whatever else is asked. */
    f = (struct mu_tenant_filter){.parent_id = -1, .scope_id = epci, .limit = 1000};
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 13);
    mu_tenants_free(list, n);
    f.subtree_of = root;
    f.kind = "epci";
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    mu_tenants_free(list, n);
    f = (struct mu_tenant_filter){.parent_id = -1, .status = "suspended", .limit = 5};
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    mu_tenants_free(list, n);

    f = (struct mu_tenant_filter){.parent_id = -1, .limit = 0};
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), MU_EINVAL);
    mu_err_clear(&err);
    f.limit = 1001;
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), MU_EINVAL);
}

static void test_uniqueness(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_err err = {0};
    int64_t first = add(st, "L'Abergement-Clémenciat", "commune", 0, "210100012", "01001");
    int64_t other = add(st, "Ambérieu-en-Bugey", "commune", 0, "210100046", "01004");
    struct mu_tenant dup = mu_test_tenant("Copy", "commune", 0, "210100012", "01999");
    char want[200];

    assert_int_equal(mu_store_tenant_insert(st, &dup, NULL, NULL, &err), MU_ECONFLICT);
    snprintf(want, sizeof want,
             "SIREN 210100012 is already used by tenant %lld (L'Abergement-Clémenciat)",
             (long long)first);
    assert_string_equal(err.detail, want);
    assert_string_equal(err.field, "siren");

    mu_err_clear(&err);
    dup = mu_test_tenant("Copy", "commune", 0, NULL, "01001");
    assert_int_equal(mu_store_tenant_insert(st, &dup, NULL, NULL, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "INSEE code 01001 is already used by commune"));

    /* The same INSEE code on a non-commune (a delegated commune, say) is allowed. */
    mu_err_clear(&err);
    dup = mu_test_tenant("Déléguée", "other", 0, NULL, "01001");
    assert_int_equal(mu_store_tenant_insert(st, &dup, NULL, NULL, &err), 0);

    /* Update into a conflict, then a valid update. */
    struct mu_tenant upd = mu_test_tenant("Ambérieu", "commune", 0, "210100012", "01004");
    upd.id = other;
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_update(st, &upd, NULL, &err), MU_ECONFLICT);
    upd.siren = (char *)"210100046";
    upd.population = 14000;
    upd.contact_email = (char *)"mairie@example.org";
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_update(st, &upd, NULL, &err), 0);
    struct mu_tenant got = {0};
    assert_int_equal(mu_store_tenant_get(st, other, &got, &err), 0);
    assert_string_equal(got.name, "Ambérieu");
    assert_int_equal(got.population, 14000);
    assert_string_equal(got.contact_email, "mairie@example.org");
    mu_tenant_clear(&got);
    upd.id = 31337;
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_update(st, &upd, NULL, &err), MU_ENOTFOUND);
}

static size_t tenant_count(struct mu_store *st)
{
    struct mu_tenant_filter f = {.parent_id = -1, .limit = 1000};
    struct mu_tenant *list = NULL;
    struct mu_err err = {0};
    size_t n = 0, total = 0;

    for (;;) {
        assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
        total += n;
        if (n > 0)
            f.after_id = list[n - 1].id;
        mu_tenants_free(list, n);
        if (n < 1000)
            return total;
    }
}

/* An EPCI and n communes under it (entry 0 is the EPCI). Strings live in bufs. */
static struct mu_tenant_upsert *make_import(size_t nepci, size_t per_epci, char (*bufs)[3][32])
{
    size_t n = nepci * (per_epci + 1), k = 0;
    struct mu_tenant_upsert *e = mu_xcalloc(n, sizeof *e);

    for (size_t i = 0; i < nepci; i++) {
        size_t epci_index = k;

        snprintf(bufs[k][0], 32, "CC %u", (unsigned)i);
        snprintf(bufs[k][1], 32, "2%08u", (unsigned)i);
        e[k].t = mu_test_tenant(bufs[k][0], "epci", 0, bufs[k][1], NULL);
        e[k].t.epci_form = (char *)"CC";
        e[k].t.status = NULL;
        e[k].parent_index = -1;
        k++;
        for (size_t j = 0; j < per_epci; j++, k++) {
            size_t c = i * per_epci + j;

            snprintf(bufs[k][0], 32, "Commune %u", (unsigned)c);
            snprintf(bufs[k][1], 32, "%02u%03u", (unsigned)(1 + c / 1000 % 90),
                     (unsigned)(c % 1000));
            e[k].t = mu_test_tenant(bufs[k][0], "commune", 0, NULL, bufs[k][1]);
            e[k].t.status = NULL;
            e[k].t.dept = (char *)"01";
            e[k].t.population = (int64_t)c;
            e[k].parent_index = (int)epci_index;
        }
    }
    return e;
}

static void test_upsert_many(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_audit_rec rec = mu_test_rec("tenant.import", 0);
    char(*bufs)[3][32] = mu_xcalloc(3 * 11, sizeof *bufs);
    struct mu_tenant_upsert *e = make_import(3, 10, bufs);
    struct mu_import_counts counts = {0};
    struct mu_err err = {0};
    struct mu_tenant got = {0};
    int64_t c0;

    assert_int_equal(mu_store_tenant_upsert_many(st, e, 33, &rec, &counts, &err), 0);
    assert_int_equal(counts.created, 33);
    assert_int_equal(counts.updated, 0);
    assert_int_equal(counts.unchanged, 0);
    /* One audit entry for the whole import, with the counts. */
    struct mu_audit_filter af = {.limit = 10};
    struct mu_audit_entry *ae = NULL;
    size_t an = 0;
    assert_int_equal(mu_store_audit_list(st, &af, &ae, &an, &err), 0);
    assert_int_equal(an, 1);
    assert_string_equal(ae[0].detail, "33 entries: created 33, updated 0, unchanged 0");
    mu_audit_entries_free(ae, an);

    assert_int_equal(mu_store_tenant_upsert_many(st, e, 33, &rec, &counts, &err), 0);
    assert_int_equal(counts.created, 0);
    assert_int_equal(counts.updated, 0);
    assert_int_equal(counts.unchanged, 33);

    /* A commune changes EPCI and population: updated, and its path moves. */
    struct mu_tenant_filter f = {.parent_id = -1, .q = "01010", .limit = 10};
    struct mu_tenant *list = NULL;
    size_t n = 0;
    assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    c0 = list[0].id;
    assert_string_equal(list[0].name, "Commune 10");
    mu_tenants_free(list, n);
    e[12].parent_index = 0; /* from CC 1 to CC 0 */
    e[12].t.population = 4242;
    if (mu_store_tenant_upsert_many(st, e, 33, &rec, &counts, &err) != 0)
        fail_msg("%s", err.detail);
    assert_int_equal(counts.updated, 1);
    assert_int_equal(counts.unchanged, 32);
    assert_int_equal(mu_store_tenant_get(st, c0, &got, &err), 0);
    assert_int_equal(got.population, 4242);
    assert_int_equal(got.depth, 1);
    mu_tenant_clear(&got);
    struct mu_tenant_filter sub = {.parent_id = -1, .subtree_of = 0, .limit = 100};
    assert_int_equal(mu_store_tenant_list(st, &sub, &list, &n, &err), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, "CC 0") == 0)
            sub.subtree_of = list[i].id;
    mu_tenants_free(list, n);
    assert_true(mu_store_tenant_in_subtree(st, sub.subtree_of, c0));

    /* All or nothing: new entries, then one whose SIREN another tenant holds. */
    add(st, "Holder", "other", 0, "299999999", NULL);
    size_t before = tenant_count(st);
    struct mu_tenant_upsert more[3] = {
        {.t = mu_test_tenant("New A", "commune", 0, NULL, "05001"), .parent_index = -1},
        {.t = mu_test_tenant("New B", "commune", 0, NULL, "05002"), .parent_index = 0},
        {.t = mu_test_tenant("Clash", "commune", 0, "299999999", "01000"), .parent_index = -1},
    };
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_upsert_many(st, more, 3, &rec, &counts, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "entry 2 (Clash)"));
    assert_non_null(strstr(err.detail, "SIREN 299999999 of commune Clash is already that of"));
    assert_int_equal(tenant_count(st), before);

    /* A parent_index that does not point backwards. */
    more[0].parent_index = 1;
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_upsert_many(st, more, 2, &rec, &counts, &err), MU_EINVAL);
    assert_int_equal(tenant_count(st), before);

    free(e);
    free(bufs);
}

/* ---- search: the index path gives what a scan of the folded names gives ---------------- */

struct ref_tenant {
    int64_t id;
    char name[96], siren[16], insee[8];
    const char *kind;
    bool gone;
};

static uint64_t eq_rng = 88172645463325252ULL;

static unsigned eq_rand(unsigned n)
{
    eq_rng ^= eq_rng << 13;
    eq_rng ^= eq_rng >> 7;
    eq_rng ^= eq_rng << 17;
    return (unsigned)(eq_rng % n);
}

static void ref_name(char *buf, size_t len)
{
    static const char *const pre[] = {
        "Saint-", "Sainte-", "L'", "La ", "Le ", "Les ", "", "", "Notre-Dame-de-", "Villeneuve-"};
    static const char *const root[] = {"Étienne",  "Abergement", "Hôpital", "Évry",  "Île",
                                       "Œuilly",   "Haÿ",        "Bois",    "Mont",  "Clémenciat",
                                       "Ambérieu", "Château",    "Forêt",   "Gué",   "Saône",
                                       "ÉTANG",    "Mæl",        "Straße",  "Ωmega", "50% Sud"};
    static const char *const suf[] = {
        "",        "",        "-sur-Mer", "-en-Bugey", "-les-Roses", " d'Azergues",
        "-du-Lac", "’Église", "  Nord",   "-Bas"};

    snprintf(buf, len, "%s%s%s", pre[eq_rand(MU_ARRAY_LEN(pre))], root[eq_rand(MU_ARRAY_LEN(root))],
             suf[eq_rand(MU_ARRAY_LEN(suf))]);
}

/* The rows a page should hold: every live tenant whose folded name contains the folded q,
 * or whose SIREN or INSEE is q, of the kind asked, by ascending id. */
static size_t ref_page(const struct ref_tenant *r, size_t nr, const char *q, const char *kind,
                       int64_t after, int limit, int64_t *ids)
{
    MU_AUTOFREE char *fq = mu_text_fold(q);
    size_t n = 0;

    for (size_t i = 0; i < nr && n < (size_t)limit; i++) {
        MU_AUTOFREE char *fn = mu_text_fold(r[i].name);

        if (r[i].gone || r[i].id <= after || (kind && strcmp(kind, r[i].kind) != 0))
            continue;
        /* An empty siren / insee stands for NULL, which equals nothing. */
        if ((fq[0] && strstr(fn, fq)) || (r[i].siren[0] && strcmp(r[i].siren, q) == 0) ||
            (r[i].insee[0] && strcmp(r[i].insee, q) == 0))
            ids[n++] = r[i].id;
    }
    return n;
}

static void check_pages(struct mu_store *st, const struct ref_tenant *r, size_t nr, const char *q,
                        const char *kind, int limit)
{
    int64_t want[1000];
    int64_t after = 0;

    for (;;) {
        struct mu_tenant_filter f = {
            .parent_id = -1, .q = q, .kind = kind, .after_id = after, .limit = limit};
        size_t wn = ref_page(r, nr, q, kind, after, limit, want);
        struct mu_tenant *list = NULL;
        struct mu_err err = {0};
        size_t n = 0;

        assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
        if (n != wn)
            fail_msg("q=\"%s\" kind=%s after=%lld: %zu rows, want %zu", q, kind ? kind : "-",
                     (long long)after, n, wn);
        for (size_t i = 0; i < n; i++)
            if (list[i].id != want[i])
                fail_msg("q=\"%s\": row %zu is tenant %lld, want %lld", q, i, (long long)list[i].id,
                         (long long)want[i]);
        mu_tenants_free(list, n);
        if (wn < (size_t)limit)
            return;
        after = want[wn - 1];
    }
}

static void test_search_index_matches_scan(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    enum { N = 400 };
    struct ref_tenant *r = mu_xcalloc(N, sizeof *r);
    struct mu_err err = {0};
    static const char *const qs[] = {"saint",      "sainte",    "st",
                                     "l'",         "l ",        "é",
                                     "ete",        "etienne",   "SAINT-ÉTIENNE",
                                     "hopital",    "HÔPITAL",   "sur mer",
                                     "sur-mer",    "les roses", "d azergues",
                                     "d'azergues", "bois",      "x",
                                     "zz",         "haÿ",       "hay",
                                     "œ",          "oe",        "oeuilly",
                                     "ile",        "le",        "a",
                                     "%",          "50%",       "50% sud",
                                     "_",          "e_",        "mael",
                                     "strasse",    "ωmega",     "Ωmega",
                                     "ωme",        "ne-d",      "  nord ",
                                     "eglise",     "’eglise",   "200000007",
                                     "01002",      "",          "  ",
                                     "tang",       "saone",     "mont bas",
                                     "marseille",  "de la",     "ge"};

    for (size_t i = 0; i < N; i++) {
        struct mu_tenant t;

        ref_name(r[i].name, sizeof r[i].name);
        snprintf(r[i].siren, sizeof r[i].siren, "2%08zu", i);
        snprintf(r[i].insee, sizeof r[i].insee, "%05zu", i);
        r[i].kind = i % 3 ? "commune" : "epci";
        t = mu_test_tenant(r[i].name, r[i].kind, 0, i % 2 ? r[i].siren : NULL, r[i].insee);
        assert_int_equal(mu_store_tenant_insert(st, &t, NULL, &r[i].id, &err), 0);
        if (!(i % 2))
            r[i].siren[0] = '\0';
    }
    /* Renames and deletes go through the triggers that keep the index in step. */
    for (size_t i = 0; i < N; i += 7) {
        struct mu_tenant t;

        ref_name(r[i].name, sizeof r[i].name);
        t = mu_test_tenant(r[i].name, r[i].kind, 0, r[i].siren[0] ? r[i].siren : NULL, r[i].insee);
        t.id = r[i].id;
        assert_int_equal(mu_store_tenant_update(st, &t, NULL, &err), 0);
    }
    for (size_t i = 5; i < N; i += 11) {
        assert_int_equal(mu_store_tenant_delete(st, r[i].id, NULL, &err), 0);
        r[i].gone = true;
    }
    for (size_t i = 0; i < MU_ARRAY_LEN(qs); i++) {
        check_pages(st, r, N, qs[i], NULL, 1000);
        check_pages(st, r, N, qs[i], NULL, 7);
        check_pages(st, r, N, qs[i], "epci", 13);
    }
    free(r);
}

/* A word every name holds, asked with a filter that keeps none of them: the index path
 * runs out of budget and the scan answers, with the same rows. */
static void test_search_budget_falls_back(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    enum { N = 6000 };
    struct ref_tenant *r = mu_xcalloc(N + 1, sizeof *r);
    struct mu_tenant_upsert *e = mu_xcalloc(N, sizeof *e);
    struct mu_err err = {0};

    for (size_t i = 0; i < N; i++) {
        snprintf(r[i].name, sizeof r[i].name, "Commune %zu", i);
        snprintf(r[i].insee, sizeof r[i].insee, "%05zu", i);
        r[i].kind = "commune";
        e[i].t = mu_test_tenant(r[i].name, "commune", 0, NULL, r[i].insee);
        e[i].parent_index = -1;
    }
    assert_int_equal(mu_store_tenant_upsert_many(st, e, N, NULL, NULL, &err), 0);
    for (size_t i = 0; i < N; i++)
        r[i].id = (int64_t)i + 1;
    snprintf(r[N].name, sizeof r[N].name, "CC de la Commune");
    r[N].kind = "epci";
    r[N].id = add(st, r[N].name, "epci", 0, NULL, NULL);
    check_pages(st, r, N + 1, "commune", "epci", 10);
    check_pages(st, r, N + 1, "commune", NULL, 50);
    check_pages(st, r, N + 1, "00042", "epci", 10);
    free(e);
    free(r);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* Times 200 searches (one page of 100) per query class and prints p50 / p99: the figures
 * behind issue 2 (p99 <= 10 ms on 35,000 tenants). Meaningful in a Release build only;
 * nothing is asserted on them here (sanitizers make them several times slower). */
static void time_searches(struct mu_store *st)
{
    static const struct {
        const char *label;
        const char *q[4];
        int64_t kind_epci; /* 1: with kind=epci (a narrow filter the names do not help) */
    } classes[] = {
        {"no match", {"marseille", "bordeaux", "saint etienne", "zzz"}, 0},
        {"every name", {"commune", "mune", "omm", "com"}, 0},
        {"1 in 10", {"commune 1", "mune 2", "une 3", "ne 4"}, 0},
        {"rare", {"commune 3456", "mune 12345", "cc 1234", "une 2222"}, 0},
        {"2 characters", {"cc", "mu", "zz", "12"}, 0},
        {"siren / insee", {"200001234", "04499", "01001", "299999999"}, 0},
        {"common + kind", {"commune", "mune 1", "une", "com"}, 1},
    };
    enum { N = 200 };

    for (size_t k = 0; k < MU_ARRAY_LEN(classes); k++) {
        int64_t ns[N];

        for (int i = 0; i < N; i++) {
            struct mu_tenant_filter f = {.parent_id = -1,
                                         .q = classes[k].q[i % 4],
                                         .kind = classes[k].kind_epci ? "epci" : NULL,
                                         .limit = 100};
            struct mu_tenant *list = NULL;
            struct mu_err err = {0};
            struct timespec a, b;
            size_t n = 0;

            clock_gettime(CLOCK_MONOTONIC, &a);
            assert_int_equal(mu_store_tenant_list(st, &f, &list, &n, &err), 0);
            clock_gettime(CLOCK_MONOTONIC, &b);
            mu_tenants_free(list, n);
            ns[i] = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
        }
        qsort(ns, N, sizeof ns[0], cmp_i64);
        fprintf(stderr, "search (%s): p50=%.3f ms p99=%.3f ms max=%.3f ms\n", classes[k].label,
                (double)ns[N / 2] / 1e6, (double)ns[N * 99 / 100 - 1] / 1e6,
                (double)ns[N - 1] / 1e6);
    }
}

static void test_import_35k_fast(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    const size_t nepci = 1250, per = 28; /* 36,250 tenants */
    char(*bufs)[3][32] = mu_xcalloc(nepci * (per + 1), sizeof *bufs);
    struct mu_tenant_upsert *e = make_import(nepci, per, bufs);
    struct mu_import_counts counts = {0};
    struct mu_err err = {0};
    int64_t t0 = mu_mono_ms(), t1, t2;

    assert_int_equal(mu_store_tenant_upsert_many(st, e, nepci * (per + 1), NULL, &counts, &err), 0);
    t1 = mu_mono_ms();
    assert_int_equal(counts.created, (int64_t)(nepci * (per + 1)));
    assert_int_equal(mu_store_tenant_upsert_many(st, e, nepci * (per + 1), NULL, &counts, &err), 0);
    t2 = mu_mono_ms();
    assert_int_equal(counts.unchanged, (int64_t)(nepci * (per + 1)));
    fprintf(stderr, "import of %zu tenants: %lld ms, re-import: %lld ms\n", nepci * (per + 1),
            (long long)(t1 - t0), (long long)(t2 - t1));
    assert_true(t1 - t0 < 10000);
    assert_true(t2 - t1 < 10000);
    assert_int_equal(count_q(st, "04499"), 1);
    assert_int_equal(count_q(st, "commune 34999"), 1);
    time_searches(st);
    free(e);
    free(bufs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_version_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tree_get_ancestors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_and_cycles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_index_matches_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_budget_falls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uniqueness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_35k_fast, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
