/* The placement policy parser: the shipped file gives the defaults, keys left out keep
 * them, and every refusal names the file, line and column at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"
#include "sched/sched.h"

#ifndef MU_SOURCE_DIR
#define MU_SOURCE_DIR "."
#endif

static int parse(const char *text, struct mu_sched_policy *p, struct mu_err *err)
{
    return mu_sched_policy_parse(text, strlen(text), "test.json", p, err);
}

static void test_shipped_file_is_the_defaults(void **state)
{
    char path[512];
    const char *root = getenv("MU_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/policies/placement.json", root ? root : MU_SOURCE_DIR);
    size_t len = 0;
    char *text = mu_read_file(path, 1 << 20, &len);
    if (!text)
        fail_msg("cannot read %s", path);

    struct mu_sched_policy got, want;
    struct mu_err err = {0};
    if (mu_sched_policy_parse(text, len, "policies/placement.json", &got, &err) != 0)
        fail_msg("%s", err.detail);
    mu_sched_policy_defaults(&want);
    assert_true(got.cpu_ratio == 4.0 && want.cpu_ratio == 4.0);
    assert_true(got.ram_ratio == 1.0 && want.ram_ratio == 1.0);
    assert_true(got.disk_ratio == 1.0 && want.disk_ratio == 1.0);
    assert_int_equal(got.reserved_mem_mib, 1024);
    assert_int_equal(want.reserved_mem_mib, 1024);
    assert_int_equal(got.weigher, MU_SCHED_SPREAD);
    assert_int_equal(want.weigher, MU_SCHED_SPREAD);
    assert_false(got.unknown_health_eligible);
    assert_false(want.unknown_health_eligible);
    free(text);
}

static void test_partial_and_full(void **state)
{
    struct mu_sched_policy p;
    struct mu_err err = {0};
    assert_int_equal(parse("{\"version\": 1}", &p, &err), 0);
    assert_true(p.cpu_ratio == 4.0);
    assert_int_equal(p.reserved_mem_mib, 1024);

    assert_int_equal(parse("{\"version\": 1, \"weigher\": \"pack\", \"overcommit\": {\"ram\": 1.5},"
                           " \"place_on_unknown_health\": true}",
                           &p, &err),
                     0);
    assert_true(p.cpu_ratio == 4.0);
    assert_true(p.ram_ratio == 1.5);
    assert_true(p.disk_ratio == 1.0);
    assert_int_equal(p.weigher, MU_SCHED_PACK);
    assert_true(p.unknown_health_eligible);

    assert_int_equal(
        parse("\xEF\xBB\xBF{\"overcommit\": {\"cpu\": 16, \"ram\": 0.9, \"disk\": 2.125},"
              " \"reserved_host_memory_mib\": 0, \"weigher\": \"spread\","
              " \"place_on_unknown_health\": false, \"version\": 1}",
              &p, &err),
        0);
    assert_true(p.cpu_ratio == 16.0);
    assert_true(p.ram_ratio == 0.9);
    assert_true(p.disk_ratio == 2.125);
    assert_int_equal(p.reserved_mem_mib, 0);
    assert_int_equal(p.weigher, MU_SCHED_SPREAD);
    assert_int_equal(err.code, 0);
}

struct bad_case {
    const char *text;
    const char *detail; /* the whole expected message */
};

