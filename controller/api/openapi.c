/* The OpenAPI 3.1 description, generated from the route table so that it cannot drift
 * from what the server answers. Each operation names its RBAC action in
 * x-mutualis-action. */
#include <ctype.h>
#include <string.h>

#include "api/api.h"
#include "mutualis/json.h"
#include "mutualis/util.h"

static const char *method_key(const char *method, char buf[16])
{
    size_t i = 0;
    for (; method[i] && i < 15; i++)
        buf[i] = (char)tolower((unsigned char)method[i]);
    buf[i] = '\0';
    return buf;
}

static bool method_has_body(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0;
}

/* "get_v1_tenants_id_move" from GET /v1/tenants/{id}/move. */
static char *operation_id(const struct mu_route *r)
{
    char m[16];
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_puts(&b, method_key(r->method, m));
    bool sep = true;
    for (const char *p = r->pattern; *p; p++) {
        if (isalnum((unsigned char)*p)) {
            if (sep)
                mu_buf_puts(&b, "_");
            char c = (char)tolower((unsigned char)*p);
            mu_buf_append(&b, &c, 1);
            sep = false;
        } else {
            sep = true;
        }
    }
    return mu_buf_steal(&b);
}

static cJSON *ref(const char *target)
{
    cJSON *o = mu_json_obj();
    mu_json_add_str(o, "$ref", target);
    return o;
}

static cJSON *path_parameters(const char *pattern)
{
    cJSON *params = mu_json_arr();
    for (const char *p = strchr(pattern, '{'); p; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        if (!end)
            break;
        MU_AUTOFREE char *name = mu_xstrndup(p + 1, (size_t)(end - p - 1));
        size_t len = strlen(name);
        bool is_id = strcmp(name, "id") == 0 || (len > 3 && strcmp(name + len - 3, "_id") == 0);
        cJSON *param = mu_json_obj();
        mu_json_add_str(param, "name", name);
        mu_json_add_str(param, "in", "path");
        mu_json_add_bool(param, "required", true);
        cJSON *schema = mu_json_obj();
        if (is_id) {
            mu_json_add_str(schema, "type", "integer");
            mu_json_add_str(schema, "format", "int64");
            mu_json_add_i64(schema, "minimum", 1);
        } else {
            mu_json_add_str(schema, "type", "string");
        }
        cJSON_AddItemToObject(param, "schema", schema);
        cJSON_AddItemToArray(params, param);
    }
    return params;
}

static void add_problem_response(cJSON *responses, const char *status)
{
    cJSON_AddItemToObject(responses, status, ref("#/components/responses/Problem"));
}

static cJSON *operation(const struct mu_route *r)
{
    cJSON *op = mu_json_obj();
    MU_AUTOFREE char *opid = operation_id(r);
    mu_json_add_str(op, "operationId", opid);
    mu_json_add_str(op, "summary", r->summary ? r->summary : "");
    cJSON *tags = mu_json_arr();
    cJSON_AddItemToArray(tags, cJSON_CreateString(r->tag ? r->tag : "other"));
    cJSON_AddItemToObject(op, "tags", tags);
    if (r->action)
        mu_json_add_str(op, "x-mutualis-action", r->action);
    else
        mu_json_add_null(op, "x-mutualis-action");
    bool public = r->flags & MU_ROUTE_PUBLIC;
    cJSON *security = mu_json_arr();
    if (!public) {
        /* Agent routes take a client certificate, and nothing else. */
        cJSON *req = mu_json_obj();
        cJSON_AddItemToObject(req, r->flags & MU_ROUTE_AGENT ? "mutualTLS" : "bearerAuth",
                              mu_json_arr());
        cJSON_AddItemToArray(security, req);
    }
    cJSON_AddItemToObject(op, "security", security);
    if (strchr(r->pattern, '{'))
        cJSON_AddItemToObject(op, "parameters", path_parameters(r->pattern));

    bool body = method_has_body(r->method);
    if (body) {
        cJSON *rb = mu_json_obj();
        mu_json_add_bool(rb, "required", false);
        cJSON *content = mu_json_obj();
        cJSON *media = mu_json_obj();
        cJSON *schema = mu_json_obj();
        mu_json_add_str(schema, "type", "object");
        cJSON_AddItemToObject(media, "schema", schema);
        cJSON_AddItemToObject(content, "application/json", media);
        cJSON_AddItemToObject(rb, "content", content);
        cJSON_AddItemToObject(op, "requestBody", rb);
    }

    cJSON *responses = mu_json_obj();
    cJSON *ok = mu_json_obj();
    mu_json_add_str(ok, "description", "Success");
    if (strcmp(r->method, "DELETE") != 0) {
        cJSON *content = mu_json_obj();
        cJSON *media = mu_json_obj();
        cJSON *schema = mu_json_obj();
        if (r->flags & MU_ROUTE_RAW) {
            mu_json_add_str(schema, "type", "string");
            cJSON_AddItemToObject(media, "schema", schema);
            cJSON_AddItemToObject(content, "text/plain", media);
        } else {
            mu_json_add_str(schema, "type", "object");
            cJSON_AddItemToObject(media, "schema", schema);
            cJSON_AddItemToObject(content, "application/json", media);
        }
        cJSON_AddItemToObject(ok, "content", content);
    }
    cJSON_AddItemToObject(responses, "2XX", ok);
    add_problem_response(responses, "400");
    if (!public) {
        add_problem_response(responses, "401");
        add_problem_response(responses, "403");
    }
    add_problem_response(responses, "404");
    if (body) {
        add_problem_response(responses, "409");
        add_problem_response(responses, "413");
        add_problem_response(responses, "415");
    }
    add_problem_response(responses, "500");
    cJSON_AddItemToObject(op, "responses", responses);
    return op;
}

