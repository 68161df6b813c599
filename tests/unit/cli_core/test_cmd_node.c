/* The display cells of a node: capacity in GiB, allocation on one line, labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void assert_member(const cJSON *obj, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || strcmp(v->valuestring, want) != 0)
        fail_msg("%s is \"%s\", want \"%s\"", key, cJSON_IsString(v) ? v->valuestring : "(none)",
                 want);
}

static void test_cells(void **state)
{
    (void)state;
    cJSON *node =
        cJSON_Parse("{\"id\":3,\"name\":\"n1\",\"labels\":{\"site\":\"paris-1\",\"zone\":\"a\"},"
                    "\"capacity\":{\"cpus\":16,\"memory_mib\":65536,\"disk_gib\":500,"
                    "\"reserved_memory_mib\":2048,\"virtualization\":\"kvm\","
                    "\"read_at\":\"2026-11-28T21:12:54.721Z\"},"
                    "\"allocated\":{\"vcpus\":6,\"ram_mib\":12800,\"disk_gib\":120,\"vms\":3}}");
    assert_non_null(node);
    mu_cli_node_cells(node);
    assert_member(node, "_virt", "kvm");
    assert_member(node, "_cpus", "16");
    assert_member(node, "_memory", "64 GiB");
    assert_member(node, "_disk", "500 GiB");
    assert_member(node, "_reserved", "2 GiB");
    assert_member(node, "_allocated", "6 vCPU, 12.5 GiB, 120 GiB");
    assert_member(node, "_labels", "site=paris-1, zone=a");
    /* twice: replaced, not duplicated */
    mu_cli_node_cells(node);
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, node)
    {
        if (strcmp(it->string, "_memory") == 0)
            n++;
    }
    assert_int_equal(n, 1);
    cJSON_Delete(node);
}

static void test_cells_unknown(void **state)
{
    (void)state;
    /* a node never reached: zeros that are not facts, reserved memory from the policy */
    cJSON *node = cJSON_Parse("{\"id\":4,\"labels\":{},\"allocated\":{},"
                              "\"capacity\":{\"cpus\":0,\"memory_mib\":0,\"disk_gib\":0,"
                              "\"virtualization\":\"qemu\",\"read_at\":null,"
                              "\"reserved_memory_mib\":null}}");
    assert_non_null(node);
    mu_cli_node_cells(node);
    assert_member(node, "_virt", "-");
    assert_member(node, "_cpus", "-");
    assert_member(node, "_memory", "-");
    assert_member(node, "_disk", "-");
    assert_member(node, "_reserved", "placement policy default");
    assert_member(node, "_allocated", "-");
    assert_member(node, "_labels", "-");
    cJSON_Delete(node);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cells),
        cmocka_unit_test(test_cells_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
