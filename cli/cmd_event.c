/* event list: the event feed of the caller's scope. */
#include "cli.h"

#include <stdio.h>

#include "mutualis/json.h"

static const struct mu_cli_col list_cols[] = {
    {"ID", "id", 0},      {"TIME", "at", 0},          {"TENANT", "tenant_id", 0},
    {"TYPE", "type", 32}, {"SUBJECT", "subject", 40},
};

static const struct mu_cli_opt list_opts[] = {
    {"--tenant", MU_CLI_OPT_ID, "ID", "events of this tenant and its subtree", false, NULL, 0, 0},
    {"--type", MU_CLI_OPT_STR, "PREFIX", "events whose type starts with PREFIX (\"request.\")",
     false, NULL, 0, 0},
    MU_CLI_LIST_OPTS,
};

static int run_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const struct mu_cli_val *tenant = mu_cli_arg(a, "--tenant");
    const char *type = mu_cli_arg_str(a, "--type");
    struct mu_buf q;
    mu_buf_init(&q);
    mu_buf_puts(&q, "/v1/events");
    if (tenant->set)
        mu_cli_query_add_i64(&q, "tenant", tenant->num);
    if (type)
        mu_cli_query_add(&q, "type", type);
    int r = mu_cli_list(cli, q.data, a, "events", list_cols, MU_ARRAY_LEN(list_cols));
    mu_buf_free(&q);
    return r;
}

static const struct mu_cli_cmd cmds[] = {
    {"list", NULL, "List events (requests, VMs, alerts) of your scope, oldest first", 0, list_opts,
     MU_ARRAY_LEN(list_opts), run_list},
};

const struct mu_cli_group mu_cli_group_event = {
    "event",
    "The event feed",
    cmds,
    MU_ARRAY_LEN(cmds),
};
