/* /v1/networks: tenant private networks and operator provider networks, their allocated
 * addresses and their security rules.
 *
 * Scope: IPv4 only. A private network is an isolated layer-2 segment (VXLAN or VLAN, per
 * policies/networks.json) with no gateway: IPv6, routed gateways and NAT are out of scope,
 * and bodies that ask for them are refused (400), never silently ignored. Provider networks
 * (kind "provider", mode "bridge") are operator-defined existing bridges on every node with
 * address pools, e.g. the public uplink; a NIC on one holds a public address, which counts
 * against the public_ips quota.
 *
 * Visibility: a tenant sees its subtree's networks and the provider networks the operators
 * opened to tenants ("shared"); anything else answers 404. Rules: ingress allow-list by
 * protocol, port and source CIDR; operator rules (operator_rule: true, may "drop") come
 * first and tenants cannot remove them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "mutualis/json.h"
#include "mutualis/validate.h"
#include "net/net.h"
#include "store/network.h"
#include "store/provision.h"
#include "tenancy/quotas.h"

static bool is_global(const struct mu_req *req)
{
    return mu_principal_is_global(&req->principal);
}

static cJSON *network_json(struct mu_req *req, const struct mu_network *n)
{
    cJSON *o = mu_json_obj();
    int64_t nics = 0, fr = 0;
    struct mu_err err = {0};

    mu_json_add_i64(o, "id", n->id);
    mu_json_add_i64(o, "tenant_id", n->tenant_id);
    mu_json_add_str(o, "name", n->name);
    mu_json_add_str(o, "kind", n->kind);
    mu_json_add_str(o, "mode", n->mode);
    mu_json_add_str(o, "cidr", n->cidr);
    mu_json_add_str(o, "gateway", n->gateway[0] ? n->gateway : NULL);
    mu_json_add_i64_pos(o, "segment", n->segment);
    mu_json_add_str(o, "bridge", n->bridge);
    mu_json_add_i64(o, "mtu", n->mtu);
    cJSON *res = n->reserved_json ? cJSON_Parse(n->reserved_json) : NULL;
    cJSON_AddItemToObject(o, "reserved", res ? res : mu_json_arr());
    if (strcmp(n->kind, "provider") == 0) {
        cJSON *pools = n->pool_json ? cJSON_Parse(n->pool_json) : NULL;
        if (pools)
            cJSON_AddItemToObject(o, "pools", pools);
        else
            mu_json_add_null(o, "pools");
        mu_json_add_bool(o, "shared", n->shared);
    }
    mu_json_add_i64(o, "rules_gen", n->rules_gen);
    if (mu_store_network_counts(req->app->store, n->id, &nics, &fr, &err) == 0) {
        mu_json_add_i64(o, "nics", nics);
        mu_json_add_i64(o, "free_addresses", fr);
    }
    mu_json_add_time(o, "created_at", n->created_ms);
    mu_json_add_time(o, "updated_at", n->updated_ms);
    return o;
}

/* Loads {id}: visible if in the caller's subtree or a shared provider network; else 404.
 * *ret_own: the caller may change it (its subtree's, or any for operators). */
static int load_network(struct mu_req *req, struct mu_network *ret, bool *ret_own,
                        struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "network", &id, err);
    if (r < 0)
        return r;
    r = mu_store_network_get(req->app->store, id, ret, err);
    if (r < 0)
        return r;
    bool own = mu_req_check_tenant(req, ret->tenant_id, err) == 0;
    mu_err_clear(err);
    if (!own && !(strcmp(ret->kind, "provider") == 0 && ret->shared)) {
        mu_network_clear(ret);
        return mu_err_set(err, MU_ENOTFOUND, "no network %lld", (long long)id);
    }
    /* A tenant never changes a provider network, even one of its ancestors' tree. */
    if (strcmp(ret->kind, "provider") == 0 && !is_global(req))
        own = false;
    *ret_own = own;
    return MU_OK;
}

static int refuse_not_own(const struct mu_network *n, struct mu_err *err)
{
    return mu_err_set(err, MU_EFORBIDDEN,
                      "network %s is a provider network: only the data centre's operators "
                      "change it",
                      n->name);
}

int mu_h_network_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int limit = 0;
    int64_t after = 0;
    int r = mu_req_page(req, &limit, &after, err);
    if (r < 0)
        return r;
    struct mu_network *ns = NULL;
    size_t n = 0;
    int64_t scope = is_global(req) ? 0 : req->principal.tenant_id;
    if (!is_global(req) && scope <= 0)
        return mu_err_set(err, MU_EFORBIDDEN, "this account has no tenant");
    r = mu_store_network_list(req->app->store, scope, after, limit, &ns, &n, err);
    if (r < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, network_json(req, &ns[i]));
    resp->json = mu_h_list_answer(items, n, limit, n ? ns[n - 1].id : 0);
    mu_networks_free(ns, n);
    return MU_OK;
}

