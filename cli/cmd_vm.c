/* vm list | show | create | start | stop | reboot | resize | delete; op show; quota show |
 * set | reset. A VM action answers 202 with the operation that carries it out; --wait polls
 * the operation until it succeeds or fails. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mutualis/json.h"
#include "mutualis/validate.h"

#define REQUIRED_LABELS_MAX 8
#define WAIT_POLL_MS        500
#define WAIT_DEFAULT_S      600

/* Observed states a VM can be listed by (store/provision.h). */
static const char *const vm_states[] = {"pending", "running", "shutoff", "missing",
                                        "unknown", "error",   "deleted", NULL};

static const struct mu_cli_col vm_list_cols[] = {
    {"ID", "id", 0},
    {"TENANT", "tenant_id", 0},
    {"NAME", "name", 32},
    {"NODE", "node_id", 0},
    {"FLAVOR", "flavor_id", 0},
    {"VCPUS", "vcpus", 0},
    {"RAM MIB", "ram_mib", 0},
    {"DISK GIB", "disk_gib", 0},
    {"DESIRED", "desired.state", 0},
    {"OBSERVED", "observed.state", 0},
};

static const struct mu_cli_col vm_show_cols[] = {
    {"id", "id", 0},
    {"uuid", "uuid", 0},
    {"name", "name", 0},
    {"tenant", "tenant_id", 0},
    {"flavor", "flavor_id", 0},
    {"vcpus", "vcpus", 0},
    {"ram (MiB)", "ram_mib", 0},
    {"disk (GiB)", "disk_gib", 0},
    {"image", "image_id", 0},
    {"node", "node_id", 0},
    {"group", "group_id", 0},
    {"required labels", "_labels", 0},
    {"desired", "desired.state", 0},
    {"desired since", "desired.since", 0},
    {"observed", "observed.state", 0},
    {"observed since", "observed.since", 0},
    {"last error", "last_error", 0},
    {"created", "created_at", 0},
    {"updated", "updated_at", 0},
};

static const struct mu_cli_col op_cols[] = {
    {"id", "id", 0},
    {"kind", "kind", 0},
    {"vm", "vm_id", 0},
    {"node", "node_id", 0},
    {"state", "state", 0},
    {"step", "step", 0},
    {"attempts", "attempts", 0},
    {"error", "error", 0},
    {"requested by", "requested_by", 0},
    {"request id", "request_id", 0},
    {"created", "created_at", 0},
    {"updated", "updated_at", 0},
    {"finished", "finished_at", 0},
};

/* The flags of every command that starts an operation. */
/* clang-format off */
#define WAIT_OPTS                                                                                  \
    {"--wait", MU_CLI_OPT_FLAG, NULL, "wait until the operation succeeds or fails", false, NULL,   \
     0, 0},                                                                                        \
    {"--timeout", MU_CLI_OPT_INT, "SECONDS", "with --wait: give up waiting after this long "       \
     "(default 600)", false, NULL, 1, 86400}
/* clang-format on */

static void print_vm(cJSON *vm)
{
    MU_AUTOFREE char *labels =
        mu_cli_labels_text(cJSON_GetObjectItemCaseSensitive(vm, "required_labels"));
    cJSON_DeleteItemFromObjectCaseSensitive(vm, "_labels");
    mu_json_add_str(vm, "_labels", labels);
    mu_cli_print_fields(vm_show_cols, MU_ARRAY_LEN(vm_show_cols), vm);
}

static char *member_text(const cJSON *obj, const char *key)
{
    return mu_cli_cell_text(cJSON_GetObjectItemCaseSensitive(obj, key));
}

bool mu_cli_op_finished(const char *state)
{
    return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0;
}

