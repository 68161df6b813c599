/* fleet/pki: the controller's small certificate authority over the GnuTLS x509 API.
 * Everything is ECDSA P-256 signed with SHA-256. This file never logs: failures go back
 * through struct mu_err and the caller (main, enrolment) decides. */
#include "fleet/pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "mutualis/util.h"
#include "mutualis/validate.h"

#define PKI_FILE_MAX        (256 * 1024)
#define PKI_DAY_S           ((time_t)86400)
#define PKI_CA_DAYS         3650
#define PKI_SERVER_DAYS     365
#define PKI_RENEW_BEFORE_S  (30 * PKI_DAY_S)
#define PKI_BACKDATE_S      ((time_t)300) /* tolerate a little clock skew on the peers */
#define PKI_CLIENT_DAYS_MAX 3650
#define PKI_ORG             "Mutualis"

struct pki_ca {
    gnutls_x509_crt_t crt;
    gnutls_x509_privkey_t key;
    char *pem; /* PEM text of crt */
};

static void ca_clear(struct pki_ca *ca)
{
    if (ca->crt)
        gnutls_x509_crt_deinit(ca->crt);
    if (ca->key)
        gnutls_x509_privkey_deinit(ca->key);
    free(ca->pem);
    memset(ca, 0, sizeof *ca);
}

static int tls_fail(struct mu_err *err, const char *what, int rc)
{
    return mu_err_set(err, MU_EINTERNAL, "certificate authority: %s: %s", what,
                      gnutls_strerror(rc));
}

void mu_pki_files_clear(struct mu_pki_files *f)
{
    if (!f)
        return;
    free(f->ca_pem);
    free(f->server_pem);
    free(f->server_key);
    f->ca_pem = f->server_pem = f->server_key = NULL;
}

/* ---- names ------------------------------------------------------------------------ */

/* 4 or 16 bytes into ip if name is an IPv4/IPv6 literal; 0 otherwise. */
static size_t name_ip(const char *name, unsigned char ip[16])
{
    if (inet_pton(AF_INET, name, ip) == 1)
        return 4;
    if (inet_pton(AF_INET6, name, ip) == 1)
        return 16;
    return 0;
}

/* A DNS host name: dot-separated labels of letters, digits and inner hyphens. */
static bool name_dns_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = name[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || name[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && label > 0))
            return false;
        label++;
    }
    return true;
}

static int names_check(const char *const *names, struct mu_err *err)
{
    if (!names || !names[0])
        return mu_err_set(err, MU_EINVAL, "the server certificate needs at least one name");
    for (size_t i = 0; names[i]; i++) {
        unsigned char ip[16];
        if (name_ip(names[i], ip) == 0 && !name_dns_valid(names[i]))
            return mu_err_set(err, MU_EINVAL,
                              "server name \"%.200s\" is neither an IP address nor a DNS name",
                              names[i]);
    }
    return MU_OK;
}

/* True if one subjectAltName of crt is name (IP compared as bytes, DNS ignoring case). */
static bool crt_covers(gnutls_x509_crt_t crt, const char *name)
{
    unsigned char ip[16];
    size_t iplen = name_ip(name, ip);
    size_t namelen = strlen(name);
    for (unsigned seq = 0;; seq++) {
        char buf[512];
        size_t size = sizeof buf;
        unsigned critical = 0;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf, &size, &critical);
        if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue;
        if (type < 0)
            return false;
        if (iplen && type == GNUTLS_SAN_IPADDRESS && size == iplen && memcmp(buf, ip, iplen) == 0)
            return true;
        if (!iplen && type == GNUTLS_SAN_DNSNAME && size == namelen &&
            strncasecmp(buf, name, namelen) == 0)
            return true;
    }
}

/* ---- building blocks -------------------------------------------------------------- */

static int key_generate(gnutls_x509_privkey_t *ret, struct mu_err *err)
{
    gnutls_x509_privkey_t key = NULL;
    int rc = gnutls_x509_privkey_init(&key);
    if (rc < 0)
        return tls_fail(err, "key init", rc);
    rc = gnutls_x509_privkey_generate2(
        key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0);
    if (rc < 0) {
        gnutls_x509_privkey_deinit(key);
        return tls_fail(err, "key generation", rc);
    }
    *ret = key;
    return MU_OK;
}

