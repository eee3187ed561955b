/* turn_rest.c: the TURN REST password (see turn_rest.h). */
#include "turn_rest.h"

#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#define PTURN_HMAC_LEN 20

_Static_assert(PTURN_PASSWORD_LEN == sodium_base64_ENCODED_LEN(PTURN_HMAC_LEN,
                                                               sodium_base64_VARIANT_ORIGINAL) - 1,
               "password length is the base64 of one HMAC-SHA1");

int pturn_password(const char *secret, const char *username, size_t ulen,
                   char out[PTURN_PASSWORD_LEN + 1])
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    size_t slen = strlen(secret);
    if (slen > (size_t)INT32_MAX ||
        !HMAC(EVP_sha1(), secret, (int)slen, (const unsigned char *)username, ulen, mac,
              &maclen) ||
        maclen != PTURN_HMAC_LEN)
        return -1;
    sodium_bin2base64(out, PTURN_PASSWORD_LEN + 1, mac, maclen, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(mac, sizeof mac);
    return 0;
}
