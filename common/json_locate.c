/* Finding a value again in a JSON text, for error messages that give line and column.
 * cJSON keeps no positions but keeps members and elements in source order: a value is named
 * by its index at each level (member of an object or element of an array) and found again
 * by a small scanner over the text, which mu_json_parse has already validated (so the
 * scanner only has to stay in bounds). Used by the policy parsers (rbac, placement, quotas). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mutualis/json.h"

struct loc {
    const char *text;
    size_t len;
};

static size_t skip_ws(const struct loc *s, size_t p)
{
    while (p < s->len &&
           (s->text[p] == ' ' || s->text[p] == '\t' || s->text[p] == '\r' || s->text[p] == '\n'))
        p++;
    return p;
}

/* p at an opening quote; returns the offset just past the closing one. */
static size_t skip_string(const struct loc *s, size_t p)
{
    for (p++; p < s->len && s->text[p] != '"'; p++)
        if (s->text[p] == '\\')
            p++;
    return p < s->len ? p + 1 : s->len;
}

static size_t skip_value(const struct loc *s, size_t p)
{
    if (p >= s->len)
        return s->len;
    if (s->text[p] == '"')
        return skip_string(s, p);
    if (s->text[p] == '{' || s->text[p] == '[') {
        int depth = 0;
        while (p < s->len) {
            char c = s->text[p];
            if (c == '"') {
                p = skip_string(s, p);
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return s->len;
    }
    while (p < s->len && !strchr(",]} \t\r\n", s->text[p]))
        p++;
    return p;
}

/* Offset of the value at path (indexes of members or elements from the top value), or of
 * the last member's key when !at_value; SIZE_MAX if not found. */
static size_t locate_at(const struct loc *s, const int *path, size_t n, bool at_value)
{
    size_t p = 0;
    if (s->len >= 3 && memcmp(s->text, "\xEF\xBB\xBF", 3) == 0)
        p = 3;
    p = skip_ws(s, p);
    for (size_t level = 0; level < n; level++) {
        if (p >= s->len || (s->text[p] != '{' && s->text[p] != '['))
            return SIZE_MAX;
        bool object = s->text[p] == '{';
        p = skip_ws(s, p + 1);
        for (int i = 0;; i++) {
            if (object) {
                if (p >= s->len || s->text[p] != '"')
                    return SIZE_MAX;
                if (i == path[level] && level + 1 == n && !at_value)
                    return p;
                p = skip_ws(s, skip_string(s, p));
                if (p >= s->len || s->text[p] != ':')
                    return SIZE_MAX;
                p = skip_ws(s, p + 1);
            }
            if (p >= s->len || s->text[p] == ']')
                return SIZE_MAX;
            if (i == path[level])
                break;
            p = skip_ws(s, skip_value(s, p));
            if (p >= s->len || s->text[p] != ',')
                return SIZE_MAX;
            p = skip_ws(s, p + 1);
        }
    }
    return p;
}

size_t mu_json_locate(const char *text, size_t len, const int *path, size_t n, bool at_value)
{
    struct loc s = {text, len};
    return locate_at(&s, path, n, at_value);
}

int mu_json_fail_at(struct mu_err *err, const char *text, size_t len, const char *origin,
                    size_t offset, const char *msg)
{
    if (offset == SIZE_MAX || offset > len)
        return mu_err_set(err, MU_EINVAL, "%s: %s", origin, msg);
    int line = 1, col = 1;
    for (size_t i = 0; i < offset; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            col++; /* columns count characters, not bytes */
        }
    }
    return mu_err_set(err, MU_EINVAL, "%s: line %d, column %d: %s", origin, line, col, msg);
}
