/* link.c: link codes and the provisioning channel crypto (link.h). */
#include "link.h"

#include <ctype.h>
#include <sodium.h>
#include <string.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The canonical character for what the user typed, or 0 when it is not base32. */
static char canon(char c)
{
    c = (char)toupper((unsigned char)c);
    if (c == 'I' || c == 'L')
        return '1';
    if (c == 'O')
        return '0';
    if (c == '\0' || !strchr(crockford, c))
        return 0;
    return c;
}

int pc_link_channel_id_valid(const char *s)
{
    size_t i;

    for (i = 0; s[i]; i++)
        if (i >= PARLEY_LINK_CHANNEL_ID_LEN || !strchr(crockford, s[i]))
            return 0;
    return i == PARLEY_LINK_CHANNEL_ID_LEN;
}

int pc_link_secret_new(pc_link_code *code, pc_status *st)
{
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    for (size_t i = 0; i < PARLEY_LINK_SECRET_LEN; i++)
        code->secret[i] = crockford[randombytes_uniform(32)];
    code->secret[PARLEY_LINK_SECRET_LEN] = '\0';
    return 0;
}

void pc_link_code_format(const pc_link_code *code, char out[PC_LINK_CODE_TEXT_MAX])
{
    char all[PC_LINK_CODE_CHARS + 1];
    size_t o = 0;

    memcpy(all, code->channel_id, PARLEY_LINK_CHANNEL_ID_LEN);
    memcpy(all + PARLEY_LINK_CHANNEL_ID_LEN, code->secret, PARLEY_LINK_SECRET_LEN);
    for (size_t i = 0; i < PC_LINK_CODE_CHARS; i++) {
        if (i && i % 4 == 0)
            out[o++] = '-';
        out[o++] = all[i];
    }
    out[o] = '\0';
}

int pc_link_code_parse(const char *text, pc_link_code *code, pc_status *st)
{
    char all[PC_LINK_CODE_CHARS];
    size_t n = 0;

    for (const char *p = text; *p; p++) {
        char c;

        if (*p == '-' || isspace((unsigned char)*p))
            continue;
        c = canon(*p);
        if (!c)
            return pc_status_set(st, PC_ERR_LOCAL,
                                 "invalid link code: '%c' is not one of its characters", *p);
        if (n == PC_LINK_CODE_CHARS)
            return pc_status_set(st, PC_ERR_LOCAL, "invalid link code: longer than %d characters",
                                 PC_LINK_CODE_CHARS);
        all[n++] = c;
    }
    if (n != PC_LINK_CODE_CHARS)
        return pc_status_set(st, PC_ERR_LOCAL,
                             "invalid link code: %zu characters, it has %d", n,
                             PC_LINK_CODE_CHARS);
    memcpy(code->channel_id, all, PARLEY_LINK_CHANNEL_ID_LEN);
    code->channel_id[PARLEY_LINK_CHANNEL_ID_LEN] = '\0';
    memcpy(code->secret, all + PARLEY_LINK_CHANNEL_ID_LEN, PARLEY_LINK_SECRET_LEN);
    code->secret[PARLEY_LINK_SECRET_LEN] = '\0';
    return 0;
}

int pc_link_chan_init(pc_link_chan *ch, int opener, pc_status *st)
{
    memset(ch, 0, sizeof *ch);
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    ch->opener = opener;
    crypto_box_keypair(ch->my_pk, ch->my_sk);
    memcpy(opener ? ch->opener_pk : ch->joiner_pk, ch->my_pk, PC_LINK_PK_BYTES);
    return 0;
}

int pc_link_chan_key(pc_link_chan *ch, const pc_link_code *code, const uint8_t *peer_pk,
                     size_t peer_len, pc_status *st)
{
    uint8_t shared[crypto_scalarmult_BYTES], k[64];
    crypto_generichash_state hs;

    if (peer_len != PC_LINK_PK_BYTES)
        return pc_status_set(st, PC_ERR_PROTO, "the other device's link key has %zu bytes, not %d",
                             peer_len, PC_LINK_PK_BYTES);
    if (!pc_link_channel_id_valid(code->channel_id) ||
        strlen(code->secret) != PARLEY_LINK_SECRET_LEN)
        return pc_status_set(st, PC_ERR_LOCAL, "invalid link code");
    memcpy(ch->opener ? ch->joiner_pk : ch->opener_pk, peer_pk, PC_LINK_PK_BYTES);
    /* fails on low-order points, whose shared secret anyone knows */
    if (crypto_scalarmult(shared, ch->my_sk, peer_pk) != 0)
        return pc_status_set(st, PC_ERR_PROTO, "the other device's link key is not usable");
    ch->code = *code;
    crypto_generichash_init(&hs, NULL, 0, sizeof k);
    crypto_generichash_update(&hs, (const uint8_t *)PC_LINK_TAG, strlen(PC_LINK_TAG));
    crypto_generichash_update(&hs, (const uint8_t *)code->channel_id, PARLEY_LINK_CHANNEL_ID_LEN);
    crypto_generichash_update(&hs, (const uint8_t *)code->secret, PARLEY_LINK_SECRET_LEN);
    crypto_generichash_update(&hs, ch->opener_pk, PC_LINK_PK_BYTES);
    crypto_generichash_update(&hs, ch->joiner_pk, PC_LINK_PK_BYTES);
    crypto_generichash_update(&hs, shared, sizeof shared);
    crypto_generichash_final(&hs, k, sizeof k);
    memcpy(ch->opener ? ch->tx : ch->rx, k, 32);
    memcpy(ch->opener ? ch->rx : ch->tx, k + 32, 32);
    ch->keyed = 1;
    sodium_memzero(shared, sizeof shared);
    sodium_memzero(k, sizeof k);
    sodium_memzero(&hs, sizeof hs);
    return 0;
}

