/* tenancy/tenant.c: kinds and forms, the create and PATCH bodies with every cross-field
 * rule, and the API object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "tenancy/tenancy.h"

static cJSON *parse(const char *text)
{
    struct mu_err err = {0};
    cJSON *j = mu_json_parse(text, strlen(text), "test", &err);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, err.detail);
    return j;
}

static void create_ok(const char *text, struct mu_tenant *t)
{
    cJSON *j = parse(text);
    struct mu_err err = {0};
    int r = mu_tenancy_from_create(j, t, &err);
    cJSON_Delete(j);
    if (r != 0)
        fail_msg("create refused %s: %s: %s", text, err.field, err.detail);
}

/* Expects a refusal naming field, with needle in the detail (if not NULL). */
static void create_bad(const char *text, const char *field, const char *needle)
{
    cJSON *j = parse(text);
    struct mu_err err = {0};
    struct mu_tenant t;
    memset(&t, 0x5a, sizeof t); /* garbage in: must be left cleared */
    int r = mu_tenancy_from_create(j, &t, &err);
    cJSON_Delete(j);
    if (r != MU_EINVAL)
        fail_msg("create accepted %s", text);
    assert_int_equal(err.code, MU_EINVAL);
    if (strcmp(err.field, field) != 0)
        fail_msg("%s: field %s, expected %s (%s)", text, err.field, field, err.detail);
    if (needle && !strstr(err.detail, needle))
        fail_msg("%s: detail \"%s\" lacks \"%s\"", text, err.detail, needle);
    assert_null(t.name);
    assert_null(t.kind);
    assert_null(t.status);
    assert_int_equal(t.parent_id, 0);
}

static void test_lists(void **state)
{
    (void)state;
    const char *kinds[] = {"syndicat", "epci", "commune", "departement", "other"};
    for (size_t i = 0; i < MU_ARRAY_LEN(kinds); i++)
        assert_true(mu_tenant_kind_valid(kinds[i]));
    assert_false(mu_tenant_kind_valid("region"));
    assert_false(mu_tenant_kind_valid("EPCI"));
    assert_false(mu_tenant_kind_valid(""));
    assert_false(mu_tenant_kind_valid(NULL));
    assert_true(mu_tenant_status_valid("active"));
    assert_true(mu_tenant_status_valid("suspended"));
    assert_true(mu_tenant_status_valid("archived"));
    assert_false(mu_tenant_status_valid("deleted"));
    assert_false(mu_tenant_status_valid(NULL));
    const char *forms[] = {"CC", "CA", "CU", "METRO", "MET69"};
    for (size_t i = 0; i < MU_ARRAY_LEN(forms); i++)
        assert_true(mu_epci_form_valid(forms[i]));
    assert_false(mu_epci_form_valid("cc"));
    assert_false(mu_epci_form_valid("SIVU"));
    assert_false(mu_epci_form_valid("EPT"));
    assert_false(mu_epci_form_valid(NULL));
}

static void test_create_minimal(void **state)
{
    (void)state;
    struct mu_tenant t;
    create_ok("{\"name\": \"Syndicat Numérique de l'Ain\", \"kind\": \"syndicat\"}", &t);
    assert_string_equal(t.name, "Syndicat Numérique de l'Ain");
    assert_string_equal(t.kind, "syndicat");
    assert_string_equal(t.status, "active");
    assert_int_equal(t.parent_id, 0);
    assert_int_equal(t.population, -1);
    assert_null(t.epci_form);
    assert_null(t.siren);
    assert_null(t.insee);
    assert_null(t.dept);
    assert_null(t.region);
    assert_null(t.contact_name);
    assert_null(t.contact_email);
    assert_null(t.contact_phone);
    mu_tenant_clear(&t);

    create_ok("{\"name\": \"Racine\", \"kind\": \"other\", \"parent_id\": null, \"siren\": null,"
              " \"population\": null, \"contact\": null}",
              &t);
    assert_int_equal(t.parent_id, 0);
    assert_null(t.siren);
    assert_int_equal(t.population, -1);
    mu_tenant_clear(&t);
}

