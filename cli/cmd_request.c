/* catalog list; request list | show | create | approve | reject | cancel. The hosted-app
 * catalogue and the requests for its items (GET /v1/catalog, /v1/requests). "request
 * create" reads the item's parameter types from the catalogue so that "--param size=3"
 * is sent as a number and "--param title=2024" as text. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"

/* ---- catalog ------------------------------------------------------------------------- */

static const struct mu_cli_col catalog_cols[] = {
    {"ID", "id", 0},         {"NAME", "_name", 40},   {"FLAVORS", "_flavors", 30},
    {"PUBLIC", "public", 0}, {"PORTS", "_ports", 16}, {"APPROVAL", "_approval", 24},
};

static void join_array(cJSON *o, const char *key, const char *out)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key), *e;
    struct mu_buf b;
    mu_buf_init(&b);
    cJSON_ArrayForEach(e, arr)
    {
        MU_AUTOFREE char *t = mu_cli_cell_text(e);
        mu_buf_printf(&b, "%s%s", b.len ? ", " : "", t);
    }
    mu_json_add_str(o, out, b.len ? b.data : "-");
    mu_buf_free(&b);
}

static void catalog_cells(cJSON *it)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
    mu_json_add_str(it, "_name",
                    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(name, "fr")));
    join_array(it, "flavors", "_flavors");
    join_array(it, "ports", "_ports");
    const char *appr = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "approval"));
    const cJSON *above = cJSON_GetObjectItemCaseSensitive(it, "approval_above");
    if (appr && strcmp(appr, "above") == 0 && cJSON_IsObject(above)) {
        MU_AUTOFREE char *v = mu_cli_cell_text(cJSON_GetObjectItemCaseSensitive(above, "vcpus"));
        MU_AUTOFREE char *m = mu_cli_cell_text(cJSON_GetObjectItemCaseSensitive(above, "ram_mib"));
        MU_AUTOFREE char *t = mu_xasprintf("above %s vCPU / %s MiB", v, m);
        mu_json_add_str(it, "_approval", t);
    } else {
        mu_json_add_str(it, "_approval", appr ? appr : "-");
    }
}

static int run_catalog_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return mu_cli_list_whole(cli, "/v1/catalog", "catalogue items", catalog_cols,
                             MU_ARRAY_LEN(catalog_cols), catalog_cells);
}

static const struct mu_cli_cmd catalog_cmds[] = {
    {"list", NULL, "List the hosted apps tenants may request", 0, NULL, 0, run_catalog_list},
};

const struct mu_cli_group mu_cli_group_app_catalog = {
    "catalog",
    "The catalogue of hosted apps (website, webmail, …) a tenant may request",
    catalog_cmds,
    MU_ARRAY_LEN(catalog_cmds),
};

/* ---- requests -------------------------------------------------------------------------- */

static const char *const request_states[] = {"pending",      "approved", "rejected", "cancelled",
                                             "provisioning", "ready",    "failed",   NULL};

static const struct mu_cli_col request_list_cols[] = {
    {"ID", "id", 0},
    {"TENANT", "tenant_name", 28},
    {"ITEM", "item", 16},
    {"FLAVOR", "flavor", 12},
    {"STATUS", "status", 0},
    {"BY", "requested_by", 16},
    {"CREATED", "created_at", 0},
};

static const struct mu_cli_col request_show_cols[] = {
    {"id", "id", 0},
    {"tenant", "tenant_name", 0},
    {"tenant id", "tenant_id", 0},
    {"item", "item", 0},
    {"flavor", "flavor", 0},
    {"parameters", "_parameters", 0},
    {"justification", "justification", 0},
    {"status", "status", 0},
    {"reason", "reason", 0},
    {"vm", "vm_id", 0},
    {"operation", "operation_id", 0},
    {"requested by", "requested_by", 0},
    {"decided by", "decided_by", 0},
    {"created", "created_at", 0},
    {"updated", "updated_at", 0},
};

static const struct mu_cli_opt request_list_opts[] = {
    {"--status", MU_CLI_OPT_CHOICE, "STATUS", "requests in this status", false, request_states, 0,
     0},
    {"--tenant", MU_CLI_OPT_ID, "ID", "requests of this tenant's subtree", false, NULL, 0, 0},
    MU_CLI_LIST_OPTS,
};