static void make_ad(const pc_link_chan *ch, int dir, uint8_t ad[PARLEY_LINK_CHANNEL_ID_LEN + 1])
{
    memcpy(ad, ch->code.channel_id, PARLEY_LINK_CHANNEL_ID_LEN);
    ad[PARLEY_LINK_CHANNEL_ID_LEN] = (uint8_t)dir;
}

void pc_link_seal(const pc_link_chan *ch, const uint8_t *msg, size_t len, uint8_t *out)
{
    uint8_t ad[PARLEY_LINK_CHANNEL_ID_LEN + 1];
    unsigned long long clen;

    make_ad(ch, ch->opener ? PC_LINK_DIR_NEW_TO_OLD : PC_LINK_DIR_OLD_TO_NEW, ad);
    randombytes_buf(out, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
                                               &clen, msg, len, ad, sizeof ad, NULL, out, ch->tx);
}

int pc_link_open(const pc_link_chan *ch, const uint8_t *in, size_t len, uint8_t *out,
                 size_t *out_len, pc_status *st)
{
    uint8_t ad[PARLEY_LINK_CHANNEL_ID_LEN + 1];
    unsigned long long mlen;
    const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;

    if (!ch->keyed || len < PC_LINK_SEAL_OVERHEAD)
        return pc_status_set(st, PC_ERR_CRYPTO, "link message does not open");
    make_ad(ch, ch->opener ? PC_LINK_DIR_OLD_TO_NEW : PC_LINK_DIR_NEW_TO_OLD, ad);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, in + nb, len - nb, ad,
                                                   sizeof ad, in, ch->rx) != 0)
        return pc_status_set(st, PC_ERR_CRYPTO,
                             "link message does not open (wrong code, or tampered with on the "
                             "way)");
    *out_len = (size_t)mlen;
    return 0;
}

void pc_link_chan_wipe(pc_link_chan *ch)
{
    sodium_memzero(ch, sizeof *ch);
}

/* tag || channel id || opener_pk || joiner_pk || signing_pk || identity_pk || reg id (BE) */
#define OFFER_TRANSCRIPT_LEN                                                                  \
    (sizeof PC_LINK_OFFER_TAG - 1 + PARLEY_LINK_CHANNEL_ID_LEN + 4 * 32 + 4)

static void offer_transcript(const pc_link_chan *ch, const uint8_t signing_pk[32],
                             const uint8_t identity_pk[32], uint32_t registration_id,
                             uint8_t t[OFFER_TRANSCRIPT_LEN])
{
    size_t o = 0;

    memcpy(t + o, PC_LINK_OFFER_TAG, sizeof PC_LINK_OFFER_TAG - 1);
    o += sizeof PC_LINK_OFFER_TAG - 1;
    memcpy(t + o, ch->code.channel_id, PARLEY_LINK_CHANNEL_ID_LEN);
    o += PARLEY_LINK_CHANNEL_ID_LEN;
    memcpy(t + o, ch->opener_pk, 32);
    o += 32;
    memcpy(t + o, ch->joiner_pk, 32);
    o += 32;
    memcpy(t + o, signing_pk, 32);
    o += 32;
    memcpy(t + o, identity_pk, 32);
    o += 32;
    t[o++] = (uint8_t)(registration_id >> 24);
    t[o++] = (uint8_t)(registration_id >> 16);
    t[o++] = (uint8_t)(registration_id >> 8);
    t[o++] = (uint8_t)registration_id;
}

void pc_link_offer_sign(const pc_link_chan *ch, const uint8_t signing_pk[32],
                        const uint8_t signing_sk[64], const uint8_t identity_pk[32],
                        uint32_t registration_id, uint8_t sig[64])
{
    uint8_t t[OFFER_TRANSCRIPT_LEN];

    offer_transcript(ch, signing_pk, identity_pk, registration_id, t);
    crypto_sign_detached(sig, NULL, t, sizeof t, signing_sk);
}

int pc_link_offer_verify(const pc_link_chan *ch, const uint8_t signing_pk[32],
                         const uint8_t identity_pk[32], uint32_t registration_id,
                         const uint8_t *sig, size_t sig_len)
{
    uint8_t t[OFFER_TRANSCRIPT_LEN];

    if (sig_len != crypto_sign_BYTES)
        return -1;
    offer_transcript(ch, signing_pk, identity_pk, registration_id, t);
    return crypto_sign_verify_detached(sig, t, sizeof t, signing_pk) == 0 ? 0 : -1;
}
