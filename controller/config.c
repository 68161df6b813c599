/* Configuration loading: defaults, JSON file, flags. */
#include "config.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mutualis/json.h"
#include "mutualis/log.h"
#include "notify/notify.h"

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = mu_xstrdup(v);
}

/* "HOST:PORT", "[v6]:PORT" or ":PORT". */
static int parse_listen(const char *s, struct mu_config *cfg, struct mu_err *err)
{
    const char *colon = strrchr(s, ':');
    int64_t port;
    if (!colon || mu_parse_i64(colon + 1, 0, 65535, &port) != 0)
        return mu_err_setf(err, MU_EINVAL, "listen",
                           "listen must be HOST:PORT (e.g. 127.0.0.1:8443), got \"%s\"", s);
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0) {
        h = "0.0.0.0";
        hl = strlen(h);
    }
    for (size_t i = 0; i < hl; i++)
        if (!(h[i] == '.' || h[i] == ':' || h[i] == '-' || (h[i] >= '0' && h[i] <= '9') ||
              (h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z')))
            return mu_err_setf(err, MU_EINVAL, "listen", "listen host \"%.*s\" is not valid",
                               (int)hl, h);
    free(cfg->listen_host);
    cfg->listen_host = mu_xstrndup(h, hl);
    cfg->port = (unsigned)port;
    return MU_OK;
}

/* metrics_allow: ["127.0.0.1", "::1"] (numeric addresses, as peers are compared);
 * metrics_tenants: [12, 40] (tenant ids). */
static int load_metrics(const cJSON *o, const char *path, struct mu_config *cfg, struct mu_err *err)
{
    const cJSON *arr = NULL;
    int r = mu_json_get_array(o, "metrics_allow", false, &arr, err);
    if (r == 0) {
        int n = cJSON_GetArraySize(arr);
        if (n > 64)
            return mu_err_setf(err, MU_EINVAL, "metrics_allow", "%s: at most 64 metrics_allow",
                               path);
        char **list = mu_xcalloc((size_t)n + 1, sizeof *list);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr)
        {
            unsigned char buf[sizeof(struct in6_addr)];
            if (!cJSON_IsString(it) || (inet_pton(AF_INET, it->valuestring, buf) != 1 &&
                                        inet_pton(AF_INET6, it->valuestring, buf) != 1)) {
                r = mu_err_setf(err, MU_EINVAL, "metrics_allow",
                                "%s: metrics_allow must list IP addresses such as \"127.0.0.1\"",
                                path);
                break;
            }
            list[i++] = mu_xstrdup(it->valuestring);
        }
        for (char **p = cfg->metrics_allow; p && *p; p++)
            free(*p);
        free(cfg->metrics_allow);
        cfg->metrics_allow = list;
        if (r < 0)
            return r;
    } else if (r < 0) {
        return r;
    }
    r = mu_json_get_array(o, "metrics_tenants", false, &arr, err);
    if (r == 0) {
        int n = cJSON_GetArraySize(arr);
        if (n > 1000)
            return mu_err_setf(err, MU_EINVAL, "metrics_tenants",
                               "%s: at most 1000 metrics_tenants", path);
        free(cfg->metrics_tenants);
        cfg->metrics_tenants = mu_xcalloc((size_t)n + 1, sizeof *cfg->metrics_tenants);
        cfg->n_metrics_tenants = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr)
        {
            double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
            if (d < 1 || d > 9e15 || d != (double)(int64_t)d)
                return mu_err_setf(err, MU_EINVAL, "metrics_tenants",
                                   "%s: metrics_tenants must list tenant ids", path);
            cfg->metrics_tenants[cfg->n_metrics_tenants++] = (int64_t)d;
        }
    }
    return r < 0 ? r : MU_OK;
}

/* webhook_allow: ["127.0.0.1/32", "2001:db8::/32"] (CIDR blocks, checked here);
 * webhook_ca_file: a PEM file; webhook_retry_base_ms, webhook_give_up_ms. */
