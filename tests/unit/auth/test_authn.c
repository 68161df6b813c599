/* Bearer authentication against a real store in a temporary directory: valid, expired,
 * revoked, unknown and malformed tokens, disabled users, and the batched last-use flush. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"

struct fixture {
    char dir[64];
    char path[128];
    struct mu_store *st;
    struct mu_authn *authn;
    int64_t alice; /* operator */
    int64_t carol; /* tenant-reader of tenant */
    int64_t tenant;
};

static int64_t add_user(struct mu_store *st, const char *name, const char *role, int64_t tenant_id,
                        bool disabled)
{
    struct mu_user u = {0};
    u.name = (char *)name;
    u.role = (char *)role;
    u.tenant_id = tenant_id;
    u.disabled = disabled;
    struct mu_err err = {0};
    int64_t id = 0;
    if (mu_store_user_insert(st, &u, NULL, &id, &err) != 0)
        fail_msg("user insert: %s", err.detail);
    return id;
}

/* Inserts a token for user and writes its secret into secret. */
static int64_t add_token(struct mu_store *st, int64_t user_id, int64_t expires_ms,
                         char secret[MU_TOKEN_LEN + 1])
{
    struct mu_token t = {0};
    t.user_id = user_id;
    t.name = (char *)"test";
    t.created_ms = mu_now_ms() - 10000;
    t.expires_ms = expires_ms;
    mu_auth_token_generate(secret, t.hash);
    struct mu_err err = {0};
    int64_t id = 0;
    if (mu_store_token_insert(st, &t, NULL, &id, &err) != 0)
        fail_msg("token insert: %s", err.detail);
    return id;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu_authn_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/mutualis.db", f->dir);
    static const char key[32] = "0123456789abcdef0123456789abcdef";
    struct mu_store_opts opts = {.path = f->path, .audit_key = key, .audit_key_len = sizeof key};
    struct mu_err err = {0};
    f->st = mu_store_open(&opts, &err);
    if (!f->st) {
        fprintf(stderr, "store open: %s\n", err.detail);
        return -1;
    }
    struct mu_tenant t = {0};
    t.name = (char *)"Communauté de communes du Test";
    t.kind = (char *)"epci";
    t.epci_form = (char *)"CC";
    t.population = -1;
    t.status = (char *)"active";
    if (mu_store_tenant_insert(f->st, &t, NULL, &f->tenant, &err) != 0) {
        fprintf(stderr, "tenant insert: %s\n", err.detail);
        return -1;
    }
    f->alice = add_user(f->st, "alice", "operator", 0, false);
    f->carol = add_user(f->st, "carol", "tenant-reader", f->tenant, false);
    f->authn = mu_authn_new(f->st);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mu_authn_free(f->authn);
    mu_store_close(f->st);
    char p[160];
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static int bearer(struct fixture *f, const char *header, struct mu_principal *p, struct mu_err *err)
{
    memset(err, 0, sizeof *err);
    return mu_authn_bearer(f->authn, header, p, err);
}

static void header_for(const char *secret, char *out, size_t n)
{
    snprintf(out, n, "Bearer %s", secret);
}

static void test_valid(void **state)
{
    struct fixture *f = *state;
    char secret[MU_TOKEN_LEN + 1], h[80];
    int64_t tid = add_token(f->st, f->alice, 0, secret);
    header_for(secret, h, sizeof h);
    struct mu_principal p;
    struct mu_err err;
    int rc = bearer(f, h, &p, &err);
    if (rc != 0)
        fail_msg("refused: %s", err.detail);
    assert_int_equal(err.code, 0);
    assert_int_equal(p.user_id, f->alice);
    assert_string_equal(p.user_name, "alice");
    assert_string_equal(p.role, "operator");
    assert_int_equal(p.tenant_id, 0);
    assert_int_equal(p.token_id, tid);
    assert_true(mu_principal_is_global(&p));

    /* the scheme is case-insensitive */
    snprintf(h, sizeof h, "bEARER %s", secret);
    assert_int_equal(bearer(f, h, &p, &err), 0);

    /* a tenant user, with a token that expires later */
    tid = add_token(f->st, f->carol, mu_now_ms() + 3600 * 1000, secret);
    header_for(secret, h, sizeof h);
    assert_int_equal(bearer(f, h, &p, &err), 0);
    assert_string_equal(p.user_name, "carol");
    assert_string_equal(p.role, "tenant-reader");
    assert_int_equal(p.tenant_id, f->tenant);
    assert_int_equal(p.token_id, tid);
    assert_false(mu_principal_is_global(&p));
}

static void expect_unauth(struct fixture *f, const char *header, const char *detail)
{
    struct mu_principal p;
    memset(&p, 0x5a, sizeof p);
    struct mu_principal untouched = p;
    struct mu_err err;
    assert_int_equal(bearer(f, header, &p, &err), MU_EUNAUTH);
    assert_int_equal(err.code, MU_EUNAUTH);
    if (strncmp(err.detail, detail, strlen(detail)) != 0)
        fail_msg("header \"%s\": detail \"%s\", expected \"%s...\"", header ? header : "(null)",
                 err.detail, detail);
    assert_memory_equal(&p, &untouched, sizeof p); /* written only on success */
}

static void test_expired(void **state)
{
    struct fixture *f = *state;
    char secret[MU_TOKEN_LEN + 1], h[80];
    int64_t when = 0;
    assert_int_equal(mu_parse_time("2020-11-01T00:00:00Z", &when), 0);
    add_token(f->st, f->alice, when, secret);
    header_for(secret, h, sizeof h);
    expect_unauth(f, h, "token expired at 2020-11-01T00:00:00.000Z");
    /* expiring exactly now counts as expired */
    int64_t soon = mu_now_ms() + 50;
    add_token(f->st, f->alice, soon, secret);
    header_for(secret, h, sizeof h);
    while (mu_now_ms() < soon)
        usleep(10000);
    expect_unauth(f, h, "token expired at ");
}

static void test_revoked(void **state)
{
    struct fixture *f = *state;
    char secret[MU_TOKEN_LEN + 1], h[80];
    int64_t tid = add_token(f->st, f->alice, 0, secret);
    header_for(secret, h, sizeof h);
    struct mu_principal p;
    struct mu_err err;
    assert_int_equal(bearer(f, h, &p, &err), 0);
    assert_int_equal(mu_store_token_revoke(f->st, tid, NULL, &err), 0);
    expect_unauth(f, h, "token revoked");
}

static void test_unknown(void **state)
{
    struct fixture *f = *state;
    char secret[MU_TOKEN_LEN + 1], hash[65], h[80];
    mu_auth_token_generate(secret, hash); /* never stored */
    header_for(secret, h, sizeof h);
    expect_unauth(f, h, "no such token");
}

static void test_malformed(void **state)
{
    struct fixture *f = *state;
    char secret[MU_TOKEN_LEN + 1], h[120];
    add_token(f->st, f->alice, 0, secret);

    expect_unauth(f, NULL, "authentication required");
    expect_unauth(f, "", "authentication required");
    const char *shape = "the Authorization header must be 'Bearer <token>'";
    expect_unauth(f, "Bearer", shape);
    expect_unauth(f, "Bearer ", shape);
    expect_unauth(f, secret, shape);
    snprintf(h, sizeof h, "Basic %s", secret);
    expect_unauth(f, h, shape);
    snprintf(h, sizeof h, "Bearer  %s", secret);
    expect_unauth(f, h, shape);
    snprintf(h, sizeof h, "Bearer\t%s", secret);
    expect_unauth(f, h, shape);
    snprintf(h, sizeof h, "Bearertoken%s", secret);
    expect_unauth(f, h, shape);

    snprintf(h, sizeof h, "Bearer %s ", secret);
    expect_unauth(f, h, "malformed token");
    snprintf(h, sizeof h, "Bearer %.46s", secret);
    expect_unauth(f, h, "malformed token");
    snprintf(h, sizeof h, "Bearer %sA", secret);
    expect_unauth(f, h, "malformed token");
    expect_unauth(f, "Bearer abc", "malformed token");
    snprintf(h, sizeof h, "Bearer MUT_%s", secret + 4);
    expect_unauth(f, h, "malformed token");
}

static void test_disabled_user(void **state)
{
    struct fixture *f = *state;
    char secret[MU_TOKEN_LEN + 1], h[80];
    int64_t bob = add_user(f->st, "bob", "observer", 0, true);
    add_token(f->st, bob, 0, secret);
    header_for(secret, h, sizeof h);
    expect_unauth(f, h, "user \"bob\" is disabled");

    /* disabling takes effect on the next request: no stale cache */
    int64_t dave = add_user(f->st, "dave", "observer", 0, false);
    add_token(f->st, dave, 0, secret);
    header_for(secret, h, sizeof h);
    struct mu_principal p;
    struct mu_err err;
    assert_int_equal(bearer(f, h, &p, &err), 0);
    struct mu_user u = {0};
    assert_int_equal(mu_store_user_get(f->st, dave, &u, &err), 0);
    u.disabled = true;
    assert_int_equal(mu_store_user_update(f->st, &u, NULL, &err), 0);
    mu_user_clear(&u);
    expect_unauth(f, h, "user \"dave\" is disabled");

    /* a deleted user's token no longer works */
    int64_t erin = add_user(f->st, "erin", "observer", 0, false);
    add_token(f->st, erin, 0, secret);
    header_for(secret, h, sizeof h);
    assert_int_equal(bearer(f, h, &p, &err), 0);
    assert_int_equal(mu_store_user_delete(f->st, erin, NULL, &err), 0);
    memset(&err, 0, sizeof err);
    assert_int_not_equal(bearer(f, h, &p, &err), 0);
    assert_int_equal(err.code, MU_EUNAUTH);
}

static int64_t last_used(struct fixture *f, int64_t tid)
{
    struct mu_token t = {0};
    struct mu_err err = {0};
    assert_int_equal(mu_store_token_get(f->st, tid, &t, &err), 0);
    int64_t ms = t.last_used_ms;
    mu_token_clear(&t);
    return ms;
}

static void test_flush(void **state)
{
    struct fixture *f = *state;
    char s1[MU_TOKEN_LEN + 1], s2[MU_TOKEN_LEN + 1], h1[80], h2[80];
    int64_t t1 = add_token(f->st, f->alice, 0, s1);
    int64_t t2 = add_token(f->st, f->carol, 0, s2);
    header_for(s1, h1, sizeof h1);
    header_for(s2, h2, sizeof h2);
    struct mu_principal p;
    struct mu_err err;

    /* nothing recorded yet */
    assert_int_equal(mu_authn_flush(f->authn, 0), 0);

    int64_t before = mu_now_ms();
    for (int i = 0; i < 5; i++) {
        assert_int_equal(bearer(f, h1, &p, &err), 0);
        assert_int_equal(bearer(f, h2, &p, &err), 0);
    }
    /* reading never writes */
    assert_int_equal(last_used(f, t1), 0);
    assert_int_equal(last_used(f, t2), 0);

    assert_int_equal(mu_authn_flush(f->authn, 60000), 2);
    int64_t u1 = last_used(f, t1);
    assert_true(u1 >= before && u1 <= mu_now_ms());
    assert_true(last_used(f, t2) >= before);

    /* a second flush within the interval writes nothing */
    usleep(5000);
    assert_int_equal(bearer(f, h1, &p, &err), 0);
    assert_int_equal(mu_authn_flush(f->authn, 60000), 0);
    assert_int_equal(last_used(f, t1), u1);
    /* the pending time is kept and written by the next due flush */
    assert_int_equal(mu_authn_flush(f->authn, 0), 1);
    assert_true(last_used(f, t1) > u1);
    assert_int_equal(mu_authn_flush(f->authn, 0), 0);
}

static void test_flush_many(void **state)
{
    /* more tokens than the map's first size: it grows and loses nothing */
    struct fixture *f = *state;
    enum { N = 150 };
    int64_t ids[N];
    char secret[MU_TOKEN_LEN + 1], h[80];
    struct mu_principal p;
    struct mu_err err;
    for (int i = 0; i < N; i++) {
        ids[i] = add_token(f->st, f->alice, 0, secret);
        header_for(secret, h, sizeof h);
        assert_int_equal(bearer(f, h, &p, &err), 0);
    }
    assert_int_equal(mu_authn_flush(f->authn, 0), N);
    for (int i = 0; i < N; i++)
        assert_true(last_used(f, ids[i]) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_many, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