static cJSON *components(void)
{
    cJSON *c = mu_json_obj();

    cJSON *schemes = mu_json_obj();
    cJSON *bearer = mu_json_obj();
    mu_json_add_str(bearer, "type", "http");
    mu_json_add_str(bearer, "scheme", "bearer");
    mu_json_add_str(bearer, "description", "An API token: \"mut_\" followed by 43 characters.");
    cJSON_AddItemToObject(schemes, "bearerAuth", bearer);
    cJSON *mtls = mu_json_obj();
    mu_json_add_str(mtls, "type", "mutualTLS");
    mu_json_add_str(mtls, "description",
                    "A node agent's client certificate, signed by this controller's CA, whose "
                    "subject CN is the node's name.");
    cJSON_AddItemToObject(schemes, "mutualTLS", mtls);
    cJSON_AddItemToObject(c, "securitySchemes", schemes);

    cJSON *schemas = mu_json_obj();
    cJSON *problem = mu_json_obj();
    mu_json_add_str(problem, "type", "object");
    cJSON *required = mu_json_arr();
    const char *req_fields[] = {"type", "title", "status", "detail"};
    for (size_t i = 0; i < MU_ARRAY_LEN(req_fields); i++)
        cJSON_AddItemToArray(required, cJSON_CreateString(req_fields[i]));
    cJSON_AddItemToObject(problem, "required", required);
    cJSON *props = mu_json_obj();
    const char *str_fields[] = {"type", "title", "detail", "field", "request_id"};
    for (size_t i = 0; i < MU_ARRAY_LEN(str_fields); i++) {
        cJSON *f = mu_json_obj();
        mu_json_add_str(f, "type", "string");
        cJSON_AddItemToObject(props, str_fields[i], f);
    }
    cJSON *status = mu_json_obj();
    mu_json_add_str(status, "type", "integer");
    cJSON_AddItemToObject(props, "status", status);
    cJSON_AddItemToObject(problem, "properties", props);
    cJSON_AddItemToObject(schemas, "Problem", problem);
    cJSON_AddItemToObject(c, "schemas", schemas);

    cJSON *responses = mu_json_obj();
    cJSON *presp = mu_json_obj();
    mu_json_add_str(presp, "description", "An RFC 9457 problem document");
    cJSON *content = mu_json_obj();
    cJSON *media = mu_json_obj();
    cJSON_AddItemToObject(media, "schema", ref("#/components/schemas/Problem"));
    cJSON_AddItemToObject(content, "application/problem+json", media);
    cJSON_AddItemToObject(presp, "content", content);
    cJSON_AddItemToObject(responses, "Problem", presp);
    cJSON_AddItemToObject(c, "responses", responses);
    return c;
}

cJSON *mu_openapi_build_from(const struct mu_route *table, size_t n)
{
    cJSON *doc = mu_json_obj();
    mu_json_add_str(doc, "openapi", "3.1.0");
    cJSON *info = mu_json_obj();
    mu_json_add_str(info, "title", "Mutualis API");
    mu_json_add_str(info, "version", MU_VERSION);
    mu_json_add_str(info, "description",
                    "Control plane of a shared data centre: tenants, users, tokens, nodes, VMs. "
                    "Errors are RFC 9457 problem documents.");
    cJSON_AddItemToObject(doc, "info", info);

    cJSON *tags = mu_json_arr();
    cJSON *paths = mu_json_obj();
    for (size_t i = 0; i < n; i++) {
        const struct mu_route *r = &table[i];
        const char *tag = r->tag ? r->tag : "other";
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(table[j].tag ? table[j].tag : "other", tag) == 0;
        if (!seen) {
            cJSON *t = mu_json_obj();
            mu_json_add_str(t, "name", tag);
            cJSON_AddItemToArray(tags, t);
        }
        cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, r->pattern);
        if (!item) {
            item = mu_json_obj();
            cJSON_AddItemToObject(paths, r->pattern, item);
        }
        char m[16];
        cJSON_AddItemToObject(item, method_key(r->method, m), operation(r));
    }
    cJSON_AddItemToObject(doc, "tags", tags);
    cJSON_AddItemToObject(doc, "paths", paths);
    cJSON_AddItemToObject(doc, "components", components());
    return doc;
}

cJSON *mu_openapi_build(void)
{
    return mu_openapi_build_from(mu_routes, mu_routes_count);
}
