/* POST /v1/nodes/{id}/enroll: enrolment of a registered node over SSH (fleet/enroll.h does
 * the work). The request carries a secret (an SSH private key or a one-time password): it
 * is used for this request only, never stored or logged, and wiped from the request's
 * buffers once the enrolment is over.
 *
 * Answers: 200 with the enrolment (steps, host key, probe, agent, certificate, libvirt
 * URIs); a step that failed answers a problem document naming it ("enrolment of node-1
 * failed at step auth: …") with the steps done so far, status 409 for a host key that does
 * not match, 400 for a key the controller cannot read, 502 when the node failed, 500 when
 * the controller did; refusals before any step (bad input, unknown node, an enrolment of
 * the node already running) are ordinary errors. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/handlers.h"
#include "fleet/enroll.h"
#include "mutualis/json.h"
#include "mutualis/log.h"
#include "store/provision.h"
#include "virt/virt.h"

#define ENROLL_PROBE_TIMEOUT_MS 20000

/* Where the agent binary to install lives: next to the running mutualisd. Caller frees. */
static char *agent_binary_path(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return mu_xasprintf("%s/mutualis-agent", exe);
}

/* The URL the agent reports to, by default the one the operator's client used to reach
 * this controller (its Host header). NULL if that is not a plain host[:port]. */
static char *default_controller_url(const struct mu_req *req)
{
    const char *host = mu_req_header(req, "Host");
    if (!host || !host[0] || strlen(host) > 260)
        return NULL;
    char *url = mu_xasprintf("https://%s", host);
    if (!mu_enroll_controller_url_valid(url)) {
        free(url);
        return NULL;
    }
    return url;
}

/* Whether the agent report endpoint is part of this build (the report step is skipped
 * without it). */
static bool reports_served(void)
{
    for (size_t i = 0; i < mu_routes_count; i++)
        if (strcmp(mu_routes[i].pattern, "/v1/agent/reports") == 0)
            return true;
    return false;
}

static void wipe(cJSON *body, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    if (cJSON_IsString(v) && v->valuestring)
        explicit_bzero(v->valuestring, strlen(v->valuestring));
}

static cJSON *steps_json(const struct mu_enroll_result *res)
{
    cJSON *arr = mu_json_arr();
    for (size_t i = 0; i < res->nsteps; i++) {
        cJSON *s = mu_json_obj();
        mu_json_add_str(s, "step", res->steps[i].name);
        mu_json_add_str(s, "outcome", res->steps[i].outcome);
        mu_json_add_str(s, "detail", res->steps[i].detail);
        cJSON_AddItemToArray(arr, s);
    }
    return arr;
}

static cJSON *answer_json(int64_t id, const struct mu_enroll_result *res)
{
    const struct mu_enroll_probe *p = &res->probe;
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "node_id", id);
    mu_json_add_str(o, "node", res->node_name);
    mu_json_add_str(o, "enrolment", "enrolled");
    mu_json_add_str(o, "host_key_sha256", res->host_key);
    mu_json_add_str(o, "host_key", res->host_key_status);
    cJSON *probe = mu_json_obj();
    mu_json_add_str(probe, "os", p->os[0] ? p->os : NULL);
    mu_json_add_i64(probe, "cpus", p->cpus);
    mu_json_add_i64(probe, "memory_mib", p->mem_kib / 1024);
    mu_json_add_str(probe, "virtualization",
                    p->virt_flags > 0 && p->kvm_dev ? "kvm"
                    : p->virt_flags > 0             ? "no-kvm-device"
                                                    : "emulation");
    mu_json_add_str(probe, "libvirt", p->libvirt);
    mu_json_add_i64(probe, "uid", p->uid);
    mu_json_add_bool(probe, "systemd", p->systemd);
    cJSON_AddItemToObject(o, "probe", probe);
    cJSON *agent = mu_json_obj();
    mu_json_add_str(agent, "sha256", res->agent_sha256);
    mu_json_add_bool(agent, "uploaded", res->agent_uploaded);
    mu_json_add_str(agent, "supervisor", res->supervisor);
    cJSON_AddItemToObject(o, "agent", agent);
    cJSON *cert = mu_json_obj();
    mu_json_add_str(cert, "serial", res->cert_serial);
    mu_json_add_time(cert, "not_after", res->cert_not_after_ms);
    cJSON_AddItemToObject(o, "certificate", cert);
    mu_json_add_str(o, "report", res->report_verified ? "verified" : "not verified");
    mu_json_add_str(o, "libvirt_uri", res->libvirt_uri);
    mu_json_add_bool(o, "libvirt_uri_changed", res->libvirt_uri_changed);
    mu_json_add_str(o, "libvirt_uri_ssh", res->libvirt_uri_ssh);
    cJSON_AddItemToObject(o, "steps", steps_json(res));
    return o;
}

static int step_failure_status(int code)
{
    switch (code) {
    case MU_EINVAL:
        return 400;
    case MU_ECONFLICT:
        return 409;
    case MU_EIO:
    case MU_EINTERNAL:
        return 500;
    default:
        return 502; /* the node failed: a bad gateway, in HTTP's words */
    }
}