static char *datum_steal(gnutls_datum_t *d)
{
    char *s = mu_xstrndup((const char *)d->data, d->size);
    gnutls_free(d->data);
    d->data = NULL;
    return s;
}

static int crt_export(gnutls_x509_crt_t crt, char **ret, struct mu_err *err)
{
    gnutls_datum_t d = {NULL, 0};
    int rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d);
    if (rc < 0)
        return tls_fail(err, "certificate export", rc);
    *ret = datum_steal(&d);
    return MU_OK;
}

static int key_export(gnutls_x509_privkey_t key, char **ret, struct mu_err *err)
{
    gnutls_datum_t d = {NULL, 0};
    int rc =
        gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d);
    if (rc < 0)
        return tls_fail(err, "key export", rc);
    *ret = datum_steal(&d);
    return MU_OK;
}

/* Version, a random positive 128-bit serial (hex into serial_hex[33]), and the validity
 * window [now - skew, min(now + days, not_after_max)]. */
static int crt_base(gnutls_x509_crt_t crt, unsigned days, time_t not_after_max, char serial_hex[33])
{
    unsigned char serial[16];
    mu_random_bytes(serial, sizeof serial);
    serial[0] &= 0x7f; /* positive */
    if (serial[0] == 0)
        serial[0] = 0x01; /* and minimally encoded */
    mu_hex_encode(serial, sizeof serial, serial_hex);
    time_t now = time(NULL);
    time_t not_after = now + (time_t)days * PKI_DAY_S;
    if (not_after_max > 0 && not_after > not_after_max)
        not_after = not_after_max;
    int rc = gnutls_x509_crt_set_version(crt, 3);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_activation_time(crt, now - PKI_BACKDATE_S);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_expiration_time(crt, not_after);
    return rc;
}

static int crt_set_names(gnutls_x509_crt_t crt, const char *cn)
{
    int rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, PKI_ORG,
                                           strlen(PKI_ORG));
    if (rc >= 0)
        rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
    return rc;
}

/* Subject key id from the certificate's own public key; authority key id from issuer. */
static int crt_set_key_ids(gnutls_x509_crt_t crt, gnutls_x509_crt_t issuer)
{
    unsigned char id[64];
    size_t size = sizeof id;
    int rc = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &size);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_subject_key_id(crt, id, size);
    if (rc < 0 || !issuer)
        return rc;
    size = sizeof id;
    unsigned critical = 0;
    rc = gnutls_x509_crt_get_subject_key_id(issuer, id, &size, &critical);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_authority_key_id(crt, id, size);
    return rc;
}

static int crt_import(const char *pem, size_t len, gnutls_x509_crt_t *ret)
{
    gnutls_x509_crt_t crt = NULL;
    int rc = gnutls_x509_crt_init(&crt);
    if (rc < 0)
        return rc;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
    rc = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        gnutls_x509_crt_deinit(crt);
        return rc;
    }
    *ret = crt;
    return 0;
}

static int key_import(const char *pem, size_t len, gnutls_x509_privkey_t *ret)
{
    gnutls_x509_privkey_t key = NULL;
    int rc = gnutls_x509_privkey_init(&key);
    if (rc < 0)
        return rc;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
    rc = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        gnutls_x509_privkey_deinit(key);
        return rc;
    }
    *ret = key;
    return 0;
}

