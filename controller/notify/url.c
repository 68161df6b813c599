/* Webhook URL rules: syntax, address classes, allow-list, node addresses (notify.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "notify/notify.h"
#include "store/webhooks.h"

static bool v4_embedded(const struct mu_notify_addr *a, unsigned char out[4])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char zero12[12] = {0};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    const unsigned char *b = a->bytes;

    if (a->family != AF_INET6)
        return false;
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0) {
        memcpy(out, b + 12, 4);
        return true;
    }
    /* IPv4-compatible ::a.b.c.d (deprecated), but not :: and ::1 themselves. */
    if (memcmp(b, zero12, 12) == 0 && (b[12] | b[13] | b[14]) != 0) {
        memcpy(out, b + 12, 4);
        return true;
    }
    if (b[0] == 0x20 && b[1] == 0x02) { /* 6to4 2002:AABB:CCDD::/48 */
        memcpy(out, b + 2, 4);
        return true;
    }
    return false;
}

static enum mu_notify_addr_class classify_v4(const unsigned char *b)
{
    if (b[0] == 0)
        return MU_NOTIFY_ADDR_UNSPECIFIED;
    if (b[0] == 127)
        return MU_NOTIFY_ADDR_LOOPBACK;
    if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168))
        return MU_NOTIFY_ADDR_PRIVATE;
    if (b[0] == 169 && b[1] == 254)
        return MU_NOTIFY_ADDR_LINK_LOCAL;
    if (b[0] == 100 && (b[1] & 0xc0) == 64)
        return MU_NOTIFY_ADDR_CGNAT;
    if ((b[0] & 0xf0) == 224)
        return MU_NOTIFY_ADDR_MULTICAST;
    if (b[0] >= 240 || (b[0] == 192 && b[1] == 0 && b[2] == 0) ||
        (b[0] == 198 && (b[1] & 0xfe) == 18))
        return MU_NOTIFY_ADDR_RESERVED;
    return MU_NOTIFY_ADDR_PUBLIC;
}

enum mu_notify_addr_class mu_notify_addr_classify(const struct mu_notify_addr *a)
{
    static const unsigned char zero[16] = {0};
    static const unsigned char discard[8] = {0x01, 0, 0, 0, 0, 0, 0, 0};
    const unsigned char *b = a->bytes;
    unsigned char v4[4];

    if (a->family == AF_INET)
        return classify_v4(b);
    if (memcmp(b, zero, 16) == 0)
        return MU_NOTIFY_ADDR_UNSPECIFIED;
    if (memcmp(b, zero, 15) == 0 && b[15] == 1)
        return MU_NOTIFY_ADDR_LOOPBACK;
    if (v4_embedded(a, v4))
        return classify_v4(v4);
    if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0))
        return MU_NOTIFY_ADDR_PRIVATE;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return MU_NOTIFY_ADDR_LINK_LOCAL;
    if (b[0] == 0xff)
        return MU_NOTIFY_ADDR_MULTICAST;
    if (memcmp(b, discard, 8) == 0 || (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b))
        return MU_NOTIFY_ADDR_RESERVED; /* discard-only, local-use NAT64 64:ff9b:1::/48 */
    return MU_NOTIFY_ADDR_PUBLIC;
}

const char *mu_notify_addr_class_name(enum mu_notify_addr_class c)
{
    switch (c) {
    case MU_NOTIFY_ADDR_PUBLIC:
        return "public";
    case MU_NOTIFY_ADDR_UNSPECIFIED:
        return "unspecified";
    case MU_NOTIFY_ADDR_LOOPBACK:
        return "loopback";
    case MU_NOTIFY_ADDR_PRIVATE:
        return "private";
    case MU_NOTIFY_ADDR_LINK_LOCAL:
        return "link-local";
    case MU_NOTIFY_ADDR_CGNAT:
        return "carrier-grade NAT (100.64.0.0/10)";
    case MU_NOTIFY_ADDR_MULTICAST:
        return "multicast";
    case MU_NOTIFY_ADDR_RESERVED:
        return "reserved or broadcast";
    }
    return "unknown";
}

int mu_notify_addr_parse(const char *text, struct mu_notify_addr *ret)
{
    struct mu_notify_addr a = {0};

    if (inet_pton(AF_INET, text, a.bytes) == 1) {
        a.family = AF_INET;
    } else if (inet_pton(AF_INET6, text, a.bytes) == 1) {
        a.family = AF_INET6;
    } else {
        return -1;
    }
    *ret = a;
    return 0;
}

