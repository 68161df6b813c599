/* Realising a network plan on the node (net.h): read what exists (`ip -j -d link show`,
 * `bridge -j fdb show`, `nft list table`), then create, correct or remove only what
 * differs. Every argument is re-printed here from parsed integers and addresses. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "mutualis/util.h"
#include "net/net.h"

#define NFT_TABLE "mutualis"

struct tools {
    const char *ip, *bridge, *nft;
};

static const char *find_tool(const char *name)
{
    static const char *const dirs[] = {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"};
    static char found[3][64];
    static const char *const names[] = {"ip", "bridge", "nft"};
    for (size_t k = 0; k < 3; k++) {
        if (strcmp(names[k], name) != 0)
            continue;
        if (found[k][0])
            return found[k];
        for (size_t i = 0; i < MU_ARRAY_LEN(dirs); i++) {
            char p[64];
            snprintf(p, sizeof p, "%s%s", dirs[i], name);
            if (access(p, X_OK) == 0) {
                snprintf(found[k], sizeof found[k], "%s", p);
                return found[k];
            }
        }
    }
    return NULL;
}

static void ip_text(uint32_t a, char out[16])
{
    snprintf(out, 16, "%u.%u.%u.%u", (unsigned)(a >> 24), (unsigned)((a >> 16) & 255),
             (unsigned)((a >> 8) & 255), (unsigned)(a & 255));
}

/* Runs argv; a non-zero exit is an error (err filled by mu_net_run). */
static int run(const char *const argv[], char **out, struct mu_err *err)
{
    char *o = NULL;
    int rc = mu_net_run(argv, NULL, &o, err);
    if (rc > 0)
        rc = MU_EIO;
    if (rc == 0 && out)
        *out = o;
    else
        free(o);
    return rc;
}

/* ---- what exists --------------------------------------------------------------------- */

struct link {
    char name[16];
    char kind[16];   /* "vxlan", "bridge", … */
    char master[16]; /* "" when none */
    int mtu;
    bool up;
    bool nf_call_iptables;     /* bridges */
    int64_t vni;               /* vxlan */
    int64_t port;              /* vxlan */
    char local[16];            /* vxlan */
    bool learning;             /* vxlan */
    char mac[18];              /* "address" as ip prints it */
    int64_t vlan_filtering;    /* bridges: 1 on, 0 off, -1 unknown (kernel without it) */
    int64_t vlan_default_pvid; /* bridges */
};

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int64_t jint(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

static int links_read(const struct tools *t, struct link **ret, size_t *ret_n, struct mu_err *err)
{
    const char *argv[] = {t->ip, "-j", "-d", "link", "show", NULL};
    char *out = NULL;
    int rc = run(argv, &out, err);
    if (rc < 0)
        return rc;
    cJSON *arr = cJSON_Parse(out);
    free(out);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return mu_err_set(err, MU_EIO, "`ip -j link show` did not print a JSON array");
    }
    size_t n = (size_t)cJSON_GetArraySize(arr), k = 0;
    struct link *l = mu_xcalloc(n + 1, sizeof *l);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        struct link *x = &l[k];
        if (strlen(jstr(it, "ifname")) >= sizeof x->name)
            continue;
        snprintf(x->name, sizeof x->name, "%s", jstr(it, "ifname"));
        snprintf(x->master, sizeof x->master, "%s", jstr(it, "master"));
        x->mtu = (int)jint(it, "mtu");
        const cJSON *fl = cJSON_GetObjectItemCaseSensitive(it, "flags"), *f;
        cJSON_ArrayForEach(f, fl) if (cJSON_IsString(f) && strcmp(f->valuestring, "UP") == 0)
            x->up = true;
        const cJSON *li = cJSON_GetObjectItemCaseSensitive(it, "linkinfo");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(li, "info_data");
        snprintf(x->kind, sizeof x->kind, "%s", jstr(li, "info_kind"));
        x->vni = jint(d, "id");
        x->port = jint(d, "port");
        snprintf(x->local, sizeof x->local, "%s", jstr(d, "local"));
        x->learning = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "learning"));
        x->nf_call_iptables = jint(d, "nf_call_iptables") == 1;
        if (strlen(jstr(it, "address")) < sizeof x->mac)
            snprintf(x->mac, sizeof x->mac, "%s", jstr(it, "address"));
        x->vlan_filtering = jint(d, "vlan_filtering");
        x->vlan_default_pvid = jint(d, "vlan_default_pvid");
        k++;
    }
    cJSON_Delete(arr);
    *ret = l;
    *ret_n = k;
    return 0;
}