static int load_webhooks(const cJSON *o, const char *path, struct mu_config *cfg,
                         struct mu_err *err)
{
    const cJSON *arr = NULL, *it;
    const char *s;
    int64_t v;
    int r = mu_json_get_array(o, "webhook_allow", false, &arr, err);
    if (r == 0) {
        int n = cJSON_GetArraySize(arr), i = 0;
        if (n > 256)
            return mu_err_setf(err, MU_EINVAL, "webhook_allow", "%s: at most 256 webhook_allow",
                               path);
        char **list = mu_xcalloc((size_t)n + 1, sizeof *list);
        cJSON_ArrayForEach(it, arr)
        {
            struct mu_notify_cidr c;
            if (!cJSON_IsString(it)) {
                r = mu_err_setf(err, MU_EINVAL, "webhook_allow",
                                "%s: webhook_allow must list CIDR blocks such as \"127.0.0.1/32\"",
                                path);
                break;
            }
            if ((r = mu_notify_cidr_parse(it->valuestring, &c, err)) < 0)
                break;
            list[i++] = mu_xstrdup(it->valuestring);
        }
        for (char **p = cfg->webhook_allow; p && *p; p++)
            free(*p);
        free(cfg->webhook_allow);
        cfg->webhook_allow = list;
        if (r < 0)
            return r;
    } else if (r < 0) {
        return r;
    }
    if ((r = mu_json_get_str(o, "webhook_ca_file", false, 4096, &s, err)) == 0)
        set_str(&cfg->webhook_ca_file, s);
    if (r >= 0 &&
        (r = mu_json_get_i64(o, "webhook_retry_base_ms", false, 10, 3600000, &v, err)) == 0)
        cfg->webhook_retry_base_ms = v;
    if (r >= 0 && (r = mu_json_get_i64(o, "webhook_give_up_ms", false, 100,
                                       (int64_t)30 * 24 * 3600 * 1000, &v, err)) == 0)
        cfg->webhook_give_up_ms = v;
    return r < 0 ? r : MU_OK;
}

