/* redis.c: one self-healing hiredis async connection on a libuv loop. Owns the hiredis context
 * (hiredis frees it itself after a failed connect or a disconnect; we only drop our pointer) and
 * one uv_timer used for the reconnect backoff, the connect timeout and deferring on_up out of
 * hiredis' connect callback (hiredis 0.14 touches the context after that callback returns, so
 * user code that might close or free must not run inside it). */
#include "redis.h"

#include <hiredis/adapters/libuv.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define PREDIS_BACKOFF_MIN_MS 100
#define PREDIS_BACKOFF_MAX_MS 2000
#define PREDIS_CONNECT_TIMEOUT_MS 5000 /* hiredis 0.14 async connect has no timeout of its own */

typedef enum {
    PREDIS_T_IDLE,     /* timer unused */
    PREDIS_T_RETRY,    /* fires: start a connect */
    PREDIS_T_CONNECT,  /* fires: connect took too long, give up on it */
    PREDIS_T_NOTIFY,   /* fires: call on_up */
} predis_timer_mode;

struct predis {
    uv_loop_t *loop;
    char *host;
    int port;
    void (*on_up)(predis *r, void *ud);
    void *ud;
    redisAsyncContext *ac; /* NULL while down; owned by hiredis once connect fails or drops */
    uv_timer_t timer;
    predis_timer_mode mode;
    uint64_t backoff_ms;
    int up;
    int closing;
    int down_logged; /* a down state was logged; log again only after the next up */
};

static void predis_timer_cb(uv_timer_t *t);

/* The 0.14 libuv adapter ignores a poll callback with status != 0, but libuv reports POLLERR
 * (refused connect, reset connection) exactly that way and stops the handle: the context would
 * hang forever with its callbacks pending. So we keep the adapter's bookkeeping and swap in a
 * poll callback that lets hiredis look at the socket and find the error itself. */
static void predis_poll_cb(uv_poll_t *h, int status, int events)
{
    redisLibuvEvents *p = h->data;
    if (status != 0)
        events = p->events ? p->events : UV_READABLE;
    redisLibuvPoll(h, 0, events);
}

static void predis_poll_restart(void *privdata)
{
    redisLibuvEvents *p = privdata;
    if (p->events)
        uv_poll_start(&p->handle, p->events, predis_poll_cb);
}

static void predis_ev_add_read(void *privdata)
{
    redisLibuvAddRead(privdata);
    predis_poll_restart(privdata);
}

static void predis_ev_del_read(void *privdata)
{
    redisLibuvDelRead(privdata);
    predis_poll_restart(privdata);
}

static void predis_ev_add_write(void *privdata)
{
    redisLibuvAddWrite(privdata);
    predis_poll_restart(privdata);
}

static void predis_ev_del_write(void *privdata)
{
    redisLibuvDelWrite(privdata);
    predis_poll_restart(privdata);
}

static void predis_arm(predis *r, predis_timer_mode mode, uint64_t ms)
{
    r->mode = mode;
    uv_timer_start(&r->timer, predis_timer_cb, ms, 0);
}

static void predis_schedule_retry(predis *r)
{
    if (r->closing)
        return;
    predis_arm(r, PREDIS_T_RETRY, r->backoff_ms);
    r->backoff_ms *= 2;
    if (r->backoff_ms > PREDIS_BACKOFF_MAX_MS)
        r->backoff_ms = PREDIS_BACKOFF_MAX_MS;
}

static void predis_log_down(predis *r, const char *reason)
{
    char q[160];
    if (r->down_logged) {
        plog_debug("redis_connect_failed", "host=%s port=%d reason=%s", r->host, r->port,
                   plog_q(q, sizeof q, reason));
        return;
    }
    r->down_logged = 1;
    plog_warn("redis_down", "host=%s port=%d reason=%s", r->host, r->port,
              plog_q(q, sizeof q, reason));
}

static void predis_on_connect(const redisAsyncContext *ac, int status)
{
    predis *r = ac->data;
    if (!r)
        return; /* predis_close already let go of this context */
    if (status != REDIS_OK) {
        /* hiredis frees ac right after this callback returns */
        r->ac = NULL;
        predis_log_down(r, ac->errstr[0] ? ac->errstr : "connect failed");
        predis_schedule_retry(r);
        return;
    }
    r->up = 1;
    r->down_logged = 0;
    r->backoff_ms = PREDIS_BACKOFF_MIN_MS;
    redisEnableKeepAlive((redisContext *)&ac->c); /* detect a silently dead peer */
    plog_info("redis_up", "host=%s port=%d", r->host, r->port);
    predis_arm(r, PREDIS_T_NOTIFY, 0);
}

