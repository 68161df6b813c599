/* The route table: the single source for dispatch, the OpenAPI document and the
 * authorization matrix test. Each route names the RBAC action that guards it. */
#include "api/api.h"
#include "api/handlers.h"

const struct mu_route mu_routes[] = {
    {"GET", "/v1/health", NULL, mu_h_health, MU_ROUTE_PUBLIC, "Liveness and version", "meta"},
    {"GET", "/v1/openapi.json", NULL, mu_h_openapi, MU_ROUTE_PUBLIC,
     "This API's OpenAPI description", "meta"},
    {"GET", "/v1/whoami", "self.read", mu_h_whoami, 0, "The authenticated caller", "meta"},

    {"GET", "/v1/tenants", "tenant.list", mu_h_tenant_list, 0,
     "List tenants (parent, subtree, kind, status, q)", "tenants"},
    {"POST", "/v1/tenants", "tenant.create", mu_h_tenant_create, 0, "Create a tenant", "tenants"},
    {"POST", "/v1/tenants/import", "tenant.import", mu_h_tenant_import, MU_ROUTE_BIG_BODY,
     "Import official COG data (EPCI and communes)", "tenants"},
    {"GET", "/v1/tenants/{id}", "tenant.read", mu_h_tenant_get, 0, "Show a tenant", "tenants"},
    {"PATCH", "/v1/tenants/{id}", "tenant.update", mu_h_tenant_update, 0, "Update a tenant",
     "tenants"},
    {"DELETE", "/v1/tenants/{id}", "tenant.delete", mu_h_tenant_delete, 0,
     "Delete a tenant without children or users", "tenants"},
    {"POST", "/v1/tenants/{id}/move", "tenant.move", mu_h_tenant_move, 0,
     "Move a tenant and its subtree under another parent", "tenants"},

    {"GET", "/v1/users", "user.list", mu_h_user_list, 0, "List users", "users"},
    {"POST", "/v1/users", "user.create", mu_h_user_create, 0, "Create a user", "users"},
    {"GET", "/v1/users/{id}", "user.read", mu_h_user_get, 0, "Show a user", "users"},
    {"PATCH", "/v1/users/{id}", "user.update", mu_h_user_update, 0, "Update a user", "users"},
    {"DELETE", "/v1/users/{id}", "user.delete", mu_h_user_delete, 0,
     "Delete a user and revoke their tokens", "users"},

    {"GET", "/v1/tokens", "token.list", mu_h_token_list, 0, "List API tokens", "tokens"},
    {"POST", "/v1/tokens", "token.create", mu_h_token_create, 0,
     "Create an API token (the secret is shown once)", "tokens"},
    {"DELETE", "/v1/tokens/{id}", "token.revoke", mu_h_token_revoke, 0, "Revoke an API token",
     "tokens"},

    {"GET", "/v1/audit", "audit.read", mu_h_audit_list, 0, "Audit trail", "audit"},
    {"POST", "/v1/audit/verify", "audit.verify", mu_h_audit_verify, 0,
     "Verify the audit trail's HMAC chain", "audit"},
};

const size_t mu_routes_count = MU_ARRAY_LEN(mu_routes);
