/* Alerts in the store: one row per firing of a rule (policies/alerts.json) on a subject
 * ("node-3", "ram_mib", "tenant-12", "cluster"), from the moment it fires to the moment it
 * resolves; at most one firing row per (rule, subject). Each transition is one transaction
 * holding the row change, its audit entry (actor "mutualisd", action "alert.fire" or
 * "alert.resolve", target "alert/<rule>/<subject>") and an event on the root tenant
 * (the lowest-id tenant without a parent; no event when there is no tenant yet) of type
 * "alert.firing" or "alert.resolved", subject "alert/<rule>/<subject>", data {"rule",
 * "subject", "severity", "detail", "since", "resolved"} — the webhook dispatcher delivers
 * it. The evaluator (controller/alerts/) decides; this file only records.
 *
 * Also the few reads the evaluator gathers its conditions from that no other store file
 * offers: tenants with their allocation against their effective quota, and recent failed
 * operations. */
#ifndef MU_STORE_ALERTS_H
#define MU_STORE_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/provision.h"

struct mu_store;

struct mu_alert {
    int64_t id;
    char *rule;           /* node_down, allocation_high, ... (alerts/alerts.h) */
    char *subject;        /* [A-Za-z0-9._-]{1,64} */
    char *severity;       /* info, warning, critical */
    char *state;          /* firing, resolved */
    char *detail;         /* a sentence for a person */
    int64_t pending_ms;   /* when the condition was first seen (the hold started) */
    int64_t since_ms;     /* when it fired */
    int64_t resolved_ms;  /* when it resolved (0 while firing) */
    int64_t last_eval_ms; /* the evaluator's last pass that saw it */
};
void mu_alert_clear(struct mu_alert *a);
void mu_alerts_free(struct mu_alert *a, size_t n);

/* Records a firing: inserts a row (state firing, resolved_ms 0, last_eval_ms = since_ms)
 * from a's rule, subject, severity, detail, pending_ms and since_ms, with its audit entry
 * and event. MU_ECONFLICT if that rule and subject are already firing; MU_EINVAL for a
 * subject or rule outside the allow-list. *ret_id may be NULL. */
int mu_store_alert_fire(struct mu_store *st, const struct mu_alert *a, int64_t *ret_id,
                        struct mu_err *err);
/* Records a resolution of firing alert id at now_ms (detail: why, may be NULL to keep the
 * firing one), with its audit entry and event. MU_ENOTFOUND if id is not firing. */
int mu_store_alert_resolve(struct mu_store *st, int64_t id, int64_t now_ms, const char *detail,
                           struct mu_err *err);
/* An evaluation pass at now_ms: last_eval_ms of every firing row, and the detail of firing
 * alert ids[i] to details[i] where it changed (n may be 0). Not audited: an observation. */
int mu_store_alert_touch(struct mu_store *st, int64_t now_ms, const int64_t *ids,
                         const char *const *details, size_t n, struct mu_err *err);

struct mu_alert_filter {
    const char *state; /* "firing", "resolved", or NULL for both */
    int64_t after_id;  /* pagination by ascending id */
    int limit;         /* 1..1000; 0: no limit (internal callers) */
};
int mu_store_alert_list(struct mu_store *st, const struct mu_alert_filter *f, struct mu_alert **ret,
                        size_t *ret_n, struct mu_err *err);

/* A tenant whose subtree has any allocation, with its effective limits. */
struct mu_alert_tenant {
    int64_t id;
    char name[128];
    struct mu_limits limits; /* effective: explicit, else the defaults' */
    struct mu_usage usage;   /* the whole subtree's allocation */
};
/* Every tenant with a non-zero allocation, by id. defaults as for mu_store_quota_levels
 * (called while the caller holds whatever guards it). Caller frees *ret. */
int mu_store_alert_tenants(struct mu_store *st, const struct mu_quota_defaults *defaults,
                           struct mu_alert_tenant **ret, size_t *ret_n, struct mu_err *err);

/* Operations that failed (finished) at or after since_ms. */
int mu_store_alert_ops_failed(struct mu_store *st, int64_t since_ms, int64_t *ret_n,
                              struct mu_err *err);

#endif
