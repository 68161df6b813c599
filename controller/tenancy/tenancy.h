/* tenancy/: the rules of the tenant tree that do not need the store: which kinds and EPCI
 * forms exist, how a tenant is read from and written to JSON (validated with
 * mutualis/validate.h), and the parser and planner of the official COG import
 * (@etalab/decoupage-administratif epci.json and communes.json). Pure code, no I/O. */
#ifndef MU_TENANCY_H
#define MU_TENANCY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "mutualis/err.h"
#include "store/store.h"

bool mu_tenant_kind_valid(const char *kind);     /* syndicat epci commune departement other */
bool mu_tenant_status_valid(const char *status); /* active suspended archived */
/* CC, CA, CU, METRO (métropole), MET69 (Métropole de Lyon). The etalab "type" values. */
bool mu_epci_form_valid(const char *form);

/* Fills t from a create body (all rules applied: kind required; epci_form only and required
 * for epci; insee required for communes and refused otherwise; siren optional (Luhn);
 * name 1..200 bytes; dept/region codes; population 0..100000000; contact fields;
 * status defaults to "active"; parent as "parent_id" (integer, optional)).
 * Unknown keys refused. On error t is left cleared. */
int mu_tenancy_from_create(const cJSON *body, struct mu_tenant *t, struct mu_err *err);

/* Applies a PATCH body onto t (a copy of the stored tenant): any of name, siren (null
 * clears), insee, dept, region, population, contact_*, status, epci_form. "kind" may not
 * change; "parent_id" is not accepted here (moves go through the move action). The
 * same cross-field rules as create are re-checked on the result. */
int mu_tenancy_apply_patch(const cJSON *body, struct mu_tenant *t, struct mu_err *err);

/* JSON form of a tenant, the shape the API returns. */
cJSON *mu_tenancy_to_json(const struct mu_tenant *t);

/* ---- COG import ------------------------------------------------------------------ */
/* Body of POST /v1/tenants/import:
 *   {"parent_id": 1, "departements": ["01","2A"] (optional: all if absent),
 *    "epci": [ ...entries of epci.json... ], "communes": [ ...entries of communes.json... ],
 *    "dry_run": false}
 * EPCI are taken when any member lies in the départements (with all their members);
 * only "commune-actuelle" entries are communes; communes of a taken EPCI become its
 * children; communes in no EPCI and in the départements go under the parent. */
struct mu_import_reject {
    char *key;    /* SIREN or INSEE code as given, or "#index" */
    char *reason; /* "invalid SIREN 123456789 (Luhn key)" */
};
struct mu_import_plan {
    int64_t parent_id;
    bool dry_run;
    struct mu_tenant_upsert *entries; /* EPCI first, then communes (parent_index -> EPCI) */
    size_t n;
    struct mu_import_reject *rejects;
    size_t nrejects;
    size_t skipped; /* entries outside the départements or not commune-actuelle */
};
/* Parses and plans. The body is parsed with the strict layer; entries with bad values are
 * rejected one by one with a reason; a malformed document fails as a whole (MU_EINVAL).
 * Does not check that parent_id exists (the store does). */
int mu_import_plan_build(const char *body, size_t len, struct mu_import_plan **ret,
                         struct mu_err *err);
void mu_import_plan_free(struct mu_import_plan *p);

#endif
