/* The HTTPS server: libmicrohttpd over GnuTLS, the only code that includes microhttpd.h.
 * One internal epoll polling thread per pool slot; each request gets a context from the
 * URI callback (which sees the raw, undecoded URI), its body is accumulated up to the
 * route's cap, then the router answers and one log line is written when the answer has
 * been sent.
 *
 * Agent routes (MU_ROUTE_AGENT): libmicrohttpd only *requests* a client certificate, so
 * the server verifies it itself, from the headers, before any byte of the body is used:
 * chain to the CA the server was started with, client-auth purpose and validity period
 * once per connection (cached in the connection's context), expiry and revocation (a
 * store lookup by serial) at every request. Their answers are deferred: the connection is
 * suspended while the report writer commits, so that no server thread waits for a sync. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/metrics.h"
#include "mutualis/json.h"
#include "mutualis/log.h"
#include "mutualis/report.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"
#include "store/telemetry.h"

/* TLS 1.2 and 1.3 only, AEAD ciphers only, forward-secret key exchange only. */
#define MU_TLS_PRIORITIES                                                                          \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"            \
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"

#define MU_CONN_MEMORY_LIMIT  (64 * 1024) /* headers + one read buffer per connection */
#define MU_DEFAULT_TIMEOUT_S  30
#define MU_DEFAULT_CONN_LIMIT 1024
#define MU_STOP_GRACE_MS      1000
/* Past the cap, the rest of a body is read and dropped (never stored) so that the client
 * sees the 413; beyond this much more the connection is simply closed. */
#define MU_DISCARD_MAX    ((size_t)16 << 20)
#define MU_LOG_PATH_MAX   200
#define MU_RESUME_WAIT_MS 15000 /* at stop, how long deferred answers may still take */

struct mu_server {
    struct MHD_Daemon *daemon;
    struct mu_app *app;
    unsigned port;
    char *cert_pem, *key_pem, *ca_pem; /* kept for the daemon's lifetime */
    atomic_int suspended;              /* connections waiting for a deferred answer */
    atomic_bool stopping;
    atomic_ullong agent_refusals; /* agent requests refused for their certificate */
};

/* Per-connection state (the connection's socket context): the client certificate's
 * verification, done once per connection at its first agent request. */
struct conn_tls {
    bool checked;
    int status; /* 0: verified; else the HTTP status of the refusal */
    char why[200];
    char cn[64];
    char serial[MU_TELEMETRY_SERIAL_MAX];
    int64_t not_before_ms, not_after_ms;
};

/* Per-request state, created by the URI callback and freed on completion. */
struct req_ctx {
    struct timespec start;
    bool started;  /* the access handler has seen the headers */
    bool bad_path; /* the raw path holds an encoded '/' */
    bool answered; /* a response was queued */
    bool too_big;  /* the body passed the cap */
    char request_id[MU_REQUEST_ID_MAX + 1];
    char remote_addr[48];
    char method[16];
    char *path;     /* decoded path, no query */
    char *raw_path; /* the path as sent (still percent-encoded), for the log */
    char *scratch;  /* router's copy of path; params point into it */
    const struct mu_route *route;
    const char *params[MU_MAX_PATH_PARAMS];
    size_t nparams;
    size_t cap;
    size_t discarded;
    struct mu_buf body;
    /* MU_ROUTE_STREAM: the body goes to a temporary file, hashed on the way. */
    int upload_fd;
    char *upload_path;
    gnutls_hash_hd_t upload_hash;
    int64_t upload_size;
    bool upload_failed;
    bool authorized;
    struct mu_principal principal;
    int status;
    size_t bytes;
    char user[64];
    /* MU_ROUTE_AGENT: the verified client certificate, and the deferred answer. */
    char client_cn[64];
    char client_serial[MU_TELEMETRY_SERIAL_MAX];
    int64_t client_not_after_ms;
    struct mu_server *server;
    struct MHD_Connection *conn;
    bool suspended;   /* suspended for a deferred answer: the next call answers */
    bool have_answer; /* answer holds a ready response (no finish) */
    struct mu_resp answer;
    int (*finish)(void *finish_arg, struct mu_resp *resp, struct mu_err *err);
    void *finish_arg;
};