/* True if key is the private half of crt's public key. */
static bool key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
    unsigned char a[64], b[64];
    size_t alen = sizeof a, blen = sizeof b;
    if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &alen) < 0 ||
        gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &blen) < 0)
        return false;
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* Reads path; 1 if it does not exist, MU_EIO on other failures. */
static int file_read(const char *path, char **ret, size_t *ret_len, struct mu_err *err)
{
    size_t len = 0;
    char *text = mu_read_file(path, PKI_FILE_MAX, &len);
    if (!text) {
        if (errno == ENOENT)
            return 1;
        return mu_err_set(err, MU_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    *ret = text;
    *ret_len = len;
    return MU_OK;
}

static int file_write(const char *path, const char *text, unsigned mode, struct mu_err *err)
{
    int r = mu_write_file_atomic(path, text, strlen(text), mode);
    if (r < 0)
        return mu_err_set(err, MU_EIO, "cannot write %s: %s", path, strerror(-r));
    return MU_OK;
}

/* ---- the CA ----------------------------------------------------------------------- */

static int ca_create(const char *crt_path, const char *key_path, struct pki_ca *ca,
                     struct mu_err *err)
{
    MU_AUTOFREE char *key_pem = NULL;
    char serial[33];
    int r = key_generate(&ca->key, err);
    if (r < 0)
        return r;
    int rc = gnutls_x509_crt_init(&ca->crt);
    if (rc < 0)
        return tls_fail(err, "certificate init", rc);
    /* A short random suffix tells one installation's CA from another's. */
    unsigned char tag[4];
    char tag_hex[9], cn[64];
    mu_random_bytes(tag, sizeof tag);
    mu_hex_encode(tag, sizeof tag, tag_hex);
    snprintf(cn, sizeof cn, "Mutualis CA %s", tag_hex);
    rc = crt_base(ca->crt, PKI_CA_DAYS, 0, serial);
    if (rc >= 0)
        rc = crt_set_names(ca->crt, cn);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_key(ca->crt, ca->key);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_basic_constraints(ca->crt, 1, 0);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_key_usage(ca->crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
    if (rc >= 0)
        rc = crt_set_key_ids(ca->crt, NULL);
    if (rc >= 0)
        rc = gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0);
    if (rc < 0)
        return tls_fail(err, "CA certificate", rc);
    if ((r = crt_export(ca->crt, &ca->pem, err)) < 0 ||
        (r = key_export(ca->key, &key_pem, err)) < 0)
        return r;
    /* The key first: ca.pem present means the pair is complete. */
    if ((r = file_write(key_path, key_pem, 0600, err)) < 0)
        return r;
    return file_write(crt_path, ca->pem, 0644, err);
}

/* Loads dir/ca.pem and dir/ca.key, creating both if ca.pem does not exist yet. With
 * create false a missing CA is an error. */
static int ca_open(const char *dir, bool create, struct pki_ca *ret, struct mu_err *err)
{
    MU_AUTOFREE char *crt_path = mu_xasprintf("%s/ca.pem", dir);
    MU_AUTOFREE char *key_path = mu_xasprintf("%s/ca.key", dir);
    MU_AUTOFREE char *key_pem = NULL;
    struct pki_ca ca = {0};
    size_t crt_len = 0, key_len = 0;
    int r = file_read(crt_path, &ca.pem, &crt_len, err);
    if (r < 0)
        goto out;
    if (r == 1) {
        if (!create) {
            r = mu_err_set(err, MU_EIO, "no certificate authority in %s (ca.pem missing)", dir);
            goto out;
        }
        r = ca_create(crt_path, key_path, &ca, err);
        goto out;
    }
    r = file_read(key_path, &key_pem, &key_len, err);
    if (r == 1)
        r = mu_err_set(err, MU_EIO, "%s exists but %s is missing: restore it from a backup",
                       crt_path, key_path);
    if (r < 0)
        goto out;
    if (crt_import(ca.pem, crt_len, &ca.crt) < 0) {
        r = mu_err_set(err, MU_EIO, "%s is not a PEM certificate", crt_path);
        goto out;
    }
    if (key_import(key_pem, key_len, &ca.key) < 0) {
        r = mu_err_set(err, MU_EIO, "%s is not a PEM private key", key_path);
        goto out;
    }
    unsigned is_ca = 0, critical = 0;
    int pathlen = 0;
    if (gnutls_x509_crt_get_basic_constraints(ca.crt, &critical, &is_ca, &pathlen) < 0 || !is_ca) {
        r = mu_err_set(err, MU_EIO, "%s is not a CA certificate", crt_path);
        goto out;
    }
    if (!key_matches(ca.crt, ca.key)) {
        r = mu_err_set(err, MU_EIO, "%s does not belong to %s", key_path, crt_path);
        goto out;
    }
    r = MU_OK;
out:
    if (r < 0)
        ca_clear(&ca);
    else
        *ret = ca;
    return r;
}

/* ---- the server certificate ------------------------------------------------------- */

/* True if the stored server certificate and key can be kept: they match, chain to the CA,
 * cover every name, and stay valid for more than PKI_RENEW_BEFORE_S. */
static bool server_reusable(const struct pki_ca *ca, const char *crt_pem, size_t crt_len,
                            const char *key_pem, size_t key_len, const char *const *names)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t key = NULL;
    bool ok = false;
    if (crt_import(crt_pem, crt_len, &crt) < 0 || key_import(key_pem, key_len, &key) < 0)
        goto out;
    if (!key_matches(crt, key))
        goto out;
    unsigned status = 0;
    gnutls_x509_crt_t trust[1] = {ca->crt};
    if (gnutls_x509_crt_verify(crt, trust, 1, 0, &status) < 0 || status != 0)
        goto out;
    time_t expires = gnutls_x509_crt_get_expiration_time(crt);
    if (expires == (time_t)-1 || expires - time(NULL) < PKI_RENEW_BEFORE_S)
        goto out;
    for (size_t i = 0; names[i]; i++)
        if (!crt_covers(crt, names[i]))
            goto out;
    ok = true;
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return ok;
}

static int server_issue(const struct pki_ca *ca, const char *const *names, char **ret_chain,
                        char **ret_key, struct mu_err *err)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    MU_AUTOFREE char *leaf = NULL;
    char serial[33];
    int r = key_generate(&key, err);
    if (r < 0)
        goto out;
    int rc = gnutls_x509_crt_init(&crt);
    if (rc >= 0)
        rc = crt_base(crt, PKI_SERVER_DAYS, gnutls_x509_crt_get_expiration_time(ca->crt), serial);
    /* The subject names the first DNS name (clients look at SANs; people at the CN). */
    const char *cn = names[0];
    for (size_t i = 0; names[i]; i++) {
        unsigned char ip[16];
        if (name_ip(names[i], ip) == 0) {
            cn = names[i];
            break;
        }
    }
    if (rc >= 0)
        rc = crt_set_names(crt, cn);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_key(crt, key);
    for (size_t i = 0; rc >= 0 && names[i]; i++) {
        unsigned char ip[16];
        size_t iplen = name_ip(names[i], ip);
        if (iplen)
            rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip,
                                                      (unsigned)iplen, GNUTLS_FSAN_APPEND);
        else
            rc = gnutls_x509_crt_set_subject_alt_name(
                crt, GNUTLS_SAN_DNSNAME, names[i], (unsigned)strlen(names[i]), GNUTLS_FSAN_APPEND);
    }
    if (rc >= 0)
        rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
    if (rc >= 0)
        rc = crt_set_key_ids(crt, ca->crt);
    if (rc >= 0)
        rc = gnutls_x509_crt_sign2(crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0);
    if (rc < 0) {
        r = tls_fail(err, "server certificate", rc);
        goto out;
    }
    if ((r = crt_export(crt, &leaf, err)) < 0 || (r = key_export(key, ret_key, err)) < 0)
        goto out;
    *ret_chain = mu_xasprintf("%s%s", leaf, ca->pem);
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return r;
}

