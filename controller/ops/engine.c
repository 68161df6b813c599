/* The operations engine: the dispatcher thread, one worker thread per node, the call jobs
 * (probes, reconcile passes) and the reconciler thread's timing. The steps of each
 * operation kind are in steps.c, the reconcile pass in reconcile.c.
 *
 * The dispatcher wakes every DISPATCH_TICK_MS or when kicked, asks the store for due
 * operations (pending, or running with next_run_ms in the past: an operation left
 * "running" by a crash is simply due again) and hands each one not already in flight to
 * its node's worker. An operation stays in the in-flight set from hand-over until its
 * worker is done with it (finished, or a retry scheduled), so it is never run twice at
 * once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mutualis/log.h"
#include "mutualis/util.h"
#include "ops/ops_int.h"

#define DISPATCH_TICK_MS     200
#define DISPATCH_BATCH       128
#define DISPATCH_MAX         1000 /* mu_store_op_due's limit */
#define DEFAULT_STOP_MS      60000
#define DEFAULT_OP_MS        (15 * 60 * 1000)
#define DEFAULT_RECONCILE_MS 30000
#define RECONCILE_WAIT_MS                                                                          \
    60000 /* on top of stop_timeout_ms: a node's pass may queue                                    \
             behind a graceful stop */

/* ---- time and conditions -------------------------------------------------------------- */

static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

/* Waits on c (ops->mu held) until the monotonic deadline; false once it has passed. */
static bool wait_until(struct mu_ops *ops, pthread_cond_t *c, int64_t deadline_mono_ms)
{
    int64_t now = mu_mono_ms();
    if (now >= deadline_mono_ms)
        return false;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t left = deadline_mono_ms - now;
    ts.tv_sec += (time_t)(left / 1000);
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(c, &ops->mu, &ts);
    return true;
}

/* ---- in-flight set (ops->mu held) ----------------------------------------------------- */

static bool inflight_has(const struct mu_ops *ops, int64_t id)
{
    for (size_t i = 0; i < ops->ninflight; i++)
        if (ops->inflight[i] == id)
            return true;
    return false;
}

static void inflight_add(struct mu_ops *ops, int64_t id)
{
    if (ops->ninflight == ops->capinflight) {
        ops->capinflight = ops->capinflight ? ops->capinflight * 2 : 64;
        ops->inflight = mu_xrealloc(ops->inflight, ops->capinflight * sizeof *ops->inflight);
    }
    ops->inflight[ops->ninflight++] = id;
}

static void inflight_del(struct mu_ops *ops, int64_t id)
{
    for (size_t i = 0; i < ops->ninflight; i++) {
        if (ops->inflight[i] == id) {
            ops->inflight[i] = ops->inflight[--ops->ninflight];
            return;
        }
    }
}

/* ---- jobs (ops->mu held) ---------------------------------------------------------------- */

static void job_unref(struct mu_ops_job *j)
{
    if (--j->refs > 0)
        return;
    mu_op_clear(&j->op);
    free(j);
}

static void job_push(struct mu_ops_worker *w, struct mu_ops_job *j, bool urgent)
{
    j->next = NULL;
    if (!w->head) {
        w->head = w->tail = j;
    } else if (urgent) {
        j->next = w->head;
        w->head = j;
    } else {
        w->tail->next = j;
        w->tail = j;
    }
    pthread_cond_signal(&w->cond);
}

/* Called by the worker (ops->mu held) when a job is over or dropped. */
static void job_complete(struct mu_ops *ops, struct mu_ops_worker *w, struct mu_ops_job *j)
{
    if (j->reconcile)
        w->reconcile_queued = false;
    if (!j->call) {
        inflight_del(ops, j->op.id);
    } else {
        j->done = true;
        pthread_cond_broadcast(&ops->done_cond);
    }
    job_unref(j);
}

