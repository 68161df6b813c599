/* The report writer (see ingest.h): a bounded queue of tickets, one thread that stores them
 * in batches, one transaction per batch, and completes the tickets after the commit. */
#include "fleet/ingest.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mutualis/log.h"
#include "store/provision.h"
#include "store/telemetry.h"

#define DEFAULT_BATCH   256
#define DEFAULT_QUEUE   8192
#define DEFAULT_WAIT_MS 10000

struct mu_ingest_ticket {
    struct mu_report report; /* owned */
    int64_t node_id;
    char serial[MU_TELEMETRY_SERIAL_MAX];
    int64_t not_after_ms;
    int64_t queued_ms; /* monotonic */
    void (*done)(void *);
    void *arg;
    /* The result, written by the writer before finished is set. */
    int rc;
    struct mu_err err;
    struct mu_ingest_ack ack;
    /* The writer and the submitter each hold a reference; the last one frees. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool finished;
    int refs;
    struct mu_ingest_ticket *next;
};

struct mu_ingest {
    struct mu_store *store;
    struct mu_report_cache *cache; /* the writer thread's only */
    unsigned batch_max, linger_ms, queue_max, wait_max_ms;
    pthread_t thread;
    pthread_mutex_t mu;  /* the queue, stopping and the stats */
    pthread_cond_t cond; /* the writer waits on it */
    struct mu_ingest_ticket *head, *tail;
    size_t queued;
    bool stopping;
    struct mu_ingest_stats stats;
};

static pthread_condattr_t mono_attr;
static pthread_once_t mono_once = PTHREAD_ONCE_INIT;

static void mono_init(void)
{
    pthread_condattr_init(&mono_attr);
    pthread_condattr_setclock(&mono_attr, CLOCK_MONOTONIC);
}

static void deadline_ts(int64_t ms_from_now, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms_from_now / 1000);
    ts->tv_nsec += (long)(ms_from_now % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- tickets ----------------------------------------------------------------------------- */

static void ticket_unref(struct mu_ingest_ticket *t)
{
    pthread_mutex_lock(&t->mu);
    bool last = --t->refs == 0;
    pthread_mutex_unlock(&t->mu);
    if (!last)
        return;
    mu_report_clear(&t->report);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cond);
    free(t);
}

/* Publishes the result (already written into t), wakes its waiter or runs its callback,
 * and drops the writer's reference. */
static void ticket_complete(struct mu_ingest_ticket *t)
{
    void (*done)(void *) = t->done;
    void *arg = t->arg;

    pthread_mutex_lock(&t->mu);
    t->finished = true;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
    if (done)
        done(arg);
    ticket_unref(t);
}

static void ticket_fail(struct mu_ingest_ticket *t, int code, const char *detail)
{
    t->rc = code;
    mu_err_set(&t->err, code, "%s", detail);
    ticket_complete(t);
}

/* ---- the writer -------------------------------------------------------------------------- */

static void apply_observed(struct mu_ingest *in, const struct mu_observed_change *ch, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct mu_err err = {0};
        if (mu_store_vm_set_observed(in->store, ch[i].vm_id, ch[i].state,
                                     ch[i].error[0] ? ch[i].error : NULL, &err) < 0)
            mu_log_warn("cannot record a reported VM state vm=%" PRId64 " state=%s error=\"%s\"",
                        ch[i].vm_id, ch[i].state, err.detail);
        else
            mu_log_info("observed state changed vm=%" PRId64 " node=%" PRId64
                        " to=%s source=report",
                        ch[i].vm_id, ch[i].node_id, ch[i].state);
    }
}

static void set_outcome(struct mu_ingest *in, struct mu_ingest_ticket *t,
                        const struct mu_report_in *ri)
{
    snprintf(t->ack.epoch, sizeof t->ack.epoch, "%s", t->report.epoch);
    t->ack.acked_seq = ri->acked_seq;
    switch (ri->outcome) {
    case MU_REPORT_STORED:
        t->rc = MU_OK;
        in->stats.stored++;
        break;
    case MU_REPORT_REPLAY:
        t->rc = MU_OK;
        t->ack.replay = true;
        in->stats.replays++;
        break;
    case MU_REPORT_OUT_OF_ORDER:
        t->rc = mu_err_setf(&t->err, MU_ECONFLICT, "seq",
                            "report %" PRId64 " of epoch %s is out of order: expected sequence "
                            "%" PRId64 " (acknowledged up to %" PRId64 ")",
                            t->report.seq, t->report.epoch, ri->expected_seq, ri->acked_seq);
        t->ack.expected_seq = ri->expected_seq;
        in->stats.refused++;
        break;
    case MU_REPORT_NO_NODE:
        t->rc = mu_err_set(&t->err, MU_ENOTFOUND, "node %s was removed from this controller",
                           t->report.node);
        in->stats.refused++;
        break;
    }
}

