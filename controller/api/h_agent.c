/* POST /v1/agent/reports: a node agent's report (mutualis/report.h). The server has verified
 * the client certificate before the body was read (MU_ROUTE_AGENT); here the report is
 * parsed strictly, must speak for the certificate's node, and goes to the report writer
 * (fleet/ingest.h). The answer leaves only after the writer's batch was committed and
 * synced: {"epoch": "…", "acked_seq": N}. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "fleet/ingest.h"
#include "mutualis/json.h"
#include "mutualis/log.h"
#include "mutualis/report.h"
#include "store/telemetry.h"

#define MU_AGENT_WAIT_MS 10000 /* when the server cannot defer: how long to wait */

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

static int finish_report(void *arg, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_ingest_ack ack = {0};
    int rc = mu_ingest_result(arg, &ack, err);
    return answer(rc, &ack, resp, err);
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
    if (!req->wake) {
        struct mu_ingest_ack ack = {0};
        rc = mu_ingest_submit_wait(req->app->ingest, &r, &src, MU_AGENT_WAIT_MS, &ack, err);
        return answer(rc, &ack, resp, err);
    }
    struct mu_ingest_ticket *t =
        mu_ingest_submit(req->app->ingest, &r, &src, req->wake, req->wake_arg, err);
    if (!t)
        return err->code ? err->code : MU_EBUSY;
    resp->finish = finish_report;
    resp->finish_arg = t;
    return MU_OK;
}
