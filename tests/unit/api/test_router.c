/* api/router, api/problem, api/request, api/openapi: matching (params, 404 vs 405,
 * literal over parameter), the problem document shape, and dispatch through real
 * authentication, RBAC and auditing over a store in a temporary directory.
 *
 * This executable defines its own mu_routes: the linker then never pulls routes.c (and
 * the real handlers) out of the mu_api archive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/api.h"
#include "mutualis/json.h"

/* ---- a small route table ---------------------------------------------------------- */

static int h_ok(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    cJSON *o = mu_json_obj();
    mu_json_add_str(o, "route", req->route->pattern);
    for (size_t i = 0; i < req->nparams; i++)
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "p"), cJSON_CreateString(req->params[i]));
    resp->json = o;
    return MU_OK;
}

static int h_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    cJSON_Delete(body);
    resp->status = 201;
    resp->json = mu_json_obj();
    resp->location = mu_xstrdup("/v1/things/1");
    return MU_OK;
}

static int h_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "thing", &id, err);
    if (r < 0)
        return r;
    resp->json = mu_json_obj();
    mu_json_add_i64(resp->json, "id", id);
    return MU_OK;
}

static int h_io(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    resp->json = mu_json_obj(); /* a partial answer must not leak */
    return mu_err_set(err, MU_EIO, "disk on fire at /var/lib/secret");
}

static int h_conflict(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    return mu_err_setf(err, MU_ECONFLICT, "name", "a thing named \"x\" already exists");
}

const struct mu_route mu_routes[] = {
    {"GET", "/v1/health", NULL, h_ok, MU_ROUTE_PUBLIC, "Health", "meta"},
    {"GET", "/v1/things", "thing.list", h_ok, 0, "List things", "things"},
    {"POST", "/v1/things", "thing.create", h_create, 0, "Create a thing", "things"},
    {"POST", "/v1/things/import", "thing.import", h_ok, MU_ROUTE_BIG_BODY, "Import", "things"},
    {"GET", "/v1/things/{id}", "thing.read", h_get, 0, "Show a thing", "things"},
    {"DELETE", "/v1/things/{id}", "thing.delete", h_ok, 0, "Delete a thing", "things"},
    {"GET", "/v1/things/{id}/parts/{part}", "thing.read", h_ok, 0, "A part", "things"},
    {"GET", "/v1/io", "thing.list", h_io, 0, "Fails", "things"},
    {"GET", "/v1/conflict", "thing.list", h_conflict, 0, "Conflicts", "things"},
    {"GET", "/v1/unnamed", "thing.unnamed", h_ok, 0, "Not in the policy", "things"},
};
const size_t mu_routes_count = MU_ARRAY_LEN(mu_routes);

/* ---- matching --------------------------------------------------------------------- */

static const struct mu_route *match(const char *method, const char *path, size_t *n, bool *known,
                                    const char *params[MU_MAX_PATH_PARAMS])
{
    return mu_router_match(method, path, params, n, known);
}

static void test_match(void **state)
{
    const char *params[MU_MAX_PATH_PARAMS];
    size_t n = 9;
    bool known = false;
    const struct mu_route *r = match("GET", "/v1/things", &n, &known, params);
    assert_non_null(r);
    assert_string_equal(r->action, "thing.list");
    assert_int_equal(n, 0);

    r = match("GET", "/v1/things/42", &n, &known, params);
    assert_non_null(r);
    assert_string_equal(r->action, "thing.read");
    assert_int_equal(n, 1);
    assert_string_equal(params[0], "42");

    r = match("DELETE", "/v1/things/42", &n, &known, params);
    assert_non_null(r);
    assert_string_equal(r->action, "thing.delete");

    r = match("GET", "/v1/things/7/parts/wheel", &n, &known, params);
    assert_non_null(r);
    assert_int_equal(n, 2);
    assert_string_equal(params[0], "7");
    assert_string_equal(params[1], "wheel");

    /* Literal beats parameter: POST import is its own route. */
    r = match("POST", "/v1/things/import", &n, &known, params);
    assert_non_null(r);
    assert_string_equal(r->action, "thing.import");
    assert_int_equal(n, 0);
}

