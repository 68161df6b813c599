/* agents/certs: the renewal window, the key and request the agent makes for itself, the
 * checks of an issued certificate, and the crash-safe swap: a normal install, then every
 * state a crash can leave (after the new key, after the new certificate, between the two
 * renames, a left-over that matches nothing) recovered at start to a matching pair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certs.h"
#include "mutualis/util.h"

#define DAY ((int64_t)86400 * 1000)

static void test_window(void **state)
{
    (void)state;
    int64_t now = 1700000000000;
    assert_false(mu_agent_renew_due(now + 31 * DAY, now, 30));
    assert_true(mu_agent_renew_due(now + 30 * DAY, now, 30));
    assert_true(mu_agent_renew_due(now + 20 * DAY, now, 30));
    assert_true(mu_agent_renew_due(now - DAY, now, 30)); /* expired: try anyway */
    assert_false(mu_agent_renew_due(now + 20 * DAY, now, 5));
    assert_true(mu_agent_renew_due(now + 5 * DAY, now, 5));
    assert_false(mu_agent_renew_due(now + DAY, now, 0)); /* 0: never */
    assert_false(mu_agent_renew_due(now - DAY, now, 0));
}

static gnutls_x509_privkey_t key_of(const char *pem)
{
    gnutls_x509_privkey_t k;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    assert_int_equal(gnutls_x509_privkey_init(&k), 0);
    assert_int_equal(gnutls_x509_privkey_import(k, &d, GNUTLS_X509_FMT_PEM), 0);
    return k;
}

static char *export_crt(gnutls_x509_crt_t crt)
{
    gnutls_datum_t out = {NULL, 0};
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out), 0);
    char *pem = mu_xasprintf("%.*s", (int)out.size, (const char *)out.data);
    gnutls_free(out.data);
    return pem;
}

/* A certificate for csr_pem's key, subject cn, valid [from, to] (s), serial byte serial,
 * signed by (ca, ca_key); ca NULL: a self-signed CA with ca_key. */
static char *sign(const char *csr_pem, const char *cn, time_t from, time_t to, unsigned char serial,
                  gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key)
{
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    if (csr_pem) {
        gnutls_x509_crq_t crq;
        gnutls_datum_t d = {(unsigned char *)csr_pem, (unsigned)strlen(csr_pem)};
        assert_int_equal(gnutls_x509_crq_init(&crq), 0);
        assert_int_equal(gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_PEM), 0);
        assert_int_equal(gnutls_x509_crt_set_crq(crt, crq), 0);
        gnutls_x509_crq_deinit(crq);
    } else {
        assert_int_equal(gnutls_x509_crt_set_key(crt, ca_key), 0);
        assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, 1, -1), 0);
        assert_int_equal(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN), 0);
    }
    assert_int_equal(
        gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)), 0);
    assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(crt, &serial, 1), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(crt, from), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, to), 0);
    assert_int_equal(gnutls_x509_crt_sign2(crt, ca ? ca : crt, ca_key, GNUTLS_DIG_SHA256, 0), 0);
    char *pem = export_crt(crt);
    gnutls_x509_crt_deinit(crt);
    return pem;
}

struct ca {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    char *pem;
};

static void ca_make(struct ca *ca, const char *name)
{
    char *kp = NULL, *unused = NULL;
    struct mu_err err = {0};
    assert_int_equal(mu_agent_csr_new("ca", &kp, &unused, &err), 0);
    ca->key = key_of(kp);
    time_t now = time(NULL);
    ca->pem = sign(NULL, name, now - 3600, now + 3650 * 86400, 1, NULL, ca->key);
    gnutls_datum_t d = {(unsigned char *)ca->pem, (unsigned)strlen(ca->pem)};
    assert_int_equal(gnutls_x509_crt_init(&ca->crt), 0);
    assert_int_equal(gnutls_x509_crt_import(ca->crt, &d, GNUTLS_X509_FMT_PEM), 0);
    mu_agent_key_free(kp);
    free(unused);
}

static void ca_clear(struct ca *ca)
{
    gnutls_x509_crt_deinit(ca->crt);
    gnutls_x509_privkey_deinit(ca->key);
    free(ca->pem);
}

struct fx {
    char dir[64], cert[128], key[128], ca[128];
    struct ca ca_a, ca_b;
};

