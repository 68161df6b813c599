/* Capacity arithmetic of GET /v1/capacity against hand-computed cases: overcommit ratios,
 * reserved memory (the policy's and a node's own), mixed operator states and health, an
 * over-committed node, reported use, the label filter; and the exposition format helpers
 * of /metrics. (The closed-form headroom property test lives in tests/unit/sched.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/handlers.h"
#include "api/metrics.h"
#include "store/provision.h"

static const cJSON *get(const cJSON *o, const char *path)
{
    /* "a.b.c" */
    const cJSON *cur = o;
    while (cur && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)len, path);
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        path += len + (dot ? 1 : 0);
    }
    return cur;
}

static int64_t num(const cJSON *o, const char *path)
{
    const cJSON *v = get(o, path);
    if (!cJSON_IsNumber(v))
        fail_msg("%s is not a number", path);
    return (int64_t)v->valuedouble;
}

static const cJSON *node_named(const cJSON *doc, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(doc, "nodes"))
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return it;
    }
    return NULL;
}

/* n1: 8 CPUs, 9000 MiB, 100 GiB, policy's reserve, active, up, site=paris, 4/2000/10 used.
 * n2: 4 CPUs, 4096 MiB, 50 GiB, own reserve 96, maintenance, up, nothing allocated.
 * n3: 2 CPUs, 2048 MiB, 40 GiB, policy's reserve, active, down, 6 vCPUs allocated (more
 *     than the 5 allocatable: over-committed after a policy change). */
static struct mu_sched_snapshot *layout(void)
{
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(3);
    struct mu_sched_node *n = mu_sched_snapshot_add_node(s, 1, "n1");
    n->cpus = 8, n->mem_mib = 9000, n->disk_gib = 100, n->reserved_mem_mib = -1;
    n->alloc_vcpus = 4, n->alloc_ram_mib = 2000, n->alloc_disk_gib = 10;
    mu_sched_node_set_label(n, "site", "paris");
    n = mu_sched_snapshot_add_node(s, 2, "n2");
    n->cpus = 4, n->mem_mib = 4096, n->disk_gib = 50, n->reserved_mem_mib = 96;
    n->op_state = MU_SCHED_OP_MAINTENANCE;
    mu_sched_node_set_label(n, "site", "lyon");
    n = mu_sched_snapshot_add_node(s, 3, "n3");
    n->cpus = 2, n->mem_mib = 2048, n->disk_gib = 40, n->reserved_mem_mib = -1;
    n->alloc_vcpus = 6;
    n->health = MU_SCHED_HEALTH_DOWN;
    return s;
}

static void policy(struct mu_sched_policy *p)
{
    mu_sched_policy_defaults(p);
    p->cpu_ratio = 2.5;
    p->ram_ratio = 1.5;
    p->disk_ratio = 1.0;
    p->reserved_mem_mib = 1000;
}

static struct mu_flavor flavors[] = {
    {.id = 1, .name = (char *)"medium", .vcpus = 2, .ram_mib = 4096, .disk_gib = 20},
    {.id = 2, .name = (char *)"disk-only", .vcpus = 0, .ram_mib = 0, .disk_gib = 30},
};

