/* The on-disk spool of reports not yet acknowledged by the controller.
 *
 * One directory, one file per record ("r-<seq, 20 digits>.json", the exact text sent),
 * written atomically and fsynced, and "state.json" ({"epoch", "last_seq"}) written the
 * same way after each new record. The records in the spool always cover one contiguous
 * range of sequence numbers, head..tail; only head and tail are kept in memory, so the
 * spool costs no memory whatever its size.
 *
 * - The epoch is random when a spool is created; a spool that survives a restart keeps its
 *   epoch and carries on with its sequence (also when state.json was lost but records
 *   remain: they carry both).
 * - When the spool is full, the oldest record and the one after it are replaced by one gap
 *   record (seq = the second one's, gap_from..gap_to = what it stands for): the spool keeps
 *   its size, the controller is told what it will never get, and the sequence has no hole.
 *   A gap at the head absorbs the next record when the spool is full again.
 * - A record that cannot be read back (corrupt, missing, another epoch) is replaced the
 *   same way when it reaches the head: never silence, never a hole that would block acks.
 * - Each record is parsed (mu_report_parse) before it is written and before it is handed
 *   out, so that the spool never holds or sends what the controller would refuse.
 *
 * Functions return 0 or a negative MU_E* code with err filled; none logs above debug. */
#ifndef MU_AGENT_SPOOL_H
#define MU_AGENT_SPOOL_H

#include <stdint.h>

#include "mutualis/err.h"
#include "mutualis/report.h"

struct mu_spool;

/* What happened to records that the controller will never receive as sent. */
struct mu_spool_stats {
    int64_t dropped; /* telemetry records folded into gap records because the spool was full */
    int64_t corrupt; /* records found unreadable and replaced by a gap */
    int64_t rewinds; /* acks behind the spool (a controller that lost data), answered by a gap */
};

/* Opens (creating it, mode 0700) the spool in dir for node, holding at most max_records
 * (>= 4) records. The spool is locked (flock on dir/lock) until mu_spool_free: a second
 * agent on the same directory gets MU_EBUSY. */
struct mu_spool *mu_spool_open(const char *dir, const char *node, int64_t max_records,
                               struct mu_err *err);
void mu_spool_free(struct mu_spool *s);

const char *mu_spool_epoch(const struct mu_spool *s);
/* Records held (tail - head + 1), and their range (head > tail when empty). */
int64_t mu_spool_count(const struct mu_spool *s);
int64_t mu_spool_head(const struct mu_spool *s);
int64_t mu_spool_tail(const struct mu_spool *s);
/* The sequence number the next record will get. */
int64_t mu_spool_next_seq(const struct mu_spool *s);
void mu_spool_get_stats(const struct mu_spool *s, struct mu_spool_stats *ret);

/* Numbers r (sets r->node, r->epoch, r->seq; r->time_ms is the caller's) and writes it
 * durably, making room first if the spool is full. */
int mu_spool_append(struct mu_spool *s, struct mu_report *r, struct mu_err *err);

/* The oldest record: its text (caller frees) and sequence number. Returns 1 when the spool
 * is empty. Unreadable records at the head are replaced by a gap first. */
int mu_spool_peek(struct mu_spool *s, char **ret_text, size_t *ret_len, int64_t *ret_seq,
                  struct mu_err *err);

/* Applies the controller's answer: drops the records up to acked_seq. An answer for another
 * epoch is MU_ECONFLICT (nothing changes). An ack beyond what this spool ever numbered
 * moves the sequence past it; an ack behind the head is answered by a gap at the head. */
int mu_spool_ack(struct mu_spool *s, const char *epoch, int64_t acked_seq, struct mu_err *err);

/* Replaces the head record, which the controller refused as invalid and will never take,
 * by a gap standing for it (so that the stream goes on). A gap record at the head is not
 * dropped: MU_ECONFLICT. */
int mu_spool_drop_head(struct mu_spool *s, struct mu_err *err);

#endif
