/* devtrust.h: what this device believes about one account's device list (its own included):
 * the account key pinned on first contact and the newest list version it verified. A DeviceList
 * answer (GetDevices{known_version = pin's version}) is accepted only when every list in it is
 * signed by the pinned key, the lists chain from the pinned version (same hash at the pinned
 * version, then pdl_check_next link by link), and nothing is older than what was seen before.
 * Pure logic over memory; the vault keeps a pin per account (vault.h, pc_vault_pin). */
#ifndef PC_DEVTRUST_H
#define PC_DEVTRUST_H

#include <stddef.h>
#include <stdint.h>

#include "devlist.h"
#include "parley.pb-c.h"
#include "status.h"

typedef struct {
    int pinned;                 /* account_pk is pinned (first contact happened) */
    uint8_t account_pk[32];
    int has_list;               /* list holds a verified version */
    pdl_list list;              /* the newest verified version */
} pc_dt_pin;

/* Verifies dl (the answer for account, normalised) against pin and, when it is good, advances
 * pin to the newest list in it (pinning the account key on first contact). Fails with
 * PC_ERR_TRUST and pin untouched when: the account key differs from the pinned one; a list
 * does not verify or names another account; the newest version is older than the pinned one
 * (rolled back); the list at the pinned version differs from the pinned one, or a link does not
 * chain (forked); the answer skips versions between the pinned one and the ones it carries.
 * PC_ERR_PROTO when the account has no signed list or the answer is malformed. */
int pc_dt_accept(pc_dt_pin *pin, const char *account, const Parley__V1__DeviceList *dl,
                 pc_status *st);
/* pc_dt_accept's answer to a full page (PARLEY_DEVICE_LIST_CHAIN_MAX lists) that ends before
 * dl->latest_version (a client further behind than one answer reaches): the lists verified and
 * pin moved to the newest of them; ask GetDevices again from there (the pin's version) and
 * accept that answer before using the pin. Each page moves the pin on by at least
 * PARLEY_DEVICE_LIST_CHAIN_MAX - 1 versions the account key signed. */
#define PC_DT_MORE 1

/* Devices the server lists in dl->devices that pin's verified list lacks, or lists with other
 * keys or registration id than the signed list: ghosts. Writes at most cap ids to ids; *n is
 * the full count. */
void pc_dt_ghosts(const pc_dt_pin *pin, const Parley__V1__DeviceList *dl, uint32_t *ids,
                  size_t cap, size_t *n);

/* The verified list of pin as a DeviceList (account, account_key, latest_version and devices;
 * no signed lists) that send and receive use in place of the server's rows. NULL when pin has
 * no list or memory ran out; the caller frees it with
 * parley__v1__device_list__free_unpacked(dl, NULL). */
Parley__V1__DeviceList *pc_dt_verified_devices(const pc_dt_pin *pin, const char *account);

/* Sets st to the PC_ERR_TRUST report of ghosts (pc_dt_ghosts: ids, n of them, at least one)
 * of account: "NAME's device N is not in NAME's signed device list (added by the server?);
 * OUTCOME" (outcome: what the caller did about it, e.g. "nothing was sent"). Returns -1. */
int pc_dt_ghost_status(pc_status *st, const char *account, const uint32_t *ids, size_t n,
                       const char *outcome);

#endif
