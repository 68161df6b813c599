/* The strict layer over cJSON. cJSON does the parsing; this file refuses what cJSON lets
 * through and turns its bare error offset into "line L, column C: what went wrong".
 *
 * mu_json_parse makes three linear passes at most: cJSON's parse, one scan of the raw
 * bytes (UTF-8, control characters, escapes, number syntax, depth) and one walk of the
 * tree (duplicate keys, non-finite numbers). Error paths may rescan the input. */
#include "mutualis/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"

/* Integers are exact in a double up to 2^53; beyond, two texts read as one value. */
#define MU_JSON_SAFE_INT 9007199254740991LL

/* Objects with more keys than this are checked for duplicates by sorting. */
#define DUP_LINEAR_MAX 16

/* The largest magnitude accepted: a little under DBL_MAX, because cJSON prints numbers
 * with 15 significant digits when that is close enough, and DBL_MAX printed that way
 * (1.79769313486232e+308) no longer fits in a double: printed trees must parse again. */
#define NUMBER_MAX_ABS 1.79769313486231e308

/* cJSON copies at most this many characters of a number before calling strtod. */
#define NUMBER_MAX_CHARS 63

static _Noreturn void json_oom(const char *what)
{
    fprintf(stderr, "fatal: out of memory in %s\n", what);
    abort();
}

/* ---- error reporting ---- */

/* Cuts s (NUL-terminated, at most cap-1 bytes kept) so that it does not end inside a
 * UTF-8 sequence: details and field names reach JSON output and must stay valid UTF-8. */
static void utf8_trim_tail(char *s)
{
    size_t n = strlen(s);
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (i - 1) < want)
        s[i - 1] = '\0';
}

static int json_fail(struct mu_err *err, const char *field, const char *fmt, ...) MU_PRINTF(3, 4);

static int json_fail(struct mu_err *err, const char *field, const char *fmt, ...)
{
    char detail[sizeof err->detail];
    char fld[sizeof err->field];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    utf8_trim_tail(detail);
    snprintf(fld, sizeof fld, "%s", field ? field : "");
    utf8_trim_tail(fld);
    return mu_err_setf(err, MU_EINVAL, fld, "%s", detail);
}

