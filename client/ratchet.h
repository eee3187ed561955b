/* ratchet.h: the Double Ratchet (signal.org/docs/specifications/doubleratchet) of one session:
 * its state, encrypting and decrypting one message, skipped message keys, and the state's
 * saved form. No storage, no network, no clock: the caller passes the time.
 *
 *   KDF_RK(rk, dh)  = HKDF-SHA-256(salt = rk, IKM = dh, info = PC_DR_INFO_ROOT), 64 bytes:
 *                     new root key || new chain key
 *   KDF_CK(ck)      = message key HMAC-SHA-256(ck, 0x01), next chain key HMAC-SHA-256(ck, 0x02)
 *   message key mk  -> HKDF-SHA-256(salt = 32 zero bytes, IKM = mk, info = PC_DR_INFO_MESSAGE),
 *                     56 bytes: XChaCha20-Poly1305 key (32) || nonce (24); each mk is used once
 *   AEAD AD         = ad (from the session: the X3DH AD and what it frames) || header bytes
 * The header is a serialised parley.e2ee.v1.RatchetHeader (ratchet public key, PN, N); the
 * receiver authenticates exactly the bytes it received.
 *
 * Failures leave the state exactly as it was: decryption computes the next state aside and
 * commits it only once the ciphertext authenticated. Error returns (st says more):
 *   PC_DR_ERR           bad arguments (ad over PC_DR_AD_MAX), out of memory, a session that
 *                       cannot send yet
 *   PC_DR_ERR_AUTH      the header or ciphertext was tampered with, or is not for this session
 *   PC_DR_ERR_DUPLICATE the message key was already used (a duplicate or replay), or it was a
 *                       skipped key that has since expired or been evicted
 *   PC_DR_ERR_TOO_FAR   the message is more than PC_DR_MAX_SKIP ahead in its chain */
#ifndef PC_RATCHET_H
#define PC_RATCHET_H

#include <stddef.h>
#include <stdint.h>

#include "e2ebuf.h"
#include "limits.h"
#include "status.h"

#define PC_DR_INFO_ROOT "Parley DR root v1"
#define PC_DR_INFO_MESSAGE "Parley DR message v1"
#define PC_DR_HEADER_MAX 64
/* Longest associated data a caller may pass (e2ee.c's is at most about 390 bytes): ad ||
 * header is assembled on the stack, with no allocation per message. */
#define PC_DR_AD_MAX 512
#define PC_DR_TAG_BYTES 16 /* crypto_aead_xchacha20poly1305_ietf_ABYTES */
#define PC_DR_STATE_VERSION 1

enum {
    PC_DR_ERR = -1,
    PC_DR_ERR_AUTH = -2,
    PC_DR_ERR_DUPLICATE = -3,
    PC_DR_ERR_TOO_FAR = -4,
};

/* A message key derived ahead of its message (keyed by ratchet key and message number). */
typedef struct {
    uint8_t dh[32];
    uint32_t n;
    uint64_t stored_ms;
    uint8_t mk[32];
} pc_dr_skipped;

/* A receiving chain the ratchet has moved past, and how far it got. */
typedef struct {
    uint8_t dh[32];
    uint32_t nr;
} pc_dr_old_chain;

/* Read-only for callers; owned skipped array, released (wiped) by pc_dr_free. */
typedef struct {
    uint8_t rk[32];
    uint8_t dhs_pk[32], dhs_sk[32]; /* own ratchet key pair */
    int has_dhr, has_cks, has_ckr;
    uint8_t dhr[32];                /* peer's ratchet key */
    uint8_t cks[32], ckr[32];       /* sending, receiving chain keys */
    uint32_t ns, nr, pn;
    size_t n_old;
    pc_dr_old_chain old[PC_DR_OLD_CHAINS]; /* oldest first */
    pc_dr_skipped *skipped;                /* oldest first */
    size_t n_skipped;
} pc_dr_state;

/* Initiator (Alice): sk from X3DH, peer_ratchet_pk the responder's signed prekey. */
int pc_dr_init_initiator(pc_dr_state *s, const uint8_t sk[32], const uint8_t peer_ratchet_pk[32],
                         pc_status *st);
/* Responder (Bob): sk from X3DH, own ratchet key pair = the signed prekey pair used. */
void pc_dr_init_responder(pc_dr_state *s, const uint8_t sk[32], const uint8_t own_pk[32],
                          const uint8_t own_sk[32]);
/* Wipes every secret and frees the skipped keys; s may be reused after pc_dr_init_*. */
void pc_dr_free(pc_dr_state *s);

/* Encrypts pt: the header goes to header (*header_len bytes), the ciphertext to a new buffer
 * *ct (caller frees) of pt_len + PC_DR_TAG_BYTES bytes. Returns 0 or PC_DR_ERR. */
int pc_dr_encrypt(pc_dr_state *s, const uint8_t *ad, size_t ad_len, const uint8_t *pt,
                  size_t pt_len, uint8_t header[PC_DR_HEADER_MAX], size_t *header_len,
                  uint8_t **ct, size_t *ct_len, pc_status *st);
/* Decrypts into a new buffer *pt (caller frees) of ct_len - PC_DR_TAG_BYTES bytes. now_ms
 * stamps newly skipped keys and expires old ones. Returns 0 or a PC_DR_ERR_* code. */
int pc_dr_decrypt(pc_dr_state *s, const uint8_t *ad, size_t ad_len, const uint8_t *header,
                  size_t header_len, const uint8_t *ct, size_t ct_len, uint64_t now_ms,
                  uint8_t **pt, size_t *pt_len, pc_status *st);
/* Drops skipped keys stored more than PC_DR_SKIPPED_TTL_MS before now_ms. */
void pc_dr_expire(pc_dr_state *s, uint64_t now_ms);

/* Reads a header without authenticating it: 0, or PC_DR_ERR_AUTH when malformed. */
int pc_dr_header_parse(const uint8_t *header, size_t len, uint8_t dh[32], uint32_t *pn,
                       uint32_t *n, pc_status *st);

/* Saved form "PCDR", version PC_DR_STATE_VERSION (e2ebuf.h): a new buffer *out, released with
 * pc_eb_free_secret. */
int pc_dr_save(const pc_dr_state *s, uint8_t **out, size_t *out_len, pc_status *st);
/* Fills s (not initialised before) from a saved form; on failure s is empty (pc_dr_free safe)
 * and st says PC_ERR_LOCAL "... is corrupt". */
int pc_dr_load(pc_dr_state *s, const uint8_t *in, size_t len, pc_status *st);
/* The state's fields inside a caller's blob (the session's saved form). */
void pc_dr_write(const pc_dr_state *s, pc_eb_writer *w);
int pc_dr_read(pc_dr_state *s, pc_eb_reader *r, pc_status *st);

#endif
