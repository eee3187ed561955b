/* hkdf.h: HKDF-SHA-256 (RFC 5869), extract and expand, on libsodium's HMAC-SHA-256. Every key
 * derivation of the end-to-end encryption (X3DH, the Double Ratchet) goes through here. */
#ifndef PC_HKDF_H
#define PC_HKDF_H

#include <stddef.h>
#include <stdint.h>

#define PC_HKDF_HASH_BYTES 32
/* RFC 5869: at most 255 blocks of output */
#define PC_HKDF_OKM_MAX (255 * PC_HKDF_HASH_BYTES)

/* PRK = HMAC-SHA-256(salt, IKM). A NULL or empty salt means 32 zero bytes (RFC 5869 2.2). */
void pc_hkdf_extract(uint8_t prk[PC_HKDF_HASH_BYTES], const uint8_t *salt, size_t salt_len,
                     const uint8_t *ikm, size_t ikm_len);
/* OKM (okm_len bytes) from PRK and info. Returns 0, or -1 when okm_len is 0 or above
 * PC_HKDF_OKM_MAX (okm untouched). */
int pc_hkdf_expand(uint8_t *okm, size_t okm_len, const uint8_t prk[PC_HKDF_HASH_BYTES],
                   const uint8_t *info, size_t info_len);
/* Extract then expand; the PRK is wiped. Returns as pc_hkdf_expand. */
int pc_hkdf(uint8_t *okm, size_t okm_len, const uint8_t *salt, size_t salt_len,
            const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len);

#endif
