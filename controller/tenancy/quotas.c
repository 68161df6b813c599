/* The default quota policy (policies/quotas.json): strict parsing with the file, line and
 * column of every error, and the band lookup the store calls during admission. The rules
 * are in quotas.h. */
#include "tenancy/quotas.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "tenancy/tenancy.h"

#define POLICY_VERSION   1
#define POPULATION_MAX   100000000
#define LIMIT_MAX        1000000000000LL /* any figure above this is a typo */
#define POLICY_FILE_MAX  (1 << 20)
#define POLICY_BANDS_MAX 1000
#define KIND_LEN         16

struct band {
    char kind[KIND_LEN];
    int64_t population_max; /* -1: none */
    struct mu_limits limits;
};

struct mu_quota_policy {
    struct band *bands;
    size_t n;
    struct mu_limits fallback;
};

static const struct mu_limits builtin_fallback = {
    .vcpus = 4, .ram_mib = 8192, .disk_gib = 100, .vms = 4, .networks = 2, .public_ips = 1};

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

/* ---- parsing ------------------------------------------------------------------------ */

static bool is_unlimited(const cJSON *v)
{
    return cJSON_IsString(v) && strcmp(v->valuestring, "unlimited") == 0;
}

/* One figure: an integer 0..LIMIT_MAX or "unlimited". path[depth-1] indexes it. */
static int parse_figure(const cJSON *v, const struct src *s, const int *path, size_t depth,
                        const char *where, int64_t *ret, struct mu_err *err)
{
    int64_t x;
    if (is_unlimited(v)) {
        *ret = MU_UNLIMITED;
        return 0;
    }
    if (mu_json_int_value(v, 0, LIMIT_MAX, &x) < 0)
        return fail(err, s, path, depth, true,
                    "%s.%s must be an integer between 0 and %lld, or \"unlimited\"", where,
                    v->string, (long long)LIMIT_MAX);
    *ret = x;
    return 0;
}

/* "unlimited" or {"vcpus":, "ram_mib":, "disk_gib":, "vms":}; path[0..depth) names it. */
static int parse_limits(const cJSON *v, const struct src *s, int *path, size_t depth,
                        const char *where, struct mu_limits *ret, struct mu_err *err)
{
    /* networks and public_ips may be left out (unlimited): policies written before them
     * still load. */
    static const char *const names[] = {"vcpus", "ram_mib",  "disk_gib",
                                        "vms",   "networks", "public_ips"};
    struct mu_limits l = {MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED,
                          MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED};
    int64_t *dst[] = {&l.vcpus, &l.ram_mib, &l.disk_gib, &l.vms, &l.networks, &l.public_ips};
    bool seen[6] = {false, false, false, false, false, false};

    if (is_unlimited(v)) {
        *ret = l;
        return 0;
    }
    if (!cJSON_IsObject(v))
        return fail(err, s, path, depth, true,
                    "%s must be \"unlimited\" or an object like {\"vcpus\": 4, \"ram_mib\": "
                    "8192, \"disk_gib\": 200, \"vms\": 4}",
                    where);
    path[depth] = 0;
    for (const cJSON *it = v->child; it; it = it->next, path[depth]++) {
        size_t k;
        for (k = 0; k < MU_ARRAY_LEN(names); k++)
            if (strcmp(it->string, names[k]) == 0)
                break;
        if (k == MU_ARRAY_LEN(names))
            return fail(err, s, path, depth + 1, false,
                        "unknown key \"%.64s\" in %s (expected vcpus, ram_mib, disk_gib, vms, "
                        "networks, public_ips)",
                        it->string, where);
        int rc = parse_figure(it, s, path, depth + 1, where, dst[k], err);
        if (rc < 0)
            return rc;
        seen[k] = true;
    }
    for (size_t k = 0; k < 4; k++)
        if (!seen[k])
            return fail(err, s, path, depth, true,
                        "%s lacks \"%s\" (give all of vcpus, ram_mib, disk_gib and vms; "
                        "\"unlimited\" is allowed for each)",
                        where, names[k]);
    *ret = l;
    return 0;
}

