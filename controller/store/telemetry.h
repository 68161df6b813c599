/* The store's side of node agents: client certificates and their revocation, report
 * sequencing per agent epoch, gap records, the last report per node and per VM, node
 * history, hourly rollups, node health and each tenant's actual use. Same rules as store.h:
 * every mutation in one BEGIN IMMEDIATE transaction, synced (synchronous=FULL) before it
 * returns.
 *
 * Sequencing. Each agent spool has a random epoch; reports are numbered 1, 2, 3… in it and
 * the store keeps, per (node, epoch), acked_seq: the highest contiguous sequence stored.
 *   - a report with seq == acked_seq + 1 is stored and becomes acked_seq;
 *   - a gap record (mutualis/report.h: it takes the place of the report after the range it
 *     stands for, gap_to == seq - 1) is in order when gap_from <= acked_seq + 1 <= seq: the
 *     part of its range not stored yet becomes a gap row, and seq becomes acked_seq;
 *   - seq <= acked_seq is a replay: acknowledged again, nothing changes;
 *   - anything else is out of order: refused, nothing changes, and expected_seq
 *     (acked_seq + 1) says what to send;
 *   - an epoch not seen before starts at acked_seq 0 (so at seq 1, or a gap from 1).
 * So every (epoch, seq) up to acked_seq is stored exactly once or covered by a gap row.
 *
 * Row budget (2,000 nodes, 100,000 VMs, a report every 10 s; sizes measured on SQLite 3.40):
 *   node_last 2,000 + vm_last 100,000 (~120 B each)               102,000 rows    ~12 MB
 *   node_history 2,000 × 8,640 buckets (10 s over 24 h, ~40 B)  17,280,000 rows  ~0.7-1 GB
 *   node_hourly 2,000 × 720 hours (30 days)                      1,440,000 rows   ~80 MB
 *   tenant_hourly ≤ tenants × 720 (e.g. 2,000 tenants)           1,440,000 rows   ~80 MB
 *   agent_epochs, node_certs, report_gaps: a few per node (30 days)
 * Writes: 200 reports/s, 10,000 VM rows/s, in batches (tests/bench/bench_ingest.py measured
 * ~8,000 reports of 20 VMs per second end to end on 2 cores). History and rollups are
 * pruned by mu_store_telemetry_prune. */
#ifndef MU_STORE_TELEMETRY_H
#define MU_STORE_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "mutualis/report.h"
#include "store/store.h"

#define MU_TELEMETRY_BUCKET_MS  ((int64_t)10 * 1000)
#define MU_TELEMETRY_HISTORY_MS ((int64_t)24 * 3600 * 1000)
#define MU_TELEMETRY_ROLLUP_MS  ((int64_t)30 * 24 * 3600 * 1000)
#define MU_TELEMETRY_SERIAL_MAX 41 /* hex serial + NUL */

/* ---- node certificates ------------------------------------------------------------- */

/* Records that the certificate with this serial (lower-case hex) belongs to node_id, valid
 * until not_after_ms. Idempotent: a known serial keeps its node and revocation. */
int mu_store_node_cert_record(struct mu_store *st, int64_t node_id, const char *serial,
                              int64_t not_after_ms, struct mu_err *err);
/* Whether a serial is revoked (one indexed read on the caller's read connection): 1 yes,
 * 0 no (including serials never recorded), or a negative code with err set. */
int mu_store_node_cert_revoked(struct mu_store *st, const char *serial, struct mu_err *err);
/* Revokes every certificate recorded for node_id (and the one its last enrolment
 * installed), audited. *ret_n (may be NULL): how many were revoked now. Deleting a node
 * (mu_store_node_delete) does the same in its own transaction. */
int mu_store_node_certs_revoke(struct mu_store *st, int64_t node_id,
                               const struct mu_audit_rec *audit, int64_t *ret_n,
                               struct mu_err *err);

struct mu_node_cert {
    char serial[MU_TELEMETRY_SERIAL_MAX];
    int64_t node_id;
    int64_t not_after_ms, created_ms, revoked_ms; /* revoked_ms 0: valid */
};
/* Certificates of node_id (0: all), newest first, at most limit (1..10000). Caller frees
 * *ret. */
int mu_store_node_cert_list(struct mu_store *st, int64_t node_id, int limit,
                            struct mu_node_cert **ret, size_t *ret_n, struct mu_err *err);

/* Records a certificate just issued to node_id (an agent's renewal) with its audit entry
 * (target "node/N" filled here), in one transaction. MU_ENOTFOUND if the node was deleted
 * meanwhile (nothing recorded: the certificate must not be handed out). */
int mu_store_node_cert_issue(struct mu_store *st, int64_t node_id, const char *serial,
                             int64_t not_after_ms, const struct mu_audit_rec *audit,
                             struct mu_err *err);

/* A node's current certificate: of its certificates not revoked, the one that expires
 * last (older ones stay valid until they expire, but a renewed node no longer uses them). */
