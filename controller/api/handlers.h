/* Handlers of the route table, one file per resource (h_<resource>.c). Private to api/. */
#ifndef MU_API_HANDLERS_H
#define MU_API_HANDLERS_H

#include "api/api.h"

int mu_h_health(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_openapi(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_whoami(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);

int mu_h_tenant_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_tenant_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_tenant_import(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_tenant_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_tenant_update(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_tenant_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_tenant_move(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);

int mu_h_user_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_user_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_user_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_user_update(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_user_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);

int mu_h_token_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_token_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_token_revoke(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);

int mu_h_audit_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_audit_verify(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);

int mu_h_node_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_node_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_node_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_node_update(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_node_maintenance(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_node_drain(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_node_activate(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_node_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_node_enroll(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_flavor_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_flavor_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_flavor_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_flavor_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_image_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_image_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_image_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_image_upload(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_image_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_group_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_group_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_group_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_vm_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_vm_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_vm_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_vm_start(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_vm_stop(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_vm_reboot(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_vm_resize(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_vm_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_op_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);

int mu_h_network_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_network_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_network_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_network_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_network_addresses(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_network_rules(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_network_rule_add(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_network_rule_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_quota_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_quota_set(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_agent_report(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_agent_renew(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_agent_network(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_capacity(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_metrics(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_app_catalog(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_request_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_request_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_request_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_request_approve(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_request_reject(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_request_cancel(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_event_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_webhook_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_webhook_put(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_webhook_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_alert_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_session_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_session_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_session_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_portal_index(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_portal_file(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);

/* The placement snapshot from the store's node rows and counters (snapshot.c): nodes
 * hosting a VM of group_id (> 0) carry that group; with_vms adds each node's VMs (the N+1
 * check needs them). NULL with err set. */
struct mu_sched_snapshot *mu_api_snapshot_build(struct mu_store *st, int64_t group_id,
                                                bool with_vms, struct mu_err *err);

/* What a node's last agent report says it really uses (h_capacity.c). */
struct mu_cap_used {
    bool reported;      /* false: no report yet, the figures are meaningless */
    double cpus_busy;   /* cpu_percent x host CPUs / 100 */
    double cpu_percent; /* of the whole host */
    int64_t ram_mib;    /* host memory in use: total - available */
    int64_t disk_gib;   /* the node's storage pool allocation */
    int64_t time_ms;    /* when the agent took it */
};

/* Fills used[i] (zeroed by the caller) for each node of snap from its last agent report;
 * rows are the node rows (for each node's storage pool name). */
struct mu_node;
void mu_capacity_used_fill(struct mu_store *st, const struct mu_sched_snapshot *snap,
                           const struct mu_node *rows, size_t nrows, struct mu_cap_used *used);

/* The capacity document's pure part (h_capacity.c): "nodes" (each with physical,
 * allocatable, allocated, free and used per resource, and headroom per flavor), "cluster"
 * (sums over every node and over the schedulable ones) and "headroom" (per flavor, summed
 * over the nodes). used has snap->n_nodes entries (NULL: none reported); label
 * ("key=value", NULL: all) keeps only the nodes carrying it. Caller frees. */
struct mu_flavor;
cJSON *mu_capacity_json(const struct mu_sched_snapshot *snap, const struct mu_sched_policy *policy,
                        const struct mu_flavor *flavors, size_t nflavors,
                        const struct mu_cap_used *used, const char *label);

struct mu_admit_req;
/* Placement and admission of ar->vm (tenant, name, uuid, flavor figures, image, group,
 * labels_json, nics, user_data filled by the caller), shared by POST /v1/vms and the
 * catalogue's approvals (h_requests.c): places with sched/ over a fresh snapshot, admits
 * with mu_store_vm_admit under the placement and quota policies (read lock), and places
 * again without a node that filled up meanwhile (up to 5 tries). ar's node fields are
 * overwritten. MU_EQUOTA names the level or says no node has room. */
int mu_api_vm_place_admit(struct mu_app *app, struct mu_admit_req *ar, const char **labels,
                          size_t nlabels, const struct mu_audit_rec *rec, int64_t *ret_vm_id,
                          int64_t *ret_op_id, struct mu_err *err);

/* Shared by handlers: a list answer {"items": items, "next_after": last id or null}. */
cJSON *mu_h_list_answer(cJSON *items, size_t n, int limit, int64_t last_id);

#endif