static struct link *link_find(struct link *l, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, name) == 0)
            return &l[i];
    return NULL;
}

/* "<prefix><digits>" with a VNI in range: one of ours. */
static bool ours(const char *name, const char *prefix, int64_t *ret_vni)
{
    size_t k = strlen(prefix);
    if (strncmp(name, prefix, k) != 0 || !name[k])
        return false;
    return mu_parse_i64(name + k, 1, MU_NET_VNI_MAX, ret_vni) == 0 && name[k] != '0';
}

/* ---- one vxlan segment --------------------------------------------------------------- */

static int seg_apply(const struct tools *t, const struct mu_net_plan *p,
                     const struct mu_net_segment *s, struct link *links, size_t n_links,
                     struct mu_net_apply_stats *st, struct mu_err *err)
{
    char vx[16], vni[16], port[8], local[16], mtu[8];
    snprintf(vx, sizeof vx, "vx%" PRId64, s->segment);
    snprintf(vni, sizeof vni, "%" PRId64, s->segment);
    snprintf(port, sizeof port, "%d", p->vxlan_port);
    snprintf(mtu, sizeof mtu, "%d", s->mtu);
    ip_text(p->local, local);
    int rc = 0;

    struct link *v = link_find(links, n_links, vx);
    if (v && (strcmp(v->kind, "vxlan") != 0 || v->vni != s->segment || v->port != p->vxlan_port ||
              strcmp(v->local, local) != 0 || v->learning)) {
        /* Not the device we would make (address changed, say): replace it. */
        const char *del[] = {t->ip, "link", "del", vx, NULL};
        rc = run(del, NULL, err);
        if (rc < 0)
            return rc;
        st->removed++;
        v = NULL;
    }
    if (!v) {
        const char *add[] = {t->ip, "link", "add",     vx,   "mtu",   mtu,   "type",       "vxlan",
                             "id",  vni,    "dstport", port, "local", local, "nolearning", NULL};
        rc = run(add, NULL, err);
        if (rc < 0)
            return rc;
        st->created++;
    }
    struct link *b = link_find(links, n_links, s->bridge);
    if (b && strcmp(b->kind, "bridge") != 0)
        return mu_err_set(err, MU_EIO, "%s exists and is not a bridge (%s): remove it by hand",
                          s->bridge, b->kind);
    if (!b) {
        /* nf_call_iptables: libvirt's nwfilter rules (iptables) see the bridged traffic. */
        const char *add[] = {t->ip, "link", "add",    s->bridge,          "mtu",
                             mtu,   "type", "bridge", "nf_call_iptables", "1",
                             NULL};
        rc = run(add, NULL, err);
        if (rc < 0)
            return rc;
        st->created++;
    } else if (!b->nf_call_iptables) {
        const char *set[] = {t->ip, "link", "set", s->bridge, "type", "bridge", "nf_call_iptables",
                             "1",   NULL};
        rc = run(set, NULL, err);
        if (rc < 0)
            return rc;
        st->fixed++;
    }
    if (!v || v->mtu != s->mtu || strcmp(v->master, s->bridge) != 0 || !v->up) {
        const char *set[] = {t->ip, "link", "set", vx, "mtu", mtu, "master", s->bridge, "up", NULL};
        rc = run(set, NULL, err);
        if (rc < 0)
            return rc;
        if (v)
            st->fixed++;
    }
    if (!b || b->mtu != s->mtu || !b->up) {
        const char *set[] = {t->ip, "link", "set", s->bridge, "mtu", mtu, "up", NULL};
        rc = run(set, NULL, err);
        if (rc < 0)
            return rc;
        if (b)
            st->fixed++;
    }