static int run_request_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    struct mu_buf q;
    mu_buf_init(&q);
    mu_buf_puts(&q, "/v1/requests");
    if (mu_cli_arg_set(a, "--status"))
        mu_cli_query_add(&q, "status", mu_cli_arg_str(a, "--status"));
    if (mu_cli_arg_set(a, "--tenant"))
        mu_cli_query_add_i64(&q, "tenant", mu_cli_arg(a, "--tenant")->num);
    int r =
        mu_cli_list(cli, q.data, a, "requests", request_list_cols, MU_ARRAY_LEN(request_list_cols));
    mu_buf_free(&q);
    return r;
}

/* Prints a request answer: fields (parameters as compact JSON), or the JSON. Takes o. */
static int print_request(const struct mu_cli *cli, cJSON *o)
{
    if (cli->json) {
        mu_cli_print_json(o);
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "parameters");
        MU_AUTOFREE char *text = p ? mu_json_print(p) : mu_xstrdup("{}");
        mu_json_add_str(o, "_parameters", text);
        mu_cli_print_fields(request_show_cols, MU_ARRAY_LEN(request_show_cols), o);
    }
    cJSON_Delete(o);
    return MU_CLI_EXIT_OK;
}

static int run_request_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the request ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/requests/%" PRId64, id);
    cJSON *o = NULL;
    if ((r = mu_cli_fetch_object(cli, "GET", path, NULL, &o)) != MU_CLI_EXIT_OK)
        return r;
    return print_request(cli, o);
}

static const struct mu_cli_opt request_create_opts[] = {
    {"--flavor", MU_CLI_OPT_IDENT, "NAME", "a size the item offers (see catalog list)", true, NULL,
     0, 0},
    {"--param", MU_CLI_OPT_LIST, "NAME=VALUE", "a parameter of the item (repeat for each)", false,
     NULL, 0, 0},
    {"--tenant", MU_CLI_OPT_ID, "ID", "the requesting tenant (default: your own)", false, NULL, 0,
     0},
    {"--justification", MU_CLI_OPT_STR, "TEXT", "why the tenant needs it", false, NULL, 0, 0},
};

/* The type of an item's parameter in the catalogue answer ("" if unknown). */
static const char *param_type(const cJSON *catalog, const char *item, const char *name)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(catalog, "items"), *it, *p;
    cJSON_ArrayForEach(it, items)
    {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
        if (!id || strcmp(id, item) != 0)
            continue;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(it, "parameters"))
        {
            const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "name"));
            if (n && strcmp(n, name) == 0) {
                const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "type"));
                return t ? t : "";
            }
        }
    }
    return "";
}

/* A refusal with field errors: the detail, then one line per field. */
static int print_field_errors(const struct mu_cli_http_resp *resp)
{
    char msg[256];
    cJSON *doc = mu_cli_json_parse(resp->body, resp->len, "answer", msg, sizeof msg);
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(doc, "errors"), *e;
    MU_AUTOFREE char *line =
        mu_cli_problem_line(resp->status, resp->body, resp->len, resp->request_id);
    mu_cli_fail("%s", line);
    cJSON_ArrayForEach(e, errors)
    {
        const char *f = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "field"));
        const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "detail"));
        fprintf(stderr, "  %s: %s\n", f ? f : "-", d ? d : "-");
    }
    cJSON_Delete(doc);
    return MU_CLI_EXIT_FAIL;
}