int mu_h_network_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_network n = {0};
    bool own = false;
    int r = load_network(req, &n, &own, err);
    if (r < 0)
        return r;
    resp->json = network_json(req, &n);
    mu_network_clear(&n);
    return MU_OK;
}

/* Keys that ask for what this API does not do: refused with the reason. */
static int refuse_out_of_scope(const cJSON *body, struct mu_err *err)
{
    static const char *const keys[] = {"ipv6",  "cidr6",      "ipv6_cidr", "nat", "routed",
                                       "route", "routes",     "dhcp",      "dns", "router",
                                       "snat",  "masquerade", "external",  NULL};
    for (size_t i = 0; keys[i]; i++)
        if (cJSON_GetObjectItemCaseSensitive(body, keys[i]))
            return mu_err_setf(err, MU_EINVAL, keys[i],
                               "%s is not supported: networks are IPv4 only, without routing, "
                               "NAT or DHCP (addresses reach guests through cloud-init)",
                               keys[i]);
    return MU_OK;
}

/* An optional array body field as JSON text (NULL when absent). */
static int array_text(const cJSON *body, const char *key, char **ret, struct mu_err *err)
{
    const cJSON *a = NULL;
    int r = mu_json_get_array(body, key, false, &a, err);
    if (r < 0)
        return r;
    *ret = r == 0 ? mu_json_print(a) : NULL;
    return MU_OK;
}

int mu_h_network_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"name",  "tenant_id", "kind",    "mode",
                                          "cidr",  "reserved",  "gateway", "bridge",
                                          "pools", "shared",    "mtu",     NULL};
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    struct mu_network_spec sp = {.kind = "private"};
    MU_AUTOFREE char *reserved = NULL, *pools = NULL, *default_cidr = NULL;
    MU_AUTOFREE char *target = NULL;
    int64_t mtu = 0, id = 0;
    bool provider = false;
    int r = refuse_out_of_scope(body, err);
    if (r >= 0)
        r = mu_json_expect_object(body, allowed, "network", err);
    if (r >= 0)
        r = mu_json_get_str(body, "name", true, 48, &sp.name, err);
    if (r >= 0)
        r = mu_json_get_str(body, "kind", false, 16, &sp.kind, err);
    if (r >= 0)
        provider = strcmp(sp.kind, "provider") == 0;
    /* "mode" may be given, but only as what the network will be: "bridge" for a provider
     * network, the network policy's mode for a private one. */
    const char *mode = NULL;
    if (r >= 0)
        r = mu_json_get_str(body, "mode", false, 8, &mode, err);
    if (r >= 0 && mode) {
        struct mu_net_config conf;
        mu_store_net_config_get(req->app->store, &conf);
        const char *want = provider ? "bridge" : conf.mode;
        if (strcmp(mode, want) != 0)
            r = mu_err_setf(err, MU_EINVAL, "mode", "a %s network here is in mode \"%s\"%s",
                            provider ? "provider" : "private", want,
                            provider ? " (an existing bridge on every node)"
                                     : " (set by policies/networks.json)");
    }
    if (r >= 0 && provider && !is_global(req))
        r = mu_err_setf(err, MU_EFORBIDDEN, "kind",
                        "only the data centre's operators create provider networks");
    if (r >= 0 && !is_global(req) && strcmp(req->principal.role, "operator") != 0)
        sp.tenant_id = req->principal.tenant_id;
    if (r >= 0)
        r = mu_json_get_i64(body, "tenant_id", !provider && is_global(req), 1, INT64_MAX,
                            &sp.tenant_id, err);
    if (r >= 0 && provider && cJSON_GetObjectItemCaseSensitive(body, "tenant_id"))
        r = mu_err_setf(err, MU_EINVAL, "tenant_id",
                        "provider networks belong to the data centre (the root tenant): leave "
                        "tenant_id out");
    if (r >= 0 && !provider)
        r = mu_req_check_tenant(req, sp.tenant_id, err);
    if (r >= 0)
        r = mu_json_get_str(body, "cidr", provider, MU_CIDR_TEXT_MAX - 1, &sp.cidr, err);
    if (r >= 0)
        r = mu_json_get_str(body, "gateway", false, MU_IPV4_TEXT_MAX - 1, &sp.gateway, err);
    if (r >= 0)
        r = mu_json_get_str(body, "bridge", false, MU_BRIDGE_MAX - 1, &sp.bridge, err);
    if (r >= 0)
        r = mu_json_get_bool(body, "shared", false, &sp.shared, err);
    if (r >= 0)
        r = mu_json_get_i64(body, "mtu", false, 576, 9216, &mtu, err);
    if (r >= 0)
        r = array_text(body, "reserved", &reserved, err);
    if (r >= 0)
        r = array_text(body, "pools", &pools, err);
    if (r >= 0 && !provider &&
        (sp.gateway || sp.bridge || pools || cJSON_GetObjectItemCaseSensitive(body, "shared") ||
         mtu))
        r = mu_err_setf(err, MU_EINVAL,
                        sp.gateway  ? "gateway"
                        : sp.bridge ? "bridge"
                        : pools     ? "pools"
                        : mtu       ? "mtu"
                                    : "shared",
                        "gateway, bridge, pools, shared and mtu are for provider networks: a "
                        "private network routes nowhere and its bridge and MTU come from the "
                        "network policy");
    if (r < 0)
        goto out;
    sp.mtu = (int)mtu;
    sp.reserved_json = reserved;
    sp.pool_json = pools;
    pthread_rwlock_rdlock(&req->app->policy_lock);
    if (!sp.cidr && req->app->net_policy) {
        default_cidr = mu_xstrdup(mu_net_policy_default_cidr(req->app->net_policy));
        sp.cidr = default_cidr;
    }
    struct mu_quota_defaults defaults = mu_quota_policy_defaults(req->app->quotas);
    struct mu_audit_rec rec;
    target = mu_xasprintf("network:%s", sp.name);
    mu_req_audit(req, &rec, sp.tenant_id, target);
    r = mu_store_network_create(req->app->store, &sp, &defaults, &rec, &id, err);
    pthread_rwlock_unlock(&req->app->policy_lock);
    if (r < 0)
        goto out;
    struct mu_network n = {0};
    r = mu_store_network_get(req->app->store, id, &n, err);
    if (r == 0) {
        resp->json = network_json(req, &n);
        resp->status = 201;
        resp->location = mu_xasprintf("/v1/networks/%lld", (long long)id);
    }
    mu_network_clear(&n);
