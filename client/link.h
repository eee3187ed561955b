/* link.h: the link code and the end-to-end encryption of the provisioning channel through
 * which a new device joins an account (docs/PROTOCOL.md, "Linking"). Pure logic over memory;
 * cli_link.c drives the exchange on the wire.
 *
 * Code: the channel id the gateway picked (PARLEY_LINK_CHANNEL_ID_LEN Crockford base32
 * characters) followed by a secret the new device made (PARLEY_LINK_SECRET_LEN characters, 80
 * random bits), shown in groups of 4 joined by '-'. The server sees only the channel id.
 *
 * Channel: each side has an ephemeral X25519 key pair; the opener (new device) sends its
 * public key in ProvisionOpen.data, the joiner (approving device) in ProvisionJoin.data.
 *   K = BLAKE2b-512("parley-link-v1" || channel_id || secret || opener_pk || joiner_pk || X25519)
 * K[0..32) seals new -> old, K[32..64) old -> new. A sealed message is nonce (24 random bytes)
 * || XChaCha20-Poly1305(message), associated data channel_id || direction byte (1 new -> old,
 * 2 old -> new). Without the secret the server can neither read nor substitute the ephemeral
 * keys: a substituted key yields another K and every message fails to open. */
#ifndef PC_LINK_H
#define PC_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "status.h"

#define PC_LINK_TAG "parley-link-v1"
#define PC_LINK_OFFER_TAG "parley-link-offer-v1"
#define PC_LINK_CODE_CHARS (PARLEY_LINK_CHANNEL_ID_LEN + PARLEY_LINK_SECRET_LEN)
/* the code as shown: groups of 4 joined by '-', NUL */
#define PC_LINK_CODE_TEXT_MAX (PC_LINK_CODE_CHARS + PC_LINK_CODE_CHARS / 4 + 1)
#define PC_LINK_PK_BYTES 32
/* what sealing adds: nonce and tag */
#define PC_LINK_SEAL_OVERHEAD (24 + 16)

#define PC_LINK_DIR_NEW_TO_OLD 1
#define PC_LINK_DIR_OLD_TO_NEW 2

typedef struct {
    char channel_id[PARLEY_LINK_CHANNEL_ID_LEN + 1];
    char secret[PARLEY_LINK_SECRET_LEN + 1];
} pc_link_code;

/* 1 when s is exactly PARLEY_LINK_CHANNEL_ID_LEN canonical Crockford base32 characters. */
int pc_link_channel_id_valid(const char *s);
/* A fresh random secret into code->secret. Returns 0, or -1 (libsodium failed to initialise). */
int pc_link_secret_new(pc_link_code *code, pc_status *st);
/* code as shown to the user ("ABCD-EFGH-..."). */
void pc_link_code_format(const pc_link_code *code, char out[PC_LINK_CODE_TEXT_MAX]);
/* Parses what the user typed: case, '-' and whitespace are ignored, I and L read as 1, O as 0.
 * PC_ERR_LOCAL when it is not PC_LINK_CODE_CHARS base32 characters. */
int pc_link_code_parse(const char *text, pc_link_code *code, pc_status *st);

/* One side of a channel. */
typedef struct {
    int opener;                           /* 1: the new device */
    uint8_t my_pk[PC_LINK_PK_BYTES], my_sk[32];
    uint8_t opener_pk[PC_LINK_PK_BYTES], joiner_pk[PC_LINK_PK_BYTES];
    pc_link_code code;
    int keyed;
    uint8_t tx[32], rx[32];
} pc_link_chan;

/* A fresh ephemeral key pair (my_pk goes to the server as this side's data). */
int pc_link_chan_init(pc_link_chan *ch, int opener, pc_status *st);
/* Derives the keys once the code and the other side's public key are known. PC_ERR_PROTO when
 * peer_pk is not a usable X25519 key. */
int pc_link_chan_key(pc_link_chan *ch, const pc_link_code *code, const uint8_t *peer_pk,
                     size_t peer_len, pc_status *st);
/* Seals msg for the other side into out (len + PC_LINK_SEAL_OVERHEAD bytes, caller's). */
void pc_link_seal(const pc_link_chan *ch, const uint8_t *msg, size_t len, uint8_t *out);
/* Opens a message from the other side into out (at least len - PC_LINK_SEAL_OVERHEAD bytes);
 * *out_len is its length. PC_ERR_CRYPTO when it does not open (tampered, another secret, a
 * substituted key, or our own direction). */
int pc_link_open(const pc_link_chan *ch, const uint8_t *in, size_t len, uint8_t *out,
                 size_t *out_len, pc_status *st);
void pc_link_chan_wipe(pc_link_chan *ch);

/* The offer transcript (link.proto LinkOffer) of this channel, signed by the new device and
 * checked by the approving one. */
void pc_link_offer_sign(const pc_link_chan *ch, const uint8_t signing_pk[32],
                        const uint8_t signing_sk[64], const uint8_t identity_pk[32],
                        uint32_t registration_id, uint8_t sig[64]);
/* 0 when sig proves possession of signing_pk for this channel, else -1. */
int pc_link_offer_verify(const pc_link_chan *ch, const uint8_t signing_pk[32],
                         const uint8_t identity_pk[32], uint32_t registration_id,
                         const uint8_t *sig, size_t sig_len);

#endif
