#include "fingerprint.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

void pc_fp_party(const uint8_t account_pk[32], const char *id, size_t id_len,
                 char out[PC_FP_PARTY_DIGITS + 1])
{
    const uint8_t version[2] = { (uint8_t)(PC_FP_VERSION >> 8), (uint8_t)PC_FP_VERSION };
    uint8_t h[crypto_hash_sha512_BYTES];
    crypto_hash_sha512_state s;

    crypto_hash_sha512_init(&s);
    crypto_hash_sha512_update(&s, version, sizeof version);
    crypto_hash_sha512_update(&s, account_pk, 32);
    crypto_hash_sha512_update(&s, (const uint8_t *)id, id_len);
    crypto_hash_sha512_final(&s, h);
    /* the loop makes a brute-force search for a colliding key PC_FP_ITERATIONS times dearer */
    for (int i = 0; i < PC_FP_ITERATIONS; i++) {
        crypto_hash_sha512_init(&s);
        crypto_hash_sha512_update(&s, h, sizeof h);
        crypto_hash_sha512_update(&s, account_pk, 32);
        crypto_hash_sha512_final(&s, h);
    }
    for (int c = 0; c < 6; c++) {
        const uint8_t *b = h + 5 * c;
        uint64_t v = (uint64_t)b[0] << 32 | (uint64_t)b[1] << 24 | (uint64_t)b[2] << 16 |
                     (uint64_t)b[3] << 8 | b[4];

        snprintf(out + 5 * c, 6, "%05u", (unsigned)(v % 100000));
    }
}

void pc_fp_safety_number(const uint8_t a_account_pk[32], const char *a_id, size_t a_id_len,
                         const uint8_t b_account_pk[32], const char *b_id, size_t b_id_len,
                         char out[PC_FP_DIGITS + 1])
{
    char a[PC_FP_PARTY_DIGITS + 1], b[PC_FP_PARTY_DIGITS + 1];

    pc_fp_party(a_account_pk, a_id, a_id_len, a);
    pc_fp_party(b_account_pk, b_id, b_id_len, b);
    if (strcmp(a, b) <= 0)
        snprintf(out, PC_FP_DIGITS + 1, "%s%s", a, b);
    else
        snprintf(out, PC_FP_DIGITS + 1, "%s%s", b, a);
}

int pc_fp_format(const char *digits, char out[PC_FP_FORMATTED_BYTES])
{
    size_t n = 0;

    if (strlen(digits) != PC_FP_DIGITS || strspn(digits, "0123456789") != PC_FP_DIGITS)
        return -1;
    for (int g = 0; g < PC_FP_DIGITS / 5; g++) {
        if (g)
            out[n++] = ' ';
        memcpy(out + n, digits + 5 * g, 5);
        n += 5;
    }
    out[n] = '\0';
    return 0;
}
