/* mutualisd: wires the modules together and runs the periodic chores.
 * Start-up: config → data dir → audit key → store (migrations) → PKI → policies →
 * bootstrap operator → HTTPS server. Then the main thread waits for signals:
 * SIGTERM/SIGINT stop cleanly, SIGHUP reloads the policies. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alerts/alerts.h"
#include "api/api.h"
#include "auth/auth.h"
#include "catalog/catalog.h"
#include "config.h"
#include "fleet/health.h"
#include "fleet/ingest.h"
#include "fleet/pki.h"
#include "mutualis/log.h"
#include "notify/notify.h"
#include "ops/ops.h"
#include "sched/sched.h"
#include "store/store.h"
#include "tenancy/quotas.h"
#include "net/net.h"
#include "store/network.h"
#include "virt/virt.h"
#include "store/test_vfs.h"

/* The audit chain's HMAC key lives beside the database, never in it: whoever edits the
 * database alone cannot forge the chain. Created once, 0600. */
static int load_audit_key(const char *data_dir, unsigned char key[32], struct mu_err *err)
{
    MU_AUTOFREE char *path = mu_xasprintf("%s/audit.key", data_dir);
    size_t len = 0;
    MU_AUTOFREE char *hex = mu_read_file(path, 128, &len);
    if (!hex) {
        if (errno != ENOENT)
            return mu_err_set(err, MU_EIO, "cannot read %s: %m", path);
        unsigned char fresh[32];
        char hex_key[65], out[66];
        mu_random_bytes(fresh, sizeof fresh);
        mu_hex_encode(fresh, sizeof fresh, hex_key);
        snprintf(out, sizeof out, "%s\n", hex_key);
        int r = mu_write_file_atomic(path, out, strlen(out), 0600);
        if (r < 0)
            return mu_err_set(err, MU_EIO, "cannot write %s: %s", path, strerror(-r));
        memcpy(key, fresh, 32);
        return MU_OK;
    }
    if (len < 64)
        return mu_err_set(err, MU_EIO, "%s is damaged (expected 64 hex characters)", path);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return mu_err_set(err, MU_EIO, "%s is damaged (expected 64 hex characters)", path);
        key[i] = (unsigned char)v;
    }
    return MU_OK;
}

/* First start: an operator account and a token written once to a 0600 file. */
static int bootstrap(struct mu_store *st, const char *data_dir, struct mu_err *err)
{
    if (mu_store_user_count(st) > 0)
        return MU_OK;
    struct mu_audit_rec rec = {.actor = "bootstrap",
                               .role = "",
                               .action = "user.create",
                               .target = "user:admin",
                               .outcome = "ok",
                               .request_id = "start"};
    struct mu_user u = {
        .name = "admin", .display_name = "Bootstrap operator", .role = MU_ROLE_OPERATOR};
    int64_t uid = 0, tid = 0;
    int r = mu_store_user_insert(st, &u, &rec, &uid, err);
    if (r < 0)
        return r;
    char secret[MU_TOKEN_LEN + 1];
    struct mu_token t = {.user_id = uid, .name = "bootstrap", .created_ms = mu_now_ms()};
    mu_auth_token_generate(secret, t.hash);
    rec.action = "token.create";
    rec.target = "user/1/token:bootstrap";
    r = mu_store_token_insert(st, &t, &rec, &tid, err);
    if (r < 0)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("%s/bootstrap-token", data_dir);
    MU_AUTOFREE char *line = mu_xasprintf("%s\n", secret);
    r = mu_write_file_atomic(path, line, strlen(line), 0600);
    memset(secret, 0, sizeof secret);
    if (r < 0)
        return mu_err_set(err, MU_EIO, "cannot write %s: %s", path, strerror(-r));
    mu_log_info("bootstrap operator created user=admin token_file=%s", path);
    return MU_OK;
}

/* The policy files read at start and on SIGHUP. All are parsed before any is swapped in:
 * one invalid file keeps every previous policy in force. */