/* One element of "defaults"; path = {index of "defaults", band index, ...}. */
static int parse_band(const cJSON *v, const struct src *s, int *path, struct band *ret,
                      struct mu_err *err)
{
    char where[48];
    bool have_kind = false, have_limits = false;
    struct band b = {.population_max = -1};

    snprintf(where, sizeof where, "defaults[%d]", path[1]);
    if (!cJSON_IsObject(v))
        return fail(err, s, path, 2, true,
                    "%s must be an object like {\"kind\": \"commune\", \"population_max\": "
                    "1999, \"limits\": {...}}",
                    where);
    path[2] = 0;
    for (const cJSON *it = v->child; it; it = it->next, path[2]++) {
        if (strcmp(it->string, "kind") == 0) {
            if (!cJSON_IsString(it) || !mu_tenant_kind_valid(it->valuestring))
                return fail(err, s, path, 3, true,
                            "%s.kind must be one of syndicat, epci, commune, departement, "
                            "other",
                            where);
            snprintf(b.kind, sizeof b.kind, "%s", it->valuestring);
            have_kind = true;
        } else if (strcmp(it->string, "population_max") == 0) {
            if (mu_json_int_value(it, 0, POPULATION_MAX, &b.population_max) < 0)
                return fail(err, s, path, 3, true,
                            "%s.population_max must be an integer between 0 and %d", where,
                            POPULATION_MAX);
        } else if (strcmp(it->string, "limits") == 0) {
            char lw[64];
            snprintf(lw, sizeof lw, "%s.limits", where);
            int rc = parse_limits(it, s, path, 3, lw, &b.limits, err);
            if (rc < 0)
                return rc;
            have_limits = true;
        } else {
            return fail(err, s, path, 3, false,
                        "unknown key \"%.64s\" in %s (expected kind, population_max, limits)",
                        it->string, where);
        }
    }
    if (!have_kind)
        return fail(err, s, path, 2, true, "%s lacks \"kind\"", where);
    if (!have_limits)
        return fail(err, s, path, 2, true, "%s lacks \"limits\"", where);
    *ret = b;
    return 0;
}

/* Refuses a band that no tenant can ever reach. */
static int check_reachable(const struct mu_quota_policy *p, size_t i, const struct src *s,
                           int *path, struct mu_err *err)
{
    const struct band *b = &p->bands[i];
    for (size_t j = i; j-- > 0;) {
        const struct band *prev = &p->bands[j];
        if (strcmp(prev->kind, b->kind) != 0)
            continue;
        path[1] = (int)i;
        if (prev->population_max < 0)
            return fail(err, s, path, 2, true,
                        "defaults[%zu] can never apply: defaults[%zu] already matches every "
                        "%s (it has no population_max)",
                        i, j, b->kind);
        if (b->population_max >= 0 && b->population_max <= prev->population_max)
            return fail(err, s, path, 2, true,
                        "defaults[%zu] can never apply: its population_max %lld is not above "
                        "the %lld of defaults[%zu] (list the bands of a kind from the smallest)",
                        i, (long long)b->population_max, (long long)prev->population_max, j);
        return 0; /* the previous band of the kind was checked against its own predecessors */
    }
    return 0;
}

