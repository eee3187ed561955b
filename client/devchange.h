/* devchange.h: publishing the next version of the own account's device list, which needs the
 * account key (keys.h, has_account_sk): GetDevices(own account, known_version = pin's), verify
 * the answer against pin (devtrust.h), add one device or remove one, sign, PublishDeviceList,
 * and advance pin to the published version. Works on a conn that is authenticated as a device
 * of the account or as the account (account session, session.h pc_auth_account_start).
 * The caller saves pin afterwards (vault: pc_vault_pin_changed + pc_vault_save). */
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

#endif
