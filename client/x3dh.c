#include "x3dh.h"

#include <sodium.h>
#include <string.h>

#include "hkdf.h"
#include "prekey_sig.h"

#define DH_MAX 4

void pc_x3dh_spk_transcript(uint8_t out[PC_X3DH_SPK_TRANSCRIPT_BYTES], uint32_t spk_id,
                            const uint8_t spk_pk[32])
{
    /* the gateway checks the same bytes before storing (common/prekey_sig.h) */
    ppksig_transcript(out, spk_id, spk_pk);
}

void pc_x3dh_spk_sign(const pc_keys *k, uint32_t spk_id, const uint8_t spk_pk[32],
                      uint8_t sig[64])
{
    uint8_t t[PC_X3DH_SPK_TRANSCRIPT_BYTES];

    pc_x3dh_spk_transcript(t, spk_id, spk_pk);
    pc_keys_sign_device(k, sig, t, sizeof t);
}

int pc_x3dh_spk_verify(const uint8_t signing_pk[32], uint32_t spk_id, const uint8_t spk_pk[32],
                       const uint8_t sig[64])
{
    return ppksig_verify(sig, spk_id, spk_pk, signing_pk);
}

/* One DH into slot i of the IKM; -1 when the output is all zeros (low-order public key). */
static int dh(uint8_t ikm[32 + 32 * DH_MAX], int i, const uint8_t sk[32], const uint8_t pk[32])
{
    uint8_t *out = ikm + 32 + 32 * i;

    if (crypto_scalarmult(out, sk, pk) != 0 || sodium_is_zero(out, 32))
        return -1;
    return 0;
}

static void derive(pc_x3dh_result *res, uint8_t *ikm, int n_dh, const uint8_t a_sign[32],
                   const uint8_t a_id[32], const uint8_t b_sign[32], const uint8_t b_id[32])
{
    static const uint8_t salt[32];

    memset(ikm, 0xFF, 32); /* F: domain separation from XEdDSA (X3DH 2.2), kept as specified */
    pc_hkdf(res->sk, sizeof res->sk, salt, sizeof salt, ikm, 32 + 32 * (size_t)n_dh,
            (const uint8_t *)PC_X3DH_INFO, sizeof PC_X3DH_INFO - 1);
    memcpy(res->ad, a_sign, 32);
    memcpy(res->ad + 32, a_id, 32);
    memcpy(res->ad + 64, b_sign, 32);
    memcpy(res->ad + 96, b_id, 32);
}

int pc_x3dh_initiate(const pc_keys *own, const pc_bundle *peer, pc_x3dh_hello *hello,
                     pc_x3dh_result *res, pc_status *st)
{
    uint8_t ikm[32 + 32 * DH_MAX], ek_sk[32];
    int n = 3, rc = -1;

    memset(hello, 0, sizeof *hello);
    memset(res, 0, sizeof *res);
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (pc_x3dh_spk_verify(peer->signing_pk, peer->spk_id, peer->spk_pk, peer->spk_sig) < 0)
        return pc_status_set(st, PC_ERR_CRYPTO, "signed prekey signature does not verify");
    /* peer->has_pq_prekey: PQXDH goes here (encapsulate, append the KEM secret to the IKM) */
    crypto_box_keypair(hello->base_pk, ek_sk);
    if (dh(ikm, 0, own->identity_sk, peer->spk_pk) < 0 ||
        dh(ikm, 1, ek_sk, peer->identity_pk) < 0 || dh(ikm, 2, ek_sk, peer->spk_pk) < 0 ||
        (peer->has_opk && dh(ikm, 3, ek_sk, peer->opk_pk) < 0)) {
        pc_status_set(st, PC_ERR_CRYPTO, "peer prekey bundle has an invalid key");
        goto out;
    }
    if (peer->has_opk)
        n = 4;
    derive(res, ikm, n, own->signing_pk, own->identity_pk, peer->signing_pk, peer->identity_pk);
    memcpy(hello->signing_pk, own->signing_pk, 32);
    memcpy(hello->identity_pk, own->identity_pk, 32);
    hello->spk_id = peer->spk_id;
    hello->has_opk = peer->has_opk;
    hello->opk_id = peer->has_opk ? peer->opk_id : 0;
    rc = 0;
out:
    sodium_memzero(ikm, sizeof ikm);
    sodium_memzero(ek_sk, sizeof ek_sk);
    if (rc < 0) {
        memset(hello, 0, sizeof *hello);
        pc_x3dh_result_wipe(res);
    }
    return rc;
}

int pc_x3dh_respond(const pc_keys *own, const pc_x3dh_hello *hello, const uint8_t spk_sk[32],
                    const uint8_t *opk_sk, pc_x3dh_result *res, pc_status *st)
{
    uint8_t ikm[32 + 32 * DH_MAX];
    int n = 3, rc = -1;

    memset(res, 0, sizeof *res);
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (hello->has_opk && !opk_sk)
        return pc_status_set(st, PC_ERR_LOCAL, "one-time prekey secret missing");
    if (dh(ikm, 0, spk_sk, hello->identity_pk) < 0 ||
        dh(ikm, 1, own->identity_sk, hello->base_pk) < 0 ||
        dh(ikm, 2, spk_sk, hello->base_pk) < 0 ||
        (hello->has_opk && dh(ikm, 3, opk_sk, hello->base_pk) < 0)) {
        pc_status_set(st, PC_ERR_CRYPTO, "prekey message has an invalid key");
        goto out;
    }
    if (hello->has_opk)
        n = 4;
    derive(res, ikm, n, hello->signing_pk, hello->identity_pk, own->signing_pk,
           own->identity_pk);
    rc = 0;
out:
    sodium_memzero(ikm, sizeof ikm);
    if (rc < 0)
        pc_x3dh_result_wipe(res);
    return rc;
}

void pc_x3dh_result_wipe(pc_x3dh_result *res)
{
    sodium_memzero(res, sizeof *res);
}
