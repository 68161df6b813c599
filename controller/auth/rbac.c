/* Roles and the RBAC policy (policies/rbac.json): each action maps to the roles allowed.
 * Loaded once at start; the loaded form is a sorted array of (action, role bitmask), so a
 * check on every request is a binary search and a bit test, without allocation.
 * Semantic refusals point at the offending place in the file (line and column) like the
 * syntax errors of mu_json_parse do. */
#include "auth/auth.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/json.h"

#define RBAC_FILE_CAP   (1024 * 1024)
#define RBAC_VERSION    1
#define RBAC_ACTION_MAX 64

/* ---- roles ---------------------------------------------------------------------------- */

static const char *const role_names[] = {MU_ROLE_OPERATOR, MU_ROLE_OBSERVER, MU_ROLE_TENANT_ADMIN,
                                         MU_ROLE_TENANT_READER};

/* The role's bit in an action mask, or 0 for an unknown role. */
static unsigned role_bit(const char *role)
{
    if (!role)
        return 0;
    for (size_t i = 0; i < MU_ARRAY_LEN(role_names); i++)
        if (strcmp(role, role_names[i]) == 0)
            return 1u << i;
    return 0;
}

bool mu_role_valid(const char *role)
{
    return role_bit(role) != 0;
}

bool mu_role_is_tenant(const char *role)
{
    return role &&
           (strcmp(role, MU_ROLE_TENANT_ADMIN) == 0 || strcmp(role, MU_ROLE_TENANT_READER) == 0);
}

bool mu_principal_is_global(const struct mu_principal *p)
{
    return p && (strcmp(p->role, MU_ROLE_OPERATOR) == 0 || strcmp(p->role, MU_ROLE_OBSERVER) == 0);
}

/* ---- locating a node in the source text --------------------------------------------------
 * cJSON keeps no positions, but it keeps members in source order: a node is named by the
 * index of each member or element on its path, and found again by a small scanner over the
 * text (already validated by mu_json_parse, so the scanner only has to stay in bounds). */

struct loc_step {
    int index; /* member or element index */
    bool key;  /* in an object: point at the key rather than the value (last step only) */
};

static size_t loc_ws(const char *t, size_t len, size_t p)
{
    while (p < len && (t[p] == ' ' || t[p] == '\t' || t[p] == '\n' || t[p] == '\r'))
        p++;
    return p;
}

/* p at an opening quote; returns the index just past the closing quote. */
static size_t loc_string(const char *t, size_t len, size_t p)
{
    for (p++; p < len && t[p] != '"'; p++)
        if (t[p] == '\\')
            p++;
    return p < len ? p + 1 : len;
}

static size_t loc_value(const char *t, size_t len, size_t p)
{
    if (p >= len)
        return len;
    if (t[p] == '"')
        return loc_string(t, len, p);
    if (t[p] == '{' || t[p] == '[') {
        int depth = 0;
        while (p < len) {
            char c = t[p];
            if (c == '"') {
                p = loc_string(t, len, p);
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return len;
    }
    while (p < len && !strchr(",]} \t\r\n", t[p]))
        p++;
    return p;
}

/* Offset of the node named by steps, or SIZE_MAX if the text does not have it. */
static size_t loc_find(const char *t, size_t len, const struct loc_step *steps, size_t n)
{
    size_t p = 0;
    if (len >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0)
        p = 3;
    p = loc_ws(t, len, p);
    for (size_t s = 0; s < n; s++) {
        if (p >= len || (t[p] != '{' && t[p] != '['))
            return SIZE_MAX;
        bool obj = t[p] == '{';
        p = loc_ws(t, len, p + 1);
        for (int i = 0;; i++) {
            if (p >= len || t[p] == '}' || t[p] == ']')
                return SIZE_MAX;
            if (obj) {
                if (i == steps[s].index && steps[s].key)
                    return p;
                p = loc_ws(t, len, loc_string(t, len, p));
                if (p >= len || t[p] != ':')
                    return SIZE_MAX;
                p = loc_ws(t, len, p + 1);
            }
            if (i == steps[s].index)
                break;
            p = loc_ws(t, len, loc_value(t, len, p));
            if (p >= len || t[p] != ',')
                return SIZE_MAX;
            p = loc_ws(t, len, p + 1);
        }
    }
    return p;
}

/* ---- the policy ------------------------------------------------------------------------ */

struct rbac_action {
    char *name;
    unsigned mask;
    int index; /* position in the file, for messages */
};

struct mu_rbac {
    struct rbac_action *actions; /* sorted by name */
    size_t n;
};

struct rbac_src {
    const char *text;
    size_t len;
    const char *origin;
};

/* Fills err with "origin: line L, column C: message" for the node at steps. */
static int rbac_fail(struct mu_err *err, const struct rbac_src *src, const struct loc_step *steps,
                     size_t n, const char *fmt, ...) MU_PRINTF(5, 6);
static int rbac_fail(struct mu_err *err, const struct rbac_src *src, const struct loc_step *steps,
                     size_t n, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t off = loc_find(src->text, src->len, steps, n);
    if (off == SIZE_MAX)
        return mu_err_set(err, MU_EINVAL, "%s: %s", src->origin, msg);
    int line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
        if (src->text[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)src->text[i] & 0xC0) != 0x80) {
            col++; /* columns count characters, not bytes */
        }
    }
    return mu_err_set(err, MU_EINVAL, "%s: line %d, column %d: %s", src->origin, line, col, msg);
}

