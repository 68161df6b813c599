/* The COG import: reads the body of POST /v1/tenants/import, which carries the entries of
 * the epci.json and communes.json files of @etalab/decoupage-administratif, and plans the
 * tenants to upsert. The plan is made of copies: the JSON tree is freed before returning.
 *
 * What the files hold (package data/ directory):
 *   epci.json: [{"code": SIREN, "nom", "type": CC|CA|CU|METRO|MET69, "modeFinancement",
 *                "populationTotale", "populationMunicipale",
 *                "membres": [{"code": INSEE, "siren", "nom", "populationTotale",
 *                             "populationMunicipale"}]}]
 *   communes.json: [{"code": INSEE, "nom", "type", "departement", "region", "siren",
 *                    "population", "typeLiaison", "zone", "arrondissement", "codesPostaux",
 *                    "anciensCodes", "chefLieu", "commune", ...}]
 *   with type commune-actuelle, commune-deleguee, commune-associee or
 *   arrondissement-municipal; a delegated commune may carry the code of the commune that
 *   absorbed it, so codes are unique only among commune-actuelle entries.
 * Entries may carry fields added by later versions of the package: they are ignored; the
 * document's own top level is strict.
 *
 * Cost: one pass over each array, codes looked up in open-addressing hash tables, so a
 * national import (35,000 communes, 1,255 EPCI) is dominated by the JSON parse. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"
#include "tenancy/tenancy.h"
#include "tenancy/tenancy_int.h"

#define MU_IMPORT_POPULATION_MAX 100000000
/* Département codes as small integers: "01".."99" -> 1..99, "2A"/"2B" -> 100/101,
 * three digits -> 102 + value. */
#define MU_DEPT_SLOTS (102 + 1000)

static const char *const import_keys[] = {"parent_id", "departements", "epci",
                                          "communes",  "dry_run",      NULL};

/* ---- code -> index hash table ---------------------------------------------------- */

struct code_map {
    const char **keys; /* borrowed from the JSON tree */
    int *vals;
    size_t mask;
};

