/* The quota table (used/limit at every level, "unlimited" as such, RAM in GiB) and the
 * final states of an operation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char answer[] =
    "{\"tenant_id\":3,\"levels\":["
    "{\"tenant_id\":1,\"tenant\":\"Syndicat\",\"limits_from\":\"policy\","
    "\"limits\":{\"vcpus\":\"unlimited\",\"ram_mib\":\"unlimited\",\"disk_gib\":\"unlimited\","
    "\"vms\":\"unlimited\"},"
    "\"allocated\":{\"vcpus\":40,\"ram_mib\":81920,\"disk_gib\":900,\"vms\":20}},"
    "{\"tenant_id\":3,\"tenant\":\"CC du Pays X\",\"limits_from\":\"tenant\","
    "\"limits\":{\"vcpus\":8,\"ram_mib\":65536,\"disk_gib\":500,\"vms\":10},"
    "\"allocated\":{\"vcpus\":6,\"ram_mib\":63488,\"disk_gib\":120,\"vms\":3}}]}";

static void test_quota_rows(void **state)
{
    (void)state;
    cJSON *doc = cJSON_Parse(answer);
    assert_non_null(doc);
    cJSON *rows = mu_cli_quota_rows(doc);
    assert_non_null(rows);
    assert_int_equal(cJSON_GetArraySize(rows), 2);

    struct mu_buf b;
    mu_buf_init(&b);
    static const struct mu_cli_col cols[] = {
        {"LEVEL", "level", 0}, {"ID", "tenant_id", 0}, {"TENANT", "tenant", 0},
        {"VCPU", "vcpus", 0},  {"RAM GIB", "ram", 0},  {"DISK GIB", "disk", 0},
        {"VMS", "vms", 0},     {"LIMITS", "from", 0},
    };
    mu_cli_table_render(&b, cols, MU_ARRAY_LEN(cols), rows);
    assert_string_equal(
        b.data,
        "LEVEL  ID  TENANT        VCPU          RAM GIB       DISK GIB       VMS           LIMITS\n"
        "1      1   Syndicat      40/unlimited  80/unlimited  900/unlimited  20/unlimited  policy\n"
        "2      3   CC du Pays X  6/8           62/64         120/500        3/10          "
        "tenant\n");
    mu_buf_free(&b);
    cJSON_Delete(rows);
    cJSON_Delete(doc);
}

static void test_quota_rows_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{}",
        "{\"levels\":{}}",
        "{\"levels\":[{\"tenant_id\":1,\"limits\":{},\"allocated\":{}}]}",
        "{\"levels\":[{\"tenant_id\":1,\"tenant\":\"a\",\"limits\":{\"vcpus\":\"lots\","
        "\"ram_mib\":1,\"disk_gib\":1,\"vms\":1},"
        "\"allocated\":{\"vcpus\":1,\"ram_mib\":1,\"disk_gib\":1,\"vms\":1}}]}",
        "{\"levels\":[{\"tenant_id\":0,\"tenant\":\"a\",\"limits\":{\"vcpus\":1,"
        "\"ram_mib\":1,\"disk_gib\":1,\"vms\":1},"
        "\"allocated\":{\"vcpus\":1,\"ram_mib\":1,\"disk_gib\":1,\"vms\":1}}]}",
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        cJSON *doc = cJSON_Parse(bad[i]);
        assert_non_null(doc);
        cJSON *rows = mu_cli_quota_rows(doc);
        if (rows)
            fail_msg("answer %zu should be refused: %s", i, bad[i]);
        cJSON_Delete(doc);
    }
}

static void test_op_finished(void **state)
{
    (void)state;
    assert_true(mu_cli_op_finished("succeeded"));
    assert_true(mu_cli_op_finished("failed"));
    assert_false(mu_cli_op_finished("pending"));
    assert_false(mu_cli_op_finished("running"));
    assert_false(mu_cli_op_finished(""));
}

static void check_progress(const char *json, const char *want)
{
    cJSON *op = cJSON_Parse(json);
    assert_non_null(op);
    char *got = mu_cli_op_progress(op);
    if (strcmp(got, want) != 0)
        fail_msg("progress of %s is \"%s\", want \"%s\"", json, got, want);
    free(got);
    cJSON_Delete(op);
}

static void test_op_progress(void **state)
{
    (void)state;
    check_progress("{\"state\":\"pending\",\"step\":\"\",\"attempts\":0,\"error\":null}",
                   "pending");
    check_progress("{\"state\":\"running\",\"step\":\"define\",\"attempts\":1}",
                   "running, step define");
    check_progress("{\"state\":\"pending\",\"step\":\"image\",\"attempts\":3,"
                   "\"error\":\"step image: no pool\"}",
                   "pending, step image, attempt 3, last error: step image: no pool");
    /* text from the server cannot drive the terminal */
    check_progress("{\"state\":\"pending\",\"error\":\"x\\u001b[2J\"}",
                   "pending, last error: x?[2J");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quota_rows),
        cmocka_unit_test(test_quota_rows_bad),
        cmocka_unit_test(test_op_finished),
        cmocka_unit_test(test_op_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
