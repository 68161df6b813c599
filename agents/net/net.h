/* net/: the node-side network devices of tenant networks, realised by the agent from the
 * desired state the controller publishes (GET /v1/agent/network, store/network.h's plan).
 * See README.md in this folder for why the agent, not the controller, applies them.
 *
 * For each "vxlan" segment of the plan:
 *   - a VXLAN device "vx<VNI>": id VNI, dstport (the plan's vxlan_port, 4789) set
 *     explicitly, local = the node's underlay address, nolearning, MTU = the segment's;
 *   - a bridge (the plan's "mubr<VNI>") with that MTU, the VXLAN device enslaved, both up;
 *   - head-end replication: one all-zero FDB entry per peer
 *     (`bridge fdb append 00:00:00:00:00:00 dev vx<VNI> dst <peer>`), stale ones removed;
 * the nftables table "inet mutualis" accepts UDP to vxlan_port only from allowed_peers
 * (named counter "vxlan_dropped" counts the rest, which is dropped);
 * devices "vx<N>" / "mubr<N>" of segments no longer in the plan are removed.
 * "bridge" segments (provider networks) use an existing bridge: only checked.
 *
 * "vlan" segments live on the operator's trunk bridge (the plan's "bridge"), which the agent
 * never creates: if it is missing the pass fails naming it. The agent turns on the trunk's
 * VLAN filtering with default PVID 0 (a port nobody assigned carries no VLAN: a new tap is
 * cut off, never open), puts every VLAN id of the plan on the uplink port (tagged; VLANs
 * already there are left, the operator may carry others), and gives each guest tap on the
 * trunk exactly "vid N pvid untagged" when its MAC is a plan MAC of segment N (libvirt gives
 * a tap the guest's MAC with the first byte 0xfe), and no VLAN at all otherwise. Only tap
 * ports (kind "tun") are managed; other ports of the trunk (uplinks, the operator's own) are
 * left as they are. If the kernel cannot filter VLANs on the bridge (no
 * CONFIG_BRIDGE_VLAN_FILTERING), the guest taps are detached from the trunk and the pass
 * fails: isolation is never traded for connectivity.
 *
 * Commands run through posix_spawn with argv arrays (never a shell), from fixed paths,
 * and only with values re-printed from parsed integers and IPv4 addresses. Everything is
 * idempotent: applying the same plan twice changes nothing the second time (the nft table
 * is only replaced when its content would change or it is missing, so its counter
 * survives). Nothing here logs above debug: the agent's main loop decides. */
#ifndef MU_AGENT_NET_H
#define MU_AGENT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"

#define MU_NET_VNI_MAX   16777215
#define MU_NET_PEERS_MAX 4096
#define MU_NET_SEGS_MAX  4096

struct mu_net_segment {
    int64_t network;
    char mode[8];    /* "vxlan", "bridge" or "vlan" */
    int64_t segment; /* VNI (vxlan), VLAN id (vlan), 0 (bridge) */
    char bridge[16]; /* [a-z0-9-]{1,15}; for vxlan exactly "mubr<VNI>" */
    int mtu;
    uint32_t *peers; /* underlay IPv4 addresses (host order) */
    size_t n_peers;
    char uplink[16];  /* vlan: the trunk's uplink port ("" if the policy names none) */
    char (*macs)[18]; /* vlan: this node's guest MACs on the segment, "52:54:00:…" lowercase */
    size_t n_macs;
};

struct mu_net_plan {
    int64_t generation;
    uint32_t local; /* 0: the node has no underlay address (nothing to realise) */
    int underlay_mtu;
    int vxlan_port;
    uint32_t *allowed;
    size_t n_allowed;
    struct mu_net_segment *segs;
    size_t n_segs;
};

/* Parses and validates the plan JSON strictly (unknown keys refused, every value checked
 * against its allow-list). *ret written only on success; MU_EINVAL names the field. */
int mu_net_plan_parse(const char *json, size_t len, struct mu_net_plan *ret, struct mu_err *err);
void mu_net_plan_clear(struct mu_net_plan *p);

/* What one apply pass changed. */
struct mu_net_apply_stats {
    int created;      /* devices created */
    int removed;      /* devices removed */
    int fdb_added;    /* FDB entries added */
    int fdb_removed;  /* stale FDB entries removed */
    int fixed;        /* MTU, master or state corrected */
    bool nft_applied; /* the nft table was (re)written */
    int skipped;      /* segments not realised (none since vlan mode is realised) */
    int vlan_set;     /* VLANs put on a tap or an uplink */
    int vlan_removed; /* VLANs taken off a tap */
    int cut_off;      /* taps detached from a trunk that cannot filter VLANs */
};

/* Realises the plan on this node's network stack (see above). Stops at the first command
 * that fails (MU_EIO naming it and its stderr); what was done stays done and the next pass
 * continues from there. A plan without a local address changes nothing. */
int mu_net_apply(const struct mu_net_plan *p, struct mu_net_apply_stats *ret, struct mu_err *err);

/* The VLAN id a port of trunk bridge `trunk` must carry, given the port's MAC as the kernel
 * prints it: the segment whose plan MACs hold it, or hold it with the first byte 0xfe (a
 * libvirt tap); 0: none (the port gets no VLAN). Pure. */
int64_t mu_net_vlan_of_port(const struct mu_net_plan *p, const char *trunk, const char *port_mac);

/* Runs argv[0] (an absolute path) with argv, no shell, stdin from in (may be NULL), stdout
 * captured into *ret_out (may be NULL: discarded; caller frees) up to 1 MiB. Returns the exit
 * status (0..255), or MU_EIO when it could not run (err set). stderr goes to err on failure. */
int mu_net_run(const char *const argv[], const char *in, char **ret_out, struct mu_err *err);

#endif
