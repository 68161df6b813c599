/* Flag tables and their parser: every argument is checked here, before any request. */
#include "cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/validate.h"

#define IDENT_RULE "1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"

/* The global flags, accepted before the command and among its own flags. */
static const struct mu_cli_opt global_opts[] = {
    {"--url", MU_CLI_OPT_STR, "URL", "server address (MUTUALIS_URL; " MU_CLI_DEFAULT_URL ")", false,
     NULL, 0, 0},
    {"--token", MU_CLI_OPT_STR, "TOKEN", "API token (MUTUALIS_TOKEN)", false, NULL, 0, 0},
    {"--ca", MU_CLI_OPT_STR, "FILE", "CA of the server, PEM (MUTUALIS_CA; system trust)", false,
     NULL, 0, 0},
    {"--json", MU_CLI_OPT_FLAG, NULL, "print the server's answer as JSON", false, NULL, 0, 0},
    {"--help", MU_CLI_OPT_FLAG, NULL, "show help (also -h)", false, NULL, 0, 0},
};

static const struct mu_cli_opt *find_opt(const struct mu_cli_opt *opts, size_t nopts,
                                         const char *name, size_t namelen, size_t *ret_idx)
{
    for (size_t i = 0; i < nopts; i++) {
        if (strlen(opts[i].name) == namelen && memcmp(opts[i].name, name, namelen) == 0) {
            *ret_idx = i;
            return &opts[i];
        }
    }
    return NULL;
}

static void choices_text(const char *const *choices, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; choices[i]; i++) {
        int n = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "", choices[i]);
        if (n < 0 || (size_t)n >= outlen - used)
            break;
        used += (size_t)n;
    }
}

/* Checks one value against its flag's type and stores it. 0 or -1 with msg. */
static int store_value(const struct mu_cli_opt *o, const char *v, struct mu_cli_val *val, char *msg,
                       size_t msglen)
{
    int64_t n = 0;
    if (*v == '\0') {
        snprintf(msg, msglen, "%s needs a non-empty %s", o->name, o->metavar);
        return -1;
    }
    switch (o->type) {
    case MU_CLI_OPT_FLAG:
        break;
    case MU_CLI_OPT_STR:
        break;
    case MU_CLI_OPT_LIST:
        val->list = mu_xrealloc(val->list, (val->nlist + 1) * sizeof(*val->list));
        val->list[val->nlist++] = v;
        break;
    case MU_CLI_OPT_ID:
        if (mu_parse_i64(v, 1, INT64_MAX, &n) < 0) {
            snprintf(msg, msglen, "%s must be a positive integer id, not '%.40s'", o->name, v);
            return -1;
        }
        break;
    case MU_CLI_OPT_INT:
        if (mu_parse_i64(v, o->min, o->max, &n) < 0) {
            snprintf(msg, msglen,
                     "%s must be an integer between %" PRId64 " and %" PRId64 ", not '%.40s'",
                     o->name, o->min, o->max, v);
            return -1;
        }
        break;
    case MU_CLI_OPT_CHOICE: {
        bool ok = false;
        for (size_t i = 0; o->choices[i] && !ok; i++)
            ok = strcmp(o->choices[i], v) == 0;
        if (!ok) {
            char list[256];
            choices_text(o->choices, list, sizeof(list));
            snprintf(msg, msglen, "%s must be one of: %s (not '%.40s')", o->name, list, v);
            return -1;
        }
        break;
    }
    case MU_CLI_OPT_IDENT:
        if (!mu_ident_valid(v)) {
            snprintf(msg, msglen, "%s must be " IDENT_RULE ", not '%.40s'", o->name, v);
            return -1;
        }
        break;
    case MU_CLI_OPT_LABEL: {
        char key[64];
        const char *value;
        if (mu_cli_label_split(v, key, &value) < 0) {
            snprintf(msg, msglen,
                     "%s must be key=value, each side " IDENT_RULE " (e.g. site=paris-1), "
                     "not '%.40s'",
                     o->name, v);
            return -1;
        }
        val->list = mu_xrealloc(val->list, (val->nlist + 1) * sizeof(*val->list));
        val->list[val->nlist++] = v;
        break;
    }
    case MU_CLI_OPT_LIMIT:
        if (strcmp(v, "unlimited") == 0) {
            n = MU_CLI_UNLIMITED;
        } else if (mu_parse_i64(v, o->min, o->max, &n) < 0) {
            snprintf(msg, msglen,
                     "%s must be an integer between %" PRId64 " and %" PRId64
                     " or 'unlimited', not '%.40s'",
                     o->name, o->min, o->max, v);
            return -1;
        }
        break;
    case MU_CLI_OPT_TIME: {
        int64_t ms;
        if (mu_parse_time(v, &ms) < 0) {
            snprintf(msg, msglen,
                     "%s must be an RFC 3339 UTC time such as 2026-11-28T20:33:03Z, not '%.40s'",
                     o->name, v);
            return -1;
        }
        break;
    }
    }
    val->set = true;
    val->str = v;
    val->num = n;
    return 0;
}