static int load_file(const char *path, struct mu_config *cfg, struct mu_err *err)
{
    static const char *const allowed[] = {"listen",
                                          "data_dir",
                                          "policies_dir",
                                          "log_level",
                                          "server_names",
                                          "threads",
                                          "conn_timeout_s",
                                          "conn_limit",
                                          "body_max_bytes",
                                          "import_body_max_bytes",
                                          "flush_interval_s",
                                          "upload_max_bytes",
                                          "stop_timeout_s",
                                          "op_timeout_s",
                                          "reconcile_interval_s",
                                          "orphan_policy",
                                          "report_interval_s",
                                          "recount_interval_s",
                                          "capacity_interval_s",
                                          "metrics_allow",
                                          "metrics_tenants",
                                          "alerts_interval_ms",
                                          "webhook_allow",
                                          "webhook_ca_file",
                                          "webhook_retry_base_ms",
                                          "webhook_give_up_ms",
                                          NULL};
    size_t len;
    MU_AUTOFREE char *text = mu_read_file(path, 1 << 20, &len);
    if (!text)
        return mu_err_set(err, MU_EINVAL, "cannot read config file %s: %m", path);
    cJSON *o = mu_json_parse(text, len, path, err);
    if (!o)
        return err->code;
    const char *s;
    int64_t v;
    int r = mu_json_expect_object(o, allowed, path, err);
    if (r >= 0 && (r = mu_json_get_str(o, "listen", false, 300, &s, err)) == 0)
        r = parse_listen(s, cfg, err);
    if (r >= 0 && (r = mu_json_get_str(o, "data_dir", false, 4096, &s, err)) == 0)
        set_str(&cfg->data_dir, s);
    if (r >= 0 && (r = mu_json_get_str(o, "policies_dir", false, 4096, &s, err)) == 0)
        set_str(&cfg->policies_dir, s);
    if (r >= 0 && (r = mu_json_get_str(o, "log_level", false, 10, &s, err)) == 0)
        set_str(&cfg->log_level, s);
    if (r >= 0 && (r = mu_json_get_i64(o, "threads", false, 1, 256, &v, err)) == 0)
        cfg->threads = (unsigned)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "conn_timeout_s", false, 1, 3600, &v, err)) == 0)
        cfg->conn_timeout_s = (unsigned)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "conn_limit", false, 1, 100000, &v, err)) == 0)
        cfg->conn_limit = (unsigned)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "body_max_bytes", false, 1024, 64 << 20, &v, err)) == 0)
        cfg->body_max = (size_t)v;
    if (r >= 0 &&
        (r = mu_json_get_i64(o, "import_body_max_bytes", false, 1024, 1 << 30, &v, err)) == 0)
        cfg->import_body_max = (size_t)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "flush_interval_s", false, 1, 3600, &v, err)) == 0)
        cfg->flush_interval_s = (unsigned)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "upload_max_bytes", false, 1 << 20, (int64_t)1 << 42, &v,
                                       err)) == 0)
        cfg->upload_max = (size_t)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "stop_timeout_s", false, 1, 3600, &v, err)) == 0)
        cfg->stop_timeout_s = (unsigned)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "op_timeout_s", false, 10, 86400, &v, err)) == 0)
        cfg->op_timeout_s = (unsigned)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "reconcile_interval_s", false, 1, 3600, &v, err)) == 0)
        cfg->reconcile_interval_s = (unsigned)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "recount_interval_s", false, 1, 86400, &v, err)) == 0)
        cfg->recount_interval_s = (unsigned)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "report_interval_s", false, 1, 3600, &v, err)) == 0)
        cfg->report_interval_s = (unsigned)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "capacity_interval_s", false, 1, 3600, &v, err)) == 0)
        cfg->capacity_interval_s = (unsigned)v;
    if (r >= 0 && (r = mu_json_get_i64(o, "alerts_interval_ms", false, 50, 3600000, &v, err)) == 0)
        cfg->alerts_interval_ms = v;
    if (r >= 0)
        r = load_webhooks(o, path, cfg, err);
    if (r >= 0)
        r = load_metrics(o, path, cfg, err);
    if (r >= 0 && (r = mu_json_get_str(o, "orphan_policy", false, 16, &s, err)) == 0) {
        if (strcmp(s, "remove") != 0 && strcmp(s, "quarantine") != 0)
            r = mu_err_setf(err, MU_EINVAL, "orphan_policy",
                            "%s: orphan_policy must be \"remove\" or \"quarantine\"", path);
        else
            set_str(&cfg->orphan_policy, s);
    }
    const cJSON *names = NULL;
    if (r >= 0 && (r = mu_json_get_array(o, "server_names", false, &names, err)) == 0) {
        int n = cJSON_GetArraySize(names);
        if (n > 32)
            r = mu_err_setf(err, MU_EINVAL, "server_names", "%s: at most 32 server_names", path);
        char **list = mu_xcalloc((size_t)n + 1, sizeof *list);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, names)
        {
            if (r < 0)
                break;
            if (!cJSON_IsString(it) || strlen(it->valuestring) == 0 ||
                strlen(it->valuestring) > 253)
                r = mu_err_setf(err, MU_EINVAL, "server_names",
                                "%s: server_names must be host names or addresses", path);
            else
                list[i++] = mu_xstrdup(it->valuestring);
        }
        for (char **p = cfg->server_names; p && *p; p++)
            free(*p);
        free(cfg->server_names);
        cfg->server_names = list;
    }
    cJSON_Delete(o);
    return r < 0 ? r : MU_OK;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualisd [--config FILE] [--data-dir DIR] [--listen HOST:PORT]\n"
               "                 [--policies DIR] [--log-level error|warn|info|debug]\n"
               "                 [--threads N] [--port-file FILE]\n");
}