static void test_create_full_commune(void **state)
{
    (void)state;
    struct mu_tenant t;
    create_ok("{\"parent_id\": 3, \"name\": \"Saint-Étienne\", \"kind\": \"commune\","
              " \"siren\": \"214202186\", \"insee\": \"42218\", \"departement\": \"42\","
              " \"region\": \"84\", \"population\": 171924, \"status\": \"suspended\","
              " \"contact\": {\"name\": \"Service numérique\", \"email\": \"dsi@example.fr\","
              " \"phone\": \"+33 4 77 00 00 00\"}}",
              &t);
    assert_int_equal(t.parent_id, 3);
    assert_string_equal(t.name, "Saint-Étienne");
    assert_string_equal(t.kind, "commune");
    assert_string_equal(t.siren, "214202186");
    assert_string_equal(t.insee, "42218");
    assert_string_equal(t.dept, "42");
    assert_string_equal(t.region, "84");
    assert_int_equal(t.population, 171924);
    assert_string_equal(t.status, "suspended");
    assert_string_equal(t.contact_name, "Service numérique");
    assert_string_equal(t.contact_email, "dsi@example.fr");
    assert_string_equal(t.contact_phone, "+33 4 77 00 00 00");
    mu_tenant_clear(&t);
}

static void test_create_epci_forms(void **state)
{
    (void)state;
    const char *forms[] = {"CC", "CA", "CU", "METRO", "MET69"};
    for (size_t i = 0; i < MU_ARRAY_LEN(forms); i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"name\": \"EPCI\", \"kind\": \"epci\", \"epci_form\": \"%s\","
                 " \"siren\": \"200046977\"}",
                 forms[i]);
        struct mu_tenant t;
        create_ok(body, &t);
        assert_string_equal(t.epci_form, forms[i]);
        mu_tenant_clear(&t);
    }
    create_bad("{\"name\": \"CC\", \"kind\": \"epci\"}", "epci_form", "required");
    create_bad("{\"name\": \"CC\", \"kind\": \"epci\", \"epci_form\": null}", "epci_form",
               "required");
    create_bad("{\"name\": \"CC\", \"kind\": \"epci\", \"epci_form\": \"SIVU\"}", "epci_form",
               "SIVU");
    create_bad("{\"name\": \"CC\", \"kind\": \"epci\", \"epci_form\": 1}", "epci_form", NULL);
    create_bad("{\"name\": \"Bey\", \"kind\": \"commune\", \"insee\": \"01042\","
               " \"epci_form\": \"CC\"}",
               "epci_form", "only for tenants of kind epci");
    create_bad("{\"name\": \"S\", \"kind\": \"syndicat\", \"epci_form\": \"CA\"}", "epci_form",
               NULL);
}