/* [a-z]+(\.[a-z-]+)+ */
static bool action_name_valid(const char *s)
{
    size_t i = 0;
    while (s[i] >= 'a' && s[i] <= 'z')
        i++;
    if (i == 0 || s[i] != '.')
        return false;
    while (s[i] == '.') {
        size_t start = ++i;
        while ((s[i] >= 'a' && s[i] <= 'z') || s[i] == '-')
            i++;
        if (i == start)
            return false;
    }
    return s[i] == '\0';
}

static int action_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rbac_action *)a)->name, ((const struct rbac_action *)b)->name);
}

static int action_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct rbac_action *)elem)->name);
}

void mu_rbac_free(struct mu_rbac *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->actions[i].name);
    free(r->actions);
    free(r);
}

/* Checks one action's role list; returns its mask through ret_mask. */
static int rbac_parse_roles(const struct rbac_src *src, int ai, const char *action,
                            const cJSON *roles, unsigned *ret_mask, struct mu_err *err)
{
    struct loc_step at[3] = {{1, false}, {ai, false}, {0, false}};
    if (!cJSON_IsArray(roles))
        return rbac_fail(err, src, at, 2,
                         "the roles of \"%s\" must be an array of role names, "
                         "like [\"operator\", \"observer\"]",
                         action);
    unsigned mask = 0;
    int j = 0;
    for (const cJSON *r = roles->child; r; r = r->next, j++) {
        at[2].index = j;
        if (!cJSON_IsString(r))
            return rbac_fail(err, src, at, 3,
                             "the roles of \"%s\" must be strings (role names in quotes)", action);
        unsigned bit = role_bit(r->valuestring);
        if (!bit)
            return rbac_fail(err, src, at, 3,
                             "unknown role \"%.64s\" for \"%s\"; the roles are operator, "
                             "observer, tenant-admin and tenant-reader",
                             r->valuestring, action);
        if (mask & bit)
            return rbac_fail(err, src, at, 3,
                             "role \"%s\" is listed twice for \"%s\"; remove one of them",
                             r->valuestring, action);
        mask |= bit;
    }
    *ret_mask = mask;
    return 0;
}

/* Position of item among obj's members (source order). */
static int member_index(const cJSON *obj, const cJSON *item)
{
    int i = 0;
    for (const cJSON *c = obj->child; c; c = c->next, i++)
        if (c == item)
            return i;
    return -1;
}

struct mu_rbac *mu_rbac_parse(const char *text, size_t len, const char *origin, struct mu_err *err)
{
    static const char *const allowed[] = {"version", "actions", NULL};
    struct rbac_src src = {text, len, origin ? origin : "RBAC policy"};
    struct mu_rbac *r = NULL;
    cJSON *root = mu_json_parse(text, len, src.origin, err);
    if (!root)
        return NULL;
    if (!cJSON_IsObject(root)) {
        rbac_fail(err, &src, NULL, 0,
                  "the policy must be a JSON object: {\"version\": 1, \"actions\": {...}}");
        goto out;
    }
    struct mu_err e = {0};
    if (mu_json_expect_object(root, allowed, "policy", &e) != 0) {
        int i = 0;
        const cJSON *c = root->child;
        for (; c; c = c->next, i++)
            if (strcmp(c->string, "version") != 0 && strcmp(c->string, "actions") != 0)
                break;
        struct loc_step at = {i, true};
        if (c)
            rbac_fail(err, &src, &at, 1,
                      "unknown key \"%.64s\": a policy has only \"version\" and \"actions\"",
                      c->string);
        else
            rbac_fail(err, &src, NULL, 0, "%s", e.detail);
        goto out;
    }

    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    int64_t v = 0;
    if (!version) {
        rbac_fail(err, &src, NULL, 0,
                  "\"version\" is missing; add \"version\": %d as the first key", RBAC_VERSION);
        goto out;
    }
    if (mu_json_int_value(version, RBAC_VERSION, RBAC_VERSION, &v) != 0) {
        struct loc_step at = {member_index(root, version), false};
        if (cJSON_IsNumber(version))
            rbac_fail(err, &src, &at, 1,
                      "unsupported policy version %g: this version of Mutualis reads version %d",
                      version->valuedouble, RBAC_VERSION);
        else
            rbac_fail(err, &src, &at, 1, "\"version\" must be the number %d", RBAC_VERSION);
        goto out;
    }

