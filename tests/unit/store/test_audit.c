/* The audit chain: entries written with their changes, listing and subtree filters, and
 * verification against tampering done behind the store's back (edited field, deleted
 * middle entry, truncated tail). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_test.h"

static int setup(void **state)
{
    struct mu_test_db *db = mu_xcalloc(1, sizeof *db);

    mu_test_db_init(db, NULL);
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    struct mu_test_db *db = *state;

    mu_test_db_fini(db);
    free(db);
    return 0;
}

/* Runs sql on the file through a connection of its own, as an intruder would. */
static void tamper(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_close(db);
}

/* 20 entries: 10 tenant creations, 10 refusals. Returns the id of the first tenant. */
static int64_t fill(struct mu_store *st)
{
    struct mu_err err = {0};
    int64_t root = 0, id = 0;

    /* A chain: T0 > T1 > ... > T9. */
    for (int i = 0; i < 10; i++) {
        char name[16];

        snprintf(name, sizeof name, "T%d", i);
        struct mu_tenant t = mu_test_tenant(name, "other", id, NULL, NULL);
        struct mu_audit_rec rec = mu_test_rec("tenant.create", 0);
        assert_int_equal(mu_store_tenant_insert(st, &t, &rec, &id, &err), 0);
        if (i == 0)
            root = id;
    }
    for (int i = 0; i < 10; i++) {
        struct mu_audit_rec rec = mu_test_rec("vm.delete", root);

        rec.actor = i % 2 ? "mallory" : "alice";
        rec.outcome = "denied";
        rec.detail = i == 3 ? NULL : "not in your scope";
        rec.target = "vm/7";
        assert_int_equal(mu_store_audit_append(st, &rec, &err), 0);
    }
    return root;
}

static struct mu_audit_verdict verify(struct mu_store *st, int64_t head_id, const char *head_mac)
{
    struct mu_audit_verdict v;
    struct mu_err err = {0};

    memset(&v, 0xee, sizeof v);
    assert_int_equal(mu_store_audit_verify(st, head_id, head_mac, &v, &err), 0);
    return v;
}

static void test_entries_and_list(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_audit_entry *e = NULL;
    struct mu_err err = {0};
    size_t n = 0;
    int64_t root = fill(st), head_id;
    char head_mac[65];

    struct mu_audit_filter f = {.limit = 1000};
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 20);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(e[i].id, (int64_t)i + 1);
    /* A create names the new tenant even though the caller could not know its id. */
    assert_int_equal(e[1].tenant_id, root + 1);
    assert_string_equal(e[1].target, "tenant/2");
    assert_string_equal(e[1].outcome, "ok");
    assert_string_equal(e[1].request_id, "req-1");
    assert_string_equal(e[10].outcome, "denied");
    assert_null(e[13].detail);
    assert_int_equal(strlen(e[19].mac), 64);
    mu_store_audit_head(st, &head_id, head_mac);
    assert_int_equal(head_id, 20);
    assert_string_equal(head_mac, e[19].mac);
    mu_audit_entries_free(e, n);

    f = (struct mu_audit_filter){.actor = "mallory", .limit = 3};
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(e[0].id, 12);
    f.after_id = e[2].id;
    mu_audit_entries_free(e, n);
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 2);
    mu_audit_entries_free(e, n);

    /* Subtree: tenant 5's subtree is 5..10 (a chain), and the refusals concern root. */
    f = (struct mu_audit_filter){.scope_tenant_id = 5, .limit = 1000};
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 6);
    mu_audit_entries_free(e, n);
    f = (struct mu_audit_filter){.tenant_id = root, .limit = 1000};
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 20);
    mu_audit_entries_free(e, n);

    /* A move takes the history along: tenant 8's subtree becomes a root. */
    assert_int_equal(mu_store_tenant_move(st, 8, 0, NULL, &err), 0);
    f = (struct mu_audit_filter){.scope_tenant_id = 5, .limit = 1000};
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 3);
    mu_audit_entries_free(e, n);
    f.scope_tenant_id = 8;
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 3);
    mu_audit_entries_free(e, n);

    f = (struct mu_audit_filter){.since_ms = 1, .until_ms = mu_now_ms() + 1000, .limit = 1000};
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 20);
    mu_audit_entries_free(e, n);
    f.since_ms = mu_now_ms() + 1000;
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 0);
    mu_audit_entries_free(e, n);
    f.limit = 0;
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), MU_EINVAL);
}

static void test_rollback_writes_no_entry(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_err err = {0};
    struct mu_tenant t = mu_test_tenant("A", "commune", 0, "210100012", NULL);
    struct mu_audit_rec rec = mu_test_rec("tenant.create", 0);
    int64_t id;
    char mac[65];

    assert_int_equal(mu_store_tenant_insert(st, &t, &rec, NULL, &err), 0);
    assert_int_equal(mu_store_tenant_insert(st, &t, &rec, NULL, &err), MU_ECONFLICT);
    mu_store_audit_head(st, &id, mac);
    assert_int_equal(id, 1);
    /* The chain goes on from the committed head, not from the rolled-back entry. */
    assert_int_equal(mu_store_audit_append(st, &rec, &err), 0);
    struct mu_audit_verdict v = verify(st, 0, NULL);
    assert_true(v.ok);
    assert_int_equal(v.checked, 2);
}

