/* catalog/: the hosted-app catalogue (policies/catalog.json), the checks of a request's
 * parameters, the cloud-init user-data rendered from an item's template, and the readiness
 * prober that watches provisioning requests until the guest answers on the item's port.
 *
 *   {
 *     "version": 1,
 *     "provider_network": "public",        provider network of public NICs
 *     "private_cidr": "10.0.0.0/24",       CIDR of a tenant's default private network
 *     "readiness": {"deadline_s": 600, "probe_timeout_ms": 1000,
 *                   "probe_networks": ["192.0.2.0/24"]},   optional: the only addresses the
 *                                          prober may connect to (absent: any)
 *     "items": [{
 *       "id": "website",                   [a-z0-9][a-z0-9-]{0,31}, unique
 *       "name": {"fr": "…", "en": "…"}, "description": {"fr": "…", "en": "…"},
 *       "flavors": ["small", "medium"],    names of flavors (1..16)
 *       "image": "debian-12",              base image name
 *       "networks": {"private": true, "public": false},
 *       "ports": [80, 443],                the app answers on these; the first is probed
 *       "approval": "always" | "never" | {"above": {"vcpus": 2, "ram_mib": 4096}},
 *       "epci_admin_may_approve": true,    optional (false)
 *       "parameters": [{"name": "domain", "type": "domain", "required": true,
 *                       "label": {fr, en}, "help": {fr, en}}, …],
 *       "user_data": { a JSON template, optional }
 *     }]
 *   }
 *
 * Parameter types: "domain" (a DNS name, lower-cased), "email", "integer" (with "min" and
 * "max"), "enum" (with "choices"), "string" (with "max_length", one line: no control
 * characters). No other key is accepted anywhere; every error names the file, line and
 * column.
 *
 * The template is a JSON tree copied as it is, except two forms:
 *   {"$param": "NAME"} (optionally with "type": "integer" | "string", checked against the
 *       parameter) becomes the parameter's value: a JSON number or string (null when an
 *       optional parameter was not given);
 *   {"$concat": ["https://", {"$param": "domain"}, "/"]} becomes one JSON string.
 * Any other key starting with '$' is refused. Values are inserted as cJSON values, never as
 * text, so no parameter can add a key or change the document's structure. The user-data is
 * "#cloud-config\n" followed by the JSON document (JSON is YAML). */
#ifndef MU_CATALOG_H
#define MU_CATALOG_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"

struct mu_store;

#define MU_CATALOG_ID_MAX      32
#define MU_CATALOG_PORTS_MAX   8
#define MU_CATALOG_FLAVORS_MAX 16
#define MU_CATALOG_PARAMS_MAX  32

enum mu_catalog_ptype {
    MU_CATALOG_P_DOMAIN,
    MU_CATALOG_P_EMAIL,
    MU_CATALOG_P_INTEGER,
    MU_CATALOG_P_ENUM,
    MU_CATALOG_P_STRING,
};

struct mu_catalog_text {
    char *fr, *en;
};

struct mu_catalog_param {
    char *name; /* [a-z][a-z0-9_]{0,31} */
    enum mu_catalog_ptype type;
    bool required;
    struct mu_catalog_text label, help; /* help may be empty strings */
    int64_t min, max;                   /* integer */
    int64_t max_length;                 /* string: characters (code points) */
    char **choices;                     /* enum: NULL-terminated */
    size_t n_choices;
};

enum mu_catalog_approval {
    MU_CATALOG_APPROVE_ALWAYS,
    MU_CATALOG_APPROVE_NEVER,
    MU_CATALOG_APPROVE_ABOVE,
};

struct mu_catalog_item {
    char *id;
    struct mu_catalog_text name, description;
    char **flavors; /* n_flavors names */
    size_t n_flavors;
    char *image;
    bool private_net, public_net;
    int ports[MU_CATALOG_PORTS_MAX];
    size_t n_ports;
    enum mu_catalog_approval approval;
    int64_t above_vcpus, above_ram_mib; /* APPROVE_ABOVE: -1 where not given */
    bool epci_admin_may_approve;
    struct mu_catalog_param *params;
    size_t n_params;
    cJSON *user_data; /* the template, or NULL */
};

struct mu_catalog {
    char *provider_network;
    char *private_cidr;
    int64_t ready_deadline_ms;
    int64_t probe_timeout_ms;
    uint32_t *probe_nets, *probe_masks; /* n_probe_nets pairs (host order); 0: any address */
    size_t n_probe_nets;
    struct mu_catalog_item *items;
    size_t n_items;
};

