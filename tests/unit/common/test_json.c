/* The strict JSON layer: every refusal cJSON alone would let through, syntax errors with
 * line and column, the getters' type and range checks, unknown fields, builders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"

struct refusal {
    const char *name;
    const char *text;
    size_t len;       /* 0: strlen(text) */
    const char *want; /* substring of err.detail, including "line L, column C" */
};

#define R(name, text, want)                                                                        \
    {                                                                                              \
        name, text, 0, want                                                                        \
    }
#define RL(name, text, want)                                                                       \
    {                                                                                              \
        name, text, sizeof(text) - 1, want                                                         \
    }

static const struct refusal refusals[] = {
    /* encoding */
    R("latin-1 byte", "{\"nom\": \"Cl\xe9menciat\"}",
      "line 1, column 12: invalid UTF-8 (byte 0xE9)"),
    R("overlong slash", "[\"\xc0\xaf\"]", "column 3: invalid UTF-8 (byte 0xC0)"),
    R("encoded surrogate", "[\"\xed\xa0\x80\"]", "column 3: invalid UTF-8 (byte 0xED)"),
    R("beyond U+10FFFF", "[\"\xf4\x90\x80\x80\"]", "invalid UTF-8 (byte 0xF4)"),
    R("truncated sequence", "[\"\xc3\"]", "invalid UTF-8 (byte 0xC3)"),
    R("invalid byte outside a string", "[1, \xff]", "column 5: invalid UTF-8 (byte 0xFF)"),
    R("lone continuation byte", "\"a\x80\"", "invalid UTF-8 (byte 0x80)"),
    /* NUL and control characters */
    R("u0000 escape", "{\"a\": \"x\\u0000y\"}",
      "column 9: \\u0000 (the NUL character) is not allowed"),
    R("u0000 escape in a key", "{\"\\u0000\": 1}", "column 3: \\u0000"),
    R("u0000 after escaped backslash pair", "[\"\\\\\\u0000\"]", "column 5: \\u0000"),
    RL("raw NUL in a string", "[\"a\0b\"]", "control character U+0000 inside a string"),
    RL("raw NUL outside a string", "[1,\0 2]", "column 4: unexpected control character U+0000"),
    R("tab inside a string", "[\"a\tb\"]", "control character U+0009 inside a string"),
    R("line break inside a string", "{\"a\": \"b\nc\"}",
      "line 1, column 9: line break inside a string"),
    R("control char as whitespace", "[1,\x01 2]", "unexpected control character U+0001"),
    /* surrogates */
    R("lone high surrogate", "[\"\\uD83D\"]", "column 3: invalid \\uD83D escape: a high surrogate"),
    R("high surrogate then text", "[\"\\uD83Dabcdef\"]", "high surrogate must be followed"),
    R("high surrogate then BMP escape", "[\"\\uD83D\\u0041\"]", "high surrogate must be followed"),
    R("two high surrogates", "[\"\\uD83D\\uD83D\"]", "high surrogate must be followed"),
    R("lone low surrogate", "[\"\\uDE00\"]", "invalid \\uDE00 escape: a low surrogate"),
    R("reversed pair", "[\"\\uDE00\\uD83D\"]", "a low surrogate must follow"),
    /* escapes */
    R("bad escape", "[\"C:\\Users\"]", "column 5: invalid escape \"\\U\""),
    R("short u escape", "[\"\\u12\"]", "\\u must be followed by 4 hexadecimal digits"),
    R("non-hex u escape", "[\"\\u12G4\"]", "\\u must be followed by 4 hexadecimal digits"),
    /* duplicate keys */
    R("duplicate key", "{\"a\": 1, \"a\": 2}", "line 1, column 10: duplicate key \"a\""),
    R("duplicate key nested", "{\"x\": [{\"b\": 1}, {\"c\": 1,\n  \"d\": 2, \"c\": 3}]}",
      "line 2, column 11: duplicate key \"c\""),
    R("duplicate after same key elsewhere", "[{\"a\":1},{\"a\":1,\"b\":2,\"a\":3}]",
      "column 23: duplicate key \"a\""),
    R("duplicate in large object",
      "{\"k01\":1,\"k02\":1,\"k03\":1,\"k04\":1,\"k05\":1,\"k06\":1,\"k07\":1,\"k08\":1,"
      "\"k09\":1,\"k10\":1,\"k11\":1,\"k12\":1,\"k13\":1,\"k14\":1,\"k15\":1,\"k16\":1,"
      "\"k17\":1,\"k18\":1,\"k05\":2,\"k19\":1,\"k18\":3}",
      "column 146: duplicate key \"k05\""),
    R("duplicate via escape", "{\"\\u00e9\": 1, \"\xc3\xa9\": 2}", "duplicate key \"\xc3\xa9\""),
    R("duplicate key with quote", "{\"a\\\"b\": 1, \"a\\\"b\": 2}", "duplicate key \"a\\\"b\""),
    /* numbers */
    R("overflow", "{\"n\": 1e400}", "column 7: number \"1e400\" is out of range"),
    R("negative overflow", "[-2.5E+309]", "number \"-2.5E+309\" is out of range"),
    R("just below DBL_MAX", "[1.7976931348623157e308]", "is out of range"),
    R("NaN", "[NaN]", "unexpected word \"NaN\""),
    R("Infinity", "[Infinity]", "unexpected word \"Infinity\""),
    R("minus Infinity", "[-Infinity]", "'-' must be followed by a digit"),
    R("leading zero", "{\"n\": 01}", "invalid number \"01\": leading zeros"),
    R("trailing dot", "[1.]", "a digit must follow the '.'"),
    R("leading dot", "[.5]", "unexpected '.'"),
    R("plus sign", "[+1]", "unexpected '+'"),
    R("empty exponent", "[1e]", "the exponent needs digits"),
    R("hex", "[0x10]", "unexpected word \"x10\""),
    R("too long", "[1.000000000000000000000000000000000000000000000000000000000000000000001]",
      "is too long"),
    /* structure */
    R("trailing garbage", "{\"a\": 1} x",
      "column 10: unexpected 'x' after the end of the JSON value"),
    R("two values", "[1]\n[2]", "line 2, column 1: unexpected '[' after the end"),
    R("number then garbage", "123abc", "column 4: unexpected 'a' after the end"),
    RL("trailing NUL", "{}\0", "unexpected byte 0x00 after the end"),
    R("empty", "", "line 1, column 1: no JSON value"),
    R("only spaces", "  \n ", "line 2, column 2: no JSON value"),
    R("unterminated object", "{\"a\": 1", "column 8: unexpected end of input (missing '}' or ']')"),
    R("unterminated array", "[1, 2,", "column 7: unexpected end of input"),
    R("unterminated string", "{\"a\": \"abc", "column 7: unterminated string"),
    R("unterminated string at end", "[\"abc", "column 2: unterminated string"),
    R("missing comma", "{\"a\": 1 \"b\": 2}", "column 9: unexpected '\"' (missing ','"),
    R("missing colon", "{\"a\" 1}", "column 6: unexpected '1' (missing ','"),
    R("array closed by brace", "{\"a\": [1, 2}",
      "column 12: unexpected '}': an array is still open"),
    R("object closed by bracket", "[{\"a\": 1]",
      "column 9: unexpected ']': an object is still open"),
    R("last byte wrong", "[1 2", "column 4: unexpected '2'"),
    R("trailing comma in object", "{\"a\": 1,}", "column 9: trailing comma before '}'"),
    R("trailing comma in array", "[1, 2, ]", "trailing comma before ']'"),
    R("single quotes", "{'a': 1}", "column 2: single quotes are not valid JSON"),
    R("bare key", "{a: 1}", "column 2: field name a must be in double quotes"),
    R("bare key after comma", "{\"a\": 1, b: 2}", "column 10: field name b must be"),
    R("key expected at the end", "{\"a\": 1,x", "column 9: field name x must be"),
    R("number as key", "{1: 2}", "column 2: unexpected '1': expected a field name"),
    R("unterminated key", "{\"a", "column 2: unterminated string"),
    R("unterminated after key", "{\"a\"", "column 5: unexpected end of input"),
    R("missing value", "{\"a\": }", "column 7: unexpected '}' where a value was expected"),
    R("bare word", "hello", "column 1: unexpected word \"hello\""),
    R("truncated literal", "[tru", "unexpected word \"tru\""),
    R("comment", "{\"a\": 1 /* no */}", "unexpected '/'"),
    R("column counts characters", "{\"é\": 1, \"é\": 2}", "column 10: duplicate key"),
    R("line after CRLF", "{\r\n\"a\": 1,\r\n\"a\": 2}", "line 3, column 1: duplicate key"),
};