static void test_create_insee_rules(void **state)
{
    (void)state;
    struct mu_tenant t;
    create_bad("{\"name\": \"Bey\", \"kind\": \"commune\"}", "insee", "required");
    create_bad("{\"name\": \"CC\", \"kind\": \"epci\", \"epci_form\": \"CC\","
               " \"insee\": \"01042\"}",
               "insee", "only for tenants of kind commune");
    create_bad("{\"name\": \"Ain\", \"kind\": \"departement\", \"insee\": \"01042\"}", "insee",
               NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"commune\", \"insee\": \"20004\"}", "insee",
               "20004 is not a valid INSEE commune code");
    create_bad("{\"name\": \"X\", \"kind\": \"commune\", \"insee\": \"1042\"}", "insee", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"commune\", \"insee\": 1042}", "insee", NULL);

    /* The département, when given, is the INSEE code's prefix. */
    create_ok("{\"name\": \"Ajaccio\", \"kind\": \"commune\", \"insee\": \"2A004\","
              " \"departement\": \"2A\", \"region\": \"94\"}",
              &t);
    assert_string_equal(t.dept, "2A");
    mu_tenant_clear(&t);
    create_bad("{\"name\": \"Ajaccio\", \"kind\": \"commune\", \"insee\": \"2A004\","
               " \"departement\": \"2B\"}",
               "departement", "departement 2B does not match the INSEE code 2A004");
    create_bad("{\"name\": \"Ajaccio\", \"kind\": \"commune\", \"insee\": \"2A004\","
               " \"departement\": \"20\"}",
               "departement", "not a valid département code");
    create_ok("{\"name\": \"Saint-Denis\", \"kind\": \"commune\", \"insee\": \"97411\","
              " \"departement\": \"974\"}",
              &t);
    mu_tenant_clear(&t);
    create_bad("{\"name\": \"Saint-Denis\", \"kind\": \"commune\", \"insee\": \"97411\","
               " \"departement\": \"97\"}",
               "departement", NULL);
    create_bad("{\"name\": \"Saint-Denis\", \"kind\": \"commune\", \"insee\": \"97411\","
               " \"departement\": \"971\"}",
               "departement", "whose département is 974");
    create_ok("{\"name\": \"Saint-Pierre\", \"kind\": \"commune\", \"insee\": \"97502\","
              " \"departement\": \"975\", \"region\": \"975\"}",
              &t);
    assert_null(t.siren);
    mu_tenant_clear(&t);
    create_ok("{\"name\": \"Nouméa\", \"kind\": \"commune\", \"insee\": \"98818\","
              " \"departement\": \"988\"}",
              &t);
    mu_tenant_clear(&t);
    create_bad("{\"name\": \"Bey\", \"kind\": \"commune\", \"insee\": \"01042\","
               " \"departement\": \"02\"}",
               "departement", NULL);
    /* A département without an INSEE code is only checked for form. */
    create_ok("{\"name\": \"Ain\", \"kind\": \"departement\", \"departement\": \"01\"}", &t);
    mu_tenant_clear(&t);
}

static void test_create_values(void **state)
{
    (void)state;
    struct mu_tenant t;
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"siren\": \"123456789\"}", "siren",
               "siren 123456789 is not a valid SIREN (9 digits with a Luhn check digit)");
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"siren\": \"20004697\"}", "siren", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"siren\": 200046977}", "siren", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"region\": \"8\"}", "region",
               "region 8 is not a valid région code");
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"departement\": \"00\"}", "departement",
               NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"population\": -1}", "population", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"population\": 100000001}", "population",
               NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"population\": 12.5}", "population",
               NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"population\": \"12\"}", "population",
               NULL);
    create_ok("{\"name\": \"X\", \"kind\": \"syndicat\", \"population\": 100000000}", &t);
    assert_int_equal(t.population, 100000000);
    mu_tenant_clear(&t);
    create_ok("{\"name\": \"X\", \"kind\": \"syndicat\", \"population\": 0}", &t);
    assert_int_equal(t.population, 0);
    mu_tenant_clear(&t);

    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"status\": \"deleted\"}", "status",
               "active, suspended, archived");
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"status\": null}", "status", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"region\"}", "kind", "syndicat, epci");
    create_bad("{\"name\": \"X\"}", "kind", NULL);
    create_bad("{\"name\": \"X\", \"kind\": null}", "kind", NULL);
    create_bad("{\"kind\": \"syndicat\"}", "name", NULL);
    create_bad("{\"name\": null, \"kind\": \"syndicat\"}", "name", NULL);
    create_bad("{\"name\": \"\", \"kind\": \"syndicat\"}", "name", NULL);
    create_bad("{\"name\": \" X\", \"kind\": \"syndicat\"}", "name", NULL);
    create_bad("{\"name\": \"A\\u0007B\", \"kind\": \"syndicat\"}", "name", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"parent_id\": 0}", "parent_id", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"parent_id\": \"3\"}", "parent_id",
               NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"colour\": \"red\"}", "colour", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"syndicat\", \"id\": 4}", "id", NULL);

    /* 200 bytes of name pass, 201 do not; accents count in bytes. */
    char body[512], name[256];
    memset(name, 'a', 200);
    name[200] = '\0';
    snprintf(body, sizeof body, "{\"name\": \"%s\", \"kind\": \"other\"}", name);
    create_ok(body, &t);
    assert_int_equal(strlen(t.name), 200);
    mu_tenant_clear(&t);
    memcpy(name + 198, "\xc3\xa9", 3); /* 199 a's... then é: 201 bytes */
    name[197] = 'a';
    snprintf(body, sizeof body, "{\"name\": \"%sa\", \"kind\": \"other\"}", name);
    create_bad(body, "name", "200");
}

