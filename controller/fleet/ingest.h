/* fleet/ingest: the one writer of agent reports. Request threads hand parsed reports to a
 * bounded queue; one thread takes up to batch_max of them at a time (waiting at most
 * linger_ms for a batch to fill), stores the batch in ONE transaction
 * (mu_store_reports_commit, synchronous=FULL) and only then completes each report's ticket:
 * no acknowledgement before its batch's commit was synced. Observed VM states the batch
 * revealed are applied afterwards (mu_store_vm_set_observed), outside the batch.
 *
 * Two ways to wait for a ticket: a callback (the HTTPS server suspends the connection and
 * resumes it from the callback, so that no server thread waits), or a condition variable
 * with a timeout (mu_ingest_submit_wait).
 *
 * Nothing here logs above debug, except the writer's own failures (warn). */
#ifndef MU_FLEET_INGEST_H
#define MU_FLEET_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "mutualis/report.h"
#include "store/store.h"

struct mu_ingest_opts {
    struct mu_store *store;
    unsigned batch_max;   /* reports per transaction (0: 256) */
    unsigned linger_ms;   /* the writer waits this long for a batch to fill (0: none) */
    unsigned queue_max;   /* reports queued at most; past it submit says MU_EBUSY (0: 8192) */
    unsigned wait_max_ms; /* a report queued this long is answered MU_EBUSY (0: 10000) */
};

struct mu_ingest;
/* Starts the writer thread. NULL with err set. */
struct mu_ingest *mu_ingest_start(const struct mu_ingest_opts *opts, struct mu_err *err);
/* Refuses new reports, finishes the batch under way, answers what is still queued with
 * MU_EBUSY (their callbacks run), and stops the thread. NULL is accepted. */
void mu_ingest_stop(struct mu_ingest *in);

/* Where a report came from. */
struct mu_ingest_src {
    int64_t node_id;
    const char *cert_serial; /* the client certificate's serial (lower-case hex), or NULL */
    int64_t cert_not_after_ms;
};

/* The result of a report. */
struct mu_ingest_ack {
    char epoch[MU_EPOCH_HEX_LEN + 1];
    int64_t acked_seq;    /* highest contiguous sequence stored for the epoch */
    int64_t expected_seq; /* out of order (MU_ECONFLICT): the sequence to send next */
    bool replay;          /* the report had been stored before: nothing changed */
};

struct mu_ingest_ticket;

/* Queues r for the writer. Takes r's contents (r is left empty; its arrays now belong to
 * the ticket). done(arg), if given, is called exactly once, from the writer thread (or from
 * mu_ingest_stop), once the ticket's result is final; it must not block. Returns the ticket
 * (give it back with mu_ingest_result once done was called) or NULL with err set:
 * MU_EBUSY when the queue is full or the writer stopping (r is then cleared). */
struct mu_ingest_ticket *mu_ingest_submit(struct mu_ingest *in, struct mu_report *r,
                                          const struct mu_ingest_src *src, void (*done)(void *),
                                          void *arg, struct mu_err *err);
/* The ticket's result (call it after done ran), and frees the ticket. MU_OK with *ret
 * (stored or replay); MU_ECONFLICT out of order ("expected sequence N", ret->expected_seq
 * and ret->acked_seq filled); MU_ENOTFOUND the node was deleted; MU_EBUSY not stored in
 * time or shutting down (resend); MU_EIO storage failure. */
int mu_ingest_result(struct mu_ingest_ticket *t, struct mu_ingest_ack *ret, struct mu_err *err);

/* Submit, then wait for the result on a condition variable, at most timeout_ms (then
 * MU_EBUSY: the report may still be stored; resending it is harmless, a replay). Same
 * results as mu_ingest_result. */
int mu_ingest_submit_wait(struct mu_ingest *in, struct mu_report *r,
                          const struct mu_ingest_src *src, int64_t timeout_ms,
                          struct mu_ingest_ack *ret, struct mu_err *err);

struct mu_ingest_stats {
    uint64_t stored, replays, refused, failed; /* reports, by outcome */
    uint64_t batches;                          /* transactions committed */
    uint64_t max_batch;                        /* largest batch */
    uint64_t queued;                           /* waiting now */
};
void mu_ingest_stats(struct mu_ingest *in, struct mu_ingest_stats *ret);

#endif