static void test_per_node(void **state)
{
    (void)state;
    struct mu_sched_snapshot *s = layout();
    struct mu_sched_policy p;
    policy(&p);
    cJSON *doc = mu_capacity_json(s, &p, flavors, 2, NULL, NULL);
    const cJSON *n1 = node_named(doc, "n1"), *n2 = node_named(doc, "n2"),
                *n3 = node_named(doc, "n3");
    assert_non_null(n1);
    assert_non_null(n2);
    assert_non_null(n3);
    /* n1: 8 × 2.5 = 20; (9000 − 1000) × 1.5 = 12000; 100 × 1.0 */
    assert_int_equal(num(n1, "vcpus.physical"), 8);
    assert_int_equal(num(n1, "vcpus.allocatable"), 20);
    assert_int_equal(num(n1, "vcpus.free"), 16);
    assert_int_equal(num(n1, "ram_mib.allocatable"), 12000);
    assert_int_equal(num(n1, "ram_mib.free"), 10000);
    assert_int_equal(num(n1, "disk_gib.allocatable"), 100);
    assert_int_equal(num(n1, "disk_gib.allocated"), 10);
    assert_true(cJSON_IsNull(get(n1, "ram_mib.used")));
    /* medium: min(16/2, 10000/4096, 90/20) = min(8, 2, 4) = 2; disk-only: 90/30 = 3 */
    assert_int_equal(num(n1, "headroom.medium"), 2);
    assert_int_equal(num(n1, "headroom.disk-only"), 3);
    assert_true(cJSON_IsTrue(get(n1, "schedulable")));
    /* n2: own reserve: (4096 − 96) × 1.5 = 6000; in maintenance: no headroom */
    assert_int_equal(num(n2, "ram_mib.allocatable"), 6000);
    assert_int_equal(num(n2, "vcpus.allocatable"), 10);
    assert_int_equal(num(n2, "headroom.medium"), 0);
    assert_int_equal(num(n2, "headroom.disk-only"), 0);
    assert_string_equal(get(n2, "state")->valuestring, "maintenance");
    assert_true(cJSON_IsFalse(get(n2, "schedulable")));
    /* n3: (2048 − 1000) × 1.5 = 1572; 2 × 2.5 = 5 with 6 allocated: free −1; down: 0 */
    assert_int_equal(num(n3, "ram_mib.allocatable"), 1572);
    assert_int_equal(num(n3, "vcpus.free"), -1);
    assert_int_equal(num(n3, "headroom.medium"), 0);
    assert_string_equal(get(n3, "health")->valuestring, "down");

    /* cluster: all three nodes, and the schedulable one (n1) */
    assert_int_equal(num(doc, "cluster.all.nodes"), 3);
    assert_int_equal(num(doc, "cluster.all.vcpus.physical"), 14);
    assert_int_equal(num(doc, "cluster.all.vcpus.allocatable"), 35);
    assert_int_equal(num(doc, "cluster.all.vcpus.allocated"), 10);
    assert_int_equal(num(doc, "cluster.all.ram_mib.allocatable"), 12000 + 6000 + 1572);
    assert_int_equal(num(doc, "cluster.all.disk_gib.allocatable"), 190);
    assert_int_equal(num(doc, "cluster.schedulable.nodes"), 1);
    assert_int_equal(num(doc, "cluster.schedulable.ram_mib.allocatable"), 12000);
    assert_true(cJSON_IsNull(get(doc, "cluster.all.ram_mib.used")));
    const cJSON *hr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "headroom"), 0);
    assert_string_equal(get(hr, "flavor")->valuestring, "medium");
    assert_int_equal(num(hr, "fit"), 2);
    cJSON_Delete(doc);
    mu_sched_snapshot_free(s);
}

static void test_unknown_health_and_ratio_rounding(void **state)
{
    (void)state;
    struct mu_sched_snapshot *s = mu_sched_snapshot_new(1);
    struct mu_sched_node *n = mu_sched_snapshot_add_node(s, 1, "u");
    n->cpus = 3, n->mem_mib = 1100, n->disk_gib = 10, n->reserved_mem_mib = 0;
    n->health = MU_SCHED_HEALTH_UNKNOWN;
    struct mu_sched_policy p;
    mu_sched_policy_defaults(&p);
    p.cpu_ratio = 1.1; /* 3 × 1.1 = 3.3 → 3, never 3.2999… → 3 by luck */
    p.ram_ratio = 1.1; /* 1100 × 1.1 = 1210 exactly */
    struct mu_flavor f = {.id = 1, .name = (char *)"one", .vcpus = 1, .ram_mib = 1, .disk_gib = 1};
    cJSON *doc = mu_capacity_json(s, &p, &f, 1, NULL, NULL);
    const cJSON *u = node_named(doc, "u");
    assert_int_equal(num(u, "vcpus.allocatable"), 3);
    assert_int_equal(num(u, "ram_mib.allocatable"), 1210);
    assert_int_equal(num(u, "headroom.one"), 0); /* unknown health, not eligible */
    cJSON_Delete(doc);
    p.unknown_health_eligible = true;
    doc = mu_capacity_json(s, &p, &f, 1, NULL, NULL);
    assert_int_equal(num(node_named(doc, "u"), "headroom.one"), 3);
    assert_int_equal(num(doc, "cluster.schedulable.nodes"), 1);
    cJSON_Delete(doc);
    mu_sched_snapshot_free(s);
}