static void ctx_free(struct req_ctx *ctx)
{
    if (!ctx)
        return;
    free(ctx->path);
    free(ctx->raw_path);
    free(ctx->scratch);
    mu_buf_free(&ctx->body);
    if (ctx->upload_fd >= 0)
        close(ctx->upload_fd);
    if (ctx->upload_hash)
        gnutls_hash_deinit(ctx->upload_hash, NULL);
    if (ctx->upload_path) {
        unlink(ctx->upload_path); /* a handler that keeps the file renamed it already */
        free(ctx->upload_path);
    }
    if (ctx->finish) { /* the client left before its deferred answer: release it */
        struct mu_resp gone = {0};
        struct mu_err err = {0};
        ctx->finish(ctx->finish_arg, &gone, &err);
        mu_resp_clear(&gone);
    }
    mu_resp_clear(&ctx->answer);
    free(ctx);
}

/* ---- MHD callbacks: logging, URI, unescaping ---------------------------------------- */

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (msg[i] == '"' || (unsigned char)msg[i] < 0x20)
            msg[i] = '\'';
    /* Mostly per-connection noise (handshakes of scanners, resets): debug level. Start
     * failures are reported by mu_server_start itself. */
    mu_log_debug("http message=\"%s\"", msg);
}

static bool hexval(char c, int *v)
{
    if (c >= '0' && c <= '9')
        *v = c - '0';
    else if (c >= 'a' && c <= 'f')
        *v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        *v = c - 'A' + 10;
    else
        return false;
    return true;
}

/* Percent-decoding of the path and of query keys and values, as MHD's own, except that
 * "%00" stays as it is: a decoded NUL would silently cut a value short. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && hexval(r[1], &hi) && hexval(r[2], &lo) && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* Called with the raw request URI before anything is decoded: the return value becomes
 * the request's context. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct req_ctx *ctx = mu_xcalloc(1, sizeof *ctx);
    clock_gettime(CLOCK_MONOTONIC, &ctx->start);
    mu_buf_init(&ctx->body);
    ctx->upload_fd = -1;
    /* An encoded slash would become a separator after decoding and let a path parameter
     * span two segments: such paths lead nowhere. */
    size_t pathlen = strcspn(uri, "?");
    ctx->raw_path = mu_xstrndup(uri, pathlen < MU_LOG_PATH_MAX ? pathlen : MU_LOG_PATH_MAX);
    for (size_t i = 0; i + 2 < pathlen; i++)
        if (uri[i] == '%' && uri[i + 1] == '2' && (uri[i + 2] == 'f' || uri[i + 2] == 'F'))
            ctx->bad_path = true;
    return ctx;
}

static const char *conn_lookup(void *conn, enum mu_req_value_kind kind, const char *key)
{
    return MHD_lookup_connection_value(
        conn, kind == MU_REQ_HEADER ? MHD_HEADER_KIND : MHD_GET_ARGUMENT_KIND, key);
}

/* ---- request id, address ---------------------------------------------------------- */

static bool request_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok || n >= MU_REQUEST_ID_MAX)
            return false;
    }
    return n > 0;
}

static void request_id_init(struct req_ctx *ctx, struct MHD_Connection *c)
{
    const char *in = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (in && request_id_ok(in)) {
        snprintf(ctx->request_id, sizeof ctx->request_id, "%s", in);
        return;
    }
    unsigned char raw[16];
    if (gnutls_rnd(GNUTLS_RND_NONCE, raw, sizeof raw) != 0)
        mu_random_bytes(raw, sizeof raw);
    mu_hex_encode(raw, sizeof raw, ctx->request_id);
}

static void remote_addr_init(struct req_ctx *ctx, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(ctx->remote_addr, sizeof ctx->remote_addr, "unknown");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                  ctx->remote_addr, sizeof ctx->remote_addr);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                  ctx->remote_addr, sizeof ctx->remote_addr);
}

/* ---- answering -------------------------------------------------------------------- */

