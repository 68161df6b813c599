/* Daily allocation peaks replayed from VM lifecycle events with chosen timestamps (written
 * through the store's own event writer, st_vm_event_tx, inside a transaction: the one
 * test-only path to an injected clock), against hand-computed peaks: a VM's creation,
 * resize and deletion, a VM born and gone within a day (its peak counts), start/stop events
 * that change nothing, events after "now" ignored, a window shorter than the history (the
 * opening total replayed from before it), and days before the first event left out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/history.h"
#include "store/store_int.h"
#include "store_test.h"

#define D    MU_DAY_MS
#define H    ((int64_t)3600000)
#define BASE ((int64_t)20000 * D) /* a UTC midnight */

struct ev {
    int64_t vm, ts;
    const char *kind;
    int64_t v, r, d;
};

static void record(struct mu_store *st, const struct ev *e, size_t n)
{
    struct mu_err err = {0};
    struct st_conn *c = st_tx_begin(st, &err);
    assert_non_null(c);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = st_vm_event_tx(c, e[i].vm, 1, 1, e[i].kind, e[i].v, e[i].r, e[i].d, e[i].ts, &err);
    assert_int_equal(st_tx_end(st, rc, &err), 0);
}

static void expect_day(const struct mu_alloc_day *d, int64_t day, int64_t v, int64_t r, int64_t g)
{
    assert_int_equal(d->day_ms, BASE + day * D);
    assert_int_equal(d->peak_vcpus, v);
    assert_int_equal(d->peak_ram_mib, r);
    assert_int_equal(d->peak_disk_gib, g);
}

static void test_history(void **state)
{
    (void)state;
    struct mu_test_db db;
    mu_test_db_init(&db, NULL);
    struct mu_alloc_day *days = NULL;
    size_t n = 99;
    struct mu_err err = {0};

    assert_int_equal(mu_store_alloc_history(db.st, BASE, 30, &days, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(days);
    assert_int_equal(mu_store_vm_events_max_id(db.st), 0);

    /* Recorded out of time order on purpose (ids do not follow time). */
    const struct ev evs[] = {
        {1, BASE + 10 * H, "created", 2, 1024, 10},
        {3, 5 * D + BASE + 15 * H, "deleted", 0, 0, 0},
        {3, 5 * D + BASE + 9 * H, "created", 8, 8192, 40},
        {2, 2 * D + BASE + 12 * H, "created", 4, 2048, 20},
        {2, 2 * D + BASE + 13 * H, "started", 4, 2048, 20},
        {2, 2 * D + BASE + 18 * H, "deleted", 0, 0, 0},
        {1, 3 * D + BASE + 1 * H, "stopped", 2, 1024, 10},
        {1, 4 * D + BASE + 8 * H, "resized", 4, 4096, 10},
        {1, 6 * D + BASE + 10 * H, "deleted", 0, 0, 0}, /* after now: ignored */
    };
    record(db.st, evs, sizeof evs / sizeof evs[0]);
    assert_int_equal(mu_store_vm_events_max_id(db.st), 9);
    int64_t now = BASE + 6 * D + 9 * H;

    /* 30-day window: starts at the first event's day, 7 days. */
    assert_int_equal(mu_store_alloc_history(db.st, now, 30, &days, &n, &err), 0);
    assert_int_equal(n, 7);
    expect_day(&days[0], 0, 2, 1024, 10);
    expect_day(&days[1], 1, 2, 1024, 10);
    expect_day(&days[2], 2, 6, 3072, 30);
    expect_day(&days[3], 3, 2, 1024, 10);
    expect_day(&days[4], 4, 4, 4096, 10);
    expect_day(&days[5], 5, 12, 12288, 50);
    expect_day(&days[6], 6, 4, 4096, 10);
    free(days);

    /* 3-day window: the opening total comes from the events before it. */
    assert_int_equal(mu_store_alloc_history(db.st, now, 3, &days, &n, &err), 0);
    assert_int_equal(n, 3);
    expect_day(&days[0], 4, 4, 4096, 10);
    expect_day(&days[1], 5, 12, 12288, 50);
    expect_day(&days[2], 6, 4, 4096, 10);
    free(days);

    /* Later, with no event for days: the total holds every day; the VM deleted on day 6
     * at 10:00 still counts that day. */
    assert_int_equal(mu_store_alloc_history(db.st, BASE + 9 * D, 5, &days, &n, &err), 0);
    assert_int_equal(n, 5);
    expect_day(&days[0], 5, 12, 12288, 50);
    expect_day(&days[1], 6, 4, 4096, 10);
    expect_day(&days[2], 7, 0, 0, 0);
    expect_day(&days[4], 9, 0, 0, 0);
    free(days);

    /* Before the first event: nothing. */
    assert_int_equal(mu_store_alloc_history(db.st, BASE - 1, 30, &days, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(mu_store_alloc_history(db.st, now, 0, &days, &n, &err), MU_EINVAL);
    mu_test_db_fini(&db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
