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
int mu_h_quota_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_quota_set(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);
int mu_h_agent_report(struct mu_req *req, struct mu_resp *resp, struct mu_err *err);

/* Shared by handlers: a list answer {"items": items, "next_after": last id or null}. */
cJSON *mu_h_list_answer(cJSON *items, size_t n, int limit, int64_t last_id);

#endif
