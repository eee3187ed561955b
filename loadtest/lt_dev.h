/* lt_dev.h: the simulated devices' connections. Each device has one source address and a
 * current server; it connects (at most --concurrency attempts at once, the rest wait in a
 * FIFO), authenticates with its pool identity, and when its connection drops while it should
 * be online it reconnects to the next server after a jittered backoff (100 ms doubling to
 * 2 s, on a timer wheel: no timer per device). Whoever needs to know about ups and downs is
 * called from here (lt_msg, lt_recv, lt_drive). */
#ifndef LT_DEV_H
#define LT_DEV_H

#include "lt_run.h"

/* Sets up r->dv for r->pool.n devices: device i uses source i % nsrc and server i % nservers.
 * -1 when out of memory. */
int lt_devs_init(lt_run *r);
/* Frees every connection (without waiting) and the device table. */
void lt_devs_free(lt_run *r);
/* Device i should be online (connect, and reconnect after drops) or not (close with 1000). */
void lt_dev_want(lt_run *r, uint32_t i, int online);
/* Every few ms: backoff wheel, connect queue, attempt timeouts. */
void lt_devs_tick(lt_run *r);
/* Connections that still hold a socket (connecting, up, closing). */
uint32_t lt_devs_sockets(const lt_run *r);
/* The authenticated conn of device i, or NULL. */
pc_conn *lt_dev_conn(const lt_run *r, uint32_t i);

#endif
