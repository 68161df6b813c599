/* Networks in the store: tenant private networks and operator provider networks, the NICs
 * of VMs with their addresses, security rules, node underlay addresses, and the desired
 * network state of each node (what its agent must realise). Same rules as store.h: every
 * mutation in one BEGIN IMMEDIATE transaction with its audit entry.
 *
 * CONTRACT shared by three pieces built side by side:
 *  - the control plane (net/, store/networks.c, api/h_networks.c): everything declared here;
 *  - the data plane (virt/, ops/, agents/): reads NICs, rules and node plans;
 *  - the catalogue (catalog/): admits VMs with NICs and user-data (store/provision.h,
 *    struct mu_admit_req: nics, n_nics, user_data).
 * Addresses are IPv4 text in dotted form; prefixes 8..30. */
#ifndef MU_STORE_NETWORK_H
#define MU_STORE_NETWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/store.h"

#define MU_IPV4_TEXT_MAX 16 /* "255.255.255.255" + NUL */
#define MU_CIDR_TEXT_MAX 19 /* "255.255.255.255/32" + NUL */
#define MU_MAC_TEXT_MAX  18 /* "52:54:00:12:34:56" + NUL */
#define MU_BRIDGE_MAX    16 /* IFNAMSIZ */

struct mu_network {
    int64_t id;
    int64_t tenant_id; /* owner; provider networks belong to the root tenant */
    char *name;        /* mu_ident_valid, unique per tenant */
    char *kind;        /* "private" (a tenant's) or "provider" (operator's, e.g. public uplink) */
    char *mode;        /* "vxlan", "vlan" (on the policy's trunk bridge) or "bridge" (provider:
                          an existing bridge on every node) */
    char cidr[MU_CIDR_TEXT_MAX];    /* network address / prefix, e.g. "10.0.0.0/24" */
    char gateway[MU_IPV4_TEXT_MAX]; /* "" when none (private networks route nowhere) */
    int64_t segment;                /* VXLAN VNI or VLAN id; 0 for "bridge" */
    char bridge[MU_BRIDGE_MAX];     /* node-side bridge the NICs plug into */
    int mtu;                        /* guest/device MTU (underlay MTU - 50 for VXLAN) */
    char *reserved_json;            /* [["10.0.0.1","10.0.0.9"],…] never handed out */
    int64_t rules_gen;              /* bumped by every security-rule change */
    int64_t created_ms, updated_ms;
    /* Added by the control plane: */
    bool shared;     /* provider: tenants may put NICs on it */
    char *pool_json; /* provider: [["a","b"],…] the addresses handed out; NULL: all usable */
};
void mu_network_clear(struct mu_network *n);
void mu_networks_free(struct mu_network *n, size_t count);

/* One NIC of a VM, as admitted: address allocated, MAC generated (52:54:00 prefix). */
struct mu_nic {
    int64_t id;
    int64_t vm_id;
    int64_t network_id;
    int idx; /* 0, 1, … in the VM's order: eth0, eth1, … */
    char mac[MU_MAC_TEXT_MAX];
    char ip[MU_IPV4_TEXT_MAX];
    int prefix;
    char gateway[MU_IPV4_TEXT_MAX]; /* "" when none */
    int mtu;
    char bridge[MU_BRIDGE_MAX];
    char network_cidr[MU_CIDR_TEXT_MAX];
    bool public_addr; /* on a provider network: counts against the public-address quota */
};

/* What a VM asks for at admission (store/provision.h, struct mu_admit_req.nics). */
struct mu_nic_req {
    int64_t network_id;
    const char *ip; /* NULL: the first free address; else a given free, unreserved address */
};

/* NICs of a VM in idx order (none: *ret NULL, *ret_n 0). */
int mu_store_vm_nics(struct mu_store *st, int64_t vm_id, struct mu_nic **ret, size_t *ret_n,
                     struct mu_err *err);

/* A VM's cloud-init user-data as admitted (NULL if none). */
int mu_store_vm_user_data(struct mu_store *st, int64_t vm_id, char **ret, struct mu_err *err);

int mu_store_network_get(struct mu_store *st, int64_t id, struct mu_network *ret,
                         struct mu_err *err);

/* A security rule of a network. Ingress allow-list: traffic from outside the network's
 * CIDR is dropped unless a rule allows it; traffic inside the network and replies are
 * allowed. Operator rules (operator_rule) come first and tenants cannot change them; an
 * operator rule may also deny (action "drop"), which no tenant rule can reopen. */
