/* api/server: a local smoke test over real HTTPS. Starts mu_server_start on an ephemeral
 * port with a CA and certificate from fleet/pki, talks to it with the curl command (and
 * GnuTLS directly for protocol versions), and checks statuses, headers, body caps, the
 * request id, keep-alive and the refusal of old TLS.
 *
 * Like test_router, this executable defines its own mu_routes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "fleet/pki.h"
#include "mutualis/json.h"

/* ---- routes ----------------------------------------------------------------------- */

static int h_health(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    resp->json = mu_json_obj();
    mu_json_add_str(resp->json, "status", "ok");
    return MU_OK;
}

static int h_echo(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    resp->json = mu_json_obj();
    mu_json_add_i64(resp->json, "len", (int64_t)req->body_len);
    const char *q = mu_req_query(req, "q");
    mu_json_add_str(resp->json, "q", q);
    return MU_OK;
}

static int h_item(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    resp->json = mu_json_obj();
    mu_json_add_str(resp->json, "id", req->params[0]);
    return MU_OK;
}

static int h_metrics(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    resp->raw = mu_xstrdup("mu_up 1\n");
    resp->raw_len = strlen(resp->raw);
    resp->content_type = "text/plain; version=0.0.4";
    return MU_OK;
}

const struct mu_route mu_routes[] = {
    {"GET", "/v1/health", NULL, h_health, MU_ROUTE_PUBLIC, "Health", "meta"},
    {"POST", "/v1/echo", NULL, h_echo, MU_ROUTE_PUBLIC, "Echo", "meta"},
    {"POST", "/v1/import", NULL, h_echo, MU_ROUTE_PUBLIC | MU_ROUTE_BIG_BODY, "Import", "meta"},
    {"GET", "/v1/items/{id}", NULL, h_item, MU_ROUTE_PUBLIC, "Item", "meta"},
    {"GET", "/v1/secret", "secret.read", h_health, 0, "Needs a token", "meta"},
    {"GET", "/metrics", NULL, h_metrics, MU_ROUTE_PUBLIC | MU_ROUTE_RAW, "Metrics", "meta"},
};
const size_t mu_routes_count = MU_ARRAY_LEN(mu_routes);

/* ---- fixture ---------------------------------------------------------------------- */

struct fx {
    char dir[64];
    struct mu_pki_files pki;
    struct mu_store *st;
    struct mu_app app;
    struct mu_server *srv;
    unsigned port;
};

