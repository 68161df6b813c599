/* node list | show | create | label | maintenance | drain | activate | delete. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"

#define NODE_LABELS_MAX 32
#define URI_MAX         1024

static const struct mu_cli_col list_cols[] = {
    {"ID", "id", 0},
    {"NAME", "name", 24},
    {"STATE", "state", 0},
    {"HEALTH", "health", 0},
    {"VIRT", "_virt", 0},
    {"CPUS", "_cpus", 0},
    {"MEMORY", "_memory", 0},
    {"DISK", "_disk", 0},
    {"ALLOCATED", "_allocated", 0},
    {"VMS", "allocated.vms", 0},
};

static const struct mu_cli_col show_cols[] = {
    {"id", "id", 0},
    {"name", "name", 0},
    {"uri", "uri", 0},
    {"pool", "pool", 0},
    {"state", "state", 0},
    {"health", "health", 0},
    {"enrolment", "enrolment", 0},
    {"labels", "_labels", 0},
    {"virtualization", "_virt", 0},
    {"cpus", "_cpus", 0},
    {"memory", "_memory", 0},
    {"reserved memory", "_reserved", 0},
    {"disk", "_disk", 0},
    {"capacity read", "capacity.read_at", 0},
    {"allocated", "_allocated", 0},
    {"vms", "allocated.vms", 0},
    {"last error", "last_error", 0},
    {"created", "created_at", 0},
    {"updated", "updated_at", 0},
};

static const struct mu_cli_col remaining_cols[] = {
    {"ID", "id", 0},
    {"NAME", "name", 32},
    {"TENANT", "tenant_id", 0},
    {"STATE", "state", 0},
};

/* An integer member at a dotted path of one level ("capacity", "cpus"); false if absent. */
static bool member_i64(const cJSON *obj, const char *sub, const char *key, int64_t *ret)
{
    const cJSON *o = sub ? cJSON_GetObjectItemCaseSensitive(obj, sub) : obj;
    const cJSON *v = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return v && mu_json_int_value(v, INT64_MIN, INT64_MAX, ret) == 0;
}

/* Replaces obj[key] with text (taken). */
static void set_text(cJSON *obj, const char *key, char *text)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    mu_json_add_str(obj, key, text);
    free(text);
}

static char *gib_cell(bool known, int64_t mib)
{
    if (!known)
        return mu_xstrdup("-");
    MU_AUTOFREE char *g = mu_cli_gib_text(mib);
    return mu_xasprintf("%s GiB", g);
}

void mu_cli_node_cells(cJSON *node)
{
    int64_t cpus = 0, mem = 0, disk = 0, reserved = 0, vcpus = 0, ram = 0, adisk = 0;
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(node, "capacity");
    const cJSON *virt = cJSON_GetObjectItemCaseSensitive(cap, "virtualization");
    /* Until the controller has read the node, its capacity figures are zeros, not facts. */
    bool read = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(cap, "read_at"));
    bool has_cpus = read && member_i64(node, "capacity", "cpus", &cpus);
    bool has_mem = read && member_i64(node, "capacity", "memory_mib", &mem);
    bool has_disk = read && member_i64(node, "capacity", "disk_gib", &disk);
    bool has_reserved = member_i64(node, "capacity", "reserved_memory_mib", &reserved);
    bool has_alloc = member_i64(node, "allocated", "vcpus", &vcpus) &&
                     member_i64(node, "allocated", "ram_mib", &ram) &&
                     member_i64(node, "allocated", "disk_gib", &adisk);

    set_text(node, "_virt",
             read && cJSON_IsString(virt) ? mu_cli_cell_text(virt) : mu_xstrdup("-"));
    set_text(node, "_cpus", has_cpus ? mu_xasprintf("%" PRId64, cpus) : mu_xstrdup("-"));
    set_text(node, "_memory", gib_cell(has_mem, mem));
    set_text(node, "_disk", has_disk ? mu_xasprintf("%" PRId64 " GiB", disk) : mu_xstrdup("-"));
    set_text(node, "_reserved",
             has_reserved ? gib_cell(true, reserved) : mu_xstrdup("placement policy default"));
    if (has_alloc) {
        MU_AUTOFREE char *g = mu_cli_gib_text(ram);
        set_text(node, "_allocated",
                 mu_xasprintf("%" PRId64 " vCPU, %s GiB, %" PRId64 " GiB", vcpus, g, adisk));
    } else {
        set_text(node, "_allocated", mu_xstrdup("-"));
    }
    set_text(node, "_labels", mu_cli_labels_text(cJSON_GetObjectItemCaseSensitive(node, "labels")));
}