/* ---- workers ---------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    struct mu_ops_worker *w = arg;
    struct mu_ops *ops = w->ops;
    struct mu_ops_job *j;

    pthread_mutex_lock(&ops->mu);
    for (;;) {
        while (!w->stop && !w->head)
            pthread_cond_wait(&w->cond, &ops->mu);
        if (w->stop)
            break;
        j = w->head;
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        pthread_mutex_unlock(&ops->mu);
        if (j->call) {
            struct mu_err err = {0};
            int rc = j->call(ops, w, w->node_id, &err);
            pthread_mutex_lock(&ops->mu);
            j->rc = rc;
            j->err = err;
        } else {
            mu_ops_run_op(ops, w, &j->op);
            pthread_mutex_lock(&ops->mu);
        }
        job_complete(ops, w, j);
    }
    /* Stopping: what is still queued is dropped. Operations stay unfinished in the store
     * and resume at the next start; waiters of call jobs are told. */
    while ((j = w->head)) {
        w->head = j->next;
        if (j->call) {
            j->rc = mu_err_set(&j->err, MU_EUNAVAIL, "the operations engine is stopping");
        }
        job_complete(ops, w, j);
    }
    w->tail = NULL;
    pthread_mutex_unlock(&ops->mu);
    return NULL;
}

static struct mu_ops_worker *worker_find(struct mu_ops *ops, int64_t node_id)
{
    for (struct mu_ops_worker *w = ops->workers; w; w = w->next)
        if (w->node_id == node_id)
            return w;
    return NULL;
}

static void worker_free(struct mu_ops_worker *w)
{
    mu_virt_conn_free(w->conn);
    pthread_cond_destroy(&w->cond);
    free(w->node_name);
    free(w);
}

/* The worker of node_id, created (with its connection, opened lazily) on first use.
 * ops->mu is held on entry and on return but dropped while the node row is read. */
static int worker_get(struct mu_ops *ops, int64_t node_id, struct mu_ops_worker **ret,
                      struct mu_err *err)
{
    struct mu_ops_worker *w = worker_find(ops, node_id);
    struct mu_node n = {0};
    int rc;

    if (w) {
        *ret = w;
        return 0;
    }
    pthread_mutex_unlock(&ops->mu);
    rc = mu_store_node_get(ops->store, node_id, &n, err);
    pthread_mutex_lock(&ops->mu);
    if (rc < 0)
        return rc;
    if (ops->stopping) {
        rc = mu_err_set(err, MU_EUNAVAIL, "the operations engine is stopping");
        goto out;
    }
    w = worker_find(ops, node_id); /* another thread may have made it meanwhile */
    if (!w) {
        struct mu_virt_conn *conn = mu_virt_conn_new(n.uri, n.pool, n.pool_path);
        if (!conn) {
            rc = mu_err_set(err, MU_EINVAL,
                            "node %s: invalid libvirt URI %s or storage pool %s (or its path)",
                            n.name, n.uri ? n.uri : "(none)", n.pool ? n.pool : "(none)");
            goto out;
        }
        w = mu_xcalloc(1, sizeof *w);
        w->ops = ops;
        w->node_id = node_id;
        w->node_name = mu_xstrdup(n.name);
        w->conn = conn;
        pthread_cond_init(&w->cond, NULL);
        int e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e != 0) {
            worker_free(w);
            rc = mu_err_set(err, MU_EINTERNAL, "cannot start the worker of node %s: %s", n.name,
                            strerror(e));
            goto out;
        }
        w->next = ops->workers;
        ops->workers = w;
        mu_log_debug("node worker started node=%lld name=%s", (long long)node_id, n.name);
    }
    *ret = w;
out:
    mu_node_clear(&n);
    return rc;
}

/* ---- call jobs ---------------------------------------------------------------------------- */

int mu_ops_submit_call(struct mu_ops *ops, int64_t node_id, mu_ops_call_fn call, bool urgent,
                       bool reconcile, struct mu_ops_job **ret_job, struct mu_err *err)
{
    struct mu_ops_worker *w = NULL;
    int rc;

    pthread_mutex_lock(&ops->mu);
    if (ops->stopping) {
        rc = mu_err_set(err, MU_EUNAVAIL, "the operations engine is stopping");
        goto out;
    }
    rc = worker_get(ops, node_id, &w, err);
    if (rc < 0)
        goto out;
    if (reconcile && w->reconcile_queued) {
        rc = mu_err_set(err, MU_EBUSY, "a reconcile pass of node %s is already queued",
                        w->node_name);
        goto out;
    }
    struct mu_ops_job *j = mu_xcalloc(1, sizeof *j);
    j->call = call;
    j->reconcile = reconcile;
    j->refs = 2; /* the worker's and the caller's */
    if (reconcile)
        w->reconcile_queued = true;
    job_push(w, j, urgent);
    *ret_job = j;
out:
    pthread_mutex_unlock(&ops->mu);
    return rc;
}

