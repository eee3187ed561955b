/* lt_payload.h: the content of every envelope the harness sends: a 40-byte header the receiver
 * needs for its accounting, then pseudo-random bytes up to --payload. The server treats all of
 * it as opaque ciphertext. The filler is derived from the sequence number, so a resend carries
 * exactly the bytes of the first send.
 *
 * Header (little-endian): magic "PLT1" | flags u32 | run id u64 | sequence u64 |
 * send time u64 (CLOCK_MONOTONIC microseconds of the first send) | sender u32 | recipient u32
 * (device indexes in this run). */
#ifndef LT_PAYLOAD_H
#define LT_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#define LT_HDR_BYTES 40
#define LT_HDR_MAGIC 0x31544c50u /* "PLT1" */
#define LT_HDR_OFFLINE 1u        /* the recipient was not connected when it was sent */

typedef struct {
    uint32_t flags;
    uint64_t run_id, seq, sent_us;
    uint32_t sender, recipient;
} lt_hdr;

/* Writes h and the filler into buf (len >= LT_HDR_BYTES). */
void lt_payload_fill(uint8_t *buf, size_t len, const lt_hdr *h);
/* Reads the header; 0, or -1 when buf is too short or not ours (wrong magic). */
int lt_payload_parse(const uint8_t *buf, size_t len, lt_hdr *h);
/* The Send's client_id of message seq: unique per run, never 0. */
uint64_t lt_payload_client_id(uint64_t run_id, uint64_t seq);

#endif