struct mu_sec_rule {
    int64_t id;
    int64_t network_id;
    bool operator_rule;
    char action[8];                /* "accept" or "drop" (drop: operator rules only) */
    char proto[8];                 /* "tcp", "udp", "icmp", "any" */
    int port_min, port_max;        /* 0 0 for icmp/any */
    char source[MU_CIDR_TEXT_MAX]; /* source CIDR, "0.0.0.0/0" for anywhere */
    char *description;             /* may be NULL */
};
/* Rules of a network, operator rules first, then by id. */
int mu_store_sec_rules(struct mu_store *st, int64_t network_id, struct mu_sec_rule **ret,
                       size_t *ret_n, struct mu_err *err);
void mu_sec_rules_free(struct mu_sec_rule *r, size_t n);

/* The desired network state of one node: every network with a NIC of a (not deleted) VM
 * placed on this node, with the underlay addresses of the other nodes that host it; and the
 * underlay addresses of every registered node (VXLAN is accepted only from those).
 * Delivered to the node's agent as JSON (see mu_store_node_net_plan_json):
 *   {"generation": G, "node": "node-1", "local": "10.99.0.11", "underlay_mtu": 1500,
 *    "vxlan_port": 4789, "allowed_peers": ["10.99.0.11", "10.99.0.12"],
 *    "segments": [{"network": 5, "mode": "vxlan", "segment": 1005, "bridge": "mubr1005",
 *                  "mtu": 1450, "peers": ["10.99.0.12"]},
 *                 {"network": 2, "mode": "bridge", "bridge": "br-public", "mtu": 1500,
 *                  "peers": []}]}
 * A "vlan" segment (policy mode vlan) carries the VLAN id as "segment", the trunk bridge as
 * "bridge", "uplink" (the trunk's uplink port, only if the policy names one) and "macs": the
 * MACs of this node's NICs on that network (sorted), which the agent maps to tap ports:
 *   {"network": 7, "mode": "vlan", "segment": 101, "bridge": "br-trunk", "uplink": "eth1",
 *    "mtu": 1500, "peers": [], "macs": ["52:54:00:12:34:56"]}
 * generation changes whenever any of it changes. */
int mu_store_node_net_plan_json(struct mu_store *st, int64_t node_id, char **ret_json,
                                struct mu_err *err);

/* The tenant's private network named "default", created if the tenant has none (CIDR
 * from policies/networks.json's default, counted against the network quota at every level,
 * audited). Used by the catalogue when an item asks for a private network. */
int mu_store_network_default_private(struct mu_store *st, int64_t tenant_id,
                                     const char *default_cidr, const struct mu_audit_rec *audit,
                                     int64_t *ret_id, struct mu_err *err);
/* A provider network by name (e.g. "public"); MU_ENOTFOUND if none. */
int mu_store_network_find_provider(struct mu_store *st, const char *name, int64_t *ret_id,
                                   struct mu_err *err);

/* A node's underlay IPv4 address ("" / NULL: none, the node hosts no VXLAN segment). */
int mu_store_node_set_underlay(struct mu_store *st, int64_t node_id, const char *addr,
                               const struct mu_audit_rec *audit, struct mu_err *err);

/* ---- added by the control plane (net/, api/h_networks.c) --------------------------- */

/* How networks are realised, from policies/networks.json (net/net.h reads it): kept in the
 * store handle so that networks created anywhere (API, catalogue) get their segment and MTU
 * the same way, and node plans carry the port and MTU. Set at start and on reload. */
struct mu_net_config {
    char mode[8];        /* "vxlan" or "vlan" for private networks */
    int64_t segment_min; /* VNI or VLAN id range */
    int64_t segment_max;
    char trunk_bridge[MU_BRIDGE_MAX]; /* vlan mode: the operator's trunk bridge */
    int underlay_mtu;                 /* 1500 */
    int vxlan_overhead;               /* 50 */
    int vxlan_port;                   /* 4789 */
    char trunk_uplink[MU_BRIDGE_MAX]; /* vlan mode: the trunk's uplink port ("": none named) */
};
/* Defaults: vxlan, VNI 1000..16000000, MTU 1500, overhead 50, port 4789. */
void mu_store_net_config_set(struct mu_store *st, const struct mu_net_config *cfg);
void mu_store_net_config_get(struct mu_store *st, struct mu_net_config *ret);
/* The quota defaults mu_store_network_default_private checks against (the caller's quota
 * policy; NULL: none). A later call waits for running uses of the previous one. */
struct mu_quota_defaults;
void mu_store_net_quota_defaults_set(struct mu_store *st, const struct mu_quota_defaults *d);

