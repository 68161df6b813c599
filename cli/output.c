/* What the user sees on stdout: aligned tables, field lists and pretty JSON. Text from the
 * server is made safe for a terminal (no control or bidi-override characters). */
#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD_CP 0xFFFFFFFFu

/* Decodes one UTF-8 sequence at s (NUL-terminated). Returns the bytes consumed (>= 1 unless
 * at the NUL) and the code point, or BAD_CP for one invalid byte. */
static size_t utf8_next(const unsigned char *s, uint32_t *ret_cp)
{
    uint32_t cp;
    size_t n;
    if (s[0] < 0x80) {
        *ret_cp = s[0];
        return 1;
    } else if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        cp = s[0] & 0x1Fu;
        n = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        cp = s[0] & 0x0Fu;
        n = 3;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        cp = s[0] & 0x07u;
        n = 4;
    } else {
        *ret_cp = BAD_CP;
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *ret_cp = BAD_CP;
            return 1;
        }
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        *ret_cp = BAD_CP;
        return 1;
    }
    *ret_cp = cp;
    return n;
}

static bool in_ranges(uint32_t cp, const uint32_t (*r)[2], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (cp >= r[i][0] && cp <= r[i][1])
            return true;
    }
    return false;
}

static const uint32_t zero_width[][2] = {
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A},
    {0x064B, 0x065F}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x200B, 0x200F},
    {0x20D0, 0x20FF}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0xE0100, 0xE01EF},
};

