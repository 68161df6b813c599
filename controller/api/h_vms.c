/* /v1/vms and /v1/operations: VMs are created through placement (sched/) and admission
 * (one store transaction that re-checks quotas at every level and the node's capacity);
 * every action answers 202 with a persisted operation that ops/ runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "mutualis/json.h"
#include "mutualis/validate.h"
#include "sched/sched.h"
#include "store/network.h"
#include "store/provision.h"
#include "store/telemetry.h"
#include "tenancy/quotas.h"
#include "virt/virt.h"

#define MU_ADMIT_RETRIES 5

static cJSON *vm_json(const struct mu_vm *v)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", v->id);
    mu_json_add_str(o, "uuid", v->uuid);
    mu_json_add_i64(o, "tenant_id", v->tenant_id);
    mu_json_add_str(o, "name", v->name);
    mu_json_add_i64(o, "flavor_id", v->flavor_id);
    mu_json_add_i64(o, "vcpus", v->vcpus);
    mu_json_add_i64(o, "ram_mib", v->ram_mib);
    mu_json_add_i64(o, "disk_gib", v->disk_gib);
    mu_json_add_i64(o, "image_id", v->image_id);
    mu_json_add_i64_pos(o, "node_id", v->node_id);
    mu_json_add_i64_pos(o, "group_id", v->group_id);
    cJSON *labels = v->labels_json ? cJSON_Parse(v->labels_json) : NULL;
    cJSON_AddItemToObject(o, "required_labels", labels ? labels : mu_json_arr());
    cJSON *desired = mu_json_obj();
    mu_json_add_str(desired, "state", v->desired_state);
    mu_json_add_time(desired, "since", v->desired_ms);
    cJSON_AddItemToObject(o, "desired", desired);
    cJSON *observed = mu_json_obj();
    mu_json_add_str(observed, "state", v->observed_state);
    mu_json_add_time(observed, "since", v->observed_ms);
    cJSON_AddItemToObject(o, "observed", observed);
    mu_json_add_str(o, "last_error", v->last_error);
    mu_json_add_time(o, "created_at", v->created_ms);
    mu_json_add_time(o, "updated_at", v->updated_ms);
    return o;
}

/* The VM's NICs: [{"network", "network_name", "mac", "ip", "prefix", "gateway", "mtu",
 * "public"}] (network names looked up once per NIC: a VM has a handful). */
static void add_nics(struct mu_app *app, cJSON *o, int64_t vm_id)
{
    struct mu_nic *nics = NULL;
    struct mu_err err = {0};
    size_t n = 0;
    cJSON *arr = mu_json_arr();
    if (mu_store_vm_nics(app->store, vm_id, &nics, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            struct mu_network net = {0};
            cJSON *x = mu_json_obj();
            mu_json_add_i64(x, "network", nics[i].network_id);
            if (mu_store_network_get(app->store, nics[i].network_id, &net, &err) == 0)
                mu_json_add_str(x, "network_name", net.name);
            mu_network_clear(&net);
            mu_json_add_str(x, "mac", nics[i].mac);
            mu_json_add_str(x, "ip", nics[i].ip);
            mu_json_add_i64(x, "prefix", nics[i].prefix);
            mu_json_add_str(x, "gateway", nics[i].gateway[0] ? nics[i].gateway : NULL);
            mu_json_add_i64(x, "mtu", nics[i].mtu);
            mu_json_add_bool(x, "public", nics[i].public_addr);
            cJSON_AddItemToArray(arr, x);
        }
    }
    free(nics);
    cJSON_AddItemToObject(o, "nics", arr);
}

/* "nics": [{"network": <id or name>, "ip"?: "a.b.c.d"}] into reqs (names resolved among the
 * tenant's own networks and the shared provider networks; ips borrowed from body). */