/* What a network is created from. Private: tenant_id, name, cidr, optional reserved ranges
 * (segment, bridge and MTU from the config). Provider: name, cidr, bridge (an existing
 * bridge on every node), optional gateway, pools, reserved, shared, mtu (0: underlay MTU);
 * it belongs to the root tenant and counts against no quota. Addresses are handed out from
 * the usable range (network and broadcast excluded) minus gateway and reserved ranges, and
 * for a provider network only inside its pools. */
struct mu_network_spec {
    int64_t tenant_id;
    const char *name;
    const char *kind;          /* "private" or "provider" */
    const char *cidr;          /* host bits zero, prefix 8..30 */
    const char *gateway;       /* provider only (NULL/"": none) */
    const char *bridge;        /* provider only */
    const char *reserved_json; /* NULL or [["a","b"],…] inside the network */
    const char *pool_json;     /* provider only: NULL or [["a","b"],…] */
    bool shared;               /* provider only */
    int mtu;                   /* provider only; 0: the underlay MTU */
};
/* Creates a network in one transaction: the name free in the tenant (MU_ECONFLICT), the
 * network quota checked at every level (MU_EQUOTA naming the level) and counted, the
 * lowest free segment id of the configured range (MU_ECONFLICT when none is left),
 * audited. MU_EINVAL naming the field for bad input. */
int mu_store_network_create(struct mu_store *st, const struct mu_network_spec *spec,
                            const struct mu_quota_defaults *defaults,
                            const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
/* Networks visible in a tenant scope: scope_id 0: all; else the networks of that subtree
 * and the shared provider networks. By id, after after_id, at most limit (1..1000, 0: all). */
int mu_store_network_list(struct mu_store *st, int64_t scope_id, int64_t after_id, int limit,
                          struct mu_network **ret, size_t *ret_n, struct mu_err *err);
/* A network tenant_id may attach NICs to, by name: its own, else a shared provider
 * network. MU_ENOTFOUND (err set) if none. */
int mu_store_network_find(struct mu_store *st, int64_t tenant_id, const char *name, int64_t *ret_id,
                          struct mu_err *err);
/* Deletes a network without NICs (MU_ECONFLICT naming how many remain), with its rules;
 * gives its quota back. Audited. */
int mu_store_network_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                            struct mu_err *err);
/* Number of NICs on a network and free addresses left. */
int mu_store_network_counts(struct mu_store *st, int64_t id, int64_t *ret_nics, int64_t *ret_free,
                            struct mu_err *err);

/* One allocated address of a network, with its VM. */
struct mu_net_address {
    char ip[MU_IPV4_TEXT_MAX];
    char mac[MU_MAC_TEXT_MAX];
    int64_t vm_id;
    int64_t tenant_id;
    char *vm_name;
    int idx;
};
/* Allocated addresses in address order, after address after_ip ("" or NULL: from the
 * start), at most limit (1..1000). */
int mu_store_network_addresses(struct mu_store *st, int64_t id, const char *after_ip, int limit,
                               struct mu_net_address **ret, size_t *ret_n, struct mu_err *err);
void mu_net_addresses_free(struct mu_net_address *a, size_t n);

/* Adds a rule (r->network_id, operator_rule, action, proto, ports, source, description) in
 * one transaction that bumps the network's rules_gen and inserts a "net.filter" operation
 * (vm_id 0, params {"network_id":N}) for each node hosting the network. "drop" only for
 * operator rules. Audited. */
int mu_store_sec_rule_add(struct mu_store *st, const struct mu_sec_rule *r,
                          const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
/* Deletes a rule of the network, same transaction shape. as_operator false: an operator
 * rule is refused (MU_EFORBIDDEN). MU_ENOTFOUND if the rule is not on that network. */
int mu_store_sec_rule_delete(struct mu_store *st, int64_t network_id, int64_t rule_id,
                             bool as_operator, const struct mu_audit_rec *audit,
                             struct mu_err *err);
/* A node's underlay address ("" if none). */
int mu_store_node_underlay(struct mu_store *st, int64_t node_id, char ret[MU_IPV4_TEXT_MAX],
                           struct mu_err *err);

/* IPv4 text helpers shared by the store (strict dotted quad, no leading zeros). */
int mu_ipv4_parse(const char *s, uint32_t *ret);
void mu_ipv4_format(uint32_t a, char out[MU_IPV4_TEXT_MAX]);
/* "10.0.0.0/24": prefix 8..30 and host bits zero. 0 or MU_EINVAL with a sentence in err
 * (field names the input). */
int mu_cidr_parse(const char *s, const char *field, uint32_t *ret_net, int *ret_prefix,
                  struct mu_err *err);

#endif