void mu_notify_addr_text(const struct mu_notify_addr *a, char *out, size_t outlen)
{
    if (!inet_ntop(a->family, a->bytes, out, (socklen_t)outlen))
        snprintf(out, outlen, "?");
}

int mu_notify_addr_from_sockaddr(const struct sockaddr *sa, struct mu_notify_addr *ret)
{
    struct mu_notify_addr a = {0};

    if (sa->sa_family == AF_INET) {
        a.family = AF_INET;
        memcpy(a.bytes, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        a.family = AF_INET6;
        memcpy(a.bytes, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    } else {
        return -1;
    }
    *ret = a;
    return 0;
}

static bool prefix_match(const unsigned char *a, const unsigned char *net, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;

    if (memcmp(a, net, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

int mu_notify_cidr_parse(const char *text, struct mu_notify_cidr *ret, struct mu_err *err)
{
    char buf[64];
    struct mu_notify_cidr c = {0};
    const char *slash;
    size_t len = strlen(text);
    int64_t prefix = -1;

    if (len == 0 || len >= sizeof buf)
        return mu_err_setf(err, MU_EINVAL, "webhook_allow",
                           "webhook_allow entries must be addresses or CIDR blocks such as "
                           "\"203.0.113.0/24\", got \"%.64s\"",
                           text);
    memcpy(buf, text, len + 1);
    slash = strchr(buf, '/');
    if (slash) {
        buf[slash - buf] = '\0';
        if (mu_parse_i64(slash + 1, 0, 128, &prefix) != 0)
            prefix = -2;
    }
    if (mu_notify_addr_parse(buf, &c.net) != 0 || prefix == -2 ||
        (c.net.family == AF_INET && prefix > 32))
        return mu_err_setf(err, MU_EINVAL, "webhook_allow",
                           "webhook_allow entry \"%s\" is not an address or a CIDR block such as "
                           "\"203.0.113.0/24\"",
                           text);
    c.prefix = prefix >= 0 ? (int)prefix : (c.net.family == AF_INET ? 32 : 128);
    /* Host bits must be zero: "10.0.0.1/8" is more likely a typo than a wish. */
    struct mu_notify_addr masked = c.net;
    size_t nbytes = c.net.family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < nbytes; i++) {
        int bits = c.prefix - (int)i * 8;
        unsigned char m = bits >= 8 ? 0xff : bits <= 0 ? 0 : (unsigned char)(0xff << (8 - bits));
        masked.bytes[i] &= m;
    }
    if (memcmp(masked.bytes, c.net.bytes, nbytes) != 0)
        return mu_err_setf(err, MU_EINVAL, "webhook_allow",
                           "webhook_allow entry \"%s\" has bits set after its /%d prefix", text,
                           c.prefix);
    *ret = c;
    return MU_OK;
}

int mu_notify_allow_parse(char *const *texts, struct mu_notify_allow **ret, struct mu_err *err)
{
    struct mu_notify_allow *a = mu_xcalloc(1, sizeof *a);
    size_t n = 0;

    for (char *const *p = texts; p && *p; p++)
        n++;
    a->cidrs = mu_xcalloc(n ? n : 1, sizeof *a->cidrs);
    for (size_t i = 0; i < n; i++) {
        int r = mu_notify_cidr_parse(texts[i], &a->cidrs[i], err);
        if (r < 0) {
            mu_notify_allow_free(a);
            return r;
        }
    }
    a->n = n;
    *ret = a;
    return MU_OK;
}

void mu_notify_allow_free(struct mu_notify_allow *a)
{
    if (!a)
        return;
    free(a->cidrs);
    free(a);
}

bool mu_notify_allow_contains(const struct mu_notify_allow *allow, const struct mu_notify_addr *a)
{
    unsigned char v4[4];
    bool has_v4 = v4_embedded(a, v4);

    for (size_t i = 0; allow && i < allow->n; i++) {
        const struct mu_notify_cidr *c = &allow->cidrs[i];
        if (c->net.family == a->family && prefix_match(a->bytes, c->net.bytes, c->prefix))
            return true;
        if (has_v4 && c->net.family == AF_INET && prefix_match(v4, c->net.bytes, c->prefix))
            return true;
    }
    return false;
}

static bool same_addr(const struct mu_notify_addr *a, const struct mu_notify_addr *b)
{
    unsigned char a4[4], b4[4];
    const unsigned char *pa = a->bytes, *pb = b->bytes;

    if (a->family == AF_INET6 && v4_embedded(a, a4))
        pa = a4;
    if (b->family == AF_INET6 && v4_embedded(b, b4))
        pb = b4;
    bool a_is4 = pa != a->bytes || a->family == AF_INET;
    bool b_is4 = pb != b->bytes || b->family == AF_INET;
    if (a_is4 != b_is4)
        return false;
    return memcmp(pa, pb, a_is4 ? 4 : 16) == 0;
}

/* ---- syntax ----------------------------------------------------------------------------- */

static int url_fail(struct mu_err *err, const char *why)
{
    return mu_err_setf(err, MU_EINVAL, "url",
                       "the webhook URL %s; write it like https://hooks.example.org/mutualis", why);
}

/* Four decimal numbers 0..255 without leading zeros. */
static bool dotted_quad(const char *h, size_t n)
{
    int parts = 0;
    size_t i = 0;

    while (i < n) {
        size_t start = i;
        unsigned v = 0;
        while (i < n && h[i] >= '0' && h[i] <= '9') {
            v = v * 10 + (unsigned)(h[i] - '0');
            if (v > 255 || i - start >= 3)
                return false;
            i++;
        }
        if (i == start || (i - start > 1 && h[start] == '0'))
            return false;
        parts++;
        if (i < n) {
            if (h[i] != '.' || i + 1 == n)
                return false;
            i++;
        }
    }
    return parts == 4;
}

static bool dns_name(const char *h, size_t n)
{
    size_t label = 0, last_start = 0;
    bool last_alpha = false;

    if (n == 0 || n > MU_NOTIFY_HOST_MAX)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || h[i] == '.') {
            if (label == 0 || label > 63 || h[i - 1] == '-' || h[last_start] == '-')
                return false;
            label = 0;
            last_start = i + 1;
            last_alpha = false;
            continue;
        }
        char ch = h[i];
        if (isalpha((unsigned char)ch))
            last_alpha = true;
        else if (!(isdigit((unsigned char)ch) || ch == '-'))
            return false;
        label++;
        if (i + 1 == n && !last_alpha)
            return false; /* a name's last label is never all digits (0x7f.1, 2130706433) */
    }
    return true;
}

static bool path_char_ok(const char *p, size_t *adv)
{
    static const char ok[] = "-._~!$&'()*+,;=:@/?";
    unsigned char ch = (unsigned char)*p;

    *adv = 1;
    if (isalnum(ch) || (ch && strchr(ok, ch)))
        return true;
    if (ch == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
        *adv = 3;
        return true;
    }
    return false;
}

int mu_notify_url_parse(const char *url, struct mu_notify_url *ret, struct mu_err *err)
{
    struct mu_notify_url u = {.port = 443};
    size_t len;
    const char *auth, *end, *host, *colon = NULL;
    size_t hlen;

    if (!url || !*url)
        return url_fail(err, "is empty");
    len = strnlen(url, MU_NOTIFY_URL_MAX + 1);
    if (len > MU_NOTIFY_URL_MAX)
        return mu_err_setf(err, MU_EINVAL, "url", "the webhook URL is longer than %d characters",
                           MU_NOTIFY_URL_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return url_fail(err, "contains spaces, control or non-ASCII characters (percent-encode "
                                 "them)");
    if (strncasecmp(url, "https://", 8) != 0) {
        if (strncasecmp(url, "http://", 7) == 0)
            return url_fail(err, "must use https:// (plain http:// is refused: events would "
                                 "travel unencrypted)");
        return url_fail(err, "must start with https://");
    }
    auth = url + 8;
    end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(end - auth)))
        return url_fail(err, "must not carry a user name or password (user@host); put a token in "
                             "the path if the receiver needs one");
    if (end == auth)
        return url_fail(err, "names no host");
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', (size_t)(end - auth));
        char v6[64];
        unsigned char bytes[16];
        if (!close || (size_t)(close - auth - 1) >= sizeof v6)
            return url_fail(err, "has a malformed IPv6 address (write it in brackets: "
                                 "https://[2001:db8::1]/)");
        memcpy(v6, auth + 1, (size_t)(close - auth - 1));
        v6[close - auth - 1] = '\0';
        if (inet_pton(AF_INET6, v6, bytes) != 1)
            return url_fail(err, "has a malformed IPv6 address (no zone index allowed)");
        memcpy(u.host, v6, strlen(v6) + 1);
        u.host_literal = true;
        u.host_v6 = true;
        if (close + 1 < end) {
            if (close[1] != ':')
                return url_fail(err, "has text after its IPv6 address");
            colon = close + 1;
        }
        host = NULL;
        hlen = 0;
    } else {
        colon = memchr(auth, ':', (size_t)(end - auth));
        host = auth;
        hlen = colon ? (size_t)(colon - auth) : (size_t)(end - auth);
        if (hlen == 0)
            return url_fail(err, "names no host");
        if (hlen > MU_NOTIFY_HOST_MAX)
            return url_fail(err, "has a host name longer than 253 characters");
        bool numeric = strspn(host, "0123456789.") >= hlen;
        char tmp[MU_NOTIFY_HOST_MAX + 1];
        struct in_addr ia;
        memcpy(tmp, host, hlen);
        tmp[hlen] = '\0';
        if (numeric && dotted_quad(host, hlen)) {
            u.host_literal = true;
        } else if (numeric || !dns_name(host, hlen) || inet_aton(tmp, &ia) != 0) {
            /* inet_aton also reads 0x7f000001 and 127.1: never let a name mean an address. */
            return url_fail(err, "has an invalid host: use a DNS name (letters, digits, '-' and "
                                 "'.') or an IPv4 address written as four decimal numbers");
        }
        for (size_t i = 0; i < hlen; i++)
            u.host[i] = (char)tolower((unsigned char)host[i]);
        u.host[hlen] = '\0';
    }
    if (colon) {
        int64_t port;
        size_t plen = (size_t)(end - colon - 1);
        char ptxt[8];
        if (plen == 0 || plen > 5 || strspn(colon + 1, "0123456789") < plen)
            return url_fail(err, "has an invalid port (a number from 1 to 65535)");
        memcpy(ptxt, colon + 1, plen);
        ptxt[plen] = '\0';
        if (mu_parse_i64(ptxt, 1, 65535, &port) != 0)
            return url_fail(err, "has an invalid port (a number from 1 to 65535)");
        u.port = (unsigned)port;
    }
    for (const char *p = end; *p;) {
        size_t adv;
        if (*p == '#')
            return url_fail(err, "must not have a #fragment (it is never sent to the receiver)");
        if (!path_char_ok(p, &adv))
            return mu_err_setf(err, MU_EINVAL, "url",
                               "the webhook URL contains '%c', which must be percent-encoded", *p);
        p += adv;
    }
    if (ret)
        *ret = u;
    return MU_OK;
}