/* 1-based line and column (in characters, not bytes) of byte offset off. */
static void line_col(const unsigned char *p, size_t len, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    if (off > len)
        off = len;
    for (size_t i = 0; i < off; i++) {
        if (p[i] == '\n') {
            l++;
            c = 1;
        } else if ((p[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int fail_at(struct mu_err *err, const char *origin, const unsigned char *p, size_t len,
                   size_t off, const char *what)
{
    size_t line, col;
    line_col(p, len, off, &line, &col);
    return json_fail(err, NULL, "%s: line %zu, column %zu: %s", origin, line, col, what);
}

static size_t utf8_seq(const unsigned char *p, size_t n);

/* Quotes s (n bytes) for a message: escapes quotes, backslashes, controls and stray bytes,
 * keeps about max bytes of it without cutting a UTF-8 sequence, and marks a cut "...". */
static void quote_text(const char *s, size_t n, char *out, size_t outlen, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    if (outlen < 12) {
        if (outlen > 0)
            out[0] = '\0';
        return;
    }
    out[o++] = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t k = c < 0x80 ? 1 : utf8_seq(p + i, n - i);
        /* Room for this piece (at most 6 bytes), then "...", the quote and the NUL. */
        if (i >= max || o + 6 + 5 > outlen) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7F || k == 0) {
            o += (size_t)snprintf(out + o, outlen - o, k == 0 ? "\\x%02X" : "\\u%04X", c);
            k = 1;
        } else if (k > 1) {
            memcpy(out + o, p + i, k);
            o += k;
        } else {
            out[o++] = (char)c;
        }
        i += k;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* ---- the raw-byte scan ---- */

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Value of 4 hex digits at p[i..i+3], or -1. */
static long hex4(const unsigned char *p, size_t len, size_t i)
{
    if (i + 4 > len)
        return -1;
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hex_val(p[i + k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the well-formed UTF-8 sequence at p (1..4), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
            return 0; /* overlong, or a UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
            return 0; /* overlong, or beyond U+10FFFF */
        return 4;
    }
    return 0;
}

/* Bytes that need no attention inside a string: printable ASCII but '"' and '\\'. */
static bool plain_in_string(unsigned char c)
{
    return (unsigned char)(c - 0x20) < 0x60 && c != '"' && c != '\\';
}

/* Whether 8 bytes are all plain_in_string (the bit tricks of "Bit Twiddling Hacks":
 * any byte >= 0x80, < 0x20, equal to '"' or to '\\'). */
static bool plain_word(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t quote = w ^ (ones * '"'), bslash = w ^ (ones * '\\');
    uint64_t special =
        w | ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash);
    return (special & highs) == 0;
}

static size_t bom_len(const unsigned char *p, size_t len)
{
    return len >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF ? 3 : 0;
}

struct scan {
    size_t off;    /* where the problem is */
    char msg[256]; /* what it is */
    /* The state where the scan stopped, for describing syntax errors. */
    bool in_string;
    size_t str_start; /* opening quote of the string being scanned */
    int depth;
    uint64_t objects;   /* bit d-1 set: the container at depth d is an object */
    unsigned char prev; /* last significant byte outside strings ('"' for a string) */
};

static int scan_error(struct scan *s, size_t off, const char *fmt, ...) MU_PRINTF(3, 4);

static int scan_error(struct scan *s, size_t off, const char *fmt, ...)
{
    va_list ap;
    s->off = off;
    va_start(ap, fmt);
    vsnprintf(s->msg, sizeof s->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int number_error(struct scan *s, const unsigned char *p, size_t i, size_t end,
                        const char *before, const char *after)
{
    char shown[64];
    quote_text((const char *)p + i, end - i, shown, sizeof shown, 24);
    return scan_error(s, i, "%s %s%s", before, shown, after);
}

/* Checks the number starting at p[i] against JSON's grammar and double range; writes the
 * length of the run of number characters to *ret_n. */
static int scan_number(const unsigned char *p, size_t len, size_t i, size_t *ret_n, struct scan *s)
{
    size_t end = i;
    while (end < len && (is_digit(p[end]) || p[end] == '-' || p[end] == '+' || p[end] == '.' ||
                         p[end] == 'e' || p[end] == 'E'))
        end++;
    *ret_n = end - i;
    if (end - i > NUMBER_MAX_CHARS)
        return number_error(s, p, i, end, "number", " is too long (at most 63 characters)");

    size_t j = i;
    bool has_exp = false;
    if (p[j] == '-')
        j++;
    if (j < end && p[j] == '0') {
        j++;
        if (j < end && is_digit(p[j]))
            return number_error(s, p, i, end, "invalid number", ": leading zeros are not allowed");
    } else if (j < end && is_digit(p[j])) {
        while (j < end && is_digit(p[j]))
            j++;
    } else {
        return number_error(s, p, i, end, "invalid number", ": '-' must be followed by a digit");
    }
    if (j < end && p[j] == '.') {
        j++;
        if (j >= end || !is_digit(p[j]))
            return number_error(s, p, i, end, "invalid number", ": a digit must follow the '.'");
        while (j < end && is_digit(p[j]))
            j++;
    }
    if (j < end && (p[j] == 'e' || p[j] == 'E')) {
        has_exp = true;
        j++;
        if (j < end && (p[j] == '+' || p[j] == '-'))
            j++;
        if (j >= end || !is_digit(p[j]))
            return number_error(s, p, i, end, "invalid number", ": the exponent needs digits");
        while (j < end && is_digit(p[j]))
            j++;
    }
    if (j != end)
        return number_error(s, p, i, end, "invalid number", "");
    /* Without an exponent, 63 characters cannot exceed the double range. */
    if (has_exp) {
        char tmp[NUMBER_MAX_CHARS + 1];
        memcpy(tmp, p + i, end - i);
        tmp[end - i] = '\0';
        if (fabs(strtod(tmp, NULL)) > NUMBER_MAX_ABS)
            return number_error(s, p, i, end, "number",
                                " is out of range (beyond +/-1.79769313486231e308)");
    }
    return 0;
}

/* Checks the escape sequence at p[i] ('\\'); writes its length to *ret_n. */
static int scan_escape(const unsigned char *p, size_t len, size_t i, size_t *ret_n, struct scan *s)
{
    if (i + 1 >= len)
        return scan_error(s, i, "unterminated string (the input ends after a backslash)");
    unsigned char e = p[i + 1];
    switch (e) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        *ret_n = 2;
        return 0;
    case 'u':
        break;
    default:
        if (e > 0x20 && e < 0x7F)
            return scan_error(s, i,
                              "invalid escape \"\\%c\" in a string (valid escapes: \\\" \\\\ \\/ "
                              "\\b \\f \\n \\r \\t \\uXXXX; write a backslash as \\\\)",
                              e);
        return scan_error(s, i, "invalid escape in a string (write a backslash as \\\\)");
    }
    long cp = hex4(p, len, i + 2);
    if (cp < 0)
        return scan_error(s, i,
                          "invalid \\u escape in a string: \\u must be followed by 4 "
                          "hexadecimal digits");
    if (cp == 0)
        return scan_error(s, i, "\\u0000 (the NUL character) is not allowed in strings");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return scan_error(s, i,
                          "invalid \\u%04lX escape: a low surrogate must follow a high "
                          "surrogate (\\uD800-\\uDBFF)",
                          cp);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo = -1;
        if (i + 7 < len && p[i + 6] == '\\' && p[i + 7] == 'u')
            lo = hex4(p, len, i + 8);
        if (lo < 0xDC00 || lo > 0xDFFF)
            return scan_error(s, i,
                              "invalid \\u%04lX escape: a high surrogate must be followed by "
                              "a low surrogate escape (\\uDC00-\\uDFFF)",
                              cp);
        *ret_n = 12;
        return 0;
    }
    *ret_n = 6;
    return 0;
}

static int scan_bad_utf8(struct scan *s, size_t i, unsigned char c)
{
    return scan_error(s, i,
                      "invalid UTF-8 (byte 0x%02X); the input must be encoded in UTF-8 (a "
                      "file saved as Latin-1 or Windows-1252 must be converted)",
                      c);
}

/* One pass over p[0..limit): UTF-8, control characters, escapes, numbers and depth. With
 * finish, a string open at limit is scanned to its end. Reads may look past limit (up to
 * len) to finish a token. 0, or -1 with s->off and s->msg set; s holds the end state. */
static int scan_bytes(const unsigned char *p, size_t len, size_t limit, bool finish, struct scan *s)
{
    size_t i = bom_len(p, len);
    int rc = 0;
    s->in_string = false;
    s->str_start = 0;
    s->depth = 0;
    s->objects = 0;
    s->prev = 0;
    if (limit > len)
        limit = len;
    while (i < limit || (finish && s->in_string && i < len)) {
        unsigned char c = p[i];
        if (s->in_string) {
            /* Fast path for the bulk of a string: eight plain bytes at a time, then one. */
            size_t bound = finish ? len : limit;
            while (i + 8 <= bound && plain_word(p + i))
                i += 8;
            if (i >= bound)
                goto out;
            c = p[i];
            while (plain_in_string(c)) {
                if (++i >= bound)
                    goto out;
                c = p[i];
            }
            if (c == '"') {
                s->in_string = false;
                i++;
            } else if (c == '\\') {
                size_t n = 0;
                if ((rc = scan_escape(p, len, i, &n, s)) < 0)
                    goto out;
                i += n;
            } else if (c == '\n' || c == '\r') {
                rc = scan_error(s, i,
                                "line break inside a string (a string is not closed, or "
                                "a line break must be written \\n)");
                goto out;
            } else if (c < 0x20) {
                rc = scan_error(s, i,
                                "control character U+%04X inside a string (write it as an "
                                "escape such as \\t or \\u%04X)",
                                c, c);
                goto out;
            } else {
                size_t n = utf8_seq(p + i, len - i);
                if (n == 0) {
                    rc = scan_bad_utf8(s, i, c);
                    goto out;
                }
                i += n;
            }
            continue;
        }
        if (!is_ws(c))
            s->prev = c;
        if (c == '"') {
            s->in_string = true;
            s->str_start = i;
            i++;
        } else if (c == '{' || c == '[') {
            if (++s->depth > MU_JSON_MAX_DEPTH) {
                rc = scan_error(s, i, "nesting deeper than %d levels", MU_JSON_MAX_DEPTH);
                goto out;
            }
            uint64_t bit = (uint64_t)1 << (s->depth - 1);
            s->objects = c == '{' ? s->objects | bit : s->objects & ~bit;
            i++;
        } else if (c == '}' || c == ']') {
            if (s->depth > 0)
                s->depth--;
            i++;
        } else if (c == '-' || is_digit(c)) {
            size_t n;
            if ((rc = scan_number(p, len, i, &n, s)) < 0)
                goto out;
            i += n;
            s->prev = '0';
        } else if (c < 0x20 && !is_ws(c)) {
            rc = scan_error(s, i, "unexpected control character U+%04X", c);
            goto out;
        } else if (c >= 0x80) {
            size_t n = utf8_seq(p + i, len - i);
            if (n == 0) {
                rc = scan_bad_utf8(s, i, c);
                goto out;
            }
            i += n; /* not valid JSON here either: cJSON reports it */
        } else {
            i++;
        }
    }
out:
    return rc;
}

static bool scan_in_object(const struct scan *s)
{
    return s->depth > 0 && (s->objects >> (s->depth - 1) & 1);
}

/* ---- syntax errors reported by cJSON ---- */

/* Offset just past the string that opens at p[i] ('"'), or len if it is not closed. */
static size_t string_end(const unsigned char *p, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return len;
}

/* Where cJSON gave up, unclamped: cJSON reports len-1 both for an error on the last byte
 * and for running out of input, so this parses a copy ending with a byte that is never
 * valid there. The result may exceed len by one (a key expected at the end). */
static size_t cjson_error_offset(const char *buf, size_t len)
{
    char *copy = mu_xmalloc(len + 1);
    memcpy(copy, buf, len);
    copy[len] = '#';
    const char *end = NULL;
    cJSON *again = cJSON_ParseWithLengthOpts(copy, len + 1, &end, false);
    size_t off = again || !end ? 0 : (size_t)(end - copy);
    cJSON_Delete(again);
    free(copy);
    return off;
}

static void describe_char(const unsigned char *p, size_t len, size_t i, char *out, size_t n)
{
    unsigned char c = p[i];
    size_t k;
    if (c > 0x20 && c < 0x7F)
        snprintf(out, n, "'%c'", c);
    else if (c >= 0x80 && (k = utf8_seq(p + i, len - i)) > 0)
        snprintf(out, n, "'%.*s'", (int)k, (const char *)p + i);
    else
        snprintf(out, n, "byte 0x%02X", c);
}

static bool is_word_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_word_char(unsigned char c)
{
    return is_word_start(c) || is_digit(c);
}

/* Reports the syntax error cJSON found, pointing at the offending character and saying
 * what was expected there when the context tells. */
static int syntax_error(struct mu_err *err, const char *origin, const unsigned char *p, size_t len)
{
    char what[256];
    size_t first = bom_len(p, len);
    while (first < len && is_ws(p[first]))
        first++;
    if (first >= len)
        return fail_at(err, origin, p, len, first, "no JSON value (the input is empty)");

    size_t off = cjson_error_offset((const char *)p, len);
    struct scan s;
    /* cJSON reports a failed string one byte past its opening quote: an unterminated
     * string, or a key that does not start with a quote. */
    if (off > 0) {
        scan_bytes(p, len, off - 1, false, &s);
        if (!s.in_string && scan_in_object(&s) && (s.prev == '{' || s.prev == ',') &&
            off - 1 < len && p[off - 1] != '"')
            off--;
    }
    if (off >= len) {
        scan_bytes(p, len, len, false, &s);
        return fail_at(err, origin, p, len, len,
                       s.in_string   ? "unexpected end of input inside a string (missing '\"')"
                       : s.depth > 0 ? "unexpected end of input (missing '}' or ']')"
                                     : "unexpected end of input");
    }
    scan_bytes(p, len, off, false, &s);
    if (s.in_string)
        return fail_at(err, origin, p, len, s.str_start,
                       "unterminated string (missing closing '\"')");

    unsigned char c = p[off];
    char ch[16];
    describe_char(p, len, off, ch, sizeof ch);
    bool key_expected = scan_in_object(&s) && (s.prev == '{' || s.prev == ',');
    if (c == '\'') {
        snprintf(what, sizeof what, "single quotes are not valid JSON: use double quotes");
    } else if ((c == '}' || c == ']') && s.prev == ',') {
        snprintf(what, sizeof what, "trailing comma before '%c' is not allowed", c);
    } else if (c == '}' && s.depth > 0 && !scan_in_object(&s)) {
        snprintf(what, sizeof what, "unexpected '}': an array is still open (missing ']'?)");
    } else if (c == ']' && scan_in_object(&s)) {
        snprintf(what, sizeof what, "unexpected ']': an object is still open (missing '}'?)");
    } else if (key_expected && is_word_start(c)) {
        size_t e = off;
        while (e < len && e - off < 32 && is_word_char(p[e]))
            e++;
        snprintf(what, sizeof what, "field name %.*s must be in double quotes", (int)(e - off),
                 (const char *)p + off);
    } else if (key_expected) {
        snprintf(what, sizeof what, "unexpected %s: expected a field name in double quotes", ch);
    } else if (is_word_start(c)) {
        size_t e = off;
        while (e < len && e - off < 32 && is_word_char(p[e]))
            e++;
        snprintf(what, sizeof what,
                 "unexpected word \"%.*s\" (text must be in double quotes; the only bare words "
                 "are true, false and null)",
                 (int)(e - off), (const char *)p + off);
    } else if (s.prev == ':' || s.prev == ',' || s.prev == '[' || s.prev == 0) {
        snprintf(what, sizeof what, "unexpected %s where a value was expected", ch);
    } else if (scan_in_object(&s)) {
        snprintf(what, sizeof what, "unexpected %s (missing ',' or ':' before it?)", ch);
    } else {
        snprintf(what, sizeof what, "unexpected %s (missing ',' before it?)", ch);
    }
    return fail_at(err, origin, p, len, off, what);
}

/* ---- the tree walk ---- */

struct walk {
    size_t objects;   /* objects seen so far, in document order */
    size_t bad_obj;   /* index of the object with a duplicate key */
    size_t bad_child; /* index of the second occurrence within it */
    const char *bad_key;
    bool nonfinite;
};

struct key_ref {
    const char *key;
    size_t idx;
};

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Index of the first child whose key repeats an earlier one, or n if none. */
static size_t find_duplicate(const cJSON *obj, size_t n)
{
    if (n <= DUP_LINEAR_MAX) {
        /* A 256-bit filter on the first two bytes: most keys need no comparison at all. */
        const cJSON *seen[DUP_LINEAR_MAX];
        uint64_t filter[4] = {0};
        size_t j = 0;
        for (const cJSON *b = obj->child; b; b = b->next, j++) {
            const unsigned char *k = (const unsigned char *)b->string;
            unsigned h = (k[0] * 31u + (k[0] ? k[1] : 0)) & 255u;
            if (filter[h >> 6] & (uint64_t)1 << (h & 63)) {
                for (size_t i = 0; i < j; i++)
                    if (strcmp(seen[i]->string, b->string) == 0)
                        return j;
            }
            filter[h >> 6] |= (uint64_t)1 << (h & 63);
            seen[j] = b;
        }
        return n;
    }
    struct key_ref *refs = mu_xmalloc(n * sizeof *refs);
    size_t k = 0;
    for (const cJSON *c = obj->child; c; c = c->next, k++)
        refs[k] = (struct key_ref){c->string, k};
    qsort(refs, n, sizeof *refs, key_ref_cmp);
    size_t best = n;
    for (k = 1; k < n; k++)
        if (strcmp(refs[k - 1].key, refs[k].key) == 0 && refs[k].idx < best &&
            (k < 2 || strcmp(refs[k - 2].key, refs[k].key) != 0))
            best = refs[k].idx; /* the second element of a run of equal keys */
    free(refs);
    return best;
}

static bool walk_tree(const cJSON *node, struct walk *w)
{
    int type = node->type & 0xFF;
    if (type == cJSON_Number && !isfinite(node->valuedouble)) {
        w->nonfinite = true;
        return false;
    }
    if (type == cJSON_Object) {
        size_t idx = w->objects++;
        size_t n = 0;
        for (const cJSON *c = node->child; c; c = c->next)
            n++;
        size_t dup = find_duplicate(node, n);
        if (dup < n) {
            const cJSON *c = node->child;
            for (size_t k = 0; k < dup; k++)
                c = c->next;
            w->bad_obj = idx;
            w->bad_child = dup;
            w->bad_key = c->string;
            return false;
        }
    }
    if (type == cJSON_Object || type == cJSON_Array)
        for (const cJSON *c = node->child; c; c = c->next)
            if (!walk_tree(c, w))
                return false;
    return true;
}

/* Offset of the opening quote of key number key_idx of object number obj_idx (document
 * order) in a text that parsed. Error path only. */
static size_t locate_key(const unsigned char *p, size_t len, size_t obj_idx, size_t key_idx)
{
    size_t objects = 0, keys = 0;
    int depth = 0, target = -1;
    unsigned char prev = 0;
    for (size_t i = bom_len(p, len); i < len; i++) {
        unsigned char c = p[i];
        if (c == '"') {
            if (depth == target && (prev == '{' || prev == ',') && keys++ == key_idx)
                return i;
            i = string_end(p, len, i) - 1;
            prev = '"';
            continue;
        }
        if (is_ws(c))
            continue;
        if (c == '{' || c == '[') {
            depth++;
            if (c == '{' && objects++ == obj_idx)
                target = depth;
        } else if (c == '}' || c == ']') {
            depth--;
        }
        prev = c;
    }
    return 0;
}

cJSON *mu_json_parse(const char *buf, size_t len, const char *origin, struct mu_err *err)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (!origin)
        origin = "input";
    if (!buf)
        len = 0;

    const char *end = NULL;
    cJSON *root = len > 0 ? cJSON_ParseWithLengthOpts(buf, len, &end, false) : NULL;
    size_t stop = end ? (size_t)(end - buf) : 0;

    /* Scan what cJSON accepted and the token it choked on: up to there the scan's idea of
     * where strings start and end is right, so its findings are real and more precise. */
    struct scan s;
    if (scan_bytes(p, len, root ? stop : stop + 1, !root, &s) < 0) {
        cJSON_Delete(root);
        fail_at(err, origin, p, len, s.off, s.msg);
        return NULL;
    }
    if (!root) {
        syntax_error(err, origin, p, len);
        return NULL;
    }

    size_t rest = stop;
    while (rest < len && is_ws(p[rest]))
        rest++;
    if (rest < len) {
        char ch[16], what[128];
        describe_char(p, len, rest, ch, sizeof ch);
        snprintf(what, sizeof what,
                 "unexpected %s after the end of the JSON value (only one value is allowed)", ch);
        cJSON_Delete(root);
        fail_at(err, origin, p, len, rest, what);
        return NULL;
    }

    struct walk w = {0};
    if (!walk_tree(root, &w)) {
        if (w.nonfinite) {
            json_fail(err, NULL, "%s: a number is out of range", origin);
        } else {
            char key[128], what[192];
            quote_text(w.bad_key, strlen(w.bad_key), key, sizeof key, 64);
            snprintf(what, sizeof what, "duplicate key %s", key);
            fail_at(err, origin, p, len, locate_key(p, len, w.bad_obj, w.bad_child), what);
        }
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* ---- getters ---- */

/* Looks key up in obj; NULL for absent or null. Fails if obj is not an object. */
static int lookup(const cJSON *obj, const char *key, bool required, const char *expect,
                  const cJSON **ret, struct mu_err *err)
{
    if (!cJSON_IsObject(obj))
        return json_fail(err, key, "expected a JSON object holding %s", key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return json_fail(err, key, "%s is required (%s)", key, expect);
        return 1;
    }
    *ret = v;
    return 0;
}

int mu_json_get_str(const cJSON *obj, const char *key, bool required, size_t maxlen,
                    const char **ret, struct mu_err *err)
{
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, "a string", &v, err);
    if (rc != 0)
        return rc;
    if (!cJSON_IsString(v) || !v->valuestring)
        return json_fail(err, key, "%s must be a string", key);
    if (strlen(v->valuestring) > maxlen)
        return json_fail(err, key,
                         "%s is too long (at most %zu bytes; an accented letter counts as 2)", key,
                         maxlen);
    if (ret)
        *ret = v->valuestring;
    return 0;
}

int mu_json_int_value(const cJSON *node, int64_t min, int64_t max, int64_t *ret)
{
    if (!cJSON_IsNumber(node))
        return MU_EINVAL;
    double d = node->valuedouble;
    if (!isfinite(d) || d != floor(d) || d > (double)MU_JSON_SAFE_INT ||
        d < -(double)MU_JSON_SAFE_INT)
        return MU_EINVAL;
    int64_t v = (int64_t)d;
    if (v < min || v > max)
        return MU_EINVAL;
    if (ret)
        *ret = v;
    return 0;
}

int mu_json_get_i64(const cJSON *obj, const char *key, bool required, int64_t min, int64_t max,
                    int64_t *ret, struct mu_err *err)
{
    /* The range as a person reads it: what JSON numbers can carry exactly. */
    int64_t lo = min < -MU_JSON_SAFE_INT ? -MU_JSON_SAFE_INT : min;
    int64_t hi = max > MU_JSON_SAFE_INT ? MU_JSON_SAFE_INT : max;
    char expect[96];
    snprintf(expect, sizeof expect, "an integer between %lld and %lld", (long long)lo,
             (long long)hi);
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, expect, &v, err);
    if (rc != 0)
        return rc;
    int64_t val;
    if (mu_json_int_value(v, min, max, &val) != 0)
        return json_fail(err, key, "%s must be %s", key, expect);
    if (ret)
        *ret = val;
    return 0;
}

int mu_json_get_bool(const cJSON *obj, const char *key, bool required, bool *ret,
                     struct mu_err *err)
{
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, "true or false", &v, err);
    if (rc != 0)
        return rc;
    if (!cJSON_IsBool(v))
        return json_fail(err, key, "%s must be true or false", key);
    if (ret)
        *ret = cJSON_IsTrue(v);
    return 0;
}

int mu_json_get_array(const cJSON *obj, const char *key, bool required, const cJSON **ret,
                      struct mu_err *err)
{
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, "an array", &v, err);
    if (rc != 0)
        return rc;
    if (!cJSON_IsArray(v))
        return json_fail(err, key, "%s must be an array", key);
    if (ret)
        *ret = v;
    return 0;
}

int mu_json_get_object(const cJSON *obj, const char *key, bool required, const cJSON **ret,
                       struct mu_err *err)
{
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, "an object", &v, err);
    if (rc != 0)
        return rc;
    if (!cJSON_IsObject(v))
        return json_fail(err, key, "%s must be an object", key);
    if (ret)
        *ret = v;
    return 0;
}

/* Optimal string alignment distance, capped: enough to suggest a field for a typo. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 40 || m > 40)
        return 99;
    size_t d[41][41];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[n][m];
}

int mu_json_expect_object(const cJSON *obj, const char *const *allowed, const char *what,
                          struct mu_err *err)
{
    if (!what)
        what = "the request";
    if (!cJSON_IsObject(obj))
        return json_fail(err, NULL, "%s must be a JSON object", what);
    for (const cJSON *c = obj->child; c; c = c->next) {
        const char *best = NULL;
        size_t best_d = 3; /* suggest only close matches */
        bool known = false;
        for (size_t i = 0; allowed && allowed[i] && !known; i++)
            known = strcmp(c->string, allowed[i]) == 0;
        /* Distances only for an unknown key: this runs for every object of every report. */
        for (size_t i = 0; allowed && allowed[i] && !known; i++) {
            size_t d = edit_distance(c->string, allowed[i]);
            if (d < best_d) {
                best_d = d;
                best = allowed[i];
            }
        }
        if (known)
            continue;
        char key[96];
        quote_text(c->string, strlen(c->string), key, sizeof key, 64);
        if (best)
            return json_fail(err, c->string, "unknown field %s in %s (did you mean \"%s\"?)", key,
                             what, best);
        return json_fail(err, c->string, "unknown field %s in %s", key, what);
    }
    return 0;
}