static void write_batch(struct mu_ingest *in, struct mu_ingest_ticket **batch, size_t n)
{
    struct mu_report_in *ins = mu_xcalloc(n, sizeof *ins);
    struct mu_ingest_ticket **live = mu_xcalloc(n, sizeof *live);
    struct mu_observed_change *changes = NULL;
    size_t nlive = 0, nchanges = 0;
    int64_t now = mu_mono_ms();
    struct mu_err err = {0};

    for (size_t i = 0; i < n; i++) {
        struct mu_ingest_ticket *t = batch[i];
        if (now - t->queued_ms > (int64_t)in->wait_max_ms) {
            char detail[160];
            snprintf(detail, sizeof detail,
                     "the controller could not store the report within %u ms; send it again",
                     in->wait_max_ms);
            pthread_mutex_lock(&in->mu);
            in->stats.failed++;
            pthread_mutex_unlock(&in->mu);
            ticket_fail(t, MU_EBUSY, detail);
            continue;
        }
        ins[nlive] = (struct mu_report_in){.report = &t->report,
                                           .node_id = t->node_id,
                                           .cert_serial = t->serial[0] ? t->serial : NULL,
                                           .cert_not_after_ms = t->not_after_ms};
        live[nlive++] = t;
    }
    struct mu_audit_rec health = {
        .actor = "health", .role = "", .action = "node.health", .outcome = "ok", .request_id = ""};
    int rc = mu_store_reports_commit(in->store, in->cache, ins, nlive, mu_now_ms(), &health,
                                     &changes, &nchanges, &err);
    if (rc < 0)
        mu_log_warn("report batch not stored reports=%zu error=\"%s\"", nlive, err.detail);
    pthread_mutex_lock(&in->mu);
    if (rc == 0 && nlive > 0) {
        in->stats.batches++;
        if (nlive > in->stats.max_batch)
            in->stats.max_batch = nlive;
    }
    for (size_t i = 0; i < nlive; i++) {
        if (rc < 0) {
            live[i]->rc = rc;
            live[i]->err = err;
            in->stats.failed++;
        } else {
            set_outcome(in, live[i], &ins[i]);
        }
    }
    pthread_mutex_unlock(&in->mu);
    /* Only now, the batch synced, does any acknowledgement leave. */
    for (size_t i = 0; i < nlive; i++)
        ticket_complete(live[i]);
    apply_observed(in, changes, nchanges);
    free(changes);
    free(ins);
    free(live);
}

static void *writer_main(void *arg)
{
    struct mu_ingest *in = arg;
    struct mu_ingest_ticket **batch = mu_xcalloc(in->batch_max, sizeof *batch);

    for (;;) {
        pthread_mutex_lock(&in->mu);
        while (!in->head && !in->stopping)
            pthread_cond_wait(&in->cond, &in->mu);
        if (in->stopping) {
            pthread_mutex_unlock(&in->mu);
            break;
        }
        /* Let a small batch fill a little: fewer syncs for the same reports. */
        if (in->linger_ms > 0 && in->queued < in->batch_max) {
            struct timespec ts;
            deadline_ts((int64_t)in->linger_ms - (mu_mono_ms() - in->head->queued_ms), &ts);
            while (!in->stopping && in->queued < in->batch_max &&
                   mu_mono_ms() - in->head->queued_ms < (int64_t)in->linger_ms)
                if (pthread_cond_timedwait(&in->cond, &in->mu, &ts) == ETIMEDOUT)
                    break;
        }
        size_t n = 0;
        while (in->head && n < in->batch_max) {
            struct mu_ingest_ticket *t = in->head;
            in->head = t->next;
            t->next = NULL;
            batch[n++] = t;
        }
        if (!in->head)
            in->tail = NULL;
        in->queued -= n;
        pthread_mutex_unlock(&in->mu);
        write_batch(in, batch, n);
    }
    free(batch);
    return NULL;
}

/* ---- API --------------------------------------------------------------------------------- */

