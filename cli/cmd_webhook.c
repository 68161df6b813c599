/* webhook set | show | delete (a tenant's webhook), and event list (the event feed). */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mutualis/json.h"

static const struct mu_cli_col show_cols[] = {
    {"tenant", "tenant_id", 0},
    {"url", "url", 0},
    {"enabled", "enabled", 0},
    {"types", "types", 0},
    {"secret created", "secret_created_at", 0},
    {"last outcome", "status.last_outcome", 0},
    {"last attempt", "status.last_attempt_at", 0},
    {"last event", "status.last_event_id", 0},
    {"last HTTP status", "status.last_http_status", 0},
    {"last error", "status.last_error", 0},
    {"failures in a row", "status.consecutive_failures", 0},
    {"pending", "status.pending", 0},
    {"delivered", "status.delivered", 0},
    {"given up", "status.failed", 0},
};

static const struct mu_cli_opt tenant_opt[] = {
    {"--tenant", MU_CLI_OPT_ID, "ID", "the tenant whose webhook it is", true, NULL, 0, 0},
};

static char *webhook_path(const struct mu_cli_args *a)
{
    return mu_xasprintf("/v1/tenants/%" PRId64 "/webhook", mu_cli_arg(a, "--tenant")->num);
}

/* "types" shown as "request., alert." rather than a JSON array. */
static void types_cell(cJSON *o)
{
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(o, "types"), *it;
    struct mu_buf b;
    if (!cJSON_IsArray(types))
        return;
    mu_buf_init(&b);
    cJSON_ArrayForEach(it, types)
    {
        if (cJSON_IsString(it))
            mu_buf_printf(&b, "%s%s", b.len ? ", " : "", it->valuestring);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(o, "types",
                                           cJSON_CreateString(b.len ? b.data : "(every type)"));
    mu_buf_free(&b);
}

static int print_webhook(const struct mu_cli *cli, cJSON *res)
{
    if (cli->json) {
        mu_cli_print_json(res);
        return MU_CLI_EXIT_OK;
    }
    types_cell(res);
    mu_cli_print_fields(show_cols, MU_ARRAY_LEN(show_cols), res);
    return MU_CLI_EXIT_OK;
}

static int run_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    MU_AUTOFREE char *path = webhook_path(a);
    cJSON *res = NULL;
    int r = mu_cli_fetch_object(cli, "GET", path, NULL, &res);
    if (r != MU_CLI_EXIT_OK)
        return r;
    r = print_webhook(cli, res);
    cJSON_Delete(res);
    return r;
}

static const struct mu_cli_opt set_opts[] = {
    {"--tenant", MU_CLI_OPT_ID, "ID", "the tenant whose webhook it is", true, NULL, 0, 0},
    {"--url", MU_CLI_OPT_STR, "URL", "where events are POSTed (https://…)", true, NULL, 0, 0},
    {"--type", MU_CLI_OPT_LIST, "PREFIX",
     "only events whose type starts with PREFIX (\"request.\"); may be repeated", false, NULL, 0,
     0},
    {"--disable", MU_CLI_OPT_FLAG, NULL, "keep the settings but deliver nothing for now", false,
     NULL, 0, 0},
    {"--rotate-secret", MU_CLI_OPT_FLAG, NULL, "replace the signing secret (shown once)", false,
     NULL, 0, 0},
};

#define SECRET_WARNING                                                                             \
    "mutualis: save this signing secret now: it will not be shown again (receivers check "         \
    "X-Mutualis-Signature with it)\n"

static int run_set(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const struct mu_cli_val *types = mu_cli_arg(a, "--type");
    MU_AUTOFREE char *path = webhook_path(a);
    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "url", mu_cli_arg_str(a, "--url"));
    mu_json_add_bool(body, "enabled", !mu_cli_arg_set(a, "--disable"));
    if (types->set) {
        cJSON *arr = mu_json_arr();
        for (size_t i = 0; i < types->nlist; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(types->list[i]));
        cJSON_AddItemToObject(body, "types", arr);
    }
    if (mu_cli_arg_set(a, "--rotate-secret"))
        mu_json_add_bool(body, "rotate_secret", true);
    cJSON *res = NULL;
    int r = mu_cli_fetch_object(cli, "PUT", path, body, &res);
    cJSON_Delete(body);
    if (r != MU_CLI_EXIT_OK)
        return r;
    cJSON *secret = cJSON_GetObjectItemCaseSensitive(res, "secret");
    bool shown = cJSON_IsString(secret) && secret->valuestring;
    if (cli->json) {
        mu_cli_print_json(res);
    } else {
        print_webhook(cli, res);
        if (shown)
            printf("secret:   %s\n", secret->valuestring);
    }
    if (shown) {
        fputs(SECRET_WARNING, stderr);
        explicit_bzero(secret->valuestring, strlen(secret->valuestring));
    }
    cJSON_Delete(res);
    return MU_CLI_EXIT_OK;
}

static int run_delete(struct mu_cli *cli, const struct mu_cli_args *a)
{
    MU_AUTOFREE char *path = webhook_path(a);
    MU_AUTOFREE char *done =
        mu_xasprintf("deleted the webhook of tenant %" PRId64, mu_cli_arg(a, "--tenant")->num);
    return mu_cli_delete(cli, path, done);
}

static const struct mu_cli_cmd cmds[] = {
    {"set", NULL, "Set a tenant's webhook (the signing secret is shown once)", 0, set_opts,
     MU_ARRAY_LEN(set_opts), run_set},
    {"show", NULL, "Show a tenant's webhook and its delivery status", 0, tenant_opt,
     MU_ARRAY_LEN(tenant_opt), run_show},
    {"delete", NULL, "Remove a tenant's webhook", 0, tenant_opt, MU_ARRAY_LEN(tenant_opt),
     run_delete},
};

const struct mu_cli_group mu_cli_group_webhook = {
    "webhook",
    "A tenant's webhook: where its events are POSTed, signed",
    cmds,
    MU_ARRAY_LEN(cmds),
};
