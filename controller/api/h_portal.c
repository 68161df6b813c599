/* The portal's static files (GET / and GET /portal/{file}), embedded in the binary (see
 * web/web_assets.h). Each answer carries a strict Content-Security-Policy (same origin
 * only, no inline script or style, no framing), nosniff (server.c), no referrer, and a
 * strong ETag: the browser revalidates (Cache-Control: no-cache) and gets 304 when the
 * file has not changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/handlers.h"
#include "mutualis/util.h"
#include "web/web_assets.h"

#define PORTAL_CSP                                                                                 \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "form-action 'self'; frame-ancestors 'none'"

static const struct {
    const char *ext, *type;
} media_types[] = {
    {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
    {".json", "application/json"},
};

static const char *media_type(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < MU_ARRAY_LEN(media_types); i++) {
        size_t e = strlen(media_types[i].ext);
        if (n > e && strcmp(name + n - e, media_types[i].ext) == 0)
            return media_types[i].type;
    }
    return "application/octet-stream";
}

/* Allow-list of a file name as it may appear in /portal/{file}. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
              s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

/* True if the If-None-Match header names etag (or is "*"). */
static bool etag_matches(const char *inm, const char *etag)
{
    if (!inm)
        return false;
    size_t el = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, el) == 0 && (p[el] == '\0' || p[el] == ',' || p[el] == ' '))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

static int serve(struct mu_req *req, struct mu_resp *resp, const char *name, struct mu_err *err)
{
    const struct mu_web_asset *a = NULL;
    if (name_ok(name))
        for (size_t i = 0; i < mu_web_assets_n && !a; i++)
            if (strcmp(mu_web_assets[i].name, name) == 0)
                a = &mu_web_assets[i];
    if (!a)
        return mu_err_set(err, MU_ENOTFOUND,
                          "the portal has no file named \"%.64s\"; open / to start the portal",
                          name);
    resp->cache_control = "no-cache";
    mu_resp_header_add(resp, "Content-Security-Policy", PORTAL_CSP);
    mu_resp_header_add(resp, "Referrer-Policy", "no-referrer");
    mu_resp_header_add(resp, "X-Frame-Options", "DENY");
    mu_resp_header_add(resp, "Cross-Origin-Opener-Policy", "same-origin");
    mu_resp_header_add(resp, "ETag", a->etag);
    if (etag_matches(mu_req_header(req, "If-None-Match"), a->etag)) {
        resp->status = 304;
        return MU_OK;
    }
    resp->raw = mu_xmalloc(a->len + 1);
    memcpy(resp->raw, a->data, a->len);
    resp->raw[a->len] = '\0';
    resp->raw_len = a->len;
    resp->content_type = media_type(a->name);
    resp->status = 200;
    return MU_OK;
}

int mu_h_portal_index(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    return serve(req, resp, "index.html", err);
}

int mu_h_portal_file(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    return serve(req, resp, req->params[0], err);
}