static uint64_t hash_code(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void map_init(struct code_map *m, size_t n)
{
    size_t cap = 64;
    while (cap < 2 * n)
        cap *= 2;
    m->keys = mu_xcalloc(cap, sizeof *m->keys);
    m->vals = mu_xcalloc(cap, sizeof *m->vals);
    m->mask = cap - 1;
}

static void map_free(struct code_map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Inserts key -> val unless key is there; returns the value already stored, or -1.
 * The table is sized for every insertion at init, so it never fills. */
static int map_put(struct code_map *m, const char *key, int val)
{
    for (size_t i = hash_code(key) & m->mask;; i = (i + 1) & m->mask) {
        if (!m->keys[i]) {
            m->keys[i] = key;
            m->vals[i] = val;
            return -1;
        }
        if (strcmp(m->keys[i], key) == 0)
            return m->vals[i];
    }
}

static int map_get(const struct code_map *m, const char *key)
{
    for (size_t i = hash_code(key) & m->mask; m->keys[i]; i = (i + 1) & m->mask)
        if (strcmp(m->keys[i], key) == 0)
            return m->vals[i];
    return -1;
}

/* ---- planning state ---------------------------------------------------------------- */

struct commune_rec {
    const cJSON *obj;
    const char *code;
    int index;             /* position in the communes array */
    int epci;              /* plan index of the EPCI that lists it, -1: none */
    const char *lost_epci; /* code of a rejected EPCI that lists it, or NULL */
    const char *epci_code; /* code of the EPCI that lists it, for messages */
};

struct planner {
    struct mu_import_plan *p;
    size_t cap_entries, cap_rejects;
    bool all_depts;
    bool depts[MU_DEPT_SLOTS];
    struct commune_rec *communes;
    size_t ncommunes;
    struct code_map commune_map; /* INSEE code -> index in communes */
    struct code_map siren_map;   /* SIREN -> plan index, over planned entries */
};

static int dept_slot(const char *d)
{
    if (!d)
        return -1;
    size_t n = strlen(d);
    if (n == 2 && d[0] == '2' && (d[1] == 'A' || d[1] == 'B'))
        return 100 + (d[1] - 'A');
    if (n != 2 && n != 3)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9')
            return -1;
        v = v * 10 + (d[i] - '0');
    }
    return n == 2 ? v : 102 + v;
}

static bool dept_wanted(const struct planner *pl, const char *d)
{
    if (pl->all_depts)
        return true;
    int s = dept_slot(d);
    return s >= 0 && pl->depts[s];
}

static const cJSON *field(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *str_field(const cJSON *obj, const char *key)
{
    const cJSON *it = field(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Some versions of the package describe the communes of the overseas collectivities
 * (975, 977, 978, 986-988) with "collectiviteOutremer": {"code", "nom"} instead of
 * departement and region; the collectivity is then both. */
static const char *com_code(const cJSON *obj)
{
    const cJSON *com = field(obj, "collectiviteOutremer");
    return cJSON_IsObject(com) ? str_field(com, "code") : NULL;
}

/* The département a commune entry belongs to: its "departement" field, or the prefix of
 * its INSEE code. */
static const char *commune_dept(const cJSON *obj, const char *code, char buf[4])
{
    const char *d = obj ? str_field(obj, "departement") : NULL;
    if (!d && obj)
        d = com_code(obj);
    if (d)
        return d;
    return mu_tenancy_insee_dept(code, buf) ? buf : NULL;
}

static void add_reject(struct planner *pl, const char *key, const char *fmt, ...) MU_PRINTF(3, 4);

static void add_reject(struct planner *pl, const char *key, const char *fmt, ...)
{
    struct mu_import_plan *p = pl->p;
    if (p->nrejects == pl->cap_rejects) {
        pl->cap_rejects = pl->cap_rejects ? 2 * pl->cap_rejects : 16;
        p->rejects = mu_xrealloc(p->rejects, pl->cap_rejects * sizeof *p->rejects);
    }
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *reason = mu_xmalloc(n > 0 ? (size_t)n + 1 : 1);
    vsnprintf(reason, n > 0 ? (size_t)n + 1 : 1, fmt, ap2);
    va_end(ap2);
    char shown[48];
    p->rejects[p->nrejects].key = mu_xstrdup(mu_tenancy_show(key, shown));
    p->rejects[p->nrejects].reason = reason;
    p->nrejects++;
}

/* Takes ownership of t's strings. Returns the plan index. */
static int add_entry(struct planner *pl, struct mu_tenant *t, int parent_index)
{
    struct mu_import_plan *p = pl->p;
    if (p->n == pl->cap_entries) {
        pl->cap_entries = pl->cap_entries ? 2 * pl->cap_entries : 64;
        p->entries = mu_xrealloc(p->entries, pl->cap_entries * sizeof *p->entries);
    }
    p->entries[p->n].t = *t;
    p->entries[p->n].parent_index = parent_index;
    memset(t, 0, sizeof *t);
    return (int)p->n++;
}

/* "population" style fields: absent or null -> -1. 0, or -1 when not a valid count. */
static int read_population(const cJSON *node, int64_t *ret)
{
    if (!node || cJSON_IsNull(node)) {
        *ret = -1;
        return 0;
    }
    return mu_json_int_value(node, 0, MU_IMPORT_POPULATION_MAX, ret) == 0 ? 0 : -1;
}

/* A display label for messages: "EPCI 200072676 (CC Maine Saosnois)". */
static void label(char *out, size_t outlen, const char *what, const char *code, const char *nom)
{
    char c[48];
    mu_tenancy_show(code, c);
    if (nom && mu_name_valid(nom, 200))
        snprintf(out, outlen, "%s %s (%s)", what, c, nom);
    else
        snprintf(out, outlen, "%s %s", what, c);
}

/* ---- communes.json: index the current communes --------------------------------------- */

static void index_communes(struct planner *pl, const cJSON *communes)
{
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, communes) n++;
    pl->communes = mu_xcalloc(n ? n : 1, sizeof *pl->communes);
    map_init(&pl->commune_map, n);

    int i = -1;
    cJSON_ArrayForEach(e, communes)
    {
        i++;
        char key[32];
        snprintf(key, sizeof key, "communes#%d", i);
        if (!cJSON_IsObject(e)) {
            add_reject(pl, key, "entry #%d of communes is not an object", i);
            continue;
        }
        const char *type = str_field(e, "type");
        const char *code = str_field(e, "code");
        if (!type) {
            add_reject(pl, code ? code : key,
                       "entry #%d of communes has no type (commune-actuelle, "
                       "commune-deleguee, commune-associee or arrondissement-municipal)",
                       i);
            continue;
        }
        /* Delegated and associated communes and municipal arrondissements are parts of a
         * current commune, not members of the tree. */
        if (strcmp(type, "commune-actuelle") != 0) {
            pl->p->skipped++;
            continue;
        }
        if (!code) {
            add_reject(pl, key, "entry #%d of communes (commune-actuelle) has no code", i);
            continue;
        }
        int first = map_put(&pl->commune_map, code, (int)pl->ncommunes);
        if (first >= 0) {
            char l[300];
            label(l, sizeof l, "commune", code, str_field(e, "nom"));
            add_reject(pl, code,
                       "%s: the INSEE code appears twice among the current communes "
                       "(entries #%d and #%d); the first is kept",
                       l, pl->communes[first].index, i);
            continue;
        }
        struct commune_rec *c = &pl->communes[pl->ncommunes++];
        c->obj = e;
        c->code = code;
        c->index = i;
        c->epci = -1;
    }
}

/* ---- epci.json ------------------------------------------------------------------------- */

/* The département (or région) shared by all members found, copied into out; NULL if they
 * span several or none is known. */
static const char *members_common(const struct planner *pl, const cJSON *membres, const char *key,
                                  bool (*valid)(const char *), char out[8])
{
    bool found = false;
    const cJSON *m;
    cJSON_ArrayForEach(m, membres)
    {
        const char *code = cJSON_IsObject(m) ? str_field(m, "code") : NULL;
        int ci = code ? map_get(&pl->commune_map, code) : -1;
        if (ci < 0)
            continue;
        char buf[4];
        const char *v = strcmp(key, "departement") == 0
                            ? commune_dept(pl->communes[ci].obj, code, buf)
                            : str_field(pl->communes[ci].obj, key);
        if (!v || strlen(v) >= 8 || !valid(v))
            continue;
        if (!found) {
            snprintf(out, 8, "%s", v);
            found = true;
        } else if (strcmp(out, v) != 0) {
            return NULL;
        }
    }
    return found ? out : NULL;
}

static bool epci_in_scope(const struct planner *pl, const cJSON *membres)
{
    if (pl->all_depts)
        return true;
    const cJSON *m;
    cJSON_ArrayForEach(m, membres)
    {
        const char *code = cJSON_IsObject(m) ? str_field(m, "code") : NULL;
        if (!code)
            continue;
        int ci = map_get(&pl->commune_map, code);
        char buf[4];
        if (dept_wanted(pl, commune_dept(ci >= 0 ? pl->communes[ci].obj : NULL, code, buf)))
            return true;
    }
    return false;
}

/* Validates one taken EPCI and plans it. Returns its plan index, or -1 if rejected. */
static int plan_epci(struct planner *pl, const cJSON *e, const char *code, const cJSON *membres)
{
    const char *nom = str_field(e, "nom");
    const char *form = str_field(e, "type");
    char l[300], v[48];
    label(l, sizeof l, "EPCI", code, nom);
    if (!nom) {
        add_reject(pl, code, "%s: nom (the EPCI's name) is missing or not a string", l);
        return -1;
    }
    if (!mu_epci_form_valid(form)) {
        add_reject(pl, code, "%s: type %s is not one of CC, CA, CU, METRO, MET69", l,
                   mu_tenancy_show(form, v));
        return -1;
    }
    struct mu_tenant t = {0};
    t.parent_id = pl->p->parent_id;
    const cJSON *pop = field(e, "populationMunicipale");
    if (!pop || cJSON_IsNull(pop))
        pop = field(e, "populationTotale");
    if (read_population(pop, &t.population) < 0) {
        add_reject(pl, code, "%s: population must be an integer between 0 and %d", l,
                   MU_IMPORT_POPULATION_MAX);
        return -1;
    }
    t.name = mu_xstrdup(nom);
    t.kind = mu_xstrdup("epci");
    t.epci_form = mu_xstrdup(form);
    t.siren = mu_xstrdup(code);
    t.status = mu_xstrdup("active");
    /* Département and région are attributes: set when every member shares them (89 EPCI
     * span several départements). */
    char common[8];
    t.dept = mu_xstrdup(members_common(pl, membres, "departement", mu_dept_valid, common));
    t.region = mu_xstrdup(members_common(pl, membres, "region", mu_region_valid, common));
    struct mu_err err = {0};
    if (mu_tenancy_check(&t, &err) < 0) {
        add_reject(pl, code, "%s: %s", l, err.detail);
        mu_tenancy_tenant_fini(&t);
        return -1;
    }
    int prev = map_get(&pl->siren_map, code);
    if (prev >= 0) {
        add_reject(pl, code, "%s: SIREN %s appears twice in epci; the first is kept", l,
                   mu_tenancy_show(code, v));
        mu_tenancy_tenant_fini(&t);
        return -1;
    }
    int idx = add_entry(pl, &t, -1);
    map_put(&pl->siren_map, pl->p->entries[idx].t.siren, idx);
    return idx;
}

/* Attaches the members of an EPCI (planned at plan_index, or rejected if -1). */
static void attach_members(struct planner *pl, const char *code, const char *nom,
                           const cJSON *membres, int plan_index)
{
    char l[300], v[48];
    label(l, sizeof l, "EPCI", code, nom);
    int k = -1;
    const cJSON *m;
    cJSON_ArrayForEach(m, membres)
    {
        k++;
        const char *mcode = cJSON_IsObject(m) ? str_field(m, "code") : NULL;
        if (!mcode) {
            if (plan_index >= 0)
                add_reject(pl, code, "%s: member #%d has no code (its INSEE code)", l, k);
            continue;
        }
        int ci = map_get(&pl->commune_map, mcode);
        if (ci < 0) {
            if (plan_index >= 0)
                add_reject(pl, mcode,
                           "%s lists member %s, which is not a current commune "
                           "(commune-actuelle) of communes: the member is left out",
                           l, mu_tenancy_show(mcode, v));
            continue;
        }
        struct commune_rec *c = &pl->communes[ci];
        if (plan_index < 0) {
            if (c->epci < 0 && !c->lost_epci)
                c->lost_epci = code;
            continue;
        }
        if (c->epci == plan_index)
            continue; /* listed twice by the same EPCI */
        if (c->epci >= 0) {
            add_reject(pl, mcode,
                       "commune %s is listed as a member of both EPCI %s and %s: it is "
                       "kept in %s",
                       mu_tenancy_show(mcode, v), c->epci_code, code, c->epci_code);
            continue;
        }
        c->epci = plan_index;
        c->epci_code = code;
        c->lost_epci = NULL;
    }
}

static void plan_epcis(struct planner *pl, const cJSON *epcis)
{
    int i = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, epcis)
    {
        i++;
        char key[32];
        snprintf(key, sizeof key, "epci#%d", i);
        if (!cJSON_IsObject(e)) {
            add_reject(pl, key, "entry #%d of epci is not an object", i);
            continue;
        }
        const char *code = str_field(e, "code");
        if (!code) {
            add_reject(pl, key, "entry #%d of epci has no code (the EPCI's SIREN)", i);
            continue;
        }
        const cJSON *membres = field(e, "membres");
        if (!cJSON_IsArray(membres)) {
            char l[300];
            label(l, sizeof l, "EPCI", code, str_field(e, "nom"));
            add_reject(pl, code, "%s: membres must be a list of {\"code\", \"siren\", \"nom\"}", l);
            continue;
        }
        if (!epci_in_scope(pl, membres)) {
            pl->p->skipped++;
            continue;
        }
        int idx = plan_epci(pl, e, code, membres);
        attach_members(pl, code, str_field(e, "nom"), membres, idx);
    }
}

/* ---- communes ---------------------------------------------------------------------------- */

static void plan_commune(struct planner *pl, const struct commune_rec *c)
{
    const cJSON *e = c->obj;
    const char *nom = str_field(e, "nom");
    const cJSON *siren = field(e, "siren");
    const char *key = cJSON_IsString(siren) ? siren->valuestring : c->code;
    char l[300];
    label(l, sizeof l, "commune", c->code, nom);

    if (c->epci < 0 && c->lost_epci) {
        char v[48];
        add_reject(pl, key, "%s: left out because its EPCI %s was rejected", l,
                   mu_tenancy_show(c->lost_epci, v));
        return;
    }
    if (c->epci < 0) {
        char buf[4];
        if (!dept_wanted(pl, commune_dept(e, c->code, buf))) {
            pl->p->skipped++;
            return;
        }
    }
    if (!nom) {
        add_reject(pl, key, "%s: nom (the commune's name) is missing or not a string", l);
        return;
    }
    if (siren && !cJSON_IsNull(siren) && !cJSON_IsString(siren)) {
        add_reject(pl, key, "%s: siren must be a string of 9 digits", l);
        return;
    }
    const cJSON *dept = field(e, "departement"), *region = field(e, "region");
    if ((dept && !cJSON_IsNull(dept) && !cJSON_IsString(dept)) ||
        (region && !cJSON_IsNull(region) && !cJSON_IsString(region))) {
        add_reject(pl, key, "%s: departement and region must be strings (\"01\", \"84\")", l);
        return;
    }
    struct mu_tenant t = {0};
    if (read_population(field(e, "population"), &t.population) < 0) {
        add_reject(pl, key, "%s: population must be an integer between 0 and %d", l,
                   MU_IMPORT_POPULATION_MAX);
        return;
    }
    t.parent_id = c->epci >= 0 ? 0 : pl->p->parent_id;
    t.name = mu_xstrdup(nom);
    t.kind = mu_xstrdup("commune");
    t.insee = mu_xstrdup(c->code);
    t.siren = mu_xstrdup(cJSON_IsString(siren) ? siren->valuestring : NULL);
    t.status = mu_xstrdup("active");
    t.region = mu_xstrdup(cJSON_IsString(region) ? region->valuestring : com_code(e));
    char prefix[4];
    if (cJSON_IsString(dept))
        t.dept = mu_xstrdup(dept->valuestring);
    else if (com_code(e))
        t.dept = mu_xstrdup(com_code(e));
    else if (mu_tenancy_insee_dept(c->code, prefix) && mu_dept_valid(prefix))
        t.dept = mu_xstrdup(prefix);

    struct mu_err err = {0};
    if (mu_tenancy_check(&t, &err) < 0) {
        add_reject(pl, key, "%s: %s", l, err.detail);
        mu_tenancy_tenant_fini(&t);
        return;
    }
    if (t.siren) {
        int prev = map_get(&pl->siren_map, t.siren);
        if (prev >= 0) {
            const struct mu_tenant *o = &pl->p->entries[prev].t;
            add_reject(pl, key, "%s: SIREN %s is already that of %s %s; the first is kept", l,
                       t.siren, o->kind, o->insee ? o->insee : o->siren);
            mu_tenancy_tenant_fini(&t);
            return;
        }
    }
    int idx = add_entry(pl, &t, c->epci);
    if (pl->p->entries[idx].t.siren)
        map_put(&pl->siren_map, pl->p->entries[idx].t.siren, idx);
}

/* ---- the document ------------------------------------------------------------------------ */

static int read_departements(struct planner *pl, const cJSON *doc, struct mu_err *err)
{
    const cJSON *arr = NULL;
    int r = mu_json_get_array(doc, "departements", false, &arr, err);
    if (r < 0)
        return r;
    pl->all_depts = arr == NULL;
    if (!arr)
        return 0;
    if (cJSON_GetArraySize(arr) == 0)
        return mu_err_setf(err, MU_EINVAL, "departements",
                           "departements is empty: list codes (\"01\", \"2A\", \"974\") or "
                           "leave the field out to import every département");
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, arr)
    {
        char v[48];
        if (!cJSON_IsString(d) || !mu_dept_valid(d->valuestring))
            return mu_err_setf(
                err, MU_EINVAL, "departements",
                "departements[%d] %s is not a département code (01-95, 2A, "
                "2B, 971-976, or 975, 977, 978, 984, 986-989)",
                i, cJSON_IsString(d) ? mu_tenancy_show(d->valuestring, v) : "(not a string)");
        pl->depts[dept_slot(d->valuestring)] = true;
        i++;
    }
    return 0;
}

int mu_import_plan_build(const char *body, size_t len, struct mu_import_plan **ret,
                         struct mu_err *err)
{
    struct planner pl;
    memset(&pl, 0, sizeof pl);
    pl.p = mu_xcalloc(1, sizeof *pl.p);
    const cJSON *epcis = NULL, *communes = NULL;
    int r;
    cJSON *doc = mu_json_parse(body, len, "import body", err);
    if (!doc) {
        r = err && err->code ? err->code : MU_EINVAL;
        goto out;
    }
    r = mu_json_expect_object(doc, import_keys, "import body", err);
    if (r == 0)
        r = mu_json_get_i64(doc, "parent_id", true, 1, INT64_MAX, &pl.p->parent_id, err);
    if (r == 0) {
        r = mu_json_get_bool(doc, "dry_run", false, &pl.p->dry_run, err);
        r = r > 0 ? 0 : r;
    }
    if (r == 0)
        r = read_departements(&pl, doc, err);
    if (r == 0) {
        r = mu_json_get_array(doc, "epci", false, &epcis, err);
        r = r > 0 ? 0 : r;
    }
    if (r == 0)
        r = mu_json_get_array(doc, "communes", true, &communes, err);
    if (r < 0)
        goto out;
    r = 0;

    index_communes(&pl, communes);
    size_t nepci = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, epcis) nepci++;
    map_init(&pl.siren_map, nepci + pl.ncommunes);
    /* EPCI first: communes name their EPCI by its index in the plan. */
    plan_epcis(&pl, epcis);
    for (size_t i = 0; i < pl.ncommunes; i++)
        plan_commune(&pl, &pl.communes[i]);

out:
    cJSON_Delete(doc);
    map_free(&pl.commune_map);
    map_free(&pl.siren_map);
    free(pl.communes);
    if (r < 0) {
        mu_import_plan_free(pl.p);
        return r;
    }
    *ret = pl.p;
    return 0;
}

void mu_import_plan_free(struct mu_import_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        mu_tenancy_tenant_fini(&p->entries[i].t);
    for (size_t i = 0; i < p->nrejects; i++) {
        free(p->rejects[i].key);
        free(p->rejects[i].reason);
    }
    free(p->entries);
    free(p->rejects);
    free(p);
}
