/* The agent's key and certificate: renewal window, key and request generation, checks of
 * the issued certificate, and the crash-safe swap (certs.h). */
#include "certs.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mutualis/util.h"

#define DAY_MS        ((int64_t)86400 * 1000)
#define CERT_FILE_MAX (64 * 1024)
#define KEY_ID_MAX    64

bool mu_agent_renew_due(int64_t not_after_ms, int64_t now_ms, int64_t renew_before_days)
{
    if (renew_before_days <= 0)
        return false;
    return not_after_ms - now_ms <= renew_before_days * DAY_MS;
}

static int tls_fail(struct mu_err *err, const char *what, int rc)
{
    return mu_err_set(err, MU_EINVAL, "%s: %s", what, gnutls_strerror(rc));
}

static int crt_import(const char *pem, gnutls_x509_crt_t *ret, struct mu_err *err)
{
    gnutls_x509_crt_t crt = NULL;
    int rc = gnutls_x509_crt_init(&crt);
    if (rc >= 0) {
        gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
        rc = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
    }
    if (rc < 0) {
        if (crt)
            gnutls_x509_crt_deinit(crt);
        return tls_fail(err, "not a PEM certificate", rc);
    }
    *ret = crt;
    return 0;
}

static int key_import(const char *pem, gnutls_x509_privkey_t *ret, struct mu_err *err)
{
    gnutls_x509_privkey_t key = NULL;
    int rc = gnutls_x509_privkey_init(&key);
    if (rc >= 0) {
        gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
        rc = gnutls_x509_privkey_import(key, &d, GNUTLS_X509_FMT_PEM);
        if (rc < 0) /* certtool writes PKCS#8 too */
            rc = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    }
    if (rc < 0) {
        if (key)
            gnutls_x509_privkey_deinit(key);
        return tls_fail(err, "not a PEM private key", rc);
    }
    *ret = key;
    return 0;
}

static void crt_info(gnutls_x509_crt_t crt, struct mu_agent_cert_info *ret)
{
    unsigned char serial[20];
    size_t n = sizeof serial;
    memset(ret, 0, sizeof *ret);
    if (gnutls_x509_crt_get_serial(crt, serial, &n) >= 0 && n <= sizeof serial)
        mu_hex_encode(serial, n, ret->serial);
    ret->not_after_ms = (int64_t)gnutls_x509_crt_get_expiration_time(crt) * 1000;
}

int mu_agent_cert_read(const char *path, struct mu_agent_cert_info *ret, struct mu_err *err)
{
    size_t len = 0;
    MU_AUTOFREE char *pem = mu_read_file(path, CERT_FILE_MAX, &len);
    gnutls_x509_crt_t crt = NULL;
    if (!pem)
        return mu_err_set(err, MU_EIO, "%s: %s", path, strerror(errno));
    struct mu_err sub = {0};
    if (crt_import(pem, &crt, &sub) < 0)
        return mu_err_set(err, MU_EINVAL, "%s: %s", path, sub.detail);
    crt_info(crt, ret);
    gnutls_x509_crt_deinit(crt);
    return 0;
}

void mu_agent_key_free(char *key_pem)
{
    if (!key_pem)
        return;
    explicit_bzero(key_pem, strlen(key_pem));
    free(key_pem);
}

/* A gnutls-allocated datum as a NUL-terminated string of ours. */
static char *datum_str(gnutls_datum_t *d, bool secret)
{
    char *s = mu_xmalloc((size_t)d->size + 1);
    memcpy(s, d->data, d->size);
    s[d->size] = '\0';
    if (secret)
        explicit_bzero(d->data, d->size);
    gnutls_free(d->data);
    d->data = NULL;
    return s;
}