static void test_refusals(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < MU_ARRAY_LEN(refusals); i++) {
        const struct refusal *r = &refusals[i];
        size_t len = r->len ? r->len : strlen(r->text);
        struct mu_err err = {0};
        cJSON *j = mu_json_parse(r->text, len, "body", &err);
        if (j || err.code != MU_EINVAL || strncmp(err.detail, "body: ", 6) != 0 ||
            !strstr(err.detail, r->want)) {
            print_error("case \"%s\": got %s, detail \"%s\", want \"%s\"\n", r->name,
                        j ? "a tree" : "refusal", err.detail, r->want);
            failures++;
        }
        cJSON_Delete(j);
    }
    assert_int_equal(failures, 0);
}

static const char *const accepted[] = {
    "{}",
    "[]",
    "0",
    "-0",
    "\"\"",
    "null",
    "true",
    " \t\r\n{ \"a\" : [ 1 , 2.5 , -3e-2 , 1E+2, 0.0 ] } \n\r\t ",
    "{\"a\": \"\\\\u0000\"}",        /* an escaped backslash, then text */
    "{\"a\": \"\\\\\\\\u0000\"}",    /* two escaped backslashes */
    "{\"a\": \"\\uD83D\\uDE00\"}",   /* a valid surrogate pair */
    "{\"a\": \"\xf0\x9f\x98\x80\"}", /* the same, raw */
    "{\"a\": \"\\u00e9t\\u00E9 \\/ \\b\\f\\n\\r\\t \\\" \"}",
    "{\"nom\": \"L'Ha\xc3\xbf-les-Roses\", \"insee\": \"94038\"}",
    "{\"a\": {\"a\": {\"a\": 1}}, \"b\": [{\"a\": 1}, {\"a\": 2}]}", /* same key, other objects */
    "{\"A\": 1, \"a\": 2}",                                          /* keys are case-sensitive */
    "[1e308, -1.79769313486231e308, 1e-400, 123456789012345678901234567890]",
    "\xef\xbb\xbf{\"bom\": true}",
    "\"\xe2\x80\xa8 and \xef\xbf\xbf\"",
};

