/* fleet/health: node health from agent reports. A node whose agent decides its health
 * (enrolled, or ever reported: mu_store_node_agent_managed) is "up" from its first stored
 * report (set by the report writer, in the batch that stores it), "down" after `missed`
 * report intervals without one (its VMs then observed "unknown"), and "unknown" right after
 * a controller start until it reports or `missed` intervals pass. Every transition is
 * recorded with its time (nodes.health_ms) and audited with actor "health". Health is a
 * field of its own: the operator's maintenance or drain is never touched, and nothing is
 * evacuated.
 *
 * The same thread prunes telemetry past its retention (mu_store_telemetry_prune), and once
 * per interval looks for node certificates close to expiry: each node's current
 * certificate (mu_store_node_cert_current) within MU_CERT_ALERT_DAYS of its expiry fires
 * one alert, once per certificate across restarts: a warn log line "alert
 * certificate-expiring node=… serial=… not_after=… days_left=…" and an audit entry (actor
 * "alerts", action "alert.fire", target "node/N", detail "certificate SERIAL expires in N
 * days"). A renewed node's superseded certificate alerts no more. */
#ifndef MU_FLEET_HEALTH_H
#define MU_FLEET_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/store.h"

struct mu_health_opts {
    struct mu_store *store;
    int64_t interval_ms;    /* the agents' report interval (0: 10000) */
    unsigned missed;        /* intervals without a report before "down" (0: 3) */
    int64_t prune_every_ms; /* telemetry pruning period (0: 300000; < 0: never) */
};

struct mu_health;
/* Marks every agent-managed node "unknown" (the controller just started), then starts the
 * thread, which checks about four times per interval. NULL with err set. */
struct mu_health *mu_health_start(const struct mu_health_opts *opts, struct mu_err *err);
void mu_health_stop(struct mu_health *h); /* NULL is accepted */

/* One pass at now_ms (the thread's, exposed for tests): returns how many nodes went down,
 * or a negative code with err set. */
int mu_health_check(struct mu_health *h, int64_t now_ms, struct mu_err *err);

/* The certificate pass at now_ms (the thread's, exposed for tests): returns how many alerts
 * fired now, or a negative code with err set. */
int mu_health_check_certs(struct mu_health *h, int64_t now_ms, struct mu_err *err);

#define MU_CERT_ALERT_DAYS 14

/* Whole days left until not_after_ms (rounded down; negative once expired). */
int64_t mu_health_cert_days_left(int64_t not_after_ms, int64_t now_ms);
/* Whether a certificate expiring at not_after_ms is within MU_CERT_ALERT_DAYS at now_ms
 * (an expired one is too). */
bool mu_health_cert_expiring(int64_t not_after_ms, int64_t now_ms);

#endif
