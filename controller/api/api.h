/* api/: the HTTPS JSON API. server.c runs libmicrohttpd (the only code that includes
 * microhttpd.h), router.c matches the route table and enforces authentication, RBAC and
 * auditing of refusals, h_<resource>.c hold the handlers, routes.c holds the table, which
 * is also the single source of the OpenAPI document and the authorization matrix. */
#ifndef MU_API_H
#define MU_API_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "ops/ops.h"
#include "sched/sched.h"
#include "mutualis/err.h"
#include "store/store.h"

struct mu_quota_policy; /* tenancy/quotas.h */
struct mu_ingest;       /* fleet/ingest.h */
struct mu_catalog;      /* catalog/catalog.h */
struct mu_alert_policy; /* alerts/alerts.h */
struct mu_alerts;       /* alerts/alerts.h */
struct mu_notify_allow; /* notify/notify.h */
struct mu_notify;       /* notify/notify.h */
struct mu_net_policy;   /* net/net.h */

/* Shared state handed to every handler. */
struct mu_app {
    struct mu_store *store;
    struct mu_authn *authn;
    pthread_rwlock_t policy_lock; /* guards rbac (swapped on SIGHUP) */
    struct mu_rbac *rbac;
    char *policies_dir;
    char *data_dir;
    size_t body_max;                   /* default request body cap */
    size_t import_body_max;            /* cap for POST /v1/tenants/import */
    size_t upload_max;                 /* cap for streamed uploads (MU_ROUTE_STREAM: image data) */
    struct mu_ops *ops;                /* the operations engine (NULL in API-only tests) */
    struct mu_sched_policy *placement; /* guarded by policy_lock */
    struct mu_quota_policy *quotas;    /* guarded by policy_lock */
    struct mu_ingest *ingest;          /* the report writer (NULL: agent reports refused) */
    /* GET /v1/capacity and /metrics (set before the server starts, read-only after). */
    struct mu_capmon *capmon; /* the background N+1 check (NULL: computed per request) */
    char **metrics_allow;     /* addresses that read /metrics without a token (NULL-ended,
                                 may be NULL: token only) */
    int64_t *metrics_tenants; /* tenants with per-tenant series in /metrics */
    size_t n_metrics_tenants;
    struct mu_catalog *catalog;           /* policies/catalog.json (catalog/catalog.h); guarded by
                                             policy_lock */
    struct mu_alert_policy *alert_policy; /* policies/alerts.json; guarded by policy_lock */
    struct mu_alerts *alerts;             /* the alert monitor (NULL: none runs) */
    /* Webhooks (notify/notify.h): the operator's allow-list that URLs are checked against
     * (NULL: empty), and the dispatcher woken when a webhook is set (NULL: none runs). */
    const struct mu_notify_allow *webhook_allow;
    struct mu_notify *notify;
    struct mu_net_policy *net_policy; /* policies/networks.json (net/net.h); guarded by
                                         policy_lock (NULL: the built-in defaults) */
};

#define MU_MAX_PATH_PARAMS 4
#define MU_REQUEST_ID_MAX  64 /* an incoming X-Request-Id of [A-Za-z0-9-]{1,64} is kept */

/* Where mu_req_query/mu_req_header read from: the server installs a lookup over the MHD
 * connection; tests install their own. */
enum mu_req_value_kind { MU_REQ_HEADER, MU_REQ_QUERY };
typedef const char *(*mu_req_lookup_fn)(void *conn, enum mu_req_value_kind kind, const char *key);

struct mu_req {
    struct mu_app *app;
    const struct mu_route *route;
    const char *method;
    const char *path;
    char request_id[MU_REQUEST_ID_MAX + 1];
    const char *params[MU_MAX_PATH_PARAMS]; /* path parameters in pattern order */
    size_t nparams;
    const char *body; /* NUL-terminated copy of the body (NULL if none) */
    /* MU_ROUTE_STREAM routes: the body was streamed to this temporary file (the handler may
     * rename it; otherwise it is removed after the answer), with its size and SHA-256. */
    const char *upload_path;
    int64_t upload_size;
    char upload_sha256[65];
    size_t body_len;
    bool authenticated;
    struct mu_principal principal;
    void *conn;              /* server-private: the MHD connection, for mu_req_query/header */
    mu_req_lookup_fn lookup; /* reads headers and query parameters from conn */
    char remote_addr[48];    /* peer address ("127.0.0.1", "::1"); refusals are counted by it */
    /* MU_ROUTE_AGENT routes: the client certificate the server verified (signed by the CA,
     * valid now, not revoked): its subject CN (the node's name), serial (lower-case hex)
     * and expiry. client_cn is "" elsewhere. */
    char client_cn[64];
    char client_serial[41];
    int64_t client_not_after_ms;
    /* Deferred answers (MU_ROUTE_AGENT routes): a handler whose answer waits for another
     * thread hands it wake and wake_arg and returns MU_OK with resp->finish set; that thread
     * calls wake(wake_arg) exactly once when the work is done, and the server then calls
     * resp->finish on one of its threads. No server thread waits meanwhile. NULL where the
     * caller cannot defer (the handler then waits itself). */
    void (*wake)(void *wake_arg);
    void *wake_arg;
};

