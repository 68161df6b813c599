/* node enroll: enrols a registered node over SSH (POST /v1/nodes/{id}/enroll). The SSH
 * private key is read from a file, or a one-time password from standard input (never from
 * the command line, where other users could see it); either is sent once, over the same
 * HTTPS connection as everything else, and wiped from memory afterwards.
 *
 * Prints each step of the enrolment (also those done before a failed one), then the host
 * key, certificate and libvirt URIs; --json prints the server's answer. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"

#define ENROLL_KEY_MAX      16384
#define ENROLL_PASSWORD_MAX 1024
#define ENROLL_TIMEOUT_S    600L /* upload, key generation and the wait for a first report */

static const struct mu_cli_opt enroll_opts[] = {
    {"--host", MU_CLI_OPT_STR, "HOST", "the node's SSH address (host name or IP)", true, NULL, 0,
     0},
    {"--port", MU_CLI_OPT_INT, "PORT", "SSH port (default 22)", false, NULL, 1, 65535},
    {"--user", MU_CLI_OPT_STR, "USER",
     "SSH user; the agent runs as this user (root: a system install)", true, NULL, 0, 0},
    {"--key", MU_CLI_OPT_STR, "FILE", "SSH private key file (OpenSSH or PEM, unencrypted)", false,
     NULL, 0, 0},
    {"--password-stdin", MU_CLI_OPT_FLAG, NULL, "read a one-time SSH password from stdin", false,
     NULL, 0, 0},
    {"--host-key", MU_CLI_OPT_STR, "FINGERPRINT",
     "expected SSH host key, SHA256:… (without it, the key is pinned on first use)", false, NULL, 0,
     0},
    {"--controller-url", MU_CLI_OPT_STR, "URL",
     "where the agent reaches the controller (default: the URL this command uses)", false, NULL, 0,
     0},
    {"--libvirt-uri", MU_CLI_OPT_STR, "URI",
     "set the node's libvirt URI (default: keep the registered one)", false, NULL, 0, 0},
    {"--interval", MU_CLI_OPT_INT, "SECONDS", "agent report interval (default 10)", false, NULL, 1,
     3600},
};

static const struct mu_cli_col step_cols[] = {
    {"STEP", "step", 0},
    {"OUTCOME", "outcome", 0},
    {"DETAIL", "detail", 0},
};

static const struct mu_cli_col summary_cols[] = {
    {"node", "node", 0},
    {"enrolment", "enrolment", 0},
    {"host key", "host_key_sha256", 0},
    {"host key check", "host_key", 0},
    {"agent sha256", "agent.sha256", 0},
    {"supervisor", "agent.supervisor", 0},
    {"certificate", "certificate.serial", 0},
    {"valid until", "certificate.not_after", 0},
    {"first report", "report", 0},
    {"libvirt uri", "libvirt_uri", 0},
    {"libvirt over ssh", "libvirt_uri_ssh", 0},
};

