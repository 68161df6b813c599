/* fleet/pki: CA and server certificate creation, reuse and re-issue, CSR signing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fleet/pki.h"
#include "mutualis/util.h"

static const char *const test_names[] = {"127.0.0.1", "::1", "localhost", "ctl.example.org", NULL};

struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *f = mu_xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu-pki-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    const char *files[] = {"ca.pem", "ca.key", "server.pem", "server.key"};
    for (size_t i = 0; i < MU_ARRAY_LEN(files); i++) {
        char *p = mu_xasprintf("%s/%s", f->dir, files[i]);
        unlink(p);
        free(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static gnutls_x509_crt_t crt_parse(const char *pem)
{
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    return crt;
}

static void assert_chains(gnutls_x509_crt_t leaf, gnutls_x509_crt_t ca)
{
    unsigned status = 99;
    gnutls_x509_crt_t trust[1] = {ca};
    assert_int_equal(gnutls_x509_crt_verify(leaf, trust, 1, 0, &status), 0);
    assert_int_equal(status, 0);
}

static bool has_purpose(gnutls_x509_crt_t crt, const char *oid)
{
    for (unsigned i = 0;; i++) {
        char buf[128];
        size_t size = sizeof buf;
        if (gnutls_x509_crt_get_key_purpose_oid(crt, i, buf, &size, NULL) < 0)
            return false;
        if (strcmp(buf, oid) == 0)
            return true;
    }
}

static unsigned file_mode(const char *dir, const char *name)
{
    char *p = mu_xasprintf("%s/%s", dir, name);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    free(p);
    return st.st_mode & 07777;
}

static char *file_text(const char *dir, const char *name)
{
    char *p = mu_xasprintf("%s/%s", dir, name);
    char *t = mu_read_file(p, 1 << 20, NULL);
    free(p);
    assert_non_null(t);
    return t;
}

static void test_create_and_verify(void **state)
{
    struct fixture *f = *state;
    struct mu_pki_files files = {0};
    struct mu_err err = {0};
    assert_int_equal(mu_pki_ensure(f->dir, test_names, &files, &err), 0);
    assert_non_null(files.ca_pem);
    assert_non_null(files.server_pem);
    assert_non_null(files.server_key);
    assert_non_null(strstr(files.server_key, "PRIVATE KEY"));

    gnutls_x509_crt_t ca = crt_parse(files.ca_pem);
    gnutls_x509_crt_t leaf = crt_parse(files.server_pem);
    assert_chains(leaf, ca);
    /* The chain file holds the leaf then the CA. */
    assert_non_null(strstr(files.server_pem, files.ca_pem));

    unsigned critical = 0, is_ca = 0;
    int pathlen = 0;
    assert_true(gnutls_x509_crt_get_basic_constraints(ca, &critical, &is_ca, &pathlen) >= 0);
    assert_true(is_ca);
    unsigned usage = 0;
    assert_true(gnutls_x509_crt_get_key_usage(ca, &usage, &critical) >= 0);
    assert_true(usage & GNUTLS_KEY_KEY_CERT_SIGN);
    assert_true(usage & GNUTLS_KEY_CRL_SIGN);
    time_t ca_days = (gnutls_x509_crt_get_expiration_time(ca) - time(NULL)) / 86400;
    assert_true(ca_days >= 3640 && ca_days <= 3650);
    assert_int_equal(gnutls_x509_crt_get_pk_algorithm(ca, NULL), GNUTLS_PK_ECDSA);

    assert_true(gnutls_x509_crt_get_basic_constraints(leaf, &critical, &is_ca, &pathlen) >= 0);
    assert_false(is_ca);
    assert_true(gnutls_x509_crt_get_key_usage(leaf, &usage, &critical) >= 0);
    assert_true(usage & GNUTLS_KEY_DIGITAL_SIGNATURE);
    assert_true(has_purpose(leaf, GNUTLS_KP_TLS_WWW_SERVER));
    assert_false(has_purpose(leaf, GNUTLS_KP_TLS_WWW_CLIENT));

    /* SANs: IP entries for addresses, DNS entries for names. */
    unsigned char ip4[4], ip6[16];
    inet_pton(AF_INET, "127.0.0.1", ip4);
    inet_pton(AF_INET6, "::1", ip6);
    assert_true(gnutls_x509_crt_check_ip(leaf, ip4, 4, 0));
    assert_true(gnutls_x509_crt_check_ip(leaf, ip6, 16, 0));
    assert_true(gnutls_x509_crt_check_hostname(leaf, "localhost"));
    assert_true(gnutls_x509_crt_check_hostname(leaf, "ctl.example.org"));
    assert_false(gnutls_x509_crt_check_hostname(leaf, "other.example.org"));

    /* Serial: 16 bytes, positive. */
    unsigned char serial[32];
    size_t slen = sizeof serial;
    assert_int_equal(gnutls_x509_crt_get_serial(leaf, serial, &slen), 0);
    assert_int_equal(slen, 16);
    assert_int_equal(serial[0] & 0x80, 0);

    assert_int_equal(file_mode(f->dir, ""), 0700);
    assert_int_equal(file_mode(f->dir, "ca.key"), 0600);
    assert_int_equal(file_mode(f->dir, "server.key"), 0600);

    gnutls_x509_crt_deinit(ca);
    gnutls_x509_crt_deinit(leaf);
    mu_pki_files_clear(&files);
    mu_pki_files_clear(&files); /* idempotent */
}

