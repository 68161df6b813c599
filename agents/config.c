/* The agent's configuration: defaults, JSON file, flags, and the checks before start. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "certs.h"
#include "mutualis/json.h"
#include "mutualis/log.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"

void mu_agent_config_init(struct mu_agent_config *c)
{
    memset(c, 0, sizeof *c);
    c->libvirt_uri = mu_xstrdup(MU_AGENT_DEFAULT_URI);
    c->interval_s = MU_AGENT_DEFAULT_INTERVAL;
    c->spool_dir = mu_xstrdup(MU_AGENT_DEFAULT_SPOOL);
    c->spool_max_reports = MU_AGENT_DEFAULT_SPOOL_MAX;
    c->log_level = MU_LOG_INFO;
    c->renew_before_days = MU_AGENT_RENEW_DEFAULT_DAYS;
}

void mu_agent_config_clear(struct mu_agent_config *c)
{
    if (!c)
        return;
    free(c->controller_url);
    free(c->node_name);
    free(c->cert);
    free(c->key);
    free(c->ca);
    free(c->libvirt_uri);
    free(c->spool_dir);
    memset(c, 0, sizeof *c);
}

static void set_str(char **slot, const char *val)
{
    free(*slot);
    *slot = mu_xstrdup(val);
}

/* Text settings: printable ASCII without spaces (URLs, URIs, paths, names). */
static bool setting_text_valid(const char *s)
{
    if (!s || !*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7F)
            return false;
    return true;
}