int mu_agent_csr_new(const char *node, char **ret_key_pem, char **ret_csr_pem, struct mu_err *err)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crq_t crq = NULL;
    gnutls_datum_t kd = {NULL, 0}, cd = {NULL, 0};
    int rc = gnutls_x509_privkey_init(&key);
    if (rc >= 0)
        rc = gnutls_x509_privkey_generate2(
            key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0);
    if (rc >= 0)
        rc = gnutls_x509_crq_init(&crq);
    if (rc >= 0)
        rc = gnutls_x509_crq_set_version(crq, 1);
    if (rc >= 0)
        rc = gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, node,
                                           (unsigned)strlen(node));
    if (rc >= 0)
        rc = gnutls_x509_crq_set_key(crq, key);
    if (rc >= 0)
        rc = gnutls_x509_crq_set_key_purpose_oid(crq, GNUTLS_KP_TLS_WWW_CLIENT, 0);
    if (rc >= 0)
        rc = gnutls_x509_crq_sign2(crq, key, GNUTLS_DIG_SHA256, 0);
    if (rc >= 0)
        rc = gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &cd);
    if (rc >= 0)
        rc = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &kd);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    if (key)
        gnutls_x509_privkey_deinit(key);
    if (rc < 0) {
        if (kd.data) {
            explicit_bzero(kd.data, kd.size);
            gnutls_free(kd.data);
        }
        gnutls_free(cd.data);
        return mu_err_set(err, MU_EINTERNAL, "cannot make a key and certificate request: %s",
                          gnutls_strerror(rc));
    }
    *ret_key_pem = datum_str(&kd, true);
    *ret_csr_pem = datum_str(&cd, false);
    return 0;
}

/* Whether crt is for key's public key (their key ids match). */
static bool crt_matches_key(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
    unsigned char a[KEY_ID_MAX], b[KEY_ID_MAX];
    size_t na = sizeof a, nb = sizeof b;
    return gnutls_x509_crt_get_key_id(crt, 0, a, &na) >= 0 &&
           gnutls_x509_privkey_get_key_id(key, 0, b, &nb) >= 0 && na == nb && memcmp(a, b, na) == 0;
}

int mu_agent_cert_check(const char *cert_pem, const char *key_pem, const char *ca_path,
                        const char *node, int64_t now_ms, struct mu_agent_cert_info *ret,
                        struct mu_err *err)
{
    gnutls_x509_crt_t crt = NULL, ca = NULL;
    gnutls_x509_privkey_t key = NULL;
    MU_AUTOFREE char *ca_pem = NULL;
    char cn[256];
    size_t cn_len = sizeof cn;
    unsigned status = 0;
    int r = MU_EINVAL;

    if (crt_import(cert_pem, &crt, err) < 0 || key_import(key_pem, &key, err) < 0)
        goto out;
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len) < 0 ||
        strcmp(cn, node) != 0) {
        mu_err_set(err, MU_EINVAL, "the certificate does not name node %s", node);
        goto out;
    }
    if (!crt_matches_key(crt, key)) {
        mu_err_set(err, MU_EINVAL, "the certificate is not for the key just generated");
        goto out;
    }
    int64_t nb = (int64_t)gnutls_x509_crt_get_activation_time(crt) * 1000;
    int64_t na = (int64_t)gnutls_x509_crt_get_expiration_time(crt) * 1000;
    if (now_ms < nb || now_ms >= na) {
        mu_err_set(err, MU_EINVAL, "the certificate is not valid now");
        goto out;
    }
    size_t len = 0;
    ca_pem = mu_read_file(ca_path, CERT_FILE_MAX, &len);
    if (!ca_pem) {
        mu_err_set(err, MU_EINVAL, "%s: %s", ca_path, strerror(errno));
        goto out;
    }
    struct mu_err sub = {0};
    if (crt_import(ca_pem, &ca, &sub) < 0) {
        mu_err_set(err, MU_EINVAL, "%s: %s", ca_path, sub.detail);
        goto out;
    }
    if (gnutls_x509_crt_verify(crt, &ca, 1, 0, &status) < 0 || status != 0) {
        mu_err_set(err, MU_EINVAL, "the certificate was not signed by the controller's CA (%s)",
                   ca_path);
        goto out;
    }
    if (ret)
        crt_info(crt, ret);
    r = 0;
out:
    if (ca)
        gnutls_x509_crt_deinit(ca);
    if (key)
        gnutls_x509_privkey_deinit(key);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    return r;
}

