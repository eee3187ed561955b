/* stun.c: the STUN/TURN codec (see stun.h). HMAC-SHA1 comes from OpenSSL's libcrypto because
 * libsodium has none and STUN's MESSAGE-INTEGRITY requires it; CRC-32 from zlib. */
#include "stun.h"

#include <netinet/in.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <zlib.h>

static uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static size_t pad4(size_t n) { return (n + 3) & ~(size_t)3; }

uint16_t stun_msg_type(uint16_t method, stun_class cls)
{
    unsigned m = method & 0x0FFF, c = (unsigned)cls & 3;
    return (uint16_t)((m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) |
                      ((c & 2) << 7));
}

void stun_split_type(uint16_t t, uint16_t *method, stun_class *cls)
{
    *method = (uint16_t)((t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2));
    *cls = (stun_class)(((t >> 4) & 1) | ((t >> 7) & 2));
}

int stun_attr_known(uint16_t type)
{
    switch (type) {
    case STUN_A_MAPPED_ADDRESS:
    case STUN_A_USERNAME:
    case STUN_A_MESSAGE_INTEGRITY:
    case STUN_A_ERROR_CODE:
    case STUN_A_UNKNOWN_ATTRIBUTES:
    case STUN_A_CHANNEL_NUMBER:
    case STUN_A_LIFETIME:
    case STUN_A_XOR_PEER_ADDRESS:
    case STUN_A_DATA:
    case STUN_A_REALM:
    case STUN_A_NONCE:
    case STUN_A_XOR_RELAYED_ADDRESS:
    case STUN_A_REQUESTED_ADDRESS_FAMILY:
    case STUN_A_EVEN_PORT:
    case STUN_A_REQUESTED_TRANSPORT:
    case STUN_A_DONT_FRAGMENT:
    case STUN_A_XOR_MAPPED_ADDRESS:
    case STUN_A_RESERVATION_TOKEN:
    case STUN_A_PRIORITY:
    case STUN_A_USE_CANDIDATE:
        return 1;
    default:
        /* 0x8000-0xFFFF are comprehension-optional: never "unknown" in the 420 sense */
        return type >= 0x8000;
    }
}

/* CRC-32 of the message so far, xor'ed as FINGERPRINT wants. */
static uint32_t fingerprint_of(const uint8_t *buf, size_t len)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, buf, (uInt)len);
    return (uint32_t)crc ^ STUN_FINGERPRINT_XOR;
}

