/* The CLI's flag parser: every bad argument is caught before any request. Also the small
 * parsers next to it: ids, audit heads, query strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const colors[] = {"red", "green", NULL};

static const struct mu_cli_opt opts[] = {
    {"--parent", MU_CLI_OPT_ID, "ID", "parent", false, NULL, 0, 0},
    {"--limit", MU_CLI_OPT_INT, "N", "limit", false, NULL, 1, 1000},
    {"--color", MU_CLI_OPT_CHOICE, "C", "color", false, colors, 0, 0},
    {"--since", MU_CLI_OPT_TIME, "T", "since", false, NULL, 0, 0},
    {"--dep", MU_CLI_OPT_LIST, "D", "dep", false, NULL, 0, 0},
    {"--all", MU_CLI_OPT_FLAG, NULL, "all", false, NULL, 0, 0},
    {"--name", MU_CLI_OPT_STR, "NAME", "name", false, NULL, 0, 0},
};

static const struct mu_cli_opt required_opts[] = {
    {"--name", MU_CLI_OPT_STR, "NAME", "name", true, NULL, 0, 0},
};

/* Parses a NULL-terminated word list; returns 0/-1, the message and the parse. */
static int parse(const struct mu_cli_opt *o, size_t n, const char **words, struct mu_cli *cli,
                 struct mu_cli_args *a, char *msg)
{
    int argc = 0;
    while (words[argc])
        argc++;
    return mu_cli_args_parse(o, n, argc, (char **)words, cli, a, msg, 256);
}

static void test_values(void **state)
{
    (void)state;
    const char *w[] = {"12",       "--parent",
                       "7",        "--limit=1000",
                       "--color",  "green",
                       "--since",  "2026-11-28T20:33:03Z",
                       "--dep",    "01",
                       "--dep=2A", "--all",
                       "--name",   "Saint-Étienne",
                       "--json",   "--url=https://x:1",
                       "--",       "--not-a-flag",
                       NULL};
    struct mu_cli cli = {0};
    struct mu_cli_args a;
    char msg[256];
    assert_int_equal(parse(opts, MU_ARRAY_LEN(opts), w, &cli, &a, msg), 0);
    assert_int_equal(mu_cli_arg(&a, "--parent")->num, 7);
    assert_int_equal(mu_cli_arg(&a, "--limit")->num, 1000);
    assert_string_equal(mu_cli_arg_str(&a, "--color"), "green");
    assert_string_equal(mu_cli_arg_str(&a, "--since"), "2026-11-28T20:33:03Z");
    const struct mu_cli_val *dep = mu_cli_arg(&a, "--dep");
    assert_int_equal(dep->nlist, 2);
    assert_string_equal(dep->list[0], "01");
    assert_string_equal(dep->list[1], "2A");
    assert_true(mu_cli_arg_set(&a, "--all"));
    assert_string_equal(mu_cli_arg_str(&a, "--name"), "Saint-Étienne");
    assert_true(cli.json);
    assert_string_equal(cli.url, "https://x:1");
    assert_false(cli.help);
    assert_int_equal(a.npos, 2);
    assert_string_equal(a.pos[0], "12");
    assert_string_equal(a.pos[1], "--not-a-flag");
    mu_cli_args_free(&a);

    const char *none[] = {NULL};
    assert_int_equal(parse(opts, MU_ARRAY_LEN(opts), none, &cli, &a, msg), 0);
    assert_false(mu_cli_arg_set(&a, "--parent"));
    assert_null(mu_cli_arg_str(&a, "--name"));
    assert_int_equal(a.npos, 0);
    mu_cli_args_free(&a);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *words[4];
        const char *msg;
    } cases[] = {
        {{"--bogus", NULL}, "unknown flag '--bogus'"},
        {{"--parent", NULL}, "--parent needs a value"},
        {{"--parent", "--all", NULL}, "--parent needs a value"},
        {{"--parent", "abc", NULL}, "--parent must be a positive integer id, not 'abc'"},
        {{"--parent", "0", NULL}, "--parent must be a positive integer id, not '0'"},
        {{"--parent", "-3", NULL}, "--parent must be a positive integer id, not '-3'"},
        {{"--parent", "12x", NULL}, "--parent must be a positive integer id, not '12x'"},
        {{"--parent", "99999999999999999999", NULL},
         "--parent must be a positive integer id, not '99999999999999999999'"},
        {{"--limit", "1001", NULL}, "--limit must be an integer between 1 and 1000, not '1001'"},
        {{"--color", "blue", NULL}, "--color must be one of: red, green (not 'blue')"},
        {{"--since", "yesterday", NULL},
         "--since must be an RFC 3339 UTC time such as 2026-11-28T20:33:03Z, not 'yesterday'"},
        {{"--name=", NULL}, "--name needs a non-empty NAME"},
        {{"--name", "", NULL}, "--name needs a non-empty NAME"},
        {{"--all=yes", NULL}, "--all takes no value"},
        {{"--name", "a", "--name=b", NULL}, "--name given twice"},
        {{"--json", "--json", NULL}, "--json given twice"},
        {{"--url", NULL}, "--url needs a value"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        struct mu_cli cli = {0};
        struct mu_cli_args a;
        char msg[256];
        const char *w[5] = {cases[i].words[0], cases[i].words[1], cases[i].words[2],
                            cases[i].words[3], NULL};
        if (parse(opts, MU_ARRAY_LEN(opts), w, &cli, &a, msg) != -1)
            fail_msg("case %zu (%s) should fail", i, cases[i].msg);
        assert_string_equal(msg, cases[i].msg);
    }
}