int mu_ops_wait_call(struct mu_ops *ops, struct mu_ops_job *job, int64_t deadline_mono_ms,
                     const char *what, struct mu_err *err)
{
    int rc;

    pthread_mutex_lock(&ops->mu);
    while (!job->done && !ops->stopping)
        if (!wait_until(ops, &ops->done_cond, deadline_mono_ms))
            break;
    if (job->done) {
        rc = job->rc;
        if (rc < 0 && err && err->code == 0)
            *err = job->err;
    } else if (ops->stopping) {
        rc = mu_err_set(err, MU_EUNAVAIL, "%s: the operations engine is stopping", what);
    } else {
        rc = mu_err_set(err, MU_EUNAVAIL, "%s: no answer in time", what);
    }
    job_unref(job);
    pthread_mutex_unlock(&ops->mu);
    return rc;
}

/* ---- dispatcher ------------------------------------------------------------------------- */

/* Hands the due operations to their workers. *failing remembers whether the last read of
 * the queue failed, so that a store outage is logged once, not five times a second. */
static void dispatch_once(struct mu_ops *ops, int limit, bool *failing)
{
    struct mu_op *due = NULL;
    size_t n = 0;
    struct mu_err err = {0};

    if (mu_store_op_due(ops->store, mu_now_ms(), limit, &due, &n, &err) < 0) {
        if (!*failing)
            mu_log_error("cannot read the operation queue error=\"%s\"", err.detail);
        *failing = true;
        return;
    }
    if (*failing)
        mu_log_info("operation queue readable again");
    *failing = false;
    for (size_t i = 0; i < n; i++) {
        struct mu_ops_worker *w = NULL;
        int rc;

        mu_err_clear(&err);
        pthread_mutex_lock(&ops->mu);
        if (ops->stopping) {
            pthread_mutex_unlock(&ops->mu);
            break;
        }
        if (inflight_has(ops, due[i].id)) {
            pthread_mutex_unlock(&ops->mu);
            continue;
        }
        rc = worker_get(ops, due[i].node_id, &w, &err);
        if (rc == 0) {
            struct mu_ops_job *j = mu_xcalloc(1, sizeof *j);
            j->op = due[i];
            memset(&due[i], 0, sizeof due[i]); /* moved into the job */
            j->refs = 1;
            inflight_add(ops, j->op.id);
            job_push(w, j, false);
        }
        pthread_mutex_unlock(&ops->mu);
        if (rc == MU_ENOTFOUND || rc == MU_EINVAL) {
            char msg[600];
            snprintf(msg, sizeof msg, "cannot reach node %lld: %s", (long long)due[i].node_id,
                     err.detail);
            mu_ops_fail_op(ops, &due[i], msg);
        } else if (rc < 0 && rc != MU_EUNAVAIL) {
            mu_log_warn("cannot dispatch operation id=%lld error=\"%s\"", (long long)due[i].id,
                        err.detail);
        }
    }
    mu_ops_free(due, n);
}

static void *dispatcher_main(void *arg)
{
    struct mu_ops *ops = arg;
    bool failing = false;

    pthread_mutex_lock(&ops->mu);
    while (!ops->stopping) {
        if (!ops->kicked)
            wait_until(ops, &ops->wake, mu_mono_ms() + DISPATCH_TICK_MS);
        if (ops->stopping)
            break;
        ops->kicked = false;
        /* Operations in flight come back from the queue too: ask for enough to see new
         * ones behind them. */
        size_t want = ops->ninflight + DISPATCH_BATCH;
        int limit = want > DISPATCH_MAX ? DISPATCH_MAX : (int)want;
        pthread_mutex_unlock(&ops->mu);
        dispatch_once(ops, limit, &failing);
        pthread_mutex_lock(&ops->mu);
    }
    pthread_mutex_unlock(&ops->mu);
    return NULL;
}

/* ---- reconciler thread ------------------------------------------------------------------ */

