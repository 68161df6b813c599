/* The alert policy (policies/alerts.json), parsed strictly: unknown rules and keys, wrong
 * types and out-of-range values are refused with the file, line and column at fault.
 *
 *   {
 *     "version": 1,
 *     "rules": {
 *       "node_down": {"enabled": true, "severity": "critical", "for_s": 60,
 *                     "resolve_after_s": 60},
 *       "allocation_high": {"threshold_percent": 85, ...},
 *       ...
 *     }
 *   }
 */
#include "alerts/alerts.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"

#define POLICY_VERSION 1
#define HOLD_MAX_S     (7 * 86400)

static const char *const rule_names[MU_ALERT_RULES] = {
    "node_down",    "allocation_high", "n_plus_1_lost",      "tenant_quota_high",
    "reports_late", "cert_expiring",   "operations_failing",
};

const char *mu_alert_rule_name(int rule)
{
    return rule >= 0 && rule < MU_ALERT_RULES ? rule_names[rule] : NULL;
}

int mu_alert_rule_from_name(const char *name)
{
    for (int i = 0; name && i < MU_ALERT_RULES; i++)
        if (strcmp(name, rule_names[i]) == 0)
            return i;
    return -1;
}

const char *mu_alert_severity_name(enum mu_alert_severity s)
{
    return s == MU_ALERT_CRITICAL ? "critical" : s == MU_ALERT_WARNING ? "warning" : "info";
}

void mu_alert_policy_defaults(struct mu_alert_policy *ret)
{
    memset(ret, 0, sizeof *ret);
    struct mu_alert_rule *r = ret->rules;
    for (int i = 0; i < MU_ALERT_RULES; i++) {
        r[i].enabled = true;
        r[i].severity = MU_ALERT_WARNING;
    }
    r[MU_ALERT_NODE_DOWN].severity = MU_ALERT_CRITICAL;
    r[MU_ALERT_NODE_DOWN].for_ms = 60000;
    r[MU_ALERT_NODE_DOWN].resolve_after_ms = 60000;
    r[MU_ALERT_ALLOCATION_HIGH].percent = 85;
    r[MU_ALERT_ALLOCATION_HIGH].for_ms = 600000;
    r[MU_ALERT_ALLOCATION_HIGH].resolve_after_ms = 600000;
    r[MU_ALERT_N_PLUS_1_LOST].severity = MU_ALERT_CRITICAL;
    r[MU_ALERT_N_PLUS_1_LOST].for_ms = 300000;
    r[MU_ALERT_N_PLUS_1_LOST].resolve_after_ms = 300000;
    r[MU_ALERT_TENANT_QUOTA_HIGH].percent = 90;
    r[MU_ALERT_TENANT_QUOTA_HIGH].for_ms = 600000;
    r[MU_ALERT_TENANT_QUOTA_HIGH].resolve_after_ms = 600000;
    r[MU_ALERT_REPORTS_LATE].late_ms = 25000;
    r[MU_ALERT_REPORTS_LATE].resolve_after_ms = 60000;
    r[MU_ALERT_CERT_EXPIRING].days = 14;
    r[MU_ALERT_OPERATIONS_FAILING].count = 5;
    r[MU_ALERT_OPERATIONS_FAILING].window_ms = 900000;
    r[MU_ALERT_OPERATIONS_FAILING].resolve_after_ms = 600000;
}

/* ---- errors that point at the source (mu_json_locate) ------------------------------- */

struct src {
    const char *text;
    size_t len;
    const char *origin;
};

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

/* The keys a rule accepts beyond the common four, and where they go. */
struct extra {
    const char *key;
    int64_t min, max, scale; /* scale: ms per unit (1 for plain numbers) */
    size_t offset;           /* into struct mu_alert_rule */
};

static const struct extra *rule_extras(int rule, size_t *ret_n)
{
    static const struct extra pct[] = {
        {"threshold_percent", 1, 100, 1, offsetof(struct mu_alert_rule, percent)}};
    static const struct extra late[] = {
        {"late_s", 1, 86400, 1000, offsetof(struct mu_alert_rule, late_ms)}};
    static const struct extra days[] = {{"days", 1, 365, 1, offsetof(struct mu_alert_rule, days)}};
    static const struct extra ops[] = {
        {"count", 1, 100000, 1, offsetof(struct mu_alert_rule, count)},
        {"window_s", 1, HOLD_MAX_S, 1000, offsetof(struct mu_alert_rule, window_ms)}};
    switch (rule) {
    case MU_ALERT_ALLOCATION_HIGH:
    case MU_ALERT_TENANT_QUOTA_HIGH:
        *ret_n = 1;
        return pct;
    case MU_ALERT_REPORTS_LATE:
        *ret_n = 1;
        return late;
    case MU_ALERT_CERT_EXPIRING:
        *ret_n = 1;
        return days;
    case MU_ALERT_OPERATIONS_FAILING:
        *ret_n = 2;
        return ops;
    default:
        *ret_n = 0;
        return NULL;
    }
}

static int parse_rule(const cJSON *obj, const struct src *s, int rules_index, int ri, int rule,
                      struct mu_alert_rule *r, struct mu_err *err)
{
    int path[3] = {rules_index, ri, 0};
    size_t nx;
    const struct extra *xs = rule_extras(rule, &nx);
    const char *name = rule_names[rule];

