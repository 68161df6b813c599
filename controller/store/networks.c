/* Networks (store/network.h): tenant private networks and operator provider networks, NICs
 * and their addresses, security rules, node underlay addresses and node plans.
 *
 * Address management. Each network keeps its free addresses as disjoint ranges in ip_free
 * (usable range minus network, broadcast, gateway and reserved ranges; for a provider
 * network only its pools). Handing out the first free address reads the first range by
 * primary key; a requested address reads the range that starts at or before it; a release
 * merges with the neighbours found through (network_id, lo) and (network_id, hi). Each is
 * a few index probes whatever the network's size or fill, all inside the admission or
 * purge transaction. The NIC's own unique index (network_id, ip) is the last word: even a
 * bug in the ranges cannot hand one address out twice. */
#include "store/network.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/validate.h"
#include "store/store_int.h"

#define NET_NICS_MAX      8   /* NICs per VM */
#define NET_RANGES_MAX    64  /* reserved or pool ranges per network */
#define NET_RULES_MAX     200 /* rules per network */
#define NET_USER_DATA_MAX (64 * 1024)

/* ---- IPv4 text --------------------------------------------------------------------- */

int mu_ipv4_parse(const char *s, uint32_t *ret)
{
    struct in_addr a;
    size_t n;

    if (!s)
        return MU_EINVAL;
    n = strlen(s);
    if (n < 7 || n > 15)
        return MU_EINVAL;
    /* inet_pton takes exactly a dotted quad of decimal bytes; refuse leading zeros too
     * ("010.0.0.1" reads as octal elsewhere). */
    for (size_t i = 0; i < n; i++) {
        bool start = i == 0 || s[i - 1] == '.';

        if (start && s[i] == '0' && i + 1 < n && s[i + 1] != '.')
            return MU_EINVAL;
    }
    if (inet_pton(AF_INET, s, &a) != 1)
        return MU_EINVAL;
    *ret = ntohl(a.s_addr);
    return 0;
}

void mu_ipv4_format(uint32_t a, char out[MU_IPV4_TEXT_MAX])
{
    snprintf(out, MU_IPV4_TEXT_MAX, "%u.%u.%u.%u", (a >> 24) & 255u, (a >> 16) & 255u,
             (a >> 8) & 255u, a & 255u);
}

static uint32_t prefix_mask(int prefix)
{
    return prefix <= 0 ? 0 : (uint32_t)(0xffffffffu << (32 - prefix));
}

/* "a.b.c.d/p" with p in [pmin, pmax] and host bits zero. */
static int cidr_parse_range(const char *s, int pmin, int pmax, const char *field, uint32_t *ret_net,
                            int *ret_prefix, struct mu_err *err)
{
    char ip[MU_IPV4_TEXT_MAX], net_text[MU_IPV4_TEXT_MAX];
    const char *slash;
    int64_t prefix;
    uint32_t a;

    if (!s || !(slash = strchr(s, '/')) || (size_t)(slash - s) >= sizeof ip)
        return mu_err_setf(err, MU_EINVAL, field,
                           "%s must be an IPv4 network like \"10.0.0.0/24\" (IPv6 is not "
                           "supported)",
                           field);
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = '\0';
    if (mu_ipv4_parse(ip, &a) < 0 || mu_parse_i64(slash + 1, pmin, pmax, &prefix) < 0 ||
        (slash[1] == '0' && slash[2]))
        return mu_err_setf(err, MU_EINVAL, field,
                           "%s: \"%.40s\" is not an IPv4 network with a prefix between /%d and "
                           "/%d, like \"10.0.0.0/24\"",
                           field, s, pmin, pmax);
    if ((a & ~prefix_mask((int)prefix)) != 0) {
        mu_ipv4_format(a & prefix_mask((int)prefix), net_text);
        return mu_err_setf(err, MU_EINVAL, field,
                           "%s: %.40s has host bits set: the network address is %s/%d", field, s,
                           net_text, (int)prefix);
    }
    *ret_net = a;
    *ret_prefix = (int)prefix;
    return 0;
}

int mu_cidr_parse(const char *s, const char *field, uint32_t *ret_net, int *ret_prefix,
                  struct mu_err *err)
{
    return cidr_parse_range(s, 8, 30, field, ret_net, ret_prefix, err);
}

static void cidr_format(uint32_t net, int prefix, char out[MU_CIDR_TEXT_MAX])
{
    char a[MU_IPV4_TEXT_MAX];

    mu_ipv4_format(net, a);
    snprintf(out, MU_CIDR_TEXT_MAX, "%s/%d", a, prefix);
}

/* ---- configuration ------------------------------------------------------------------ */

static pthread_mutex_t cfg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mu_net_config cfg = {.mode = "vxlan",
                                   .segment_min = 1000,
                                   .segment_max = 16000000,
                                   .trunk_bridge = "",
                                   .underlay_mtu = 1500,
                                   .vxlan_overhead = 50,
                                   .vxlan_port = 4789};
static struct mu_quota_defaults cfg_defaults;

void mu_store_net_config_set(struct mu_store *st, const struct mu_net_config *c)
{
    (void)st;
    pthread_mutex_lock(&cfg_mu);
    cfg = *c;
    pthread_mutex_unlock(&cfg_mu);
}

void mu_store_net_config_get(struct mu_store *st, struct mu_net_config *ret)
{
    (void)st;
    pthread_mutex_lock(&cfg_mu);
    *ret = cfg;
    pthread_mutex_unlock(&cfg_mu);
}

void mu_store_net_quota_defaults_set(struct mu_store *st, const struct mu_quota_defaults *d)
{
    (void)st;
    pthread_mutex_lock(&cfg_mu);
    cfg_defaults = d ? *d : (struct mu_quota_defaults){0};
    pthread_mutex_unlock(&cfg_mu);
}

/* ---- structs ------------------------------------------------------------------------- */

void mu_network_clear(struct mu_network *n)
{
    if (!n)
        return;
    free(n->name);
    free(n->kind);
    free(n->mode);
    free(n->reserved_json);
    free(n->pool_json);
    memset(n, 0, sizeof *n);
}

void mu_networks_free(struct mu_network *n, size_t count)
{
    if (!n)
        return;
    for (size_t i = 0; i < count; i++)
        mu_network_clear(&n[i]);
    free(n);
}

void mu_sec_rules_free(struct mu_sec_rule *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++)
        free(r[i].description);
    free(r);
}

void mu_net_addresses_free(struct mu_net_address *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        free(a[i].vm_name);
    free(a);
}

#define NET_COLS                                                                                   \
    "n.id, n.tenant_id, n.name, n.kind, n.mode, n.net_addr, n.prefix, n.gateway, n.segment, "      \
    "n.bridge, n.mtu, n.reserved_json, n.pool_json, n.shared, n.rules_gen, n.created_ms, "         \
    "n.updated_ms"

static void copy_col(sqlite3_stmt *s, int i, char *out, size_t len)
{
    const unsigned char *t = sqlite3_column_text(s, i);

    snprintf(out, len, "%s", t ? (const char *)t : "");
}

static void network_from_row(sqlite3_stmt *s, struct mu_network *n)
{
    memset(n, 0, sizeof *n);
    n->id = sqlite3_column_int64(s, 0);
    n->tenant_id = sqlite3_column_int64(s, 1);
    n->name = st_col_str(s, 2);
    n->kind = st_col_str(s, 3);
    n->mode = st_col_str(s, 4);
    cidr_format((uint32_t)sqlite3_column_int64(s, 5), sqlite3_column_int(s, 6), n->cidr);
    copy_col(s, 7, n->gateway, sizeof n->gateway);
    n->segment = sqlite3_column_int64(s, 8);
    copy_col(s, 9, n->bridge, sizeof n->bridge);
    n->mtu = sqlite3_column_int(s, 10);
    n->reserved_json = st_col_str(s, 11);
    n->pool_json = st_col_str(s, 12);
    n->shared = sqlite3_column_int(s, 13) != 0;
    n->rules_gen = sqlite3_column_int64(s, 14);
    n->created_ms = sqlite3_column_int64(s, 15);
    n->updated_ms = sqlite3_column_int64(s, 16);
}

/* ---- address ranges ------------------------------------------------------------------ */

struct range {
    uint32_t lo, hi;
};

struct ranges {
    struct range *r;
    size_t n, cap;
};

static void ranges_push(struct ranges *rs, uint32_t lo, uint32_t hi)
{
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 8;
        rs->r = mu_xrealloc(rs->r, rs->cap * sizeof *rs->r);
    }
    rs->r[rs->n++] = (struct range){lo, hi};
}