/* Non-empty text of a string member, or NULL. */
static const char *nonempty(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

char *mu_cli_op_progress(const cJSON *op)
{
    struct mu_buf b;
    int64_t attempts = 0;
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(op, "attempts");
    MU_AUTOFREE char *state = member_text(op, "state");
    mu_buf_init(&b);
    mu_buf_puts(&b, state);
    if (nonempty(op, "step")) {
        MU_AUTOFREE char *step = member_text(op, "step");
        mu_buf_printf(&b, ", step %s", step);
    }
    if (att && mu_json_int_value(att, 0, INT64_MAX, &attempts) == 0 && attempts > 1)
        mu_buf_printf(&b, ", attempt %" PRId64, attempts);
    if (nonempty(op, "error")) {
        MU_AUTOFREE char *error = member_text(op, "error");
        mu_buf_printf(&b, ", last error: %s", error);
    }
    return mu_buf_steal(&b);
}

/* The id and state of an operation object; false if it has another shape. */
static bool op_parts(const cJSON *op, int64_t *ret_id, const char **ret_state)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(op, "id");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(op, "state");
    if (!cJSON_IsObject(op) || !id || mu_json_int_value(id, 1, INT64_MAX, ret_id) < 0 ||
        !cJSON_IsString(state))
        return false;
    *ret_state = state->valuestring;
    return true;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Polls GET /v1/operations/{id} every WAIT_POLL_MS until the operation is finished or
 * timeout_s have passed. Returns MU_CLI_EXIT_OK if it succeeded; otherwise prints why (its
 * error, the time limit, or the failed request) and returns MU_CLI_EXIT_FAIL. *ret_op gets
 * the last operation seen (caller frees), NULL if none could be read. On a terminal, each
 * change of progress goes to stderr; first (NULL for none) is the operation as already shown. */
static int wait_op(const struct mu_cli *cli, int64_t id, int64_t timeout_s, const cJSON *first,
                   cJSON **ret_op)
{
    MU_AUTOFREE char *path = mu_xasprintf("/v1/operations/%" PRId64, id);
    int64_t start = mu_mono_ms(), deadline = start + timeout_s * 1000;
    bool tty = !cli->json && isatty(STDERR_FILENO);
    MU_AUTOFREE char *seen = first ? mu_cli_op_progress(first) : NULL; /* last shown */

    *ret_op = NULL;
    for (;;) {
        cJSON *op = NULL;
        int64_t got_id;
        const char *state;
        int r = mu_cli_fetch_object(cli, "GET", path, NULL, &op);
        if (r != MU_CLI_EXIT_OK)
            return r;
        if (!op_parts(op, &got_id, &state)) {
            cJSON_Delete(op);
            return mu_cli_fail("unexpected answer from GET %s: no operation id or state", path);
        }
        MU_AUTOFREE char *kind = member_text(op, "kind");
        MU_AUTOFREE char *progress = mu_cli_op_progress(op);
        int64_t now = mu_mono_ms();
        if (mu_cli_op_finished(state)) {
            *ret_op = op;
            if (strcmp(state, "failed") == 0) {
                MU_AUTOFREE char *error = member_text(op, "error");
                return mu_cli_fail("operation %" PRId64 " (%s) failed: %s", id, kind, error);
            }
            if (!cli->json)
                printf("operation %" PRId64 " (%s) succeeded after %.1f s\n", id, kind,
                       (double)(now - start) / 1000.0);
            return MU_CLI_EXIT_OK;
        }
        if (now >= deadline) {
            *ret_op = op;
            return mu_cli_fail("operation %" PRId64 " (%s) is not finished after %" PRId64
                               " s (%s); follow it with 'mutualis op show %" PRId64 " --wait'",
                               id, kind, timeout_s, progress, id);
        }
        if (tty && (!seen || strcmp(progress, seen) != 0)) {
            fprintf(stderr, "operation %" PRId64 ": %s\n", id, progress);
            free(seen);
            seen = mu_xstrdup(progress);
        }
        cJSON_Delete(op);
        sleep_ms(deadline - now < WAIT_POLL_MS ? deadline - now : WAIT_POLL_MS);
    }
}

/* Reads --wait and --timeout; a usage error for --timeout alone. */
static int wait_args(const struct mu_cli *cli, const struct mu_cli_args *a, bool *ret_wait,
                     int64_t *ret_timeout)
{
    const struct mu_cli_val *timeout = mu_cli_arg(a, "--timeout");
    *ret_wait = mu_cli_arg_set(a, "--wait");
    if (timeout->set && !*ret_wait)
        return mu_cli_usage_error(cli, "--timeout goes with --wait");
    *ret_timeout = timeout->set ? timeout->num : WAIT_DEFAULT_S;
    return MU_CLI_EXIT_OK;
}

/* Sends an action that answers 202 {"vm", "operation"}, prints the operation (and the VM
 * for a creation), and waits for it with --wait. With --json and --wait, prints the answer
 * with the final operation and the VM as it is then (the VM of the answer for a deletion). */
static int vm_action(struct mu_cli *cli, const struct mu_cli_args *a, const char *method,
                     const char *path, const cJSON *body, bool show_vm)
{
    bool wait;
    int64_t timeout_s, op_id;
    const char *state;
    int r = wait_args(cli, a, &wait, &timeout_s);
    if (r != MU_CLI_EXIT_OK)
        return r;

    cJSON *res = NULL;
    r = mu_cli_fetch_object(cli, method, path, body, &res);
    if (r != MU_CLI_EXIT_OK)
        return r;
    cJSON *vm = cJSON_GetObjectItemCaseSensitive(res, "vm");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(res, "operation");
    int64_t vm_id = 0;
    const cJSON *vm_idv = cJSON_GetObjectItemCaseSensitive(vm, "id");
    if (!cJSON_IsObject(vm) || !vm_idv || mu_json_int_value(vm_idv, 1, INT64_MAX, &vm_id) < 0 ||
        !op_parts(op, &op_id, &state)) {
        cJSON_Delete(res);
        return mu_cli_fail("unexpected answer from %s %s: no \"vm\" and \"operation\"", method,
                           path);
    }
    if (cli->json && !wait) {
        mu_cli_print_json(res);
        cJSON_Delete(res);
        return MU_CLI_EXIT_OK;
    }
    if (!cli->json) {
        MU_AUTOFREE char *kind = member_text(op, "kind");
        MU_AUTOFREE char *name = member_text(vm, "name");
        MU_AUTOFREE char *state_text = member_text(op, "state");
        if (show_vm && !wait)
            print_vm(vm);
        printf("%soperation %" PRId64 " (%s, vm %" PRId64 " %s): %s\n",
               show_vm && !wait ? "\n" : "", op_id, kind, vm_id, name, state_text);
        if (!wait) {
            cJSON_Delete(res);
            return MU_CLI_EXIT_OK;
        }
    }

    cJSON *final = NULL;
    r = wait_op(cli, op_id, timeout_s, op, &final);
    bool deleted = strcmp(method, "DELETE") == 0;
    cJSON *now = NULL;
    if (r == MU_CLI_EXIT_OK && !deleted && (cli->json || show_vm)) {
        MU_AUTOFREE char *vm_path = mu_xasprintf("/v1/vms/%" PRId64, vm_id);
        r = mu_cli_fetch_object(cli, "GET", vm_path, NULL, &now);
    }
    if (cli->json && final) {
        if (now)
            cJSON_ReplaceItemInObjectCaseSensitive(res, "vm", MU_STEAL(now));
        cJSON_ReplaceItemInObjectCaseSensitive(res, "operation", MU_STEAL(final));
        mu_cli_print_json(res);
    } else if (now && show_vm) {
        printf("\n");
        print_vm(now);
    }
    cJSON_Delete(now);
    cJSON_Delete(final);
    cJSON_Delete(res);
    return r;
}

static char *vm_path(int64_t id, const char *suffix)
{
    return mu_xasprintf("/v1/vms/%" PRId64 "%s", id, suffix);
}

/* flavor: an id (all digits) or a name. */
static int add_flavor(const struct mu_cli *cli, cJSON *body, const char *flavor)
{
    int64_t id;
    if (strspn(flavor, "0123456789") == strlen(flavor)) {
        char msg[256];
        if (mu_cli_parse_id(flavor, "--flavor", &id, msg, sizeof(msg)) < 0)
            return mu_cli_usage_error(cli, "%s", msg);
        mu_json_add_i64(body, "flavor", id);
        return MU_CLI_EXIT_OK;
    }
    if (!mu_ident_valid(flavor))
        return mu_cli_usage_error(cli,
                                  "--flavor must be a flavor id or name ([a-z0-9._-]), not "
                                  "'%.40s'",
                                  flavor);
    mu_json_add_str(body, "flavor", flavor);
    return MU_CLI_EXIT_OK;
}

/* ---- vm list, show ------------------------------------------------------------------------- */

static const struct mu_cli_opt vm_list_opts[] = {
    {"--tenant", MU_CLI_OPT_ID, "ID", "VMs of this tenant", false, NULL, 0, 0},
    {"--node", MU_CLI_OPT_ID, "ID", "VMs on this node", false, NULL, 0, 0},
    {"--state", MU_CLI_OPT_CHOICE, "STATE", "observed state", false, vm_states, 0, 0},
    MU_CLI_LIST_OPTS,
};

static int run_vm_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const struct mu_cli_val *tenant = mu_cli_arg(a, "--tenant");
    const struct mu_cli_val *node = mu_cli_arg(a, "--node");
    struct mu_buf q;
    mu_buf_init(&q);
    mu_buf_puts(&q, "/v1/vms");
    if (tenant->set)
        mu_cli_query_add_i64(&q, "tenant", tenant->num);
    if (node->set)
        mu_cli_query_add_i64(&q, "node", node->num);
    if (mu_cli_arg_set(a, "--state"))
        mu_cli_query_add(&q, "state", mu_cli_arg_str(a, "--state"));
    int r = mu_cli_list(cli, q.data, a, "VMs", vm_list_cols, MU_ARRAY_LEN(vm_list_cols));
    mu_buf_free(&q);
    return r;
}

