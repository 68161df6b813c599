/* mutualis: the command-line client of mutualisd. Reads the settings from the environment
 * and the global flags, finds the command in the dispatch table, checks its arguments and
 * runs it. See cli.h for the tour of the other files. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A top-level word: a command (health) or a group of commands (tenant). */
struct entry {
    const char *name;
    const struct mu_cli_cmd *cmd;
    const struct mu_cli_group *group;
};

/* cmd_webhook.c, cmd_event.c */
extern const struct mu_cli_group mu_cli_group_webhook;
/* cmd_network.c */
extern const struct mu_cli_group mu_cli_group_network;
extern const struct mu_cli_group mu_cli_group_event;

/* cmd_request.c */
extern const struct mu_cli_group mu_cli_group_app_catalog;
extern const struct mu_cli_group mu_cli_group_request;

/* cmd_alert.c */
extern const struct mu_cli_group mu_cli_group_alert;
extern const struct mu_cli_group mu_cli_group_capacity;

static const struct entry commands[] = {
    {"health", &mu_cli_cmd_health, NULL},
    {"whoami", &mu_cli_cmd_whoami, NULL},
    {"tenant", NULL, &mu_cli_group_tenant},
    {"user", NULL, &mu_cli_group_user},
    {"token", NULL, &mu_cli_group_token},
    {"audit", NULL, &mu_cli_group_audit},
    {"node", NULL, &mu_cli_group_node},
    {"node", NULL, &mu_cli_group_node_enroll},
    {"flavor", NULL, &mu_cli_group_flavor},
    {"image", NULL, &mu_cli_group_image},
    {"group", NULL, &mu_cli_group_affinity},
    {"vm", NULL, &mu_cli_group_vm},
    {"op", NULL, &mu_cli_group_op},
    {"quota", NULL, &mu_cli_group_quota},
    {"catalog", NULL, &mu_cli_group_app_catalog},
    {"request", NULL, &mu_cli_group_request},
    {"event", NULL, &mu_cli_group_event},
    {"webhook", NULL, &mu_cli_group_webhook},
    {"network", NULL, &mu_cli_group_network},
    {"alert", NULL, &mu_cli_group_alert},
    {"capacity", NULL, &mu_cli_group_capacity},
};

/* Flags only meaningful before the command. */
static const struct mu_cli_opt top_opts[] = {
    {"--version", MU_CLI_OPT_FLAG, NULL, "print the version and exit", false, NULL, 0, 0},
};

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Index of the first word at or after i that is neither a flag nor the value of one of the
 * global flags that take a value. */
static int skip_flags(int argc, char **argv, int i)
{
    while (i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0) {
        bool takes_value = strcmp(argv[i], "--url") == 0 || strcmp(argv[i], "--token") == 0 ||
                           strcmp(argv[i], "--ca") == 0;
        i += takes_value ? 2 : 1;
    }
    return i < argc ? i : argc;
}

static void print_cmd_line(struct mu_buf *b, const char *prefix, const struct mu_cli_cmd *c)
{
    char left[64];
    snprintf(left, sizeof(left), "%s%s%s%s%s", prefix, prefix[0] ? " " : "", c->name,
             c->synopsis ? " " : "", c->synopsis ? c->synopsis : "");
    mu_buf_printf(b, "  %-28s %s\n", left, c->summary);
}

static void print_footer(struct mu_buf *b)
{
    mu_buf_puts(b, "\nGlobal flags (anywhere on the line):\n");
    mu_cli_args_help_global(b);
    mu_buf_puts(b, "\nExit status: 0 done; 1 refused by the server, or unreachable; 2 bad command "
                   "line or\nsetting (nothing was sent); 3 audit chain broken.\n");
}

static void emit_help(struct mu_buf *b)
{
    fwrite(b->data, 1, b->len, stdout);
    mu_buf_free(b);
}

