/* auth.c: byte-exact transcripts for authentication and registration signatures, the
 * registration proof of work and username normalisation. Transcript layout: the ASCII domain
 * tag (no terminator), then fields in order; fixed-size byte fields raw, strings as u16
 * big-endian length || bytes, integers big-endian fixed width. */
#include "auth.h"

#include <sodium.h>
#include <string.h>

#define PAUTH_TAG_AUTH "parley-auth-v1"
#define PAUTH_TAG_REGISTER "parley-register-v1"
#define PAUTH_TAG_POW "parley-pow-v1"

typedef struct {
    uint8_t *out;
    size_t len;
    int overflow;
} pauth_w;

static void pauth_put(pauth_w *w, const void *p, size_t n)
{
    if (w->overflow || n > PAUTH_TRANSCRIPT_MAX - w->len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->out + w->len, p, n);
    w->len += n;
}

static void pauth_put_be(pauth_w *w, uint64_t v, size_t width)
{
    uint8_t b[8];
    for (size_t i = 0; i < width; i++)
        b[i] = (uint8_t)(v >> (8 * (width - 1 - i)));
    pauth_put(w, b, width);
}

static void pauth_put_str(pauth_w *w, const char *s)
{
    if (!s) {
        w->overflow = 1;
        return;
    }
    size_t n = strlen(s);
    if (n > 0xffff) {
        w->overflow = 1;
        return;
    }
    pauth_put_be(w, n, 2);
    pauth_put(w, s, n);
}

size_t pauth_auth_transcript(uint8_t out[PAUTH_TRANSCRIPT_MAX],
                             const uint8_t challenge[PARLEY_CHALLENGE_BYTES],
                             const char *gateway_id, const char *account, uint32_t device_id,
                             uint64_t timestamp_ms)
{
    if (!out || !challenge)
        return 0;
    pauth_w w = {out, 0, 0};
    pauth_put(&w, PAUTH_TAG_AUTH, sizeof PAUTH_TAG_AUTH - 1);
    pauth_put(&w, challenge, PARLEY_CHALLENGE_BYTES);
    pauth_put_str(&w, gateway_id);
    pauth_put_str(&w, account);
    pauth_put_be(&w, device_id, 4);
    pauth_put_be(&w, timestamp_ms, 8);
    return w.overflow ? 0 : w.len;
}

size_t pauth_register_transcript(uint8_t out[PAUTH_TRANSCRIPT_MAX],
                                 const uint8_t challenge[PARLEY_CHALLENGE_BYTES],
                                 const char *username, const uint8_t account_key[32],
                                 const uint8_t signing_key[32], const uint8_t identity_key[32],
                                 uint32_t registration_id)
{
    if (!out || !challenge || !account_key || !signing_key || !identity_key)
        return 0;
    pauth_w w = {out, 0, 0};
    pauth_put(&w, PAUTH_TAG_REGISTER, sizeof PAUTH_TAG_REGISTER - 1);
    pauth_put(&w, challenge, PARLEY_CHALLENGE_BYTES);
    pauth_put_str(&w, username);
    pauth_put(&w, account_key, 32);
    pauth_put(&w, signing_key, 32);
    pauth_put(&w, identity_key, 32);
    pauth_put_be(&w, registration_id, 4);
    return w.overflow ? 0 : w.len;
}

/* sodium_init is idempotent and cheap after the first call; calling it here keeps the module
 * correct even if a service forgot to. -1 means libsodium is unusable. */
static int pauth_sodium(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

int pauth_verify(const uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t pk[32])
{
    if (!sig || (!msg && len) || !pk || pauth_sodium() != 0)
        return -1;
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -1;
}

/* Hash state over everything but the nonce, so solving hashes only 8 more bytes per try. */
static int pauth_pow_prefix(crypto_hash_sha256_state *st,
                            const uint8_t challenge[PARLEY_CHALLENGE_BYTES], const char *username)
{
    if (!challenge || !username || pauth_sodium() != 0)
        return -1;
    size_t n = strlen(username);
    if (n > 0xffff)
        return -1;
    uint8_t len[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    crypto_hash_sha256_init(st);
    crypto_hash_sha256_update(st, (const uint8_t *)PAUTH_TAG_POW, sizeof PAUTH_TAG_POW - 1);
    crypto_hash_sha256_update(st, challenge, PARLEY_CHALLENGE_BYTES);
    crypto_hash_sha256_update(st, len, 2);
    crypto_hash_sha256_update(st, (const uint8_t *)username, n);
    return 0;
}

static int pauth_pow_try(const crypto_hash_sha256_state *prefix, uint64_t nonce, unsigned difficulty)
{
    crypto_hash_sha256_state st = *prefix;
    uint8_t nb[8], h[crypto_hash_sha256_BYTES];
    for (int i = 0; i < 8; i++)
        nb[i] = (uint8_t)(nonce >> (56 - 8 * i));
    crypto_hash_sha256_update(&st, nb, 8);
    crypto_hash_sha256_final(&st, h);
    unsigned full = difficulty / 8, rest = difficulty % 8;
    for (unsigned i = 0; i < full; i++)
        if (h[i] != 0)
            return -1;
    if (rest && (h[full] >> (8 - rest)) != 0)
        return -1;
    return 0;
}

int pauth_pow_check(const uint8_t challenge[PARLEY_CHALLENGE_BYTES], const char *username,
                    uint64_t nonce, unsigned difficulty)
{
    if (difficulty > 8 * crypto_hash_sha256_BYTES)
        return -1;
    crypto_hash_sha256_state st;
    if (pauth_pow_prefix(&st, challenge, username) != 0)
        return -1;
    return pauth_pow_try(&st, nonce, difficulty);
}

uint64_t pauth_pow_solve(const uint8_t challenge[PARLEY_CHALLENGE_BYTES], const char *username,
                         unsigned difficulty)
{
    crypto_hash_sha256_state st;
    if (difficulty > PARLEY_POW_DIFFICULTY_MAX || pauth_pow_prefix(&st, challenge, username) != 0)
        return 0; /* unsolvable in reasonable time or bad input: the check will fail */
    uint64_t nonce = 0;
    while (pauth_pow_try(&st, nonce, difficulty) != 0)
        nonce++;
    return nonce;
}

int pauth_name_normalize_n(const char *in, size_t len, char out[PARLEY_NAME_MAX + 1])
{
    if (!in || !out || len < PARLEY_NAME_MIN || len > PARLEY_NAME_MAX)
        return -1;
    char tmp[PARLEY_NAME_MAX + 1];
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return -1; /* also NUL and every non-ASCII byte */
        tmp[i] = (char)c;
    }
    tmp[len] = '\0';
    memcpy(out, tmp, len + 1);
    return 0;
}

int pauth_name_normalize(const char *in, char out[PARLEY_NAME_MAX + 1])
{
    if (!in)
        return -1;
    /* bounded scan: a long input is rejected without reading all of it */
    size_t len = strnlen(in, PARLEY_NAME_MAX + 1);
    return pauth_name_normalize_n(in, len, out);
}
