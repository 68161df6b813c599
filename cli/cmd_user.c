/* user list | show | create | update | delete. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "mutualis/json.h"

static const char *const roles[] = {"operator", "observer", "tenant-admin", "tenant-reader", NULL};

static const struct mu_cli_col list_cols[] = {
    {"ID", "id", 0},
    {"NAME", "name", 0},
    {"ROLE", "role", 0},
    {"TENANT", "tenant_id", 0},
    {"DISABLED", "disabled", 0},
    {"DISPLAY NAME", "display_name", 40},
    {"EMAIL", "email", 40},
};

static const struct mu_cli_col show_cols[] = {
    {"id", "id", 0},
    {"name", "name", 0},
    {"display name", "display_name", 0},
    {"email", "email", 0},
    {"role", "role", 0},
    {"tenant", "tenant_id", 0},
    {"disabled", "disabled", 0},
    {"created", "created_at", 0},
};

static int pos_id(const struct mu_cli *cli, const struct mu_cli_args *a, int64_t *ret)
{
    char msg[256];
    if (mu_cli_parse_id(a->pos[0], "the user ID", ret, msg, sizeof(msg)) < 0)
        return mu_cli_usage_error(cli, "%s", msg);
    return MU_CLI_EXIT_OK;
}

/* Reads one line from standard input (without echo when it is a terminal). Returns the
 * password (caller wipes and frees) or NULL after printing why. */
static char *read_password(const struct mu_cli *cli)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fprintf(stderr, "Password: ");
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n <= 0) {
        if (line)
            explicit_bzero(line, cap);
        free(line);
        mu_cli_usage_error(cli, "--password-stdin: no password on standard input");
        return NULL;
    }
    return line;
}

/* Adds "password" from standard input if --password-stdin was given. MU_CLI_EXIT_OK or
 * the usage status. */
static int add_password(const struct mu_cli *cli, const struct mu_cli_args *a, cJSON *body)
{
    if (!mu_cli_arg_set(a, "--password-stdin"))
        return MU_CLI_EXIT_OK;
    char *pw = read_password(cli);
    if (!pw)
        return MU_CLI_EXIT_USAGE;
    mu_json_add_str(body, "password", pw);
    explicit_bzero(pw, strlen(pw));
    free(pw);
    return MU_CLI_EXIT_OK;
}

/* Sends body, then wipes the password it may hold. */
static int send_user(const struct mu_cli *cli, const char *method, const char *path, cJSON *body)
{
    int r = mu_cli_object(cli, method, path, body, show_cols, MU_ARRAY_LEN(show_cols));
    cJSON *pw = cJSON_GetObjectItemCaseSensitive(body, "password");
    if (cJSON_IsString(pw) && pw->valuestring)
        explicit_bzero(pw->valuestring, strlen(pw->valuestring));
    cJSON_Delete(body);
    return r;
}

static const struct mu_cli_opt list_opts[] = {MU_CLI_LIST_OPTS};

static int run_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return mu_cli_list(cli, "/v1/users", a, "users", list_cols, MU_ARRAY_LEN(list_cols));
}

static int run_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = pos_id(cli, a, &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/users/%" PRId64, id);
    return mu_cli_object(cli, "GET", path, NULL, show_cols, MU_ARRAY_LEN(show_cols));
}

/* clang-format off */
#define PASSWORD_OPT                                                                               \
    {"--password-stdin", MU_CLI_OPT_FLAG, NULL,                                                    \
     "read the password (12..256 characters) from one line of stdin", false, NULL, 0, 0}
/* clang-format on */

static const struct mu_cli_opt create_opts[] = {
    {"--name", MU_CLI_OPT_STR, "NAME", "login name ([a-z0-9._-])", true, NULL, 0, 0},
    {"--role", MU_CLI_OPT_CHOICE, "ROLE", "role", true, roles, 0, 0},
    {"--tenant", MU_CLI_OPT_ID, "ID", "tenant of a tenant-admin or tenant-reader", false, NULL, 0,
     0},
    {"--display-name", MU_CLI_OPT_STR, "TEXT", "name shown to people", false, NULL, 0, 0},
    {"--email", MU_CLI_OPT_STR, "EMAIL", "e-mail address", false, NULL, 0, 0},
    PASSWORD_OPT,
};