static int read_nics(struct mu_app *app, const cJSON *body, int64_t tenant_id,
                     struct mu_nic_req *reqs, size_t max, size_t *ret_n, struct mu_err *err)
{
    static const char *const allowed[] = {"network", "ip", NULL};
    const cJSON *arr = NULL, *it;
    size_t n = 0;
    int r = mu_json_get_array(body, "nics", false, &arr, err);
    *ret_n = 0;
    if (r != 0)
        return r < 0 ? r : MU_OK;
    if ((size_t)cJSON_GetArraySize(arr) > max)
        return mu_err_setf(err, MU_EINVAL, "nics", "a VM has at most %zu NICs", max);
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *net = cJSON_GetObjectItemCaseSensitive(it, "network");
        const char *ip = NULL;
        int64_t id = 0;
        if (!cJSON_IsObject(it) || mu_json_expect_object(it, allowed, "nic", err) < 0)
            return err->code ? err->code
                             : mu_err_setf(err, MU_EINVAL, "nics",
                                           "each NIC is {\"network\": <id or name>, \"ip\"?: "
                                           "\"10.0.0.5\"}");
        if (mu_json_get_str(it, "ip", false, MU_IPV4_TEXT_MAX - 1, &ip, err) < 0)
            return err->code;
        if (cJSON_IsString(net) && mu_ident_valid(net->valuestring)) {
            r = mu_store_network_find(app->store, tenant_id, net->valuestring, &id, err);
        } else if (cJSON_IsNumber(net) && mu_json_int_value(net, 1, INT64_MAX, &id) == 0) {
            struct mu_network nw = {0};
            r = mu_store_network_get(app->store, id, &nw, err);
            /* Another tenant's network is as absent as a missing one. */
            if (r == 0 && nw.tenant_id != tenant_id &&
                !(strcmp(nw.kind, "provider") == 0 && nw.shared))
                r = mu_err_set(err, MU_ENOTFOUND, "no network %lld", (long long)id);
            mu_network_clear(&nw);
        } else {
            r = mu_err_setf(err, MU_EINVAL, "nics", "nics[%zu].network must be an id or a name", n);
        }
        if (r == MU_ENOTFOUND) {
            mu_err_clear(err);
            r = mu_err_setf(err, MU_EINVAL, "nics",
                            "nics[%zu]: no such network for this tenant (its own networks and "
                            "the provider networks open to tenants)",
                            n);
        }
        if (r < 0)
            return r;
        reqs[n].network_id = id;
        reqs[n].ip = ip;
        n++;
    }
    *ret_n = n;
    return MU_OK;
}

static cJSON *op_json(const struct mu_op *op)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", op->id);
    mu_json_add_str(o, "kind", op->kind);
    mu_json_add_i64(o, "vm_id", op->vm_id);
    mu_json_add_i64_pos(o, "node_id", op->node_id);
    mu_json_add_str(o, "state", op->state);
    mu_json_add_str(o, "step", op->step);
    mu_json_add_i64(o, "attempts", op->attempts);
    mu_json_add_str(o, "error", op->error);
    mu_json_add_str(o, "requested_by", op->actor);
    mu_json_add_str(o, "request_id", op->request_id);
    mu_json_add_time(o, "created_at", op->created_ms);
    mu_json_add_time(o, "updated_at", op->updated_ms);
    mu_json_add_time(o, "finished_at", op->finished_ms);
    return o;
}

/* 202 answer: {"vm": …, "operation": …} with Location on the operation. */
static int accepted(struct mu_req *req, int64_t vm_id, int64_t op_id, struct mu_resp *resp,
                    struct mu_err *err)
{
    struct mu_vm v = {0};
    struct mu_op op = {0};
    int r = mu_store_vm_get(req->app->store, vm_id, &v, err);
    if (r == 0)
        r = mu_store_op_get(req->app->store, op_id, &op, err);
    if (r == 0) {
        resp->json = mu_json_obj();
        cJSON *vj = vm_json(&v);
        add_nics(req->app, vj, v.id);
        cJSON_AddItemToObject(resp->json, "vm", vj);
        cJSON_AddItemToObject(resp->json, "operation", op_json(&op));
        resp->status = 202;
        resp->location = mu_xasprintf("/v1/operations/%lld", (long long)op_id);
    }
    mu_vm_clear(&v);
    mu_op_clear(&op);
    if (req->app->ops)
        mu_ops_kick(req->app->ops);
    return r;
}

