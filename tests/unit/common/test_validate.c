/* Allow-lists and official French codes: SIREN (Luhn), INSEE commune codes, départements,
 * régions, names, identifiers, e-mail addresses, UTF-8, and the search folding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"
#include "mutualis/validate.h"

struct vcase {
    const char *s;
    bool ok;
};

#define CHECK_TABLE(fn, table)                                                                     \
    for (size_t i_ = 0; i_ < MU_ARRAY_LEN(table); i_++)                                            \
        if (fn((table)[i_].s) != (table)[i_].ok)                                                   \
            fail_msg("%s(\"%s\") should be %s", #fn, (table)[i_].s ? (table)[i_].s : "(null)",     \
                     (table)[i_].ok ? "true" : "false");

static void test_siren(void **state)
{
    (void)state;
    static const struct vcase cases[] = {
        {"210100012", true},  /* L'Abergement-Clémenciat */
        {"200046977", true},  /* an EPCI */
        {"213502388", true},  /* Rennes */
        {"214202186", true},  /* Saint-Étienne */
        {"356000000", true},  /* La Poste */
        {"000000000", true},  /* Luhn-valid, format only */
        {"123456789", false}, /* bad key */
        {"210100013", false},  {"213502383", false},   {"21010001", false}, /* 8 digits */
        {"2101000120", false},                                              /* 10 digits */
        {"21010001a", false},  {"210 100 012", false}, {" 210100012", false},
        {"", false},           {NULL, false},
    };
    CHECK_TABLE(mu_siren_valid, cases);
}

static void test_insee(void **state)
{
    (void)state;
    static const struct vcase cases[] = {
        {"01001", true},  {"2A004", true},   {"2B033", true},   {"97501", true},  {"98714", true},
        {"97101", true},  {"95690", true},   {"19001", true},   {"21001", true},  {"97801", true},
        {"98901", true},  {"97611", true},   {"20001", false},  {"00000", false}, {"2C001", false},
        {"9750", false},  {"975011", false}, {"2a004", false},  {"96001", false}, {"97901", false},
        {"97001", false}, {"98301", false},  {"9A001", false},  {"0100A", false}, {"2A04", false},
        {"", false},      {NULL, false},     {"01 001", false},
    };
    CHECK_TABLE(mu_insee_valid, cases);
}

static void test_dept_region(void **state)
{
    (void)state;
    static const struct vcase depts[] = {
        {"01", true},  {"19", true},    {"21", true},   {"95", true},   {"2A", true},
        {"2B", true},  {"971", true},   {"974", true},  {"976", true},  {"975", true},
        {"977", true}, {"978", true},   {"984", true},  {"986", true},  {"987", true},
        {"988", true}, {"989", true},   {"00", false},  {"20", false},  {"96", false},
        {"2C", false}, {"2a", false},   {"970", false}, {"979", false}, {"985", false},
        {"1", false},  {"0001", false}, {"", false},    {NULL, false},
    };
    CHECK_TABLE(mu_dept_valid, depts);
    static const struct vcase regions[] = {
        {"53", true},  {"84", true},    {"01", true}, {"975", true}, {"5", false},
        {"5A", false}, {"1234", false}, {"", false},  {NULL, false},
    };
    CHECK_TABLE(mu_region_valid, regions);
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"plain", 5, true},
        {"\xc3\xa9t\xc3\xa9", 5, true},
        {"\xe2\x80\x99", 3, true},
        {"\xf0\x9f\x98\x80", 4, true},
        {"\xf4\x8f\xbf\xbf", 4, true},  /* U+10FFFF */
        {"a\0b", 3, true},              /* NUL is valid UTF-8; the length rules */
        {"\xe9t\xe9", 3, false},        /* Latin-1 */
        {"\xc0\xaf", 2, false},         /* overlong '/' */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xf0\x80\x80\xaf", 4, false}, /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* > U+10FFFF */
        {"\xc3", 1, false},             /* truncated */
        {"\xc3\xa9", 1, false},         /* length cuts the sequence */
        {"\x80", 1, false},
        {"\xfe", 1, false},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++)
        if (mu_utf8_valid(cases[i].s, cases[i].len) != cases[i].ok)
            fail_msg("mu_utf8_valid case %zu", i);
}

static void test_name(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t max;
        bool ok;
    } cases[] = {
        {"L'Abergement-Cl\xc3\xa9menciat", 64, true},
        {"L\xe2\x80\x99Ha\xc3\xbf-les-Roses", 64, true},
        {"Saint-\xc3\x89tienne", 64, true},
        {"<script>alert(1)</script>", 64, true}, /* data: escaped on output */
        {"A", 1, true},
        {"\xc3\x89", 2, true},
        {"\xc3\x89", 1, false}, /* bytes, not characters */
        {"", 64, false},
        {" Rennes", 64, false},
        {"Rennes ", 64, false},
        {"Rennes\xc2\xa0", 64, false}, /* trailing no-break space */
        {"Ren\tnes", 64, false},
        {"Ren\nnes", 64, false},
        {"Ren\x7fnes", 64, false},
        {"Ren\xc2\x85nes", 64, false},     /* C1 NEL */
        {"Ren\xe2\x80\xaenes", 64, false}, /* right-to-left override */
        {"Cl\xe9menciat", 64, false},      /* Latin-1 */
        {NULL, 64, false},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++)
        if (mu_name_valid(cases[i].s, cases[i].max) != cases[i].ok)
            fail_msg("mu_name_valid(\"%s\", %zu) should be %d", cases[i].s ? cases[i].s : "",
                     cases[i].max, cases[i].ok);
}

