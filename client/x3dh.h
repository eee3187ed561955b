/* x3dh.h: the X3DH key agreement (signal.org/docs/specifications/x3dh) between two devices,
 * and the signed prekey signature. Pure computation on keys: no storage, no network.
 *
 * Keys are raw 32-byte values: X25519 for DH (identity key, signed prekey, one-time prekey,
 * ephemeral "base" key), Ed25519 for the signed prekey signature (the device signing key).
 *   DH1 = DH(IK_A, SPK_B)  DH2 = DH(EK_A, IK_B)  DH3 = DH(EK_A, SPK_B)  DH4 = DH(EK_A, OPK_B)
 *   SK  = HKDF-SHA-256(salt = 32 zero bytes, IKM = 32 0xFF bytes || DH1 || DH2 || DH3 [|| DH4],
 *                      info = PC_X3DH_INFO), 32 bytes
 *   AD  = signing_pk_A || identity_pk_A || signing_pk_B || identity_pk_B (A the initiator)
 * An all-zero DH output (a low-order peer key) aborts the agreement.
 *
 * Post-quantum extension point (PQXDH): a bundle will also carry a signed KEM prekey, the
 * initiator encapsulates to it and appends the KEM shared secret to the IKM (with its own info
 * string), and the hello carries the KEM prekey id and ciphertext. The has_pq_prekey /
 * has_pq flags below mark where; both are 0 until a vetted ML-KEM implementation is available
 * (docs/E2EE.md). */
#ifndef PC_X3DH_H
#define PC_X3DH_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "prekey_sig.h"
#include "status.h"

#define PC_X3DH_INFO "Parley X3DH v1"
#define PC_X3DH_AD_BYTES 128
/* Signed prekey signature transcript: "parley-spk-v1" || u32 big-endian id || public key. */
#define PC_X3DH_SPK_TRANSCRIPT_BYTES PPKSIG_TRANSCRIPT_BYTES

/* A device's published keys, as the server hands them out. */
typedef struct {
    uint32_t device_id, registration_id;
    uint8_t signing_pk[32], identity_pk[32];
    int has_spk;       /* as fetched: 0 when the device published no signed prekey (the fields
                          below are then unset; callers check before pc_x3dh_initiate) */
    uint32_t spk_id;
    uint8_t spk_pk[32], spk_sig[64];
    int has_opk;
    uint32_t opk_id;
    uint8_t opk_pk[32];
    int has_pq_prekey; /* PQXDH extension point: always 0 for now, and ignored */
} pc_bundle;

/* What the initiator sends so that the responder can run its side. */
typedef struct {
    uint8_t signing_pk[32], identity_pk[32]; /* the initiator's */
    uint8_t base_pk[32];                     /* EK_A */
    uint32_t spk_id;
    int has_opk;
    uint32_t opk_id;
    int has_pq; /* PQXDH extension point: always 0 for now */
} pc_x3dh_hello;

/* The agreed secret and associated data (both wiped with pc_x3dh_result_wipe). */
typedef struct {
    uint8_t sk[32];
    uint8_t ad[PC_X3DH_AD_BYTES];
} pc_x3dh_result;

/* The 49-byte transcript the signature covers. */
void pc_x3dh_spk_transcript(uint8_t out[PC_X3DH_SPK_TRANSCRIPT_BYTES], uint32_t spk_id,
                            const uint8_t spk_pk[32]);
/* Signs (spk_id, spk_pk) with the device signing key. */
void pc_x3dh_spk_sign(const pc_keys *k, uint32_t spk_id, const uint8_t spk_pk[32],
                      uint8_t sig[64]);
/* 0 when sig is the device signing_pk's signature of (spk_id, spk_pk), else -1. */
int pc_x3dh_spk_verify(const uint8_t signing_pk[32], uint32_t spk_id, const uint8_t spk_pk[32],
                       const uint8_t sig[64]);

/* Initiator: verifies the bundle's signed prekey (PC_ERR_CRYPTO "signed prekey signature does
 * not verify" when it does not), makes an ephemeral key and agrees. Fills *hello (to send) and
 * *res. On failure both are zeroed. */
int pc_x3dh_initiate(const pc_keys *own, const pc_bundle *peer, pc_x3dh_hello *hello,
                     pc_x3dh_result *res, pc_status *st);
/* Responder: agrees from the hello, the own keys, the secret of the signed prekey hello->spk_id
 * names and, when hello->has_opk, the one-time prekey secret (else opk_sk is NULL). */
int pc_x3dh_respond(const pc_keys *own, const pc_x3dh_hello *hello, const uint8_t spk_sk[32],
                    const uint8_t *opk_sk, pc_x3dh_result *res, pc_status *st);

void pc_x3dh_result_wipe(pc_x3dh_result *res);

#endif
