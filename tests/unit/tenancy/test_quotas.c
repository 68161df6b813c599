/* tenancy/quotas.c: the default quota policy, its strict parser (every refusal names the
 * file, line and column) and the band lookup, on the shipped policies/quotas.json and on
 * small inline documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mutualis/util.h"
#include "tenancy/quotas.h"

#ifndef MU_SOURCE_DIR
#define MU_SOURCE_DIR "."
#endif

static struct mu_quota_policy *parse_ok(const char *text)
{
    struct mu_quota_policy *p = NULL;
    struct mu_err err = {0};
    int rc = mu_quota_policy_parse(text, strlen(text), "q.json", &p, &err);
    if (rc != 0)
        fail_msg("parse failed: %d %s", rc, err.detail);
    assert_non_null(p);
    return p;
}

/* Parses text expecting a refusal whose detail contains want. */
static void parse_bad(const char *text, const char *want)
{
    struct mu_quota_policy *p = NULL;
    struct mu_err err = {0};
    int rc = mu_quota_policy_parse(text, strlen(text), "q.json", &p, &err);
    assert_int_equal(rc, MU_EINVAL);
    assert_null(p);
    if (!strstr(err.detail, want))
        fail_msg("detail \"%s\" lacks \"%s\"", err.detail, want);
}

static void assert_limits(const struct mu_limits *l, int64_t vcpus, int64_t ram, int64_t disk,
                          int64_t vms)
{
    assert_int_equal(l->vcpus, vcpus);
    assert_int_equal(l->ram_mib, ram);
    assert_int_equal(l->disk_gib, disk);
    assert_int_equal(l->vms, vms);
}

static void test_shipped_policy(void **state)
{
    (void)state;
    char path[1024];
    struct mu_quota_policy *p = NULL;
    struct mu_err err = {0};
    struct mu_limits l;

    snprintf(path, sizeof path, "%s/policies/quotas.json", MU_SOURCE_DIR);
    if (mu_quota_policy_load(path, &p, &err) != 0)
        fail_msg("%s", err.detail);

    mu_quota_policy_lookup(p, "commune", 150, &l);
    assert_limits(&l, 4, 8192, 200, 4);
    mu_quota_policy_lookup(p, "commune", 1999, &l);
    assert_limits(&l, 4, 8192, 200, 4);
    mu_quota_policy_lookup(p, "commune", 2000, &l);
    assert_limits(&l, 8, 16384, 500, 8);
    mu_quota_policy_lookup(p, "commune", 120000, &l);
    assert_limits(&l, 32, 65536, 2000, 32);
    /* Unknown population: the band without population_max. */
    mu_quota_policy_lookup(p, "commune", -1, &l);
    assert_limits(&l, 32, 65536, 2000, 32);
    mu_quota_policy_lookup(p, "epci", 30000, &l);
    assert_limits(&l, 64, 131072, 4000, 64);
    mu_quota_policy_lookup(p, "epci", 300000, &l);
    assert_limits(&l, 128, 262144, 8000, 128);
    mu_quota_policy_lookup(p, "syndicat", -1, &l);
    assert_limits(&l, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);
    mu_quota_policy_lookup(p, "departement", 500000, &l);
    assert_limits(&l, 32, 65536, 2000, 32);
    mu_quota_policy_lookup(p, "other", -1, &l);
    assert_limits(&l, 16, 32768, 1000, 16);
    mu_quota_policy_lookup(p, "martian", 10, &l);
    assert_limits(&l, 4, 8192, 100, 4);
    mu_quota_policy_lookup(p, NULL, 10, &l);
    assert_limits(&l, 4, 8192, 100, 4);

    /* Through the store's callback type. */
    struct mu_quota_defaults d = mu_quota_policy_defaults(p);
    d.fn(d.ctx, "commune", 800, &l);
    assert_limits(&l, 4, 8192, 200, 4);
    mu_quota_policy_free(p);
}

