/* libvirt nwfilter XML for tenant networks, built with libxml2's tree API, and the small
 * allow-list parsers (IPv4, CIDR, MAC) that virt/ uses before a value reaches any XML.
 *
 * One filter per network, with a stable name "mu-net-<id>" and a UUID derived from the
 * id: redefining it after a rule change makes libvirt re-instantiate it on every running
 * interface that references it, so rule changes reach running VMs without touching them.
 * Every NIC's <filterref> names its network's filter with the parameters IP and MAC, which
 * the referenced built-in "clean-traffic" uses to stop MAC, IP and ARP spoofing.
 *
 * Rule order (libvirt evaluates by priority, lowest first; "in" = towards the VM):
 *   100  out: accept everything the VM sends (egress is not filtered here)
 *   110  in : accept ESTABLISHED,RELATED (replies)
 *   120  in : accept from the network's own CIDR
 *   200+ in : operator rules (accept or drop), in store order
 *   500+ in : tenant rules (accept)
 *   900  in : drop the rest */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "virt/virt_int.h"

#define PRIO_OUT      100
#define PRIO_REPLIES  110
#define PRIO_INSIDE   120
#define PRIO_OPERATOR 200
#define PRIO_TENANT   500
#define PRIO_DROP     900
#define RULES_MAX     250 /* per kind: keeps priorities inside their bands */

int mu_virt_ipv4_parse(const char *s, uint32_t *ret)
{
    if (!s)
        return -1;
    size_t n = strlen(s);
    if (n < 7 || n > 15)
        return -1;
    uint32_t v = 0;
    int parts = 0;
    const char *p = s;
    while (parts < 4) {
        if (*p < '0' || *p > '9')
            return -1;
        int octet = 0, digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits == 1 && octet == 0)
                return -1; /* no leading zeros: "010" is octal to some parsers */
            octet = octet * 10 + (*p - '0');
            digits++;
            p++;
            if (digits > 3 || octet > 255)
                return -1;
        }
        v = (v << 8) | (uint32_t)octet;
        parts++;
        if (parts < 4) {
            if (*p != '.')
                return -1;
            p++;
        }
    }
    if (*p != '\0')
        return -1;
    *ret = v;
    return 0;
}

void mu_virt_ipv4_format(uint32_t v, char out[16])
{
    snprintf(out, 16, "%u.%u.%u.%u", (unsigned)(v >> 24), (unsigned)((v >> 16) & 255),
             (unsigned)((v >> 8) & 255), (unsigned)(v & 255));
}

int mu_virt_cidr_parse(const char *s, uint32_t *ret_addr, int *ret_prefix)
{
    char ip[16];
    const char *slash = s ? strchr(s, '/') : NULL;
    if (!slash || (size_t)(slash - s) >= sizeof ip)
        return -1;
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = '\0';
    int64_t prefix;
    uint32_t addr;
    if (mu_virt_ipv4_parse(ip, &addr) < 0 || mu_parse_i64(slash + 1, 0, 32, &prefix) < 0)
        return -1;
    if (slash[1] == '0' && slash[2] != '\0')
        return -1; /* "/08" */
    uint32_t mask = prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
    if ((addr & ~mask) != 0)
        return -1; /* host bits set */
    *ret_addr = addr;
    *ret_prefix = (int)prefix;
    return 0;
}