/* Query parameter or request header value (NULL if absent). Borrowed. */
const char *mu_req_query(const struct mu_req *req, const char *key);
const char *mu_req_header(const struct mu_req *req, const char *key);

/* Parses the body strictly as a JSON object (see mutualis/json.h). MU_EINVAL if absent. */
cJSON *mu_req_json(const struct mu_req *req, struct mu_err *err);

/* Path parameter i as a positive id; MU_ENOTFOUND ("no tenant 12x") if not one. */
int mu_req_param_id(const struct mu_req *req, size_t i, const char *what, int64_t *ret,
                    struct mu_err *err);

/* Pagination: ?limit= (1..1000, default 100) and ?after= (an id, default 0). */
int mu_req_page(const struct mu_req *req, int *ret_limit, int64_t *ret_after, struct mu_err *err);

/* Scope: MU_OK if the caller may see this tenant (global roles see all; tenant roles
 * their subtree), MU_ENOTFOUND otherwise (cross-tenant access answers 404). */
int mu_req_check_tenant(const struct mu_req *req, int64_t tenant_id, struct mu_err *err);

/* An audit record for this request: actor, role, request id, action from the route. */
void mu_req_audit(const struct mu_req *req, struct mu_audit_rec *rec, int64_t tenant_id,
                  const char *target);

#define MU_RESP_MAX_HEADERS 6

struct mu_resp {
    int status;     /* 200 if left 0 */
    cJSON *json;    /* body, owned (freed by the server) */
    char *location; /* optional Location header, owned */
    /* MU_ROUTE_RAW handlers: a non-JSON body (owned) and its media type (static string,
     * "text/plain; charset=utf-8" if NULL). json must stay NULL. */
    char *raw;
    size_t raw_len;
    const char *content_type;
    /* Cache-Control of the answer (static string; NULL: "no-store"): the portal's files. */
    const char *cache_control;
    /* More headers (Allow, WWW-Authenticate, Set-Cookie...): see mu_resp_header_add. */
    struct mu_resp_header {
        char *name, *value; /* owned */
    } headers[MU_RESP_MAX_HEADERS];
    size_t nheaders;
    /* A deferred answer (see mu_req.wake): once woken, finish(finish_arg, resp, err) fills
     * resp like a handler (or fails like one). It is called exactly once and frees
     * finish_arg (also when the client has gone: resp is then discarded). */
    int (*finish)(void *finish_arg, struct mu_resp *resp, struct mu_err *err);
    void *finish_arg;
};

/* Adds a response header (copied). Headers past MU_RESP_MAX_HEADERS are dropped. */
void mu_resp_header_add(struct mu_resp *resp, const char *name, const char *value);
/* Frees everything resp owns and zeroes it. */
void mu_resp_clear(struct mu_resp *resp);

/* Handlers return MU_OK with resp filled, or a negative code with err set; the router
 * turns that into problem+json and audits the refusal. */
typedef int (*mu_handler_fn)(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);

enum mu_route_flags {
    MU_ROUTE_PUBLIC = 1 << 0,     /* no authentication (health, openapi) */
    MU_ROUTE_BIG_BODY = 1 << 1,   /* body cap is import_body_max */
    MU_ROUTE_RAW = 1 << 2,        /* handler answers non-JSON (metrics) */
    MU_ROUTE_STREAM = 1 << 3,     /* body streamed to a file (up to upload_max); the caller is
                                     authenticated and authorized before the body is read */
    MU_ROUTE_AGENT = 1 << 4,      /* node agents only: a client certificate signed by the CA, not
                                     expired or revoked, checked from the headers before the body
                                     is read (401 otherwise); no bearer token, no RBAC; body cap
                                     MU_REPORT_MAX_BYTES; the answer may be deferred */
    MU_ROUTE_ADDR_ALLOW = 1 << 5, /* a request without credentials from an address listed in
                                     app->metrics_allow needs no token (Prometheus scrapers);
                                     presented credentials are always checked */
};

struct mu_route {
    const char *method;  /* GET, POST, PATCH, PUT, DELETE */
    const char *pattern; /* "/v1/tenants/{id}" */
    const char *action;  /* RBAC action ("tenant.read"); NULL only for public routes */
    mu_handler_fn handler;
    unsigned flags;
    const char *summary; /* one line for the OpenAPI document */
    const char *tag;     /* OpenAPI tag ("tenants") */
};

extern const struct mu_route mu_routes[];
extern const size_t mu_routes_count;

/* Router: finds the route for method + path; fills params. NULL if none (then
 * *ret_path_known tells 405 from 404). */
const struct mu_route *mu_router_match(const char *method, const char *path,
                                       const char *params[MU_MAX_PATH_PARAMS], size_t *ret_n,
                                       bool *ret_path_known);