static void test_accepted(void **state)
{
    (void)state;
    for (size_t i = 0; i < MU_ARRAY_LEN(accepted); i++) {
        struct mu_err err = {0};
        cJSON *j = mu_json_parse(accepted[i], strlen(accepted[i]), "body", &err);
        if (!j)
            fail_msg("case %zu (%s) refused: %s", i, accepted[i], err.detail);
        assert_int_equal(err.code, 0);
        char *out = mu_json_print(j);
        cJSON *again = mu_json_parse(out, strlen(out), "reprint", &err);
        if (!again)
            fail_msg("reprint of case %zu (%s) refused: %s", i, out, err.detail);
        assert_true(cJSON_Compare(j, again, true));
        free(out);
        cJSON_Delete(again);
        cJSON_Delete(j);
    }
}

static void test_escaped_values(void **state)
{
    (void)state;
    const char *t = "{\"a\": \"\\\\u0000\", \"b\": \"\\uD83D\\uDE00\", \"c\": \"\\u00e9\"}";
    cJSON *j = mu_json_parse(t, strlen(t), "body", NULL);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "a")->valuestring, "\\u0000");
    assert_string_equal(cJSON_GetObjectItem(j, "b")->valuestring, "\xf0\x9f\x98\x80");
    assert_string_equal(cJSON_GetObjectItem(j, "c")->valuestring, "\xc3\xa9");
    cJSON_Delete(j);
}