static int setup(void **state)
{
    struct fx *f = mu_xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mu-agent-certs-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cert, sizeof f->cert, "%s/agent.pem", f->dir);
    snprintf(f->key, sizeof f->key, "%s/agent.key", f->dir);
    snprintf(f->ca, sizeof f->ca, "%s/ca.pem", f->dir);
    ca_make(&f->ca_a, "CA A");
    ca_make(&f->ca_b, "CA B");
    assert_int_equal(mu_write_file_atomic(f->ca, f->ca_a.pem, strlen(f->ca_a.pem), 0644), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    const char *names[] = {"agent.pem", "agent.key", "ca.pem", "agent.pem.new", "agent.key.new"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[200];
        snprintf(p, sizeof p, "%s/%s", f->dir, names[i]);
        unlink(p);
    }
    rmdir(f->dir);
    ca_clear(&f->ca_a);
    ca_clear(&f->ca_b);
    free(f);
    return 0;
}

/* A key and a certificate for it (node, CA A, valid now, serial byte serial). */
struct pair {
    char *key, *cert;
};

static struct pair pair_new(struct fx *f, const char *node, unsigned char serial)
{
    struct pair p = {0};
    char *csr = NULL;
    struct mu_err err = {0};
    assert_int_equal(mu_agent_csr_new(node, &p.key, &csr, &err), 0);
    time_t now = time(NULL);
    p.cert = sign(csr, node, now - 60, now + 90 * 86400, serial, f->ca_a.crt, f->ca_a.key);
    free(csr);
    return p;
}

static void pair_free(struct pair *p)
{
    mu_agent_key_free(p->key);
    free(p->cert);
}

static void test_csr_new(void **state)
{
    (void)state;
    char *key = NULL, *csr = NULL;
    struct mu_err err = {0};
    assert_int_equal(mu_agent_csr_new("node-7", &key, &csr, &err), 0);
    assert_non_null(strstr(key, "PRIVATE KEY"));
    gnutls_x509_crq_t crq;
    gnutls_datum_t d = {(unsigned char *)csr, (unsigned)strlen(csr)};
    assert_int_equal(gnutls_x509_crq_init(&crq), 0);
    assert_int_equal(gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_PEM), 0);
    assert_int_equal(gnutls_x509_crq_verify(crq, 0), 0);
    char cn[64];
    size_t n = sizeof cn;
    assert_int_equal(gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &n),
                     0);
    assert_string_equal(cn, "node-7");
    unsigned bits = 0;
    assert_int_equal(gnutls_x509_crq_get_pk_algorithm(crq, &bits), GNUTLS_PK_ECDSA);
    assert_int_equal(bits, 256);
    /* The request carries the public key only. */
    assert_null(strstr(csr, "PRIVATE"));
    gnutls_x509_crq_deinit(crq);
    char *key2 = NULL, *csr2 = NULL;
    assert_int_equal(mu_agent_csr_new("node-7", &key2, &csr2, &err), 0);
    assert_string_not_equal(key, key2); /* a new key each time */
    mu_agent_key_free(key);
    mu_agent_key_free(key2);
    free(csr);
    free(csr2);
}

static void test_cert_check(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    struct mu_agent_cert_info info;
    struct pair p = pair_new(f, "node-1", 0x42);
    struct pair q = pair_new(f, "node-1", 0x43);
    int64_t now = mu_now_ms();
    assert_int_equal(mu_agent_cert_check(p.cert, p.key, f->ca, "node-1", now, &info, &err), 0);
    assert_string_equal(info.serial, "42");
    assert_true(info.not_after_ms > now + 89 * DAY);
    /* Another node's, another key's, not yet / no longer valid, another CA's, garbage. */
    assert_int_equal(mu_agent_cert_check(p.cert, p.key, f->ca, "node-2", now, NULL, &err),
                     MU_EINVAL);
    assert_int_equal(mu_agent_cert_check(p.cert, q.key, f->ca, "node-1", now, NULL, &err),
                     MU_EINVAL);
    assert_int_equal(
        mu_agent_cert_check(p.cert, p.key, f->ca, "node-1", now + 91 * DAY, NULL, &err), MU_EINVAL);
    char *csr = NULL, *key = NULL;
    assert_int_equal(mu_agent_csr_new("node-1", &key, &csr, &err), 0);
    time_t t = time(NULL);
    char *foreign = sign(csr, "node-1", t - 60, t + 86400, 7, f->ca_b.crt, f->ca_b.key);
    mu_err_clear(&err);
    assert_int_equal(mu_agent_cert_check(foreign, key, f->ca, "node-1", now, NULL, &err),
                     MU_EINVAL);
    assert_non_null(strstr(err.detail, "CA"));
    assert_int_equal(mu_agent_cert_check("junk", key, f->ca, "node-1", now, NULL, &err), MU_EINVAL);
    free(foreign);
    free(csr);
    mu_agent_key_free(key);
    pair_free(&p);
    pair_free(&q);
}