static const uint32_t wide[][2] = {
    {0x1100, 0x115F},   {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},
    {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},
    {0xFE30, 0xFE4F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x1F300, 0x1F64F},
    {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

/* Characters that must not reach a terminal: C0, DEL, C1, and the bidi controls that
 * can reorder what is displayed. */
static bool unsafe_cp(uint32_t cp)
{
    return cp == BAD_CP || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

static size_t cp_width(uint32_t cp)
{
    if (unsafe_cp(cp))
        return 1; /* shown as '?' */
    if (in_ranges(cp, zero_width, MU_ARRAY_LEN(zero_width)))
        return 0;
    if (in_ranges(cp, wide, MU_ARRAY_LEN(wide)))
        return 2;
    return 1;
}

size_t mu_cli_utf8_width(const char *s)
{
    size_t w = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        p += utf8_next(p, &cp);
        w += cp_width(cp);
    }
    return w;
}

/* Copies s into b with unsafe characters as '?', stopping before the display width would
 * pass maxw (0: no limit); then "…" if something was cut. */
static void append_safe(struct mu_buf *b, const char *s, size_t maxw)
{
    const unsigned char *p = (const unsigned char *)s;
    bool cut = maxw && mu_cli_utf8_width(s) > maxw;
    size_t limit = cut ? maxw - 1 : 0;
    size_t w = 0;
    while (*p) {
        uint32_t cp;
        size_t n = utf8_next(p, &cp);
        size_t cw = cp_width(cp);
        if (cut && w + cw > limit) {
            mu_buf_puts(b, "\xE2\x80\xA6"); /* … */
            return;
        }
        if (unsafe_cp(cp))
            mu_buf_puts(b, "?");
        else
            mu_buf_append(b, p, n);
        w += cw;
        p += n;
    }
}

static void append_number(struct mu_buf *b, double d)
{
    if (!isfinite(d)) {
        mu_buf_puts(b, "null");
    } else if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        mu_buf_printf(b, "%" PRId64, (int64_t)d);
    } else {
        char tmp[32];
        snprintf(tmp, sizeof(tmp), "%.15g", d);
        if (strtod(tmp, NULL) != d)
            snprintf(tmp, sizeof(tmp), "%.17g", d);
        mu_buf_puts(b, tmp);
    }
}

char *mu_cli_cell_text(const cJSON *v)
{
    struct mu_buf b;
    mu_buf_init(&b);
    if (!v || cJSON_IsNull(v) || cJSON_IsInvalid(v)) {
        mu_buf_puts(&b, "-");
    } else if (cJSON_IsBool(v)) {
        mu_buf_puts(&b, cJSON_IsTrue(v) ? "yes" : "no");
    } else if (cJSON_IsNumber(v)) {
        append_number(&b, v->valuedouble);
    } else if (cJSON_IsString(v) && v->valuestring) {
        append_safe(&b, v->valuestring, 0);
    } else {
        char *compact = cJSON_PrintUnformatted(v);
        append_safe(&b, compact ? compact : "?", 0);
        free(compact);
    }
    return mu_buf_steal(&b);
}

char *mu_cli_gib_text(int64_t mib)
{
    if (mib % 1024 == 0)
        return mu_xasprintf("%" PRId64, mib / 1024);
    char tmp[48];
    snprintf(tmp, sizeof(tmp), "%.2f", (double)mib / 1024.0);
    size_t n = strlen(tmp);
    while (n > 0 && tmp[n - 1] == '0')
        tmp[--n] = '\0';
    if (n > 0 && tmp[n - 1] == '.')
        tmp[--n] = '\0';
    return mu_xstrdup(tmp);
}

char *mu_cli_labels_text(const cJSON *labels)
{
    struct mu_buf b;
    const cJSON *it;
    mu_buf_init(&b);
    cJSON_ArrayForEach(it, labels)
    {
        MU_AUTOFREE char *v = mu_cli_cell_text(it);
        if (b.len)
            mu_buf_puts(&b, ", ");
        if (cJSON_IsObject(labels)) {
            append_safe(&b, it->string ? it->string : "", 0);
            mu_buf_puts(&b, "=");
        }
        mu_buf_puts(&b, v);
    }
    if (!b.len)
        mu_buf_puts(&b, "-");
    return mu_buf_steal(&b);
}

/* Member at a dotted path ("contact.email"), or NULL. */
static const cJSON *lookup(const cJSON *obj, const char *path)
{
    char key[64];
    while (obj && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        obj = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
        path += n + (dot ? 1 : 0);
    }
    return obj;
}

/* Cell text cut to the column's maximum width. Caller frees. */
static char *cell(const struct mu_cli_col *c, const cJSON *obj)
{
    MU_AUTOFREE char *full = mu_cli_cell_text(lookup(obj, c->key));
    if (!c->maxw || mu_cli_utf8_width(full) <= c->maxw)
        return MU_STEAL(full);
    struct mu_buf b;
    mu_buf_init(&b);
    append_safe(&b, full, c->maxw);
    return mu_buf_steal(&b);
}

static void pad(struct mu_buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mu_buf_puts(b, " ");
}

void mu_cli_table_render(struct mu_buf *out, const struct mu_cli_col *cols, size_t ncols,
                         const cJSON *items)
{
    size_t nrows = (size_t)cJSON_GetArraySize(items);
    char **cells = mu_xcalloc((nrows + 1) * ncols, sizeof(*cells));
    size_t *widths = mu_xcalloc(ncols, sizeof(*widths));
    size_t r = 0;
    const cJSON *it;

    for (size_t c = 0; c < ncols; c++)
        cells[c] = mu_xstrdup(cols[c].header);
    cJSON_ArrayForEach(it, items)
    {
        r++;
        for (size_t c = 0; c < ncols; c++)
            cells[r * ncols + c] = cell(&cols[c], it);
    }
    for (size_t i = 0; i <= nrows; i++) {
        for (size_t c = 0; c < ncols; c++) {
            size_t w = mu_cli_utf8_width(cells[i * ncols + c]);
            if (w > widths[c])
                widths[c] = w;
        }
    }
    for (size_t i = 0; i <= nrows; i++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *t = cells[i * ncols + c];
            mu_buf_puts(out, t);
            if (c + 1 < ncols)
                pad(out, widths[c] - mu_cli_utf8_width(t) + 2);
        }
        mu_buf_puts(out, "\n");
    }
    for (size_t i = 0; i < (nrows + 1) * ncols; i++)
        free(cells[i]);
    free(cells);
    free(widths);
}