/* A reference in a body to something that does not exist is a bad field of that body
 * (400 naming the field), not a missing resource at the request's address (404). */
static int not_found_is_field(int r, const char *field, struct mu_err *err)
{
    if (r != MU_ENOTFOUND)
        return r;
    err->code = MU_EINVAL;
    snprintf(err->field, sizeof err->field, "%s", field);
    return MU_EINVAL;
}

/* The body's "flavor": an id or a name. */
static int flavor_from_body(struct mu_req *req, const cJSON *body, struct mu_flavor *ret,
                            struct mu_err *err)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, "flavor");
    int r;
    if (cJSON_IsString(f) && mu_ident_valid(f->valuestring))
        r = mu_store_flavor_get_by_name(req->app->store, f->valuestring, ret, err);
    else if (cJSON_IsNumber(f) && mu_json_int_value(f, 1, INT64_MAX, &ret->id) == 0)
        r = mu_store_flavor_get(req->app->store, ret->id, ret, err);
    else
        r = mu_err_setf(err, MU_EINVAL, "flavor", "flavor (an id or a name) is required");
    return not_found_is_field(r, "flavor", err);
}

/* Loads {id} and checks scope: another tenant's VM answers 404. */
static int load_vm(struct mu_req *req, struct mu_vm *ret, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "vm", &id, err);
    if (r < 0)
        return r;
    r = mu_store_vm_get(req->app->store, id, ret, err);
    if (r < 0)
        return r;
    if (mu_req_check_tenant(req, ret->tenant_id, err) < 0) {
        mu_vm_clear(ret);
        mu_err_clear(err);
        return mu_err_set(err, MU_ENOTFOUND, "no vm %lld", (long long)id);
    }
    return MU_OK;
}

/* Required labels: ["site=paris-1", …]. Fills labels (borrowed from body) and the JSON
 * text to store. */
static int read_labels(const cJSON *body, const char **labels, size_t *ret_n, char **ret_json,
                       struct mu_err *err)
{
    const cJSON *arr = NULL;
    int r = mu_json_get_array(body, "required_labels", false, &arr, err);
    *ret_n = 0;
    if (r != 0)
        return r;
    if (cJSON_GetArraySize(arr) > 8)
        return mu_err_setf(err, MU_EINVAL, "required_labels", "at most 8 required labels");
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const char *eq = cJSON_IsString(it) ? strchr(it->valuestring, '=') : NULL;
        bool ok = eq != NULL;
        if (ok) {
            MU_AUTOFREE char *key = mu_xstrndup(it->valuestring, (size_t)(eq - it->valuestring));
            ok = mu_ident_valid(key) && mu_ident_valid(eq + 1);
        }
        if (!ok)
            return mu_err_setf(err, MU_EINVAL, "required_labels",
                               "each required label is \"key=value\" with a-z, 0-9, '.', '_', "
                               "'-' on both sides");
        labels[(*ret_n)++] = it->valuestring;
    }
    *ret_json = mu_json_print(arr);
    return MU_OK;
}