/* The length bounds the parse: the buffer need not be NUL-terminated. */
static void test_length_bound(void **state)
{
    (void)state;
    const char t[] = "{\"a\": 1}GARBAGE";
    cJSON *j = mu_json_parse(t, 8, "body", NULL);
    assert_non_null(j);
    cJSON_Delete(j);
    char *heap = mu_xmalloc(5);
    memcpy(heap, "[1,2]", 5); /* no terminator: ASan catches any overread */
    j = mu_json_parse(heap, 5, "body", NULL);
    assert_non_null(j);
    cJSON_Delete(j);
    struct mu_err err = {0};
    memcpy(heap, "[1,2,", 5);
    assert_null(mu_json_parse(heap, 5, "body", &err));
    assert_non_null(strstr(err.detail, "unexpected end of input"));
    free(heap);
    err = (struct mu_err){0};
    assert_null(mu_json_parse(NULL, 0, NULL, &err));
    assert_non_null(strstr(err.detail, "input: line 1, column 1: no JSON value"));
}

static char *nested(int depth, const char *open, const char *close)
{
    struct mu_buf b;
    mu_buf_init(&b);
    for (int i = 0; i < depth; i++)
        mu_buf_puts(&b, open);
    mu_buf_puts(&b, "1");
    for (int i = 0; i < depth; i++)
        mu_buf_puts(&b, close);
    return mu_buf_steal(&b);
}

static void test_depth(void **state)
{
    (void)state;
    struct mu_err err = {0};
    char *ok = nested(MU_JSON_MAX_DEPTH, "[", "]");
    cJSON *j = mu_json_parse(ok, strlen(ok), "body", &err);
    assert_non_null(j);
    cJSON_Delete(j);
    free(ok);

    char *deep = nested(MU_JSON_MAX_DEPTH + 1, "{\"a\":", "}");
    assert_null(mu_json_parse(deep, strlen(deep), "body", &err));
    assert_non_null(strstr(err.detail, "column 321: nesting deeper than 64 levels"));
    free(deep);

    /* Far beyond cJSON's own limit: still the depth message, not a syntax error. */
    err = (struct mu_err){0};
    deep = nested(5000, "[", "]");
    assert_null(mu_json_parse(deep, strlen(deep), "body", &err));
    assert_non_null(strstr(err.detail, "column 65: nesting deeper than 64 levels"));
    free(deep);

    /* Brackets inside strings do not count. */
    err = (struct mu_err){0};
    const char *s = "[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"]";
    j = mu_json_parse(s, strlen(s), "body", &err);
    assert_non_null(j);
    cJSON_Delete(j);
}

static void test_multiline_position(void **state)
{
    (void)state;
    const char *t = "{\n"
                    "  \"name\": \"Rennes\",\n"
                    "  \"actions\": [\"a\"],\n"
                    "  \"actions\": [\"b\"]\n"
                    "}\n";
    struct mu_err err = {0};
    assert_null(mu_json_parse(t, strlen(t), "policies/rbac.json", &err));
    assert_string_equal(err.detail,
                        "policies/rbac.json: line 4, column 3: duplicate key \"actions\"");
    assert_int_equal(err.code, MU_EINVAL);

    err = (struct mu_err){0};
    t = "{\n  \"a\": 1,\n  \"b\": tru\n}";
    assert_null(mu_json_parse(t, strlen(t), "f.json", &err));
    assert_non_null(strstr(err.detail, "f.json: line 3, column 8: unexpected word \"tru\""));
}

/* A big, valid document parses in linear time, and a large object with unique keys is
 * not mistaken for one with duplicates. */
static void test_large(void **state)
{
    (void)state;
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_puts(&b, "[");
    for (int i = 0; i < 100000; i++)
        mu_buf_printf(&b, "%s{\"code\":\"%05d\",\"nom\":\"Saint-\xc3\x89tienne\",\"pop\":%d}",
                      i ? "," : "", i, i * 3);
    mu_buf_puts(&b, "]");
    clock_t t0 = clock();
    struct mu_err err = {0};
    cJSON *j = mu_json_parse(b.data, b.len, "import", &err);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 100000);
    assert_true(secs < 5.0);
    cJSON_Delete(j);
    mu_buf_free(&b);

    mu_buf_init(&b);
    mu_buf_puts(&b, "{");
    for (int i = 0; i < 50000; i++)
        mu_buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
    mu_buf_puts(&b, "}");
    j = mu_json_parse(b.data, b.len, "big object", &err);
    assert_non_null(j);
    cJSON_Delete(j);
    mu_buf_puts(&b, ""); /* now add a duplicate of k123 at the end */
    b.data[b.len - 1] = ',';
    mu_buf_puts(&b, "\"k123\":0}");
    assert_null(mu_json_parse(b.data, b.len, "big object", &err));
    assert_non_null(strstr(err.detail, "duplicate key \"k123\""));
    mu_buf_free(&b);
}