static int run_vm_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the VM ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = vm_path(id, "");
    cJSON *vm = NULL;
    r = mu_cli_fetch_object(cli, "GET", path, NULL, &vm);
    if (r != MU_CLI_EXIT_OK)
        return r;
    if (cli->json)
        mu_cli_print_json(vm);
    else
        print_vm(vm);
    cJSON_Delete(vm);
    return MU_CLI_EXIT_OK;
}

/* ---- vm create, actions ------------------------------------------------------------------- */

static const struct mu_cli_opt vm_create_opts[] = {
    {"--tenant", MU_CLI_OPT_ID, "ID", "tenant that owns the VM", true, NULL, 0, 0},
    {"--name", MU_CLI_OPT_IDENT, "NAME", "VM name ([a-z0-9._-])", true, NULL, 0, 0},
    {"--flavor", MU_CLI_OPT_STR, "NAME|ID", "size of the VM", true, NULL, 0, 0},
    {"--image", MU_CLI_OPT_ID, "ID", "base image (uploaded)", true, NULL, 0, 0},
    {"--group", MU_CLI_OPT_ID, "ID", "anti-affinity group of the tenant", false, NULL, 0, 0},
    {"--require-label", MU_CLI_OPT_LABEL, "KEY=VALUE",
     "place only on nodes with this label, e.g. site=paris-1", false, NULL, 0, 0},
    {"--nic", MU_CLI_OPT_LIST, "NET[=IP]",
     "a NIC on network NET (id or name), with address IP or the first free one; repeatable", false,
     NULL, 0, 0},
    WAIT_OPTS,
};