/* The placement path shared by POST /v1/vms and the catalogue's approvals (handlers.h). */
int mu_api_vm_place_admit(struct mu_app *app, struct mu_admit_req *ar, const char **labels,
                          size_t nlabels, const struct mu_audit_rec *rec, int64_t *ret_vm_id,
                          int64_t *ret_op_id, struct mu_err *err)
{
    int64_t vm_id = 0, op_id = 0;
    int r;
    struct mu_sched_snapshot *snap = mu_api_snapshot_build(app->store, ar->vm.group_id, false, err);
    if (!snap)
        return err->code;
    int64_t exclude[MU_ADMIT_RETRIES];
    size_t nexclude = 0;
    pthread_rwlock_rdlock(&app->policy_lock);
    struct mu_sched_policy policy = *app->placement;
    struct mu_quota_defaults defaults = mu_quota_policy_defaults(app->quotas);
    for (;;) {
        struct mu_sched_request sr = {.vcpus = ar->vm.vcpus,
                                      .ram_mib = ar->vm.ram_mib,
                                      .disk_gib = ar->vm.disk_gib,
                                      .group_id = ar->vm.group_id,
                                      .labels = labels,
                                      .n_labels = nlabels,
                                      .exclude = exclude,
                                      .n_exclude = nexclude};
        struct mu_sched_decision d;
        r = mu_sched_place(snap, &policy, &sr, &d, err);
        if (r < 0)
            break;
        struct mu_sched_capacity cap;
        mu_sched_node_capacity(&snap->nodes[d.node_index], &policy, &cap);
        ar->node_id = d.node_id;
        ar->node_cap_vcpus = cap.vcpus.allocatable;
        ar->node_cap_ram_mib = cap.ram_mib.allocatable;
        ar->node_cap_disk_gib = cap.disk_gib.allocatable;
        ar->allow_unknown_health = policy.unknown_health_eligible;
        ar->defaults = &defaults;
        r = mu_store_vm_admit(app->store, ar, rec, &vm_id, &op_id, err);
        if (r != MU_ERETRY || nexclude == MU_ADMIT_RETRIES - 1)
            break;
        /* The node filled up since the snapshot: place again without it. */
        exclude[nexclude++] = d.node_id;
        mu_err_clear(err);
    }
    pthread_rwlock_unlock(&app->policy_lock);
    ar->defaults = NULL; /* pointed at this frame */
    mu_sched_snapshot_free(snap);
    if (r == MU_ERETRY) {
        mu_err_clear(err);
        r = mu_err_set(err, MU_EQUOTA,
                       "no node has room any more: %zu nodes filled up while this VM was "
                       "being placed; try again",
                       nexclude + 1);
    }
    if (r >= 0) {
        *ret_vm_id = vm_id;
        *ret_op_id = op_id;
    }
    return r;
}

