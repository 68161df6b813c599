/* Report delivery over HTTPS with a client certificate (send.h). */
#include "report/send.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"

struct mu_sender {
    CURL *curl;
    struct curl_slist *headers;
    char *url, *renew_url;
    char errbuf[CURL_ERROR_SIZE];
    /* The answer being read: bounded. */
    char *answer;
    size_t answer_len;
    bool answer_too_big;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct mu_sender *s = userdata;
    size_t n = size * nmemb;
    if (s->answer_len + n > MU_SEND_MAX_ANSWER) {
        s->answer_too_big = true;
        return 0; /* libcurl fails the transfer */
    }
    memcpy(s->answer + s->answer_len, data, n);
    s->answer_len += n;
    return n;
}

static int setup(struct mu_sender *s, const struct mu_sender_opts *o, struct mu_err *err)
{
    CURL *c = s->curl;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, s->url);
    SET(CURLOPT_PROTOCOLS_STR, "https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, s->errbuf);
    SET(CURLOPT_SSLCERT, o->cert);
    SET(CURLOPT_SSLCERTTYPE, "PEM");
    SET(CURLOPT_SSLKEY, o->key);
    SET(CURLOPT_SSLKEYTYPE, "PEM");
    SET(CURLOPT_CAINFO, o->ca);
    SET(CURLOPT_CAPATH, NULL); /* only the controller's CA: no system directory */
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SET(CURLOPT_CONNECTTIMEOUT, (long)MU_SEND_CONNECT_TIMEOUT);
    SET(CURLOPT_TIMEOUT, (long)MU_SEND_TIMEOUT);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_MAXCONNECTS, 1L);
    SET(CURLOPT_USERAGENT, "mutualis-agent/" MU_VERSION);
    SET(CURLOPT_HTTPHEADER, s->headers);
    SET(CURLOPT_WRITEFUNCTION, on_data);
    SET(CURLOPT_WRITEDATA, s);
    SET(CURLOPT_POST, 1L);
#undef SET
    if (rc != CURLE_OK)
        return mu_err_set(err, MU_EINVAL, "libcurl refused a setting: %s", curl_easy_strerror(rc));
    return 0;
}

struct mu_sender *mu_sender_new(const struct mu_sender_opts *o, struct mu_err *err)
{
    const char *u = o->controller_url;
    if (!u || strncmp(u, "https://", 8) != 0 || strlen(u) <= 8 || strlen(u) > 1024) {
        mu_err_set(err, MU_EINVAL, "the controller URL must start with https://");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        mu_err_set(err, MU_EINTERNAL, "libcurl could not be initialised");
        return NULL;
    }
    struct mu_sender *s = mu_xcalloc(1, sizeof *s);
    size_t n = strlen(u);
    while (n > 8 && u[n - 1] == '/')
        n--;
    s->url = mu_xasprintf("%.*s%s", (int)n, u, MU_SEND_PATH);
    s->renew_url = mu_xasprintf("%.*s%s", (int)n, u, MU_SEND_RENEW_PATH);
    s->answer = mu_xmalloc(MU_SEND_MAX_ANSWER + 1);
    s->curl = curl_easy_init();
    if (!s->curl) {
        mu_err_set(err, MU_EINTERNAL, "libcurl could not create a handle");
        mu_sender_free(s);
        return NULL;
    }
    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (s->headers)
        s->headers = curl_slist_append(s->headers, "Accept: application/json");
    /* "Expect: 100-continue" would cost a round trip per report. */
    if (s->headers)
        s->headers = curl_slist_append(s->headers, "Expect:");
    if (!s->headers) {
        fprintf(stderr, "fatal: out of memory in libcurl\n");
        abort();
    }
    if (setup(s, o, err) != 0) {
        mu_sender_free(s);
        return NULL;
    }
    return s;
}

void mu_sender_free(struct mu_sender *s)
{
    if (!s)
        return;
    if (s->curl)
        curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->headers);
    free(s->answer);
    free(s->url);
    free(s->renew_url);
    free(s);
    curl_global_cleanup();
}

/* The detail of a problem+json answer, else the start of the body, on one line. */
static void answer_detail(const char *body, size_t len, char *out, size_t outlen)
{
    out[0] = '\0';
    struct mu_err err = {0};
    cJSON *root = len ? mu_json_parse(body, len, "answer", &err) : NULL;
    const char *d = NULL;
    if (root && mu_json_get_str(root, "detail", true, 4096, &d, &err) == 0)
        snprintf(out, outlen, "%s", d);
    cJSON_Delete(root);
    if (out[0] == '\0')
        snprintf(out, outlen, "%.*s", (int)(len < outlen ? len : outlen - 1), body);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    /* snprintf may have cut a UTF-8 sequence; the detail ends up in a log line. */
    size_t n = strlen(out);
    while (n > 0 && !mu_utf8_valid(out, n))
        out[--n] = '\0';
}

