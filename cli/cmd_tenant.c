/* tenant list | show | create | update | move | delete | import. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"

static const char *const kinds[] = {"syndicat", "epci", "commune", "departement", "other", NULL};
static const char *const epci_forms[] = {"CC", "CA", "CU", "METRO", "MET69", NULL};
static const char *const statuses[] = {"active", "suspended", "archived", NULL};

static const struct mu_cli_col list_cols[] = {
    {"ID", "id", 0},           {"PARENT", "parent_id", 0}, {"KIND", "kind", 0},
    {"NAME", "name", 48},      {"INSEE", "insee", 0},      {"SIREN", "siren", 0},
    {"DEP", "departement", 0}, {"STATUS", "status", 0},
};

static const struct mu_cli_col show_cols[] = {
    {"id", "id", 0},
    {"parent", "parent_id", 0},
    {"name", "name", 0},
    {"kind", "kind", 0},
    {"epci form", "epci_form", 0},
    {"siren", "siren", 0},
    {"insee", "insee", 0},
    {"departement", "departement", 0},
    {"region", "region", 0},
    {"population", "population", 0},
    {"contact name", "contact.name", 0},
    {"contact email", "contact.email", 0},
    {"contact phone", "contact.phone", 0},
    {"status", "status", 0},
    {"depth", "depth", 0},
    {"created", "created_at", 0},
    {"updated", "updated_at", 0},
};

/* Which member of the body a flag sets. */
struct flag_key {
    const char *flag;
    const char *key;
};

static const struct flag_key text_fields[] = {
    {"--name", "name"},     {"--epci-form", "epci_form"},     {"--siren", "siren"},
    {"--insee", "insee"},   {"--departement", "departement"}, {"--region", "region"},
    {"--status", "status"},
};

static const struct flag_key contact_fields[] = {
    {"--contact-name", "name"},
    {"--contact-email", "email"},
    {"--contact-phone", "phone"},
};

/* The writable fields, shared by create and update. */
/* clang-format off */
#define FIELD_OPTS(name_required)                                                                  \
    {"--name", MU_CLI_OPT_STR, "NAME", "name, as written officially", name_required, NULL, 0, 0},  \
    {"--epci-form", MU_CLI_OPT_CHOICE, "FORM", "legal form of an EPCI", false, epci_forms, 0, 0},  \
    {"--siren", MU_CLI_OPT_STR, "SIREN", "SIREN number (9 digits)", false, NULL, 0, 0},            \
    {"--insee", MU_CLI_OPT_STR, "CODE", "INSEE code of a commune (2A004)", false, NULL, 0, 0},     \
    {"--departement", MU_CLI_OPT_STR, "CODE", "département (01, 2A, 974)", false, NULL, 0, 0},     \
    {"--region", MU_CLI_OPT_STR, "CODE", "région code (84)", false, NULL, 0, 0},                   \
    {"--population", MU_CLI_OPT_INT, "N", "population", false, NULL, 0, 100000000},                \
    {"--contact-name", MU_CLI_OPT_STR, "TEXT", "contact person", false, NULL, 0, 0},               \
    {"--contact-email", MU_CLI_OPT_STR, "EMAIL", "contact e-mail", false, NULL, 0, 0},             \
    {"--contact-phone", MU_CLI_OPT_STR, "PHONE", "contact phone", false, NULL, 0, 0},              \
    {"--status", MU_CLI_OPT_CHOICE, "STATUS", "status", false, statuses, 0, 0}
/* clang-format on */

/* Adds the fields given on the command line to body; returns how many. */
static int add_fields(cJSON *body, const struct mu_cli_args *a)
{
    int n = 0;
    for (size_t i = 0; i < MU_ARRAY_LEN(text_fields); i++) {
        const char *v = mu_cli_arg_str(a, text_fields[i].flag);
        if (v) {
            mu_json_add_str(body, text_fields[i].key, v);
            n++;
        }
    }
    const struct mu_cli_val *pop = mu_cli_arg(a, "--population");
    if (pop->set) {
        mu_json_add_i64(body, "population", pop->num);
        n++;
    }
    cJSON *contact = NULL;
    for (size_t i = 0; i < MU_ARRAY_LEN(contact_fields); i++) {
        const char *v = mu_cli_arg_str(a, contact_fields[i].flag);
        if (!v)
            continue;
        if (!contact) {
            contact = mu_json_obj();
            cJSON_AddItemToObject(body, "contact", contact);
            n++;
        }
        mu_json_add_str(contact, contact_fields[i].key, v);
    }
    return n;
}

static char *tenant_path(int64_t id, const char *suffix)
{
    return mu_xasprintf("/v1/tenants/%" PRId64 "%s", id, suffix);
}

