/* The HTTPS client that delivers reports: the only agent code that sees libcurl.
 *
 * One libcurl easy handle for the agent's life, so that the TLS connection is kept alive
 * and reused between reports. The agent presents its client certificate and key, trusts
 * only the controller's CA (no system store), requires TLS 1.2 or later and the
 * controller's host name in its certificate, follows no redirects and speaks https only.
 * Answers are read into a buffer of at most MU_SEND_MAX_ANSWER bytes. */
#ifndef MU_AGENT_SEND_H
#define MU_AGENT_SEND_H

#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "mutualis/report.h"

#define MU_SEND_PATH            "/v1/agent/reports"
#define MU_SEND_RENEW_PATH      "/v1/agent/renew"
#define MU_SEND_NET_PATH        "/v1/agent/network"
#define MU_SEND_MAX_ANSWER      65536
#define MU_SEND_CONNECT_TIMEOUT 10 /* seconds */
#define MU_SEND_TIMEOUT         30 /* seconds, a whole request */

struct mu_sender_opts {
    const char *controller_url;  /* https://host[:port], an optional trailing '/' */
    const char *cert, *key, *ca; /* PEM files */
};

struct mu_sender;

/* Initialises libcurl (once per process: one sender per process). NULL with err. */
struct mu_sender *mu_sender_new(const struct mu_sender_opts *o, struct mu_err *err);
void mu_sender_free(struct mu_sender *s);

/* What the controller answered. */
struct mu_send_answer {
    long status;                      /* HTTP status, 0 if none */
    char epoch[MU_EPOCH_HEX_LEN + 1]; /* the acknowledgement, when there is one */
    int64_t acked_seq;
    char detail[256]; /* problem+json detail or the start of the body */
    /* The node's network plan generation carried by the ack (-1: none; agents/net). */
    int64_t net_generation;
};

/* POSTs one report (application/json). Returns
 *   0            an acknowledgement came back (ret->status says whether 200 or not),
 *   MU_EUNAVAIL  no answer: connection, TLS or timeout failure (err says which),
 *   MU_EINVAL    an answer without a valid acknowledgement (ret->status, ret->detail). */
int mu_sender_post(struct mu_sender *s, const char *body, size_t len, struct mu_send_answer *ret,
                   struct mu_err *err);

/* What the controller answered to a renewal. */
struct mu_renew_answer {
    long status;      /* HTTP status, 0 if none */
    char *cert_pem;   /* the new certificate (owned; mu_renew_answer_clear) */
    char detail[256]; /* a refusal's problem+json detail */
};
void mu_renew_answer_clear(struct mu_renew_answer *a);

/* POSTs {"csr": csr_pem} to MU_SEND_RENEW_PATH on the sender's connection (the current
 * client certificate authenticates it). Returns
 *   0            a certificate came back (ret->cert_pem, not yet checked: certs.h),
 *   MU_EUNAVAIL  no answer (err says why),
 *   MU_EINVAL    a refusal or an answer without a certificate (ret->status, ret->detail).
 * Reports go on to MU_SEND_PATH afterwards, on the same connection. */
int mu_sender_renew(struct mu_sender *s, const char *csr_pem, struct mu_renew_answer *ret,
                    struct mu_err *err);

/* GETs path (e.g. MU_SEND_NET_PATH) on the sender's connection. 0 and *ret_body (caller
 * frees, NUL-terminated) for a 200 answer; MU_EUNAVAIL no answer; MU_EINVAL another status
 * (*ret_status, err carries the problem's detail). The next report goes out as a POST. */
int mu_sender_get(struct mu_sender *s, const char *path, char **ret_body, long *ret_status,
                  struct mu_err *err);

#endif
