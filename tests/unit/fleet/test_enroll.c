/* fleet/enroll: the pure parts (validation of hosts, users, fingerprints and URLs; the
 * certtool template and the agent configuration built from validated values only; the
 * probe parser facing the node's output), the store's pinning of host keys (trust on first
 * use, a changed key refused), and refusals that happen before any connection. The SSH
 * steps themselves run against a real sshd in tests/integration/test_enroll.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../store/store_test.h"
#include "fleet/enroll.h"
#include "mutualis/json.h"
#include "mutualis/validate.h"
#include "store/enrolment.h"
#include "store/provision.h"

#define FP_A "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
#define FP_B "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"

static void test_host(void **state)
{
    (void)state;
    const char *good[] = {"127.0.0.1", "::1",   "fe80::1", "node-1.example.org",
                          "a",         "NODE7", "10.0.0.5"};
    for (size_t i = 0; i < MU_ARRAY_LEN(good); i++)
        if (!mu_enroll_host_valid(good[i]))
            fail_msg("%s refused", good[i]);
    char long_label[80], long_name[300];
    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    memset(long_name, 'a', 254);
    long_name[254] = '\0';
    const char *bad[] = {"",
                         "-oProxyCommand=touch /tmp/x",
                         "a b",
                         "host;rm -rf /",
                         "a..b",
                         ".a",
                         "a.",
                         "ex_ample.org",
                         "a-.b",
                         "-a",
                         "[::1]",
                         "host\n",
                         "user@host",
                         "host:22",
                         "h\xc3\xa9te",
                         "$(id)",
                         long_label,
                         long_name};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++)
        if (mu_enroll_host_valid(bad[i]))
            fail_msg("%s accepted", bad[i]);
    assert_false(mu_enroll_host_valid(NULL));
}

static void test_user(void **state)
{
    (void)state;
    const char *good[] = {"root", "mu-node1", "_svc", "a.b", "mu-it123-n1", "debian"};
    for (size_t i = 0; i < MU_ARRAY_LEN(good); i++)
        if (!mu_enroll_user_valid(good[i]))
            fail_msg("%s refused", good[i]);
    const char *bad[] = {"",     "Root", "-oProxyCommand",
                         "1abc", "a;b",  "a b",
                         "a.",   "a/b",  "a$",
                         "é",    "a\nb", "abcdefghijklmnopqrstuvwxyz0123456" /* 33 */};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++)
        if (mu_enroll_user_valid(bad[i]))
            fail_msg("%s accepted", bad[i]);
    assert_false(mu_enroll_user_valid(NULL));
}

static void test_fingerprint(void **state)
{
    (void)state;
    assert_true(mu_enroll_fingerprint_valid(FP_A));
    assert_true(mu_enroll_fingerprint_valid(FP_A "="));
    assert_true(mu_enroll_fingerprint_valid(FP_B));
    assert_false(mu_enroll_fingerprint_valid(FP_A "=="));
    assert_false(mu_enroll_fingerprint_valid(FP_A "x"));
    assert_false(mu_enroll_fingerprint_valid("uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"));
    assert_false(mu_enroll_fingerprint_valid("sha256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"));
    assert_false(mu_enroll_fingerprint_valid("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2"));
    assert_false(mu_enroll_fingerprint_valid("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3t-2s"));
    assert_false(
        mu_enroll_fingerprint_valid("MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48"));
    assert_false(mu_enroll_fingerprint_valid(NULL));

    assert_true(mu_enroll_fingerprint_equal(FP_A, FP_A));
    assert_true(mu_enroll_fingerprint_equal(FP_A, FP_A "="));
    assert_false(mu_enroll_fingerprint_equal(FP_A, FP_B));
    /* base64 is case-sensitive */
    assert_false(
        mu_enroll_fingerprint_equal(FP_A, "SHA256:UNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"));
    assert_false(mu_enroll_fingerprint_equal(FP_A, "SHA256:short"));
    assert_false(mu_enroll_fingerprint_equal(NULL, FP_A));
}

