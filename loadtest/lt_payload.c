#include "lt_payload.h"

#include <string.h>

static void lt_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void lt_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t lt_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t lt_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* splitmix64: a fast generator, plenty for filler bytes that only need to look random */
static uint64_t lt_mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void lt_payload_fill(uint8_t *buf, size_t len, const lt_hdr *h)
{
    uint64_t s = h->run_id ^ (h->seq * 0xd6e8feb86659fd93ull);
    size_t off = LT_HDR_BYTES;

    lt_put32(buf, LT_HDR_MAGIC);
    lt_put32(buf + 4, h->flags);
    lt_put64(buf + 8, h->run_id);
    lt_put64(buf + 16, h->seq);
    lt_put64(buf + 24, h->sent_us);
    lt_put32(buf + 32, h->sender);
    lt_put32(buf + 36, h->recipient);
    while (off < len) {
        uint64_t r = lt_mix(&s);
        size_t n = len - off < 8 ? len - off : 8;
        memcpy(buf + off, &r, n);
        off += n;
    }
}

int lt_payload_parse(const uint8_t *buf, size_t len, lt_hdr *h)
{
    if (len < LT_HDR_BYTES || lt_get32(buf) != LT_HDR_MAGIC)
        return -1;
    h->flags = lt_get32(buf + 4);
    h->run_id = lt_get64(buf + 8);
    h->seq = lt_get64(buf + 16);
    h->sent_us = lt_get64(buf + 24);
    h->sender = lt_get32(buf + 32);
    h->recipient = lt_get32(buf + 36);
    return 0;
}

uint64_t lt_payload_client_id(uint64_t run_id, uint64_t seq)
{
    uint64_t s = run_id + seq * 0x9e3779b97f4a7c15ull;
    uint64_t id = lt_mix(&s);
    return id ? id : 1;
}
