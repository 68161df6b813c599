/* mutualis-agent: collects node health and per-VM usage every interval, spools each report
 * on disk and sends the spooled reports in order to the controller until acknowledged.
 * One thread: a loop that sleeps until the next collection or the next send attempt.
 * SIGTERM or SIGINT: the current send finishes, the loop ends, everything is freed (every
 * record was fsynced when it was spooled). Before its certificate expires the agent
 * renews it (certs.h) after a successful send, and reconnects with the new pair. This file
 * wires the modules and decides what is logged. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certs.h"
#include "collect/collect.h"
#include "config.h"
#include "mutualis/log.h"
#include "mutualis/report.h"
#include "mutualis/util.h"
#include "net/net.h"
#include "report/send.h"
#include "report/spool.h"

#define BACKOFF_MIN_MS     1000
#define BACKOFF_MAX_MS     30000
#define LOSS_LOG_MS        60000
#define RENEW_RETRY_MIN_MS ((int64_t)60 * 1000)
#define RENEW_RETRY_MAX_MS ((int64_t)3600 * 1000)
#define RENEW_AGAIN_MS     ((int64_t)12 * 3600 * 1000) /* renewed, yet still due */

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_signals(sigset_t *ret_stop_set)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(ret_stop_set);
    sigaddset(ret_stop_set, SIGTERM);
    sigaddset(ret_stop_set, SIGINT);
}

/* Sleeps up to ms, waking at once on SIGTERM/SIGINT: the signals are blocked while the
 * flag is checked and atomically unblocked by ppoll, so none is missed. */