static void *reconciler_main(void *arg)
{
    struct mu_ops *ops = arg;

    pthread_mutex_lock(&ops->mu);
    while (!ops->stopping) {
        pthread_mutex_unlock(&ops->mu);
        struct mu_err err = {0};
        if (mu_ops_reconcile(ops, &err) < 0)
            mu_log_warn("reconcile pass failed error=\"%s\"", err.detail);
        pthread_mutex_lock(&ops->mu);
        int64_t next = mu_mono_ms() + ops->reconcile_interval_ms;
        while (!ops->stopping && wait_until(ops, &ops->rec_wake, next))
            ;
    }
    pthread_mutex_unlock(&ops->mu);
    return NULL;
}

int mu_ops_reconcile(struct mu_ops *ops, struct mu_err *err)
{
    struct mu_node *nodes = NULL;
    size_t n = 0;
    int rc;

    pthread_mutex_lock(&ops->rec_mu);
    rc = mu_store_node_list(ops->store, &nodes, &n, err);
    if (rc < 0)
        goto out;
    struct mu_ops_job **jobs = mu_xcalloc(n ? n : 1, sizeof *jobs);
    for (size_t i = 0; i < n; i++) {
        struct mu_err e = {0};
        int r =
            mu_ops_submit_call(ops, nodes[i].id, mu_ops_reconcile_node, false, true, &jobs[i], &e);
        if (r < 0 && r != MU_EBUSY && r != MU_EUNAVAIL)
            mu_log_warn("cannot reconcile node node=%lld name=%s error=\"%s\"",
                        (long long)nodes[i].id, nodes[i].name, e.detail);
    }
    /* The passes run in parallel, one per worker; a node that hangs costs its own
     * timeout, not the others'. */
    int64_t deadline = mu_mono_ms() + ops->stop_timeout_ms + RECONCILE_WAIT_MS;
    for (size_t i = 0; i < n; i++) {
        if (!jobs[i])
            continue;
        char what[300];
        struct mu_err e = {0};
        snprintf(what, sizeof what, "reconcile of node %s", nodes[i].name);
        int r = mu_ops_wait_call(ops, jobs[i], deadline, what, &e);
        if (r < 0)
            mu_log_debug("reconcile of node failed node=%lld error=\"%s\"", (long long)nodes[i].id,
                         e.detail);
    }
    free(jobs);
out:
    mu_nodes_free(nodes, n);
    pthread_mutex_unlock(&ops->rec_mu);
    return rc;
}

/* ---- the contract ------------------------------------------------------------------------ */

struct mu_ops *mu_ops_start(const struct mu_ops_opts *opts, struct mu_err *err)
{
    const char *policy = opts && opts->orphan_policy ? opts->orphan_policy : "remove";

    if (!opts || !opts->store) {
        mu_err_set(err, MU_EINVAL, "the operations engine needs a store");
        return NULL;
    }
    if (strcmp(policy, "remove") != 0 && strcmp(policy, "quarantine") != 0) {
        mu_err_setf(err, MU_EINVAL, "orphan_policy",
                    "orphan_policy must be \"remove\" or \"quarantine\", not \"%.64s\"", policy);
        return NULL;
    }
    if (mu_virt_init(err) < 0)
        return NULL;
    mu_ops_fault_init();

    struct mu_ops *ops = mu_xcalloc(1, sizeof *ops);
    ops->store = opts->store;
    ops->data_dir = mu_xstrdup(opts->data_dir);
    ops->stop_timeout_ms = opts->stop_timeout_ms > 0 ? opts->stop_timeout_ms : DEFAULT_STOP_MS;
    ops->op_timeout_ms = opts->op_timeout_ms > 0 ? opts->op_timeout_ms : DEFAULT_OP_MS;
    ops->reconcile_interval_ms =
        opts->reconcile_interval_ms > 0 ? opts->reconcile_interval_ms : DEFAULT_RECONCILE_MS;
    ops->quarantine = strcmp(policy, "quarantine") == 0;
    pthread_mutex_init(&ops->mu, NULL);
    pthread_mutex_init(&ops->rec_mu, NULL);
    cond_init_mono(&ops->wake);
    cond_init_mono(&ops->rec_wake);
    cond_init_mono(&ops->done_cond);

