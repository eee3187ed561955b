/* redis.h: one hiredis async connection on the libuv loop that reconnects by itself with
 * backoff (100 ms doubling to 2 s; a connect attempt times out after 5 s). Use a separate
 * predis for blocking commands (XREAD BLOCK). Up/down changes are logged once each
 * (event=redis_up / redis_down). hiredis resolves host names synchronously: prefer numeric.
 * Reply callbacks run inside hiredis and may call predis_cmd and predis_close. */
#ifndef PARLEY_REDIS_H
#define PARLEY_REDIS_H

#include <hiredis/async.h>
#include <uv.h>

typedef struct predis predis;

/* on_up runs after every (re)connect, e.g. to recreate consumer groups; may be NULL. It runs
 * from a timer just after the connect (not inside hiredis), so it may do anything, including
 * predis_close. Returns NULL only on allocation failure; connecting happens in the background. */
predis *predis_new(uv_loop_t *loop, const char *host, int port,
                   void (*on_up)(predis *r, void *ud), void *ud);
/* Sends a command; cb gets reply NULL if the connection drops before the answer.
 * Returns 0 when sent, -1 when not connected (cb will not run). */
int predis_cmd(predis *r, redisCallbackFn *cb, void *privdata, int argc, const char **argv,
               const size_t *argvlen);
int predis_up(const predis *r);
/* Disconnects (pending callbacks get NULL: at once, or right after the current hiredis callback
 * returns when called from one) and frees once handles closed (run the loop). */
void predis_close(predis *r);

#endif
