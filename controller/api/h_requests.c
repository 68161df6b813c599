/* /v1/requests: a tenant asks for an app of the catalogue (catalog/catalog.h); an operator,
 * or the admin of an EPCI above the requesting commune where the item allows it, approves
 * or rejects; approval admits the VM at that moment (mu_api_vm_place_admit, the same path
 * as POST /v1/vms) with the tenant's default private network and, for a public item, a NIC
 * on the provider network, and the item's rendered user-data; the create operation runs
 * through ops/ and the prober (catalog/) reports ready or failed. Status changes are
 * audited and appended to the event feed by the store (store/requests.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "catalog/catalog.h"
#include "mutualis/json.h"
#include "mutualis/log.h"
#include "mutualis/validate.h"
#include "store/provision.h" /* before network.h, which uses its types */
#include "store/network.h"
#include "store/requests.h"
#include "tenancy/quotas.h"
#include "virt/virt.h"

#define JUSTIFICATION_MAX 2000 /* characters */
#define REASON_MAX        2000

static const char *const statuses[] = {"pending",      "approved", "rejected", "cancelled",
                                       "provisioning", "ready",    "failed",   NULL};

static cJSON *request_json(const struct mu_request *r)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", r->id);
    mu_json_add_i64(o, "tenant_id", r->tenant_id);
    mu_json_add_str(o, "tenant_name", r->tenant_name);
    mu_json_add_str(o, "item", r->item);
    mu_json_add_str(o, "flavor", r->flavor);
    cJSON *params = r->parameters ? cJSON_Parse(r->parameters) : NULL;
    cJSON_AddItemToObject(o, "parameters", params ? params : mu_json_obj());
    mu_json_add_str(o, "justification", r->justification);
    mu_json_add_str(o, "status", r->status);
    mu_json_add_str(o, "reason", r->reason);
    mu_json_add_i64_pos(o, "vm_id", r->vm_id);
    mu_json_add_i64_pos(o, "operation_id", r->op_id);
    mu_json_add_str(o, "requested_by", r->requested_by);
    mu_json_add_str(o, "decided_by", r->decided_by);
    mu_json_add_i64(o, "created_ms", r->created_ms);
    mu_json_add_i64(o, "updated_ms", r->updated_ms);
    mu_json_add_time(o, "created_at", r->created_ms);
    mu_json_add_time(o, "updated_at", r->updated_ms);
    return o;
}

/* Loads {id}; another tenant's request answers 404. */
static int load_request(struct mu_req *req, struct mu_request *ret, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "request", &id, err);
    if (r < 0 || (r = mu_store_request_get(req->app->store, id, ret, err)) < 0)
        return r;
    if (mu_req_check_tenant(req, ret->tenant_id, err) < 0) {
        mu_request_clear(ret);
        mu_err_clear(err);
        return mu_err_set(err, MU_ENOTFOUND, "no request %lld", (long long)id);
    }
    return MU_OK;
}

/* Code points of valid UTF-8 text. */
static size_t utf8_count(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Free text of a person (justification, reason): at most max characters, line breaks and
 * tabs allowed, no other control character. */
static bool free_text_ok(const char *s, size_t max)
{
    for (const char *p = s; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\n' && *p != '\r' && *p != '\t') || *p == 0x7f)
            return false;
    return utf8_count(s) <= max;
}

static void field_error(cJSON *errors, const char *field, const char *detail)
{
    cJSON *o = mu_json_obj();
    mu_json_add_str(o, "field", field);
    mu_json_add_str(o, "detail", detail);
    cJSON_AddItemToArray(errors, o);
}

/* A 400 problem document carrying every field error ("errors": [{"field", "detail"}]),
 * audited like the router audits a refusal. Takes errors. */
static int answer_invalid(struct mu_req *req, struct mu_resp *resp, cJSON *errors,
                          int64_t tenant_id)
{
    struct mu_err e = {.code = MU_EINVAL};
    int n = cJSON_GetArraySize(errors);
    const cJSON *first = cJSON_GetArrayItem(errors, 0);
    const char *fd = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "detail"));
    const char *ff = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "field"));
    if (n == 1)
        snprintf(e.detail, sizeof e.detail, "%s", fd ? fd : "invalid request");
    else
        snprintf(e.detail, sizeof e.detail, "%d fields need correcting; first, %s", n,
                 fd ? fd : "");
    snprintf(e.field, sizeof e.field, "%s", ff ? ff : "");
    resp->json = mu_problem_new(400, &e, req->request_id);
    cJSON_AddItemToObject(resp->json, "errors", errors);
    resp->status = 400;
    struct mu_audit_rec rec;
    struct mu_err aerr = {0};
    mu_req_audit(req, &rec, tenant_id, req->path);
    rec.outcome = "invalid";
    rec.detail = e.detail;
    if (mu_store_audit_append(req->app->store, &rec, &aerr) < 0)
        mu_log_error("audit append failed id=%s detail=\"%s\"", req->request_id, aerr.detail);
    return MU_OK;
}