struct policies {
    struct mu_rbac *rbac;
    struct mu_sched_policy *placement;
    struct mu_quota_policy *quotas;
    struct mu_catalog *catalog;
    struct mu_alert_policy *alerts;
    struct mu_net_policy *networks;
};

static void policies_clear(struct policies *p)
{
    mu_rbac_free(p->rbac);
    free(p->placement);
    mu_quota_policy_free(p->quotas);
    mu_catalog_free(p->catalog);
    free(p->alerts);
    mu_net_policy_free(p->networks);
    memset(p, 0, sizeof *p);
}

static int policies_load(const char *dir, struct policies *ret, struct mu_err *err)
{
    struct policies p = {0};
    MU_AUTOFREE char *rbac = mu_xasprintf("%s/rbac.json", dir);
    MU_AUTOFREE char *placement = mu_xasprintf("%s/placement.json", dir);
    MU_AUTOFREE char *quotas = mu_xasprintf("%s/quotas.json", dir);
    MU_AUTOFREE char *alerts = mu_xasprintf("%s/alerts.json", dir);
    /* every MU_AUTOFREE before the first goto: a jump past one frees garbage */
    MU_AUTOFREE char *catalog = mu_xasprintf("%s/catalog.json", dir);
    MU_AUTOFREE char *networks = mu_xasprintf("%s/networks.json", dir);
    MU_AUTOFREE char *text = NULL;
    p.rbac = mu_rbac_load(rbac, err);
    if (!p.rbac)
        goto fail;
    size_t len = 0;
    text = mu_read_file(placement, 1 << 20, &len);
    if (!text) {
        mu_err_set(err, MU_EIO, "%s: cannot read: %m", placement);
        goto fail;
    }
    p.placement = mu_xcalloc(1, sizeof *p.placement);
    if (mu_sched_policy_parse(text, len, placement, p.placement, err) < 0)
        goto fail;
    if (mu_quota_policy_load(quotas, &p.quotas, err) < 0)
        goto fail;
    if (mu_alert_policy_load(alerts, &p.alerts, err) < 0)
        goto fail;
    if (mu_catalog_load(catalog, &p.catalog, err) < 0)
        goto fail;
    if (mu_net_policy_load(networks, &p.networks, err) < 0)
        goto fail;
    *ret = p;
    return MU_OK;
fail:
    policies_clear(&p);
    return err->code ? err->code : MU_EINVAL;
}

static void apply_networks(struct mu_app *app);

static void reload_policies(struct mu_app *app)
{
    struct mu_err err = {0};
    struct policies fresh = {0};
    if (policies_load(app->policies_dir, &fresh, &err) < 0) {
        mu_log_error("policy reload refused, previous policy stays in force detail=\"%s\"",
                     err.detail);
        return;
    }
    pthread_rwlock_wrlock(&app->policy_lock);
    struct policies old = {.rbac = app->rbac, .placement = app->placement, .quotas = app->quotas};
    old.alerts = app->alert_policy;
    app->alert_policy = fresh.alerts;
    old.catalog = app->catalog;
    app->catalog = fresh.catalog;
    app->rbac = fresh.rbac;
    app->placement = fresh.placement;
    app->quotas = fresh.quotas;
    old.networks = app->net_policy;
    app->net_policy = fresh.networks;
    pthread_rwlock_unlock(&app->policy_lock);
    apply_networks(app);
    policies_clear(&old);
    mu_log_info("policies reloaded dir=%s", app->policies_dir);
}

/* The network policy reaches the store (segment range, MTU, port, declared provider
 * networks) and the store's default-network quota check follows the quota policy. Called at
 * start and after a reload, before the previous policies are freed. */
