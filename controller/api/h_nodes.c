/* /v1/nodes: hypervisor nodes. The operator registers a node by name and libvirt URI; the
 * controller reads its capacity and capabilities through the node's worker (ops/), and
 * the operator's state (active / maintenance / draining) stays apart from health. */
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "fleet/health.h"
#include "mutualis/json.h"
#include "mutualis/validate.h"
#include "store/network.h"
#include "store/provision.h"
#include "store/telemetry.h"
#include "virt/virt.h"

#define MU_PROBE_TIMEOUT_MS 20000

static cJSON *node_json(struct mu_req *req, const struct mu_node *n)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", n->id);
    mu_json_add_str(o, "name", n->name);
    mu_json_add_str(o, "uri", n->uri);
    mu_json_add_str(o, "pool", n->pool);
    mu_json_add_str(o, "state", n->op_state);
    mu_json_add_str(o, "health", n->health);
    mu_json_add_time(o, "health_since", n->health_ms);
    mu_json_add_time(o, "last_report_at", n->last_report_ms);
    mu_json_add_str(o, "enrolment", n->enrolment);
    {
        char underlay[MU_IPV4_TEXT_MAX] = "";
        struct mu_err uerr = {0};

        /* The VXLAN underlay address ("" until the operator sets it). */
        mu_store_node_underlay(req->app->store, n->id, underlay, &uerr);
        mu_json_add_str(o, "underlay_ip", underlay);
    }
    cJSON *labels = n->labels_json ? cJSON_Parse(n->labels_json) : NULL;
    cJSON_AddItemToObject(o, "labels", labels ? labels : mu_json_obj());
    cJSON *cap = mu_json_obj();
    mu_json_add_i64(cap, "cpus", n->cpus);
    mu_json_add_i64(cap, "memory_mib", n->mem_mib);
    mu_json_add_i64(cap, "disk_gib", n->disk_gib);
    if (n->reserved_mem_mib >= 0)
        mu_json_add_i64(cap, "reserved_memory_mib", n->reserved_mem_mib);
    else
        mu_json_add_null(cap, "reserved_memory_mib");
    mu_json_add_str(cap, "virtualization", n->kvm ? "kvm" : "qemu");
    mu_json_add_time(cap, "read_at", n->info_ms);
    cJSON_AddItemToObject(o, "capacity", cap);
    cJSON *alloc = mu_json_obj();
    mu_json_add_i64(alloc, "vcpus", n->alloc_vcpus);
    mu_json_add_i64(alloc, "ram_mib", n->alloc_ram_mib);
    mu_json_add_i64(alloc, "disk_gib", n->alloc_disk_gib);
    mu_json_add_i64(alloc, "vms", n->vm_count);
    cJSON_AddItemToObject(o, "allocated", alloc);
    mu_json_add_str(o, "last_error", n->last_error);
    mu_json_add_time(o, "created_at", n->created_ms);
    mu_json_add_time(o, "updated_at", n->updated_ms);
    /* The agent's current certificate (null before its first): the expiry alert's view. */
    struct mu_node_cert_current cur;
    struct mu_err err = {0};
    if (mu_store_node_cert_current(req->app->store, n->id, &cur, &err) == 0) {
        cJSON *cert = mu_json_obj();
        mu_json_add_str(cert, "serial", cur.cert.serial);
        mu_json_add_time(cert, "not_after", cur.cert.not_after_ms);
        mu_json_add_bool(cert, "expiring",
                         mu_health_cert_expiring(cur.cert.not_after_ms, mu_now_ms()));
        cJSON_AddItemToObject(o, "certificate", cert);
    } else {
        mu_json_add_null(o, "certificate");
    }
    return o;
}

/* Labels: an object of short identifiers, {"site": "paris-1", "zone": "a"}. Returns the
 * normalised JSON text (caller frees) or NULL with err set. */
static char *labels_from_json(const cJSON *labels, struct mu_err *err)
{
    if (!cJSON_IsObject(labels)) {
        mu_err_setf(err, MU_EINVAL, "labels",
                    "labels must be an object of key: value pairs, e.g. {\"site\": \"a\"}");
        return NULL;
    }
    if (cJSON_GetArraySize(labels) > 32) {
        mu_err_setf(err, MU_EINVAL, "labels", "a node has at most 32 labels");
        return NULL;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, labels)
    {
        if (!mu_ident_valid(it->string) || !cJSON_IsString(it) ||
            !mu_ident_valid(it->valuestring)) {
            mu_err_setf(err, MU_EINVAL, "labels",
                        "label keys and values must be 1-63 characters of a-z, 0-9, '.', '_' "
                        "or '-'");
            return NULL;
        }
    }
    return mu_json_print(labels);
}