    /* Head-end replication: one all-zero entry per peer, nothing else. */
    const char *show[] = {t->bridge, "-j", "fdb", "show", "dev", vx, NULL};
    char *out = NULL;
    rc = run(show, &out, err);
    if (rc < 0)
        return rc;
    cJSON *arr = cJSON_Parse(out);
    free(out);
    bool *have = mu_xcalloc(s->n_peers + 1, sizeof *have);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (strcmp(jstr(it, "mac"), "00:00:00:00:00:00") != 0 || !jstr(it, "dst")[0])
            continue;
        char dst[16];
        snprintf(dst, sizeof dst, "%s", jstr(it, "dst"));
        bool wanted = false;
        for (size_t i = 0; i < s->n_peers; i++) {
            char pt[16];
            ip_text(s->peers[i], pt);
            if (strcmp(pt, dst) == 0) {
                have[i] = true;
                wanted = true;
            }
        }
        if (!wanted && rc == 0) {
            /* Re-print the stale address from its parse: only digits and dots go out. */
            unsigned a, b2, c, d;
            char tail;
            if (sscanf(dst, "%3u.%3u.%3u.%3u%c", &a, &b2, &c, &d, &tail) != 4 || a > 255 ||
                b2 > 255 || c > 255 || d > 255)
                continue;
            char clean[16];
            snprintf(clean, sizeof clean, "%u.%u.%u.%u", a, b2, c, d);
            const char *del[] = {t->bridge, "fdb", "del", "00:00:00:00:00:00", "dev", vx,
                                 "dst",     clean, NULL};
            rc = run(del, NULL, err);
            if (rc == 0)
                st->fdb_removed++;
        }
    }
    cJSON_Delete(arr);
    for (size_t i = 0; rc == 0 && i < s->n_peers; i++) {
        if (have[i] || s->peers[i] == p->local)
            continue;
        char pt[16];
        ip_text(s->peers[i], pt);
        const char *add[] = {t->bridge, "fdb", "append", "00:00:00:00:00:00", "dev", vx,
                             "dst",     pt,    NULL};
        rc = run(add, NULL, err);
        if (rc == 0)
            st->fdb_added++;
    }
    free(have);
    return rc;
}

/* ---- nftables: UDP to the VXLAN port only from registered nodes ----------------------- */

static char *nft_text(const struct mu_net_plan *p)
{
    struct mu_buf b;
    mu_buf_init(&b);
    /* "add" first so that "delete" never fails: the whole file is one transaction. */
    mu_buf_puts(&b, "add table inet " NFT_TABLE "\ndelete table inet " NFT_TABLE "\n");
    mu_buf_puts(&b, "table inet " NFT_TABLE " {\n"
                    "  counter vxlan_dropped { }\n"
                    "  set vxlan_peers {\n    type ipv4_addr\n");
    if (p->n_allowed) {
        mu_buf_puts(&b, "    elements = { ");
        for (size_t i = 0; i < p->n_allowed; i++) {
            char a[16];
            ip_text(p->allowed[i], a);
            mu_buf_printf(&b, "%s%s", i ? ", " : "", a);
        }
        mu_buf_puts(&b, " }\n");
    }
    mu_buf_printf(&b,
                  "  }\n"
                  "  chain input {\n"
                  "    type filter hook input priority -10; policy accept;\n"
                  "    udp dport %d ip saddr @vxlan_peers accept\n"
                  "    udp dport %d counter name vxlan_dropped drop\n"
                  "  }\n"
                  "}\n",
                  p->vxlan_port, p->vxlan_port);
    return mu_buf_steal(&b);
}

/* The ruleset last written, to leave the table (and its counter) alone when unchanged. */
static char *nft_last;