/* What approval needs from the item, copied under the policy lock (a reload may free it). */
struct item_snap {
    char *image;
    bool private_net, public_net;
    int port;
    char *provider, *private_cidr;
    int64_t deadline_ms;
    char *user_data;
};

static void item_snap_clear(struct item_snap *s)
{
    free(s->image);
    free(s->provider);
    free(s->private_cidr);
    free(s->user_data);
    memset(s, 0, sizeof *s);
}

static int item_snap_take(struct mu_app *app, const struct mu_request *r, struct item_snap *ret,
                          struct mu_err *err)
{
    int rc = 0;
    cJSON *params = cJSON_Parse(r->parameters ? r->parameters : "{}");
    pthread_rwlock_rdlock(&app->policy_lock);
    const struct mu_catalog_item *it = mu_catalog_find(app->catalog, r->item);
    if (!it) {
        rc = mu_err_set(err, MU_ECONFLICT, "item %s is no longer in the catalogue", r->item);
    } else {
        ret->image = mu_xstrdup(it->image);
        ret->private_net = it->private_net;
        ret->public_net = it->public_net;
        ret->port = it->ports[0];
        ret->provider = mu_xstrdup(app->catalog->provider_network);
        ret->private_cidr = mu_xstrdup(app->catalog->private_cidr);
        ret->deadline_ms = app->catalog->ready_deadline_ms;
        rc = mu_catalog_render(it, params, &ret->user_data, err);
    }
    pthread_rwlock_unlock(&app->policy_lock);
    cJSON_Delete(params);
    if (rc < 0)
        item_snap_clear(ret);
    return rc;
}

/* A ready image by name (the catalogue names base images). */
static int image_by_name(struct mu_store *st, const char *name, int64_t *ret_id, struct mu_err *err)
{
    struct mu_image *im = NULL;
    size_t n = 0;
    int rc = mu_store_image_list(st, &im, &n, err);
    if (rc < 0)
        return rc;
    rc = mu_err_set(err, MU_ENOTFOUND,
                    "base image %s is not on this data centre yet: an operator must upload it",
                    name);
    for (size_t i = 0; i < n; i++)
        if (strcmp(im[i].name, name) == 0 && strcmp(im[i].status, "ready") == 0) {
            mu_err_clear(err);
            *ret_id = im[i].id;
            rc = 0;
            break;
        }
    mu_images_free(im, n);
    return rc;
}

/* After approval: networks, user-data, placement and admission; the request then goes to
 * provisioning, or to failed with the reason (the refusal's detail, naming the quota level).
 * Returns < 0 only when the store cannot record the outcome. */
