/* vault.h: a device's end-to-end encryption state, in memory and in its home folder:
 *   - its own prekey secrets (pkstore.h), DIR/prekeys
 *   - per account (peers and the own one): the device-list pin (devtrust.h: account key and
 *     newest verified signed list), each known device's keys, registration id and sessions
 *     (e2ee.h), DIR/peers/ACCOUNT
 * Sesame-style session choice: a device has a current session (used to send) and keeps the
 * one before it; a message opens with either, and the one that opened an incoming message
 * becomes current, so two devices that started sessions with each other at the same time
 * settle on one. The device lists handed in are the verified signed lists (send.c, recv.c):
 * a device whose registration id or keys differ from what the list says loses its sessions
 * and a fresh bundle starts a new one. Keys that differ from those pinned per device (before
 * signed lists) are reported to the caller (key_changed) and remembered until the user has
 * looked at the safety number again (pc_vault_ack_changes).
 * Every file is written atomically (home.h) and mode 0600. Saving is explicit: callers save
 * before a Send goes out (a crash must never make the ratchet reuse a message key) and before
 * acking what they decrypted (pc_vault_save). */
#ifndef PC_VAULT_H
#define PC_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "devtrust.h"
#include "e2ee.h"
#include "keys.h"
#include "pkstore.h"
#include "prekeys.h"
#include "status.h"
#include "parley.pb-c.h"

typedef struct pc_vault pc_vault;

/* Opens the state of identity me (borrowed for the vault's life) in home folder dir (copied);
 * a missing DIR/prekeys is an empty store. *out: caller frees with pc_vault_free. */
int pc_vault_open(const char *dir, const pc_identity *me, pc_vault **out, pc_status *st);
void pc_vault_free(pc_vault *v);
const pc_identity *pc_vault_identity(const pc_vault *v);

/* The own prekey store (borrowed); after changing it call pc_vault_prekeys_changed. */
pc_pks *pc_vault_prekeys(pc_vault *v);
void pc_vault_prekeys_changed(pc_vault *v);
/* Writes everything changed since the last save. */
int pc_vault_save(pc_vault *v, pc_status *st);

/* Compares the server's device list of account with what the vault holds: devices no longer
 * listed are forgotten; listed devices (all but skip_device, the sending one when account is
 * the own) without a usable session go to ids (*n of them, at most
 * PARLEY_MAX_DEVICES_PER_ACCOUNT): they need a bundle. A listed device whose registration id
 * or keys changed loses its sessions. */
int pc_vault_plan(pc_vault *v, const char *account, const Parley__V1__DeviceList *dl,
                  uint32_t skip_device, uint32_t *ids, size_t *n, pc_status *st);
/* Starts a session with the device of a fetched bundle (signature checked first). key_changed
 * (may be NULL) is set to 1 when its keys differ from the pinned ones, else left alone. */
int pc_vault_add_bundle(pc_vault *v, const char *account, const pc_prekey_bundle *b,
                        int *key_changed, pc_status *st);
/* Forgets a device's sessions (the server called it stale or extra). */
void pc_vault_drop(pc_vault *v, const char *account, uint32_t device_id);
/* Encrypts pt for the current session with the device into a new buffer *out (caller frees);
 * fails when there is none. */
int pc_vault_encrypt(pc_vault *v, const char *account, uint32_t device_id, const uint8_t *pt,
                     size_t len, uint8_t **out, size_t *out_len, pc_status *st);
/* Decrypts a message from the device into a new buffer *pt (caller frees, wiping it). dev is
 * the server's entry for the sending device (keys, registration id): a prekey message must
 * carry exactly those keys, else PC_VAULT_ERR_KEYS (nothing changed; the entry may be older
 * than a reinstall). A prekey message that starts a new session replaces the current one and
 * consumes the one-time prekey it names. key_changed as for pc_vault_add_bundle. Returns 0,
 * PC_VAULT_ERR_KEYS or -1. */
#define PC_VAULT_ERR_KEYS (-2)
int pc_vault_decrypt(pc_vault *v, const char *account, const Parley__V1__DeviceInfo *dev,
                     const uint8_t *msg, size_t len, uint64_t now_ms, uint8_t **pt,
                     size_t *pt_len, int *key_changed, pc_status *st);

/* The pinned keys of a device (NULL when unknown) and whether they changed since the user
 * last looked (pc_vault_ack_changes). */
const uint8_t *pc_vault_pinned_signing(pc_vault *v, const char *account, uint32_t device_id,
                                       const uint8_t **identity_pk, int *changed);
/* Pins the keys of a device seen in a device list (first sight) and reports a change like
 * pc_vault_add_bundle, without touching sessions. */
int pc_vault_observe(pc_vault *v, const char *account, const Parley__V1__DeviceInfo *dev,
                     int *key_changed, pc_status *st);
/* The device-list pin of account (borrowed; lives as long as v), created empty (nothing
 * pinned) on first use; NULL with st set when the account name is invalid or its file cannot
 * be read. Peer files written before pins existed read as "no pin". After pc_dt_accept (or
 * any other change) call pc_vault_pin_changed, then pc_vault_save. */
pc_dt_pin *pc_vault_pin(pc_vault *v, const char *account, pc_status *st);
void pc_vault_pin_changed(pc_vault *v, const char *account);

/* Clears the changed marks of an account's devices (the user compared safety numbers). */
void pc_vault_ack_changes(pc_vault *v, const char *account);

#endif
