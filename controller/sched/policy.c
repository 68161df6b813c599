/* The placement policy (policies/placement.json), parsed strictly: unknown keys, wrong
 * types and out-of-range values are refused with the file, line and column at fault.
 *
 *   {
 *     "version": 1,
 *     "overcommit": { "cpu": 4.0, "ram": 1.0, "disk": 1.0 },
 *     "reserved_host_memory_mib": 1024,
 *     "weigher": "spread",
 *     "place_on_unknown_health": false
 *   }
 */
#include "sched/sched.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mutualis/json.h"

#define POLICY_VERSION 1

void mu_sched_policy_defaults(struct mu_sched_policy *ret_policy)
{
    struct mu_sched_policy p = {
        .cpu_ratio = 4.0,
        .ram_ratio = 1.0,
        .disk_ratio = 1.0,
        .reserved_mem_mib = 1024,
        .weigher = MU_SCHED_SPREAD,
        .unknown_health_eligible = false,
    };
    *ret_policy = p;
}

/* ---- errors that point at the source (mu_json_locate) ------------------------------- */

struct src {
    const char *text;
    size_t len;
    const char *origin;
};

/* Fills err with "origin: line L, column C: message" for the value (or key) at path. */
static int MU_PRINTF(6, 7) fail(struct mu_err *err, const struct src *s, const int *path, size_t n,
                                bool at_value, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mu_json_fail_at(err, s->text, s->len, s->origin,
                           mu_json_locate(s->text, s->len, path, n, at_value), msg);
}

/* ---- the policy -------------------------------------------------------------------------- */

static int parse_ratio(const cJSON *item, const struct src *s, const int *path, double *ret,
                       struct mu_err *err)
{
    double v = cJSON_IsNumber(item) ? item->valuedouble : NAN;
    if (!(v >= MU_SCHED_RATIO_MIN && v <= MU_SCHED_RATIO_MAX))
        return fail(err, s, path, 2, true, "overcommit.%s must be a number between %g and %g",
                    item->string, MU_SCHED_RATIO_MIN, MU_SCHED_RATIO_MAX);
    if (fabs(v * 1000.0 - round(v * 1000.0)) > 1e-6)
        return fail(err, s, path, 2, true, "overcommit.%s must have at most 3 decimals",
                    item->string);
    *ret = v;
    return 0;
}

static int parse_overcommit(const cJSON *obj, const struct src *s, int index,
                            struct mu_sched_policy *p, struct mu_err *err)
{
    int path[2] = {index, 0};
    if (!cJSON_IsObject(obj))
        return fail(err, s, path, 1, true,
                    "overcommit must be an object like {\"cpu\": 4.0, \"ram\": 1.0, "
                    "\"disk\": 1.0}");
    for (const cJSON *it = obj->child; it; it = it->next, path[1]++) {
        double *dst;
        if (strcmp(it->string, "cpu") == 0)
            dst = &p->cpu_ratio;
        else if (strcmp(it->string, "ram") == 0)
            dst = &p->ram_ratio;
        else if (strcmp(it->string, "disk") == 0)
            dst = &p->disk_ratio;
        else
            return fail(err, s, path, 2, false,
                        "unknown key \"%s\" in overcommit (expected cpu, ram or disk)", it->string);
        int rc = parse_ratio(it, s, path, dst, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_member(const cJSON *it, const struct src *s, int index, struct mu_sched_policy *p,
                        bool *seen_version, struct mu_err *err)
{
    int path[1] = {index};
    const char *key = it->string;

    if (strcmp(key, "version") == 0) {
        int64_t v;
        if (mu_json_int_value(it, POLICY_VERSION, POLICY_VERSION, &v) < 0)
            return fail(err, s, path, 1, true, "version must be %d", POLICY_VERSION);
        *seen_version = true;
        return 0;
    }
    if (strcmp(key, "overcommit") == 0)
        return parse_overcommit(it, s, index, p, err);
    if (strcmp(key, "reserved_host_memory_mib") == 0) {
        int64_t v;
        if (mu_json_int_value(it, 0, MU_SCHED_RESERVED_MAX_MIB, &v) < 0)
            return fail(err, s, path, 1, true,
                        "reserved_host_memory_mib must be an integer between 0 and %d",
                        MU_SCHED_RESERVED_MAX_MIB);
        p->reserved_mem_mib = v;
        return 0;
    }
    if (strcmp(key, "weigher") == 0) {
        const char *w = cJSON_IsString(it) ? it->valuestring : "";
        if (strcmp(w, "spread") == 0)
            p->weigher = MU_SCHED_SPREAD;
        else if (strcmp(w, "pack") == 0)
            p->weigher = MU_SCHED_PACK;
        else
            return fail(err, s, path, 1, true, "weigher must be \"spread\" or \"pack\"");
        return 0;
    }
    if (strcmp(key, "place_on_unknown_health") == 0) {
        if (!cJSON_IsBool(it))
            return fail(err, s, path, 1, true, "place_on_unknown_health must be true or false");
        p->unknown_health_eligible = cJSON_IsTrue(it);
        return 0;
    }
    return fail(err, s, path, 1, false,
                "unknown key \"%s\" (expected version, overcommit, reserved_host_memory_mib, "
                "weigher or place_on_unknown_health)",
                key);
}

int mu_sched_policy_parse(const char *buf, size_t len, const char *origin,
                          struct mu_sched_policy *ret_policy, struct mu_err *err)
{
    struct src s = {buf, len, origin ? origin : "placement policy"};
    struct mu_sched_policy p;
    bool seen_version = false;
    int rc = 0;

    cJSON *root = mu_json_parse(buf, len, s.origin, err);
    if (!root)
        return MU_EINVAL;
    if (!cJSON_IsObject(root)) {
        rc = fail(err, &s, NULL, 0, true, "the placement policy must be a JSON object");
        goto out;
    }
    mu_sched_policy_defaults(&p);
    int index = 0;
    for (const cJSON *it = root->child; it; it = it->next, index++) {
        rc = parse_member(it, &s, index, &p, &seen_version, err);
        if (rc < 0)
            goto out;
    }
    if (!seen_version) {
        rc = fail(err, &s, NULL, 0, true, "\"version\": %d is missing", POLICY_VERSION);
        goto out;
    }
    *ret_policy = p;
out:
    cJSON_Delete(root);
    return rc;
}