int mu_h_node_enroll(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {
        "host",           "port",        "user",       "private_key", "password", "host_key_sha256",
        "controller_url", "libvirt_uri", "interval_s", NULL};
    struct mu_enroll_req q = {.port = 22};
    struct mu_enroll_result res = {0};
    MU_AUTOFREE char *url = NULL, *agent = NULL, *pki = NULL;
    const char *controller_url = NULL;
    int64_t id = 0, port = 22, interval = 0;
    int r = mu_req_param_id(req, 0, "node", &id, err);
    if (r < 0)
        return r;
    cJSON *body = mu_req_json(req, err);
    /* The raw body holds the secret too: wipe it now that it is parsed. */
    if (req->body && req->body_len)
        explicit_bzero((char *)req->body, req->body_len);
    if (!body)
        return err->code;
    r = mu_json_expect_object(body, allowed, "enrolment", err);
    if (r >= 0)
        r = mu_json_get_str(body, "host", true, 253, &q.host, err);
    if (r >= 0)
        r = mu_json_get_i64(body, "port", false, 1, 65535, &port, err);
    if (r >= 0)
        r = mu_json_get_str(body, "user", true, 32, &q.user, err);
    if (r >= 0)
        r = mu_json_get_str(body, "private_key", false, MU_ENROLL_KEY_MAX, &q.private_key, err);
    if (r >= 0)
        r = mu_json_get_str(body, "password", false, MU_ENROLL_PASSWORD_MAX, &q.password, err);
    if (r >= 0)
        r = mu_json_get_str(body, "host_key_sha256", false, MU_ENROLL_FP_MAX, &q.host_key_sha256,
                            err);
    if (r >= 0)
        r = mu_json_get_str(body, "controller_url", false, 300, &controller_url, err);
    if (r >= 0)
        r = mu_json_get_str(body, "libvirt_uri", false, 1024, &q.libvirt_uri, err);
    if (r >= 0 && q.libvirt_uri && !mu_virt_uri_valid(q.libvirt_uri))
        r = mu_err_setf(err, MU_EINVAL, "libvirt_uri",
                        "libvirt_uri must be a libvirt URI (qemu+ssh://user@host/system, "
                        "qemu+libssh://…, qemu+tls://…) without spaces or quotes");
    if (r >= 0)
        r = mu_json_get_i64(body, "interval_s", false, 1, 3600, &interval, err);
    if (r >= 0 && !controller_url) {
        url = default_controller_url(req);
        controller_url = url;
        if (!controller_url)
            r = mu_err_setf(err, MU_EINVAL, "controller_url",
                            "give controller_url: the https://host:port at which the node's "
                            "agent reaches this controller");
    }
    if (r < 0)
        goto out;

    q.node_id = id;
    q.port = (unsigned)port;
    q.interval_s = (unsigned)interval;
    q.controller_url = controller_url;
    agent = agent_binary_path();
    pki = mu_xasprintf("%s/pki", req->app->data_dir);
    struct mu_enroll_env env = {
        .store = req->app->store,
        .pki_dir = pki,
        .agent_path = agent,
        .actor = req->principal.user_name,
        .role = req->principal.role,
        .request_id = req->request_id,
        .report_seen = reports_served() ? mu_enroll_report_seen_store : NULL,
        .report_ctx = req->app->store,
    };
    int64_t t0 = mu_mono_ms();
    r = mu_fleet_enroll(&env, &q, &res, err);
    if (r < 0 && res.failed_step[0]) {
        int status = step_failure_status(r);
        mu_log(status >= 500 ? MU_LOG_ERROR : MU_LOG_WARN,
               "node enrolment failed id=%s node=%s step=%s detail=\"%s\"", req->request_id,
               res.node_name, res.failed_step, err->detail);
        resp->json = mu_problem_new(status, err, req->request_id);
        mu_json_add_str(resp->json, "step", res.failed_step);
        if (res.host_key[0])
            mu_json_add_str(resp->json, "host_key_sha256", res.host_key);
        cJSON_AddItemToObject(resp->json, "steps", steps_json(&res));
        resp->status = status;
        r = MU_OK;
        goto out;
    }
    if (r < 0)
        goto out;
    mu_log_info("node enrolled id=%s node=%s host=%s port=%u user=%s host_key=%s report=%s "
                "ms=%lld",
                req->request_id, res.node_name, q.host, q.port, q.user, res.host_key,
                res.report_verified ? "verified" : "not-verified", (long long)(mu_mono_ms() - t0));
    if (res.libvirt_uri_changed && req->app->ops) {
        /* The node's worker still holds a connection to the old URI. */
        struct mu_err perr = {0};
        mu_ops_node_forget(req->app->ops, id);
        if (mu_ops_node_probe(req->app->ops, id, ENROLL_PROBE_TIMEOUT_MS, &perr) < 0)
            mu_log_warn("node not reachable at its new libvirt URI id=%s node=%s detail=\"%s\"",
                        req->request_id, res.node_name, perr.detail);
    }
    resp->json = answer_json(id, &res);
    resp->status = 200;

out:
    wipe(body, "private_key");
    wipe(body, "password");
    cJSON_Delete(body);
    mu_enroll_result_clear(&res);
    return r;
}
