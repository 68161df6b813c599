/* POST /v1/agent/reports: a node agent's report (mutualis/report.h). The server has verified
 * the client certificate before the body was read (MU_ROUTE_AGENT); here the report is
 * parsed strictly, must speak for the certificate's node, and goes to the report writer
 * (fleet/ingest.h). The answer leaves only after the writer's batch was committed and
 * synced: {"epoch": "…", "acked_seq": N, "net_generation": G} (G: the generation of the
 * node's network plan, see GET /v1/agent/network below).
 *
 * POST /v1/agent/renew: an agent renews its certificate over the same mutual TLS. It sends
 * {"csr": PEM} for a key it generated itself (the key never leaves the node), naming its
 * own node; the controller signs a 90-day client certificate, records its serial before
 * answering, and answers {"certificate": PEM, "ca": PEM, "not_after": RFC 3339}. The
 * certificate the request came with stays valid until it expires. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "fleet/ingest.h"
#include "fleet/pki.h"
#include "mutualis/json.h"
#include "mutualis/log.h"
#include "mutualis/report.h"
#include "store/network.h"
#include "store/telemetry.h"

#define MU_AGENT_WAIT_MS   10000 /* when the server cannot defer: how long to wait */
#define MU_AGENT_CERT_DAYS 90    /* like enrolment's */
#define MU_AGENT_CSR_MAX   16384

/* An impersonation attempt is worth an audit entry of its own. */
static void audit_denied(struct mu_req *req, const char *detail)
{
    char actor[80], target[80];
    snprintf(actor, sizeof actor, "node:%s", req->client_cn);
    snprintf(target, sizeof target, "node:%s", req->client_cn);
    struct mu_audit_rec rec = {.actor = actor,
                               .role = "agent",
                               .tenant_id = 0,
                               .action = req->route && req->route->action ? req->route->action
                                                                          : "agent.report",
                               .target = target,
                               .outcome = "denied",
                               .request_id = req->request_id,
                               .detail = detail};
    struct mu_err err = {0};
    if (mu_store_audit_append(req->app->store, &rec, &err) < 0)
        mu_log_error("audit append failed id=%s action=agent.report detail=\"%s\"", req->request_id,
                     err.detail);
}

/* The answer for a ticket's result. */
static int answer(int rc, const struct mu_ingest_ack *ack, struct mu_resp *resp, struct mu_err *err)
{
    if (rc == MU_ECONFLICT) {
        /* Out of order: a problem document that also says, for machines, what to send. */
        resp->status = 409;
        resp->json = mu_problem_new(409, err, NULL);
        mu_json_add_str(resp->json, "epoch", ack->epoch);
        mu_json_add_i64(resp->json, "acked_seq", ack->acked_seq);
        mu_json_add_i64(resp->json, "expected_seq", ack->expected_seq);
        return MU_OK;
    }
    if (rc < 0)
        return rc;
    resp->json = mu_json_obj();
    mu_json_add_str(resp->json, "epoch", ack->epoch);
    mu_json_add_i64(resp->json, "acked_seq", ack->acked_seq);
    if (ack->replay)
        mu_json_add_bool(resp->json, "replay", true);
    return MU_OK;
}

/* The generation of the node's network plan (GET /v1/agent/network), carried in the acks of
 * nodes that take part in tenant networks so that their agent fetches the plan only when it
 * changed. -1 when there is none or it cannot be read (the ack then goes without it and the
 * agent keeps its plan). */
static int64_t net_generation(struct mu_app *app, int64_t node_id)
{
    struct mu_err err = {0};
    MU_AUTOFREE char *plan = NULL;
    int64_t gen = -1;
    if (mu_store_node_net_plan_json(app->store, node_id, &plan, &err) < 0)
        return -1;
    cJSON *root = cJSON_Parse(plan);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "generation");
    const cJSON *local = cJSON_GetObjectItemCaseSensitive(root, "local");
    const cJSON *segs = cJSON_GetObjectItemCaseSensitive(root, "segments");
    /* A node outside every tenant network (no underlay address, no segment) gets the ack as
     * before: its agent has nothing to realise. */
    bool member = (cJSON_IsString(local) && local->valuestring[0]) || cJSON_GetArraySize(segs) > 0;
    if (member && cJSON_IsNumber(g) && g->valuedouble >= 0)
        gen = (int64_t)g->valuedouble;
    cJSON_Delete(root);
    return gen;
}