/* A long key full of escapes and accents is quoted in a message without overflowing and
 * without cutting a character: details reach JSON output and must stay valid UTF-8. */
static void test_long_key_in_message(void **state)
{
    (void)state;
    struct mu_buf key, doc;
    mu_buf_init(&key);
    for (int i = 0; i < 40; i++)
        mu_buf_puts(&key, i % 2 ? "\\n\\u0001" : "\xc3\xa9\xf0\x9f\x98\x80\\\"");
    mu_buf_init(&doc);
    mu_buf_printf(&doc, "{\"%s\": 1, \"%s\": 2}", key.data, key.data);
    struct mu_err err = {0};
    assert_null(mu_json_parse(doc.data, doc.len, "body", &err));
    assert_non_null(strstr(err.detail, "duplicate key \"\xc3\xa9\xf0\x9f\x98\x80\\\"\\u000A"));
    assert_non_null(strstr(err.detail, "...\""));
    assert_true(mu_utf8_valid(err.detail, strlen(err.detail)));

    static const char *const allowed[] = {"name", NULL};
    mu_buf_free(&doc);
    mu_buf_init(&doc);
    mu_buf_printf(&doc, "{\"%s\": 1}", key.data);
    cJSON *j = mu_json_parse(doc.data, doc.len, "body", NULL);
    assert_non_null(j);
    err = (struct mu_err){0};
    assert_int_equal(mu_json_expect_object(j, allowed, "tenant", &err), MU_EINVAL);
    assert_true(mu_utf8_valid(err.detail, strlen(err.detail)));
    assert_true(mu_utf8_valid(err.field, strlen(err.field)));
    cJSON_Delete(j);
    mu_buf_free(&doc);
    mu_buf_free(&key);
}

static cJSON *parse_ok(const char *t)
{
    struct mu_err err = {0};
    cJSON *j = mu_json_parse(t, strlen(t), "body", &err);
    if (!j)
        fail_msg("parse of %s: %s", t, err.detail);
    return j;
}

struct i64_case {
    const char *json;
    int want; /* 0, 1, MU_EINVAL */
    int64_t value;
};

static void test_get_i64(void **state)
{
    (void)state;
    static const struct i64_case cases[] = {
        {"{\"population\": 0}", 0, 0},
        {"{\"population\": 100000000}", 0, 100000000},
        {"{\"population\": 1e3}", 0, 1000},
        {"{\"population\": 12.0}", 0, 12},
        {"{\"population\": -0}", 0, 0},
        {"{\"population\": 1.5}", MU_EINVAL, 0},
        {"{\"population\": -1}", MU_EINVAL, 0},
        {"{\"population\": 100000001}", MU_EINVAL, 0},
        {"{\"population\": 4294967297}", MU_EINVAL, 0},
        {"{\"population\": \"12\"}", MU_EINVAL, 0},
        {"{\"population\": true}", MU_EINVAL, 0},
        {"{\"population\": [1]}", MU_EINVAL, 0},
        {"{\"population\": null}", 1, 0},
        {"{}", 1, 0},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        cJSON *j = parse_ok(cases[i].json);
        struct mu_err err = {0};
        int64_t v = 77;
        int rc = mu_json_get_i64(j, "population", false, 0, 100000000, &v, &err);
        if (rc != cases[i].want)
            fail_msg("%s: rc %d, want %d (%s)", cases[i].json, rc, cases[i].want, err.detail);
        if (rc == 0)
            assert_int_equal(v, cases[i].value);
        else
            assert_int_equal(v, 77); /* untouched */
        if (rc == MU_EINVAL) {
            assert_string_equal(err.detail,
                                "population must be an integer between 0 and 100000000");
            assert_string_equal(err.field, "population");
        }
        cJSON_Delete(j);
    }

    /* Required and absent. */
    cJSON *j = parse_ok("{\"population\": null}");
    struct mu_err err = {0};
    int64_t v = 0;
    assert_int_equal(mu_json_get_i64(j, "population", true, 0, 10, &v, &err), MU_EINVAL);
    assert_string_equal(err.field, "population");
    assert_non_null(strstr(err.detail, "population is required"));
    cJSON_Delete(j);

    /* The exact-integer limit: 2^53 - 1 passes, 2^53 and beyond do not. */
    j = parse_ok("{\"a\": 9007199254740991, \"b\": -9007199254740991, \"c\": 9007199254740992,"
                 " \"d\": 9007199254740993, \"e\": -9007199254740992, \"f\": 1e19}");
    assert_int_equal(mu_json_get_i64(j, "a", true, INT64_MIN, INT64_MAX, &v, NULL), 0);
    assert_int_equal(v, 9007199254740991LL);
    assert_int_equal(mu_json_get_i64(j, "b", true, INT64_MIN, INT64_MAX, &v, NULL), 0);
    assert_int_equal(v, -9007199254740991LL);
    const char *bad[] = {"c", "d", "e", "f"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        err = (struct mu_err){0};
        assert_int_equal(mu_json_get_i64(j, bad[i], true, INT64_MIN, INT64_MAX, &v, &err),
                         MU_EINVAL);
        assert_non_null(strstr(err.detail, "between -9007199254740991 and 9007199254740991"));
    }
    assert_int_equal(mu_json_int_value(cJSON_GetObjectItem(j, "a"), 0, 10, &v), MU_EINVAL);
    assert_int_equal(mu_json_int_value(NULL, 0, 10, &v), MU_EINVAL);
    cJSON_Delete(j);
}