/* HMAC-SHA1 of a 20-byte header (with its length patched by the caller) and a body. */
static int hmac_sha1(const uint8_t *key, size_t keylen, const uint8_t hdr[STUN_HEADER_LEN],
                     const uint8_t *body, size_t blen, uint8_t out[STUN_HMAC_SHA1_LEN])
{
    int rc = STUN_ECRYPTO;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    if (!ctx)
        goto out;
    char digest[] = "SHA1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    /* an empty key is legal for HMAC; OpenSSL wants a non-NULL pointer for it */
    static const uint8_t nokey[1];
    size_t outlen = 0;
    if (EVP_MAC_init(ctx, keylen ? key : nokey, keylen, params) != 1 ||
        EVP_MAC_update(ctx, hdr, STUN_HEADER_LEN) != 1 ||
        (blen && EVP_MAC_update(ctx, body, blen) != 1) ||
        EVP_MAC_final(ctx, out, &outlen, STUN_HMAC_SHA1_LEN) != 1 || outlen != STUN_HMAC_SHA1_LEN)
        goto out;
    rc = STUN_OK;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

int stun_parse(stun_msg *m, const uint8_t *buf, size_t len)
{
    memset(m, 0, sizeof *m);
    if (len < STUN_HEADER_LEN)
        return STUN_ETRUNC;
    if (buf[0] & 0xC0)
        return STUN_ENOTSTUN;
    if (be32(buf + 4) != STUN_MAGIC_COOKIE)
        return STUN_ENOTSTUN;
    size_t mlen = be16(buf + 2);
    if (STUN_HEADER_LEN + mlen > len)
        return STUN_ETRUNC;
    stun_split_type(be16(buf), &m->method, &m->cls);
    memcpy(m->tid, buf + 8, STUN_TID_LEN);
    m->buf = buf;
    m->len = len;
    if ((mlen & 3) || STUN_HEADER_LEN + mlen != len)
        return STUN_EMALFORMED;

    size_t off = STUN_HEADER_LEN;
    while (off < len) {
        if (len - off < 4)
            return STUN_ETRUNC;
        uint16_t type = be16(buf + off), alen = be16(buf + off + 2);
        if (pad4(alen) > len - off - 4)
            return STUN_ETRUNC;
        const uint8_t *val = buf + off + 4;
        if (type == STUN_A_FINGERPRINT) {
            if (alen != 4 || off + 8 != len)
                return STUN_EMALFORMED;
            if (be32(val) != fingerprint_of(buf, off))
                return STUN_EFINGERPRINT;
            m->has_fingerprint = 1;
        } else if (m->integrity_off == 0) {
            if (m->nattrs == PARLEY_RELAY_STUN_MAX_ATTRS)
                return STUN_ETOOMANY;
            if (type == STUN_A_MESSAGE_INTEGRITY) {
                if (alen != STUN_HMAC_SHA1_LEN)
                    return STUN_EMALFORMED;
                m->integrity_off = off;
            } else if (!stun_attr_known(type) && m->nunknown < PARLEY_RELAY_STUN_MAX_UNKNOWN) {
                m->unknown[m->nunknown++] = type;
            }
            m->attrs[m->nattrs++] = (stun_attr){type, alen, val};
        }
        /* attributes between MESSAGE-INTEGRITY and FINGERPRINT are ignored (RFC 8489 14.5) */
        off += 4 + pad4(alen);
    }
    return STUN_OK;
}

const stun_attr *stun_find(const stun_msg *m, uint16_t type)
{
    for (size_t i = 0; i < m->nattrs; i++)
        if (m->attrs[i].type == type)
            return &m->attrs[i];
    return NULL;
}

int stun_check_integrity(const stun_msg *m, const uint8_t *key, size_t keylen)
{
    if (m->integrity_off == 0)
        return STUN_EABSENT;
    size_t off = m->integrity_off;
    uint8_t hdr[STUN_HEADER_LEN], mac[STUN_HMAC_SHA1_LEN];
    memcpy(hdr, m->buf, STUN_HEADER_LEN);
    /* the length the sender saw when it computed the HMAC: up to the end of MESSAGE-INTEGRITY */
    put16(hdr + 2, (uint16_t)(off + 4 + STUN_HMAC_SHA1_LEN - STUN_HEADER_LEN));
    int rc = hmac_sha1(key, keylen, hdr, m->buf + STUN_HEADER_LEN, off - STUN_HEADER_LEN, mac);
    if (rc != STUN_OK)
        return rc;
    return CRYPTO_memcmp(mac, m->buf + off + 4, STUN_HMAC_SHA1_LEN) == 0 ? STUN_OK
                                                                        : STUN_EINTEGRITY;
}

int stun_get_addr(const stun_msg *m, const stun_attr *a, int xor, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (a->len < 4 || a->val[0] != 0)
        return STUN_EMALFORMED;
    uint16_t port = be16(a->val + 2);
    if (xor)
        port ^= (uint16_t)(STUN_MAGIC_COOKIE >> 16);
    if (a->val[1] == STUN_FAMILY_IPV4) {
        if (a->len != 8)
            return STUN_EMALFORMED;
        struct sockaddr_in *s = (struct sockaddr_in *)out;
        uint32_t ip = be32(a->val + 4);
        if (xor)
            ip ^= STUN_MAGIC_COOKIE;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        s->sin_addr.s_addr = htonl(ip);
        return STUN_OK;
    }
    if (a->val[1] == STUN_FAMILY_IPV6) {
        if (a->len != 20)
            return STUN_EMALFORMED;
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)out;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(port);
        memcpy(s->sin6_addr.s6_addr, a->val + 4, 16);
        if (xor) {
            uint8_t pad[16];
            put32(pad, STUN_MAGIC_COOKIE);
            memcpy(pad + 4, m->tid, STUN_TID_LEN);
            for (int i = 0; i < 16; i++)
                s->sin6_addr.s6_addr[i] ^= pad[i];
        }
        return STUN_OK;
    }
    return STUN_EMALFORMED;
}

