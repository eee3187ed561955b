/* pkstore.h: a device's own prekey secrets: the current signed prekey, the one it replaced
 * (kept PC_PKS_SPK_GRACE_MS so prekey messages built on it still open), and the one-time
 * prekeys by id. Ids of both kinds start at 1, increase, and are never reused (the counters
 * are saved with the keys). What gets uploaded and when is the caller's business; this module
 * only makes, finds, consumes and saves keys. */
#ifndef PC_PKSTORE_H
#define PC_PKSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "limits.h"
#include "status.h"

#define PC_PKS_VERSION 1

typedef struct {
    uint32_t id;
    uint8_t pk[32], sk[32];
    uint8_t sig[64];     /* pc_x3dh_spk_sign by the device signing key */
    uint64_t created_ms;
    uint64_t retired_ms; /* when it was replaced (previous only) */
} pc_pks_spk;

typedef struct {
    uint32_t id;
    uint8_t pk[32], sk[32];
} pc_pks_opk;

/* Read-only for callers; the opks array is owned and released (wiped) by pc_pks_free. */
typedef struct {
    int has_spk, has_prev;
    pc_pks_spk spk, prev;
    uint32_t next_spk_id, next_opk_id;
    pc_pks_opk *opks; /* ascending ids; room for PC_PKS_OPK_MAX once allocated */
    size_t n_opks;
} pc_pks;

/* An empty store (no keys; next ids 1). */
void pc_pks_init(pc_pks *p);
/* Wipes every secret and frees; p may be reused after pc_pks_init. */
void pc_pks_free(pc_pks *p);

/* Makes a new signed prekey (the next id), signed with k's signing key; the current one becomes
 * the previous one (the one before that is wiped). */
int pc_pks_rotate_spk(pc_pks *p, const pc_keys *k, uint64_t now_ms, pc_status *st);
/* 1 when there is no signed prekey or the current one is PC_PKS_SPK_ROTATE_MS old. */
int pc_pks_spk_due(const pc_pks *p, uint64_t now_ms);
/* Wipes the previous signed prekey once PC_PKS_SPK_GRACE_MS passed since it was replaced. */
void pc_pks_expire(pc_pks *p, uint64_t now_ms);
/* The current or previous signed prekey with this id (borrowed), or NULL. */
const pc_pks_spk *pc_pks_spk_find(const pc_pks *p, uint32_t id);

/* Makes n one-time prekeys with the next n ids (*first_id is the first); when the store would
 * hold more than PC_PKS_OPK_MAX, the oldest are wiped. */
int pc_pks_generate_opks(pc_pks *p, size_t n, uint32_t *first_id, pc_status *st);
/* The one-time prekey with this id (borrowed, valid until the store changes), or NULL. */
const pc_pks_opk *pc_pks_opk_find(const pc_pks *p, uint32_t id);
/* Wipes and removes it (it was consumed). 0, or -1 when there is none with this id. */
int pc_pks_opk_remove(pc_pks *p, uint32_t id);

/* Saved form "PCPK", version PC_PKS_VERSION (e2ebuf.h): a new buffer *out, released with
 * pc_eb_free_secret. */
int pc_pks_save(const pc_pks *p, uint8_t **out, size_t *out_len, pc_status *st);
/* Fills p (not initialised before) from a saved form; on failure p is empty. */
int pc_pks_load(pc_pks *p, const uint8_t *in, size_t len, pc_status *st);

#endif
