/* notify/sign.c: the signature header against vectors computed independently (Python's
 * hmac module: hmac.new(secret.encode(), b"<t>.<body>", sha256)), secrets, type prefixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "notify/notify.h"

#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_vectors(void **state)
{
    (void)state;
    char sig[MU_NOTIFY_SIG_MAX];
    const char *body = "{\"id\":1,\"type\":\"vm.ready\"}";
    mu_notify_sign(SECRET, 1800000000, body, strlen(body), sig);
    assert_string_equal(sig, "t=1800000000,v1="
                             "847919d81e8ea2689e17c79d46172b6b18659d9a8ad0f181efce042c5cc28b52");
    mu_notify_sign(SECRET, 0, "", 0, sig);
    assert_string_equal(sig, "t=0,v1="
                             "db29e52429df8eb566e7ed9dd574221809c2091c187162aa78dec283c93ffef9");
}

static void test_sensitivity(void **state)
{
    (void)state;
    char a[MU_NOTIFY_SIG_MAX], b[MU_NOTIFY_SIG_MAX];
    const char *body = "{\"id\":1}";
    mu_notify_sign(SECRET, 1800000000, body, strlen(body), a);
    mu_notify_sign(SECRET, 1800000001, body, strlen(body), b); /* another time */
    assert_string_not_equal(a + strlen("t=1800000000,"), b + strlen("t=1800000001,"));
    mu_notify_sign(SECRET, 1800000000, "{\"id\":2}", 8, b); /* another body */
    assert_string_not_equal(a, b);
    mu_notify_sign("f" SECRET, 1800000000, body, strlen(body), b); /* another secret */
    assert_string_not_equal(a, b);
    /* A body with a NUL inside is signed over its whole length. */
    mu_notify_sign(SECRET, 1, "a\0b", 3, a);
    mu_notify_sign(SECRET, 1, "a\0c", 3, b);
    assert_string_not_equal(a, b);
}

static void test_secret(void **state)
{
    (void)state;
    char s1[MU_NOTIFY_SECRET_HEX + 1], s2[MU_NOTIFY_SECRET_HEX + 1];
    mu_notify_secret_new(s1);
    mu_notify_secret_new(s2);
    assert_int_equal(strlen(s1), 64);
    assert_int_equal(strspn(s1, "0123456789abcdef"), 64);
    assert_string_not_equal(s1, s2);
}

static void test_type_prefix(void **state)
{
    (void)state;
    assert_true(mu_notify_type_prefix_valid("request."));
    assert_true(mu_notify_type_prefix_valid("alert.firing"));
    assert_true(mu_notify_type_prefix_valid("vm_ready-2"));
    assert_false(mu_notify_type_prefix_valid(""));
    assert_false(mu_notify_type_prefix_valid(NULL));
    assert_false(mu_notify_type_prefix_valid("Request."));
    assert_false(mu_notify_type_prefix_valid("request.%"));
    assert_false(mu_notify_type_prefix_valid("a b"));
    char big[80];
    memset(big, 'a', 65);
    big[65] = '\0';
    assert_false(mu_notify_type_prefix_valid(big));
    big[64] = '\0';
    assert_true(mu_notify_type_prefix_valid(big));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_sensitivity),
        cmocka_unit_test(test_secret),
        cmocka_unit_test(test_type_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