static void test_controller_url(void **state)
{
    (void)state;
    const char *good[] = {"https://127.0.0.1:8443", "https://ctl.example.org", "https://[::1]:8443",
                          "https://[fe80::1]", "https://ctl:1"};
    for (size_t i = 0; i < MU_ARRAY_LEN(good); i++)
        if (!mu_enroll_controller_url_valid(good[i]))
            fail_msg("%s refused", good[i]);
    const char *bad[] = {"http://ctl:8443",     "https://",          "https://ctl/path",
                         "https://ctl:0",       "https://ctl:99999", "https://a b",
                         "https://ctl:80@evil", "https://[::1",      "https://[zz]:1",
                         "https://ctl:8443/",   "ftp://ctl",         "https://ctl:84x",
                         "https://c\"tl",       "https://ctl:",      "HTTPS://ctl"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++)
        if (mu_enroll_controller_url_valid(bad[i]))
            fail_msg("%s accepted", bad[i]);
}

static void test_template(void **state)
{
    (void)state;
    char *t = mu_enroll_template("node-1");
    assert_non_null(t);
    assert_non_null(strstr(t, "\ncn = \"node-1\"\n"));
    assert_non_null(strstr(t, "\ntls_www_client\n"));
    free(t);
    /* names that could break out of the quotes or add a line never make a template */
    const char *hostile[] = {"x\"\ncn = \"evil", "Node-1", "node 1",   "",
                             "../etc",           "a\nb",   "node-1\"", "-node"};
    for (size_t i = 0; i < MU_ARRAY_LEN(hostile); i++)
        if (mu_enroll_template(hostile[i]))
            fail_msg("template made for %s", hostile[i]);
    assert_null(mu_enroll_template(NULL));
}

