/* Health, the OpenAPI description and whoami. */
#include "api/handlers.h"
#include "mutualis/json.h"

int mu_h_health(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    cJSON *o = mu_json_obj();
    mu_json_add_str(o, "status", "ok");
    mu_json_add_str(o, "version", MU_VERSION);
    mu_json_add_i64(o, "schema_version", mu_store_schema_version(req->app->store));
    resp->json = o;
    return MU_OK;
}

int mu_h_openapi(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    resp->json = mu_openapi_build();
    return MU_OK;
}

int mu_h_whoami(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    const struct mu_principal *p = &req->principal;
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "user_id", p->user_id);
    mu_json_add_str(o, "user", p->user_name);
    mu_json_add_str(o, "role", p->role);
    mu_json_add_i64_pos(o, "tenant_id", p->tenant_id);
    mu_json_add_i64(o, "token_id", p->token_id);
    resp->json = o;
    return MU_OK;
}

cJSON *mu_h_list_answer(cJSON *items, size_t n, int limit, int64_t last_id)
{
    cJSON *o = mu_json_obj();
    cJSON_AddItemToObject(o, "items", items);
    if (n == (size_t)limit && last_id > 0)
        mu_json_add_i64(o, "next_after", last_id);
    else
        mu_json_add_null(o, "next_after");
    return o;
}