static void store_global(const struct mu_cli_opt *o, const char *v, struct mu_cli *cli)
{
    if (strcmp(o->name, "--url") == 0)
        cli->url = v;
    else if (strcmp(o->name, "--token") == 0)
        cli->token = v;
    else if (strcmp(o->name, "--ca") == 0)
        cli->ca = v;
    else if (strcmp(o->name, "--json") == 0)
        cli->json = true;
    else
        cli->help = true;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

int mu_cli_args_parse(const struct mu_cli_opt *opts, size_t nopts, int argc, char **argv,
                      struct mu_cli *cli, struct mu_cli_args *ret, char *msg, size_t msglen)
{
    struct mu_cli_args a = {.opts = opts, .nopts = nopts};
    bool global_seen[MU_ARRAY_LEN(global_opts)] = {false};
    bool flags_done = false;

    msg[0] = '\0';
    a.vals = mu_xcalloc(nopts ? nopts : 1, sizeof(*a.vals));
    a.pos = mu_xcalloc((size_t)argc + 1, sizeof(*a.pos));
    if (cli->help || wants_help(argc, argv)) { /* help was asked before the command too */
        cli->help = true;
        *ret = a;
        return 0;
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!flags_done && strcmp(arg, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (flags_done || arg[0] != '-' || arg[1] == '\0') {
            a.pos[a.npos++] = arg;
            continue;
        }
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t namelen = eq ? (size_t)(eq - arg) : strlen(arg);
        size_t idx;
        bool global = false;
        const struct mu_cli_opt *o = find_opt(opts, nopts, arg, namelen, &idx);
        if (!o) {
            o = find_opt(global_opts, MU_ARRAY_LEN(global_opts), arg, namelen, &idx);
            global = true;
        }
        if (!o) {
            snprintf(msg, msglen, "unknown flag '%.*s'", (int)(namelen < 60 ? namelen : 60), arg);
            goto fail;
        }
        struct mu_cli_val gval = {0};
        struct mu_cli_val *val = global ? &gval : &a.vals[idx];
        bool seen = global ? global_seen[idx] : val->set;
        if (seen && o->type != MU_CLI_OPT_LIST && o->type != MU_CLI_OPT_LABEL) {
            snprintf(msg, msglen, "%s given twice", o->name);
            goto fail;
        }
        const char *v = "";
        if (o->type == MU_CLI_OPT_FLAG) {
            if (eq) {
                snprintf(msg, msglen, "%s takes no value", o->name);
                goto fail;
            }
            v = "yes";
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            v = argv[++i];
        } else {
            snprintf(msg, msglen, "%s needs a value", o->name);
            goto fail;
        }
        if (store_value(o, v, val, msg, msglen) < 0)
            goto fail;
        if (global) {
            global_seen[idx] = true;
            store_global(o, v, cli);
        }
    }
    for (size_t k = 0; k < nopts; k++) {
        if (opts[k].required && !a.vals[k].set) {
            snprintf(msg, msglen, "%s %s is required", opts[k].name, opts[k].metavar);
            goto fail;
        }
    }
    *ret = a;
    return 0;
fail:
    mu_cli_args_free(&a);
    return -1;
}

void mu_cli_args_free(struct mu_cli_args *a)
{
    if (!a)
        return;
    for (size_t i = 0; a->vals && i < a->nopts; i++)
        free(a->vals[i].list);
    free(a->vals);
    free(a->pos);
    a->vals = NULL;
    a->pos = NULL;
}

const struct mu_cli_val *mu_cli_arg(const struct mu_cli_args *a, const char *name)
{
    size_t idx;
    if (!find_opt(a->opts, a->nopts, name, strlen(name), &idx)) {
        fprintf(stderr, "mutualis: bug: flag %s is not declared\n", name);
        abort();
    }
    return &a->vals[idx];
}

const char *mu_cli_arg_str(const struct mu_cli_args *a, const char *name)
{
    const struct mu_cli_val *v = mu_cli_arg(a, name);
    return v->set ? v->str : NULL;
}

bool mu_cli_arg_set(const struct mu_cli_args *a, const char *name)
{
    return mu_cli_arg(a, name)->set;
}

int mu_cli_pos_id(const struct mu_cli *cli, const struct mu_cli_args *a, const char *what,
                  int64_t *ret)
{
    char msg[256];
    if (mu_cli_parse_id(a->pos[0], what, ret, msg, sizeof(msg)) < 0)
        return mu_cli_usage_error(cli, "%s", msg);
    return MU_CLI_EXIT_OK;
}

int mu_cli_label_split(const char *s, char ret_key[64], const char **ret_value)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || (size_t)(eq - s) > 63)
        return -1;
    char key[64];
    memcpy(key, s, (size_t)(eq - s));
    key[eq - s] = '\0';
    if (!mu_ident_valid(key) || !mu_ident_valid(eq + 1))
        return -1;
    memcpy(ret_key, key, sizeof(key));
    *ret_value = eq + 1;
    return 0;
}