/* --nic NET[=IP] values as the body's "nics": NET an id (digits) or a network name. */
static int nics_array(const struct mu_cli_val *v, cJSON **ret, char *msg, size_t msglen)
{
    cJSON *arr = mu_json_arr();
    if (v->nlist > 8) {
        snprintf(msg, msglen, "at most 8 NICs");
        cJSON_Delete(arr);
        return -1;
    }
    for (size_t i = 0; i < v->nlist; i++) {
        const char *eq = strchr(v->list[i], '=');
        MU_AUTOFREE char *net =
            eq ? mu_xstrndup(v->list[i], (size_t)(eq - v->list[i])) : mu_xstrdup(v->list[i]);
        int64_t id;
        cJSON *o = mu_json_obj();
        cJSON_AddItemToArray(arr, o);
        if (net[0] >= '0' && net[0] <= '9' && mu_parse_i64(net, 1, INT64_MAX, &id) == 0) {
            mu_json_add_i64(o, "network", id);
        } else if (mu_ident_valid(net)) {
            mu_json_add_str(o, "network", net);
        } else {
            snprintf(msg, msglen, "'%.60s' is not NET or NET=IP (NET: a network id or name)",
                     v->list[i]);
            cJSON_Delete(arr);
            return -1;
        }
        if (eq) {
            if (!eq[1] || strlen(eq + 1) > 15) {
                snprintf(msg, msglen, "'%.60s': give an IPv4 address after '='", v->list[i]);
                cJSON_Delete(arr);
                return -1;
            }
            mu_json_add_str(o, "ip", eq + 1);
        }
    }
    *ret = arr;
    return 0;
}