static int nft_apply(const struct tools *t, const struct mu_net_plan *p,
                     struct mu_net_apply_stats *st, struct mu_err *err)
{
    MU_AUTOFREE char *text = nft_text(p);
    const char *list[] = {t->nft, "list", "table", "inet", NFT_TABLE, NULL};
    struct mu_err lerr = {0};
    bool exists = mu_net_run(list, NULL, NULL, &lerr) == 0;
    if (exists && nft_last && strcmp(nft_last, text) == 0)
        return 0;
    const char *load[] = {t->nft, "-f", "-", NULL};
    int rc = mu_net_run(load, text, NULL, err);
    if (rc > 0)
        rc = MU_EIO;
    if (rc < 0)
        return rc;
    free(nft_last);
    nft_last = MU_STEAL(text);
    st->nft_applied = true;
    return 0;
}

/* ---- vlan segments on the operator's trunk bridge -------------------------------------- */

/* The trunk of the last plan that had vlan segments: its taps lose their VLANs when the last
 * vlan segment leaves the node. */
static char vlan_last_trunk[16];

static bool has_flag(const cJSON *entry, const char *flag)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(entry, "flags"))
    {
        if (cJSON_IsString(f) && strcmp(f->valuestring, flag) == 0)
            return true;
    }
    return false;
}

/* The "vlans" array of port `name` in `bridge -j vlan show` output (NULL: none). */
static const cJSON *port_vlans(const cJSON *all, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, all)
    {
        if (strcmp(jstr(it, "ifname"), name) == 0)
            return cJSON_GetObjectItemCaseSensitive(it, "vlans");
    }
    return NULL;
}

/* Port `port` must carry exactly `want` (0: nothing), as "pvid untagged" when access is set,
 * tagged otherwise; with exact false, VLANs other than want are left alone (uplinks). */
static int port_vlan_fix(const struct tools *t, const char *port, const cJSON *have, int64_t want,
                         bool access, bool exact, struct mu_net_apply_stats *st, struct mu_err *err)
{
    bool ok = false;
    const cJSON *e;
    int rc = 0;
    cJSON_ArrayForEach(e, have)
    {
        int64_t lo = jint(e, "vlan"), hi = jint(e, "vlanEnd");
        if (lo < 1 || lo > 4094)
            continue;
        if (hi < lo)
            hi = lo;
        bool flags_ok = has_flag(e, "PVID") == access && has_flag(e, "Egress Untagged") == access;
        if (lo == want && hi == want && flags_ok) {
            ok = true;
            continue;
        }
        if (!exact && !(want >= lo && want <= hi))
            continue;
        if (hi > 4094)
            hi = 4094;
        char vid[48];
        if (hi > lo)
            snprintf(vid, sizeof vid, "%" PRId64 "-%" PRId64, lo, hi);
        else
            snprintf(vid, sizeof vid, "%" PRId64, lo);
        const char *del[] = {t->bridge, "vlan", "del", "dev", port, "vid", vid, NULL};
        rc = run(del, NULL, err);
        if (rc < 0)
            return rc;
        st->vlan_removed++;
    }
    if (ok || want <= 0)
        return 0;
    char vid[24];
    snprintf(vid, sizeof vid, "%" PRId64, want);
    const char *add_access[] = {t->bridge, "vlan", "add",  "dev",      port,
                                "vid",     vid,    "pvid", "untagged", NULL};
    const char *add_tagged[] = {t->bridge, "vlan", "add", "dev", port, "vid", vid, NULL};
    rc = run(access ? add_access : add_tagged, NULL, err);
    if (rc == 0)
        st->vlan_set++;
    return rc;
}

/* Detaches the guest taps of a trunk that cannot filter VLANs: cut off, not open. */
static void trunk_cut_off(const struct tools *t, const char *trunk, struct link *links,
                          size_t n_links, struct mu_net_apply_stats *st)
{
    for (size_t i = 0; i < n_links; i++) {
        if (strcmp(links[i].master, trunk) != 0 || strcmp(links[i].kind, "tun") != 0 ||
            links[i].name[0] == '-')
            continue;
        const char *set[] = {t->ip, "link", "set", "dev", links[i].name, "nomaster", NULL};
        struct mu_err e = {0};
        if (run(set, NULL, &e) == 0)
            st->cut_off++;
        mu_err_clear(&e);
    }
}

