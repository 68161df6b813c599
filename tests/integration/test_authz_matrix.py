"""Authorization matrix: every route of the router's own table (read from the OpenAPI
document, which is generated from it) against every persona. The expected answer is
derived from policies/rbac.json and the tenant tree, not from the implementation:

  public route → 200; no / expired / revoked token → 401; role not named for the action
  → 403; target outside the caller's subtree → 404; otherwise success (2xx). Agent routes
  (security mutualTLS) take a client certificate and nothing else: 401 for every persona
  (test_agent_reports.py covers certificates).

A route without a sample request below fails the test, so a new route cannot slip in
untested. Another tenant's data always answers 404, never 403.
"""
import hashlib
import json
import os
import sys
import time
import itertools

sys.path.insert(0, os.path.dirname(__file__))
from harness import Controller, Failure, SRC, run  # noqa: E402

counter = itertools.count(1)


def uniq(prefix):
    return f"{prefix}{next(counter)}"


def main(res):
    ctl = Controller().start()
    try:
        body(ctl, res)
    finally:
        ctl.stop()
        ctl.cleanup()


def must(r, status, what):
    if r.status != status:
        raise Failure(f"setup {what}: expected {status}, got {r!r}")
    return r.json


def body(ctl, res):
    op = ctl.token
    rq = ctl.request

    def mk_tenant(parent, kind="other", **kw):
        b = {"name": uniq("Tenant "), "kind": kind}
        if parent:
            b["parent_id"] = parent
        b.update(kw)
        return must(rq("POST", "/v1/tenants", b), 201, "create tenant")["id"]

    S = mk_tenant(None, "syndicat")
    E = mk_tenant(S, "epci", epci_form="CC")
    C1 = mk_tenant(E, "commune", insee="01001")
    C2 = mk_tenant(E, "commune", insee="01002")

    def mk_user(role, tenant=None):
        b = {"name": uniq("user-"), "role": role}
        if tenant:
            b["tenant_id"] = tenant
        return must(rq("POST", "/v1/users", b), 201, "create user")["id"]

    def mk_token(user_id, expires=None):
        b = {"name": uniq("tok-"), "user_id": user_id}
        if expires:
            b["expires_at"] = expires
        j = must(rq("POST", "/v1/tokens", b), 201, "create token")
        return j["secret"], j["id"]

    obs_tok, _ = mk_token(mk_user("observer"))
    ea_tok, _ = mk_token(mk_user("tenant-admin", E))
    er_tok, _ = mk_token(mk_user("tenant-reader", E))
    ca_tok, _ = mk_token(mk_user("tenant-admin", C1))
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    exp_tok, _ = mk_token(mk_user("operator"), expires=soon)
    rev_tok, rev_id = mk_token(mk_user("operator"))
    must(rq("DELETE", f"/v1/tokens/{rev_id}"), 204, "revoke token")

    # persona: (name, token, role, target tenant, target in caller's scope)
    personas = [
        ("operator", op, "operator", E, True),
        ("observer", obs_tok, "observer", E, True),
        ("tenant-admin", ea_tok, "tenant-admin", E, True),
        ("tenant-reader", er_tok, "tenant-reader", E, True),
        ("epci-admin-on-member", ea_tok, "tenant-admin", C1, True),
        ("commune-admin-on-epci", ca_tok, "tenant-admin", E, False),
        ("commune-admin-on-sibling", ca_tok, "tenant-admin", C2, False),
        ("no-token", None, None, E, False),
        ("expired-token", exp_tok, None, E, False),
        ("revoked-token", rev_tok, None, E, False),
    ]
    time.sleep(2.2)  # let the expired token expire

    with open(os.path.join(SRC, "policies", "rbac.json")) as f:
        policy = json.load(f)["actions"]

    # Provisioning fixtures: a node on libvirt's in-process test driver, a flavor, an image.
    def mk_node():
        return must(rq("POST", "/v1/nodes", {"name": uniq("node-"), "uri": "test:///default",
                                             "pool": "default-pool"}), 201, "create node")["id"]

    for _ in range(3):
        mk_node()
    for t in (S, E, C1, C2):
        must(rq("PUT", f"/v1/tenants/{t}/quota", {"vcpus": "unlimited", "ram_mib": "unlimited",
                                                  "disk_gib": "unlimited", "vms": "unlimited"}),
             200, "unlimited quota")
    for t in (S, E, C1, C2):
        must(rq("PUT", f"/v1/tenants/{t}/quota", {"networks": "unlimited",
                                                  "public_ips": "unlimited"}),
             200, "unlimited network quota")
    must(rq("POST", "/v1/flavors", {"name": "tiny", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}),
         201, "flavor")
    must(rq("POST", "/v1/flavors", {"name": "small", "vcpus": 1, "ram_mib": 128,
                                    "disk_gib": 1}), 201, "flavor")
    img_bytes = b"\0" * 4096
    img_sha = hashlib.sha256(img_bytes).hexdigest()

    def mk_image(upload=True):
        iid = must(rq("POST", "/v1/images", {"name": uniq("img-"), "format": "raw",
                                             "sha256": img_sha}), 201, "image")["id"]
        if upload:
            must(rq("PUT", f"/v1/images/{iid}/data", raw=img_bytes,
                    headers={"Content-Type": "application/octet-stream"}), 200, "upload")
        return iid

    IMG = mk_image()

    def wait_op(op_id):
        end = time.time() + 60
        while time.time() < end:
            j = rq("GET", f"/v1/operations/{op_id}").json
            if j["state"] in ("succeeded", "failed"):
                if j["state"] == "failed":
                    raise Failure(f"setup operation {op_id} failed: {j['error']}")
                return j
            time.sleep(0.05)
        raise Failure(f"setup operation {op_id} did not finish")

    def mk_vm(tenant, stopped=False):
        j = must(rq("POST", "/v1/vms", {"tenant_id": tenant, "name": uniq("vm-"),
                                        "flavor": "tiny", "image_id": IMG}), 202, "create vm")
        wait_op(j["operation"]["id"])
        if stopped:
            wait_op(must(rq("POST", f"/v1/vms/{j['vm']['id']}/stop"), 202, "stop")
                    ["operation"]["id"])
        return j["vm"]["id"], j["operation"]["id"]

    def mk_group(tenant):
        return must(rq("POST", "/v1/groups", {"name": uniq("grp-"), "tenant_id": tenant}), 201,
                    "group")["id"]

    raw_upload = {"__raw__": img_bytes}

    def mk_net(tenant):
        return must(rq("POST", "/v1/networks", {"tenant_id": tenant, "name": uniq("net-"),
                                                "cidr": "10.1.0.0/24"}), 201, "network")["id"]

    def mk_rule(tenant):
        """A tenant rule (set by the EPCI's admin, so that tenant admins may delete it)."""
        net = mk_net(tenant)
        rid = must(rq("POST", f"/v1/networks/{net}/rules", {"proto": "tcp", "ports": 443},
                      token=ea_tok), 201, "rule")["id"]
        return f"/v1/networks/{net}/rules/{rid}"

    def mk_webhook(tenant):
        """The tenant's webhook path, after setting one (203.0.113.0/24: a public address
        that nothing answers on; no event is delivered to it here anyway)."""
        rq("PUT", f"/v1/tenants/{tenant}/webhook", {"url": "https://203.0.113.10/hook"})
        return f"/v1/tenants/{tenant}/webhook"

    def mk_request(tenant, item="vm"):
        """A pending catalogue request of tenant, filed by the operator. "website" lets an
        EPCI's admin decide; its image is not uploaded here, so an approval records the
        request as failed (200) without creating a VM."""
        params = {"purpose": "tests"} if item == "vm" else {
            "domain": "mairie-test.fr", "admin_email": "secretariat@mairie-test.fr"}
        return must(rq("POST", "/v1/requests", {"tenant_id": tenant, "item": item,
                                                "flavor": "tiny", "parameters": params}),
                    201, "request")["id"]

    # Sample requests: route key → function(target) → (path, body, targeted)
    def leaf(target):
        return mk_tenant(target)

    portal_user = {}

    def portal_login():
        """Credentials of a user with a password (made once): the portal's login is public,
        so every persona's sample logs in (200)."""
        if not portal_user:
            portal_user.update(username=uniq("portal-"), password="correct horse battery staple")
            must(rq("POST", "/v1/users", {"name": portal_user["username"], "role": "observer",
                                          "password": portal_user["password"]}), 201, "portal user")
        return dict(portal_user)

    samples = {
        "GET /v1/health": lambda t: ("/v1/health", None, False),
        "GET /v1/openapi.json": lambda t: ("/v1/openapi.json", None, False),
        "GET /v1/whoami": lambda t: ("/v1/whoami", None, False),
        "POST /v1/session": lambda t: ("/v1/session", portal_login(), False),
        "GET /v1/session": lambda t: ("/v1/session", None, False),
        "DELETE /v1/session": lambda t: ("/v1/session", None, False),
        "GET /": lambda t: ("/", None, False),
        "GET /portal/{file}": lambda t: ("/portal/app.js", None, False),
        "GET /v1/tenants": lambda t: (f"/v1/tenants?subtree={t}", None, False),
        "POST /v1/tenants": lambda t: ("/v1/tenants", {"name": uniq("New "), "kind": "other",
                                                       "parent_id": t}, True),
        "POST /v1/tenants/import": lambda t: ("/v1/tenants/import",
                                              {"parent_id": t, "epci": [], "communes": []}, True),
        "GET /v1/tenants/{id}": lambda t: (f"/v1/tenants/{t}", None, True),
        "PATCH /v1/tenants/{id}": lambda t: (f"/v1/tenants/{t}", {"population": 1234}, True),
        "DELETE /v1/tenants/{id}": lambda t: (f"/v1/tenants/{leaf(t)}", None, True),
        "POST /v1/tenants/{id}/move": lambda t: (f"/v1/tenants/{leaf(t)}/move", {"parent_id": t},
                                                 True),
        "GET /v1/users": lambda t: ("/v1/users", None, False),
        "POST /v1/users": lambda t: ("/v1/users", {"name": uniq("nu-"), "role": "tenant-reader",
                                                   "tenant_id": t}, True),
        "GET /v1/users/{id}": lambda t: (f"/v1/users/{mk_user('tenant-reader', t)}", None, True),
        "PATCH /v1/users/{id}": lambda t: (f"/v1/users/{mk_user('tenant-reader', t)}",
                                           {"display_name": "Mme Dupont"}, True),
        "DELETE /v1/users/{id}": lambda t: (f"/v1/users/{mk_user('tenant-reader', t)}", None, True),
        "GET /v1/tokens": lambda t: ("/v1/tokens", None, False),
        "POST /v1/tokens": lambda t: ("/v1/tokens", {"name": uniq("self-")}, False),
        "DELETE /v1/tokens/{id}": lambda t: (
            f"/v1/tokens/{mk_token(mk_user('tenant-reader', t))[1]}", None, True),
        "GET /v1/tenants/{id}/quota": lambda t: (f"/v1/tenants/{t}/quota", None, True),
        "PUT /v1/tenants/{id}/quota": lambda t: (f"/v1/tenants/{t}/quota", {"vms": 100}, True),
        "GET /v1/nodes": lambda t: ("/v1/nodes", None, False),
        "POST /v1/nodes": lambda t: ("/v1/nodes", {"name": uniq("n-"), "uri": "test:///default",
                                                   "pool": "default-pool"}, False),
        "GET /v1/nodes/{id}": lambda t: ("/v1/nodes/1", None, False),
        "PATCH /v1/nodes/{id}": lambda t: ("/v1/nodes/1", {"labels": {"site": "a"}}, False),
        "POST /v1/nodes/{id}/maintenance": lambda t: (f"/v1/nodes/{mk_node()}/maintenance", None,
                                                      False),
        "POST /v1/nodes/{id}/drain": lambda t: (f"/v1/nodes/{mk_node()}/drain", None, False),
        "POST /v1/nodes/{id}/activate": lambda t: (f"/v1/nodes/{mk_node()}/activate", None,
                                                   False),
        "DELETE /v1/nodes/{id}": lambda t: (f"/v1/nodes/{mk_node()}", None, False),
        # An enrolment needs a real SSH node (test_enroll.py): here the operator's sample is
        # refused on its body (port 0) before any connection.
        "POST /v1/nodes/{id}/enroll": lambda t: ("/v1/nodes/1/enroll",
                                                 {"host": "127.0.0.1", "port": 0, "user": "mu",
                                                  "password": "x"}, False),
        "GET /v1/flavors": lambda t: ("/v1/flavors", None, False),
        "POST /v1/flavors": lambda t: ("/v1/flavors", {"name": uniq("f-"), "vcpus": 1,
                                                       "ram_mib": 64, "disk_gib": 1}, False),
        "GET /v1/flavors/{id}": lambda t: ("/v1/flavors/1", None, False),
        "DELETE /v1/flavors/{id}": lambda t: (
            f"/v1/flavors/{rq('POST', '/v1/flavors', {'name': uniq('fd-'), 'vcpus': 1, 'ram_mib': 64, 'disk_gib': 1}).json['id']}",
            None, False),
        "GET /v1/images": lambda t: ("/v1/images", None, False),
        "POST /v1/images": lambda t: ("/v1/images", {"name": uniq("i-"), "format": "raw",
                                                     "sha256": img_sha}, False),
        "GET /v1/images/{id}": lambda t: (f"/v1/images/{IMG}", None, False),
        "PUT /v1/images/{id}/data": lambda t: (f"/v1/images/{mk_image(False)}/data", raw_upload,
                                               False),
        "DELETE /v1/images/{id}": lambda t: (f"/v1/images/{mk_image()}", None, False),
        "GET /v1/groups": lambda t: ("/v1/groups", None, False),
        "POST /v1/groups": lambda t: ("/v1/groups", {"name": uniq("g-"), "tenant_id": t}, True),
        "DELETE /v1/groups/{id}": lambda t: (f"/v1/groups/{mk_group(t)}", None, True),
        "GET /v1/vms": lambda t: (f"/v1/vms?tenant={t}", None, True),
        "POST /v1/vms": lambda t: ("/v1/vms", {"tenant_id": t, "name": uniq("v-"),
                                               "flavor": "tiny", "image_id": IMG}, True),
        "GET /v1/vms/{id}": lambda t: (f"/v1/vms/{mk_vm(t)[0]}", None, True),
        "POST /v1/vms/{id}/start": lambda t: (f"/v1/vms/{mk_vm(t, stopped=True)[0]}/start", None,
                                              True),
        "POST /v1/vms/{id}/stop": lambda t: (f"/v1/vms/{mk_vm(t)[0]}/stop", None, True),
        "POST /v1/vms/{id}/reboot": lambda t: (f"/v1/vms/{mk_vm(t)[0]}/reboot", None, True),
        "POST /v1/vms/{id}/resize": lambda t: (f"/v1/vms/{mk_vm(t, stopped=True)[0]}/resize",
                                               {"flavor": "small"}, True),
        "DELETE /v1/vms/{id}": lambda t: (f"/v1/vms/{mk_vm(t)[0]}", None, True),
        "GET /v1/operations/{id}": lambda t: (f"/v1/operations/{mk_vm(t)[1]}", None, True),
        "POST /v1/agent/reports": lambda t: ("/v1/agent/reports", {"version": 1, "node": "n"},
                                             False),
        "POST /v1/agent/renew": lambda t: ("/v1/agent/renew", {"csr": "x"}, False),
        "GET /v1/agent/network": lambda t: ("/v1/agent/network", None, False),
        "GET /v1/capacity": lambda t: ("/v1/capacity", None, False),
        "GET /metrics": lambda t: ("/metrics", None, False),
        "GET /v1/alerts": lambda t: ("/v1/alerts", None, False),
        "GET /v1/events": lambda t: (f"/v1/events?tenant={t}", None, True),
        "GET /v1/tenants/{id}/webhook": lambda t: (mk_webhook(t), None, True),
        "PUT /v1/tenants/{id}/webhook": lambda t: (f"/v1/tenants/{t}/webhook",
                                                   {"url": "https://203.0.113.10/hook"}, True),
        "DELETE /v1/tenants/{id}/webhook": lambda t: (mk_webhook(t), None, True),
        "GET /v1/catalog": lambda t: ("/v1/catalog", None, False),
        "GET /v1/requests": lambda t: (f"/v1/requests?tenant={t}", None, True),
        "POST /v1/requests": lambda t: ("/v1/requests", {"tenant_id": t, "item": "vm",
                                                         "flavor": "tiny",
                                                         "parameters": {"purpose": "x"}}, True),
        "GET /v1/requests/{id}": lambda t: (f"/v1/requests/{mk_request(t)}", None, True),
        "POST /v1/requests/{id}/approve": lambda t: (
            f"/v1/requests/{mk_request(t, 'website')}/approve", {"reason": "ok"}, True),
        "POST /v1/requests/{id}/reject": lambda t: (
            f"/v1/requests/{mk_request(t, 'website')}/reject", {"reason": "no budget"}, True),
        "POST /v1/requests/{id}/cancel": lambda t: (f"/v1/requests/{mk_request(t)}/cancel", None,
                                                    True),
        "GET /v1/audit": lambda t: ("/v1/audit?limit=5", None, False),
        "POST /v1/audit/verify": lambda t: ("/v1/audit/verify", {}, False),
        "GET /v1/networks": lambda t: ("/v1/networks", None, False),
        "POST /v1/networks": lambda t: ("/v1/networks", {"tenant_id": t, "name": uniq("n-"),
                                                         "cidr": "10.2.0.0/24"}, True),
        "GET /v1/networks/{id}": lambda t: (f"/v1/networks/{mk_net(t)}", None, True),
        "DELETE /v1/networks/{id}": lambda t: (f"/v1/networks/{mk_net(t)}", None, True),
        "GET /v1/networks/{id}/addresses": lambda t: (f"/v1/networks/{mk_net(t)}/addresses",
                                                      None, True),
        "GET /v1/networks/{id}/rules": lambda t: (f"/v1/networks/{mk_net(t)}/rules", None, True),
        "POST /v1/networks/{id}/rules": lambda t: (f"/v1/networks/{mk_net(t)}/rules",
                                                   {"proto": "tcp", "ports": "8000-8080",
                                                    "source": "192.0.2.0/24"}, True),
        "DELETE /v1/networks/{id}/rules/{rule}": lambda t: (mk_rule(t), None, True),
    }
    # Documented refinements of the generic rule (handlers narrow what the policy allows):
    # revoking another user's token needs operator, or tenant-admin over that user.
    overrides = {
        ("DELETE /v1/tokens/{id}", "observer"): 404,
        ("DELETE /v1/tokens/{id}", "tenant-reader"): 404,
        ("POST /v1/nodes/{id}/enroll", "operator"): 400,
        # a tenant never decides its own requests (an EPCI's admin decides its members')
        ("POST /v1/requests/{id}/approve", "tenant-admin"): 403,
        ("POST /v1/requests/{id}/reject", "tenant-admin"): 403,
    }

    doc = must(rq("GET", "/v1/openapi.json", token=None), 200, "openapi")
    routes = []
    for path, ops in doc["paths"].items():
        for method, opdoc in ops.items():
            routes.append((method.upper(), path, opdoc))
    res.check(len(routes) >= len(samples) - 0, f"openapi lists {len(routes)} routes")
    missing = [f"{m} {p}" for m, p, _ in routes if f"{m} {p}" not in samples]
    res.check(not missing, f"every route has a sample request (missing: {missing})")

    checked = 0
    for method, path, opdoc in routes:
        key = f"{method} {path}"
        action = opdoc.get("x-mutualis-action")
        public = "security" in opdoc and opdoc["security"] == []
        agent = opdoc.get("security") == [{"mutualTLS": []}]
        for pname, tok, role, target, in_scope in personas:
            rpath, rbody, targeted = samples[key](target)
            if public:
                want = 200
            elif agent or role is None:
                want = 401
            elif role not in policy.get(action, []):
                want = 403
            elif targeted and not in_scope:
                want = 404
            else:
                want = overrides.get((key, pname), "2xx")
            if isinstance(rbody, dict) and "__raw__" in rbody:
                r = rq(method, rpath, raw=rbody["__raw__"], token=tok,
                       headers={"Content-Type": "application/octet-stream"})
            else:
                r = rq(method, rpath, rbody, token=tok)
            ok = (200 <= r.status < 300) if want == "2xx" else r.status == want
            if not ok:
                print(f"     got {r!r}")
            if r.status >= 400:
                ok = ok and r.headers.get("content-type", "").startswith("application/problem+json") \
                    and bool(r.json and r.json.get("detail"))
            res.check(ok, f"{key:32} as {pname:26} → {want}")
            checked += 1
    res.check(checked == len(routes) * len(personas), f"{checked} route × persona cases")


if __name__ == "__main__":
    sys.exit(run(main))
