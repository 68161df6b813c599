/* The user-data renderer (catalog.h): walks an item's template and builds a new cJSON tree
 * where placeholders become the parameters' values as JSON numbers or strings. Nothing is
 * ever pasted into text: a value is one JSON scalar wherever it lands, so no parameter can
 * add a key, an element or a line of YAML. */
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "mutualis/json.h"
#include "mutualis/util.h"

static const struct mu_catalog_param *param_of(const struct mu_catalog_item *it, const char *name)
{
    for (size_t i = 0; i < it->n_params; i++)
        if (strcmp(it->params[i].name, name) == 0)
            return &it->params[i];
    return NULL;
}

/* The value of a placeholder: a copy of the parameter's value (null when absent). */
static int placeholder(const struct mu_catalog_item *it, const cJSON *ph, const cJSON *params,
                       bool want_string, cJSON **ret, struct mu_err *err)
{
    const struct mu_catalog_param *p = param_of(it, ph->valuestring);
    const cJSON *v = params ? cJSON_GetObjectItemCaseSensitive(params, ph->valuestring) : NULL;
    if (!p)
        return mu_err_set(err, MU_EINVAL, "the template names unknown parameter %s",
                          ph->valuestring);
    if (!v || cJSON_IsNull(v)) {
        *ret = want_string ? cJSON_CreateString("") : cJSON_CreateNull();
        return 0;
    }
    bool is_int = p->type == MU_CATALOG_P_INTEGER;
    if (is_int ? !cJSON_IsNumber(v) : !cJSON_IsString(v))
        return mu_err_setf(err, MU_EINVAL, p->name, "parameter %s must be %s", p->name,
                           is_int ? "a number" : "text");
    if (want_string && is_int)
        return mu_err_setf(err, MU_EINVAL, p->name, "parameter %s cannot be joined into text",
                           p->name);
    *ret = is_int ? cJSON_CreateNumber(v->valuedouble) : cJSON_CreateString(v->valuestring);
    return 0;
}

static int render_node(const struct mu_catalog_item *it, const cJSON *t, const cJSON *params,
                       cJSON **ret, struct mu_err *err)
{
    cJSON *out = NULL;
    int rc = 0;
    if (cJSON_IsObject(t)) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(t, "$param");
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(t, "$concat");
        if (cJSON_IsString(ph))
            return placeholder(it, ph, params, false, ret, err);
        if (cJSON_IsArray(cc)) {
            struct mu_buf b;
            mu_buf_init(&b);
            for (const cJSON *e = cc->child; e && rc == 0; e = e->next) {
                if (cJSON_IsString(e)) {
                    mu_buf_puts(&b, e->valuestring);
                    continue;
                }
                const cJSON *eph = cJSON_GetObjectItemCaseSensitive(e, "$param");
                cJSON *v = NULL;
                if (!cJSON_IsString(eph))
                    rc = mu_err_set(err, MU_EINVAL, "$concat takes strings and placeholders");
                else if ((rc = placeholder(it, eph, params, true, &v, err)) == 0)
                    mu_buf_puts(&b, v->valuestring);
                cJSON_Delete(v);
            }
            if (rc == 0)
                *ret = cJSON_CreateString(b.data ? b.data : "");
            mu_buf_free(&b);
            return rc;
        }
        out = mu_json_obj();
        for (const cJSON *e = t->child; e && rc == 0; e = e->next) {
            cJSON *v = NULL;
            if ((rc = render_node(it, e, params, &v, err)) == 0)
                cJSON_AddItemToObject(out, e->string, v);
        }
    } else if (cJSON_IsArray(t)) {
        out = mu_json_arr();
        for (const cJSON *e = t->child; e && rc == 0; e = e->next) {
            cJSON *v = NULL;
            if ((rc = render_node(it, e, params, &v, err)) == 0)
                cJSON_AddItemToArray(out, v);
        }
    } else {
        out = cJSON_Duplicate(t, false);
        if (!out)
            abort();
    }
    if (rc < 0) {
        cJSON_Delete(out);
        return rc;
    }
    *ret = out;
    return 0;
}

int mu_catalog_render(const struct mu_catalog_item *it, const cJSON *params, char **ret,
                      struct mu_err *err)
{
    cJSON *doc = NULL;
    if (!it->user_data) {
        *ret = NULL;
        return 0;
    }
    int rc = render_node(it, it->user_data, params, &doc, err);
    if (rc < 0)
        return rc;
    MU_AUTOFREE char *json = mu_json_print(doc);
    cJSON_Delete(doc);
    *ret = mu_xasprintf("#cloud-config\n%s\n", json);
    return 0;
}
