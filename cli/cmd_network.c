/* network create | list | show | delete | addresses, and network rule add | list | delete
 * (the security rules of a network: "network rule ACTION NETWORK [flags]"). */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/validate.h"

static const struct mu_cli_col net_cols[] = {
    {"ID", "id", 0},           {"TENANT", "tenant_id", 0}, {"NAME", "name", 24},
    {"KIND", "kind", 0},       {"MODE", "mode", 0},        {"CIDR", "cidr", 0},
    {"SEGMENT", "segment", 0}, {"NICS", "nics", 0},        {"FREE", "free_addresses", 0},
};

static const struct mu_cli_col show_cols[] = {
    {"id", "id", 0},
    {"tenant", "tenant_id", 0},
    {"name", "name", 0},
    {"kind", "kind", 0},
    {"mode", "mode", 0},
    {"cidr", "cidr", 0},
    {"gateway", "gateway", 0},
    {"segment", "segment", 0},
    {"bridge", "bridge", 0},
    {"mtu", "mtu", 0},
    {"reserved", "reserved", 0},
    {"pools", "pools", 0},
    {"open to tenants", "shared", 0},
    {"NICs", "nics", 0},
    {"free addresses", "free_addresses", 0},
    {"rules generation", "rules_gen", 0},
    {"created", "created_at", 0},
};

static const struct mu_cli_col addr_cols[] = {
    {"IP", "ip", 0},   {"MAC", "mac", 0},          {"VM", "vm_id", 0}, {"VM NAME", "vm_name", 32},
    {"NIC", "nic", 0}, {"TENANT", "tenant_id", 0},
};

static const struct mu_cli_col rule_cols[] = {
    {"ID", "id", 0},
    {"OPERATOR", "operator_rule", 0},
    {"ACTION", "action", 0},
    {"PROTO", "proto", 0},
    {"PORTS", "ports", 0},
    {"SOURCE", "source", 0},
    {"DESCRIPTION", "description", 40},
};

/* "A-B" or "A" (IPv4 text, checked by the server) as ["A", "B"]. */
static cJSON *range_json(const char *s)
{
    const char *dash = strchr(s, '-');
    cJSON *pair = mu_json_arr();
    if (dash) {
        MU_AUTOFREE char *a = mu_xstrndup(s, (size_t)(dash - s));
        cJSON_AddItemToArray(pair, cJSON_CreateString(a));
        cJSON_AddItemToArray(pair, cJSON_CreateString(dash + 1));
    } else {
        cJSON_AddItemToArray(pair, cJSON_CreateString(s));
        cJSON_AddItemToArray(pair, cJSON_CreateString(s));
    }
    return pair;
}

static cJSON *ranges_json(const struct mu_cli_val *v)
{
    cJSON *arr = mu_json_arr();
    for (size_t i = 0; i < v->nlist; i++)
        cJSON_AddItemToArray(arr, range_json(v->list[i]));
    return arr;
}

static const struct mu_cli_opt create_opts[] = {
    {"--name", MU_CLI_OPT_IDENT, "NAME", "network name ([a-z0-9._-], at most 48)", true, NULL, 0,
     0},
    {"--tenant", MU_CLI_OPT_ID, "ID", "owner (private networks; a tenant admin's own by default)",
     false, NULL, 0, 0},
    {"--cidr", MU_CLI_OPT_STR, "CIDR",
     "IPv4 network, e.g. 10.0.0.0/24 (policy default if left out)", false, NULL, 0, 0},
    {"--reserved", MU_CLI_OPT_LIST, "A-B", "addresses never handed out (repeatable)", false, NULL,
     0, 0},
    {"--provider", MU_CLI_OPT_FLAG, NULL, "an operator's provider network (existing bridge)", false,
     NULL, 0, 0},
    {"--bridge", MU_CLI_OPT_STR, "BRIDGE", "provider: the bridge on every node", false, NULL, 0, 0},
    {"--gateway", MU_CLI_OPT_STR, "IP", "provider: the network's gateway", false, NULL, 0, 0},
    {"--pool", MU_CLI_OPT_LIST, "A-B", "provider: addresses handed out (repeatable)", false, NULL,
     0, 0},
    {"--shared", MU_CLI_OPT_FLAG, NULL, "provider: tenants may put NICs on it", false, NULL, 0, 0},
    {"--mtu", MU_CLI_OPT_INT, "N", "provider: MTU (default: the underlay's)", false, NULL, 576,
     9216},
};

