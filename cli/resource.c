/* The shapes of answers the commands share: paginated lists (one page, or every page with
 * --all), a single object, nothing (204). */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mutualis/json.h"

/* Checks a list answer: "items" an array, "next_after" null/absent (0) or an id. */
static int page_parts(const cJSON *page, cJSON **ret_items, int64_t *ret_next)
{
    cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(page, "next_after");
    int64_t n = 0;
    if (!cJSON_IsArray(items))
        return -1;
    if (next && !cJSON_IsNull(next) && mu_json_int_value(next, 1, INT64_MAX, &n) < 0)
        return -1;
    *ret_items = items;
    *ret_next = n;
    return 0;
}

int mu_cli_list(const struct mu_cli *cli, const char *base, const struct mu_cli_args *a,
                const char *what, const struct mu_cli_col *cols, size_t ncols)
{
    const struct mu_cli_val *limit = mu_cli_arg(a, "--limit");
    const struct mu_cli_val *after = mu_cli_arg(a, "--after");
    bool all = mu_cli_arg_set(a, "--all");
    int64_t cursor = after->set ? after->num : 0;
    cJSON *merged = all ? mu_json_arr() : NULL;
    int r;

    for (;;) {
        struct mu_buf q;
        cJSON *page = NULL, *items;
        int64_t next;
        mu_buf_init(&q);
        mu_buf_puts(&q, base);
        if (limit->set)
            mu_cli_query_add_i64(&q, "limit", limit->num);
        if (cursor)
            mu_cli_query_add_i64(&q, "after", cursor);
        r = mu_cli_api(cli, "GET", q.data, NULL, &page);
        mu_buf_free(&q);
        if (r != MU_CLI_EXIT_OK)
            goto out;
        if (page_parts(page, &items, &next) < 0) {
            cJSON_Delete(page);
            r = mu_cli_fail("unexpected answer listing %s: no \"items\" array or a bad "
                            "\"next_after\"",
                            what);
            goto out;
        }
        if (!all) {
            if (cli->json) {
                mu_cli_print_json(page);
            } else {
                mu_cli_print_table(cols, ncols, items);
                if (next)
                    fprintf(stderr, "(more %s: add --after %" PRId64 ", or --all)\n", what, next);
            }
            cJSON_Delete(page);
            goto out;
        }
        bool empty = items->child == NULL;
        while (items->child)
            cJSON_AddItemToArray(merged, cJSON_DetachItemViaPointer(items, items->child));
        cJSON_Delete(page);
        if (!next)
            break;
        if (next == cursor || empty) {
            /* a server bug would otherwise loop forever */
            r = mu_cli_fail("the server's pagination does not advance listing %s (after %" PRId64
                            ")",
                            what, cursor);
            goto out;
        }
        cursor = next;
    }
    if (cli->json) {
        cJSON *doc = mu_json_obj();
        cJSON_AddItemToObject(doc, "items", merged);
        merged = NULL;
        mu_json_add_null(doc, "next_after");
        mu_cli_print_json(doc);
        cJSON_Delete(doc);
    } else {
        mu_cli_print_table(cols, ncols, merged);
    }
out:
    cJSON_Delete(merged);
    return r;
}

int mu_cli_fetch_object(const struct mu_cli *cli, const char *method, const char *path,
                        const cJSON *body, cJSON **ret)
{
    cJSON *doc = NULL;
    int r = mu_cli_api(cli, method, path, body, &doc);
    if (r != MU_CLI_EXIT_OK)
        return r;
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return mu_cli_fail("unexpected answer from %s %s: not a JSON object", method, path);
    }
    *ret = doc;
    return MU_CLI_EXIT_OK;
}

int mu_cli_object(const struct mu_cli *cli, const char *method, const char *path, const cJSON *body,
                  const struct mu_cli_col *cols, size_t ncols)
{
    cJSON *doc = NULL;
    int r = mu_cli_fetch_object(cli, method, path, body, &doc);
    if (r != MU_CLI_EXIT_OK)
        return r;
    if (cli->json)
        mu_cli_print_json(doc);
    else
        mu_cli_print_fields(cols, ncols, doc);
    cJSON_Delete(doc);
    return MU_CLI_EXIT_OK;
}

int mu_cli_list_whole(const struct mu_cli *cli, const char *path, const char *what,
                      const struct mu_cli_col *cols, size_t ncols, void (*decorate)(cJSON *item))
{
    cJSON *page = NULL, *items, *it;
    int64_t next;
    int r = mu_cli_api(cli, "GET", path, NULL, &page);
    if (r != MU_CLI_EXIT_OK)
        return r;
    if (page_parts(page, &items, &next) < 0) {
        cJSON_Delete(page);
        return mu_cli_fail("unexpected answer listing %s: no \"items\" array", what);
    }
    if (cli->json) {
        mu_cli_print_json(page);
    } else {
        cJSON_ArrayForEach(it, items)
        {
            if (decorate && cJSON_IsObject(it))
                decorate(it);
        }
        mu_cli_print_table(cols, ncols, items);
    }
    cJSON_Delete(page);
    return MU_CLI_EXIT_OK;
}

int mu_cli_delete(const struct mu_cli *cli, const char *path, const char *done)
{
    cJSON *doc = NULL;
    int r = mu_cli_api(cli, "DELETE", path, NULL, &doc);
    if (r != MU_CLI_EXIT_OK)
        return r;
    if (cli->json && doc)
        mu_cli_print_json(doc);
    else if (!cli->json)
        printf("%s\n", done);
    cJSON_Delete(doc);
    return MU_CLI_EXIT_OK;
}