static enum MHD_Result send_resp(struct MHD_Connection *c, struct req_ctx *ctx,
                                 struct mu_resp *resp)
{
    int status = resp->status ? resp->status : 200;
    char *body = NULL;
    size_t len = 0;
    const char *ctype = NULL;
    if (resp->raw) {
        body = MU_STEAL(resp->raw);
        len = resp->raw_len;
        ctype = resp->content_type ? resp->content_type : "text/plain; charset=utf-8";
    } else if (resp->json) {
        body = mu_json_print(resp->json);
        len = strlen(body);
        ctype = status >= 400 ? "application/problem+json" : "application/json";
    }
    struct MHD_Response *r =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        mu_resp_clear(resp);
        return MHD_NO;
    }
    if (ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (resp->cache_control)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, resp->cache_control);
    else
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Strict-Transport-Security", "max-age=31536000");
    MHD_add_response_header(r, "X-Request-Id", ctx->request_id);
    if (resp->location)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, resp->location);
    for (size_t i = 0; i < resp->nheaders && i < MU_RESP_MAX_HEADERS; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    mu_resp_clear(resp);
    if (ret == MHD_YES) {
        ctx->answered = true;
        ctx->status = status;
        ctx->bytes = len;
    }
    return ret;
}

static enum MHD_Result send_problem(struct MHD_Connection *c, struct req_ctx *ctx, int status,
                                    int code, const char *detail)
{
    struct mu_err err = {0};
    mu_err_set(&err, code, "%s", detail);
    struct mu_resp resp = {.status = status};
    resp.json = mu_problem_new(status, &err, ctx->request_id);
    return send_resp(c, ctx, &resp);
}

static enum MHD_Result too_big(struct MHD_Connection *c, struct req_ctx *ctx)
{
    char detail[160];
    snprintf(detail, sizeof detail,
             "the request body is larger than the %zu bytes this address accepts", ctx->cap);
    return send_problem(c, ctx, 413, MU_ETOOBIG, detail);
}

static void req_init(struct mu_server *s, struct MHD_Connection *c, struct req_ctx *ctx,
                     struct mu_req *req)
{
    *req = (struct mu_req){.app = s->app,
                           .route = ctx->route,
                           .method = ctx->method,
                           .path = ctx->path,
                           .nparams = ctx->nparams,
                           .body = ctx->body.len ? ctx->body.data : NULL,
                           .body_len = ctx->body.len,
                           .conn = c,
                           .lookup = conn_lookup};
    memcpy(req->request_id, ctx->request_id, sizeof req->request_id);
    memcpy(req->params, ctx->params, sizeof req->params);
    memcpy(req->remote_addr, ctx->remote_addr, sizeof req->remote_addr);
    memcpy(req->client_cn, ctx->client_cn, sizeof req->client_cn);
    memcpy(req->client_serial, ctx->client_serial, sizeof req->client_serial);
    req->client_not_after_ms = ctx->client_not_after_ms;
}

/* A streamed upload: the caller is authenticated and authorized from the headers, before
 * a byte of the body is accepted; the body then goes to a private temporary file. */
static enum MHD_Result stream_begin(struct mu_server *s, struct MHD_Connection *c,
                                    struct req_ctx *ctx)
{
    struct mu_req req;
    req_init(s, c, ctx, &req);
    struct mu_resp resp = {0};
    if (!mu_router_authorize(&req, &resp)) {
        if (req.authenticated)
            snprintf(ctx->user, sizeof ctx->user, "%s", req.principal.user_name);
        return send_resp(c, ctx, &resp);
    }
    mu_resp_clear(&resp);
    ctx->authorized = true;
    ctx->principal = req.principal;
    snprintf(ctx->user, sizeof ctx->user, "%s", req.principal.user_name);
    MU_AUTOFREE char *dir = mu_xasprintf("%s/uploads", s->app->data_dir);
    mu_mkdir_p(dir, 0700);
    ctx->upload_path = mu_xasprintf("%s/upload-%s.part", dir, ctx->request_id);
    ctx->upload_fd = open(ctx->upload_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (ctx->upload_fd < 0 || gnutls_hash_init(&ctx->upload_hash, GNUTLS_DIG_SHA256) < 0) {
        free(ctx->upload_path);
        ctx->upload_path = NULL;
        mu_log_error("upload cannot start dir=%s error=\"%s\"", dir, strerror(errno));
        return send_problem(c, ctx, 500, MU_EIO, "the upload cannot be stored on the controller");
    }
    return MHD_YES;
}

static void stream_chunk(struct req_ctx *ctx, const char *data, size_t n)
{
    if (ctx->upload_failed)
        return;
    gnutls_hash(ctx->upload_hash, data, n);
    while (n > 0) {
        ssize_t w = write(ctx->upload_fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ctx->upload_failed = true;
            return;
        }
        data += w;
        n -= (size_t)w;
        ctx->upload_size += w;
    }
}

/* ---- client certificates (MU_ROUTE_AGENT) ------------------------------------------ */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = mu_xcalloc(1, sizeof(struct conn_tls));
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        free(*socket_context);
        *socket_context = NULL;
    }
}

