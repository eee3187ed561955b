/* prekey_sig.h: the signed prekey transcript, shared by the client (signs it with the device
 * signing key) and the gateway (verifies it before storing), so both use the exact same bytes:
 *
 *   "parley-spk-v1" (13 ASCII bytes, no terminator) || id (u32 big-endian) || public key (32)
 *
 * 49 bytes, signed with Ed25519 (libsodium crypto_sign_detached). */
#ifndef PARLEY_PREKEY_SIG_H
#define PARLEY_PREKEY_SIG_H

#include <stddef.h>
#include <stdint.h>

#define PPKSIG_TAG "parley-spk-v1"
#define PPKSIG_TAG_BYTES 13
#define PPKSIG_TRANSCRIPT_BYTES (PPKSIG_TAG_BYTES + 4 + 32)

/* Writes the transcript of signed prekey (id, public_key) to out. */
void ppksig_transcript(uint8_t out[PPKSIG_TRANSCRIPT_BYTES], uint32_t id,
                       const uint8_t public_key[32]);
/* 0 when sig is a valid Ed25519 signature by signing_key over the transcript, else -1. */
int ppksig_verify(const uint8_t sig[64], uint32_t id, const uint8_t public_key[32],
                  const uint8_t signing_key[32]);

#endif