int stun_get_u32(const stun_attr *a, uint32_t *out)
{
    if (a->len != 4)
        return STUN_EMALFORMED;
    *out = be32(a->val);
    return STUN_OK;
}

int stun_get_channel(const stun_attr *a, uint16_t *out)
{
    if (a->len != 4)
        return STUN_EMALFORMED;
    *out = be16(a->val);
    return STUN_OK;
}

int stun_get_transport(const stun_attr *a, uint8_t *proto)
{
    if (a->len != 4)
        return STUN_EMALFORMED;
    *proto = a->val[0];
    return STUN_OK;
}

int stun_get_family(const stun_attr *a, uint8_t *family)
{
    if (a->len != 4)
        return STUN_EMALFORMED;
    *family = a->val[0];
    return STUN_OK;
}

int stun_get_even_port(const stun_attr *a, int *reserve_next)
{
    if (a->len != 1)
        return STUN_EMALFORMED;
    *reserve_next = (a->val[0] & 0x80) != 0;
    return STUN_OK;
}

int stun_get_token(const stun_attr *a, uint8_t out[STUN_RESERVATION_TOKEN_LEN])
{
    if (a->len != STUN_RESERVATION_TOKEN_LEN)
        return STUN_EMALFORMED;
    memcpy(out, a->val, STUN_RESERVATION_TOKEN_LEN);
    return STUN_OK;
}

int stun_get_error(const stun_attr *a, int *code, const char **reason, size_t *reason_len)
{
    if (a->len < 4 || a->len - 4 > PARLEY_RELAY_STUN_REASON_MAX)
        return STUN_EMALFORMED;
    int cls = a->val[2] & 0x07, num = a->val[3];
    if (cls < 3 || cls > 6 || num > 99)
        return STUN_EMALFORMED;
    *code = cls * 100 + num;
    *reason = (const char *)a->val + 4;
    *reason_len = a->len - 4u;
    return STUN_OK;
}

int stun_get_unknown(const stun_attr *a, uint16_t *types, size_t max, size_t *n)
{
    *n = 0;
    if (a->len & 1)
        return STUN_EMALFORMED;
    for (size_t i = 0; i + 2 <= a->len && *n < max; i += 2)
        types[(*n)++] = be16(a->val + i);
    return STUN_OK;
}

/* --- builder ------------------------------------------------------------------------------ */

static void set_len(stun_builder *b) { put16(b->buf + 2, (uint16_t)(b->len - STUN_HEADER_LEN)); }

void stun_build_begin(stun_builder *b, uint8_t *buf, size_t cap, uint16_t method, stun_class cls,
                      const uint8_t tid[STUN_TID_LEN])
{
    b->buf = buf;
    b->cap = cap < STUN_MAX_MSG_LEN ? cap : STUN_MAX_MSG_LEN;
    b->len = 0;
    b->err = 0;
    if (b->cap < STUN_HEADER_LEN) {
        b->err = STUN_ENOSPACE;
        return;
    }
    put16(buf, stun_msg_type(method, cls));
    put32(buf + 4, STUN_MAGIC_COOKIE);
    memcpy(buf + 8, tid, STUN_TID_LEN);
    b->len = STUN_HEADER_LEN;
    set_len(b);
}

/* Reserves room for one attribute of vlen bytes and writes its header; NULL on error. */
static uint8_t *reserve(stun_builder *b, uint16_t type, size_t vlen)
{
    if (b->err)
        return NULL;
    if (vlen > 0xFFFF || pad4(vlen) + 4 > b->cap - b->len) {
        b->err = STUN_ENOSPACE;
        return NULL;
    }
    uint8_t *p = b->buf + b->len;
    put16(p, type);
    put16(p + 2, (uint16_t)vlen);
    /* padding bytes are zero so messages are deterministic */
    memset(p + 4 + vlen, 0, pad4(vlen) - vlen);
    b->len += 4 + pad4(vlen);
    set_len(b);
    return p + 4;
}