static int64_t time_ms(time_t t)
{
    return (int64_t)t * 1000;
}

/* Reads the leaf's subject CN, serial and validity into t. */
static bool peer_fields(const gnutls_datum_t *der, struct conn_tls *t)
{
    gnutls_x509_crt_t crt;
    unsigned char serial[20];
    size_t len = sizeof serial, cnlen = sizeof t->cn;
    bool ok = false;

    if (gnutls_x509_crt_init(&crt) < 0)
        return false;
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) >= 0 &&
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, t->cn, &cnlen) >= 0 &&
        gnutls_x509_crt_get_serial(crt, serial, &len) >= 0 && len > 0 && len <= sizeof serial) {
        mu_hex_encode(serial, len, t->serial);
        t->not_before_ms = time_ms(gnutls_x509_crt_get_activation_time(crt));
        t->not_after_ms = time_ms(gnutls_x509_crt_get_expiration_time(crt));
        ok = true;
    }
    gnutls_x509_crt_deinit(crt);
    return ok;
}

/* Verifies the peer's certificate once per connection: present, chained to the CA the
 * server trusts (MHD_OPTION_HTTPS_MEM_TRUST loads it into the session's credentials), for
 * TLS client use, within its validity period, and naming a node. */
static void peer_verify(struct MHD_Connection *c, struct conn_tls *t)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t sess = ci ? (gnutls_session_t)ci->tls_session : NULL;
    unsigned n = 0, status = 0;

    t->checked = true;
    t->status = 401;
    const gnutls_datum_t *peers = sess ? gnutls_certificate_get_peers(sess, &n) : NULL;
    if (!peers || n == 0) {
        snprintf(t->why, sizeof t->why,
                 "this address is for node agents: present a client certificate signed by "
                 "this controller's CA");
        return;
    }
    gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                     .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
    int rc = gnutls_certificate_verify_peers(sess, &purpose, 1, &status);
    if (rc < 0) {
        snprintf(t->why, sizeof t->why, "the client certificate cannot be verified: %s",
                 gnutls_strerror(rc));
        return;
    }
    if (status & GNUTLS_CERT_EXPIRED) {
        snprintf(t->why, sizeof t->why, "the client certificate has expired: renew it");
        return;
    }
    if (status & GNUTLS_CERT_NOT_ACTIVATED) {
        snprintf(t->why, sizeof t->why, "the client certificate is not valid yet");
        return;
    }
    if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA)) {
        snprintf(t->why, sizeof t->why,
                 "the client certificate is not signed by this controller's CA");
        return;
    }
    if (status & GNUTLS_CERT_PURPOSE_MISMATCH) {
        snprintf(t->why, sizeof t->why, "the certificate is not a TLS client certificate");
        return;
    }
    if (status != 0) {
        gnutls_datum_t out = {0};
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) >= 0) {
            snprintf(t->why, sizeof t->why, "the client certificate is not valid: %s",
                     (const char *)out.data);
            gnutls_free(out.data);
        } else {
            snprintf(t->why, sizeof t->why, "the client certificate is not valid");
        }
        return;
    }
    if (!peer_fields(&peers[0], t) || !mu_ident_valid(t->cn)) {
        snprintf(t->why, sizeof t->why, "the client certificate's subject CN is not a node name");
        t->cn[0] = '\0';
        return;
    }
    t->status = 0;
}

