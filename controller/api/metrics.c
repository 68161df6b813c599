/* Request counters and latency histograms, kept per route of the route table in fixed
 * arrays of atomics (the table is static, so no series can appear that a client invents:
 * unknown paths share the "unmatched" route), and the exposition format writers. */
#include "api/metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define MAX_ROUTES 256 /* route slots; the last one is "unmatched" */
#define N_METHODS  7
#define N_CLASSES  5 /* 1xx..5xx */
#define UNMATCHED  (MAX_ROUTES - 1)

static const char *const methods[N_METHODS] = {"GET",    "POST", "PUT",  "PATCH",
                                               "DELETE", "HEAD", "other"};
static const double bounds[MU_METRICS_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,   0.25,   0.5,   1,    2.5,   10};

static _Atomic uint64_t requests[MAX_ROUTES][N_METHODS][N_CLASSES];
static _Atomic uint64_t buckets[MAX_ROUTES][MU_METRICS_BUCKETS]; /* not cumulative */
static _Atomic uint64_t durations_count[MAX_ROUTES];
static _Atomic uint64_t durations_sum_us[MAX_ROUTES];

static size_t route_slot(const struct mu_route *route)
{
    if (!route || route < mu_routes || route >= mu_routes + mu_routes_count)
        return UNMATCHED;
    size_t i = (size_t)(route - mu_routes);
    return i < UNMATCHED ? i : UNMATCHED;
}

static size_t method_slot(const char *method)
{
    for (size_t i = 0; method && i + 1 < N_METHODS; i++)
        if (strcmp(method, methods[i]) == 0)
            return i;
    return N_METHODS - 1;
}

void mu_metrics_request_done(const struct mu_route *route, const char *method, int status,
                             double seconds)
{
    size_t r = route_slot(route);
    size_t m = method_slot(method);
    int cls = status / 100;
    if (cls < 1 || cls > 5)
        cls = 5;
    atomic_fetch_add_explicit(&requests[r][m][cls - 1], 1, memory_order_relaxed);
    if (!(seconds >= 0)) /* also NaN */
        seconds = 0;
    for (size_t i = 0; i < MU_METRICS_BUCKETS; i++) {
        if (seconds <= bounds[i]) {
            atomic_fetch_add_explicit(&buckets[r][i], 1, memory_order_relaxed);
            break;
        }
    }
    atomic_fetch_add_explicit(&durations_sum_us[r], (uint64_t)llround(seconds * 1e6),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&durations_count[r], 1, memory_order_relaxed);
}

void mu_metrics_reset(void)
{
    for (size_t r = 0; r < MAX_ROUTES; r++) {
        for (size_t m = 0; m < N_METHODS; m++)
            for (size_t c = 0; c < N_CLASSES; c++)
                atomic_store(&requests[r][m][c], 0);
        for (size_t i = 0; i < MU_METRICS_BUCKETS; i++)
            atomic_store(&buckets[r][i], 0);
        atomic_store(&durations_count[r], 0);
        atomic_store(&durations_sum_us[r], 0);
    }
}

void mu_metrics_escape(struct mu_buf *b, const char *value)
{
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == '\\')
            mu_buf_puts(b, "\\\\");
        else if (*p == '"')
            mu_buf_puts(b, "\\\"");
        else if (*p == '\n')
            mu_buf_puts(b, "\\n");
        else
            mu_buf_append(b, p, 1);
    }
}

void mu_metrics_family(struct mu_buf *b, const char *name, const char *type, const char *help)
{
    mu_buf_printf(b, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            mu_buf_puts(b, "\\\\");
        else if (*p == '\n')
            mu_buf_puts(b, "\\n");
        else
            mu_buf_append(b, p, 1);
    }
    mu_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* Appends a sample value: integers exactly, others with enough digits, +Inf/NaN spelled
 * as the format wants. */
static void put_value(struct mu_buf *b, double v)
{
    if (isnan(v))
        mu_buf_puts(b, "NaN");
    else if (isinf(v))
        mu_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9e15)
        mu_buf_printf(b, "%lld", (long long)v);
    else
        mu_buf_printf(b, "%.17g", v);
}

void mu_metrics_sample(struct mu_buf *b, const char *name, const char *const *labels, double value)
{
    mu_buf_puts(b, name);
    if (labels && labels[0]) {
        mu_buf_puts(b, "{");
        for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
            mu_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i]);
            mu_metrics_escape(b, labels[i + 1]);
            mu_buf_puts(b, "\"");
        }
        mu_buf_puts(b, "}");
    }
    mu_buf_puts(b, " ");
    put_value(b, value);
    mu_buf_puts(b, "\n");
}

static const char *route_name(size_t r)
{
    return r == UNMATCHED ? "unmatched" : mu_routes[r].pattern;
}

void mu_metrics_write_http(struct mu_buf *b)
{
    static const char *const classes[N_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    size_t nroutes = mu_routes_count < UNMATCHED ? mu_routes_count : UNMATCHED;

    mu_metrics_family(b, "mutualis_http_requests_total", "counter",
                      "HTTP requests answered, by route pattern, method and status class.");
    for (size_t r = 0; r < MAX_ROUTES; r++) {
        if (r >= nroutes && r != UNMATCHED)
            continue;
        for (size_t m = 0; m < N_METHODS; m++)
            for (size_t c = 0; c < N_CLASSES; c++) {
                uint64_t v = atomic_load_explicit(&requests[r][m][c], memory_order_relaxed);
                if (v == 0)
                    continue;
                const char *labels[] = {"route",        route_name(r), "method", methods[m],
                                        "status_class", classes[c],    NULL};
                mu_metrics_sample(b, "mutualis_http_requests_total", labels, (double)v);
            }
    }

    mu_metrics_family(b, "mutualis_http_request_duration_seconds", "histogram",
                      "Time from the request's first byte to its answer, by route pattern.");
    for (size_t r = 0; r < MAX_ROUTES; r++) {
        if (r >= nroutes && r != UNMATCHED)
            continue;
        uint64_t count = atomic_load_explicit(&durations_count[r], memory_order_relaxed);
        if (count == 0)
            continue;
        /* The buckets are read one by one while other threads count: the cumulative sums
         * stay monotonic, and +Inf is at least the last bucket. */
        uint64_t cum = 0;
        char le[32];
        for (size_t i = 0; i < MU_METRICS_BUCKETS; i++) {
            cum += atomic_load_explicit(&buckets[r][i], memory_order_relaxed);
            snprintf(le, sizeof le, "%g", bounds[i]);
            const char *labels[] = {"route", route_name(r), "le", le, NULL};
            mu_metrics_sample(b, "mutualis_http_request_duration_seconds_bucket", labels,
                              (double)cum);
        }
        if (count < cum)
            count = cum;
        const char *inf[] = {"route", route_name(r), "le", "+Inf", NULL};
        mu_metrics_sample(b, "mutualis_http_request_duration_seconds_bucket", inf, (double)count);
        const char *labels[] = {"route", route_name(r), NULL};
        mu_metrics_sample(b, "mutualis_http_request_duration_seconds_sum", labels,
                          (double)atomic_load_explicit(&durations_sum_us[r], memory_order_relaxed) /
                              1e6);
        mu_metrics_sample(b, "mutualis_http_request_duration_seconds_count", labels, (double)count);
    }
}
