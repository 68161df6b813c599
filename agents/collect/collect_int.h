/* collect/ internals shared with its unit tests (they see libvirt types). */
#ifndef MU_AGENT_COLLECT_INT_H
#define MU_AGENT_COLLECT_INT_H

#include <libvirt/libvirt.h>

#include "collect/collect.h"

/* Which figures a stats record carried. */
enum {
    MU_STAT_STATE = 1 << 0,
    MU_STAT_CPU = 1 << 1,
    MU_STAT_BALLOON = 1 << 2,
    MU_STAT_RSS = 1 << 3,
    MU_STAT_VCPUS = 1 << 4,
    MU_STAT_NET = 1 << 5,
    MU_STAT_BLOCK = 1 << 6,
};

/* Fills d's figures from one virConnectGetAllDomainStats record (state.state, cpu.time,
 * balloon.current, balloon.rss, vcpu.current, net.N.rx/tx.bytes, block.N.physical (else
 * block.N.allocation) and block.N.capacity, summed over devices and capped at the wire
 * format's bounds). Returns the MU_STAT_* mask of what was found. */
unsigned mu_collect_domain_from_params(const virTypedParameter *params, int n,
                                       struct mu_report_domain *d);

/* The wire format's name of a libvirt domain state (VIR_DOMAIN_*). */
const char *mu_collect_state_name(int state);

#endif