int mu_agent_config_load(struct mu_agent_config *c, const char *path, struct mu_err *err)
{
    static const char *const keys[] = {"controller_url",
                                       "node_name",
                                       "cert",
                                       "key",
                                       "ca",
                                       "libvirt_uri",
                                       "interval_s",
                                       "spool_dir",
                                       "spool_max_reports",
                                       "log_level",
                                       "renew_before_days",
                                       NULL};
    static const char *const text_keys[] = {"controller_url", "node_name", "cert", "key", "ca",
                                            "libvirt_uri",    "spool_dir"};
    char **text_slots[] = {&c->controller_url, &c->node_name, &c->cert, &c->key, &c->ca,
                           &c->libvirt_uri,    &c->spool_dir};
    size_t len = 0;
    MU_AUTOFREE char *buf = mu_read_file(path, MU_AGENT_CONFIG_MAX_BYTES, &len);
    if (!buf)
        return mu_err_set(err, errno == EFBIG ? MU_EINVAL : MU_EIO, "%s: %s", path,
                          errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
    cJSON *root = mu_json_parse(buf, len, path, err);
    if (!root)
        return MU_EINVAL;
    struct mu_err sub = {0};
    int rc = mu_json_expect_object(root, keys, path, &sub);
    for (size_t i = 0; rc == 0 && i < MU_ARRAY_LEN(text_keys); i++) {
        const char *v = NULL;
        rc = mu_json_get_str(root, text_keys[i], false, MU_AGENT_PATH_MAX, &v, &sub);
        if (rc == 0 && !setting_text_valid(v))
            rc = mu_err_setf(&sub, MU_EINVAL, text_keys[i],
                             "%s must be non-empty printable ASCII without spaces", text_keys[i]);
        if (rc == 0)
            set_str(text_slots[i], v);
        if (rc == 1)
            rc = 0;
    }
    if (rc == 0) {
        rc = mu_json_get_i64(root, "interval_s", false, 1, MU_AGENT_INTERVAL_MAX, &c->interval_s,
                             &sub);
        rc = rc == 1 ? 0 : rc;
    }
    if (rc == 0) {
        rc = mu_json_get_i64(root, "spool_max_reports", false, MU_AGENT_SPOOL_MIN,
                             MU_AGENT_SPOOL_MAX, &c->spool_max_reports, &sub);
        rc = rc == 1 ? 0 : rc;
    }
    if (rc == 0) {
        rc = mu_json_get_i64(root, "renew_before_days", false, 0, MU_AGENT_RENEW_MAX_DAYS,
                             &c->renew_before_days, &sub);
        rc = rc == 1 ? 0 : rc;
    }
    if (rc == 0) {
        const char *lvl = NULL;
        rc = mu_json_get_str(root, "log_level", false, 16, &lvl, &sub);
        if (rc == 0 && mu_log_level_parse(lvl) < 0)
            rc = mu_err_setf(&sub, MU_EINVAL, "log_level",
                             "log_level must be error, warn, info or debug");
        if (rc == 0)
            c->log_level = mu_log_level_parse(lvl);
        rc = rc == 1 ? 0 : rc;
    }
    cJSON_Delete(root);
    if (rc < 0)
        return mu_err_setf(err, MU_EINVAL, sub.field, "%s: %s", path, sub.detail);
    return 0;
}

enum {
    OPT_CONFIG = 256,
    OPT_URL,
    OPT_NODE,
    OPT_CERT,
    OPT_KEY,
    OPT_CA,
    OPT_URI,
    OPT_INTERVAL,
    OPT_SPOOL,
    OPT_LOG,
    OPT_RENEW,
    OPT_ONCE,
    OPT_VERSION,
    OPT_HELP
};

int mu_agent_args_parse(int argc, char *const *argv, struct mu_agent_args *ret, struct mu_err *err)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"controller-url", required_argument, NULL, OPT_URL},
        {"node", required_argument, NULL, OPT_NODE},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"ca", required_argument, NULL, OPT_CA},
        {"libvirt-uri", required_argument, NULL, OPT_URI},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"spool-dir", required_argument, NULL, OPT_SPOOL},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"renew-before-days", required_argument, NULL, OPT_RENEW},
        {"once", no_argument, NULL, OPT_ONCE},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct mu_agent_args a = {.action = MU_AGENT_RUN, .interval_s = -1, .renew_before_days = -1};
    optind = 0; /* GNU: start afresh (the unit tests parse several argument lists) */
    opterr = 0;
    for (;;) {
        int idx = 0;
        int o = getopt_long(argc, argv, ":", opts, &idx);
        if (o == -1)
            break;
        switch (o) {
        case OPT_CONFIG:
            a.config = optarg;
            break;
        case OPT_URL:
            a.controller_url = optarg;
            break;
        case OPT_NODE:
            a.node_name = optarg;
            break;
        case OPT_CERT:
            a.cert = optarg;
            break;
        case OPT_KEY:
            a.key = optarg;
            break;
        case OPT_CA:
            a.ca = optarg;
            break;
        case OPT_URI:
            a.libvirt_uri = optarg;
            break;
        case OPT_INTERVAL:
            if (mu_parse_i64(optarg, 1, MU_AGENT_INTERVAL_MAX, &a.interval_s) != 0)
                return mu_err_setf(err, MU_EINVAL, "interval",
                                   "--interval must be a whole number of seconds between 1 "
                                   "and %d",
                                   MU_AGENT_INTERVAL_MAX);
            break;
        case OPT_SPOOL:
            a.spool_dir = optarg;
            break;
        case OPT_LOG:
            a.log_level = optarg;
            break;
        case OPT_RENEW:
            if (mu_parse_i64(optarg, 0, MU_AGENT_RENEW_MAX_DAYS, &a.renew_before_days) != 0)
                return mu_err_setf(err, MU_EINVAL, "renew-before-days",
                                   "--renew-before-days must be a whole number of days between "
                                   "0 (never) and %d",
                                   MU_AGENT_RENEW_MAX_DAYS);
            break;
        case OPT_ONCE:
            if (a.action == MU_AGENT_RUN)
                a.action = MU_AGENT_ONCE;
            break;
        case OPT_VERSION:
            if (a.action != MU_AGENT_HELP)
                a.action = MU_AGENT_VERSION;
            break;
        case OPT_HELP:
            a.action = MU_AGENT_HELP;
            break;
        case ':':
            return mu_err_set(err, MU_EINVAL, "%s needs a value (see --help)", argv[optind - 1]);
        default:
            return mu_err_set(err, MU_EINVAL, "unknown option %s (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mu_err_set(err, MU_EINVAL, "unexpected argument %s (see --help)", argv[optind]);
    *ret = a;
    return 0;
}

int mu_agent_config_apply(struct mu_agent_config *c, const struct mu_agent_args *a,
                          struct mu_err *err)
{
    const char *const vals[] = {a->controller_url, a->node_name, a->cert, a->key, a->ca,
                                a->libvirt_uri,    a->spool_dir};
    char **slots[] = {&c->controller_url, &c->node_name, &c->cert, &c->key, &c->ca,
                      &c->libvirt_uri,    &c->spool_dir};
    static const char *const flags[] = {"--controller-url", "--node",     "--cert", "--key", "--ca",
                                        "--libvirt-uri",    "--spool-dir"};
    for (size_t i = 0; i < MU_ARRAY_LEN(vals); i++) {
        if (!vals[i])
            continue;
        if (!setting_text_valid(vals[i]) || strlen(vals[i]) > MU_AGENT_PATH_MAX)
            return mu_err_setf(err, MU_EINVAL, flags[i] + 2,
                               "%s must be non-empty printable ASCII without spaces", flags[i]);
        set_str(slots[i], vals[i]);
    }
    if (a->interval_s > 0)
        c->interval_s = a->interval_s;
    if (a->renew_before_days >= 0)
        c->renew_before_days = a->renew_before_days;
    if (a->log_level) {
        int lvl = mu_log_level_parse(a->log_level);
        if (lvl < 0)
            return mu_err_setf(err, MU_EINVAL, "log-level",
                               "--log-level must be error, warn, info or debug");
        c->log_level = lvl;
    }
    return 0;
}

/* The host name, lower-cased, if it is a valid node name. */
static char *host_node_name(void)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        return NULL;
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return mu_ident_valid(host) ? mu_xstrdup(host) : NULL;
}

static bool readable(const char *path)
{
    return path && access(path, R_OK) == 0;
}

int mu_agent_config_check(struct mu_agent_config *c, enum mu_agent_action action,
                          struct mu_err *err)
{
    if (!c->node_name)
        c->node_name = host_node_name();
    if (!c->node_name)
        return mu_err_setf(err, MU_EINVAL, "node_name",
                           "node_name is not set and the host name is not a valid node name");
    if (!mu_ident_valid(c->node_name))
        return mu_err_setf(err, MU_EINVAL, "node_name",
                           "node_name \"%s\" is not a valid node name (lower-case letters, "
                           "digits, '.', '_' and '-', at most 63 characters)",
                           c->node_name);
    if (!c->libvirt_uri)
        return mu_err_setf(err, MU_EINVAL, "libvirt_uri", "libvirt_uri is not set");
    if (action != MU_AGENT_RUN)
        return 0;
    if (!c->controller_url || strncmp(c->controller_url, "https://", 8) != 0 ||
        strlen(c->controller_url) <= 8)
        return mu_err_setf(err, MU_EINVAL, "controller_url",
                           "controller_url must be set to the controller's https:// URL");
    static const char *const names[] = {"cert", "key", "ca"};
    const char *const paths[] = {c->cert, c->key, c->ca};
    for (size_t i = 0; i < MU_ARRAY_LEN(names); i++) {
        if (!paths[i])
            return mu_err_setf(err, MU_EINVAL, names[i],
                               "%s is not set (the agent sends reports only over mutual TLS)",
                               names[i]);
        if (!readable(paths[i]))
            return mu_err_setf(err, MU_EINVAL, names[i], "%s file %s cannot be read: %s", names[i],
                               paths[i], strerror(errno));
    }
    if (!c->spool_dir)
        return mu_err_setf(err, MU_EINVAL, "spool_dir", "spool_dir is not set");
    return 0;
}

const char *mu_agent_usage(void)
{
    return "Usage: mutualis-agent [--config FILE] [options]\n"
           "Collects node health and per-VM usage from the local libvirt and sends one report\n"
           "every interval to the Mutualis controller over HTTPS with a client certificate.\n"
           "Reports are spooled on disk until the controller acknowledges them.\n"
           "\n"
           "  --config FILE          JSON settings (keys controller_url, node_name, cert, key,\n"
           "                         ca, libvirt_uri, interval_s, spool_dir, spool_max_reports,\n"
           "                         log_level, renew_before_days); the flags below override\n"
           "                         them\n"
           "  --controller-url URL   the controller, https://HOST:PORT\n"
           "  --node NAME            this node's name (the certificate's CN)\n"
           "  --cert FILE, --key FILE  client certificate and private key (PEM)\n"
           "  --ca FILE              the controller's CA (PEM): the only one trusted\n"
           "  --libvirt-uri URI      default qemu:///system\n"
           "  --interval SECONDS     default 10\n"
           "  --spool-dir DIR        default /var/lib/mutualis-agent/spool\n"
           "  --log-level LEVEL      error, warn, info (default) or debug\n"
           "  --renew-before-days N  renew the certificate (new key, same node) N days before\n"
           "                         it expires; default 30, 0 never, at most 60\n"
           "  --once                 collect one report, print it to stdout and exit\n"
           "                         (no sending, no spool)\n"
           "  --version, --help\n";
}