int mu_cli_labels_object(const struct mu_cli_val *v, size_t max, cJSON **ret, char *msg,
                         size_t msglen)
{
    if (v->nlist > max) {
        snprintf(msg, msglen, "at most %zu labels (%zu given)", max, v->nlist);
        return -1;
    }
    cJSON *obj = mu_json_obj();
    for (size_t i = 0; i < v->nlist; i++) {
        char key[64];
        const char *value;
        if (mu_cli_label_split(v->list[i], key, &value) < 0) {
            snprintf(msg, msglen, "bad label '%.40s': want key=value", v->list[i]);
            cJSON_Delete(obj);
            return -1;
        }
        if (cJSON_GetObjectItemCaseSensitive(obj, key)) {
            snprintf(msg, msglen, "label %s given twice", key);
            cJSON_Delete(obj);
            return -1;
        }
        mu_json_add_str(obj, key, value);
    }
    *ret = obj;
    return 0;
}

int mu_cli_parse_id(const char *s, const char *what, int64_t *ret, char *msg, size_t msglen)
{
    if (mu_parse_i64(s, 1, INT64_MAX, ret) < 0) {
        snprintf(msg, msglen, "%s must be a positive integer id, not '%.40s'", what, s);
        return -1;
    }
    return 0;
}

static void help_lines(struct mu_buf *out, const struct mu_cli_opt *opts, size_t nopts)
{
    for (size_t i = 0; i < nopts; i++) {
        const struct mu_cli_opt *o = &opts[i];
        char left[64];
        snprintf(left, sizeof(left), "%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        mu_buf_printf(out, "  %-24s %s", left, o->help);
        if (o->type == MU_CLI_OPT_CHOICE) {
            char list[256];
            choices_text(o->choices, list, sizeof(list));
            mu_buf_printf(out, ": %s", list);
        }
        if (o->type == MU_CLI_OPT_LIST || o->type == MU_CLI_OPT_LABEL)
            mu_buf_puts(out, " (repeatable)");
        mu_buf_puts(out, o->required ? " (required)\n" : "\n");
    }
}

void mu_cli_args_help(struct mu_buf *out, const struct mu_cli_opt *opts, size_t nopts)
{
    help_lines(out, opts, nopts);
}

void mu_cli_args_help_global(struct mu_buf *out)
{
    help_lines(out, global_opts, MU_ARRAY_LEN(global_opts));
}

int mu_cli_usage_error(const struct mu_cli *cli, const char *fmt, ...)
{
    const char *where = cli->where ? cli->where : "mutualis";
    va_list ap;
    fprintf(stderr, "%s: ", where);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try '%s --help')\n", where);
    return MU_CLI_EXIT_USAGE;
}
