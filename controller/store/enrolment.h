/* The store's record of node enrolment over SSH (fleet/enroll.h): the SSH host key pinned
 * for each node (trust on first use, or the fingerprint the operator gave), and what the
 * last successful enrolment set up there (where, as whom, which agent binary, which client
 * certificate, the libvirt URI an operator would use). Same rules as store.h: mutations run
 * in one BEGIN IMMEDIATE transaction with their audit entry, synced before returning.
 *
 * No secret is ever stored here: the SSH key or password used for an enrolment lives only
 * in the request that carries it, and the agent's private key never leaves the node. */
#ifndef MU_STORE_ENROLMENT_H
#define MU_STORE_ENROLMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/store.h"

struct mu_enrolment {
    int64_t node_id;
    char *host_key;     /* "SHA256:<base64>", or NULL before the first connection */
    char *ssh_host;     /* where the last successful enrolment connected */
    int64_t ssh_port;   /* 0 before the first success */
    char *ssh_user;     /* as whom */
    char *agent_sha256; /* hex SHA-256 of the agent binary installed */
    char *cert_serial;  /* hex serial of the agent's client certificate */
    int64_t cert_not_after_ms;
    char *libvirt_uri;   /* the qemu+ssh URI an operator would use for this node */
    char *supervisor;    /* "systemd" or "setsid" */
    int64_t enrolled_ms; /* last successful enrolment (0: never) */
    int64_t updated_ms;
};
void mu_enrolment_clear(struct mu_enrolment *e);

/* The enrolment record of node_id. MU_ENOTFOUND (err set) when the node was never
 * contacted. */
int mu_store_enrolment_get(struct mu_store *st, int64_t node_id, struct mu_enrolment *ret,
                           struct mu_err *err);

/* Pins host_key ("SHA256:…") for node_id, with audit in the same transaction.
 * replace false: trust on first use: succeeds if no key is pinned yet (it is pinned now,
 * *ret_pinned true) or the same key is (*ret_pinned false); a different pinned key is
 * MU_ECONFLICT and its fingerprint is copied to ret_old[128] (which may be NULL).
 * replace true: the operator gave this fingerprint explicitly: it replaces any other
 * (*ret_pinned true when it changed). MU_ENOTFOUND if the node does not exist. */
int mu_store_enrolment_pin(struct mu_store *st, int64_t node_id, const char *host_key, bool replace,
                           const struct mu_audit_rec *audit, bool *ret_pinned, char *ret_old,
                           struct mu_err *err);

/* Records a successful enrolment: every field of e but node_id's host_key (kept as pinned),
 * enrolled_ms set to now, and the node's enrolment state set to "enrolled", with audit. */
int mu_store_enrolment_record(struct mu_store *st, const struct mu_enrolment *e,
                              const struct mu_audit_rec *audit, struct mu_err *err);

/* Sets the node's enrolment state ("none", "pending", "enrolled"); not audited (the
 * enrolment's steps are). MU_ENOTFOUND if the node does not exist. */
int mu_store_node_set_enrolment(struct mu_store *st, int64_t node_id, const char *state,
                                struct mu_err *err);

/* Replaces the node's libvirt URI (validated by the caller: mu_virt_uri_valid), audited
 * with detail "old -> new". MU_ENOTFOUND if the node does not exist. */
int mu_store_node_set_uri(struct mu_store *st, int64_t node_id, const char *uri,
                          const struct mu_audit_rec *audit, struct mu_err *err);

#endif
