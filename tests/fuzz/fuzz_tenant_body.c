/* libFuzzer target: a tenant create or PATCH body (POST/PATCH /v1/tenants) on arbitrary
 * bytes, through the strict JSON layer, then back to JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "tenancy/tenancy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void dummy_tenant(struct mu_tenant *t, const char *kind)
{
    memset(t, 0, sizeof *t);
    t->id = 12;
    t->parent_id = 3;
    t->name = mu_xstrdup("Saint-Étienne");
    t->kind = mu_xstrdup(kind);
    if (strcmp(kind, "commune") == 0) {
        t->insee = mu_xstrdup("42218");
        t->dept = mu_xstrdup("42");
    } else {
        t->epci_form = mu_xstrdup("METRO");
    }
    t->siren = mu_xstrdup("214202186");
    t->region = mu_xstrdup("84");
    t->population = 171924;
    t->contact_email = mu_xstrdup("dsi@example.fr");
    t->status = mu_xstrdup("active");
    t->depth = 2;
    t->created_ms = 1700000000000;
    t->updated_ms = 1700000000001;
}

static void round_trip(const struct mu_tenant *t)
{
    cJSON *o = mu_tenancy_to_json(t);
    char *s = mu_json_print(o);
    if (!s)
        abort();
    free(s);
    cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mu_err err = {0};
    cJSON *body = mu_json_parse((const char *)data, size, "fuzz", &err);
    if (!body)
        return 0;

    struct mu_tenant t;
    memset(&err, 0, sizeof err);
    if (mu_tenancy_from_create(body, &t, &err) == 0) {
        if (!t.name || !t.kind || !t.status)
            abort();
        round_trip(&t);
        mu_tenant_clear(&t);
    } else if (t.name || t.kind || err.code == 0) {
        abort();
    }

    static const char *const kinds[] = {"commune", "epci"};
    for (size_t i = 0; i < MU_ARRAY_LEN(kinds); i++) {
        dummy_tenant(&t, kinds[i]);
        memset(&err, 0, sizeof err);
        int r = mu_tenancy_apply_patch(body, &t, &err);
        if (r < 0 && (err.code == 0 || strcmp(t.name, "Saint-Étienne") != 0))
            abort();
        if (t.id != 12 || t.parent_id != 3 || strcmp(t.kind, kinds[i]) != 0)
            abort();
        round_trip(&t);
        mu_tenant_clear(&t);
    }
    cJSON_Delete(body);
    return 0;
}