static void test_required_and_help(void **state)
{
    (void)state;
    struct mu_cli cli = {0};
    struct mu_cli_args a;
    char msg[256];
    const char *none[] = {NULL};
    assert_int_equal(parse(required_opts, 1, none, &cli, &a, msg), -1);
    assert_string_equal(msg, "--name NAME is required");

    /* help wins over anything else on the line, except after "--" */
    const char *help[] = {"--bogus", "-h", NULL};
    assert_int_equal(parse(required_opts, 1, help, &cli, &a, msg), 0);
    assert_true(cli.help);
    mu_cli_args_free(&a);

    /* help given before the command: the command's required flags are not asked for */
    assert_int_equal(parse(required_opts, 1, none, &cli, &a, msg), 0);
    mu_cli_args_free(&a);

    cli.help = false;
    const char *after[] = {"--name", "x", "--", "--help", NULL};
    assert_int_equal(parse(required_opts, 1, after, &cli, &a, msg), 0);
    assert_false(cli.help);
    assert_int_equal(a.npos, 1);
    mu_cli_args_free(&a);
}

static void test_parse_id(void **state)
{
    (void)state;
    int64_t id = 0;
    char msg[128];
    assert_int_equal(mu_cli_parse_id("42", "the tenant ID", &id, msg, sizeof(msg)), 0);
    assert_int_equal(id, 42);
    assert_int_equal(mu_cli_parse_id("4 2", "the tenant ID", &id, msg, sizeof(msg)), -1);
    assert_string_equal(msg, "the tenant ID must be a positive integer id, not '4 2'");
    assert_int_equal(mu_cli_parse_id("", "x", &id, msg, sizeof(msg)), -1);
    assert_int_equal(mu_cli_parse_id("0x10", "x", &id, msg, sizeof(msg)), -1);
    assert_int_equal(id, 42);
}

static void test_parse_head(void **state)
{
    (void)state;
    int64_t id = 0;
    const char *mac = NULL;
    assert_int_equal(mu_cli_parse_head("100:abcdef01", &id, &mac), 0);
    assert_int_equal(id, 100);
    assert_string_equal(mac, "abcdef01");
    static const char *const bad[] = {"100",
                                      "100:",
                                      ":ab",
                                      "0:ab",
                                      "-1:ab",
                                      "1:abc",
                                      "1:zz",
                                      "1:ab:cd",
                                      "x:ab",
                                      "1 :ab",
                                      "99999999999999999999:ab"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        if (mu_cli_parse_head(bad[i], &id, &mac) != -1)
            fail_msg("head \"%s\" should be refused", bad[i]);
    }
}

static void test_query(void **state)
{
    (void)state;
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_puts(&b, "/v1/tenants");
    mu_cli_query_add(&b, "q", "saint étienne&x=1");
    mu_cli_query_add_i64(&b, "after", 12);
    mu_cli_query_add(&b, "since", "2026-11-28T20:33:03Z");
    assert_string_equal(b.data, "/v1/tenants?q=saint%20%C3%A9tienne%26x%3D1&after=12"
                                "&since=2026-11-28T20%3A33%3A03Z");
    mu_buf_free(&b);
}

static const struct mu_cli_opt typed_opts[] = {
    {"--name", MU_CLI_OPT_IDENT, "NAME", "name", false, NULL, 0, 0},
    {"--label", MU_CLI_OPT_LABEL, "KEY=VALUE", "label", false, NULL, 0, 0},
    {"--vcpus", MU_CLI_OPT_LIMIT, "N|unlimited", "vcpus", false, NULL, 0, 64},
};

