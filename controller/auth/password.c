/* Passwords: argon2id (libargon2) with the OWASP parameters (t=2, m=19 MiB, p=1), a random
 * 16-byte salt and a 32-byte tag, stored in the PHC encoded form ("$argon2id$v=19$..."). */
#include "auth/auth.h"

#include <argon2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/validate.h"

#define PW_T_COST      2
#define PW_M_COST      19456 /* KiB */
#define PW_PARALLELISM 1
#define PW_SALT_LEN    16
#define PW_HASH_LEN    32
#define PW_MIN_BYTES   12
#define PW_MAX_BYTES   256

char *mu_auth_password_hash(const char *password)
{
    unsigned char salt[PW_SALT_LEN];
    mu_random_bytes(salt, sizeof salt);
    size_t enclen = argon2_encodedlen(PW_T_COST, PW_M_COST, PW_PARALLELISM, PW_SALT_LEN,
                                      PW_HASH_LEN, Argon2_id);
    char *encoded = mu_xmalloc(enclen);
    int rc = argon2id_hash_encoded(PW_T_COST, PW_M_COST, PW_PARALLELISM, password, strlen(password),
                                   salt, sizeof salt, PW_HASH_LEN, encoded, enclen);
    if (rc != ARGON2_OK) {
        /* Only an allocation failure inside libargon2 can get here with these constants:
         * treated like any other allocation failure. */
        fprintf(stderr, "fatal: argon2id failed: %s\n", argon2_error_message(rc));
        abort();
    }
    return encoded;
}

bool mu_auth_password_verify(const char *encoded, const char *password)
{
    if (!encoded || !password)
        return false;
    /* The encoded string carries its own parameters; only argon2id hashes are accepted. */
    if (strncmp(encoded, "$argon2id$", 10) != 0)
        return false;
    return argon2id_verify(encoded, password, strlen(password)) == ARGON2_OK;
}

int mu_auth_password_check(const char *password, struct mu_err *err)
{
    if (!password)
        return mu_err_setf(err, MU_EINVAL, "password", "a password is required");
    size_t len = strnlen(password, PW_MAX_BYTES + 1);
    if (len < PW_MIN_BYTES)
        return mu_err_setf(err, MU_EINVAL, "password",
                           "the password is too short: use at least %d characters; "
                           "a phrase of a few words is long enough and easy to remember",
                           PW_MIN_BYTES);
    if (len > PW_MAX_BYTES)
        return mu_err_setf(err, MU_EINVAL, "password",
                           "the password is too long: use at most %d bytes "
                           "(an accented letter counts as two)",
                           PW_MAX_BYTES);
    if (!mu_utf8_valid(password, len))
        return mu_err_setf(err, MU_EINVAL, "password",
                           "the password is not valid UTF-8 text; check the encoding of the "
                           "terminal or file it came from");
    /* All one character: compare every byte sequence with the first UTF-8 character. */
    size_t first = 1;
    while (first < len && ((unsigned char)password[first] & 0xC0) == 0x80)
        first++;
    bool same = len % first == 0;
    for (size_t i = first; same && i < len; i += first)
        same = memcmp(password, password + i, first) == 0;
    if (same)
        return mu_err_setf(err, MU_EINVAL, "password",
                           "the password repeats a single character; choose a phrase of "
                           "several different words");
    return 0;
}
