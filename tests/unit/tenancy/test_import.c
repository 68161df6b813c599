/* tenancy/import.c: the COG import planner, on the sample files of tests/data/cog/ (in the
 * format of @etalab/decoupage-administratif) and on small inline documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mutualis/util.h"
#include "tenancy/tenancy.h"

#ifndef MU_SOURCE_DIR
#define MU_SOURCE_DIR "."
#endif

static char *read_sample(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/cog/%s", MU_SOURCE_DIR, name);
    size_t len;
    char *s = mu_read_file(path, 1 << 20, &len);
    if (!s)
        fail_msg("cannot read %s", path);
    return s;
}

/* The import body as a client sends it: the two files embedded in one object.
 * depts is the JSON text of the departements field, or NULL to leave it out. */
static char *sample_body(const char *depts, bool dry_run)
{
    char *epci = read_sample("epci.json");
    char *communes = read_sample("communes.json");
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_puts(&b, "{\"parent_id\": 1, ");
    if (depts)
        mu_buf_printf(&b, "\"departements\": %s, ", depts);
    mu_buf_printf(&b, "\"dry_run\": %s, \"epci\": %s, \"communes\": %s}",
                  dry_run ? "true" : "false", epci, communes);
    free(epci);
    free(communes);
    return mu_buf_steal(&b);
}

static struct mu_import_plan *plan_of(const char *body)
{
    struct mu_import_plan *p = NULL;
    struct mu_err err = {0};
    int r = mu_import_plan_build(body, strlen(body), &p, &err);
    if (r != 0)
        fail_msg("plan failed: %d %s: %s", r, err.field, err.detail);
    assert_non_null(p);
    return p;
}

static struct mu_import_plan *plan_sample(const char *depts)
{
    char *body = sample_body(depts, false);
    struct mu_import_plan *p = plan_of(body);
    free(body);
    return p;
}

/* Index of the planned entry with that INSEE code (communes) or SIREN (EPCI), or -1. */
static int find(const struct mu_import_plan *p, const char *code)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct mu_tenant *t = &p->entries[i].t;
        if ((t->insee && strcmp(t->insee, code) == 0) ||
            (!t->insee && t->siren && strcmp(t->siren, code) == 0))
            return (int)i;
    }
    return -1;
}

static const struct mu_import_reject *find_reject(const struct mu_import_plan *p, const char *key)
{
    for (size_t i = 0; i < p->nrejects; i++)
        if (strcmp(p->rejects[i].key, key) == 0)
            return &p->rejects[i];
    return NULL;
}

static void assert_under(const struct mu_import_plan *p, const char *code, const char *epci)
{
    int i = find(p, code);
    if (i < 0)
        fail_msg("%s is not planned", code);
    if (epci) {
        int e = find(p, epci);
        assert_true(e >= 0);
        assert_int_equal(p->entries[i].parent_index, e);
        assert_true(e < i); /* EPCI come before their communes */
    } else {
        assert_int_equal(p->entries[i].parent_index, -1);
        assert_int_equal(p->entries[i].t.parent_id, p->parent_id);
    }
}