static int setup(void **state)
{
    struct fx *f = mu_xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu-server-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    struct mu_err err = {0};
    char *pki_dir = mu_xasprintf("%s/pki", f->dir);
    const char *const names[] = {"127.0.0.1", "localhost", NULL};
    assert_int_equal(mu_pki_ensure(pki_dir, names, &f->pki, &err), 0);
    free(pki_dir);
    char *db = mu_xasprintf("%s/db", f->dir);
    struct mu_store_opts so = {
        .path = db, .audit_key = "0123456789abcdef0123456789abcdef", .audit_key_len = 32};
    f->st = mu_store_open(&so, &err);
    free(db);
    if (!f->st)
        fail_msg("store: %s", err.detail);
    f->app.store = f->st;
    f->app.authn = mu_authn_new(f->st);
    pthread_rwlock_init(&f->app.policy_lock, NULL);
    f->app.body_max = 1024;
    f->app.import_body_max = 64 * 1024;
    struct mu_server_opts o = {.listen_host = "127.0.0.1",
                               .port = 0,
                               .cert_pem = f->pki.server_pem,
                               .key_pem = f->pki.server_key,
                               .ca_pem = f->pki.ca_pem,
                               .threads = 2,
                               .conn_timeout_s = 5,
                               .conn_limit = 64};
    f->srv = mu_server_start(&f->app, &o, &err);
    if (!f->srv)
        fail_msg("server: %s", err.detail);
    f->port = mu_server_port(f->srv);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mu_server_stop(f->srv);
    mu_authn_free(f->app.authn);
    pthread_rwlock_destroy(&f->app.policy_lock);
    mu_store_close(f->st);
    mu_pki_files_clear(&f->pki);
    char *cmd = mu_xasprintf("rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

/* ---- curl ------------------------------------------------------------------------- */

struct answer {
    int status;
    char *headers;
    char *body;
    char *meta; /* the -w output after the status */
};

static void answer_clear(struct answer *a)
{
    free(a->headers);
    free(a->body);
    free(a->meta);
    memset(a, 0, sizeof *a);
}

/* Runs curl with extra arguments (shell syntax) against path; fills a. */
static void curl(struct fx *f, const char *args, const char *path, struct answer *a)
{
    char *cmd = mu_xasprintf("curl -sS --cacert %s/pki/ca.pem -D %s/h -o %s/b "
                             "-w '%%{http_code} %%{num_connects}\\n' %s 'https://127.0.0.1:%u%s'",
                             f->dir, f->dir, f->dir, args, f->port, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[256] = "";
    struct mu_buf out;
    mu_buf_init(&out);
    while (fgets(line, sizeof line, p))
        mu_buf_puts(&out, line);
    pclose(p);
    memset(a, 0, sizeof *a);
    a->meta = mu_buf_steal(&out);
    a->status = (int)strtol(a->meta, NULL, 10);
    char *hp = mu_xasprintf("%s/h", f->dir), *bp = mu_xasprintf("%s/b", f->dir);
    a->headers = mu_read_file(hp, 1 << 20, NULL);
    a->body = mu_read_file(bp, 1 << 20, NULL);
    if (!a->headers)
        a->headers = mu_xstrdup("");
    if (!a->body)
        a->body = mu_xstrdup("");
    unlink(hp);
    unlink(bp);
    free(hp);
    free(bp);
    free(cmd);
}

/* Value of header name in the last response of a (case-insensitive name), or NULL.
 * Returns a static buffer. */
static const char *header(const struct answer *a, const char *name)
{
    static char value[256];
    const char *last = NULL;
    size_t nlen = strlen(name);
    for (const char *p = a->headers; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = len - (size_t)(v - p);
            while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            snprintf(value, sizeof value, "%.*s", (int)vlen, v);
            last = value;
        }
        p = eol ? eol + 1 : p + len;
    }
    return last;
}

static bool is_hex32(const char *s)
{
    if (!s || strlen(s) != 32)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static cJSON *body_json(const struct answer *a)
{
    struct mu_err err = {0};
    cJSON *j = mu_json_parse(a->body, strlen(a->body), "response", &err);
    if (!j)
        fail_msg("response is not JSON: %s (%s)", err.detail, a->body);
    return j;
}

static char *make_file(struct fx *f, const char *name, size_t size)
{
    char *path = mu_xasprintf("%s/%s", f->dir, name);
    char *data = mu_xmalloc(size);
    memset(data, 'x', size);
    assert_int_equal(mu_write_file_atomic(path, data, size, 0600), 0);
    free(data);
    return path;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_health_and_headers(void **state)
{
    struct fx *f = *state;
    struct answer a;
    curl(f, "", "/v1/health", &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(header(&a, "Content-Type"), "application/json");
    assert_string_equal(header(&a, "Cache-Control"), "no-store");
    assert_string_equal(header(&a, "X-Content-Type-Options"), "nosniff");
    assert_non_null(header(&a, "Strict-Transport-Security"));
    assert_true(is_hex32(header(&a, "X-Request-Id")));
    cJSON *j = body_json(&a);
    assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "ok");
    cJSON_Delete(j);
    answer_clear(&a);

    /* A raw (non-JSON) route keeps its own media type. */
    curl(f, "", "/metrics", &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(header(&a, "Content-Type"), "text/plain; version=0.0.4");
    assert_string_equal(a.body, "mu_up 1\n");
    answer_clear(&a);
}

static void test_not_found_and_method(void **state)
{
    struct fx *f = *state;
    struct answer a;
    curl(f, "", "/v1/nothing", &a);
    assert_int_equal(a.status, 404);
    assert_string_equal(header(&a, "Content-Type"), "application/problem+json");
    assert_true(is_hex32(header(&a, "X-Request-Id")));
    cJSON *j = body_json(&a);
    assert_int_equal(cJSON_GetObjectItem(j, "status")->valueint, 404);
    assert_string_equal(cJSON_GetObjectItem(j, "request_id")->valuestring,
                        header(&a, "X-Request-Id"));
    cJSON_Delete(j);
    answer_clear(&a);

    curl(f, "-X DELETE", "/v1/health", &a);
    assert_int_equal(a.status, 405);
    assert_string_equal(header(&a, "Allow"), "GET");
    answer_clear(&a);

    /* Trailing slash, encoded slash in a parameter. */
    curl(f, "", "/v1/health/", &a);
    assert_int_equal(a.status, 404);
    answer_clear(&a);
    curl(f, "", "/v1/items/a%2Fb", &a);
    assert_int_equal(a.status, 404);
    answer_clear(&a);
    curl(f, "", "/v1/items/a%20b?x=1", &a);
    assert_int_equal(a.status, 200);
    j = body_json(&a);
    assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "a b");
    cJSON_Delete(j);
    answer_clear(&a);

    /* Authentication required: 401 with a challenge. */
    curl(f, "", "/v1/secret", &a);
    assert_int_equal(a.status, 401);
    assert_non_null(header(&a, "WWW-Authenticate"));
    answer_clear(&a);
}

static void test_bodies(void **state)
{
    struct fx *f = *state;
    struct answer a;
    char *small = make_file(f, "small", 1000);
    char *big = make_file(f, "big", 5000);
    char *huge = make_file(f, "huge", 3 << 20);
    char *args;

    args = mu_xasprintf("-H 'Content-Type: application/json' --data-binary @%s", small);
    curl(f, args, "/v1/echo?q=caf%C3%A9%00x", &a);
    free(args);
    assert_int_equal(a.status, 200);
    cJSON *j = body_json(&a);
    assert_int_equal(cJSON_GetObjectItem(j, "len")->valueint, 1000);
    /* %00 is not decoded into a NUL that would cut the value. */
    assert_string_equal(cJSON_GetObjectItem(j, "q")->valuestring, "caf\xc3\xa9%00x");
    cJSON_Delete(j);
    answer_clear(&a);

    /* Past the cap with a Content-Length: 413 before the body is read. */
    args = mu_xasprintf("--data-binary @%s", big);
    curl(f, args, "/v1/echo", &a);
    free(args);
    assert_int_equal(a.status, 413);
    assert_string_equal(header(&a, "Content-Type"), "application/problem+json");
    assert_non_null(strstr(a.body, "too-large"));
    answer_clear(&a);

    /* A large upload (curl sends Expect: 100-continue) is refused the same way. */
    args = mu_xasprintf("--data-binary @%s", huge);
    curl(f, args, "/v1/echo", &a);
    free(args);
    assert_int_equal(a.status, 413);
    answer_clear(&a);

    /* Chunked, no length: counted as it arrives. */
    args = mu_xasprintf("-H 'Transfer-Encoding: chunked' --data-binary @%s", big);
    curl(f, args, "/v1/echo", &a);
    free(args);
    assert_int_equal(a.status, 413);
    answer_clear(&a);
    args = mu_xasprintf("-H 'Transfer-Encoding: chunked' --data-binary @%s", small);
    curl(f, args, "/v1/echo", &a);
    free(args);
    assert_int_equal(a.status, 200);
    answer_clear(&a);

    /* The big-body route has its own cap. */
    args = mu_xasprintf("--data-binary @%s", big);
    curl(f, args, "/v1/import", &a);
    free(args);
    assert_int_equal(a.status, 200);
    j = body_json(&a);
    assert_int_equal(cJSON_GetObjectItem(j, "len")->valueint, 5000);
    cJSON_Delete(j);
    answer_clear(&a);

    /* The server is still fine afterwards. */
    curl(f, "", "/v1/health", &a);
    assert_int_equal(a.status, 200);
    answer_clear(&a);
    free(small);
    free(big);
    free(huge);
}

static void test_request_id_and_keepalive(void **state)
{
    struct fx *f = *state;
    struct answer a;
    curl(f, "-H 'X-Request-Id: my-trace-0001'", "/v1/health", &a);
    assert_string_equal(header(&a, "X-Request-Id"), "my-trace-0001");
    answer_clear(&a);
    curl(f, "-H 'X-Request-Id: not valid!'", "/v1/health", &a);
    assert_true(is_hex32(header(&a, "X-Request-Id")));
    answer_clear(&a);
    char too_long[80];
    memset(too_long, 'a', 65);
    too_long[65] = '\0';
    char *args = mu_xasprintf("-H 'X-Request-Id: %s'", too_long);
    curl(f, args, "/v1/health", &a);
    free(args);
    assert_true(is_hex32(header(&a, "X-Request-Id")));
    answer_clear(&a);

    /* Two transfers in one curl run: the second reuses the connection (0 new connects). */
    args = mu_xasprintf("'https://127.0.0.1:%u/v1/health' -o /dev/null", f->port);
    curl(f, args, "/v1/health", &a);
    free(args);
    assert_non_null(strstr(a.meta, "200 1\n200 0\n"));
    answer_clear(&a);
}

/* Handshake with the given client priorities; 0 on success or a GnuTLS error. */
static int tls_try(unsigned port, const char *prio)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    gnutls_certificate_credentials_t cred;
    gnutls_session_t s;
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
    assert_int_equal(gnutls_init(&s, GNUTLS_CLIENT), 0);
    assert_int_equal(gnutls_priority_set_direct(s, prio, NULL), 0);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 5000);
    int rc;
    do
        rc = gnutls_handshake(s);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (getenv("MU_TEST_VERBOSE"))
        fprintf(stderr, "tls_try %s: %s\n", prio, rc == 0 ? "ok" : gnutls_strerror(rc));
    if (rc == 0)
        gnutls_bye(s, GNUTLS_SHUT_WR);
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    close(fd);
    return rc;
}

static void test_tls_versions(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tls_try(f->port, "NORMAL:-VERS-ALL:+VERS-TLS1.3"), 0);
    assert_int_equal(tls_try(f->port, "NORMAL:-VERS-ALL:+VERS-TLS1.2"), 0);
    assert_true(tls_try(f->port, "NORMAL:-VERS-ALL:+VERS-TLS1.1") < 0);
    assert_true(tls_try(f->port, "NORMAL:-VERS-ALL:+VERS-TLS1.0") < 0);
    /* TLS 1.2 without AEAD (CBC + HMAC) is refused. */
    assert_true(tls_try(f->port, "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:"
                                 "+AES-256-CBC:-MAC-ALL:+SHA1:+SHA256") < 0);
    /* And the server survives all that. */
    struct answer a;
    curl(f, "--tlsv1.2 --tls-max 1.2", "/v1/health", &a);
    assert_int_equal(a.status, 200);
    answer_clear(&a);
}

/* Sends raw bytes over TLS; returns what the server answered before closing (or within
 * two seconds) when read_reply, else closes right away. Caller frees. */
static char *tls_raw(unsigned port, const char *data, size_t len, bool read_reply)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    gnutls_certificate_credentials_t cred;
    gnutls_session_t s;
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
    assert_int_equal(gnutls_init(&s, GNUTLS_CLIENT), 0);
    assert_int_equal(gnutls_set_default_priority(s), 0);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 5000);
    gnutls_record_set_timeout(s, 2000);
    int rc;
    do
        rc = gnutls_handshake(s);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    assert_int_equal(rc, 0);
    for (size_t off = 0; off < len;) {
        ssize_t w = gnutls_record_send(s, data + off, len - off);
        if (w < 0)
            break; /* the server may close early: fine */
        off += (size_t)w;
    }
    struct mu_buf b;
    mu_buf_init(&b);
    while (read_reply) {
        char buf[4096];
        ssize_t r = gnutls_record_recv(s, buf, sizeof buf);
        if (r <= 0)
            break;
        mu_buf_append(&b, buf, (size_t)r);
    }
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    close(fd);
    return mu_buf_steal(&b);
}

