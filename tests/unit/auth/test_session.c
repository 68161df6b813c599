/* Portal sessions against a real store in a temporary directory, with an injected clock:
 * cookie parsing, CSRF comparison, valid / idle / expired / revoked sessions, the rows
 * going with a deleted user, a disabled user, the password check (unknown users take the
 * same path), activity recorded at most once a minute, and the failure counters. */
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
#include "store/sessions.h"

#define MIN_MS (60LL * 1000)

struct fixture {
    char dir[64];
    char path[128];
    struct mu_store *st;
    int64_t alice;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu_session_XXXXXX");
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
    struct mu_user u = {0};
    u.name = (char *)"alice";
    u.role = (char *)"operator";
    u.password_hash = mu_auth_password_hash("correct horse battery");
    if (mu_store_user_insert(f->st, &u, NULL, &f->alice, &err) != 0) {
        fprintf(stderr, "user insert: %s\n", err.detail);
        return -1;
    }
    free(u.password_hash);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
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

/* A session of alice created at t0; its secret in secret. Returns its id. */
static int64_t login(struct fixture *f, int64_t t0, char secret[MU_SESSION_SECRET_LEN + 1])
{
    struct mu_session s = {
        .user_id = f->alice, .created_ms = t0, .expires_ms = t0 + MU_SESSION_MAX_MS};
    mu_session_secret_generate(secret, s.hash);
    mu_session_csrf_generate(s.csrf);
    snprintf(s.source, sizeof s.source, "127.0.0.1");
    struct mu_err err = {0};
    int64_t id = 0;
    if (mu_store_session_insert(f->st, &s, NULL, &id, &err) != 0)
        fail_msg("session insert: %s", err.detail);
    return id;
}

static int authn(struct fixture *f, const char *secret, int64_t now, struct mu_principal *p,
                 char csrf[65], struct mu_err *err)
{
    memset(err, 0, sizeof *err);
    return mu_authn_session(f->st, secret, now, MU_SESSION_IDLE_MS, p, csrf, err);
}

static void test_cookie_parse(void **state)
{
    (void)state;
    char out[MU_SESSION_SECRET_LEN + 1];
    const char *good = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char hdr[256];
    snprintf(hdr, sizeof hdr, "mu_session=%s", good);
    assert_int_equal(mu_session_cookie_get(hdr, out), 1);
    assert_string_equal(out, good);
    snprintf(hdr, sizeof hdr, "theme=dark; mu_session=%s ; lang=fr", good);
    assert_int_equal(mu_session_cookie_get(hdr, out), 1);
    assert_string_equal(out, good);
    /* Another cookie whose name ends like ours, short, upper-case, injected characters. */
    snprintf(hdr, sizeof hdr, "xmu_session=%s", good);
    assert_int_equal(mu_session_cookie_get(hdr, out), 0);
    assert_int_equal(mu_session_cookie_get("mu_session=abc", out), 0);
    snprintf(hdr, sizeof hdr, "mu_session=%.63sF", good);
    assert_int_equal(mu_session_cookie_get(hdr, out), 0);
    snprintf(hdr, sizeof hdr, "mu_session=%s'--", good);
    assert_int_equal(mu_session_cookie_get(hdr, out), 0);
    assert_int_equal(mu_session_cookie_get("", out), 0);
    assert_int_equal(mu_session_cookie_get(NULL, out), 0);
}

static void test_csrf_equal(void **state)
{
    (void)state;
    char a[65], b[65];
    mu_session_csrf_generate(a);
    mu_session_csrf_generate(b);
    assert_int_equal(strlen(a), 64);
    assert_string_not_equal(a, b);
    assert_true(mu_session_csrf_equal(a, a));
    assert_false(mu_session_csrf_equal(b, a));
    assert_false(mu_session_csrf_equal(NULL, a));
    assert_false(mu_session_csrf_equal("", a));
    a[63] = '\0';
    assert_false(mu_session_csrf_equal(a, b));
}

static void test_valid_then_idle(void **state)
{
    struct fixture *f = *state;
    char secret[MU_SESSION_SECRET_LEN + 1], csrf[65];
    struct mu_principal p;
    struct mu_err err;
    int64_t t0 = mu_now_ms();
    int64_t id = login(f, t0, secret);

    assert_int_equal(authn(f, secret, t0 + 1000, &p, csrf, &err), 0);
    assert_string_equal(p.user_name, "alice");
    assert_string_equal(p.role, "operator");
    assert_int_equal(p.token_id, 0);
    assert_int_equal(p.session_id, id);
    struct mu_session s;
    assert_int_equal(mu_store_session_get(f->st, id, &s, &err), 0);
    assert_string_equal(csrf, s.csrf);
    /* Activity within the minute is not written. */
    assert_int_equal(s.last_seen_ms, t0);
    /* 29 minutes later: still valid, and that activity is written... */
    assert_int_equal(authn(f, secret, t0 + 29 * MIN_MS, &p, csrf, &err), 0);
    assert_int_equal(mu_store_session_get(f->st, id, &s, &err), 0);
    assert_int_equal(s.last_seen_ms, t0 + 29 * MIN_MS);
    /* ...so 29 more minutes are fine too (58 after the login). */
    assert_int_equal(authn(f, secret, t0 + 58 * MIN_MS, &p, csrf, &err), 0);
    /* 30 minutes without a request end it. */
    assert_int_equal(authn(f, secret, t0 + 88 * MIN_MS, &p, csrf, &err), MU_EUNAUTH);
    assert_non_null(strstr(err.detail, "30 minutes without activity"));
}

static void test_absolute_expiry(void **state)
{
    struct fixture *f = *state;
    char secret[MU_SESSION_SECRET_LEN + 1], csrf[65];
    struct mu_principal p;
    struct mu_err err;
    int64_t t0 = mu_now_ms();
    login(f, t0, secret);
    /* Active every 20 minutes: still cut at 12 hours. */
    int64_t t = t0;
    for (; t < t0 + MU_SESSION_MAX_MS; t += 20 * MIN_MS)
        assert_int_equal(authn(f, secret, t, &p, csrf, &err), 0);
    assert_int_equal(authn(f, secret, t0 + MU_SESSION_MAX_MS, &p, csrf, &err), MU_EUNAUTH);
    assert_non_null(strstr(err.detail, "at most 12 hours"));
}

static void test_revoked_unknown_deleted_disabled(void **state)
{
    struct fixture *f = *state;
    char secret[MU_SESSION_SECRET_LEN + 1], other[MU_SESSION_SECRET_LEN + 1], csrf[65];
    struct mu_principal p;
    struct mu_err err;
    int64_t t0 = mu_now_ms();
    int64_t id = login(f, t0, secret);

    char unknown[MU_SESSION_SECRET_LEN + 1], hash[65];
    mu_session_secret_generate(unknown, hash);
    assert_int_equal(authn(f, unknown, t0, &p, csrf, &err), MU_EUNAUTH);

    assert_int_equal(mu_store_session_revoke(f->st, id, NULL, &err), 0);
    assert_int_equal(authn(f, secret, t0 + 1, &p, csrf, &err), MU_EUNAUTH);
    assert_non_null(strstr(err.detail, "logged out"));
    assert_int_equal(mu_store_session_revoke(f->st, id, NULL, &err), 0); /* idempotent */

    /* A disabled user's live session is refused; enabled again, it works. */
    login(f, t0, other);
    struct mu_user u = {0};
    assert_int_equal(mu_store_user_get(f->st, f->alice, &u, &err), 0);
    u.disabled = true;
    assert_int_equal(mu_store_user_update(f->st, &u, NULL, &err), 0);
    assert_int_equal(authn(f, other, t0 + 2, &p, csrf, &err), MU_EUNAUTH);
    assert_non_null(strstr(err.detail, "disabled"));
    u.disabled = false;
    assert_int_equal(mu_store_user_update(f->st, &u, NULL, &err), 0);
    assert_int_equal(authn(f, other, t0 + 3, &p, csrf, &err), 0);
    assert_int_equal(mu_store_session_count_live(f->st, f->alice, t0 + 4), 1);

    /* Deleting the user deletes the sessions. */
    assert_int_equal(mu_store_user_delete(f->st, f->alice, NULL, &err), 0);
    assert_int_equal(authn(f, other, t0 + 5, &p, csrf, &err), MU_EUNAUTH);
    assert_int_equal(mu_store_session_count_live(f->st, f->alice, t0 + 5), 0);
    mu_user_clear(&u);
}

static void test_password_check(void **state)
{
    struct fixture *f = *state;
    struct mu_user u = {0};
    struct mu_err err = {0};
    assert_int_equal(mu_session_check_password(f->st, "alice", "correct horse battery", &u, &err),
                     0);
    assert_int_equal(u.id, f->alice);
    mu_user_clear(&u);
    struct mu_err e1 = {0}, e2 = {0};
    assert_int_equal(mu_session_check_password(f->st, "alice", "wrong horse battery", &u, &e1),
                     MU_EUNAUTH);
    assert_int_equal(mu_session_check_password(f->st, "mallory", "correct horse battery", &u, &e2),
                     MU_EUNAUTH);
    /* The same answer whether the user exists or not. */
    assert_string_equal(e1.detail, e2.detail);
}

static void test_ratelimit(void **state)
{
    (void)state;
    struct mu_ratelimit *rl = mu_ratelimit_new(3, MIN_MS);
    int64_t t0 = 1000000, retry = 0;
    for (int i = 0; i < 3; i++) {
        assert_false(mu_ratelimit_blocked(rl, "user:alice", t0 + i, NULL));
        mu_ratelimit_fail(rl, "user:alice", t0 + i);
    }
    assert_true(mu_ratelimit_blocked(rl, "user:alice", t0 + 10, &retry));
    assert_int_equal(retry, MIN_MS - 10);
    assert_false(mu_ratelimit_blocked(rl, "user:bob", t0 + 10, NULL)); /* keys apart */
    /* The window ends: allowed again. */
    assert_false(mu_ratelimit_blocked(rl, "user:alice", t0 + MIN_MS, NULL));
    mu_ratelimit_fail(rl, "user:alice", t0 + MIN_MS);
    assert_false(mu_ratelimit_blocked(rl, "user:alice", t0 + MIN_MS + 1, NULL));
    /* A reset forgets the failures. */
    mu_ratelimit_fail(rl, "user:alice", t0 + MIN_MS + 2);
    mu_ratelimit_fail(rl, "user:alice", t0 + MIN_MS + 3);
    assert_true(mu_ratelimit_blocked(rl, "user:alice", t0 + MIN_MS + 4, NULL));
    mu_ratelimit_reset(rl, "user:alice");
    assert_false(mu_ratelimit_blocked(rl, "user:alice", t0 + MIN_MS + 5, NULL));
    /* Many sources: memory stays bounded and the newcomers still get counted. */
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        mu_ratelimit_fail(rl, key, t0 + 2 * MIN_MS);
    }
    for (int i = 0; i < 3; i++)
        mu_ratelimit_fail(rl, "192.0.2.1", t0 + 2 * MIN_MS);
    assert_true(mu_ratelimit_blocked(rl, "192.0.2.1", t0 + 2 * MIN_MS, NULL));
    mu_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookie_parse),
        cmocka_unit_test(test_csrf_equal),
        cmocka_unit_test_setup_teardown(test_valid_then_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absolute_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_unknown_deleted_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_check, setup, teardown),
        cmocka_unit_test(test_ratelimit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
