/* The webhook dispatcher (notify.h): one thread, the store as its queue, libcurl for the
 * POSTs. */
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mutualis/json.h"
#include "mutualis/log.h"
#include "notify/notify.h"
#include "store/webhooks.h"

#define BATCH_MAX      100
#define QUEUE_MAX      1000
#define NODES_TTL_MS   10000
#define PRUNE_EVERY_MS (3600 * 1000)
#define KEEP_MS        ((int64_t)30 * 24 * 3600 * 1000) /* attempt records kept 30 days */
#define CONNECT_MS     5000L
#define TOTAL_MS       10000L

struct mu_notify {
    struct mu_notify_opts o;
    char *ca_file;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool wake;
    atomic_bool stop;
    struct mu_notify_nodes nodes;
    int64_t nodes_ms; /* monotonic time nodes were read (0: never) */
    int64_t pruned_ms;
};

/* The delay before attempt n + 1 after n failed attempts: base x 6^(n-1), at most cap. */
static int64_t backoff(int64_t base, int64_t n, int64_t cap)
{
    int64_t d = base;
    for (int64_t i = 1; i < n && d < cap; i++)
        d = d > INT64_MAX / 6 ? cap : d * 6;
    return d < cap ? d : cap;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * nmemb;
}

static int progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct mu_notify *n = arg;
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return atomic_load(&n->stop) ? 1 : 0;
}

/* The connection may only go to an address that was checked (belt and braces over
 * CURLOPT_RESOLVE: no lookup, no other address). */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *sa)
{
    const struct mu_notify_target *t = arg;
    struct mu_notify_addr a;

    if (purpose != CURLSOCKTYPE_IPCXN || mu_notify_addr_from_sockaddr(&sa->addr, &a) != 0)
        return CURL_SOCKET_BAD;
    for (size_t i = 0; i < t->n_addrs; i++)
        if (t->addrs[i].family == a.family &&
            memcmp(t->addrs[i].bytes, a.bytes, a.family == AF_INET ? 4 : 16) == 0)
            return socket(sa->family, sa->socktype, sa->protocol);
    return CURL_SOCKET_BAD;
}

static char *event_body(const struct mu_event *e)
{
    cJSON *o = mu_json_obj();
    struct mu_err err = {0};
    cJSON *data = e->data ? mu_json_parse(e->data, strlen(e->data), "event data", &err) : NULL;

    mu_json_add_i64(o, "id", e->id);
    mu_json_add_str(o, "type", e->type);
    mu_json_add_i64(o, "at_ms", e->at_ms);
    mu_json_add_i64(o, "tenant_id", e->tenant_id);
    mu_json_add_str(o, "subject", e->subject);
    cJSON_AddItemToObject(o, "data", data ? data : mu_json_obj());
    char *text = mu_json_print(o);
    cJSON_Delete(o);
    return text;
}

struct attempt_result {
    long status;        /* HTTP status, 0 when there was no answer */
    char error[600];    /* "" when delivered */
    bool aborted;       /* stopped by mu_notify_stop: not an attempt */
    bool network_level; /* the receiver could not be reached at all */
};

/* One POST of job's event on c (reset here; its open connections are kept, so a round's
 * deliveries to one receiver share a TLS connection). */
static void post(struct mu_notify *n, CURL *c, const struct mu_webhook_job *job,
                 struct attempt_result *res)
{
    struct mu_notify_target t;
    struct mu_err err = {0};
    char sig[MU_NOTIFY_SIG_MAX], hdr[160], errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL, *resolve = NULL;
    MU_AUTOFREE char *body = NULL;
    CURLcode cc;

    memset(res, 0, sizeof *res);
    /* The rules again, now: a name may point elsewhere than when the webhook was set. */
    if (mu_notify_url_check(job->url, n->o.allow, &n->nodes, NULL, &t, &err) < 0) {
        snprintf(res->error, sizeof res->error, "refused: %s", err.detail);
        res->network_level = true;
        return;
    }
    body = event_body(&job->event);
    mu_notify_sign(job->secret, mu_now_ms() / 1000, body, strlen(body), sig);