int mu_pki_ensure(const char *dir, const char *const *names, struct mu_pki_files *ret,
                  struct mu_err *err)
{
    MU_AUTOFREE char *crt_path = mu_xasprintf("%s/server.pem", dir);
    MU_AUTOFREE char *key_path = mu_xasprintf("%s/server.key", dir);
    char *chain = NULL, *key = NULL;
    size_t chain_len = 0, key_len = 0;
    struct pki_ca ca = {0};
    int r = names_check(names, err);
    if (r < 0)
        return r;
    r = mu_mkdir_p(dir, 0700);
    if (r == 0 && chmod(dir, 0700) != 0)
        r = -errno;
    if (r < 0)
        return mu_err_set(err, MU_EIO, "cannot create %s (mode 0700): %s", dir, strerror(-r));
    if ((r = ca_open(dir, true, &ca, err)) < 0)
        goto out;

    int rc = file_read(crt_path, &chain, &chain_len, err);
    int rk = rc == 0 ? file_read(key_path, &key, &key_len, err) : 1;
    if (rc < 0 || rk < 0) {
        r = rc < 0 ? rc : rk;
        goto out;
    }
    if (rc == 0 && rk == 0 && server_reusable(&ca, chain, chain_len, key, key_len, names)) {
        r = MU_OK;
        goto out;
    }
    free(chain);
    free(key);
    chain = key = NULL;
    if ((r = server_issue(&ca, names, &chain, &key, err)) < 0)
        goto out;
    /* The key first: a crash in between leaves a pair that does not match, which the
     * next start re-issues. */
    if ((r = file_write(key_path, key, 0600, err)) < 0 ||
        (r = file_write(crt_path, chain, 0644, err)) < 0)
        goto out;
    r = MU_OK;
out:
    if (r == MU_OK) {
        ret->ca_pem = MU_STEAL(ca.pem);
        ret->server_pem = MU_STEAL(chain);
        ret->server_key = MU_STEAL(key);
    }
    free(chain);
    free(key);
    ca_clear(&ca);
    return r;
}

