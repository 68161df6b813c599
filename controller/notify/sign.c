/* Webhook signatures and secrets (notify.h). */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify/notify.h"

void mu_notify_sign(const char *secret, int64_t t, const char *body, size_t body_len,
                    char out[MU_NOTIFY_SIG_MAX])
{
    struct mu_buf msg;
    unsigned char mac[32];
    char hex[65];

    mu_buf_init(&msg);
    mu_buf_printf(&msg, "%" PRId64 ".", t);
    mu_buf_append(&msg, body, body_len);
    /* SHA-256 HMAC with a key of any length cannot fail but for a broken library: like an
     * allocation failure, that is not a path to handle. */
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret, strlen(secret), msg.data, msg.len, mac) != 0) {
        fputs("mutualis: gnutls_hmac_fast(SHA-256) failed\n", stderr);
        abort();
    }
    mu_buf_free(&msg);
    mu_hex_encode(mac, sizeof mac, hex);
    snprintf(out, MU_NOTIFY_SIG_MAX, "t=%" PRId64 ",v1=%s", t, hex);
}

void mu_notify_secret_new(char out[MU_NOTIFY_SECRET_HEX + 1])
{
    unsigned char raw[MU_NOTIFY_SECRET_HEX / 2];

    mu_random_bytes(raw, sizeof raw);
    mu_hex_encode(raw, sizeof raw, out);
    memset(raw, 0, sizeof raw);
}

bool mu_notify_type_prefix_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 64)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}