int stun_put(stun_builder *b, uint16_t type, const void *val, size_t len)
{
    uint8_t *p = reserve(b, type, len);
    if (!p)
        return b->err;
    if (len)
        memcpy(p, val, len);
    return STUN_OK;
}

int stun_put_u32(stun_builder *b, uint16_t type, uint32_t v)
{
    uint8_t val[4];
    put32(val, v);
    return stun_put(b, type, val, sizeof val);
}

int stun_put_addr(stun_builder *b, uint16_t type, int xor, const struct sockaddr *sa)
{
    uint8_t val[20] = {0};
    size_t vlen;
    uint16_t port;
    if (b->err)
        return b->err;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        uint32_t ip = ntohl(s->sin_addr.s_addr);
        port = ntohs(s->sin_port);
        val[1] = STUN_FAMILY_IPV4;
        put32(val + 4, xor ? ip ^ STUN_MAGIC_COOKIE : ip);
        vlen = 8;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        port = ntohs(s->sin6_port);
        val[1] = STUN_FAMILY_IPV6;
        memcpy(val + 4, s->sin6_addr.s6_addr, 16);
        if (xor) {
            uint8_t pad[16];
            put32(pad, STUN_MAGIC_COOKIE);
            memcpy(pad + 4, b->buf + 8, STUN_TID_LEN);
            for (int i = 0; i < 16; i++)
                val[4 + i] ^= pad[i];
        }
        vlen = 20;
    } else {
        b->err = STUN_EMALFORMED;
        return b->err;
    }
    put16(val + 2, xor ? (uint16_t)(port ^ (STUN_MAGIC_COOKIE >> 16)) : port);
    return stun_put(b, type, val, vlen);
}

int stun_put_error(stun_builder *b, int code, const char *reason)
{
    if (b->err)
        return b->err;
    if (code < 300 || code > 699) {
        b->err = STUN_EMALFORMED;
        return b->err;
    }
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > PARLEY_RELAY_STUN_REASON_MAX)
        rlen = PARLEY_RELAY_STUN_REASON_MAX;
    uint8_t *p = reserve(b, STUN_A_ERROR_CODE, 4 + rlen);
    if (!p)
        return b->err;
    p[0] = p[1] = 0;
    p[2] = (uint8_t)(code / 100);
    p[3] = (uint8_t)(code % 100);
    if (rlen)
        memcpy(p + 4, reason, rlen);
    return STUN_OK;
}

int stun_put_unknown(stun_builder *b, const uint16_t *types, size_t n)
{
    uint8_t *p = reserve(b, STUN_A_UNKNOWN_ATTRIBUTES, 2 * n);
    if (!p)
        return b->err;
    for (size_t i = 0; i < n; i++)
        put16(p + 2 * i, types[i]);
    return STUN_OK;
}

int stun_put_channel(stun_builder *b, uint16_t channel)
{
    uint8_t val[4] = {0};
    put16(val, channel);
    return stun_put(b, STUN_A_CHANNEL_NUMBER, val, sizeof val);
}

int stun_put_transport(stun_builder *b, uint8_t proto)
{
    uint8_t val[4] = {proto, 0, 0, 0};
    return stun_put(b, STUN_A_REQUESTED_TRANSPORT, val, sizeof val);
}

int stun_put_family(stun_builder *b, uint8_t family)
{
    uint8_t val[4] = {family, 0, 0, 0};
    return stun_put(b, STUN_A_REQUESTED_ADDRESS_FAMILY, val, sizeof val);
}

int stun_put_even_port(stun_builder *b, int reserve_next)
{
    uint8_t val = reserve_next ? 0x80 : 0;
    return stun_put(b, STUN_A_EVEN_PORT, &val, 1);
}