out:
    cJSON_Delete(body);
    return r;
}

int mu_h_network_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_network n = {0};
    bool own = false;
    int r = load_network(req, &n, &own, err);
    if (r < 0)
        return r;
    if (!own) {
        r = refuse_not_own(&n, err);
        mu_network_clear(&n);
        return r;
    }
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("network/%lld", (long long)n.id);
    mu_req_audit(req, &rec, n.tenant_id, target);
    r = mu_store_network_delete(req->app->store, n.id, &rec, err);
    mu_network_clear(&n);
    if (r < 0)
        return r;
    resp->status = 204;
    return MU_OK;
}

int mu_h_network_addresses(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_network n = {0};
    bool own = false;
    int r = load_network(req, &n, &own, err);
    if (r < 0)
        return r;
    int64_t limit = 100;
    const char *v = mu_req_query(req, "limit");
    const char *after = mu_req_query(req, "after");
    uint32_t a;
    if (v && mu_parse_i64(v, 1, 1000, &limit) != 0)
        r = mu_err_setf(err, MU_EINVAL, "limit", "limit must be between 1 and 1000");
    else if (after && mu_ipv4_parse(after, &a) < 0)
        r = mu_err_setf(err, MU_EINVAL, "after",
                        "after must be an IPv4 address (the last one seen)");
    struct mu_net_address *as = NULL;
    size_t na = 0;
    if (r == 0)
        r = mu_store_network_addresses(req->app->store, n.id, after, (int)limit, &as, &na, err);
    if (r < 0) {
        mu_network_clear(&n);
        return r;
    }
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < na; i++) {
        /* On a shared provider network a tenant sees only its own subtree's addresses. */
        if (!own && !is_global(req) &&
            !mu_store_tenant_in_subtree(req->app->store, req->principal.tenant_id, as[i].tenant_id))
            continue;
        cJSON *o = mu_json_obj();
        mu_json_add_str(o, "ip", as[i].ip);
        mu_json_add_str(o, "mac", as[i].mac);
        mu_json_add_i64(o, "vm_id", as[i].vm_id);
        mu_json_add_str(o, "vm_name", as[i].vm_name);
        mu_json_add_i64(o, "tenant_id", as[i].tenant_id);
        mu_json_add_i64(o, "nic", as[i].idx);
        cJSON_AddItemToArray(items, o);
    }
    resp->json = mu_json_obj();
    cJSON_AddItemToObject(resp->json, "items", items);
    if (na == (size_t)limit && na > 0)
        mu_json_add_str(resp->json, "next_after", as[na - 1].ip);
    else
        mu_json_add_null(resp->json, "next_after");
    mu_net_addresses_free(as, na);
    mu_network_clear(&n);
    return MU_OK;
}