static void apply_networks(struct mu_app *app)
{
    struct mu_audit_rec rec = {.actor = "policy",
                               .role = "",
                               .action = "network.create",
                               .outcome = "ok",
                               .request_id = "policy"};
    struct mu_err err = {0};
    int created = 0;

    pthread_rwlock_rdlock(&app->policy_lock);
    struct mu_quota_defaults defaults = mu_quota_policy_defaults(app->quotas);
    mu_store_net_quota_defaults_set(app->store, &defaults);
    if (app->net_policy &&
        mu_net_policy_apply(app->net_policy, app->store, &rec, &created, &err) < 0)
        mu_log_error("provider network of policies/networks.json not created detail=\"%s\"",
                     err.detail);
    else if (created > 0)
        mu_log_info("provider networks created from the policy count=%d", created);
    pthread_rwlock_unlock(&app->policy_lock);
}

/* Writes the audit chain head to the log and beside the database, so that a truncated
 * tail is detected by `mutualis audit verify`. */
static void write_audit_head(struct mu_app *app, int64_t *last_logged)
{
    int64_t id = 0;
    char mac[65] = "";
    if (mu_store_audit_head(app->store, &id, mac) < 0 || id == 0 || id == *last_logged)
        return;
    mu_log_info("audit head id=%lld mac=%s", (long long)id, mac);
    MU_AUTOFREE char *path = mu_xasprintf("%s/audit.head", app->data_dir);
    MU_AUTOFREE char *line = mu_xasprintf("%lld %s\n", (long long)id, mac);
    if (mu_write_file_atomic(path, line, strlen(line), 0600) == 0)
        *last_logged = id;
}

/* Usage counters change only in the transactions that change VMs; recomputing them from
 * the VM rows must find nothing to correct. A mismatch is a bug: say it loudly. */
static void recount_usage(struct mu_app *app)
{
    int64_t mismatches = 0;
    char detail[512] = "";
    struct mu_err err = {0};
    if (mu_store_usage_recount(app->store, &mismatches, detail, sizeof detail, &err) < 0)
        mu_log_error("usage recount failed detail=\"%s\"", err.detail);
    else if (mismatches > 0)
        mu_log_error("usage counters did not match the VMs and were corrected mismatches=%lld "
                     "detail=\"%s\"",
                     (long long)mismatches, detail);
}

static void run_chores(struct mu_app *app, int64_t *last_head)
{
    int n = mu_authn_flush(app->authn, 0);
    if (n < 0)
        mu_log_warn("token last-use flush failed");
    mu_router_flush_refusals(app);
    write_audit_head(app, last_head);
}

