/* collect/: what the agent measures on its node. The only agent code that sees libvirt;
 * it also reads /proc. Nothing here logs above debug or keeps memory between cycles beyond
 * the previous CPU sample and the libvirt connection.
 *
 *   host:    /proc/stat (CPU use between two samples), /proc/loadavg, /proc/meminfo
 *            (MemTotal, MemAvailable), /proc/uptime
 *   pools:   virStoragePoolGetInfo of each active pool
 *   domains: virConnectGetAllDomainStats (state, CPU, balloon, vCPUs, interfaces, block),
 *            and the VM id from the Mutualis metadata element
 *            (<mu:vm vm-id="…" tenant-id="…"> in https://mutualis.example/xmlns/libvirt/1);
 *            figures a driver does not give there come from virDomainGetInfo and
 *            virDomainMemoryStats when it has them. */
#ifndef MU_AGENT_COLLECT_H
#define MU_AGENT_COLLECT_H

#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "mutualis/report.h"

#define MU_COLLECT_NS "https://mutualis.example/xmlns/libvirt/1"

struct mu_collect_host {
    char proc_root[256]; /* "/proc", or a directory of fake files in tests */
    uint64_t prev_busy, prev_total;
    bool have_prev;
};

/* proc_root NULL means "/proc". */
void mu_collect_host_init(struct mu_collect_host *h, const char *proc_root);
/* Fills *ret. CPU use is measured since the previous call; the first call takes a second
 * sample 100 ms later. MU_EIO with err if a file cannot be read or parsed. */
int mu_collect_host_sample(struct mu_collect_host *h, struct mu_report_host *ret,
                           struct mu_err *err);

/* A read-only libvirt connection, opened on first use and again after it is lost. */
struct mu_collect_virt;
struct mu_collect_virt *mu_collect_virt_new(const char *uri);
void mu_collect_virt_free(struct mu_collect_virt *v);

/* Fills r->pools/npools and r->domains/ndomains (owned by r, freed by mu_report_clear),
 * replacing what was there. MU_EUNAVAIL with err when libvirt cannot be reached or fails:
 * a report without its domains would tell the controller they are gone. */
int mu_collect_virt_sample(struct mu_collect_virt *v, struct mu_report *r, struct mu_err *err);

/* One full report body: time, host, pools and domains (node, epoch and seq are the
 * caller's). 0, or the error of the part that failed. */
int mu_collect_report(struct mu_collect_host *h, struct mu_collect_virt *v, struct mu_report *r,
                      struct mu_err *err);

/* The VM id in our metadata element as virDomainGetMetadata returns it: the vm-id attribute
 * of the root element (named vm, with or without a prefix). 0, or -1 when absent or not
 * a positive integer. Exposed for the unit tests. */
int mu_collect_metadata_vm_id(const char *xml, int64_t *ret);

#endif
