/* devchange.h: publishing the next version of the own account's device list, which needs the
 * account key (keys.h, has_account_sk): GetDevices(own account, known_version = pin's), verify
 * the answer against pin (devtrust.h), add one device or remove one, sign, PublishDeviceList,
 * and advance pin to the published version. Works on a conn that is authenticated as a device
 * of the account or as the account (account session, session.h pc_auth_account_start).
 * The caller saves pin afterwards (vault: pc_vault_pin_changed + pc_vault_save).
 *
 * An account registered before signed lists (migration 008) has none: the server answers
 * latest_version 0 and no list. When pin holds no list either, the change starts from the
 * server's device rows as they are (trust on upgrade: nothing signed exists to check them
 * against; docs/DEVICES.md) and publishes version 1: those rows plus or minus the change. It
 * is refused unless the server's account key is this device's and the rows include this
 * device (or the device being added has this device's keys). */
#ifndef PC_DEVCHANGE_H
#define PC_DEVCHANGE_H

#include "conn.h"
#include "devtrust.h"
#include "keys.h"

typedef struct {
    int add;               /* 1: add dev (its device_id is assigned: max_device_id + 1) */
    pdl_device dev;
    uint32_t remove_id;    /* add 0: the device to remove */
} pc_devchange;

/* st->kind PC_OK with the published list and the id added or removed; on failure list is
 * NULL and st says why: PC_ERR_LOCAL (no account key, the device to remove is not listed or
 * is the last one), PC_ERR_SERVER with TOO_MANY_DEVICES (the list is full: remove one first)
 * or DEVICE_LIST_CONFLICT (another change won the race: try again), PC_ERR_TRUST (the
 * server's current list does not verify against pin). */
typedef void (*pc_devchange_cb)(const pc_status *st, const pdl_list *list, uint32_t device_id,
                                void *ud);

/* c, pin, k are borrowed until cb runs; account is normalised (copied). Returns 0, or -1 with
 * st set (then cb never runs). cb runs on the loop, never from inside this call. */
int pc_devchange_start(pc_conn *c, pc_dt_pin *pin, const pc_keys *k, const char *account,
                       const pc_devchange *ch, pc_devchange_cb cb, void *ud, pc_status *st);

/* Signs the first list of an account that has none (above), changing nothing else; when the
 * server's answer carries lists, it is only verified into pin and nothing is published (cb with
 * PC_OK, device_id 0, either way). Arguments and errors as for pc_devchange_start. */
int pc_devchange_upgrade_start(pc_conn *c, pc_dt_pin *pin, const pc_keys *k,
                               const char *account, pc_devchange_cb cb, void *ud, pc_status *st);

#endif
