/* Allow-list validation of identifiers and French official codes; search folding. */
#include "mutualis/validate.h"

#include <stdint.h>
#include <string.h>

#include "mutualis/util.h"

/* Decodes the well-formed UTF-8 sequence at s (n bytes available): returns its length and
 * writes the code point, or returns 0 (overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

bool mu_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!s)
        return len == 0;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

bool mu_siren_valid(const char *s)
{
    if (!s || strlen(s) != 9 || !all_digits(s, 9))
        return false;
    int sum = 0;
    for (int i = 0; i < 9; i++) {
        int d = s[i] - '0';
        if (i % 2 == 1) { /* every second digit from the right of a 9-digit number */
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

/* Two-digit metropolitan département number 01-19 or 21-95. */
static bool metro_dept(const char *s)
{
    if (!is_digit(s[0]) || !is_digit(s[1]))
        return false;
    int n = (s[0] - '0') * 10 + (s[1] - '0');
    return n >= 1 && n <= 95 && n != 20;
}

static bool corsica_dept(const char *s)
{
    return s[0] == '2' && (s[1] == 'A' || s[1] == 'B');
}

/* Overseas three-digit prefix: 971-978 or 984-989. */
static bool overseas_prefix(const char *s)
{
    if (s[0] != '9' || !is_digit(s[2]))
        return false;
    return (s[1] == '7' && s[2] >= '1' && s[2] <= '8') ||
           (s[1] == '8' && s[2] >= '4' && s[2] <= '9');
}

bool mu_insee_valid(const char *s)
{
    if (!s || strlen(s) != 5)
        return false;
    if (s[0] == '9' && (s[1] == '7' || s[1] == '8'))
        return overseas_prefix(s) && all_digits(s + 3, 2);
    return (metro_dept(s) || corsica_dept(s)) && all_digits(s + 2, 3);
}

bool mu_dept_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n == 2)
        return metro_dept(s) || corsica_dept(s);
    if (n != 3 || s[0] != '9' || !all_digits(s, 3))
        return false;
    static const char *const overseas[] = {"971", "972", "973", "974", "975", "976", "977",
                                           "978", "984", "986", "987", "988", "989"};
    for (size_t i = 0; i < MU_ARRAY_LEN(overseas); i++)
        if (strcmp(s, overseas[i]) == 0)
            return true;
    return false;
}

bool mu_region_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    return (n == 2 || n == 3) && all_digits(s, n);
}

/* Invisible characters that would let a name impersonate another or reorder the text
 * around it: line and paragraph separators, bidirectional overrides and isolates, BOM. */
static bool invisible_format(uint32_t cp)
{
    return cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

static bool is_space_cp(uint32_t cp)
{
    return cp == ' ' || cp == 0xA0 || cp == 0x2007 || cp == 0x202F;
}

bool mu_name_valid(const char *s, size_t maxbytes)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > maxbytes)
        return false;
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_decode(p + i, n - i, &cp);
        if (k == 0 || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || invisible_format(cp))
            return false;
        if (i == 0 && is_space_cp(cp))
            return false;
        i += k;
    }
    return !is_space_cp(cp); /* cp is the last character */
}

bool mu_ident_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || is_digit(c);
        if (i == 0 ? !alnum : !(alnum || c == '.' || c == '_' || c == '-'))
            return false;
        if (c == '.' && s[i + 1] == '.')
            return false;
    }
    return s[n - 1] != '.' && s[n - 1] != '-';
}

/* The HTML "valid e-mail address" rule, plus no leading, trailing or doubled dot in the
 * local part and the length limits of RFC 5321. */
bool mu_email_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    const char *at = strchr(s, '@');
    if (n > 254 || !at || strchr(at + 1, '@'))
        return false;
    size_t local = (size_t)(at - s);
    if (local == 0 || local > 64 || s[0] == '.' || at[-1] == '.')
        return false;
    static const char local_punct[] = "!#$%&'*+/=?^_`{|}~.-";
    for (size_t i = 0; i < local; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
                  (c != '\0' && strchr(local_punct, c));
        if (!ok || (c == '.' && s[i + 1] == '.'))
            return false;
    }
    const char *d = at + 1;
    if (*d == '\0')
        return false;
    for (;;) {
        size_t lab = 0;
        while ((d[lab] >= 'a' && d[lab] <= 'z') || (d[lab] >= 'A' && d[lab] <= 'Z') ||
               is_digit(d[lab]) || d[lab] == '-')
            lab++;
        if (lab == 0 || lab > 63 || d[0] == '-' || d[lab - 1] == '-')
            return false;
        if (d[lab] == '\0')
            return true;
        if (d[lab] != '.')
            return false;
        d += lab + 1;
    }
}

/* Folded forms of U+00C0..U+017F, one letter each; digits stand for longer forms and '*'
 * for "keep the character" (multiplication and division signs). */
static const char fold_latin[] =
    /* U+00C0 */ "aaaaaa1ceeeeiiii"
                 /* U+00D0 */ "dnooooo*ouuuuy32"
                 /* U+00E0 */ "aaaaaa1ceeeeiiii"
                 /* U+00F0 */ "dnooooo*ouuuuy3y"
                 /* U+0100 */ "aaaaaaccccccccdd"
                 /* U+0110 */ "ddeeeeeeeeeegggg"
                 /* U+0120 */ "gggghhhhiiiiiiii"
                 /* U+0130 */ "ii55jjkkklllllll"
                 /* U+0140 */ "lllnnnnnnnnnoooo"
                 /* U+0150 */ "oo44rrrrrrssssss"
                 /* U+0160 */ "ssttttttuuuuuuuu"
                 /* U+0170 */ "uuuuwwyyyzzzzzzs";
static const char *const fold_long[] = {NULL, "ae", "ss", "th", "oe", "ij"};

_Static_assert(sizeof fold_latin == 0x180 - 0xC0 + 1, "one entry per code point");

/* Hyphens, apostrophes, underscores and spaces: all become one separating space. */
static bool is_separator(uint32_t cp)
{
    return cp == '-' || cp == '\'' || cp == '_' || cp == ' ' || (cp >= '\t' && cp <= '\r') ||
           cp == 0xA0 || cp == 0x2007 || cp == 0x202F || cp == 0x2010 || cp == 0x2011 ||
           cp == 0x2018 || cp == 0x2019;
}

char *mu_text_fold(const char *s)
{
    if (!s)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    /* No folding is longer than its UTF-8 input (a 2-byte letter gives at most 2). */
    char *out = mu_xmalloc(n + 1);
    size_t o = 0;
    bool pending_space = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode(p + i, n - i, &cp);
        if (k == 0) {
            i++; /* invalid byte: dropped */
            continue;
        }
        if (is_separator(cp)) {
            pending_space = o > 0;
            i += k;
            continue;
        }
        if (pending_space) {
            out[o++] = ' ';
            pending_space = false;
        }
        if (cp >= 'A' && cp <= 'Z') {
            out[o++] = (char)(cp - 'A' + 'a');
        } else if (cp >= 0xC0 && cp < 0x180 && fold_latin[cp - 0xC0] != '*') {
            char f = fold_latin[cp - 0xC0];
            if (f >= '1' && f <= '5') {
                memcpy(out + o, fold_long[f - '0'], 2);
                o += 2;
            } else {
                out[o++] = f;
            }
        } else {
            memcpy(out + o, p + i, k);
            o += k;
        }
        i += k;
    }
    out[o] = '\0';
    return out;
}