static void test_ident(void **state)
{
    (void)state;
    static const struct vcase cases[] = {
        {"a", true},
        {"0", true},
        {"rennes-metropole", true},
        {"vm_01.backup", true},
        {"a.b.c", true},
        {"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0", true}, /* 63 */
        {"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01", false},
        {"", false},
        {"-a", false},
        {".a", false},
        {"_a", false},
        {"a-", false},
        {"a.", false},
        {"a..b", false},
        {"A", false},
        {"a b", false},
        {"a/b", false},
        {"a\xc3\xa9", false},
        {"../etc", false},
        {NULL, false},
    };
    CHECK_TABLE(mu_ident_valid, cases);
}

static void test_email(void **state)
{
    (void)state;
    static const struct vcase cases[] = {
        {"mairie@rennes.fr", true},
        {"secretariat.mairie@commune-exemple.fr", true},
        {"a+tag@x.y", true},
        {"admin@localhost", true},
        {"O'Brien@example.org", true},
        {"", false},
        {"@rennes.fr", false},
        {"mairie@", false},
        {"mairie", false},
        {"a@b@c.fr", false},
        {".a@b.fr", false},
        {"a.@b.fr", false},
        {"a..b@c.fr", false},
        {"a@-b.fr", false},
        {"a@b-.fr", false},
        {"a@b..fr", false},
        {"a@b.fr.", false},
        {"a b@c.fr", false},
        {"a@b_c.fr", false},
        {"\xc3\xa9lu@mairie.fr", false},
        {"a@\xc3\xa9.fr", false},
        {"a\n@b.fr", false},
        {NULL, false},
    };
    CHECK_TABLE(mu_email_valid, cases);

    /* Length limits: local part <= 64 bytes, whole address <= 254 bytes. */
    char buf[300];
    memset(buf, 'a', 64);
    memcpy(buf + 64, "@b.fr", 6);
    assert_true(mu_email_valid(buf));
    memset(buf, 'a', 65);
    memcpy(buf + 65, "@b.fr", 6);
    assert_false(mu_email_valid(buf));
    memcpy(buf, "a@", 2);
    for (size_t i = 2; i < 254; i++)
        buf[i] = i % 10 == 1 ? '.' : 'b';
    buf[254] = '\0';
    assert_true(mu_email_valid(buf));
    memcpy(buf + 254, "b", 2);
    assert_false(mu_email_valid(buf));
}

static void test_fold(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"Saint-\xc3\x89tienne", "saint etienne"},
        {"L'Ha\xc3\xbf-les-Roses", "l hay les roses"},
        {"L\xe2\x80\x99Ha\xc3\xbf-les-Roses", "l hay les roses"},
        {"  \xc5\x92uvre  ", "oeuvre"},
        {"\xc3\x86gypte \xc3\xa6", "aegypte ae"},
        {"Stra\xc3\x9f"
         "e",
         "strasse"},
        {"\xc3\x80\xc3\x82\xc3\x84 \xc3\xa0\xc3\xa2\xc3\xa4", "aaa aaa"},
        {"\xc3\x89\xc3\x88\xc3\x8a\xc3\x8b \xc3\xa9\xc3\xa8\xc3\xaa\xc3\xab", "eeee eeee"},
        {"\xc3\x8e\xc3\x8f\xc3\xae\xc3\xaf", "iiii"},
        {"\xc3\x94\xc3\x96\xc3\xb4\xc3\xb6", "oooo"},
        {"\xc3\x99\xc3\x9b\xc3\x9c\xc3\xb9\xc3\xbb\xc3\xbc", "uuuuuu"},
        {"\xc3\xbf\xc5\xb8", "yy"},
        {"\xc3\x87\xc3\xa7", "cc"},
        {"\xc5\x93\xc5\x92", "oeoe"},
        {"\xc5\x81\xc3\xb3"
         "d\xc5\xba",
         "lodz"},
        {"\xc4\xb2ssel", "ijssel"},
        {"a_b--c''d \t\n e", "a b c d e"},
        {"---", ""},
        {"", ""},
        {"D\xc3\xa9partement 2A", "departement 2a"},
        {"\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1", "\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1"},
        {"x \xc3\x97 y", "x \xc3\x97 y"},
        {"Cl\xe9menciat", "clmenciat"}, /* invalid byte dropped */
        {"A\xc2\xa0"
         "B",
         "a b"},
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(cases); i++) {
        char *f = mu_text_fold(cases[i].in);
        if (strcmp(f, cases[i].out) != 0)
            fail_msg("fold(\"%s\") = \"%s\", want \"%s\"", cases[i].in, f, cases[i].out);
        free(f);
    }
    assert_null(mu_text_fold(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siren),       cmocka_unit_test(test_insee),
        cmocka_unit_test(test_dept_region), cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_name),        cmocka_unit_test(test_ident),
        cmocka_unit_test(test_email),       cmocka_unit_test(test_fold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