static int trunk_apply(const struct tools *t, const struct mu_net_plan *p, const char *trunk,
                       struct link *links, size_t n_links, struct mu_net_apply_stats *st,
                       struct mu_err *err)
{
    struct link *b = link_find(links, n_links, trunk);
    int rc = 0;
    if (!b || strcmp(b->kind, "bridge") != 0)
        return mu_err_set(err, MU_EIO,
                          "the trunk bridge %s does not exist on this node: the operator creates "
                          "it (with its uplink); Mutualis only configures its VLANs",
                          trunk);
    if (b->vlan_filtering != 1 || b->vlan_default_pvid != 0) {
        struct mu_err e = {0};
        const char *set[] = {t->ip,    "link",
                             "set",    "dev",
                             trunk,    "type",
                             "bridge", "vlan_filtering",
                             "1",      "vlan_default_pvid",
                             "0",      NULL};
        if (run(set, NULL, &e) < 0) {
            trunk_cut_off(t, trunk, links, n_links, st);
            rc = mu_err_set(err, MU_EIO,
                            "the trunk bridge %s cannot filter VLANs (%s): its guest ports are "
                            "detached until it can (a kernel with CONFIG_BRIDGE_VLAN_FILTERING)",
                            trunk, e.detail);
            mu_err_clear(&e);
            return rc;
        }
        st->fixed++;
    }
    if (!b->nf_call_iptables) {
        /* As on the VXLAN bridges: the tenants' nwfilter rules (iptables) see the traffic. */
        const char *set[] = {
            t->ip, "link", "set", "dev", trunk, "type", "bridge", "nf_call_iptables", "1", NULL};
        rc = run(set, NULL, err);
        if (rc < 0)
            return rc;
        st->fixed++;
    }
    const char *show[] = {t->bridge, "-j", "vlan", "show", NULL};
    char *out = NULL;
    rc = run(show, &out, err);
    if (rc < 0)
        return rc;
    cJSON *all = cJSON_Parse(out && out[0] ? out : "[]");
    free(out);
    /* The uplink carries every VLAN of the node, tagged. */
    for (size_t i = 0; rc == 0 && i < p->n_segs; i++) {
        const struct mu_net_segment *s = &p->segs[i];
        if (strcmp(s->mode, "vlan") != 0 || strcmp(s->bridge, trunk) != 0 || !s->uplink[0])
            continue;
        struct link *u = link_find(links, n_links, s->uplink);
        if (!u || strcmp(u->master, trunk) != 0) {
            rc = mu_err_set(err, MU_EIO, "the uplink %s is not a port of the trunk bridge %s",
                            s->uplink, trunk);
            break;
        }
        rc = port_vlan_fix(t, s->uplink, port_vlans(all, s->uplink), s->segment, false, false, st,
                           err);
    }
    /* Each guest tap: exactly its segment's VLAN, untagged, or nothing. */
    for (size_t i = 0; rc == 0 && i < n_links; i++) {
        const struct link *l = &links[i];
        if (strcmp(l->master, trunk) != 0 || strcmp(l->kind, "tun") != 0 || l->name[0] == '-')
            continue;
        int64_t want = mu_net_vlan_of_port(p, trunk, l->mac);
        rc = port_vlan_fix(t, l->name, port_vlans(all, l->name), want, true, true, st, err);
    }
    cJSON_Delete(all);
    return rc;
}