/* Refuses the request (from its headers, before the body) unless the connection carries a
 * good client certificate that is valid now and not revoked; fills ctx on success. */
static enum MHD_Result agent_check(struct mu_server *s, struct MHD_Connection *c,
                                   struct req_ctx *ctx)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_tls *t = ci ? ci->socket_context : NULL;
    struct conn_tls none = {.status = 401};
    char why[240];
    int status = 401, code = MU_EUNAUTH;

    if (!t) {
        snprintf(none.why, sizeof none.why, "the connection's TLS state is unknown");
        t = &none;
    } else if (!t->checked) {
        peer_verify(c, t);
    }
    snprintf(why, sizeof why, "%s", t->why);
    if (t->status == 0) {
        int64_t now = mu_now_ms();
        struct mu_err err = {0};
        int revoked = 0;
        if (now < t->not_before_ms || now > t->not_after_ms)
            snprintf(why, sizeof why, "the client certificate has expired: renew it");
        else if ((revoked = mu_store_node_cert_revoked(s->app->store, t->serial, &err)) < 0) {
            mu_log_error("certificate revocation unknown serial=%s error=\"%s\"", t->serial,
                         err.detail);
            snprintf(why, sizeof why, "the certificate's revocation cannot be checked now");
            status = 503;
            code = MU_EBUSY;
        } else if (revoked) {
            snprintf(why, sizeof why, "the client certificate (serial %s) was revoked", t->serial);
        } else {
            snprintf(ctx->client_cn, sizeof ctx->client_cn, "%s", t->cn);
            snprintf(ctx->client_serial, sizeof ctx->client_serial, "%s", t->serial);
            ctx->client_not_after_ms = t->not_after_ms;
            snprintf(ctx->user, sizeof ctx->user, "node:%.58s", t->cn);
            return MHD_YES;
        }
    }
    if (status == 401) {
        atomic_fetch_add(&s->agent_refusals, 1);
        mu_router_count_refusal(s->app, ctx->remote_addr);
        mu_log_debug("agent request refused addr=%s reason=\"%s\"", ctx->remote_addr, why);
    }
    return send_problem(c, ctx, status, code, why);
}

/* Called once by whoever completes a deferred answer (the report writer): the connection's
 * thread then calls on_request again. ctx may be freed as soon as the resume is seen, so
 * nothing of it is touched after. */
static void agent_wake(void *arg)
{
    struct req_ctx *ctx = arg;
    struct mu_server *s = ctx->server;
    struct MHD_Connection *c = ctx->conn;

    MHD_resume_connection(c);
    atomic_fetch_sub(&s->suspended, 1);
}

/* The whole body of an agent request is in: the handler runs with the connection
 * suspended, and either answers at once (wake now) or defers (its worker wakes us). */
static enum MHD_Result agent_dispatch(struct mu_server *s, struct MHD_Connection *c,
                                      struct req_ctx *ctx, struct mu_req *req)
{
    if (atomic_load(&s->stopping))
        return send_problem(c, ctx, 503, MU_EBUSY,
                            "the controller is stopping; send the report again later");
    ctx->server = s;
    ctx->conn = c;
    ctx->suspended = true;
    atomic_fetch_add(&s->suspended, 1);
    MHD_suspend_connection(c);
    req->wake = agent_wake;
    req->wake_arg = ctx;
    struct mu_resp resp = {0};
    mu_router_dispatch(req, &resp);
    if (resp.finish) {
        ctx->finish = resp.finish;
        ctx->finish_arg = resp.finish_arg;
        resp.finish = NULL;
        resp.finish_arg = NULL;
        mu_resp_clear(&resp);
        return MHD_YES;
    }
    ctx->answer = resp;
    ctx->have_answer = true;
    agent_wake(ctx);
    return MHD_YES;
}

