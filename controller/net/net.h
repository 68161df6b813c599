/* net/: the network policy (policies/networks.json) and the pure helpers the API uses to turn
 * outside input into validated network values. The store keeps networks, NICs, addresses,
 * rules and node plans (store/network.h); the data plane (virt/, ops/, the agent) realises
 * them. Nothing here does I/O except reading the policy file.
 *
 *   {
 *     "version": 1,
 *     "private": {
 *       "mode": "vxlan",                               "vxlan" or "vlan"
 *       "vxlan": {"port": 4789, "vni_min": 1000, "vni_max": 16000000},
 *       "vlan": {"trunk_bridge": "br-trunk", "vlan_min": 100, "vlan_max": 4094,
 *                "uplink": "eth1"},                 uplink optional: carries the VLANs tagged
 *       "default_cidr": "10.0.0.0/24"                  the catalogue's "default" networks
 *     },
 *     "underlay_mtu": 1500,
 *     "vxlan_overhead": 50,                            guest MTU = underlay_mtu - overhead
 *     "providers": [                                   created at start if absent (by name)
 *       {"name": "public", "cidr": "203.0.113.0/24", "gateway": "203.0.113.1",
 *        "bridge": "br-public", "pools": [["203.0.113.10", "203.0.113.200"]],
 *        "shared": true}
 *     ]
 *   }
 *
 * Rules, checked when the file is read (errors name the file, line and column): "version"
 * (1) and "private" are required, every other key is optional with the defaults shown; no
 * unknown key anywhere. "vlan" mode needs "vlan" with a trunk bridge. Ranges: VNI 1..16777215,
 * VLAN 1..4094, min <= max; MTU 576..9216, overhead 0..200 and below the MTU; port 1..65535.
 * Provider entries are checked like the API's (name, CIDR, gateway inside, bridge name).
 *
 * IPv6 and routed gateways with NAT are out of scope: private networks have no gateway, and
 * fields for either are refused, never ignored. */
#ifndef MU_NET_H
#define MU_NET_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/network.h"

struct mu_net_policy;

/* Parses len bytes; origin names the input ("policies/networks.json"). *ret is the
 * caller's (mu_net_policy_free). MU_EINVAL with err ("origin: line 3, column 9: ...");
 * *ret untouched on error. */
int mu_net_policy_parse(const char *buf, size_t len, const char *origin, struct mu_net_policy **ret,
                        struct mu_err *err);
/* Reads and parses a file (at most 1 MiB). MU_EIO if it cannot be read. */
int mu_net_policy_load(const char *path, struct mu_net_policy **ret, struct mu_err *err);
void mu_net_policy_free(struct mu_net_policy *p);

/* The realisation settings for the store (mu_store_net_config_set). */
void mu_net_policy_config(const struct mu_net_policy *p, struct mu_net_config *ret);
/* The CIDR of the "default" private networks. Borrowed from p. */
const char *mu_net_policy_default_cidr(const struct mu_net_policy *p);
/* Hands the configuration to the store and creates the declared provider networks that do
 * not exist yet (by name; existing ones are left as they are). *ret_created counts them. */
int mu_net_policy_apply(const struct mu_net_policy *p, struct mu_store *st,
                        const struct mu_audit_rec *audit, int *ret_created, struct mu_err *err);

/* The guest/device MTU of a VXLAN segment over an underlay: underlay_mtu - overhead. */
int mu_net_guest_mtu(int underlay_mtu, int overhead);
/* "mubr<vni>" into out (MU_BRIDGE_MAX): false if it would not fit IFNAMSIZ. */
bool mu_net_bridge_name(int64_t segment, char out[MU_BRIDGE_MAX]);

/* A port or range, from a JSON integer (443) or string ("443", "8000-8080"). 0 or
 * MU_EINVAL (err names field). */
int mu_net_ports_parse(const cJSON *v, const char *field, int *ret_min, int *ret_max,
                       struct mu_err *err);
/* A rule body {"proto", "ports"?, "source"?, "action"?, "description"?} into ret (strings
 * copied; ret->description allocated, free with free()). Unknown keys refused. operator:
 * whether the caller sets an operator rule (only then may "action" be "drop"). Checks
 * the shapes; the store checks the values again. */
int mu_net_rule_from_json(const cJSON *body, bool operator_rule, struct mu_sec_rule *ret,
                          struct mu_err *err);

#endif
