/* mu_test_event_append DATA_DIR TENANT_ID TYPE SUBJECT [DATA_JSON]: appends one event to the
 * feed of a controller's database (through the store, as the features that emit events do)
 * and prints its id. For test_webhooks.py, while no feature that appends events is common
 * to every build; SQLite lets it write beside a running mutualisd. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"
#include "store/events.h"
#include "store/store.h"

int main(int argc, char **argv)
{
    struct mu_err err = {0};
    unsigned char key[32];
    int64_t tenant = 0, id = 0;

    if (argc < 5 || argc > 6 || mu_parse_i64(argv[2], 1, INT64_MAX, &tenant) != 0) {
        fprintf(stderr, "usage: %s DATA_DIR TENANT_ID TYPE SUBJECT [DATA_JSON]\n", argv[0]);
        return 2;
    }
    MU_AUTOFREE char *key_path = mu_xasprintf("%s/audit.key", argv[1]);
    MU_AUTOFREE char *hex = mu_read_file(key_path, 128, NULL);
    for (int i = 0; hex && i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            fprintf(stderr, "%s is damaged\n", key_path);
            return 1;
        }
        key[i] = (unsigned char)v;
    }
    if (!hex) {
        fprintf(stderr, "cannot read %s\n", key_path);
        return 1;
    }
    MU_AUTOFREE char *db = mu_xasprintf("%s/mutualis.db", argv[1]);
    struct mu_store_opts o = {
        .path = db, .audit_key = (const char *)key, .audit_key_len = sizeof key};
    struct mu_store *st = mu_store_open(&o, &err);
    if (!st) {
        fprintf(stderr, "cannot open the store: %s\n", err.detail);
        return 1;
    }
    int r =
        mu_store_event_append(st, tenant, argv[3], argv[4], argc == 6 ? argv[5] : NULL, &id, &err);
    mu_store_close(st);
    if (r < 0) {
        fprintf(stderr, "cannot append: %s\n", err.detail);
        return 1;
    }
    printf("%lld\n", (long long)id);
    return 0;
}