static void test_create_contact(void **state)
{
    (void)state;
    struct mu_tenant t;
    create_ok("{\"name\": \"X\", \"kind\": \"other\", \"contact\": {\"email\": \"a@b.fr\"}}", &t);
    assert_string_equal(t.contact_email, "a@b.fr");
    assert_null(t.contact_name);
    assert_null(t.contact_phone);
    mu_tenant_clear(&t);
    create_ok("{\"name\": \"X\", \"kind\": \"other\", \"contact\": {\"name\": null,"
              " \"phone\": \"04.72.00.00.00\"}}",
              &t);
    assert_string_equal(t.contact_phone, "04.72.00.00.00");
    mu_tenant_clear(&t);
    create_bad("{\"name\": \"X\", \"kind\": \"other\", \"contact\": {\"email\": \"nope\"}}",
               "contact.email", "nope is not a valid e-mail address");
    create_bad("{\"name\": \"X\", \"kind\": \"other\", \"contact\": {\"phone\": \"call me\"}}",
               "contact.phone", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"other\", \"contact\": {\"name\": \"\"}}",
               "contact.name", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"other\", \"contact\": {\"email\": 3}}",
               "contact.email", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"other\", \"contact\": {\"fax\": \"01\"}}",
               "contact.fax", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"other\", \"contact\": \"a@b.fr\"}", "contact", NULL);
    create_bad("{\"name\": \"X\", \"kind\": \"other\", \"contact\": []}", "contact", NULL);
}

static void test_create_not_object(void **state)
{
    (void)state;
    const char *bodies[] = {"[]", "null", "\"x\"", "3"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bodies); i++) {
        cJSON *j = parse(bodies[i]);
        struct mu_tenant t;
        struct mu_err err = {0};
        assert_int_equal(mu_tenancy_from_create(j, &t, &err), MU_EINVAL);
        assert_null(t.name);
        cJSON_Delete(j);
    }
}

/* ---- PATCH -------------------------------------------------------------------------- */

static void stored_commune(struct mu_tenant *t)
{
    create_ok("{\"parent_id\": 9, \"name\": \"Bey\", \"kind\": \"commune\", \"insee\": \"01042\","
              " \"siren\": \"210100426\", \"departement\": \"01\", \"region\": \"84\","
              " \"population\": 290, \"contact\": {\"name\": \"Mairie\","
              " \"email\": \"mairie@bey.fr\", \"phone\": \"03 85 00 00 00\"}}",
              t);
    t->id = 42;
    t->depth = 2;
    t->created_ms = 1000;
    t->updated_ms = 2000;
}

static int patch(struct mu_tenant *t, const char *text, struct mu_err *err)
{
    cJSON *j = parse(text);
    int r = mu_tenancy_apply_patch(j, t, err);
    cJSON_Delete(j);
    return r;
}

static void patch_ok(struct mu_tenant *t, const char *text)
{
    struct mu_err err = {0};
    if (patch(t, text, &err) != 0)
        fail_msg("patch refused %s: %s: %s", text, err.field, err.detail);
}

/* A refused PATCH names the field and leaves the tenant as it was. */
static void patch_bad(const char *text, const char *field, const char *needle)
{
    struct mu_tenant t;
    stored_commune(&t);
    struct mu_err err = {0};
    if (patch(&t, text, &err) != MU_EINVAL)
        fail_msg("patch accepted %s", text);
    if (strcmp(err.field, field) != 0)
        fail_msg("%s: field %s, expected %s (%s)", text, err.field, field, err.detail);
    if (needle && !strstr(err.detail, needle))
        fail_msg("%s: detail \"%s\" lacks \"%s\"", text, err.detail, needle);
    assert_string_equal(t.name, "Bey");
    assert_string_equal(t.insee, "01042");
    assert_string_equal(t.siren, "210100426");
    assert_string_equal(t.dept, "01");
    assert_string_equal(t.contact_email, "mairie@bey.fr");
    assert_int_equal(t.population, 290);
    assert_int_equal(t.id, 42);
    mu_tenant_clear(&t);
}

