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

#endif