int mu_h_vm_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"tenant_id", "name",      "flavor",
                                          "image_id",  "group_id",  "required_labels",
                                          "nics",      "user_data", NULL};
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    struct mu_admit_req ar = {0};
    struct mu_flavor fl = {0};
    struct mu_image im = {0};
    struct mu_tenant tn = {0};
    const char *name = NULL;
    const char *labels[8];
    size_t nlabels = 0;
    char *labels_json = NULL;
    MU_AUTOFREE char *target = NULL;
    int64_t vm_id = 0, op_id = 0;
    struct mu_nic_req nics[8];
    size_t n_nics = 0;
    const char *user_data = NULL;

    int r = mu_json_expect_object(body, allowed, "vm", err);
    if (r >= 0)
        r = mu_json_get_i64(body, "tenant_id", true, 1, INT64_MAX, &ar.vm.tenant_id, err);
    if (r >= 0)
        r = mu_json_get_str(body, "name", true, 63, &name, err);
    if (r >= 0 && !mu_ident_valid(name))
        r = mu_err_setf(err, MU_EINVAL, "name",
                        "name must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting "
                        "with a letter or digit");
    if (r >= 0) {
        r = flavor_from_body(req, body, &fl, err);
    }
    if (r >= 0)
        r = mu_json_get_i64(body, "image_id", true, 1, INT64_MAX, &ar.vm.image_id, err);
    if (r >= 0 && (r = mu_store_image_get(req->app->store, ar.vm.image_id, &im, err)) == 0 &&
        strcmp(im.status, "ready") != 0)
        r = mu_err_setf(err, MU_ECONFLICT, "image_id", "image %lld is not uploaded yet (status %s)",
                        (long long)im.id, im.status);
    r = not_found_is_field(r, "image_id", err);
    if (r >= 0)
        r = mu_json_get_i64(body, "group_id", false, 1, INT64_MAX, &ar.vm.group_id, err);
    if (r >= 0)
        r = read_labels(body, labels, &nlabels, &labels_json, err);
    if (r >= 0)
        r = mu_req_check_tenant(req, ar.vm.tenant_id, err);
    if (r >= 0)
        r = mu_store_tenant_get(req->app->store, ar.vm.tenant_id, &tn, err);
    if (r >= 0 && strcmp(tn.status, "active") != 0)
        r = mu_err_setf(err, MU_ECONFLICT, "tenant_id",
                        "%s is %s: no new VMs until it is active again", tn.name, tn.status);
    if (r >= 0)
        r = read_nics(req->app, body, ar.vm.tenant_id, nics, MU_ARRAY_LEN(nics), &n_nics, err);
    if (r >= 0)
        r = mu_json_get_str(body, "user_data", false, 64 * 1024, &user_data, err);
    if (r >= 0 && ar.vm.group_id > 0) {
        struct mu_group g = {0};
        r = mu_store_group_get(req->app->store, ar.vm.group_id, &g, err);
        if (r == 0 && g.tenant_id != ar.vm.tenant_id)
            r = mu_err_setf(err, MU_EINVAL, "group_id", "group %lld belongs to another tenant",
                            (long long)g.id);
        r = not_found_is_field(r, "group_id", err);
        mu_group_clear(&g);
    }
    if (r < 0)
        goto out;

    ar.vm.name = mu_xstrdup(name);
    mu_uuid_generate(ar.vm.uuid);
    ar.vm.flavor_id = fl.id;
    ar.vm.vcpus = fl.vcpus;
    ar.vm.ram_mib = fl.ram_mib;
    ar.vm.disk_gib = fl.disk_gib;
    ar.vm.labels_json = labels_json;
    labels_json = NULL;
    ar.nics = nics;
    ar.n_nics = n_nics;
    ar.user_data = user_data;

    struct mu_audit_rec rec;
    target = mu_xasprintf("vm:%s", ar.vm.name);
    mu_req_audit(req, &rec, ar.vm.tenant_id, target);
    r = mu_api_vm_place_admit(req->app, &ar, labels, nlabels, &rec, &vm_id, &op_id, err);
    if (r >= 0)
        r = accepted(req, vm_id, op_id, resp, err);
out:
    cJSON_Delete(body);
    free(labels_json);
    mu_vm_clear(&ar.vm);
    mu_flavor_clear(&fl);
    mu_image_clear(&im);
    mu_tenant_clear(&tn);
    return r;
}

int mu_h_vm_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_vm_filter f = {0};
    int r = mu_req_page(req, &f.limit, &f.after_id, err);
    if (r < 0)
        return r;
    const char *v;
    if ((v = mu_req_query(req, "tenant"))) {
        if (mu_parse_i64(v, 1, INT64_MAX, &f.tenant_id) != 0)
            return mu_err_setf(err, MU_EINVAL, "tenant", "tenant must be a tenant id");
        if ((r = mu_req_check_tenant(req, f.tenant_id, err)) < 0)
            return r;
    }
    if ((v = mu_req_query(req, "node")) && mu_parse_i64(v, 1, INT64_MAX, &f.node_id) != 0)
        return mu_err_setf(err, MU_EINVAL, "node", "node must be a node id");
    f.state = mu_req_query(req, "state");
    if (f.state && !mu_ident_valid(f.state))
        return mu_err_setf(err, MU_EINVAL, "state", "state must be a VM state like running");
    if (!mu_principal_is_global(&req->principal))
        f.scope_id = req->principal.tenant_id;
    struct mu_vm *vs = NULL;
    size_t n = 0;
    if ((r = mu_store_vm_list(req->app->store, &f, &vs, &n, err)) < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++) {
        cJSON *vj = vm_json(&vs[i]);
        add_nics(req->app, vj, vs[i].id);
        cJSON_AddItemToArray(items, vj);
    }
    resp->json = mu_h_list_answer(items, n, f.limit, n ? vs[n - 1].id : 0);
    mu_vms_free(vs, n);
    return MU_OK;
}

