/* notify/: webhooks. The only controller code that uses libcurl.
 *
 * Three parts, each usable on its own:
 *  - URL rules (url.c): a webhook URL is https only, has no userinfo, names a host (DNS
 *    name, IPv4 or bracketed IPv6 literal) with an optional port 1..65535, and is at most
 *    MU_NOTIFY_URL_MAX bytes. Its host is resolved (getaddrinfo) and refused if ANY address
 *    is loopback, private (RFC 1918, fc00::/7), link-local, unspecified, multicast,
 *    broadcast/reserved, CGNAT (100.64/10), or the address of a registered node (the host
 *    of its libvirt URI, and its underlay address where the store has one) — unless the
 *    operator allow-listed it (config "webhook_allow": CIDRs). IPv4 addresses embedded in
 *    IPv6 (mapped, compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged as IPv4.
 *    Checked when a webhook is set AND again before every delivery, whose connection is
 *    pinned to the addresses checked (no second lookup).
 *  - Signatures (sign.c): X-Mutualis-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
 *    where the HMAC key is the webhook's secret as shown (64 hex characters, used as ASCII
 *    text) and the message is "<t>.<body>". A receiver recomputes it and rejects a t older
 *    than 5 minutes (replays).
 *  - The dispatcher (dispatch.c): one thread that walks the event feed for every enabled
 *    webhook (its tenant's subtree, filtered by type prefixes), queues one delivery per
 *    event in the store, POSTs due deliveries and records every attempt. A failed attempt
 *    (network, TLS, refused address, any non-2xx answer, a 3xx included: redirects are never
 *    followed) is retried with exponential backoff (base x 6^n: 5 s, 30 s, 3 min, 18 min…);
 *    past the give-up deadline (24 h) the delivery is marked failed and recorded, never
 *    dropped silently. All of it is in the store, so a restart resumes where it stopped. */
#ifndef MU_NOTIFY_H
#define MU_NOTIFY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mutualis/err.h"

struct mu_store;

#define MU_NOTIFY_URL_MAX    2048
#define MU_NOTIFY_HOST_MAX   253
#define MU_NOTIFY_ADDRS_MAX  16 /* resolved addresses kept (and pinned) per host */
#define MU_NOTIFY_SECRET_HEX 64 /* a webhook secret: 32 random bytes as lower-case hex */
#define MU_NOTIFY_SIG_MAX    96 /* "t=<20 digits>,v1=<64 hex>" + NUL */

/* ---- addresses and allow-lists ---------------------------------------------------------- */

/* One IPv4 or IPv6 address (IPv4 kept as such, not mapped). */
struct mu_notify_addr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char bytes[16];
};

/* What an address is, for the refusal rules. MU_NOTIFY_ADDR_PUBLIC is the only class a
 * webhook may reach without the allow-list. */
enum mu_notify_addr_class {
    MU_NOTIFY_ADDR_PUBLIC = 0,
    MU_NOTIFY_ADDR_UNSPECIFIED, /* 0.0.0.0/8, :: */
    MU_NOTIFY_ADDR_LOOPBACK,    /* 127/8, ::1 */
    MU_NOTIFY_ADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 */
    MU_NOTIFY_ADDR_LINK_LOCAL,  /* 169.254/16, fe80::/10 */
    MU_NOTIFY_ADDR_CGNAT,       /* 100.64/10 */
    MU_NOTIFY_ADDR_MULTICAST,   /* 224/4, ff00::/8 */
    MU_NOTIFY_ADDR_RESERVED,    /* 240/4 and 255.255.255.255 (broadcast), 192.0.0/24,
                                   198.18/15, 100::/64 */
};

/* Classifies an address (IPv4 embedded in IPv6 is judged as IPv4). */
enum mu_notify_addr_class mu_notify_addr_classify(const struct mu_notify_addr *a);
/* "loopback", "private", ... ("public" for MU_NOTIFY_ADDR_PUBLIC). Static text. */
const char *mu_notify_addr_class_name(enum mu_notify_addr_class c);
/* Parses a numeric IPv4 or IPv6 address (no brackets, no zone). 0 or -1. */
int mu_notify_addr_parse(const char *text, struct mu_notify_addr *ret);
/* Text of a (numeric) address into out (>= INET6_ADDRSTRLEN bytes). */
void mu_notify_addr_text(const struct mu_notify_addr *a, char *out, size_t outlen);
/* From a socket address (AF_INET / AF_INET6). 0 or -1 for another family. */
int mu_notify_addr_from_sockaddr(const struct sockaddr *sa, struct mu_notify_addr *ret);

/* The operator's allow-list: CIDR blocks that webhooks may reach whatever their class. */
struct mu_notify_cidr {
    struct mu_notify_addr net;
    int prefix; /* 0..32 or 0..128 */
};
struct mu_notify_allow {
    struct mu_notify_cidr *cidrs;
    size_t n;
};
/* Parses "a.b.c.d/n", "v6/n" or a bare address (/32 or /128); host bits must be zero.
 * 0, or MU_EINVAL with err saying why. */