static int range_cmp(const void *a, const void *b)
{
    const struct range *x = a, *y = b;

    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Removes [lo, hi] from every range of rs (sorted, disjoint). */
static void ranges_cut(struct ranges *rs, uint32_t lo, uint32_t hi)
{
    struct ranges out = {0};

    for (size_t i = 0; i < rs->n; i++) {
        struct range r = rs->r[i];

        if (hi < r.lo || lo > r.hi) {
            ranges_push(&out, r.lo, r.hi);
            continue;
        }
        if (r.lo < lo)
            ranges_push(&out, r.lo, lo - 1);
        if (r.hi > hi)
            ranges_push(&out, hi + 1, r.hi);
    }
    free(rs->r);
    *rs = out;
}

/* [["a","b"],…] (or ["a"] for one address) inside [first, last]: the ranges, sorted and
 * not overlapping, and their canonical text. field names the input. */
static int ranges_parse(const char *json, const char *field, uint32_t first, uint32_t last,
                        struct ranges *ret, char **ret_text, struct mu_err *err)
{
    struct ranges rs = {0};
    struct mu_buf b;
    cJSON *root, *it;
    int rc = 0;
    size_t i = 0;

    root = mu_json_parse(json, strlen(json), field, err);
    if (!root)
        return MU_EINVAL;
    if (!cJSON_IsArray(root) || cJSON_GetArraySize(root) > NET_RANGES_MAX)
        rc = mu_err_setf(err, MU_EINVAL, field,
                         "%s must be a list of at most %d address ranges like "
                         "[[\"10.0.0.1\", \"10.0.0.9\"]]",
                         field, NET_RANGES_MAX);
    cJSON_ArrayForEach(it, root)
    {
        uint32_t lo = 0, hi = 0;
        int n = cJSON_GetArraySize(it);

        if (rc < 0)
            break;
        if (!cJSON_IsArray(it) || n < 1 || n > 2 || !cJSON_IsString(cJSON_GetArrayItem(it, 0)) ||
            !cJSON_IsString(cJSON_GetArrayItem(it, n - 1)) ||
            mu_ipv4_parse(cJSON_GetArrayItem(it, 0)->valuestring, &lo) < 0 ||
            mu_ipv4_parse(cJSON_GetArrayItem(it, n - 1)->valuestring, &hi) < 0) {
            rc = mu_err_setf(err, MU_EINVAL, field,
                             "%s[%zu] must be a pair of IPv4 addresses like [\"10.0.0.1\", "
                             "\"10.0.0.9\"]",
                             field, i);
        } else if (lo > hi) {
            rc = mu_err_setf(err, MU_EINVAL, field, "%s[%zu]: the first address is after the last",
                             field, i);
        } else if (lo < first || hi > last) {
            char a[MU_IPV4_TEXT_MAX], z[MU_IPV4_TEXT_MAX];

            mu_ipv4_format(first, a);
            mu_ipv4_format(last, z);
            rc = mu_err_setf(err, MU_EINVAL, field,
                             "%s[%zu] must lie within the network's usable addresses %s - %s",
                             field, i, a, z);
        } else {
            ranges_push(&rs, lo, hi);
        }
        i++;
    }
    cJSON_Delete(root);
    if (rc < 0) {
        free(rs.r);
        return rc;
    }
    if (rs.n > 0)
        qsort(rs.r, rs.n, sizeof *rs.r, range_cmp);
    for (size_t k = 1; k < rs.n; k++)
        if (rs.r[k].lo <= rs.r[k - 1].hi) {
            free(rs.r);
            return mu_err_setf(err, MU_EINVAL, field, "%s: ranges overlap", field);
        }
    mu_buf_init(&b);
    mu_buf_puts(&b, "[");
    for (size_t k = 0; k < rs.n; k++) {
        char a[MU_IPV4_TEXT_MAX], z[MU_IPV4_TEXT_MAX];

        mu_ipv4_format(rs.r[k].lo, a);
        mu_ipv4_format(rs.r[k].hi, z);
        mu_buf_printf(&b, "%s[\"%s\",\"%s\"]", k ? "," : "", a, z);
    }
    mu_buf_puts(&b, "]");
    *ret = rs;
    *ret_text = mu_buf_steal(&b);
    return 0;
}

/* ---- network checks and creation -------------------------------------------------------- */

/* Linux interface name allow-list: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}, and not one of ours. */
static bool bridge_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n < 1 || n >= MU_BRIDGE_MAX || strncmp(s, "mubr", 4) == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || (i > 0 && (ch == '_' || ch == '.' || ch == '-'));

        if (!ok)
            return false;
    }
    return true;
}

struct net_plan {
    uint32_t net;
    int prefix;
    uint32_t gateway; /* 0: none */
    char gateway_text[MU_IPV4_TEXT_MAX];
    struct ranges free; /* the initial free ranges */
    char *reserved_text, *pool_text;
};

/* Runs sql with ?1 (and ?2) bound. */
static int exec_id2(struct st_conn *c, const char *sql, int64_t a, int64_t b, const char *what,
                    struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, a);
    if (sqlite3_bind_parameter_count(s) > 1)
        sqlite3_bind_int64(s, 2, b);
    rc = st_run(c, s, what, err);
    st_stmt_done(c, s);
    return rc;
}

static int exec_id(struct st_conn *c, const char *sql, int64_t a, const char *what,
                   struct mu_err *err)
{
    return exec_id2(c, sql, a, 0, what, err);
}

static void net_plan_clear(struct net_plan *p)
{
    free(p->free.r);
    free(p->reserved_text);
    free(p->pool_text);
    memset(p, 0, sizeof *p);
}

/* Validates a spec (everything but the tenant and the name's uniqueness) and computes the
 * initial free ranges. */
static int spec_check(const struct mu_network_spec *sp, bool provider, struct net_plan *p,
                      struct mu_err *err)
{
    uint32_t first, last;
    int rc;

    if (!mu_ident_valid(sp->name) || strlen(sp->name) > 48)
        return mu_err_setf(err, MU_EINVAL, "name",
                           "network name %.64s is not valid: use lower-case letters, digits, "
                           "'.', '_' and '-' (at most 48 characters)",
                           sp->name ? sp->name : "(none)");
    rc = mu_cidr_parse(sp->cidr, "cidr", &p->net, &p->prefix, err);
    if (rc < 0)
        return rc;
    first = p->net + 1;
    last = (p->net | ~prefix_mask(p->prefix)) - 1;
    if (!provider) {
        if (sp->gateway && sp->gateway[0])
            return mu_err_setf(err, MU_EINVAL, "gateway",
                               "private networks have no gateway: routing and NAT are out of "
                               "scope");
        if (sp->bridge || sp->pool_json || sp->shared || sp->mtu)
            return mu_err_setf(err, MU_EINVAL,
                               sp->bridge      ? "bridge"
                               : sp->pool_json ? "pools"
                               : sp->shared    ? "shared"
                                               : "mtu",
                               "bridge, pools, shared and mtu are for provider networks only: a "
                               "private network's bridge and MTU come from the network policy");
    } else {
        if (!bridge_name_valid(sp->bridge))
            return mu_err_setf(err, MU_EINVAL, "bridge",
                               "a provider network needs the name of an existing bridge on the "
                               "nodes: letters, digits, '_', '.', '-', at most 15 characters, "
                               "not starting with \"mubr\"");
        if (sp->mtu != 0 && (sp->mtu < 576 || sp->mtu > 9000))
            return mu_err_setf(err, MU_EINVAL, "mtu", "mtu must be between 576 and 9000");
        if (sp->gateway && sp->gateway[0]) {
            if (mu_ipv4_parse(sp->gateway, &p->gateway) < 0 || p->gateway < first ||
                p->gateway > last)
                return mu_err_setf(err, MU_EINVAL, "gateway",
                                   "gateway %.20s must be an IPv4 address inside %.20s (not its "
                                   "network or broadcast address)",
                                   sp->gateway, sp->cidr);
            mu_ipv4_format(p->gateway, p->gateway_text);
        }
    }
    if (sp->pool_json) {
        rc = ranges_parse(sp->pool_json, "pools", first, last, &p->free, &p->pool_text, err);
        if (rc < 0)
            return rc;
        if (p->free.n == 0)
            return mu_err_setf(err, MU_EINVAL, "pools", "pools must name at least one range");
    } else {
        ranges_push(&p->free, first, last);
    }
    if (p->gateway)
        ranges_cut(&p->free, p->gateway, p->gateway);
    if (sp->reserved_json) {
        struct ranges res = {0};

        rc = ranges_parse(sp->reserved_json, "reserved", first, last, &res, &p->reserved_text, err);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < res.n; i++)
            ranges_cut(&p->free, res.r[i].lo, res.r[i].hi);
        free(res.r);
    }
    if (p->free.n == 0)
        return mu_err_setf(err, MU_EINVAL, "reserved",
                           "no address is left to hand out once the gateway and reserved ranges "
                           "are taken out");
    return 0;
}

