/* The agent report wire format, shared by mutualis-agent (which writes it) and mutualisd
 * (which parses it, strictly, through mutualis/json.h). One report is one JSON object:
 *
 * {"version": 1,
 *  "node": "node-1",                      the node's name (= its certificate's CN)
 *  "epoch": "9f2c…" (32 hex),             random per agent spool: a reinstalled agent
 *                                         starts a new epoch instead of being refused
 *  "seq": 42,                             1, 2, 3… within the epoch
 *  "time": "2026-11-28T20:33:03.123Z",    when it was collected
 *  "kind": "report" | "gap",              a gap record stands for reports the agent had
 *  "gap_from": 10, "gap_to": 19,          to drop (spool full): never silence (gap only)
 *  "host": {"cpus": 8, "cpu_percent": 12.5, "load1": 0.4, "load5": …, "load15": …,
 *           "mem_total_mib": …, "mem_available_mib": …, "uptime_s": …},
 *  "pools": [{"name": "default", "capacity_gib": …, "allocation_gib": …,
 *             "available_gib": …}],
 *  "domains": [{"uuid": "…", "vm_id": 12 | null, "state": "running",
 *               "cpu_time_ns": …, "vcpus": 1, "mem_balloon_kib": …, "mem_rss_kib": …,
 *               "disk_allocation_bytes": …, "disk_capacity_bytes": …,
 *               "net_rx_bytes": …, "net_tx_bytes": …}]}
 *
 * A gap record carries no host, pools or domains. The controller acknowledges with
 * {"epoch": "…", "acked_seq": N}: the highest contiguous sequence it has durably stored
 * for that epoch; the agent drops spooled reports up to it.
 *
 * Reports are sent one at a time in sequence order, with no hole. The agent's gap records
 * always have gap_to = seq - 1 (a gap takes the place of the record after the dropped
 * range): a report is in order when seq = acked + 1, a gap when gap_from <= acked + 1 <=
 * seq (gap_from may be <= acked when the agent dropped reports the controller had stored
 * but whose ack was lost); either way acked becomes seq. An ack behind what the agent has
 * already dropped (a controller that lost data) is answered with a gap from acked + 1.
 *
 * A report (kind "report") must carry host, pools and domains (arrays may be empty);
 * vm_id may be absent or null. Counters (cpu_time_ns, *_bytes) may exceed 2^53: they are
 * exact integers up to 2^53 and rounded to the nearest double beyond (at most 2^62).
 * Printing writes integers exactly and doubles in their shortest exact form, so that
 * parse(print(r)) == r for every r that mu_report_parse accepted. */
#ifndef MU_REPORT_H
#define MU_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"

#define MU_REPORT_VERSION     1
#define MU_REPORT_MAX_BYTES   (4 << 20) /* a report larger than this is refused */
#define MU_REPORT_MAX_DOMAINS 4096
#define MU_REPORT_MAX_POOLS   64
#define MU_EPOCH_HEX_LEN      32

struct mu_report_host {
    int64_t cpus;
    double cpu_percent; /* 0..100 × cpus is not used: 0..100 of the whole host */
    double load1, load5, load15;
    int64_t mem_total_mib, mem_available_mib;
    int64_t uptime_s;
};

struct mu_report_pool {
    char name[64];
    int64_t capacity_gib, allocation_gib, available_gib;
};

struct mu_report_domain {
    char uuid[37];
    int64_t vm_id;  /* 0 when the domain carries no Mutualis metadata */
    char state[16]; /* running, shutoff, paused, shutdown, crashed, other */
    int64_t cpu_time_ns;
    int64_t vcpus;
    int64_t mem_balloon_kib, mem_rss_kib;
    int64_t disk_allocation_bytes, disk_capacity_bytes;
    int64_t net_rx_bytes, net_tx_bytes;
};

struct mu_report {
    char node[64];
    char epoch[MU_EPOCH_HEX_LEN + 1];
    int64_t seq;
    int64_t time_ms;
    bool gap;
    int64_t gap_from, gap_to; /* inclusive, when gap */
    struct mu_report_host host;
    struct mu_report_pool *pools;
    size_t npools;
    struct mu_report_domain *domains;
    size_t ndomains;
};

/* Parses and validates one report (strict JSON, every field typed and bounded, unknown
 * keys refused, names allow-listed). Fills *ret (arrays owned: mu_report_clear). */
int mu_report_parse(const char *buf, size_t len, struct mu_report *ret, struct mu_err *err);
void mu_report_clear(struct mu_report *r);
/* Serialises a report (caller frees). */
char *mu_report_print(const struct mu_report *r);

/* Whether s is an epoch: exactly MU_EPOCH_HEX_LEN lower-case hex digits. */
bool mu_report_epoch_valid(const char *s);
/* Parses the controller's answer {"epoch": "…", "acked_seq": N} (N >= 0; other keys are
 * ignored, so that the controller may add some). Writes ret_epoch (MU_EPOCH_HEX_LEN + 1
 * bytes) and *ret_acked_seq on success; MU_EINVAL with err otherwise. */
int mu_report_ack_parse(const char *buf, size_t len, char *ret_epoch, int64_t *ret_acked_seq,
                        struct mu_err *err);
/* Serialises an answer (caller frees). */
char *mu_report_ack_print(const char *epoch, int64_t acked_seq);
/* The optional "net_generation" of an ack (the node's network plan generation): 0 and *ret
 * when present and a non-negative integer, 1 when absent or unusable. */
int mu_report_ack_net_generation(const char *buf, size_t len, int64_t *ret);

#endif