/* The positional ID of a command (the parser has counted it). */
static int pos_id(const struct mu_cli *cli, const struct mu_cli_args *a, int64_t *ret)
{
    char msg[256];
    if (mu_cli_parse_id(a->pos[0], "the tenant ID", ret, msg, sizeof(msg)) < 0)
        return mu_cli_usage_error(cli, "%s", msg);
    return MU_CLI_EXIT_OK;
}

/* ---- list ------------------------------------------------------------------------------ */

static const struct mu_cli_opt list_opts[] = {
    {"--parent", MU_CLI_OPT_ID, "ID", "children of this tenant", false, NULL, 0, 0},
    {"--roots", MU_CLI_OPT_FLAG, NULL, "only tenants without a parent", false, NULL, 0, 0},
    {"--subtree", MU_CLI_OPT_ID, "ID", "this tenant and everything under it", false, NULL, 0, 0},
    {"--kind", MU_CLI_OPT_CHOICE, "KIND", "kind", false, kinds, 0, 0},
    {"--status", MU_CLI_OPT_CHOICE, "STATUS", "status", false, statuses, 0, 0},
    {"--q", MU_CLI_OPT_STR, "TEXT",
     "name (ignoring case, accents and hyphens), or exact SIREN or INSEE code", false, NULL, 0, 0},
    MU_CLI_LIST_OPTS,
};

static int run_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const struct mu_cli_val *parent = mu_cli_arg(a, "--parent");
    const struct mu_cli_val *subtree = mu_cli_arg(a, "--subtree");
    if (parent->set && mu_cli_arg_set(a, "--roots"))
        return mu_cli_usage_error(cli, "--parent and --roots exclude each other");

    struct mu_buf q;
    mu_buf_init(&q);
    mu_buf_puts(&q, "/v1/tenants");
    if (parent->set)
        mu_cli_query_add_i64(&q, "parent", parent->num);
    if (mu_cli_arg_set(a, "--roots"))
        mu_cli_query_add(&q, "parent", "0");
    if (subtree->set)
        mu_cli_query_add_i64(&q, "subtree", subtree->num);
    static const char *const filters[][2] = {
        {"--kind", "kind"}, {"--status", "status"}, {"--q", "q"}};
    for (size_t i = 0; i < MU_ARRAY_LEN(filters); i++) {
        const char *v = mu_cli_arg_str(a, filters[i][0]);
        if (v)
            mu_cli_query_add(&q, filters[i][1], v);
    }
    int r = mu_cli_list(cli, q.data, a, "tenants", list_cols, MU_ARRAY_LEN(list_cols));
    mu_buf_free(&q);
    return r;
}

/* ---- show, create, update, move, delete --------------------------------------------------- */

static int run_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = pos_id(cli, a, &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = tenant_path(id, "");
    return mu_cli_object(cli, "GET", path, NULL, show_cols, MU_ARRAY_LEN(show_cols));
}

static const struct mu_cli_opt create_opts[] = {
    FIELD_OPTS(true),
    {"--kind", MU_CLI_OPT_CHOICE, "KIND", "kind", true, kinds, 0, 0},
    {"--parent", MU_CLI_OPT_ID, "ID", "parent tenant (none: a root)", false, NULL, 0, 0},
};

static int run_create(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const struct mu_cli_val *parent = mu_cli_arg(a, "--parent");
    cJSON *body = mu_json_obj();
    if (parent->set)
        mu_json_add_i64(body, "parent_id", parent->num);
    mu_json_add_str(body, "kind", mu_cli_arg_str(a, "--kind"));
    add_fields(body, a);
    int r = mu_cli_object(cli, "POST", "/v1/tenants", body, show_cols, MU_ARRAY_LEN(show_cols));
    cJSON_Delete(body);
    return r;
}

static const struct mu_cli_opt update_opts[] = {
    FIELD_OPTS(false),
    {"--clear-siren", MU_CLI_OPT_FLAG, NULL, "remove the SIREN", false, NULL, 0, 0},
};