static void test_bands_first_match_and_unknown_population(void **state)
{
    (void)state;
    struct mu_limits l;
    /* Every band bounded: an unknown population takes the last band of the kind; a
     * population above them all takes the fallback. Mixed figures and "unlimited". */
    struct mu_quota_policy *p =
        parse_ok("{\"version\": 1, \"defaults\": ["
                 " {\"kind\": \"commune\", \"population_max\": 500,"
                 "  \"limits\": {\"vcpus\": 1, \"ram_mib\": 1024, \"disk_gib\": 10, \"vms\": 1}},"
                 " {\"kind\": \"epci\", \"limits\": {\"vcpus\": \"unlimited\", \"ram_mib\": 0,"
                 "  \"disk_gib\": 5, \"vms\": \"unlimited\"}},"
                 " {\"kind\": \"commune\", \"population_max\": 5000,"
                 "  \"limits\": {\"vcpus\": 2, \"ram_mib\": 2048, \"disk_gib\": 20, \"vms\": 2}}],"
                 " \"fallback\": \"unlimited\"}");
    mu_quota_policy_lookup(p, "commune", 0, &l);
    assert_limits(&l, 1, 1024, 10, 1);
    mu_quota_policy_lookup(p, "commune", 500, &l);
    assert_limits(&l, 1, 1024, 10, 1);
    mu_quota_policy_lookup(p, "commune", 501, &l);
    assert_limits(&l, 2, 2048, 20, 2);
    mu_quota_policy_lookup(p, "commune", -1, &l);
    assert_limits(&l, 2, 2048, 20, 2);
    mu_quota_policy_lookup(p, "commune", 5001, &l);
    assert_limits(&l, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);
    mu_quota_policy_lookup(p, "epci", 12, &l);
    assert_limits(&l, MU_UNLIMITED, 0, 5, MU_UNLIMITED);
    mu_quota_policy_lookup(p, "syndicat", 12, &l);
    assert_limits(&l, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);
    mu_quota_policy_free(p);

    /* An empty band list is allowed: everything gets the fallback. */
    p = parse_ok("{\"version\":1,\"defaults\":[],\"fallback\":{\"vcpus\":2,\"ram_mib\":3,"
                 "\"disk_gib\":4,\"vms\":5}}");
    mu_quota_policy_lookup(p, "commune", 10, &l);
    assert_limits(&l, 2, 3, 4, 5);
    mu_quota_policy_free(p);

    /* NULL policy: the built-in fallback. */
    mu_quota_policy_defaults_fn(NULL, "commune", 10, &l);
    assert_limits(&l, 4, 8192, 100, 4);
}

#define LIM "{\"vcpus\":1,\"ram_mib\":1,\"disk_gib\":1,\"vms\":1}"

