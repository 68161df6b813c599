/* tenancy/quotas: the default quota policy (policies/quotas.json). A tenant with no
 * explicit limits gets the limits of the first band of the policy that matches its kind
 * and population; the store calls back into it through struct mu_quota_defaults
 * (store/provision.h) while it admits a VM, so the lookup is pure, allocation-free and
 * never fails.
 *
 *   {
 *     "version": 1,
 *     "defaults": [
 *       {"kind": "commune", "population_max": 1999,
 *        "limits": {"vcpus": 4, "ram_mib": 8192, "disk_gib": 200, "vms": 4}},
 *       {"kind": "commune", "limits": {...}},
 *       {"kind": "syndicat", "limits": "unlimited"}
 *     ],
 *     "fallback": {"vcpus": 4, "ram_mib": 8192, "disk_gib": 100, "vms": 4}
 *   }
 *
 * Rules, all checked when the file is read (errors name the file, line and column):
 * - "version" (1), "defaults" (an array, may be empty) and "fallback" are required; no
 *   other key is accepted anywhere.
 * - A band has "kind" (syndicat, epci, commune, departement, other), optional
 *   "population_max" (inclusive, 0..100000000) and "limits".
 * - "limits" (and "fallback") is either the string "unlimited" or an object with all four
 *   of vcpus, ram_mib, disk_gib, vms, each an integer >= 0 or the string "unlimited".
 * - Matching: among the bands of the tenant's kind, in file order, the first whose
 *   population_max is absent or >= the population wins. A tenant whose population is
 *   unknown (< 0) gets the first band of its kind without population_max, or else the last
 *   band of its kind. No band of the kind (or a population above every band): fallback.
 * - A band that can never match (it follows a band of the same kind without
 *   population_max, or its population_max is not above the previous band's) is refused:
 *   it is almost certainly a mistake in the file. */
#ifndef MU_TENANCY_QUOTAS_H
#define MU_TENANCY_QUOTAS_H

#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/provision.h"

struct mu_quota_policy;

/* Parses a policy from len bytes; origin names the input in messages
 * ("policies/quotas.json"). *ret is the caller's (mu_quota_policy_free). MU_EINVAL with
 * err ("policies/quotas.json: line 7, column 9: ...") on any error; *ret untouched. */
int mu_quota_policy_parse(const char *buf, size_t len, const char *origin,
                          struct mu_quota_policy **ret, struct mu_err *err);
/* Reads and parses a file (at most 1 MiB). MU_EIO if it cannot be read. */
int mu_quota_policy_load(const char *path, struct mu_quota_policy **ret, struct mu_err *err);
void mu_quota_policy_free(struct mu_quota_policy *p);

/* The limits for a tenant of kind (NULL or unknown: the fallback) and population (< 0:
 * unknown). Pure; p is only read. */
void mu_quota_policy_lookup(const struct mu_quota_policy *p, const char *kind, int64_t population,
                            struct mu_limits *ret);

/* The mu_quota_default_fn to plug into struct mu_quota_defaults: ctx is a
 * struct mu_quota_policy * (borrowed: it must outlive the store calls that use it). A NULL
 * ctx gives the built-in fallback (4 vCPU, 8 GiB, 100 GiB, 4 VMs). */
void mu_quota_policy_defaults_fn(void *ctx, const char *kind, int64_t population,
                                 struct mu_limits *ret);

/* Convenience: {mu_quota_policy_defaults_fn, p}. */
struct mu_quota_defaults mu_quota_policy_defaults(struct mu_quota_policy *p);

#endif
