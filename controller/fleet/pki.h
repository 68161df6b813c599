/* fleet/pki: the controller's certificate authority (GnuTLS). ECDSA P-256 keys.
 * On first start it creates, in dir (mode 0700):
 *   ca.pem / ca.key        self-signed CA, 10 years
 *   server.pem / server.key server certificate signed by the CA, 1 year, with the given
 *                           SANs (IP addresses and DNS names), for TLS web server use.
 * Keys are written 0600 atomically. Later starts reuse them; a server certificate whose
 * SANs do not cover the requested names, or that expires within 30 days, is re-issued. */
#ifndef MU_PKI_H
#define MU_PKI_H

#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"

struct mu_pki_files {
    char *ca_pem;     /* PEM text of the CA certificate */
    char *server_pem; /* server certificate chain (leaf then CA) */
    char *server_key; /* server private key */
};
void mu_pki_files_clear(struct mu_pki_files *f);

/* names: NULL-terminated list of SANs; entries that parse as IPv4/IPv6 go in as IP SANs,
 * others as DNS names. */
int mu_pki_ensure(const char *dir, const char *const *names, struct mu_pki_files *ret,
                  struct mu_err *err);

/* Signs a PEM certificate request for a node: subject CN must equal cn; returns the PEM
 * certificate valid `days` days with a fresh serial (hex in ret_serial[41]), client-auth
 * usage. (Used by node enrolment.) */
int mu_pki_sign_client(const char *dir, const char *csr_pem, const char *cn, unsigned days,
                       char **ret_cert_pem, char ret_serial[41], struct mu_err *err);

/* Checks a PEM certificate request before it is signed for node cn: 0 if it parses, its
 * signature verifies, its key is acceptable and its one subject CN equals cn;
 * MU_EFORBIDDEN (err names both) if it names another node; MU_EINVAL (err says why) for
 * anything malformed. Needs no CA: pure, for handlers to tell the two refusals apart. */
int mu_pki_csr_check(const char *csr_pem, const char *cn, struct mu_err *err);

/* The expiry of a PEM certificate, in ms since the epoch. MU_EINVAL if it does not parse. */
int mu_pki_cert_not_after(const char *cert_pem, int64_t *ret_ms, struct mu_err *err);

#endif
