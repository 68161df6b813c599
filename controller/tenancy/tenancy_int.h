/* Inside tenancy/ only: what tenant.c shares with import.c, so that a tenant created by
 * hand and one imported from the COG obey the very same rules and messages. */
#ifndef MU_TENANCY_INT_H
#define MU_TENANCY_INT_H

#include <stddef.h>

#include "tenancy/tenancy.h"

/* Checks every value and cross-field rule of a filled tenant (name, kind, status,
 * epci_form, siren, insee, departement against the INSEE code, region, population,
 * contact). 0, or MU_EINVAL with err naming the JSON field ("contact.email"). */
int mu_tenancy_check(const struct mu_tenant *t, struct mu_err *err);

/* Département of an INSEE commune code: its first 2 characters, or 3 for the overseas
 * codes (97x, 98x). Writes a NUL-terminated code into out (4 bytes); false if the code
 * is too short to have one. */
bool mu_tenancy_insee_dept(const char *insee, char out[4]);

/* Copies at most 40 bytes of an input value into a message-safe form (printable ASCII,
 * anything else as '?', "…" when cut) so that a detail never carries control bytes. */
const char *mu_tenancy_show(const char *value, char out[48]);

/* Frees the strings of t and zeroes it (the tenancy side of mu_tenant_clear). */
void mu_tenancy_tenant_fini(struct mu_tenant *t);

#endif