bool mu_virt_mac_valid(const char *s)
{
    if (!s || strlen(s) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        char c = s[i];
        if (i % 3 == 2) {
            if (c != ':')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    /* Unicast: the least significant bit of the first octet is clear. */
    int first = (s[1] >= 'a') ? s[1] - 'a' + 10 : s[1] - '0';
    return (first & 1) == 0;
}

void mu_virt_nwfilter_name(int64_t network_id, char *out, size_t outlen)
{
    snprintf(out, outlen, "mu-net-%" PRId64, network_id);
}

/* A fixed UUID per network ("6d752d6e-6574-4000-8000-<id as 12 hex digits>"), so that a
 * redefinition matches the existing filter (libvirt refuses a known name with a new UUID). */
static void filter_uuid(int64_t network_id, char out[MU_UUID_LEN + 1])
{
    snprintf(out, MU_UUID_LEN + 1, "6d752d6e-6574-4000-8000-%012" PRIx64,
             (uint64_t)network_id & UINT64_C(0xffffffffffff));
}

static const xmlChar *X(const char *s)
{
    return (const xmlChar *)s;
}

static void prop(xmlNodePtr n, const char *name, const char *value)
{
    xmlNewProp(n, X(name), X(value));
}

static void prop_int(xmlNodePtr n, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    prop(n, name, buf);
}

static xmlNodePtr rule(xmlNodePtr root, const char *action, const char *dir, int prio,
                       const char *proto)
{
    xmlNodePtr r = xmlNewChild(root, NULL, X("rule"), NULL);
    prop(r, "action", action);
    prop(r, "direction", dir);
    prop_int(r, "priority", prio);
    return xmlNewChild(r, NULL, X(proto), NULL);
}

static void source(xmlNodePtr match, uint32_t addr, int prefix)
{
    char ip[16];
    if (prefix == 0)
        return; /* anywhere */
    mu_virt_ipv4_format(addr, ip);
    prop(match, "srcipaddr", ip);
    prop_int(match, "srcipmask", prefix);
}

static int rule_check(const struct mu_sec_rule *r, size_t i, uint32_t *ret_addr, int *ret_prefix,
                      struct mu_err *err)
{
    bool ports = strcmp(r->proto, "tcp") == 0 || strcmp(r->proto, "udp") == 0;
    if (!ports && strcmp(r->proto, "icmp") != 0 && strcmp(r->proto, "any") != 0)
        return mu_err_setf(err, MU_EINVAL, "proto", "rule %zu: proto must be tcp, udp, icmp or any",
                           i);
    if (strcmp(r->action, "accept") != 0 && strcmp(r->action, "drop") != 0)
        return mu_err_setf(err, MU_EINVAL, "action", "rule %zu: action must be accept or drop", i);
    if (strcmp(r->action, "drop") == 0 && !r->operator_rule)
        return mu_err_setf(err, MU_EINVAL, "action", "rule %zu: only operator rules may drop", i);
    if (ports && (r->port_min < 1 || r->port_max > 65535 || r->port_min > r->port_max))
        return mu_err_setf(err, MU_EINVAL, "port",
                           "rule %zu: ports must be 1 <= min <= max <= 65535", i);
    if (mu_virt_cidr_parse(r->source, ret_addr, ret_prefix) < 0)
        return mu_err_setf(err, MU_EINVAL, "source",
                           "rule %zu: source must be a.b.c.d/p with host bits zero", i);
    return 0;
}

int mu_virt_nwfilter_xml_build(int64_t network_id, const char *cidr,
                               const struct mu_sec_rule *rules, size_t n_rules, char **ret,
                               struct mu_err *err)
{
    uint32_t net;
    int prefix;
    if (network_id <= 0)
        return mu_err_setf(err, MU_EINVAL, "network_id", "network_id must be positive");
    if (mu_virt_cidr_parse(cidr, &net, &prefix) < 0 || prefix < 8)
        return mu_err_setf(err, MU_EINVAL, "cidr",
                           "cidr must be a.b.c.d/p (p 8..32), host bits zero");
    size_t n_op = 0, n_ten = 0;
    for (size_t i = 0; i < n_rules; i++) {
        uint32_t a;
        int p;
        int r = rule_check(&rules[i], i, &a, &p, err);
        if (r < 0)
            return r;
        if (rules[i].operator_rule)
            n_op++;
        else
            n_ten++;
    }
    if (n_op > RULES_MAX || n_ten > RULES_MAX)
        return mu_err_setf(err, MU_EINVAL, "rules", "at most %d operator and %d tenant rules",
                           RULES_MAX, RULES_MAX);

    char name[48], uuid[MU_UUID_LEN + 1];
    mu_virt_nwfilter_name(network_id, name, sizeof name);
    filter_uuid(network_id, uuid);
    xmlDocPtr doc = xmlNewDoc(X("1.0"));
    xmlNodePtr root = xmlNewNode(NULL, X("filter"));
    xmlDocSetRootElement(doc, root);
    prop(root, "name", name);
    prop(root, "chain", "root");
    xmlNewTextChild(root, NULL, X("uuid"), X(uuid));
    prop(xmlNewChild(root, NULL, X("filterref"), NULL), "filter", "clean-traffic");

    rule(root, "accept", "out", PRIO_OUT, "all");
    prop(rule(root, "accept", "in", PRIO_REPLIES, "all"), "state", "ESTABLISHED,RELATED");
    source(rule(root, "accept", "in", PRIO_INSIDE, "all"), net, prefix);

    int prio_op = PRIO_OPERATOR, prio_ten = PRIO_TENANT;
    /* Operator rules first whatever order the caller gave. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n_rules; i++) {
            const struct mu_sec_rule *r = &rules[i];
            if (r->operator_rule != (pass == 0))
                continue;
            uint32_t a = 0;
            int p = 0;
            mu_virt_cidr_parse(r->source, &a, &p);
            const char *proto = strcmp(r->proto, "any") == 0 ? "all" : r->proto;
            int prio = r->operator_rule ? prio_op++ : prio_ten++;
            xmlNodePtr m = rule(root, r->action, "in", prio, proto);
            source(m, a, p);
            if (strcmp(proto, "tcp") == 0 || strcmp(proto, "udp") == 0) {
                prop_int(m, "dstportstart", r->port_min);
                prop_int(m, "dstportend", r->port_max);
            }
        }
    }
    rule(root, "drop", "in", PRIO_DROP, "all");

    xmlChar *mem = NULL;
    int len = 0;
    xmlDocDumpFormatMemoryEnc(doc, &mem, &len, "UTF-8", 1);
    xmlFreeDoc(doc);
    if (!mem) {
        fputs("mutualis: out of memory serialising XML\n", stderr);
        abort();
    }
    *ret = mu_xstrndup((const char *)mem, (size_t)len);
    xmlFree(mem);
    return 0;
}