static cJSON *rule_json(const struct mu_sec_rule *r)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", r->id);
    mu_json_add_i64(o, "network_id", r->network_id);
    mu_json_add_bool(o, "operator_rule", r->operator_rule);
    mu_json_add_str(o, "action", r->action);
    mu_json_add_str(o, "proto", r->proto);
    if (r->port_min > 0) {
        char ports[16];
        if (r->port_min == r->port_max)
            snprintf(ports, sizeof ports, "%d", r->port_min);
        else
            snprintf(ports, sizeof ports, "%d-%d", r->port_min, r->port_max);
        mu_json_add_str(o, "ports", ports);
    } else {
        mu_json_add_null(o, "ports");
    }
    mu_json_add_str(o, "source", r->source);
    mu_json_add_str(o, "description", r->description);
    return o;
}

int mu_h_network_rules(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_network n = {0};
    bool own = false;
    int r = load_network(req, &n, &own, err);
    if (r < 0)
        return r;
    struct mu_sec_rule *rs = NULL;
    size_t nr = 0;
    r = mu_store_sec_rules(req->app->store, n.id, &rs, &nr, err);
    if (r == 0) {
        cJSON *items = mu_json_arr();
        for (size_t i = 0; i < nr; i++)
            cJSON_AddItemToArray(items, rule_json(&rs[i]));
        resp->json = mu_json_obj();
        cJSON_AddItemToObject(resp->json, "items", items);
        mu_json_add_i64(resp->json, "rules_gen", n.rules_gen);
    }
    mu_sec_rules_free(rs, nr);
    mu_network_clear(&n);
    return r;
}

int mu_h_network_rule_add(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_network n = {0};
    bool own = false;
    int r = load_network(req, &n, &own, err);
    if (r < 0)
        return r;
    cJSON *body = NULL;
    struct mu_sec_rule rule = {0};
    int64_t id = 0;
    MU_AUTOFREE char *target = NULL;
    if (!own) {
        r = refuse_not_own(&n, err);
        goto out;
    }
    body = mu_req_json(req, err);
    if (!body) {
        r = err->code;
        goto out;
    }
    /* Operators' rules are operator rules: tenants cannot remove them. */
    r = mu_net_rule_from_json(body, strcmp(req->principal.role, "operator") == 0, &rule, err);
    if (r < 0)
        goto out;
    rule.network_id = n.id;
    struct mu_audit_rec rec;
    target = mu_xasprintf("network/%lld/rules", (long long)n.id);
    mu_req_audit(req, &rec, n.tenant_id, target);
    r = mu_store_sec_rule_add(req->app->store, &rule, &rec, &id, err);
    if (r == 0) {
        rule.id = id;
        resp->json = rule_json(&rule);
        resp->status = 201;
        resp->location =
            mu_xasprintf("/v1/networks/%lld/rules/%lld", (long long)n.id, (long long)id);
        if (req->app->ops)
            mu_ops_kick(req->app->ops);
    }
out:
    free(rule.description);
    cJSON_Delete(body);
    mu_network_clear(&n);
    return r;
}

int mu_h_network_rule_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_network n = {0};
    bool own = false;
    int64_t rule_id = 0;
    int r = load_network(req, &n, &own, err);
    if (r < 0)
        return r;
    if (!own)
        r = refuse_not_own(&n, err);
    if (r == 0)
        r = mu_req_param_id(req, 1, "rule", &rule_id, err);
    if (r == 0) {
        struct mu_audit_rec rec;
        MU_AUTOFREE char *target =
            mu_xasprintf("network/%lld/rules/%lld", (long long)n.id, (long long)rule_id);
        mu_req_audit(req, &rec, n.tenant_id, target);
        r = mu_store_sec_rule_delete(req->app->store, n.id, rule_id,
                                     strcmp(req->principal.role, "operator") == 0, &rec, err);
    }
    mu_network_clear(&n);
    if (r < 0)
        return r;
    if (req->app->ops)
        mu_ops_kick(req->app->ops);
    resp->status = 204;
    return MU_OK;
}