static void test_reuse(void **state)
{
    struct fixture *f = *state;
    struct mu_pki_files a = {0}, b = {0};
    struct mu_err err = {0};
    assert_int_equal(mu_pki_ensure(f->dir, test_names, &a, &err), 0);
    char *key_before = file_text(f->dir, "server.key");
    assert_int_equal(mu_pki_ensure(f->dir, test_names, &b, &err), 0);
    assert_string_equal(a.ca_pem, b.ca_pem);
    assert_string_equal(a.server_pem, b.server_pem);
    assert_string_equal(a.server_key, b.server_key);
    char *key_after = file_text(f->dir, "server.key");
    assert_string_equal(key_before, key_after);
    free(key_before);
    free(key_after);
    mu_pki_files_clear(&a);
    mu_pki_files_clear(&b);

    /* A subset of the names is still covered. */
    const char *const subset[] = {"localhost", NULL};
    assert_int_equal(mu_pki_ensure(f->dir, subset, &b, &err), 0);
    char *chain = file_text(f->dir, "server.pem");
    assert_string_equal(chain, b.server_pem);
    free(chain);
    mu_pki_files_clear(&b);
}

static void test_reissue_on_new_name(void **state)
{
    struct fixture *f = *state;
    struct mu_pki_files a = {0}, b = {0};
    struct mu_err err = {0};
    assert_int_equal(mu_pki_ensure(f->dir, test_names, &a, &err), 0);
    const char *const more[] = {"127.0.0.1", "api.example.org", "10.0.0.7", NULL};
    assert_int_equal(mu_pki_ensure(f->dir, more, &b, &err), 0);
    assert_string_equal(a.ca_pem, b.ca_pem); /* the CA stays */
    assert_string_not_equal(a.server_pem, b.server_pem);
    assert_string_not_equal(a.server_key, b.server_key);
    gnutls_x509_crt_t ca = crt_parse(b.ca_pem);
    gnutls_x509_crt_t leaf = crt_parse(b.server_pem);
    assert_chains(leaf, ca);
    assert_true(gnutls_x509_crt_check_hostname(leaf, "api.example.org"));
    assert_false(gnutls_x509_crt_check_hostname(leaf, "ctl.example.org"));
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_crt_deinit(leaf);
    mu_pki_files_clear(&a);
    mu_pki_files_clear(&b);
}

