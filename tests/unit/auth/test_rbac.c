/* RBAC policy: parsing, every refusal with its position and reason, lookups, and the shipped
 * policies/rbac.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"

static struct mu_rbac *parse(const char *text, struct mu_err *err)
{
    return mu_rbac_parse(text, strlen(text), "test.json", err);
}

/* The policy must be refused with a detail containing each fragment. */
static void expect_refused(const char *text, const char *fragment, const char *fragment2)
{
    struct mu_err err = {0};
    struct mu_rbac *r = parse(text, &err);
    if (r) {
        mu_rbac_free(r);
        fail_msg("accepted: %s", text);
    }
    assert_int_equal(err.code, MU_EINVAL);
    if (strncmp(err.detail, "test.json: ", 11) != 0)
        fail_msg("detail \"%s\" does not start with the origin", err.detail);
    if (!strstr(err.detail, fragment) || (fragment2 && !strstr(err.detail, fragment2)))
        fail_msg("detail \"%s\" lacks \"%s\" / \"%s\"", err.detail, fragment,
                 fragment2 ? fragment2 : "");
}

static const char *valid_policy = "{\n"
                                  "  \"version\": 1,\n"
                                  "  \"actions\": {\n"
                                  "    \"tenant.read\": [\"operator\", \"tenant-reader\"],\n"
                                  "    \"tenant.create\": [\"operator\"],\n"
                                  "    \"vm.start-all\": [],\n"
                                  "    \"audit.log.read\": [\"observer\", \"tenant-admin\"]\n"
                                  "  }\n"
                                  "}\n";

static void test_valid(void **state)
{
    (void)state;
    struct mu_err err = {0};
    struct mu_rbac *r = parse(valid_policy, &err);
    if (!r)
        fail_msg("refused: %s", err.detail);
    assert_true(mu_rbac_allows(r, "operator", "tenant.read"));
    assert_true(mu_rbac_allows(r, "tenant-reader", "tenant.read"));
    assert_false(mu_rbac_allows(r, "observer", "tenant.read"));
    assert_false(mu_rbac_allows(r, "tenant-admin", "tenant.read"));
    assert_true(mu_rbac_allows(r, "operator", "tenant.create"));
    assert_false(mu_rbac_allows(r, "tenant-admin", "tenant.create"));
    assert_true(mu_rbac_allows(r, "observer", "audit.log.read"));
    assert_true(mu_rbac_allows(r, "tenant-admin", "audit.log.read"));
    assert_false(mu_rbac_allows(r, "operator", "audit.log.read"));
    /* named with nobody allowed */
    assert_true(mu_rbac_names(r, "vm.start-all"));
    assert_false(mu_rbac_allows(r, "operator", "vm.start-all"));
    /* an action the policy does not name is denied to everyone */
    assert_false(mu_rbac_names(r, "tenant.delete"));
    assert_false(mu_rbac_allows(r, "operator", "tenant.delete"));
    assert_false(mu_rbac_allows(r, "operator", "tenant"));
    assert_false(mu_rbac_allows(r, "operator", "tenant.rea"));
    assert_false(mu_rbac_allows(r, "operator", "tenant.readx"));
    assert_false(mu_rbac_allows(r, "operator", ""));
    assert_false(mu_rbac_allows(r, "operator", NULL));
    /* unknown or missing roles get nothing */
    assert_false(mu_rbac_allows(r, "admin", "tenant.read"));
    assert_false(mu_rbac_allows(r, "Operator", "tenant.read"));
    assert_false(mu_rbac_allows(r, "", "tenant.read"));
    assert_false(mu_rbac_allows(r, NULL, "tenant.read"));
    assert_false(mu_rbac_allows(NULL, "operator", "tenant.read"));
    assert_true(mu_rbac_names(r, "tenant.read"));
    mu_rbac_free(r);
    mu_rbac_free(NULL);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    /* positions come from the strict JSON layer */
    expect_refused("{\n  \"version\": 1,\n  \"actions\": {\n    \"tenant.read\": [\"operator\",]\n"
                   "  }\n}\n",
                   "line 4, column", NULL);
    expect_refused("{\"version\": 1, \"version\": 1, \"actions\": {\"a.b\": []}}", "line 1",
                   "duplicate");
    expect_refused("{\"version\": 1,\n \"actions\": {\"a.b\": [\"operator\"], \"a.b\": []}}",
                   "line 2", "duplicate");
    expect_refused("", "line 1", NULL);
    expect_refused("{\"version\": 1, \"actions\": {\"a.b\": []}} x", "line 1", NULL);
}

