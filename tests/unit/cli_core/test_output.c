/* What the CLI prints: display widths of accented and wide text, safe cells, aligned tables,
 * field lists and pretty JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli.h"

static cJSON *parse(const char *text)
{
    cJSON *doc = cJSON_Parse(text);
    assert_non_null(doc);
    return doc;
}

static void test_width(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t w;
    } cases[] = {
        {"", 0},
        {"abc", 3},
        {"Saint-Étienne", 13},
        {"L'Haÿ-les-Roses", 15},
        {"Œuvre", 5},
        {"e\xCC\x81", 1},                /* e + combining acute */
        {"\xE6\x9D\xB1\xE4\xBA\xAC", 4}, /* 東京 */
        {"a\xFF"
         "b",
         3},                 /* invalid byte shown as '?' */
        {"\xC3", 1},         /* truncated sequence */
        {"\xE2\x80\xA6", 1}, /* … */
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        size_t w = mu_cli_utf8_width(cases[i].s);
        if (w != cases[i].w)
            fail_msg("width of case %zu is %zu, want %zu", i, w, cases[i].w);
    }
}

static void test_cell_text(void **state)
{
    (void)state;
    cJSON *doc = parse("{\"n\":null,\"t\":true,\"f\":false,\"i\":171924,\"neg\":-3,\"d\":1.5,"
                       "\"s\":\"Saint-\\u00c9tienne\",\"esc\":\"a\\u001b[31mb\\nc\","
                       "\"bidi\":\"x\\u202ey\",\"o\":{\"k\":[1]}}");
    static const struct {
        const char *key;
        const char *want;
    } cases[] = {
        {"n", "-"},
        {"t", "yes"},
        {"f", "no"},
        {"i", "171924"},
        {"neg", "-3"},
        {"d", "1.5"},
        {"s", "Saint-Étienne"},
        {"esc", "a?[31mb?c"},
        {"bidi", "x?y"},
        {"o", "{\"k\":[1]}"},
        {"absent", "-"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        char *t = mu_cli_cell_text(cJSON_GetObjectItemCaseSensitive(doc, cases[i].key));
        if (strcmp(t, cases[i].want) != 0)
            fail_msg("cell %s = \"%s\", want \"%s\"", cases[i].key, t, cases[i].want);
        free(t);
    }
    cJSON_Delete(doc);
}

static void test_table(void **state)
{
    (void)state;
    static const struct mu_cli_col cols[] = {
        {"ID", "id", 0},
        {"NAME", "name", 0},
        {"EMAIL", "contact.email", 0},
        {"NOTE", "note", 6},
    };
    cJSON *items = parse("[{\"id\":3,\"name\":\"Saint-\\u00c9tienne\",\"contact\":{\"email\":"
                         "\"a@b.fr\"},\"note\":\"short\"},"
                         "{\"id\":12,\"name\":\"\\u6771\\u4eac\",\"contact\":null,"
                         "\"note\":\"much too long\"}]");
    struct mu_buf b;
    mu_buf_init(&b);
    mu_cli_table_render(&b, cols, MU_ARRAY_LEN(cols), items);
    assert_string_equal(b.data, "ID  NAME           EMAIL   NOTE\n"
                                "3   Saint-Étienne  a@b.fr  short\n"
                                "12  東京           -       much …\n");
    mu_buf_free(&b);

    cJSON *empty = parse("[]");
    mu_cli_table_render(&b, cols, MU_ARRAY_LEN(cols), empty);
    assert_string_equal(b.data, "ID  NAME  EMAIL  NOTE\n");
    mu_buf_free(&b);
    cJSON_Delete(empty);
    cJSON_Delete(items);
}

static void test_fields(void **state)
{
    (void)state;
    static const struct mu_cli_col cols[] = {
        {"id", "id", 0},
        {"contact email", "contact.email", 0},
        {"status", "status", 0},
    };
    cJSON *obj = parse("{\"id\":3,\"contact\":{\"email\":\"a@b.fr\"}}");
    struct mu_buf b;
    mu_buf_init(&b);
    mu_cli_fields_render(&b, cols, MU_ARRAY_LEN(cols), obj);
    assert_string_equal(b.data, "id:             3\n"
                                "contact email:  a@b.fr\n"
                                "status:         -\n");
    mu_buf_free(&b);
    cJSON_Delete(obj);
}

static void test_json(void **state)
{
    (void)state;
    cJSON *doc = parse("{\"items\":[{\"id\":1,\"name\":\"Saint-\\u00c9tienne \\\"x\\\"\\t\","
                       "\"ok\":true,\"n\":null,\"d\":0.1,\"e\":{},\"a\":[]}],\"next_after\":null}");
    struct mu_buf b;
    mu_buf_init(&b);
    mu_cli_json_render(&b, doc);
    assert_string_equal(b.data, "{\n"
                                "  \"items\": [\n"
                                "    {\n"
                                "      \"id\": 1,\n"
                                "      \"name\": \"Saint-Étienne \\\"x\\\"\\t\",\n"
                                "      \"ok\": true,\n"
                                "      \"n\": null,\n"
                                "      \"d\": 0.1,\n"
                                "      \"e\": {},\n"
                                "      \"a\": []\n"
                                "    }\n"
                                "  ],\n"
                                "  \"next_after\": null\n"
                                "}\n");
    /* the output parses back to the same tree */
    cJSON *again = cJSON_Parse(b.data);
    assert_true(cJSON_Compare(doc, again, true));
    cJSON_Delete(again);
    mu_buf_free(&b);
    cJSON_Delete(doc);
}

static void check_gib(int64_t mib, const char *want)
{
    char *got = mu_cli_gib_text(mib);
    if (strcmp(got, want) != 0)
        fail_msg("%lld MiB shown as \"%s\", want \"%s\"", (long long)mib, got, want);
    free(got);
}

static void test_gib(void **state)
{
    (void)state;
    check_gib(0, "0");
    check_gib(1024, "1");
    check_gib(65536, "64");
    check_gib(1536, "1.5");
    check_gib(256, "0.25");
    check_gib(100, "0.1");
    check_gib(4 << 20, "4096");
}

static void check_labels(const char *json, const char *want)
{
    cJSON *doc = json ? parse(json) : NULL;
    char *got = mu_cli_labels_text(doc);
    if (strcmp(got, want) != 0)
        fail_msg("labels %s shown as \"%s\", want \"%s\"", json ? json : "(none)", got, want);
    free(got);
    cJSON_Delete(doc);
}

static void test_labels(void **state)
{
    (void)state;
    check_labels("{\"site\":\"paris-1\",\"zone\":\"a\"}", "site=paris-1, zone=a");
    check_labels("[\"site=paris-1\",\"zone=a\"]", "site=paris-1, zone=a");
    check_labels("{}", "-");
    check_labels("[]", "-");
    check_labels(NULL, "-");
    /* a hostile server cannot drive the terminal */
    check_labels("{\"a\\u001b[2J\":\"b\\u001b\"}", "a?[2J=b?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gib),   cmocka_unit_test(test_labels),
        cmocka_unit_test(test_width), cmocka_unit_test(test_cell_text),
        cmocka_unit_test(test_table), cmocka_unit_test(test_fields),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