static int parse_defaults(const cJSON *v, const struct src *s, int index, struct mu_quota_policy *p,
                          struct mu_err *err)
{
    int path[4] = {index, 0, 0, 0};
    if (!cJSON_IsArray(v))
        return fail(err, s, path, 1, true, "defaults must be an array of bands");
    int n = cJSON_GetArraySize(v);
    if (n > POLICY_BANDS_MAX)
        return fail(err, s, path, 1, true, "defaults holds %d bands (at most %d)", n,
                    POLICY_BANDS_MAX);
    p->bands = mu_xcalloc(n > 0 ? (size_t)n : 1, sizeof *p->bands);
    for (const cJSON *it = v->child; it; it = it->next, path[1]++) {
        int rc = parse_band(it, s, path, &p->bands[p->n], err);
        if (rc < 0)
            return rc;
        p->n++;
        rc = check_reachable(p, p->n - 1, s, path, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int mu_quota_policy_parse(const char *buf, size_t len, const char *origin,
                          struct mu_quota_policy **ret, struct mu_err *err)
{
    struct src s = {buf, len, origin ? origin : "quota policy"};
    struct mu_quota_policy *p = mu_xcalloc(1, sizeof *p);
    bool seen_version = false, seen_defaults = false, seen_fallback = false;
    int rc = 0;

    cJSON *root = mu_json_parse(buf, len, s.origin, err);
    if (!root) {
        mu_quota_policy_free(p);
        return MU_EINVAL;
    }
    if (!cJSON_IsObject(root)) {
        rc = fail(err, &s, NULL, 0, true, "the quota policy must be a JSON object");
        goto out;
    }
    int index = 0;
    for (const cJSON *it = root->child; it; it = it->next, index++) {
        int path[2] = {index, 0};
        if (strcmp(it->string, "version") == 0) {
            int64_t v;
            if (mu_json_int_value(it, POLICY_VERSION, POLICY_VERSION, &v) < 0) {
                rc = fail(err, &s, path, 1, true, "version must be %d", POLICY_VERSION);
                goto out;
            }
            seen_version = true;
        } else if (strcmp(it->string, "defaults") == 0) {
            rc = parse_defaults(it, &s, index, p, err);
            if (rc < 0)
                goto out;
            seen_defaults = true;
        } else if (strcmp(it->string, "fallback") == 0) {
            rc = parse_limits(it, &s, path, 1, "fallback", &p->fallback, err);
            if (rc < 0)
                goto out;
            seen_fallback = true;
        } else {
            rc = fail(err, &s, path, 1, false,
                      "unknown key \"%.64s\" (expected version, defaults, fallback)", it->string);
            goto out;
        }
    }
    if (!seen_version)
        rc = fail(err, &s, NULL, 0, true, "\"version\": %d is missing", POLICY_VERSION);
    else if (!seen_defaults)
        rc = fail(err, &s, NULL, 0, true, "\"defaults\" (the array of bands) is missing");
    else if (!seen_fallback)
        rc = fail(err, &s, NULL, 0, true,
                  "\"fallback\" (the limits of a tenant that no band matches) is missing");
out:
    cJSON_Delete(root);
    if (rc < 0) {
        mu_quota_policy_free(p);
        return rc;
    }
    *ret = p;
    return 0;
}

int mu_quota_policy_load(const char *path, struct mu_quota_policy **ret, struct mu_err *err)
{
    size_t len;
    char *buf = mu_read_file(path, POLICY_FILE_MAX, &len);
    if (!buf)
        return mu_err_set(err, MU_EIO, "%s: cannot read the quota policy: %s", path,
                          errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
    int rc = mu_quota_policy_parse(buf, len, path, ret, err);
    free(buf);
    return rc;
}

void mu_quota_policy_free(struct mu_quota_policy *p)
{
    if (!p)
        return;
    free(p->bands);
    free(p);
}

/* ---- lookup --------------------------------------------------------------------------- */

void mu_quota_policy_lookup(const struct mu_quota_policy *p, const char *kind, int64_t population,
                            struct mu_limits *ret)
{
    const struct band *last = NULL;

    if (!p) {
        *ret = builtin_fallback;
        return;
    }
    if (!kind) {
        *ret = p->fallback;
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        const struct band *b = &p->bands[i];
        if (strcmp(b->kind, kind) != 0)
            continue;
        if (b->population_max < 0 || (population >= 0 && population <= b->population_max)) {
            *ret = b->limits;
            return;
        }
        last = b;
    }
    /* Unknown population and every band of the kind bounded: the largest band. */
    *ret = population < 0 && last ? last->limits : p->fallback;
}

void mu_quota_policy_defaults_fn(void *ctx, const char *kind, int64_t population,
                                 struct mu_limits *ret)
{
    mu_quota_policy_lookup(ctx, kind, population, ret);
}

struct mu_quota_defaults mu_quota_policy_defaults(struct mu_quota_policy *p)
{
    return (struct mu_quota_defaults){.fn = mu_quota_policy_defaults_fn, .ctx = p};
}