static int provision(struct mu_req *req, const struct mu_request *r, struct mu_err *err)
{
    struct mu_app *app = req->app;
    struct item_snap snap = {0};
    struct mu_flavor fl = {0};
    struct mu_tenant tn = {0};
    struct mu_admit_req ar = {0};
    struct mu_nic_req nics[2];
    size_t nn = 0;
    struct mu_err why = {0};
    int64_t vm_id = 0, op_id = 0;
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("request/%lld", (long long)r->id);
    mu_req_audit(req, &rec, r->tenant_id, target);

    int rc = item_snap_take(app, r, &snap, &why);
    if (rc >= 0 && (rc = mu_store_flavor_get_by_name(app->store, r->flavor, &fl, &why)) < 0 &&
        rc == MU_ENOTFOUND) {
        mu_err_clear(&why);
        rc = mu_err_set(&why, MU_ECONFLICT, "flavor %s no longer exists", r->flavor);
    }
    if (rc >= 0)
        rc = image_by_name(app->store, snap.image, &ar.vm.image_id, &why);
    if (rc >= 0 && (rc = mu_store_tenant_get(app->store, r->tenant_id, &tn, &why)) >= 0 &&
        strcmp(tn.status, "active") != 0)
        rc = mu_err_set(&why, MU_ECONFLICT, "%s is %s: no new VMs until it is active again",
                        tn.name, tn.status);
    if (rc >= 0 && snap.private_net) {
        nics[nn] = (struct mu_nic_req){0};
        rc = mu_store_network_default_private(app->store, r->tenant_id, snap.private_cidr, &rec,
                                              &nics[nn].network_id, &why);
        nn += rc >= 0;
    }
    if (rc >= 0 && snap.public_net) {
        nics[nn] = (struct mu_nic_req){0};
        rc = mu_store_network_find_provider(app->store, snap.provider, &nics[nn].network_id, &why);
        if (rc == MU_ENOTFOUND) {
            mu_err_clear(&why);
            rc = mu_err_set(&why, MU_ECONFLICT,
                            "there is no provider network named %s for public addresses",
                            snap.provider);
        }
        nn += rc >= 0;
    }
    if (rc >= 0) {
        char name[64];
        snprintf(name, sizeof name, "req-%lld-%s", (long long)r->id, r->item);
        ar.vm.tenant_id = r->tenant_id;
        ar.vm.name = mu_xstrdup(name);
        mu_uuid_generate(ar.vm.uuid);
        ar.vm.flavor_id = fl.id;
        ar.vm.vcpus = fl.vcpus;
        ar.vm.ram_mib = fl.ram_mib;
        ar.vm.disk_gib = fl.disk_gib;
        ar.nics = nn ? nics : NULL;
        ar.n_nics = nn;
        ar.user_data = snap.user_data;
        MU_AUTOFREE char *vm_target = mu_xasprintf("vm:%s", name);
        struct mu_audit_rec vrec = rec;
        vrec.target = vm_target;
        rc = mu_api_vm_place_admit(app, &ar, NULL, 0, &vrec, &vm_id, &op_id, &why);
    }
    struct mu_request_change ch = {.from = "approved"};
    if (rc >= 0) {
        ch.to = "provisioning";
        ch.vm_id = vm_id;
        ch.op_id = op_id;
        ch.probe_port = snap.port;
        ch.ready_deadline_ms = mu_now_ms() + snap.deadline_ms;
    } else {
        ch.to = "failed";
        ch.reason = why.detail;
        mu_log_info("request failed at approval id=%lld detail=\"%s\"", (long long)r->id,
                    why.detail);
    }
    rec.detail = ch.reason;
    rc = mu_store_request_change(app->store, r->id, &ch, &rec, err);
    if (rc >= 0 && op_id > 0 && app->ops)
        mu_ops_kick(app->ops);
    item_snap_clear(&snap);
    mu_flavor_clear(&fl);
    mu_tenant_clear(&tn);
    mu_vm_clear(&ar.vm);
    return rc;
}

/* Answers the request as it now stands. */
static int answer_request(struct mu_req *req, int64_t id, int status, struct mu_resp *resp,
                          struct mu_err *err)
{
    struct mu_request r = {0};
    int rc = mu_store_request_get(req->app->store, id, &r, err);
    if (rc < 0)
        return rc;
    resp->json = request_json(&r);
    resp->status = status;
    if (status == 201)
        resp->location = mu_xasprintf("/v1/requests/%lld", (long long)id);
    mu_request_clear(&r);
    return MU_OK;
}

