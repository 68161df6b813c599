/* The agent's configuration: defaults, a JSON file (--config) and command-line flags that
 * override it, checked once at start. Keys of the file:
 *
 *   {"controller_url": "https://ctl.example:8443",  base URL of mutualisd (https only)
 *    "node_name": "node-1",                         = the certificate's CN
 *    "cert": "/etc/mutualis-agent/agent.pem", "key": ".../agent.key",
 *    "ca": ".../ca.pem",                            the controller's CA, and only it
 *    "libvirt_uri": "qemu:///system", "interval_s": 10,
 *    "spool_dir": "/var/lib/mutualis-agent/spool", "spool_max_reports": 8640,
 *    "log_level": "info",
 *    "renew_before_days": 30}                       renew the certificate this close to its
 *                                                   expiry (0: never; certs.h)
 *
 * Unknown keys are refused, so that a typo never silently does nothing. */
#ifndef MU_AGENT_CONFIG_H
#define MU_AGENT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"

#define MU_AGENT_DEFAULT_URI       "qemu:///system"
#define MU_AGENT_DEFAULT_SPOOL     "/var/lib/mutualis-agent/spool"
#define MU_AGENT_DEFAULT_INTERVAL  10
#define MU_AGENT_INTERVAL_MAX      3600
#define MU_AGENT_DEFAULT_SPOOL_MAX 8640 /* 24 h at the default interval */
#define MU_AGENT_SPOOL_MIN         4
#define MU_AGENT_SPOOL_MAX         1000000
#define MU_AGENT_CONFIG_MAX_BYTES  65536
#define MU_AGENT_PATH_MAX          1024

/* Owned strings (NULL when unset); freed by mu_agent_config_clear. */
struct mu_agent_config {
    char *controller_url;
    char *node_name;
    char *cert, *key, *ca;
    char *libvirt_uri;
    int64_t interval_s;
    char *spool_dir;
    int64_t spool_max_reports;
    int log_level; /* enum mu_log_level */
    int64_t renew_before_days;
};

enum mu_agent_action { MU_AGENT_RUN, MU_AGENT_ONCE, MU_AGENT_VERSION, MU_AGENT_HELP };

/* Command-line flags: strings borrowed from argv, NULL / -1 when not given. */
struct mu_agent_args {
    enum mu_agent_action action;
    const char *config;
    const char *controller_url, *node_name, *cert, *key, *ca, *libvirt_uri, *spool_dir;
    const char *log_level;
    int64_t interval_s;
    int64_t renew_before_days; /* -1 when not given */
};

/* Sets the defaults (no node name, no controller, no credentials). */
void mu_agent_config_init(struct mu_agent_config *c);
void mu_agent_config_clear(struct mu_agent_config *c);

/* Reads the JSON file at path over *c: keys present replace the values in c. 0, or
 * MU_EINVAL / MU_EIO with err naming the file and the key. */
int mu_agent_config_load(struct mu_agent_config *c, const char *path, struct mu_err *err);

/* Parses argv (getopt_long; argv is not modified). 0 with *ret filled, or MU_EINVAL with
 * err (unknown flag, missing or bad value). */
int mu_agent_args_parse(int argc, char *const *argv, struct mu_agent_args *ret, struct mu_err *err);

/* Applies the flags that were given over *c. MU_EINVAL for a bad log level. */
int mu_agent_config_apply(struct mu_agent_config *c, const struct mu_agent_args *a,
                          struct mu_err *err);

/* Checks what the action needs: a node name always (the host name, lower-cased, if it is a
 * valid one and none was given), and for MU_AGENT_RUN an https controller URL,
 * certificate, key, CA and spool directory. 0 or MU_EINVAL naming the setting. */
int mu_agent_config_check(struct mu_agent_config *c, enum mu_agent_action action,
                          struct mu_err *err);

/* The usage text for --help. */
const char *mu_agent_usage(void);

#endif
