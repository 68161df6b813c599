/* fleet/ingest: the one writer of agent reports. Acknowledgements (outcomes, replays, out of
 * order), batching under concurrent submitters (fewer transactions than reports, every
 * report stored once), no acknowledgement before its batch was synced (WAL syncs counted by
 * the sync-logging VFS), a slow store (the waiter's timeout, the queue's age limit and
 * bound), and a stop that answers what is still queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet/ingest.h"
#include "store/provision.h"
#include "store/telemetry.h"
#include "store/test_vfs.h"

#define NODES   8
#define PER     60
#define EPOCH_A "0123456789abcdef0123456789abcdef"

static char sync_log[128];

struct fx {
    char dir[64], path[128];
    struct mu_store *st;
    struct mu_ingest *in;
    int64_t nodes[NODES];
};

static long wal_syncs(void)
{
    size_t len = 0;
    char *text = mu_read_file(sync_log, 64 << 20, &len);
    long n = 0;
    for (char *p = text; p && (p = strstr(p, "-wal\n")) != NULL; p++)
        n++;
    free(text);
    return n;
}

static struct mu_ingest *start(struct fx *f, unsigned linger, unsigned queue_max, unsigned wait_max)
{
    struct mu_ingest_opts o = {.store = f->st,
                               .batch_max = 64,
                               .linger_ms = linger,
                               .queue_max = queue_max,
                               .wait_max_ms = wait_max};
    struct mu_err err = {0};
    struct mu_ingest *in = mu_ingest_start(&o, &err);
    if (!in)
        fail_msg("ingest: %s", err.detail);
    return in;
}

static int setup(void **state)
{
    struct fx *f = mu_xcalloc(1, sizeof *f);
    if (!sync_log[0]) {
        snprintf(sync_log, sizeof sync_log, "/tmp/mu-ingest-sync-%d.log", (int)getpid());
        unlink(sync_log);
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/mu-ingest-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/db", f->dir);
    struct mu_store_opts so = {.path = f->path,
                               .vfs = mu_store_test_sync_vfs(sync_log),
                               .audit_key = "0123456789abcdef0123456789abcdef",
                               .audit_key_len = 32};
    struct mu_err err = {0};
    f->st = mu_store_open(&so, &err);
    if (!f->st)
        fail_msg("store: %s", err.detail);
    for (int i = 0; i < NODES; i++) {
        char name[32];
        snprintf(name, sizeof name, "node-%d", i);
        struct mu_node n = {.name = name, .uri = (char *)"test:///default"};
        struct mu_audit_rec rec = {
            .actor = "t", .role = "", .action = "node.create", .outcome = "ok", .request_id = ""};
        if (mu_store_node_insert(f->st, &n, &rec, &f->nodes[i], &err) < 0)
            fail_msg("node: %s", err.detail);
    }
    f->in = start(f, 1, 0, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mu_ingest_stop(f->in);
    mu_store_close(f->st);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[400];
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A heap report, as the parser would hand it over. */
static struct mu_report rep(int node, const char *epoch, int64_t seq)
{
    struct mu_report r = {.seq = seq, .time_ms = mu_now_ms()};
    snprintf(r.node, sizeof r.node, "node-%d", node);
    snprintf(r.epoch, sizeof r.epoch, "%s", epoch);
    r.host = (struct mu_report_host){.cpus = 4, .mem_total_mib = 1024, .mem_available_mib = 512};
    r.pools = mu_xcalloc(1, sizeof *r.pools);
    snprintf(r.pools[0].name, sizeof r.pools[0].name, "default");
    r.npools = 1;
    return r;
}

static int submit(struct fx *f, int node, const char *epoch, int64_t seq, int64_t timeout_ms,
                  struct mu_ingest_ack *ack, struct mu_err *err)
{
    struct mu_report r = rep(node, epoch, seq);
    struct mu_ingest_src src = {.node_id = f->nodes[node]};
    return mu_ingest_submit_wait(f->in, &r, &src, timeout_ms, ack, err);
}

/* ---- outcomes ------------------------------------------------------------------------- */

static void test_acks(void **state)
{
    struct fx *f = *state;
    struct mu_ingest_ack ack;
    struct mu_err err = {0};

    assert_int_equal(submit(f, 0, EPOCH_A, 1, 5000, &ack, &err), MU_OK);
    assert_string_equal(ack.epoch, EPOCH_A);
    assert_int_equal(ack.acked_seq, 1);
    assert_false(ack.replay);
    assert_int_equal(submit(f, 0, EPOCH_A, 2, 5000, &ack, &err), MU_OK);
    assert_int_equal(submit(f, 0, EPOCH_A, 1, 5000, &ack, &err), MU_OK);
    assert_true(ack.replay);
    assert_int_equal(ack.acked_seq, 2);
    assert_int_equal(submit(f, 0, EPOCH_A, 9, 5000, &ack, &err), MU_ECONFLICT);
    assert_int_equal(ack.expected_seq, 3);
    assert_int_equal(ack.acked_seq, 2);
    assert_non_null(strstr(err.detail, "expected sequence 3"));

    struct mu_ingest_stats s;
    mu_ingest_stats(f->in, &s);
    assert_int_equal(s.stored, 2);
    assert_int_equal(s.replays, 1);
    assert_int_equal(s.refused, 1);
}

/* ---- batching and durability ---------------------------------------------------------------- */

struct agent {
    struct fx *f;
    int node;
    atomic_int failures;
};

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    long syncs_at_done;
};

