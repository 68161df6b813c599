/* Tenants: kinds, statuses, EPCI forms, and the JSON forms of a tenant (create body, PATCH
 * body, API object). Every value goes through mutualis/validate.h, and the messages name
 * the field and say what a valid value looks like, so that the person who typed it can fix
 * it without reading the code. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"
#include "tenancy/tenancy.h"
#include "tenancy/tenancy_int.h"

#define MU_TENANT_NAME_MAX 200
#define MU_POPULATION_MAX  100000000
#define MU_PHONE_MAX       32
/* Bounds handed to the JSON getters: generous, the precise rule is checked afterwards
 * with a message that says what is expected. */
#define MU_STR_CAP 1024

static const char *const tenant_kinds[] = {"syndicat",    "epci",  "commune",
                                           "departement", "other", NULL};
static const char *const tenant_statuses[] = {"active", "suspended", "archived", NULL};
static const char *const epci_forms[] = {"CC", "CA", "CU", "METRO", "MET69", NULL};

static const char *const create_keys[] = {"parent_id",  "name",    "kind",        "epci_form",
                                          "siren",      "insee",   "departement", "region",
                                          "population", "contact", "status",      NULL};
/* kind and parent_id are listed so that they get a precise refusal, not "unknown field". */
static const char *const patch_keys[] = {"name",    "kind",        "epci_form", "siren",
                                         "insee",   "departement", "region",    "population",
                                         "contact", "status",      "parent_id", NULL};
static const char *const contact_keys[] = {"name", "email", "phone", NULL};