static void test_sample_all(void **state)
{
    (void)state;
    struct mu_import_plan *p = plan_sample(NULL);
    assert_int_equal(p->parent_id, 1);
    assert_false(p->dry_run);
    /* 3 EPCI, 13 current communes of which one has a bad SIREN. */
    assert_int_equal(p->n, 15);
    assert_int_equal(p->nrejects, 2);
    /* 2 delegated communes, 1 associated commune, 1 municipal arrondissement. */
    assert_int_equal(p->skipped, 4);

    /* EPCI first, children of the parent. */
    for (int i = 0; i < 3; i++) {
        assert_string_equal(p->entries[i].t.kind, "epci");
        assert_int_equal(p->entries[i].parent_index, -1);
        assert_int_equal(p->entries[i].t.parent_id, 1);
    }
    for (size_t i = 3; i < p->n; i++)
        assert_string_equal(p->entries[i].t.kind, "commune");

    int lyon = find(p, "200046977");
    assert_true(lyon >= 0);
    const struct mu_tenant *m = &p->entries[lyon].t;
    assert_string_equal(m->name, "Métropole de Lyon");
    assert_string_equal(m->epci_form, "MET69");
    assert_string_equal(m->siren, "200046977");
    assert_null(m->insee);
    assert_string_equal(m->dept, "69");
    assert_string_equal(m->region, "84");
    assert_int_equal(m->population, 1411571);
    assert_string_equal(m->status, "active");

    /* The CC spans 01 and 71 (régions 84 and 27): neither is set on it. */
    const struct mu_tenant *cc = &p->entries[find(p, "200042497")].t;
    assert_string_equal(cc->epci_form, "CC");
    assert_null(cc->dept);
    assert_null(cc->region);

    assert_under(p, "69123", "200046977");
    assert_under(p, "69266", "200046977");
    assert_under(p, "69029", "200046977");
    assert_under(p, "01042", "200042497");
    assert_under(p, "01015", "200042497");
    assert_under(p, "71270", "200042497");
    assert_under(p, "2A004", "242010056");
    assert_under(p, "2A006", "242010056");
    /* In no EPCI: straight under the parent. */
    assert_under(p, "2B033", NULL);
    assert_under(p, "85113", NULL);
    assert_under(p, "97501", NULL);
    assert_under(p, "97502", NULL);

    /* The delegated commune sharing 01015 did not replace the current one. */
    const struct mu_tenant *arboys = &p->entries[find(p, "01015")].t;
    assert_string_equal(arboys->name, "Arboys en Bugey");
    assert_string_equal(arboys->siren, "210100152");
    assert_int_equal(arboys->population, 652);
    assert_int_equal(find(p, "69381"), -1);
    assert_int_equal(find(p, "01110"), -1);

    /* Accents and apostrophes kept as UTF-8. */
    assert_string_equal(p->entries[find(p, "71270")].t.name, "Mâcon");
    assert_string_equal(p->entries[find(p, "85113")].t.name, "L'Île-d'Yeu");

    const struct mu_tenant *aj = &p->entries[find(p, "2A004")].t;
    assert_string_equal(aj->dept, "2A");
    assert_string_equal(aj->region, "94");
    assert_string_equal(aj->insee, "2A004");

    /* Saint-Pierre-et-Miquelon: no SIREN in the file, keyed by its INSEE code. */
    const struct mu_tenant *sp = &p->entries[find(p, "97502")].t;
    assert_null(sp->siren);
    assert_string_equal(sp->dept, "975");
    assert_string_equal(sp->region, "975");
    assert_int_equal(sp->population, 5394);

    const struct mu_import_reject *bad = find_reject(p, "210100041");
    assert_non_null(bad);
    assert_non_null(strstr(bad->reason, "01004"));
    assert_non_null(strstr(bad->reason, "Ambérieu-en-Bugey"));
    assert_non_null(strstr(bad->reason, "210100041 is not a valid SIREN"));
    assert_non_null(strstr(bad->reason, "Luhn"));
    assert_int_equal(find(p, "01004"), -1);

    const struct mu_import_reject *gone = find_reject(p, "01999");
    assert_non_null(gone);
    assert_non_null(strstr(gone->reason, "200042497"));
    assert_non_null(strstr(gone->reason, "not a current commune"));
    mu_import_plan_free(p);
}

static void test_sample_departement_01(void **state)
{
    (void)state;
    struct mu_import_plan *p = plan_sample("[\"01\"]");
    /* The CC (members in 01) with all its members, Mâcon (71) included. */
    assert_int_equal(p->n, 4);
    assert_string_equal(p->entries[0].t.siren, "200042497");
    assert_under(p, "01042", "200042497");
    assert_under(p, "01015", "200042497");
    assert_under(p, "71270", "200042497");
    assert_int_equal(p->nrejects, 2);
    assert_non_null(find_reject(p, "210100041"));
    /* 4 non-current entries, 2 EPCI and 9 communes outside 01. */
    assert_int_equal(p->skipped, 15);
    assert_int_equal(find(p, "69123"), -1);
    assert_int_equal(find(p, "200046977"), -1);
    mu_import_plan_free(p);
}

static void test_sample_departement_71(void **state)
{
    (void)state;
    /* An EPCI is taken when any member lies in the départements. */
    struct mu_import_plan *p = plan_sample("[\"71\"]");
    assert_int_equal(p->n, 4);
    assert_under(p, "01042", "200042497");
    assert_under(p, "71270", "200042497");
    mu_import_plan_free(p);
}