int mu_h_request_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"tenant_id",  "item",          "flavor",
                                          "parameters", "justification", NULL};
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    cJSON *errors = mu_json_arr();
    cJSON *clean = NULL;
    struct mu_request nr = {0};
    struct mu_tenant tn = {0};
    struct mu_flavor fl = {0};
    bool needs_approval = true;
    int64_t id = 0;
    MU_AUTOFREE char *params_text = NULL; /* before any goto: freed at every exit */
    int rc = mu_json_expect_object(body, allowed, "request", err);
    if (rc < 0)
        goto out;

    /* tenant: given, or the caller's; outside the caller's subtree it does not exist */
    const cJSON *tv = cJSON_GetObjectItemCaseSensitive(body, "tenant_id");
    if (tv && !cJSON_IsNull(tv)) {
        if (mu_json_int_value(tv, 1, INT64_MAX, &nr.tenant_id) < 0) {
            rc = mu_err_setf(err, MU_EINVAL, "tenant_id", "tenant_id must be a tenant id");
            goto out;
        }
    } else if (req->principal.tenant_id > 0) {
        nr.tenant_id = req->principal.tenant_id;
    } else {
        rc = mu_err_setf(err, MU_EINVAL, "tenant_id",
                         "tenant_id is required: operators file requests for a tenant");
        goto out;
    }
    if ((rc = mu_req_check_tenant(req, nr.tenant_id, err)) < 0 ||
        (rc = mu_store_tenant_get(req->app->store, nr.tenant_id, &tn, err)) < 0)
        goto out;
    if (strcmp(tn.status, "active") != 0) {
        rc = mu_err_setf(err, MU_ECONFLICT, "tenant_id",
                         "%s is %s: no new requests until it is active again", tn.name, tn.status);
        goto out;
    }

    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(body, "item");
    const cJSON *fv = cJSON_GetObjectItemCaseSensitive(body, "flavor");
    const cJSON *jv = cJSON_GetObjectItemCaseSensitive(body, "justification");
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(body, "parameters");
    if (jv && !cJSON_IsNull(jv) &&
        (!cJSON_IsString(jv) || !free_text_ok(jv->valuestring, JUSTIFICATION_MAX)))
        field_error(errors, "justification",
                    "justification must be text of at most 2000 characters (line breaks are "
                    "allowed, other control characters are not)");
    else if (cJSON_IsString(jv))
        nr.justification = jv->valuestring;
    const char *flavor = cJSON_IsString(fv) ? fv->valuestring : NULL;
    if (!flavor)
        field_error(errors, "flavor", "flavor (the name of a size the item offers) is required");

    pthread_rwlock_rdlock(&req->app->policy_lock);
    const struct mu_catalog_item *it =
        cJSON_IsString(iv) ? mu_catalog_find(req->app->catalog, iv->valuestring) : NULL;
    if (!it) {
        struct mu_buf b;
        mu_buf_init(&b);
        for (size_t i = 0; req->app->catalog && i < req->app->catalog->n_items; i++)
            mu_buf_printf(&b, "%s%s", i ? ", " : "", req->app->catalog->items[i].id);
        MU_AUTOFREE char *msg = mu_xasprintf(
            "%s; the catalogue offers: %s",
            cJSON_IsString(iv) ? "this item is not in the catalogue" : "item is required",
            b.data && b.data[0] ? b.data : "nothing yet");
        mu_buf_free(&b);
        field_error(errors, "item", msg);
    } else {
        nr.item = mu_xstrdup(it->id);
        if (flavor && !mu_catalog_item_has_flavor(it, flavor)) {
            struct mu_buf b;
            mu_buf_init(&b);
            for (size_t i = 0; i < it->n_flavors; i++)
                mu_buf_printf(&b, "%s%s", i ? ", " : "", it->flavors[i]);
            MU_AUTOFREE char *msg =
                mu_xasprintf("%s offers the sizes %s", it->id, b.data ? b.data : "");
            mu_buf_free(&b);
            field_error(errors, "flavor", msg);
            flavor = NULL;
        }
        mu_catalog_check_params(it, pv, errors, &clean);
    }
    pthread_rwlock_unlock(&req->app->policy_lock);

    if (flavor && mu_ident_valid(flavor)) {
        struct mu_err ferr = {0};
        if (mu_store_flavor_get_by_name(req->app->store, flavor, &fl, &ferr) < 0) {
            MU_AUTOFREE char *msg = mu_xasprintf(
                "flavor %s is not defined on this data centre yet: ask the operators", flavor);
            field_error(errors, "flavor", msg);
        }
    }
    if (cJSON_GetArraySize(errors) > 0) {
        rc = answer_invalid(req, resp, errors, nr.tenant_id);
        errors = NULL;
        goto out;
    }

    /* the approval rule under the policy as it is now */
    pthread_rwlock_rdlock(&req->app->policy_lock);
    it = mu_catalog_find(req->app->catalog, nr.item);
    needs_approval = !it || mu_catalog_needs_approval(it, fl.vcpus, fl.ram_mib);
    pthread_rwlock_unlock(&req->app->policy_lock);

    nr.flavor = fl.name;
    params_text = mu_json_print(clean);
    nr.parameters = params_text;
    nr.requested_by = req->principal.user_name;
    struct mu_audit_rec rec;
    mu_req_audit(req, &rec, nr.tenant_id, NULL);
    if ((rc = mu_store_request_insert(req->app->store, &nr, &rec, &id, err)) < 0)
        goto out;
    if (!needs_approval) {
        /* the item's rule needs nobody's approval for this size */
        struct mu_request_change ch = {.from = "pending",
                                       .to = "approved",
                                       .decided_by = "policy",
                                       .reason = "no approval needed for this item and size"};
        struct mu_request cur = {0};
        rec.action = "request.approve";
        if ((rc = mu_store_request_change(req->app->store, id, &ch, &rec, err)) < 0 ||
            (rc = mu_store_request_get(req->app->store, id, &cur, err)) < 0)
            goto out;
        rc = provision(req, &cur, err);
        mu_request_clear(&cur);
        if (rc < 0)
            goto out;
    }
    rc = answer_request(req, id, 201, resp, err);