int main(int argc, char **argv)
{
    struct mu_config cfg;
    struct mu_err err = {0};
    int rc = 1;
    struct mu_store *st = NULL;
    struct mu_server *srv = NULL;
    struct mu_pki_files pki = {0};
    struct mu_app app = {0};
    struct mu_health *health = NULL;
    struct mu_notify_allow *webhook_allow = NULL;
    struct mu_prober *prober = NULL;
    MU_AUTOFREE char *db_path = NULL;
    MU_AUTOFREE char *pki_dir = NULL;
    pthread_rwlock_init(&app.policy_lock, NULL);

    int r = mu_config_load(argc, argv, &cfg, &err);
    if (r == 1)
        return 0;
    if (r < 0) {
        fprintf(stderr, "mutualisd: %s\n", err.detail);
        return 2;
    }
    mu_log_set_level((enum mu_log_level)mu_log_level_parse(cfg.log_level));

    /* Signals are handled by the main thread only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((r = mu_mkdir_p(cfg.data_dir, 0700)) < 0) {
        mu_log_error("cannot create data directory dir=%s error=\"%s\"", cfg.data_dir,
                     strerror(-r));
        goto out;
    }
    unsigned char key[32];
    if (load_audit_key(cfg.data_dir, key, &err) < 0)
        goto fail;
    db_path = mu_xasprintf("%s/mutualis.db", cfg.data_dir);
    struct mu_store_opts so = {.path = db_path,
                               .vfs = getenv("MU_TEST_SYNC_LOG")
                                          ? mu_store_test_sync_vfs(getenv("MU_TEST_SYNC_LOG"))
                                          : NULL,
                               .audit_key = (const char *)key,
                               .audit_key_len = sizeof key};
    st = mu_store_open(&so, &err);
    if (!st)
        goto fail;
    if (bootstrap(st, cfg.data_dir, &err) < 0)
        goto fail;

    const char *names[40];
    size_t nn = 0;
    names[nn++] = cfg.listen_host;
    if (strcmp(cfg.listen_host, "127.0.0.1") != 0)
        names[nn++] = "127.0.0.1";
    names[nn++] = "localhost";
    for (char **p = cfg.server_names; p && *p && nn < 39; p++)
        names[nn++] = *p;
    names[nn] = NULL;
    pki_dir = mu_xasprintf("%s/pki", cfg.data_dir);
    if (mu_pki_ensure(pki_dir, names, &pki, &err) < 0)
        goto fail;

    app.store = st;
    app.policies_dir = cfg.policies_dir;
    app.data_dir = cfg.data_dir;
    app.body_max = cfg.body_max;
    app.import_body_max = cfg.import_body_max;
    app.upload_max = cfg.upload_max;
    struct policies pol = {0};
    if (policies_load(cfg.policies_dir, &pol, &err) < 0)
        goto fail;
    app.rbac = pol.rbac;
    app.placement = pol.placement;
    app.quotas = pol.quotas;
    app.catalog = pol.catalog;
    app.alert_policy = pol.alerts;
    app.net_policy = pol.networks;
    apply_networks(&app);
    app.authn = mu_authn_new(st);
    if (mu_virt_init(&err) < 0)
        goto fail;
    struct mu_ops_opts oopts = {.store = st,
                                .data_dir = cfg.data_dir,
                                .stop_timeout_ms = (int64_t)cfg.stop_timeout_s * 1000,
                                .op_timeout_ms = (int64_t)cfg.op_timeout_s * 1000,
                                .reconcile_interval_ms = (int64_t)cfg.reconcile_interval_s * 1000,
                                .orphan_policy = cfg.orphan_policy};
    app.ops = mu_ops_start(&oopts, &err);
    if (!app.ops)
        goto fail;
    /* Agent reports: one writer, and the health of the nodes whose agents report. */
    struct mu_ingest_opts iopts = {.store = st, .linger_ms = 1};
    app.ingest = mu_ingest_start(&iopts, &err);
    if (!app.ingest)
        goto fail;
    struct mu_health_opts hopts = {.store = st,
                                   .interval_ms = (int64_t)cfg.report_interval_s * 1000};
    health = mu_health_start(&hopts, &err);
    if (!health)
        goto fail;
    /* Capacity: the N+1 verdict recomputed in the background; who reads /metrics. */
    app.metrics_allow = cfg.metrics_allow;
    app.metrics_tenants = cfg.metrics_tenants;
    app.n_metrics_tenants = cfg.n_metrics_tenants;
    app.capmon = mu_capmon_start(&app, (int64_t)cfg.capacity_interval_s * 1000, &err);
    if (!app.capmon)
        goto fail;
    /* Webhooks: the allow-list the API checks URLs against, and the dispatcher. */
    if (mu_notify_allow_parse(cfg.webhook_allow, &webhook_allow, &err) < 0)
        goto fail;
    app.webhook_allow = webhook_allow;
    struct mu_notify_opts nopts = {.store = st,
                                   .allow = webhook_allow,
                                   .ca_file = cfg.webhook_ca_file,
                                   .retry_base_ms = cfg.webhook_retry_base_ms,
                                   .give_up_ms = cfg.webhook_give_up_ms};
    app.notify = mu_notify_start(&nopts, &err);
    if (!app.notify)
        goto fail;
    /* Catalogue requests: provisioning → ready once the guest answers on the item's port. */
    struct mu_prober_opts popts = {.store = st, .catalog = &app.catalog, .lock = &app.policy_lock};
    prober = mu_prober_start(&popts, &err);
    if (!prober)
        goto fail;
    /* Alerts: policies/alerts.json over the store and the capacity monitor's verdict. */
    app.alerts = mu_api_alerts_start(&app, cfg.alerts_interval_ms, &err);
    if (!app.alerts)
        goto fail;

    struct mu_server_opts sopts = {.listen_host = cfg.listen_host,
                                   .port = cfg.port,
                                   .cert_pem = pki.server_pem,
                                   .key_pem = pki.server_key,
                                   .ca_pem = pki.ca_pem,
                                   .threads = cfg.threads,
                                   .conn_timeout_s = cfg.conn_timeout_s,
                                   .conn_limit = cfg.conn_limit};
    srv = mu_server_start(&app, &sopts, &err);
    if (!srv)
        goto fail;
    unsigned port = mu_server_port(srv);
    if (cfg.port_file) {
        MU_AUTOFREE char *txt = mu_xasprintf("%u\n", port);
        mu_write_file_atomic(cfg.port_file, txt, strlen(txt), 0644);
    }
    mu_log_info("mutualisd started version=%s url=https://%s:%u data=%s schema=%d", MU_VERSION,
                cfg.listen_host, port, cfg.data_dir, mu_store_schema_version(st));

    int64_t last_head = 0;
    int64_t next_chores = mu_mono_ms() + (int64_t)cfg.flush_interval_s * 1000;
    int64_t next_recount = mu_mono_ms() + (int64_t)cfg.recount_interval_s * 1000;
    recount_usage(&app);
    for (;;) {
        struct timespec ts = {.tv_sec = 1, .tv_nsec = 0};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            mu_log_info("stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
            break;
        }
        if (sig == SIGHUP)
            reload_policies(&app);
        if (mu_mono_ms() >= next_recount) {
            recount_usage(&app);
            next_recount = mu_mono_ms() + (int64_t)cfg.recount_interval_s * 1000;
        }
        if (mu_mono_ms() >= next_chores) {
            run_chores(&app, &last_head);
            next_chores = mu_mono_ms() + (int64_t)cfg.flush_interval_s * 1000;
        }
    }
    mu_server_stop(srv); /* deferred agent answers complete first: the writer still runs */
    srv = NULL;
    mu_notify_stop(app.notify);
    app.notify = NULL;
    mu_prober_stop(prober);
    prober = NULL;
    mu_alerts_stop(app.alerts);
    app.alerts = NULL;
    mu_capmon_stop(app.capmon);
    app.capmon = NULL;
    mu_health_stop(health);
    health = NULL;
    mu_ingest_stop(app.ingest);
    app.ingest = NULL;
    mu_ops_stop(app.ops);
    app.ops = NULL;
    run_chores(&app, &last_head);
    rc = 0;
    goto out;
fail:
    mu_log_error("mutualisd cannot start detail=\"%s\"", err.detail);
out:
    mu_server_stop(srv);
    mu_notify_stop(app.notify);
    mu_alerts_stop(app.alerts);
    mu_capmon_stop(app.capmon);
    mu_health_stop(health);
    mu_ingest_stop(app.ingest);
    mu_ops_stop(app.ops);
    mu_authn_free(app.authn);
    mu_notify_allow_free(webhook_allow);
    mu_prober_stop(prober);
    struct policies last = {.rbac = app.rbac, .placement = app.placement, .quotas = app.quotas};
    last.catalog = app.catalog;
    last.alerts = app.alert_policy;
    last.networks = app.net_policy;
    mu_store_net_quota_defaults_set(st, NULL);
    policies_clear(&last);
    mu_store_close(st);
    mu_pki_files_clear(&pki);
    mu_config_clear(&cfg);
    pthread_rwlock_destroy(&app.policy_lock);
    return rc;
}
