#include "e2ebuf.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void reserve(pc_eb_writer *w, size_t extra)
{
    uint8_t *nb;
    size_t cap;

    if (w->failed)
        return;
    if (extra > SIZE_MAX / 2 - w->len) {
        w->failed = 1;
        return;
    }
    if (w->len + extra <= w->cap)
        return;
    cap = w->cap ? w->cap : 256;
    while (cap < w->len + extra)
        cap *= 2;
    /* not realloc: the old buffer holds secrets and must be wiped before it is freed */
    nb = malloc(cap);
    if (!nb) {
        w->failed = 1;
        return;
    }
    if (w->len)
        memcpy(nb, w->buf, w->len);
    pc_eb_free_secret(w->buf, w->cap);
    w->buf = nb;
    w->cap = cap;
}

void pc_eb_begin(pc_eb_writer *w, const char magic[PC_EB_MAGIC_BYTES], uint8_t version)
{
    memset(w, 0, sizeof *w);
    pc_eb_put(w, magic, PC_EB_MAGIC_BYTES);
    pc_eb_put_u8(w, version);
}

void pc_eb_put(pc_eb_writer *w, const void *b, size_t n)
{
    reserve(w, n);
    if (w->failed || !n)
        return;
    memcpy(w->buf + w->len, b, n);
    w->len += n;
}

void pc_eb_put_u8(pc_eb_writer *w, uint8_t v)
{
    pc_eb_put(w, &v, 1);
}

void pc_eb_put_u32(pc_eb_writer *w, uint32_t v)
{
    uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    pc_eb_put(w, b, sizeof b);
}

void pc_eb_put_u64(pc_eb_writer *w, uint64_t v)
{
    pc_eb_put_u32(w, (uint32_t)(v >> 32));
    pc_eb_put_u32(w, (uint32_t)v);
}

int pc_eb_finish(pc_eb_writer *w, uint8_t **out, size_t *out_len)
{
    uint8_t check[PC_EB_CHECK_BYTES];

    if (!w->failed)
        crypto_generichash(check, sizeof check, w->buf, w->len, NULL, 0);
    pc_eb_put(w, check, sizeof check);
    if (w->failed) {
        pc_eb_abandon(w);
        return -1;
    }
    *out = w->buf;
    *out_len = w->len;
    /* the spare capacity beyond len is never written, so nothing secret is left behind */
    memset(w, 0, sizeof *w);
    return 0;
}

void pc_eb_abandon(pc_eb_writer *w)
{
    pc_eb_free_secret(w->buf, w->cap);
    memset(w, 0, sizeof *w);
}

int pc_eb_open(pc_eb_reader *r, const uint8_t *blob, size_t len,
               const char magic[PC_EB_MAGIC_BYTES], uint8_t *version)
{
    uint8_t check[PC_EB_CHECK_BYTES];

    memset(r, 0, sizeof *r);
    r->failed = 1;
    if (!blob || len < PC_EB_MAGIC_BYTES + 1 + PC_EB_CHECK_BYTES)
        return -1;
    crypto_generichash(check, sizeof check, blob, len - PC_EB_CHECK_BYTES, NULL, 0);
    if (sodium_memcmp(check, blob + len - PC_EB_CHECK_BYTES, sizeof check) != 0 ||
        memcmp(blob, magic, PC_EB_MAGIC_BYTES) != 0)
        return -1;
    *version = blob[PC_EB_MAGIC_BYTES];
    r->p = blob + PC_EB_MAGIC_BYTES + 1;
    r->left = len - PC_EB_MAGIC_BYTES - 1 - PC_EB_CHECK_BYTES;
    r->failed = 0;
    return 0;
}

void pc_eb_get(pc_eb_reader *r, void *b, size_t n)
{
    if (r->failed || n > r->left) {
        r->failed = 1;
        memset(b, 0, n);
        return;
    }
    memcpy(b, r->p, n);
    r->p += n;
    r->left -= n;
}

uint8_t pc_eb_get_u8(pc_eb_reader *r)
{
    uint8_t v;

    pc_eb_get(r, &v, 1);
    return v;
}

uint32_t pc_eb_get_u32(pc_eb_reader *r)
{
    uint8_t b[4];

    pc_eb_get(r, b, sizeof b);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

uint64_t pc_eb_get_u64(pc_eb_reader *r)
{
    uint64_t hi = pc_eb_get_u32(r);

    return hi << 32 | pc_eb_get_u32(r);
}

int pc_eb_close(const pc_eb_reader *r)
{
    return r->failed || r->left ? -1 : 0;
}

void pc_eb_free_secret(uint8_t *blob, size_t len)
{
    if (!blob)
        return;
    sodium_memzero(blob, len);
    free(blob);
}