int mu_notify_uri_host(const char *uri, char *out, size_t outlen)
{
    const char *p = uri ? strstr(uri, "://") : NULL;
    const char *end, *at, *h, *hend;

    if (!p)
        return -1;
    p += 3;
    end = p + strcspn(p, "/?#");
    at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    h = at ? at + 1 : p;
    if (h < end && *h == '[') {
        hend = memchr(h, ']', (size_t)(end - h));
        if (!hend)
            return -1;
        h++;
    } else {
        hend = memchr(h, ':', (size_t)(end - h));
        if (!hend)
            hend = end;
    }
    if (hend <= h || (size_t)(hend - h) >= outlen)
        return -1;
    memcpy(out, h, (size_t)(hend - h));
    out[hend - h] = '\0';
    return 0;
}

/* ---- resolution and the full check -------------------------------------------------------- */

/* Addresses of host (a literal or a name). 0, or MU_EINVAL with err. */
static int resolve(const char *host, bool literal, struct mu_notify_addr *out, size_t max,
                   size_t *ret_n, struct mu_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    size_t n = 0;
    int rc;

    if (literal)
        hints.ai_flags = AI_NUMERICHOST;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0)
        return mu_err_setf(err, MU_EINVAL, "url",
                           "the webhook URL's host %s cannot be resolved (%s); check the name",
                           host, gai_strerror(rc));
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        struct mu_notify_addr a;
        bool dup = false;
        if (mu_notify_addr_from_sockaddr(ai->ai_addr, &a) != 0)
            continue;
        for (size_t i = 0; i < n; i++)
            dup = dup || (out[i].family == a.family && memcmp(out[i].bytes, a.bytes, 16) == 0);
        if (!dup)
            out[n++] = a;
    }
    freeaddrinfo(res);
    if (n == 0)
        return mu_err_setf(err, MU_EINVAL, "url", "the webhook URL's host %s has no address", host);
    *ret_n = n;
    return MU_OK;
}

