/* auth.h: the signed transcripts of authentication and registration, and the registration
 * proof of work. Shared by the gateway (verifies) and the client (signs), so both build the
 * exact same bytes. All crypto is libsodium. */
#ifndef PARLEY_AUTH_H
#define PARLEY_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

#define PAUTH_TRANSCRIPT_MAX 512

/* Transcript bytes: the ASCII tag without terminator, then the fields in argument order:
 * fixed-size byte fields raw, strings as u16 big-endian length || bytes, integers big-endian
 * fixed width (u32: 4 bytes, u64: 8 bytes). Names are passed already normalised.
 *
 * "parley-auth-v1" || challenge || gateway_id || account || device_id u32 || timestamp_ms u64.
 * Returns its length, or 0 if a field is too long or NULL. */
size_t pauth_auth_transcript(uint8_t out[PAUTH_TRANSCRIPT_MAX],
                             const uint8_t challenge[PARLEY_CHALLENGE_BYTES],
                             const char *gateway_id, const char *account, uint32_t device_id,
                             uint64_t timestamp_ms);

/* "parley-register-v1" || challenge || username || account_key || signing_key || identity_key
 * || registration_id u32. Signed by both the account key and the device signing key. */
size_t pauth_register_transcript(uint8_t out[PAUTH_TRANSCRIPT_MAX],
                                 const uint8_t challenge[PARLEY_CHALLENGE_BYTES],
                                 const char *username, const uint8_t account_key[32],
                                 const uint8_t signing_key[32], const uint8_t identity_key[32],
                                 uint32_t registration_id);

/* libsodium: every function here calls sodium_init() itself (idempotent); services should still
 * call sodium_init() once at start, before using randombytes. */

/* Ed25519 detached signature check; 0 when valid. */
int pauth_verify(const uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t pk[32]);

/* Proof of work: SHA-256("parley-pow-v1" || challenge || u16 BE len || username || nonce u64 BE)
 * must start with `difficulty` zero bits. check returns 0 when it does. solve tries nonces from 0
 * upwards and returns the first that passes (0 when difficulty > PARLEY_POW_DIFFICULTY_MAX). */
int pauth_pow_check(const uint8_t challenge[PARLEY_CHALLENGE_BYTES], const char *username,
                    uint64_t nonce, unsigned difficulty);
uint64_t pauth_pow_solve(const uint8_t challenge[PARLEY_CHALLENGE_BYTES], const char *username,
                         unsigned difficulty);

/* Usernames: 3..32 of a-z 0-9 _ . after ASCII case folding. Writes the folded name to out
 * (PARLEY_NAME_MAX + 1 bytes); returns 0, or -1 when invalid. */
int pauth_name_normalize(const char *in, char out[PARLEY_NAME_MAX + 1]);
/* Same over len bytes that need not be NUL-terminated; an embedded NUL is invalid. */
int pauth_name_normalize_n(const char *in, size_t len, char out[PARLEY_NAME_MAX + 1]);

#endif
