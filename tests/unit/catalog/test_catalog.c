/* catalog/catalog.c: the catalogue policy's strict parser (every refusal names the file,
 * line and column), the shipped policies/catalog.json, the approval rule, the probe
 * allow-list and the checks of a request's parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "mutualis/json.h"
#include "mutualis/util.h"

#ifndef MU_SOURCE_DIR
#define MU_SOURCE_DIR "."
#endif

/* A minimal valid item, with %s spliced in as extra members (text starting with ","). */
#define ITEM_HEAD                                                                                  \
    "{\"id\": \"site\", \"name\": {\"fr\": \"Site\", \"en\": \"Site\"},\n"                         \
    " \"description\": {\"fr\": \"D\", \"en\": \"D\"}, \"flavors\": [\"tiny\"],\n"                 \
    " \"image\": \"img\", \"networks\": {\"private\": true, \"public\": false},\n"                 \
    " \"ports\": [80], \"approval\": \"always\""

static struct mu_catalog *parse_ok(const char *text)
{
    struct mu_catalog *c = NULL;
    struct mu_err err = {0};
    int rc = mu_catalog_parse(text, strlen(text), "c.json", &c, &err);
    if (rc != 0)
        fail_msg("parse failed: %d %s", rc, err.detail);
    assert_non_null(c);
    return c;
}

static void parse_bad(const char *text, const char *want)
{
    struct mu_catalog *c = NULL;
    struct mu_err err = {0};
    int rc = mu_catalog_parse(text, strlen(text), "c.json", &c, &err);
    assert_int_equal(rc, MU_EINVAL);
    assert_null(c);
    if (!strstr(err.detail, want))
        fail_msg("detail \"%s\" lacks \"%s\"", err.detail, want);
}

static char *doc_with_item(const char *extra)
{
    return mu_xasprintf("{\"version\": 1, \"items\": [\n" ITEM_HEAD "%s}]}", extra);
}

static void test_shipped_policy(void **state)
{
    (void)state;
    struct mu_catalog *c = NULL;
    struct mu_err err = {0};
    if (mu_catalog_load(MU_SOURCE_DIR "/policies/catalog.json", &c, &err) != 0)
        fail_msg("shipped catalogue refused: %s", err.detail);
    static const char *const ids[] = {"website", "webmail", "ged", "citizen-portal", "vm"};
    assert_int_equal(c->n_items, MU_ARRAY_LEN(ids));
    for (size_t i = 0; i < MU_ARRAY_LEN(ids); i++) {
        const struct mu_catalog_item *it = mu_catalog_find(c, ids[i]);
        assert_non_null(it);
        assert_true(it->name.fr[0] && it->name.en[0] && it->description.fr[0]);
        assert_true(it->n_ports > 0 && it->n_flavors > 0);
    }
    const struct mu_catalog_item *web = mu_catalog_find(c, "website");
    assert_true(web->public_net && web->epci_admin_may_approve);
    assert_non_null(web->user_data);
    const struct mu_catalog_item *ged = mu_catalog_find(c, "ged");
    assert_int_equal(ged->approval, MU_CATALOG_APPROVE_ABOVE);
    assert_false(mu_catalog_needs_approval(ged, 2, 4096));
    assert_true(mu_catalog_needs_approval(ged, 3, 4096));
    assert_true(mu_catalog_needs_approval(ged, 2, 4097));
    assert_true(mu_catalog_needs_approval(web, 1, 64));
    assert_string_equal(c->provider_network, "public");
    assert_null(mu_catalog_find(c, "nope"));

    cJSON *j = mu_catalog_json(c);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    assert_int_equal(cJSON_GetArraySize(items), 5);
    const cJSON *p0 = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(items, 0), "parameters"), 0);
    static const char *const keys[] = {"name", "type", "label",      "help",   "required",
                                       "min",  "max",  "max_length", "choices"};
    for (size_t i = 0; i < MU_ARRAY_LEN(keys); i++)
        if (!cJSON_GetObjectItemCaseSensitive(p0, keys[i]))
            fail_msg("parameter lacks %s", keys[i]);
    cJSON_Delete(j);
    mu_catalog_free(c);
}