static int run_create(struct mu_cli *cli, const struct mu_cli_args *a)
{
    bool provider = mu_cli_arg_set(a, "--provider");
    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "name", mu_cli_arg_str(a, "--name"));
    if (provider)
        mu_json_add_str(body, "kind", "provider");
    if (mu_cli_arg_set(a, "--tenant"))
        mu_json_add_i64(body, "tenant_id", mu_cli_arg(a, "--tenant")->num);
    if (mu_cli_arg_set(a, "--cidr"))
        mu_json_add_str(body, "cidr", mu_cli_arg_str(a, "--cidr"));
    if (mu_cli_arg_set(a, "--reserved"))
        cJSON_AddItemToObject(body, "reserved", ranges_json(mu_cli_arg(a, "--reserved")));
    if (mu_cli_arg_set(a, "--bridge"))
        mu_json_add_str(body, "bridge", mu_cli_arg_str(a, "--bridge"));
    if (mu_cli_arg_set(a, "--gateway"))
        mu_json_add_str(body, "gateway", mu_cli_arg_str(a, "--gateway"));
    if (mu_cli_arg_set(a, "--pool"))
        cJSON_AddItemToObject(body, "pools", ranges_json(mu_cli_arg(a, "--pool")));
    if (mu_cli_arg_set(a, "--shared"))
        mu_json_add_bool(body, "shared", true);
    if (mu_cli_arg_set(a, "--mtu"))
        mu_json_add_i64(body, "mtu", mu_cli_arg(a, "--mtu")->num);
    int r = mu_cli_object(cli, "POST", "/v1/networks", body, show_cols, MU_ARRAY_LEN(show_cols));
    cJSON_Delete(body);
    return r;
}

static const struct mu_cli_opt list_opts[] = {MU_CLI_LIST_OPTS};

static int run_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return mu_cli_list(cli, "/v1/networks", a, "networks", net_cols, MU_ARRAY_LEN(net_cols));
}

static int run_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the network ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/networks/%" PRId64, id);
    return mu_cli_object(cli, "GET", path, NULL, show_cols, MU_ARRAY_LEN(show_cols));
}

static int run_delete(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the network ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/networks/%" PRId64, id);
    MU_AUTOFREE char *done = mu_xasprintf("deleted network %" PRId64, id);
    return mu_cli_delete(cli, path, done);
}

static const struct mu_cli_opt addr_opts[] = {
    {"--limit", MU_CLI_OPT_INT, "N", "addresses per page (1..1000, server default 100)", false,
     NULL, 1, 1000},
    {"--after", MU_CLI_OPT_STR, "IP", "start after this address", false, NULL, 0, 0},
};

static int run_addresses(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the network ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_printf(&b, "/v1/networks/%" PRId64 "/addresses", id);
    if (mu_cli_arg_set(a, "--limit"))
        mu_cli_query_add(&b, "limit", mu_cli_arg_str(a, "--limit"));
    if (mu_cli_arg_set(a, "--after"))
        mu_cli_query_add(&b, "after", mu_cli_arg_str(a, "--after"));
    cJSON *res = NULL;
    r = mu_cli_fetch_object(cli, "GET", b.data, NULL, &res);
    mu_buf_free(&b);
    if (r != MU_CLI_EXIT_OK)
        return r;
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(res, "next_after");
    if (cli->json)
        mu_cli_print_json(res);
    else
        mu_cli_print_table(addr_cols, MU_ARRAY_LEN(addr_cols),
                           cJSON_GetObjectItemCaseSensitive(res, "items"));
    if (!cli->json && cJSON_IsString(next))
        fprintf(stderr, "mutualis: more addresses: add --after %s\n", next->valuestring);
    cJSON_Delete(res);
    return MU_CLI_EXIT_OK;
}

/* ---- network rule ACTION NETWORK ------------------------------------------------------- */

static const char *const rule_actions[] = {"add", "list", "delete", NULL};
static const char *const protos[] = {"tcp", "udp", "icmp", "any", NULL};
static const char *const verdicts[] = {"accept", "drop", NULL};