/* The call after a resume: the deferred answer is ready. */
static enum MHD_Result agent_answer(struct mu_server *s, struct MHD_Connection *c,
                                    struct req_ctx *ctx)
{
    struct mu_resp resp = {0};
    ctx->suspended = false;
    if (ctx->have_answer) {
        resp = ctx->answer;
        memset(&ctx->answer, 0, sizeof ctx->answer);
        ctx->have_answer = false;
    } else if (ctx->finish) {
        struct mu_req req;
        req_init(s, c, ctx, &req);
        int (*finish)(void *, struct mu_resp *, struct mu_err *) = ctx->finish;
        void *arg = ctx->finish_arg;
        ctx->finish = NULL;
        ctx->finish_arg = NULL;
        mu_router_finish(&req, finish, arg, &resp);
    } else {
        return send_problem(c, ctx, 500, MU_EINTERNAL, "a deferred answer went missing");
    }
    return send_resp(c, ctx, &resp);
}

/* First call for a request: headers are in; no body has been read yet. */
static enum MHD_Result on_headers(struct mu_server *s, struct MHD_Connection *c,
                                  struct req_ctx *ctx, const char *url, const char *method)
{
    ctx->started = true;
    request_id_init(ctx, c);
    remote_addr_init(ctx, c);
    snprintf(ctx->method, sizeof ctx->method, "%s", method);
    ctx->path = mu_xstrdup(url);
    ctx->scratch = mu_xmalloc(strlen(url) + 1);
    bool known = false;
    if (!ctx->bad_path)
        ctx->route = mu_router_match_in(mu_routes, mu_routes_count, method, url, ctx->scratch,
                                        ctx->params, &ctx->nparams, &known);
    ctx->cap = ctx->route && (ctx->route->flags & MU_ROUTE_BIG_BODY) ? s->app->import_body_max
                                                                     : s->app->body_max;
    if (ctx->route && (ctx->route->flags & MU_ROUTE_STREAM))
        ctx->cap = s->app->upload_max;
    if (ctx->route && (ctx->route->flags & MU_ROUTE_AGENT)) {
        /* The certificate first: a refused client gets nothing, not even a size check. */
        ctx->cap = MU_REPORT_MAX_BYTES;
        enum MHD_Result r = agent_check(s, c, ctx);
        if (ctx->answered || r != MHD_YES)
            return r;
    }
    /* A declared length past the cap is refused before a byte of the body is read (a
     * client that sent "Expect: 100-continue" never sends it). */
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t declared = 0;
    if (cl && mu_parse_i64(cl, 0, INT64_MAX, &declared) == 0 && (uint64_t)declared > ctx->cap) {
        ctx->too_big = true;
        /* A client waiting for "100 Continue", or announcing more than we are willing to
         * drain, is answered now; any other client is already sending its body, and closing
         * under it would lose the answer: drain it, then answer 413. */
        const char *expect =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if ((expect && strcasecmp(expect, "100-continue") == 0) ||
            (uint64_t)declared - ctx->cap > MU_DISCARD_MAX)
            return too_big(c, ctx);
    }
    if (!ctx->too_big && ctx->route && (ctx->route->flags & MU_ROUTE_STREAM))
        return stream_begin(s, c, ctx);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct mu_server *s = cls;
    struct req_ctx *ctx = *con_cls;
    if (!ctx) /* the URI callback always runs first; be safe anyway */
        *con_cls = ctx = on_uri(s, "", c);
    if (ctx->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!ctx->started)
        return on_headers(s, c, ctx, url, method);
    if (ctx->suspended)
        return agent_answer(s, c, ctx);

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ctx->upload_path && !ctx->too_big && n <= ctx->cap - (size_t)ctx->upload_size) {
            stream_chunk(ctx, upload_data, n);
            return MHD_YES;
        }
        if (!ctx->upload_path && !ctx->too_big && n <= ctx->cap - ctx->body.len) {
            mu_buf_append(&ctx->body, upload_data, n);
            return MHD_YES;
        }
        ctx->too_big = true;
        mu_buf_free(&ctx->body);
        ctx->discarded += n;
        return ctx->discarded > MU_DISCARD_MAX ? MHD_NO : MHD_YES;
    }

    /* The whole request is in. */
    if (ctx->too_big)
        return too_big(c, ctx);
    if (ctx->bad_path)
        return send_problem(c, ctx, 404, MU_ENOTFOUND,
                            "there is nothing at this address (an encoded '/' is not allowed "
                            "in a path)");

    struct mu_req req;
    req_init(s, c, ctx, &req);
    struct mu_resp resp = {0};
    if (ctx->upload_path) {
        unsigned char digest[32];
        gnutls_hash_deinit(ctx->upload_hash, digest);
        ctx->upload_hash = NULL;
        bool synced = fsync(ctx->upload_fd) == 0;
        close(ctx->upload_fd);
        ctx->upload_fd = -1;
        if (ctx->upload_failed || !synced) {
            mu_log_error("upload cannot be written path=%s", ctx->upload_path);
            return send_problem(c, ctx, 500, MU_EIO,
                                "the upload cannot be stored on the controller (disk full?)");
        }
        mu_hex_encode(digest, sizeof digest, req.upload_sha256);
        req.upload_path = ctx->upload_path;
        req.upload_size = ctx->upload_size;
        req.authenticated = true;
        req.principal = ctx->principal;
        mu_router_handle(&req, &resp);
    } else if (ctx->route && (ctx->route->flags & MU_ROUTE_AGENT)) {
        return agent_dispatch(s, c, ctx, &req);
    } else {
        mu_router_dispatch(&req, &resp);
    }
    if (req.authenticated)
        snprintf(ctx->user, sizeof ctx->user, "%s", req.principal.user_name);
    return send_resp(c, ctx, &resp);
}