/* The root tenant (the data centre's operator): the lowest id without a parent. */
static int root_tenant(struct st_conn *c, int64_t *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, "SELECT min(id) FROM tenants WHERE parent_id IS NULL", err);
    int rc;

    if (!s)
        return MU_EIO;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        *ret = sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_ROW
                 ? mu_err_set(err, MU_ECONFLICT, "there is no root tenant to own provider networks")
                 : st_sql_err(c, rc, "finding the root tenant", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* The lowest free segment id of mode in [min, max]: *ret 0 when none is left. */
static int segment_alloc(struct st_conn *c, const char *mode, int64_t min, int64_t max,
                         int64_t *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM networks WHERE mode = ?1 "
                              "AND segment = ?2) THEN ?2 ELSE (SELECT min(n.segment) + 1 FROM "
                              "networks n WHERE n.mode = ?1 AND n.segment >= ?2 AND n.segment < ?3 "
                              "AND NOT EXISTS (SELECT 1 FROM networks m WHERE m.mode = ?1 AND "
                              "m.segment = n.segment + 1)) END",
                              err);
    int rc;

    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, mode);
    sqlite3_bind_int64(s, 2, min);
    sqlite3_bind_int64(s, 3, max);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret = sqlite3_column_type(s, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        rc = st_sql_err(c, rc, "allocating a segment id", err);
    }
    st_stmt_done(c, s);
    return rc;
}

static int free_insert(struct st_conn *c, int64_t net_id, int64_t lo, int64_t hi,
                       struct mu_err *err)
{
    sqlite3_stmt *s =
        st_stmt(c, "INSERT INTO ip_free (network_id, lo, hi) VALUES (?1, ?2, ?3)", err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, net_id);
    sqlite3_bind_int64(s, 2, lo);
    sqlite3_bind_int64(s, 3, hi);
    rc = st_run(c, s, "recording free addresses", err);
    st_stmt_done(c, s);
    return rc;
}

/* Inside a transaction: one network per the spec for tenant_id (provider: the root). */
static int network_create_tx(struct mu_store *st, struct st_conn *c,
                             const struct mu_network_spec *sp, const struct mu_net_config *cf,
                             const struct mu_quota_defaults *defaults,
                             const struct mu_audit_rec *audit, int64_t now, int64_t *ret_id,
                             struct mu_err *err)
{
    bool provider = sp->kind && strcmp(sp->kind, "provider") == 0;
    const struct mu_net_config conf = *cf;
    struct net_plan p = {0};
    struct st_tenant_loc loc = {0};
    char bridge[MU_BRIDGE_MAX], target[48], detail[256], cidr[MU_CIDR_TEXT_MAX];
    const char *mode;
    int64_t tenant_id = sp->tenant_id, segment = 0, id = 0, *ids = NULL;
    size_t n_ids = 0;
    sqlite3_stmt *s;
    int mtu, rc;

    if (!provider && (!sp->kind || strcmp(sp->kind, "private") != 0))
        return mu_err_setf(err, MU_EINVAL, "kind", "kind must be \"private\" or \"provider\"");
    rc = spec_check(sp, provider, &p, err);
    if (rc < 0)
        goto out;
    if (provider)
        rc = root_tenant(c, &tenant_id, err);
    if (rc < 0)
        goto out;
    rc = st_tenant_locate(c, tenant_id, &loc, err);
    if (rc == MU_ENOTFOUND)
        rc = mu_err_setf(err, MU_EINVAL, "tenant_id", "tenant %" PRId64 " does not exist",
                         tenant_id);
    if (rc < 0)
        goto out;
    rc = st_path_ids(loc.path, &ids, &n_ids, err);
    if (rc < 0)
        goto out;

