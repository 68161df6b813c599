/* The catalogue policy (policies/catalog.json): strict parsing with the file, line and
 * column of every error, the parameter checks of a request, and the JSON answer of
 * GET /v1/catalog. The rules are in catalog.h. */
#include "catalog/catalog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"

#define POLICY_VERSION    1
#define POLICY_FILE_MAX   (1 << 20)
#define ITEMS_MAX         64
#define TEXT_MAX          2000
#define CHOICES_MAX       32
#define STRING_LEN_MAX    4096
#define DEADLINE_MAX_S    86400
#define PROBE_TIMEOUT_MAX 60000
#define PATH_MAX_DEPTH    24

/* ---- errors that point at the source (mu_json_locate) ------------------------------- */

struct src {
    const char *text;
    size_t len;
    const char *origin;
    int path[PATH_MAX_DEPTH];
};

static int MU_PRINTF(5, 6)
    fail(struct mu_err *err, const struct src *s, size_t depth, bool at_value, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mu_json_fail_at(err, s->text, s->len, s->origin,
                           mu_json_locate(s->text, s->len, s->path, depth, at_value), msg);
}

/* ---- freeing ------------------------------------------------------------------------ */

static void text_clear(struct mu_catalog_text *t)
{
    free(t->fr);
    free(t->en);
    t->fr = t->en = NULL;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void param_clear(struct mu_catalog_param *p)
{
    free(p->name);
    text_clear(&p->label);
    text_clear(&p->help);
    strv_free(p->choices, p->n_choices);
}

static void item_clear(struct mu_catalog_item *it)
{
    free(it->id);
    text_clear(&it->name);
    text_clear(&it->description);
    strv_free(it->flavors, it->n_flavors);
    free(it->image);
    for (size_t i = 0; i < it->n_params; i++)
        param_clear(&it->params[i]);
    free(it->params);
    cJSON_Delete(it->user_data);
}

void mu_catalog_free(struct mu_catalog *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_items; i++)
        item_clear(&c->items[i]);
    free(c->items);
    free(c->probe_nets);
    free(c->probe_masks);
    free(c->provider_network);
    free(c->private_cidr);
    free(c);
}

/* ---- small checks ------------------------------------------------------------------- */

static bool item_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MU_CATALOG_ID_MAX || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static bool param_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* "a.b.c.d/p" with p in [pmin, 30] (or 32 when pmin is 0) and no host bits set. */
static bool cidr_read(const char *s, unsigned pmin, uint32_t *ret_net, uint32_t *ret_mask)
{
    unsigned a, b, c, d, p;
    char tail;
    if (strlen(s) >= 19 || sscanf(s, "%3u.%3u.%3u.%3u/%2u%c", &a, &b, &c, &d, &p, &tail) != 5 ||
        a > 255 || b > 255 || c > 255 || d > 255 || p < pmin || p > (pmin ? 30u : 32u))
        return false;
    uint32_t net = (uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)c << 8 | (uint32_t)d;
    uint32_t mask = p == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - p));
    if (net & ~mask)
        return false;
    *ret_net = net;
    *ret_mask = mask;
    return true;
}

static bool cidr_text_valid(const char *s)
{
    uint32_t n, m;
    return cidr_read(s, 8, &n, &m);
}

bool mu_catalog_probe_allowed(const struct mu_catalog *c, const char *ip)
{
    unsigned a, b, cc, d;
    char tail;
    if (!ip || sscanf(ip, "%3u.%3u.%3u.%3u%c", &a, &b, &cc, &d, &tail) != 4 || a > 255 || b > 255 ||
        cc > 255 || d > 255)
        return false;
    if (!c || c->n_probe_nets == 0)
        return true;
    uint32_t x = (uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)cc << 8 | (uint32_t)d;
    for (size_t i = 0; i < c->n_probe_nets; i++)
        if ((x & c->probe_masks[i]) == c->probe_nets[i])
            return true;
    return false;
}

/* {"fr": "…", "en": "…"}, both strings of at most TEXT_MAX bytes (non-empty if !may_empty). */
static int parse_text(const cJSON *v, struct src *s, size_t depth, const char *where,
                      bool may_empty, struct mu_catalog_text *ret, struct mu_err *err)
{
    struct mu_catalog_text t = {0};
    if (!cJSON_IsObject(v))
        return fail(err, s, depth, true, "%s must be an object {\"fr\": \"…\", \"en\": \"…\"}",
                    where);
    s->path[depth] = 0;
    for (const cJSON *it = v->child; it; it = it->next, s->path[depth]++) {
        char **dst = strcmp(it->string, "fr") == 0   ? &t.fr
                     : strcmp(it->string, "en") == 0 ? &t.en
                                                     : NULL;
        if (!dst) {
            text_clear(&t);
            return fail(err, s, depth + 1, false,
                        "unknown key \"%.32s\" in %s (expected fr and en)", it->string, where);
        }
        if (!cJSON_IsString(it) || strlen(it->valuestring) > TEXT_MAX ||
            (!may_empty && !it->valuestring[0])) {
            text_clear(&t);
            return fail(err, s, depth + 1, true, "%s.%s must be a %sstring of at most %d bytes",
                        where, it->string, may_empty ? "" : "non-empty ", TEXT_MAX);
        }
        *dst = mu_xstrdup(it->valuestring);
    }
    if (!t.fr || !t.en) {
        text_clear(&t);
        return fail(err, s, depth, true, "%s needs both \"fr\" and \"en\"", where);
    }
    *ret = t;
    return 0;
}

