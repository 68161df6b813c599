/* The transport: one HTTPS exchange with libcurl (the only file of the CLI that sees it).
 * TLS 1.2 or later, peer and host verified, no redirects followed, bounded answers. A body
 * is JSON in memory, or a file streamed from disk without being read whole (images). */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONNECT_TIMEOUT_S 10L
/* A file upload has no overall time limit (images are large): it fails when fewer than
 * UPLOAD_STALL_BYTES per second go through for UPLOAD_STALL_S seconds, which also bounds
 * the wait for the answer once the last byte is sent (the server checks and stores it). */
#define UPLOAD_STALL_S     120L
#define UPLOAD_STALL_BYTES 1L
#define PROGRESS_EVERY_MS  500

struct sink {
    struct mu_buf body;
    bool too_big;
    char request_id[128];
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    size_t n = size * nmemb;
    if (s->body.len + n > MU_CLI_ANSWER_MAX) {
        s->too_big = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    mu_buf_append(&s->body, ptr, n);
    return n;
}

/* Keeps X-Request-Id, printable ASCII only (it is shown in messages). */
static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    static const char name[] = "x-request-id:";
    struct sink *s = userdata;
    size_t n = size * nitems;
    if (n > sizeof(name) - 1 && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
        size_t i = sizeof(name) - 1, o = 0;
        while (i < n && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        for (; i < n && o + 1 < sizeof(s->request_id); i++) {
            if (buf[i] > ' ' && buf[i] < 0x7F)
                s->request_id[o++] = buf[i];
        }
        s->request_id[o] = '\0';
    }
    return n;
}

/* A file body: read in order, exactly size bytes. */
struct source {
    const struct mu_cli_http_file *file;
    int64_t left;
    int read_errno; /* the file could not be read: its errno */
    bool shrank;    /* the file ended before its declared size */
    int64_t last_ms;
    bool shown;      /* a progress line is on stderr */
    bool done_shown; /* ... and it says 100% */
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct source *src = userdata;
    size_t want = size * nitems;
    if ((int64_t)want > src->left)
        want = (size_t)src->left;
    if (want == 0)
        return 0;
    errno = 0;
    size_t n = fread(buf, 1, want, src->file->f);
    if (n == 0) {
        if (ferror(src->file->f))
            src->read_errno = errno ? errno : EIO;
        else
            src->shrank = true;
        return CURL_READFUNC_ABORT;
    }
    src->left -= (int64_t)n;
    return n;
}

/* "uploading  42% (420 of 1000 MiB)" on stderr, rewritten in place twice a second. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct source *src = userdata;
    int64_t size = src->file->size;
    int64_t now = mu_mono_ms();
    bool done = ulnow >= (curl_off_t)size;
    if (src->done_shown || (now - src->last_ms < PROGRESS_EVERY_MS && !done))
        return 0;
    src->last_ms = now;
    src->done_shown = done;
    int pct = size > 0 ? (int)((double)ulnow * 100.0 / (double)size) : 100;
    fprintf(stderr, "\ruploading %3d%% (%" PRId64 " of %" PRId64 " MiB)", pct, (int64_t)ulnow >> 20,
            size >> 20);
    src->shown = true;
    return 0;
}

void mu_cli_http_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "mutualis: cannot initialise libcurl\n");
        exit(MU_CLI_EXIT_FAIL);
    }
}

void mu_cli_http_cleanup(void)
{
    curl_global_cleanup();
}

static struct curl_slist *add_header(struct curl_slist *list, const char *h)
{
    struct curl_slist *l = curl_slist_append(list, h);
    if (!l) {
        fprintf(stderr, "fatal: out of memory building HTTP headers\n");
        abort();
    }
    return l;
}

/* The one-line reason for a failed exchange, with what to check. */
static void describe_failure(const struct mu_cli *cli, CURLcode rc, const char *errbuf,
                             const struct sink *s, const struct source *src, long timeout_s,
                             char *msg, size_t msglen)
{
    const char *reason = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (src && src->read_errno) {
        snprintf(msg, msglen, "cannot read %s: %s", src->file->name, strerror(src->read_errno));
        return;
    }
    if (src && src->shrank) {
        snprintf(msg, msglen, "%s became shorter while it was being sent; upload it again",
                 src->file->name);
        return;
    }
    if (src && rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(msg, msglen, "the upload of %s to %s stalled: %s (nothing for %ld s)",
                 src->file->name, cli->url, reason, UPLOAD_STALL_S);
        return;
    }
    switch (rc) {
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (s->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
            snprintf(msg, msglen, "the answer from %s is larger than %zu MiB; narrow the request",
                     cli->url, MU_CLI_ANSWER_MAX >> 20);
            return;
        }
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        snprintf(msg, msglen, "%s: %s (MUTUALIS_URL or --url must be an https:// address)",
                 cli->url, reason);
        return;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(msg, msglen, "%s did not answer in time: %s (limit %ld s)", cli->url, reason,
                 timeout_s);
        return;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        snprintf(msg, msglen,
                 "TLS with %s failed: %s (is it mutualisd over HTTPS? check MUTUALIS_CA or --ca: "
                 "the PEM file of the CA that signed its certificate%s)",
                 cli->url, reason, cli->ca ? "" : "; none is set, so the system trust is used");
        return;
    default:
        break;
    }
    snprintf(msg, msglen, "cannot reach %s: %s (is mutualisd running at %s? check MUTUALIS_URL)",
             cli->url, reason, cli->url);
}

/* One exchange with a JSON body (body, NULL for none) or a file body (file, NULL for none). */
static int exchange(const struct mu_cli *cli, const char *method, const char *path,
                    const char *body, size_t body_len, const struct mu_cli_http_file *file,
                    long timeout_s, struct mu_cli_http_resp *ret, char *msg, size_t msglen)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct sink s = {.request_id = ""};
    struct source src = {.file = file, .left = file ? file->size : 0};
    struct curl_slist *headers = NULL;
    size_t urllen = strlen(cli->url);
    int r = -1;

