/* auth.h: the signed transcripts of authentication and registration, and the registration
 * proof of work. Shared by the gateway (verifies) and the client (signs), so both build the
 * exact same bytes. All crypto is libsodium. */
#ifndef PARLEY_AUTH_H
#define PARLEY_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

#define PAUTH_TRANSCRIPT_MAX 512

/* "parley-auth-v1" transcript; each variable field length-prefixed. Returns its length, or 0
 * if a field is too long. */
size_t pauth_auth_transcript(uint8_t out[PAUTH_TRANSCRIPT_MAX],
                             const uint8_t challenge[PARLEY_CHALLENGE_BYTES],
                             const char *gateway_id, const char *account, uint32_t device_id,
                             uint64_t timestamp_ms);

/* "parley-register-v1" transcript over challenge, username and the three public keys and
 * registration id. */
size_t pauth_register_transcript(uint8_t out[PAUTH_TRANSCRIPT_MAX],
                                 const uint8_t challenge[PARLEY_CHALLENGE_BYTES],
                                 const char *username, const uint8_t account_key[32],
                                 const uint8_t signing_key[32], const uint8_t identity_key[32],
                                 uint32_t registration_id);

/* Ed25519 detached signature check; 0 when valid. */
int pauth_verify(const uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t pk[32]);

/* Proof of work: SHA-256("parley-pow-v1" || challenge || username || nonce_be64) must start
 * with `difficulty` zero bits. check returns 0 when it does. */
int pauth_pow_check(const uint8_t challenge[PARLEY_CHALLENGE_BYTES], const char *username,
                    uint64_t nonce, unsigned difficulty);
uint64_t pauth_pow_solve(const uint8_t challenge[PARLEY_CHALLENGE_BYTES], const char *username,
                         unsigned difficulty);

/* Usernames: 3..32 of a-z 0-9 _ . after ASCII case folding. Writes the folded name to out
 * (PARLEY_NAME_MAX + 1 bytes); returns 0, or -1 when invalid. */
int pauth_name_normalize(const char *in, char out[PARLEY_NAME_MAX + 1]);

#endif
