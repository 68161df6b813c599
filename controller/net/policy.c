/* policies/networks.json: strict parse (errors point at line and column through
 * mu_json_locate), the store configuration it gives, and the provider networks it declares. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/validate.h"
#include "net/net.h"

#define POLICY_FILE_MAX (1 << 20)
#define PROVIDERS_MAX   64
#define PATH_MAX_DEPTH  6

struct provider {
    char *name, *cidr, *gateway, *bridge, *pools_json;
    bool shared;
    int mtu;
};

struct mu_net_policy {
    struct mu_net_config cfg;
    char default_cidr[MU_CIDR_TEXT_MAX];
    struct provider *prov;
    size_t n_prov;
};

struct src {
    const char *text;
    size_t len;
    const char *origin;
};

/* A value named by member/element indexes from the top, for messages. */
struct where {
    int path[PATH_MAX_DEPTH];
    size_t depth;
};

static int MU_PRINTF(5, 6) fail(struct mu_err *err, const struct src *s, const struct where *w,
                                bool at_value, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mu_json_fail_at(err, s->text, s->len, s->origin,
                           mu_json_locate(s->text, s->len, w->path, w->depth, at_value), msg);
}

static int index_of(const cJSON *parent, const cJSON *child)
{
    int i = 0;

    for (const cJSON *it = parent->child; it; it = it->next, i++)
        if (it == child)
            return i;
    return -1;
}

static struct where down(const struct where *w, const cJSON *parent, const cJSON *child)
{
    struct where d = *w;

    if (d.depth < PATH_MAX_DEPTH)
        d.path[d.depth++] = index_of(parent, child);
    return d;
}

/* Every key of obj is in allowed (NULL-terminated). */
static int keys_only(const cJSON *obj, const char *const *allowed, const struct src *s,
                     const struct where *w, const char *what, struct mu_err *err)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        size_t k;

        for (k = 0; allowed[k] && strcmp(allowed[k], it->string) != 0; k++)
            ;
        if (!allowed[k]) {
            struct where d = down(w, obj, it);

            return fail(err, s, &d, false, "unknown key \"%.64s\" in %s", it->string, what);
        }
    }
    return 0;
}

static int get_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *ret,
                   const struct src *s, const struct where *w, struct mu_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    struct where d;

    if (!v)
        return 1;
    d = down(w, obj, v);
    if (mu_json_int_value(v, min, max, ret) < 0)
        return fail(err, s, &d, true, "%s must be an integer between %" PRId64 " and %" PRId64, key,
                    min, max);
    return 0;
}

static int get_str(const cJSON *obj, const char *key, size_t maxlen, const char **ret,
                   const struct src *s, const struct where *w, struct mu_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    struct where d;

    if (!v)
        return 1;
    d = down(w, obj, v);
    if (!cJSON_IsString(v) || strlen(v->valuestring) == 0 || strlen(v->valuestring) > maxlen)
        return fail(err, s, &d, true, "%s must be a non-empty string of at most %zu characters",
                    key, maxlen);
    *ret = v->valuestring;
    return 0;
}

static bool iface_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n >= MU_BRIDGE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || (i > 0 && (ch == '_' || ch == '.' || ch == '-'));

        if (!ok)
            return false;
    }
    return strncmp(s, "mubr", 4) != 0;
}