static int run_update(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = pos_id(cli, a, &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    bool clear_siren = mu_cli_arg_set(a, "--clear-siren");
    if (clear_siren && mu_cli_arg_set(a, "--siren"))
        return mu_cli_usage_error(cli, "--siren and --clear-siren exclude each other");

    cJSON *body = mu_json_obj();
    int n = add_fields(body, a);
    if (clear_siren) {
        mu_json_add_null(body, "siren");
        n++;
    }
    if (n == 0) {
        cJSON_Delete(body);
        return mu_cli_usage_error(cli, "nothing to change: give at least one field");
    }
    MU_AUTOFREE char *path = tenant_path(id, "");
    r = mu_cli_object(cli, "PATCH", path, body, show_cols, MU_ARRAY_LEN(show_cols));
    cJSON_Delete(body);
    return r;
}

static const struct mu_cli_opt move_opts[] = {
    {"--parent", MU_CLI_OPT_ID, "ID", "new parent", false, NULL, 0, 0},
    {"--root", MU_CLI_OPT_FLAG, NULL, "make it a root (no parent)", false, NULL, 0, 0},
};

static int run_move(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = pos_id(cli, a, &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    const struct mu_cli_val *parent = mu_cli_arg(a, "--parent");
    bool root = mu_cli_arg_set(a, "--root");
    if (parent->set == root)
        return mu_cli_usage_error(cli, "give exactly one of --parent ID and --root");

    cJSON *body = mu_json_obj();
    if (root)
        mu_json_add_null(body, "parent_id");
    else
        mu_json_add_i64(body, "parent_id", parent->num);
    MU_AUTOFREE char *path = tenant_path(id, "/move");
    r = mu_cli_object(cli, "POST", path, body, show_cols, MU_ARRAY_LEN(show_cols));
    cJSON_Delete(body);
    return r;
}

static int run_delete(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = pos_id(cli, a, &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = tenant_path(id, "");
    MU_AUTOFREE char *done = mu_xasprintf("deleted tenant %" PRId64, id);
    return mu_cli_delete(cli, path, done);
}

/* ---- import ----------------------------------------------------------------------------- */

#define IMPORT_REJECTS_SHOWN 10

static const struct mu_cli_opt import_opts[] = {
    {"--parent", MU_CLI_OPT_ID, "ID", "tenant that receives the EPCI and communes", true, NULL, 0,
     0},
    {"--departement", MU_CLI_OPT_LIST, "CODE",
     "only EPCI and communes of this département (default: all)", false, NULL, 0, 0},
    {"--epci", MU_CLI_OPT_STR, "FILE", "epci.json of @etalab/decoupage-administratif", false, NULL,
     0, 0},
    {"--communes", MU_CLI_OPT_STR, "FILE", "communes.json of @etalab/decoupage-administratif",
     false, NULL, 0, 0},
    {"--dry-run", MU_CLI_OPT_FLAG, NULL, "report what would change, change nothing", false, NULL, 0,
     0},
};

/* The counts of an import answer; those absent are not shown (a dry run may give
 * "planned" rather than created/updated/unchanged). */
static const struct mu_cli_col import_cols[] = {
    {"created", "created", 0}, {"updated", "updated", 0}, {"unchanged", "unchanged", 0},
    {"planned", "planned", 0}, {"skipped", "skipped", 0}, {"rejected", "rejected", 0},
};

static const struct mu_cli_col reject_cols[] = {
    {"KEY", "key", 0},
    {"REASON", "reason", 0},
};

/* Reads an official file and checks locally that it is one JSON array, so that its text can
 * be spliced into the request as is. Returns the text (caller frees) or NULL after printing
 * the error. */
static char *read_import_file(const char *path, size_t *ret_len)
{
    size_t len = 0;
    char *text = mu_read_file(path, MU_CLI_IMPORT_FILE_MAX, &len);
    if (!text) {
        if (errno == EFBIG || errno == E2BIG)
            fprintf(stderr, "mutualis: %s: larger than %zu MiB\n", path,
                    MU_CLI_IMPORT_FILE_MAX >> 20);
        else
            fprintf(stderr, "mutualis: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char msg[768];
    cJSON *doc = mu_cli_json_parse(text, len, path, msg, sizeof(msg));
    if (!doc) {
        fprintf(stderr, "mutualis: %s\n", msg); /* names the file, line and column */
        free(text);
        return NULL;
    }
    bool array = cJSON_IsArray(doc);
    cJSON_Delete(doc);
    if (!array) {
        fprintf(stderr,
                "mutualis: %s: expected a JSON array (the file as published by "
                "@etalab/decoupage-administratif)\n",
                path);
        free(text);
        return NULL;
    }
    /* A byte order mark is allowed at the start of a file, not in the middle of the body. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        memmove(text, text + 3, len - 3 + 1);
        len -= 3;
    }
    *ret_len = len;
    return text;
}

static void print_import_result(const cJSON *res)
{
    const cJSON *dry = cJSON_GetObjectItemCaseSensitive(res, "dry_run");
    const cJSON *rejects = cJSON_GetObjectItemCaseSensitive(res, "rejects");
    if (cJSON_IsTrue(dry))
        printf("dry run: nothing was changed\n");
    struct mu_cli_col present[MU_ARRAY_LEN(import_cols)];
    size_t npresent = 0;
    for (size_t i = 0; i < MU_ARRAY_LEN(import_cols); i++) {
        if (cJSON_GetObjectItemCaseSensitive(res, import_cols[i].key))
            present[npresent++] = import_cols[i];
    }
    mu_cli_print_fields(present, npresent, res);
    int n = cJSON_IsArray(rejects) ? cJSON_GetArraySize(rejects) : 0;
    if (n == 0)
        return;
    cJSON *first = mu_json_arr();
    const cJSON *it;
    int k = 0;
    cJSON_ArrayForEach(it, rejects)
    {
        if (k++ == IMPORT_REJECTS_SHOWN)
            break;
        cJSON_AddItemReferenceToArray(first, (cJSON *)it);
    }
    printf("\n%s rejects:\n", n > IMPORT_REJECTS_SHOWN ? "first" : "all");
    mu_cli_print_table(reject_cols, MU_ARRAY_LEN(reject_cols), first);
    if (n > IMPORT_REJECTS_SHOWN)
        printf("... and %d more (--json shows them all)\n", n - IMPORT_REJECTS_SHOWN);
    cJSON_Delete(first);
}

static int run_import(struct mu_cli *cli, const struct mu_cli_args *a)
{
    static const char *const files[][2] = {{"--epci", "epci"}, {"--communes", "communes"}};
    const struct mu_cli_val *depts = mu_cli_arg(a, "--departement");
    struct mu_buf body;
    int r = MU_CLI_EXIT_USAGE;

    if (!mu_cli_arg_set(a, "--epci") && !mu_cli_arg_set(a, "--communes"))
        return mu_cli_usage_error(cli, "give --epci FILE, --communes FILE or both");

    /* The small part with cJSON, then the checked files spliced in as they are. */
    cJSON *head = mu_json_obj();
    mu_json_add_i64(head, "parent_id", mu_cli_arg(a, "--parent")->num);
    if (depts->set) {
        cJSON *arr = mu_json_arr();
        for (size_t i = 0; i < depts->nlist; i++) {
            cJSON *s = cJSON_CreateString(depts->list[i]);
            if (!s || !cJSON_AddItemToArray(arr, s)) {
                fprintf(stderr, "fatal: out of memory building the request\n");
                abort();
            }
        }
        cJSON_AddItemToObject(head, "departements", arr);
    }
    mu_json_add_bool(head, "dry_run", mu_cli_arg_set(a, "--dry-run"));
    MU_AUTOFREE char *head_text = mu_json_print(head);
    cJSON_Delete(head);

    mu_buf_init(&body);
    mu_buf_append(&body, head_text, strlen(head_text) - 1); /* drop the closing brace */
    for (size_t i = 0; i < MU_ARRAY_LEN(files); i++) {
        const char *path = mu_cli_arg_str(a, files[i][0]);
        if (!path)
            continue;
        size_t len = 0;
        MU_AUTOFREE char *text = read_import_file(path, &len);
        if (!text)
            goto out;
        mu_buf_printf(&body, ",\"%s\":", files[i][1]);
        mu_buf_append(&body, text, len);
    }
    mu_buf_puts(&body, "}");

    cJSON *res = NULL;
    r = mu_cli_api_raw(cli, "POST", "/v1/tenants/import", body.data, body.len,
                       MU_CLI_IMPORT_TIMEOUT_S, &res);
    if (r == MU_CLI_EXIT_OK) {
        if (!cJSON_IsObject(res))
            r = mu_cli_fail("unexpected answer from the import: not a JSON object");
        else if (cli->json)
            mu_cli_print_json(res);
        else
            print_import_result(res);
    }
    cJSON_Delete(res);
out:
    mu_buf_free(&body);
    return r;
}

static const struct mu_cli_cmd cmds[] = {
    {"list", NULL, "List tenants", 0, list_opts, MU_ARRAY_LEN(list_opts), run_list},
    {"show", "ID", "Show a tenant", 1, NULL, 0, run_show},
    {"create", NULL, "Create a tenant", 0, create_opts, MU_ARRAY_LEN(create_opts), run_create},
    {"update", "ID", "Change fields of a tenant (not its kind or parent)", 1, update_opts,
     MU_ARRAY_LEN(update_opts), run_update},
    {"move", "ID", "Give a tenant a new parent", 1, move_opts, MU_ARRAY_LEN(move_opts), run_move},
    {"delete", "ID", "Delete a tenant without children or users", 1, NULL, 0, run_delete},
    {"import", NULL, "Import EPCI and communes from the official COG files", 0, import_opts,
     MU_ARRAY_LEN(import_opts), run_import},
};

const struct mu_cli_group mu_cli_group_tenant = {
    "tenant",
    "Manage tenants: the members of the data centre and their tree",
    cmds,
    MU_ARRAY_LEN(cmds),
};