void mu_cli_fields_render(struct mu_buf *out, const struct mu_cli_col *cols, size_t ncols,
                          const cJSON *obj)
{
    size_t labelw = 0;
    for (size_t c = 0; c < ncols; c++) {
        size_t w = mu_cli_utf8_width(cols[c].header);
        if (w > labelw)
            labelw = w;
    }
    for (size_t c = 0; c < ncols; c++) {
        MU_AUTOFREE char *t = cell(&cols[c], obj);
        mu_buf_printf(out, "%s:", cols[c].header);
        pad(out, labelw - mu_cli_utf8_width(cols[c].header) + 2);
        mu_buf_printf(out, "%s\n", t);
    }
}

static void json_string(struct mu_buf *b, const char *s)
{
    mu_buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            mu_buf_puts(b, "\\\"");
            break;
        case '\\':
            mu_buf_puts(b, "\\\\");
            break;
        case '\n':
            mu_buf_puts(b, "\\n");
            break;
        case '\r':
            mu_buf_puts(b, "\\r");
            break;
        case '\t':
            mu_buf_puts(b, "\\t");
            break;
        default:
            if (*p < 0x20 || *p == 0x7F)
                mu_buf_printf(b, "\\u%04x", *p);
            else
                mu_buf_append(b, p, 1);
        }
    }
    mu_buf_puts(b, "\"");
}

static void json_value(struct mu_buf *b, const cJSON *v, int depth)
{
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        bool obj = cJSON_IsObject(v);
        const cJSON *child;
        if (!v->child) {
            mu_buf_puts(b, obj ? "{}" : "[]");
            return;
        }
        mu_buf_puts(b, obj ? "{\n" : "[\n");
        cJSON_ArrayForEach(child, v)
        {
            pad(b, (size_t)(depth + 1) * 2);
            if (obj) {
                json_string(b, child->string ? child->string : "");
                mu_buf_puts(b, ": ");
            }
            json_value(b, child, depth + 1);
            mu_buf_puts(b, child->next ? ",\n" : "\n");
        }
        pad(b, (size_t)depth * 2);
        mu_buf_puts(b, obj ? "}" : "]");
    } else if (cJSON_IsString(v)) {
        json_string(b, v->valuestring ? v->valuestring : "");
    } else if (cJSON_IsNumber(v)) {
        append_number(b, v->valuedouble);
    } else if (cJSON_IsBool(v)) {
        mu_buf_puts(b, cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsRaw(v) && v->valuestring) {
        mu_buf_puts(b, v->valuestring);
    } else {
        mu_buf_puts(b, "null");
    }
}

void mu_cli_json_render(struct mu_buf *out, const cJSON *node)
{
    json_value(out, node, 0);
    mu_buf_puts(out, "\n");
}

static void emit(struct mu_buf *b)
{
    if (b->len)
        fwrite(b->data, 1, b->len, stdout);
    mu_buf_free(b);
}

void mu_cli_print_table(const struct mu_cli_col *cols, size_t ncols, const cJSON *items)
{
    struct mu_buf b;
    mu_buf_init(&b);
    mu_cli_table_render(&b, cols, ncols, items);
    emit(&b);
}

void mu_cli_print_fields(const struct mu_cli_col *cols, size_t ncols, const cJSON *obj)
{
    struct mu_buf b;
    mu_buf_init(&b);
    mu_cli_fields_render(&b, cols, ncols, obj);
    emit(&b);
}

void mu_cli_print_json(const cJSON *node)
{
    struct mu_buf b;
    mu_buf_init(&b);
    mu_cli_json_render(&b, node);
    emit(&b);
}