    curl_easy_reset(c);
    if (!t.url.host_literal) {
        struct mu_buf r;
        mu_buf_init(&r);
        mu_buf_printf(&r, "%s:%u:", t.url.host, t.url.port);
        for (size_t i = 0; i < t.n_addrs; i++) {
            char text[64];
            mu_notify_addr_text(&t.addrs[i], text, sizeof text);
            mu_buf_printf(&r, t.addrs[i].family == AF_INET6 ? "%s[%s]" : "%s%s", i ? "," : "",
                          text);
        }
        resolve = curl_slist_append(NULL, r.data);
        mu_buf_free(&r);
        curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    }
    headers = curl_slist_append(headers, "Content-Type: application/json");
    snprintf(hdr, sizeof hdr, "X-Mutualis-Event: %" PRId64, job->event.id);
    headers = curl_slist_append(headers, hdr);
    snprintf(hdr, sizeof hdr, "X-Mutualis-Signature: %s", sig);
    headers = curl_slist_append(headers, hdr);
    headers = curl_slist_append(headers, "Expect:");

    curl_easy_setopt(c, CURLOPT_URL, job->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never through a proxy from the environment */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (n->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, n->ca_file);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, TOTAL_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mutualis-webhook/" MU_VERSION);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, n);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);

    cc = curl_easy_perform(c);
    if (cc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&n->stop)) {
        res->aborted = true;
    } else if (cc != CURLE_OK) {
        snprintf(res->error, sizeof res->error, "%s%s%s", curl_easy_strerror(cc),
                 errbuf[0] ? ": " : "", errbuf);
        res->network_level = cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT ||
                             cc == CURLE_COULDNT_RESOLVE_HOST ||
                             cc == CURLE_PEER_FAILED_VERIFICATION;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
        if (res->status >= 300 && res->status < 400)
            snprintf(res->error, sizeof res->error,
                     "answered HTTP %ld, a redirect, which is never followed: set the final URL",
                     res->status);
        else if (res->status < 200 || res->status >= 300)
            snprintf(res->error, sizeof res->error, "answered HTTP %ld", res->status);
    }
    curl_slist_free_all(headers);
    curl_slist_free_all(resolve);
}

static void refresh_nodes(struct mu_notify *n)
{
    struct mu_notify_nodes fresh = {0};
    struct mu_err err = {0};

    if (n->nodes_ms && mu_mono_ms() - n->nodes_ms < NODES_TTL_MS)
        return;
    if (mu_notify_nodes_load(n->o.store, &fresh, &err) < 0) {
        mu_log_warn("webhooks: cannot read the node addresses, keeping the last ones "
                    "detail=\"%s\"",
                    err.detail);
        return;
    }
    mu_notify_nodes_clear(&n->nodes);
    n->nodes = fresh;
    n->nodes_ms = mu_mono_ms();
}

/* One round: queue new events, make the due deliveries. Returns the number of due
 * deliveries found (BATCH_MAX: there may be more). */
static size_t round_once(struct mu_notify *n)
{
    struct mu_err err = {0};
    struct mu_webhook_job *jobs = NULL;
    size_t njobs = 0, queued = 0;
    int64_t now = mu_now_ms();
    int64_t skip_hook = 0;

    if (mu_store_webhook_enqueue(n->o.store, now, n->o.give_up_ms, QUEUE_MAX, &queued, &err) < 0) {
        mu_log_warn("webhooks: cannot queue events detail=\"%s\"", err.detail);
        mu_err_clear(&err);
    }
    if (mu_store_webhook_due(n->o.store, now, BATCH_MAX, &jobs, &njobs, &err) < 0) {
        mu_log_warn("webhooks: cannot read due deliveries detail=\"%s\"", err.detail);
        return 0;
    }
    CURL *c = njobs > 0 ? curl_easy_init() : NULL;
    if (njobs > 0)
        refresh_nodes(n);
    for (size_t i = 0; i < njobs && !atomic_load(&n->stop); i++) {
        const struct mu_webhook_job *j = &jobs[i];
        struct attempt_result res;
        /* A receiver that cannot be reached at all gets one attempt per round: the rest of
         * its queue waits for the next round rather than each burning a timeout now. */
        if (j->webhook_id == skip_hook)
            continue;
        int64_t t0 = mu_now_ms(), m0 = mu_mono_ms();
        if (!c) {
            mu_log_warn("webhooks: cannot start an HTTP client");
            break;
        }
        post(n, c, j, &res);
        if (res.aborted)
            break;
        int64_t t1 = mu_now_ms();
        struct mu_webhook_attempt a = {.delivery_id = j->delivery_id,
                                       .at_ms = t0,
                                       .duration_ms = mu_mono_ms() - m0,
                                       .http_status = res.status,
                                       .error = res.error[0] ? res.error : NULL};
        if (!res.error[0]) {
            a.outcome = MU_WEBHOOK_DELIVERED;
            mu_log_debug("webhook delivered tenant=%" PRId64 " event=%" PRId64 " status=%ld",
                         j->tenant_id, j->event.id, res.status);
        } else if (t1 >= j->deadline_ms) {
            a.outcome = MU_WEBHOOK_FAILED;
            mu_log_warn("webhook delivery given up tenant=%" PRId64 " event=%" PRId64
                        " attempts=%" PRId64 " error=\"%s\"",
                        j->tenant_id, j->event.id, j->attempts + 1, res.error);
        } else {
            a.outcome = MU_WEBHOOK_RETRY;
            a.next_ms = t1 + backoff(n->o.retry_base_ms, j->attempts + 1, n->o.give_up_ms);
            if (a.next_ms > j->deadline_ms)
                a.next_ms = j->deadline_ms;
            mu_log_info("webhook delivery failed, will retry tenant=%" PRId64 " event=%" PRId64
                        " attempt=%" PRId64 " retry_in_ms=%" PRId64 " error=\"%s\"",
                        j->tenant_id, j->event.id, j->attempts + 1, a.next_ms - t1, res.error);
        }
        if (res.error[0] && res.network_level)
            skip_hook = j->webhook_id;
        if (mu_store_webhook_record(n->o.store, &a, &err) < 0) {
            mu_log_warn("webhooks: cannot record an attempt detail=\"%s\"", err.detail);
            mu_err_clear(&err);
        }
    }
    if (c)
        curl_easy_cleanup(c);
    mu_webhook_jobs_free(jobs, njobs);
    if (mu_mono_ms() - n->pruned_ms >= PRUNE_EVERY_MS) {
        if (mu_store_webhook_prune(n->o.store, mu_now_ms() - KEEP_MS, &err) < 0)
            mu_log_warn("webhooks: cannot prune old records detail=\"%s\"", err.detail);
        n->pruned_ms = mu_mono_ms();
    }
    return njobs;
}

