#include "plain.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"

static void put_header(uint8_t *pt, int kind, uint64_t sent_ms)
{
    pt[0] = PC_PLAIN_VERSION;
    pt[1] = (uint8_t)kind;
    for (int i = 0; i < 8; i++)
        pt[2 + i] = (uint8_t)(sent_ms >> (56 - 8 * i));
}

int pc_plain_build(const char *text, size_t len, uint64_t sent_ms, const char *sent_to,
                   uint8_t **out, size_t *out_len, pc_status *st)
{
    size_t to_len = sent_to ? strlen(sent_to) : 0;
    size_t n, off = PC_PLAIN_HEADER_BYTES;
    uint8_t *pt;

    if (len > PC_PLAIN_TEXT_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "message of %zu bytes is over the %d byte limit",
                             len, (int)PC_PLAIN_TEXT_MAX);
    if (sent_to && (to_len == 0 || to_len > PARLEY_NAME_MAX))
        return pc_status_set(st, PC_ERR_LOCAL, "invalid recipient name");
    n = PC_PLAIN_HEADER_BYTES + (sent_to ? 1 + to_len : 0) + len;
    pt = malloc(n);
    if (!pt)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    put_header(pt, sent_to ? PC_PLAIN_KIND_SENT : PC_PLAIN_KIND_TEXT, sent_ms);
    if (sent_to) {
        pt[off++] = (uint8_t)to_len;
        memcpy(pt + off, sent_to, to_len);
        off += to_len;
    }
    if (len)
        memcpy(pt + off, text, len);
    *out = pt;
    *out_len = n;
    return 0;
}

int pc_plain_build_call(const uint8_t *sig, size_t len, uint64_t sent_ms, uint8_t **out,
                        size_t *out_len, pc_status *st)
{
    uint8_t *pt;

    if (len == 0 || len > PC_PLAIN_SIGNAL_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "call signal of %zu bytes (1..%d allowed)", len,
                             (int)PC_PLAIN_SIGNAL_MAX);
    if (!(pt = malloc(PC_PLAIN_HEADER_BYTES + len)))
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    put_header(pt, PC_PLAIN_KIND_CALL, sent_ms);
    memcpy(pt + PC_PLAIN_HEADER_BYTES, sig, len);
    *out = pt;
    *out_len = PC_PLAIN_HEADER_BYTES + len;
    return 0;
}

int pc_plain_parse(const uint8_t *pt, size_t len, pc_plain *out, pc_status *st)
{
    size_t off = PC_PLAIN_HEADER_BYTES;

    memset(out, 0, sizeof *out);
    if (len < PC_PLAIN_HEADER_BYTES)
        return pc_status_set(st, PC_ERR_CRYPTO, "plaintext too short");
    if (pt[0] != PC_PLAIN_VERSION)
        return pc_status_set(st, PC_ERR_CRYPTO, "unsupported message format %u",
                             (unsigned)pt[0]);
    if (pt[1] != PC_PLAIN_KIND_TEXT && pt[1] != PC_PLAIN_KIND_SENT && pt[1] != PC_PLAIN_KIND_CALL)
        return pc_status_set(st, PC_ERR_CRYPTO, "unsupported message kind %u", (unsigned)pt[1]);
    out->kind = pt[1];
    for (int i = 0; i < 8; i++)
        out->sent_ms = out->sent_ms << 8 | pt[2 + i];
    if (out->kind == PC_PLAIN_KIND_CALL) {
        if (len == off || len - off > PC_PLAIN_SIGNAL_MAX)
            return pc_status_set(st, PC_ERR_CRYPTO, "malformed call signal");
        out->signal = pt + off;
        out->signal_len = len - off;
        return 0;
    }
    if (out->kind == PC_PLAIN_KIND_SENT) {
        size_t to_len = len > off ? pt[off] : 0;
        char norm[PARLEY_NAME_MAX + 1];
        if (to_len == 0 || to_len > PARLEY_NAME_MAX || len - off - 1 < to_len)
            return pc_status_set(st, PC_ERR_CRYPTO, "malformed sent transcript");
        /* the recipient must be an account name as the server writes them */
        if (pauth_name_normalize_n((const char *)pt + off + 1, to_len, norm) < 0 ||
            memcmp(norm, pt + off + 1, to_len))
            return pc_status_set(st, PC_ERR_CRYPTO, "sent transcript names no valid account");
        out->sent_to = (const char *)pt + off + 1;
        out->sent_to_len = to_len;
        off += 1 + to_len;
    }
    out->text = (const char *)pt + off;
    out->text_len = len - off;
    return 0;
}
