/* health and whoami: who and what am I talking to. */
#include "cli.h"

static const struct mu_cli_col health_cols[] = {
    {"status", "status", 0},
    {"version", "version", 0},
    {"schema", "schema_version", 0},
};

static const struct mu_cli_col whoami_cols[] = {
    {"user", "user", 0},        {"user id", "user_id", 0},   {"role", "role", 0},
    {"tenant", "tenant_id", 0}, {"token id", "token_id", 0},
};

static int run_health(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return mu_cli_object(cli, "GET", "/v1/health", NULL, health_cols, MU_ARRAY_LEN(health_cols));
}

static int run_whoami(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return mu_cli_object(cli, "GET", "/v1/whoami", NULL, whoami_cols, MU_ARRAY_LEN(whoami_cols));
}

const struct mu_cli_cmd mu_cli_cmd_health = {
    "health", NULL, "Check that the server answers, and its version", 0, NULL, 0, run_health,
};

const struct mu_cli_cmd mu_cli_cmd_whoami = {
    "whoami", NULL, "Show the user and role behind the token", 0, NULL, 0, run_whoami,
};