/* Parses a catalogue from len bytes; origin names the input in messages
 * ("policies/catalog.json"). *ret is the caller's (mu_catalog_free). MU_EINVAL with err
 * ("policies/catalog.json: line 7, column 9: …") on any error; *ret untouched. */
int mu_catalog_parse(const char *buf, size_t len, const char *origin, struct mu_catalog **ret,
                     struct mu_err *err);
/* Reads and parses a file (at most 1 MiB). MU_EIO if it cannot be read. */
int mu_catalog_load(const char *path, struct mu_catalog **ret, struct mu_err *err);
void mu_catalog_free(struct mu_catalog *c);

/* The item with this id, or NULL. Borrowed from c. */
const struct mu_catalog_item *mu_catalog_find(const struct mu_catalog *c, const char *id);
/* Whether the item lists this flavor name. */
bool mu_catalog_item_has_flavor(const struct mu_catalog_item *it, const char *flavor);
/* Whether a VM of this size needs someone's approval under the item's rule. */
bool mu_catalog_needs_approval(const struct mu_catalog_item *it, int64_t vcpus, int64_t ram_mib);

/* Whether the prober may connect to ip (dotted IPv4) under readiness.probe_networks. */
bool mu_catalog_probe_allowed(const struct mu_catalog *c, const char *ip);

/* The catalogue as GET /v1/catalog answers it: {"items": [...]} (caller frees). */
cJSON *mu_catalog_json(const struct mu_catalog *c);

/* Checks a request's "parameters" (params: the body's value, may be NULL when absent)
 * against the item: unknown names, missing required ones, wrong types, values out of range
 * or of the wrong form. Appends one {"field": "parameters.NAME", "detail": "…"} per problem
 * to errors (an array). Returns the number of problems; when 0, *ret_clean is the
 * normalised object to store (domain names lower-cased; caller frees). */
size_t mu_catalog_check_params(const struct mu_catalog_item *it, const cJSON *params, cJSON *errors,
                               cJSON **ret_clean);

/* Renders the item's user-data template with params (checked by mu_catalog_check_params;
 * borrowed): *ret is "#cloud-config\n{…}\n" (caller frees), or NULL when the item has no
 * template. MU_EINVAL if a value has a type its placeholder does not take. */
int mu_catalog_render(const struct mu_catalog_item *it, const cJSON *params, char **ret,
                      struct mu_err *err);

/* ---- readiness (prober.c) ---------------------------------------------------------- */

/* One TCP connection attempt to ip:port (IPv4 dotted text), waiting at most timeout_ms.
 * 0 when it connected (closed at once), MU_EUNAVAIL with err saying why (refused, timed
 * out, unreachable), MU_EINVAL for a bad address or port. */
int mu_catalog_probe_tcp(const char *ip, int port, int64_t timeout_ms, struct mu_err *err);

/* The prober: a thread that, every interval_ms, walks the requests in "provisioning"
 * (store/requests.h) and moves each to "ready" once its VM's create operation has
 * succeeded and the VM answers on the request's port (at its public NIC's address if any,
 * else its first NIC's), or to "failed" with the reason when the operation failed, the VM
 * is gone, or the deadline recorded at approval passes first. A VM that does not answer
 * yet is probed again after a backoff (doubling from interval_ms up to backoff_max_ms).
 * A request left "approved" for a minute (the controller stopped in the middle of an
 * approval) gets the VM admitted for it, or fails saying the approval was interrupted. */
struct mu_prober_opts {
    struct mu_store *store;
    /* The catalogue in force (readiness.probe_networks and probe_timeout_ms), read under
     * *lock at each pass; NULL: probe any address. */
    struct mu_catalog *const *catalog;
    pthread_rwlock_t *lock;
    int64_t interval_ms;      /* 0: 500 */
    int64_t backoff_max_ms;   /* 0: 10000 */
    int64_t probe_timeout_ms; /* 0: 1000 */
    int64_t (*now_ms)(void);  /* wall clock (deadlines are wall-clock times); NULL: real */
};
struct mu_prober;
/* NULL with err set if the thread cannot start. */
struct mu_prober *mu_prober_start(const struct mu_prober_opts *opts, struct mu_err *err);
/* Stops and joins the thread. NULL is accepted. */
void mu_prober_stop(struct mu_prober *p);
/* One pass over the provisioning requests, now (the thread's work; for tests). Returns the
 * number of requests whose status changed, or a negative code. */
int mu_prober_pass(struct mu_prober *p, struct mu_err *err);
/* A prober without a thread, for mu_prober_pass in tests (free with mu_prober_stop). */
struct mu_prober *mu_prober_new(const struct mu_prober_opts *opts);

#endif