static bool in_list(const char *s, const char *const *list)
{
    if (!s)
        return false;
    for (size_t i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

bool mu_tenant_kind_valid(const char *kind)
{
    return in_list(kind, tenant_kinds);
}

bool mu_tenant_status_valid(const char *status)
{
    return in_list(status, tenant_statuses);
}

bool mu_epci_form_valid(const char *form)
{
    return in_list(form, epci_forms);
}

const char *mu_tenancy_show(const char *value, char out[48])
{
    size_t o = 0;
    if (!value) {
        memcpy(out, "(none)", sizeof "(none)");
        return out;
    }
    for (size_t i = 0; value[i]; i++) {
        if (o == 40) {
            memcpy(out + o, "...", 4);
            return out;
        }
        unsigned char c = (unsigned char)value[i];
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[o] = '\0';
    return out;
}

bool mu_tenancy_insee_dept(const char *insee, char out[4])
{
    if (!insee || strlen(insee) < 3)
        return false;
    size_t n = (insee[0] == '9' && (insee[1] == '7' || insee[1] == '8')) ? 3 : 2;
    memcpy(out, insee, n);
    out[n] = '\0';
    return true;
}

void mu_tenancy_tenant_fini(struct mu_tenant *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->kind);
    free(t->epci_form);
    free(t->siren);
    free(t->insee);
    free(t->dept);
    free(t->region);
    free(t->contact_name);
    free(t->contact_email);
    free(t->contact_phone);
    free(t->status);
    memset(t, 0, sizeof *t);
}

/* Telephone numbers are free-form across France and overseas ("+590 590 00 00 00",
 * "04.72.00.00.00", "(0)1 23"): an allow-list of characters, not a numbering plan. */
static bool phone_valid(const char *s)
{
    size_t n = strlen(s), digits = 0;
    if (n < 3 || n > MU_PHONE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if (!strchr(" +.-()", c))
            return false;
    }
    return digits >= 3;
}

int mu_tenancy_check(const struct mu_tenant *t, struct mu_err *err)
{
    char v[48];
    if (!t->name || !mu_name_valid(t->name, MU_TENANT_NAME_MAX))
        return mu_err_setf(err, MU_EINVAL, "name",
                           "name must be 1 to %d bytes of text, without control characters "
                           "and without leading or trailing spaces",
                           MU_TENANT_NAME_MAX);
    if (!mu_tenant_kind_valid(t->kind))
        return mu_err_setf(err, MU_EINVAL, "kind",
                           "kind %s is not one of syndicat, epci, commune, departement, other",
                           mu_tenancy_show(t->kind, v));
    if (!mu_tenant_status_valid(t->status))
        return mu_err_setf(err, MU_EINVAL, "status",
                           "status %s is not one of active, suspended, archived",
                           mu_tenancy_show(t->status, v));
    bool epci = strcmp(t->kind, "epci") == 0, commune = strcmp(t->kind, "commune") == 0;
    if (epci && !t->epci_form)
        return mu_err_setf(err, MU_EINVAL, "epci_form",
                           "epci_form is required for an EPCI: CC (communauté de communes), CA "
                           "(d'agglomération), CU (urbaine), METRO (métropole) or MET69 "
                           "(Métropole de Lyon)");
    if (!epci && t->epci_form)
        return mu_err_setf(err, MU_EINVAL, "epci_form",
                           "epci_form is only for tenants of kind epci (this one is a %s)",
                           t->kind);
    if (t->epci_form && !mu_epci_form_valid(t->epci_form))
        return mu_err_setf(err, MU_EINVAL, "epci_form",
                           "epci_form %s is not one of CC, CA, CU, METRO, MET69",
                           mu_tenancy_show(t->epci_form, v));
    if (t->siren && !mu_siren_valid(t->siren))
        return mu_err_setf(err, MU_EINVAL, "siren",
                           "siren %s is not a valid SIREN (9 digits with a Luhn check digit)",
                           mu_tenancy_show(t->siren, v));
    if (commune && !t->insee)
        return mu_err_setf(err, MU_EINVAL, "insee",
                           "insee, the commune's INSEE code (e.g. 01001, 2A004, 97501), is "
                           "required for a commune");
    if (!commune && t->insee)
        return mu_err_setf(err, MU_EINVAL, "insee",
                           "insee is only for tenants of kind commune (this one is a %s)", t->kind);
    if (t->insee && !mu_insee_valid(t->insee))
        return mu_err_setf(err, MU_EINVAL, "insee",
                           "insee %s is not a valid INSEE commune code (5 characters: 01-95, 2A "
                           "or 2B then 3 digits, or 971-989 then 2 digits)",
                           mu_tenancy_show(t->insee, v));
    if (t->dept && !mu_dept_valid(t->dept))
        return mu_err_setf(err, MU_EINVAL, "departement",
                           "departement %s is not a valid département code (01-95, 2A, 2B, "
                           "971-976, or an overseas collectivity: 975, 977, 978, 984, 986-989)",
                           mu_tenancy_show(t->dept, v));
    char prefix[4];
    if (commune && t->dept && mu_tenancy_insee_dept(t->insee, prefix) &&
        strcmp(prefix, t->dept) != 0)
        return mu_err_setf(err, MU_EINVAL, "departement",
                           "departement %s does not match the INSEE code %s, whose "
                           "département is %s",
                           t->dept, t->insee, prefix);
    if (t->region && !mu_region_valid(t->region))
        return mu_err_setf(err, MU_EINVAL, "region",
                           "region %s is not a valid région code (2 or 3 digits, e.g. 84)",
                           mu_tenancy_show(t->region, v));
    if (t->population < -1 || t->population > MU_POPULATION_MAX)
        return mu_err_setf(err, MU_EINVAL, "population",
                           "population must be an integer between 0 and %d", MU_POPULATION_MAX);
    if (t->contact_name && !mu_name_valid(t->contact_name, MU_TENANT_NAME_MAX))
        return mu_err_setf(err, MU_EINVAL, "contact.name",
                           "contact.name must be 1 to %d bytes of text, without control "
                           "characters and without leading or trailing spaces",
                           MU_TENANT_NAME_MAX);
    if (t->contact_email && !mu_email_valid(t->contact_email))
        return mu_err_setf(err, MU_EINVAL, "contact.email",
                           "contact.email %s is not a valid e-mail address (name@domain, "
                           "ASCII)",
                           mu_tenancy_show(t->contact_email, v));
    if (t->contact_phone && !phone_valid(t->contact_phone))
        return mu_err_setf(err, MU_EINVAL, "contact.phone",
                           "contact.phone must be 3 to %d characters: digits, spaces and + . - "
                           "( )",
                           MU_PHONE_MAX);
    return 0;
}

/* Replaces *slot by a copy of val (NULL clears). */
static void set_str(char **slot, const char *val)
{
    char *copy = mu_xstrdup(val);
    free(*slot);
    *slot = copy;
}

/* Reads an optional string field that JSON null clears. *ret_present tells whether the key
 * was in the body at all; *ret is NULL for null. 0 or MU_EINVAL (err names the field). */
static int get_nullable_str(const cJSON *obj, const char *key, bool *ret_present, const char **ret,
                            struct mu_err *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *ret_present = it != NULL;
    *ret = NULL;
    if (!it || cJSON_IsNull(it))
        return 0;
    int r = mu_json_get_str(obj, key, true, MU_STR_CAP, ret, err);
    return r < 0 ? r : 0;
}

/* Applies the contact object (or null, which clears the three fields). Errors name the
 * nested field ("contact.email"). */
static int read_contact(const cJSON *body, struct mu_tenant *t, struct mu_err *err)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(body, "contact");
    if (!c)
        return 0;
    if (cJSON_IsNull(c)) {
        set_str(&t->contact_name, NULL);
        set_str(&t->contact_email, NULL);
        set_str(&t->contact_phone, NULL);
        return 0;
    }
    if (!cJSON_IsObject(c))
        return mu_err_setf(err, MU_EINVAL, "contact",
                           "contact must be an object {\"name\", \"email\", \"phone\"} or null");
    struct mu_err inner = {0};
    int r = mu_json_expect_object(c, contact_keys, "contact", &inner);
    static const char *const keys[] = {"name", "email", "phone"};
    char **slots[] = {&t->contact_name, &t->contact_email, &t->contact_phone};
    for (size_t i = 0; r == 0 && i < MU_ARRAY_LEN(keys); i++) {
        bool present;
        const char *val;
        r = get_nullable_str(c, keys[i], &present, &val, &inner);
        if (r == 0 && present)
            set_str(slots[i], val);
    }
    if (r < 0) {
        char field[80];
        if (inner.field[0])
            snprintf(field, sizeof field, "contact.%s", inner.field);
        else
            snprintf(field, sizeof field, "contact");
        return mu_err_setf(err, r, field, "contact: %s", inner.detail);
    }
    return 0;
}

/* The fields create and PATCH share, applied onto t; values are checked afterwards by
 * mu_tenancy_check. A key absent from the body leaves t's value; null clears it. */
static int read_common(const cJSON *body, struct mu_tenant *t, struct mu_err *err)
{
    static const struct {
        const char *key;
        size_t off;
    } strs[] = {
        {"name", offsetof(struct mu_tenant, name)},
        {"epci_form", offsetof(struct mu_tenant, epci_form)},
        {"siren", offsetof(struct mu_tenant, siren)},
        {"insee", offsetof(struct mu_tenant, insee)},
        {"departement", offsetof(struct mu_tenant, dept)},
        {"region", offsetof(struct mu_tenant, region)},
        {"status", offsetof(struct mu_tenant, status)},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(strs); i++) {
        bool present;
        const char *val;
        int r = get_nullable_str(body, strs[i].key, &present, &val, err);
        if (r < 0)
            return r;
        if (!present)
            continue;
        if (!val && (strcmp(strs[i].key, "name") == 0 || strcmp(strs[i].key, "status") == 0))
            return mu_err_setf(err, MU_EINVAL, strs[i].key, "%s cannot be null", strs[i].key);
        set_str((char **)((char *)t + strs[i].off), val);
    }
    const cJSON *pop = cJSON_GetObjectItemCaseSensitive(body, "population");
    if (pop && cJSON_IsNull(pop)) {
        t->population = -1;
    } else if (pop) {
        int64_t n;
        int r = mu_json_get_i64(body, "population", true, 0, MU_POPULATION_MAX, &n, err);
        if (r < 0)
            return r;
        t->population = n;
    }
    return read_contact(body, t, err);
}

int mu_tenancy_from_create(const cJSON *body, struct mu_tenant *t, struct mu_err *err)
{
    struct mu_tenant n = {0};
    n.population = -1;
    memset(t, 0, sizeof *t);
    int r = mu_json_expect_object(body, create_keys, "tenant", err);
    if (r < 0)
        return r;

    const char *kind = NULL;
    r = mu_json_get_str(body, "kind", true, MU_STR_CAP, &kind, err);
    if (r < 0)
        goto out;
    if (!mu_tenant_kind_valid(kind)) {
        char v[48];
        r = mu_err_setf(err, MU_EINVAL, "kind",
                        "kind %s is not one of syndicat, epci, commune, departement, other",
                        mu_tenancy_show(kind, v));
        goto out;
    }
    set_str(&n.kind, kind);
    if (!cJSON_GetObjectItemCaseSensitive(body, "name")) {
        r = mu_err_setf(err, MU_EINVAL, "name", "name is required");
        goto out;
    }
    int64_t parent = 0;
    r = mu_json_get_i64(body, "parent_id", false, 1, INT64_MAX, &parent, err);
    if (r < 0)
        goto out;
    n.parent_id = parent;
    set_str(&n.status, "active");
    r = read_common(body, &n, err);
    if (r == 0)
        r = mu_tenancy_check(&n, err);
out:
    if (r < 0) {
        mu_tenancy_tenant_fini(&n);
        return r;
    }
    *t = n;
    return 0;
}

/* Deep copy, so that a PATCH that fails leaves the caller's tenant untouched. */
static void tenant_copy(struct mu_tenant *dst, const struct mu_tenant *src)
{
    *dst = *src;
    dst->name = mu_xstrdup(src->name);
    dst->kind = mu_xstrdup(src->kind);
    dst->epci_form = mu_xstrdup(src->epci_form);
    dst->siren = mu_xstrdup(src->siren);
    dst->insee = mu_xstrdup(src->insee);
    dst->dept = mu_xstrdup(src->dept);
    dst->region = mu_xstrdup(src->region);
    dst->contact_name = mu_xstrdup(src->contact_name);
    dst->contact_email = mu_xstrdup(src->contact_email);
    dst->contact_phone = mu_xstrdup(src->contact_phone);
    dst->status = mu_xstrdup(src->status);
}

int mu_tenancy_apply_patch(const cJSON *body, struct mu_tenant *t, struct mu_err *err)
{
    int r = mu_json_expect_object(body, patch_keys, "tenant", err);
    if (r < 0)
        return r;
    if (cJSON_GetObjectItemCaseSensitive(body, "parent_id"))
        return mu_err_setf(err, MU_EINVAL, "parent_id",
                           "parent_id cannot change here: move the tenant with "
                           "POST /v1/tenants/{id}/move");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(body, "kind");
    if (kind && !(cJSON_IsString(kind) && t->kind && strcmp(kind->valuestring, t->kind) == 0))
        return mu_err_setf(err, MU_EINVAL, "kind",
                           "kind cannot change (this tenant is a %s): create a new tenant "
                           "instead",
                           t->kind ? t->kind : "tenant without kind");

    struct mu_tenant n;
    tenant_copy(&n, t);
    r = read_common(body, &n, err);
    if (r == 0)
        r = mu_tenancy_check(&n, err);
    if (r < 0) {
        mu_tenancy_tenant_fini(&n);
        return r;
    }
    mu_tenancy_tenant_fini(t);
    *t = n;
    return 0;
}

/* cJSON reports an allocation failure by returning false; like every allocation here, it
 * is fatal rather than an untestable path. */
static void add_item(cJSON *obj, const char *key, cJSON *item)
{
    if (!cJSON_AddItemToObject(obj, key, item))
        abort();
}

cJSON *mu_tenancy_to_json(const struct mu_tenant *t)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", t->id);
    if (t->parent_id > 0)
        mu_json_add_i64(o, "parent_id", t->parent_id);
    else
        mu_json_add_null(o, "parent_id");
    mu_json_add_str(o, "name", t->name);
    mu_json_add_str(o, "kind", t->kind);
    mu_json_add_str(o, "epci_form", t->epci_form);
    mu_json_add_str(o, "siren", t->siren);
    mu_json_add_str(o, "insee", t->insee);
    mu_json_add_str(o, "departement", t->dept);
    mu_json_add_str(o, "region", t->region);
    if (t->population >= 0)
        mu_json_add_i64(o, "population", t->population);
    else
        mu_json_add_null(o, "population");
    /* Always an object, so that clients read contact.email without testing contact. */
    cJSON *c = mu_json_obj();
    mu_json_add_str(c, "name", t->contact_name);
    mu_json_add_str(c, "email", t->contact_email);
    mu_json_add_str(c, "phone", t->contact_phone);
    add_item(o, "contact", c);
    mu_json_add_str(o, "status", t->status);
    mu_json_add_i64(o, "depth", t->depth);
    mu_json_add_time(o, "created_at", t->created_ms);
    mu_json_add_time(o, "updated_at", t->updated_ms);
    return o;
}