out:
    cJSON_Delete(body);
    cJSON_Delete(errors);
    cJSON_Delete(clean);
    free(nr.item);
    mu_tenant_clear(&tn);
    mu_flavor_clear(&fl);
    return rc;
}

int mu_h_request_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_request_filter f = {0};
    int rc = mu_req_page(req, &f.limit, &f.after_id, err);
    if (rc < 0)
        return rc;
    const char *v;
    if ((v = mu_req_query(req, "tenant"))) {
        if (mu_parse_i64(v, 1, INT64_MAX, &f.tenant_id) != 0)
            return mu_err_setf(err, MU_EINVAL, "tenant", "tenant must be a tenant id");
        if ((rc = mu_req_check_tenant(req, f.tenant_id, err)) < 0)
            return rc;
    }
    if ((v = mu_req_query(req, "status"))) {
        size_t i;
        for (i = 0; statuses[i] && strcmp(statuses[i], v) != 0; i++)
            ;
        if (!statuses[i])
            return mu_err_setf(err, MU_EINVAL, "status",
                               "status must be one of pending, approved, rejected, cancelled, "
                               "provisioning, ready, failed");
        f.status = statuses[i];
    }
    if (!mu_principal_is_global(&req->principal))
        f.scope_id = req->principal.tenant_id;
    struct mu_request *rs = NULL;
    size_t n = 0;
    if ((rc = mu_store_request_list(req->app->store, &f, &rs, &n, err)) < 0)
        return rc;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, request_json(&rs[i]));
    resp->json = mu_h_list_answer(items, n, f.limit, n ? rs[n - 1].id : 0);
    mu_requests_free(rs, n);
    return MU_OK;
}

/* The tenant's quota levels, as GET /v1/tenants/{id}/quota shows them (for the operator
 * deciding). */
