/* box.h: the interim end-to-end encryption of one envelope, and the plaintext inside it.
 *
 * Envelope content (what the server stores and relays, opaque to it):
 *     nonce (24 random bytes) || crypto_box_easy(plaintext, nonce,
 *                                               recipient device X25519 identity key,
 *                                               sender device X25519 identity secret key)
 * The recipient opens it with crypto_box_open_easy using the sender device's identity key
 * (from GetDevices(sender)) and its own secret key.
 *
 * Plaintext, version 1 (all integers big-endian):
 *     byte 0      format version, 1
 *     byte 1      kind: 1 = text message
 *     bytes 2..9  sent_ms: the sender's wall clock, milliseconds since the Unix epoch
 *     bytes 10..  the message text, UTF-8, not NUL-terminated (may be empty)
 * Readers reject any other version or kind (reported as undecryptable, never shown). */
#ifndef PC_BOX_H
#define PC_BOX_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "status.h"

#define PC_BOX_VERSION 1
#define PC_BOX_KIND_TEXT 1
#define PC_BOX_HEADER_BYTES 10
#define PC_BOX_OVERHEAD (crypto_box_NONCEBYTES + crypto_box_MACBYTES)
/* Longest text that still fits one envelope. */
#define PC_BOX_TEXT_MAX (PARLEY_MAX_ENVELOPE_BYTES - PC_BOX_OVERHEAD - PC_BOX_HEADER_BYTES)

/* Encrypts pt into a new buffer *out (caller frees) of pt_len + PC_BOX_OVERHEAD bytes. */
int pc_box_seal(const uint8_t *pt, size_t pt_len, const uint8_t recipient_pk[32],
                const uint8_t sender_sk[32], uint8_t **out, size_t *out_len, pc_status *st);
/* Decrypts content into a new buffer *out (caller frees); -1 (PC_ERR_CRYPTO) when it was
 * tampered with, is too short, or the keys do not match. */
int pc_box_open(const uint8_t *content, size_t len, const uint8_t sender_pk[32],
                const uint8_t recipient_sk[32], uint8_t **out, size_t *out_len, pc_status *st);

/* A decoded version-1 text message; text points into the plaintext buffer it came from. */
typedef struct {
    uint64_t sent_ms;
    const char *text;
    size_t text_len;
} pc_box_text;

/* Builds the version-1 plaintext of a text message and seals it (see pc_box_seal). */
int pc_box_seal_text(const char *text, size_t len, uint64_t sent_ms,
                     const uint8_t recipient_pk[32], const uint8_t sender_sk[32], uint8_t **out,
                     size_t *out_len, pc_status *st);
/* Parses a plaintext produced by pc_box_open. */
int pc_box_parse_text(const uint8_t *pt, size_t len, pc_box_text *out, pc_status *st);

#endif
