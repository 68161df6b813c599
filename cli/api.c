/* One request to mutualisd: sends it, turns a problem+json answer into one line on stderr,
 * parses a successful answer with the strict JSON layer. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"

static const char *reason_phrase(long status)
{
    static const struct {
        long status;
        const char *text;
    } phrases[] = {
        {400, "bad request"},         {401, "authentication required"},
        {403, "forbidden"},           {404, "not found"},
        {405, "method not allowed"},  {409, "conflict"},
        {413, "request too large"},   {415, "unsupported media type"},
        {422, "invalid value"},       {429, "too many requests"},
        {500, "server error"},        {502, "bad gateway"},
        {503, "service unavailable"}, {504, "gateway timeout"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(phrases); i++) {
        if (phrases[i].status == status)
            return phrases[i].text;
    }
    if (status >= 300 && status <= 399)
        return "the server answered with a redirect, which is not followed; check MUTUALIS_URL";
    return status >= 500 ? "server error" : "request refused";
}

/* Non-empty string member, or NULL. */
static const cJSON *str_member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) && v->valuestring && v->valuestring[0] ? v : NULL;
}

char *mu_cli_problem_line(long status, const char *body, size_t len, const char *request_id)
{
    cJSON *doc = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *text = NULL, *rid = NULL;
    if (cJSON_IsObject(doc)) {
        text = str_member(doc, "detail");
        if (!text)
            text = str_member(doc, "title");
        rid = str_member(doc, "request_id");
    }
    MU_AUTOFREE char *what = text ? mu_cli_cell_text(text) : mu_xstrdup(reason_phrase(status));
    MU_AUTOFREE char *rid_text = NULL;
    if (request_id && request_id[0])
        rid_text = mu_xstrdup(request_id);
    else if (rid)
        rid_text = mu_cli_cell_text(rid);
    char *line = rid_text ? mu_xasprintf("%s (HTTP %ld, request %s)", what, status, rid_text)
                          : mu_xasprintf("%s (HTTP %ld)", what, status);
    cJSON_Delete(doc);
    return line;
}

cJSON *mu_cli_json_parse(const char *buf, size_t len, const char *origin, char *msg, size_t msglen)
{
    struct mu_err err = {0};
    cJSON *doc = mu_json_parse(buf, len, origin, &err);
    if (!doc)
        snprintf(msg, msglen, "%s", err.detail[0] ? err.detail : "invalid JSON");
    return doc;
}

int mu_cli_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("mutualis: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    return MU_CLI_EXIT_FAIL;
}

/* Turns an exchange's answer into the exit status and the parsed JSON (see mu_cli_api_raw);
 * frees resp. */
static int take_answer(const struct mu_cli *cli, const char *method, const char *path,
                       struct mu_cli_http_resp *resp, cJSON **ret_json)
{
    char msg[1024];
    int r = MU_CLI_EXIT_FAIL;

    if (resp->status < 200 || resp->status > 299) {
        MU_AUTOFREE char *line =
            mu_cli_problem_line(resp->status, resp->body, resp->len, resp->request_id);
        if (resp->status == 401 && !cli->token)
            mu_cli_fail("%s; set MUTUALIS_TOKEN or use --token", line);
        else
            mu_cli_fail("%s", line);
        goto out;
    }
    if (resp->len > 0) {
        cJSON *doc = mu_cli_json_parse(resp->body, resp->len, "answer", msg, sizeof(msg));
        if (!doc) {
            mu_cli_fail("%s %s: the server's %s (HTTP %ld%s%s)", method, path, msg, resp->status,
                        resp->request_id[0] ? ", request " : "", resp->request_id);
            goto out;
        }
        *ret_json = doc;
    }
    r = MU_CLI_EXIT_OK;
out:
    mu_cli_http_resp_free(resp);
    return r;
}

int mu_cli_api_raw(const struct mu_cli *cli, const char *method, const char *path, const char *body,
                   size_t body_len, long timeout_s, cJSON **ret_json)
{
    struct mu_cli_http_resp resp = {0};
    char msg[1024];

    *ret_json = NULL;
    if (mu_cli_http_do(cli, method, path, body, body_len, timeout_s, &resp, msg, sizeof(msg)) < 0)
        return mu_cli_fail("%s", msg);
    return take_answer(cli, method, path, &resp, ret_json);
}

int mu_cli_api_send_file(const struct mu_cli *cli, const char *method, const char *path,
                         const struct mu_cli_http_file *file, cJSON **ret_json)
{
    struct mu_cli_http_resp resp = {0};
    char msg[1024];

    *ret_json = NULL;
    if (mu_cli_http_send_file(cli, method, path, file, &resp, msg, sizeof(msg)) < 0)
        return mu_cli_fail("%s", msg);
    return take_answer(cli, method, path, &resp, ret_json);
}

int mu_cli_api(const struct mu_cli *cli, const char *method, const char *path, const cJSON *body,
               cJSON **ret_json)
{
    MU_AUTOFREE char *text = body ? mu_json_print(body) : NULL;
    size_t len = text ? strlen(text) : 0;
    int r = mu_cli_api_raw(cli, method, path, text, len, MU_CLI_TIMEOUT_S, ret_json);
    if (text)
        explicit_bzero(text, len); /* it may hold a password */
    return r;
}
