/* capacity: GET /v1/capacity for operators — the cluster per resource (physical,
 * allocatable, allocated, used), headroom per flavor, the N+1 verdict and the forecast.
 * --json prints the whole answer (per node, per tenant). */
#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct mu_cli_opt show_opts[] = {
    {"--label", MU_CLI_OPT_STR, "KEY=VALUE", "only the nodes with this label, e.g. site=a", false,
     NULL, 0, 0},
};

static double num(const cJSON *o, const char *key, bool *ret_null)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (ret_null)
        *ret_null = !cJSON_IsNumber(v);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void print_cluster(const cJSON *sum)
{
    static const char *const res[] = {"vcpus", "ram_mib", "disk_gib"};
    printf("%-10s %12s %12s %12s %12s %8s\n", "RESOURCE", "PHYSICAL", "ALLOCATABLE", "ALLOCATED",
           "USED", "ALLOC%");
    for (size_t i = 0; i < MU_ARRAY_LEN(res); i++) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(sum, res[i]);
        bool used_null = true;
        double alloc = num(r, "allocated", NULL), cap = num(r, "allocatable", NULL);
        double used = num(r, "used", &used_null);
        char used_text[32];
        if (used_null)
            snprintf(used_text, sizeof used_text, "-");
        else
            snprintf(used_text, sizeof used_text, "%.0f", used);
        printf("%-10s %12.0f %12.0f %12.0f %12s %7.1f%%\n", res[i], num(r, "physical", NULL), cap,
               alloc, used_text, cap > 0 ? 100.0 * alloc / cap : 0.0);
    }
}

static void print_forecast(const cJSON *fc)
{
    const cJSON *resources = cJSON_GetObjectItemCaseSensitive(fc, "resources");
    const char *reason = str(fc, "reason");
    const cJSON *r;
    printf("\nForecast (least squares over daily allocation peaks):\n");
    if (reason)
        printf("  %s\n", reason);
    cJSON_ArrayForEach(r, resources)
    {
        const cJSON *points = cJSON_GetObjectItemCaseSensitive(r, "points");
        bool none = true;
        double days = num(r, "days_to_full", &none);
        const char *trend = str(r, "trend");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "full")))
            printf("  %-9s already full (%d points)\n", r->string, cJSON_GetArraySize(points));
        else if (!none)
            printf("  %-9s full in %.0f days (%d points, %+.1f per day)\n", r->string, days,
                   cJSON_GetArraySize(points), num(r, "slope_per_day", NULL));
        else
            printf("  %-9s %s (%d points)\n", r->string,
                   trend && strcmp(trend, "not_growing") == 0 ? "not growing" : "no forecast",
                   cJSON_GetArraySize(points));
    }
}

static int run_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const char *label = mu_cli_arg_str(a, "--label");
    struct mu_buf q;
    cJSON *doc = NULL;
    int r;

    mu_buf_init(&q);
    mu_buf_puts(&q, "/v1/capacity");
    if (label)
        mu_cli_query_add(&q, "label", label);
    r = mu_cli_fetch_object(cli, "GET", q.data, NULL, &doc);
    mu_buf_free(&q);
    if (r != MU_CLI_EXIT_OK)
        return r;
    if (cli->json) {
        mu_cli_print_json(doc);
        cJSON_Delete(doc);
        return MU_CLI_EXIT_OK;
    }
    const cJSON *cluster = cJSON_GetObjectItemCaseSensitive(doc, "cluster");
    const cJSON *sched = cJSON_GetObjectItemCaseSensitive(cluster, "schedulable");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(cluster, "all");
    printf("Cluster: %.0f nodes (%.0f schedulable, %.0f reporting)\n", num(all, "nodes", NULL),
           num(sched, "nodes", NULL), num(all, "nodes_reporting", NULL));
    print_cluster(sched);

    const cJSON *hr = cJSON_GetObjectItemCaseSensitive(doc, "headroom");
    const cJSON *f;
    printf("\n%-20s %6s %9s %9s %10s\n", "FLAVOR", "VCPUS", "RAM_MIB", "DISK_GIB", "FIT_MORE");
    cJSON_ArrayForEach(f, hr)
    {
        const char *name = str(f, "flavor");
        printf("%-20s %6.0f %9.0f %9.0f %10.0f\n", name ? name : "?", num(f, "vcpus", NULL),
               num(f, "ram_mib", NULL), num(f, "disk_gib", NULL), num(f, "fit", NULL));
    }

    const cJSON *n1 = cJSON_GetObjectItemCaseSensitive(doc, "n_plus_1");
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(n1, "ok");
    const char *summary = str(n1, "summary");
    const char *at = str(n1, "computed_at");
    printf("\nN+1: %s — %s",
           cJSON_IsTrue(ok)    ? "OK"
           : cJSON_IsFalse(ok) ? "LOST"
                               : "unknown",
           summary ? summary : "");
    if (at)
        printf(" (computed %s)", at);
    printf("\n");
    print_forecast(cJSON_GetObjectItemCaseSensitive(doc, "forecast"));
    cJSON_Delete(doc);
    return MU_CLI_EXIT_OK;
}

static const struct mu_cli_cmd cmds[] = {
    {"show", NULL, "Capacity: allocation, use, headroom per flavor, N+1 verdict, forecast", 0,
     show_opts, MU_ARRAY_LEN(show_opts), run_show},
};

const struct mu_cli_group mu_cli_group_capacity = {
    "capacity",
    "Cluster capacity for operators (GET /v1/capacity)",
    cmds,
    MU_ARRAY_LEN(cmds),
};