static void test_refusals_name_line_and_column(void **state)
{
    (void)state;
    /* Unknown top-level key, at its line and column. */
    parse_bad("{\"version\": 1,\n  \"defaults\": [],\n  \"falback\": \"unlimited\"}",
              "q.json: line 3, column 3: unknown key \"falback\"");
    /* Unknown key inside a band (line 3, column 30). */
    parse_bad("{\"version\": 1,\n \"defaults\": [\n  {\"kind\": \"commune\", \"limits\": " LIM
              ", \"pop\": 3}],\n \"fallback\": \"unlimited\"}",
              "line 3, column");
    parse_bad("{\"version\": 1,\n \"defaults\": [\n  {\"kind\": \"commune\", \"limits\": " LIM
              ", \"pop\": 3}],\n \"fallback\": \"unlimited\"}",
              "unknown key \"pop\" in defaults[0]");
    /* Unknown key inside limits. */
    parse_bad("{\"version\":1,\"defaults\":[{\"kind\":\"epci\",\"limits\":{\"vcpus\":1,"
              "\"ram_mib\":1,\"disk_gib\":1,\"vms\":1,\"gpus\":2}}],\"fallback\":\"unlimited\"}",
              "line 1, column 94: unknown key \"gpus\" in defaults[0].limits");
    /* Bad figures. */
    parse_bad("{\"version\":1,\"defaults\":[{\"kind\":\"epci\",\"limits\":{\"vcpus\":-1,"
              "\"ram_mib\":1,\"disk_gib\":1,\"vms\":1}}],\"fallback\":\"unlimited\"}",
              "defaults[0].limits.vcpus must be an integer between 0 and");
    parse_bad("{\"version\":1,\"defaults\":[{\"kind\":\"epci\",\"limits\":{\"vcpus\":1.5,"
              "\"ram_mib\":1,\"disk_gib\":1,\"vms\":1}}],\"fallback\":\"unlimited\"}",
              "line 1, column 59:");
    parse_bad("{\"version\":1,\"defaults\":[{\"kind\":\"epci\",\"limits\":{\"vcpus\":\"lots\","
              "\"ram_mib\":1,\"disk_gib\":1,\"vms\":1}}],\"fallback\":\"unlimited\"}",
              "or \"unlimited\"");
    parse_bad("{\"version\":1,\"defaults\":[{\"kind\":\"epci\",\"limits\":{\"vcpus\":1,"
              "\"ram_mib\":1,\"disk_gib\":1}}],\"fallback\":\"unlimited\"}",
              "defaults[0].limits lacks \"vms\"");
    parse_bad("{\"version\":1,\"defaults\":[{\"kind\":\"epci\",\"limits\":\"infinite\"}],"
              "\"fallback\":\"unlimited\"}",
              "defaults[0].limits must be \"unlimited\" or an object");
    parse_bad("{\"version\":1,\"defaults\":[{\"kind\":\"town\",\"limits\":" LIM "}],"
              "\"fallback\":\"unlimited\"}",
              "line 1, column 34: defaults[0].kind must be one of");
    parse_bad("{\"version\":1,\"defaults\":[{\"limits\":" LIM "}],\"fallback\":\"unlimited\"}",
              "defaults[0] lacks \"kind\"");
    parse_bad("{\"version\":1,\"defaults\":[{\"kind\":\"epci\"}],\"fallback\":\"unlimited\"}",
              "defaults[0] lacks \"limits\"");
    parse_bad(
        "{\"version\":1,\"defaults\":[{\"kind\":\"epci\",\"population_max\":-3,\"limits\":" LIM
        "}],\"fallback\":\"unlimited\"}",
        "population_max must be an integer between 0 and 100000000");
    parse_bad("{\"version\":1,\"defaults\":[3],\"fallback\":\"unlimited\"}",
              "line 1, column 26: defaults[0] must be an object");
    parse_bad("{\"version\":1,\"defaults\":{},\"fallback\":\"unlimited\"}",
              "defaults must be an array");
    /* Missing or wrong top-level members. */
    parse_bad("{\"defaults\":[],\"fallback\":\"unlimited\"}", "\"version\": 1 is missing");
    parse_bad("{\"version\":2,\"defaults\":[],\"fallback\":\"unlimited\"}",
              "line 1, column 12: version must be 1");
    parse_bad("{\"version\":1,\"fallback\":\"unlimited\"}", "\"defaults\"");
    parse_bad("{\"version\":1,\"defaults\":[]}", "\"fallback\"");
    parse_bad("[1]", "must be a JSON object");
    /* The strict layer: syntax errors and duplicate keys with line and column. */
    parse_bad("{\"version\":1,\n\"defaults\":[],\n\"fallback\":\"unlimited\",}", "line 3");
    parse_bad("{\"version\":1,\"version\":1,\"defaults\":[],\"fallback\":\"unlimited\"}",
              "duplicate key");
    /* Unreachable bands. */
    parse_bad("{\"version\":1,\"defaults\":[{\"kind\":\"epci\",\"limits\":" LIM
              "},{\"kind\":\"epci\",\"population_max\":9,\"limits\":" LIM
              "}],\"fallback\":\"unlimited\"}",
              "defaults[1] can never apply: defaults[0] already matches every epci");
    parse_bad("{\"version\":1,\"defaults\":[{\"kind\":\"epci\",\"population_max\":9,\"limits\":" LIM
              "},{\"kind\":\"commune\",\"limits\":" LIM
              "},{\"kind\":\"epci\",\"population_max\":9,\"limits\":" LIM
              "}],\"fallback\":\"unlimited\"}",
              "defaults[2] can never apply: its population_max 9 is not above");
}

static void test_load_errors(void **state)
{
    (void)state;
    struct mu_quota_policy *p = NULL;
    struct mu_err err = {0};
    assert_int_equal(mu_quota_policy_load("/nonexistent/quotas.json", &p, &err), MU_EIO);
    assert_null(p);
    assert_non_null(strstr(err.detail, "/nonexistent/quotas.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_policy),
        cmocka_unit_test(test_bands_first_match_and_unknown_population),
        cmocka_unit_test(test_refusals_name_line_and_column),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
