/* The error line of a refused request, and the strict parse of answers and import files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void check_line(long status, const char *body, const char *rid, const char *want)
{
    char *line = mu_cli_problem_line(status, body, body ? strlen(body) : 0, rid);
    if (strcmp(line, want) != 0)
        fail_msg("problem line \"%s\", want \"%s\"", line, want);
    free(line);
}

static void test_problem_line(void **state)
{
    (void)state;
    const char *problem = "{\"type\":\"https://mutualis.example/problems/not-found\","
                          "\"title\":\"Not found\",\"status\":404,"
                          "\"detail\":\"No tenant 77.\",\"request_id\":\"body-id\"}";
    check_line(404, problem, "0a1b2c", "No tenant 77. (HTTP 404, request 0a1b2c)");
    check_line(404, problem, "", "No tenant 77. (HTTP 404, request body-id)");
    check_line(409, "{\"title\":\"Conflict\",\"detail\":\"\"}", NULL, "Conflict (HTTP 409)");
    check_line(502, "<html>Bad Gateway</html>", "", "bad gateway (HTTP 502)");
    check_line(500, NULL, "x", "server error (HTTP 500, request x)");
    check_line(418, "[]", NULL, "request refused (HTTP 418)");
    check_line(302, "", NULL,
               "the server answered with a redirect, which is not followed; check MUTUALIS_URL "
               "(HTTP 302)");
    /* a detail cannot drive the terminal */
    check_line(400, "{\"detail\":\"bad\\u001b[2Jvalue\"}", NULL, "bad?[2Jvalue (HTTP 400)");
}

static void test_json_parse(void **state)
{
    (void)state;
    char msg[512];
    const char *ok = "[{\"code\":\"01001\"}]";
    cJSON *doc = mu_cli_json_parse(ok, strlen(ok), "communes.json", msg, sizeof(msg));
    assert_non_null(doc);
    cJSON_Delete(doc);

    const char *dup = "[{\"a\":1,\"a\":2}]";
    assert_null(mu_cli_json_parse(dup, strlen(dup), "epci.json", msg, sizeof(msg)));
    assert_non_null(strstr(msg, "epci.json"));
    assert_non_null(strstr(msg, "duplicate"));

    const char *cut = "[1,2";
    assert_null(mu_cli_json_parse(cut, strlen(cut), "communes.json", msg, sizeof(msg)));
    assert_non_null(strstr(msg, "communes.json: line 1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_problem_line),
        cmocka_unit_test(test_json_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