static void *run(void *arg)
{
    struct mu_notify *n = arg;

    while (!atomic_load(&n->stop)) {
        size_t found = round_once(n);
        if (found >= BATCH_MAX)
            continue;
        /* Sleep until the next due delivery, the next poll of the feed, or a wake-up. */
        struct mu_err err = {0};
        int64_t next_due = 0, wait_ms = n->o.poll_ms;
        if (mu_store_webhook_next_due(n->o.store, &next_due, &err) == 0 && next_due > 0) {
            int64_t until = next_due - mu_now_ms();
            if (until < wait_ms)
                wait_ms = until > 0 ? until : 0;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&n->mu);
        while (!n->wake && !atomic_load(&n->stop))
            if (pthread_cond_timedwait(&n->cond, &n->mu, &ts) != 0)
                break;
        n->wake = false;
        pthread_mutex_unlock(&n->mu);
    }
    return NULL;
}

struct mu_notify *mu_notify_start(const struct mu_notify_opts *opts, struct mu_err *err)
{
    struct mu_notify *n = mu_xcalloc(1, sizeof *n);
    pthread_condattr_t ca;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(n);
        mu_err_set(err, MU_EIO, "cannot initialise libcurl for webhooks");
        return NULL;
    }
    n->o = *opts;
    n->ca_file = mu_xstrdup(opts->ca_file);
    n->o.ca_file = n->ca_file;
    if (n->o.retry_base_ms <= 0)
        n->o.retry_base_ms = 5000;
    if (n->o.give_up_ms <= 0)
        n->o.give_up_ms = (int64_t)24 * 3600 * 1000;
    if (n->o.poll_ms <= 0)
        n->o.poll_ms = 1000;
    atomic_init(&n->stop, false);
    pthread_mutex_init(&n->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cond, &ca);
    pthread_condattr_destroy(&ca);
    n->pruned_ms = mu_mono_ms() - PRUNE_EVERY_MS; /* prune at the first round */
    int rc = pthread_create(&n->thread, NULL, run, n);
    if (rc != 0) {
        mu_err_set(err, MU_EIO, "cannot start the webhook dispatcher: %s", strerror(rc));
        n->started = false;
        mu_notify_stop(n);
        return NULL;
    }
    n->started = true;
    return n;
}

void mu_notify_wake(struct mu_notify *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->wake = true;
    pthread_cond_signal(&n->cond);
    pthread_mutex_unlock(&n->mu);
}

void mu_notify_stop(struct mu_notify *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    atomic_store(&n->stop, true);
    pthread_cond_signal(&n->cond);
    pthread_mutex_unlock(&n->mu);
    if (n->started)
        pthread_join(n->thread, NULL);
    mu_notify_nodes_clear(&n->nodes);
    pthread_cond_destroy(&n->cond);
    pthread_mutex_destroy(&n->mu);
    free(n->ca_file);
    free(n);
    curl_global_cleanup();
}