/* fsync the directory holding path, so that a rename in it is durable. */
static int sync_dir_of(const char *path)
{
    MU_AUTOFREE char *dir = mu_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, strlen(dir) + 1, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int rename_synced(const char *from, const char *to, struct mu_err *err)
{
    if (rename(from, to) != 0)
        return mu_err_set(err, MU_EIO, "cannot rename %s to %s: %s", from, to, strerror(errno));
    int rc = sync_dir_of(to);
    if (rc < 0)
        return mu_err_set(err, MU_EIO, "cannot sync the directory of %s: %s", to, strerror(-rc));
    return 0;
}

int mu_agent_certs_install(const char *cert_path, const char *key_path, const char *cert_pem,
                           const char *key_pem, struct mu_err *err)
{
    MU_AUTOFREE char *key_new = mu_xasprintf("%s" MU_AGENT_NEW_SUFFIX, key_path);
    MU_AUTOFREE char *cert_new = mu_xasprintf("%s" MU_AGENT_NEW_SUFFIX, cert_path);
    int rc = mu_write_file_atomic(key_new, key_pem, strlen(key_pem), 0600);
    if (rc < 0)
        return mu_err_set(err, MU_EIO, "cannot write %s: %s", key_new, strerror(-rc));
    rc = mu_write_file_atomic(cert_new, cert_pem, strlen(cert_pem), 0600);
    if (rc < 0)
        return mu_err_set(err, MU_EIO, "cannot write %s: %s", cert_new, strerror(-rc));
    /* From here on a crash is completed at the next start: cert.new matches key.new, or
     * key once key.new has taken its place. */
    rc = rename_synced(key_new, key_path, err);
    if (rc == 0)
        rc = rename_synced(cert_new, cert_path, err);
    return rc;
}

/* Whether the certificate at cert_path is for the private key at key_path. */
static bool files_match(const char *cert_path, const char *key_path)
{
    size_t n = 0;
    MU_AUTOFREE char *c = mu_read_file(cert_path, CERT_FILE_MAX, &n);
    char *k = mu_read_file(key_path, CERT_FILE_MAX, &n);
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t key = NULL;
    struct mu_err err = {0};
    bool ok = c && k && crt_import(c, &crt, &err) == 0 && key_import(k, &key, &err) == 0 &&
              crt_matches_key(crt, key);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    mu_agent_key_free(k);
    return ok;
}

static int remove_file(const char *path, struct mu_err *err)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return mu_err_set(err, MU_EIO, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

int mu_agent_certs_recover(const char *cert_path, const char *key_path, enum mu_agent_recovery *ret,
                           struct mu_err *err)
{
    MU_AUTOFREE char *key_new = mu_xasprintf("%s" MU_AGENT_NEW_SUFFIX, key_path);
    MU_AUTOFREE char *cert_new = mu_xasprintf("%s" MU_AGENT_NEW_SUFFIX, cert_path);
    bool have_key_new = access(key_new, F_OK) == 0;
    bool have_cert_new = access(cert_new, F_OK) == 0;
    int rc = 0;

    if (!have_key_new && !have_cert_new) {
        *ret = MU_AGENT_RECOVERY_NONE;
        return 0;
    }
    if (have_cert_new && files_match(cert_new, have_key_new ? key_new : key_path)) {
        if (have_key_new)
            rc = rename_synced(key_new, key_path, err);
        if (rc == 0)
            rc = rename_synced(cert_new, cert_path, err);
        if (rc == 0)
            *ret = MU_AGENT_RECOVERY_COMPLETED;
        return rc;
    }
    /* Interrupted before the certificate was written (or garbage): the old pair stands. */
    rc = remove_file(cert_new, err);
    if (rc == 0)
        rc = remove_file(key_new, err);
    if (rc == 0)
        rc = sync_dir_of(key_new) < 0 || sync_dir_of(cert_new) < 0
                 ? mu_err_set(err, MU_EIO, "cannot sync the directory of %s", key_new)
                 : 0;
    if (rc == 0)
        *ret = MU_AGENT_RECOVERY_DISCARDED;
    return rc;
}