static void test_structure_errors(void **state)
{
    (void)state;
    expect_refused("[1]", "line 1, column 1: the policy must be a JSON object", NULL);
    expect_refused("{\n  \"actions\": {\"a.b\": []}\n}", "line 1, column 1: \"version\" is missing",
                   NULL);
    expect_refused("{\n  \"version\": 2,\n  \"actions\": {\"a.b\": []}\n}",
                   "line 2, column 14: unsupported policy version 2", "reads version 1");
    expect_refused("{\"version\": 1.5, \"actions\": {\"a.b\": []}}",
                   "line 1, column 13: unsupported policy version 1.5", NULL);
    expect_refused("{\"version\": \"1\", \"actions\": {\"a.b\": []}}",
                   "line 1, column 13: \"version\" must be the number 1", NULL);
    expect_refused("{\"version\": 1}", "\"actions\" is missing", NULL);
    expect_refused("{\"version\": 1,\n\"actions\": []}",
                   "line 2, column 12: \"actions\" must be an object", NULL);
    expect_refused("{\"version\": 1,\n\"actions\": {}}", "line 2, column 12: \"actions\" is empty",
                   NULL);
    expect_refused("{\"version\": 1,\n \"actions\": {\"a.b\": []},\n \"default\": \"allow\"}",
                   "line 3, column 2: unknown key \"default\"", NULL);
}

static void test_action_names(void **state)
{
    (void)state;
    expect_refused("{\"version\": 1, \"actions\": {\n  \"\": [\"operator\"]\n}}",
                   "line 2, column 3: empty action name", NULL);
    static const char *const bad[] = {
        "tenant",
        "Tenant.read",
        "tenant.Read",
        ".read",
        "tenant.",
        "tenant..read",
        "tenant.read.",
        "tenant_x.read",
        "tenant.read1",
        "tenant.read all",
        "-tenant.read",
        "t\xc3\xa9nant.read",
        "tenant.r\\u00e9ad",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(
            text, sizeof text,
            "{\"version\": 1, \"actions\": {\n  \"self.read\": [],\n    \"%s\": [\"operator\"]\n}}",
            bad[i]);
        expect_refused(text, "line 3, column 5: invalid action name", NULL);
    }
    char longname[200];
    memset(longname, 'a', sizeof longname);
    longname[0] = 'x';
    longname[1] = '.';
    longname[65] = '\0'; /* 65 characters */
    char text[400];
    snprintf(text, sizeof text, "{\"version\": 1, \"actions\": {\"%s\": []}}", longname);
    expect_refused(text, "line 1, column 28: invalid action name", "at most 64");
    longname[64] = '\0';
    snprintf(text, sizeof text, "{\"version\": 1, \"actions\": {\"%s\": []}}", longname);
    struct mu_err err = {0};
    struct mu_rbac *r = parse(text, &err);
    if (!r)
        fail_msg("64-character name refused: %s", err.detail);
    mu_rbac_free(r);

    static const char *const good[] = {"a.b", "vm.start", "tenant.read-all", "a.b.c", "vm.-x"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(text, sizeof text, "{\"version\": 1, \"actions\": {\"%s\": [\"operator\"]}}",
                 good[i]);
        memset(&err, 0, sizeof err);
        r = parse(text, &err);
        if (!r)
            fail_msg("%s refused: %s", good[i], err.detail);
        assert_true(mu_rbac_allows(r, "operator", good[i]));
        mu_rbac_free(r);
    }
}