static void test_used_and_label(void **state)
{
    (void)state;
    struct mu_sched_snapshot *s = layout();
    struct mu_sched_policy p;
    policy(&p);
    struct mu_cap_used used[3] = {
        {.reported = true,
         .cpus_busy = 2.5,
         .cpu_percent = 31.25,
         .ram_mib = 3000,
         .disk_gib = 12,
         .time_ms = 1700000000000},
        {0},
        {.reported = true, .cpus_busy = 0.5, .ram_mib = 500, .disk_gib = 1, .time_ms = 1},
    };
    cJSON *doc = mu_capacity_json(s, &p, flavors, 2, used, NULL);
    const cJSON *n1 = node_named(doc, "n1");
    assert_int_equal(num(n1, "ram_mib.used"), 3000);
    assert_int_equal(num(n1, "disk_gib.used"), 12);
    assert_true(get(n1, "vcpus.used")->valuedouble == 2.5);
    assert_true(cJSON_IsNull(get(node_named(doc, "n2"), "ram_mib.used")));
    assert_int_equal(num(doc, "cluster.all.nodes_reporting"), 2);
    assert_int_equal(num(doc, "cluster.all.ram_mib.used"), 3500);
    assert_int_equal(num(doc, "cluster.schedulable.ram_mib.used"), 3000);
    cJSON_Delete(doc);

    doc = mu_capacity_json(s, &p, flavors, 2, used, "site=paris");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "nodes")), 1);
    assert_non_null(node_named(doc, "n1"));
    assert_int_equal(num(doc, "cluster.all.vcpus.allocatable"), 20);
    cJSON_Delete(doc);
    doc = mu_capacity_json(s, &p, flavors, 2, used, "site=nowhere");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "nodes")), 0);
    assert_int_equal(num(doc, "cluster.all.nodes"), 0);
    cJSON_Delete(doc);
    mu_sched_snapshot_free(s);
}

static void test_exposition(void **state)
{
    (void)state;
    struct mu_buf b;
    mu_buf_init(&b);
    const char *labels[] = {"node", "a\"b\\c\nd", "resource", "vcpus", NULL};
    mu_metrics_sample(&b, "mutualis_x", labels, 12);
    mu_metrics_sample(&b, "mutualis_y", NULL, 0.25);
    assert_string_equal(b.data, "mutualis_x{node=\"a\\\"b\\\\c\\nd\",resource=\"vcpus\"} 12\n"
                                "mutualis_y 0.25\n");
    mu_buf_free(&b);

    mu_metrics_reset();
    mu_metrics_request_done(&mu_routes[0], "GET", 200, 0.003);
    mu_metrics_request_done(&mu_routes[0], "GET", 503, 20);
    mu_metrics_request_done(NULL, "BREW", 404, 0.0001);
    mu_buf_init(&b);
    mu_metrics_write_http(&b);
    char line[256];
    snprintf(line, sizeof line,
             "mutualis_http_requests_total{route=\"%s\",method=\"GET\",status_class=\"2xx\"} 1\n",
             mu_routes[0].pattern);
    assert_non_null(strstr(b.data, line));
    assert_non_null(strstr(b.data, "route=\"unmatched\",method=\"other\",status_class=\"4xx\"} 1"));
    snprintf(line, sizeof line,
             "mutualis_http_request_duration_seconds_bucket{route=\"%s\",le=\"0.005\"} 1\n",
             mu_routes[0].pattern);
    assert_non_null(strstr(b.data, line));
    snprintf(line, sizeof line,
             "mutualis_http_request_duration_seconds_bucket{route=\"%s\",le=\"10\"} 1\n",
             mu_routes[0].pattern);
    assert_non_null(strstr(b.data, line));
    snprintf(line, sizeof line,
             "mutualis_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} 2\n",
             mu_routes[0].pattern);
    assert_non_null(strstr(b.data, line));
    mu_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_node),
        cmocka_unit_test(test_unknown_health_and_ratio_rounding),
        cmocka_unit_test(test_used_and_label),
        cmocka_unit_test(test_exposition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