static void test_match_refusals(void **state)
{
    const char *params[MU_MAX_PATH_PARAMS];
    size_t n = 0;
    bool known = true;
    /* 404: nothing there. */
    const char *unknown[] = {"/v1/nothing",
                             "/v1/things/",
                             "/v1//things",
                             "/v1/things/1/",
                             "/v1/things/1/parts",
                             "/v1/things/1/parts/",
                             "",
                             "/",
                             "v1/things",
                             "/v1/things/1/parts/a/b",
                             "/V1/things"};
    for (size_t i = 0; i < MU_ARRAY_LEN(unknown); i++) {
        known = true;
        assert_null(match("GET", unknown[i], &n, &known, params));
        assert_false(known);
        assert_int_equal(n, 0);
    }
    /* 405: the path exists, not with this method. */
    known = false;
    assert_null(match("PUT", "/v1/things/3", &n, &known, params));
    assert_true(known);
    known = false;
    assert_null(match("get", "/v1/things", &n, &known, params));
    assert_true(known);
    /* The literal resource /v1/things/import has POST only: GET is a 405, not a GET of a
     * thing whose id is "import". */
    known = false;
    assert_null(match("GET", "/v1/things/import", &n, &known, params));
    assert_true(known);

    /* A path longer than the thread-local scratch matches nothing. */
    char longpath[4096];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_null(match("GET", longpath, &n, &known, params));
    assert_false(known);
}

static void test_match_in_table(void **state)
{
    static const struct mu_route table[] = {
        {"GET", "/a/{x}/b/{y}/c/{z}/d/{w}", "x", h_ok, 0, "", ""},
        {"GET", "/a/{x}/b/{y}/c/{z}/d/{w}/e/{v}", "x", h_ok, 0, "", ""}, /* too many params */
        {"GET", "/a/{x}", "x1", h_ok, 0, "", ""},
        {"GET", "/{x}/one", "x2", h_ok, 0, "", ""},
    };
    const char *params[MU_MAX_PATH_PARAMS];
    size_t n = 0;
    bool known = false;
    char scratch[128];
    const struct mu_route *r = mu_router_match_in(table, MU_ARRAY_LEN(table), "GET",
                                                  "/a/1/b/2/c/3/d/4", scratch, params, &n, &known);
    assert_non_null(r);
    assert_int_equal(n, 4);
    assert_string_equal(params[3], "4");
    r = mu_router_match_in(table, MU_ARRAY_LEN(table), "GET", "/a/1/b/2/c/3/d/4/e/5", scratch,
                           params, &n, &known);
    assert_null(r);
    assert_false(known);
    /* "/a/one" matches both "/a/{x}" and "/{x}/one": the first literal segment wins. */
    r = mu_router_match_in(table, MU_ARRAY_LEN(table), "GET", "/a/one", scratch, params, &n,
                           &known);
    assert_non_null(r);
    assert_string_equal(r->action, "x1");
    assert_string_equal(params[0], "one");
}

/* ---- problem documents ------------------------------------------------------------ */

