/* token list | create | revoke. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mutualis/json.h"

static const struct mu_cli_col list_cols[] = {
    {"ID", "id", 0},
    {"USER", "user_id", 0},
    {"NAME", "name", 32},
    {"CREATED", "created_at", 0},
    {"EXPIRES", "expires_at", 0},
    {"LAST USED", "last_used_at", 0},
    {"REVOKED", "revoked_at", 0},
};

static const struct mu_cli_col show_cols[] = {
    {"id", "id", 0},
    {"user", "user_id", 0},
    {"name", "name", 0},
    {"created", "created_at", 0},
    {"expires", "expires_at", 0},
};

static const struct mu_cli_opt list_opts[] = {MU_CLI_LIST_OPTS};

static int run_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return mu_cli_list(cli, "/v1/tokens", a, "tokens", list_cols, MU_ARRAY_LEN(list_cols));
}

static const struct mu_cli_opt create_opts[] = {
    {"--name", MU_CLI_OPT_STR, "NAME", "what the token is for ([a-z0-9._-])", true, NULL, 0, 0},
    {"--user", MU_CLI_OPT_ID, "ID", "owner (default: yourself)", false, NULL, 0, 0},
    {"--expires", MU_CLI_OPT_TIME, "TIME", "expiry, RFC 3339 UTC (2027-01-31T00:00:00Z)", false,
     NULL, 0, 0},
};

#define SECRET_WARNING                                                                             \
    "mutualis: save this secret now: it is stored hashed and will not be shown again\n"

static int run_create(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const struct mu_cli_val *user = mu_cli_arg(a, "--user");
    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "name", mu_cli_arg_str(a, "--name"));
    if (user->set)
        mu_json_add_i64(body, "user_id", user->num);
    if (mu_cli_arg_set(a, "--expires"))
        mu_json_add_str(body, "expires_at", mu_cli_arg_str(a, "--expires"));

    cJSON *res = NULL;
    int r = mu_cli_api(cli, "POST", "/v1/tokens", body, &res);
    cJSON_Delete(body);
    if (r != MU_CLI_EXIT_OK)
        return r;
    cJSON *secret = cJSON_GetObjectItemCaseSensitive(res, "secret");
    if (!cJSON_IsObject(res) || !cJSON_IsString(secret) || !secret->valuestring) {
        cJSON_Delete(res);
        return mu_cli_fail("unexpected answer creating the token: no \"secret\"");
    }
    if (cli->json) {
        mu_cli_print_json(res);
    } else {
        MU_AUTOFREE char *text = mu_cli_cell_text(secret);
        mu_cli_print_fields(show_cols, MU_ARRAY_LEN(show_cols), res);
        printf("secret:   %s\n", text);
        explicit_bzero(text, strlen(text));
    }
    fputs(SECRET_WARNING, stderr);
    explicit_bzero(secret->valuestring, strlen(secret->valuestring));
    cJSON_Delete(res);
    return MU_CLI_EXIT_OK;
}

static int run_revoke(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    char msg[256];
    if (mu_cli_parse_id(a->pos[0], "the token ID", &id, msg, sizeof(msg)) < 0)
        return mu_cli_usage_error(cli, "%s", msg);
    MU_AUTOFREE char *path = mu_xasprintf("/v1/tokens/%" PRId64, id);
    MU_AUTOFREE char *done = mu_xasprintf("revoked token %" PRId64, id);
    return mu_cli_delete(cli, path, done);
}

static const struct mu_cli_cmd cmds[] = {
    {"list", NULL, "List API tokens (operators: all; others: their own)", 0, list_opts,
     MU_ARRAY_LEN(list_opts), run_list},
    {"create", NULL, "Create an API token; its secret is shown once", 0, create_opts,
     MU_ARRAY_LEN(create_opts), run_create},
    {"revoke", "ID", "Revoke an API token", 1, NULL, 0, run_revoke},
};

const struct mu_cli_group mu_cli_group_token = {
    "token",
    "Manage API tokens",
    cmds,
    MU_ARRAY_LEN(cmds),
};