static void help_top(void)
{
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_puts(&b, "usage: mutualis [flags] COMMAND [ARGS] [flags]\n\n"
                    "Command-line client of mutualisd, the Mutualis control plane.\n"
                    "Settings come from MUTUALIS_URL, MUTUALIS_TOKEN and MUTUALIS_CA, or the "
                    "flags below.\n\nCommands:\n");
    for (size_t i = 0; i < MU_ARRAY_LEN(commands); i++) {
        const struct entry *e = &commands[i];
        if (e->cmd) {
            print_cmd_line(&b, "", e->cmd);
            continue;
        }
        for (size_t k = 0; k < e->group->ncmds; k++)
            print_cmd_line(&b, e->group->name, &e->group->cmds[k]);
    }
    mu_buf_puts(&b, "\nRun 'mutualis COMMAND --help' for the flags of a command.\n");
    mu_buf_puts(&b, "\nFlags:\n");
    mu_cli_args_help(&b, top_opts, MU_ARRAY_LEN(top_opts));
    print_footer(&b);
    emit_help(&b);
}

static void help_group(const struct mu_cli_group *g)
{
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_printf(&b, "usage: mutualis %s SUBCOMMAND [ARGS] [flags]\n\n%s.\n\nSubcommands:\n",
                  g->name, g->summary);
    /* A group may span several tables (entries of the same name). */
    for (size_t i = 0; i < MU_ARRAY_LEN(commands); i++) {
        const struct mu_cli_group *t = commands[i].group;
        for (size_t k = 0; t && strcmp(t->name, g->name) == 0 && k < t->ncmds; k++)
            print_cmd_line(&b, t->name, &t->cmds[k]);
    }
    mu_buf_printf(&b, "\nRun 'mutualis %s SUBCOMMAND --help' for its flags.\n", g->name);
    print_footer(&b);
    emit_help(&b);
}

static void help_cmd(const struct mu_cli *cli, const struct mu_cli_cmd *c)
{
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_printf(&b, "usage: %s", cli->where);
    if (c->synopsis)
        mu_buf_printf(&b, " %s", c->synopsis);
    for (size_t i = 0; i < c->nopts; i++) {
        if (c->opts[i].required)
            mu_buf_printf(&b, " %s %s", c->opts[i].name, c->opts[i].metavar);
    }
    mu_buf_printf(&b, " [flags]\n\n%s.\n", c->summary);
    if (c->nopts) {
        mu_buf_puts(&b, "\nFlags:\n");
        mu_cli_args_help(&b, c->opts, c->nopts);
    }
    print_footer(&b);
    emit_help(&b);
}

/* A bad setting: one line, exit 2, nothing sent. */
static int setting_error(const char *fmt, ...) MU_PRINTF(1, 2);
static int setting_error(const char *fmt, ...)
{
    va_list ap;
    fputs("mutualis: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    return MU_CLI_EXIT_USAGE;
}

/* Checks the settings before anything is sent. */
static int check_settings(const struct mu_cli *cli)
{
    if (strncasecmp(cli->url, "https://", 8) != 0 || cli->url[8] == '\0')
        return setting_error("the server address must start with https:// (got '%.80s'); "
                             "check MUTUALIS_URL or --url",
                             cli->url);
    for (const char *p = cli->url; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7F)
            return setting_error("the server address contains a space or a control character; "
                                 "check MUTUALIS_URL or --url");
    }
    for (const char *p = cli->token ? cli->token : ""; *p; p++) {
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7F)
            return setting_error("the token contains a space or a character that is not "
                                 "printable ASCII; check MUTUALIS_TOKEN or --token");
    }
    if (cli->ca && access(cli->ca, R_OK) != 0)
        return setting_error("cannot read the CA file %s: %m; check MUTUALIS_CA or --ca", cli->ca);
    return MU_CLI_EXIT_OK;
}

static int run_cmd(struct mu_cli *cli, const struct mu_cli_cmd *c, int argc, char **argv)
{
    struct mu_cli_args a;
    char msg[512];
    int r;

    if (mu_cli_args_parse(c->opts, c->nopts, argc, argv, cli, &a, msg, sizeof(msg)) < 0)
        return mu_cli_usage_error(cli, "%s", msg);
    if (cli->help) {
        help_cmd(cli, c);
        r = MU_CLI_EXIT_OK;
    } else if (a.npos < (size_t)c->npos) {
        r = mu_cli_usage_error(cli, "missing %s", c->synopsis);
    } else if (a.npos > (size_t)c->npos) {
        r = mu_cli_usage_error(cli, "unexpected argument '%.60s'", a.pos[c->npos]);
    } else {
        r = check_settings(cli);
        if (r == MU_CLI_EXIT_OK)
            r = c->run(cli, &a);
    }
    mu_cli_args_free(&a);
    return r;
}

