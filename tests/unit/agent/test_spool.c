/* The agent's on-disk spool: order, ack trimming, the bound with its gap record, restarts
 * (epoch and sequence kept, also without state.json), corrupt, missing and foreign
 * records, acks behind and beyond the spool, an interrupted fold, leftovers of a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mutualis/report.h"
#include "mutualis/util.h"
#include "report/spool.h"

struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *f = mu_xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu-spool-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *p = mu_xasprintf("%s/%s", f->dir, e->d_name);
        unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct mu_spool *open_spool(const struct fixture *f, int64_t max)
{
    struct mu_err err = {0};
    struct mu_spool *s = mu_spool_open(f->dir, "node-1", max, &err);
    if (!s)
        fail_msg("open: %s", err.detail);
    return s;
}

/* Appends one small report; returns its sequence number. */
static int64_t append(struct mu_spool *s)
{
    struct mu_report r = {0};
    r.time_ms = mu_now_ms();
    r.host.cpus = 2;
    r.host.mem_total_mib = 100;
    struct mu_err err = {0};
    if (mu_spool_append(s, &r, &err) != 0)
        fail_msg("append: %s", err.detail);
    assert_string_equal(r.epoch, mu_spool_epoch(s));
    assert_string_equal(r.node, "node-1");
    return r.seq;
}

/* The head record, parsed. */
static int64_t peek(struct mu_spool *s, struct mu_report *ret)
{
    char *text = NULL;
    size_t len = 0;
    int64_t seq = 0;
    struct mu_err err = {0};
    int rc = mu_spool_peek(s, &text, &len, &seq, &err);
    if (rc < 0)
        fail_msg("peek: %s", err.detail);
    if (rc == 1)
        return 0;
    struct mu_report r = {0};
    assert_int_equal(mu_report_parse(text, len, &r, &err), 0);
    assert_int_equal(r.seq, seq);
    assert_string_equal(r.epoch, mu_spool_epoch(s));
    free(text);
    if (ret)
        *ret = r;
    else
        mu_report_clear(&r);
    return seq;
}

static void ack(struct mu_spool *s, int64_t seq)
{
    struct mu_err err = {0};
    if (mu_spool_ack(s, mu_spool_epoch(s), seq, &err) != 0)
        fail_msg("ack %" PRId64 ": %s", seq, err.detail);
}

