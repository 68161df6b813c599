/* The node's network plan as the controller sends it (net.h), parsed strictly: every value
 * that will reach ip, bridge or nft is checked here against its allow-list, and only the
 * parsed integers and addresses travel further (re-printed, never the received text).
 * Keys the agent does not use are ignored, so a newer controller can add fields. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "net/net.h"

void mu_net_plan_clear(struct mu_net_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_segs; i++) {
        free(p->segs[i].peers);
        free(p->segs[i].macs);
    }
    free(p->segs);
    free(p->allowed);
    memset(p, 0, sizeof *p);
}

/* Dotted IPv4, no leading zeros, not 0.0.0.0, not multicast or broadcast. */
static int ipv4_parse(const char *s, uint32_t *ret)
{
    uint32_t v = 0;
    int parts = 0;
    const char *p = s;
    if (!s || strlen(s) < 7 || strlen(s) > 15)
        return -1;
    while (parts < 4) {
        int octet = 0, digits = 0;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9') {
            if (digits == 1 && octet == 0)
                return -1;
            octet = octet * 10 + (*p++ - '0');
            if (++digits > 3 || octet > 255)
                return -1;
        }
        v = (v << 8) | (uint32_t)octet;
        if (++parts < 4 && *p++ != '.')
            return -1;
    }
    if (*p != '\0' || v == 0 || (v >> 28) >= 14) /* 224.0.0.0 and up */
        return -1;
    *ret = v;
    return 0;
}

static bool bridge_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15 || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* An interface name the operator chose (trunk bridge, uplink port): the policy's allow-list,
 * letters, digits, '_', '.', '-', not starting with '-' or '.', 1..15 characters. */
static bool iface_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15 || s[0] == '-' || s[0] == '.' || s[0] == '_')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

/* "52:54:00:ab:cd:ef" (either case) into lowercase; false if it is not a unicast MAC. */
static bool mac_parse(const char *s, char out[18])
{
    static const char hex[] = "0123456789abcdef";
    if (strlen(s) != 17)
        return false;
    for (size_t i = 0; i < 17; i++) {
        char c = s[i];
        if (i % 3 == 2) {
            if (c != ':')
                return false;
            out[i] = ':';
            continue;
        }
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!memchr(hex, c, 16) || c == '\0')
            return false;
        out[i] = c;
    }
    out[17] = '\0';
    /* The multicast bit is the low bit of the first byte. */
    return ((strchr(hex, out[1]) - hex) & 1) == 0;
}

/* "macs" of a vlan segment into a new array (duplicates removed). */
static int mac_list(const cJSON *obj, struct mu_net_segment *s, struct mu_err *err)
{
    const cJSON *arr = NULL, *it;
    int rc = mu_json_get_array(obj, "macs", false, &arr, err);
    if (rc < 0)
        return rc;
    size_t n = arr ? (size_t)cJSON_GetArraySize(arr) : 0;
    if (n > MU_NET_PEERS_MAX)
        return mu_err_setf(err, MU_EINVAL, "macs", "macs holds more than %d addresses",
                           MU_NET_PEERS_MAX);
    s->macs = mu_xcalloc(n + 1, sizeof *s->macs);
    s->n_macs = 0;
    cJSON_ArrayForEach(it, arr)
    {
        char m[18];
        if (!cJSON_IsString(it) || !mac_parse(it->valuestring, m))
            return mu_err_setf(err, MU_EINVAL, "macs",
                               "macs must hold unicast MAC addresses like 52:54:00:12:34:56");
        bool dup = false;
        for (size_t j = 0; j < s->n_macs; j++)
            dup = dup || strcmp(s->macs[j], m) == 0;
        if (!dup)
            memcpy(s->macs[s->n_macs++], m, 18);
    }
    return 0;
}