/* Parses the global flags in argv[from, to) into cli. */
static int parse_globals(struct mu_cli *cli, int from, int to, char **argv, bool *ret_version)
{
    struct mu_cli_args a;
    char msg[512];
    if (mu_cli_args_parse(top_opts, MU_ARRAY_LEN(top_opts), to - from, argv + from, cli, &a, msg,
                          sizeof(msg)) < 0)
        return mu_cli_usage_error(cli, "%s", msg);
    int r = MU_CLI_EXIT_OK;
    if (a.npos > 0 && !cli->help)
        r = mu_cli_usage_error(cli, "unexpected argument '%.60s'", a.pos[0]);
    *ret_version = !cli->help && mu_cli_arg_set(&a, "--version");
    mu_cli_args_free(&a);
    return r;
}

static int dispatch(struct mu_cli *cli, int argc, char **argv)
{
    bool version = false;
    int i = skip_flags(argc, argv, 1);
    int r = parse_globals(cli, 1, i, argv, &version);
    if (r != MU_CLI_EXIT_OK)
        return r;
    if (version) {
        printf("mutualis %s\n", MU_VERSION);
        return MU_CLI_EXIT_OK;
    }
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i >= argc) {
        if (cli->help) {
            help_top();
            return MU_CLI_EXIT_OK;
        }
        return mu_cli_usage_error(cli, "missing command");
    }

    const struct entry *e = NULL;
    for (size_t k = 0; k < MU_ARRAY_LEN(commands) && !e; k++) {
        if (strcmp(commands[k].name, argv[i]) == 0)
            e = &commands[k];
    }
    if (!e)
        return mu_cli_usage_error(cli, "unknown command '%.60s'", argv[i]);

    MU_AUTOFREE char *where = NULL;
    if (e->cmd) {
        where = mu_xasprintf("mutualis %s", e->name);
        cli->where = where;
        return run_cmd(cli, e->cmd, argc - i - 1, argv + i + 1);
    }

    const struct mu_cli_group *g = e->group;
    MU_AUTOFREE char *gwhere = mu_xasprintf("mutualis %s", g->name);
    cli->where = gwhere;
    int j = skip_flags(argc, argv, i + 1);
    r = parse_globals(cli, i + 1, j, argv, &version);
    if (r != MU_CLI_EXIT_OK)
        return r;
    if (j >= argc || version) {
        if (cli->help) {
            help_group(g);
            return MU_CLI_EXIT_OK;
        }
        return mu_cli_usage_error(cli, version ? "--version goes before the command"
                                               : "missing subcommand");
    }
    const struct mu_cli_cmd *c = NULL;
    for (size_t gi = 0; gi < MU_ARRAY_LEN(commands) && !c; gi++) {
        const struct mu_cli_group *t = commands[gi].group;
        for (size_t k = 0; t && strcmp(t->name, g->name) == 0 && k < t->ncmds && !c; k++) {
            if (strcmp(t->cmds[k].name, argv[j]) == 0)
                c = &t->cmds[k];
        }
    }
    if (!c)
        return mu_cli_usage_error(cli, "unknown subcommand '%.60s'", argv[j]);
    where = mu_xasprintf("mutualis %s %s", g->name, c->name);
    cli->where = where;
    return run_cmd(cli, c, argc - j - 1, argv + j + 1);
}

int main(int argc, char **argv)
{
    struct mu_cli cli = {
        .url = env("MUTUALIS_URL"),
        .token = env("MUTUALIS_TOKEN"),
        .ca = env("MUTUALIS_CA"),
        .where = "mutualis",
    };
    if (!cli.url)
        cli.url = MU_CLI_DEFAULT_URL;

    mu_cli_http_init();
    int r = dispatch(&cli, argc, argv);
    mu_cli_http_cleanup();
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mutualis: cannot write the output\n");
        if (r == MU_CLI_EXIT_OK)
            r = MU_CLI_EXIT_FAIL;
    }
    return r;
}