static void predis_on_disconnect(const redisAsyncContext *ac, int status)
{
    predis *r = ac->data;
    if (!r)
        return;
    /* pending callbacks have already been called with NULL; hiredis frees ac after this */
    r->ac = NULL;
    r->up = 0;
    predis_log_down(r, status == REDIS_OK ? "closed"
                                          : (ac->errstr[0] ? ac->errstr : "connection lost"));
    predis_schedule_retry(r);
}

static void predis_connect(predis *r)
{
    plog_debug("redis_connecting", "host=%s port=%d", r->host, r->port);
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        predis_log_down(r, "out of memory");
        predis_schedule_retry(r);
        return;
    }
    if (ac->err) {
        predis_log_down(r, ac->errstr);
        redisAsyncFree(ac);
        predis_schedule_retry(r);
        return;
    }
    /* attach before setting the callbacks: setting the connect callback arms the write event */
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        predis_log_down(r, "event loop attach failed");
        redisAsyncFree(ac);
        predis_schedule_retry(r);
        return;
    }
    ac->ev.addRead = predis_ev_add_read;
    ac->ev.delRead = predis_ev_del_read;
    ac->ev.addWrite = predis_ev_add_write;
    ac->ev.delWrite = predis_ev_del_write;
    ac->data = r;
    redisAsyncSetConnectCallback(ac, predis_on_connect);
    redisAsyncSetDisconnectCallback(ac, predis_on_disconnect);
    r->ac = ac;
    predis_arm(r, PREDIS_T_CONNECT, PREDIS_CONNECT_TIMEOUT_MS);
}

static void predis_timer_cb(uv_timer_t *t)
{
    predis *r = t->data;
    predis_timer_mode mode = r->mode;
    r->mode = PREDIS_T_IDLE;
    if (r->closing)
        return;
    switch (mode) {
    case PREDIS_T_RETRY:
        if (!r->ac)
            predis_connect(r);
        break;
    case PREDIS_T_CONNECT:
        if (r->ac && !r->up) {
            /* not yet connected: no callbacks pending, no disconnect callback will run */
            redisAsyncContext *ac = r->ac;
            r->ac = NULL;
            ac->data = NULL;
            redisAsyncFree(ac);
            predis_log_down(r, "connect timeout");
            predis_schedule_retry(r);
        }
        break;
    case PREDIS_T_NOTIFY:
        if (r->up && r->on_up)
            r->on_up(r, r->ud);
        break;
    case PREDIS_T_IDLE:
        break;
    }
}

predis *predis_new(uv_loop_t *loop, const char *host, int port,
                   void (*on_up)(predis *r, void *ud), void *ud)
{
    if (!loop || !host)
        return NULL;
    predis *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->host = strdup(host);
    if (!r->host) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->port = port;
    r->on_up = on_up;
    r->ud = ud;
    r->backoff_ms = PREDIS_BACKOFF_MIN_MS;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    predis_connect(r);
    return r;
}

int predis_cmd(predis *r, redisCallbackFn *cb, void *privdata, int argc, const char **argv,
               const size_t *argvlen)
{
    if (!r || !r->up || r->closing || !r->ac)
        return -1;
    return redisAsyncCommandArgv(r->ac, cb, privdata, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
}

int predis_up(const predis *r)
{
    return r && r->up && !r->closing;
}

static void predis_free_cb(uv_handle_t *h)
{
    predis *r = h->data;
    free(r->host);
    free(r);
}

void predis_close(predis *r)
{
    if (!r || r->closing)
        return;
    r->closing = 1;
    r->up = 0;
    uv_timer_stop(&r->timer);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        ac->data = NULL; /* our callbacks ignore it from now on */
        /* Pending callbacks get NULL replies now, or, when we are inside a hiredis callback,
         * right after it returns (hiredis defers the free); r stays allocated until the timer's
         * close callback, which runs later in the loop iteration. */
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&r->timer, predis_free_cb);
}