int mu_h_vm_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_vm v = {0};
    int r = load_vm(req, &v, err);
    if (r < 0)
        return r;
    resp->json = vm_json(&v);
    add_nics(req->app, resp->json, v.id);
    mu_vm_clear(&v);
    return MU_OK;
}

static int vm_action(struct mu_req *req, struct mu_resp *resp, const char *kind,
                     const char *desired, struct mu_err *err)
{
    struct mu_vm v = {0};
    int r = load_vm(req, &v, err);
    if (r < 0)
        return r;
    int64_t id = v.id, tenant = v.tenant_id;
    mu_vm_clear(&v);
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("vm/%lld", (long long)id);
    mu_req_audit(req, &rec, tenant, target);
    int64_t op_id = 0;
    r = mu_store_vm_request(req->app->store, id, kind, desired, &rec, &op_id, err);
    if (r < 0)
        return r;
    return accepted(req, id, op_id, resp, err);
}

int mu_h_vm_start(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    return vm_action(req, resp, "vm.start", "running", err);
}

int mu_h_vm_stop(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    return vm_action(req, resp, "vm.stop", "stopped", err);
}

int mu_h_vm_reboot(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    return vm_action(req, resp, "vm.reboot", "running", err);
}

int mu_h_vm_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    return vm_action(req, resp, "vm.delete", "deleted", err);
}

int mu_h_vm_resize(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"flavor", NULL};
    struct mu_vm v = {0};
    int r = load_vm(req, &v, err);
    if (r < 0)
        return r;
    cJSON *body = mu_req_json(req, err);
    struct mu_flavor fl = {0};
    struct mu_node node = {0};
    int64_t op_id = 0;
    if (!body) {
        r = err->code;
        goto out;
    }
    r = mu_json_expect_object(body, allowed, "resize", err);
    if (r >= 0) {
        r = flavor_from_body(req, body, &fl, err);
    }
    if (r >= 0 && fl.disk_gib < v.disk_gib)
        r = mu_err_setf(err, MU_EINVAL, "flavor",
                        "flavor %s has a smaller disk (%lld GiB) than the VM's %lld GiB: disks "
                        "are never shrunk",
                        fl.name, (long long)fl.disk_gib, (long long)v.disk_gib);
    if (r >= 0)
        r = mu_store_node_get(req->app->store, v.node_id, &node, err);
    if (r >= 0) {
        struct mu_sched_snapshot *snap = mu_sched_snapshot_new(1);
        struct mu_sched_node *sn = mu_sched_snapshot_add_node(snap, node.id, node.name);
        sn->cpus = node.cpus;
        sn->mem_mib = node.mem_mib;
        sn->disk_gib = node.disk_gib;
        sn->reserved_mem_mib = node.reserved_mem_mib;
        struct mu_sched_capacity cap;
        pthread_rwlock_rdlock(&req->app->policy_lock);
        mu_sched_node_capacity(sn, req->app->placement, &cap);
        struct mu_quota_defaults defaults = mu_quota_policy_defaults(req->app->quotas);
        struct mu_audit_rec rec;
        MU_AUTOFREE char *target = mu_xasprintf("vm/%lld", (long long)v.id);
        MU_AUTOFREE char *detail = mu_xasprintf("flavor %s", fl.name);
        mu_req_audit(req, &rec, v.tenant_id, target);
        rec.detail = detail;
        r = mu_store_vm_resize(req->app->store, v.id, fl.id, fl.vcpus, fl.ram_mib, fl.disk_gib,
                               cap.vcpus.allocatable, cap.ram_mib.allocatable,
                               cap.disk_gib.allocatable, &defaults, &rec, &op_id, err);
        pthread_rwlock_unlock(&req->app->policy_lock);
        mu_sched_snapshot_free(snap);
    }
    if (r >= 0)
        r = accepted(req, v.id, op_id, resp, err);