/* ---- builders ---- */

static void add_item(cJSON *obj, const char *key, cJSON *item)
{
    if (!item)
        json_oom("mu_json_add");
    if (!cJSON_AddItemToObject(obj, key, item))
        json_oom("mu_json_add (or a NULL object or key)");
}

cJSON *mu_json_obj(void)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        json_oom("mu_json_obj");
    return o;
}

cJSON *mu_json_arr(void)
{
    cJSON *a = cJSON_CreateArray();
    if (!a)
        json_oom("mu_json_arr");
    return a;
}

void mu_json_add_str(cJSON *obj, const char *key, const char *val)
{
    add_item(obj, key, val ? cJSON_CreateString(val) : cJSON_CreateNull());
}

void mu_json_add_i64(cJSON *obj, const char *key, int64_t val)
{
    add_item(obj, key, cJSON_CreateNumber((double)val));
}

void mu_json_add_i64_pos(cJSON *obj, const char *key, int64_t val)
{
    if (val > 0)
        mu_json_add_i64(obj, key, val);
    else
        mu_json_add_null(obj, key);
}

void mu_json_add_bool(cJSON *obj, const char *key, bool val)
{
    add_item(obj, key, cJSON_CreateBool(val));
}

void mu_json_add_null(cJSON *obj, const char *key)
{
    add_item(obj, key, cJSON_CreateNull());
}

void mu_json_add_time(cJSON *obj, const char *key, int64_t ms)
{
    if (ms == 0) {
        mu_json_add_null(obj, key);
        return;
    }
    char buf[40];
    mu_format_time(ms, buf, sizeof buf);
    mu_json_add_str(obj, key, buf);
}

char *mu_json_print(const cJSON *node)
{
    if (!node)
        return NULL;
    char *s = cJSON_PrintUnformatted(node);
    if (!s)
        json_oom("mu_json_print");
    return s;
}