/* A leaf signed by the CA that expires in 10 days must be replaced. */
static void test_reissue_when_expiring(void **state)
{
    struct fixture *f = *state;
    struct mu_pki_files a = {0}, b = {0};
    struct mu_err err = {0};
    const char *const names[] = {"localhost", NULL};
    assert_int_equal(mu_pki_ensure(f->dir, names, &a, &err), 0);

    char *ca_key_pem = file_text(f->dir, "ca.key");
    gnutls_x509_privkey_t ca_key, key;
    assert_int_equal(gnutls_x509_privkey_init(&ca_key), 0);
    gnutls_datum_t d = {(unsigned char *)ca_key_pem, (unsigned)strlen(ca_key_pem)};
    assert_int_equal(gnutls_x509_privkey_import2(ca_key, &d, GNUTLS_X509_FMT_PEM, NULL, 0), 0);
    gnutls_x509_crt_t ca = crt_parse(a.ca_pem);
    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(
                         key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                     0);
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    unsigned char serial[1] = {7};
    time_t now = time(NULL);
    assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, 1), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 60), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 10 * 86400), 0);
    assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
    assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                                          GNUTLS_FSAN_APPEND),
                     0);
    assert_int_equal(gnutls_x509_crt_sign2(crt, ca, ca_key, GNUTLS_DIG_SHA256, 0), 0);
    gnutls_datum_t crt_pem, key_pem;
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &crt_pem), 0);
    assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &key_pem), 0);
    char *crt_path = mu_xasprintf("%s/server.pem", f->dir);
    char *key_path = mu_xasprintf("%s/server.key", f->dir);
    assert_int_equal(mu_write_file_atomic(crt_path, crt_pem.data, crt_pem.size, 0644), 0);
    assert_int_equal(mu_write_file_atomic(key_path, key_pem.data, key_pem.size, 0600), 0);

    assert_int_equal(mu_pki_ensure(f->dir, names, &b, &err), 0);
    gnutls_x509_crt_t leaf = crt_parse(b.server_pem);
    assert_true(gnutls_x509_crt_get_expiration_time(leaf) > now + 300 * 86400);
    assert_chains(leaf, ca);

    gnutls_x509_crt_deinit(leaf);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_privkey_deinit(key);
    gnutls_x509_privkey_deinit(ca_key);
    gnutls_free(crt_pem.data);
    gnutls_free(key_pem.data);
    free(crt_path);
    free(key_path);
    free(ca_key_pem);
    mu_pki_files_clear(&a);
    mu_pki_files_clear(&b);
}

static void test_bad_names(void **state)
{
    struct fixture *f = *state;
    struct mu_pki_files files = {0};
    struct mu_err err = {0};
    const char *const empty[] = {NULL};
    assert_int_equal(mu_pki_ensure(f->dir, empty, &files, &err), MU_EINVAL);
    mu_err_clear(&err);
    const char *const bad[] = {"localhost", "bad name/..", NULL};
    assert_int_equal(mu_pki_ensure(f->dir, bad, &files, &err), MU_EINVAL);
    assert_non_null(strstr(err.detail, "bad name"));
    assert_null(files.ca_pem);
}

/* A PEM CSR for cn made with a fresh ECDSA key. */
static char *make_csr(const char *cn)
{
    gnutls_x509_privkey_t key;
    gnutls_x509_crq_t crq;
    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(
                         key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                     0);
    assert_int_equal(gnutls_x509_crq_init(&crq), 0);
    assert_int_equal(gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                                   (unsigned)strlen(cn)),
                     0);
    assert_int_equal(gnutls_x509_crq_set_key(crq, key), 0);
    /* Asking to be a CA must make no difference. */
    assert_int_equal(gnutls_x509_crq_set_basic_constraints(crq, 1, -1), 0);
    assert_int_equal(gnutls_x509_crq_sign2(crq, key, GNUTLS_DIG_SHA256, 0), 0);
    gnutls_datum_t out;
    assert_int_equal(gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &out), 0);
    char *pem = mu_xstrndup((const char *)out.data, out.size);
    gnutls_free(out.data);
    gnutls_x509_crq_deinit(crq);
    gnutls_x509_privkey_deinit(key);
    return pem;
}

