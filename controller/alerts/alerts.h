/* alerts/: what the operators must hear about, decided from the store and the capacity
 * code, recorded in the store (store/alerts.h: row, audit entry and root-tenant event per
 * transition, in one transaction; the webhook dispatcher delivers the events).
 *
 * Three parts:
 *  - the policy (policies/alerts.json), parsed strictly with file, line and column in
 *    errors; reloaded with the other policies on SIGHUP, all or nothing;
 *  - the evaluator: a pure step function from the conditions seen now, the previous
 *    alert states and now_ms to the next states and the transitions (fire, resolve), with
 *    hold times against flapping: a condition must hold for_s before its alert fires (a
 *    condition that clears before that starts from zero next time), and a firing alert
 *    must be clear resolve_after_s before it resolves (a condition back meanwhile keeps it
 *    firing, with no transition);
 *  - the monitor: a thread that gathers the conditions every interval, steps, and records
 *    the transitions. Pending holds live in memory only; firing alerts are read back from
 *    the store at start.
 *
 * Rules and their subjects:
 *   node_down          a node's health is down (not in maintenance)       subject: node name
 *   allocation_high    cluster allocation of a resource > threshold_percent of the
 *                      allocatable capacity (every node, placement policy's ratios)
 *                                                          subject: vcpus | ram_mib | disk_gib
 *   n_plus_1_lost      the background N+1 check says some node's VMs would not fit elsewhere
 *                                                                          subject: cluster
 *   tenant_quota_high  a tenant's subtree allocation > threshold_percent of its effective
 *                      quota on any resource                          subject: tenant-<id>
 *   reports_late       an agent-managed node (health up or unknown, not in maintenance)
 *                      whose last report is older than late_s          subject: node name
 *   cert_expiring      a node's current client certificate expires within days
 *                                                                      subject: node name
 *   operations_failing at least count operations failed within window_s  subject: cluster
 */
#ifndef MU_ALERTS_H
#define MU_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "sched/sched.h"
#include "store/alerts.h"
#include "store/provision.h"

/* ---- policy (policies/alerts.json) -------------------------------------------------- */

enum mu_alert_rule_id {
    MU_ALERT_NODE_DOWN = 0,
    MU_ALERT_ALLOCATION_HIGH,
    MU_ALERT_N_PLUS_1_LOST,
    MU_ALERT_TENANT_QUOTA_HIGH,
    MU_ALERT_REPORTS_LATE,
    MU_ALERT_CERT_EXPIRING,
    MU_ALERT_OPERATIONS_FAILING,
    MU_ALERT_RULES /* how many */
};

enum mu_alert_severity { MU_ALERT_INFO = 0, MU_ALERT_WARNING, MU_ALERT_CRITICAL };

struct mu_alert_rule {
    bool enabled;
    enum mu_alert_severity severity;
    int64_t for_ms;           /* "for_s": the condition holds this long before firing */
    int64_t resolve_after_ms; /* "resolve_after_s": clear this long before resolving */
    /* The rule's own thresholds (0 where the rule has none): threshold_percent of
     * allocation_high and tenant_quota_high (1..100), late_s of reports_late (in ms here),
     * days of cert_expiring, count and window_s (in ms here) of operations_failing. */
    int64_t percent;
    int64_t late_ms;
    int64_t days;
    int64_t count;
    int64_t window_ms;
};

struct mu_alert_policy {
    struct mu_alert_rule rules[MU_ALERT_RULES];
};

/* "node_down", ... (NULL out of range) and back (-1 if unknown). */
const char *mu_alert_rule_name(int rule);
int mu_alert_rule_from_name(const char *name);
const char *mu_alert_severity_name(enum mu_alert_severity s);

/* The defaults (what the shipped policies/alerts.json says): every rule enabled;
 * node_down critical for 60 s, resolve after 60 s; allocation_high warning above 85 %
 * for 600 s / 600 s; n_plus_1_lost critical 300 s / 300 s; tenant_quota_high warning
 * above 90 % 600 s / 600 s; reports_late warning past 25 s, 0 s / 60 s; cert_expiring
 * warning within 14 days, 0 / 0; operations_failing warning at 5 within 900 s, 0 / 600 s. */
void mu_alert_policy_defaults(struct mu_alert_policy *ret);

/* Parses len bytes of JSON: {"version": 1, "rules": {"<rule>": {"enabled", "severity",
 * "for_s", "resolve_after_s", and the rule's thresholds}}}. A rule or key left out keeps
 * its default; unknown rules and keys, wrong types and values out of range are refused
 * with MU_EINVAL and err naming origin, line and column. Writes *ret on success only. */
