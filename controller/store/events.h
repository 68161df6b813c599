/* The event feed: one row per thing a tenant (or the operators, on the root tenant) should
 * hear about — a request approved, a VM ready, an alert firing. Read by GET /v1/events and
 * by the webhook dispatcher, which walks the feed by id. Events are appended in the same
 * transaction as the change they describe (st_event_append_tx in store_int.h). */
#ifndef MU_STORE_EVENTS_H
#define MU_STORE_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"

struct mu_store;

struct mu_event {
    int64_t id;
    int64_t at_ms;
    int64_t tenant_id;
    char *type;    /* dotted lower-case: "request.approved", "vm.ready", "alert.firing" */
    char *subject; /* "request/12", "vm/7", "alert/node_down/node-3" */
    char *data;    /* a JSON object (text) */
};
void mu_event_clear(struct mu_event *e);
void mu_events_free(struct mu_event *e, size_t n);

/* Appends an event in its own transaction. tenant_id must exist (MU_ENOTFOUND otherwise);
 * data_json must be a JSON object text (NULL means {}); type and subject are copied as
 * given (callers pass constants and ids). ret_id may be NULL. */
int mu_store_event_append(struct mu_store *st, int64_t tenant_id, const char *type,
                          const char *subject, const char *data_json, int64_t *ret_id,
                          struct mu_err *err);

struct mu_event_filter {
    int64_t tenant_id;       /* > 0: this tenant and its subtree; 0: every tenant */
    int64_t after_id;        /* only ids > after_id */
    const char *type_prefix; /* NULL or e.g. "request." */
    size_t limit;            /* 0: 100; at most 1000 */
};
/* Events in id order. */
int mu_store_event_list(struct mu_store *st, const struct mu_event_filter *f, struct mu_event **ret,
                        size_t *ret_n, struct mu_err *err);

#endif