static int count_files(const struct fixture *f, const char *prefix)
{
    int n = 0;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

static char *record_path(const struct fixture *f, int64_t seq)
{
    return mu_xasprintf("%s/r-%020" PRId64 ".json", f->dir, seq);
}

static void write_text(const char *path, const char *text)
{
    assert_int_equal(mu_write_file_atomic(path, text, strlen(text), 0600), 0);
}

static void test_order_and_ack(void **state)
{
    struct fixture *f = *state;
    struct mu_spool *s = open_spool(f, 10);
    assert_int_equal(strlen(mu_spool_epoch(s)), MU_EPOCH_HEX_LEN);
    assert_true(mu_report_epoch_valid(mu_spool_epoch(s)));
    assert_int_equal(mu_spool_count(s), 0);
    assert_int_equal(peek(s, NULL), 0); /* empty */
    for (int64_t i = 1; i <= 5; i++)
        assert_int_equal(append(s), i);
    assert_int_equal(count_files(f, "r-"), 5);
    struct mu_report r;
    assert_int_equal(peek(s, &r), 1);
    assert_false(r.gap);
    assert_string_equal(r.node, "node-1");
    mu_report_clear(&r);
    /* Peeking does not consume. */
    assert_int_equal(peek(s, NULL), 1);
    ack(s, 1);
    assert_int_equal(peek(s, NULL), 2);
    ack(s, 3);
    assert_int_equal(peek(s, NULL), 4);
    assert_int_equal(mu_spool_count(s), 2);
    assert_int_equal(count_files(f, "r-"), 2);
    /* The same ack again (a replay answered) changes nothing. */
    ack(s, 3);
    assert_int_equal(peek(s, NULL), 4);
    /* An ack for another epoch is refused and changes nothing. */
    struct mu_err err = {0};
    assert_int_equal(mu_spool_ack(s, "00000000000000000000000000000000", 5, &err), MU_ECONFLICT);
    assert_int_equal(mu_spool_count(s), 2);
    ack(s, 5);
    assert_int_equal(mu_spool_count(s), 0);
    assert_int_equal(count_files(f, "r-"), 0);
    assert_int_equal(append(s), 6);
    struct mu_spool_stats st;
    mu_spool_get_stats(s, &st);
    assert_int_equal(st.dropped + st.corrupt + st.rewinds, 0);
    mu_spool_free(s);
}

/* Controller rule (report.h): a report is in order at acked + 1, a gap when
 * gap_from <= acked + 1 <= seq. Delivers the whole spool like the controller would and
 * checks that every sequence number is accounted for. */
static int64_t deliver_all(struct mu_spool *s, int64_t acked, int64_t *covered_to)
{
    struct mu_report r;
    while (peek(s, &r) != 0) {
        if (r.gap) {
            assert_true(r.gap_from <= acked + 1 && acked + 1 <= r.seq);
            assert_int_equal(r.gap_to, r.seq - 1);
        } else {
            assert_int_equal(r.seq, acked + 1);
        }
        acked = r.seq;
        mu_report_clear(&r);
        ack(s, acked);
    }
    *covered_to = acked;
    return acked;
}

static void test_bounded_with_gap(void **state)
{
    struct fixture *f = *state;
    struct mu_spool *s = open_spool(f, 4);
    for (int i = 0; i < 10; i++)
        append(s);
    /* Four records: a gap standing for 1..6 as seq 7, then reports 8, 9, 10. */
    assert_int_equal(mu_spool_count(s), 4);
    assert_int_equal(count_files(f, "r-"), 4);
    struct mu_report r;
    assert_int_equal(peek(s, &r), 7);
    assert_true(r.gap);
    assert_int_equal(r.gap_from, 1);
    assert_int_equal(r.gap_to, 6);
    assert_null(r.domains);
    mu_report_clear(&r);
    struct mu_spool_stats st;
    mu_spool_get_stats(s, &st);
    assert_int_equal(st.dropped, 7); /* reports 1..7: seq 7 is now the gap record */
    assert_int_equal(st.corrupt, 0);
    int64_t covered = 0;
    assert_int_equal(deliver_all(s, 0, &covered), 10);
    mu_spool_free(s);
}

/* The controller stored 1..3, then the spool filled up: the gap's range starts below the
 * ack, which is in order too. */
static void test_gap_over_stored(void **state)
{
    struct fixture *f = *state;
    struct mu_spool *s = open_spool(f, 5);
    for (int i = 0; i < 9; i++)
        append(s);
    struct mu_report r;
    assert_int_equal(peek(s, &r), 5);
    assert_true(r.gap && r.gap_from == 1 && r.gap_to == 4);
    mu_report_clear(&r);
    int64_t covered = 0;
    deliver_all(s, 3, &covered);
    assert_int_equal(covered, 9);
    mu_spool_free(s);
}

static void test_restart(void **state)
{
    struct fixture *f = *state;
    struct mu_spool *s = open_spool(f, 10);
    char epoch[MU_EPOCH_HEX_LEN + 1];
    snprintf(epoch, sizeof epoch, "%s", mu_spool_epoch(s));
    for (int i = 0; i < 4; i++)
        append(s);
    ack(s, 2);
    mu_spool_free(s);

    s = open_spool(f, 10);
    assert_string_equal(mu_spool_epoch(s), epoch);
    assert_int_equal(mu_spool_head(s), 3);
    assert_int_equal(mu_spool_tail(s), 4);
    assert_int_equal(peek(s, NULL), 3);
    assert_int_equal(append(s), 5);
    ack(s, 5);
    mu_spool_free(s);

    /* Everything acknowledged: state.json alone carries the sequence on. */
    s = open_spool(f, 10);
    assert_string_equal(mu_spool_epoch(s), epoch);
    assert_int_equal(mu_spool_count(s), 0);
    assert_int_equal(append(s), 6);
    append(s);
    mu_spool_free(s);

    /* state.json lost, records left: they carry the epoch and the sequence. */
    char *state_path = mu_xasprintf("%s/state.json", f->dir);
    unlink(state_path);
    s = open_spool(f, 10);
    assert_string_equal(mu_spool_epoch(s), epoch);
    assert_int_equal(mu_spool_next_seq(s), 8);
    assert_int_equal(peek(s, NULL), 6);
    mu_spool_free(s);

    /* state.json corrupt and nothing spooled: a new epoch (a reinstalled agent). */
    s = open_spool(f, 10);
    ack(s, 7);
    mu_spool_free(s);
    write_text(state_path, "{\"epoch\": \"nope\"");
    s = open_spool(f, 10);
    assert_string_not_equal(mu_spool_epoch(s), epoch);
    assert_int_equal(append(s), 1);
    mu_spool_free(s);
    free(state_path);
}

static void test_fresh_dir_new_epoch(void **state)
{
    struct fixture *f = *state;
    char *sub = mu_xasprintf("%s/a/b", f->dir);
    struct mu_err err = {0};
    struct mu_spool *s1 = open_spool(f, 10);
    struct mu_spool *s2 = mu_spool_open(sub, "node-1", 10, &err);
    assert_non_null(s2);
    assert_string_not_equal(mu_spool_epoch(s1), mu_spool_epoch(s2));
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    mu_spool_free(s2);
    mu_spool_free(s1);
    static const char *const names[] = {"state.json", "lock"};
    for (size_t i = 0; i < MU_ARRAY_LEN(names); i++) {
        char *p = mu_xasprintf("%s/%s", sub, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(sub);
    char *p;
    p = mu_xasprintf("%s/a", f->dir);
    rmdir(p);
    free(p);
    free(sub);
    /* Bounds. */
    assert_null(mu_spool_open(f->dir, "node-1", 3, &err));
    /* One agent per spool. */
    struct mu_spool *a = open_spool(f, 10);
    mu_err_clear(&err);
    assert_null(mu_spool_open(f->dir, "node-1", 10, &err));
    assert_int_equal(err.code, MU_EBUSY);
    assert_non_null(strstr(err.detail, "in use by another agent"));
    mu_spool_free(a);
    a = open_spool(f, 10); /* free released it */
    mu_spool_free(a);
}

static void test_corrupt_records(void **state)
{
    struct fixture *f = *state;
    struct mu_spool *s = open_spool(f, 10);
    for (int i = 0; i < 5; i++)
        append(s);
    /* Head garbage: it and the next become one gap (seq 2 standing for 1). */
    char *p1 = record_path(f, 1);
    write_text(p1, "{\"garbage");
    struct mu_report r;
    assert_int_equal(peek(s, &r), 2);
    assert_true(r.gap && r.gap_from == 1 && r.gap_to == 1);
    mu_report_clear(&r);
    ack(s, 2);
    /* A missing record in the middle, and one from another epoch. */
    char *p3 = record_path(f, 3);
    unlink(p3);
    assert_int_equal(peek(s, &r), 4);
    assert_true(r.gap && r.gap_from == 3);
    mu_report_clear(&r);
    ack(s, 4);
    char *p5 = record_path(f, 5);
    size_t len = 0;
    char *text = mu_read_file(p5, 1 << 20, &len);
    char *at = strstr(text, mu_spool_epoch(s));
    assert_non_null(at);
    at[0] = at[0] == 'a' ? 'b' : 'a';
    write_text(p5, text);
    free(text);
    /* The tail itself: the gap takes a new number. */
    assert_int_equal(peek(s, &r), 6);
    assert_true(r.gap && r.gap_from == 5 && r.gap_to == 5);
    mu_report_clear(&r);
    assert_int_equal(mu_spool_next_seq(s), 7);
    struct mu_spool_stats st;
    mu_spool_get_stats(s, &st);
    assert_int_equal(st.corrupt, 3);
    int64_t covered = 0;
    deliver_all(s, 4, &covered);
    assert_int_equal(covered, 6);
    mu_spool_free(s);
    /* The new number survives a restart. */
    s = open_spool(f, 10);
    assert_int_equal(append(s), 7);
    mu_spool_free(s);
    free(p1);
    free(p3);
    free(p5);
}

static void test_ack_behind_and_beyond(void **state)
{
    struct fixture *f = *state;
    struct mu_spool *s = open_spool(f, 10);
    for (int i = 0; i < 3; i++)
        append(s);
    ack(s, 3);
    /* The controller lost 2..3: an empty spool answers with a new gap record. */
    ack(s, 1);
    struct mu_report r;
    assert_int_equal(peek(s, &r), 4);
    assert_true(r.gap && r.gap_from == 2 && r.gap_to == 3);
    mu_report_clear(&r);
    ack(s, 4);
    /* With records waiting, the head becomes the gap. */
    append(s); /* 5 */
    append(s); /* 6 */
    ack(s, 2);
    assert_int_equal(peek(s, &r), 5);
    assert_true(r.gap && r.gap_from == 3 && r.gap_to == 4);
    mu_report_clear(&r);
    int64_t covered = 0;
    deliver_all(s, 2, &covered);
    assert_int_equal(covered, 6);
    struct mu_spool_stats st;
    mu_spool_get_stats(s, &st);
    assert_int_equal(st.rewinds, 2);
    /* An ack beyond anything numbered here moves the sequence past it, for good. */
    ack(s, 100);
    assert_int_equal(mu_spool_next_seq(s), 101);
    mu_spool_free(s);
    s = open_spool(f, 10);
    assert_int_equal(append(s), 101);
    mu_spool_free(s);
}

static void test_interrupted_fold_and_leftovers(void **state)
{
    struct fixture *f = *state;
    struct mu_spool *s = open_spool(f, 10);
    for (int i = 0; i < 3; i++)
        append(s);
    char epoch[MU_EPOCH_HEX_LEN + 1];
    snprintf(epoch, sizeof epoch, "%s", mu_spool_epoch(s));
    mu_spool_free(s);
    /* A crash after a fold wrote its gap (seq 2 for 1) but before record 1 went. */
    struct mu_report g = {0};
    snprintf(g.node, sizeof g.node, "node-1");
    snprintf(g.epoch, sizeof g.epoch, "%s", epoch);
    g.seq = 2;
    g.time_ms = mu_now_ms();
    g.gap = true;
    g.gap_from = 1;
    g.gap_to = 1;
    char *text = mu_report_print(&g);
    char *p2 = record_path(f, 2);
    write_text(p2, text);
    free(text);
    /* And temporary files of interrupted writes. */
    char *tmp = mu_xasprintf("%s/r-00000000000000000004.json.tmp.123", f->dir);
    write_text(tmp, "{");
    s = open_spool(f, 10);
    assert_int_equal(mu_spool_head(s), 2);
    assert_int_equal(count_files(f, "r-"), 2);
    struct stat st;
    assert_int_equal(stat(tmp, &st), -1);
    struct mu_report r;
    assert_int_equal(peek(s, &r), 2);
    assert_true(r.gap);
    mu_report_clear(&r);
    assert_int_equal(append(s), 4);
    mu_spool_free(s);
    free(tmp);
    free(p2);
}

static void test_drop_head_and_refusal(void **state)
{
    struct fixture *f = *state;
    struct mu_spool *s = open_spool(f, 10);
    append(s);
    append(s);
    struct mu_err err = {0};
    /* The controller refused record 1 for good: a gap stands for it. */
    assert_int_equal(mu_spool_drop_head(s, &err), 0);
    struct mu_report r;
    assert_int_equal(peek(s, &r), 2);
    assert_true(r.gap && r.gap_from == 1);
    mu_report_clear(&r);
    /* A gap record is never dropped (it would come back as another gap, without end). */
    assert_int_equal(mu_spool_drop_head(s, &err), MU_ECONFLICT);
    assert_int_equal(peek(s, NULL), 2);
    assert_int_equal(mu_spool_next_seq(s), 3);
    mu_err_clear(&err);
    /* A report the wire format would refuse is not spooled and takes no number. */
    struct mu_report bad = {0};
    bad.time_ms = mu_now_ms();
    bad.host.cpus = 2;
    bad.host.cpu_percent = 150;
    assert_int_equal(mu_spool_append(s, &bad, &err), MU_EINTERNAL);
    assert_non_null(strstr(err.detail, "cpu_percent"));
    assert_int_equal(mu_spool_next_seq(s), 3);
    assert_int_equal(append(s), 3);
    mu_spool_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_and_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_with_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap_over_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_dir_new_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_behind_and_beyond, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_fold_and_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_head_and_refusal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