/* Every trunk named by a vlan segment, and the last one seen if the plan has none left. */
static int vlan_apply(const struct tools *t, const struct mu_net_plan *p, struct link *links,
                      size_t n_links, struct mu_net_apply_stats *st, struct mu_err *err)
{
    int rc = 0;
    bool any = false;
    for (size_t i = 0; rc == 0 && i < p->n_segs; i++) {
        const struct mu_net_segment *s = &p->segs[i];
        bool seen = false;
        if (strcmp(s->mode, "vlan") != 0)
            continue;
        for (size_t j = 0; j < i; j++)
            seen = seen || (strcmp(p->segs[j].mode, "vlan") == 0 &&
                            strcmp(p->segs[j].bridge, s->bridge) == 0);
        if (seen)
            continue;
        any = true;
        snprintf(vlan_last_trunk, sizeof vlan_last_trunk, "%s", s->bridge);
        rc = trunk_apply(t, p, s->bridge, links, n_links, st, err);
    }
    if (rc == 0 && !any && vlan_last_trunk[0]) {
        struct link *b = link_find(links, n_links, vlan_last_trunk);
        if (b && b->vlan_filtering == 1)
            rc = trunk_apply(t, p, vlan_last_trunk, links, n_links, st, err);
    }
    return rc;
}

static bool plan_has_vlan(const struct mu_net_plan *p)
{
    for (size_t i = 0; i < p->n_segs; i++)
        if (strcmp(p->segs[i].mode, "vlan") == 0)
            return true;
    return vlan_last_trunk[0] != '\0';
}

/* ---- the pass -------------------------------------------------------------------------- */

int mu_net_apply(const struct mu_net_plan *p, struct mu_net_apply_stats *ret, struct mu_err *err)
{
    struct mu_net_apply_stats st = {0};
    struct link *links = NULL;
    size_t n_links = 0;
    struct tools t = {find_tool("ip"), find_tool("bridge"), find_tool("nft")};
    int rc = 0;

    if (!p->local && !plan_has_vlan(p)) {
        *ret = st;
        return 0;
    }
    if (!p->local) {
        /* No underlay (no VXLAN): only the trunk's VLANs to realise. */
        if (!t.ip || !t.bridge)
            return mu_err_set(err, MU_EIO, "ip and bridge must be installed (iproute2)");
        rc = links_read(&t, &links, &n_links, err);
        if (rc == 0)
            rc = vlan_apply(&t, p, links, n_links, &st, err);
        free(links);
        if (rc == 0)
            *ret = st;
        return rc;
    }
    if (!t.ip || !t.bridge || !t.nft)
        return mu_err_set(err, MU_EIO, "ip, bridge and nft must be installed (iproute2, nftables)");
    rc = nft_apply(&t, p, &st, err); /* protection first */
    if (rc == 0)
        rc = links_read(&t, &links, &n_links, err);
    for (size_t i = 0; rc == 0 && i < p->n_segs; i++) {
        const struct mu_net_segment *s = &p->segs[i];
        if (strcmp(s->mode, "vxlan") == 0)
            rc = seg_apply(&t, p, s, links, n_links, &st, err);
        else if (strcmp(s->mode, "vlan") == 0)
            continue; /* after the rest: see vlan_apply below */
        else if (!link_find(links, n_links, s->bridge))
            rc = mu_err_set(err, MU_EIO, "provider bridge %s does not exist on this node",
                            s->bridge);
    }
    /* Devices of segments that left the plan. */
    for (size_t i = 0; rc == 0 && i < n_links; i++) {
        int64_t vni = 0;
        bool vx = ours(links[i].name, "vx", &vni) && strcmp(links[i].kind, "vxlan") == 0;
        bool br = ours(links[i].name, "mubr", &vni) && strcmp(links[i].kind, "bridge") == 0;
        if (!vx && !br)
            continue;
        bool wanted = false;
        for (size_t j = 0; j < p->n_segs; j++)
            wanted = wanted || (strcmp(p->segs[j].mode, "vxlan") == 0 && p->segs[j].segment == vni);
        if (wanted)
            continue;
        const char *del[] = {t.ip, "link", "del", links[i].name, NULL};
        rc = run(del, NULL, err);
        if (rc == 0)
            st.removed++;
    }
    /* Last, so that a missing or unfit trunk never holds up the VXLAN segments. */
    if (rc == 0)
        rc = vlan_apply(&t, p, links, n_links, &st, err);
    free(links);
    if (rc == 0)
        *ret = st;
    return rc;
}
