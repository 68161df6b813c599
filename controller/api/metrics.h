/* api/metrics: the API's own Prometheus series (request counts and latency histograms,
 * counted by the server once per finished request) and the helpers that write the text
 * exposition format (version 0.0.4) for GET /metrics. Process-wide counters, lock-free:
 * any server thread may count while another writes the exposition. */
#ifndef MU_API_METRICS_H
#define MU_API_METRICS_H

#include <stdint.h>

#include "api/api.h"
#include "mutualis/util.h"

/* Upper bounds (seconds) of the latency histogram's buckets, +Inf excluded. */
#define MU_METRICS_BUCKETS 12

/* Counts one finished request: route is the matched route of mu_routes (NULL or another
 * table: counted as route "unmatched"), method as sent, status the HTTP status answered,
 * seconds from the first byte to the answer. */
void mu_metrics_request_done(const struct mu_route *route, const char *method, int status,
                             double seconds);

/* Appends the HELP, TYPE and samples of mutualis_http_requests_total and
 * mutualis_http_request_duration_seconds (routes never requested are left out). */
void mu_metrics_write_http(struct mu_buf *b);

/* Zeroes every counter (tests). */
void mu_metrics_reset(void);

/* Appends a label value escaped for the exposition format (\\, \" and \n). */
void mu_metrics_escape(struct mu_buf *b, const char *value);

/* Appends "# HELP name help\n# TYPE name type\n" (help is plain ASCII, escaped as needed). */
void mu_metrics_family(struct mu_buf *b, const char *name, const char *type, const char *help);

/* Appends one sample: name{k1="v1",k2="v2"} value, with labels given as a NULL-terminated
 * list of alternating keys and values (NULL for none). */
void mu_metrics_sample(struct mu_buf *b, const char *name, const char *const *labels, double value);

#endif
