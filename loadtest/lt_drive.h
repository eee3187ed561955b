/* lt_drive.h: the phases of a run and the scenarios on top of them.
 *   connect: CONNECT (every device, at most --connect-timeout) -> RUN (idle --seconds) -> CLOSE
 *   chat:    CONNECT -> RUN (send at --rate for --seconds; --offline-fraction of the devices go
 *            offline for --offline-seconds once, at a random time) -> SETTLE -> CLOSE
 *   burst:   CONNECT (senders only) -> RUN (queue --messages for device 0, offline, until all
 *            are answered) -> DRAIN (device 0 connects and drains) -> SETTLE -> CLOSE
 * SETTLE stops sending, brings every device online and waits (at most --grace) until every
 * accepted message is delivered, every send answered and every ack answered. CLOSE closes all
 * connections with 1000. The run also ends at its deadline (connect-timeout + seconds +
 * grace), on SIGINT/SIGTERM, and on a setup failure (lt_fatal). */
#ifndef LT_DRIVE_H
#define LT_DRIVE_H

#include "lt_run.h"

#define LT_TICK_MS 10
#define LT_PACE_MS 2

/* Runs the scenario on r (pool ready, devices set up) until it is done; the loop is left with
 * only closing handles. */
void lt_drive(lt_run *r);
/* Device i authenticated (called by lt_dev.c). */
void lt_drive_dev_up(lt_run *r, uint32_t i, const Parley__V1__AuthOk *ok);

#endif