static int run_vm_create(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const struct mu_cli_val *group = mu_cli_arg(a, "--group");
    const struct mu_cli_val *labels = mu_cli_arg(a, "--require-label");
    char msg[256];
    cJSON *check = NULL;

    /* Refuses a key given twice or too many labels before anything is sent. */
    if (mu_cli_labels_object(labels, REQUIRED_LABELS_MAX, &check, msg, sizeof(msg)) < 0)
        return mu_cli_usage_error(cli, "--require-label: %s", msg);
    cJSON_Delete(check);
    cJSON *nics = NULL;
    if (mu_cli_arg_set(a, "--nic") &&
        nics_array(mu_cli_arg(a, "--nic"), &nics, msg, sizeof(msg)) < 0)
        return mu_cli_usage_error(cli, "--nic: %s", msg);

    cJSON *body = mu_json_obj();
    if (nics)
        cJSON_AddItemToObject(body, "nics", nics);
    mu_json_add_i64(body, "tenant_id", mu_cli_arg(a, "--tenant")->num);
    mu_json_add_str(body, "name", mu_cli_arg_str(a, "--name"));
    int r = add_flavor(cli, body, mu_cli_arg_str(a, "--flavor"));
    if (r != MU_CLI_EXIT_OK) {
        cJSON_Delete(body);
        return r;
    }
    mu_json_add_i64(body, "image_id", mu_cli_arg(a, "--image")->num);
    if (group->set)
        mu_json_add_i64(body, "group_id", group->num);
    if (labels->set) {
        cJSON *arr = mu_json_arr();
        for (size_t i = 0; i < labels->nlist; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(labels->list[i]));
        cJSON_AddItemToObject(body, "required_labels", arr);
    }
    r = vm_action(cli, a, "POST", "/v1/vms", body, true);
    cJSON_Delete(body);
    return r;
}

static const struct mu_cli_opt wait_opts[] = {WAIT_OPTS};

static int simple_action(struct mu_cli *cli, const struct mu_cli_args *a, const char *method,
                         const char *suffix)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the VM ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = vm_path(id, suffix);
    return vm_action(cli, a, method, path, NULL, false);
}

static int run_vm_start(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return simple_action(cli, a, "POST", "/start");
}

static int run_vm_stop(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return simple_action(cli, a, "POST", "/stop");
}

static int run_vm_reboot(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return simple_action(cli, a, "POST", "/reboot");
}

static int run_vm_delete(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return simple_action(cli, a, "DELETE", "");
}

static const struct mu_cli_opt vm_resize_opts[] = {
    {"--flavor", MU_CLI_OPT_STR, "NAME|ID", "the new size (its disk cannot be smaller)", true, NULL,
     0, 0},
    WAIT_OPTS,
};

static int run_vm_resize(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the VM ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    cJSON *body = mu_json_obj();
    r = add_flavor(cli, body, mu_cli_arg_str(a, "--flavor"));
    if (r == MU_CLI_EXIT_OK) {
        MU_AUTOFREE char *path = vm_path(id, "/resize");
        r = vm_action(cli, a, "POST", path, body, false);
    }
    cJSON_Delete(body);
    return r;
}