static void nodes_add(struct mu_notify_nodes *ns, const struct mu_notify_addr *a, const char *name)
{
    ns->addrs = mu_xrealloc(ns->addrs, (ns->n + 1) * sizeof *ns->addrs);
    ns->names = mu_xrealloc(ns->names, (ns->n + 1) * sizeof *ns->names);
    ns->addrs[ns->n] = *a;
    ns->names[ns->n] = mu_xstrdup(name);
    ns->n++;
}

int mu_notify_nodes_load(struct mu_store *st, struct mu_notify_nodes *ret, struct mu_err *err)
{
    struct mu_node_addr_ref *refs = NULL;
    size_t n = 0;
    struct mu_notify_nodes ns = {0};
    int r = mu_store_node_addr_refs(st, &refs, &n, err);

    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        char host[MU_NOTIFY_HOST_MAX + 1];
        struct mu_notify_addr a;
        if (refs[i].underlay && mu_notify_addr_parse(refs[i].underlay, &a) == 0)
            nodes_add(&ns, &a, refs[i].name);
        if (mu_notify_uri_host(refs[i].uri, host, sizeof host) != 0)
            continue;
        if (mu_notify_addr_parse(host, &a) == 0) {
            nodes_add(&ns, &a, refs[i].name);
        } else {
            /* A name: its addresses now (a node whose name no longer resolves cannot be
             * reached through it either). */
            struct mu_notify_addr found[MU_NOTIFY_ADDRS_MAX];
            size_t nf = 0;
            struct mu_err ignored = {0};
            if (resolve(host, false, found, MU_NOTIFY_ADDRS_MAX, &nf, &ignored) == 0)
                for (size_t k = 0; k < nf; k++)
                    nodes_add(&ns, &found[k], refs[i].name);
        }
    }
    mu_node_addr_refs_free(refs, n);
    *ret = ns;
    return MU_OK;
}