/* The path as it goes into the log: as sent, printable ASCII only (a client can put
 * anything in a request line), bounded by MU_LOG_PATH_MAX. */
static void log_path(const char *path, char *out, size_t outlen)
{
    size_t w = 0;
    for (size_t i = 0; path && path[i] && w + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)path[i];
        out[w++] = (ch > 0x20 && ch < 0x7f && ch != '"') ? (char)ch : '?';
    }
    out[w] = '\0';
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req_ctx *ctx = *con_cls;
    if (!ctx)
        return;
    if (ctx->answered) {
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        double ms = (double)(end.tv_sec - ctx->start.tv_sec) * 1e3 +
                    (double)(end.tv_nsec - ctx->start.tv_nsec) / 1e6;
        char path[MU_LOG_PATH_MAX + 2];
        log_path(ctx->raw_path ? ctx->raw_path : ctx->path, path, sizeof path);
        mu_log_info("request method=%s path=%s status=%d ms=%.2f bytes=%zu id=%s user=%s%s",
                    ctx->method, path, ctx->status, ms, ctx->bytes, ctx->request_id,
                    ctx->user[0] ? ctx->user : "-",
                    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " incomplete=1");
        mu_metrics_request_done(ctx->route, ctx->method, ctx->status, ms / 1e3);
    }
    ctx_free(ctx);
    *con_cls = NULL;
}

/* ---- lifecycle -------------------------------------------------------------------- */

/* Loads the certificate and key once with GnuTLS, so that a bad pair is reported as such
 * rather than as a vague failure to start the daemon. */
