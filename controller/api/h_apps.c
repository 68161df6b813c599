/* GET /v1/catalog: the hosted apps a tenant may request (policies/catalog.json, see
 * catalog/catalog.h). Flavors and images have their own handlers in h_catalog.c. */
#include "api/handlers.h"
#include "catalog/catalog.h"

int mu_h_app_catalog(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    pthread_rwlock_rdlock(&req->app->policy_lock);
    resp->json = mu_catalog_json(req->app->catalog);
    pthread_rwlock_unlock(&req->app->policy_lock);
    return MU_OK;
}