    if (!cJSON_IsObject(obj))
        return fail(err, s, path, 2, true,
                    "rules.%s must be an object like {\"enabled\": true, \"severity\": "
                    "\"warning\", \"for_s\": 60, \"resolve_after_s\": 60}",
                    name);
    for (const cJSON *it = obj->child; it; it = it->next, path[2]++) {
        const char *key = it->string;
        int64_t v;
        if (strcmp(key, "enabled") == 0) {
            if (!cJSON_IsBool(it))
                return fail(err, s, path, 3, true, "rules.%s.enabled must be true or false", name);
            r->enabled = cJSON_IsTrue(it);
            continue;
        }
        if (strcmp(key, "severity") == 0) {
            const char *sv = cJSON_IsString(it) ? it->valuestring : "";
            if (strcmp(sv, "info") == 0)
                r->severity = MU_ALERT_INFO;
            else if (strcmp(sv, "warning") == 0)
                r->severity = MU_ALERT_WARNING;
            else if (strcmp(sv, "critical") == 0)
                r->severity = MU_ALERT_CRITICAL;
            else
                return fail(err, s, path, 3, true,
                            "rules.%s.severity must be \"info\", \"warning\" or \"critical\"",
                            name);
            continue;
        }
        if (strcmp(key, "for_s") == 0 || strcmp(key, "resolve_after_s") == 0) {
            if (mu_json_int_value(it, 0, HOLD_MAX_S, &v) < 0)
                return fail(err, s, path, 3, true,
                            "rules.%s.%s must be a whole number of seconds from 0 to %d", name, key,
                            HOLD_MAX_S);
            *(key[0] == 'f' ? &r->for_ms : &r->resolve_after_ms) = v * 1000;
            continue;
        }
        size_t k = 0;
        while (k < nx && strcmp(key, xs[k].key) != 0)
            k++;
        if (k < nx) {
            if (mu_json_int_value(it, xs[k].min, xs[k].max, &v) < 0)
                return fail(err, s, path, 3, true,
                            "rules.%s.%s must be an integer from %lld to %lld", name, key,
                            (long long)xs[k].min, (long long)xs[k].max);
            *(int64_t *)((char *)r + xs[k].offset) = v * xs[k].scale;
            continue;
        }
        char expected[160];
        snprintf(expected, sizeof expected, "enabled, severity, for_s, resolve_after_s%s%s%s%s",
                 nx > 0 ? ", " : "", nx > 0 ? xs[0].key : "", nx > 1 ? ", " : "",
                 nx > 1 ? xs[1].key : "");
        return fail(err, s, path, 3, false, "unknown key \"%s\" in rules.%s (expected %s)", key,
                    name, expected);
    }
    return 0;
}

static int parse_rules(const cJSON *obj, const struct src *s, int index, struct mu_alert_policy *p,
                       struct mu_err *err)
{
    int path[2] = {index, 0};
    if (!cJSON_IsObject(obj))
        return fail(err, s, path, 1, true, "rules must be an object keyed by rule name");
    for (const cJSON *it = obj->child; it; it = it->next, path[1]++) {
        int rule = mu_alert_rule_from_name(it->string);
        if (rule < 0)
            return fail(err, s, path, 2, false,
                        "unknown rule \"%s\" (expected node_down, allocation_high, "
                        "n_plus_1_lost, tenant_quota_high, reports_late, cert_expiring or "
                        "operations_failing)",
                        it->string);
        int rc = parse_rule(it, s, index, path[1], rule, &p->rules[rule], err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int mu_alert_policy_parse(const char *buf, size_t len, const char *origin,
                          struct mu_alert_policy *ret, struct mu_err *err)
{
    struct src s = {buf, len, origin ? origin : "alert policy"};
    struct mu_alert_policy p;
    bool seen_version = false;
    int rc = 0;

    cJSON *root = mu_json_parse(buf, len, s.origin, err);
    if (!root)
        return MU_EINVAL;
    if (!cJSON_IsObject(root)) {
        rc = fail(err, &s, NULL, 0, true, "the alert policy must be a JSON object");
        goto out;
    }
    mu_alert_policy_defaults(&p);
    int index = 0;
    for (const cJSON *it = root->child; it; it = it->next, index++) {
        int path[1] = {index};
        if (strcmp(it->string, "version") == 0) {
            int64_t v;
            if (mu_json_int_value(it, POLICY_VERSION, POLICY_VERSION, &v) < 0) {
                rc = fail(err, &s, path, 1, true, "version must be %d", POLICY_VERSION);
                goto out;
            }
            seen_version = true;
        } else if (strcmp(it->string, "rules") == 0) {
            if ((rc = parse_rules(it, &s, index, &p, err)) < 0)
                goto out;
        } else {
            rc = fail(err, &s, path, 1, false, "unknown key \"%s\" (expected version or rules)",
                      it->string);
            goto out;
        }
    }
    if (!seen_version) {
        rc = fail(err, &s, NULL, 0, true, "\"version\": %d is missing", POLICY_VERSION);
        goto out;
    }
    *ret = p;
out:
    cJSON_Delete(root);
    return rc;
}

int mu_alert_policy_load(const char *path, struct mu_alert_policy **ret, struct mu_err *err)
{
    size_t len = 0;
    MU_AUTOFREE char *text = mu_read_file(path, 1 << 20, &len);
    if (!text)
        return mu_err_set(err, MU_EIO, "%s: cannot read: %s", path, strerror(errno));
    struct mu_alert_policy *p = mu_xcalloc(1, sizeof *p);
    int rc = mu_alert_policy_parse(text, len, path, p, err);
    if (rc < 0) {
        free(p);
        return rc;
    }
    *ret = p;
    return 0;
}