struct mu_node_cert_current {
    struct mu_node_cert cert;
    char node[64]; /* the node's name */
};
/* node_id's current certificate, or MU_ENOTFOUND (no certificate, or all revoked). */
int mu_store_node_cert_current(struct mu_store *st, int64_t node_id,
                               struct mu_node_cert_current *ret, struct mu_err *err);
/* The current certificate of every existing node whose expiry is before before_ms, by node
 * id. Caller frees *ret. */
int mu_store_node_certs_expiring(struct mu_store *st, int64_t before_ms,
                                 struct mu_node_cert_current **ret, size_t *ret_n,
                                 struct mu_err *err);
/* Fires an alert about cert once: appends audit (target "node/N" and detail filled here
 * where audit leaves them empty) unless an entry of the same actor and action about this
 * node already has a detail starting with "certificate <serial> ". detail must start so.
 * *ret_fired (may be NULL): whether it was appended now. */
int mu_store_node_cert_alert(struct mu_store *st, const struct mu_node_cert *cert,
                             const char *detail, const struct mu_audit_rec *audit, bool *ret_fired,
                             struct mu_err *err);

/* ---- reports ------------------------------------------------------------------------ */

/* The node named name: its id, or MU_ENOTFOUND (err set). Read connection. */
int mu_store_node_id_by_name(struct mu_store *st, const char *name, int64_t *ret_id,
                             struct mu_err *err);

enum mu_report_outcome {
    MU_REPORT_STORED = 0,   /* stored; acked_seq is now its seq */
    MU_REPORT_REPLAY,       /* stored before: acknowledged again, nothing changed */
    MU_REPORT_OUT_OF_ORDER, /* refused, nothing changed: send expected_seq next */
    MU_REPORT_NO_NODE,      /* the node was deleted meanwhile: refused */
};

/* One report of a batch. */
struct mu_report_in {
    const struct mu_report *report; /* borrowed, parsed and checked (node name = cert CN) */
    int64_t node_id;
    const char *cert_serial; /* the client certificate it came with, recorded (may be NULL) */
    int64_t cert_not_after_ms;
    /* Filled by mu_store_reports_commit. */
    enum mu_report_outcome outcome;
    int64_t acked_seq;    /* the epoch's acked_seq after this report */
    int64_t expected_seq; /* MU_REPORT_OUT_OF_ORDER: acked_seq + 1 */
};

/* A VM whose observed state differs from what a stored report says, to be applied with
 * mu_store_vm_set_observed once the batch is committed. */
struct mu_observed_change {
    int64_t vm_id;
    int64_t node_id;
    char state[16]; /* running, shutoff, error, unknown */
    char error[64]; /* "" or why ("the domain crashed") */
};

/* What the report writer remembers of VMs between batches (identity, node, tenant, observed
 * state and last sample), so that a report's domains need no lookup of their VM rows. It
 * is dropped as soon as any other transaction changed anything (the writer connection's
 * change count moved), or a batch failed. About 90 bytes per slot (under 25 MB for 100,000
 * VMs), at most 2^20 VMs. One writer at a time; NULL works everywhere (no cache). */
struct mu_report_cache;
struct mu_report_cache *mu_report_cache_new(void);
void mu_report_cache_free(struct mu_report_cache *c);

/* Stores a batch of reports in ONE transaction, in array order (two reports of one epoch in
 * a batch are sequenced as if sent one after the other), then commits and syncs: nothing
 * is acknowledged before this returns 0. For each stored report: its epoch's acked_seq;
 * the node's last report, history bucket and hourly rollup; for each domain that is a VM
 * of this node (vm_id and uuid match, VM on this node), its last row and its tenant's
 * hourly rollup; the certificate's serial (new serials only); the node's last_report_ms
 * and, if it was not "up", health "up" since now_ms, audited with health_audit (target and
 * detail filled here; NULL: not audited). Replays and refusals change nothing.
 * *ret_changes (caller frees; may be NULL when not wanted) lists the VMs whose observed
 * state should change: only VMs without an unfinished operation, not being deleted, whose
 * observed state is older than the report. On failure (negative code, err set) nothing
 * was stored and the outcomes are meaningless. cache may be NULL. */
int mu_store_reports_commit(struct mu_store *st, struct mu_report_cache *cache,
                            struct mu_report_in *in, size_t n, int64_t now_ms,
                            const struct mu_audit_rec *health_audit,
                            struct mu_observed_change **ret_changes, size_t *ret_nchanges,
                            struct mu_err *err);

/* The epoch's acked_seq (0 when unknown) — for tests and tools. */
int mu_store_agent_acked(struct mu_store *st, int64_t node_id, const char *epoch,
                         int64_t *ret_acked, struct mu_err *err);