    const cJSON *actions = cJSON_GetObjectItemCaseSensitive(root, "actions");
    int actions_at = actions ? member_index(root, actions) : -1;
    if (!actions) {
        rbac_fail(err, &src, NULL, 0,
                  "\"actions\" is missing: it maps each action to the roles allowed, like "
                  "\"actions\": {\"tenant.read\": [\"operator\"]}");
        goto out;
    }
    struct loc_step at_actions = {actions_at, false};
    if (!cJSON_IsObject(actions)) {
        rbac_fail(err, &src, &at_actions, 1,
                  "\"actions\" must be an object mapping each action to its roles, like "
                  "{\"tenant.read\": [\"operator\"]}");
        goto out;
    }
    size_t n = (size_t)cJSON_GetArraySize(actions);
    if (n == 0) {
        rbac_fail(err, &src, &at_actions, 1,
                  "\"actions\" is empty: this policy would deny every request");
        goto out;
    }

    r = mu_xcalloc(1, sizeof *r);
    r->actions = mu_xcalloc(n, sizeof *r->actions);
    int ai = 0;
    for (const cJSON *a = actions->child; a; a = a->next, ai++) {
        struct loc_step at[2] = {{actions_at, false}, {ai, true}};
        const char *name = a->string;
        if (!name || !*name) {
            rbac_fail(err, &src, at, 2, "empty action name; names look like \"tenant.read\"");
            goto fail;
        }
        if (strlen(name) > RBAC_ACTION_MAX || !action_name_valid(name)) {
            rbac_fail(err, &src, at, 2,
                      "invalid action name \"%.80s\": use lower-case words separated by dots "
                      "(at most %d characters), like \"tenant.read\" or \"vm.start\"",
                      name, RBAC_ACTION_MAX);
            goto fail;
        }
        unsigned mask = 0;
        if (rbac_parse_roles(&src, ai, name, a, &mask, err) != 0)
            goto fail;
        r->actions[r->n].name = mu_xstrdup(name);
        r->actions[r->n].mask = mask;
        r->actions[r->n].index = ai;
        r->n++;
    }
    qsort(r->actions, r->n, sizeof *r->actions, action_cmp);
    for (size_t i = 1; i < r->n; i++) {
        /* mu_json_parse refuses duplicate keys; kept so that lookups stay unambiguous. */
        if (strcmp(r->actions[i - 1].name, r->actions[i].name) == 0) {
            struct loc_step at[2] = {{actions_at, false}, {r->actions[i].index, true}};
            rbac_fail(err, &src, at, 2, "action \"%s\" is listed twice", r->actions[i].name);
            goto fail;
        }
    }
    goto out;
fail:
    mu_rbac_free(r);
    r = NULL;
out:
    cJSON_Delete(root);
    return r;
}

struct mu_rbac *mu_rbac_load(const char *path, struct mu_err *err)
{
    size_t len = 0;
    MU_AUTOFREE char *text = mu_read_file(path, RBAC_FILE_CAP, &len);
    if (!text) {
        if (errno == EFBIG)
            mu_err_set(err, MU_EINVAL, "%s: the policy file is larger than 1 MiB", path);
        else {
            char buf[128];
            mu_err_set(err, MU_EIO, "%s: cannot read the policy file: %s", path,
                       strerror_r(errno, buf, sizeof buf));
        }
        return NULL;
    }
    return mu_rbac_parse(text, len, path, err);
}

bool mu_rbac_names(const struct mu_rbac *r, const char *action)
{
    return r && action && bsearch(action, r->actions, r->n, sizeof *r->actions, action_key_cmp);
}

bool mu_rbac_allows(const struct mu_rbac *r, const char *role, const char *action)
{
    if (!r || !action)
        return false;
    unsigned bit = role_bit(role);
    if (!bit)
        return false;
    const struct rbac_action *a =
        bsearch(action, r->actions, r->n, sizeof *r->actions, action_key_cmp);
    return a && (a->mask & bit);
}