static void test_minimal_and_defaults(void **state)
{
    (void)state;
    MU_AUTOFREE char *text = doc_with_item("");
    struct mu_catalog *c = parse_ok(text);
    assert_int_equal(c->n_items, 1);
    assert_string_equal(c->private_cidr, "10.0.0.0/24");
    assert_int_equal(c->ready_deadline_ms, 600000);
    assert_null(c->items[0].user_data);
    assert_true(mu_catalog_probe_allowed(c, "10.1.2.3")); /* no allow-list: any address */
    assert_false(mu_catalog_probe_allowed(c, "10.1.2"));
    mu_catalog_free(c);

    c = parse_ok("{\"version\": 1, \"items\": [], \"readiness\": {\"deadline_s\": 5, "
                 "\"probe_networks\": [\"127.0.0.0/8\", \"192.0.2.0/24\"]}}");
    assert_int_equal(c->ready_deadline_ms, 5000);
    assert_true(mu_catalog_probe_allowed(c, "127.77.0.1"));
    assert_true(mu_catalog_probe_allowed(c, "192.0.2.200"));
    assert_false(mu_catalog_probe_allowed(c, "10.0.0.1"));
    assert_false(mu_catalog_probe_allowed(c, "192.0.3.1"));
    mu_catalog_free(c);
}

