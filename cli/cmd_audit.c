/* audit list | verify. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mutualis/json.h"

#define MAC_HEX_MAX 128

static const struct mu_cli_col list_cols[] = {
    {"ID", "id", 0},          {"TIME", "time", 0},        {"ACTOR", "actor", 24},
    {"ROLE", "role", 0},      {"TENANT", "tenant_id", 0}, {"ACTION", "action", 0},
    {"TARGET", "target", 24}, {"OUTCOME", "outcome", 0},  {"DETAIL", "detail", 48},
};

static const struct mu_cli_opt list_opts[] = {
    {"--tenant", MU_CLI_OPT_ID, "ID", "entries about this tenant and its subtree", false, NULL, 0,
     0},
    {"--actor", MU_CLI_OPT_STR, "NAME", "entries of this user", false, NULL, 0, 0},
    {"--since", MU_CLI_OPT_TIME, "TIME", "from this time, RFC 3339 UTC", false, NULL, 0, 0},
    {"--until", MU_CLI_OPT_TIME, "TIME", "up to this time, RFC 3339 UTC", false, NULL, 0, 0},
    MU_CLI_LIST_OPTS,
};

static int run_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    static const char *const filters[][2] = {
        {"--actor", "actor"}, {"--since", "since"}, {"--until", "until"}};
    const struct mu_cli_val *tenant = mu_cli_arg(a, "--tenant");
    struct mu_buf q;
    mu_buf_init(&q);
    mu_buf_puts(&q, "/v1/audit");
    if (tenant->set)
        mu_cli_query_add_i64(&q, "tenant", tenant->num);
    for (size_t i = 0; i < MU_ARRAY_LEN(filters); i++) {
        const char *v = mu_cli_arg_str(a, filters[i][0]);
        if (v)
            mu_cli_query_add(&q, filters[i][1], v);
    }
    int r = mu_cli_list(cli, q.data, a, "entries", list_cols, MU_ARRAY_LEN(list_cols));
    mu_buf_free(&q);
    return r;
}

int mu_cli_parse_head(const char *s, int64_t *ret_id, const char **ret_mac)
{
    const char *colon = strchr(s, ':');
    if (!colon)
        return -1;
    char idtext[24];
    size_t n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof(idtext))
        return -1;
    memcpy(idtext, s, n);
    idtext[n] = '\0';
    int64_t id;
    if (mu_parse_i64(idtext, 1, INT64_MAX, &id) < 0)
        return -1;
    const char *mac = colon + 1;
    size_t maclen = strlen(mac);
    if (maclen == 0 || maclen % 2 != 0 || maclen > MAC_HEX_MAX ||
        strspn(mac, "0123456789abcdefABCDEF") != maclen)
        return -1;
    *ret_id = id;
    *ret_mac = mac;
    return 0;
}

static const struct mu_cli_opt verify_opts[] = {
    {"--head", MU_CLI_OPT_STR, "ID:MAC",
     "the head printed by an earlier verify: also detects a trail cut after it", false, NULL, 0, 0},
};

static int run_verify(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const char *head = mu_cli_arg_str(a, "--head");
    int64_t head_id = 0;
    const char *head_mac = NULL;
    if (head && mu_cli_parse_head(head, &head_id, &head_mac) < 0)
        return mu_cli_usage_error(cli, "--head must be ID:MAC, an entry id and its hex MAC, "
                                       "as printed by 'mutualis audit verify'");

    cJSON *body = mu_json_obj();
    if (head) {
        mu_json_add_i64(body, "head_id", head_id);
        mu_json_add_str(body, "head_mac", head_mac);
    }
    cJSON *res = NULL;
    int r = mu_cli_api(cli, "POST", "/v1/audit/verify", body, &res);
    cJSON_Delete(body);
    if (r != MU_CLI_EXIT_OK)
        return r;
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(res, "ok");
    if (!cJSON_IsBool(ok)) {
        cJSON_Delete(res);
        return mu_cli_fail("unexpected answer from the audit verification: no \"ok\"");
    }
    bool good = cJSON_IsTrue(ok);
    if (cli->json) {
        mu_cli_print_json(res);
    } else {
        MU_AUTOFREE char *checked = mu_cli_cell_text(cJSON_GetObjectItem(res, "checked"));
        MU_AUTOFREE char *hid = mu_cli_cell_text(cJSON_GetObjectItem(res, "head_id"));
        MU_AUTOFREE char *hmac = mu_cli_cell_text(cJSON_GetObjectItem(res, "head_mac"));
        if (good) {
            printf("audit chain ok: %s entries checked\n", checked);
            printf("head: %s:%s\n", hid, hmac);
            fprintf(stderr,
                    "(keep the head: a later 'mutualis audit verify --head %s:%s' also detects "
                    "entries removed from the end)\n",
                    hid, hmac);
        } else {
            MU_AUTOFREE char *bad = mu_cli_cell_text(cJSON_GetObjectItem(res, "first_bad_id"));
            MU_AUTOFREE char *why = mu_cli_cell_text(cJSON_GetObjectItem(res, "reason"));
            printf("audit chain BROKEN: first bad entry %s: %s (%s entries checked)\n", bad, why,
                   checked);
        }
    }
    cJSON_Delete(res);
    return good ? MU_CLI_EXIT_OK : MU_CLI_EXIT_BROKEN;
}

static const struct mu_cli_cmd cmds[] = {
    {"list", NULL, "List the audit trail (tenant roles: their subtree)", 0, list_opts,
     MU_ARRAY_LEN(list_opts), run_list},
    {"verify", NULL, "Check the audit chain's MACs (exit 3 if it is broken)", 0, verify_opts,
     MU_ARRAY_LEN(verify_opts), run_verify},
};

const struct mu_cli_group mu_cli_group_audit = {
    "audit",
    "Read and verify the audit trail",
    cmds,
    MU_ARRAY_LEN(cmds),
};