/* ---- client certificates ---------------------------------------------------------- */

/* The CSR's single common name must be exactly cn. */
static int csr_check_cn(gnutls_x509_crq_t crq, const char *cn, struct mu_err *err)
{
    char buf[256];
    size_t size = sizeof buf;
    int rc = gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size);
    if (rc < 0)
        return mu_err_setf(err, MU_EINVAL, "csr", "the certificate request has no common name");
    char extra[256];
    size_t extra_size = sizeof extra;
    if (gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 1, 0, extra, &extra_size) !=
        GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
        return mu_err_setf(err, MU_EINVAL, "csr",
                           "the certificate request has more than one common name");
    if (size != strlen(cn) || memcmp(buf, cn, size) != 0)
        return mu_err_setf(err, MU_EINVAL, "csr",
                           "the certificate request names \"%.100s\", expected \"%.100s\"", buf,
                           cn);
    return MU_OK;
}

static int csr_check_key(gnutls_x509_crq_t crq, struct mu_err *err)
{
    unsigned bits = 0;
    int pk = gnutls_x509_crq_get_pk_algorithm(crq, &bits);
    if (pk == GNUTLS_PK_ECDSA || pk == GNUTLS_PK_EDDSA_ED25519 ||
        (pk == GNUTLS_PK_RSA && bits >= 2048))
        return MU_OK;
    return mu_err_setf(err, MU_EINVAL, "csr",
                       "the certificate request key must be ECDSA, Ed25519 or RSA of at least "
                       "2048 bits");
}

/* The 0 / MU_EFORBIDDEN / MU_EINVAL of mu_pki_csr_check on an imported request. */
static int csr_check_names(gnutls_x509_crq_t crq, const char *cn, struct mu_err *err)
{
    char buf[256];
    size_t size = sizeof buf;
    if (gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size) < 0)
        return mu_err_setf(err, MU_EINVAL, "csr", "the certificate request has no common name");
    char extra[256];
    size_t extra_size = sizeof extra;
    if (gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 1, 0, extra, &extra_size) !=
        GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
        return mu_err_setf(err, MU_EINVAL, "csr",
                           "the certificate request has more than one common name");
    if (size != strlen(cn) || memcmp(buf, cn, size) != 0 || memchr(buf, '\0', size))
        return mu_err_setf(err, MU_EFORBIDDEN, "csr",
                           "the certificate request names \"%.100s\", but this certificate is "
                           "node %.100s's",
                           mu_utf8_valid(buf, strnlen(buf, size)) ? buf : "?", cn);
    return MU_OK;
}

int mu_pki_csr_check(const char *csr_pem, const char *cn, struct mu_err *err)
{
    gnutls_x509_crq_t crq = NULL;
    int r;
    if (!cn || !*cn)
        return mu_err_setf(err, MU_EINVAL, "cn", "a client certificate needs a common name");
    if (!csr_pem || !*csr_pem || gnutls_x509_crq_init(&crq) < 0)
        return mu_err_setf(err, MU_EINVAL, "csr", "no certificate request");
    gnutls_datum_t d = {(unsigned char *)csr_pem, (unsigned)strlen(csr_pem)};
    if (gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_PEM) < 0)
        r = mu_err_setf(err, MU_EINVAL, "csr", "the certificate request is not a PEM CSR");
    else if (gnutls_x509_crq_verify(crq, 0) < 0)
        r = mu_err_setf(err, MU_EINVAL, "csr",
                        "the certificate request's signature does not verify");
    else if ((r = csr_check_key(crq, err)) == MU_OK)
        r = csr_check_names(crq, cn, err);
    gnutls_x509_crq_deinit(crq);
    return r;
}