static void test_errors_point_at_the_source(void **state)
{
    (void)state;
    parse_bad("[]", "c.json: line 1, column 1: the catalogue must be a JSON object");
    parse_bad("{\"version\": 2, \"items\": []}", "line 1, column 13: version must be 1");
    parse_bad("{\"version\": 1}", "lacks \"items\"");
    parse_bad("{\"version\": 1, \"items\": [],\n  \"colour\": 1}",
              "line 2, column 3: unknown key \"colour\"");
    parse_bad("{\"version\": 1, \"items\": [], \"private_cidr\": \"10.0.0.1/24\"}",
              "line 1, column 45: private_cidr must be an IPv4 network");
    parse_bad("{\"version\": 1, \"items\": [], \"readiness\": {\"deadline_s\": 0}}",
              "line 1, column 57: readiness.deadline_s must be 1 to 86400 seconds");
    parse_bad("{\"version\": 1, \"items\": [], \"readiness\": {\"probe_networks\": [\"x\"]}}",
              "line 1, column 62: readiness.probe_networks holds IPv4 networks");
    /* syntax errors keep the strict layer's position */
    parse_bad("{\"version\": 1,\n \"items\": [}", "line 2, column 12");
    parse_bad("{\"version\": 1, \"version\": 1, \"items\": []}", "duplicate key");

    static const struct {
        const char *extra, *want;
    } cases[] = {
        {",\n \"ports\": [0]",
         "line 6, column 12: item \"site\".ports holds integers from 1 to 65535"},
        {",\n \"approval\": \"sometimes\"", "line 6, column 14: item \"site\".approval must be"},
        {",\n \"approval\": {\"above\": {\"disk\": 3}}",
         "line 6, column 25: unknown key \"disk\" in item \"site\".approval.above"},
        {",\n \"epci_admin_may_approve\": 1", "line 6, column 28: item \"site\".epci_admin_may_"},
        {",\n \"extra\": true", "line 6, column 2: unknown key \"extra\" in item \"site\""},
        {",\n \"parameters\": [{\"name\": \"Domain\", \"type\": \"domain\"}]",
         "line 6, column 26: item \"site\".parameters[0].name must be 1-32 characters"},
        {",\n \"parameters\": [{\"name\": \"d\", \"type\": \"url\"}]",
         "line 6, column 39: item \"site\".parameters[0].type must be one of"},
        {",\n \"parameters\": [{\"name\": \"d\", \"type\": \"domain\"}]",
         "line 6, column 17: item \"site\".parameters[0] lacks \"label\""},
        {",\n \"parameters\": [{\"name\": \"n\", \"type\": \"integer\", \"min\": 1, "
         "\"label\": {\"fr\": \"N\", \"en\": \"N\"}}]",
         "give both \"min\" and \"max\""},
        {",\n \"parameters\": [{\"name\": \"n\", \"type\": \"string\", "
         "\"label\": {\"fr\": \"N\", \"en\": \"N\"}}]",
         "is a string: give its \"max_length\""},
        {",\n \"parameters\": [{\"name\": \"n\", \"type\": \"enum\", \"choices\": [\"a\", \"a\"], "
         "\"label\": {\"fr\": \"N\", \"en\": \"N\"}}]",
         "choices lists \"a\" twice"},
        {",\n \"parameters\": [{\"name\": \"n\", \"type\": \"string\", \"max_length\": 5, "
         "\"label\": {\"fr\": \"N\"}}]",
         "needs both \"fr\" and \"en\""},
        {",\n \"user_data\": {\"a\": {\"$param\": \"nope\"}}",
         "line 6, column 21: placeholder names unknown parameter \"nope\""},
        {",\n \"user_data\": {\"$include\": \"/etc/shadow\"}",
         "line 6, column 16: unknown template form \"$include\""},
        {",\n \"user_data\": [1]",
         "line 6, column 15: item \"site\".user_data must be a JSON object"},
        {",\n \"parameters\": [{\"name\": \"n\", \"type\": \"integer\", \"min\": 1, \"max\": 2, "
         "\"label\": {\"fr\": \"N\", \"en\": \"N\"}}],\n"
         " \"user_data\": {\"a\": {\"$param\": \"n\", \"type\": \"string\"}}",
         "line 7, column 21: placeholder of \"n\" must have type \"integer\""},
        {",\n \"parameters\": [{\"name\": \"n\", \"type\": \"integer\", \"min\": 1, \"max\": 2, "
         "\"label\": {\"fr\": \"N\", \"en\": \"N\"}}],\n"
         " \"user_data\": {\"a\": {\"$concat\": [\"x\", {\"$param\": \"n\"}]}}",
         "\"$concat\" takes strings and string parameters only"},
        {",\n \"networks\": {\"private\": false, \"public\": false}", "needs at least one network"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        /* drop the head's own key when the case redefines it */
        MU_AUTOFREE char *text = doc_with_item(cases[i].extra);
        char *dup = strstr(text, "\"ports\": [80], ");
        if (strstr(cases[i].extra, "\"ports\"") && dup)
            memmove(dup, dup + 15, strlen(dup + 15) + 1);
        dup = strstr(text, ", \"approval\": \"always\"");
        if (strstr(cases[i].extra, "\"approval\"") && dup)
            memmove(dup, dup + 22, strlen(dup + 22) + 1);
        dup = strstr(text, " \"networks\": {\"private\": true, \"public\": false},\n");
        if (strstr(cases[i].extra, "\"networks\"") && dup)
            memmove(dup, dup + 48, strlen(dup + 48) + 1);
        parse_bad(text, cases[i].want);
    }
    /* a public item needs the provider network's name */
    MU_AUTOFREE char *pub = mu_xasprintf("{\"version\": 1, \"items\": [\n" ITEM_HEAD "}]}");
    char *n = strstr(pub, "\"public\": false");
    memcpy(n, "\"public\": true ", 15);
    parse_bad(pub, "name the provider network");
    /* an item defined twice */
    MU_AUTOFREE char *twice =
        mu_xasprintf("{\"version\": 1, \"items\": [\n" ITEM_HEAD "},\n" ITEM_HEAD "}]}");
    parse_bad(twice, "line 6, column 1: item \"site\" is defined twice");
}

static struct mu_catalog *params_catalog(void)
{
    MU_AUTOFREE char *text = doc_with_item(
        ",\n \"parameters\": ["
        "{\"name\": \"domain\", \"type\": \"domain\", \"required\": true, \"label\": {\"fr\": "
        "\"D\", "
        "\"en\": \"D\"}},"
        "{\"name\": \"mail\", \"type\": \"email\", \"label\": {\"fr\": \"M\", \"en\": \"M\"}},"
        "{\"name\": \"size\", \"type\": \"integer\", \"min\": 1, \"max\": 10, \"label\": {\"fr\": "
        "\"S\", \"en\": \"S\"}},"
        "{\"name\": \"theme\", \"type\": \"enum\", \"choices\": [\"clair\", \"sombre\"], "
        "\"label\": {\"fr\": \"T\", \"en\": \"T\"}},"
        "{\"name\": \"title\", \"type\": \"string\", \"max_length\": 5, \"label\": {\"fr\": \"T\", "
        "\"en\": \"T\"}}]");
    return parse_ok(text);
}

/* Checks params (JSON text); returns the fields at fault joined by spaces (caller frees). */
static char *check(const struct mu_catalog_item *it, const char *params_json, cJSON **ret_clean)
{
    cJSON *params = params_json ? cJSON_Parse(params_json) : NULL;
    cJSON *errors = cJSON_CreateArray(), *e;
    cJSON *clean = NULL;
    size_t n = mu_catalog_check_params(it, params, errors, &clean);
    struct mu_buf b;
    mu_buf_init(&b);
    assert_int_equal((size_t)cJSON_GetArraySize(errors), n);
    cJSON_ArrayForEach(e, errors)
    {
        const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "detail"));
        assert_true(d && d[0]);
        mu_buf_printf(&b, "%s%s", b.len ? " " : "",
                      cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "field")));
    }
    if (n == 0 && ret_clean)
        *ret_clean = clean;
    else
        cJSON_Delete(clean);
    cJSON_Delete(params);
    cJSON_Delete(errors);
    return b.data ? mu_buf_steal(&b) : mu_xstrdup("");
}