struct mu_report_gap {
    int64_t id, node_id;
    char epoch[MU_EPOCH_HEX_LEN + 1];
    int64_t seq, gap_from, gap_to, received_ms;
};
/* Gap rows of node_id (0: all), oldest first, at most limit (1..10000). Caller frees. */
int mu_store_report_gaps(struct mu_store *st, int64_t node_id, int limit,
                         struct mu_report_gap **ret, size_t *ret_n, struct mu_err *err);

/* The last report of a node (MU_ENOTFOUND before its first). */
struct mu_node_last {
    int64_t node_id;
    char epoch[MU_EPOCH_HEX_LEN + 1];
    int64_t seq, time_ms, received_ms;
    struct mu_report_host host;
    char *pools_json; /* [{"name":…,"capacity_gib":…,"allocation_gib":…,"available_gib":…}] */
    int64_t domains;
};
void mu_node_last_clear(struct mu_node_last *l);
int mu_store_node_last(struct mu_store *st, int64_t node_id, struct mu_node_last *ret,
                       struct mu_err *err);
/* Every node's last report, by node id, in one read (capacity views of thousands of
 * nodes). Nodes that never reported have no entry. Free with mu_node_lasts_free. */
int mu_store_node_last_all(struct mu_store *st, struct mu_node_last **ret, size_t *ret_n,
                           struct mu_err *err);
void mu_node_lasts_free(struct mu_node_last *l, size_t n);

/* The last sample of a VM (MU_ENOTFOUND before its first). */
struct mu_vm_last {
    int64_t vm_id, node_id;
    char uuid[37];
    char state[16];
    int64_t time_ms, received_ms;
    int64_t cpu_time_ns, vcpus, mem_balloon_kib, mem_rss_kib;
    int64_t disk_allocation_bytes, disk_capacity_bytes, net_rx_bytes, net_tx_bytes;
};
int mu_store_vm_last(struct mu_store *st, int64_t vm_id, struct mu_vm_last *ret,
                     struct mu_err *err);

/* Rows kept by each telemetry table (tests, the row budget, metrics). */
struct mu_telemetry_counts {
    int64_t node_last, vm_last, node_history, node_hourly, tenant_hourly;
    int64_t agent_epochs, report_gaps, node_certs;
};
int mu_store_telemetry_counts(struct mu_store *st, struct mu_telemetry_counts *ret,
                              struct mu_err *err);

/* Deletes node history older than now_ms - MU_TELEMETRY_HISTORY_MS, rollups, gap rows and
 * idle epochs older than now_ms - MU_TELEMETRY_ROLLUP_MS, and the last rows of purged VMs.
 * Runs in short transactions (the report writer waits at most one of them). *ret_deleted
 * (may be NULL): rows deleted. */
int mu_store_telemetry_prune(struct mu_store *st, int64_t now_ms, int64_t *ret_deleted,
                             struct mu_err *err);

/* ---- health ------------------------------------------------------------------------- */

/* Whether node agents decide this node's health: it is enrolled, or has ever reported.
 * (The libvirt probe of ops/ sets the health of the other nodes.) False on error. */
bool mu_store_node_agent_managed(struct mu_store *st, int64_t node_id);

struct mu_node_liveness {
    int64_t id;
    char name[64];
    char health[8];
    int64_t health_ms;      /* last change of health (0: never recorded) */
    int64_t last_report_ms; /* last stored report or gap (0: never) */
};
/* Every agent-managed node, by id. Caller frees *ret. */
int mu_store_node_liveness(struct mu_store *st, struct mu_node_liveness **ret, size_t *ret_n,
                           struct mu_err *err);

/* Sets a node's health to health (up, down, unknown) since at_ms, if it differs, audited
 * with audit (target "node/N" and detail "name: old -> new (why)" filled here; why may be
 * NULL). With expect_last_report_ms >= 0 the change happens only while the node's
 * last_report_ms still equals it (a report stored meanwhile wins). *ret_changed (may be
 * NULL) says whether anything changed. MU_ENOTFOUND if the node does not exist. */
int mu_store_node_health_set(struct mu_store *st, int64_t node_id, const char *health,
                             int64_t at_ms, int64_t expect_last_report_ms, const char *why,
                             const struct mu_audit_rec *audit, bool *ret_changed,
                             struct mu_err *err);

/* ---- actual use ---------------------------------------------------------------------- */

/* What a tenant's subtree really uses, summed over the last samples of its VMs. */
struct mu_actual_use {
    int64_t vms_reporting;    /* VMs with a last sample */
    int64_t mem_rss_kib;      /* resident memory */
    int64_t disk_alloc_bytes; /* allocated disk (thin images grow) */
    int64_t cpu_time_ns;      /* CPU time of the domains, as last reported */
    int64_t last_ms;          /* newest sample (0: none) */
};
/* One index range over the subtree's VMs (vms.tenant_path), joined with their last rows. */
int mu_store_tenant_actual(struct mu_store *st, int64_t tenant_id, struct mu_actual_use *ret,
                           struct mu_err *err);

#endif
