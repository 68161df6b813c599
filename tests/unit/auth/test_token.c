/* Tokens: format of generated secrets, hashing, and the well-formedness check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "auth/auth.h"

static bool is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static void test_generate_format(void **state)
{
    (void)state;
    char prev[MU_TOKEN_LEN + 1] = "";
    for (int i = 0; i < 200; i++) {
        char tok[MU_TOKEN_LEN + 1], hash[65], again[65];
        memset(tok, 'x', sizeof tok);
        mu_auth_token_generate(tok, hash);
        assert_int_equal(strlen(tok), MU_TOKEN_LEN);
        assert_memory_equal(tok, "mut_", 4);
        for (size_t j = 4; j < MU_TOKEN_LEN; j++)
            assert_true(is_b64url(tok[j]));
        assert_true(mu_auth_token_well_formed(tok));
        assert_int_equal(strlen(hash), 64);
        mu_auth_token_hash(tok, again);
        assert_string_equal(hash, again);
        assert_string_not_equal(tok, prev);
        memcpy(prev, tok, sizeof tok);
    }
}

static void test_hash_known(void **state)
{
    (void)state;
    char hash[65];
    mu_auth_token_hash("abc", hash);
    assert_string_equal(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    mu_auth_token_hash("", hash);
    assert_string_equal(hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_well_formed(void **state)
{
    (void)state;
    /* 42 'A' + 'Q' (index 16, low bits zero) */
    const char *good = "mut_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQ";
    assert_int_equal(strlen(good), MU_TOKEN_LEN);
    assert_true(mu_auth_token_well_formed(good));
    assert_true(mu_auth_token_well_formed("mut_-_09azAZ-_09azAZ-_09azAZ-_09azAZ-_09azAZ-_0"));

    assert_false(mu_auth_token_well_formed(NULL));
    assert_false(mu_auth_token_well_formed(""));
    assert_false(mu_auth_token_well_formed("mut_"));
    /* wrong prefix */
    assert_false(mu_auth_token_well_formed("MUT_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQ"));
    assert_false(mu_auth_token_well_formed("mu_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQ"));
    /* too short, too long */
    assert_false(mu_auth_token_well_formed("mut_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQ"));
    assert_false(mu_auth_token_well_formed("mut_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQA"));
    assert_false(mu_auth_token_well_formed("mut_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQ "));
    /* standard base64 characters, padding, spaces, non-ASCII */
    assert_false(mu_auth_token_well_formed("mut_+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQ"));
    assert_false(mu_auth_token_well_formed("mut_/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQ"));
    assert_false(mu_auth_token_well_formed("mut_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    assert_false(mu_auth_token_well_formed("mut_AAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAAQ"));
    assert_false(mu_auth_token_well_formed("mut_\xc3\xa9"
                                           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQ"));
    /* last character with non-zero padding bits: a second spelling of the same bytes */
    assert_false(mu_auth_token_well_formed("mut_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAR"));
    assert_false(mu_auth_token_well_formed("mut_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_format),
        cmocka_unit_test(test_hash_known),
        cmocka_unit_test(test_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
