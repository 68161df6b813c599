/* Users, tokens and settings in a real SQLite file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

static int64_t add_tenant(struct mu_store *st, const char *name, int64_t parent)
{
    struct mu_tenant t = mu_test_tenant(name, "other", parent, NULL, NULL);
    struct mu_err err = {0};
    int64_t id = 0;

    assert_int_equal(mu_store_tenant_insert(st, &t, NULL, &id, &err), 0);
    return id;
}

static int64_t add_user(struct mu_store *st, const char *name, const char *role, int64_t tenant)
{
    struct mu_user u = {.name = (char *)name, .role = (char *)role, .tenant_id = tenant};
    struct mu_audit_rec rec = mu_test_rec("user.create", tenant);
    struct mu_err err = {0};
    int64_t id = 0;

    if (mu_store_user_insert(st, &u, &rec, &id, &err) != 0)
        fail_msg("%s", err.detail);
    return id;
}

static void test_users(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_err err = {0};
    struct mu_user got = {0}, *list = NULL;
    size_t n = 0;
    int64_t root = add_tenant(st, "Root", 0);
    int64_t a = add_tenant(st, "A", root);
    int64_t b = add_tenant(st, "B", root);
    int64_t a1 = add_tenant(st, "A1", a);

    assert_int_equal(mu_store_user_count(st), 0);
    int64_t op = add_user(st, "admin", "operator", 0);
    int64_t ua = add_user(st, "alice", "tenant-admin", a);
    add_user(st, "bob", "tenant-reader", b);
    add_user(st, "carol", "tenant-reader", a1);
    assert_int_equal(mu_store_user_count(st), 4);

    struct mu_user dup = {.name = (char *)"alice", .role = (char *)"observer"};
    assert_int_equal(mu_store_user_insert(st, &dup, NULL, NULL, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "user name alice is already taken"));
    mu_err_clear(&err);
    dup.name = (char *)"dave";
    dup.tenant_id = 9999;
    assert_int_equal(mu_store_user_insert(st, &dup, NULL, NULL, &err), MU_EINVAL);
    assert_string_equal(err.field, "tenant_id");
    mu_err_clear(&err);

    assert_int_equal(mu_store_user_get(st, op, &got, &err), 0);
    assert_string_equal(got.name, "admin");
    assert_int_equal(got.tenant_id, 0);
    assert_false(got.disabled);
    mu_user_clear(&got);
    assert_int_equal(mu_store_user_get_by_name(st, "alice", &got, &err), 0);
    assert_int_equal(got.id, ua);
    assert_int_equal(got.tenant_id, a);
    assert_null(got.password_hash);
    mu_user_clear(&got);
    assert_int_equal(mu_store_user_get_by_name(st, "nobody", &got, &err), MU_ENOTFOUND);
    mu_err_clear(&err);

    /* Scope: A's subtree holds alice and carol. */
    struct mu_user_filter f = {.scope_id = a, .limit = 100};
    assert_int_equal(mu_store_user_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "alice");
    assert_string_equal(list[1].name, "carol");
    mu_users_free(list, n);
    f = (struct mu_user_filter){.limit = 2};
    assert_int_equal(mu_store_user_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    f.after_id = list[1].id;
    mu_users_free(list, n);
    assert_int_equal(mu_store_user_list(st, &f, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[1].name, "carol");
    mu_users_free(list, n);

    struct mu_user upd = {.id = ua,
                          .role = (char *)"tenant-reader",
                          .tenant_id = b,
                          .email = (char *)"alice@example.org",
                          .password_hash = (char *)"$argon2id$v=19$m=65536,t=3,p=1$x$y",
                          .disabled = true};
    assert_int_equal(mu_store_user_update(st, &upd, NULL, &err), 0);
    assert_int_equal(mu_store_user_get(st, ua, &got, &err), 0);
    assert_string_equal(got.role, "tenant-reader");
    assert_int_equal(got.tenant_id, b);
    assert_string_equal(got.email, "alice@example.org");
    assert_true(got.disabled);
    assert_non_null(got.password_hash);
    mu_user_clear(&got);
    upd.id = 777;
    assert_int_equal(mu_store_user_update(st, &upd, NULL, &err), MU_ENOTFOUND);
    mu_err_clear(&err);

    assert_int_equal(mu_store_user_delete(st, ua, NULL, &err), 0);
    assert_int_equal(mu_store_user_get(st, ua, &got, &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_user_delete(st, ua, NULL, &err), MU_ENOTFOUND);
    assert_int_equal(mu_store_user_count(st), 3);
}

static void hash_of(int i, char out[65])
{
    unsigned char raw[32] = {0};

    raw[0] = (unsigned char)i;
    raw[31] = 0x5a;
    mu_hex_encode(raw, sizeof raw, out);
}

static void test_tokens(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_err err = {0};
    struct mu_token t = {0}, got = {0}, *list = NULL;
    int64_t u1 = add_user(st, "u1", "operator", 0);
    int64_t u2 = add_user(st, "u2", "observer", 0);
    int64_t ids[5];
    size_t n = 0;

    for (int i = 0; i < 5; i++) {
        struct mu_audit_rec rec = mu_test_rec("token.create", 0);

        t = (struct mu_token){.user_id = i < 3 ? u1 : u2, .name = (char *)"ci"};
        hash_of(i, t.hash);
        t.expires_ms = i == 4 ? 1234 : 0;
        assert_int_equal(mu_store_token_insert(st, &t, &rec, &ids[i], &err), 0);
    }
    hash_of(0, t.hash);
    assert_int_equal(mu_store_token_insert(st, &t, NULL, NULL, &err), MU_ECONFLICT);
    mu_err_clear(&err);
    hash_of(9, t.hash);
    t.user_id = 999;
    assert_int_equal(mu_store_token_insert(st, &t, NULL, NULL, &err), MU_EINVAL);
    mu_err_clear(&err);

    char h[65];
    hash_of(4, h);
    assert_int_equal(mu_store_token_get_by_hash(st, h, &got, &err), 0);
    assert_int_equal(got.id, ids[4]);
    assert_int_equal(got.user_id, u2);
    assert_int_equal(got.expires_ms, 1234);
    assert_int_equal(got.revoked_ms, 0);
    assert_string_equal(got.hash, h);
    assert_string_equal(got.name, "ci");
    mu_token_clear(&got);
    hash_of(8, h);
    assert_int_equal(mu_store_token_get_by_hash(st, h, &got, &err), MU_ENOTFOUND);
    assert_null(strstr(err.detail, h));
    mu_err_clear(&err);

    assert_int_equal(mu_store_token_list(st, u1, 0, 100, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    mu_tokens_free(list, n);
    assert_int_equal(mu_store_token_list(st, 0, ids[1], 2, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, ids[2]);
    mu_tokens_free(list, n);

    assert_int_equal(mu_store_token_revoke(st, ids[1], NULL, &err), 0);
    assert_int_equal(mu_store_token_get(st, ids[1], &got, &err), 0);
    int64_t revoked = got.revoked_ms;
    assert_true(revoked > 0);
    mu_token_clear(&got);
    assert_int_equal(mu_store_token_revoke(st, ids[1], NULL, &err), 0);
    assert_int_equal(mu_store_token_get(st, ids[1], &got, &err), 0);
    assert_int_equal(got.revoked_ms, revoked);
    mu_token_clear(&got);
    assert_int_equal(mu_store_token_revoke(st, 4242, NULL, &err), MU_ENOTFOUND);
    mu_err_clear(&err);

    int64_t tids[3] = {ids[0], ids[2], 4242};
    int64_t ms[3] = {1000, 2000, 3000};
    assert_int_equal(mu_store_token_touch_many(st, tids, ms, 3, &err), 0);
    assert_int_equal(mu_store_token_get(st, ids[2], &got, &err), 0);
    assert_int_equal(got.last_used_ms, 2000);
    mu_token_clear(&got);
    ms[1] = 1500; /* an older time never goes backwards */
    assert_int_equal(mu_store_token_touch_many(st, tids, ms, 3, &err), 0);
    assert_int_equal(mu_store_token_get(st, ids[2], &got, &err), 0);
    assert_int_equal(got.last_used_ms, 2000);
    mu_token_clear(&got);

    /* Deleting the user takes its tokens. */
    assert_int_equal(mu_store_user_delete(st, u1, NULL, &err), 0);
    hash_of(0, h);
    assert_int_equal(mu_store_token_get_by_hash(st, h, &got, &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_token_list(st, 0, 0, 100, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    mu_tokens_free(list, n);
}

static void test_settings(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_err err = {0};
    char *v = NULL;

    assert_int_equal(mu_store_setting_get(st, "bootstrap.done", &v, &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_setting_set(st, "bootstrap.done", "1", &err), 0);
    assert_int_equal(mu_store_setting_set(st, "bootstrap.done", "yes", &err), 0);
    assert_int_equal(mu_store_setting_get(st, "bootstrap.done", &v, &err), 0);
    assert_string_equal(v, "yes");
    free(v);

    /* Survives a reopen. */
    mu_store_close(db->st);
    db->st = mu_test_open_path(db->path, NULL);
    assert_int_equal(mu_store_setting_get(db->st, "bootstrap.done", &v, &err), 0);
    assert_string_equal(v, "yes");
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
