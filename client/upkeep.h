/* upkeep.h: keeps this device's prekeys published. At every login (AuthOk says what the
 * server holds) and on a PrekeysLow push it uploads what is missing: the signed prekey when the
 * server has none or another one, a new signed prekey when the current one is due for rotation
 * (PC_PKS_SPK_ROTATE_MS), and a batch of PC_PKS_OPK_BATCH one-time prekeys when fewer than
 * PC_PKS_OPK_LOW_WATER are left. New secrets are saved in the home folder before the upload
 * goes out, so the server never hands out a key whose secret a crash lost. The first upload of
 * an install replaces whatever one-time prekeys an earlier install left on the server.
 * Before that, at the first login of a device holding the account key that has not verified a
 * list of its own account yet, it fetches that list (pinning it) and, when the account has
 * none (registered before signed lists), signs and publishes version 1 of the server's device
 * rows (devchange.h, pc_devchange_upgrade_start): the primary's first login after the upgrade
 * makes the account reachable again. */
#ifndef PC_UPKEEP_H
#define PC_UPKEEP_H

#include "session.h"
#include "vault.h"

typedef struct pc_upkeep pc_upkeep;

/* An upload finished (st PC_OK) or failed; also called with PC_OK when nothing was due. When
 * the own device list check failed (st->msg names it), that failure is reported in place of
 * the upload's PC_OK. */
typedef void (*pc_upkeep_cb)(pc_upkeep *u, const pc_status *st, void *ud);

/* s and v are borrowed for u's life; cb may be NULL. */
pc_upkeep *pc_upkeep_new(pc_session *s, pc_vault *v, pc_upkeep_cb cb, void *ud);
void pc_upkeep_free(pc_upkeep *u);
/* From the session's on_up. */
void pc_upkeep_session_up(pc_upkeep *u, const Parley__V1__AuthOk *ok);
/* From the session's on_prekeys_low. */
void pc_upkeep_low(pc_upkeep *u, uint32_t one_time_count);
/* 1 when no upload is in flight. */
int pc_upkeep_idle(const pc_upkeep *u);

#endif