static cJSON *quota_json(struct mu_app *app, int64_t tenant_id, struct mu_err *err)
{
    struct mu_quota_level *lv = NULL;
    size_t n = 0;
    pthread_rwlock_rdlock(&app->policy_lock);
    struct mu_quota_defaults defaults = mu_quota_policy_defaults(app->quotas);
    int rc = mu_store_quota_levels(app->store, tenant_id, &defaults, &lv, &n, err);
    pthread_rwlock_unlock(&app->policy_lock);
    if (rc < 0)
        return NULL;
    cJSON *levels = mu_json_arr();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = mu_json_obj(), *l = mu_json_obj(), *u = mu_json_obj();
        const int64_t lim[] = {lv[i].limits.vcpus, lv[i].limits.ram_mib, lv[i].limits.disk_gib,
                               lv[i].limits.vms};
        const int64_t use[] = {lv[i].usage.vcpus, lv[i].usage.ram_mib, lv[i].usage.disk_gib,
                               lv[i].usage.vms};
        static const char *const keys[] = {"vcpus", "ram_mib", "disk_gib", "vms"};
        mu_json_add_i64(o, "tenant_id", lv[i].tenant_id);
        mu_json_add_str(o, "tenant", lv[i].tenant_name);
        for (size_t k = 0; k < 4; k++) {
            if (lim[k] == MU_UNLIMITED)
                mu_json_add_str(l, keys[k], "unlimited");
            else
                mu_json_add_i64(l, keys[k], lim[k]);
            mu_json_add_i64(u, keys[k], use[k]);
        }
        cJSON_AddItemToObject(o, "limits", l);
        cJSON_AddItemToObject(o, "allocated", u);
        cJSON_AddItemToArray(levels, o);
    }
    mu_quota_levels_free(lv, n);
    cJSON *q = mu_json_obj();
    mu_json_add_i64(q, "tenant_id", tenant_id);
    cJSON_AddItemToObject(q, "levels", levels);
    return q;
}

int mu_h_request_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_request r = {0};
    int rc = load_request(req, &r, err);
    if (rc < 0)
        return rc;
    resp->json = request_json(&r);
    if (strcmp(req->principal.role, MU_ROLE_OPERATOR) == 0) {
        cJSON *q = quota_json(req->app, r.tenant_id, err);
        if (!q) {
            mu_request_clear(&r);
            return err->code;
        }
        cJSON_AddItemToObject(resp->json, "quota", q);
    }
    mu_request_clear(&r);
    return MU_OK;
}

/* Who may decide: operators; a tenant-admin only as the admin of an EPCI above the
 * requesting tenant, where the item allows it (never on its own tenant's request). */
static int may_decide(struct mu_req *req, const struct mu_request *r, struct mu_err *err)
{
    if (mu_principal_is_global(&req->principal))
        return MU_OK; /* RBAC lets only operators this far */
    if (r->tenant_id == req->principal.tenant_id)
        return mu_err_set(err, MU_EFORBIDDEN,
                          "a tenant does not decide its own requests: an operator (or the "
                          "admin of an EPCI above it, where the item allows it) does");
    struct mu_tenant me = {0};
    int rc = mu_store_tenant_get(req->app->store, req->principal.tenant_id, &me, err);
    if (rc < 0)
        return rc;
    bool epci = strcmp(me.kind, "epci") == 0;
    mu_tenant_clear(&me);
    if (!epci)
        return mu_err_set(err, MU_EFORBIDDEN,
                          "only operators, or the admin of an EPCI for its member communes, "
                          "decide requests");
    pthread_rwlock_rdlock(&req->app->policy_lock);
    const struct mu_catalog_item *it = mu_catalog_find(req->app->catalog, r->item);
    bool allowed = it && it->epci_admin_may_approve;
    pthread_rwlock_unlock(&req->app->policy_lock);
    if (!allowed)
        return mu_err_set(err, MU_EFORBIDDEN,
                          "requests for %s are decided by the operators only (the catalogue "
                          "does not let an EPCI's admin approve it)",
                          r->item);
    return MU_OK;
}