static int parse_private(const cJSON *v, struct mu_net_policy *p, const struct src *s,
                         const struct where *w, struct mu_err *err)
{
    static const char *const keys[] = {"mode", "vxlan", "vlan", "default_cidr", NULL};
    static const char *const vx_keys[] = {"port", "vni_min", "vni_max", NULL};
    static const char *const vl_keys[] = {"trunk_bridge", "vlan_min", "vlan_max", "uplink", NULL};
    const cJSON *vx, *vl;
    const char *mode = "vxlan", *cidr = NULL;
    int64_t x;
    int rc;

    if (!cJSON_IsObject(v))
        return fail(err, s, w, true, "private must be an object like {\"mode\": \"vxlan\"}");
    rc = keys_only(v, keys, s, w, "private", err);
    if (rc == 0 && get_str(v, "mode", 8, &mode, s, w, err) < 0)
        return MU_EINVAL;
    if (rc < 0)
        return rc;
    if (strcmp(mode, "vxlan") != 0 && strcmp(mode, "vlan") != 0) {
        struct where d = down(w, v, cJSON_GetObjectItemCaseSensitive(v, "mode"));

        return fail(err, s, &d, true, "mode must be \"vxlan\" or \"vlan\"");
    }
    snprintf(p->cfg.mode, sizeof p->cfg.mode, "%s", mode);
    vx = cJSON_GetObjectItemCaseSensitive(v, "vxlan");
    if (vx) {
        struct where d = down(w, v, vx);

        if (!cJSON_IsObject(vx))
            return fail(err, s, &d, true, "vxlan must be an object");
        if ((rc = keys_only(vx, vx_keys, s, &d, "vxlan", err)) < 0)
            return rc;
        if ((rc = get_int(vx, "port", 1, 65535, &x, s, &d, err)) < 0)
            return rc;
        if (rc == 0)
            p->cfg.vxlan_port = (int)x;
        if ((rc = get_int(vx, "vni_min", 1, 16777215, &p->cfg.segment_min, s, &d, err)) < 0 ||
            (rc = get_int(vx, "vni_max", 1, 16777215, &p->cfg.segment_max, s, &d, err)) < 0)
            return rc;
        if (p->cfg.segment_min > p->cfg.segment_max)
            return fail(err, s, &d, true, "vni_min must not be above vni_max");
    }
    vl = cJSON_GetObjectItemCaseSensitive(v, "vlan");
    if (strcmp(mode, "vlan") == 0) {
        const char *trunk = NULL, *uplink = NULL;
        struct where d;

        if (!vl || !cJSON_IsObject(vl))
            return fail(err, s, w, true,
                        "mode \"vlan\" needs \"vlan\": {\"trunk_bridge\": \"br-trunk\", "
                        "\"vlan_min\": 100, \"vlan_max\": 4094}");
        d = down(w, v, vl);
        p->cfg.segment_min = 1;
        p->cfg.segment_max = 4094;
        if ((rc = keys_only(vl, vl_keys, s, &d, "vlan", err)) < 0 ||
            (rc = get_str(vl, "trunk_bridge", MU_BRIDGE_MAX - 1, &trunk, s, &d, err)) < 0 ||
            (rc = get_int(vl, "vlan_min", 1, 4094, &p->cfg.segment_min, s, &d, err)) < 0 ||
            (rc = get_int(vl, "vlan_max", 1, 4094, &p->cfg.segment_max, s, &d, err)) < 0)
            return rc;
        if (!trunk || !iface_name_valid(trunk))
            return fail(err, s, &d, true,
                        "trunk_bridge must name the operator's trunk bridge on the nodes "
                        "(letters, digits, '_', '.', '-', at most 15 characters)");
        if (p->cfg.segment_min > p->cfg.segment_max)
            return fail(err, s, &d, true, "vlan_min must not be above vlan_max");
        snprintf(p->cfg.trunk_bridge, sizeof p->cfg.trunk_bridge, "%s", trunk);
        /* The trunk's uplink port: the agent puts every VLAN of the node on it, tagged. */
        if ((rc = get_str(vl, "uplink", MU_BRIDGE_MAX - 1, &uplink, s, &d, err)) < 0)
            return rc;
        if (uplink && (!iface_name_valid(uplink) || strcmp(uplink, trunk) == 0))
            return fail(err, s, &d, true,
                        "uplink must name the trunk bridge's uplink port on the nodes, not the "
                        "bridge itself (letters, digits, '_', '.', '-', at most 15 characters)");
        if (uplink)
            snprintf(p->cfg.trunk_uplink, sizeof p->cfg.trunk_uplink, "%s", uplink);
    } else if (vl) {
        struct where d = down(w, v, vl);

        if (!cJSON_IsObject(vl) || keys_only(vl, vl_keys, s, &d, "vlan", err) < 0)
            return err->code ? err->code : fail(err, s, &d, true, "vlan must be an object");
    }
    if ((rc = get_str(v, "default_cidr", MU_CIDR_TEXT_MAX - 1, &cidr, s, w, err)) < 0)
        return rc;
    if (cidr) {
        struct where d = down(w, v, cJSON_GetObjectItemCaseSensitive(v, "default_cidr"));
        struct mu_err e = {0};
        uint32_t net;
        int prefix;

        if (mu_cidr_parse(cidr, "default_cidr", &net, &prefix, &e) < 0)
            return fail(err, s, &d, true, "%s", e.detail);
        snprintf(p->default_cidr, sizeof p->default_cidr, "%s", cidr);
    }
    return 0;
}

