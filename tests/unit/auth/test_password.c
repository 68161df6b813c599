/* Passwords: argon2id hashing and verification, and the strength check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

static void test_hash_verify(void **state)
{
    (void)state;
    char *h1 = mu_auth_password_hash("correct horse battery staple");
    char *h2 = mu_auth_password_hash("correct horse battery staple");
    assert_non_null(h1);
    assert_true(strncmp(h1, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert_string_not_equal(h1, h2); /* random salt */
    assert_true(mu_auth_password_verify(h1, "correct horse battery staple"));
    assert_true(mu_auth_password_verify(h2, "correct horse battery staple"));
    assert_false(mu_auth_password_verify(h1, "correct horse battery stapl"));
    assert_false(mu_auth_password_verify(h1, "Correct horse battery staple"));
    assert_false(mu_auth_password_verify(h1, ""));
    assert_false(mu_auth_password_verify(NULL, "x"));
    assert_false(mu_auth_password_verify(h1, NULL));
    assert_false(mu_auth_password_verify("", "x"));
    assert_false(mu_auth_password_verify("not a hash", "not a hash"));
    /* argon2i is not accepted even with the right password */
    h1[8] = '\0';
    assert_false(mu_auth_password_verify(h1, "correct horse battery staple"));
    free(h1);
    free(h2);
}

static void test_utf8_password(void **state)
{
    (void)state;
    const char *pw = "\xc3\xa9t\xc3\xa9 \xc3\xa0 Ch\xc3\xa2teauroux"; /* été à Châteauroux */
    char *h = mu_auth_password_hash(pw);
    assert_true(mu_auth_password_verify(h, pw));
    assert_false(mu_auth_password_verify(h, "ete a Chateauroux"));
    free(h);
}

static void expect_refused(const char *pw, const char *fragment)
{
    struct mu_err err = {0};
    assert_int_equal(mu_auth_password_check(pw, &err), MU_EINVAL);
    assert_int_equal(err.code, MU_EINVAL);
    assert_string_equal(err.field, "password");
    if (!strstr(err.detail, fragment))
        fail_msg("detail \"%s\" lacks \"%s\"", err.detail, fragment);
}

static void expect_accepted(const char *pw)
{
    struct mu_err err = {0};
    int rc = mu_auth_password_check(pw, &err);
    if (rc != 0)
        fail_msg("\"%s\" refused: %s", pw, err.detail);
    assert_int_equal(err.code, 0);
}

static void test_check(void **state)
{
    (void)state;
    char buf[300];

    expect_refused(NULL, "required");
    expect_refused("", "at least 12");
    expect_refused("elevenchars", "at least 12");
    expect_accepted("twelve chars");
    expect_accepted("correct horse battery staple");

    memset(buf, 'a', sizeof buf);
    buf[0] = 'b';
    buf[256] = '\0';
    expect_accepted(buf);
    buf[256] = 'a';
    buf[257] = '\0';
    expect_refused(buf, "at most 256");
    buf[299] = '\0';
    expect_refused(buf, "at most 256");

    /* 12 bytes, 6 characters: the limit is in bytes */
    expect_accepted("\xc3\xa9t\xc3\xa9\xc3\xa9t\xc3\xa9\xc3\xa9\xc3\xa9");

    expect_refused("aaaaaaaaaaaa", "single character");
    expect_refused("                ", "single character");
    expect_refused("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", "single character");
    expect_refused("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", "single character");
    expect_accepted("aaaaaaaaaaab");
    expect_accepted("abababababab");

    expect_refused("valid start \xff\xfe end", "UTF-8");
    expect_refused("overlong \xc0\xaf slash!", "UTF-8");
    expect_refused("surrogate \xed\xa0\x80 here", "UTF-8");
    expect_refused("truncated end \xc3", "UTF-8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_verify),
        cmocka_unit_test(test_utf8_password),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