static const struct mu_cli_cmd vm_cmds[] = {
    {"list", NULL, "List VMs", 0, vm_list_opts, MU_ARRAY_LEN(vm_list_opts), run_vm_list},
    {"show", "ID", "Show a VM: desired and observed state", 1, NULL, 0, run_vm_show},
    {"create", NULL, "Create a VM: placed, admitted against quotas, then defined and started", 0,
     vm_create_opts, MU_ARRAY_LEN(vm_create_opts), run_vm_create},
    {"start", "ID", "Start a VM", 1, wait_opts, MU_ARRAY_LEN(wait_opts), run_vm_start},
    {"stop", "ID", "Stop a VM (ACPI shutdown, forced after a timeout)", 1, wait_opts,
     MU_ARRAY_LEN(wait_opts), run_vm_stop},
    {"reboot", "ID", "Reboot a VM", 1, wait_opts, MU_ARRAY_LEN(wait_opts), run_vm_reboot},
    {"resize", "ID", "Give a stopped VM another flavor (cold resize)", 1, vm_resize_opts,
     MU_ARRAY_LEN(vm_resize_opts), run_vm_resize},
    {"delete", "ID", "Delete a VM and its disk", 1, wait_opts, MU_ARRAY_LEN(wait_opts),
     run_vm_delete},
};

const struct mu_cli_group mu_cli_group_vm = {
    "vm",
    "Manage VMs; every action is an operation (see 'op show')",
    vm_cmds,
    MU_ARRAY_LEN(vm_cmds),
};

/* ---- op show ---------------------------------------------------------------------------- */

static int run_op_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id, timeout_s;
    bool wait;
    int r = mu_cli_pos_id(cli, a, "the operation ID", &id);
    if (r == MU_CLI_EXIT_OK)
        r = wait_args(cli, a, &wait, &timeout_s);
    if (r != MU_CLI_EXIT_OK)
        return r;
    if (!wait) {
        MU_AUTOFREE char *path = mu_xasprintf("/v1/operations/%" PRId64, id);
        return mu_cli_object(cli, "GET", path, NULL, op_cols, MU_ARRAY_LEN(op_cols));
    }
    cJSON *final = NULL;
    r = wait_op(cli, id, timeout_s, NULL, &final);
    if (final) {
        if (cli->json)
            mu_cli_print_json(final);
        else
            mu_cli_print_fields(op_cols, MU_ARRAY_LEN(op_cols), final);
    }
    cJSON_Delete(final);
    return r;
}

static const struct mu_cli_cmd op_cmds[] = {
    {"show", "ID", "Show an operation (its state, step and error)", 1, wait_opts,
     MU_ARRAY_LEN(wait_opts), run_op_show},
};

const struct mu_cli_group mu_cli_group_op = {
    "op",
    "Follow the operations that carry out VM actions",
    op_cmds,
    MU_ARRAY_LEN(op_cmds),
};

/* ---- quota ------------------------------------------------------------------------------ */

static const struct mu_cli_col quota_cols[] = {
    {"LEVEL", "level", 0}, {"ID", "tenant_id", 0},      {"TENANT", "tenant", 40},
    {"VCPU", "vcpus", 0},  {"RAM GIB", "ram", 0},       {"DISK GIB", "disk", 0},
    {"VMS", "vms", 0},     {"NETWORKS", "networks", 0}, {"PUBLIC IPS", "public_ips", 0},
    {"LIMITS", "from", 0},
};

/* "used/limit" for one resource; mib: RAM, shown in GiB. NULL if the members are not
 * integers (or "unlimited" for the limit). */
static char *used_of_limit(const cJSON *used, const cJSON *limit, bool mib)
{
    int64_t u, l = 0;
    bool unlimited = cJSON_IsString(limit) && strcmp(limit->valuestring, "unlimited") == 0;
    if (!used || mu_json_int_value(used, 0, INT64_MAX, &u) < 0 ||
        (!unlimited && (!limit || mu_json_int_value(limit, 0, INT64_MAX, &l) < 0)))
        return NULL;
    MU_AUTOFREE char *ut = mib ? mu_cli_gib_text(u) : mu_xasprintf("%" PRId64, u);
    MU_AUTOFREE char *lt = unlimited ? mu_xstrdup("unlimited")
                                     : (mib ? mu_cli_gib_text(l) : mu_xasprintf("%" PRId64, l));
    return mu_xasprintf("%s/%s", ut, lt);
}

