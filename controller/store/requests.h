/* Requests for hosted apps from the catalogue (catalog/catalog.h): a tenant files one, an
 * operator (or an EPCI's admin where the item allows it) approves or rejects it, approval
 * admits and provisions a VM, and the prober reports it ready or failed.
 *
 *   pending ──approve──▶ approved ──▶ provisioning ──▶ ready
 *      │                     │              └────────▶ failed (operation failed, deadline)
 *      ├──reject──▶ rejected └──▶ failed (admission refused: the quota level named)
 *      └──cancel──▶ cancelled
 *
 * Same rules as store.h: every change in one BEGIN IMMEDIATE transaction with its audit
 * entry and its event on the request's tenant (store/events.h): "request.created",
 * "request.approved", "request.rejected", "request.cancelled", "request.provisioning",
 * "request.ready", "request.failed", with data {"request_id", "item", "status", "reason",
 * "vm_id"}. A change from a status other than the expected one changes nothing and answers
 * MU_ECONFLICT naming the current status. */
#ifndef MU_STORE_REQUESTS_H
#define MU_STORE_REQUESTS_H

#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/store.h"

struct mu_request {
    int64_t id;
    int64_t tenant_id;
    char *tenant_name; /* read only (joined) */
    char *item;        /* catalogue item id */
    char *flavor;      /* flavor name */
    char *parameters;  /* JSON object text, as checked by the catalogue */
    char *justification;
    char *status;         /* pending, approved, rejected, cancelled, provisioning, ready, failed */
    char *reason;         /* the decider's reason or why it failed; NULL if none */
    int64_t vm_id, op_id; /* the VM and its create operation (0 before) */
    int probe_port;       /* the port the prober connects to (0 before provisioning) */
    int64_t ready_deadline_ms; /* provisioning must end before (0 before provisioning) */
    char *requested_by;
    char *decided_by; /* NULL while pending */
    int64_t created_ms, updated_ms;
};
void mu_request_clear(struct mu_request *r);
void mu_requests_free(struct mu_request *r, size_t n);

/* Inserts r as "pending" (status and ids ignored), with the audit entry and the
 * "request.created" event. */
int mu_store_request_insert(struct mu_store *st, const struct mu_request *r,
                            const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
/* MU_ENOTFOUND ("no request 12") if absent. */
int mu_store_request_get(struct mu_store *st, int64_t id, struct mu_request *ret,
                         struct mu_err *err);

struct mu_request_filter {
    int64_t scope_id;   /* 0: all; else requests of tenants in this subtree */
    int64_t tenant_id;  /* 0: any; else this tenant's subtree */
    const char *status; /* NULL: any */
    int64_t after_id;
    int limit; /* 1..1000; 0: no limit (the prober) */
};
/* By ascending id. */
int mu_store_request_list(struct mu_store *st, const struct mu_request_filter *f,
                          struct mu_request **ret, size_t *ret_n, struct mu_err *err);

/* A status change: from -> to, with what it records (NULL / 0: unchanged). */
struct mu_request_change {
    const char *from; /* the status the request must still have */
    const char *to;
    const char *reason;
    const char *decided_by;
    int64_t vm_id, op_id;
    int probe_port;
    int64_t ready_deadline_ms;
};
/* Applies c in one transaction with the audit entry (audit's target and tenant filled in
 * when empty) and the "request.<to>" event. MU_ECONFLICT ("request 12 is already
 * approved") when the status is no longer c->from; MU_ENOTFOUND if absent. */
int mu_store_request_change(struct mu_store *st, int64_t id, const struct mu_request_change *c,
                            const struct mu_audit_rec *audit, struct mu_err *err);

#endif