static void test_agent_config(void **state)
{
    (void)state;
    struct mu_enroll_agent_cfg c = {
        .controller_url = "https://127.0.0.1:8443",
        .node_name = "node-1",
        .home = "/home/mu-node1",
        .libvirt_uri = "qemu:///session",
        .interval_s = 1,
    };
    struct mu_err err = {0};
    char *text = mu_enroll_agent_config(&c, &err);
    assert_non_null(text);
    cJSON *o = mu_json_parse(text, strlen(text), "config", &err);
    assert_non_null(o);
    static const char *const keys[] = {"controller_url", "node_name",  "cert",      "key", "ca",
                                       "libvirt_uri",    "interval_s", "spool_dir", NULL};
    assert_int_equal(mu_json_expect_object(o, keys, "config", &err), 0);
    assert_int_equal(cJSON_GetArraySize(o), 8);
    const char *s = NULL;
    assert_int_equal(mu_json_get_str(o, "key", true, 300, &s, &err), 0);
    assert_string_equal(s, "/home/mu-node1/.mutualis/agent.key");
    assert_int_equal(mu_json_get_str(o, "cert", true, 300, &s, &err), 0);
    assert_string_equal(s, "/home/mu-node1/.mutualis/agent.pem");
    assert_int_equal(mu_json_get_str(o, "ca", true, 300, &s, &err), 0);
    assert_string_equal(s, "/home/mu-node1/.mutualis/ca.pem");
    assert_int_equal(mu_json_get_str(o, "spool_dir", true, 300, &s, &err), 0);
    assert_string_equal(s, "/home/mu-node1/.mutualis/spool");
    assert_int_equal(mu_json_get_str(o, "node_name", true, 300, &s, &err), 0);
    assert_string_equal(s, "node-1");
    int64_t iv = 0;
    assert_int_equal(mu_json_get_i64(o, "interval_s", true, 1, 3600, &iv, &err), 0);
    assert_int_equal(iv, 1);
    cJSON_Delete(o);
    free(text);

    /* root's home ends in '/' on some systems */
    c.home = "/";
    c.libvirt_uri = "qemu:///system";
    text = mu_enroll_agent_config(&c, &err);
    assert_non_null(strstr(text, "\"/.mutualis/agent.key\""));
    free(text);

    /* every value from outside is checked */
    struct {
        const char *url, *name, *home, *uri;
        unsigned interval;
        const char *field;
    } bad[] = {
        {"http://127.0.0.1:8443", "node-1", "/home/a", "qemu:///session", 10, "controller_url"},
        {"https://x\",\"key\":\"/etc/shadow", "node-1", "/home/a", "qemu:///session", 10,
         "controller_url"},
        {"https://127.0.0.1", "Node\"", "/home/a", "qemu:///session", 10, "name"},
        {"https://127.0.0.1", "node-1", "home/a", "qemu:///session", 10, "home"},
        {"https://127.0.0.1", "node-1", "/home/a\",\"x", "qemu:///session", 10, "home"},
        {"https://127.0.0.1", "node-1", "/home/../etc", "qemu:///session", 10, "home"},
        {"https://127.0.0.1", "node-1", "/home/a b", "qemu:///session", 10, "home"},
        {"https://127.0.0.1", "node-1", "/home/a", "qemu+ssh://evil/system", 10, "libvirt_uri"},
        {"https://127.0.0.1", "node-1", "/home/a", "qemu:///session", 0, "interval_s"},
        {"https://127.0.0.1", "node-1", "/home/a", "qemu:///session", 3601, "interval_s"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        struct mu_enroll_agent_cfg b = {bad[i].url, bad[i].name, bad[i].home, bad[i].uri,
                                        bad[i].interval};
        struct mu_err e = {0};
        char *t = mu_enroll_agent_config(&b, &e);
        if (t)
            fail_msg("case %zu accepted: %s", i, t);
        assert_int_equal(e.code, MU_EINVAL);
        assert_string_equal(e.field, bad[i].field);
    }
}

static void test_ssh_uri(void **state)
{
    (void)state;
    char *u = mu_enroll_ssh_uri("mu-node1", "127.0.0.1", 2222, false);
    assert_string_equal(u, "qemu+ssh://mu-node1@127.0.0.1:2222/session");
    free(u);
    u = mu_enroll_ssh_uri("root", "node-1.example.org", 22, true);
    assert_string_equal(u, "qemu+ssh://root@node-1.example.org:22/system");
    free(u);
    u = mu_enroll_ssh_uri("root", "::1", 22, true);
    assert_string_equal(u, "qemu+ssh://root@[::1]:22/system");
    free(u);
    assert_null(mu_enroll_ssh_uri("Root", "127.0.0.1", 22, true));
    assert_null(mu_enroll_ssh_uri("root", "a b", 22, true));
    assert_null(mu_enroll_ssh_uri("root", "127.0.0.1", 0, true));
}

static void test_probe_parse(void **state)
{
    (void)state;
    struct mu_enroll_probe p;
    struct mu_err err = {0};
    const char *out = "uid=1001\n"
                      "home=/home/mu-node1\n"
                      "os=Debian GNU/Linux 12 (bookworm)\n"
                      "cpus=2\n"
                      "mem_kib=8147284\n"
                      "virt_flags=0\n"
                      "kvm_dev=0\n"
                      "libvirt=9.0.0\n"
                      "certtool=1\n"
                      "sha256sum=1\n"
                      "setsid=1\n"
                      "systemd=0\n"
                      "agent_sha256="
                      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
                      "something_new=ignored\n";
    assert_int_equal(mu_enroll_probe_parse(out, &p, &err), 0);
    assert_int_equal(p.uid, 1001);
    assert_string_equal(p.home, "/home/mu-node1");
    assert_string_equal(p.os, "Debian GNU/Linux 12 (bookworm)");
    assert_int_equal(p.cpus, 2);
    assert_int_equal(p.mem_kib, 8147284);
    assert_int_equal(p.virt_flags, 0);
    assert_false(p.kvm_dev);
    assert_string_equal(p.libvirt, "9.0.0");
    assert_true(p.certtool && p.sha256sum && p.setsid);
    assert_false(p.systemd);
    assert_string_equal(p.agent_sha256,
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    char *sum = mu_enroll_probe_summary(&p);
    assert_non_null(strstr(sum, "Debian GNU/Linux 12 (bookworm), 2 CPUs, 7.8 GiB memory"));
    assert_non_null(strstr(sum, "software emulation"));
    assert_non_null(strstr(sum, "libvirt 9.0.0"));
    free(sum);

    /* a node's hostile or broken output is bounded, sanitised or ignored */
    char big[2048];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *hostile = mu_xasprintf("uid=0\n"
                                 "home=/root\n"
                                 "os=Evil\x1b[31m OS\x7f\xff\n"
                                 "cpus=-3\n"
                                 "mem_kib=lots\n"
                                 "libvirt=9.0.0; rm -rf /\n"
                                 "agent_sha256=../../etc/passwd\n"
                                 "certtool=yes\n"
                                 "os2=%s\n",
                                 big);
    assert_int_equal(mu_enroll_probe_parse(hostile, &p, &err), 0);
    free(hostile);
    assert_int_equal(p.uid, 0);
    assert_string_equal(p.os, "Evil?[31m OS??");
    assert_int_equal(p.cpus, 0);
    assert_int_equal(p.mem_kib, 0);
    assert_string_equal(p.libvirt, "");
    assert_string_equal(p.agent_sha256, "");
    assert_false(p.certtool);

    /* long UTF-8 names are cut at a character boundary */
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_puts(&b, "uid=5\nhome=/h\nos=");
    for (int i = 0; i < 60; i++)
        mu_buf_puts(&b, "\xc3\xa9"); /* é */
    mu_buf_puts(&b, "\n");
    assert_int_equal(mu_enroll_probe_parse(b.data, &p, &err), 0);
    mu_buf_free(&b);
    assert_true(mu_utf8_valid(p.os, strlen(p.os)));
    assert_true(strlen(p.os) < sizeof p.os);

    const char *missing[] = {"home=/home/a\n",         "uid=1\n",
                             "uid=1\nhome=relative\n", "uid=1\nhome=/home/a;rm\n",
                             "uid=x\nhome=/home/a\n",  ""};
    for (size_t i = 0; i < MU_ARRAY_LEN(missing); i++) {
        struct mu_err e = {0};
        if (mu_enroll_probe_parse(missing[i], &p, &e) != MU_EINVAL)
            fail_msg("probe output %zu accepted", i);
    }
}

/* ---- the store: pinning ------------------------------------------------------------------ */

static int64_t add_node(struct mu_store *st, const char *name)
{
    struct mu_node n = {
        .name = (char *)name, .uri = (char *)"test:///default", .reserved_mem_mib = -1};
    struct mu_audit_rec rec = mu_test_rec("node.create", 0);
    struct mu_err err = {0};
    int64_t id = 0;
    assert_int_equal(mu_store_node_insert(st, &n, &rec, &id, &err), 0);
    return id;
}

static int64_t audit_count(struct mu_store *st, const char *action)
{
    struct mu_audit_filter f = {.limit = 1000};
    struct mu_audit_entry *e = NULL;
    size_t n = 0;
    struct mu_err err = {0};
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    int64_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += strcmp(e[i].action, action) == 0;
    mu_audit_entries_free(e, n);
    return k;
}

static void test_store_pin(void **state)
{
    (void)state;
    struct mu_test_db db;
    mu_test_db_init(&db, NULL);
    int64_t id = add_node(db.st, "node-1");
    struct mu_audit_rec rec = mu_test_rec("node.enroll", 0);
    struct mu_err err = {0};
    struct mu_enrolment e;
    bool pinned = false;
    char old[128] = "";

    assert_int_equal(mu_store_enrolment_get(db.st, id, &e, &err), MU_ENOTFOUND);

    /* first use: pinned, audited */
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_store_enrolment_pin(db.st, id, FP_A, false, &rec, &pinned, old, &err), 0);
    assert_true(pinned);
    assert_int_equal(audit_count(db.st, "node.enroll"), 1);
    /* the same key again: known, nothing written */
    assert_int_equal(mu_store_enrolment_pin(db.st, id, FP_A, false, &rec, &pinned, old, &err), 0);
    assert_false(pinned);
    assert_int_equal(audit_count(db.st, "node.enroll"), 1);
    /* another key: refused, naming both */
    assert_int_equal(mu_store_enrolment_pin(db.st, id, FP_B, false, &rec, &pinned, old, &err),
                     MU_ECONFLICT);
    assert_string_equal(old, FP_A);
    assert_string_equal(err.detail, "the host key of node-1 changed from " FP_A " to " FP_B
                                    ": if this is expected, give the new fingerprint explicitly");
    assert_int_equal(mu_store_enrolment_get(db.st, id, &e, &err), 0);
    assert_string_equal(e.host_key, FP_A);
    mu_enrolment_clear(&e);
    /* given explicitly: replaced */
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_store_enrolment_pin(db.st, id, FP_B, true, &rec, &pinned, old, &err), 0);
    assert_true(pinned);
    assert_int_equal(mu_store_enrolment_get(db.st, id, &e, &err), 0);
    assert_string_equal(e.host_key, FP_B);
    mu_enrolment_clear(&e);
    /* unknown node */
    assert_int_equal(mu_store_enrolment_pin(db.st, 999, FP_A, false, &rec, &pinned, old, &err),
                     MU_ENOTFOUND);

    /* a successful enrolment is recorded and the node marked enrolled */
    struct mu_enrolment rec_e = {.node_id = id,
                                 .ssh_host = (char *)"127.0.0.1",
                                 .ssh_port = 2222,
                                 .ssh_user = (char *)"mu-node1",
                                 .agent_sha256 = (char *)"ab",
                                 .cert_serial = (char *)"01fe",
                                 .cert_not_after_ms = 12345,
                                 .libvirt_uri =
                                     (char *)"qemu+ssh://mu-node1@127.0.0.1:2222/session",
                                 .supervisor = (char *)"setsid"};
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_store_node_set_enrolment(db.st, id, "pending", &err), 0);
    assert_int_equal(mu_store_node_set_enrolment(db.st, id, "bogus", &err), MU_EINVAL);
    memset(&err, 0, sizeof err);
    assert_int_equal(mu_store_enrolment_record(db.st, &rec_e, &rec, &err), 0);
    assert_int_equal(mu_store_enrolment_get(db.st, id, &e, &err), 0);
    assert_string_equal(e.host_key, FP_B); /* kept */
    assert_string_equal(e.ssh_user, "mu-node1");
    assert_int_equal(e.ssh_port, 2222);
    assert_string_equal(e.cert_serial, "01fe");
    assert_string_equal(e.supervisor, "setsid");
    assert_true(e.enrolled_ms > 0);
    mu_enrolment_clear(&e);
    struct mu_node n = {0};
    assert_int_equal(mu_store_node_get(db.st, id, &n, &err), 0);
    assert_string_equal(n.enrolment, "enrolled");
    mu_node_clear(&n);

    /* the URI, audited with old and new */
    assert_int_equal(mu_store_node_set_uri(db.st, id, "qemu:///system", &rec, &err), 0);
    assert_int_equal(mu_store_node_get(db.st, id, &n, &err), 0);
    assert_string_equal(n.uri, "qemu:///system");
    mu_node_clear(&n);

    /* the record goes with the node */
    assert_int_equal(mu_store_node_delete(db.st, id, &rec, &err), 0);
    assert_int_equal(mu_store_enrolment_get(db.st, id, &e, &err), MU_ENOTFOUND);
    mu_test_db_fini(&db);
}

