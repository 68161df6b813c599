/* The agent's configuration: defaults, the JSON file (every key, unknown keys, bounds),
 * the flags and their precedence over the file, and the checks before start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "mutualis/log.h"
#include "mutualis/util.h"

struct fixture {
    char dir[64];
    char path[96];
    char cert[96];
};

static int setup(void **state)
{
    struct fixture *f = mu_xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu-agent-config-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/agent.json", f->dir);
    snprintf(f->cert, sizeof f->cert, "%s/agent.pem", f->dir);
    assert_int_equal(mu_write_file_atomic(f->cert, "-----", 5, 0600), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    unlink(f->path);
    unlink(f->cert);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int load_text(const struct fixture *f, const char *text, struct mu_agent_config *c,
                     struct mu_err *err)
{
    assert_int_equal(mu_write_file_atomic(f->path, text, strlen(text), 0600), 0);
    return mu_agent_config_load(c, f->path, err);
}

static void test_defaults_and_file(void **state)
{
    struct fixture *f = *state;
    struct mu_agent_config c;
    mu_agent_config_init(&c);
    assert_string_equal(c.libvirt_uri, "qemu:///system");
    assert_int_equal(c.interval_s, 10);
    assert_int_equal(c.spool_max_reports, 8640);
    assert_string_equal(c.spool_dir, "/var/lib/mutualis-agent/spool");
    assert_null(c.controller_url);
    assert_null(c.node_name);
    assert_int_equal(c.log_level, MU_LOG_INFO);

    char *text = mu_xasprintf("{\"controller_url\": \"https://ctl.example:8443/\", "
                              "\"node_name\": \"node-7\", \"cert\": \"%s\", \"key\": \"%s\", "
                              "\"ca\": \"%s\", \"libvirt_uri\": \"test:///default\", "
                              "\"interval_s\": 1, \"spool_dir\": \"%s/spool\", "
                              "\"spool_max_reports\": 4, \"log_level\": \"debug\"}",
                              f->cert, f->cert, f->cert, f->dir);
    struct mu_err err = {0};
    if (load_text(f, text, &c, &err) != 0)
        fail_msg("%s", err.detail);
    free(text);
    assert_string_equal(c.controller_url, "https://ctl.example:8443/");
    assert_string_equal(c.node_name, "node-7");
    assert_string_equal(c.libvirt_uri, "test:///default");
    assert_int_equal(c.interval_s, 1);
    assert_int_equal(c.spool_max_reports, 4);
    assert_int_equal(c.log_level, MU_LOG_DEBUG);
    assert_int_equal(mu_agent_config_check(&c, MU_AGENT_RUN, &err), 0);

    /* A partial file keeps what it does not name. */
    assert_int_equal(load_text(f, "{\"interval_s\": 30, \"node_name\": null}", &c, &err), 0);
    assert_int_equal(c.interval_s, 30);
    assert_string_equal(c.node_name, "node-7");
    mu_agent_config_clear(&c);
    mu_agent_config_clear(&c); /* twice is harmless */
}

static void test_file_refusals(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *text, *field, *want;
    } cases[] = {
        {"{\"intervall_s\": 5}", "intervall_s", "unknown field \"intervall_s\""},
        {"{\"interval_s\": 0}", "interval_s", "interval_s must be an integer between 1 and 3600"},
        {"{\"interval_s\": \"10\"}", "interval_s", "interval_s must be an integer"},
        {"{\"spool_max_reports\": 3}", "spool_max_reports", "between 4 and 1000000"},
        {"{\"spool_max_reports\": 1000001}", "spool_max_reports", "between 4 and 1000000"},
        {"{\"log_level\": \"verbose\"}", "log_level", "log_level must be error, warn"},
        {"{\"cert\": \"/etc/a b.pem\"}", "cert", "cert must be non-empty printable ASCII"},
        {"{\"spool_dir\": \"\"}", "spool_dir", "spool_dir must be non-empty"},
        {"{\"node_name\": 7}", "node_name", "node_name must be a string"},
        {"[1]", "", "must be a JSON object"},
        {"{\"ca\": \"x\",}", "", "line 1, column 12: trailing comma"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        struct mu_agent_config c;
        mu_agent_config_init(&c);
        struct mu_err err = {0};
        int rc = load_text(f, cases[i].text, &c, &err);
        if (rc != MU_EINVAL || strcmp(err.field, cases[i].field) != 0 ||
            !strstr(err.detail, cases[i].want) || strncmp(err.detail, f->path, strlen(f->path)))
            fail_msg("%s: rc=%d field=%s detail=%s", cases[i].text, rc, err.field, err.detail);
        mu_agent_config_clear(&c);
    }
    struct mu_agent_config c;
    mu_agent_config_init(&c);
    struct mu_err err = {0};
    char *missing = mu_xasprintf("%s/none.json", f->dir);
    assert_int_equal(mu_agent_config_load(&c, missing, &err), MU_EIO);
    assert_non_null(strstr(err.detail, "No such file"));
    free(missing);
    mu_agent_config_clear(&c);
}