int mu_notify_cidr_parse(const char *text, struct mu_notify_cidr *ret, struct mu_err *err);
/* Builds an allow-list from a NULL-terminated list of CIDR texts (NULL: empty). Caller
 * frees with mu_notify_allow_free. MU_EINVAL naming the bad entry. */
int mu_notify_allow_parse(char *const *texts, struct mu_notify_allow **ret, struct mu_err *err);
void mu_notify_allow_free(struct mu_notify_allow *a);
/* Whether a is inside one of the allow-list's blocks (allow may be NULL: empty). An IPv4
 * address embedded in IPv6 also matches IPv4 blocks. */
bool mu_notify_allow_contains(const struct mu_notify_allow *allow, const struct mu_notify_addr *a);

/* ---- URLs ------------------------------------------------------------------------------- */

struct mu_notify_url {
    char host[MU_NOTIFY_HOST_MAX + 1]; /* as written, without brackets; lower-cased */
    bool host_literal;                 /* an IPv4 or IPv6 literal */
    bool host_v6;                      /* bracketed in the URL */
    unsigned port;                     /* 443 when absent */
};
/* Syntax only (no lookup): the rules above. 0 and *ret, or MU_EINVAL with err (field "url")
 * saying what is wrong in words a person can act on. */
int mu_notify_url_parse(const char *url, struct mu_notify_url *ret, struct mu_err *err);

/* The host of a libvirt URI ("qemu+ssh://root@10.0.0.5:22/system" -> "10.0.0.5"), into out
 * (without brackets). 0, or -1 when the URI names no host ("qemu:///system", "test:///…"). */
int mu_notify_uri_host(const char *uri, char *out, size_t outlen);

/* Addresses of the registered nodes: the hosts of their libvirt URIs (resolved when they
 * are names) and their underlay addresses. Filled by mu_notify_nodes_load. */
struct mu_notify_nodes {
    struct mu_notify_addr *addrs;
    char **names; /* the node's name for each address */
    size_t n;
};
int mu_notify_nodes_load(struct mu_store *st, struct mu_notify_nodes *ret, struct mu_err *err);
void mu_notify_nodes_clear(struct mu_notify_nodes *n);

/* What a full check resolved: the addresses to pin the connection to. */
struct mu_notify_target {
    struct mu_notify_url url;
    struct mu_notify_addr addrs[MU_NOTIFY_ADDRS_MAX];
    size_t n_addrs;
};

/* The full check: syntax, then resolution, then every resolved address against the
 * classes, the nodes and the allow-list (allow may be NULL: empty; nodes may be NULL: read
 * from st, which may then also be NULL: no node rule). 0 with ret filled (ret may be NULL),
 * or MU_EINVAL (field "url") naming the address and why it is refused, e.g.
 * "the webhook URL's host 127.0.0.1 is a loopback address; …". */
int mu_notify_url_check(const char *url, const struct mu_notify_allow *allow,
                        const struct mu_notify_nodes *nodes, struct mu_store *st,
                        struct mu_notify_target *ret, struct mu_err *err);

/* ---- signatures ------------------------------------------------------------------------- */

/* Writes "t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>" into out (MU_NOTIFY_SIG_MAX
 * bytes). secret is the text shown to the tenant. */
void mu_notify_sign(const char *secret, int64_t t, const char *body, size_t body_len,
                    char out[MU_NOTIFY_SIG_MAX]);
/* A fresh secret: 32 random bytes as 64 lower-case hex characters + NUL. */
void mu_notify_secret_new(char out[MU_NOTIFY_SECRET_HEX + 1]);
/* Whether a webhook type prefix is acceptable: 1..64 of [a-z0-9._-]. */
bool mu_notify_type_prefix_valid(const char *s);

/* ---- the dispatcher --------------------------------------------------------------------- */

struct mu_notify_opts {
    struct mu_store *store;
    const struct mu_notify_allow *allow; /* borrowed, must outlive the dispatcher; NULL: empty */
    const char *ca_file;                 /* extra trust (PEM) for receivers; NULL: system CAs */
    int64_t retry_base_ms;               /* first retry delay (5000); then x6 each attempt */
    int64_t give_up_ms;                  /* a delivery failing this long is failed (24 h) */
    int64_t poll_ms;                     /* how often the feed is read when idle (1000) */
};
struct mu_notify;
/* Starts the dispatcher thread. NULL with err set if it cannot start. */
struct mu_notify *mu_notify_start(const struct mu_notify_opts *opts, struct mu_err *err);
/* Asks for a round now (a webhook was set). NULL is accepted. */
void mu_notify_wake(struct mu_notify *n);
/* Stops the thread (an attempt in flight is aborted and retried after a restart) and
 * frees. NULL is accepted. */
void mu_notify_stop(struct mu_notify *n);

#endif