static void test_get_str_bool_arr_obj(void **state)
{
    (void)state;
    cJSON *j = parse_ok("{\"nom\": \"\xc3\x89pinal\", \"n\": 3, \"ok\": true, \"no\": false,"
                        " \"list\": [1], \"o\": {\"x\": 1}, \"nil\": null}");
    struct mu_err err = {0};
    const char *s = NULL;
    assert_int_equal(mu_json_get_str(j, "nom", true, 7, &s, &err), 0);
    assert_string_equal(s, "\xc3\x89pinal");
    assert_int_equal(mu_json_get_str(j, "nom", true, 6, &s, &err), MU_EINVAL);
    assert_string_equal(err.field, "nom");
    assert_non_null(strstr(err.detail, "nom is too long (at most 6 bytes"));
    err = (struct mu_err){0};
    assert_int_equal(mu_json_get_str(j, "n", true, 10, &s, &err), MU_EINVAL);
    assert_string_equal(err.detail, "n must be a string");
    assert_int_equal(mu_json_get_str(j, "nil", false, 10, &s, NULL), 1);
    assert_int_equal(mu_json_get_str(j, "absent", false, 10, &s, NULL), 1);
    err = (struct mu_err){0};
    assert_int_equal(mu_json_get_str(j, "absent", true, 10, &s, &err), MU_EINVAL);
    assert_string_equal(err.detail, "absent is required (a string)");

    bool b = false;
    assert_int_equal(mu_json_get_bool(j, "ok", true, &b, NULL), 0);
    assert_true(b);
    assert_int_equal(mu_json_get_bool(j, "no", true, &b, NULL), 0);
    assert_false(b);
    err = (struct mu_err){0};
    assert_int_equal(mu_json_get_bool(j, "n", true, &b, &err), MU_EINVAL);
    assert_string_equal(err.detail, "n must be true or false");
    assert_int_equal(mu_json_get_bool(j, "absent", false, &b, NULL), 1);

    const cJSON *a = NULL;
    assert_int_equal(mu_json_get_array(j, "list", true, &a, NULL), 0);
    assert_true(cJSON_IsArray(a));
    assert_int_equal(mu_json_get_array(j, "list", true, NULL, NULL), 0);
    err = (struct mu_err){0};
    assert_int_equal(mu_json_get_array(j, "o", true, &a, &err), MU_EINVAL);
    assert_string_equal(err.detail, "o must be an array");
    assert_int_equal(mu_json_get_array(j, "nil", false, &a, NULL), 1);
    assert_int_equal(mu_json_get_object(j, "o", true, &a, NULL), 0);
    assert_true(cJSON_IsObject(a));
    err = (struct mu_err){0};
    assert_int_equal(mu_json_get_object(j, "list", true, &a, &err), MU_EINVAL);
    assert_string_equal(err.detail, "list must be an object");

    /* Not an object at all. */
    err = (struct mu_err){0};
    cJSON *arr = parse_ok("[1]");
    assert_int_equal(mu_json_get_str(arr, "nom", true, 10, &s, &err), MU_EINVAL);
    assert_int_equal(mu_json_get_str(NULL, "nom", false, 10, &s, NULL), MU_EINVAL);
    cJSON_Delete(arr);
    cJSON_Delete(j);
}