static void test_problem(void **state)
{
    assert_int_equal(mu_problem_status(MU_EINVAL), 400);
    assert_int_equal(mu_problem_status(MU_ENOTFOUND), 404);
    assert_int_equal(mu_problem_status(MU_ECONFLICT), 409);
    assert_int_equal(mu_problem_status(MU_EFORBIDDEN), 403);
    assert_int_equal(mu_problem_status(MU_EUNAUTH), 401);
    assert_int_equal(mu_problem_status(MU_ETOOBIG), 413);
    assert_int_equal(mu_problem_status(MU_EQUOTA), 409);
    assert_int_equal(mu_problem_status(MU_EBUSY), 503);
    assert_int_equal(mu_problem_status(MU_EUNSUPPORTED), 415);
    assert_int_equal(mu_problem_status(MU_EIO), 500);
    assert_int_equal(mu_problem_status(MU_EINTERNAL), 500);
    assert_int_equal(mu_problem_status(-99), 500);

    struct mu_err err = {0};
    mu_err_setf(&err, MU_EINVAL, "siren", "siren must be 9 digits");
    cJSON *p = mu_problem_new(0, &err, "abc123");
    assert_string_equal(cJSON_GetObjectItem(p, "type")->valuestring,
                        "https://mutualis.example/problems/invalid");
    assert_string_equal(cJSON_GetObjectItem(p, "title")->valuestring, "Invalid request");
    assert_int_equal(cJSON_GetObjectItem(p, "status")->valueint, 400);
    assert_string_equal(cJSON_GetObjectItem(p, "detail")->valuestring, "siren must be 9 digits");
    assert_string_equal(cJSON_GetObjectItem(p, "field")->valuestring, "siren");
    assert_string_equal(cJSON_GetObjectItem(p, "request_id")->valuestring, "abc123");
    cJSON_Delete(p);

    /* No field: no "field" member. No error at all: a generic document for the status. */
    struct mu_err e2 = {0};
    mu_err_set(&e2, MU_EQUOTA, "the commune's quota of 8 vCPU is used up");
    p = mu_problem_new(0, &e2, "r");
    assert_null(cJSON_GetObjectItem(p, "field"));
    assert_int_equal(cJSON_GetObjectItem(p, "status")->valueint, 409);
    assert_string_equal(cJSON_GetObjectItem(p, "type")->valuestring,
                        "https://mutualis.example/problems/quota-exceeded");
    cJSON_Delete(p);
    p = mu_problem_new(405, NULL, NULL);
    assert_int_equal(cJSON_GetObjectItem(p, "status")->valueint, 405);
    assert_string_equal(cJSON_GetObjectItem(p, "title")->valuestring, "Method not allowed");
    assert_non_null(cJSON_GetObjectItem(p, "detail"));
    assert_null(cJSON_GetObjectItem(p, "request_id"));
    cJSON_Delete(p);
}

/* ---- OpenAPI ---------------------------------------------------------------------- */

static void test_openapi(void **state)
{
    cJSON *doc = mu_openapi_build();
    assert_string_equal(cJSON_GetObjectItem(doc, "openapi")->valuestring, "3.1.0");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "info"), "version")->valuestring, MU_VERSION);
    cJSON *paths = cJSON_GetObjectItem(doc, "paths");
    cJSON *item = cJSON_GetObjectItem(paths, "/v1/things/{id}");
    assert_non_null(item);
    cJSON *get = cJSON_GetObjectItem(item, "get");
    assert_non_null(get);
    assert_non_null(cJSON_GetObjectItem(item, "delete"));
    assert_string_equal(cJSON_GetObjectItem(get, "x-mutualis-action")->valuestring, "thing.read");
    assert_string_equal(cJSON_GetObjectItem(get, "summary")->valuestring, "Show a thing");
    cJSON *param = cJSON_GetArrayItem(cJSON_GetObjectItem(get, "parameters"), 0);
    assert_string_equal(cJSON_GetObjectItem(param, "name")->valuestring, "id");
    assert_string_equal(cJSON_GetObjectItem(param, "in")->valuestring, "path");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(param, "required")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(get, "security")), 1);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(get, "responses"), "401"));
    /* Public: no security requirement, no 401. */
    cJSON *health = cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/v1/health"), "get");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(health, "security")), 0);
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(health, "responses"), "401"));
    /* Every route is there, once, with a unique operationId. */
    size_t ops = 0;
    cJSON *path;
    cJSON_ArrayForEach(path, paths)
    {
        cJSON *op;
        cJSON_ArrayForEach(op, path) ops++;
    }
    assert_int_equal(ops, mu_routes_count);
    assert_non_null(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "components"), "securitySchemes"),
        "bearerAuth"));
    /* It survives the strict parser (no duplicate keys etc.). */
    char *text = mu_json_print(doc);
    struct mu_err err = {0};
    cJSON *again = mu_json_parse(text, strlen(text), "openapi", &err);
    assert_non_null(again);
    cJSON_Delete(again);
    free(text);
    cJSON_Delete(doc);
}

/* ---- dispatch --------------------------------------------------------------------- */

struct fake_conn {
    const char *headers[8][2];
    const char *query[8][2];
};