/* Malformed requests, clients that vanish mid-body, oversized headers: the server
 * answers what it can, frees everything (ASan checks at exit) and keeps serving. */
static void test_abrupt_clients(void **state)
{
    struct fx *f = *state;
    static const char bad_header[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n";
    char *r = tls_raw(f->port, bad_header, sizeof bad_header - 1, true);
    assert_non_null(strstr(r, " 400 "));
    free(r);

    static const char half_body[] = "POST /v1/echo HTTP/1.1\r\nHost: x\r\n"
                                    "Content-Type: application/json\r\nContent-Length: 500\r\n"
                                    "\r\n{\"a\":";
    free(tls_raw(f->port, half_body, sizeof half_body - 1, false));

    static const char half_headers[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-A: b";
    free(tls_raw(f->port, half_headers, sizeof half_headers - 1, false));

    struct mu_buf big;
    mu_buf_init(&big);
    mu_buf_puts(&big, "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < 200 * 1024; i++)
        mu_buf_append(&big, "y", 1);
    mu_buf_puts(&big, "\r\n\r\n");
    r = tls_raw(f->port, big.data, big.len, true);
    assert_null(strstr(r, " 200 "));
    free(r);
    mu_buf_free(&big);

    /* Two requests pipelined on one connection both get their answer. */
    static const char two[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    r = tls_raw(f->port, two, sizeof two - 1, true);
    assert_non_null(strstr(r, "HTTP/1.1 200 "));
    assert_non_null(strstr(r, "HTTP/1.1 404 "));
    free(r);

    struct answer a;
    curl(f, "", "/v1/health", &a);
    assert_int_equal(a.status, 200);
    answer_clear(&a);
}

/* Many clients at once on the thread pool, some refused (the refusal counter is shared). */
static void test_parallel(void **state)
{
    struct fx *f = *state;
    char *cmd = mu_xasprintf("for i in $(seq 24); do "
                             "curl -sS --cacert %s/pki/ca.pem -w '%%{http_code}\\n' "
                             "-o /dev/null 'https://127.0.0.1:%u/v1/health' "
                             "-o /dev/null 'https://127.0.0.1:%u/v1/secret' & "
                             "done; wait",
                             f->dir, f->port, f->port);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[64];
    int ok = 0, refused = 0, other = 0;
    while (fgets(line, sizeof line, p)) {
        if (strcmp(line, "200\n") == 0)
            ok++;
        else if (strcmp(line, "401\n") == 0)
            refused++;
        else {
            other++;
            fprintf(stderr, "parallel: unexpected %s", line);
        }
    }
    pclose(p);
    free(cmd);
    assert_int_equal(ok, 24);
    assert_int_equal(refused, 24);
    assert_int_equal(other, 0);
}

static void test_start_errors(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    struct mu_server_opts o = {.listen_host = "127.0.0.1",
                               .port = f->port,
                               .cert_pem = f->pki.server_pem,
                               .key_pem = f->pki.server_key};
    assert_null(mu_server_start(&f->app, &o, &err));
    assert_int_equal(err.code, MU_EIO);
    assert_non_null(strstr(err.detail, "cannot listen"));
    if (getenv("MU_TEST_VERBOSE"))
        fprintf(stderr, "busy port: %s\n", err.detail);
    mu_err_clear(&err);
    o.listen_host = "ctl.example.org";
    assert_null(mu_server_start(&f->app, &o, &err));
    assert_int_equal(err.code, MU_EINVAL);
    mu_err_clear(&err);
    o.listen_host = "127.0.0.1";
    o.port = 0;
    o.key_pem = "not a key";
    assert_null(mu_server_start(&f->app, &o, &err));
    assert_int_equal(err.code, MU_EINVAL);
    mu_err_clear(&err);
    /* IPv6 loopback, where the machine has it. */
    o.listen_host = "::1";
    o.key_pem = f->pki.server_key;
    struct mu_server *s6 = mu_server_start(&f->app, &o, &err);
    if (s6) {
        assert_true(mu_server_port(s6) > 0);
        mu_server_stop(s6);
    }
    mu_server_stop(NULL);
}

/* One log line per request, after the answer. */
static void test_log_line(void **state)
{
    struct fx *f = *state;
    char *log_path = mu_xasprintf("%s/log", f->dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    struct answer a;
    curl(f, "-H 'X-Request-Id: log-check-1'", "/v1/items/9?secret=1", &a);
    answer_clear(&a);
    char *text = NULL;
    for (int i = 0; i < 100; i++) {
        free(text);
        text = mu_read_file(log_path, 1 << 20, NULL);
        if (text && strstr(text, "id=log-check-1"))
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    assert_non_null(text);
    assert_non_null(strstr(text, "request method=GET path=/v1/items/9 status=200 ms="));
    assert_non_null(strstr(text, " id=log-check-1 user=-"));
    assert_null(strstr(text, "secret"));
    free(text);
    free(log_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_id_and_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abrupt_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_line, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
