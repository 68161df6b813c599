/* report/send: the HTTPS client against a local receiver that requires a client certificate
 * (tests/integration/agent_receiver.py, Python ssl with CERT_REQUIRED): acknowledgements,
 * one kept-alive connection for several reports, an out-of-order answer, a refusal without
 * an acknowledgement, a client certificate from another CA (refused by the receiver), a
 * controller certificate from another CA (refused by the agent: the CA is pinned), nothing
 * listening, and a plain http URL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mutualis/json.h"
#include "mutualis/report.h"
#include "mutualis/util.h"
#include "report/send.h"

#ifndef MU_SOURCE_DIR
#define MU_SOURCE_DIR "."
#endif

struct fixture {
    char dir[64];
    pid_t pid;
    int port;
    char url[64];
    char pki[128];
};

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = mu_xasprintf("%s/%s", path, e->d_name);
        rm_rf(p);
        free(p);
    }
    closedir(d);
    rmdir(path);
}

static int setup(void **state)
{
    struct fixture *f = mu_xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu-send-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *port_file = mu_xasprintf("%s/port", f->dir);
    const char *src = getenv("MU_SOURCE_DIR") ? getenv("MU_SOURCE_DIR") : MU_SOURCE_DIR;
    char *script = mu_xasprintf("%s/tests/integration/agent_receiver.py", src);
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        execlp("python3", "python3", script, "--dir", f->dir, "--port-file", port_file,
               (char *)NULL);
        _exit(127);
    }
    /* The receiver makes its certificates first (certtool): wait for its port. */
    for (int i = 0; i < 600 && f->port == 0; i++) {
        char *txt = mu_read_file(port_file, 64, NULL);
        if (txt)
            f->port = (int)strtol(txt, NULL, 10);
        free(txt);
        int st;
        if (f->port == 0 && waitpid(f->pid, &st, WNOHANG) == f->pid)
            fail_msg("the receiver exited (status %d)", st);
        struct timespec ts = {0, 100 * 1000 * 1000};
        if (f->port == 0)
            nanosleep(&ts, NULL);
    }
    assert_true(f->port > 0);
    snprintf(f->url, sizeof f->url, "https://127.0.0.1:%d/", f->port);
    snprintf(f->pki, sizeof f->pki, "%s/pki", f->dir);
    free(port_file);
    free(script);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kill(f->pid, SIGTERM);
    waitpid(f->pid, NULL, 0);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static struct mu_sender *sender(const struct fixture *f, const char *url, const char *cert,
                                const char *ca)
{
    char *c = mu_xasprintf("%s/%s.pem", f->pki, cert);
    char *k = mu_xasprintf("%s/%s.key", f->pki, cert);
    char *a = mu_xasprintf("%s/%s.pem", f->pki, ca);
    struct mu_sender_opts o = {.controller_url = url, .cert = c, .key = k, .ca = a};
    struct mu_err err = {0};
    struct mu_sender *s = mu_sender_new(&o, &err);
    if (!s)
        fail_msg("%s", err.detail);
    free(c);
    free(k);
    free(a);
    return s;
}

static char *report_text(const char *epoch, int64_t seq)
{
    struct mu_report r = {0};
    snprintf(r.node, sizeof r.node, "node-1");
    snprintf(r.epoch, sizeof r.epoch, "%s", epoch);
    r.seq = seq;
    r.time_ms = mu_now_ms();
    r.host.cpus = 1;
    return mu_report_print(&r);
}

/* The receiver's events of one kind ("report", "refused"), as cJSON items in an array. */
static cJSON *events(const struct fixture *f, const char *kind)
{
    char *path = mu_xasprintf("%s/events.jsonl", f->dir);
    char *text = mu_read_file(path, 1 << 20, NULL);
    cJSON *out = mu_json_arr();
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = '\0';
        cJSON *ev = cJSON_Parse(line);
        assert_non_null(ev);
        if (strcmp(cJSON_GetObjectItem(ev, "ev")->valuestring, kind) == 0)
            cJSON_AddItemToArray(out, ev);
        else
            cJSON_Delete(ev);
        line = nl + 1;
    }
    free(text);
    free(path);
    return out;
}

