/* The agent's own key and client certificate, and their renewal (GnuTLS only: report/ alone
 * speaks HTTPS).
 *
 * Renewal: when the certificate is within the renewal window (renew_before_days of its
 * expiry), the agent generates a NEW ECDSA P-256 key and a certificate request for it (CN =
 * the node's name), the controller signs it (POST /v1/agent/renew over the current mutual
 * TLS connection, report/send.h), and the new pair replaces the old one. The private key
 * never leaves the node.
 *
 * The swap survives a crash at any point. With cert and key the configured paths:
 *   1. key.new  written atomically (tmp + fsync + rename, 0600);
 *   2. cert.new written the same way;
 *   3. key.new renamed over key, then cert.new over cert (directories fsynced).
 * At start, mu_agent_certs_recover finishes or undoes what a crash interrupted: cert.new
 * that matches key.new (or, once key.new was renamed, key) completes the swap; anything
 * else left over (a key.new alone, a cert.new that matches nothing) is removed, and the old
 * pair, still valid, is used. */
#ifndef MU_AGENT_CERTS_H
#define MU_AGENT_CERTS_H

#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"

#define MU_AGENT_RENEW_DEFAULT_DAYS 30
#define MU_AGENT_RENEW_MAX_DAYS     60 /* below the controller's 90 days: no renewal loop */
#define MU_AGENT_NEW_SUFFIX         ".new"

/* Whether a certificate expiring at not_after_ms is due for renewal at now_ms: it expires
 * within renew_before_days (or has expired). renew_before_days 0: never. */
bool mu_agent_renew_due(int64_t not_after_ms, int64_t now_ms, int64_t renew_before_days);

struct mu_agent_cert_info {
    char serial[41]; /* lower-case hex */
    int64_t not_after_ms;
};

/* Reads the PEM certificate at path: its serial and expiry. MU_EIO / MU_EINVAL with err. */
int mu_agent_cert_read(const char *path, struct mu_agent_cert_info *ret, struct mu_err *err);

/* A new ECDSA P-256 private key and a certificate request for it with subject CN = node,
 * both PEM (caller frees; the key with mu_agent_key_free, which wipes it). */
int mu_agent_csr_new(const char *node, char **ret_key_pem, char **ret_csr_pem, struct mu_err *err);
void mu_agent_key_free(char *key_pem);

/* Checks a certificate the controller issued before it is installed: it parses, names
 * node, is for key_pem's public key, is valid at now_ms and was signed by the CA in the
 * PEM file ca_path. 0 with *ret (may be NULL) filled, or MU_EINVAL with err. */
int mu_agent_cert_check(const char *cert_pem, const char *key_pem, const char *ca_path,
                        const char *node, int64_t now_ms, struct mu_agent_cert_info *ret,
                        struct mu_err *err);

/* Installs a new pair over cert_path and key_path in the three steps above. MU_EIO with
 * err if a step fails (the files are then as mu_agent_certs_recover expects them). */
int mu_agent_certs_install(const char *cert_path, const char *key_path, const char *cert_pem,
                           const char *key_pem, struct mu_err *err);

enum mu_agent_recovery {
    MU_AGENT_RECOVERY_NONE,      /* nothing was left over */
    MU_AGENT_RECOVERY_COMPLETED, /* an interrupted swap was finished: the renewed pair is used */
    MU_AGENT_RECOVERY_DISCARDED, /* left-overs were removed: the old pair is used */
};
/* Finishes or undoes an interrupted install (see above). 0 with *ret, or MU_EIO with err. */
int mu_agent_certs_recover(const char *cert_path, const char *key_path, enum mu_agent_recovery *ret,
                           struct mu_err *err);

#endif