static void test_sign_client(void **state)
{
    struct fixture *f = *state;
    struct mu_pki_files files = {0};
    struct mu_err err = {0};
    char *csr = make_csr("node-1");
    char *cert = NULL;
    char serial[41];

    /* No CA yet: refused. */
    assert_true(mu_pki_sign_client(f->dir, csr, "node-1", 30, &cert, serial, &err) < 0);
    assert_null(cert);
    mu_err_clear(&err);

    assert_int_equal(mu_pki_ensure(f->dir, test_names, &files, &err), 0);
    assert_int_equal(mu_pki_sign_client(f->dir, csr, "node-1", 30, &cert, serial, &err), 0);
    assert_non_null(cert);
    assert_int_equal(strlen(serial), 32);

    gnutls_x509_crt_t ca = crt_parse(files.ca_pem);
    gnutls_x509_crt_t leaf = crt_parse(cert);
    assert_chains(leaf, ca);
    assert_true(has_purpose(leaf, GNUTLS_KP_TLS_WWW_CLIENT));
    assert_false(has_purpose(leaf, GNUTLS_KP_TLS_WWW_SERVER));
    unsigned critical = 0, is_ca = 1;
    int pathlen = 0;
    assert_true(gnutls_x509_crt_get_basic_constraints(leaf, &critical, &is_ca, &pathlen) >= 0);
    assert_false(is_ca);
    char cn[64];
    size_t cnlen = sizeof cn;
    assert_int_equal(
        gnutls_x509_crt_get_dn_by_oid(leaf, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnlen), 0);
    assert_string_equal(cn, "node-1");
    time_t days = (gnutls_x509_crt_get_expiration_time(leaf) - time(NULL)) / 86400;
    assert_true(days >= 29 && days <= 30);
    unsigned char raw[32];
    size_t rawlen = sizeof raw;
    assert_int_equal(gnutls_x509_crt_get_serial(leaf, raw, &rawlen), 0);
    char hex[65];
    mu_hex_encode(raw, rawlen, hex);
    assert_string_equal(hex, serial);

    /* A second signature gets another serial. */
    char *cert2 = NULL;
    char serial2[41];
    assert_int_equal(mu_pki_sign_client(f->dir, csr, "node-1", 30, &cert2, serial2, &err), 0);
    assert_string_not_equal(serial, serial2);

    gnutls_x509_crt_deinit(ca);
    gnutls_x509_crt_deinit(leaf);
    free(cert);
    free(cert2);
    free(csr);
    mu_pki_files_clear(&files);
}

static void test_sign_client_refusals(void **state)
{
    struct fixture *f = *state;
    struct mu_pki_files files = {0};
    struct mu_err err = {0};
    char *cert = NULL;
    char serial[41];
    assert_int_equal(mu_pki_ensure(f->dir, test_names, &files, &err), 0);
    char *csr = make_csr("node-1");

    assert_int_equal(mu_pki_sign_client(f->dir, csr, "node-2", 30, &cert, serial, &err), MU_EINVAL);
    assert_non_null(strstr(err.detail, "node-1"));
    assert_null(cert);
    mu_err_clear(&err);

    assert_int_equal(mu_pki_sign_client(f->dir, csr, "node-1", 0, &cert, serial, &err), MU_EINVAL);
    mu_err_clear(&err);

    assert_int_equal(mu_pki_sign_client(f->dir, "not a csr", "node-1", 30, &cert, serial, &err),
                     MU_EINVAL);
    mu_err_clear(&err);

    /* A request whose signature was tampered with. */
    gnutls_datum_t in = {(unsigned char *)csr, (unsigned)strlen(csr)}, der, pem;
    assert_int_equal(gnutls_pem_base64_decode2("NEW CERTIFICATE REQUEST", &in, &der), 0);
    der.data[der.size - 3] ^= 0x55;
    assert_int_equal(gnutls_pem_base64_encode2("NEW CERTIFICATE REQUEST", &der, &pem), 0);
    char *bad = mu_xstrndup((const char *)pem.data, pem.size);
    assert_int_equal(mu_pki_sign_client(f->dir, bad, "node-1", 30, &cert, serial, &err), MU_EINVAL);
    assert_null(cert);

    gnutls_free(der.data);
    gnutls_free(pem.data);
    free(bad);
    free(csr);
    mu_pki_files_clear(&files);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reissue_on_new_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reissue_when_expiring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_client_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
