/* e2ee.h: one end-to-end encrypted session with one peer device (X3DH to start, then the
 * Double Ratchet), and the message format on the wire (proto/e2ee.proto, docs/E2EE.md).
 * Pure computation: the caller keeps sessions per (account, device), stores them
 * (pc_e2s_save/load), deletes consumed one-time prekeys and chooses between sessions
 * (pc_e2s_peek, pc_e2s_belongs).
 *
 * The initiator sends prekey messages (the X3DH hello plus a ratchet message) until the first
 * message from the peer decrypts; after that, plain ratchet messages. The ratchet's associated
 * data is the X3DH AD followed by
 *     0x00                                      for a ratchet message
 *     0x01 || u32 big-endian length || info     for a prekey message (info: the PrekeyInfo
 *                                               bytes exactly as carried)
 * so a prekey message's X3DH fields (registration id included) are authenticated too.
 *
 * Errors: 0 on success, else one of the PC_DR_ERR_* codes (ratchet.h) or PC_E2S_ERR_*, with st
 * set. A failed call leaves the session exactly as it was. */
#ifndef PC_E2EE_H
#define PC_E2EE_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "limits.h"
#include "pkstore.h"
#include "ratchet.h"
#include "status.h"
#include "x3dh.h"

#define PC_E2S_WIRE_VERSION 1  /* parley.e2ee.v1.Message.version */
#define PC_E2S_STATE_VERSION 1 /* saved session "PCES" */

enum {
    PC_E2S_ERR_FORMAT = -5,           /* not a well-formed version-1 message */
    PC_E2S_ERR_NOT_THIS_SESSION = -6, /* a prekey message that starts another session */
    PC_E2S_ERR_UNKNOWN_PREKEY = -7,   /* names a signed or one-time prekey we do not hold */
};

/* Read-only for callers. Released with pc_e2s_free. */
typedef struct {
    int initiator;          /* this side ran X3DH as initiator */
    int pending_prekey;     /* initiator only: nothing received yet, sends prekey messages */
    uint32_t own_registration_id;
    uint32_t peer_registration_id;
    uint8_t peer_signing_pk[32], peer_identity_pk[32];
    uint8_t base_pk[32];    /* the X3DH ephemeral key: identifies the session on both sides */
    uint32_t spk_id, opk_id; /* the responder's prekeys the X3DH used (opk_id 0: none) */
    uint8_t ad[PC_X3DH_AD_BYTES];
    pc_dr_state dr;
} pc_e2s;

/* What a message says about itself before decryption (nothing in it is authenticated yet). */
typedef struct {
    int is_prekey;
    /* prekey messages only: */
    uint32_t registration_id;
    uint8_t signing_pk[32], identity_pk[32], base_pk[32];
    uint32_t spk_id;
    int has_opk;
    uint32_t opk_id;
} pc_e2s_peek_info;

/* A new initiator session from the peer's bundle (verified first: a bad signed prekey
 * signature is PC_ERR_CRYPTO "signed prekey signature does not verify"). *out: caller frees
 * with pc_e2s_free. */
int pc_e2s_init_outgoing(const pc_keys *own, const pc_bundle *peer, pc_e2s **out,
                         pc_status *st);
/* Wipes and frees (NULL is fine). */
void pc_e2s_free(pc_e2s *s);

/* Encrypts pt (at most PC_E2S_PLAINTEXT_MAX bytes) into a new message *out (caller frees) of
 * at most PARLEY_MAX_ENVELOPE_BYTES bytes. */
int pc_e2s_encrypt(pc_e2s *s, const uint8_t *pt, size_t pt_len, uint8_t **out, size_t *out_len,
                   pc_status *st);
/* Decrypts a message of this session into a new buffer *pt (caller frees). now_ms as for
 * pc_dr_decrypt. A prekey message is accepted when it belongs to this session (a retransmission
 * of the initiator's first messages); one that starts another session is
 * PC_E2S_ERR_NOT_THIS_SESSION (see pc_e2s_accept_prekey). */
int pc_e2s_decrypt(pc_e2s *s, const uint8_t *msg, size_t len, uint64_t now_ms, uint8_t **pt,
                   size_t *pt_len, pc_status *st);
/* Reads the kind and, for prekey messages, the X3DH fields. 0 or PC_E2S_ERR_FORMAT. */
int pc_e2s_peek(const uint8_t *msg, size_t len, pc_e2s_peek_info *info, pc_status *st);
/* 1 when a peeked prekey message belongs to s (s is its responder session), else 0. */
int pc_e2s_belongs(const pc_e2s *s, const pc_e2s_peek_info *info);
/* Starts a responder session from a prekey message: X3DH with the own keys and the prekeys it
 * names from store, then decrypts it. On success *out is the new session (caller frees), *pt the
 * plaintext (caller frees) and *opk_id the one-time prekey consumed (0: none), which the caller
 * must now remove from the store (pc_pks_opk_remove) and save. */
int pc_e2s_accept_prekey(const pc_keys *own, const pc_pks *store, const uint8_t *msg,
                         size_t len, uint64_t now_ms, pc_e2s **out, uint8_t **pt,
                         size_t *pt_len, uint32_t *opk_id, pc_status *st);
/* Drops expired skipped message keys (call before saving a session that has been idle). */
void pc_e2s_expire(pc_e2s *s, uint64_t now_ms);

/* Saved form "PCES", version PC_E2S_STATE_VERSION (e2ebuf.h): a new buffer *out, released
 * with pc_eb_free_secret. */
int pc_e2s_save(const pc_e2s *s, uint8_t **out, size_t *out_len, pc_status *st);
/* A new session (caller frees) from a saved form; PC_ERR_LOCAL when corrupt or truncated. */
int pc_e2s_load(const uint8_t *in, size_t len, pc_e2s **out, pc_status *st);

#endif