    s = st_stmt(c, "SELECT id FROM networks WHERE tenant_id = ?1 AND name = ?2", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, tenant_id);
    st_bind_str(s, 2, sp->name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = mu_err_setf(err, MU_ECONFLICT, "name",
                         "%s already has a network named %s (network %" PRId64 ")", loc.name,
                         sp->name, (int64_t)sqlite3_column_int64(s, 0));
    else
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "checking network names", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;

    if (provider) {
        mode = "bridge";
        snprintf(bridge, sizeof bridge, "%s", sp->bridge);
        mtu = sp->mtu ? sp->mtu : conf.underlay_mtu;
    } else {
        const struct mu_usage need = {.networks = 1};

        rc = st_quota_check_tx(c, ids, n_ids, &need, defaults, "this network needs", err);
        if (rc < 0)
            goto out;
        mode = strcmp(conf.mode, "vlan") == 0 ? "vlan" : "vxlan";
        rc = segment_alloc(c, mode, conf.segment_min, conf.segment_max, &segment, err);
        if (rc == 0 && segment == 0)
            rc = mu_err_set(err, MU_ECONFLICT,
                            "every %s segment id of the policy's range %" PRId64 "-%" PRId64
                            " is in use: widen the range in policies/networks.json",
                            mode, conf.segment_min, conf.segment_max);
        if (rc < 0)
            goto out;
        if (strcmp(mode, "vxlan") == 0) {
            snprintf(bridge, sizeof bridge, "mubr%" PRId64, segment);
            mtu = conf.underlay_mtu - conf.vxlan_overhead;
        } else {
            snprintf(bridge, sizeof bridge, "%s", conf.trunk_bridge);
            mtu = conf.underlay_mtu;
        }
    }

    s = st_stmt(c,
                "INSERT INTO networks (tenant_id, name, kind, mode, net_addr, prefix, gateway, "
                "segment, bridge, mtu, reserved_json, pool_json, shared, created_ms, updated_ms) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, tenant_id);
    st_bind_str(s, 2, sp->name);
    st_bind_str(s, 3, provider ? "provider" : "private");
    st_bind_str(s, 4, mode);
    sqlite3_bind_int64(s, 5, p.net);
    sqlite3_bind_int(s, 6, p.prefix);
    st_bind_str(s, 7, p.gateway_text);
    sqlite3_bind_int64(s, 8, segment);
    st_bind_str(s, 9, bridge);
    sqlite3_bind_int(s, 10, mtu);
    st_bind_str(s, 11, p.reserved_text ? p.reserved_text : "[]");
    st_bind_str(s, 12, p.pool_text);
    sqlite3_bind_int(s, 13, provider && sp->shared);
    sqlite3_bind_int64(s, 14, now);
    rc = st_run(c, s, "inserting a network", err);
    st_stmt_done(c, s);
    if (rc < 0)
        goto out;
    id = sqlite3_last_insert_rowid(c->db);
    for (size_t i = 0; rc == 0 && i < p.free.n; i++)
        rc = free_insert(c, id, p.free.r[i].lo, p.free.r[i].hi, err);
    if (rc == 0 && !provider) {
        const struct mu_usage one = {.networks = 1};

        for (size_t i = 0; rc == 0 && i < n_ids; i++)
            rc = st_usage_add(c, ids[i], &one, err);
    }
    if (rc == 0) {
        cidr_format(p.net, p.prefix, cidr);
        snprintf(target, sizeof target, "network/%" PRId64, id);
        snprintf(detail, sizeof detail, "%s network %s %s (%s %" PRId64 ", bridge %s, mtu %d)",
                 provider ? "provider" : "private", sp->name, cidr, mode, segment, bridge, mtu);
        rc = st_audit_append_tx(st, audit, tenant_id, target, detail, err);
    }
out:
    if (rc == 0)
        *ret_id = id;
    net_plan_clear(&p);
    st_tenant_loc_clear(&loc);
    free(ids);
    return rc;
}

int mu_store_network_create(struct mu_store *st, const struct mu_network_spec *spec,
                            const struct mu_quota_defaults *defaults,
                            const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    struct mu_net_config conf;
    struct st_conn *c;
    int64_t id = 0;
    int rc;

    mu_store_net_config_get(st, &conf);
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    rc = network_create_tx(st, c, spec, &conf, defaults, audit, mu_now_ms(), &id, err);
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

int mu_store_network_default_private(struct mu_store *st, int64_t tenant_id,
                                     const char *default_cidr, const struct mu_audit_rec *audit,
                                     int64_t *ret_id, struct mu_err *err)
{
    const struct mu_network_spec sp = {
        .tenant_id = tenant_id, .name = "default", .kind = "private", .cidr = default_cidr};
    struct mu_quota_defaults defaults;
    struct st_conn *c;
    sqlite3_stmt *s;
    int64_t id = 0;
    int rc;

    /* Held to the end: a policy reload waits before freeing what defaults points to. */
    pthread_mutex_lock(&cfg_mu);
    defaults = cfg_defaults;
    c = st_tx_begin(st, err);
    if (!c) {
        pthread_mutex_unlock(&cfg_mu);
        return MU_EIO;
    }
    s = st_stmt(c, "SELECT id FROM networks WHERE tenant_id = ?1 AND name = 'default'", err);
    if (!s) {
        rc = MU_EIO;
    } else {
        sqlite3_bind_int64(s, 1, tenant_id);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            id = sqlite3_column_int64(s, 0);
            rc = 1;
        } else {
            rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading networks", err);
        }
        st_stmt_done(c, s);
    }
    if (rc == 0)
        rc = network_create_tx(st, c, &sp, &cfg, defaults.fn ? &defaults : NULL, audit, mu_now_ms(),
                               &id, err);
    rc = st_tx_end(st, rc < 0 ? rc : 0, err);
    pthread_mutex_unlock(&cfg_mu);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

/* ---- reading networks ---------------------------------------------------------------- */

int mu_store_network_get(struct mu_store *st, int64_t id, struct mu_network *ret,
                         struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT " NET_COLS " FROM networks n WHERE n.id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        network_from_row(s, ret);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_set(err, MU_ENOTFOUND, "network %" PRId64 " does not exist", id)
                 : st_sql_err(c, rc, "reading a network", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_network_list(struct mu_store *st, int64_t scope_id, int64_t after_id, int limit,
                          struct mu_network **ret, size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct st_tenant_loc loc = {0};
    MU_AUTOFREE char *upper = NULL;
    struct mu_network *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc = 0;

    if (!c)
        return MU_EIO;
    if (scope_id > 0) {
        rc = st_tenant_locate(c, scope_id, &loc, err);
        if (rc == MU_ENOTFOUND)
            rc = mu_err_set(err, MU_ENOTFOUND, "tenant %" PRId64 " does not exist", scope_id);
        if (rc < 0)
            return rc;
        upper = st_path_upper(loc.path);
        s = st_stmt(c,
                    "SELECT " NET_COLS " FROM networks n JOIN tenants t ON t.id = n.tenant_id "
                    "WHERE ((t.path >= ?1 AND t.path < ?2) OR (n.kind = 'provider' AND "
                    "n.shared = 1)) AND n.id > ?3 ORDER BY n.id LIMIT ?4",
                    err);
    } else {
        s = st_stmt(c, "SELECT " NET_COLS " FROM networks n WHERE n.id > ?3 ORDER BY n.id LIMIT ?4",
                    err);
    }
    if (!s) {
        st_tenant_loc_clear(&loc);
        return MU_EIO;
    }
    if (scope_id > 0) {
        st_bind_str(s, 1, loc.path);
        st_bind_str(s, 2, upper);
    }
    sqlite3_bind_int64(s, 3, after_id);
    sqlite3_bind_int64(s, 4, limit > 0 ? limit : -1);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        network_from_row(s, &out[n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing networks", err);
    st_stmt_done(c, s);
    st_tenant_loc_clear(&loc);
    if (rc < 0) {
        mu_networks_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int mu_store_network_find(struct mu_store *st, int64_t tenant_id, const char *name, int64_t *ret_id,
                          struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    /* Its own network first, else a shared provider network of that name. */
    s = st_stmt(c,
                "SELECT id FROM networks WHERE name = ?2 AND (tenant_id = ?1 OR (kind = "
                "'provider' AND shared = 1)) ORDER BY tenant_id = ?1 DESC, id LIMIT 1",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, tenant_id);
    st_bind_str(s, 2, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_id = sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? mu_err_setf(err, MU_ENOTFOUND, "network",
                                             "there is no network named %.64s", name)
                               : st_sql_err(c, rc, "finding a network", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_network_find_provider(struct mu_store *st, const char *name, int64_t *ret_id,
                                   struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT id FROM networks WHERE kind = 'provider' AND name = ?1 ORDER BY id "
                "LIMIT 1",
                err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_id = sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_set(err, MU_ENOTFOUND, "there is no provider network named %.64s", name)
                 : st_sql_err(c, rc, "finding a provider network", err);
    }
    st_stmt_done(c, s);
    return rc;
}

static int count_query(struct st_conn *c, const char *sql, int64_t id, int64_t *ret,
                       struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret = sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        rc = st_sql_err(c, rc, "counting", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_network_counts(struct mu_store *st, int64_t id, int64_t *ret_nics, int64_t *ret_free,
                            struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    int64_t nics = 0, fr = 0;
    int rc;

    if (!c)
        return MU_EIO;
    rc = count_query(c, "SELECT count(*) FROM nics WHERE network_id = ?1", id, &nics, err);
    if (rc == 0)
        rc = count_query(c,
                         "SELECT COALESCE(sum(hi - lo + 1), 0) FROM ip_free WHERE network_id = ?1",
                         id, &fr, err);
    if (rc == 0) {
        *ret_nics = nics;
        *ret_free = fr;
    }
    return rc;
}

int mu_store_network_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                            struct mu_err *err)
{
    MU_AUTOFREE char *name = NULL, *kind = NULL, *path = NULL;
    int64_t tenant_id = 0, nics = 0;
    char target[48], detail[160];
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT n.name, n.kind, n.tenant_id, t.path FROM networks n JOIN tenants t ON "
                "t.id = n.tenant_id WHERE n.id = ?1",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        name = st_col_str(s, 0);
        kind = st_col_str(s, 1);
        tenant_id = sqlite3_column_int64(s, 2);
        path = st_col_str(s, 3);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_set(err, MU_ENOTFOUND, "network %" PRId64 " does not exist", id)
                 : st_sql_err(c, rc, "reading a network", err);
    }
    st_stmt_done(c, s);
    if (rc == 0)
        rc = count_query(c, "SELECT count(*) FROM nics WHERE network_id = ?1", id, &nics, err);
    if (rc == 0 && nics > 0)
        rc = mu_err_set(err, MU_ECONFLICT,
                        "network %s still has %" PRId64
                        " NIC(s): delete the VMs attached to it first (see its addresses)",
                        name, nics);
    if (rc == 0)
        rc = exec_id(c, "DELETE FROM networks WHERE id = ?1", id, "deleting a network", err);
    if (rc == 0 && strcmp(kind, "private") == 0) {
        const struct mu_usage minus = {.networks = -1};

        rc = st_usage_add_path(c, path, &minus, err);
    }
    if (rc == 0) {
        snprintf(target, sizeof target, "network/%" PRId64, id);
        snprintf(detail, sizeof detail, "%s network %s deleted", kind, name);
        rc = st_audit_append_tx(st, audit, tenant_id, target, detail, err);
    }
    return st_tx_end(st, rc, err);
}

/* ---- NICs and address management -------------------------------------------------------- */

struct nic_net {
    int64_t id, tenant_id;
    char *name, *kind;
    bool shared;
    uint32_t net;
    int prefix;
};

static void nic_net_clear(struct nic_net *n)
{
    free(n->name);
    free(n->kind);
    memset(n, 0, sizeof *n);
}

/* MU_ENOTFOUND without touching err when absent. */
static int nic_net_read(struct st_conn *c, int64_t id, struct nic_net *ret, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT id, tenant_id, name, kind, shared, net_addr, prefix FROM "
                              "networks WHERE id = ?1",
                              err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        ret->id = sqlite3_column_int64(s, 0);
        ret->tenant_id = sqlite3_column_int64(s, 1);
        ret->name = st_col_str(s, 2);
        ret->kind = st_col_str(s, 3);
        ret->shared = sqlite3_column_int(s, 4) != 0;
        ret->net = (uint32_t)sqlite3_column_int64(s, 5);
        ret->prefix = sqlite3_column_int(s, 6);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? MU_ENOTFOUND : st_sql_err(c, rc, "reading a network", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int st_vm_nics_check_tx(struct st_conn *c, int64_t tenant_id, const struct mu_nic_req *nics,
                        size_t n, int64_t *ret_public, struct mu_err *err)
{
    int64_t pub = 0;
    int rc = 0;

    if (n > NET_NICS_MAX)
        return mu_err_setf(err, MU_EINVAL, "nics", "a VM has at most %d NICs", NET_NICS_MAX);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct nic_net nn = {0};
        uint32_t a;

        rc = nic_net_read(c, nics[i].network_id, &nn, err);
        if (rc == 0 && nn.tenant_id != tenant_id &&
            !(strcmp(nn.kind, "provider") == 0 && nn.shared))
            rc = MU_ENOTFOUND; /* another tenant's: as if absent */
        if (rc == MU_ENOTFOUND)
            rc = mu_err_setf(err, MU_EINVAL, "nics",
                             "nics[%zu]: network %" PRId64
                             " does not exist (a VM may use its tenant's own networks and the "
                             "provider networks open to tenants)",
                             i, nics[i].network_id);
        if (rc == 0 && nics[i].ip &&
            (mu_ipv4_parse(nics[i].ip, &a) < 0 || (a & prefix_mask(nn.prefix)) != nn.net))
            rc = mu_err_setf(err, MU_EINVAL, "nics",
                             "nics[%zu]: %.20s is not an IPv4 address of network %s", i, nics[i].ip,
                             nn.name);
        if (rc == 0 && strcmp(nn.kind, "provider") == 0)
            pub++;
        nic_net_clear(&nn);
    }
    if (rc == 0)
        *ret_public = pub;
    return rc;
}

/* The first free address of the network: MU_ECONFLICT when it is full. */
static int ip_take_first(struct st_conn *c, int64_t net_id, const char *net_name, int64_t *ret,
                         struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT lo, hi FROM ip_free WHERE network_id = ?1 ORDER BY lo "
                              "LIMIT 1",
                              err);
    int64_t lo = 0, hi = 0;
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, net_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        lo = sqlite3_column_int64(s, 0);
        hi = sqlite3_column_int64(s, 1);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? mu_err_setf(err, MU_ECONFLICT, "nics",
                                             "network %s has no free address left", net_name)
                               : st_sql_err(c, rc, "reading free addresses", err);
    }
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;
    if (lo == hi)
        s = st_stmt(c, "DELETE FROM ip_free WHERE network_id = ?1 AND lo = ?2", err);
    else
        s = st_stmt(c, "UPDATE ip_free SET lo = lo + 1 WHERE network_id = ?1 AND lo = ?2", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, net_id);
    sqlite3_bind_int64(s, 2, lo);
    rc = st_run(c, s, "taking an address", err);
    st_stmt_done(c, s);
    if (rc == 0)
        *ret = lo;
    return rc;
}

/* A given address, if free: split its range. Otherwise say why. */
static int ip_take(struct st_conn *c, const struct nic_net *nn, int64_t ip, const char *text,
                   struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT lo, hi FROM ip_free WHERE network_id = ?1 AND lo <= ?2 "
                              "ORDER BY lo DESC LIMIT 1",
                              err);
    int64_t lo = 0, hi = -1, holder = 0;
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, nn->id);
    sqlite3_bind_int64(s, 2, ip);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        lo = sqlite3_column_int64(s, 0);
        hi = sqlite3_column_int64(s, 1);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading free addresses", err);
    }
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;
    if (hi < ip) {
        s = st_stmt(c, "SELECT vm_id FROM nics WHERE network_id = ?1 AND ip = ?2", err);
        if (!s)
            return MU_EIO;
        sqlite3_bind_int64(s, 1, nn->id);
        sqlite3_bind_int64(s, 2, ip);
        if (sqlite3_step(s) == SQLITE_ROW)
            holder = sqlite3_column_int64(s, 0);
        st_stmt_done(c, s);
        if (holder > 0)
            return mu_err_setf(err, MU_ECONFLICT, "nics",
                               "address %s of network %s is already used by vm %" PRId64, text,
                               nn->name, holder);
        return mu_err_setf(err, MU_EINVAL, "nics",
                           "address %s of network %s cannot be handed out: it is the network, "
                           "broadcast or gateway address, reserved, or outside the pools",
                           text, nn->name);
    }
    rc = exec_id2(c, "DELETE FROM ip_free WHERE network_id = ?1 AND lo = ?2", nn->id, lo,
                  "taking an address", err);
    if (rc == 0 && lo < ip)
        rc = free_insert(c, nn->id, lo, ip - 1, err);
    if (rc == 0 && ip < hi)
        rc = free_insert(c, nn->id, ip + 1, hi, err);
    return rc;
}

/* Gives ip back to the network's free ranges, merging with its neighbours. */
static int ip_give_back(struct st_conn *c, int64_t net_id, int64_t ip, struct mu_err *err)
{
    int64_t left = -1, right_hi = -1;
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c, "SELECT lo FROM ip_free WHERE network_id = ?1 AND hi = ?2", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, net_id);
    sqlite3_bind_int64(s, 2, ip - 1);
    if (sqlite3_step(s) == SQLITE_ROW)
        left = sqlite3_column_int64(s, 0);
    st_stmt_done(c, s);
    s = st_stmt(c, "SELECT hi FROM ip_free WHERE network_id = ?1 AND lo = ?2", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, net_id);
    sqlite3_bind_int64(s, 2, ip + 1);
    if (sqlite3_step(s) == SQLITE_ROW)
        right_hi = sqlite3_column_int64(s, 0);
    st_stmt_done(c, s);

    rc = 0;
    if (right_hi >= 0)
        rc = exec_id2(c, "DELETE FROM ip_free WHERE network_id = ?1 AND lo = ?2", net_id, ip + 1,
                      "releasing an address", err);
    if (rc < 0)
        return rc;
    if (left >= 0) {
        s = st_stmt(c, "UPDATE ip_free SET hi = ?3 WHERE network_id = ?1 AND lo = ?2", err);
        if (!s)
            return MU_EIO;
        sqlite3_bind_int64(s, 1, net_id);
        sqlite3_bind_int64(s, 2, left);
        sqlite3_bind_int64(s, 3, right_hi >= 0 ? right_hi : ip);
        rc = st_run(c, s, "releasing an address", err);
        st_stmt_done(c, s);
        return rc;
    }
    return free_insert(c, net_id, ip, right_hi >= 0 ? right_hi : ip, err);
}

/* 52:54:00 and three random bytes, not used by another NIC. */
static int mac_new(struct st_conn *c, char out[MU_MAC_TEXT_MAX], struct mu_err *err)
{
    for (int tries = 0; tries < 32; tries++) {
        unsigned char b[3];
        sqlite3_stmt *s;
        int rc;

        mu_random_bytes(b, sizeof b);
        snprintf(out, MU_MAC_TEXT_MAX, "52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]);
        s = st_stmt(c, "SELECT 1 FROM nics WHERE mac = ?1", err);
        if (!s)
            return MU_EIO;
        st_bind_str(s, 1, out);
        rc = sqlite3_step(s);
        st_stmt_done(c, s);
        if (rc == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW)
            return st_sql_err(c, rc, "choosing a MAC address", err);
    }
    return mu_err_set(err, MU_EIO, "could not find a free MAC address");
}

int st_vm_nics_insert_tx(struct st_conn *c, int64_t vm_id, const struct mu_nic_req *nics, size_t n,
                         int64_t now, struct mu_err *err)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct nic_net nn = {0};
        char mac[MU_MAC_TEXT_MAX];
        int64_t ip = 0;
        sqlite3_stmt *s;

        rc = nic_net_read(c, nics[i].network_id, &nn, err);
        if (rc == MU_ENOTFOUND)
            rc = mu_err_setf(err, MU_EINVAL, "nics", "network %" PRId64 " does not exist",
                             nics[i].network_id);
        if (rc == 0 && nics[i].ip) {
            uint32_t a = 0;

            rc = mu_ipv4_parse(nics[i].ip, &a) < 0
                     ? mu_err_setf(err, MU_EINVAL, "nics", "%.20s is not an IPv4 address",
                                   nics[i].ip)
                     : 0;
            ip = a;
            if (rc == 0)
                rc = ip_take(c, &nn, ip, nics[i].ip, err);
        } else if (rc == 0) {
            rc = ip_take_first(c, nn.id, nn.name, &ip, err);
        }
        if (rc == 0)
            rc = mac_new(c, mac, err);
        if (rc == 0) {
            s = st_stmt(c,
                        "INSERT INTO nics (vm_id, network_id, idx, mac, ip, public, created_ms) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        err);
            if (!s) {
                rc = MU_EIO;
            } else {
                sqlite3_bind_int64(s, 1, vm_id);
                sqlite3_bind_int64(s, 2, nn.id);
                sqlite3_bind_int64(s, 3, (int64_t)i);
                st_bind_str(s, 4, mac);
                sqlite3_bind_int64(s, 5, ip);
                sqlite3_bind_int(s, 6, strcmp(nn.kind, "provider") == 0);
                sqlite3_bind_int64(s, 7, now);
                rc = st_run(c, s, "inserting a NIC", err);
                st_stmt_done(c, s);
            }
        }
        nic_net_clear(&nn);
    }
    return rc;
}

int st_vm_nics_release_tx(struct st_conn *c, int64_t vm_id, int64_t *ret_public, struct mu_err *err)
{
    struct {
        int64_t net, ip;
        bool pub;
    } got[NET_NICS_MAX * 2];
    size_t n = 0;
    int64_t pub = 0;
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c, "SELECT network_id, ip, public FROM nics WHERE vm_id = ?1 ORDER BY idx", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, vm_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < MU_ARRAY_LEN(got)) {
        got[n].net = sqlite3_column_int64(s, 0);
        got[n].ip = sqlite3_column_int64(s, 1);
        got[n].pub = sqlite3_column_int(s, 2) != 0;
        n++;
    }
    if (rc == SQLITE_ROW) /* admission allows fewer: never drop an address unreleased */
        rc = mu_err_set(err, MU_EIO, "vm %" PRId64 " has more than %zu NICs", vm_id,
                        MU_ARRAY_LEN(got));
    else
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading NICs", err);
    st_stmt_done(c, s);
    if (rc == 0)
        rc = exec_id(c, "DELETE FROM nics WHERE vm_id = ?1", vm_id, "deleting NICs", err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = ip_give_back(c, got[i].net, got[i].ip, err);
        pub += got[i].pub;
    }
    if (rc == 0)
        *ret_public = pub;
    return rc;
}

int st_net_usage_subtree(struct st_conn *c, const char *path, const char *upper,
                         int64_t *ret_networks, int64_t *ret_public_ips, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c,
                              "SELECT (SELECT count(*) FROM networks n JOIN tenants t ON t.id = "
                              "n.tenant_id WHERE n.kind = 'private' AND t.path >= ?1 AND t.path "
                              "< ?2), (SELECT count(*) FROM nics x JOIN vms v ON v.id = x.vm_id "
                              "WHERE x.public = 1 AND v.tenant_path >= ?1 AND v.tenant_path < ?2)",
                              err);
    int rc;

    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, path);
    st_bind_str(s, 2, upper);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_networks = sqlite3_column_int64(s, 0);
        *ret_public_ips = sqlite3_column_int64(s, 1);
        rc = 0;
    } else {
        rc = st_sql_err(c, rc, "summing a subtree's networks", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_vm_nics(struct mu_store *st, int64_t vm_id, struct mu_nic **ret, size_t *ret_n,
                     struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_nic *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT x.id, x.vm_id, x.network_id, x.idx, x.mac, x.ip, x.public, n.prefix, "
                "n.gateway, n.mtu, n.bridge, n.net_addr FROM nics x JOIN networks n ON n.id = "
                "x.network_id WHERE x.vm_id = ?1 ORDER BY x.idx",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, vm_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct mu_nic *x;

        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        x = &out[n++];
        memset(x, 0, sizeof *x);
        x->id = sqlite3_column_int64(s, 0);
        x->vm_id = sqlite3_column_int64(s, 1);
        x->network_id = sqlite3_column_int64(s, 2);
        x->idx = sqlite3_column_int(s, 3);
        copy_col(s, 4, x->mac, sizeof x->mac);
        mu_ipv4_format((uint32_t)sqlite3_column_int64(s, 5), x->ip);
        x->public_addr = sqlite3_column_int(s, 6) != 0;
        x->prefix = sqlite3_column_int(s, 7);
        copy_col(s, 8, x->gateway, sizeof x->gateway);
        x->mtu = sqlite3_column_int(s, 9);
        copy_col(s, 10, x->bridge, sizeof x->bridge);
        cidr_format((uint32_t)sqlite3_column_int64(s, 11), x->prefix, x->network_cidr);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading NICs", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        free(out);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int st_vm_user_data_check(const char *user_data, struct mu_err *err)
{
    size_t n;

    if (!user_data)
        return 0;
    n = strlen(user_data);
    if (n > NET_USER_DATA_MAX || !mu_utf8_valid(user_data, n))
        return mu_err_setf(err, MU_EINVAL, "user_data",
                           "user_data must be UTF-8 text of at most %d bytes", NET_USER_DATA_MAX);
    return 0;
}

int mu_store_vm_user_data(struct mu_store *st, int64_t vm_id, char **ret, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT user_data FROM vms WHERE id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, vm_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret = st_col_str(s, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_set(err, MU_ENOTFOUND, "vm %" PRId64 " does not exist", vm_id)
                 : st_sql_err(c, rc, "reading user-data", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_network_addresses(struct mu_store *st, int64_t id, const char *after_ip, int limit,
                               struct mu_net_address **ret, size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_net_address *out = NULL;
    size_t n = 0, cap = 0;
    uint32_t after = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    if (after_ip && after_ip[0] && mu_ipv4_parse(after_ip, &after) < 0)
        return mu_err_setf(err, MU_EINVAL, "after", "after must be an IPv4 address");
    s = st_stmt(c,
                "SELECT x.ip, x.mac, x.vm_id, v.tenant_id, v.name, x.idx FROM nics x JOIN vms v "
                "ON v.id = x.vm_id WHERE x.network_id = ?1 AND x.ip > ?2 ORDER BY x.ip LIMIT ?3",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, after_ip && after_ip[0] ? (int64_t)after : -1);
    sqlite3_bind_int64(s, 3, limit > 0 ? limit : -1);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct mu_net_address *a;

        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        a = &out[n++];
        memset(a, 0, sizeof *a);
        mu_ipv4_format((uint32_t)sqlite3_column_int64(s, 0), a->ip);
        copy_col(s, 1, a->mac, sizeof a->mac);
        a->vm_id = sqlite3_column_int64(s, 2);
        a->tenant_id = sqlite3_column_int64(s, 3);
        a->vm_name = st_col_str(s, 4);
        a->idx = sqlite3_column_int(s, 5);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing addresses", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_net_addresses_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

/* ---- security rules ------------------------------------------------------------------ */

static int rule_check(const struct mu_sec_rule *r, struct mu_err *err)
{
    uint32_t net;
    int prefix, rc;
    bool ports = strcmp(r->proto, "tcp") == 0 || strcmp(r->proto, "udp") == 0;

    if (strcmp(r->action, "accept") != 0 && strcmp(r->action, "drop") != 0)
        return mu_err_setf(err, MU_EINVAL, "action", "action must be \"accept\" or \"drop\"");
    if (strcmp(r->action, "drop") == 0 && !r->operator_rule)
        return mu_err_setf(err, MU_EINVAL, "action",
                           "only operators set \"drop\" rules: tenant rules open ports (traffic "
                           "from outside the network is dropped unless a rule accepts it)");
    if (!ports && strcmp(r->proto, "icmp") != 0 && strcmp(r->proto, "any") != 0)
        return mu_err_setf(err, MU_EINVAL, "proto",
                           "proto must be \"tcp\", \"udp\", \"icmp\" or \"any\"");
    if (ports && (r->port_min < 1 || r->port_max > 65535 || r->port_min > r->port_max))
        return mu_err_setf(err, MU_EINVAL, "ports",
                           "ports must be a port or a range within 1-65535, like 443 or "
                           "\"8000-8080\"");
    if (!ports && (r->port_min != 0 || r->port_max != 0))
        return mu_err_setf(err, MU_EINVAL, "ports", "%s rules take no ports", r->proto);
    rc = cidr_parse_range(r->source, 0, 32, "source", &net, &prefix, err);
    if (rc < 0)
        return rc;
    if (r->description && (strlen(r->description) > 200 || !mu_name_valid(r->description, 200)))
        return mu_err_setf(err, MU_EINVAL, "description",
                           "description must be printable text of at most 200 bytes");
    return 0;
}

/* Bumps rules_gen and queues a net.filter operation on each node hosting the network
 * (unless one is still waiting untouched there: it will read the rules as they are then). */
static int rules_changed_tx(struct st_conn *c, int64_t net_id, const struct mu_audit_rec *audit,
                            int64_t now, struct mu_err *err)
{
    MU_AUTOFREE char *params = mu_xasprintf("{\"network_id\":%" PRId64 "}", net_id);
    MU_AUTOFREE int64_t *nodes = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c, "UPDATE networks SET rules_gen = rules_gen + 1, updated_ms = ?2 WHERE id = ?1",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, net_id);
    sqlite3_bind_int64(s, 2, now);
    rc = st_run(c, s, "bumping the rules generation", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;
    s = st_stmt(c,
                "SELECT DISTINCT v.node_id FROM nics x JOIN vms v ON v.id = x.vm_id WHERE "
                "x.network_id = ?1 AND v.node_id IS NOT NULL AND v.desired_state != 'deleted' "
                "ORDER BY v.node_id",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, net_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            nodes = mu_xrealloc(nodes, cap * sizeof *nodes);
        }
        nodes[n++] = sqlite3_column_int64(s, 0);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "finding nodes", err);
    st_stmt_done(c, s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t op = 0;
        bool waiting = false;

        s = st_stmt(c,
                    "SELECT 1 FROM operations WHERE state = 'pending' AND kind = 'net.filter' "
                    "AND node_id = ?1 AND step = '' AND params_json = ?2",
                    err);
        if (!s)
            return MU_EIO;
        sqlite3_bind_int64(s, 1, nodes[i]);
        st_bind_str(s, 2, params);
        waiting = sqlite3_step(s) == SQLITE_ROW;
        st_stmt_done(c, s);
        if (!waiting)
            rc = st_op_insert_tx(c, "net.filter", 0, nodes[i], params, audit, now, &op, err);
    }
    return rc;
}

static int network_tenant(struct st_conn *c, int64_t net_id, int64_t *ret_tenant,
                          struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, "SELECT tenant_id FROM networks WHERE id = ?1", err);
    int rc;

    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, net_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_tenant = sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_set(err, MU_ENOTFOUND, "network %" PRId64 " does not exist", net_id)
                 : st_sql_err(c, rc, "reading a network", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_sec_rule_add(struct mu_store *st, const struct mu_sec_rule *r,
                          const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err)
{
    int64_t tenant_id = 0, count = 0, id = 0, now;
    char target[64], detail[256];
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    rc = rule_check(r, err);
    if (rc < 0)
        return rc;
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    now = mu_now_ms();
    rc = network_tenant(c, r->network_id, &tenant_id, err);
    if (rc == 0)
        rc = count_query(c, "SELECT count(*) FROM sec_rules WHERE network_id = ?1", r->network_id,
                         &count, err);
    if (rc == 0 && count >= NET_RULES_MAX)
        rc = mu_err_set(err, MU_ECONFLICT,
                        "network %" PRId64 " already has %d rules: merge some (a rule may name a "
                        "port range and a source network)",
                        r->network_id, NET_RULES_MAX);
    if (rc < 0)
        goto out;
    s = st_stmt(c,
                "INSERT INTO sec_rules (network_id, operator_rule, action, proto, port_min, "
                "port_max, source, description, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                "?8, ?9)",
                err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, r->network_id);
    sqlite3_bind_int(s, 2, r->operator_rule);
    st_bind_str(s, 3, r->action);
    st_bind_str(s, 4, r->proto);
    sqlite3_bind_int(s, 5, r->port_min);
    sqlite3_bind_int(s, 6, r->port_max);
    st_bind_str(s, 7, r->source);
    st_bind_str(s, 8, r->description);
    sqlite3_bind_int64(s, 9, now);
    rc = st_run(c, s, "inserting a rule", err);
    st_stmt_done(c, s);
    if (rc == 0) {
        id = sqlite3_last_insert_rowid(c->db);
        rc = rules_changed_tx(c, r->network_id, audit, now, err);
    }
    if (rc == 0) {
        snprintf(target, sizeof target, "network/%" PRId64 "/rule/%" PRId64, r->network_id, id);
        snprintf(detail, sizeof detail, "%s rule: %s %s %d-%d from %s",
                 r->operator_rule ? "operator" : "tenant", r->action, r->proto, r->port_min,
                 r->port_max, r->source);
        rc = st_audit_append_tx(st, audit, tenant_id, target, detail, err);
    }
out:
    rc = st_tx_end(st, rc, err);
    if (rc == 0 && ret_id)
        *ret_id = id;
    return rc;
}

int mu_store_sec_rule_delete(struct mu_store *st, int64_t network_id, int64_t rule_id,
                             bool as_operator, const struct mu_audit_rec *audit, struct mu_err *err)
{
    int64_t tenant_id = 0, now;
    char target[64];
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc, op_rule = 0;

    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    now = mu_now_ms();
    rc = network_tenant(c, network_id, &tenant_id, err);
    if (rc < 0)
        goto out;
    s = st_stmt(c, "SELECT operator_rule FROM sec_rules WHERE id = ?1 AND network_id = ?2", err);
    if (!s) {
        rc = MU_EIO;
        goto out;
    }
    sqlite3_bind_int64(s, 1, rule_id);
    sqlite3_bind_int64(s, 2, network_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        op_rule = sqlite3_column_int(s, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_set(err, MU_ENOTFOUND, "network %" PRId64 " has no rule %" PRId64,
                              network_id, rule_id)
                 : st_sql_err(c, rc, "reading a rule", err);
    }
    st_stmt_done(c, s);
    if (rc == 0 && op_rule && !as_operator)
        rc = mu_err_set(err, MU_EFORBIDDEN,
                        "rule %" PRId64 " was set by the data centre's operators: ask them to "
                        "change it",
                        rule_id);
    if (rc == 0)
        rc = exec_id(c, "DELETE FROM sec_rules WHERE id = ?1", rule_id, "deleting a rule", err);
    if (rc == 0)
        rc = rules_changed_tx(c, network_id, audit, now, err);
    if (rc == 0) {
        snprintf(target, sizeof target, "network/%" PRId64 "/rule/%" PRId64, network_id, rule_id);
        rc = st_audit_append_tx(st, audit, tenant_id, target,
                                op_rule ? "operator rule deleted" : "tenant rule deleted", err);
    }
out:
    return st_tx_end(st, rc, err);
}

int mu_store_sec_rules(struct mu_store *st, int64_t network_id, struct mu_sec_rule **ret,
                       size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_sec_rule *out = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "SELECT id, network_id, operator_rule, action, proto, port_min, port_max, source, "
                "description FROM sec_rules WHERE network_id = ?1 ORDER BY operator_rule DESC, id",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, network_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct mu_sec_rule *r;

        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            out = mu_xrealloc(out, cap * sizeof *out);
        }
        r = &out[n++];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(s, 0);
        r->network_id = sqlite3_column_int64(s, 1);
        r->operator_rule = sqlite3_column_int(s, 2) != 0;
        copy_col(s, 3, r->action, sizeof r->action);
        copy_col(s, 4, r->proto, sizeof r->proto);
        r->port_min = sqlite3_column_int(s, 5);
        r->port_max = sqlite3_column_int(s, 6);
        copy_col(s, 7, r->source, sizeof r->source);
        r->description = st_col_str(s, 8);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "listing rules", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        mu_sec_rules_free(out, n);
        return rc;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

/* ---- nodes: underlay and plans ------------------------------------------------------------ */

int mu_store_node_set_underlay(struct mu_store *st, int64_t node_id, const char *addr,
                               const struct mu_audit_rec *audit, struct mu_err *err)
{
    char text[MU_IPV4_TEXT_MAX] = "", target[48], detail[96];
    MU_AUTOFREE char *name = NULL, *other = NULL;
    struct st_conn *c;
    sqlite3_stmt *s;
    uint32_t a;
    int rc;

    if (addr && addr[0]) {
        if (mu_ipv4_parse(addr, &a) < 0 || a == 0 || (a >> 24) == 127 || (a >> 28) >= 14)
            return mu_err_setf(err, MU_EINVAL, "underlay_ip",
                               "underlay_ip must be the node's unicast IPv4 address on the "
                               "underlay network, like \"10.99.0.11\" (\"\" to clear)");
        mu_ipv4_format(a, text);
    }
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT name FROM nodes WHERE id = ?1", err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        name = st_col_str(s, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", node_id)
                 : st_sql_err(c, rc, "reading a node", err);
    }
    st_stmt_done(c, s);
    if (rc == 0 && text[0]) {
        s = st_stmt(c, "SELECT name FROM nodes WHERE underlay_ip = ?1 AND id != ?2", err);
        if (!s)
            return st_tx_end(st, MU_EIO, err);
        st_bind_str(s, 1, text);
        sqlite3_bind_int64(s, 2, node_id);
        if (sqlite3_step(s) == SQLITE_ROW)
            other = st_col_str(s, 0);
        st_stmt_done(c, s);
        if (other)
            rc = mu_err_setf(err, MU_ECONFLICT, "underlay_ip",
                             "underlay address %s is already node %s's", text, other);
    }
    if (rc == 0) {
        s = st_stmt(c, "UPDATE nodes SET underlay_ip = ?2, updated_ms = ?3 WHERE id = ?1", err);
        if (!s)
            return st_tx_end(st, MU_EIO, err);
        sqlite3_bind_int64(s, 1, node_id);
        st_bind_str(s, 2, text);
        sqlite3_bind_int64(s, 3, mu_now_ms());
        rc = st_run(c, s, "setting an underlay address", err);
        st_stmt_done(c, s);
    }
    if (rc == 0) {
        snprintf(target, sizeof target, "node/%" PRId64, node_id);
        snprintf(detail, sizeof detail, "underlay address %s", text[0] ? text : "cleared");
        rc = st_audit_append_tx(st, audit, 0, target, detail, err);
    }
    return st_tx_end(st, rc, err);
}

int mu_store_node_underlay(struct mu_store *st, int64_t node_id, char ret[MU_IPV4_TEXT_MAX],
                           struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT underlay_ip FROM nodes WHERE id = ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        copy_col(s, 0, ret, MU_IPV4_TEXT_MAX);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", node_id)
                 : st_sql_err(c, rc, "reading a node", err);
    }
    st_stmt_done(c, s);
    return rc;
}

/* FNV-1a, cut to 53 bits so that every JSON reader keeps it exact. */
static int64_t plan_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    h &= (1ull << 53) - 1;
    return (int64_t)(h ? h : 1);
}

static int plan_build(struct st_conn *c, int64_t node_id, const struct mu_net_config *conf,
                      cJSON *root, struct mu_err *err)
{
    cJSON *peers = mu_json_arr(), *segs = mu_json_arr();
    sqlite3_stmt *s;
    int rc;

    s = st_stmt(c, "SELECT name, underlay_ip FROM nodes WHERE id = ?1", err);
    if (!s) {
        cJSON_Delete(peers);
        cJSON_Delete(segs);
        return MU_EIO;
    }
    sqlite3_bind_int64(s, 1, node_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        mu_json_add_str(root, "node", (const char *)sqlite3_column_text(s, 0));
        mu_json_add_str(root, "local", (const char *)sqlite3_column_text(s, 1));
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE
                 ? mu_err_set(err, MU_ENOTFOUND, "node %" PRId64 " does not exist", node_id)
                 : st_sql_err(c, rc, "reading a node", err);
    }
    st_stmt_done(c, s);
    mu_json_add_i64(root, "underlay_mtu", conf->underlay_mtu);
    mu_json_add_i64(root, "vxlan_port", conf->vxlan_port);
    cJSON_AddItemToObject(root, "allowed_peers", peers);
    cJSON_AddItemToObject(root, "segments", segs);
    if (rc < 0)
        return rc;

    s = st_stmt(c, "SELECT underlay_ip FROM nodes WHERE underlay_ip != '' ORDER BY id", err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        cJSON_AddItemToArray(peers, cJSON_CreateString((const char *)sqlite3_column_text(s, 0)));
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading node addresses", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;

    s = st_stmt(c,
                "SELECT DISTINCT n.id, n.mode, n.segment, n.bridge, n.mtu FROM vms v JOIN nics x "
                "ON x.vm_id = v.id JOIN networks n ON n.id = x.network_id WHERE v.node_id = ?1 "
                "AND v.desired_state != 'deleted' ORDER BY n.id",
                err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, node_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        cJSON *seg = mu_json_obj();
        const char *mode = (const char *)sqlite3_column_text(s, 1);

        mu_json_add_i64(seg, "network", sqlite3_column_int64(s, 0));
        mu_json_add_str(seg, "mode", mode);
        if (sqlite3_column_int64(s, 2) > 0)
            mu_json_add_i64(seg, "segment", sqlite3_column_int64(s, 2));
        mu_json_add_str(seg, "bridge", (const char *)sqlite3_column_text(s, 3));
        mu_json_add_i64(seg, "mtu", sqlite3_column_int64(s, 4));
        cJSON_AddItemToObject(seg, "peers", mu_json_arr());
        cJSON_AddItemToArray(segs, seg);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading a node's networks", err);
    st_stmt_done(c, s);

    /* Head-end replication list of each VXLAN segment: the other nodes hosting it. */
    for (cJSON *seg = segs->child; rc == 0 && seg; seg = seg->next) {
        cJSON *list = cJSON_GetObjectItemCaseSensitive(seg, "peers");

        if (strcmp(cJSON_GetObjectItemCaseSensitive(seg, "mode")->valuestring, "vxlan") != 0)
            continue;
        s = st_stmt(c,
                    "SELECT o.underlay_ip FROM nodes o WHERE o.id != ?2 AND o.underlay_ip != '' "
                    "AND EXISTS (SELECT 1 FROM nics x JOIN vms v ON v.id = x.vm_id WHERE "
                    "x.network_id = ?1 AND v.node_id = o.id AND v.desired_state != 'deleted') "
                    "ORDER BY o.id",
                    err);
        if (!s)
            return MU_EIO;
        sqlite3_bind_int64(s, 1,
                           (int64_t)cJSON_GetObjectItemCaseSensitive(seg, "network")->valuedouble);
        sqlite3_bind_int64(s, 2, node_id);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
            cJSON_AddItemToArray(list, cJSON_CreateString((const char *)sqlite3_column_text(s, 0)));
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading a network's nodes", err);
        st_stmt_done(c, s);
    }

    /* VLAN segments: the trunk's uplink port (if the policy names one) and the MACs of this
     * node's NICs on the network, by which the agent finds the guests' tap ports. */
    for (cJSON *seg = segs->child; rc == 0 && seg; seg = seg->next) {
        cJSON *macs = mu_json_arr();

        if (strcmp(cJSON_GetObjectItemCaseSensitive(seg, "mode")->valuestring, "vlan") != 0) {
            cJSON_Delete(macs);
            continue;
        }
        if (conf->trunk_uplink[0])
            mu_json_add_str(seg, "uplink", conf->trunk_uplink);
        cJSON_AddItemToObject(seg, "macs", macs);
        s = st_stmt(c,
                    "SELECT x.mac FROM nics x JOIN vms v ON v.id = x.vm_id WHERE x.network_id = ?1 "
                    "AND v.node_id = ?2 AND v.desired_state != 'deleted' ORDER BY x.mac",
                    err);
        if (!s)
            return MU_EIO;
        sqlite3_bind_int64(s, 1,
                           (int64_t)cJSON_GetObjectItemCaseSensitive(seg, "network")->valuedouble);
        sqlite3_bind_int64(s, 2, node_id);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
            cJSON_AddItemToArray(macs, cJSON_CreateString((const char *)sqlite3_column_text(s, 0)));
        rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "reading a network's NICs", err);
        st_stmt_done(c, s);
    }
    return rc;
}

int mu_store_node_net_plan_json(struct mu_store *st, int64_t node_id, char **ret_json,
                                struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    struct mu_net_config conf;
    cJSON *root;
    char *text = NULL;
    int rc;

    if (!c)
        return MU_EIO;
    mu_store_net_config_get(st, &conf);
    root = mu_json_obj();
    mu_json_add_i64(root, "generation", 0);
    /* One snapshot for the whole plan. */
    rc = st_exec(c, "BEGIN", "reading a node plan", err);
    if (rc == 0) {
        rc = plan_build(c, node_id, &conf, root, err);
        st_exec(c, "COMMIT", "reading a node plan", NULL);
    }
    if (rc == 0) {
        text = mu_json_print(root);
        cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "generation"),
                             (double)plan_hash(text));
        free(text);
        text = mu_json_print(root);
        *ret_json = text;
    }
    cJSON_Delete(root);
    return rc;
}