/* An array of IPv4 strings into a new array of addresses (duplicates removed). */
static int addr_list(const cJSON *obj, const char *key, uint32_t **ret, size_t *ret_n,
                     struct mu_err *err)
{
    const cJSON *arr = NULL;
    int rc = mu_json_get_array(obj, key, false, &arr, err);
    if (rc < 0)
        return rc;
    size_t n = arr ? (size_t)cJSON_GetArraySize(arr) : 0;
    if (n > MU_NET_PEERS_MAX)
        return mu_err_setf(err, MU_EINVAL, key, "%s holds more than %d addresses", key,
                           MU_NET_PEERS_MAX);
    uint32_t *out = mu_xcalloc(n + 1, sizeof *out);
    size_t k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        uint32_t a;
        if (!cJSON_IsString(it) || ipv4_parse(it->valuestring, &a) < 0) {
            free(out);
            return mu_err_setf(err, MU_EINVAL, key, "%s must hold unicast dotted IPv4 addresses",
                               key);
        }
        bool dup = false;
        for (size_t j = 0; j < k; j++)
            dup = dup || out[j] == a;
        if (!dup)
            out[k++] = a;
    }
    *ret = out;
    *ret_n = k;
    return 0;
}

static int segment_parse(const cJSON *o, size_t i, struct mu_net_segment *s, struct mu_err *err)
{
    const char *mode = NULL, *bridge = NULL;
    int64_t mtu = 0;
    int rc;
    if (!cJSON_IsObject(o))
        return mu_err_setf(err, MU_EINVAL, "segments", "segment %zu is not an object", i);
    rc = mu_json_get_i64(o, "network", true, 1, INT64_MAX, &s->network, err);
    if (rc == 0)
        rc = mu_json_get_str(o, "mode", true, 7, &mode, err);
    if (rc == 0 && strcmp(mode, "vxlan") != 0 && strcmp(mode, "bridge") != 0 &&
        strcmp(mode, "vlan") != 0)
        rc = mu_err_setf(err, MU_EINVAL, "mode", "segment %zu: mode must be vxlan, bridge or vlan",
                         i);
    if (rc == 0)
        rc = mu_json_get_str(o, "bridge", true, 15, &bridge, err);
    if (rc == 0 && !(strcmp(mode, "vlan") == 0 ? iface_valid(bridge) : bridge_valid(bridge)))
        rc = mu_err_setf(err, MU_EINVAL, "bridge", "segment %zu: bridge must be 1..15 of a-z 0-9 -",
                         i);
    if (rc == 0)
        rc = mu_json_get_i64(o, "mtu", true, 576, 9000, &mtu, err);
    if (rc < 0)
        return rc;
    snprintf(s->mode, sizeof s->mode, "%s", mode);
    snprintf(s->bridge, sizeof s->bridge, "%s", bridge);
    s->mtu = (int)mtu;
    if (strcmp(mode, "vxlan") == 0) {
        char want[16];
        rc = mu_json_get_i64(o, "segment", true, 1, MU_NET_VNI_MAX, &s->segment, err);
        if (rc < 0)
            return rc;
        snprintf(want, sizeof want, "mubr%lld", (long long)s->segment);
        if (strcmp(bridge, want) != 0)
            return mu_err_setf(err, MU_EINVAL, "bridge", "segment %zu: a vxlan bridge must be %s",
                               i, want);
    } else if (strcmp(mode, "vlan") == 0) {
        const char *uplink = NULL;
        rc = mu_json_get_i64(o, "segment", true, 1, 4094, &s->segment, err);
        if (rc == 0)
            rc = mu_json_get_str(o, "uplink", false, 15, &uplink, err);
        if (rc == 0 && uplink && (!iface_valid(uplink) || strcmp(uplink, bridge) == 0))
            rc = mu_err_setf(err, MU_EINVAL, "uplink",
                             "segment %zu: uplink must name a port of the trunk bridge "
                             "(1..15 of a-z A-Z 0-9 _ . -)",
                             i);
        if (rc == 0)
            rc = mac_list(o, s, err);
        if (rc < 0)
            return rc;
        snprintf(s->uplink, sizeof s->uplink, "%s", uplink ? uplink : "");
    }
    return addr_list(o, "peers", &s->peers, &s->n_peers, err) < 0 ? MU_EINVAL : 0;
}

