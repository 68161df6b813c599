/* The one strict layer over cJSON. Everything that reads JSON from outside (HTTP bodies,
 * agent reports, policy files, import files) goes through mu_json_parse, which refuses
 * what cJSON would let through: invalid UTF-8, "\u0000" in strings, lone surrogates,
 * duplicate keys, inf/NaN and numbers out of double range, trailing garbage, nesting
 * deeper than MU_JSON_MAX_DEPTH. Syntax errors give line and column.
 * The getters then check types and ranges, and name the field in err. */
#ifndef MU_JSON_H
#define MU_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"

#define MU_JSON_MAX_DEPTH 64

/* Parses len bytes (need not be NUL-terminated). origin names the input in messages
 * ("request body", "policies/rbac.json"). Returns a tree the caller frees with
 * cJSON_Delete, or NULL with err set (MU_EINVAL; detail like
 * "policies/rbac.json: line 3, column 7: duplicate key \"actions\""). */
cJSON *mu_json_parse(const char *buf, size_t len, const char *origin, struct mu_err *err);

/* Field getters. obj must be an object. `required`: absent is an error, otherwise absent
 * leaves *ret unchanged and returns 1. JSON null counts as absent for optional fields.
 * Returns 0 when found and valid, 1 when absent (optional), or MU_EINVAL with err naming
 * the field ("population must be an integer between 0 and 100000000"). */
int mu_json_get_str(const cJSON *obj, const char *key, bool required, size_t maxlen,
                    const char **ret, struct mu_err *err);
int mu_json_get_i64(const cJSON *obj, const char *key, bool required, int64_t min, int64_t max,
                    int64_t *ret, struct mu_err *err);
int mu_json_get_bool(const cJSON *obj, const char *key, bool required, bool *ret,
                     struct mu_err *err);
/* An array field (NULL-safe output); no element check. */
int mu_json_get_array(const cJSON *obj, const char *key, bool required, const cJSON **ret,
                      struct mu_err *err);
int mu_json_get_object(const cJSON *obj, const char *key, bool required, const cJSON **ret,
                       struct mu_err *err);

/* Checks that obj is an object and has no key outside the NULL-terminated allowed list:
 * unknown fields are refused so that a typo never silently does nothing. */
int mu_json_expect_object(const cJSON *obj, const char *const *allowed, const char *what,
                          struct mu_err *err);

/* Integer value of a number node if it is integral and within [min, max]. 0 or MU_EINVAL. */
int mu_json_int_value(const cJSON *node, int64_t min, int64_t max, int64_t *ret);

/* Offset in text (a document mu_json_parse accepted) of the value at path: indexes of
 * members or elements from the top value; of the last member's key instead when !at_value.
 * SIZE_MAX if there is no such value. For messages that point at line and column. */
size_t mu_json_locate(const char *text, size_t len, const int *path, size_t n, bool at_value);
/* Fills err (MU_EINVAL) with "origin: line L, column C: msg" for the character at offset,
 * or "origin: msg" when offset is SIZE_MAX. Returns MU_EINVAL. */
int mu_json_fail_at(struct mu_err *err, const char *text, size_t len, const char *origin,
                    size_t offset, const char *msg);

/* Builders that abort on allocation failure (cJSON's own return NULL). */
cJSON *mu_json_obj(void);
cJSON *mu_json_arr(void);
void mu_json_add_str(cJSON *obj, const char *key, const char *val); /* NULL val -> null */
void mu_json_add_i64(cJSON *obj, const char *key, int64_t val);
/* val when > 0, else null: optional ids, times and segments where 0 means "none". */
void mu_json_add_i64_pos(cJSON *obj, const char *key, int64_t val);
void mu_json_add_bool(cJSON *obj, const char *key, bool val);
void mu_json_add_null(cJSON *obj, const char *key);
void mu_json_add_time(cJSON *obj, const char *key, int64_t ms); /* RFC 3339, 0 -> null */
/* Unformatted text; caller frees with free(). */
char *mu_json_print(const cJSON *node);

#endif