static void test_verify_ok_and_reopen(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_audit_verdict v = verify(db->st, 0, NULL);
    int64_t id;
    char mac[65];

    assert_true(v.ok);
    assert_int_equal(v.checked, 0);
    assert_int_equal(v.head_id, 0);
    fill(db->st);
    v = verify(db->st, 0, NULL);
    assert_true(v.ok);
    assert_int_equal(v.checked, 20);
    assert_int_equal(v.first_bad_id, 0);
    assert_int_equal(v.head_id, 20);
    mu_store_audit_head(db->st, &id, mac);
    assert_string_equal(v.head_mac, mac);

    /* The head is read back at open and the chain continues across restarts. */
    mu_store_close(db->st);
    db->st = mu_test_open_path(db->path, NULL);
    struct mu_audit_rec rec = mu_test_rec("session.login", 0);
    struct mu_err err = {0};
    assert_int_equal(mu_store_audit_append(db->st, &rec, &err), 0);
    v = verify(db->st, 20, mac);
    assert_true(v.ok);
    assert_int_equal(v.checked, 21);

    /* Another key cannot vouch for the chain. */
    mu_store_close(db->st);
    struct mu_store_opts opts = {.path = db->path, .audit_key = "another key", .audit_key_len = 11};
    db->st = mu_store_open(&opts, &err);
    assert_non_null(db->st);
    v = verify(db->st, 0, NULL);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_id, 1);
}

static void test_tamper_edit(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_audit_verdict v;

    fill(db->st);
    tamper(db->path, "UPDATE audit SET actor = 'alice' WHERE id = 14");
    v = verify(db->st, 0, NULL);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_id, 14);
    assert_int_equal(v.checked, 14);
    assert_non_null(strstr(v.reason, "entry 14: mac does not match"));

    /* NULL vs empty detail is a change too. */
    tamper(db->path, "UPDATE audit SET actor = 'mallory' WHERE id = 14");
    assert_true(verify(db->st, 0, NULL).ok);
    tamper(db->path, "UPDATE audit SET detail = '' WHERE id = 14");
    v = verify(db->st, 0, NULL);
    assert_int_equal(v.first_bad_id, 14);
}

static void test_tamper_delete_middle(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_audit_verdict v;

    fill(db->st);
    tamper(db->path, "DELETE FROM audit WHERE id = 7");
    v = verify(db->st, 0, NULL);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_id, 7);
    assert_string_equal(v.reason, "entry 7 is missing: the trail jumps from entry 6 to entry 8");

    /* Renumbering to hide the gap breaks the mac instead. */
    tamper(db->path, "UPDATE audit SET id = 7 WHERE id = 8");
    v = verify(db->st, 0, NULL);
    assert_int_equal(v.first_bad_id, 7);
    assert_non_null(strstr(v.reason, "mac does not match"));
}

static void test_tamper_delete_head(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_audit_verdict v;

    fill(db->st);
    tamper(db->path, "DELETE FROM audit WHERE id = 1");
    v = verify(db->st, 0, NULL);
    assert_int_equal(v.first_bad_id, 1);
    assert_string_equal(v.reason, "entry 1 is missing: the trail starts at entry 2");
}

static void test_tamper_truncate_tail(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_audit_verdict v;
    struct mu_err err = {0};
    char mac[65];
    int64_t id;

    fill(db->st);
    mu_store_audit_head(db->st, &id, mac);
    assert_int_equal(id, 20);

    /* While running, the store remembers its own head. */
    tamper(db->path, "DELETE FROM audit WHERE id = 20");
    v = verify(db->st, 0, NULL);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_id, 20);
    assert_non_null(strstr(v.reason, "truncated after entry 19"));

    /* After a restart only the head written to the log tells. */
    mu_store_close(db->st);
    for (int i = 19; i > 12; i--) {
        char sql[64];

        snprintf(sql, sizeof sql, "DELETE FROM audit WHERE id = %d", i);
        tamper(db->path, sql);
    }
    db->st = mu_test_open_path(db->path, NULL);
    assert_true(verify(db->st, 0, NULL).ok);
    v = verify(db->st, 20, mac);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_id, 20);
    assert_string_equal(v.reason, "entry 20 (the last head written to the log) is missing: the "
                                  "trail was truncated after entry 12");
    assert_int_equal(v.head_id, 12);

    /* Truncated and then regrown to the same length: the head mac differs. */
    for (int i = 0; i < 8; i++) {
        struct mu_audit_rec rec = mu_test_rec("cover.up", 0);
        assert_int_equal(mu_store_audit_append(db->st, &rec, &err), 0);
    }
    v = verify(db->st, 20, mac);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_id, 20);
    assert_non_null(strstr(v.reason, "does not carry the mac"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_entries_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_writes_no_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_ok_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_edit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_truncate_tail, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