static void test_expect_object(void **state)
{
    (void)state;
    static const char *const allowed[] = {"name", "siren", "insee", "parent", NULL};
    cJSON *j = parse_ok("{\"name\": \"Rennes\", \"siren\": \"213502388\"}");
    struct mu_err err = {0};
    assert_int_equal(mu_json_expect_object(j, allowed, "tenant", &err), 0);
    cJSON_Delete(j);

    j = parse_ok("{\"name\": \"Rennes\", \"sirne\": \"213502388\"}");
    assert_int_equal(mu_json_expect_object(j, allowed, "tenant", &err), MU_EINVAL);
    assert_string_equal(err.field, "sirne");
    assert_string_equal(err.detail, "unknown field \"sirne\" in tenant (did you mean \"siren\"?)");
    cJSON_Delete(j);

    err = (struct mu_err){0};
    j = parse_ok("{\"colour\": 1}");
    assert_int_equal(mu_json_expect_object(j, allowed, "tenant", &err), MU_EINVAL);
    assert_string_equal(err.detail, "unknown field \"colour\" in tenant");
    cJSON_Delete(j);

    /* A long, accented key: the field name is cut on a character boundary. */
    err = (struct mu_err){0};
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_puts(&b, "{\"");
    for (int i = 0; i < 40; i++)
        mu_buf_puts(&b, "\xc3\xa9");
    mu_buf_puts(&b, "\": 1}");
    j = parse_ok(b.data);
    assert_int_equal(mu_json_expect_object(j, allowed, "tenant", &err), MU_EINVAL);
    assert_int_equal(strlen(err.field), 62);
    mu_buf_free(&b);
    cJSON_Delete(j);

    err = (struct mu_err){0};
    j = parse_ok("[]");
    assert_int_equal(mu_json_expect_object(j, allowed, "tenant", &err), MU_EINVAL);
    assert_string_equal(err.detail, "tenant must be a JSON object");
    cJSON_Delete(j);
}

static void test_builders(void **state)
{
    (void)state;
    cJSON *o = mu_json_obj();
    mu_json_add_str(o, "nom", "Saint-\xc3\x89tienne");
    mu_json_add_str(o, "siren", NULL);
    mu_json_add_i64(o, "pop", 171924);
    mu_json_add_i64(o, "big", 1700000000123LL);
    mu_json_add_i64(o, "neg", -42);
    mu_json_add_bool(o, "actif", true);
    mu_json_add_null(o, "parent");
    mu_json_add_time(o, "created", 1700000000123LL);
    mu_json_add_time(o, "deleted", 0);
    cJSON *arr = mu_json_arr();
    cJSON_AddItemToObject(o, "list", arr);
    char *s = mu_json_print(o);
    assert_string_equal(s, "{\"nom\":\"Saint-\xc3\x89tienne\",\"siren\":null,\"pop\":171924,"
                           "\"big\":1700000000123,\"neg\":-42,\"actif\":true,\"parent\":null,"
                           "\"created\":\"2023-11-14T22:13:20.123Z\",\"deleted\":null,"
                           "\"list\":[]}");
    cJSON *back = parse_ok(s);
    int64_t v = 0;
    assert_int_equal(mu_json_get_i64(back, "big", true, 0, INT64_MAX, &v, NULL), 0);
    assert_int_equal(v, 1700000000123LL);
    free(s);
    cJSON_Delete(back);
    cJSON_Delete(o);
    assert_null(mu_json_print(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_escaped_values),
        cmocka_unit_test(test_length_bound),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_multiline_position),
        cmocka_unit_test(test_long_key_in_message),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_get_i64),
        cmocka_unit_test(test_get_str_bool_arr_obj),
        cmocka_unit_test(test_expect_object),
        cmocka_unit_test(test_builders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