static void decorate(cJSON *node)
{
    mu_cli_node_cells(node);
}

static char *node_path(int64_t id, const char *suffix)
{
    return mu_xasprintf("/v1/nodes/%" PRId64 "%s", id, suffix);
}

/* Sends the request and prints the node, then the VMs still on it (maintenance, draining). */
static int node_object(struct mu_cli *cli, const char *method, const char *path, const cJSON *body)
{
    cJSON *doc = NULL;
    int r = mu_cli_fetch_object(cli, method, path, body, &doc);
    if (r != MU_CLI_EXIT_OK)
        return r;
    if (cli->json) {
        mu_cli_print_json(doc);
        cJSON_Delete(doc);
        return MU_CLI_EXIT_OK;
    }
    mu_cli_node_cells(doc);
    mu_cli_print_fields(show_cols, MU_ARRAY_LEN(show_cols), doc);
    const cJSON *remaining = cJSON_GetObjectItemCaseSensitive(doc, "remaining_vms");
    if (cJSON_IsArray(remaining)) {
        int n = cJSON_GetArraySize(remaining);
        if (n == 0) {
            printf("\nno VMs remain on this node\n");
        } else {
            printf("\n%d VM%s remain%s on this node:\n", n, n == 1 ? "" : "s", n == 1 ? "s" : "");
            mu_cli_print_table(remaining_cols, MU_ARRAY_LEN(remaining_cols), remaining);
        }
    }
    cJSON_Delete(doc);
    return MU_CLI_EXIT_OK;
}

/* ---- list, show ------------------------------------------------------------------------- */

static int run_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return mu_cli_list_whole(cli, "/v1/nodes", "nodes", list_cols, MU_ARRAY_LEN(list_cols),
                             decorate);
}

static int run_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the node ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = node_path(id, "");
    return node_object(cli, "GET", path, NULL);
}

/* ---- create, label ------------------------------------------------------------------------ */

static const struct mu_cli_opt create_opts[] = {
    {"--name", MU_CLI_OPT_IDENT, "NAME", "node name ([a-z0-9._-])", true, NULL, 0, 0},
    {"--uri", MU_CLI_OPT_STR, "URI",
     "libvirt URI: qemu:///system, qemu+ssh://user@host/system, qemu+tls://…, test:///…", true,
     NULL, 0, 0},
    {"--pool", MU_CLI_OPT_IDENT, "POOL", "storage pool for disks and images (default mutualis)",
     false, NULL, 0, 0},
    {"--pool-path", MU_CLI_OPT_STR, "DIR",
     "directory of the pool, created if missing (absolute path)", false, NULL, 0, 0},
    {"--label", MU_CLI_OPT_LABEL, "KEY=VALUE", "a label, e.g. site=paris-1", false, NULL, 0, 0},
    {"--reserved-memory", MU_CLI_OPT_INT, "MIB",
     "host memory kept for the node itself (default: the placement policy's)", false, NULL, 0,
     1 << 24},
};

/* A libvirt URI as the server accepts it, in outline: scheme://…, no spaces, quotes or
 * control characters (the server checks the rest). */
static bool uri_plausible(const char *s)
{
    const char *sep = strstr(s, "://");
    if (!sep || sep == s || strlen(s) > URI_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p >= 0x7F || *p == '"' || *p == '\'' || *p == '\\' || *p == '<' ||
            *p == '>')
            return false;
    }
    return true;
}

static bool abs_path_ok(const char *p)
{
    return p[0] == '/' && !strstr(p, "..") && strlen(p) < 1024 &&
           strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") ==
               strlen(p);
}