static const char *fake_lookup(void *conn, enum mu_req_value_kind kind, const char *key)
{
    struct fake_conn *fc = conn;
    const char *(*tab)[2] = kind == MU_REQ_HEADER ? fc->headers : fc->query;
    for (size_t i = 0; i < 8 && tab[i][0]; i++)
        if ((kind == MU_REQ_HEADER ? strcasecmp(tab[i][0], key) : strcmp(tab[i][0], key)) == 0)
            return tab[i][1];
    return NULL;
}

struct world {
    char dir[64];
    struct mu_store *st;
    struct mu_app app;
    char operator_token[MU_TOKEN_LEN + 1];
    char observer_token[MU_TOKEN_LEN + 1];
    char operator_header[80], observer_header[80];
};

static void add_user(struct world *w, const char *name, const char *role, char *secret,
                     char *header, size_t hlen)
{
    struct mu_user u = {.name = (char *)name, .role = (char *)role};
    struct mu_err err = {0};
    int64_t uid = 0, tid = 0;
    assert_int_equal(mu_store_user_insert(w->st, &u, NULL, &uid, &err), 0);
    struct mu_token t = {.user_id = uid, .name = (char *)"test"};
    mu_auth_token_generate(secret, t.hash);
    assert_int_equal(mu_store_token_insert(w->st, &t, NULL, &tid, &err), 0);
    snprintf(header, hlen, "Bearer %s", secret);
}