static const char *const ptype_names[] = {"domain", "email", "integer", "enum", "string"};

static int parse_param(const cJSON *v, struct src *s, size_t depth, const char *where,
                       struct mu_catalog_param *p, struct mu_err *err)
{
    bool have_type = false, have_min = false, have_max = false, have_len = false;
    const cJSON *choices = NULL;
    int rc;
    if (!cJSON_IsObject(v))
        return fail(err, s, depth, true,
                    "%s must be an object like {\"name\": \"domain\", \"type\": \"domain\", "
                    "\"label\": {…}}",
                    where);
    s->path[depth] = 0;
    for (const cJSON *it = v->child; it; it = it->next, s->path[depth]++) {
        const char *k = it->string;
        size_t d1 = depth + 1;
        if (strcmp(k, "name") == 0) {
            if (!cJSON_IsString(it) || !param_name_valid(it->valuestring))
                return fail(err, s, d1, true,
                            "%s.name must be 1-32 characters of a-z, 0-9, '_', starting with a "
                            "letter",
                            where);
            p->name = mu_xstrdup(it->valuestring);
        } else if (strcmp(k, "type") == 0) {
            size_t t;
            for (t = 0; cJSON_IsString(it) && t < MU_ARRAY_LEN(ptype_names); t++)
                if (strcmp(it->valuestring, ptype_names[t]) == 0)
                    break;
            if (!cJSON_IsString(it) || t == MU_ARRAY_LEN(ptype_names))
                return fail(err, s, d1, true,
                            "%s.type must be one of domain, email, integer, enum, string", where);
            p->type = (enum mu_catalog_ptype)t;
            have_type = true;
        } else if (strcmp(k, "required") == 0) {
            if (!cJSON_IsBool(it))
                return fail(err, s, d1, true, "%s.required must be true or false", where);
            p->required = cJSON_IsTrue(it);
        } else if (strcmp(k, "label") == 0 || strcmp(k, "help") == 0) {
            char w[96];
            if (snprintf(w, sizeof w, "%s.%s", where, k) >= (int)sizeof w)
                w[sizeof w - 1] = '\0'; /* a shortened location is still a location */
            rc = parse_text(it, s, d1, w, k[0] == 'h', k[0] == 'h' ? &p->help : &p->label, err);
            if (rc < 0)
                return rc;
        } else if (strcmp(k, "min") == 0 || strcmp(k, "max") == 0) {
            int64_t x;
            if (mu_json_int_value(it, -1000000000LL, 1000000000LL, &x) < 0)
                return fail(err, s, d1, true,
                            "%s.%s must be an integer between -1000000000 and 1000000000", where,
                            k);
            if (k[1] == 'i') {
                p->min = x;
                have_min = true;
            } else {
                p->max = x;
                have_max = true;
            }
        } else if (strcmp(k, "max_length") == 0) {
            if (mu_json_int_value(it, 1, STRING_LEN_MAX, &p->max_length) < 0)
                return fail(err, s, d1, true, "%s.max_length must be an integer between 1 and %d",
                            where, STRING_LEN_MAX);
            have_len = true;
        } else if (strcmp(k, "choices") == 0) {
            choices = it;
            if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) < 1 ||
                cJSON_GetArraySize(it) > CHOICES_MAX)
                return fail(err, s, d1, true, "%s.choices must be an array of 1 to %d strings",
                            where, CHOICES_MAX);
            size_t n = (size_t)cJSON_GetArraySize(it);
            p->choices = mu_xcalloc(n + 1, sizeof *p->choices);
            s->path[d1] = 0;
            for (const cJSON *c = it->child; c; c = c->next, s->path[d1]++) {
                if (!cJSON_IsString(c) || !c->valuestring[0] || strlen(c->valuestring) > 64 ||
                    !mu_utf8_valid(c->valuestring, strlen(c->valuestring)))
                    return fail(err, s, d1 + 1, true,
                                "%s.choices holds non-empty strings of at most 64 bytes", where);
                for (size_t j = 0; j < p->n_choices; j++)
                    if (strcmp(p->choices[j], c->valuestring) == 0)
                        return fail(err, s, d1 + 1, true, "%s.choices lists \"%s\" twice", where,
                                    c->valuestring);
                p->choices[p->n_choices++] = mu_xstrdup(c->valuestring);
            }
        } else {
            return fail(err, s, d1, false,
                        "unknown key \"%.32s\" in %s (expected name, type, required, label, "
                        "help, min, max, max_length, choices)",
                        k, where);
        }
    }
    if (!p->name)
        return fail(err, s, depth, true, "%s lacks \"name\"", where);
    if (!have_type)
        return fail(err, s, depth, true, "%s lacks \"type\"", where);
    if (!p->label.fr)
        return fail(err, s, depth, true, "%s lacks \"label\" ({\"fr\": …, \"en\": …})", where);
    if (!p->help.fr) {
        p->help.fr = mu_xstrdup("");
        p->help.en = mu_xstrdup("");
    }
    bool is_int = p->type == MU_CATALOG_P_INTEGER, is_enum = p->type == MU_CATALOG_P_ENUM,
         is_str = p->type == MU_CATALOG_P_STRING;
    if (is_int && (!have_min || !have_max))
        return fail(err, s, depth, true, "%s is an integer: give both \"min\" and \"max\"", where);
    if (is_int && p->min > p->max)
        return fail(err, s, depth, true, "%s: min %lld is above max %lld", where, (long long)p->min,
                    (long long)p->max);
    if (!is_int && (have_min || have_max))
        return fail(err, s, depth, true, "%s: min and max are for integer parameters only", where);
    if (is_enum != (choices != NULL))
        return fail(err, s, depth, true,
                    is_enum ? "%s is an enum: give its \"choices\""
                            : "%s: choices are for enum parameters only",
                    where);
    if (is_str != have_len)
        return fail(err, s, depth, true,
                    is_str ? "%s is a string: give its \"max_length\""
                           : "%s: max_length is for string parameters only",
                    where);
    return 0;
}