static void put(const char *path, const char *text)
{
    assert_int_equal(mu_write_file_atomic(path, text, strlen(text), 0600), 0);
}

static char *get(const char *path)
{
    size_t n = 0;
    char *s = mu_read_file(path, 1 << 20, &n);
    assert_non_null(s);
    return s;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* The installed pair is exactly p, nothing is left over, both 0600. */
static void assert_installed(struct fx *f, const struct pair *p)
{
    char kn[200], cn[200];
    snprintf(kn, sizeof kn, "%s.new", f->key);
    snprintf(cn, sizeof cn, "%s.new", f->cert);
    char *k = get(f->key), *c = get(f->cert);
    assert_string_equal(k, p->key);
    assert_string_equal(c, p->cert);
    mu_agent_key_free(k);
    free(c);
    assert_false(exists(kn));
    assert_false(exists(cn));
    struct stat st;
    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(f->cert, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_swap_and_recovery(void **state)
{
    struct fx *f = *state;
    struct mu_err err = {0};
    enum mu_agent_recovery rec;
    char kn[200], cn[200];
    snprintf(kn, sizeof kn, "%s.new", f->key);
    snprintf(cn, sizeof cn, "%s.new", f->cert);
    struct pair old = pair_new(f, "node-1", 1), next = pair_new(f, "node-1", 2);
    struct pair other = pair_new(f, "node-1", 3);

    /* Nothing to recover. */
    put(f->key, old.key);
    put(f->cert, old.cert);
    assert_int_equal(mu_agent_certs_recover(f->cert, f->key, &rec, &err), 0);
    assert_int_equal(rec, MU_AGENT_RECOVERY_NONE);
    assert_installed(f, &old);

    /* A normal install. */
    assert_int_equal(mu_agent_certs_install(f->cert, f->key, next.cert, next.key, &err), 0);
    assert_installed(f, &next);
    struct mu_agent_cert_info info;
    assert_int_equal(mu_agent_cert_read(f->cert, &info, &err), 0);
    assert_string_equal(info.serial, "02");

    /* Crash after step 1 (only the new key): undone, the old pair stands. */
    put(f->key, old.key);
    put(f->cert, old.cert);
    put(kn, next.key);
    assert_int_equal(mu_agent_certs_recover(f->cert, f->key, &rec, &err), 0);
    assert_int_equal(rec, MU_AGENT_RECOVERY_DISCARDED);
    assert_installed(f, &old);

    /* Crash after step 2 (new key and certificate written, nothing renamed): completed. */
    put(kn, next.key);
    put(cn, next.cert);
    assert_int_equal(mu_agent_certs_recover(f->cert, f->key, &rec, &err), 0);
    assert_int_equal(rec, MU_AGENT_RECOVERY_COMPLETED);
    assert_installed(f, &next);

    /* Crash between the renames (key is new, certificate still old): completed. */
    put(f->key, next.key);
    put(f->cert, old.cert);
    put(cn, next.cert);
    assert_int_equal(mu_agent_certs_recover(f->cert, f->key, &rec, &err), 0);
    assert_int_equal(rec, MU_AGENT_RECOVERY_COMPLETED);
    assert_installed(f, &next);

    /* A left-over certificate that matches neither key: removed, the pair in place stays. */
    put(f->key, old.key);
    put(f->cert, old.cert);
    put(kn, next.key);
    put(cn, other.cert);
    assert_int_equal(mu_agent_certs_recover(f->cert, f->key, &rec, &err), 0);
    assert_int_equal(rec, MU_AGENT_RECOVERY_DISCARDED);
    assert_installed(f, &old);
    put(cn, "not a certificate");
    assert_int_equal(mu_agent_certs_recover(f->cert, f->key, &rec, &err), 0);
    assert_int_equal(rec, MU_AGENT_RECOVERY_DISCARDED);
    assert_installed(f, &old);

    pair_free(&old);
    pair_free(&next);
    pair_free(&other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_csr_new),
        cmocka_unit_test_setup_teardown(test_cert_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_and_recovery, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