cJSON *mu_cli_quota_rows(const cJSON *answer)
{
    static const struct {
        const char *key, *cell;
        bool mib;
        bool optional; /* absent from answers of servers without networks: "-" */
    } res[] = {
        {"vcpus", "vcpus", false, false},      {"ram_mib", "ram", true, false},
        {"disk_gib", "disk", false, false},    {"vms", "vms", false, false},
        {"networks", "networks", false, true}, {"public_ips", "public_ips", false, true},
    };
    const cJSON *levels = cJSON_GetObjectItemCaseSensitive(answer, "levels");
    if (!cJSON_IsArray(levels))
        return NULL;
    cJSON *rows = mu_json_arr();
    const cJSON *lv;
    int64_t level = 0;
    cJSON_ArrayForEach(lv, levels)
    {
        const cJSON *tid = cJSON_GetObjectItemCaseSensitive(lv, "tenant_id");
        const cJSON *limits = cJSON_GetObjectItemCaseSensitive(lv, "limits");
        const cJSON *used = cJSON_GetObjectItemCaseSensitive(lv, "allocated");
        int64_t id;
        if (!cJSON_IsObject(lv) || !tid || mu_json_int_value(tid, 1, INT64_MAX, &id) < 0 ||
            !cJSON_IsObject(limits) || !cJSON_IsObject(used))
            goto bad;
        cJSON *row = mu_json_obj();
        cJSON_AddItemToArray(rows, row);
        mu_json_add_i64(row, "level", ++level);
        mu_json_add_i64(row, "tenant_id", id);
        MU_AUTOFREE char *name = member_text(lv, "tenant");
        mu_json_add_str(row, "tenant", name);
        for (size_t i = 0; i < MU_ARRAY_LEN(res); i++) {
            if (res[i].optional && !cJSON_GetObjectItemCaseSensitive(used, res[i].key)) {
                mu_json_add_str(row, res[i].cell, "-");
                continue;
            }
            MU_AUTOFREE char *cell =
                used_of_limit(cJSON_GetObjectItemCaseSensitive(used, res[i].key),
                              cJSON_GetObjectItemCaseSensitive(limits, res[i].key), res[i].mib);
            if (!cell)
                goto bad;
            mu_json_add_str(row, res[i].cell, cell);
        }
        MU_AUTOFREE char *from = member_text(lv, "limits_from");
        mu_json_add_str(row, "from", from);
    }
    return rows;
bad:
    cJSON_Delete(rows);
    return NULL;
}

static int print_quota(const struct mu_cli *cli, const cJSON *answer)
{
    if (cli->json) {
        mu_cli_print_json(answer);
        return MU_CLI_EXIT_OK;
    }
    cJSON *rows = mu_cli_quota_rows(answer);
    if (!rows)
        return mu_cli_fail("unexpected quota answer: no \"levels\" with limits and usage");
    printf("used/limit at each level, from the root down (a VM counts at every level):\n");
    mu_cli_print_table(quota_cols, MU_ARRAY_LEN(quota_cols), rows);
    cJSON_Delete(rows);
    return MU_CLI_EXIT_OK;
}

static char *quota_path(int64_t id)
{
    return mu_xasprintf("/v1/tenants/%" PRId64 "/quota", id);
}

static int quota_request(struct mu_cli *cli, const char *method, int64_t id, const cJSON *body)
{
    MU_AUTOFREE char *path = quota_path(id);
    cJSON *res = NULL;
    int r = mu_cli_fetch_object(cli, method, path, body, &res);
    if (r == MU_CLI_EXIT_OK)
        r = print_quota(cli, res);
    cJSON_Delete(res);
    return r;
}

static int run_quota_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the tenant ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    return quota_request(cli, "GET", id, NULL);
}

/* Flags and body members of quota set; the ranges are the server's. */
static const struct {
    const char *flag, *key;
} limit_flags[] = {
    {"--vcpus", "vcpus"}, {"--ram", "ram_mib"},       {"--disk", "disk_gib"},
    {"--vms", "vms"},     {"--networks", "networks"}, {"--public-ips", "public_ips"},
};