int stun_put_integrity(stun_builder *b, const uint8_t *key, size_t keylen)
{
    if (b->err)
        return b->err;
    if (4 + STUN_HMAC_SHA1_LEN > b->cap - b->len) {
        b->err = STUN_ENOSPACE;
        return b->err;
    }
    uint8_t hdr[STUN_HEADER_LEN], mac[STUN_HMAC_SHA1_LEN];
    memcpy(hdr, b->buf, STUN_HEADER_LEN);
    put16(hdr + 2, (uint16_t)(b->len + 4 + STUN_HMAC_SHA1_LEN - STUN_HEADER_LEN));
    int rc = hmac_sha1(key, keylen, hdr, b->buf + STUN_HEADER_LEN, b->len - STUN_HEADER_LEN, mac);
    if (rc != STUN_OK) {
        b->err = rc;
        return rc;
    }
    return stun_put(b, STUN_A_MESSAGE_INTEGRITY, mac, sizeof mac);
}

int stun_put_fingerprint(stun_builder *b)
{
    if (b->err)
        return b->err;
    if (8 > b->cap - b->len) {
        b->err = STUN_ENOSPACE;
        return b->err;
    }
    /* the CRC covers a header whose length already counts the FINGERPRINT attribute */
    put16(b->buf + 2, (uint16_t)(b->len + 8 - STUN_HEADER_LEN));
    return stun_put_u32(b, STUN_A_FINGERPRINT, fingerprint_of(b->buf, b->len));
}

size_t stun_build_end(const stun_builder *b) { return b->err ? 0 : b->len; }

/* --- ChannelData and framing ----------------------------------------------------------------- */

int stun_chdata_parse(const uint8_t *buf, size_t len, uint16_t *channel, const uint8_t **data,
                      size_t *dlen)
{
    if (len < STUN_CHDATA_HEADER_LEN)
        return STUN_ETRUNC;
    uint16_t ch = be16(buf), n = be16(buf + 2);
    if ((ch & 0xC000) != 0x4000)
        return STUN_ENOTSTUN;
    if (n > len - STUN_CHDATA_HEADER_LEN)
        return STUN_ETRUNC;
    /* trailing bytes beyond the padding are not padding: refuse them */
    if (len - STUN_CHDATA_HEADER_LEN > pad4(n))
        return STUN_EMALFORMED;
    *channel = ch;
    *data = buf + STUN_CHDATA_HEADER_LEN;
    *dlen = n;
    return STUN_OK;
}

void stun_chdata_header(uint8_t hdr[STUN_CHDATA_HEADER_LEN], uint16_t channel, size_t dlen)
{
    put16(hdr, channel);
    put16(hdr + 2, (uint16_t)dlen);
}

long stun_frame_len(const uint8_t *buf, size_t avail)
{
    if (avail < 4)
        return avail && (buf[0] & 0xC0) != 0 && (buf[0] & 0xC0) != 0x40 ? STUN_ENOTSTUN : 0;
    uint16_t first = be16(buf), n = be16(buf + 2);
    if ((first & 0xC000) == 0)
        return (n & 3) ? STUN_ENOTSTUN : (long)(STUN_HEADER_LEN + n);
    if ((first & 0xC000) == 0x4000)
        return (long)(STUN_CHDATA_HEADER_LEN + pad4(n));
    return STUN_ENOTSTUN;
}

const char *stun_strerror(int rc)
{
    switch (rc) {
    case STUN_OK: return "ok";
    case STUN_ETRUNC: return "truncated";
    case STUN_ENOTSTUN: return "not_stun";
    case STUN_EMALFORMED: return "malformed";
    case STUN_ETOOMANY: return "too_many_attributes";
    case STUN_EFINGERPRINT: return "bad_fingerprint";
    case STUN_EINTEGRITY: return "bad_integrity";
    case STUN_EABSENT: return "absent";
    case STUN_ENOSPACE: return "no_space";
    case STUN_ECRYPTO: return "crypto";
    default: return "unknown";
    }
}
