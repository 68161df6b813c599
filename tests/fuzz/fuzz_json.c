/* libFuzzer target for the strict JSON layer: whatever mu_json_parse accepts must print
 * and parse again to the same tree; a refusal must come with an error detail. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_json: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mu_err err = {0};
    cJSON *tree = mu_json_parse((const char *)data, size, "fuzz", &err);
    if (!tree) {
        check(err.code == MU_EINVAL, "refusal without MU_EINVAL");
        check(strncmp(err.detail, "fuzz: ", 6) == 0, "detail does not name the origin");
        check(mu_utf8_valid(err.detail, strlen(err.detail)), "detail is not valid UTF-8");
        check(mu_utf8_valid(err.field, strlen(err.field)), "field is not valid UTF-8");
        return 0;
    }
    check(err.code == 0, "error set on success");
    char *text = mu_json_print(tree);
    check(text != NULL, "print failed");
    check(mu_utf8_valid(text, strlen(text)), "printed text is not valid UTF-8");
    struct mu_err err2 = {0};
    cJSON *again = mu_json_parse(text, strlen(text), "reprint", &err2);
    if (!again)
        fprintf(stderr, "fuzz_json: reprint refused: %s\n%s\n", err2.detail, text);
    check(again != NULL, "reprinted text refused");
    check(cJSON_Compare(tree, again, 1), "reprinted tree differs");
    char *text2 = mu_json_print(again);
    check(strcmp(text, text2) == 0, "printing is not stable");
    free(text2);
    free(text);
    cJSON_Delete(again);
    cJSON_Delete(tree);
    return 0;
}