int mu_pki_cert_not_after(const char *cert_pem, int64_t *ret_ms, struct mu_err *err)
{
    gnutls_x509_crt_t crt = NULL;
    int r = MU_OK;
    if (!cert_pem || gnutls_x509_crt_init(&crt) < 0)
        return mu_err_set(err, MU_EINVAL, "no certificate");
    gnutls_datum_t d = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
    time_t t = (time_t)-1;
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0 ||
        (t = gnutls_x509_crt_get_expiration_time(crt)) == (time_t)-1)
        r = mu_err_set(err, MU_EINVAL, "the certificate is not a PEM X.509 certificate");
    gnutls_x509_crt_deinit(crt);
    if (r == MU_OK)
        *ret_ms = (int64_t)t * 1000;
    return r;
}

int mu_pki_sign_client(const char *dir, const char *csr_pem, const char *cn, unsigned days,
                       char **ret_cert_pem, char ret_serial[41], struct mu_err *err)
{
    struct pki_ca ca = {0};
    gnutls_x509_crq_t crq = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_x509_crt_t crt = NULL;
    char serial[33];
    char *pem = NULL;
    int r;
    if (!cn || !*cn) {
        r = mu_err_setf(err, MU_EINVAL, "cn", "a client certificate needs a common name");
        goto out;
    }
    if (days < 1 || days > PKI_CLIENT_DAYS_MAX) {
        r = mu_err_setf(err, MU_EINVAL, "days", "validity must be between 1 and %d days",
                        PKI_CLIENT_DAYS_MAX);
        goto out;
    }
    if (!csr_pem || gnutls_x509_crq_init(&crq) < 0) {
        r = mu_err_setf(err, MU_EINVAL, "csr", "no certificate request");
        goto out;
    }
    gnutls_datum_t d = {(unsigned char *)csr_pem, (unsigned)strlen(csr_pem)};
    if (gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_PEM) < 0) {
        r = mu_err_setf(err, MU_EINVAL, "csr", "the certificate request is not a PEM CSR");
        goto out;
    }
    if (gnutls_x509_crq_verify(crq, 0) < 0) {
        r = mu_err_setf(err, MU_EINVAL, "csr",
                        "the certificate request's signature does not verify");
        goto out;
    }
    if ((r = csr_check_cn(crq, cn, err)) < 0 || (r = csr_check_key(crq, err)) < 0)
        goto out;
    if ((r = ca_open(dir, false, &ca, err)) < 0)
        goto out;
    /* Only the public key is taken from the request: its subject and extensions are the
     * CA's choice, so a request cannot ask for more than client authentication. */
    int rc = gnutls_pubkey_init(&pub);
    if (rc >= 0)
        rc = gnutls_pubkey_import_x509_crq(pub, crq, 0);
    if (rc >= 0)
        rc = gnutls_x509_crt_init(&crt);
    if (rc >= 0)
        rc = crt_base(crt, days, gnutls_x509_crt_get_expiration_time(ca.crt), serial);
    if (rc >= 0)
        rc = crt_set_names(crt, cn);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_pubkey(crt, pub);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
    if (rc >= 0)
        rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0);
    if (rc >= 0)
        rc = crt_set_key_ids(crt, ca.crt);
    if (rc >= 0)
        rc = gnutls_x509_crt_sign2(crt, ca.crt, ca.key, GNUTLS_DIG_SHA256, 0);
    if (rc < 0) {
        r = tls_fail(err, "client certificate", rc);
        goto out;
    }
    if ((r = crt_export(crt, &pem, err)) < 0)
        goto out;
    *ret_cert_pem = MU_STEAL(pem);
    snprintf(ret_serial, 41, "%s", serial);
    r = MU_OK;
out:
    free(pem);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    ca_clear(&ca);
    return r;
}