/* One POST of body to url; the answer is in s->answer (NUL-terminated) and *ret_status.
 * 0, MU_EINVAL (answer too big) or MU_EUNAVAIL (no answer), err set. */
static int post(struct mu_sender *s, const char *url, const char *body, size_t len,
                long *ret_status, struct mu_err *err)
{
    long status = 0;
    s->answer_len = 0;
    s->answer_too_big = false;
    s->errbuf[0] = '\0';
    CURLcode rc = curl_easy_setopt(s->curl, CURLOPT_URL, url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    if (rc == CURLE_OK)
        rc = curl_easy_perform(s->curl);
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, NULL);
    *ret_status = status;
    s->answer[s->answer_len] = '\0';
    if (rc != CURLE_OK) {
        if (s->answer_too_big)
            return mu_err_set(err, MU_EINVAL, "the controller's answer is larger than %d bytes",
                              MU_SEND_MAX_ANSWER);
        return mu_err_set(err, MU_EUNAVAIL, "%s: %s", curl_easy_strerror(rc),
                          s->errbuf[0] ? s->errbuf : "no detail");
    }
    return 0;
}

int mu_sender_post(struct mu_sender *s, const char *body, size_t len, struct mu_send_answer *ret,
                   struct mu_err *err)
{
    struct mu_send_answer a = {.net_generation = -1};
    int prc = post(s, s->url, body, len, &a.status, err);
    if (prc < 0) {
        *ret = a;
        return prc;
    }
    struct mu_err aerr = {0};
    if (mu_report_ack_parse(s->answer, s->answer_len, a.epoch, &a.acked_seq, &aerr) == 0) {
        mu_report_ack_net_generation(s->answer, s->answer_len, &a.net_generation);
        *ret = a;
        return 0;
    }
    answer_detail(s->answer, s->answer_len, a.detail, sizeof a.detail);
    *ret = a;
    return mu_err_set(err, MU_EINVAL, "the controller answered %ld without an acknowledgement: %s",
                      a.status, a.detail[0] ? a.detail : aerr.detail);
}

void mu_renew_answer_clear(struct mu_renew_answer *a)
{
    if (!a)
        return;
    free(a->cert_pem);
    memset(a, 0, sizeof *a);
}

int mu_sender_renew(struct mu_sender *s, const char *csr_pem, struct mu_renew_answer *ret,
                    struct mu_err *err)
{
    struct mu_renew_answer a = {0};
    cJSON *req = mu_json_obj();
    mu_json_add_str(req, "csr", csr_pem);
    char *body = mu_json_print(req);
    cJSON_Delete(req);
    int rc = post(s, s->renew_url, body, strlen(body), &a.status, err);
    free(body);
    if (rc < 0) {
        *ret = a;
        return rc;
    }
    struct mu_err perr = {0};
    cJSON *root = a.status == 200 ? mu_json_parse(s->answer, s->answer_len, "answer", &perr) : NULL;
    const char *cert = NULL;
    if (root && mu_json_get_str(root, "certificate", true, MU_SEND_MAX_ANSWER, &cert, &perr) == 0)
        a.cert_pem = mu_xstrdup(cert);
    cJSON_Delete(root);
    if (a.cert_pem) {
        *ret = a;
        return 0;
    }
    answer_detail(s->answer, s->answer_len, a.detail, sizeof a.detail);
    *ret = a;
    return mu_err_set(err, MU_EINVAL, "the controller answered %ld without a certificate: %s",
                      a.status, a.detail[0] ? a.detail : perr.detail);
}

int mu_sender_get(struct mu_sender *s, const char *path, char **ret_body, long *ret_status,
                  struct mu_err *err)
{
    size_t base = strlen(s->url) - strlen(MU_SEND_PATH);
    MU_AUTOFREE char *url = mu_xasprintf("%.*s%s", (int)base, s->url, path);
    long status = 0;
    s->answer_len = 0;
    s->answer_too_big = false;
    s->errbuf[0] = '\0';
    CURLcode rc = curl_easy_setopt(s->curl, CURLOPT_URL, url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(s->curl, CURLOPT_HTTPGET, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_perform(s->curl);
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(s->curl, CURLOPT_POST, 1L); /* back to what reports need */
    *ret_status = status;
    s->answer[s->answer_len] = '\0';
    if (rc != CURLE_OK) {
        if (s->answer_too_big)
            return mu_err_set(err, MU_EINVAL, "the controller's answer is larger than %d bytes",
                              MU_SEND_MAX_ANSWER);
        return mu_err_set(err, MU_EUNAVAIL, "%s: %s", curl_easy_strerror(rc),
                          s->errbuf[0] ? s->errbuf : "no detail");
    }
    if (status != 200) {
        char detail[256];
        answer_detail(s->answer, s->answer_len, detail, sizeof detail);
        return mu_err_set(err, MU_EINVAL, "the controller answered %ld to GET %s: %s", status, path,
                          detail);
    }
    *ret_body = mu_xstrndup(s->answer, s->answer_len);
    return 0;
}