/* The optional body {"reason": "…"} of approve/reject; *ret borrowed from *body. */
static int read_reason(struct mu_req *req, bool required, cJSON **body, const char **ret,
                       struct mu_err *err)
{
    static const char *const allowed[] = {"reason", NULL};
    *ret = NULL;
    if (!req->body || req->body_len == 0) {
        if (required)
            return mu_err_setf(err, MU_EINVAL, "reason",
                               "a reason is required: {\"reason\": \"…\"} tells the tenant why");
        return MU_OK;
    }
    if (!(*body = mu_req_json(req, err)))
        return err->code;
    int rc = mu_json_expect_object(*body, allowed, "decision", err);
    if (rc < 0)
        return rc;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(*body, "reason");
    if (v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || !free_text_ok(v->valuestring, REASON_MAX)))
        return mu_err_setf(err, MU_EINVAL, "reason",
                           "reason must be text of at most 2000 characters");
    if (cJSON_IsString(v) && v->valuestring[0])
        *ret = v->valuestring;
    if (required && !*ret)
        return mu_err_setf(err, MU_EINVAL, "reason",
                           "a reason is required: {\"reason\": \"…\"} tells the tenant why");
    return MU_OK;
}

int mu_h_request_approve(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_request r = {0};
    cJSON *body = NULL;
    const char *reason = NULL;
    MU_AUTOFREE char *target = NULL; /* before any goto: freed at every exit */
    int rc = load_request(req, &r, err);
    if (rc < 0)
        return rc;
    if ((rc = may_decide(req, &r, err)) < 0 ||
        (rc = read_reason(req, false, &body, &reason, err)) < 0)
        goto out;
    struct mu_request_change ch = {.from = "pending",
                                   .to = "approved",
                                   .reason = reason,
                                   .decided_by = req->principal.user_name};
    struct mu_audit_rec rec;
    target = mu_xasprintf("request/%lld", (long long)r.id);
    mu_req_audit(req, &rec, r.tenant_id, target);
    if ((rc = mu_store_request_change(req->app->store, r.id, &ch, &rec, err)) < 0)
        goto out;
    if ((rc = provision(req, &r, err)) < 0)
        goto out;
    rc = answer_request(req, r.id, 200, resp, err);
out:
    cJSON_Delete(body);
    mu_request_clear(&r);
    return rc;
}

int mu_h_request_reject(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_request r = {0};
    cJSON *body = NULL;
    const char *reason = NULL;
    MU_AUTOFREE char *target = NULL; /* before any goto: freed at every exit */
    int rc = load_request(req, &r, err);
    if (rc < 0)
        return rc;
    if ((rc = may_decide(req, &r, err)) < 0 ||
        (rc = read_reason(req, true, &body, &reason, err)) < 0)
        goto out;
    struct mu_request_change ch = {.from = "pending",
                                   .to = "rejected",
                                   .reason = reason,
                                   .decided_by = req->principal.user_name};
    struct mu_audit_rec rec;
    target = mu_xasprintf("request/%lld", (long long)r.id);
    mu_req_audit(req, &rec, r.tenant_id, target);
    if ((rc = mu_store_request_change(req->app->store, r.id, &ch, &rec, err)) < 0)
        goto out;
    rc = answer_request(req, r.id, 200, resp, err);
out:
    cJSON_Delete(body);
    mu_request_clear(&r);
    return rc;
}

int mu_h_request_cancel(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_request r = {0};
    int rc = load_request(req, &r, err);
    if (rc < 0)
        return rc;
    struct mu_request_change ch = {.from = "pending", .to = "cancelled"};
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("request/%lld", (long long)r.id);
    mu_req_audit(req, &rec, r.tenant_id, target);
    if ((rc = mu_store_request_change(req->app->store, r.id, &ch, &rec, err)) >= 0)
        rc = answer_request(req, r.id, 200, resp, err);
    mu_request_clear(&r);
    return rc;
}