static int parse(struct mu_agent_args *a, struct mu_err *err, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"mutualis-agent";
    va_list ap;
    va_start(ap, err);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = (char *)s;
    va_end(ap);
    argv[argc] = NULL;
    return mu_agent_args_parse(argc, argv, a, err);
}

static void test_flags(void **state)
{
    struct fixture *f = *state;
    struct mu_agent_args a;
    struct mu_err err = {0};
    assert_int_equal(parse(&a, &err, NULL), 0);
    assert_int_equal(a.action, MU_AGENT_RUN);
    assert_null(a.config);
    assert_int_equal(a.interval_s, -1);

    assert_int_equal(parse(&a, &err, "--config", f->path, "--controller-url", "https://c:1",
                           "--node", "node-2", "--cert", "c.pem", "--key", "k.pem", "--ca",
                           "ca.pem", "--libvirt-uri", "test:///default", "--interval", "5",
                           "--spool-dir", "/tmp/s", "--log-level", "warn", "--once", NULL),
                     0);
    assert_int_equal(a.action, MU_AGENT_ONCE);
    assert_string_equal(a.config, f->path);
    assert_string_equal(a.node_name, "node-2");
    assert_string_equal(a.libvirt_uri, "test:///default");
    assert_int_equal(a.interval_s, 5);

    /* Flags override the file. */
    struct mu_agent_config c;
    mu_agent_config_init(&c);
    assert_int_equal(load_text(f, "{\"node_name\": \"node-1\", \"interval_s\": 10}", &c, &err), 0);
    assert_int_equal(mu_agent_config_apply(&c, &a, &err), 0);
    assert_string_equal(c.node_name, "node-2");
    assert_int_equal(c.interval_s, 5);
    assert_string_equal(c.spool_dir, "/tmp/s");
    assert_int_equal(c.log_level, MU_LOG_WARN);
    /* --once needs no controller or credentials. */
    assert_int_equal(mu_agent_config_check(&c, MU_AGENT_ONCE, &err), 0);
    mu_agent_config_clear(&c);

    assert_int_equal(parse(&a, &err, "--once", "--version", NULL), 0);
    assert_int_equal(a.action, MU_AGENT_VERSION);
    assert_int_equal(parse(&a, &err, "--help", "--version", NULL), 0);
    assert_int_equal(a.action, MU_AGENT_HELP);
    assert_non_null(strstr(mu_agent_usage(), "--controller-url"));

    static const char *const bad[][3] = {
        {"--interval", "0", "--interval must be a whole number"},
        {"--interval", "1.5", "--interval must be a whole number"},
        {"--interval", "3601", "--interval must be a whole number"},
        {"--bogus", NULL, "unknown option --bogus"},
        {"extra", NULL, "unexpected argument extra"},
        {"--node", NULL, "--node needs a value"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        mu_err_clear(&err);
        assert_int_equal(parse(&a, &err, bad[i][0], bad[i][1], NULL), MU_EINVAL);
        if (!strstr(err.detail, bad[i][2]))
            fail_msg("%s: %s", bad[i][0], err.detail);
    }
    mu_err_clear(&err);
    mu_agent_config_init(&c);
    assert_int_equal(parse(&a, &err, "--log-level", "loud", NULL), 0);
    assert_int_equal(mu_agent_config_apply(&c, &a, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(parse(&a, &err, "--cert", "a\tb", NULL), 0);
    assert_int_equal(mu_agent_config_apply(&c, &a, &err), MU_EINVAL);
    assert_string_equal(err.field, "cert");
    mu_agent_config_clear(&c);
}

/* renew_before_days: default 30, the file, the flag over the file, 0 (never), bounds. */
static void test_renew_window(void **state)
{
    struct fixture *f = *state;
    struct mu_agent_config c;
    struct mu_agent_args a;
    struct mu_err err = {0};
    mu_agent_config_init(&c);
    assert_int_equal(c.renew_before_days, 30);
    assert_int_equal(load_text(f, "{\"renew_before_days\": 10}", &c, &err), 0);
    assert_int_equal(c.renew_before_days, 10);
    assert_int_equal(parse(&a, &err, NULL), 0);
    assert_int_equal(a.renew_before_days, -1);
    assert_int_equal(mu_agent_config_apply(&c, &a, &err), 0);
    assert_int_equal(c.renew_before_days, 10);
    assert_int_equal(parse(&a, &err, "--renew-before-days", "0", NULL), 0);
    assert_int_equal(mu_agent_config_apply(&c, &a, &err), 0);
    assert_int_equal(c.renew_before_days, 0);
    assert_int_equal(load_text(f, "{\"renew_before_days\": 61}", &c, &err), MU_EINVAL);
    assert_string_equal(err.field, "renew_before_days");
    mu_err_clear(&err);
    assert_int_equal(parse(&a, &err, "--renew-before-days", "90", NULL), MU_EINVAL);
    assert_non_null(strstr(err.detail, "--renew-before-days"));
    mu_err_clear(&err);
    assert_int_equal(parse(&a, &err, "--renew-before-days", "-1", NULL), MU_EINVAL);
    assert_non_null(strstr(mu_agent_usage(), "--renew-before-days"));
    mu_agent_config_clear(&c);
}

static void test_check(void **state)
{
    struct fixture *f = *state;
    struct mu_agent_config c;
    struct mu_err err = {0};
    mu_agent_config_init(&c);
    c.node_name = mu_xstrdup("Node_1");
    assert_int_equal(mu_agent_config_check(&c, MU_AGENT_ONCE, &err), MU_EINVAL);
    assert_string_equal(err.field, "node_name");
    free(c.node_name);
    c.node_name = mu_xstrdup("node-1");
    mu_err_clear(&err);
    assert_int_equal(mu_agent_config_check(&c, MU_AGENT_RUN, &err), MU_EINVAL);
    assert_string_equal(err.field, "controller_url");
    c.controller_url = mu_xstrdup("http://ctl:8443");
    mu_err_clear(&err);
    assert_int_equal(mu_agent_config_check(&c, MU_AGENT_RUN, &err), MU_EINVAL);
    assert_string_equal(err.field, "controller_url");
    free(c.controller_url);
    c.controller_url = mu_xstrdup("https://ctl:8443");
    mu_err_clear(&err);
    assert_int_equal(mu_agent_config_check(&c, MU_AGENT_RUN, &err), MU_EINVAL);
    assert_string_equal(err.field, "cert");
    c.cert = mu_xstrdup(f->cert);
    c.key = mu_xstrdup(f->cert);
    c.ca = mu_xasprintf("%s/missing-ca.pem", f->dir);
    mu_err_clear(&err);
    assert_int_equal(mu_agent_config_check(&c, MU_AGENT_RUN, &err), MU_EINVAL);
    assert_string_equal(err.field, "ca");
    assert_non_null(strstr(err.detail, "cannot be read"));
    free(c.ca);
    c.ca = mu_xstrdup(f->cert);
    mu_err_clear(&err);
    assert_int_equal(mu_agent_config_check(&c, MU_AGENT_RUN, &err), 0);
    mu_agent_config_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_and_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renew_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