/* Reads a secret file or stream whole (cap bytes at most). NULL with msg on failure. */
static char *read_secret(FILE *f, size_t cap, char *msg, size_t msglen, const char *what)
{
    char *buf = mu_xmalloc(cap + 2);
    size_t n = fread(buf, 1, cap + 1, f);
    if (ferror(f)) {
        snprintf(msg, msglen, "cannot read %s: %s", what, strerror(errno));
        explicit_bzero(buf, cap + 2);
        free(buf);
        return NULL;
    }
    if (n > cap) {
        snprintf(msg, msglen, "%s is larger than %zu bytes", what, cap);
        explicit_bzero(buf, cap + 2);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void print_steps(const cJSON *doc)
{
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(doc, "steps");
    if (cJSON_IsArray(steps) && steps->child)
        mu_cli_print_table(step_cols, MU_ARRAY_LEN(step_cols), steps);
}

static int run_enroll(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the node ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    const char *key_file = mu_cli_arg_str(a, "--key");
    bool use_password = mu_cli_arg_set(a, "--password-stdin");
    if (!key_file == !use_password)
        return mu_cli_usage_error(cli, "give --key FILE or --password-stdin (one of them)");
    const char *host_key = mu_cli_arg_str(a, "--host-key");
    if (host_key && strncmp(host_key, "SHA256:", 7) != 0)
        return mu_cli_usage_error(cli, "--host-key must be a fingerprint SHA256:…, as printed by "
                                       "ssh-keygen -lf on the node's host key");

    char msg[512];
    char *secret = NULL;
    if (key_file) {
        FILE *f = fopen(key_file, "r");
        if (!f)
            return mu_cli_usage_error(cli, "cannot open the key file %s: %s", key_file,
                                      strerror(errno));
        secret = read_secret(f, ENROLL_KEY_MAX, msg, sizeof msg, key_file);
        fclose(f);
    } else {
        secret = read_secret(stdin, ENROLL_PASSWORD_MAX, msg, sizeof msg, "the password");
        if (secret) {
            secret[strcspn(secret, "\r\n")] = '\0';
            if (!secret[0]) {
                free(secret);
                return mu_cli_usage_error(cli, "no password on standard input");
            }
        }
    }
    if (!secret)
        return mu_cli_usage_error(cli, "%s", msg);

    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "host", mu_cli_arg_str(a, "--host"));
    if (mu_cli_arg_set(a, "--port"))
        mu_json_add_i64(body, "port", mu_cli_arg(a, "--port")->num);
    mu_json_add_str(body, "user", mu_cli_arg_str(a, "--user"));
    mu_json_add_str(body, key_file ? "private_key" : "password", secret);
    explicit_bzero(secret, strlen(secret));
    free(secret);
    if (host_key)
        mu_json_add_str(body, "host_key_sha256", host_key);
    if (mu_cli_arg_set(a, "--controller-url"))
        mu_json_add_str(body, "controller_url", mu_cli_arg_str(a, "--controller-url"));
    if (mu_cli_arg_set(a, "--libvirt-uri"))
        mu_json_add_str(body, "libvirt_uri", mu_cli_arg_str(a, "--libvirt-uri"));
    if (mu_cli_arg_set(a, "--interval"))
        mu_json_add_i64(body, "interval_s", mu_cli_arg(a, "--interval")->num);
    char *text = mu_json_print(body);
    const char *skey = key_file ? "private_key" : "password";
    cJSON *sv = cJSON_GetObjectItemCaseSensitive(body, skey);
    if (cJSON_IsString(sv))
        explicit_bzero(sv->valuestring, strlen(sv->valuestring));
    cJSON_Delete(body);

    MU_AUTOFREE char *path = mu_xasprintf("/v1/nodes/%" PRId64 "/enroll", id);
    struct mu_cli_http_resp resp = {0};
    int rc = mu_cli_http_do(cli, "POST", path, text, strlen(text), ENROLL_TIMEOUT_S, &resp, msg,
                            sizeof msg);
    explicit_bzero(text, strlen(text));
    free(text);
    if (rc < 0)
        return mu_cli_fail("%s", msg);

    bool ok = resp.status >= 200 && resp.status <= 299;
    cJSON *doc =
        resp.len ? mu_cli_json_parse(resp.body, resp.len, "answer", msg, sizeof msg) : NULL;
    if (ok && !doc) {
        r = mu_cli_fail("POST %s: the server's %s", path, resp.len ? msg : "answer is empty");
    } else if (cli->json && doc) {
        mu_cli_print_json(doc);
        r = ok ? MU_CLI_EXIT_OK : MU_CLI_EXIT_FAIL;
        if (!ok) {
            MU_AUTOFREE char *line =
                mu_cli_problem_line(resp.status, resp.body, resp.len, resp.request_id);
            mu_cli_fail("%s", line);
        }
    } else if (ok) {
        print_steps(doc);
        printf("\n");
        mu_cli_print_fields(summary_cols, MU_ARRAY_LEN(summary_cols), doc);
        r = MU_CLI_EXIT_OK;
    } else {
        /* The steps done before the failure, then the one error line. */
        print_steps(doc);
        MU_AUTOFREE char *line =
            mu_cli_problem_line(resp.status, resp.body, resp.len, resp.request_id);
        const cJSON *fp = cJSON_GetObjectItemCaseSensitive(doc, "host_key_sha256");
        r = mu_cli_fail("%s", line);
        if (cJSON_IsString(fp) && resp.status == 409)
            fprintf(stderr, "mutualis: the node's host key now is %s\n", fp->valuestring);
    }
    cJSON_Delete(doc);
    mu_cli_http_resp_free(&resp);
    return r;
}

static const struct mu_cli_cmd cmds[] = {
    {"enroll", "ID", "Enrol a node over SSH: its agent, with its own key and certificate", 1,
     enroll_opts, MU_ARRAY_LEN(enroll_opts), run_enroll},
};

/* A second table of the "node" group (cmd_node.c holds the first): main.c looks a
 * subcommand up in every group of that name. */
const struct mu_cli_group mu_cli_group_node_enroll = {
    "node",
    "Manage hypervisor nodes: registration, labels, maintenance and draining",
    cmds,
    MU_ARRAY_LEN(cmds),
};