static void test_role_errors(void **state)
{
    (void)state;
    expect_refused(
        "{\n  \"version\": 1,\n  \"actions\": {\n    \"tenant.read\": \"operator\"\n  }\n}",
        "line 4, column 20: the roles of \"tenant.read\" must be an array", NULL);
    expect_refused("{\n  \"version\": 1,\n  \"actions\": {\n    \"tenant.read\": {}\n  }\n}",
                   "line 4, column 20: the roles of \"tenant.read\" must be an array", NULL);
    expect_refused("{\n  \"version\": 1,\n  \"actions\": {\n"
                   "    \"self.read\": [\"operator\"],\n"
                   "    \"tenant.read\": [\"operator\", \"admin\"]\n  }\n}",
                   "line 5, column 33: unknown role \"admin\" for \"tenant.read\"",
                   "operator, observer, tenant-admin and tenant-reader");
    expect_refused("{\"version\": 1, \"actions\": {\"tenant.read\": [\"Operator\"]}}",
                   "line 1, column 44: unknown role \"Operator\"", NULL);
    expect_refused("{\"version\": 1, \"actions\": {\"tenant.read\": [\"\"]}}",
                   "line 1, column 44: unknown role \"\"", NULL);
    expect_refused("{\"version\": 1, \"actions\": {\"tenant.read\": [\"operator\", 1]}}",
                   "line 1, column 56: the roles of \"tenant.read\" must be strings", NULL);
    expect_refused("{\"version\": 1, \"actions\": {\"tenant.read\": [null]}}",
                   "line 1, column 44: the roles of \"tenant.read\" must be strings", NULL);
    expect_refused("{\"version\": 1, \"actions\": {\"tenant.read\": [[\"operator\"]]}}",
                   "line 1, column 44: the roles of \"tenant.read\" must be strings", NULL);
    expect_refused("{\"version\": 1, \"actions\": {\n"
                   "  \"tenant.read\": [\"observer\", \"operator\",\n"
                   "                  \"operator\"]}}",
                   "line 3, column 19: role \"operator\" is listed twice for \"tenant.read\"",
                   NULL);
    /* non-ASCII role names are quoted back as written */
    expect_refused(
        "{\"version\": 1, \"actions\": {\"tenant.read\": [\"op\xc3\xa9rateur\", \"x\"]}}",
        "line 1, column 44: unknown role \"op\xc3\xa9rateur\"", NULL);
}

static void test_shipped_policy(void **state)
{
    (void)state;
    struct mu_err err = {0};
    struct mu_rbac *r = mu_rbac_load(MU_SOURCE_DIR "/policies/rbac.json", &err);
    if (!r)
        fail_msg("shipped policy refused: %s", err.detail);
    static const struct {
        const char *action;
        const char *roles; /* o: operator, b: observer, a: tenant-admin, r: tenant-reader */
    } expect[] = {
        {"self.read", "obar"},     {"tenant.list", "obar"},    {"tenant.read", "obar"},
        {"tenant.create", "o"},    {"tenant.update", "o"},     {"tenant.move", "o"},
        {"tenant.delete", "o"},    {"tenant.import", "o"},     {"user.list", "oba"},
        {"user.read", "oba"},      {"user.create", "oa"},      {"user.update", "oa"},
        {"user.delete", "oa"},     {"token.list", "obar"},     {"token.create", "obar"},
        {"token.revoke", "obar"},  {"audit.read", "oba"},      {"audit.verify", "o"},
        {"quota.read", "obar"},    {"quota.update", "o"},      {"node.list", "ob"},
        {"node.read", "ob"},       {"node.create", "o"},       {"node.update", "o"},
        {"node.state", "o"},       {"node.delete", "o"},       {"flavor.list", "obar"},
        {"flavor.read", "obar"},   {"flavor.create", "o"},     {"flavor.delete", "o"},
        {"image.list", "obar"},    {"image.read", "obar"},     {"image.create", "o"},
        {"image.upload", "o"},     {"image.delete", "o"},      {"group.list", "obar"},
        {"group.create", "oa"},    {"group.delete", "oa"},     {"vm.list", "obar"},
        {"vm.read", "obar"},       {"vm.create", "o"},         {"vm.start", "oa"},
        {"vm.stop", "oa"},         {"vm.reboot", "oa"},        {"vm.resize", "o"},
        {"vm.delete", "o"},        {"operation.read", "obar"}, {"node.enroll", "o"},
        {"agent.report", ""},      {"agent.renew", ""},        {"capacity.read", "ob"},
        {"agent.network", ""},     {"metrics.read", "ob"},     {"catalog.read", "obar"},
        {"request.list", "obar"},  {"request.read", "obar"},   {"request.create", "oa"},
        {"request.approve", "oa"}, {"request.reject", "oa"},   {"request.cancel", "oa"},
        {"alert.read", "ob"},      {"event.read", "obar"},     {"webhook.read", "oba"},
        {"webhook.update", "oa"},  {"session.read", "obar"},   {"session.delete", "obar"},
        {"network.list", "obar"},  {"network.read", "obar"},   {"network.create", "oa"},
        {"network.delete", "oa"},  {"network.rules", "oa"},    {"address.list", "obar"},
    };
    static const struct {
        char c;
        const char *role;
    } roles[] = {
        {'o', "operator"}, {'b', "observer"}, {'a', "tenant-admin"}, {'r', "tenant-reader"}};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        assert_true(mu_rbac_names(r, expect[i].action));
        for (size_t j = 0; j < sizeof roles / sizeof roles[0]; j++) {
            bool want = strchr(expect[i].roles, roles[j].c) != NULL;
            if (mu_rbac_allows(r, roles[j].role, expect[i].action) != want)
                fail_msg("%s for %s: expected %s", expect[i].action, roles[j].role,
                         want ? "allowed" : "denied");
        }
    }
    assert_false(mu_rbac_names(r, "vm.migrate"));
    assert_false(mu_rbac_allows(r, "operator", "vm.migrate"));
    mu_rbac_free(r);

    /* and it names exactly these actions */
    size_t len = 0;
    char *text = mu_read_file(MU_SOURCE_DIR "/policies/rbac.json", 1 << 20, &len);
    assert_non_null(text);
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, "\": [")) != NULL; p++)
        n++;
    assert_int_equal(n, sizeof expect / sizeof expect[0]);
    free(text);
}