static void test_patch(void **state)
{
    (void)state;
    struct mu_tenant t;
    stored_commune(&t);
    patch_ok(&t, "{}");
    assert_string_equal(t.name, "Bey");

    patch_ok(&t, "{\"name\": \"Bey-sur-Saône\", \"population\": 300, \"status\": \"archived\","
                 " \"kind\": \"commune\"}");
    assert_string_equal(t.name, "Bey-sur-Saône");
    assert_int_equal(t.population, 300);
    assert_string_equal(t.status, "archived");
    /* Untouched: id, parent, depth, times, other fields. */
    assert_int_equal(t.id, 42);
    assert_int_equal(t.parent_id, 9);
    assert_int_equal(t.depth, 2);
    assert_int_equal(t.created_ms, 1000);
    assert_string_equal(t.insee, "01042");

    /* null clears the optional fields. */
    patch_ok(&t, "{\"siren\": null, \"region\": null, \"departement\": null,"
                 " \"population\": null}");
    assert_null(t.siren);
    assert_null(t.region);
    assert_null(t.dept);
    assert_int_equal(t.population, -1);

    /* contact merges field by field; null clears one, or all. */
    patch_ok(&t, "{\"contact\": {\"phone\": null, \"email\": \"dgs@bey.fr\"}}");
    assert_string_equal(t.contact_name, "Mairie");
    assert_string_equal(t.contact_email, "dgs@bey.fr");
    assert_null(t.contact_phone);
    patch_ok(&t, "{\"contact\": null}");
    assert_null(t.contact_name);
    assert_null(t.contact_email);

    /* A new INSEE code and a matching département together. */
    patch_ok(&t, "{\"insee\": \"2B033\", \"departement\": \"2B\"}");
    assert_string_equal(t.insee, "2B033");
    assert_string_equal(t.dept, "2B");
    mu_tenant_clear(&t);

    patch_bad("{\"kind\": \"epci\"}", "kind", "kind cannot change");
    patch_bad("{\"kind\": 3}", "kind", NULL);
    patch_bad("{\"parent_id\": 3}", "parent_id", "move");
    patch_bad("{\"parent_id\": null}", "parent_id", NULL);
    patch_bad("{\"id\": 43}", "id", NULL);
    patch_bad("{\"name\": null}", "name", NULL);
    patch_bad("{\"name\": \"\"}", "name", NULL);
    patch_bad("{\"status\": null}", "status", NULL);
    patch_bad("{\"siren\": \"210100427\"}", "siren", "Luhn");
    /* Cross-field rules are re-checked on the result. */
    patch_bad("{\"insee\": null}", "insee", "required");
    patch_bad("{\"insee\": \"2A004\"}", "departement", "does not match");
    patch_bad("{\"departement\": \"69\"}", "departement", "does not match");
    patch_bad("{\"epci_form\": \"CC\"}", "epci_form", "only for tenants of kind epci");
    patch_bad("{\"contact\": {\"email\": \"x\"}}", "contact.email", NULL);
    patch_bad("{\"contact\": {\"mail\": \"x@y.fr\"}}", "contact.mail", NULL);
    /* A failure after a valid field leaves that field unapplied too. */
    patch_bad("{\"name\": \"Autre\", \"population\": -5}", "population", NULL);
}

static void test_patch_epci(void **state)
{
    (void)state;
    struct mu_tenant t;
    create_ok("{\"name\": \"CC Bresse\", \"kind\": \"epci\", \"epci_form\": \"CC\"}", &t);
    patch_ok(&t, "{\"epci_form\": \"CA\"}");
    assert_string_equal(t.epci_form, "CA");
    struct mu_err err = {0};
    assert_int_equal(patch(&t, "{\"epci_form\": null}", &err), MU_EINVAL);
    assert_string_equal(err.field, "epci_form");
    assert_string_equal(t.epci_form, "CA");
    memset(&err, 0, sizeof err);
    assert_int_equal(patch(&t, "{\"insee\": \"01042\"}", &err), MU_EINVAL);
    assert_string_equal(err.field, "insee");
    mu_tenant_clear(&t);
}