static int load_node(struct mu_req *req, struct mu_node *ret, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "node", &id, err);
    if (r < 0)
        return r;
    return mu_store_node_get(req->app->store, id, ret, err);
}

static int node_answer(struct mu_req *req, int64_t id, int status, struct mu_resp *resp,
                       struct mu_err *err)
{
    struct mu_node n = {0};
    int r = mu_store_node_get(req->app->store, id, &n, err);
    if (r < 0)
        return r;
    resp->json = node_json(req, &n);
    resp->status = status;
    if (strcmp(n.op_state, "draining") == 0 || strcmp(n.op_state, "maintenance") == 0) {
        /* What still runs there: the operator moves or stops these before taking the node
         * away. */
        struct mu_vm_filter f = {.node_id = id, .limit = 1000};
        struct mu_vm *vms = NULL;
        size_t nv = 0;
        if (mu_store_vm_list(req->app->store, &f, &vms, &nv, err) == 0) {
            cJSON *arr = mu_json_arr();
            for (size_t i = 0; i < nv; i++) {
                cJSON *v = mu_json_obj();
                mu_json_add_i64(v, "id", vms[i].id);
                mu_json_add_str(v, "name", vms[i].name);
                mu_json_add_i64(v, "tenant_id", vms[i].tenant_id);
                mu_json_add_str(v, "state", vms[i].observed_state);
                cJSON_AddItemToArray(arr, v);
            }
            cJSON_AddItemToObject(resp->json, "remaining_vms", arr);
            mu_vms_free(vms, nv);
        }
    }
    mu_node_clear(&n);
    return MU_OK;
}

int mu_h_node_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_node *ns = NULL;
    size_t n = 0;
    int r = mu_store_node_list(req->app->store, &ns, &n, err);
    if (r < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, node_json(req, &ns[i]));
    resp->json = mu_h_list_answer(items, n, 0, 0);
    mu_nodes_free(ns, n);
    return MU_OK;
}

int mu_h_node_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {
        "name", "uri", "pool", "pool_path", "labels", "reserved_memory_mib", NULL};
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    struct mu_node n = {.reserved_mem_mib = -1};
    const char *name = NULL, *uri = NULL, *pool = "mutualis", *pool_path = NULL;
    const cJSON *labels = NULL;
    MU_AUTOFREE char *labels_text = NULL;
    int r = mu_json_expect_object(body, allowed, "node", err);
    if (r >= 0)
        r = mu_json_get_str(body, "name", true, 63, &name, err);
    if (r >= 0 && !mu_ident_valid(name))
        r = mu_err_setf(err, MU_EINVAL, "name",
                        "name must be 1-63 characters of a-z, 0-9, '.', '_' or '-'");
    if (r >= 0)
        r = mu_json_get_str(body, "uri", true, 1024, &uri, err);
    if (r >= 0 && !mu_virt_uri_valid(uri))
        r = mu_err_setf(err, MU_EINVAL, "uri",
                        "uri must be a libvirt URI (qemu:///system, qemu+ssh://user@host/system, "
                        "qemu+libssh://…, qemu+tls://…, test:///…) without spaces or quotes");
    if (r >= 0)
        r = mu_json_get_str(body, "pool", false, 63, &pool, err);
    if (r >= 0 && !mu_ident_valid(pool))
        r = mu_err_setf(err, MU_EINVAL, "pool", "pool must be a storage pool name (a-z, 0-9, -)");
    if (r >= 0 && (r = mu_json_get_str(body, "pool_path", false, 1024, &pool_path, err)) == 0 &&
        (pool_path[0] != '/' || strstr(pool_path, "..") ||
         strspn(pool_path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") !=
             strlen(pool_path)))
        r = mu_err_setf(err, MU_EINVAL, "pool_path",
                        "pool_path must be an absolute path of letters, digits, '.', '_', '-' "
                        "and '/'");
    if (r >= 0 && (r = mu_json_get_object(body, "labels", false, &labels, err)) == 0) {
        labels_text = labels_from_json(labels, err);
        if (!labels_text)
            r = err->code;
    }
    if (r >= 0)
        r = mu_json_get_i64(body, "reserved_memory_mib", false, 0, 1 << 24, &n.reserved_mem_mib,
                            err);
    if (r >= 0) {
        n.name = mu_xstrdup(name);
        n.uri = mu_xstrdup(uri);
        n.pool = mu_xstrdup(pool);
        n.pool_path = mu_xstrdup(pool_path);
        n.labels_json = mu_xstrdup(labels_text ? labels_text : "{}");
    }
    cJSON_Delete(body);
    if (r < 0) {
        mu_node_clear(&n);
        return r;
    }
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("node:%s", n.name);
    mu_req_audit(req, &rec, 0, target);
    int64_t id = 0;
    r = mu_store_node_insert(req->app->store, &n, &rec, &id, err);
    mu_node_clear(&n);
    if (r < 0)
        return r;
    /* Read capacity now; an unreachable node is registered all the same, with the error. */
    if (req->app->ops) {
        struct mu_err perr = {0};
        mu_ops_node_probe(req->app->ops, id, MU_PROBE_TIMEOUT_MS, &perr);
    }
    resp->location = mu_xasprintf("/v1/nodes/%lld", (long long)id);
    return node_answer(req, id, 201, resp, err);
}