static void on_done(void *arg)
{
    struct waiter *w = arg;
    long syncs = wal_syncs(); /* read before anyone is told: the ack leaves after this */
    pthread_mutex_lock(&w->mu);
    w->syncs_at_done = syncs;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* One agent: PER reports in order, each acknowledged before the next; every
 * acknowledgement must come after a WAL sync that happened after its submission. */
static void *agent_main(void *arg)
{
    struct agent *a = arg;
    for (int64_t seq = 1; seq <= PER; seq++) {
        struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
        struct mu_report r = rep(a->node, EPOCH_A, seq);
        struct mu_ingest_src src = {.node_id = a->f->nodes[a->node]};
        struct mu_err err = {0};
        long before = wal_syncs();
        struct mu_ingest_ticket *t = mu_ingest_submit(a->f->in, &r, &src, on_done, &w, &err);
        if (!t) {
            atomic_fetch_add(&a->failures, 1);
            continue;
        }
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.mu);
        pthread_mutex_unlock(&w.mu);
        struct mu_ingest_ack ack;
        int rc = mu_ingest_result(t, &ack, &err);
        if (rc != MU_OK || ack.acked_seq != seq || w.syncs_at_done <= before)
            atomic_fetch_add(&a->failures, 1);
    }
    return NULL;
}

static void test_batches_and_syncs(void **state)
{
    struct fx *f = *state;
    pthread_t th[NODES];
    struct agent ag[NODES];

    for (int i = 0; i < NODES; i++) {
        ag[i] = (struct agent){.f = f, .node = i};
        assert_int_equal(pthread_create(&th[i], NULL, agent_main, &ag[i]), 0);
    }
    for (int i = 0; i < NODES; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&ag[i].failures), 0);
    }
    struct mu_ingest_stats s;
    mu_ingest_stats(f->in, &s);
    assert_int_equal(s.stored, NODES * PER);
    /* Concurrent agents share transactions. */
    assert_true(s.batches < NODES * PER);
    assert_true(s.max_batch > 1);
    for (int i = 0; i < NODES; i++) {
        int64_t acked = 0;
        struct mu_err err = {0};
        assert_int_equal(mu_store_agent_acked(f->st, f->nodes[i], EPOCH_A, &acked, &err), 0);
        assert_int_equal(acked, PER);
    }
    print_message("%d reports in %llu batches (largest %llu)\n", NODES * PER,
                  (unsigned long long)s.batches, (unsigned long long)s.max_batch);
}

/* ---- a slow store ------------------------------------------------------------------------- */

/* Another connection holding the write lock stands for a store that does not answer. */
static sqlite3 *lock_db(struct fx *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void unlock_db(sqlite3 *db)
{
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_slow_store(void **state)
{
    struct fx *f = *state;
    struct mu_ingest_ack ack;
    struct mu_err err = {0};

    mu_ingest_stop(f->in);
    f->in = start(f, 0, 1, 300); /* queue of one, 300 ms in the queue at most */
    sqlite3 *db = lock_db(f);
    /* The waiter gives up (503 for an agent, which resends). */
    int64_t t0 = mu_mono_ms();
    assert_int_equal(submit(f, 1, EPOCH_A, 1, 200, &ack, &err), MU_EBUSY);
    assert_true(mu_mono_ms() - t0 < 2000);
    /* The writer is stuck on that report's batch: one more waits in the queue, and the
     * queue being full, the next is refused at once. */
    mu_err_clear(&err);
    struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct mu_report r2 = rep(1, EPOCH_A, 2);
    struct mu_ingest_src src = {.node_id = f->nodes[1]};
    struct mu_ingest_ticket *t2 = mu_ingest_submit(f->in, &r2, &src, on_done, &w, &err);
    assert_non_null(t2);
    struct mu_report r3 = rep(1, EPOCH_A, 3);
    assert_null(mu_ingest_submit(f->in, &r3, &src, NULL, NULL, &err));
    assert_int_equal(err.code, MU_EBUSY);
    usleep(500 * 1000);
    unlock_db(db);
    /* Report 2 waited longer than 300 ms: refused unstored, to be sent again. */
    mu_err_clear(&err);
    assert_int_equal(mu_ingest_result(t2, &ack, &err), MU_EBUSY);
    /* Report 1 was stored after all: resending it is a replay. */
    mu_err_clear(&err);
    assert_int_equal(submit(f, 1, EPOCH_A, 1, 5000, &ack, &err), MU_OK);
    assert_true(ack.replay);
    assert_int_equal(submit(f, 1, EPOCH_A, 2, 5000, &ack, &err), MU_OK);
    assert_false(ack.replay);
}

static void test_stop_answers_queue(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    struct waiter w[3];
    struct mu_ingest_ticket *t[3];

    mu_ingest_stop(f->in);
    f->in = start(f, 0, 0, 0);
    sqlite3 *db = lock_db(f);
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
        struct mu_report r = rep(2, EPOCH_A, i + 1);
        struct mu_ingest_src src = {.node_id = f->nodes[2]};
        t[i] = mu_ingest_submit(f->in, &r, &src, on_done, &w[i], &err);
        assert_non_null(t[i]);
    }
    usleep(100 * 1000);
    unlock_db(db);
    mu_ingest_stop(f->in);
    f->in = NULL;
    int ok = 0, busy = 0;
    for (int i = 0; i < 3; i++) {
        assert_true(w[i].done); /* every callback ran */
        struct mu_ingest_ack ack;
        mu_err_clear(&err);
        int rc = mu_ingest_result(t[i], &ack, &err);
        ok += rc == MU_OK;
        busy += rc == MU_EBUSY;
    }
    assert_int_equal(ok + busy, 3);
    assert_true(ok >= 1); /* the batch under way was finished */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches_and_syncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_answers_queue, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(sync_log);
    return rc;
}