/* Checks a template: placeholders name known parameters with a matching type. */
static int check_template(const cJSON *v, const struct mu_catalog_item *it, struct src *s,
                          size_t depth, bool in_concat, struct mu_err *err)
{
    if (depth >= PATH_MAX_DEPTH - 1)
        return fail(err, s, depth, true, "user_data is nested too deeply (at most %d levels)",
                    PATH_MAX_DEPTH - 5);
    if (cJSON_IsObject(v)) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(v, "$param");
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(v, "$concat");
        if (ph) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(v, "type");
            int n = cJSON_GetArraySize(v);
            if (n != 1 && !(n == 2 && ty))
                return fail(err, s, depth, true,
                            "a placeholder is {\"$param\": NAME} with at most a \"type\"");
            if (!cJSON_IsString(ph))
                return fail(err, s, depth, true, "\"$param\" must name a parameter");
            const struct mu_catalog_param *p = NULL;
            for (size_t i = 0; i < it->n_params; i++)
                if (strcmp(it->params[i].name, ph->valuestring) == 0)
                    p = &it->params[i];
            if (!p)
                return fail(err, s, depth, true, "placeholder names unknown parameter \"%.32s\"",
                            ph->valuestring);
            bool is_int = p->type == MU_CATALOG_P_INTEGER;
            if (ty && (!cJSON_IsString(ty) ||
                       strcmp(ty->valuestring, is_int ? "integer" : "string") != 0))
                return fail(err, s, depth, true,
                            "placeholder of \"%s\" must have type \"%s\" (the parameter is %s)",
                            p->name, is_int ? "integer" : "string", ptype_names[p->type]);
            if (in_concat && is_int)
                return fail(err, s, depth, true,
                            "\"$concat\" takes strings and string parameters only (\"%s\" is "
                            "an integer)",
                            p->name);
            return 0;
        }
        if (in_concat)
            return fail(err, s, depth, true,
                        "\"$concat\" takes strings and {\"$param\": …} placeholders only");
        if (cc) {
            if (cJSON_GetArraySize(v) != 1 || !cJSON_IsArray(cc) || cJSON_GetArraySize(cc) < 1)
                return fail(err, s, depth, true,
                            "\"$concat\" is alone in its object and takes a non-empty array");
            s->path[depth] = 0;
            s->path[depth + 1] = 0;
            for (const cJSON *e = cc->child; e; e = e->next, s->path[depth + 1]++) {
                if (cJSON_IsString(e))
                    continue;
                int rc = check_template(e, it, s, depth + 2, true, err);
                if (rc < 0)
                    return rc;
            }
            return 0;
        }
        s->path[depth] = 0;
        for (const cJSON *e = v->child; e; e = e->next, s->path[depth]++) {
            if (e->string[0] == '$')
                return fail(err, s, depth + 1, false,
                            "unknown template form \"%.32s\" (keys starting with '$' are "
                            "$param and $concat)",
                            e->string);
            int rc = check_template(e, it, s, depth + 1, false, err);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (in_concat)
        return fail(err, s, depth, true,
                    "\"$concat\" takes strings and {\"$param\": …} placeholders only");
    if (cJSON_IsArray(v)) {
        s->path[depth] = 0;
        for (const cJSON *e = v->child; e; e = e->next, s->path[depth]++) {
            int rc = check_template(e, it, s, depth + 1, false, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int parse_approval(const cJSON *v, struct src *s, size_t depth, const char *where,
                          struct mu_catalog_item *it, struct mu_err *err)
{
    if (cJSON_IsString(v) && strcmp(v->valuestring, "always") == 0) {
        it->approval = MU_CATALOG_APPROVE_ALWAYS;
        return 0;
    }
    if (cJSON_IsString(v) && strcmp(v->valuestring, "never") == 0) {
        it->approval = MU_CATALOG_APPROVE_NEVER;
        return 0;
    }
    const cJSON *above = cJSON_IsObject(v) && cJSON_GetArraySize(v) == 1
                             ? cJSON_GetObjectItemCaseSensitive(v, "above")
                             : NULL;
    if (!cJSON_IsObject(above) || cJSON_GetArraySize(above) < 1)
        return fail(err, s, depth, true,
                    "%s.approval must be \"always\", \"never\" or {\"above\": {\"vcpus\": 2, "
                    "\"ram_mib\": 4096}}",
                    where);
    it->approval = MU_CATALOG_APPROVE_ABOVE;
    it->above_vcpus = it->above_ram_mib = -1;
    s->path[depth] = 0;
    s->path[depth + 1] = 0;
    for (const cJSON *e = above->child; e; e = e->next, s->path[depth + 1]++) {
        int64_t *dst = strcmp(e->string, "vcpus") == 0     ? &it->above_vcpus
                       : strcmp(e->string, "ram_mib") == 0 ? &it->above_ram_mib
                                                           : NULL;
        if (!dst)
            return fail(err, s, depth + 2, false,
                        "unknown key \"%.32s\" in %s.approval.above (expected vcpus, ram_mib)",
                        e->string, where);
        if (mu_json_int_value(e, 0, (int64_t)1 << 40, dst) < 0)
            return fail(err, s, depth + 2, true, "%s.approval.above.%s must be an integer >= 0",
                        where, e->string);
    }
    return 0;
}

static int parse_item(const cJSON *v, struct src *s, size_t depth, struct mu_catalog_item *it,
                      struct mu_err *err)
{
    char where[48];
    bool have_networks = false, have_ports = false, have_approval = false;
    const cJSON *template = NULL;
    size_t template_index = 0;
    int rc;
    snprintf(where, sizeof where, "items[%d]", s->path[depth - 1]);
    if (!cJSON_IsObject(v))
        return fail(err, s, depth, true, "%s must be an object", where);
    s->path[depth] = 0;
    for (const cJSON *e = v->child; e; e = e->next, s->path[depth]++) {
        const char *k = e->string;
        size_t d1 = depth + 1;
        if (strcmp(k, "id") == 0) {
            if (!cJSON_IsString(e) || !item_id_valid(e->valuestring))
                return fail(err, s, d1, true,
                            "%s.id must be 1-%d characters of a-z, 0-9 and '-', not starting "
                            "with '-'",
                            where, MU_CATALOG_ID_MAX);
            it->id = mu_xstrdup(e->valuestring);
            snprintf(where, sizeof where, "item \"%s\"", it->id);
        } else if (strcmp(k, "name") == 0 || strcmp(k, "description") == 0) {
            char w[80];
            snprintf(w, sizeof w, "%s.%s", where, k);
            rc = parse_text(e, s, d1, w, false, k[0] == 'n' ? &it->name : &it->description, err);
            if (rc < 0)
                return rc;
        } else if (strcmp(k, "flavors") == 0) {
            int n = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 0;
            if (n < 1 || n > MU_CATALOG_FLAVORS_MAX)
                return fail(err, s, d1, true, "%s.flavors must be an array of 1 to %d flavor names",
                            where, MU_CATALOG_FLAVORS_MAX);
            it->flavors = mu_xcalloc((size_t)n, sizeof *it->flavors);
            s->path[d1] = 0;
            for (const cJSON *f = e->child; f; f = f->next, s->path[d1]++) {
                if (!cJSON_IsString(f) || !mu_ident_valid(f->valuestring))
                    return fail(err, s, d1 + 1, true,
                                "%s.flavors holds flavor names (a-z, 0-9, '.', '_', '-')", where);
                if (mu_catalog_item_has_flavor(it, f->valuestring))
                    return fail(err, s, d1 + 1, true, "%s.flavors lists \"%s\" twice", where,
                                f->valuestring);
                it->flavors[it->n_flavors++] = mu_xstrdup(f->valuestring);
            }
        } else if (strcmp(k, "image") == 0) {
            if (!cJSON_IsString(e) || !mu_ident_valid(e->valuestring))
                return fail(err, s, d1, true,
                            "%s.image must be an image name (a-z, 0-9, '.', '_', '-')", where);
            it->image = mu_xstrdup(e->valuestring);
        } else if (strcmp(k, "networks") == 0) {
            const cJSON *pv = cJSON_GetObjectItemCaseSensitive(e, "private");
            const cJSON *pu = cJSON_GetObjectItemCaseSensitive(e, "public");
            if (!cJSON_IsObject(e) || !cJSON_IsBool(pv) || !cJSON_IsBool(pu) ||
                cJSON_GetArraySize(e) != 2)
                return fail(err, s, d1, true,
                            "%s.networks must be {\"private\": true|false, \"public\": "
                            "true|false}",
                            where);
            it->private_net = cJSON_IsTrue(pv);
            it->public_net = cJSON_IsTrue(pu);
            if (!it->private_net && !it->public_net)
                return fail(err, s, d1, true, "%s.networks: a VM needs at least one network",
                            where);
            have_networks = true;
        } else if (strcmp(k, "ports") == 0) {
            int n = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 0;
            if (n < 1 || n > MU_CATALOG_PORTS_MAX)
                return fail(err, s, d1, true, "%s.ports must be an array of 1 to %d TCP ports",
                            where, MU_CATALOG_PORTS_MAX);
            s->path[d1] = 0;
            for (const cJSON *pt = e->child; pt; pt = pt->next, s->path[d1]++) {
                int64_t x;
                if (mu_json_int_value(pt, 1, 65535, &x) < 0)
                    return fail(err, s, d1 + 1, true, "%s.ports holds integers from 1 to 65535",
                                where);
                it->ports[it->n_ports++] = (int)x;
            }
            have_ports = true;
        } else if (strcmp(k, "approval") == 0) {
            rc = parse_approval(e, s, d1, where, it, err);
            if (rc < 0)
                return rc;
            have_approval = true;
        } else if (strcmp(k, "epci_admin_may_approve") == 0) {
            if (!cJSON_IsBool(e))
                return fail(err, s, d1, true, "%s.epci_admin_may_approve must be true or false",
                            where);
            it->epci_admin_may_approve = cJSON_IsTrue(e);
        } else if (strcmp(k, "parameters") == 0) {
            int n = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : -1;
            if (n < 0 || n > MU_CATALOG_PARAMS_MAX)
                return fail(err, s, d1, true, "%s.parameters must be an array of at most %d", where,
                            MU_CATALOG_PARAMS_MAX);
            it->params = mu_xcalloc(n > 0 ? (size_t)n : 1, sizeof *it->params);
            s->path[d1] = 0;
            for (const cJSON *pe = e->child; pe; pe = pe->next, s->path[d1]++) {
                char w[96];
                snprintf(w, sizeof w, "%s.parameters[%d]", where, s->path[d1]);
                struct mu_catalog_param *p = &it->params[it->n_params++];
                rc = parse_param(pe, s, d1 + 1, w, p, err);
                if (rc < 0)
                    return rc;
                for (size_t j = 0; j + 1 < it->n_params; j++)
                    if (strcmp(it->params[j].name, p->name) == 0)
                        return fail(err, s, d1 + 1, true, "%s: parameter \"%s\" is defined twice",
                                    where, p->name);
            }
        } else if (strcmp(k, "user_data") == 0) {
            if (!cJSON_IsObject(e))
                return fail(err, s, d1, true,
                            "%s.user_data must be a JSON object (the #cloud-config document)",
                            where);
            template = e;
            template_index = (size_t)s->path[depth];
        } else {
            return fail(err, s, d1, false,
                        "unknown key \"%.32s\" in %s (expected id, name, description, flavors, "
                        "image, networks, ports, approval, epci_admin_may_approve, parameters, "
                        "user_data)",
                        k, where);
        }
    }
    static const char *const need[] = {"id", "name", "description", "flavors", "image"};
    const void *got[] = {it->id, it->name.fr, it->description.fr, it->flavors, it->image};
    for (size_t i = 0; i < MU_ARRAY_LEN(need); i++)
        if (!got[i])
            return fail(err, s, depth, true, "%s lacks \"%s\"", where, need[i]);
    if (!have_networks)
        return fail(err, s, depth, true, "%s lacks \"networks\"", where);
    if (!have_ports)
        return fail(err, s, depth, true, "%s lacks \"ports\"", where);
    if (!have_approval)
        return fail(err, s, depth, true, "%s lacks \"approval\"", where);
    if (template) {
        /* checked once the parameters are known, whatever the key order */
        s->path[depth] = (int)template_index;
        rc = check_template(template, it, s, depth + 1, false, err);
        if (rc < 0)
            return rc;
        it->user_data = cJSON_Duplicate(template, true);
        if (!it->user_data)
            abort();
    }
    return 0;
}

static int parse_readiness(const cJSON *v, struct src *s, struct mu_catalog *c, struct mu_err *err)
{
    if (!cJSON_IsObject(v))
        return fail(err, s, 1, true,
                    "readiness must be {\"deadline_s\": 600, \"probe_timeout_ms\": 1000}");
    s->path[1] = 0;
    for (const cJSON *e = v->child; e; e = e->next, s->path[1]++) {
        int64_t x;
        if (strcmp(e->string, "deadline_s") == 0) {
            if (mu_json_int_value(e, 1, DEADLINE_MAX_S, &x) < 0)
                return fail(err, s, 2, true, "readiness.deadline_s must be 1 to %d seconds",
                            DEADLINE_MAX_S);
            c->ready_deadline_ms = x * 1000;
        } else if (strcmp(e->string, "probe_timeout_ms") == 0) {
            if (mu_json_int_value(e, 10, PROBE_TIMEOUT_MAX, &x) < 0)
                return fail(err, s, 2, true,
                            "readiness.probe_timeout_ms must be 10 to %d milliseconds",
                            PROBE_TIMEOUT_MAX);
            c->probe_timeout_ms = x;
        } else if (strcmp(e->string, "probe_networks") == 0) {
            int n = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 0;
            if (n < 1 || n > 64)
                return fail(err, s, 2, true,
                            "readiness.probe_networks must be an array of 1 to 64 IPv4 "
                            "networks like \"192.0.2.0/24\"");
            c->probe_nets = mu_xcalloc((size_t)n, sizeof *c->probe_nets);
            c->probe_masks = mu_xcalloc((size_t)n, sizeof *c->probe_masks);
            s->path[2] = 0;
            for (const cJSON *pn = e->child; pn; pn = pn->next, s->path[2]++) {
                if (!cJSON_IsString(pn) ||
                    !cidr_read(pn->valuestring, 0, &c->probe_nets[c->n_probe_nets],
                               &c->probe_masks[c->n_probe_nets]))
                    return fail(err, s, 3, true,
                                "readiness.probe_networks holds IPv4 networks like "
                                "\"192.0.2.0/24\" (no host bits set)");
                c->n_probe_nets++;
            }
        } else {
            return fail(err, s, 2, false,
                        "unknown key \"%.32s\" in readiness (expected deadline_s, "
                        "probe_timeout_ms, probe_networks)",
                        e->string);
        }
    }
    return 0;
}

int mu_catalog_parse(const char *buf, size_t len, const char *origin, struct mu_catalog **ret,
                     struct mu_err *err)
{
    struct src s = {.text = buf, .len = len, .origin = origin ? origin : "catalogue"};
    struct mu_catalog *c = mu_xcalloc(1, sizeof *c);
    bool seen_version = false, seen_items = false;
    int rc = 0;
    c->ready_deadline_ms = 600 * 1000;
    c->probe_timeout_ms = 1000;

    cJSON *root = mu_json_parse(buf, len, s.origin, err);
    if (!root) {
        mu_catalog_free(c);
        return MU_EINVAL;
    }
    if (!cJSON_IsObject(root)) {
        rc = fail(err, &s, 0, true, "the catalogue must be a JSON object");
        goto out;
    }
    s.path[0] = 0;
    for (const cJSON *e = root->child; e; e = e->next, s.path[0]++) {
        const char *k = e->string;
        if (strcmp(k, "version") == 0) {
            int64_t v;
            if (mu_json_int_value(e, POLICY_VERSION, POLICY_VERSION, &v) < 0) {
                rc = fail(err, &s, 1, true, "version must be %d", POLICY_VERSION);
                goto out;
            }
            seen_version = true;
        } else if (strcmp(k, "provider_network") == 0) {
            if (!cJSON_IsString(e) || !mu_ident_valid(e->valuestring)) {
                rc = fail(err, &s, 1, true,
                          "provider_network must name a provider network (a-z, 0-9, '.', '_', "
                          "'-')");
                goto out;
            }
            c->provider_network = mu_xstrdup(e->valuestring);
        } else if (strcmp(k, "private_cidr") == 0) {
            if (!cJSON_IsString(e) || !cidr_text_valid(e->valuestring)) {
                rc = fail(err, &s, 1, true,
                          "private_cidr must be an IPv4 network like \"10.0.0.0/24\" (prefix "
                          "8 to 30)");
                goto out;
            }
            c->private_cidr = mu_xstrdup(e->valuestring);
        } else if (strcmp(k, "readiness") == 0) {
            if ((rc = parse_readiness(e, &s, c, err)) < 0)
                goto out;
        } else if (strcmp(k, "items") == 0) {
            int n = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : -1;
            if (n < 0 || n > ITEMS_MAX) {
                rc =
                    fail(err, &s, 1, true, "items must be an array of at most %d items", ITEMS_MAX);
                goto out;
            }
            c->items = mu_xcalloc(n > 0 ? (size_t)n : 1, sizeof *c->items);
            s.path[1] = 0;
            for (const cJSON *ie = e->child; ie; ie = ie->next, s.path[1]++) {
                struct mu_catalog_item *it = &c->items[c->n_items++];
                if ((rc = parse_item(ie, &s, 2, it, err)) < 0)
                    goto out;
                for (size_t j = 0; j + 1 < c->n_items; j++)
                    if (strcmp(c->items[j].id, it->id) == 0) {
                        rc = fail(err, &s, 2, true, "item \"%s\" is defined twice", it->id);
                        goto out;
                    }
            }
            seen_items = true;
        } else {
            rc = fail(err, &s, 1, false,
                      "unknown key \"%.32s\" (expected version, provider_network, "
                      "private_cidr, readiness, items)",
                      k);
            goto out;
        }
    }
    if (!seen_version) {
        rc = fail(err, &s, 0, true, "the catalogue lacks \"version\": %d", POLICY_VERSION);
        goto out;
    }
    if (!seen_items) {
        rc = fail(err, &s, 0, true, "the catalogue lacks \"items\"");
        goto out;
    }
    for (size_t i = 0; i < c->n_items; i++)
        if (c->items[i].public_net && !c->provider_network) {
            rc = fail(err, &s, 0, true,
                      "item \"%s\" is public: name the provider network of public addresses "
                      "in \"provider_network\"",
                      c->items[i].id);
            goto out;
        }
    if (!c->private_cidr)
        c->private_cidr = mu_xstrdup("10.0.0.0/24");
out:
    cJSON_Delete(root);
    if (rc < 0) {
        mu_catalog_free(c);
        return rc;
    }
    *ret = c;
    return 0;
}

int mu_catalog_load(const char *path, struct mu_catalog **ret, struct mu_err *err)
{
    size_t len = 0;
    MU_AUTOFREE char *text = mu_read_file(path, POLICY_FILE_MAX, &len);
    if (!text)
        return mu_err_set(err, MU_EIO, "%s: cannot read: %s", path, strerror(errno));
    return mu_catalog_parse(text, len, path, ret, err);
}

const struct mu_catalog_item *mu_catalog_find(const struct mu_catalog *c, const char *id)
{
    for (size_t i = 0; c && id && i < c->n_items; i++)
        if (strcmp(c->items[i].id, id) == 0)
            return &c->items[i];
    return NULL;
}

bool mu_catalog_item_has_flavor(const struct mu_catalog_item *it, const char *flavor)
{
    for (size_t i = 0; flavor && i < it->n_flavors; i++)
        if (strcmp(it->flavors[i], flavor) == 0)
            return true;
    return false;
}

bool mu_catalog_needs_approval(const struct mu_catalog_item *it, int64_t vcpus, int64_t ram_mib)
{
    switch (it->approval) {
    case MU_CATALOG_APPROVE_NEVER:
        return false;
    case MU_CATALOG_APPROVE_ABOVE:
        return (it->above_vcpus >= 0 && vcpus > it->above_vcpus) ||
               (it->above_ram_mib >= 0 && ram_mib > it->above_ram_mib);
    case MU_CATALOG_APPROVE_ALWAYS:
    default:
        return true;
    }
}

/* ---- GET /v1/catalog ---------------------------------------------------------------- */

static cJSON *text_json(const struct mu_catalog_text *t)
{
    cJSON *o = mu_json_obj();
    mu_json_add_str(o, "fr", t->fr);
    mu_json_add_str(o, "en", t->en);
    return o;
}

cJSON *mu_catalog_json(const struct mu_catalog *c)
{
    cJSON *items = mu_json_arr();
    for (size_t i = 0; c && i < c->n_items; i++) {
        const struct mu_catalog_item *it = &c->items[i];
        cJSON *o = mu_json_obj();
        mu_json_add_str(o, "id", it->id);
        cJSON_AddItemToObject(o, "name", text_json(&it->name));
        cJSON_AddItemToObject(o, "description", text_json(&it->description));
        cJSON *fl = mu_json_arr();
        for (size_t k = 0; k < it->n_flavors; k++)
            cJSON_AddItemToArray(fl, cJSON_CreateString(it->flavors[k]));
        cJSON_AddItemToObject(o, "flavors", fl);
        mu_json_add_str(o, "image", it->image);
        mu_json_add_bool(o, "private", it->private_net);
        mu_json_add_bool(o, "public", it->public_net);
        cJSON *ports = mu_json_arr();
        for (size_t k = 0; k < it->n_ports; k++)
            cJSON_AddItemToArray(ports, cJSON_CreateNumber(it->ports[k]));
        cJSON_AddItemToObject(o, "ports", ports);
        static const char *const appr[] = {"always", "never", "above"};
        mu_json_add_str(o, "approval", appr[it->approval]);
        if (it->approval == MU_CATALOG_APPROVE_ABOVE) {
            cJSON *a = mu_json_obj();
            if (it->above_vcpus >= 0)
                mu_json_add_i64(a, "vcpus", it->above_vcpus);
            else
                mu_json_add_null(a, "vcpus");
            if (it->above_ram_mib >= 0)
                mu_json_add_i64(a, "ram_mib", it->above_ram_mib);
            else
                mu_json_add_null(a, "ram_mib");
            cJSON_AddItemToObject(o, "approval_above", a);
        } else {
            mu_json_add_null(o, "approval_above");
        }
        mu_json_add_bool(o, "epci_admin_may_approve", it->epci_admin_may_approve);
        cJSON *ps = mu_json_arr();
        for (size_t k = 0; k < it->n_params; k++) {
            const struct mu_catalog_param *p = &it->params[k];
            cJSON *po = mu_json_obj();
            mu_json_add_str(po, "name", p->name);
            mu_json_add_str(po, "type", ptype_names[p->type]);
            cJSON_AddItemToObject(po, "label", text_json(&p->label));
            cJSON_AddItemToObject(po, "help", text_json(&p->help));
            mu_json_add_bool(po, "required", p->required);
            if (p->type == MU_CATALOG_P_INTEGER) {
                mu_json_add_i64(po, "min", p->min);
                mu_json_add_i64(po, "max", p->max);
            } else {
                mu_json_add_null(po, "min");
                mu_json_add_null(po, "max");
            }
            if (p->type == MU_CATALOG_P_STRING)
                mu_json_add_i64(po, "max_length", p->max_length);
            else if (p->type == MU_CATALOG_P_DOMAIN)
                mu_json_add_i64(po, "max_length", 253);
            else if (p->type == MU_CATALOG_P_EMAIL)
                mu_json_add_i64(po, "max_length", 254);
            else
                mu_json_add_null(po, "max_length");
            if (p->type == MU_CATALOG_P_ENUM) {
                cJSON *ch = mu_json_arr();
                for (size_t j = 0; j < p->n_choices; j++)
                    cJSON_AddItemToArray(ch, cJSON_CreateString(p->choices[j]));
                cJSON_AddItemToObject(po, "choices", ch);
            } else {
                mu_json_add_null(po, "choices");
            }
            cJSON_AddItemToArray(ps, po);
        }
        cJSON_AddItemToObject(o, "parameters", ps);
        cJSON_AddItemToArray(items, o);
    }
    cJSON *doc = mu_json_obj();
    cJSON_AddItemToObject(doc, "items", items);
    return doc;
}

/* ---- parameter checks ---------------------------------------------------------------- */

static void add_error(cJSON *errors, const char *name, const char *fmt, ...) MU_PRINTF(3, 4);
static void add_error(cJSON *errors, const char *name, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = mu_json_obj();
    MU_AUTOFREE char *field = mu_xasprintf("parameters.%s", name);
    mu_json_add_str(o, "field", field);
    mu_json_add_str(o, "detail", msg);
    cJSON_AddItemToArray(errors, o);
}

/* A DNS name: 2+ labels of [a-z0-9-] (1..63, no '-' at either end), at most 253 bytes, a
 * last label that is not all digits. Upper case is folded into buf (size 254). */
static bool domain_fold(const char *s, char *buf)
{
    size_t n = strlen(s), label = 0, labels = 1;
    bool tld_digits = true;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch == '.') {
            if (label == 0 || buf[i - 1] == '-')
                return false;
            label = 0;
            labels++;
            tld_digits = true;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') {
            if ((label == 0 && ch == '-') || ++label > 63)
                return false;
            if (!(ch >= '0' && ch <= '9'))
                tld_digits = false;
        } else {
            return false;
        }
        buf[i] = ch;
    }
    buf[n] = '\0';
    return labels >= 2 && label > 0 && buf[n - 1] != '-' && !tld_digits;
}

/* Code points of valid UTF-8 text. */
static size_t utf8_count(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* One value; adds to clean or to errors. */
static void check_value(const struct mu_catalog_param *p, const cJSON *v, cJSON *errors,
                        cJSON *clean)
{
    char buf[256];
    switch (p->type) {
    case MU_CATALOG_P_DOMAIN:
        if (!cJSON_IsString(v) || !domain_fold(v->valuestring, buf)) {
            add_error(errors, p->name,
                      "%s must be a domain name like mairie-exemple.fr (letters, digits and "
                      "'-' between dots, at most 253 characters)",
                      p->name);
            return;
        }
        cJSON_AddItemToObject(clean, p->name, cJSON_CreateString(buf));
        return;
    case MU_CATALOG_P_EMAIL:
        if (!cJSON_IsString(v) || strlen(v->valuestring) > 254 || !mu_email_valid(v->valuestring) ||
            has_control(v->valuestring) || !strchr(v->valuestring, '@') ||
            !domain_fold(strchr(v->valuestring, '@') + 1, buf)) {
            add_error(errors, p->name,
                      "%s must be an e-mail address like secretariat@mairie-exemple.fr", p->name);
            return;
        }
        cJSON_AddItemToObject(clean, p->name, cJSON_CreateString(v->valuestring));
        return;
    case MU_CATALOG_P_INTEGER: {
        int64_t x;
        if (!cJSON_IsNumber(v) || mu_json_int_value(v, p->min, p->max, &x) < 0) {
            add_error(errors, p->name, "%s must be a whole number from %lld to %lld", p->name,
                      (long long)p->min, (long long)p->max);
            return;
        }
        cJSON_AddItemToObject(clean, p->name, cJSON_CreateNumber((double)x));
        return;
    }
    case MU_CATALOG_P_ENUM:
        for (size_t i = 0; cJSON_IsString(v) && i < p->n_choices; i++)
            if (strcmp(p->choices[i], v->valuestring) == 0) {
                cJSON_AddItemToObject(clean, p->name, cJSON_CreateString(v->valuestring));
                return;
            }
        {
            struct mu_buf b;
            mu_buf_init(&b);
            for (size_t i = 0; i < p->n_choices; i++)
                mu_buf_printf(&b, "%s%s", i ? ", " : "", p->choices[i]);
            add_error(errors, p->name, "%s must be one of: %s", p->name, b.data ? b.data : "");
            mu_buf_free(&b);
        }
        return;
    case MU_CATALOG_P_STRING:
        if (!cJSON_IsString(v)) {
            add_error(errors, p->name, "%s must be text", p->name);
            return;
        }
        if (has_control(v->valuestring)) {
            add_error(errors, p->name,
                      "%s must be one line of text (no line breaks, tabs or other control "
                      "characters)",
                      p->name);
            return;
        }
        if ((int64_t)utf8_count(v->valuestring) > p->max_length) {
            add_error(errors, p->name, "%s is too long: at most %lld characters", p->name,
                      (long long)p->max_length);
            return;
        }
        cJSON_AddItemToObject(clean, p->name, cJSON_CreateString(v->valuestring));
        return;
    }
}

size_t mu_catalog_check_params(const struct mu_catalog_item *it, const cJSON *params, cJSON *errors,
                               cJSON **ret_clean)
{
    int before = cJSON_GetArraySize(errors);
    cJSON *clean = mu_json_obj();
    if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params)) {
        cJSON *o = mu_json_obj();
        mu_json_add_str(o, "field", "parameters");
        mu_json_add_str(o, "detail", "parameters must be an object {\"name\": value, …}");
        cJSON_AddItemToArray(errors, o);
        cJSON_Delete(clean);
        return (size_t)(cJSON_GetArraySize(errors) - before);
    }
    if (cJSON_IsObject(params))
        for (const cJSON *e = params->child; e; e = e->next) {
            const struct mu_catalog_param *p = NULL;
            for (size_t i = 0; i < it->n_params; i++)
                if (strcmp(it->params[i].name, e->string) == 0)
                    p = &it->params[i];
            if (!p) {
                MU_AUTOFREE char *shown = mu_xstrndup(e->string, 32);
                for (char *c = shown; *c; c++)
                    if ((unsigned char)*c < 0x20)
                        *c = '?';
                struct mu_buf b;
                mu_buf_init(&b);
                for (size_t i = 0; i < it->n_params; i++)
                    mu_buf_printf(&b, "%s%s", i ? ", " : "", it->params[i].name);
                cJSON *o = mu_json_obj();
                MU_AUTOFREE char *field = param_name_valid(e->string)
                                              ? mu_xasprintf("parameters.%s", e->string)
                                              : mu_xstrdup("parameters");
                MU_AUTOFREE char *msg =
                    mu_xasprintf("\"%s\" is not a parameter of %s (its parameters: %s)", shown,
                                 it->id, b.data ? b.data : "none");
                mu_buf_free(&b);
                mu_json_add_str(o, "field", field);
                mu_json_add_str(o, "detail", msg);
                cJSON_AddItemToArray(errors, o);
                continue;
            }
            if (cJSON_IsNull(e)) {
                if (p->required)
                    add_error(errors, p->name, "%s is required", p->name);
                continue;
            }
            check_value(p, e, errors, clean);
        }
    for (size_t i = 0; i < it->n_params; i++) {
        const struct mu_catalog_param *p = &it->params[i];
        if (p->required &&
            !(cJSON_IsObject(params) && cJSON_GetObjectItemCaseSensitive(params, p->name)))
            add_error(errors, p->name, "%s is required", p->name);
    }
    size_t n = (size_t)(cJSON_GetArraySize(errors) - before);
    if (n > 0)
        cJSON_Delete(clean);
    else
        *ret_clean = clean;
    return n;
}