int mu_h_node_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "node", &id, err);
    if (r < 0)
        return r;
    return node_answer(req, id, 200, resp, err);
}

int mu_h_node_update(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"labels", "underlay_ip", NULL};
    struct mu_node n = {0};
    int r = load_node(req, &n, err);
    if (r < 0)
        return r;
    int64_t id = n.id;
    mu_node_clear(&n);
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    const cJSON *labels = NULL;
    const char *underlay = NULL;
    MU_AUTOFREE char *text = NULL;
    MU_AUTOFREE char *underlay_copy = NULL;
    r = mu_json_expect_object(body, allowed, "node", err);
    if (r >= 0 && (r = mu_json_get_object(body, "labels", false, &labels, err)) == 0) {
        text = labels_from_json(labels, err);
        if (!text)
            r = err->code;
    }
    /* underlay_ip: the node's VXLAN underlay address ("" clears it). */
    if (r >= 0 && cJSON_GetObjectItemCaseSensitive(body, "underlay_ip")) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(body, "underlay_ip");
        if (cJSON_IsString(u) && strlen(u->valuestring) < MU_IPV4_TEXT_MAX)
            underlay = u->valuestring;
        else
            r = mu_err_setf(err, MU_EINVAL, "underlay_ip",
                            "underlay_ip must be an IPv4 address like \"10.99.0.11\", or \"\" "
                            "to clear it");
    }
    if (r >= 0 && !text && !underlay)
        r = mu_err_set(err, MU_EINVAL, "give \"labels\" and/or \"underlay_ip\" to change");
    if (r >= 0 && underlay) {
        uint32_t a;
        underlay_copy = mu_xstrdup(underlay);
        if (underlay[0] && mu_ipv4_parse(underlay, &a) < 0)
            r = mu_err_setf(err, MU_EINVAL, "underlay_ip",
                            "underlay_ip must be an IPv4 address like \"10.99.0.11\", or \"\" "
                            "to clear it");
    }
    cJSON_Delete(body);
    if (r < 0)
        return r;
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("node/%lld", (long long)id);
    mu_req_audit(req, &rec, 0, target);
    rec.detail = text;
    /* Both changes are checked before either is made; each is audited. */
    if (underlay_copy)
        r = mu_store_node_set_underlay(req->app->store, id, underlay_copy, &rec, err);
    if (r >= 0 && text)
        r = mu_store_node_set_labels(req->app->store, id, text, &rec, err);
    if (r < 0)
        return r;
    return node_answer(req, id, 200, resp, err);
}

static int node_set_state(struct mu_req *req, struct mu_resp *resp, const char *state,
                          struct mu_err *err)
{
    struct mu_node n = {0};
    int r = load_node(req, &n, err);
    if (r < 0)
        return r;
    int64_t id = n.id;
    MU_AUTOFREE char *detail = mu_xasprintf("%s -> %s", n.op_state, state);
    mu_node_clear(&n);
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("node/%lld", (long long)id);
    mu_req_audit(req, &rec, 0, target);
    rec.detail = detail;
    r = mu_store_node_set_state(req->app->store, id, state, &rec, err);
    if (r < 0)
        return r;
    return node_answer(req, id, 200, resp, err);
}

int mu_h_node_maintenance(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    return node_set_state(req, resp, "maintenance", err);
}

int mu_h_node_drain(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    return node_set_state(req, resp, "draining", err);
}

int mu_h_node_activate(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    return node_set_state(req, resp, "active", err);
}

int mu_h_node_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_node n = {0};
    int r = load_node(req, &n, err);
    if (r < 0)
        return r;
    int64_t id = n.id;
    mu_node_clear(&n);
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("node/%lld", (long long)id);
    mu_req_audit(req, &rec, 0, target);
    r = mu_store_node_delete(req->app->store, id, &rec, err);
    if (r < 0)
        return r;
    if (req->app->ops)
        mu_ops_node_forget(req->app->ops, id);
    resp->status = 204;
    return MU_OK;
}