static void test_refusals_name_the_place(void **state)
{
    static const struct bad_case cases[] = {
        {"{\n  \"version\": 1,\n  \"weigher\": \"pack\",\n  \"cpu_ratio\": 2\n}",
         "test.json: line 4, column 3: unknown key \"cpu_ratio\" (expected version, overcommit, "
         "reserved_host_memory_mib, weigher or place_on_unknown_health)"},
        {"{\"version\": 1,\n \"overcommit\": {\"cpu\": 2.0,\n                \"rma\": 1.0}}",
         "test.json: line 3, column 17: unknown key \"rma\" in overcommit (expected cpu, ram or "
         "disk)"},
        {"{\"version\":1,\"overcommit\":{\"cpu\":100}}",
         "test.json: line 1, column 34: overcommit.cpu must be a number between 0.1 and 64"},
        {"{\"version\":1,\"overcommit\":{\"disk\":0}}",
         "test.json: line 1, column 35: overcommit.disk must be a number between 0.1 and 64"},
        {"{\"version\":1,\"overcommit\":{\"ram\":\"1.0\"}}",
         "test.json: line 1, column 34: overcommit.ram must be a number between 0.1 and 64"},
        {"{\"version\":1,\"overcommit\":{\"cpu\":1.0005}}",
         "test.json: line 1, column 34: overcommit.cpu must have at most 3 decimals"},
        {"{\"version\":1,\n\"overcommit\": [4, 1, 1]}",
         "test.json: line 2, column 15: overcommit must be an object like {\"cpu\": 4.0, "
         "\"ram\": 1.0, \"disk\": 1.0}"},
        {"{\"version\":1, \"reserved_host_memory_mib\": -1}",
         "test.json: line 1, column 43: reserved_host_memory_mib must be an integer between 0 "
         "and 1048576"},
        {"{\"version\":1, \"reserved_host_memory_mib\": 512.5}",
         "test.json: line 1, column 43: reserved_host_memory_mib must be an integer between 0 "
         "and 1048576"},
        {"{\"version\":1, \"reserved_host_memory_mib\": 2000000}",
         "test.json: line 1, column 43: reserved_host_memory_mib must be an integer between 0 "
         "and 1048576"},
        {"{\"version\":1, \"weigher\": \"random\"}",
         "test.json: line 1, column 26: weigher must be \"spread\" or \"pack\""},
        {"{\"version\":1, \"weigher\": null}",
         "test.json: line 1, column 26: weigher must be \"spread\" or \"pack\""},
        {"{\"version\":1, \"place_on_unknown_health\": 1}",
         "test.json: line 1, column 42: place_on_unknown_health must be true or false"},
        {"{\"weigher\": \"pack\"}", "test.json: line 1, column 1: \"version\": 1 is missing"},
        {"  \n [1, 2]", "test.json: line 2, column 2: the placement policy must be a JSON object"},
        {"{\"version\": 2}", "test.json: line 1, column 13: version must be 1"},
        /* Columns count characters: "é" is two bytes, one column. */
        {"{\"version\": 1, \"\xC3\xA9\": 1}",
         "test.json: line 1, column 16: unknown key \"\xC3\xA9\" (expected version, overcommit, "
         "reserved_host_memory_mib, weigher or place_on_unknown_health)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mu_sched_policy p = {.cpu_ratio = -7};
        struct mu_err err = {0};
        int rc = parse(cases[i].text, &p, &err);
        if (rc != MU_EINVAL)
            fail_msg("case %zu accepted: %s", i, cases[i].text);
        assert_int_equal(err.code, MU_EINVAL);
        if (strcmp(err.detail, cases[i].detail) != 0)
            fail_msg("case %zu:\n got  %s\n want %s", i, err.detail, cases[i].detail);
        assert_true(p.cpu_ratio == -7); /* untouched on failure */
    }
}

/* What mu_json_parse refuses arrives with its own line and column. */
static void test_syntax_errors(void **state)
{
    static const char *const texts[] = {
        "{\"version\": 1,\n \"weigher\": \"pack\",}",
        "{\"version\": 1, \"version\": 1}",
        "{\"version\": 1} trailing",
        "",
        "{\"version\": 1, \"overcommit\": {\"cpu\": 1e999}}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct mu_sched_policy p = {.cpu_ratio = -7};
        struct mu_err err = {0};
        assert_int_equal(parse(texts[i], &p, &err), MU_EINVAL);
        if (strncmp(err.detail, "test.json", 9) != 0)
            fail_msg("case %zu: %s", i, err.detail);
        assert_true(p.cpu_ratio == -7);
    }
    struct mu_sched_policy p;
    struct mu_err err = {0};
    assert_int_equal(parse("{\"version\": 1,\n \"weigher\": \"pack\",}", &p, &err), MU_EINVAL);
    assert_non_null(strstr(err.detail, "line 2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_file_is_the_defaults),
        cmocka_unit_test(test_partial_and_full),
        cmocka_unit_test(test_refusals_name_the_place),
        cmocka_unit_test(test_syntax_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