static const struct mu_cli_opt rule_opts[] = {
    {"--proto", MU_CLI_OPT_CHOICE, "PROTO", "add: tcp, udp, icmp or any", false, protos, 0, 0},
    {"--ports", MU_CLI_OPT_STR, "PORT[-PORT]", "add (tcp/udp): a port or a range, e.g. 8000-8080",
     false, NULL, 0, 0},
    {"--source", MU_CLI_OPT_STR, "CIDR", "add: who may connect (default 0.0.0.0/0)", false, NULL, 0,
     0},
    {"--description", MU_CLI_OPT_STR, "TEXT", "add: why the rule exists", false, NULL, 0, 0},
    {"--action", MU_CLI_OPT_CHOICE, "VERDICT", "add: accept (default), or drop (operators only)",
     false, verdicts, 0, 0},
    {"--id", MU_CLI_OPT_ID, "RULE", "delete: the rule to delete", false, NULL, 0, 0},
};

static int run_rule(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const char *action = a->pos[0];
    int64_t net = 0;
    char msg[160];
    size_t k;
    for (k = 0; rule_actions[k] && strcmp(rule_actions[k], action) != 0; k++)
        ;
    if (!rule_actions[k])
        return mu_cli_usage_error(cli, "ACTION must be add, list or delete (got '%.40s')", action);
    if (mu_cli_parse_id(a->pos[1], "the network ID", &net, msg, sizeof msg) < 0)
        return mu_cli_usage_error(cli, "%s", msg);
    bool adds = strcmp(action, "add") == 0, deletes = strcmp(action, "delete") == 0;
    static const char *const add_only[] = {"--proto", "--ports", "--source", "--description",
                                           "--action"};
    for (size_t i = 0; i < MU_ARRAY_LEN(add_only); i++)
        if (!adds && mu_cli_arg_set(a, add_only[i]))
            return mu_cli_usage_error(cli, "%s is for 'rule add'", add_only[i]);
    if (!deletes && mu_cli_arg_set(a, "--id"))
        return mu_cli_usage_error(cli, "--id is for 'rule delete'");
    MU_AUTOFREE char *path = mu_xasprintf("/v1/networks/%" PRId64 "/rules", net);
    if (strcmp(action, "list") == 0)
        return mu_cli_list_whole(cli, path, "rules", rule_cols, MU_ARRAY_LEN(rule_cols), NULL);
    if (deletes) {
        if (!mu_cli_arg_set(a, "--id"))
            return mu_cli_usage_error(cli, "'rule delete' needs --id RULE");
        int64_t rid = mu_cli_arg(a, "--id")->num;
        MU_AUTOFREE char *rpath = mu_xasprintf("%s/%" PRId64, path, rid);
        MU_AUTOFREE char *done =
            mu_xasprintf("deleted rule %" PRId64 " of network %" PRId64, rid, net);
        return mu_cli_delete(cli, rpath, done);
    }
    if (!mu_cli_arg_set(a, "--proto"))
        return mu_cli_usage_error(cli, "'rule add' needs --proto");
    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "proto", mu_cli_arg_str(a, "--proto"));
    if (mu_cli_arg_set(a, "--ports"))
        mu_json_add_str(body, "ports", mu_cli_arg_str(a, "--ports"));
    if (mu_cli_arg_set(a, "--source"))
        mu_json_add_str(body, "source", mu_cli_arg_str(a, "--source"));
    if (mu_cli_arg_set(a, "--description"))
        mu_json_add_str(body, "description", mu_cli_arg_str(a, "--description"));
    if (mu_cli_arg_set(a, "--action"))
        mu_json_add_str(body, "action", mu_cli_arg_str(a, "--action"));
    int r = mu_cli_object(cli, "POST", path, body, rule_cols, MU_ARRAY_LEN(rule_cols));
    cJSON_Delete(body);
    return r;
}

static const struct mu_cli_cmd cmds[] = {
    {"create", NULL, "Create a private network (or, --provider, an operator's provider network)", 0,
     create_opts, MU_ARRAY_LEN(create_opts), run_create},
    {"list", NULL, "List the networks you can see", 0, list_opts, MU_ARRAY_LEN(list_opts),
     run_list},
    {"show", "ID", "Show a network", 1, NULL, 0, run_show},
    {"delete", "ID", "Delete a network no VM uses", 1, NULL, 0, run_delete},
    {"addresses", "ID", "Allocated addresses of a network and their VMs", 1, addr_opts,
     MU_ARRAY_LEN(addr_opts), run_addresses},
    {"rule", "ACTION ID", "Security rules: 'rule add|list|delete NETWORK' (see --help)", 2,
     rule_opts, MU_ARRAY_LEN(rule_opts), run_rule},
};

const struct mu_cli_group mu_cli_group_network = {
    "network",
    "Networks (IPv4): private networks of a tenant, provider networks, addresses, rules",
    cmds,
    MU_ARRAY_LEN(cmds),
};
