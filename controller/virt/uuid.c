/* RFC 4122 version 4 UUIDs: the identity of a VM's domain on every node. */
#include <string.h>

#include "mutualis/util.h"
#include "virt/virt.h"

void mu_uuid_generate(char out[MU_UUID_LEN + 1])
{
    unsigned char b[16];
    mu_random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10xx */
    char hex[33];
    mu_hex_encode(b, sizeof b, hex);
    /* 8-4-4-4-12 */
    static const int groups[] = {8, 4, 4, 4, 12};
    size_t o = 0, h = 0;
    for (size_t g = 0; g < MU_ARRAY_LEN(groups); g++) {
        if (g > 0)
            out[o++] = '-';
        memcpy(out + o, hex + h, (size_t)groups[g]);
        o += (size_t)groups[g];
        h += (size_t)groups[g];
    }
    out[o] = '\0';
}

/* Lower-case 8-4-4-4-12 hex: the one spelling Mutualis writes, so that "mu-<uuid>" names
 * and look-ups always agree. */
bool mu_uuid_valid(const char *s)
{
    if (!s || strlen(s) != MU_UUID_LEN)
        return false;
    for (size_t i = 0; i < MU_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}
