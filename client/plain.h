/* plain.h: the plaintext inside an end-to-end encrypted message (what e2ee.h encrypts), the
 * same for every recipient device of a send.
 *
 * Version 1 (all integers big-endian):
 *     byte 0      format version, 1
 *     byte 1      kind: 1 = text message, 2 = sent transcript
 *     bytes 2..9  sent_ms: the sender's wall clock, milliseconds since the Unix epoch
 *   kind 1:
 *     bytes 10..  the message text, UTF-8, not NUL-terminated (may be empty)
 *   kind 2 (a copy of a text message this account sent to another account, for the sender's
 *   own other devices):
 *     byte 10     length L of the recipient account name (1..PARLEY_NAME_MAX)
 *     bytes 11..  the recipient account name (L bytes), then the text
 *   kind 3 (a call signal: offer, answer, candidate, hangup or busy; sent urgent):
 *     bytes 10..  one serialised parley.call.v1.CallSignal (client/proto/call.proto, call.h),
 *                 1..PC_PLAIN_SIGNAL_MAX bytes
 * Readers reject any other version or kind (reported as undecryptable, never shown). */
#ifndef PC_PLAIN_H
#define PC_PLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "status.h"

#define PC_PLAIN_VERSION 1
#define PC_PLAIN_KIND_TEXT 1
#define PC_PLAIN_KIND_SENT 2
#define PC_PLAIN_KIND_CALL 3
#define PC_PLAIN_HEADER_BYTES 10
/* Longest text a message carries: a sent transcript has to fit one envelope as well. */
#define PC_PLAIN_TEXT_MAX (PC_E2S_PLAINTEXT_MAX - PC_PLAIN_HEADER_BYTES - 1 - PARLEY_NAME_MAX)
/* Longest call signal a message carries. */
#define PC_PLAIN_SIGNAL_MAX (PC_E2S_PLAINTEXT_MAX - PC_PLAIN_HEADER_BYTES)

/* A decoded message; text, sent_to and signal point into the plaintext buffer it came from. */
typedef struct {
    int kind;
    uint64_t sent_ms;
    const char *sent_to;  /* kind 2: the recipient account, not NUL-terminated; else NULL */
    size_t sent_to_len;
    const char *text;     /* kinds 1 and 2; NULL for kind 3 */
    size_t text_len;
    const uint8_t *signal; /* kind 3: the serialised CallSignal; else NULL */
    size_t signal_len;
} pc_plain;

/* Builds the plaintext of a text message (sent_to NULL) or of a sent transcript into a new
 * buffer *out (caller frees, wiping it: it is a plaintext). */
int pc_plain_build(const char *text, size_t len, uint64_t sent_ms, const char *sent_to,
                   uint8_t **out, size_t *out_len, pc_status *st);
/* Builds the plaintext of a call signal (sig: a serialised CallSignal, not empty) into a new
 * buffer *out (caller frees, wiping it: it carries the call's media key). */
int pc_plain_build_call(const uint8_t *sig, size_t len, uint64_t sent_ms, uint8_t **out,
                        size_t *out_len, pc_status *st);
/* Parses a plaintext; PC_ERR_CRYPTO for an unknown version, kind or a malformed one. */
int pc_plain_parse(const uint8_t *pt, size_t len, pc_plain *out, pc_status *st);

#endif
