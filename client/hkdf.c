#include "hkdf.h"

#include <sodium.h>
#include <string.h>

void pc_hkdf_extract(uint8_t prk[PC_HKDF_HASH_BYTES], const uint8_t *salt, size_t salt_len,
                     const uint8_t *ikm, size_t ikm_len)
{
    static const uint8_t zero_salt[PC_HKDF_HASH_BYTES];
    crypto_auth_hmacsha256_state h;

    if (!salt || !salt_len) {
        salt = zero_salt;
        salt_len = sizeof zero_salt;
    }
    crypto_auth_hmacsha256_init(&h, salt, salt_len);
    crypto_auth_hmacsha256_update(&h, ikm, ikm_len);
    crypto_auth_hmacsha256_final(&h, prk);
    sodium_memzero(&h, sizeof h);
}

int pc_hkdf_expand(uint8_t *okm, size_t okm_len, const uint8_t prk[PC_HKDF_HASH_BYTES],
                   const uint8_t *info, size_t info_len)
{
    crypto_auth_hmacsha256_state h;
    uint8_t t[PC_HKDF_HASH_BYTES];
    size_t done = 0, n;
    uint8_t counter = 0;

    if (okm_len == 0 || okm_len > PC_HKDF_OKM_MAX)
        return -1;
    /* T(i) = HMAC(PRK, T(i-1) || info || i), T(0) empty */
    while (done < okm_len) {
        counter++;
        crypto_auth_hmacsha256_init(&h, prk, PC_HKDF_HASH_BYTES);
        if (counter > 1)
            crypto_auth_hmacsha256_update(&h, t, sizeof t);
        if (info_len)
            crypto_auth_hmacsha256_update(&h, info, info_len);
        crypto_auth_hmacsha256_update(&h, &counter, 1);
        crypto_auth_hmacsha256_final(&h, t);
        n = okm_len - done < sizeof t ? okm_len - done : sizeof t;
        memcpy(okm + done, t, n);
        done += n;
    }
    sodium_memzero(&h, sizeof h);
    sodium_memzero(t, sizeof t);
    return 0;
}

int pc_hkdf(uint8_t *okm, size_t okm_len, const uint8_t *salt, size_t salt_len,
            const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len)
{
    uint8_t prk[PC_HKDF_HASH_BYTES];
    int rc;

    pc_hkdf_extract(prk, salt, salt_len, ikm, ikm_len);
    rc = pc_hkdf_expand(okm, okm_len, prk, info, info_len);
    sodium_memzero(prk, sizeof prk);
    return rc;
}