static int run_request_create(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const char *item = a->pos[0];
    const struct mu_cli_val *params = mu_cli_arg(a, "--param");
    cJSON *catalog = NULL, *body = NULL, *pobj = NULL;
    struct mu_cli_http_resp resp = {0};
    char msg[1024];
    MU_AUTOFREE char *text = NULL; /* before any goto: freed at every exit */
    int r;

    if (!item[0] || strlen(item) > 64)
        return mu_cli_usage_error(cli, "ITEM must be an item id of the catalogue");
    pobj = mu_json_obj();
    for (size_t i = 0; i < params->nlist; i++) {
        const char *eq = strchr(params->list[i], '=');
        if (!eq || eq == params->list[i]) {
            cJSON_Delete(pobj);
            return mu_cli_usage_error(cli, "--param takes NAME=VALUE, not \"%s\"", params->list[i]);
        }
        MU_AUTOFREE char *name = mu_xstrndup(params->list[i], (size_t)(eq - params->list[i]));
        if (cJSON_GetObjectItemCaseSensitive(pobj, name)) {
            cJSON_Delete(pobj);
            return mu_cli_usage_error(cli, "--param %s is given twice", name);
        }
        cJSON_AddItemToObject(pobj, name, cJSON_CreateString(eq + 1));
    }
    /* integers by the catalogue's types (the server checks the rest) */
    if ((r = mu_cli_fetch_object(cli, "GET", "/v1/catalog", NULL, &catalog)) != MU_CLI_EXIT_OK)
        goto out;
    for (cJSON *p = pobj->child; p; p = p->next) {
        int64_t x;
        if (strcmp(param_type(catalog, item, p->string), "integer") == 0 &&
            mu_parse_i64(p->valuestring, INT32_MIN, INT32_MAX, &x) == 0) {
            cJSON *num = cJSON_CreateNumber((double)x);
            cJSON_ReplaceItemInObjectCaseSensitive(pobj, p->string, num); /* keeps the key */
            p = num;
        }
    }
    body = mu_json_obj();
    if (mu_cli_arg_set(a, "--tenant"))
        mu_json_add_i64(body, "tenant_id", mu_cli_arg(a, "--tenant")->num);
    mu_json_add_str(body, "item", item);
    mu_json_add_str(body, "flavor", mu_cli_arg_str(a, "--flavor"));
    cJSON_AddItemToObject(body, "parameters", pobj);
    pobj = NULL;
    if (mu_cli_arg_set(a, "--justification"))
        mu_json_add_str(body, "justification", mu_cli_arg_str(a, "--justification"));
    text = mu_json_print(body);
    if (mu_cli_http_do(cli, "POST", "/v1/requests", text, strlen(text), MU_CLI_TIMEOUT_S, &resp,
                       msg, sizeof msg) < 0) {
        r = mu_cli_fail("%s", msg);
        goto out;
    }
    if (resp.status != 201) {
        r = print_field_errors(&resp);
        goto out;
    }
    cJSON *o = mu_cli_json_parse(resp.body, resp.len, "answer", msg, sizeof msg);
    r = o ? print_request(cli, o) : mu_cli_fail("the server's %s", msg);
out:
    mu_cli_http_resp_free(&resp);
    cJSON_Delete(catalog);
    cJSON_Delete(body);
    cJSON_Delete(pobj);
    return r;
}

static const struct mu_cli_opt approve_opts[] = {
    {"--reason", MU_CLI_OPT_STR, "TEXT", "a word for the tenant", false, NULL, 0, 0},
};
static const struct mu_cli_opt reject_opts[] = {
    {"--reason", MU_CLI_OPT_STR, "TEXT", "why (shown to the tenant)", true, NULL, 0, 0},
};

static int decide(struct mu_cli *cli, const struct mu_cli_args *a, const char *action,
                  bool with_reason)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the request ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/requests/%" PRId64 "/%s", id, action);
    cJSON *body = NULL, *o = NULL;
    if (with_reason) {
        body = mu_json_obj();
        if (mu_cli_arg_set(a, "--reason"))
            mu_json_add_str(body, "reason", mu_cli_arg_str(a, "--reason"));
    }
    r = mu_cli_fetch_object(cli, "POST", path, body, &o);
    cJSON_Delete(body);
    if (r != MU_CLI_EXIT_OK)
        return r;
    return print_request(cli, o);
}

static int run_request_approve(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return decide(cli, a, "approve", true);
}

static int run_request_reject(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return decide(cli, a, "reject", true);
}

static int run_request_cancel(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return decide(cli, a, "cancel", false);
}

static const struct mu_cli_cmd request_cmds[] = {
    {"list", NULL, "List requests for catalogue apps", 0, request_list_opts,
     MU_ARRAY_LEN(request_list_opts), run_request_list},
    {"show", "ID", "Show a request (operators also see the tenant's quota)", 1, NULL, 0,
     run_request_show},
    {"create", "ITEM", "Request an app of the catalogue", 1, request_create_opts,
     MU_ARRAY_LEN(request_create_opts), run_request_create},
    {"approve", "ID", "Approve a pending request: the VM is admitted and provisioned", 1,
     approve_opts, MU_ARRAY_LEN(approve_opts), run_request_approve},
    {"reject", "ID", "Reject a pending request with a reason", 1, reject_opts,
     MU_ARRAY_LEN(reject_opts), run_request_reject},
    {"cancel", "ID", "Cancel a pending request", 1, NULL, 0, run_request_cancel},
};

const struct mu_cli_group mu_cli_group_request = {
    "request",
    "Request hosted apps from the catalogue; approve, reject or cancel requests",
    request_cmds,
    MU_ARRAY_LEN(request_cmds),
};
