/* prekeys.h: the prekey requests of the client library (docs/PROTOCOL.md, "Prekeys"), on an
 * authenticated pc_conn (pc_session_conn of an up session):
 *   - pc_prekeys_upload: store this device's signed prekey and/or one-time prekeys;
 *   - pc_prekeys_fetch: other devices' prekey bundles; every fetch claims one one-time prekey
 *     per device on the server, which is never handed out again;
 *   - pc_prekeys_low_push: recognises the PrekeysLow push (the pool ran low: upload more).
 *     A pc_session delivers it to pc_session_events.on_prekeys_low when that is set.
 * AuthOk tells at every login how many one-time prekeys the server holds for this device
 * (one_time_prekeys) and which signed prekey is current (signed_prekey_id, 0 = none).
 * Only the wire lives here: making, keeping and signing the keys is the caller's (the signed
 * prekey signature is common/prekey_sig.h's transcript signed with the device signing key).
 *
 * Each callback runs exactly once, on the loop, never from inside the call that started the
 * request: with the answer, or with an error (PC_ERR_SERVER and server_code from the gateway's
 * Error; PC_ERR_NET when the conn closed or was freed first). */
#ifndef PC_PREKEYS_H
#define PC_PREKEYS_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "limits.h"
#include "status.h"
#include "x3dh.h"

typedef struct {
    uint32_t id;       /* non-zero */
    uint8_t pk[32];    /* X25519 public */
    uint8_t sig[64];   /* Ed25519 by the device signing key over the transcript */
} pc_prekeys_spk;

typedef struct {
    uint32_t id;       /* non-zero */
    uint8_t pk[32];    /* X25519 public */
} pc_prekeys_opk;

/* The device's prekeys on the server after an upload (PrekeysOk). */
typedef struct {
    uint32_t one_time_count;
    uint32_t signed_prekey_id; /* 0: none */
} pc_prekeys_counts;

/* counts on success, else NULL and st says why. */
typedef void (*pc_prekeys_upload_cb)(pc_conn *c, const pc_status *st,
                                     const pc_prekeys_counts *counts, void *ud);

/* UploadPrekeys. spk NULL keeps the current signed prekey, else replaces it. opks[0..n):
 * n <= PARLEY_PREKEYS_UPLOAD_MAX, ids non-zero and distinct; ids must increase from one upload
 * to the next (a counter), since the server skips an id at or below the highest it ever stored
 * that is no longer in the pool (it was handed out). An id already stored with the same key is
 * accepted again, so a retry of an upload that got no answer is safe. replace_one_time drops
 * every stored one-time prekey first and starts the ids over (after a reinstall). Everything
 * is copied. Errors from the server: INVALID_SIGNATURE (the signature does not verify with this
 * device's signing key; nothing stored), INVALID_ARGUMENT (an id stored with another key, pool
 * over PARLEY_PREKEYS_POOL_MAX; nothing stored), RATE_LIMITED, UNAVAILABLE. Returns 0, or -1
 * with st set (bad arguments, not sent; cb never runs). */
int pc_prekeys_upload(pc_conn *c, const pc_prekeys_spk *spk, const pc_prekeys_opk *opks,
                      size_t n, int replace_one_time, pc_prekeys_upload_cb cb, void *ud,
                      pc_status *st);

/* One device's published keys: x3dh.h's pc_bundle, with has_spk 0 when the device never
 * uploaded a signed prekey (no X3DH possible) and has_opk 0 when its one-time pool was empty.
 * pc_x3dh_initiate verifies spk_sig against signing_pk before use. */
typedef pc_bundle pc_prekey_bundle;

typedef struct {
    char account[PARLEY_NAME_MAX + 1]; /* normalised */
    size_t n;
    pc_prekey_bundle *bundles;         /* ascending device_id; NULL when n == 0 */
} pc_prekey_bundles;

/* Frees b and its bundles; NULL is fine. */
void pc_prekey_bundles_free(pc_prekey_bundles *b);

/* b on success (the caller owns it: pc_prekey_bundles_free), else NULL and st says why. */
typedef void (*pc_prekeys_fetch_cb)(pc_conn *c, const pc_status *st, pc_prekey_bundles *b,
                                    void *ud);

/* GetPrekeys: the bundles of account's devices device_ids[0..n) (n == 0: every current
 * device; n <= PARLEY_PREKEYS_FETCH_DEVICES_MAX). Unknown device ids are simply absent, and
 * so is this device itself when account is its own. Errors from the server: UNKNOWN_ACCOUNT,
 * RATE_LIMITED (retry_after_ms), UNAVAILABLE. Returns 0, or -1 with st set (not sent). */
int pc_prekeys_fetch(pc_conn *c, const char *account, const uint32_t *device_ids, size_t n,
                     pc_prekeys_fetch_cb cb, void *ud, pc_status *st);

/* A PrekeyBundles message as a new pc_prekey_bundles (*out, caller frees). Every key must have
 * its exact length and the device ids must ascend: PC_ERR_PROTO otherwise. Pure; for callers
 * that route answers themselves. */
int pc_prekeys_parse_bundles(const Parley__V1__PrekeyBundles *m, pc_prekey_bundles **out,
                             pc_status *st);

/* 1 when f is a PrekeysLow push (then *one_time_count is set), else 0. */
int pc_prekeys_low_push(const Parley__V1__ServerFrame *f, uint32_t *one_time_count);

#endif