static void test_load_errors(void **state)
{
    (void)state;
    struct mu_err err = {0};
    assert_null(mu_rbac_load("/nonexistent/rbac.json", &err));
    assert_int_equal(err.code, MU_EIO);
    assert_non_null(strstr(err.detail, "/nonexistent/rbac.json: cannot read"));

    char dir[] = "/tmp/mu_rbac_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/rbac.json", dir);

    /* errors from the file name the path */
    const char *bad = "{\"version\": 1,\n \"actions\": {\"x.y\": [\"root\"]}}";
    assert_int_equal(mu_write_file_atomic(path, bad, strlen(bad), 0600), 0);
    memset(&err, 0, sizeof err);
    assert_null(mu_rbac_load(path, &err));
    assert_int_equal(err.code, MU_EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%s: line 2, column 22: unknown role \"root\"", path);
    if (strncmp(err.detail, want, strlen(want)) != 0)
        fail_msg("detail \"%s\", expected \"%s...\"", err.detail, want);

    /* larger than 1 MiB */
    size_t big = (1 << 20) + 1;
    char *buf = malloc(big);
    memset(buf, ' ', big);
    memcpy(buf, "{\"version\": 1, \"actions\": {\"x.y\": []}}", 38);
    assert_int_equal(mu_write_file_atomic(path, buf, big, 0600), 0);
    free(buf);
    memset(&err, 0, sizeof err);
    assert_null(mu_rbac_load(path, &err));
    assert_non_null(strstr(err.detail, "larger than 1 MiB"));
    assert_non_null(strstr(err.detail, path));

    unlink(path);
    rmdir(dir);
}

static void test_roles(void **state)
{
    (void)state;
    assert_true(mu_role_valid("operator"));
    assert_true(mu_role_valid("observer"));
    assert_true(mu_role_valid("tenant-admin"));
    assert_true(mu_role_valid("tenant-reader"));
    assert_false(mu_role_valid("admin"));
    assert_false(mu_role_valid(""));
    assert_false(mu_role_valid(NULL));
    assert_false(mu_role_valid("operator "));
    assert_true(mu_role_is_tenant("tenant-admin"));
    assert_true(mu_role_is_tenant("tenant-reader"));
    assert_false(mu_role_is_tenant("operator"));
    assert_false(mu_role_is_tenant("observer"));
    assert_false(mu_role_is_tenant(NULL));

    struct mu_principal p = {.user_id = 1, .role = "operator"};
    assert_true(mu_principal_is_global(&p));
    snprintf(p.role, sizeof p.role, "observer");
    assert_true(mu_principal_is_global(&p));
    snprintf(p.role, sizeof p.role, "tenant-admin");
    assert_false(mu_principal_is_global(&p));
    snprintf(p.role, sizeof p.role, "tenant-reader");
    assert_false(mu_principal_is_global(&p));
    p.role[0] = '\0';
    assert_false(mu_principal_is_global(&p));
    assert_false(mu_principal_is_global(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_action_names),
        cmocka_unit_test(test_role_errors),
        cmocka_unit_test(test_shipped_policy),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_roles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