out:
    cJSON_Delete(body);
    mu_flavor_clear(&fl);
    mu_node_clear(&node);
    mu_vm_clear(&v);
    return r;
}

int mu_h_op_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "operation", &id, err);
    struct mu_op op = {0};
    if (r < 0 || (r = mu_store_op_get(req->app->store, id, &op, err)) < 0)
        return r;
    if (!mu_principal_is_global(&req->principal)) {
        /* The VM may be gone (purged after delete): then only operators see it. */
        struct mu_vm v = {0};
        struct mu_err verr = {0};
        bool visible =
            mu_store_vm_get(req->app->store, op.vm_id, &v, &verr) == 0 &&
            mu_store_tenant_in_subtree(req->app->store, req->principal.tenant_id, v.tenant_id);
        mu_vm_clear(&v);
        if (!visible) {
            mu_op_clear(&op);
            return mu_err_set(err, MU_ENOTFOUND, "no operation %lld", (long long)id);
        }
    }
    resp->json = op_json(&op);
    mu_op_clear(&op);
    return MU_OK;
}

/* ---- quotas ----------------------------------------------------------------------- */

static void add_limit(cJSON *o, const char *key, int64_t v)
{
    if (v == MU_UNLIMITED)
        mu_json_add_str(o, key, "unlimited");
    else
        mu_json_add_i64(o, key, v);
}

/* What the level's subtree really uses, from the agents' last samples of its VMs. */
static cJSON *actual_json(const struct mu_actual_use *a)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "ram_mib", a->mem_rss_kib / 1024);
    cJSON_AddNumberToObject(o, "disk_gib",
                            (double)(a->disk_alloc_bytes / (1 << 20)) / 1024.0); /* MiB grain */
    cJSON_AddNumberToObject(o, "cpu_time_s", (double)(a->cpu_time_ns / 1000000) / 1000.0);
    mu_json_add_i64(o, "vms_reporting", a->vms_reporting);
    mu_json_add_time(o, "measured_at", a->last_ms);
    return o;
}

int mu_h_quota_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "tenant", &id, err);
    if (r < 0 || (r = mu_req_check_tenant(req, id, err)) < 0)
        return r;
    struct mu_quota_level *lv = NULL;
    size_t n = 0;
    pthread_rwlock_rdlock(&req->app->policy_lock);
    struct mu_quota_defaults defaults = mu_quota_policy_defaults(req->app->quotas);
    r = mu_store_quota_levels(req->app->store, id, &defaults, &lv, &n, err);
    pthread_rwlock_unlock(&req->app->policy_lock);
    if (r < 0)
        return r;
    cJSON *levels = mu_json_arr();
    for (size_t i = 0; i < n; i++) {
        /* Tenant roles see the levels above them too: those limits bound them, and a
         * refusal names them ("CC du Pays X: memory 62 of 64 GiB used"). */
        cJSON *o = mu_json_obj();
        mu_json_add_i64(o, "tenant_id", lv[i].tenant_id);
        mu_json_add_str(o, "tenant", lv[i].tenant_name);
        cJSON *l = mu_json_obj();
        add_limit(l, "vcpus", lv[i].limits.vcpus);
        add_limit(l, "ram_mib", lv[i].limits.ram_mib);
        add_limit(l, "disk_gib", lv[i].limits.disk_gib);
        add_limit(l, "vms", lv[i].limits.vms);
        add_limit(l, "networks", lv[i].limits.networks);
        add_limit(l, "public_ips", lv[i].limits.public_ips);
        cJSON_AddItemToObject(o, "limits", l);
        mu_json_add_str(o, "limits_from", lv[i].explicit_limits ? "tenant" : "policy");
        cJSON *u = mu_json_obj();
        mu_json_add_i64(u, "vcpus", lv[i].usage.vcpus);
        mu_json_add_i64(u, "ram_mib", lv[i].usage.ram_mib);
        mu_json_add_i64(u, "disk_gib", lv[i].usage.disk_gib);
        mu_json_add_i64(u, "vms", lv[i].usage.vms);
        mu_json_add_i64(u, "networks", lv[i].usage.networks);
        mu_json_add_i64(u, "public_ips", lv[i].usage.public_ips);
        cJSON_AddItemToObject(o, "allocated", u);
        struct mu_actual_use a = {0};
        if (mu_store_tenant_actual(req->app->store, lv[i].tenant_id, &a, err) < 0) {
            cJSON_Delete(o);
            cJSON_Delete(levels);
            mu_quota_levels_free(lv, n);
            return err->code;
        }
        cJSON_AddItemToObject(o, "actual", actual_json(&a));
        cJSON_AddItemToArray(levels, o);
    }
    mu_quota_levels_free(lv, n);
    resp->json = mu_json_obj();
    mu_json_add_i64(resp->json, "tenant_id", id);
    cJSON_AddItemToObject(resp->json, "levels", levels);
    return MU_OK;
}