static void add_net_generation(struct mu_resp *resp, int64_t gen)
{
    if (gen >= 0 && resp->json && resp->status != 409)
        mu_json_add_i64(resp->json, "net_generation", gen);
}

struct report_wait {
    struct mu_ingest_ticket *ticket;
    int64_t net_gen;
};

static int finish_report(void *arg, struct mu_resp *resp, struct mu_err *err)
{
    struct report_wait *w = arg;
    struct mu_ingest_ack ack = {0};
    int rc = mu_ingest_result(w->ticket, &ack, err);
    int64_t gen = w->net_gen;
    free(w);
    rc = answer(rc, &ack, resp, err);
    if (rc == MU_OK)
        add_net_generation(resp, gen);
    return rc;
}

int mu_h_agent_report(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_report r = {0};
    int64_t node_id = 0;
    int rc;

    if (!req->client_cn[0])
        return mu_err_set(err, MU_EUNAUTH, "this address needs a client certificate");
    if (!req->app->ingest)
        return mu_err_set(err, MU_EBUSY, "this controller does not take reports now");
    if (!req->body)
        return mu_err_set(err, MU_EINVAL, "the request has no body: send one report (JSON)");
    rc = mu_report_parse(req->body, req->body_len, &r, err);
    if (rc < 0)
        return rc;
    if (strcmp(r.node, req->client_cn) != 0) {
        mu_err_setf(err, MU_EFORBIDDEN, "node",
                    "the certificate of node %s cannot report for node %s", req->client_cn, r.node);
        audit_denied(req, err->detail);
        mu_report_clear(&r);
        return MU_EFORBIDDEN;
    }
    rc = mu_store_node_id_by_name(req->app->store, r.node, &node_id, err);
    if (rc == MU_ENOTFOUND) {
        mu_err_clear(err);
        mu_err_setf(err, MU_EFORBIDDEN, "node", "node %s is not registered with this controller",
                    r.node);
        mu_report_clear(&r);
        return MU_EFORBIDDEN;
    }
    if (rc < 0) {
        mu_report_clear(&r);
        return rc;
    }
    struct mu_ingest_src src = {.node_id = node_id,
                                .cert_serial = req->client_serial,
                                .cert_not_after_ms = req->client_not_after_ms};
    int64_t gen = net_generation(req->app, node_id);
    if (!req->wake) {
        struct mu_ingest_ack ack = {0};
        rc = mu_ingest_submit_wait(req->app->ingest, &r, &src, MU_AGENT_WAIT_MS, &ack, err);
        rc = answer(rc, &ack, resp, err);
        if (rc == MU_OK)
            add_net_generation(resp, gen);
        return rc;
    }
    struct mu_ingest_ticket *t =
        mu_ingest_submit(req->app->ingest, &r, &src, req->wake, req->wake_arg, err);
    if (!t)
        return err->code ? err->code : MU_EBUSY;
    struct report_wait *w = mu_xcalloc(1, sizeof *w);
    w->ticket = t;
    w->net_gen = gen;
    resp->finish = finish_report;
    resp->finish_arg = w;
    return MU_OK;
}

