/* gw_devlist.h: PublishDeviceList, the next signed version of an account's device list
 * (common/devlist.h): checked against the stored account key and current version, applied to
 * the device rows in one transaction (migration 008, parley_devlist_apply), then removed
 * devices are disconnected (close 4003) wherever they are connected.
 *
 *   gw_devlist.c        the request: current list from PostgreSQL, judgement, apply, answer
 *   gw_devlist_check.c  the judgement itself (pure, unit tested)
 *   gw_devlist_kick.c   disconnecting removed devices, on this gateway and through presence */
#ifndef PARLEY_GW_DEVLIST_H
#define PARLEY_GW_DEVLIST_H

#include <stddef.h>
#include <stdint.h>

#include "devlist.h"
#include "gw_conn.h"
#include "gw_proto.h"

struct gw;

void gw_devlist_publish(struct gw *g, gw_conn *c, const Parley__V1__ClientFrame *f);

/* What the server holds for an account (borrowed pointers). cur_body is NULL when
 * cur_version is 0 (an account registered before signed lists) or the stored body is missing. */
typedef struct {
    const char *account; /* normalised: the publishing connection's account */
    const uint8_t *account_pk; /* 32 bytes */
    uint64_t cur_version;
    const uint8_t *cur_body, *cur_sig;
    size_t cur_len, cur_sig_len;
} gw_devlist_stored;

/* Judges a published list (body, sig) against what is stored. Returns 0 (ERROR_UNSPECIFIED)
 * when it may be applied, with *next parsed; else the ErrorCode to answer with and *why
 * (static text):
 *   INVALID_ARGUMENT      malformed body, a list of another account, keys of a listed device
 *                         changed, a reused device id, a wrong max_device_id
 *   TOO_MANY_DEVICES      more than PARLEY_MAX_DEVICES_PER_ACCOUNT devices
 *   INVALID_SIGNATURE     not signed by the account key
 *   DEVICE_LIST_CONFLICT  not version current + 1, or prev_hash is not the current body's hash
 *   INTERNAL              the stored current body does not parse (the database is damaged)
 * Pure. */
Parley__V1__ErrorCode gw_devlist_judge(const gw_devlist_stored *s, const uint8_t *body,
                                       size_t len, const uint8_t *sig, size_t sig_len,
                                       pdl_list *next, const char **why);

/* parley_devlist_apply's device parameters for l: *ids and *regs PostgreSQL array literals,
 * keys the signing and identity keys, 64 bytes per device in list order. Returns 0, or -1 when
 * a buffer is too small (cannot happen with the sizes below). Pure. */
#define GW_DEVLIST_ARRAY_TEXT_MAX (PARLEY_MAX_DEVICES_PER_ACCOUNT * 11 + 3)
int gw_devlist_apply_params(const pdl_list *l, char ids[GW_DEVLIST_ARRAY_TEXT_MAX],
                            char regs[GW_DEVLIST_ARRAY_TEXT_MAX],
                            uint8_t keys[PARLEY_MAX_DEVICES_PER_ACCOUNT * 64]);

/* Disconnects the removed devices of account with close 4003: a connection on this gateway at
 * once, others through an InternalKick to the gateway their presence names; their presence
 * keys are deleted. ids are copied. */
void gw_devlist_kick(struct gw *g, const char *account, const uint32_t *ids, size_t n);

#endif
