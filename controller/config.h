/* mutualisd configuration: defaults that work from a checkout, then an optional JSON file
 * (--config), then command-line flags, each overriding the previous. */
#ifndef MU_CONFIG_H
#define MU_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"

struct mu_config {
    char *listen_host;   /* "127.0.0.1" */
    unsigned port;       /* 8443; 0 picks a free port (tests) */
    char *data_dir;      /* "./var" */
    char *policies_dir;  /* "./policies" */
    char *log_level;     /* "info" */
    char **server_names; /* extra certificate names, NULL-terminated */
    char *port_file;     /* if set, the bound port is written there (tests) */
    unsigned threads;    /* HTTP thread pool (default: 2 x CPUs, at least 2) */
    unsigned conn_timeout_s;
    unsigned conn_limit;
    size_t body_max;
    size_t import_body_max;
    unsigned flush_interval_s;     /* token last-use flush and audit head logging (60) */
    size_t upload_max;             /* streamed image uploads (64 GiB) */
    unsigned stop_timeout_s;       /* ACPI shutdown grace before a forced stop (60) */
    unsigned op_timeout_s;         /* an operation's deadline (900) */
    unsigned reconcile_interval_s; /* (30) */
    char *orphan_policy;           /* "remove" or "quarantine" */
    unsigned recount_interval_s;   /* usage counters checked against the VMs (600) */
    unsigned report_interval_s;    /* the agents' report interval: 3 missed → down (10) */
    unsigned capacity_interval_s;  /* how often the N+1 inputs are checked for changes (5) */
    char **metrics_allow;          /* addresses that read /metrics without a token, NULL-ended
                                      (NULL: token only) */
    int64_t *metrics_tenants;      /* tenants with per-tenant series in /metrics (none) */
    size_t n_metrics_tenants;
    int64_t alerts_interval_ms; /* between two passes of the alert monitor (10000) */

    /* Webhooks (notify/notify.h). */
    char **webhook_allow;          /* CIDR blocks webhooks may reach whatever their address
                                      class (loopback, private, nodes...), NULL-ended (none) */
    char *webhook_ca_file;         /* extra CA (PEM) trusted for webhook receivers (NULL) */
    int64_t webhook_retry_base_ms; /* first webhook retry delay, then x6 each time (5000) */
    int64_t webhook_give_up_ms;    /* a delivery failing this long is given up (24 h) */
};

/* Fills cfg. Returns 0, 1 if --help/--version was printed (exit 0), or MU_EINVAL with a
 * one-line detail. */
int mu_config_load(int argc, char **argv, struct mu_config *cfg, struct mu_err *err);
void mu_config_clear(struct mu_config *cfg);

#endif