/* One limit: absent keeps the current value, else an integer or "unlimited". */
static int limit_field(const cJSON *body, const char *key, int64_t max, int64_t *inout,
                       struct mu_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    if (!v)
        return MU_OK;
    if (cJSON_IsString(v) && strcmp(v->valuestring, "unlimited") == 0) {
        *inout = MU_UNLIMITED;
        return MU_OK;
    }
    if (mu_json_int_value(v, 0, max, inout) == 0)
        return MU_OK;
    return mu_err_setf(err, MU_EINVAL, key,
                       "%s must be an integer between 0 and %lld, or \"unlimited\"", key,
                       (long long)max);
}

int mu_h_quota_set(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"vcpus",    "ram_mib",    "disk_gib", "vms",
                                          "networks", "public_ips", NULL};
    int64_t id;
    int r = mu_req_param_id(req, 0, "tenant", &id, err);
    if (r < 0 || (r = mu_req_check_tenant(req, id, err)) < 0)
        return r;
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    /* Start from the tenant's effective limits: a body may set only some of them. */
    struct mu_limits l = {0};
    struct mu_quota_level *lv = NULL;
    size_t n = 0;
    bool reset = cJSON_GetArraySize(body) == 0;
    r = mu_json_expect_object(body, allowed, "quota", err);
    if (r >= 0 && !reset) {
        pthread_rwlock_rdlock(&req->app->policy_lock);
        struct mu_quota_defaults defaults = mu_quota_policy_defaults(req->app->quotas);
        r = mu_store_quota_levels(req->app->store, id, &defaults, &lv, &n, err);
        pthread_rwlock_unlock(&req->app->policy_lock);
        if (r >= 0 && n > 0)
            l = lv[n - 1].limits;
        mu_quota_levels_free(lv, n);
    }
    if (r >= 0 && !reset) {
        r = limit_field(body, "vcpus", 1 << 20, &l.vcpus, err);
        if (r >= 0)
            r = limit_field(body, "ram_mib", (int64_t)1 << 40, &l.ram_mib, err);
        if (r >= 0)
            r = limit_field(body, "disk_gib", (int64_t)1 << 30, &l.disk_gib, err);
        if (r >= 0)
            r = limit_field(body, "vms", 1 << 24, &l.vms, err);
        if (r >= 0)
            r = limit_field(body, "networks", 1 << 20, &l.networks, err);
        if (r >= 0)
            r = limit_field(body, "public_ips", 1 << 24, &l.public_ips, err);
    }
    cJSON_Delete(body);
    if (r < 0)
        return r;
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("tenant/%lld/quota", (long long)id);
    mu_req_audit(req, &rec, id, target);
    if ((r = mu_store_quota_set(req->app->store, id, reset ? NULL : &l, &rec, err)) < 0)
        return r;
    return mu_h_quota_get(req, resp, err);
}
