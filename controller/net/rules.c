/* Security rules from API bodies: the shapes (types, known keys, port syntax); the store
 * checks the values again in the transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "net/net.h"

int mu_net_ports_parse(const cJSON *v, const char *field, int *ret_min, int *ret_max,
                       struct mu_err *err)
{
    int64_t lo = 0, hi = 0;

    if (cJSON_IsNumber(v)) {
        if (mu_json_int_value(v, 1, 65535, &lo) < 0)
            goto bad;
        hi = lo;
    } else if (cJSON_IsString(v)) {
        char a[8], b[8];
        const char *s = v->valuestring, *dash = strchr(s, '-');
        size_t n = strlen(s), na = dash ? (size_t)(dash - s) : n;
        size_t nb = dash ? n - na - 1 : n;

        if (n == 0 || na >= sizeof a || nb >= sizeof b)
            goto bad;
        memcpy(a, s, na);
        a[na] = '\0';
        memcpy(b, dash ? dash + 1 : s, nb);
        b[nb] = '\0';
        if (a[0] == '0' || b[0] == '0' || mu_parse_i64(a, 1, 65535, &lo) < 0 ||
            mu_parse_i64(b, 1, 65535, &hi) < 0 || lo > hi)
            goto bad;
    } else {
        goto bad;
    }
    *ret_min = (int)lo;
    *ret_max = (int)hi;
    return 0;
bad:
    return mu_err_setf(err, MU_EINVAL, field,
                       "%s must be a port (1-65535) or a range like \"8000-8080\"", field);
}

int mu_net_rule_from_json(const cJSON *body, bool operator_rule, struct mu_sec_rule *ret,
                          struct mu_err *err)
{
    static const char *const allowed[] = {"proto",  "ports",       "source",
                                          "action", "description", NULL};
    const char *proto = NULL, *source = "0.0.0.0/0", *action = "accept", *desc = NULL;
    const cJSON *ports;
    struct mu_sec_rule r = {0};
    int rc;

    rc = mu_json_expect_object(body, allowed, "rule", err);
    if (rc < 0)
        return rc;
    if ((rc = mu_json_get_str(body, "proto", true, 7, &proto, err)) < 0 ||
        (rc = mu_json_get_str(body, "source", false, MU_CIDR_TEXT_MAX - 1, &source, err)) < 0 ||
        (rc = mu_json_get_str(body, "action", false, 7, &action, err)) < 0 ||
        (rc = mu_json_get_str(body, "description", false, 200, &desc, err)) < 0)
        return rc;
    if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0 && strcmp(proto, "icmp") != 0 &&
        strcmp(proto, "any") != 0)
        return mu_err_setf(err, MU_EINVAL, "proto",
                           "proto must be \"tcp\", \"udp\", \"icmp\" or \"any\"");
    if (strcmp(action, "accept") != 0 && strcmp(action, "drop") != 0)
        return mu_err_setf(err, MU_EINVAL, "action", "action must be \"accept\" or \"drop\"");
    if (strcmp(action, "drop") == 0 && !operator_rule)
        return mu_err_setf(err, MU_EINVAL, "action",
                           "only operators set \"drop\" rules: traffic from outside the network "
                           "is dropped unless a rule accepts it");
    if (strchr(source, ':'))
        return mu_err_setf(err, MU_EINVAL, "source", "IPv6 is not supported: give an IPv4 CIDR");
    ports = cJSON_GetObjectItemCaseSensitive(body, "ports");
    if (ports && !cJSON_IsNull(ports)) {
        if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
            return mu_err_setf(err, MU_EINVAL, "ports", "%s rules take no ports", proto);
        rc = mu_net_ports_parse(ports, "ports", &r.port_min, &r.port_max, err);
        if (rc < 0)
            return rc;
    } else if (strcmp(proto, "tcp") == 0 || strcmp(proto, "udp") == 0) {
        return mu_err_setf(err, MU_EINVAL, "ports",
                           "a %s rule needs \"ports\": a port like 443 or a range like "
                           "\"8000-8080\"",
                           proto);
    }
    r.operator_rule = operator_rule;
    snprintf(r.action, sizeof r.action, "%s", action);
    snprintf(r.proto, sizeof r.proto, "%s", proto);
    snprintf(r.source, sizeof r.source, "%s", source);
    r.description = mu_xstrdup(desc);
    *ret = r;
    return 0;
}