static int parse_provider(const cJSON *v, struct provider *out, const struct src *s,
                          const struct where *w, struct mu_err *err)
{
    static const char *const keys[] = {"name",  "cidr",   "gateway", "bridge",
                                       "pools", "shared", "mtu",     NULL};
    const char *name = NULL, *cidr = NULL, *gw = NULL, *bridge = NULL;
    const cJSON *pools, *shared;
    struct mu_err e = {0};
    uint32_t net, g;
    int prefix, rc;
    int64_t mtu = 0;

    if (!cJSON_IsObject(v))
        return fail(err, s, w, true,
                    "a provider network is an object like {\"name\": \"public\", \"cidr\": "
                    "\"203.0.113.0/24\", \"bridge\": \"br-public\"}");
    if ((rc = keys_only(v, keys, s, w, "a provider network", err)) < 0 ||
        (rc = get_str(v, "name", 48, &name, s, w, err)) < 0 ||
        (rc = get_str(v, "cidr", MU_CIDR_TEXT_MAX - 1, &cidr, s, w, err)) < 0 ||
        (rc = get_str(v, "gateway", MU_IPV4_TEXT_MAX - 1, &gw, s, w, err)) < 0 ||
        (rc = get_str(v, "bridge", MU_BRIDGE_MAX - 1, &bridge, s, w, err)) < 0 ||
        (rc = get_int(v, "mtu", 576, 9216, &mtu, s, w, err)) < 0)
        return rc;
    if (!name || !mu_ident_valid(name))
        return fail(err, s, w, true,
                    "a provider network needs a \"name\" of lower-case letters, digits, '.', "
                    "'_' and '-'");
    if (!cidr || mu_cidr_parse(cidr, "cidr", &net, &prefix, &e) < 0)
        return fail(err, s, w, true, "provider network %s: %s", name,
                    cidr ? e.detail : "\"cidr\" is required");
    if (gw && (mu_ipv4_parse(gw, &g) < 0 || (g & ~(0xffffffffu >> prefix)) != net))
        return fail(err, s, w, true, "provider network %s: gateway %s is not inside %s", name, gw,
                    cidr);
    if (!bridge || !iface_name_valid(bridge))
        return fail(err, s, w, true,
                    "provider network %s needs \"bridge\": an existing bridge on every node "
                    "(letters, digits, '_', '.', '-', at most 15 characters)",
                    name);
    pools = cJSON_GetObjectItemCaseSensitive(v, "pools");
    shared = cJSON_GetObjectItemCaseSensitive(v, "shared");
    if (shared && !cJSON_IsBool(shared)) {
        struct where d = down(w, v, shared);

        return fail(err, s, &d, true, "shared must be true or false");
    }
    if (pools && !cJSON_IsArray(pools)) {
        struct where d = down(w, v, pools);

        return fail(err, s, &d, true, "pools must be a list of ranges [[\"a\", \"b\"], ...]");
    }
    out->name = mu_xstrdup(name);
    out->cidr = mu_xstrdup(cidr);
    out->gateway = mu_xstrdup(gw);
    out->bridge = mu_xstrdup(bridge);
    out->pools_json = pools ? mu_json_print(pools) : NULL;
    out->shared = shared && cJSON_IsTrue(shared);
    out->mtu = (int)mtu;
    return 0;
}

void mu_net_policy_free(struct mu_net_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_prov; i++) {
        free(p->prov[i].name);
        free(p->prov[i].cidr);
        free(p->prov[i].gateway);
        free(p->prov[i].bridge);
        free(p->prov[i].pools_json);
    }
    free(p->prov);
    free(p);
}

int mu_net_policy_parse(const char *buf, size_t len, const char *origin, struct mu_net_policy **ret,
                        struct mu_err *err)
{
    static const char *const keys[] = {"version",        "private",   "underlay_mtu",
                                       "vxlan_overhead", "providers", NULL};
    const struct src s = {buf, len, origin};
    const struct where top = {{0}, 0};
    struct mu_net_policy *p;
    const cJSON *priv, *provs;
    int64_t version = 0, x;
    cJSON *root;
    int rc;