static void test_sample_corsica_and_overseas(void **state)
{
    (void)state;
    struct mu_import_plan *p = plan_sample("[\"2A\"]");
    assert_int_equal(p->n, 3);
    assert_int_equal(p->nrejects, 0);
    assert_under(p, "2A004", "242010056");
    assert_under(p, "2A006", "242010056");
    assert_int_equal(find(p, "2B033"), -1);
    assert_string_equal(p->entries[0].t.dept, "2A");
    mu_import_plan_free(p);

    p = plan_sample("[\"2B\", \"975\"]");
    assert_int_equal(p->n, 3);
    assert_under(p, "2B033", NULL);
    assert_under(p, "97501", NULL);
    assert_under(p, "97502", NULL);
    mu_import_plan_free(p);

    p = plan_sample("[\"85\"]");
    assert_int_equal(p->n, 1);
    assert_under(p, "85113", NULL);
    mu_import_plan_free(p);
}

static void test_dry_run(void **state)
{
    (void)state;
    char *body = sample_body("[\"69\"]", true);
    struct mu_import_plan *p = plan_of(body);
    assert_true(p->dry_run);
    assert_int_equal(p->n, 4);
    free(body);
    mu_import_plan_free(p);
}

/* A malformed document fails as a whole, without a plan. */
static void expect_malformed(const char *body, const char *field)
{
    struct mu_import_plan *p = (struct mu_import_plan *)0x1;
    struct mu_err err = {0};
    int r = mu_import_plan_build(body, strlen(body), &p, &err);
    if (r != MU_EINVAL)
        fail_msg("expected MU_EINVAL for %s, got %d", body, r);
    assert_int_equal(err.code, MU_EINVAL);
    assert_true(err.detail[0] != '\0');
    assert_ptr_equal(p, (struct mu_import_plan *)0x1);
    if (field)
        assert_string_equal(err.field, field);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_malformed("", NULL);
    expect_malformed("[]", NULL);
    expect_malformed("{\"parent_id\": 1, \"communes\": []", NULL);
    expect_malformed("{\"parent_id\": 1, \"communes\": []} x", NULL);
    expect_malformed("{\"parent_id\": 1, \"communes\": {}}", "communes");
    expect_malformed("{\"parent_id\": 1}", "communes");
    expect_malformed("{\"parent_id\": 1, \"epci\": {}, \"communes\": []}", "epci");
    expect_malformed("{\"parent_id\": 1, \"epci\": \"x\", \"communes\": []}", "epci");
    expect_malformed("{\"communes\": []}", "parent_id");
    expect_malformed("{\"parent_id\": \"1\", \"communes\": []}", "parent_id");
    expect_malformed("{\"parent_id\": 0, \"communes\": []}", "parent_id");
    expect_malformed("{\"parent_id\": 1.5, \"communes\": []}", "parent_id");
    expect_malformed("{\"parent_id\": 1, \"dry_run\": 1, \"communes\": []}", "dry_run");
    expect_malformed("{\"parent_id\": 1, \"communes\": [], \"comunes\": []}", "comunes");
    expect_malformed("{\"parent_id\": 1, \"departements\": \"01\", \"communes\": []}",
                     "departements");
    expect_malformed("{\"parent_id\": 1, \"departements\": [], \"communes\": []}", "departements");
    expect_malformed("{\"parent_id\": 1, \"departements\": [\"20\"], \"communes\": []}",
                     "departements");
    expect_malformed("{\"parent_id\": 1, \"departements\": [1], \"communes\": []}", "departements");
    expect_malformed("{\"parent_id\": 1, \"parent_id\": 2, \"communes\": []}", NULL);
    /* Not NUL-terminated: the length is the limit. */
    const char buf[] = {'{', '}', 'x'};
    struct mu_import_plan *p = NULL;
    struct mu_err err = {0};
    assert_int_equal(mu_import_plan_build(buf, 2, &p, &err), MU_EINVAL);
    assert_null(p);
}

static void test_empty(void **state)
{
    (void)state;
    struct mu_import_plan *p = plan_of("{\"parent_id\": 7, \"communes\": []}");
    assert_int_equal(p->parent_id, 7);
    assert_int_equal(p->n, 0);
    assert_int_equal(p->nrejects, 0);
    assert_int_equal(p->skipped, 0);
    mu_import_plan_free(p);
    mu_import_plan_free(NULL);
}

