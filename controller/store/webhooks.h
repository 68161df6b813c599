/* Webhooks in the store (migration 8): one per tenant, the queue of deliveries the
 * dispatcher (notify/) works through, and a record of every attempt. Same rules as store.h:
 * settings changes are audited in their transaction; the dispatcher's bookkeeping (queueing
 * and attempt outcomes) is not audited (it is recorded in webhook_attempts).
 *
 * The queue: a webhook's cursor is the last event id it has queued. mu_store_webhook_enqueue
 * turns the events after each enabled webhook's cursor that concern its tenant's subtree and
 * match its type prefixes into pending deliveries, and moves the cursor, in one transaction:
 * an event is queued exactly once and never skipped. A delivery stays pending until an
 * attempt succeeds ("delivered") or its deadline passes ("failed"). A new webhook starts at
 * the current end of the feed; a disabled one keeps its cursor and catches up when enabled
 * again. */
#ifndef MU_STORE_WEBHOOKS_H
#define MU_STORE_WEBHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/events.h"
#include "store/store.h"

struct mu_webhook {
    int64_t id;
    int64_t tenant_id;
    char *url;
    bool enabled;
    char *types_json; /* JSON array of type prefixes; "[]": every type */
    int64_t cursor;   /* last event id queued */
    int64_t secret_ms, created_ms, updated_ms;
    /* Delivery status. */
    int64_t consecutive_failures; /* failed attempts since the last success */
    int64_t delivered, failed;    /* deliveries delivered, given up */
    int64_t pending;              /* deliveries still to be made */
    int64_t last_event_id, last_attempt_ms, last_http_status;
    char *last_outcome; /* "delivered", "retry", "failed", or NULL before any attempt */
    char *last_error;
};
void mu_webhook_clear(struct mu_webhook *w);

/* The tenant's webhook (without its secret); MU_ENOTFOUND when it has none. */
int mu_store_webhook_get(struct mu_store *st, int64_t tenant_id, struct mu_webhook *ret,
                         struct mu_err *err);

/* What PUT sets. secret: a new secret (required when the tenant has no webhook yet), NULL
 * to keep the current one. */
struct mu_webhook_set {
    int64_t tenant_id;
    const char *url;
    bool enabled;
    const char *types_json;
    const char *secret;
};
/* Creates or replaces the tenant's webhook settings (audited). ret_created (may be NULL)
 * tells which. MU_ENOTFOUND for an unknown tenant, MU_EINVAL for a first PUT without a
 * secret. */
int mu_store_webhook_put(struct mu_store *st, const struct mu_webhook_set *set,
                         const struct mu_audit_rec *audit, bool *ret_created, struct mu_err *err);
/* Removes the tenant's webhook with its queue and records (audited); MU_ENOTFOUND if none. */
int mu_store_webhook_delete(struct mu_store *st, int64_t tenant_id,
                            const struct mu_audit_rec *audit, struct mu_err *err);

/* ---- the dispatcher's side ---------------------------------------------------------------- */

/* Queues, for every enabled webhook, the matching events after its cursor (at most
 * max_per_hook per call; the rest on the next call) as deliveries due now with a deadline
 * now + give_up_ms. *ret_queued (may be NULL): how many. */
int mu_store_webhook_enqueue(struct mu_store *st, int64_t now, int64_t give_up_ms,
                             size_t max_per_hook, size_t *ret_queued, struct mu_err *err);

/* A due delivery with everything needed to make it. */
struct mu_webhook_job {
    int64_t delivery_id;
    int64_t webhook_id;
    int64_t tenant_id;
    char *url;
    char *secret;
    int64_t attempts; /* made so far */
    int64_t deadline_ms;
    struct mu_event event;
};
void mu_webhook_jobs_free(struct mu_webhook_job *j, size_t n);
/* Pending deliveries of enabled webhooks with next_ms <= now, by webhook then event id
 * (at most max). */
int mu_store_webhook_due(struct mu_store *st, int64_t now, size_t max, struct mu_webhook_job **ret,
                         size_t *ret_n, struct mu_err *err);
/* The earliest next_ms of a pending delivery of an enabled webhook (0: none). */
int mu_store_webhook_next_due(struct mu_store *st, int64_t *ret_ms, struct mu_err *err);

/* The outcome of one attempt. */
enum mu_webhook_outcome {
    MU_WEBHOOK_DELIVERED, /* a 2xx answer */
    MU_WEBHOOK_RETRY,     /* failed; tried again at next_ms */
    MU_WEBHOOK_FAILED,    /* failed past the deadline: given up */
};
struct mu_webhook_attempt {
    int64_t delivery_id;
    int64_t at_ms, duration_ms;
    enum mu_webhook_outcome outcome;
    int64_t http_status; /* 0: no answer */
    const char *error;   /* NULL when delivered */
    int64_t next_ms;     /* MU_WEBHOOK_RETRY */
};
/* Records an attempt: the attempt row, the delivery's state, the webhook's status. A
 * delivery that no longer exists (webhook deleted meanwhile) is not an error. */
int mu_store_webhook_record(struct mu_store *st, const struct mu_webhook_attempt *a,
                            struct mu_err *err);

/* One attempt, as recorded (for tests and the status view). */
struct mu_webhook_attempt_row {
    int64_t id, delivery_id, event_id, at_ms, duration_ms, http_status;
    char *outcome, *error;
};
void mu_webhook_attempt_rows_free(struct mu_webhook_attempt_row *r, size_t n);
/* The latest attempts of the tenant's webhook, newest first (at most max). */
int mu_store_webhook_attempts(struct mu_store *st, int64_t tenant_id, size_t max,
                              struct mu_webhook_attempt_row **ret, size_t *ret_n,
                              struct mu_err *err);

/* Deletes attempts and finished deliveries older than before_ms. */
int mu_store_webhook_prune(struct mu_store *st, int64_t before_ms, struct mu_err *err);

/* What identifies a node's addresses for the webhook rules: its libvirt URI, and its
 * underlay address when the schema has one (a nodes column whose name starts with
 * "underlay"; NULL otherwise). */
struct mu_node_addr_ref {
    int64_t node_id;
    char *name;
    char *uri;
    char *underlay;
};
int mu_store_node_addr_refs(struct mu_store *st, struct mu_node_addr_ref **ret, size_t *ret_n,
                            struct mu_err *err);
void mu_node_addr_refs_free(struct mu_node_addr_ref *r, size_t n);

#endif
