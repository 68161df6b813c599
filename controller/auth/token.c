/* API tokens: "mut_" + 43 base64url characters (32 random bytes, no padding), stored as the
 * hex SHA-256 of the whole secret. The secret itself is shown once and never stored. */
#include "auth/auth.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_RANDOM_BYTES 32
#define TOKEN_BODY_LEN     (MU_TOKEN_LEN - (sizeof MU_TOKEN_PREFIX - 1))

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Index of c in the base64url alphabet, or -1. */
static int b64url_index(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Unpadded base64url of n bytes into out (4*ceil(n/3) - padding chars + NUL). */
static void b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
    }
    out[o] = '\0';
}

void mu_auth_token_hash(const char *secret, char hash[65])
{
    unsigned char digest[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, strlen(secret), digest) != 0) {
        fprintf(stderr, "fatal: SHA-256 failed\n");
        abort();
    }
    mu_hex_encode(digest, sizeof digest, hash);
}

void mu_auth_token_generate(char out[MU_TOKEN_LEN + 1], char hash[65])
{
    unsigned char raw[TOKEN_RANDOM_BYTES];
    _Static_assert((TOKEN_RANDOM_BYTES * 4 + 2) / 3 == TOKEN_BODY_LEN, "token length");
    mu_random_bytes(raw, sizeof raw);
    memcpy(out, MU_TOKEN_PREFIX, sizeof MU_TOKEN_PREFIX - 1);
    b64url_encode(raw, sizeof raw, out + sizeof MU_TOKEN_PREFIX - 1);
    mu_auth_token_hash(out, hash);
}

bool mu_auth_token_well_formed(const char *secret)
{
    if (!secret || strncmp(secret, MU_TOKEN_PREFIX, sizeof MU_TOKEN_PREFIX - 1) != 0)
        return false;
    const unsigned char *body = (const unsigned char *)secret + sizeof MU_TOKEN_PREFIX - 1;
    for (size_t i = 0; i < TOKEN_BODY_LEN; i++)
        if (b64url_index(body[i]) < 0) /* also stops at the NUL of a short string */
            return false;
    if (body[TOKEN_BODY_LEN] != '\0')
        return false;
    /* 43 characters carry 258 bits for 256: the last character's two low bits are padding
     * and must be zero, so that each token has exactly one spelling. */
    return (b64url_index(body[TOKEN_BODY_LEN - 1]) & 3) == 0;
}
