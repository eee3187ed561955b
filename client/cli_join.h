/* cli_join.h: the last steps of a device just added to its account's signed device list, shared
 * by link and recover (on the pc_cmd they run in): save its identity and the pin of its own
 * account's list, then log in as it once to publish its prekeys and print the command's
 * success line. Also the one wording of "the account is full". */
#ifndef PC_CLI_JOIN_H
#define PC_CLI_JOIN_H

#include <stddef.h>

#include "cli_cmd.h"
#include "devtrust.h"

/* Saves the identity in c->home.id (set by the caller) with c->url as its server, opens the
 * vault and saves pin (the own account's, borrowed) in it; done_line is kept for
 * pc_join_publish. Fails the command and returns -1 when any of it cannot be done. */
int pc_join_save(pc_cmd *c, const pc_dt_pin *pin, const char *done_line);
/* Logs in as the saved device (c->sess) and publishes its prekeys (c->upkeep); then prints
 * the done line and finishes with 0, or fails. Call after the joining conn has closed. */
void pc_join_publish(pc_cmd *c);

/* 1 with the failure line in line (cap bytes) when st refused a new device because account
 * has PARLEY_MAX_DEVICES_PER_ACCOUNT already; else 0. */
int pc_join_full(const pc_status *st, const char *account, char *line, size_t cap);

#endif