#define C(code, nom, dept, siren)                                                                  \
    "{\"code\":\"" code "\",\"nom\":\"" nom                                                        \
    "\",\"type\":\"commune-actuelle\",\"departement\":\"" dept                                     \
    "\",\"region\":\"84\",\"siren\":" siren ",\"population\":10}"

static void test_entry_rejects(void **state)
{
    (void)state;
    const char *body =
        "{\"parent_id\": 3, \"epci\": ["
        /* #0 not an object */
        "42,"
        /* #1 no code */
        "{\"nom\": \"CC Sans Code\", \"type\": \"CC\", \"membres\": []},"
        /* #2 a syndicat, not an EPCI à fiscalité propre: rejected with its members */
        "{\"code\": \"200000172\", \"nom\": \"SIVU des Eaux\", \"type\": \"SIVU\","
        " \"membres\": [{\"code\": \"01001\"}]},"
        /* #3 bad SIREN */
        "{\"code\": \"200000173\", \"nom\": \"CC Fausse\", \"type\": \"CC\", \"membres\": []},"
        /* #4 good, with 01002 and 01003; an unknown member; a member with no code */
        "{\"code\": \"200000180\", \"nom\": \"CC Bonne\", \"type\": \"CC\", \"futur\": true,"
        " \"membres\": [{\"code\": \"01002\"}, {\"code\": \"01003\"}, {\"code\": \"01002\"},"
        " {\"siren\": \"1\"}]},"
        /* #5 good, also claims 01003 */
        "{\"code\": \"200000198\", \"nom\": \"CA Gourmande\", \"type\": \"CA\","
        " \"membres\": [{\"code\": \"01003\"}, {\"code\": \"01004\"}]},"
        /* #6 duplicate of #4 */
        "{\"code\": \"200000180\", \"nom\": \"CC Bonne bis\", \"type\": \"CC\", \"membres\": []},"
        /* #7 membres not a list */
        "{\"code\": \"200000206\", \"nom\": \"CC Liste\", \"type\": \"CC\", \"membres\": {}}"
        "], \"communes\": [" C("01001", "Un", "01", "\"210100012\"") "," C(
            "01002", "Deux", "01",
            "\"210100020\"") "," C("01003", "Trois", "01",
                                   "\"210100038\"") "," C("01004", "Quatre", "01",
                                                          "\"210100046\"") ","
        /* duplicate INSEE code */
        C("01004", "Quatre bis", "01", "\"210100053\"") ","
        /* duplicate SIREN (that of 01002) */
        C("01005", "Cinq", "01", "\"210100020\"") ","
        /* département not matching the code */
        C("01006", "Six", "02", "\"210100061\"") ","
        /* bad INSEE code */
        C("20006", "Sept", "20", "\"210100079\"") ","
        /* name with a control character */
        C("01008", "Hu\\u0001it", "01", "\"210100087\"") ","
        /* siren of the wrong type */
        C("01009", "Neuf", "01",
          "210100095") ","
                       /* no name */
                       "{\"code\":\"01010\",\"type\":\"commune-actuelle\",\"departement\":\"01\"},"
                       /* population out of range */
                       "{\"code\":\"01011\",\"nom\":\"Onze\",\"type\":\"commune-actuelle\","
                       "\"population\":-4},"
                       /* no code, no type, not an object */
                       "{\"nom\":\"Sans code\",\"type\":\"commune-actuelle\"},"
                       "{\"code\":\"01012\",\"nom\":\"Sans type\"},"
                       "\"01013\","
                       /* no département field: taken from the code; no siren: keyed by INSEE code
                        */
                       "{\"code\":\"01014\",\"nom\":\"Quatorze\",\"type\":\"commune-actuelle\"}"
                       "]}";
    struct mu_import_plan *p = plan_of(body);
    assert_int_equal(p->parent_id, 3);

    /* Planned: the two good EPCI, 01002, 01003 (in the first), 01004, 01014. */
    assert_int_equal(p->n, 6);
    assert_int_equal(find(p, "200000180"), 0);
    assert_int_equal(find(p, "200000198"), 1);
    assert_under(p, "01002", "200000180");
    assert_under(p, "01003", "200000180");
    assert_under(p, "01004", "200000198");
    assert_under(p, "01014", NULL);
    const struct mu_tenant *t14 = &p->entries[find(p, "01014")].t;
    assert_string_equal(t14->dept, "01");
    assert_null(t14->siren);
    assert_null(t14->region);
    assert_int_equal(t14->population, -1);

    static const struct {
        const char *key, *needle;
    } want[] = {
        {"epci#0", "not an object"},
        {"epci#1", "no code"},
        {"200000172", "type SIVU is not one of CC, CA, CU, METRO, MET69"},
        {"210100012", "EPCI 200000172 was rejected"},
        {"200000173", "200000173 is not a valid SIREN"},
        {"200000180", "appears twice"},
        {"200000206", "membres must be a list"},
        {"01003", "both EPCI 200000180 and 200000198"},
        {"200000180", "member #3 has no code"},
        {"01004", "appears twice among the current communes"},
        {"210100020", "already that of commune 01002"},
        {"210100061", "departement 02 does not match the INSEE code 01006"},
        {"210100079", "20006 is not a valid INSEE commune code"},
        {"210100087", "name must be"},
        {"01009", "siren must be a string"},
        {"01010", "nom (the commune's name) is missing"},
        {"01011", "population must be an integer"},
        {"communes#12", "has no code"},
        {"01012", "has no type"},
        {"communes#14", "not an object"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(want); i++) {
        bool seen = false;
        for (size_t j = 0; j < p->nrejects; j++)
            if (strcmp(p->rejects[j].key, want[i].key) == 0 &&
                strstr(p->rejects[j].reason, want[i].needle))
                seen = true;
        if (!seen) {
            for (size_t j = 0; j < p->nrejects; j++)
                fprintf(stderr, "  reject %s: %s\n", p->rejects[j].key, p->rejects[j].reason);
            fail_msg("no reject %s containing \"%s\"", want[i].key, want[i].needle);
        }
    }
    assert_int_equal(p->nrejects, MU_ARRAY_LEN(want));
    mu_import_plan_free(p);
}

static void test_outside_not_rejected(void **state)
{
    (void)state;
    /* Bad entries outside the requested départements are skipped, not reported. */
    const char *body = "{\"parent_id\": 1, \"departements\": [\"01\"], \"epci\": ["
                       "{\"code\": \"111111111\", \"nom\": \"CC Ailleurs\", \"type\": \"XX\","
                       " \"membres\": [{\"code\": \"02001\"}]}],"
                       " \"communes\": [" C("02001", "Loin", "02", "\"123456789\"") "," C(
                           "02002", "Loin aussi", "02",
                           "\"123456789\"") "," C("01001", "Ici", "01", "\"210100012\"") "]}";
    struct mu_import_plan *p = plan_of(body);
    assert_int_equal(p->n, 1);
    assert_int_equal(p->nrejects, 0);
    assert_int_equal(p->skipped, 3);
    assert_under(p, "01001", NULL);
    mu_import_plan_free(p);
}

static void test_epci_attributes(void **state)
{
    (void)state;
    /* Members without a departement field: the département comes from the INSEE code;
     * no région known, none set. Population falls back to populationTotale. */
    const char *body =
        "{\"parent_id\": 1, \"departements\": [\"2A\"], \"epci\": ["
        "{\"code\": \"242010056\", \"nom\": \"CA du Pays Ajaccien\","
        " \"type\": \"CA\", \"populationTotale\": 86424,"
        " \"membres\": [{\"code\": \"2A004\"}, {\"code\": \"2A006\"}]}],"
        " \"communes\": ["
        "{\"code\": \"2A004\", \"nom\": \"Ajaccio\", \"type\": \"commune-actuelle\"},"
        "{\"code\": \"2A006\", \"nom\": \"Afa\", \"type\": \"commune-actuelle\","
        " \"region\": \"94\"}]}";
    struct mu_import_plan *p = plan_of(body);
    assert_int_equal(p->n, 3);
    const struct mu_tenant *e = &p->entries[0].t;
    assert_string_equal(e->siren, "242010056");
    assert_string_equal(e->dept, "2A");
    assert_string_equal(e->region, "94");
    assert_int_equal(e->population, 86424);
    assert_string_equal(p->entries[find(p, "2A004")].t.dept, "2A");
    assert_null(p->entries[find(p, "2A004")].t.region);
    mu_import_plan_free(p);

    /* The older shape of overseas collectivities' communes. */
    p = plan_of(
        "{\"parent_id\": 1, \"departements\": [\"988\"], \"communes\": ["
        "{\"code\": \"98818\", \"nom\": \"Nouméa\", \"type\": \"commune-actuelle\","
        " \"collectiviteOutremer\": {\"code\": \"988\", \"nom\": \"Nouvelle-Calédonie\"}}]}");
    assert_int_equal(p->n, 1);
    assert_string_equal(p->entries[0].t.dept, "988");
    assert_string_equal(p->entries[0].t.region, "988");
    assert_string_equal(p->entries[0].t.name, "Nouméa");
    mu_import_plan_free(p);
}

/* A national-size document built in memory: 35,000 communes, 1,255 EPCI. Planning must
 * stay linear: this takes well under 2 s in a normal build. */
static char luhn_digit(const char *p8)
{
    int sum = 0;
    for (int i = 0; i < 8; i++) {
        int d = p8[7 - i] - '0';
        if (i % 2 == 0) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return (char)('0' + (10 - sum % 10) % 10);
}

static void test_national_scale(void **state)
{
    (void)state;
    enum { NEPCI = 1255, NCOM = 35000 };
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_puts(&b, "{\"parent_id\": 1, \"epci\": [");
    int per = NCOM / NEPCI; /* 27 members each; the rest in no EPCI */
    char code[6], siren[10];
    for (int e = 0; e < NEPCI; e++) {
        snprintf(siren, sizeof siren, "2000%04d", e);
        siren[8] = luhn_digit(siren);
        siren[9] = '\0';
        mu_buf_printf(&b,
                      "%s{\"code\":\"%s\",\"nom\":\"CC n°%d des Vallées\",\"type\":\"CC\","
                      "\"populationTotale\":%d,\"membres\":[",
                      e ? "," : "", siren, e, 1000 + e);
        for (int k = 0; k < per; k++) {
            int c = e * per + k;
            snprintf(code, sizeof code, "%02d%03d", 1 + c / 1000 % 95 + (c / 1000 % 95 >= 19),
                     c % 1000);
            mu_buf_printf(&b, "%s{\"code\":\"%s\",\"nom\":\"x\"}", k ? "," : "", code);
        }
        mu_buf_puts(&b, "]}");
    }
    mu_buf_puts(&b, "], \"communes\": [");
    for (int c = 0; c < NCOM; c++) {
        int d = 1 + c / 1000 % 95 + (c / 1000 % 95 >= 19);
        snprintf(code, sizeof code, "%02d%03d", d, c % 1000);
        snprintf(siren, sizeof siren, "21%02d%04d", d, c % 1000);
        siren[8] = luhn_digit(siren);
        siren[9] = '\0';
        mu_buf_printf(&b,
                      "%s{\"code\":\"%s\",\"nom\":\"Saint-Étienne-%d\",\"typeLiaison\":0,"
                      "\"zone\":\"metro\",\"departement\":\"%02d\",\"region\":\"84\","
                      "\"type\":\"commune-actuelle\",\"siren\":\"%s\",\"codesPostaux\":"
                      "[\"01000\"],\"population\":%d},"
                      "{\"code\":\"%s\",\"nom\":\"Déléguée\",\"type\":\"commune-deleguee\"}",
                      c ? "," : "", code, c, d, siren, c, code);
    }
    mu_buf_puts(&b, "]}");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct mu_import_plan *p = plan_of(b.data);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "national plan: %zu bytes, %zu entries, %.3f s\n", b.len, p->n, s);
    assert_int_equal(p->nrejects, 0);
    assert_int_equal(p->n, NEPCI + NCOM);
    assert_int_equal(p->skipped, NCOM);
    /* Speed is measured by the benchmark (tests/bench), never asserted here. */
    (void)s;
    mu_import_plan_free(p);
    mu_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_all),
        cmocka_unit_test(test_sample_departement_01),
        cmocka_unit_test(test_sample_departement_71),
        cmocka_unit_test(test_sample_corsica_and_overseas),
        cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_entry_rejects),
        cmocka_unit_test(test_outside_not_rejected),
        cmocka_unit_test(test_epci_attributes),
        cmocka_unit_test(test_national_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
