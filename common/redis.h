/* redis.h: one hiredis async connection on the libuv loop that reconnects by itself with
 * backoff. Use a separate predis for blocking commands (XREAD BLOCK). */
#ifndef PARLEY_REDIS_H
#define PARLEY_REDIS_H

#include <hiredis/async.h>
#include <uv.h>

typedef struct predis predis;

/* on_up runs after every (re)connect, e.g. to recreate consumer groups; may be NULL. */
predis *predis_new(uv_loop_t *loop, const char *host, int port,
                   void (*on_up)(predis *r, void *ud), void *ud);
/* Sends a command; cb gets reply NULL if the connection drops before the answer.
 * Returns 0 when sent, -1 when not connected (cb will not run). */
int predis_cmd(predis *r, redisCallbackFn *cb, void *privdata, int argc, const char **argv,
               const size_t *argvlen);
int predis_up(const predis *r);
/* Disconnects (pending callbacks get NULL) and frees once handles closed. */
void predis_close(predis *r);

#endif
