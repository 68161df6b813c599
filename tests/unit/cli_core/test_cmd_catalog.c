/* Images, checked before anything is sent: the SHA-256 of a file read in chunks, and the
 * first bytes against the declared format (as the server checks them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void check_sha(const unsigned char *data, size_t n, const char *want)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    rewind(f);
    char hex[65];
    int64_t size = -1;
    assert_int_equal(mu_cli_sha256_file(f, hex, &size), 0);
    assert_string_equal(hex, want);
    assert_int_equal(size, (int64_t)n);
    fclose(f);
}

static void test_sha256(void **state)
{
    (void)state;
    check_sha((const unsigned char *)"", 0,
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_sha((const unsigned char *)"abc", 3,
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* more than one read chunk (1 MiB), and not a multiple of it */
    size_t n = ((size_t)2 << 20) + 12345;
    unsigned char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)((i * 7 + 3) & 255);
    check_sha(big, n, "3e34a108e02f50c1765c81fda1fd047ef4a4c37d9966107b9eb79336c843d645");
    free(big);
}

static void test_sha256_unreadable(void **state)
{
    (void)state;
    FILE *f = fopen(MU_SOURCE_DIR "/cli", "r"); /* a directory: reading it fails */
    if (!f)
        skip();
    char hex[65] = "unchanged";
    int64_t size = 7;
    assert_int_equal(mu_cli_sha256_file(f, hex, &size), -1);
    assert_string_equal(hex, "unchanged");
    assert_int_equal(size, 7);
    fclose(f);
}

static void test_header(void **state)
{
    (void)state;
    /* qcow2 magic, version 3, no backing file */
    const unsigned char qcow2[16] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0};
    unsigned char backed[16];
    memcpy(backed, qcow2, 16);
    backed[15] = 0x68; /* backing file name at offset 0x68 */
    const unsigned char raw[16] = {0xeb, 0x63, 0x90, 0};

    assert_null(mu_cli_image_header_problem(qcow2, 16, "qcow2"));
    assert_null(mu_cli_image_header_problem(raw, 16, "raw"));
    assert_null(mu_cli_image_header_problem(raw, 1, "raw")); /* a tiny raw file */
    assert_non_null(strstr(mu_cli_image_header_problem(backed, 16, "qcow2"), "backing file"));
    assert_non_null(strstr(mu_cli_image_header_problem(raw, 16, "qcow2"), "not a qcow2"));
    assert_non_null(strstr(mu_cli_image_header_problem(qcow2, 8, "qcow2"), "too short"));
    assert_non_null(strstr(mu_cli_image_header_problem(qcow2, 3, "qcow2"), "not a qcow2"));
    /* a qcow2 file declared raw would boot as garbage: refused */
    assert_non_null(strstr(mu_cli_image_header_problem(qcow2, 16, "raw"), "--format qcow2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_sha256_unreadable),
        cmocka_unit_test(test_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
