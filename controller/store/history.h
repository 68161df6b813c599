/* Allocation history for the capacity forecast: the cluster's daily peaks of allocated
 * vCPUs, memory and disk, replayed from the VM lifecycle events (vm_events: created,
 * resized, started, stopped, deleted, each with the VM's allocation after it; kept after
 * the VM row is purged). A VM's allocation counts from its "created" event to its
 * "deleted" one, exactly as the node and tenant counters do.
 *
 * Days are UTC days. "now" is always given by the caller, so that tests choose the clock:
 * events after now_ms are ignored. */
#ifndef MU_STORE_HISTORY_H
#define MU_STORE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"

struct mu_store;

#define MU_DAY_MS ((int64_t)86400000)

struct mu_alloc_day {
    int64_t day_ms; /* start of the UTC day */
    int64_t peak_vcpus, peak_ram_mib, peak_disk_gib;
};

/* For each UTC day of the last `days` (1..3650) up to and including now_ms's day, the
 * highest allocation the cluster held during that day (the allocation at the day's start
 * counts), each resource peaking on its own. Days before the first event ever recorded are
 * left out (no history is not zero history), so *ret_n may be less than days, and 0 on an
 * empty store. Oldest day first. Caller frees *ret. */
int mu_store_alloc_history(struct mu_store *st, int64_t now_ms, int days, struct mu_alloc_day **ret,
                           size_t *ret_n, struct mu_err *err);

/* The highest vm_events id (0: none): a cheap fingerprint of the history, for caches. */
int64_t mu_store_vm_events_max_id(struct mu_store *st);

#endif