    int e = pthread_create(&ops->dispatcher, NULL, dispatcher_main, ops);
    if (e != 0) {
        mu_err_set(err, MU_EINTERNAL, "cannot start the dispatcher: %s", strerror(e));
        goto fail;
    }
    e = pthread_create(&ops->reconciler, NULL, reconciler_main, ops);
    if (e != 0) {
        pthread_mutex_lock(&ops->mu);
        ops->stopping = true;
        pthread_cond_broadcast(&ops->wake);
        pthread_mutex_unlock(&ops->mu);
        pthread_join(ops->dispatcher, NULL);
        mu_err_set(err, MU_EINTERNAL, "cannot start the reconciler: %s", strerror(e));
        goto fail;
    }
    mu_log_info("operations engine started orphan_policy=%s reconcile_ms=%lld stop_timeout_ms=%lld",
                policy, (long long)ops->reconcile_interval_ms, (long long)ops->stop_timeout_ms);
    return ops;
fail:
    pthread_mutex_destroy(&ops->mu);
    pthread_mutex_destroy(&ops->rec_mu);
    pthread_cond_destroy(&ops->wake);
    pthread_cond_destroy(&ops->rec_wake);
    pthread_cond_destroy(&ops->done_cond);
    free(ops->data_dir);
    free(ops);
    return NULL;
}

void mu_ops_stop(struct mu_ops *ops)
{
    if (!ops)
        return;
    pthread_mutex_lock(&ops->mu);
    ops->stopping = true;
    pthread_cond_broadcast(&ops->wake);
    pthread_cond_broadcast(&ops->rec_wake);
    pthread_cond_broadcast(&ops->done_cond);
    pthread_mutex_unlock(&ops->mu);
    pthread_join(ops->dispatcher, NULL);
    pthread_join(ops->reconciler, NULL);

    /* Workers finish the step they are running (a graceful stop may take its timeout),
     * then drop their queue. */
    pthread_mutex_lock(&ops->mu);
    struct mu_ops_worker *list = ops->workers;
    ops->workers = NULL;
    for (struct mu_ops_worker *w = list; w; w = w->next) {
        w->stop = true;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&ops->mu);
    while (list) {
        struct mu_ops_worker *w = list;
        list = w->next;
        pthread_join(w->thread, NULL);
        worker_free(w);
    }
    pthread_mutex_destroy(&ops->mu);
    pthread_mutex_destroy(&ops->rec_mu);
    pthread_cond_destroy(&ops->wake);
    pthread_cond_destroy(&ops->rec_wake);
    pthread_cond_destroy(&ops->done_cond);
    free(ops->inflight);
    free(ops->data_dir);
    free(ops);
    mu_log_info("operations engine stopped");
}

void mu_ops_kick(struct mu_ops *ops)
{
    if (!ops)
        return;
    pthread_mutex_lock(&ops->mu);
    ops->kicked = true;
    pthread_cond_signal(&ops->wake);
    pthread_mutex_unlock(&ops->mu);
}

int mu_ops_node_probe(struct mu_ops *ops, int64_t node_id, int64_t timeout_ms, struct mu_err *err)
{
    struct mu_ops_job *job = NULL;
    char what[64];
    int rc = mu_ops_submit_call(ops, node_id, mu_ops_probe_node, true, false, &job, err);

    if (rc < 0)
        return rc;
    snprintf(what, sizeof what, "probe of node %lld", (long long)node_id);
    return mu_ops_wait_call(ops, job, mu_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0), what, err);
}

void mu_ops_node_forget(struct mu_ops *ops, int64_t node_id)
{
    struct mu_ops_worker *w = NULL;

    if (!ops)
        return;
    pthread_mutex_lock(&ops->mu);
    for (struct mu_ops_worker **pp = &ops->workers; *pp; pp = &(*pp)->next) {
        if ((*pp)->node_id == node_id) {
            w = *pp;
            *pp = w->next;
            w->stop = true;
            pthread_cond_signal(&w->cond);
            break;
        }
    }
    pthread_mutex_unlock(&ops->mu);
    if (!w)
        return;
    pthread_join(w->thread, NULL);
    worker_free(w);
    mu_log_debug("node worker stopped node=%lld", (long long)node_id);
}