/* ---- refusals before any step, and a failed first step ------------------------------------ */

static void test_enroll_refusals(void **state)
{
    (void)state;
    struct mu_test_db db;
    mu_test_db_init(&db, NULL);
    int64_t id = add_node(db.st, "node-1");
    struct mu_enroll_env env = {.store = db.st,
                                .pki_dir = "/nonexistent",
                                .agent_path = "/nonexistent/mutualis-agent",
                                .actor = "alice",
                                .role = "operator",
                                .request_id = "req-1"};
    struct mu_enroll_req base = {.node_id = id,
                                 .host = "127.0.0.1",
                                 .port = 22,
                                 .user = "mu-node1",
                                 .password = "secret",
                                 .controller_url = "https://127.0.0.1:8443"};
    struct mu_enroll_req q;
    struct mu_enroll_result res;
    struct mu_err err;

#define REFUSED(mutate, want_code, want_field)                                                     \
    do {                                                                                           \
        q = base;                                                                                  \
        mutate;                                                                                    \
        memset(&err, 0, sizeof err);                                                               \
        assert_int_equal(mu_fleet_enroll(&env, &q, &res, &err), want_code);                        \
        assert_string_equal(err.field, want_field);                                                \
        assert_int_equal(res.nsteps, 0);                                                           \
        assert_string_equal(res.failed_step, "");                                                  \
        mu_enroll_result_clear(&res);                                                              \
    } while (0)

    REFUSED(q.host = "-oProxyCommand=touch /tmp/pwned", MU_EINVAL, "host");
    REFUSED(q.host = "127.0.0.1;id", MU_EINVAL, "host");
    REFUSED(q.port = 0, MU_EINVAL, "port");
    REFUSED(q.port = 70000, MU_EINVAL, "port");
    REFUSED(q.user = "root;id", MU_EINVAL, "user");
    REFUSED(q.user = "-l", MU_EINVAL, "user");
    REFUSED(q.private_key = "-----BEGIN OPENSSH PRIVATE KEY-----\n", MU_EINVAL, "password");
    REFUSED(q.password = NULL, MU_EINVAL, "private_key");
    REFUSED((q.password = NULL, q.private_key = "not a key"), MU_EINVAL, "private_key");
    REFUSED(q.password = "", MU_EINVAL, "password");
    REFUSED(q.host_key_sha256 = "MD5:aa:bb", MU_EINVAL, "host_key_sha256");
    REFUSED(q.controller_url = "http://127.0.0.1:8443", MU_EINVAL, "controller_url");
    REFUSED(q.interval_s = 4000, MU_EINVAL, "interval_s");
    REFUSED(q.libvirt_uri = "qemu+ssh://x/system' -o evil", MU_EINVAL, "libvirt_uri");
    REFUSED(q.node_id = 999, MU_ENOTFOUND, "");
    /* a huge key is refused before libssh sees it */
    char *huge = mu_xmalloc(MU_ENROLL_KEY_MAX + 100);
    memset(huge, 'A', MU_ENROLL_KEY_MAX + 99);
    memcpy(huge, "-----BEGIN ", 11);
    huge[MU_ENROLL_KEY_MAX + 99] = '\0';
    REFUSED((q.password = NULL, q.private_key = huge), MU_EINVAL, "private_key");
    free(huge);
    assert_int_equal(audit_count(db.st, "node.enroll"), 0);

    /* a closed port: the first step fails, is audited as failed, the node is left as it was */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    close(s); /* nothing listens there now */
    q = base;
    q.port = ntohs(a.sin_port);
    memset(&err, 0, sizeof err);
    int rc = mu_fleet_enroll(&env, &q, &res, &err);
    assert_int_equal(rc, MU_EUNAVAIL);
    assert_string_equal(res.failed_step, "connect");
    assert_int_equal(res.nsteps, 1);
    assert_string_equal(res.steps[0].outcome, "failed");
    static const char want[] = "enrolment of node-1 failed at step connect: cannot reach "
                               "127.0.0.1 port ";
    if (strncmp(err.detail, want, sizeof want - 1) != 0)
        fail_msg("detail: %s", err.detail);
    mu_enroll_result_clear(&res);
    assert_int_equal(audit_count(db.st, "node.enroll"), 1);
    struct mu_node n = {0};
    assert_int_equal(mu_store_node_get(db.st, id, &n, &err), 0);
    assert_string_equal(n.enrolment, "none");
    mu_node_clear(&n);
    mu_test_db_fini(&db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host),        cmocka_unit_test(test_user),
        cmocka_unit_test(test_fingerprint), cmocka_unit_test(test_controller_url),
        cmocka_unit_test(test_template),    cmocka_unit_test(test_agent_config),
        cmocka_unit_test(test_ssh_uri),     cmocka_unit_test(test_probe_parse),
        cmocka_unit_test(test_store_pin),   cmocka_unit_test(test_enroll_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
