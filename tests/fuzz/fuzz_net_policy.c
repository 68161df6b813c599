/* libFuzzer target: the network policy (policies/networks.json) and the network inputs of
 * the API on arbitrary bytes. The whole input goes through mu_net_policy_parse; when it is
 * a JSON object it is also read as a security-rule body (as a tenant and as an operator),
 * and every string member as an IPv4 address and a CIDR. What is accepted must print back
 * to text that parses again to the same value. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct mu_net_policy *p = NULL;
    struct mu_err err = {0};

    if (mu_net_policy_parse(text, size, "fuzz", &p, &err) == 0) {
        struct mu_net_config c;
        mu_net_policy_config(p, &c);
        if (c.segment_min > c.segment_max ||
            mu_net_guest_mtu(c.underlay_mtu, c.vxlan_overhead) < 576)
            abort();
        mu_net_policy_free(p);
    }
    mu_err_clear(&err);
    cJSON *j = mu_json_parse(text, size, "fuzz", &err);
    if (!j)
        return 0;
    for (int op = 0; op < 2 && cJSON_IsObject(j); op++) {
        struct mu_sec_rule r;
        struct mu_err rerr = {0};
        if (mu_net_rule_from_json(j, op == 1, &r, &rerr) == 0) {
            if (r.port_min > r.port_max || (strcmp(r.action, "drop") == 0 && !r.operator_rule))
                abort();
            free(r.description);
        }
    }
    for (const cJSON *it = j->child; it; it = it->next) {
        uint32_t a, net, again;
        int prefix, p2;
        char out[MU_IPV4_TEXT_MAX], cidr[MU_CIDR_TEXT_MAX + 8];
        struct mu_err cerr = {0};
        if (!cJSON_IsString(it))
            continue;
        if (mu_ipv4_parse(it->valuestring, &a) == 0) {
            mu_ipv4_format(a, out);
            if (strcmp(out, it->valuestring) != 0 || mu_ipv4_parse(out, &again) != 0 || again != a)
                abort();
        }
        if (mu_cidr_parse(it->valuestring, "cidr", &net, &prefix, &cerr) == 0) {
            mu_ipv4_format(net, out);
            snprintf(cidr, sizeof cidr, "%s/%d", out, prefix);
            if (mu_cidr_parse(cidr, "cidr", &again, &p2, &cerr) != 0 || again != net ||
                p2 != prefix || prefix < 8 || prefix > 30)
                abort();
        }
    }
    cJSON_Delete(j);
    return 0;
}