static int world_setup(void **state)
{
    struct world *w = mu_xcalloc(1, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "/tmp/mu-router-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    char *db = mu_xasprintf("%s/db", w->dir);
    struct mu_store_opts so = {
        .path = db, .audit_key = "0123456789abcdef0123456789abcdef", .audit_key_len = 32};
    struct mu_err err = {0};
    w->st = mu_store_open(&so, &err);
    free(db);
    if (!w->st)
        fail_msg("store: %s", err.detail);
    static const char policy[] = "{\"version\": 1, \"actions\": {"
                                 "\"thing.list\": [\"operator\", \"observer\"],"
                                 "\"thing.read\": [\"operator\", \"observer\"],"
                                 "\"thing.create\": [\"operator\"],"
                                 "\"thing.delete\": [\"operator\"],"
                                 "\"thing.import\": [\"operator\"]}}";
    w->app.store = w->st;
    w->app.authn = mu_authn_new(w->st);
    w->app.rbac = mu_rbac_parse(policy, strlen(policy), "test policy", &err);
    if (!w->app.rbac)
        fail_msg("policy: %s", err.detail);
    pthread_rwlock_init(&w->app.policy_lock, NULL);
    w->app.body_max = 1024;
    w->app.import_body_max = 4096;
    add_user(w, "olga", "operator", w->operator_token, w->operator_header,
             sizeof w->operator_header);
    add_user(w, "oscar", "observer", w->observer_token, w->observer_header,
             sizeof w->observer_header);
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    struct world *w = *state;
    mu_router_flush_refusals_all(&w->app);
    mu_authn_free(w->app.authn);
    mu_rbac_free(w->app.rbac);
    pthread_rwlock_destroy(&w->app.policy_lock);
    mu_store_close(w->st);
    char *cmd = mu_xasprintf("rm -rf '%s'", w->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(w);
    return 0;
}

struct call {
    struct fake_conn conn;
    struct mu_req req;
    struct mu_resp resp;
    char scratch[256];
};

/* Runs method path through match + dispatch the way the server does. */
static void run(struct world *w, struct call *c, const char *method, const char *path,
                const char *authz, const char *body)
{
    memset(&c->req, 0, sizeof c->req);
    memset(&c->resp, 0, sizeof c->resp);
    if (authz) {
        c->conn.headers[0][0] = "Authorization";
        c->conn.headers[0][1] = authz;
    }
    bool known = false;
    c->req.app = &w->app;
    c->req.method = method;
    c->req.path = path;
    c->req.route = mu_router_match_in(mu_routes, mu_routes_count, method, path, c->scratch,
                                      c->req.params, &c->req.nparams, &known);
    snprintf(c->req.request_id, sizeof c->req.request_id, "req-%s", method);
    snprintf(c->req.remote_addr, sizeof c->req.remote_addr, "10.1.2.3");
    c->req.body = body;
    c->req.body_len = body ? strlen(body) : 0;
    c->req.conn = &c->conn;
    c->req.lookup = fake_lookup;
    mu_router_dispatch(&c->req, &c->resp);
}

static const char *resp_header(const struct mu_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Audit entries written so far (ascending). */
static size_t audit(struct world *w, struct mu_audit_entry **ret)
{
    struct mu_audit_filter f = {.limit = 1000};
    size_t n = 0;
    struct mu_err err = {0};
    assert_int_equal(mu_store_audit_list(w->st, &f, ret, &n, &err), 0);
    return n;
}

static void test_dispatch_routing(void **state)
{
    struct world *w = *state;
    struct call c = {0};
    run(w, &c, "GET", "/v1/health", NULL, NULL);
    assert_int_equal(c.resp.status, 200);
    assert_string_equal(jstr(c.resp.json, "route"), "/v1/health");
    mu_resp_clear(&c.resp);

    run(w, &c, "GET", "/v1/nowhere", NULL, NULL);
    assert_int_equal(c.resp.status, 404);
    assert_string_equal(jstr(c.resp.json, "type"), "https://mutualis.example/problems/not-found");
    assert_string_equal(jstr(c.resp.json, "request_id"), "req-GET");
    mu_resp_clear(&c.resp);

    run(w, &c, "PUT", "/v1/things/5", NULL, NULL);
    assert_int_equal(c.resp.status, 405);
    assert_string_equal(resp_header(&c.resp, "Allow"), "GET, DELETE");
    assert_int_equal(cJSON_GetObjectItem(c.resp.json, "status")->valueint, 405);
    mu_resp_clear(&c.resp);

    run(w, &c, "GET", "/v1/things/import", NULL, NULL);
    assert_int_equal(c.resp.status, 405);
    assert_string_equal(resp_header(&c.resp, "Allow"), "POST");
    mu_resp_clear(&c.resp);
}

static void test_dispatch_auth(void **state)
{
    struct world *w = *state;
    struct call c = {0};
    struct mu_audit_entry *e = NULL;
    size_t before = audit(w, &e);
    mu_audit_entries_free(e, before);

    /* No token, a bad one, an unknown one: 401 with WWW-Authenticate, not audited now. */
    const char *bad[] = {NULL, "Basic abc", "Bearer mut_short",
                         "Bearer mut_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        memset(&c.conn, 0, sizeof c.conn);
        run(w, &c, "GET", "/v1/things", bad[i], NULL);
        assert_int_equal(c.resp.status, 401);
        assert_non_null(resp_header(&c.resp, "WWW-Authenticate"));
        assert_string_equal(jstr(c.resp.json, "type"),
                            "https://mutualis.example/problems/unauthenticated");
        assert_false(c.req.authenticated);
        mu_resp_clear(&c.resp);
    }
    size_t n = audit(w, &e);
    mu_audit_entries_free(e, n);
    assert_int_equal(n, before);
    /* The current minute is not over: nothing to write yet. Then all of it at once. */
    int written = mu_router_flush_refusals(&w->app);
    if (written == 0) {
        assert_int_equal(mu_router_flush_refusals_all(&w->app), 1);
        n = audit(w, &e);
        assert_int_equal(n, before + 1);
    } else { /* the minute rolled over between the requests and the flush */
        n = audit(w, &e);
        assert_true(n > before);
        mu_router_flush_refusals_all(&w->app);
    }
    assert_string_equal(e[before].action, "auth.refused");
    assert_string_equal(e[before].actor, "anonymous");
    assert_non_null(strstr(e[before].detail, "refused attempts from 10.1.2.3"));
    if (written == 0)
        assert_string_equal(e[before].detail, "4 refused attempts from 10.1.2.3");
    mu_audit_entries_free(e, n);
    assert_int_equal(mu_router_flush_refusals_all(&w->app), 0);

    /* A good token: 200 and the principal is filled. */
    memset(&c.conn, 0, sizeof c.conn);
    run(w, &c, "GET", "/v1/things/7/parts/wheel", w->observer_header, NULL);
    assert_int_equal(c.resp.status, 200);
    assert_true(c.req.authenticated);
    assert_string_equal(c.req.principal.user_name, "oscar");
    mu_resp_clear(&c.resp);
}

static void test_dispatch_rbac_and_errors(void **state)
{
    struct world *w = *state;
    struct call c = {0};
    struct mu_audit_entry *e = NULL;
    size_t before = audit(w, &e);
    mu_audit_entries_free(e, before);

    /* The observer may not delete: 403, audited as denied. */
    run(w, &c, "DELETE", "/v1/things/3", w->observer_header, NULL);
    assert_int_equal(c.resp.status, 403);
    assert_string_equal(jstr(c.resp.json, "type"), "https://mutualis.example/problems/forbidden");
    mu_resp_clear(&c.resp);
    size_t n = audit(w, &e);
    assert_int_equal(n, before + 1);
    assert_string_equal(e[before].outcome, "denied");
    assert_string_equal(e[before].actor, "oscar");
    assert_string_equal(e[before].action, "thing.delete");
    assert_string_equal(e[before].target, "/v1/things/3");
    assert_string_equal(e[before].request_id, "req-DELETE");
    mu_audit_entries_free(e, n);

    /* An action the policy does not name is denied, even to an operator. */
    run(w, &c, "GET", "/v1/unnamed", w->operator_header, NULL);
    assert_int_equal(c.resp.status, 403);
    mu_resp_clear(&c.resp);

    /* Handler errors: status from the code, field kept, audited with the code's name. */
    run(w, &c, "GET", "/v1/conflict", w->operator_header, NULL);
    assert_int_equal(c.resp.status, 409);
    assert_string_equal(jstr(c.resp.json, "field"), "name");
    mu_resp_clear(&c.resp);
    run(w, &c, "GET", "/v1/things/12x", w->operator_header, NULL);
    assert_int_equal(c.resp.status, 404);
    assert_string_equal(jstr(c.resp.json, "detail"), "no thing 12x");
    mu_resp_clear(&c.resp);

    /* Internal errors: generic detail with the request id, nothing of the cause. */
    run(w, &c, "GET", "/v1/io", w->operator_header, NULL);
    assert_int_equal(c.resp.status, 500);
    const char *detail = jstr(c.resp.json, "detail");
    assert_non_null(strstr(detail, "req-GET"));
    assert_null(strstr(detail, "secret"));
    assert_string_equal(jstr(c.resp.json, "type"),
                        "https://mutualis.example/problems/storage-error");
    mu_resp_clear(&c.resp);

    n = audit(w, &e);
    assert_int_equal(n, before + 5);
    assert_string_equal(e[before + 2].outcome, "conflict");
    assert_string_equal(e[before + 3].outcome, "not-found");
    assert_string_equal(e[before + 4].outcome, "storage-error");
    assert_null(strstr(e[before + 4].detail, "secret"));
    mu_audit_entries_free(e, n);
}

static void test_request_helpers(void **state)
{
    struct world *w = *state;
    struct call c = {0};

    /* JSON body: Content-Type required, object required. */
    c.conn.headers[1][0] = "Content-Type";
    c.conn.headers[1][1] = "text/plain";
    run(w, &c, "POST", "/v1/things", w->operator_header, "{\"a\": 1}");
    assert_int_equal(c.resp.status, 415);
    mu_resp_clear(&c.resp);
    c.conn.headers[1][1] = "Application/JSON; charset=utf-8";
    run(w, &c, "POST", "/v1/things", w->operator_header, "{\"a\": 1}");
    assert_int_equal(c.resp.status, 201);
    assert_string_equal(c.resp.location, "/v1/things/1");
    mu_resp_clear(&c.resp);
    run(w, &c, "POST", "/v1/things", w->operator_header, "[1, 2]");
    assert_int_equal(c.resp.status, 400);
    mu_resp_clear(&c.resp);
    run(w, &c, "POST", "/v1/things", w->operator_header, "{\"a\": 1, \"a\": 2}");
    assert_int_equal(c.resp.status, 400);
    mu_resp_clear(&c.resp);
    run(w, &c, "POST", "/v1/things", w->operator_header, NULL);
    assert_int_equal(c.resp.status, 400);
    mu_resp_clear(&c.resp);

    /* Pagination. */
    struct fake_conn conn = {0};
    struct mu_req req = {.conn = &conn, .lookup = fake_lookup};
    struct mu_err err = {0};
    int limit = 0;
    int64_t after = -1;
    assert_int_equal(mu_req_page(&req, &limit, &after, &err), 0);
    assert_int_equal(limit, 100);
    assert_int_equal(after, 0);
    conn.query[0][0] = "limit";
    conn.query[0][1] = "1000";
    conn.query[1][0] = "after";
    conn.query[1][1] = "77";
    assert_int_equal(mu_req_page(&req, &limit, &after, &err), 0);
    assert_int_equal(limit, 1000);
    assert_int_equal(after, 77);
    const char *bad_limits[] = {"0", "1001", "-1", "ten", "", "1.5"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad_limits); i++) {
        mu_err_clear(&err);
        conn.query[0][1] = bad_limits[i];
        assert_int_equal(mu_req_page(&req, &limit, &after, &err), MU_EINVAL);
        assert_string_equal(err.field, "limit");
    }
    conn.query[0][1] = "5";
    conn.query[1][1] = "-3";
    mu_err_clear(&err);
    assert_int_equal(mu_req_page(&req, &limit, &after, &err), MU_EINVAL);
    assert_string_equal(err.field, "after");

    /* Path ids. */
    const char *p[1] = {"0"};
    memcpy(req.params, p, sizeof p);
    req.nparams = 1;
    int64_t id = 0;
    const char *bad_ids[] = {"0", "-4", "+4", " 4", "4 ", "99999999999999999999", "0x10", "é"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad_ids); i++) {
        mu_err_clear(&err);
        req.params[0] = bad_ids[i];
        assert_int_equal(mu_req_param_id(&req, 0, "tenant", &id, &err), MU_ENOTFOUND);
    }
    assert_string_equal(err.detail, "no tenant with this id");
    req.params[0] = "12";
    assert_int_equal(mu_req_param_id(&req, 0, "tenant", &id, &err), 0);
    assert_int_equal(id, 12);
    mu_err_clear(&err);
    assert_int_equal(mu_req_param_id(&req, 1, "tenant", &id, &err), MU_EINTERNAL);

    /* Tenant scope: global roles see everything. */
    req.authenticated = true;
    snprintf(req.principal.role, sizeof req.principal.role, "operator");
    req.app = &w->app;
    assert_int_equal(mu_req_check_tenant(&req, 99, &err), 0);
    snprintf(req.principal.role, sizeof req.principal.role, "tenant-admin");
    req.principal.tenant_id = 1;
    mu_err_clear(&err);
    assert_int_equal(mu_req_check_tenant(&req, 99, &err), MU_ENOTFOUND);
    assert_string_equal(err.detail, "no tenant 99");

    /* Audit record. */
    struct mu_audit_rec rec;
    req.route = &mu_routes[2];
    snprintf(req.request_id, sizeof req.request_id, "rid");
    snprintf(req.principal.user_name, sizeof req.principal.user_name, "ann");
    mu_req_audit(&req, &rec, 5, "thing/5");
    assert_string_equal(rec.actor, "ann");
    assert_string_equal(rec.role, "tenant-admin");
    assert_string_equal(rec.action, "thing.create");
    assert_string_equal(rec.outcome, "ok");
    assert_string_equal(rec.request_id, "rid");
    assert_string_equal(rec.target, "thing/5");
    assert_int_equal(rec.tenant_id, 5);

    /* Response headers are copied and freed. */
    struct mu_resp resp = {0};
    for (int i = 0; i < MU_RESP_MAX_HEADERS + 2; i++)
        mu_resp_header_add(&resp, "X-A", "b");
    assert_int_equal(resp.nheaders, MU_RESP_MAX_HEADERS);
    mu_resp_clear(&resp);
    assert_int_equal(resp.nheaders, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_match_refusals),
        cmocka_unit_test(test_match_in_table),
        cmocka_unit_test(test_problem),
        cmocka_unit_test(test_openapi),
        cmocka_unit_test_setup_teardown(test_dispatch_routing, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_auth, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_rbac_and_errors, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_request_helpers, world_setup, world_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