int mu_alert_policy_parse(const char *buf, size_t len, const char *origin,
                          struct mu_alert_policy *ret, struct mu_err *err);
/* Reads and parses the file at path into a new policy (caller frees with free()). */
int mu_alert_policy_load(const char *path, struct mu_alert_policy **ret, struct mu_err *err);

/* ---- evaluator (pure) ----------------------------------------------------------------- */

#define MU_ALERT_SUBJECT_MAX 65
#define MU_ALERT_DETAIL_MAX  320

/* A condition seen now: rule on subject is true. */
struct mu_alert_cond {
    int rule;
    char subject[MU_ALERT_SUBJECT_MAX];
    char detail[MU_ALERT_DETAIL_MAX];
};

enum mu_alert_phase {
    MU_ALERT_PENDING = 0, /* condition true since pending_ms, not fired yet */
    MU_ALERT_FIRING,      /* fired at since_ms, condition still true */
    MU_ALERT_CLEARING,    /* fired, condition clear since clear_ms */
};

/* What the evaluator remembers of one (rule, subject). */
struct mu_alert_track {
    int rule;
    char subject[MU_ALERT_SUBJECT_MAX];
    char detail[MU_ALERT_DETAIL_MAX]; /* the last seen (firing: the latest true one) */
    enum mu_alert_phase phase;
    int64_t pending_ms, since_ms, clear_ms;
    int64_t id; /* the store row of a fired alert (0 until recorded) */
};

enum mu_alert_change { MU_ALERT_FIRE = 0, MU_ALERT_RESOLVE };

struct mu_alert_transition {
    enum mu_alert_change change;
    struct mu_alert_track track; /* FIRE: as it is in next (phase FIRING, since_ms now);
                                    RESOLVE: as it was, with detail saying why */
    size_t next_index;           /* FIRE: its index in *ret_next */
};

/* One evaluation at now_ms. conds: the conditions true now (any order; a duplicate
 * (rule, subject) counts once). known[rule] false (known may be NULL: all known) means the
 * rule's conditions could not be gathered this time: its tracks stay as they are. prev:
 * the previous states. Writes the next states (sorted by rule, then subject) and the
 * transitions; the caller frees both arrays. Fires at the first step where a condition
 * has held for_ms (at once when for_ms is 0); resolves at the first step where a firing
 * alert has been clear resolve_after_ms (at once when 0), or at once when its rule is
 * disabled. */
void mu_alert_step(const struct mu_alert_policy *policy, const struct mu_alert_cond *conds,
                   size_t nconds, const bool *known, const struct mu_alert_track *prev,
                   size_t nprev, int64_t now_ms, struct mu_alert_track **ret_next,
                   size_t *ret_nnext, struct mu_alert_transition **ret_tr, size_t *ret_ntr);

/* ---- monitor (the thread) ---------------------------------------------------------- */

/* What the monitor reads under the lock that guards the policies (called from inside
 * mu_alerts_opts.with_policies). */
typedef void (*mu_alerts_policies_fn)(void *arg, const struct mu_alert_policy *alerts,
                                      const struct mu_sched_policy *placement,
                                      const struct mu_quota_defaults *quota_defaults);

struct mu_alerts_opts {
    struct mu_store *store;
    int64_t interval_ms; /* between passes (<= 0: 10000) */
    /* Calls fn(arg, ...) with the policies in force, under their lock. Required. */
    void (*with_policies)(void *ctx, mu_alerts_policies_fn fn, void *arg);
    /* The N+1 verdict: 1 with *ret_ok and summary written, 0 when not computed yet.
     * May be NULL (n_plus_1_lost never known). */
    int (*n_plus_1)(void *ctx, bool *ret_ok, char *summary, size_t summary_len);
    void *ctx;
    bool no_thread; /* tests: no thread, passes only through mu_alerts_pass */
};

struct mu_alerts;
/* Reads the firing alerts back from the store, then starts the thread. NULL with err set. */
struct mu_alerts *mu_alerts_start(const struct mu_alerts_opts *opts, struct mu_err *err);
/* Stops and joins the thread. NULL is accepted. */
void mu_alerts_stop(struct mu_alerts *a);

/* One pass at now_ms (the thread's; exposed for tests): gathers, steps, records. Returns
 * the number of transitions recorded, or a negative code with err set (a transition that
 * could not be recorded is tried again at the next pass). */
int mu_alerts_pass(struct mu_alerts *a, int64_t now_ms, struct mu_err *err);

#endif