static int run_create(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const struct mu_cli_val *tenant = mu_cli_arg(a, "--tenant");
    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "name", mu_cli_arg_str(a, "--name"));
    mu_json_add_str(body, "role", mu_cli_arg_str(a, "--role"));
    if (tenant->set)
        mu_json_add_i64(body, "tenant_id", tenant->num);
    if (mu_cli_arg_set(a, "--display-name"))
        mu_json_add_str(body, "display_name", mu_cli_arg_str(a, "--display-name"));
    if (mu_cli_arg_set(a, "--email"))
        mu_json_add_str(body, "email", mu_cli_arg_str(a, "--email"));
    int r = add_password(cli, a, body);
    if (r != MU_CLI_EXIT_OK) {
        cJSON_Delete(body);
        return r;
    }
    return send_user(cli, "POST", "/v1/users", body);
}

static const struct mu_cli_opt update_opts[] = {
    {"--display-name", MU_CLI_OPT_STR, "TEXT", "name shown to people", false, NULL, 0, 0},
    {"--email", MU_CLI_OPT_STR, "EMAIL", "e-mail address", false, NULL, 0, 0},
    {"--role", MU_CLI_OPT_CHOICE, "ROLE", "role", false, roles, 0, 0},
    {"--tenant", MU_CLI_OPT_ID, "ID", "tenant of a tenant role", false, NULL, 0, 0},
    {"--no-tenant", MU_CLI_OPT_FLAG, NULL, "remove the tenant (for a global role)", false, NULL, 0,
     0},
    {"--disable", MU_CLI_OPT_FLAG, NULL, "refuse the user's logins and tokens", false, NULL, 0, 0},
    {"--enable", MU_CLI_OPT_FLAG, NULL, "allow the user again", false, NULL, 0, 0},
    PASSWORD_OPT,
};

static int run_update(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = pos_id(cli, a, &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    const struct mu_cli_val *tenant = mu_cli_arg(a, "--tenant");
    bool disable = mu_cli_arg_set(a, "--disable"), enable = mu_cli_arg_set(a, "--enable");
    if (disable && enable)
        return mu_cli_usage_error(cli, "--disable and --enable exclude each other");
    if (tenant->set && mu_cli_arg_set(a, "--no-tenant"))
        return mu_cli_usage_error(cli, "--tenant and --no-tenant exclude each other");

    cJSON *body = mu_json_obj();
    static const char *const texts[][2] = {
        {"--display-name", "display_name"}, {"--email", "email"}, {"--role", "role"}};
    for (size_t i = 0; i < MU_ARRAY_LEN(texts); i++) {
        const char *v = mu_cli_arg_str(a, texts[i][0]);
        if (v)
            mu_json_add_str(body, texts[i][1], v);
    }
    if (tenant->set)
        mu_json_add_i64(body, "tenant_id", tenant->num);
    if (mu_cli_arg_set(a, "--no-tenant"))
        mu_json_add_null(body, "tenant_id");
    if (disable || enable)
        mu_json_add_bool(body, "disabled", disable);
    if (!body->child && !mu_cli_arg_set(a, "--password-stdin")) {
        cJSON_Delete(body);
        return mu_cli_usage_error(cli, "nothing to change: give at least one flag");
    }
    r = add_password(cli, a, body);
    if (r != MU_CLI_EXIT_OK) {
        cJSON_Delete(body);
        return r;
    }
    MU_AUTOFREE char *path = mu_xasprintf("/v1/users/%" PRId64, id);
    return send_user(cli, "PATCH", path, body);
}

static int run_delete(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = pos_id(cli, a, &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/users/%" PRId64, id);
    MU_AUTOFREE char *done = mu_xasprintf("deleted user %" PRId64, id);
    return mu_cli_delete(cli, path, done);
}

static const struct mu_cli_cmd cmds[] = {
    {"list", NULL, "List users", 0, list_opts, MU_ARRAY_LEN(list_opts), run_list},
    {"show", "ID", "Show a user", 1, NULL, 0, run_show},
    {"create", NULL, "Create a user", 0, create_opts, MU_ARRAY_LEN(create_opts), run_create},
    {"update", "ID", "Change a user: role, tenant, contact, password, disabled", 1, update_opts,
     MU_ARRAY_LEN(update_opts), run_update},
    {"delete", "ID", "Delete a user", 1, NULL, 0, run_delete},
};

const struct mu_cli_group mu_cli_group_user = {
    "user",
    "Manage users, their role and their tenant",
    cmds,
    MU_ARRAY_LEN(cmds),
};