static int tls_check(const char *cert, const char *key, struct mu_err *err)
{
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return mu_err_set(err, MU_EINTERNAL, "TLS credentials cannot be allocated");
    gnutls_datum_t c = {(unsigned char *)cert, (unsigned)strlen(cert)};
    gnutls_datum_t k = {(unsigned char *)key, (unsigned)strlen(key)};
    int rc = gnutls_certificate_set_x509_key_mem2(cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(cred);
    if (rc < 0)
        return mu_err_set(err, MU_EINVAL, "the server certificate and key are not usable: %s",
                          gnutls_strerror(rc));
    return MU_OK;
}

struct mu_server *mu_server_start(struct mu_app *app, const struct mu_server_opts *opts,
                                  struct mu_err *err)
{
    const char *host = opts->listen_host ? opts->listen_host : "127.0.0.1";
    struct sockaddr_in sin = {0};
    struct sockaddr_in6 sin6 = {0};
    struct sockaddr *sa;
    unsigned flags = MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (opts->port > 65535) {
        mu_err_set(err, MU_EINVAL, "port %u is out of range", opts->port);
        return NULL;
    }
    if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)opts->port);
        sa = (struct sockaddr *)&sin;
    } else if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)opts->port);
        sa = (struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        mu_err_set(err, MU_EINVAL, "listen address \"%.100s\" is not an IPv4 or IPv6 address",
                   host);
        return NULL;
    }
    if (!opts->cert_pem || !opts->key_pem) {
        mu_err_set(err, MU_EINVAL, "the server needs a certificate and a key");
        return NULL;
    }
    if (tls_check(opts->cert_pem, opts->key_pem, err) < 0)
        return NULL;

    struct mu_server *s = mu_xcalloc(1, sizeof *s);
    s->app = app;
    s->cert_pem = mu_xstrdup(opts->cert_pem);
    s->key_pem = mu_xstrdup(opts->key_pem);
    s->ca_pem = mu_xstrdup(opts->ca_pem);
    unsigned threads = opts->threads ? opts->threads : 1;
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_SOCK_ADDR, 0, sa},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)MU_TLS_PRIORITIES},
        {MHD_OPTION_CONNECTION_TIMEOUT,
         (intptr_t)(opts->conn_timeout_s ? opts->conn_timeout_s : MU_DEFAULT_TIMEOUT_S), NULL},
        {MHD_OPTION_CONNECTION_LIMIT,
         (intptr_t)(opts->conn_limit ? opts->conn_limit : MU_DEFAULT_CONN_LIMIT), NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)MU_CONN_MEMORY_LIMIT, NULL},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, s},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, s},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, s},
        /* Asks peers for a certificate (agents have one) and is the trust list that
         * gnutls_certificate_verify_peers uses; verification happens per route. */
        {s->ca_pem ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, s->ca_pem},
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    /* Unused entries above are MHD_OPTION_END: move them to the end of the array. */
    size_t w = 0;
    for (size_t i = 0; i < MU_ARRAY_LEN(ops); i++)
        if (ops[i].option != MHD_OPTION_END)
            ops[w++] = ops[i];
    ops[w] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    errno = 0;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, ops,
                                 MHD_OPTION_END);
    if (!s->daemon) {
        int e = errno;
        mu_err_set(err, MU_EIO, "cannot listen on %s port %u: %s", host, opts->port,
                   e ? strerror(e) : "TLS or option setup failed");
        free(s->cert_pem);
        free(s->key_pem);
        free(s->ca_pem);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : opts->port;
    return s;
}

unsigned mu_server_port(const struct mu_server *s)
{
    return s ? s->port : 0;
}

void mu_server_stop(struct mu_server *s)
{
    if (!s)
        return;
    /* Stop accepting, give requests in flight a moment, then stop the threads (which
     * closes the remaining, mostly idle keep-alive, connections). */
    MHD_socket lsock = MHD_quiesce_daemon(s->daemon);
    /* Suspended connections must all be resumed before the daemon stops: new agent
     * requests are refused from now on, and those under way get their answers. */
    atomic_store(&s->stopping, true);
    int64_t resume_deadline = mu_mono_ms() + MU_RESUME_WAIT_MS;
    while (atomic_load(&s->suspended) > 0 && mu_mono_ms() < resume_deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&s->suspended) > 0)
        mu_log_error("agent requests still waiting at stop count=%d", atomic_load(&s->suspended));
    int64_t deadline = mu_mono_ms() + MU_STOP_GRACE_MS;
    while (mu_mono_ms() < deadline) {
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!di || di->num_connections == 0)
            break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->daemon);
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    if (atomic_load(&s->agent_refusals) > 0)
        mu_log_info("agent requests refused for their client certificate count=%llu",
                    (unsigned long long)atomic_load(&s->agent_refusals));
    mu_router_flush_refusals_all(s->app);
    free(s->cert_pem);
    free(s->key_pem);
    free(s->ca_pem);
    free(s);
}