void mu_notify_nodes_clear(struct mu_notify_nodes *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        free(n->names[i]);
    free(n->names);
    free(n->addrs);
    memset(n, 0, sizeof *n);
}

int mu_notify_url_check(const char *url, const struct mu_notify_allow *allow,
                        const struct mu_notify_nodes *nodes, struct mu_store *st,
                        struct mu_notify_target *ret, struct mu_err *err)
{
    struct mu_notify_target t = {0};
    struct mu_notify_nodes loaded = {0};
    int r = mu_notify_url_parse(url, &t.url, err);

    if (r < 0)
        return r;
    r = resolve(t.url.host, t.url.host_literal, t.addrs, MU_NOTIFY_ADDRS_MAX, &t.n_addrs, err);
    if (r < 0)
        return r;
    if (!nodes && st) {
        if ((r = mu_notify_nodes_load(st, &loaded, err)) < 0)
            return r;
        nodes = &loaded;
    }
    for (size_t i = 0; i < t.n_addrs && r == 0; i++) {
        const struct mu_notify_addr *a = &t.addrs[i];
        char text[INET6_ADDRSTRLEN];
        if (mu_notify_allow_contains(allow, a))
            continue;
        mu_notify_addr_text(a, text, sizeof text);
        enum mu_notify_addr_class c = mu_notify_addr_classify(a);
        if (c != MU_NOTIFY_ADDR_PUBLIC) {
            r = mu_err_setf(err, MU_EINVAL, "url",
                            "the webhook URL's %s %s%s%s is %s %s address: webhooks may only "
                            "reach public addresses (an operator can allow-list it in "
                            "webhook_allow)",
                            t.url.host_literal ? "address" : "host", t.url.host,
                            t.url.host_literal ? "" : " resolves to ",
                            t.url.host_literal ? "" : text,
                            strchr("aeiou", mu_notify_addr_class_name(c)[0]) ? "an" : "a",
                            mu_notify_addr_class_name(c));
            break;
        }
        for (size_t k = 0; nodes && k < nodes->n; k++)
            if (same_addr(a, &nodes->addrs[k])) {
                r = mu_err_setf(err, MU_EINVAL, "url",
                                "the webhook URL's %s %s%s%s is the address of node %s: "
                                "webhooks may not reach the data centre's nodes",
                                t.url.host_literal ? "address" : "host", t.url.host,
                                t.url.host_literal ? "" : " resolves to ",
                                t.url.host_literal ? "" : text, nodes->names[k]);
                break;
            }
    }
    mu_notify_nodes_clear(&loaded);
    if (r < 0)
        return r;
    if (ret)
        *ret = t;
    return MU_OK;
}