static int run_create(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const char *uri = mu_cli_arg_str(a, "--uri");
    const char *pool_path = mu_cli_arg_str(a, "--pool-path");
    const struct mu_cli_val *reserved = mu_cli_arg(a, "--reserved-memory");
    char msg[256];
    cJSON *labels = NULL;

    if (!uri_plausible(uri))
        return mu_cli_usage_error(cli,
                                  "--uri must be a libvirt URI such as qemu+ssh://root@host/system "
                                  "(no spaces or quotes), not '%.60s'",
                                  uri);
    if (pool_path && !abs_path_ok(pool_path))
        return mu_cli_usage_error(cli, "--pool-path must be an absolute path of letters, digits, "
                                       "'.', '_', '-' and '/'");
    if (mu_cli_labels_object(mu_cli_arg(a, "--label"), NODE_LABELS_MAX, &labels, msg, sizeof(msg)) <
        0)
        return mu_cli_usage_error(cli, "%s", msg);

    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "name", mu_cli_arg_str(a, "--name"));
    mu_json_add_str(body, "uri", uri);
    if (mu_cli_arg_set(a, "--pool"))
        mu_json_add_str(body, "pool", mu_cli_arg_str(a, "--pool"));
    if (pool_path)
        mu_json_add_str(body, "pool_path", pool_path);
    cJSON_AddItemToObject(body, "labels", labels);
    if (reserved->set)
        mu_json_add_i64(body, "reserved_memory_mib", reserved->num);
    int r = node_object(cli, "POST", "/v1/nodes", body);
    cJSON_Delete(body);
    return r;
}

static const struct mu_cli_opt label_opts[] = {
    {"--label", MU_CLI_OPT_LABEL, "KEY=VALUE", "a label, e.g. zone=a (replaces all labels)", false,
     NULL, 0, 0},
    {"--clear", MU_CLI_OPT_FLAG, NULL, "remove every label", false, NULL, 0, 0},
};

static int run_label(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the node ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    const struct mu_cli_val *label = mu_cli_arg(a, "--label");
    bool clear = mu_cli_arg_set(a, "--clear");
    if (label->set == clear)
        return mu_cli_usage_error(cli, "give the new labels (--label KEY=VALUE, repeated) or "
                                       "--clear");
    char msg[256];
    cJSON *labels = NULL;
    if (mu_cli_labels_object(label, NODE_LABELS_MAX, &labels, msg, sizeof(msg)) < 0)
        return mu_cli_usage_error(cli, "%s", msg);
    cJSON *body = mu_json_obj();
    cJSON_AddItemToObject(body, "labels", labels);
    MU_AUTOFREE char *path = node_path(id, "");
    r = node_object(cli, "PATCH", path, body);
    cJSON_Delete(body);
    return r;
}

/* node underlay ID ADDRESS: the node's VXLAN underlay IPv4 address; "none" removes it (the
 * server validates the address; the CLI only passes it on). */
static int run_underlay(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the node ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    const char *addr = a->pos[1];
    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "underlay_ip", strcmp(addr, "none") == 0 ? "" : addr);
    MU_AUTOFREE char *path = node_path(id, "");
    r = node_object(cli, "PATCH", path, body);
    cJSON_Delete(body);
    return r;
}

/* ---- state changes, delete ------------------------------------------------------------------ */

static int set_state(struct mu_cli *cli, const struct mu_cli_args *a, const char *action)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the node ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = node_path(id, action);
    return node_object(cli, "POST", path, NULL);
}

static int run_maintenance(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return set_state(cli, a, "/maintenance");
}

static int run_drain(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return set_state(cli, a, "/drain");
}

static int run_activate(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return set_state(cli, a, "/activate");
}

static int run_delete(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the node ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = node_path(id, "");
    MU_AUTOFREE char *done = mu_xasprintf("deleted node %" PRId64, id);
    return mu_cli_delete(cli, path, done);
}

static const struct mu_cli_cmd cmds[] = {
    {"list", NULL, "List hypervisor nodes", 0, NULL, 0, run_list},
    {"show", "ID", "Show a node, and the VMs left on it when draining", 1, NULL, 0, run_show},
    {"create", NULL, "Register a node by name and libvirt URI", 0, create_opts,
     MU_ARRAY_LEN(create_opts), run_create},
    {"label", "ID", "Replace a node's labels", 1, label_opts, MU_ARRAY_LEN(label_opts), run_label},
    {"underlay", "ID ADDRESS", "Set a node's VXLAN underlay IPv4 address (\"none\" removes it)", 2,
     NULL, 0, run_underlay},
    {"maintenance", "ID", "Put a node in maintenance: no new VMs", 1, NULL, 0, run_maintenance},
    {"drain", "ID", "Drain a node: no new VMs, list those left", 1, NULL, 0, run_drain},
    {"activate", "ID", "Make a node take new VMs again", 1, NULL, 0, run_activate},
    {"delete", "ID", "Remove a node without VMs", 1, NULL, 0, run_delete},
};

const struct mu_cli_group mu_cli_group_node = {
    "node",
    "Manage hypervisor nodes: registration, labels, maintenance and draining",
    cmds,
    MU_ARRAY_LEN(cmds),
};