struct mu_ingest *mu_ingest_start(const struct mu_ingest_opts *opts, struct mu_err *err)
{
    if (!opts || !opts->store) {
        mu_err_set(err, MU_EINVAL, "the report writer needs a store");
        return NULL;
    }
    pthread_once(&mono_once, mono_init);
    struct mu_ingest *in = mu_xcalloc(1, sizeof *in);
    in->store = opts->store;
    in->cache = mu_report_cache_new();
    in->batch_max = opts->batch_max ? opts->batch_max : DEFAULT_BATCH;
    in->linger_ms = opts->linger_ms;
    in->queue_max = opts->queue_max ? opts->queue_max : DEFAULT_QUEUE;
    in->wait_max_ms = opts->wait_max_ms ? opts->wait_max_ms : DEFAULT_WAIT_MS;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cond, &mono_attr);
    int e = pthread_create(&in->thread, NULL, writer_main, in);
    if (e != 0) {
        mu_err_set(err, MU_EINTERNAL, "cannot start the report writer: %s", strerror(e));
        mu_report_cache_free(in->cache);
        pthread_cond_destroy(&in->cond);
        pthread_mutex_destroy(&in->mu);
        free(in);
        return NULL;
    }
    mu_log_debug("report writer started batch_max=%u linger_ms=%u queue_max=%u", in->batch_max,
                 in->linger_ms, in->queue_max);
    return in;
}

void mu_ingest_stop(struct mu_ingest *in)
{
    if (!in)
        return;
    pthread_mutex_lock(&in->mu);
    in->stopping = true;
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->mu);
    pthread_join(in->thread, NULL);
    /* The writer is gone: what is left was never stored. */
    struct mu_ingest_ticket *t = in->head;
    in->head = in->tail = NULL;
    in->queued = 0;
    while (t) {
        struct mu_ingest_ticket *next = t->next;
        ticket_fail(t, MU_EBUSY, "the controller is stopping; send the report again later");
        t = next;
    }
    mu_report_cache_free(in->cache);
    pthread_cond_destroy(&in->cond);
    pthread_mutex_destroy(&in->mu);
    free(in);
}

struct mu_ingest_ticket *mu_ingest_submit(struct mu_ingest *in, struct mu_report *r,
                                          const struct mu_ingest_src *src, void (*done)(void *),
                                          void *arg, struct mu_err *err)
{
    pthread_mutex_lock(&in->mu);
    if (in->stopping || in->queued >= in->queue_max) {
        bool stopping = in->stopping;
        pthread_mutex_unlock(&in->mu);
        mu_report_clear(r);
        mu_err_set(err, MU_EBUSY,
                   stopping ? "the controller is stopping; send the report again later"
                            : "the controller has too many reports waiting; send it again later");
        return NULL;
    }
    pthread_mutex_unlock(&in->mu);

    struct mu_ingest_ticket *t = mu_xcalloc(1, sizeof *t);
    t->report = *r;
    memset(r, 0, sizeof *r);
    t->node_id = src->node_id;
    if (src->cert_serial)
        snprintf(t->serial, sizeof t->serial, "%s", src->cert_serial);
    t->not_after_ms = src->cert_not_after_ms;
    t->done = done;
    t->arg = arg;
    t->refs = 2;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cond, &mono_attr);

    pthread_mutex_lock(&in->mu);
    t->queued_ms = mu_mono_ms();
    if (in->tail)
        in->tail->next = t;
    else
        in->head = t;
    in->tail = t;
    in->queued++;
    pthread_cond_signal(&in->cond);
    pthread_mutex_unlock(&in->mu);
    return t;
}

int mu_ingest_result(struct mu_ingest_ticket *t, struct mu_ingest_ack *ret, struct mu_err *err)
{
    pthread_mutex_lock(&t->mu);
    while (!t->finished)
        pthread_cond_wait(&t->cond, &t->mu);
    int rc = t->rc;
    *ret = t->ack;
    if (rc < 0 && err && err->code == 0)
        *err = t->err;
    pthread_mutex_unlock(&t->mu);
    ticket_unref(t);
    return rc;
}

int mu_ingest_submit_wait(struct mu_ingest *in, struct mu_report *r,
                          const struct mu_ingest_src *src, int64_t timeout_ms,
                          struct mu_ingest_ack *ret, struct mu_err *err)
{
    struct mu_ingest_ticket *t = mu_ingest_submit(in, r, src, NULL, NULL, err);
    struct timespec ts;

    if (!t)
        return err->code ? err->code : MU_EBUSY;
    deadline_ts(timeout_ms, &ts);
    pthread_mutex_lock(&t->mu);
    while (!t->finished)
        if (pthread_cond_timedwait(&t->cond, &t->mu, &ts) == ETIMEDOUT)
            break;
    bool finished = t->finished;
    pthread_mutex_unlock(&t->mu);
    if (!finished) {
        ticket_unref(t); /* abandoned: the writer frees it */
        return mu_err_set(err, MU_EBUSY,
                          "the report was not stored within %" PRId64
                          " ms; send it again (a replay is harmless)",
                          timeout_ms);
    }
    return mu_ingest_result(t, ret, err);
}

void mu_ingest_stats(struct mu_ingest *in, struct mu_ingest_stats *ret)
{
    pthread_mutex_lock(&in->mu);
    *ret = in->stats;
    ret->queued = in->queued;
    pthread_mutex_unlock(&in->mu);
}
