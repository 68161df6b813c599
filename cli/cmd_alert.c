/* alert list: the alerts of GET /v1/alerts (firing by default; --all: every alert, firing
 * and resolved, every page). */
#include "cli.h"

#include <string.h>

static const struct mu_cli_col list_cols[] = {
    {"ID", "id", 0},
    {"RULE", "rule", 0},
    {"SUBJECT", "subject", 24},
    {"SEVERITY", "severity", 0},
    {"STATE", "state", 0},
    {"SINCE", "since", 0},
    {"RESOLVED", "resolved", 0},
    {"DETAIL", "detail", 72},
};

static const struct mu_cli_opt list_opts[] = {
    {"--state", MU_CLI_OPT_STR, "STATE", "firing (default), resolved or all", false, NULL, 0, 0},
    {"--limit", MU_CLI_OPT_INT, "N", "items per page (1..1000, server default 100)", false, NULL, 1,
     1000},
    {"--after", MU_CLI_OPT_ID, "ID", "start after this id", false, NULL, 0, 0},
    {"--all", MU_CLI_OPT_FLAG, NULL, "every alert, firing and resolved, all pages", false, NULL, 0,
     0},
};

static int run_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const char *state = mu_cli_arg_str(a, "--state");
    if (state && strcmp(state, "firing") != 0 && strcmp(state, "resolved") != 0 &&
        strcmp(state, "all") != 0)
        return mu_cli_usage_error(cli, "--state must be firing, resolved or all");
    if (!state)
        state = mu_cli_arg_set(a, "--all") ? "all" : "firing";
    struct mu_buf q;
    mu_buf_init(&q);
    mu_buf_puts(&q, "/v1/alerts");
    mu_cli_query_add(&q, "state", state);
    int r = mu_cli_list(cli, q.data, a, "alerts", list_cols, MU_ARRAY_LEN(list_cols));
    mu_buf_free(&q);
    return r;
}

static const struct mu_cli_cmd cmds[] = {
    {"list", NULL, "List alerts (firing; --all adds resolved ones)", 0, list_opts,
     MU_ARRAY_LEN(list_opts), run_list},
};

const struct mu_cli_group mu_cli_group_alert = {
    "alert",
    "Alerts from policies/alerts.json",
    cmds,
    MU_ARRAY_LEN(cmds),
};
