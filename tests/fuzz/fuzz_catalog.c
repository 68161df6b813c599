/* libFuzzer target: the catalogue policy (policies/catalog.json) on arbitrary bytes; when
 * it parses, every item's answer for GET /v1/catalog, a request's parameter checks and the
 * user-data rendering run too. The first line of the input, when it is a JSON object, is
 * used as the request's "parameters" and the rest as the policy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "mutualis/json.h"
#include "mutualis/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    struct mu_err err = {0};
    cJSON *params = NULL;
    if (nl && nl > text && text[0] == '{') {
        params = mu_json_parse(text, (size_t)(nl - text), "params", &err);
        if (params) {
            size -= (size_t)(nl + 1 - text);
            text = nl + 1;
        }
    }
    struct mu_catalog *c = NULL;
    if (mu_catalog_parse(text, size, "fuzz", &c, &err) == 0) {
        cJSON_Delete(mu_catalog_json(c));
        for (size_t i = 0; i < c->n_items; i++) {
            cJSON *errors = cJSON_CreateArray(), *clean = NULL;
            char *out = NULL;
            struct mu_err rerr = {0};
            if (mu_catalog_check_params(&c->items[i], params, errors, &clean) == 0) {
                if (mu_catalog_render(&c->items[i], clean, &out, &rerr) == 0 && out &&
                    strncmp(out, "#cloud-config\n", 14) != 0)
                    abort();
                free(out);
                cJSON_Delete(clean);
            }
            cJSON_Delete(errors);
            (void)mu_catalog_needs_approval(&c->items[i], 2, 4096);
        }
        (void)mu_catalog_probe_allowed(c, "127.0.0.1");
        mu_catalog_free(c);
    }
    cJSON_Delete(params);
    return 0;
}