    while (urllen > 0 && cli->url[urllen - 1] == '/')
        urllen--;
    MU_AUTOFREE char *url = mu_xasprintf("%.*s%s", (int)urllen, cli->url, path);
    MU_AUTOFREE char *auth =
        cli->token ? mu_xasprintf("Authorization: Bearer %s", cli->token) : NULL;
    mu_buf_init(&s.body);

    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(msg, msglen, "cannot initialise libcurl");
        goto out;
    }
    headers = add_header(headers, "Accept: application/json, application/problem+json");
    if (file) {
        /* A refused upload (authentication, size) is answered before the file is sent. */
        headers = add_header(headers, "Expect: 100-continue");
        headers = add_header(headers, "Content-Type: application/octet-stream");
    } else {
        headers = add_header(headers, "Expect:"); /* no 100-continue round trip */
    }
    if (body)
        headers = add_header(headers, "Content-Type: application/json");
    if (auth)
        headers = add_header(headers, auth);

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (cli->ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, cli->ca);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    if (file) {
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, UPLOAD_STALL_BYTES);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, UPLOAD_STALL_S);
    } else {
        curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    }
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MU_CLI_ANSWER_MAX);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mutualis/" MU_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &s);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (file) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &src);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)file->size);
        if (file->progress) {
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, &src);
        }
    }
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    else
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);

    CURLcode rc = curl_easy_perform(h);
    if (src.shown)
        fputs("\n", stderr);
    if (rc != CURLE_OK) {
        describe_failure(cli, rc, errbuf, &s, file ? &src : NULL, timeout_s, msg, msglen);
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    ret->status = status;
    ret->len = s.body.len;
    ret->body = mu_buf_steal(&s.body);
    memcpy(ret->request_id, s.request_id, sizeof(ret->request_id));
    r = 0;
out:
    if (auth)
        explicit_bzero(auth, strlen(auth));
    curl_slist_free_all(headers);
    if (h)
        curl_easy_cleanup(h);
    mu_buf_free(&s.body);
    return r;
}

int mu_cli_http_do(const struct mu_cli *cli, const char *method, const char *path, const char *body,
                   size_t body_len, long timeout_s, struct mu_cli_http_resp *ret, char *msg,
                   size_t msglen)
{
    return exchange(cli, method, path, body, body_len, NULL, timeout_s, ret, msg, msglen);
}

int mu_cli_http_send_file(const struct mu_cli *cli, const char *method, const char *path,
                          const struct mu_cli_http_file *file, struct mu_cli_http_resp *ret,
                          char *msg, size_t msglen)
{
    return exchange(cli, method, path, NULL, 0, file, UPLOAD_STALL_S, ret, msg, msglen);
}

void mu_cli_http_resp_free(struct mu_cli_http_resp *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