static const struct mu_cli_opt quota_set_opts[] = {
    {"--vcpus", MU_CLI_OPT_LIMIT, "N|unlimited", "vCPUs", false, NULL, 0, 1 << 20},
    {"--ram", MU_CLI_OPT_LIMIT, "MIB|unlimited", "memory in MiB", false, NULL, 0, (int64_t)1 << 40},
    {"--disk", MU_CLI_OPT_LIMIT, "GIB|unlimited", "disk in GiB", false, NULL, 0, (int64_t)1 << 30},
    {"--vms", MU_CLI_OPT_LIMIT, "N|unlimited", "number of VMs", false, NULL, 0, 1 << 24},
    {"--networks", MU_CLI_OPT_LIMIT, "N|unlimited", "private networks", false, NULL, 0, 1 << 20},
    {"--public-ips", MU_CLI_OPT_LIMIT, "N|unlimited",
     "public addresses (NICs on provider "
     "networks)",
     false, NULL, 0, 1 << 24},
};

static int run_quota_set(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the tenant ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    bool any = false;
    for (size_t i = 0; i < MU_ARRAY_LEN(limit_flags); i++)
        any = any || mu_cli_arg_set(a, limit_flags[i].flag);
    if (!any)
        return mu_cli_usage_error(cli, "nothing to change: give --vcpus, --ram, --disk, --vms, "
                                       "--networks or --public-ips");

    /* The server takes the four limits at once: those not given keep their current value. */
    MU_AUTOFREE char *path = quota_path(id);
    cJSON *cur = NULL;
    r = mu_cli_fetch_object(cli, "GET", path, NULL, &cur);
    if (r != MU_CLI_EXIT_OK)
        return r;
    const cJSON *levels = cJSON_GetObjectItemCaseSensitive(cur, "levels");
    const cJSON *lv, *limits = NULL;
    if (!cJSON_IsArray(levels))
        levels = NULL;
    cJSON_ArrayForEach(lv, levels)
    {
        const cJSON *tid = cJSON_GetObjectItemCaseSensitive(lv, "tenant_id");
        int64_t t;
        if (tid && mu_json_int_value(tid, 1, INT64_MAX, &t) == 0 && t == id)
            limits = cJSON_GetObjectItemCaseSensitive(lv, "limits");
    }
    if (!cJSON_IsObject(limits)) {
        cJSON_Delete(cur);
        return mu_cli_fail("unexpected quota answer: no limits for tenant %" PRId64, id);
    }
    cJSON *body = mu_json_obj();
    for (size_t i = 0; i < MU_ARRAY_LEN(limit_flags); i++) {
        const struct mu_cli_val *v = mu_cli_arg(a, limit_flags[i].flag);
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(limits, limit_flags[i].key);
        if (v->set && v->num == MU_CLI_UNLIMITED)
            mu_json_add_str(body, limit_flags[i].key, "unlimited");
        else if (v->set)
            mu_json_add_i64(body, limit_flags[i].key, v->num);
        else if (old)
            cJSON_AddItemToObject(body, limit_flags[i].key, cJSON_Duplicate(old, true));
    }
    cJSON_Delete(cur);
    r = quota_request(cli, "PUT", id, body);
    cJSON_Delete(body);
    return r;
}

static int run_quota_reset(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the tenant ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    cJSON *body = mu_json_obj();
    r = quota_request(cli, "PUT", id, body);
    cJSON_Delete(body);
    return r;
}

static const struct mu_cli_cmd quota_cmds[] = {
    {"show", "TENANT", "Show limits and usage of a tenant and each level above it", 1, NULL, 0,
     run_quota_show},
    {"set", "TENANT", "Set a tenant's limits (those not given keep their current value)", 1,
     quota_set_opts, MU_ARRAY_LEN(quota_set_opts), run_quota_set},
    {"reset", "TENANT", "Remove a tenant's own limits: back to the policy's defaults", 1, NULL, 0,
     run_quota_reset},
};

const struct mu_cli_group mu_cli_group_quota = {
    "quota",
    "Manage tenant quotas: vCPU, RAM, disk and VM count, checked at every level",
    quota_cmds,
    MU_ARRAY_LEN(quota_cmds),
};
