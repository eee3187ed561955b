#include "box.h"

#include <stdlib.h>
#include <string.h>

int pc_box_seal(const uint8_t *pt, size_t pt_len, const uint8_t recipient_pk[32],
                const uint8_t sender_sk[32], uint8_t **out, size_t *out_len, pc_status *st)
{
    uint8_t *buf;

    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    buf = malloc(pt_len + PC_BOX_OVERHEAD);
    if (!buf)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    randombytes_buf(buf, crypto_box_NONCEBYTES);
    if (crypto_box_easy(buf + crypto_box_NONCEBYTES, pt, pt_len, buf, recipient_pk,
                        sender_sk) != 0) {
        free(buf);
        return pc_status_set(st, PC_ERR_CRYPTO, "cannot encrypt to this device key");
    }
    *out = buf;
    *out_len = pt_len + PC_BOX_OVERHEAD;
    return 0;
}

int pc_box_open(const uint8_t *content, size_t len, const uint8_t sender_pk[32],
                const uint8_t recipient_sk[32], uint8_t **out, size_t *out_len, pc_status *st)
{
    uint8_t *buf;
    size_t n;

    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (len < PC_BOX_OVERHEAD)
        return pc_status_set(st, PC_ERR_CRYPTO, "content too short (%zu bytes)", len);
    n = len - PC_BOX_OVERHEAD;
    buf = malloc(n ? n : 1);
    if (!buf)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    if (crypto_box_open_easy(buf, content + crypto_box_NONCEBYTES, len - crypto_box_NONCEBYTES,
                             content, sender_pk, recipient_sk) != 0) {
        free(buf);
        return pc_status_set(st, PC_ERR_CRYPTO,
                             "authentication failed (tampered, or not for this device key)");
    }
    *out = buf;
    *out_len = n;
    return 0;
}

int pc_box_seal_text(const char *text, size_t len, uint64_t sent_ms,
                     const uint8_t recipient_pk[32], const uint8_t sender_sk[32], uint8_t **out,
                     size_t *out_len, pc_status *st)
{
    uint8_t *pt;
    int rc;

    if (len > PC_BOX_TEXT_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "message of %zu bytes is over the %d byte limit",
                             len, (int)PC_BOX_TEXT_MAX);
    pt = malloc(PC_BOX_HEADER_BYTES + len);
    if (!pt)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    pt[0] = PC_BOX_VERSION;
    pt[1] = PC_BOX_KIND_TEXT;
    for (int i = 0; i < 8; i++)
        pt[2 + i] = (uint8_t)(sent_ms >> (56 - 8 * i));
    if (len)
        memcpy(pt + PC_BOX_HEADER_BYTES, text, len);
    rc = pc_box_seal(pt, PC_BOX_HEADER_BYTES + len, recipient_pk, sender_sk, out, out_len, st);
    sodium_memzero(pt, PC_BOX_HEADER_BYTES + len);
    free(pt);
    return rc;
}

int pc_box_parse_text(const uint8_t *pt, size_t len, pc_box_text *out, pc_status *st)
{
    if (len < PC_BOX_HEADER_BYTES)
        return pc_status_set(st, PC_ERR_CRYPTO, "plaintext too short");
    if (pt[0] != PC_BOX_VERSION)
        return pc_status_set(st, PC_ERR_CRYPTO, "unsupported message format %u",
                             (unsigned)pt[0]);
    if (pt[1] != PC_BOX_KIND_TEXT)
        return pc_status_set(st, PC_ERR_CRYPTO, "unsupported message kind %u", (unsigned)pt[1]);
    out->sent_ms = 0;
    for (int i = 0; i < 8; i++)
        out->sent_ms = out->sent_ms << 8 | pt[2 + i];
    out->text = (const char *)pt + PC_BOX_HEADER_BYTES;
    out->text_len = len - PC_BOX_HEADER_BYTES;
    return 0;
}
