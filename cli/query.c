/* Query strings: keys are ours, values come from the user and are percent-encoded. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

void mu_cli_query_add(struct mu_buf *b, const char *key, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    mu_buf_puts(b, b->data && strchr(b->data, '?') ? "&" : "?");
    mu_buf_puts(b, key);
    mu_buf_puts(b, "=");
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (unreserved(*p)) {
            mu_buf_append(b, p, 1);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            mu_buf_append(b, esc, sizeof(esc));
        }
    }
}

void mu_cli_query_add_i64(struct mu_buf *b, const char *key, int64_t value)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRId64, value);
    mu_cli_query_add(b, key, num);
}