/* ---- JSON form ------------------------------------------------------------------------- */

static void test_to_json(void **state)
{
    (void)state;
    struct mu_tenant t;
    stored_commune(&t);
    cJSON *o = mu_tenancy_to_json(&t);
    char *s = mu_json_print(o);
    cJSON_Delete(o);
    o = parse(s);
    free(s);
    static const char *const keys[] = {"id",        "parent_id",  "name",      "kind",
                                       "epci_form", "siren",      "insee",     "departement",
                                       "region",    "population", "contact",   "status",
                                       "depth",     "created_at", "updated_at"};
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, o) n++;
    assert_int_equal(n, MU_ARRAY_LEN(keys));
    for (size_t i = 0; i < MU_ARRAY_LEN(keys); i++)
        assert_non_null(cJSON_GetObjectItemCaseSensitive(o, keys[i]));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "id")->valuedouble, 42);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "parent_id")->valuedouble, 9);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "name")->valuestring, "Bey");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "kind")->valuestring, "commune");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "epci_form")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "siren")->valuestring, "210100426");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "insee")->valuestring, "01042");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "departement")->valuestring, "01");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "region")->valuestring, "84");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "population")->valuedouble, 290);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "status")->valuestring, "active");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "depth")->valuedouble, 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "created_at")->valuestring,
                        "1970-01-01T00:00:01.000Z");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "updated_at")->valuestring,
                        "1970-01-01T00:00:02.000Z");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "contact");
    assert_true(cJSON_IsObject(c));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring, "Mairie");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "email")->valuestring, "mairie@bey.fr");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "phone")->valuestring,
                        "03 85 00 00 00");
    cJSON_Delete(o);
    mu_tenant_clear(&t);

    /* Absent values are null; a root has a null parent_id. */
    create_ok("{\"name\": \"Racine\", \"kind\": \"syndicat\"}", &t);
    o = mu_tenancy_to_json(&t);
    const char *nulls[] = {"parent_id", "epci_form",  "siren",      "insee",     "departement",
                           "region",    "population", "created_at", "updated_at"};
    for (size_t i = 0; i < MU_ARRAY_LEN(nulls); i++)
        if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, nulls[i])))
            fail_msg("%s is not null", nulls[i]);
    c = cJSON_GetObjectItemCaseSensitive(o, "contact");
    assert_true(cJSON_IsObject(c));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(c, "email")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "depth")->valuedouble, 0);
    cJSON_Delete(o);
    mu_tenant_clear(&t);
}

/* What the API writes can be sent back as a create body once the read-only keys are
 * removed. */
static void test_round_trip(void **state)
{
    (void)state;
    struct mu_tenant t, u;
    stored_commune(&t);
    cJSON *o = mu_tenancy_to_json(&t);
    const char *ro[] = {"id", "depth", "created_at", "updated_at"};
    for (size_t i = 0; i < MU_ARRAY_LEN(ro); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(o, ro[i]);
    struct mu_err err = {0};
    assert_int_equal(mu_tenancy_from_create(o, &u, &err), 0);
    assert_string_equal(u.name, t.name);
    assert_string_equal(u.insee, t.insee);
    assert_string_equal(u.contact_phone, t.contact_phone);
    assert_int_equal(u.parent_id, t.parent_id);
    assert_int_equal(u.population, t.population);
    cJSON_Delete(o);
    mu_tenant_clear(&t);
    mu_tenant_clear(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_create_minimal),
        cmocka_unit_test(test_create_full_commune),
        cmocka_unit_test(test_create_epci_forms),
        cmocka_unit_test(test_create_insee_rules),
        cmocka_unit_test(test_create_values),
        cmocka_unit_test(test_create_contact),
        cmocka_unit_test(test_create_not_object),
        cmocka_unit_test(test_patch),
        cmocka_unit_test(test_patch_epci),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