static void sleep_ms(int64_t ms, const sigset_t *stop_set)
{
    if (ms <= 0)
        return;
    sigset_t old;
    sigprocmask(SIG_BLOCK, stop_set, &old);
    if (!stop_requested) {
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        sigset_t during = old;
        sigdelset(&during, SIGTERM);
        sigdelset(&during, SIGINT);
        ppoll(NULL, 0, &ts, &during);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static int run_once(struct mu_agent_config *cfg)
{
    struct mu_collect_host host;
    mu_collect_host_init(&host, NULL);
    struct mu_collect_virt *virt = mu_collect_virt_new(cfg->libvirt_uri);
    struct mu_report r = {0};
    struct mu_err err = {0};
    snprintf(r.node, sizeof r.node, "%s", cfg->node_name);
    memset(r.epoch, '0', MU_EPOCH_HEX_LEN); /* not spooled: no epoch of its own */
    r.seq = 1;
    int rc = mu_collect_report(&host, virt, &r, &err);
    if (rc == 0) {
        char *text = mu_report_print(&r);
        printf("%s\n", text);
        free(text);
    } else {
        mu_log_error("collection failed reason=\"%s\"", err.detail);
    }
    mu_report_clear(&r);
    mu_collect_virt_free(virt);
    return rc == 0 ? 0 : 1;
}

struct agent {
    struct mu_agent_config *cfg;
    struct mu_collect_host host;
    struct mu_collect_virt *virt;
    struct mu_spool *spool;
    struct mu_sender *sender;
    struct mu_sender_opts sender_opts;
    struct mu_agent_cert_info cert; /* the certificate in use (not_after_ms 0: unknown) */
    int64_t renew_next_ms;          /* monotonic: no renewal attempt before */
    int64_t renew_backoff_ms;
    struct mu_spool_stats logged; /* what has been logged already */
    int64_t losses_logged_ms;     /* when losses were last logged (monotonic) */
    bool collect_failing, spool_failing, send_failing;
    int64_t backoff_ms;
    int64_t sent;
    /* Tenant networks (net/net.h): the last plan received (kept on disk beside the spool, so
     * a node restart re-creates its devices even while the controller is down). */
    struct mu_net_plan net_plan;
    bool have_net_plan, net_failing, net_fetch_failing;
    int64_t net_gen_acked; /* the plan generation of the last ack (-1: none) */
};

#define NET_PLAN_FILE "net-plan.json"

static int net_plan_load(struct agent *a, const char *text, size_t len, struct mu_err *err)
{
    struct mu_net_plan p;
    int rc = mu_net_plan_parse(text, len, &p, err);
    if (rc < 0)
        return rc;
    mu_net_plan_clear(&a->net_plan);
    a->net_plan = p;
    a->have_net_plan = true;
    return 0;
}

/* Fetches the node's network plan when the last ack announced a generation the agent does
 * not have (a controller without network plans announces none: nothing is asked), and
 * realises the last plan known: devices deleted by hand come back within one interval. */
static void net_sync(struct agent *a)
{
    struct mu_err err = {0};
    char *body = NULL;
    long status = 0;
    if (a->net_gen_acked >= 0 && a->sender &&
        (!a->have_net_plan || a->net_plan.generation != a->net_gen_acked)) {
        int rc = mu_sender_get(a->sender, MU_SEND_NET_PATH, &body, &status, &err);
        if (rc == 0) {
            int64_t before = a->have_net_plan ? a->net_plan.generation : -1;
            rc = net_plan_load(a, body, strlen(body), &err);
            if (rc == 0 && before != a->net_plan.generation) {
                MU_AUTOFREE char *path = mu_xasprintf("%s/%s", a->cfg->spool_dir, NET_PLAN_FILE);
                if (mu_write_file_atomic(path, body, strlen(body), 0600) != 0)
                    mu_log_warn("cannot keep the network plan path=%s", path);
                mu_log_info("network plan received generation=%" PRId64 " segments=%zu",
                            a->net_plan.generation, a->net_plan.n_segs);
            } else if (rc < 0) {
                mu_log_error("the controller's network plan is refused reason=\"%s\"", err.detail);
            }
            a->net_fetch_failing = false;
        } else if (!a->net_fetch_failing) {
            mu_log_warn("cannot fetch the network plan, the last one stays status=%ld "
                        "reason=\"%s\"",
                        status, err.detail);
            a->net_fetch_failing = true;
        }
        free(body);
        mu_err_clear(&err);
    }
    if (!a->have_net_plan)
        return;
    struct mu_net_apply_stats st = {0};
    int rc = mu_net_apply(&a->net_plan, &st, &err);
    if (rc < 0) {
        if (!a->net_failing)
            mu_log_error("cannot realise the network plan generation=%" PRId64 " reason=\"%s\"",
                         a->net_plan.generation, err.detail);
        a->net_failing = true;
        return;
    }
    if (a->net_failing)
        mu_log_info("network plan realised again generation=%" PRId64, a->net_plan.generation);
    a->net_failing = false;
    if (st.created || st.removed || st.fdb_added || st.fdb_removed || st.fixed || st.nft_applied ||
        st.vlan_set || st.vlan_removed)
        mu_log_info("network devices updated generation=%" PRId64 " created=%d removed=%d "
                    "fdb_added=%d fdb_removed=%d fixed=%d nft=%s vlan_set=%d vlan_removed=%d",
                    a->net_plan.generation, st.created, st.removed, st.fdb_added, st.fdb_removed,
                    st.fixed, st.nft_applied ? "yes" : "no", st.vlan_set, st.vlan_removed);
}

/* Logs what the spool had to give up since the last time: at most once a minute, so that
 * a long outage with a full spool (one drop per interval) does not flood the log. */
static void log_spool_losses(struct agent *a)
{
    struct mu_spool_stats st;
    mu_spool_get_stats(a->spool, &st);
    int64_t now = mu_mono_ms();
    if (a->losses_logged_ms && now - a->losses_logged_ms < LOSS_LOG_MS &&
        st.corrupt == a->logged.corrupt && st.rewinds == a->logged.rewinds)
        return;
    if (st.dropped > a->logged.dropped || st.corrupt > a->logged.corrupt ||
        st.rewinds > a->logged.rewinds)
        a->losses_logged_ms = now;
    if (st.dropped > a->logged.dropped || st.corrupt > a->logged.corrupt)
        mu_log_warn("spool: reports replaced by a gap record dropped=%" PRId64 " corrupt=%" PRId64
                    " spool_max=%" PRId64 " head=%" PRId64,
                    st.dropped - a->logged.dropped, st.corrupt - a->logged.corrupt,
                    a->cfg->spool_max_reports, mu_spool_head(a->spool));
    if (st.rewinds > a->logged.rewinds)
        mu_log_warn("the controller acknowledged less than it had before: gap record sent "
                    "head=%" PRId64,
                    mu_spool_head(a->spool));
    a->logged = st;
}

static void collect_and_spool(struct agent *a)
{
    struct mu_report r = {0};
    struct mu_err err = {0};
    int rc = mu_collect_report(&a->host, a->virt, &r, &err);
    if (rc != 0) {
        /* No report rather than a report without domains: the node turns "down" at the
         * controller after 3 intervals, which is what it is to the controller. */
        if (!a->collect_failing)
            mu_log_error("collection failed, no report this interval reason=\"%s\"", err.detail);
        a->collect_failing = true;
        mu_report_clear(&r);
        return;
    }
    if (a->collect_failing)
        mu_log_info("collection works again");
    a->collect_failing = false;
    rc = mu_spool_append(a->spool, &r, &err);
    if (rc != 0) {
        if (!a->spool_failing || rc == MU_EINTERNAL)
            mu_log_error("cannot spool the report, none this interval reason=\"%s\"", err.detail);
        a->spool_failing = rc != MU_EINTERNAL;
    } else {
        if (a->spool_failing)
            mu_log_info("spooling works again");
        a->spool_failing = false;
        mu_log_debug("report spooled seq=%" PRId64 " domains=%zu pools=%zu", r.seq, r.ndomains,
                     r.npools);
    }
    mu_report_clear(&r);
    log_spool_losses(a);
}

/* Renews the certificate if it is due: a new key and request, the controller signs over the
 * current connection, the new pair is checked, installed (certs.h) and a new connection
 * made with it. Failures are retried with a back-off; the old pair stays in use. */
static void maybe_renew(struct agent *a)
{
    int64_t now = mu_now_ms();
    if (!a->cert.not_after_ms || mu_mono_ms() < a->renew_next_ms ||
        !mu_agent_renew_due(a->cert.not_after_ms, now, a->cfg->renew_before_days))
        return;
    char *key = NULL, *csr = NULL;
    struct mu_renew_answer ans = {0};
    struct mu_agent_cert_info info;
    struct mu_err err = {0};
    const char *step = "request";
    mu_log_info("certificate due for renewal serial=%s days_left=%" PRId64, a->cert.serial,
                (a->cert.not_after_ms - now) / (86400 * 1000));
    int rc = mu_agent_csr_new(a->cfg->node_name, &key, &csr, &err);
    if (rc == 0) {
        step = "signature";
        rc = mu_sender_renew(a->sender, csr, &ans, &err);
    }
    if (rc == 0) {
        step = "check";
        rc = mu_agent_cert_check(ans.cert_pem, key, a->cfg->ca, a->cfg->node_name, mu_now_ms(),
                                 &info, &err);
    }
    if (rc == 0) {
        step = "install";
        rc = mu_agent_certs_install(a->cfg->cert, a->cfg->key, ans.cert_pem, key, &err);
    }
    mu_agent_key_free(key);
    free(csr);
    mu_renew_answer_clear(&ans);
    if (rc != 0) {
        a->renew_backoff_ms = a->renew_backoff_ms ? a->renew_backoff_ms * 2 : RENEW_RETRY_MIN_MS;
        if (a->renew_backoff_ms > RENEW_RETRY_MAX_MS)
            a->renew_backoff_ms = RENEW_RETRY_MAX_MS;
        a->renew_next_ms = mu_mono_ms() + a->renew_backoff_ms;
        mu_log_warn("certificate renewal failed, the current one stays in use step=%s "
                    "retry_s=%" PRId64 " reason=\"%s\"",
                    step, a->renew_backoff_ms / 1000, err.detail);
        return;
    }
    /* The new pair is on disk: a new connection presents it (the old certificate stays
     * valid until it expires, so reports spooled meanwhile are not at risk). */
    struct mu_sender *next = mu_sender_new(&a->sender_opts, &err);
    if (next) {
        mu_sender_free(a->sender);
        a->sender = next;
    } else {
        mu_log_error("cannot set up HTTPS with the renewed certificate reason=\"%s\"", err.detail);
    }
    mu_log_info("certificate renewed serial=%s not_after_ms=%" PRId64 " old_serial=%s", info.serial,
                info.not_after_ms, a->cert.serial);
    a->cert = info;
    a->renew_backoff_ms = 0;
    a->renew_next_ms = 0;
    if (mu_agent_renew_due(info.not_after_ms, mu_now_ms(), a->cfg->renew_before_days)) {
        mu_log_warn("the renewed certificate is already due for renewal: the next attempt in "
                    "12 h not_after_ms=%" PRId64 " renew_before_days=%" PRId64,
                    info.not_after_ms, a->cfg->renew_before_days);
        a->renew_next_ms = mu_mono_ms() + RENEW_AGAIN_MS;
    }
}

enum send_next { SEND_IDLE, SEND_MORE, SEND_RETRY };

/* Sends the head of the spool. Says whether the next may go at once (SEND_MORE), after a
 * back-off (SEND_RETRY), or when there is something new (SEND_IDLE). */
static enum send_next send_one(struct agent *a)
{
    char *text = NULL;
    size_t len = 0;
    int64_t seq = 0;
    struct mu_err err = {0};
    int rc = mu_spool_peek(a->spool, &text, &len, &seq, &err);
    log_spool_losses(a);
    if (rc == 1)
        return SEND_IDLE;
    if (rc < 0) {
        mu_log_error("cannot read the spool reason=\"%s\"", err.detail);
        return SEND_RETRY;
    }
    struct mu_send_answer ans;
    rc = mu_sender_post(a->sender, text, len, &ans, &err);
    free(text);
    if (rc == MU_EUNAVAIL) {
        if (!a->send_failing)
            mu_log_warn("controller unreachable, reports stay in the spool reason=\"%s\" "
                        "spooled=%" PRId64,
                        err.detail, mu_spool_count(a->spool));
        a->send_failing = true;
        return SEND_RETRY;
    }
    if (rc == MU_EINVAL) {
        /* Refused as invalid, for good: a gap takes its place so the stream goes on. Other
         * refusals (authentication, overload) are retried. */
        struct mu_err derr = {0};
        if ((ans.status == 400 || ans.status == 413 || ans.status == 422) &&
            mu_spool_drop_head(a->spool, &derr) == 0) {
            mu_log_error("the controller refused a report, replaced by a gap seq=%" PRId64
                         " status=%ld reason=\"%s\"",
                         seq, ans.status, err.detail);
            log_spool_losses(a);
            return SEND_MORE;
        }
        if (!a->send_failing)
            mu_log_warn("the controller did not take a report, will retry seq=%" PRId64
                        " status=%ld reason=\"%s\"",
                        seq, ans.status, err.detail);
        a->send_failing = true;
        return SEND_RETRY;
    }
    if (a->send_failing)
        mu_log_info("controller reachable again spooled=%" PRId64, mu_spool_count(a->spool));
    a->send_failing = false;
    rc = mu_spool_ack(a->spool, ans.epoch, ans.acked_seq, &err);
    if (rc != 0) {
        mu_log_warn("acknowledgement not applied seq=%" PRId64 " status=%ld reason=\"%s\"", seq,
                    ans.status, err.detail);
        return SEND_RETRY;
    }
    log_spool_losses(a);
    if (ans.status != 200) {
        /* Out of order, say: the ack has put the spool right; try again shortly. */
        mu_log_info("the controller answered with its acknowledgement seq=%" PRId64
                    " status=%ld acked=%" PRId64 " detail=\"%s\"",
                    seq, ans.status, ans.acked_seq, ans.detail);
        return SEND_RETRY;
    }
    a->sent++;
    a->backoff_ms = 0;
    if (ans.net_generation >= 0 && ans.net_generation != a->net_gen_acked) {
        a->net_gen_acked = ans.net_generation;
        if (!a->have_net_plan || a->net_plan.generation != ans.net_generation)
            net_sync(a); /* a changed plan is realised now, not at the next interval */
    }
    mu_log_debug("report sent seq=%" PRId64 " acked=%" PRId64, seq, ans.acked_seq);
    maybe_renew(a); /* the controller just answered: a good moment */
    return mu_spool_count(a->spool) > 0 ? SEND_MORE : SEND_IDLE;
}

static int run(struct mu_agent_config *cfg)
{
    struct agent a = {.cfg = cfg, .net_gen_acked = -1};
    struct mu_err err = {0};
    sigset_t stop_set;
    install_signals(&stop_set);
    int status = 1;
    mu_collect_host_init(&a.host, NULL);
    a.virt = mu_collect_virt_new(cfg->libvirt_uri);
    a.spool = mu_spool_open(cfg->spool_dir, cfg->node_name, cfg->spool_max_reports, &err);
    if (!a.spool) {
        mu_log_error("cannot open the spool dir=%s reason=\"%s\"", cfg->spool_dir, err.detail);
        goto out;
    }
    /* A renewal a crash interrupted is finished (or undone) before the pair is used. */
    enum mu_agent_recovery rec = MU_AGENT_RECOVERY_NONE;
    if (mu_agent_certs_recover(cfg->cert, cfg->key, &rec, &err) != 0) {
        mu_log_error("cannot recover an interrupted certificate renewal reason=\"%s\"", err.detail);
        goto out;
    }
    if (rec == MU_AGENT_RECOVERY_COMPLETED)
        mu_log_info("an interrupted certificate renewal was completed: the renewed pair is used "
                    "cert=%s",
                    cfg->cert);
    else if (rec == MU_AGENT_RECOVERY_DISCARDED)
        mu_log_warn("an interrupted certificate renewal was undone: the previous pair is used "
                    "cert=%s",
                    cfg->cert);
    if (mu_agent_cert_read(cfg->cert, &a.cert, &err) != 0) {
        mu_log_warn("cannot read the certificate's expiry, it will not be renewed "
                    "reason=\"%s\"",
                    err.detail);
        memset(&a.cert, 0, sizeof a.cert);
        mu_err_clear(&err);
    }
    a.sender_opts = (struct mu_sender_opts){
        .controller_url = cfg->controller_url, .cert = cfg->cert, .key = cfg->key, .ca = cfg->ca};
    a.sender = mu_sender_new(&a.sender_opts, &err);
    if (!a.sender) {
        mu_log_error("cannot set up HTTPS reason=\"%s\"", err.detail);
        goto out;
    }
    {
        /* The plan from before a restart: realised at once, fetched again below. */
        MU_AUTOFREE char *path = mu_xasprintf("%s/%s", cfg->spool_dir, NET_PLAN_FILE);
        size_t len = 0;
        MU_AUTOFREE char *text = mu_read_file(path, 4 << 20, &len);
        if (text && net_plan_load(&a, text, len, &err) < 0) {
            mu_log_warn("the kept network plan is not usable path=%s reason=\"%s\"", path,
                        err.detail);
            mu_err_clear(&err);
        }
    }
    mu_log_info("mutualis-agent started version=%s node=%s controller=%s libvirt=%s "
                "interval_s=%" PRId64 " epoch=%s next_seq=%" PRId64 " spooled=%" PRId64,
                MU_VERSION, cfg->node_name, cfg->controller_url, cfg->libvirt_uri, cfg->interval_s,
                mu_spool_epoch(a.spool), mu_spool_next_seq(a.spool), mu_spool_count(a.spool));

    int64_t interval_ms = cfg->interval_s * 1000;
    int64_t next_collect = mu_mono_ms(), next_send = 0;
    while (!stop_requested) {
        int64_t now = mu_mono_ms();
        if (now >= next_collect) {
            collect_and_spool(&a);
            net_sync(&a);
            next_collect += interval_ms;
            now = mu_mono_ms();
            if (next_collect <= now) /* late (a slow send): skip, do not burst */
                next_collect = now + interval_ms;
        }
        enum send_next next = SEND_IDLE;
        if (!stop_requested && mu_spool_count(a.spool) > 0 && now >= next_send) {
            next = send_one(&a);
            if (next == SEND_RETRY) {
                a.backoff_ms = a.backoff_ms ? a.backoff_ms * 2 : BACKOFF_MIN_MS;
                if (a.backoff_ms > BACKOFF_MAX_MS)
                    a.backoff_ms = BACKOFF_MAX_MS;
                next_send = mu_mono_ms() + a.backoff_ms;
            } else {
                next_send = 0;
            }
        }
        if (next == SEND_MORE)
            continue;
        now = mu_mono_ms();
        int64_t wake = next_collect;
        if (mu_spool_count(a.spool) > 0 && next_send > now && next_send < wake)
            wake = next_send;
        sleep_ms(wake - now, &stop_set);
    }
    a.losses_logged_ms = 0; /* what the once-a-minute limit held back */
    log_spool_losses(&a);
    mu_log_info("mutualis-agent stopping sent=%" PRId64 " spooled=%" PRId64 " next_seq=%" PRId64,
                a.sent, mu_spool_count(a.spool), mu_spool_next_seq(a.spool));
    status = 0;
out:
    mu_sender_free(a.sender);
    mu_net_plan_clear(&a.net_plan);
    mu_spool_free(a.spool);
    mu_collect_virt_free(a.virt);
    return status;
}

int main(int argc, char **argv)
{
    struct mu_agent_args args;
    struct mu_agent_config cfg;
    struct mu_err err = {0};
    mu_agent_config_init(&cfg);
    int status = 2;
    if (mu_agent_args_parse(argc, argv, &args, &err) != 0) {
        fprintf(stderr, "mutualis-agent: %s\n", err.detail);
        goto out;
    }
    if (args.action == MU_AGENT_HELP) {
        fputs(mu_agent_usage(), stdout);
        status = 0;
        goto out;
    }
    if (args.action == MU_AGENT_VERSION) {
        printf("mutualis-agent %s\n", MU_VERSION);
        status = 0;
        goto out;
    }
    if ((args.config && mu_agent_config_load(&cfg, args.config, &err) != 0) ||
        mu_agent_config_apply(&cfg, &args, &err) != 0 ||
        mu_agent_config_check(&cfg, args.action, &err) != 0) {
        fprintf(stderr, "mutualis-agent: %s\n", err.detail);
        goto out;
    }
    mu_log_set_level((enum mu_log_level)cfg.log_level);
    status = args.action == MU_AGENT_ONCE ? run_once(&cfg) : run(&cfg);
out:
    mu_agent_config_clear(&cfg);
    return status;
}