int64_t mu_net_vlan_of_port(const struct mu_net_plan *p, const char *trunk, const char *port_mac)
{
    char m[18];
    if (!port_mac || !mac_parse(port_mac, m))
        return 0;
    for (size_t i = 0; i < p->n_segs; i++) {
        const struct mu_net_segment *s = &p->segs[i];
        if (strcmp(s->mode, "vlan") != 0 || strcmp(s->bridge, trunk) != 0)
            continue;
        for (size_t j = 0; j < s->n_macs; j++)
            if (strcmp(s->macs[j], m) == 0 ||
                (strncmp(m, "fe", 2) == 0 && strcmp(s->macs[j] + 2, m + 2) == 0))
                return s->segment;
    }
    return 0;
}

int mu_net_plan_parse(const char *json, size_t len, struct mu_net_plan *ret, struct mu_err *err)
{
    struct mu_net_plan p = {0};
    const char *local = NULL;
    const cJSON *segs = NULL;
    int64_t v = 0;
    cJSON *root = mu_json_parse(json, len, "network plan", err);
    if (!root)
        return MU_EINVAL;
    int rc = cJSON_IsObject(root) ? 0 : mu_err_set(err, MU_EINVAL, "the plan is not an object");
    if (rc == 0)
        rc = mu_json_get_i64(root, "generation", true, 0, INT64_MAX, &p.generation, err);
    if (rc == 0 && mu_json_get_str(root, "local", false, 15, &local, err) < 0)
        rc = MU_EINVAL;
    if (rc == 0 && local && local[0] && ipv4_parse(local, &p.local) < 0)
        rc = mu_err_setf(err, MU_EINVAL, "local", "local must be a unicast dotted IPv4 address");
    v = 1500;
    if (rc == 0 && mu_json_get_i64(root, "underlay_mtu", false, 576, 9216, &v, err) < 0)
        rc = MU_EINVAL;
    p.underlay_mtu = (int)v;
    v = 4789;
    if (rc == 0 && mu_json_get_i64(root, "vxlan_port", false, 1, 65535, &v, err) < 0)
        rc = MU_EINVAL;
    p.vxlan_port = (int)v;
    if (rc == 0)
        rc = addr_list(root, "allowed_peers", &p.allowed, &p.n_allowed, err);
    if (rc == 0 && mu_json_get_array(root, "segments", false, &segs, err) < 0)
        rc = MU_EINVAL;
    size_t n = segs ? (size_t)cJSON_GetArraySize(segs) : 0;
    if (rc == 0 && n > MU_NET_SEGS_MAX)
        rc = mu_err_setf(err, MU_EINVAL, "segments", "more than %d segments", MU_NET_SEGS_MAX);
    if (rc == 0) {
        p.segs = mu_xcalloc(n + 1, sizeof *p.segs);
        const cJSON *it;
        cJSON_ArrayForEach(it, segs)
        {
            rc = segment_parse(it, p.n_segs, &p.segs[p.n_segs], err);
            p.n_segs++; /* cleared with the others on failure */
            if (rc < 0)
                break;
            for (size_t j = 0; j + 1 < p.n_segs; j++) {
                const struct mu_net_segment *a = &p.segs[j], *b = &p.segs[p.n_segs - 1];
                /* Provider networks may share a bridge, vlan segments share the trunk. */
                bool shared = strcmp(b->mode, "bridge") == 0 ||
                              (strcmp(a->mode, "vlan") == 0 && strcmp(b->mode, "vlan") == 0);
                if (strcmp(a->bridge, b->bridge) == 0 && !shared) {
                    rc =
                        mu_err_setf(err, MU_EINVAL, "bridge", "bridge %s appears twice", b->bridge);
                    break;
                }
            }
            if (rc < 0)
                break;
        }
    }
    cJSON_Delete(root);
    if (rc < 0) {
        mu_net_plan_clear(&p);
        return rc;
    }
    *ret = p;
    return 0;
}