    root = mu_json_parse(buf, len, origin, err);
    if (!root)
        return MU_EINVAL;
    p = mu_xcalloc(1, sizeof *p);
    p->cfg = (struct mu_net_config){.mode = "vxlan",
                                    .segment_min = 1000,
                                    .segment_max = 16000000,
                                    .underlay_mtu = 1500,
                                    .vxlan_overhead = 50,
                                    .vxlan_port = 4789};
    snprintf(p->default_cidr, sizeof p->default_cidr, "10.0.0.0/24");
    if (!cJSON_IsObject(root)) {
        rc = fail(err, &s, &top, true, "the policy must be a JSON object");
        goto out;
    }
    if ((rc = keys_only(root, keys, &s, &top, "the policy", err)) < 0)
        goto out;
    rc = get_int(root, "version", 1, 1, &version, &s, &top, err);
    if (rc == 1)
        rc = fail(err, &s, &top, true, "\"version\": 1 is required");
    if (rc < 0)
        goto out;
    priv = cJSON_GetObjectItemCaseSensitive(root, "private");
    if (!priv) {
        rc = fail(err, &s, &top, true, "\"private\" is required (how tenant networks are built)");
        goto out;
    }
    {
        struct where d = down(&top, root, priv);

        if ((rc = parse_private(priv, p, &s, &d, err)) < 0)
            goto out;
    }
    if ((rc = get_int(root, "underlay_mtu", 576, 9216, &x, &s, &top, err)) < 0)
        goto out;
    if (rc == 0)
        p->cfg.underlay_mtu = (int)x;
    if ((rc = get_int(root, "vxlan_overhead", 0, 200, &x, &s, &top, err)) < 0)
        goto out;
    if (rc == 0)
        p->cfg.vxlan_overhead = (int)x;
    if (mu_net_guest_mtu(p->cfg.underlay_mtu, p->cfg.vxlan_overhead) < 576) {
        rc = fail(err, &s, &top, true,
                  "underlay_mtu - vxlan_overhead must leave the guests at least 576 bytes");
        goto out;
    }
    rc = 0;
    provs = cJSON_GetObjectItemCaseSensitive(root, "providers");
    if (provs) {
        struct where d = down(&top, root, provs);
        const cJSON *it;

        if (!cJSON_IsArray(provs) || cJSON_GetArraySize(provs) > PROVIDERS_MAX) {
            rc = fail(err, &s, &d, true, "providers must be a list of at most %d networks",
                      PROVIDERS_MAX);
            goto out;
        }
        p->prov = mu_xcalloc((size_t)cJSON_GetArraySize(provs) + 1, sizeof *p->prov);
        cJSON_ArrayForEach(it, provs)
        {
            struct where e = down(&d, provs, it);

            rc = parse_provider(it, &p->prov[p->n_prov], &s, &e, err);
            if (rc < 0)
                goto out;
            for (size_t k = 0; k < p->n_prov; k++)
                if (strcmp(p->prov[k].name, p->prov[p->n_prov].name) == 0) {
                    p->n_prov++;
                    rc = fail(err, &s, &e, true, "provider network %s is declared twice",
                              p->prov[k].name);
                    goto out;
                }
            p->n_prov++;
        }
    }
out:
    cJSON_Delete(root);
    if (rc < 0) {
        mu_net_policy_free(p);
        return rc;
    }
    *ret = p;
    return 0;
}

int mu_net_policy_load(const char *path, struct mu_net_policy **ret, struct mu_err *err)
{
    MU_AUTOFREE char *text = NULL;
    size_t len = 0;

    text = mu_read_file(path, POLICY_FILE_MAX, &len);
    if (!text)
        return mu_err_set(err, MU_EIO, "%s: cannot read: %m", path);
    return mu_net_policy_parse(text, len, path, ret, err);
}

void mu_net_policy_config(const struct mu_net_policy *p, struct mu_net_config *ret)
{
    *ret = p->cfg;
}

const char *mu_net_policy_default_cidr(const struct mu_net_policy *p)
{
    return p->default_cidr;
}

int mu_net_policy_apply(const struct mu_net_policy *p, struct mu_store *st,
                        const struct mu_audit_rec *audit, int *ret_created, struct mu_err *err)
{
    int created = 0;

    mu_store_net_config_set(st, &p->cfg);
    for (size_t i = 0; i < p->n_prov; i++) {
        const struct provider *pv = &p->prov[i];
        const struct mu_network_spec sp = {.name = pv->name,
                                           .kind = "provider",
                                           .cidr = pv->cidr,
                                           .gateway = pv->gateway,
                                           .bridge = pv->bridge,
                                           .pool_json = pv->pools_json,
                                           .shared = pv->shared,
                                           .mtu = pv->mtu};
        struct mu_err e = {0};
        int64_t id = 0;
        int rc;

        if (mu_store_network_find_provider(st, pv->name, &id, &e) == 0)
            continue;
        rc = mu_store_network_create(st, &sp, NULL, audit, &id, err);
        if (rc < 0)
            return rc;
        created++;
    }
    if (ret_created)
        *ret_created = created;
    return 0;
}

int mu_net_guest_mtu(int underlay_mtu, int overhead)
{
    return underlay_mtu - overhead;
}

bool mu_net_bridge_name(int64_t segment, char out[MU_BRIDGE_MAX])
{
    int n;

    if (segment < 0)
        return false;
    n = snprintf(out, MU_BRIDGE_MAX, "mubr%" PRId64, segment);
    return n > 0 && n < MU_BRIDGE_MAX;
}
