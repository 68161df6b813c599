/* Four threads insert and read at once: the writer mutex and BEGIN IMMEDIATE keep
 * SQLITE_BUSY from ever surfacing, each thread's reader sees committed data, and the audit
 * chain stays contiguous. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_test.h"

#define NTHREADS   4
#define PER_THREAD 150

struct worker {
    struct mu_store *st;
    int n;
    int64_t root;
    int failures;
    char first_error[600];
};

static void failed(struct worker *w, const char *what, const struct mu_err *err)
{
    if (w->failures++ == 0)
        snprintf(w->first_error, sizeof w->first_error, "%s: %s", what, err->detail);
}

static void *work(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        struct mu_err err = {0};
        char name[48];
        int64_t id = 0;
        struct mu_tenant got = {0};

        snprintf(name, sizeof name, "Thread %d tenant %d", w->n, i);
        struct mu_tenant t = mu_test_tenant(name, "other", w->root, NULL, NULL);
        struct mu_audit_rec rec = mu_test_rec("tenant.create", 0);
        if (mu_store_tenant_insert(w->st, &t, &rec, &id, &err) != 0) {
            failed(w, "insert", &err);
            continue;
        }
        /* Read your own write through this thread's read connection. */
        if (mu_store_tenant_get(w->st, id, &got, &err) != 0)
            failed(w, "get", &err);
        else if (strcmp(got.name, name) != 0)
            failed(w, "get returned another tenant", &err);
        mu_tenant_clear(&got);
        if (!mu_store_tenant_in_subtree(w->st, w->root, id))
            failed(w, "in_subtree", &err);
        if (i % 10 == 0) {
            struct mu_tenant_filter f = {.parent_id = -1, .subtree_of = w->root, .limit = 100};
            struct mu_tenant *list = NULL;
            size_t n = 0;

            if (mu_store_tenant_list(w->st, &f, &list, &n, &err) != 0)
                failed(w, "list", &err);
            mu_tenants_free(list, n);
            if (mu_store_audit_append(w->st, &rec, &err) != 0)
                failed(w, "audit append", &err);
        }
    }
    return NULL;
}

static void test_four_threads(void **state)
{
    struct mu_test_db db;
    struct worker w[NTHREADS];
    pthread_t th[NTHREADS];
    struct mu_err err = {0};
    struct mu_tenant root = mu_test_tenant("Root", "syndicat", 0, NULL, NULL);
    int64_t root_id = 0;

    mu_test_db_init(&db, NULL);
    assert_int_equal(mu_store_tenant_insert(db.st, &root, NULL, &root_id, &err), 0);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.st = db.st, .n = i, .root = root_id};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        if (w[i].failures)
            fail_msg("thread %d: %d failures, first: %s", i, w[i].failures, w[i].first_error);
    }

    struct mu_tenant_filter f = {.parent_id = root_id, .limit = 1000};
    struct mu_tenant *list = NULL;
    size_t n = 0;
    assert_int_equal(mu_store_tenant_list(db.st, &f, &list, &n, &err), 0);
    assert_int_equal(n, NTHREADS * PER_THREAD);
    mu_tenants_free(list, n);

    struct mu_audit_verdict v;
    assert_int_equal(mu_store_audit_verify(db.st, 0, NULL, &v, &err), 0);
    assert_true(v.ok);
    assert_int_equal(v.checked, NTHREADS * PER_THREAD + NTHREADS * PER_THREAD / 10);
    mu_test_db_fini(&db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_four_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