static void test_acks_keepalive(void **state)
{
    struct fixture *f = *state;
    struct mu_sender *s = sender(f, f->url, "client", "ca");
    const char *epoch = "0123456789abcdef0123456789abcdef";
    struct mu_send_answer ans;
    struct mu_err err = {0};
    for (int64_t seq = 1; seq <= 3; seq++) {
        char *text = report_text(epoch, seq);
        if (mu_sender_post(s, text, strlen(text), &ans, &err) != 0)
            fail_msg("seq %lld: %s", (long long)seq, err.detail);
        free(text);
        assert_int_equal(ans.status, 200);
        assert_string_equal(ans.epoch, epoch);
        assert_int_equal(ans.acked_seq, seq);
    }
    /* Out of order: the answer still carries the ack. */
    char *text = report_text(epoch, 9);
    assert_int_equal(mu_sender_post(s, text, strlen(text), &ans, &err), 0);
    free(text);
    assert_int_equal(ans.status, 409);
    assert_int_equal(ans.acked_seq, 3);
    /* A refusal without one. */
    assert_int_equal(mu_sender_post(s, "{\"x\":1}", 7, &ans, &err), MU_EINVAL);
    assert_int_equal(ans.status, 400);
    assert_string_equal(ans.detail, "not a report");
    mu_sender_free(s);

    /* Five requests, one TLS connection, and the receiver saw the certificate's name. */
    cJSON *evs = events(f, "report");
    assert_int_equal(cJSON_GetArraySize(evs), 4);
    const char *peer = cJSON_GetObjectItem(cJSON_GetArrayItem(evs, 0), "peer")->valuestring;
    cJSON *ev;
    cJSON_ArrayForEach(ev, evs)
    {
        assert_string_equal(cJSON_GetObjectItem(ev, "peer")->valuestring, peer);
        assert_string_equal(cJSON_GetObjectItem(ev, "cn")->valuestring, "node-1");
    }
    cJSON_Delete(evs);
}

static void test_refusals(void **state)
{
    struct fixture *f = *state;
    const char *epoch = "fedcba9876543210fedcba9876543210";
    char *text = report_text(epoch, 1);
    struct mu_send_answer ans;
    struct mu_err err = {0};

    /* A client certificate from another CA: the receiver refuses the handshake. */
    struct mu_sender *s = sender(f, f->url, "other-client", "ca");
    assert_int_equal(mu_sender_post(s, text, strlen(text), &ans, &err), MU_EUNAVAIL);
    mu_sender_free(s);
    cJSON *refused = events(f, "refused");
    assert_int_equal(cJSON_GetArraySize(refused), 1);
    cJSON_Delete(refused);

    /* The controller's certificate does not chain to the pinned CA: the agent refuses. */
    mu_err_clear(&err);
    s = sender(f, f->url, "client", "other-ca");
    assert_int_equal(mu_sender_post(s, text, strlen(text), &ans, &err), MU_EUNAVAIL);
    assert_int_equal(ans.status, 0);
    mu_sender_free(s);

    /* Nothing listening. */
    mu_err_clear(&err);
    s = sender(f, "https://127.0.0.1:1", "client", "ca");
    assert_int_equal(mu_sender_post(s, text, strlen(text), &ans, &err), MU_EUNAVAIL);
    assert_non_null(strstr(err.detail, "connect"));
    mu_sender_free(s);

    /* Nothing was stored. */
    cJSON *evs = events(f, "report");
    assert_int_equal(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);
    free(text);

    struct mu_sender_opts o = {.controller_url = "http://127.0.0.1:1"};
    mu_err_clear(&err);
    assert_null(mu_sender_new(&o, &err));
    assert_non_null(strstr(err.detail, "https://"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_acks_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