int mu_h_agent_renew(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const keys[] = {"csr", NULL};
    MU_AUTOFREE char *pki = NULL, *cert = NULL, *ca = NULL, *ca_path = NULL, *detail = NULL;
    char serial[41], actor[80], until[40];
    int64_t node_id = 0, not_after_ms = 0;
    const char *csr = NULL;
    size_t ca_len = 0;
    int rc;

    if (!req->client_cn[0])
        return mu_err_set(err, MU_EUNAUTH, "this address needs a client certificate");
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code ? err->code : MU_EINVAL;
    rc = mu_json_expect_object(body, keys, "request body", err);
    if (rc == 0)
        rc = mu_json_get_str(body, "csr", true, MU_AGENT_CSR_MAX, &csr, err);
    if (rc == 0)
        rc = mu_pki_csr_check(csr, req->client_cn, err);
    if (rc == MU_EFORBIDDEN)
        audit_denied(req, err->detail);
    if (rc == 0) {
        rc = mu_store_node_id_by_name(req->app->store, req->client_cn, &node_id, err);
        if (rc == MU_ENOTFOUND) {
            mu_err_clear(err);
            rc = mu_err_setf(err, MU_EFORBIDDEN, "node",
                             "node %s is not registered with this controller", req->client_cn);
        }
    }
    if (rc == 0) {
        pki = mu_xasprintf("%s/pki", req->app->data_dir);
        rc = mu_pki_sign_client(pki, csr, req->client_cn, MU_AGENT_CERT_DAYS, &cert, serial, err);
    }
    cJSON_Delete(body);
    if (rc == 0)
        rc = mu_pki_cert_not_after(cert, &not_after_ms, err);
    if (rc < 0)
        return rc;
    ca_path = mu_xasprintf("%s/ca.pem", pki);
    ca = mu_read_file(ca_path, 256 * 1024, &ca_len);
    if (!ca)
        return mu_err_set(err, MU_EIO, "the controller's CA certificate cannot be read");
    /* Recorded (and audited) before it is handed out: a certificate the store does not know
     * could not be revoked with its node. */
    mu_format_time(not_after_ms, until, sizeof until);
    detail = mu_xasprintf("certificate %s issued, valid until %s; renews %s", serial, until,
                          req->client_serial[0] ? req->client_serial : "?");
    snprintf(actor, sizeof actor, "node:%s", req->client_cn);
    struct mu_audit_rec rec = {.actor = actor,
                               .role = "agent",
                               .action = "agent.renew",
                               .outcome = "ok",
                               .request_id = req->request_id,
                               .detail = detail};
    rc = mu_store_node_cert_issue(req->app->store, node_id, serial, not_after_ms, &rec, err);
    if (rc == MU_ENOTFOUND) {
        mu_err_clear(err);
        return mu_err_setf(err, MU_EFORBIDDEN, "node", "node %s was removed from this controller",
                           req->client_cn);
    }
    if (rc < 0)
        return rc;
    mu_log_info("agent certificate renewed node=%s serial=%s not_after=%s old_serial=%s",
                req->client_cn, serial, until, req->client_serial);
    resp->json = mu_json_obj();
    mu_json_add_str(resp->json, "certificate", cert);
    mu_json_add_str(resp->json, "ca", ca);
    mu_json_add_time(resp->json, "not_after", not_after_ms);
    mu_json_add_str(resp->json, "serial", serial);
    return MU_OK;
}

/* GET /v1/agent/network: the desired network state of the certificate's node
 * (store/network.h, mu_store_node_net_plan_json). The agent realises it itself: the
 * controller never runs commands on nodes (agents/net/README.md says why). */
int mu_h_agent_network(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    MU_AUTOFREE char *plan = NULL;
    int64_t node_id = 0;
    int rc;

    if (!req->client_cn[0])
        return mu_err_set(err, MU_EUNAUTH, "this address needs a client certificate");
    rc = mu_store_node_id_by_name(req->app->store, req->client_cn, &node_id, err);
    if (rc == MU_ENOTFOUND) {
        mu_err_clear(err);
        return mu_err_setf(err, MU_EFORBIDDEN, "node",
                           "node %s is not registered with this controller", req->client_cn);
    }
    if (rc == 0)
        rc = mu_store_node_net_plan_json(req->app->store, node_id, &plan, err);
    if (rc < 0)
        return rc;
    resp->json = mu_json_parse(plan, strlen(plan), "network plan", err);
    if (!resp->json)
        return mu_err_set(err, MU_EINTERNAL, "the node's network plan is not valid JSON");
    return MU_OK;
}