int mu_config_load(int argc, char **argv, struct mu_config *cfg, struct mu_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen_host = mu_xstrdup("127.0.0.1");
    cfg->port = 8443;
    cfg->data_dir = mu_xstrdup("./var");
    cfg->policies_dir = mu_xstrdup("./policies");
    cfg->log_level = mu_xstrdup("info");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = cpus > 1 ? (unsigned)cpus * 2 : 2;
    cfg->conn_timeout_s = 30;
    cfg->conn_limit = 4096;
    cfg->body_max = 1 << 20;
    cfg->import_body_max = 256 << 20;
    cfg->flush_interval_s = 60;
    cfg->upload_max = (size_t)64 << 30;
    cfg->stop_timeout_s = 60;
    cfg->op_timeout_s = 900;
    cfg->reconcile_interval_s = 30;
    cfg->orphan_policy = mu_xstrdup("remove");
    cfg->recount_interval_s = 600;
    cfg->report_interval_s = 10;
    cfg->capacity_interval_s = 5;
    cfg->alerts_interval_ms = 10000;
    cfg->webhook_retry_base_ms = 5000;
    cfg->webhook_give_up_ms = (int64_t)24 * 3600 * 1000;

    enum { O_CONFIG = 256, O_DATA, O_LISTEN, O_POLICIES, O_LOG, O_THREADS, O_PORTFILE, O_VER };
    static const struct option opts[] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"data-dir", required_argument, NULL, O_DATA},
        {"listen", required_argument, NULL, O_LISTEN},
        {"policies", required_argument, NULL, O_POLICIES},
        {"log-level", required_argument, NULL, O_LOG},
        {"threads", required_argument, NULL, O_THREADS},
        {"port-file", required_argument, NULL, O_PORTFILE},
        {"version", no_argument, NULL, O_VER},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* The config file first, so that flags override it whatever their order. */
    for (int i = 1; i < argc - 1; i++)
        if (strcmp(argv[i], "--config") == 0) {
            int r = load_file(argv[i + 1], cfg, err);
            if (r < 0)
                return r;
        }
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int64_t v;
        switch (c) {
        case O_CONFIG:
            break;
        case O_DATA:
            set_str(&cfg->data_dir, optarg);
            break;
        case O_POLICIES:
            set_str(&cfg->policies_dir, optarg);
            break;
        case O_LOG:
            set_str(&cfg->log_level, optarg);
            break;
        case O_PORTFILE:
            set_str(&cfg->port_file, optarg);
            break;
        case O_LISTEN: {
            int r = parse_listen(optarg, cfg, err);
            if (r < 0)
                return r;
            break;
        }
        case O_THREADS:
            if (mu_parse_i64(optarg, 1, 256, &v) != 0)
                return mu_err_set(err, MU_EINVAL, "--threads must be a number from 1 to 256");
            cfg->threads = (unsigned)v;
            break;
        case O_VER:
            printf("mutualisd %s\n", MU_VERSION);
            return 1;
        case 'h':
            usage(stdout);
            return 1;
        default:
            return mu_err_set(err, MU_EINVAL, "unknown or incomplete option %s (see --help)",
                              argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mu_err_set(err, MU_EINVAL, "unexpected argument \"%s\" (see --help)", argv[optind]);
    if (mu_log_level_parse(cfg->log_level) < 0)
        return mu_err_set(err, MU_EINVAL, "log level must be error, warn, info or debug");
    return MU_OK;
}

void mu_config_clear(struct mu_config *cfg)
{
    free(cfg->listen_host);
    free(cfg->data_dir);
    free(cfg->policies_dir);
    free(cfg->log_level);
    free(cfg->port_file);
    free(cfg->orphan_policy);
    for (char **p = cfg->server_names; p && *p; p++)
        free(*p);
    free(cfg->server_names);
    for (char **p = cfg->metrics_allow; p && *p; p++)
        free(*p);
    free(cfg->metrics_allow);
    free(cfg->metrics_tenants);
    for (char **p = cfg->webhook_allow; p && *p; p++)
        free(*p);
    free(cfg->webhook_allow);
    free(cfg->webhook_ca_file);
    memset(cfg, 0, sizeof *cfg);
}