static void test_typed_values(void **state)
{
    (void)state;
    const char *w[] = {"--name",         "web-1.a_b", "--label",   "site=paris-1",
                       "--label=zone=a", "--vcpus",   "unlimited", NULL};
    struct mu_cli cli = {0};
    struct mu_cli_args a;
    char msg[256];
    assert_int_equal(parse(typed_opts, MU_ARRAY_LEN(typed_opts), w, &cli, &a, msg), 0);
    assert_string_equal(mu_cli_arg_str(&a, "--name"), "web-1.a_b");
    const struct mu_cli_val *label = mu_cli_arg(&a, "--label");
    assert_int_equal(label->nlist, 2);
    assert_string_equal(label->list[1], "zone=a");
    assert_int_equal(mu_cli_arg(&a, "--vcpus")->num, MU_CLI_UNLIMITED);

    cJSON *obj = NULL;
    assert_int_equal(mu_cli_labels_object(label, 32, &obj, msg, sizeof(msg)), 0);
    char *text = cJSON_PrintUnformatted(obj);
    assert_string_equal(text, "{\"site\":\"paris-1\",\"zone\":\"a\"}");
    free(text);
    cJSON_Delete(obj);
    assert_int_equal(mu_cli_labels_object(label, 1, &obj, msg, sizeof(msg)), -1);
    assert_string_equal(msg, "at most 1 labels (2 given)");
    mu_cli_args_free(&a);

    const char *w2[] = {"--vcpus", "64", "--label", "a=1", "--label", "a=2", NULL};
    assert_int_equal(parse(typed_opts, MU_ARRAY_LEN(typed_opts), w2, &cli, &a, msg), 0);
    assert_int_equal(mu_cli_arg(&a, "--vcpus")->num, 64);
    assert_int_equal(mu_cli_labels_object(mu_cli_arg(&a, "--label"), 32, &obj, msg, sizeof(msg)),
                     -1);
    assert_string_equal(msg, "label a given twice");
    mu_cli_args_free(&a);

    /* no label at all: an empty object (clears a node's labels) */
    const char *none[] = {NULL};
    assert_int_equal(parse(typed_opts, MU_ARRAY_LEN(typed_opts), none, &cli, &a, msg), 0);
    assert_int_equal(mu_cli_labels_object(mu_cli_arg(&a, "--label"), 32, &obj, msg, sizeof(msg)),
                     0);
    assert_int_equal(cJSON_GetArraySize(obj), 0);
    cJSON_Delete(obj);
    mu_cli_args_free(&a);
}

static void test_typed_errors(void **state)
{
    (void)state;
#define IDENT_RULE "1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
    static const struct {
        const char *words[3];
        const char *msg;
    } cases[] = {
        {{"--name", "Web"}, "--name must be " IDENT_RULE ", not 'Web'"},
        {{"--name", "-web"}, "--name must be " IDENT_RULE ", not '-web'"},
        {{"--name", "a..b"}, "--name must be " IDENT_RULE ", not 'a..b'"},
        {{"--name", "a/b"}, "--name must be " IDENT_RULE ", not 'a/b'"},
        {{"--label", "site"},
         "--label must be key=value, each side " IDENT_RULE " (e.g. site=paris-1), not 'site'"},
        {{"--label", "=a"},
         "--label must be key=value, each side " IDENT_RULE " (e.g. site=paris-1), not '=a'"},
        {{"--label", "a="},
         "--label must be key=value, each side " IDENT_RULE " (e.g. site=paris-1), not 'a='"},
        {{"--label", "a=b=c"},
         "--label must be key=value, each side " IDENT_RULE " (e.g. site=paris-1), not 'a=b=c'"},
        {{"--label", "Site=a"},
         "--label must be key=value, each side " IDENT_RULE " (e.g. site=paris-1), not 'Site=a'"},
        {{"--vcpus", "65"}, "--vcpus must be an integer between 0 and 64 or 'unlimited', not '65'"},
        {{"--vcpus", "-1"}, "--vcpus must be an integer between 0 and 64 or 'unlimited', not '-1'"},
        {{"--vcpus", "Unlimited"},
         "--vcpus must be an integer between 0 and 64 or 'unlimited', not 'Unlimited'"},
    };
#undef IDENT_RULE
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        struct mu_cli cli = {0};
        struct mu_cli_args a;
        char msg[256];
        const char *w[3] = {cases[i].words[0], cases[i].words[1], NULL};
        if (parse(typed_opts, MU_ARRAY_LEN(typed_opts), w, &cli, &a, msg) != -1)
            fail_msg("case %zu (%s) should fail", i, cases[i].msg);
        assert_string_equal(msg, cases[i].msg);
    }
}

static void test_label_split(void **state)
{
    (void)state;
    char key[64];
    const char *value = NULL;
    assert_int_equal(mu_cli_label_split("site=paris-1", key, &value), 0);
    assert_string_equal(key, "site");
    assert_string_equal(value, "paris-1");
    char long_key[80];
    memset(long_key, 'k', 64);
    memcpy(long_key + 64, "=v", 3);
    assert_int_equal(mu_cli_label_split(long_key, key, &value), -1);
    memcpy(long_key + 63, "=v", 3); /* 63 characters: the longest identifier */
    assert_int_equal(mu_cli_label_split(long_key, key, &value), 0);
    assert_int_equal(strlen(key), 63);
    static const char *const bad[] = {"", "=", "a", "a=", "=b", "a b=c", "a=b c", "a=B", "a.=b"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        if (mu_cli_label_split(bad[i], key, &value) != -1)
            fail_msg("label \"%s\" should be refused", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),       cmocka_unit_test(test_typed_values),
        cmocka_unit_test(test_typed_errors), cmocka_unit_test(test_label_split),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_required_and_help),
        cmocka_unit_test(test_parse_id),     cmocka_unit_test(test_parse_head),
        cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