/* The same against any table. Params point into scratch, which receives a copy of path
 * and must hold strlen(path) + 1 bytes. (mu_router_match uses a thread-local scratch of
 * 2 KiB, valid until the next call on the same thread; longer paths match nothing.)
 * A literal segment wins over a {param} at the same place; params are never empty and
 * never contain '/'; empty segments (a trailing slash, "//") match nothing. */
const struct mu_route *mu_router_match_in(const struct mu_route *table, size_t n,
                                          const char *method, const char *path, char *scratch,
                                          const char *params[MU_MAX_PATH_PARAMS], size_t *ret_n,
                                          bool *ret_path_known);

/* Runs a request through authentication, RBAC, the handler and auditing. Always fills
 * resp (a problem document on failure). Called by the server. */
void mu_router_dispatch(struct mu_req *req, struct mu_resp *resp);
/* The two halves of dispatch, for streamed routes: authentication and RBAC (true: go on;
 * false: resp holds the refusal), then the handler and auditing of its failure. */
bool mu_router_authorize(struct mu_req *req, struct mu_resp *resp);
void mu_router_handle(struct mu_req *req, struct mu_resp *resp);
/* Builds a deferred answer: runs finish(finish_arg) into resp (a problem document on
 * failure, like mu_router_handle). */
void mu_router_finish(struct mu_req *req,
                      int (*finish)(void *finish_arg, struct mu_resp *resp, struct mu_err *err),
                      void *finish_arg, struct mu_resp *resp);
/* Counts one unauthenticated refusal from addr (the per-minute summary audited by
 * mu_router_flush_refusals): for refusals the server decides itself (client certificates). */
void mu_router_count_refusal(struct mu_app *app, const char *addr);

/* Unauthenticated refusals are counted in memory per (source address, minute), not audited
 * one by one. mu_router_flush_refusals writes one "auth.refused" audit entry per pair whose
 * minute is over; mu_router_flush_refusals_all writes them all (shutdown: mu_server_stop
 * calls it). Return the number of entries written. */
int mu_router_flush_refusals(struct mu_app *app);
int mu_router_flush_refusals_all(struct mu_app *app);

/* Builds an RFC 9457 problem document: type ".../problems/<mu_err_name(err->code)>",
 * title, status (0: mu_problem_status(err->code)), detail, field (when set), request_id.
 * err may be NULL (a generic document for status). */
cJSON *mu_problem_new(int status, const struct mu_err *err, const char *request_id);
/* HTTP status for an error code (MU_EINVAL 400, MU_ENOTFOUND 404, ... internal 500). */
int mu_problem_status(int code);

/* The OpenAPI 3.1 document generated from mu_routes (caller frees). */
cJSON *mu_openapi_build(void);
cJSON *mu_openapi_build_from(const struct mu_route *table, size_t n);

/* ---- capacity monitor (h_capacity.c) -------------------------------------------- */
/* A thread that recomputes the N+1 verdict whenever the nodes' states, capacities or
 * allocation counters (or the placement policy) change, polled every interval_ms, and
 * keeps the last verdict for GET /v1/capacity. It reads app->store and app->placement
 * (under policy_lock). NULL with err set if the thread cannot start. */
struct mu_capmon;
struct mu_capmon *mu_capmon_start(struct mu_app *app, int64_t interval_ms, struct mu_err *err);
/* Stops and joins the thread. NULL is accepted. */
void mu_capmon_stop(struct mu_capmon *m);
/* The N+1 verdict GET /v1/capacity serves (the monitor's last, or computed now when no
 * monitor runs): 1 with *ret_ok and summary (may be NULL) written, 0 when not computed yet,
 * or a negative code with err set. */
int mu_capmon_verdict(struct mu_app *app, bool *ret_ok, char *summary, size_t summary_len,
                      struct mu_err *err);

/* ---- alert monitor (h_alerts.c) --------------------------------------------------- */
/* Starts the alert monitor (alerts/alerts.h) over app: its policies under policy_lock
 * (app->alert_policy, placement, quotas) and the capacity monitor's N+1 verdict; a pass
 * every interval_ms. NULL with err set. Stop it with mu_alerts_stop. */
struct mu_alerts *mu_api_alerts_start(struct mu_app *app, int64_t interval_ms, struct mu_err *err);

/* ---- server ---------------------------------------------------------------------- */
struct mu_server_opts {
    const char *listen_host; /* "127.0.0.1" */
    unsigned port;
    const char *cert_pem, *key_pem; /* server certificate and key (PEM text) */
    const char *ca_pem;             /* CA used to verify client certs (agents) */
    unsigned threads;               /* thread pool size */
    unsigned conn_timeout_s;        /* idle/slow client timeout */
    unsigned conn_limit;
};
struct mu_server;
/* Starts listening (port 0: an ephemeral port, see mu_server_port). NULL with err set. */
struct mu_server *mu_server_start(struct mu_app *app, const struct mu_server_opts *opts,
                                  struct mu_err *err);
/* Stops accepting, lets requests in flight finish (about a second at most), stops the
 * threads and flushes the refusal counters to the audit trail. NULL is accepted. */
void mu_server_stop(struct mu_server *s);
unsigned mu_server_port(const struct mu_server *s);

#endif
