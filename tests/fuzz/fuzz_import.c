/* libFuzzer target: the COG import planner (POST /v1/tenants/import) on arbitrary bytes.
 * Every plan it returns must be consistent: EPCI before their communes, parents earlier
 * in the array, strings valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tenancy/tenancy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mu_import_plan *p = NULL;
    struct mu_err err = {0};
    int r = mu_import_plan_build((const char *)data, size, &p, &err);
    if (r < 0) {
        if (p || err.code == 0 || err.detail[0] == '\0')
            abort();
        return 0;
    }
    if (!p || p->parent_id < 1)
        abort();
    for (size_t i = 0; i < p->n; i++) {
        const struct mu_tenant_upsert *e = &p->entries[i];
        if (e->parent_index >= (int)i || e->parent_index < -1)
            abort();
        if (!e->t.name || !e->t.kind || !e->t.status)
            abort();
        if (e->parent_index >= 0 && strcmp(p->entries[e->parent_index].t.kind, "epci") != 0)
            abort();
        if (strcmp(e->t.kind, "commune") == 0 ? !e->t.insee : !e->t.siren)
            abort();
    }
    for (size_t i = 0; i < p->nrejects; i++)
        if (!p->rejects[i].key || !p->rejects[i].reason)
            abort();
    mu_import_plan_free(p);
    return 0;
}