static void test_params(void **state)
{
    (void)state;
    struct mu_catalog *c = params_catalog();
    const struct mu_catalog_item *it = &c->items[0];
    static const struct {
        const char *params, *fields;
    } cases[] = {
        {"{\"domain\": \"mairie.fr\"}", ""},
        {"{\"domain\": \"Mairie-X.FR\", \"mail\": \"a.b@mairie-x.fr\", \"size\": 10, "
         "\"theme\": \"sombre\", \"title\": \"Été!\"}",
         ""},
        {NULL, "parameters.domain"},
        {"{}", "parameters.domain"},
        {"{\"domain\": null}", "parameters.domain"},
        {"[1]", "parameters"},
        {"{\"domain\": \"mairie.fr\", \"colour\": \"red\"}", "parameters.colour"},
        {"{\"domain\": \"mairie.fr\", \"bad key\\n\": 1}", "parameters"},
        {"{\"domain\": \"mairie\"}", "parameters.domain"},
        {"{\"domain\": \"-mairie.fr\"}", "parameters.domain"},
        {"{\"domain\": \"mairie-.fr\"}", "parameters.domain"},
        {"{\"domain\": \"mairie..fr\"}", "parameters.domain"},
        {"{\"domain\": \"10.0.0.1\"}", "parameters.domain"},
        {"{\"domain\": \"mairie.fr\\nruncmd: [reboot]\"}", "parameters.domain"},
        {"{\"domain\": 3}", "parameters.domain"},
        {"{\"domain\": \"mairie.fr\", \"mail\": \"no-at-sign\"}", "parameters.mail"},
        {"{\"domain\": \"mairie.fr\", \"mail\": \"a@b\\nruncmd:\"}", "parameters.mail"},
        {"{\"domain\": \"mairie.fr\", \"size\": 0}", "parameters.size"},
        {"{\"domain\": \"mairie.fr\", \"size\": 11}", "parameters.size"},
        {"{\"domain\": \"mairie.fr\", \"size\": 2.5}", "parameters.size"},
        {"{\"domain\": \"mairie.fr\", \"size\": \"3\"}", "parameters.size"},
        {"{\"domain\": \"mairie.fr\", \"size\": true}", "parameters.size"},
        {"{\"domain\": \"mairie.fr\", \"theme\": \"rose\"}", "parameters.theme"},
        {"{\"domain\": \"mairie.fr\", \"title\": \"abcdef\"}", "parameters.title"},
        {"{\"domain\": \"mairie.fr\", \"title\": \"a\\nb\"}", "parameters.title"},
        {"{\"domain\": \"mairie.fr\", \"title\": \"a\\tb\"}", "parameters.title"},
        {"{\"size\": 99, \"theme\": 1}", "parameters.size parameters.theme parameters.domain"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        MU_AUTOFREE char *got = check(it, cases[i].params, NULL);
        if (strcmp(got, cases[i].fields) != 0)
            fail_msg("case %zu (%s): fields \"%s\", expected \"%s\"", i,
                     cases[i].params ? cases[i].params : "NULL", got, cases[i].fields);
    }
    /* the clean object: domain folded, integers as numbers */
    cJSON *clean = NULL;
    MU_AUTOFREE char *none =
        check(it, "{\"domain\": \"WWW.Mairie.FR\", \"size\": 3, \"title\": \"Été\"}", &clean);
    assert_string_equal(none, "");
    MU_AUTOFREE char *txt = mu_json_print(clean);
    assert_string_equal(txt, "{\"domain\":\"www.mairie.fr\",\"size\":3,\"title\":\"Été\"}");
    cJSON_Delete(clean);
    /* the unknown-name error lists the item's parameters */
    cJSON *errors = cJSON_CreateArray();
    cJSON *p = cJSON_Parse("{\"domain\": \"a.fr\", \"colour\": 1}");
    assert_int_equal(mu_catalog_check_params(it, p, errors, &clean), 1);
    const char *d = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(errors, 0), "detail"));
    assert_non_null(strstr(d, "domain, mail, size, theme, title"));
    cJSON_Delete(p);
    cJSON_Delete(errors);
    mu_catalog_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_policy),
        cmocka_unit_test(test_minimal_and_defaults),
        cmocka_unit_test(test_errors_point_at_the_source),
        cmocka_unit_test(test_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
