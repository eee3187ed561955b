/* e2ebuf.h: the byte layout shared by the saved end-to-end encryption state (ratchet state,
 * sessions, the prekey store): a writer and a reader of big-endian integers and fixed-size
 * byte strings, framed as
 *     magic (4 ASCII bytes) || version (1 byte) || body || BLAKE2b-128 of everything before
 * so that a truncated, extended or corrupted blob is refused whole rather than half-parsed.
 * The buffers hold secrets: they are wiped whenever they are released or regrown. */
#ifndef PC_E2EBUF_H
#define PC_E2EBUF_H

#include <stddef.h>
#include <stdint.h>

#define PC_EB_MAGIC_BYTES 4
#define PC_EB_CHECK_BYTES 16

typedef struct {
    uint8_t *buf; /* owned until pc_eb_finish hands it over */
    size_t len, cap;
    int failed;   /* out of memory: every later call is a no-op, pc_eb_finish fails */
} pc_eb_writer;

typedef struct {
    const uint8_t *p; /* borrowed: the blob given to pc_eb_open */
    size_t left;
    int failed;       /* read past the end: every later read yields zeros */
} pc_eb_reader;

/* Starts a blob with magic and version. */
void pc_eb_begin(pc_eb_writer *w, const char magic[PC_EB_MAGIC_BYTES], uint8_t version);
void pc_eb_put_u8(pc_eb_writer *w, uint8_t v);
void pc_eb_put_u32(pc_eb_writer *w, uint32_t v);
void pc_eb_put_u64(pc_eb_writer *w, uint64_t v);
void pc_eb_put(pc_eb_writer *w, const void *b, size_t n);
/* Appends the checksum and hands the buffer over (*out, caller releases it with
 * pc_eb_free_secret). Returns 0, or -1 when memory ran out (nothing handed over). */
int pc_eb_finish(pc_eb_writer *w, uint8_t **out, size_t *out_len);
/* Releases a writer that will not be finished. */
void pc_eb_abandon(pc_eb_writer *w);

/* Checks the frame (length, magic, checksum) of blob and positions r on the body; *version is
 * the version byte for the caller to check. Returns 0 or -1. */
int pc_eb_open(pc_eb_reader *r, const uint8_t *blob, size_t len,
               const char magic[PC_EB_MAGIC_BYTES], uint8_t *version);
uint8_t pc_eb_get_u8(pc_eb_reader *r);
uint32_t pc_eb_get_u32(pc_eb_reader *r);
uint64_t pc_eb_get_u64(pc_eb_reader *r);
void pc_eb_get(pc_eb_reader *r, void *b, size_t n);
/* 0 when every read stayed inside the body and the body was read to its end, else -1. */
int pc_eb_close(const pc_eb_reader *r);

/* Wipes and frees a blob produced by any of the *_save functions (NULL is fine). */
void pc_eb_free_secret(uint8_t *blob, size_t len);

#endif
