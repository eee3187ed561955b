/* pg.c: a pool of non-blocking libpq connections driven by uv_poll on the libuv loop. Owns the
 * PGconns, one FIFO of queries for the whole pool (a query goes to the next free connection),
 * and every PGresult (cleared right after the callback). Each connection runs one query at a
 * time. A lost connection fails its in-flight query and reconnects with backoff.
 *
 * Re-entrancy: callbacks may call ppg_query and ppg_close; after every callback the code checks
 * p->closing before touching anything, and memory is freed only from uv close callbacks. */
#include "pg.h"

#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "log.h"

#define PPG_BACKOFF_MIN_MS 100
#define PPG_BACKOFF_MAX_MS 2000
#define PPG_CONNECT_TIMEOUT_MS 10000 /* libpq ignores connect_timeout under PQconnectPoll */

typedef struct ppg_item {
    struct ppg_item *next;
    char *sql;
    int nparams;
    char **values;
    int *lengths;
    int *formats;
    int result_binary;
    ppg_cb cb;
    void *ud;
} ppg_item;

typedef enum { PPG_DOWN, PPG_CONNECTING, PPG_UP } ppg_state;

typedef struct ppg_conn ppg_conn;

/* A poll handle lives on the heap because libpq may swap the socket during connect: the old
 * handle is closed (asynchronously) while a new one watches the new socket. */
typedef struct {
    uv_poll_t h;
    ppg_conn *c;
} ppg_poll;

struct ppg_conn {
    ppg *p;
    int idx;
    PGconn *pg;
    ppg_poll *poll;
    int fd;
    ppg_state state;
    uv_timer_t timer; /* reconnect backoff, or connect timeout while CONNECTING */
    uint64_t backoff_ms;
    int down_logged;
    ppg_item *cur;    /* in flight */
    PGresult *res;    /* result of cur collected so far */
    int flushing;     /* PQflush returned 1: wait for writable */
};

struct ppg {
    uv_loop_t *loop;
    char *conninfo;
    int nconns;
    ppg_conn *conns;
    ppg_item *head, *tail;
    int queued;
    int running;
    int next_conn;   /* round-robin start for dispatch */
    int handles;     /* open uv handles; p is freed when it drops to 0 after close */
    int closing;
    /* ppg_query dispatches from here, never inline, so a callback never runs before
     * ppg_query has returned (callers finish their bookkeeping first) */
    uv_timer_t kick;
};

static void ppg_start_connect(ppg_conn *c);
static void ppg_dispatch(ppg *p);

static void ppg_item_free(ppg_item *it)
{
    if (!it)
        return;
    for (int i = 0; i < it->nparams; i++)
        free(it->values[i]);
    free(it->values);
    free(it->lengths);
    free(it->formats);
    free(it->sql);
    free(it);
}

/* Calls the item's callback once and frees it. */
static void ppg_item_finish(ppg_item *it, PGresult *res, const char *err)
{
    if (it->cb)
        it->cb(res, err, it->ud);
    ppg_item_free(it);
}

static void ppg_maybe_free(ppg *p)
{
    if (p->closing && p->handles == 0) {
        free(p->conns);
        free(p->conninfo);
        free(p);
    }
}

static void ppg_handle_closed(uv_handle_t *h)
{
    ppg *p = h->data;
    p->handles--;
    ppg_maybe_free(p);
}

static void ppg_poll_closed(uv_handle_t *h)
{
    ppg_poll *pp = (ppg_poll *)h;
    ppg *p = pp->c->p;
    free(pp);
    p->handles--;
    ppg_maybe_free(p);
}

/* Stops watching the socket. Must run before libpq closes the fd, so libuv can still
 * deregister it from epoll. */
static void ppg_poll_drop(ppg_conn *c)
{
    if (c->poll) {
        uv_close((uv_handle_t *)&c->poll->h, ppg_poll_closed);
        c->poll = NULL;
    }
    c->fd = -1;
}

static void ppg_on_poll(uv_poll_t *h, int status, int events);

/* Watches c's current socket for events. A changed fd gets a new handle; the same fd is stopped
 * and restarted, because libpq may have closed it and opened another socket with the same number
 * (epoll then silently dropped the old registration). */
static int ppg_poll_watch(ppg_conn *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    if (c->poll && fd != c->fd)
        ppg_poll_drop(c);
    if (!c->poll) {
        ppg_poll *pp = calloc(1, sizeof *pp);
        if (!pp)
            return -1;
        pp->c = c;
        if (uv_poll_init(c->p->loop, &pp->h, fd) != 0) {
            free(pp);
            return -1;
        }
        c->p->handles++;
        c->poll = pp;
        c->fd = fd;
    } else {
        uv_poll_stop(&c->poll->h);
    }
    return uv_poll_start(&c->poll->h, events, ppg_on_poll) == 0 ? 0 : -1;
}

/* libpq messages span lines with tab indents; logs and callers get them on one line. */
static void ppg_oneline(char *out, size_t size, const char *in)
{
    size_t o = 0;
    int space = 0;
    for (const char *s = in; *s && o + 1 < size; s++) {
        if (*s == '\n' || *s == '\t' || *s == '\r' || *s == ' ') {
            space = o > 0;
            continue;
        }
        if (space && o + 2 < size)
            out[o++] = ' ';
        space = 0;
        out[o++] = *s;
    }
    out[o] = '\0';
}

static void ppg_log_down(ppg_conn *c, const char *why)
{
    char q[256];
    if (c->down_logged) {
        plog_debug("pg_connect_failed", "conn=%d reason=%s", c->idx, plog_q(q, sizeof q, why));
        return;
    }
    c->down_logged = 1;
    plog_warn("pg_down", "conn=%d reason=%s", c->idx, plog_q(q, sizeof q, why));
}

static void ppg_timer_cb(uv_timer_t *t);

static void ppg_schedule_retry(ppg_conn *c)
{
    if (c->p->closing)
        return;
    uv_timer_start(&c->timer, ppg_timer_cb, c->backoff_ms, 0);
    c->backoff_ms *= 2;
    if (c->backoff_ms > PPG_BACKOFF_MAX_MS)
        c->backoff_ms = PPG_BACKOFF_MAX_MS;
}

static int ppg_any_up(const ppg *p)
{
    for (int i = 0; i < p->nconns; i++)
        if (p->conns[i].state == PPG_UP)
            return 1;
    return 0;
}

/* Fails every queued query (not the in-flight ones). */
static void ppg_fail_queue(ppg *p, const char *why)
{
    while (p->head) {
        ppg_item *it = p->head;
        p->head = it->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        ppg_item_finish(it, NULL, why);
    }
}

/* The connection is gone: tear it down, fail its query, schedule a reconnect. */
static void ppg_conn_fail(ppg_conn *c, const char *why)
{
    ppg *p = c->p;
    char msg[512];
    ppg_oneline(msg, sizeof msg, why && why[0] ? why : "connection lost");

    int was_up = c->state == PPG_UP;
    if (was_up)
        c->down_logged = 0;
    ppg_log_down(c, msg);
    ppg_poll_drop(c);
    uv_timer_stop(&c->timer);
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->state = PPG_DOWN;
    c->flushing = 0;
    if (c->res) {
        PQclear(c->res);
        c->res = NULL;
    }
    ppg_item *it = c->cur;
    c->cur = NULL;
    if (it) {
        p->running--;
        ppg_item_finish(it, NULL, msg);
        if (p->closing)
            return;
    }
    if (!ppg_any_up(p) && p->head) {
        /* nothing can run them now; callers expect a prompt answer, as ppg_query gives */
        ppg_fail_queue(p, "no PostgreSQL connection");
        if (p->closing)
            return;
    }
    if (c->state == PPG_DOWN && !c->pg) /* a callback may not restart it, but be sure */
        ppg_schedule_retry(c);
}

static void ppg_notice(void *arg, const char *message)
{
    ppg_conn *c = arg;
    char q[512];
    char msg[480];
    ppg_oneline(msg, sizeof msg, message ? message : "");
    plog_info("pg_notice", "conn=%d msg=%s", c->idx, plog_q(q, sizeof q, msg));
}

static void ppg_conn_up(ppg_conn *c)
{
    uv_timer_stop(&c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0) {
        ppg_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeProcessor(c->pg, ppg_notice, c);
    if (ppg_poll_watch(c, UV_READABLE) != 0) {
        ppg_conn_fail(c, "cannot watch socket");
        return;
    }
    c->state = PPG_UP;
    c->backoff_ms = PPG_BACKOFF_MIN_MS;
    c->down_logged = 0;
    plog_info("pg_up", "conn=%d host=%s port=%s db=%s", c->idx, PQhost(c->pg), PQport(c->pg),
              PQdb(c->pg));
    ppg_dispatch(c->p);
}

/* Advances the connect state machine after PQconnectStart or a socket event. */
static void ppg_connect_step(ppg_conn *c, PostgresPollingStatusType st)
{
    switch (st) {
    case PGRES_POLLING_OK:
        ppg_conn_up(c);
        return;
    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        if (ppg_poll_watch(c, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE) != 0)
            ppg_conn_fail(c, "cannot watch socket");
        return;
    case PGRES_POLLING_FAILED:
    default:
        ppg_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
}

static void ppg_start_connect(ppg_conn *c)
{
    c->pg = PQconnectStart(c->p->conninfo);
    if (!c->pg) {
        ppg_log_down(c, "out of memory");
        ppg_schedule_retry(c);
        return;
    }
    c->state = PPG_CONNECTING;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        ppg_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    uv_timer_start(&c->timer, ppg_timer_cb, PPG_CONNECT_TIMEOUT_MS, 0);
    /* libpq: after PQconnectStart act as if PQconnectPoll returned WRITING */
    ppg_connect_step(c, PGRES_POLLING_WRITING);
}

static void ppg_timer_cb(uv_timer_t *t)
{
    ppg_conn *c = t->data;
    if (c->p->closing)
        return;
    if (c->state == PPG_DOWN)
        ppg_start_connect(c);
    else if (c->state == PPG_CONNECTING)
        ppg_conn_fail(c, "connect timeout");
}

/* Delivers the collected result of c's query. Returns -1 when the pool closed meanwhile. */
static int ppg_finish_query(ppg_conn *c)
{
    ppg *p = c->p;
    ppg_item *it = c->cur;
    PGresult *res = c->res;
    c->cur = NULL;
    c->res = NULL;
    p->running--;
    if (res)
        ppg_item_finish(it, res, NULL);
    else
        ppg_item_finish(it, NULL, "no result");
    PQclear(res);
    return p->closing ? -1 : 0;
}

/* Reads what the socket has and delivers finished queries. */
static void ppg_conn_io(ppg_conn *c, int events)
{
    ppg *p = c->p;
    if (c->flushing && (events & UV_WRITABLE)) {
        int f = PQflush(c->pg);
        if (f < 0) {
            ppg_conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        if (f == 0) {
            c->flushing = 0;
            if (ppg_poll_watch(c, UV_READABLE) != 0) {
                ppg_conn_fail(c, "cannot watch socket");
                return;
            }
        }
    }
    if (!(events & UV_READABLE))
        return;
    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
        ppg_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL) /* nobody LISTENs; do not let them pile up */
        PQfreemem(n);
    while (c->cur && !c->flushing && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            if (ppg_finish_query(c) != 0)
                return;
            if (c->state != PPG_UP)
                return;
            ppg_dispatch(p); /* may start the next query on c, handled by this same loop */
            if (p->closing || c->state != PPG_UP)
                return;
            continue;
        }
        /* one statement gives one result; keep the last, clear any earlier one */
        if (c->res)
            PQclear(c->res);
        c->res = r;
    }
}

static void ppg_on_poll(uv_poll_t *h, int status, int events)
{
    ppg_poll *pp = (ppg_poll *)h;
    ppg_conn *c = pp->c;
    if (c->p->closing || c->poll != pp)
        return;
    if (status < 0) /* POLLERR: let libpq find the error on the socket */
        events = UV_READABLE | UV_WRITABLE;
    if (c->state == PPG_CONNECTING)
        ppg_connect_step(c, PQconnectPoll(c->pg));
    else if (c->state == PPG_UP)
        ppg_conn_io(c, events);
}

/* Sends it on c (UP and idle). */
static void ppg_send(ppg_conn *c, ppg_item *it)
{
    ppg *p = c->p;
    c->cur = it;
    p->running++;
    if (!PQsendQueryParams(c->pg, it->sql, it->nparams, NULL, (const char *const *)it->values,
                           it->lengths, it->formats, it->result_binary)) {
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            ppg_conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        /* the query itself was refused; the connection is fine */
        char msg[512];
        ppg_oneline(msg, sizeof msg, PQerrorMessage(c->pg));
        c->cur = NULL;
        p->running--;
        ppg_item_finish(it, NULL, msg);
        return;
    }
    int f = PQflush(c->pg);
    if (f < 0) {
        ppg_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    c->flushing = f == 1;
    if (ppg_poll_watch(c, c->flushing ? UV_READABLE | UV_WRITABLE : UV_READABLE) != 0)
        ppg_conn_fail(c, "cannot watch socket");
}

static void ppg_dispatch(ppg *p)
{
    for (int k = 0; k < p->nconns && p->head && !p->closing; k++) {
        ppg_conn *c = &p->conns[(p->next_conn + k) % p->nconns];
        if (c->state != PPG_UP || c->cur)
            continue;
        ppg_item *it = p->head;
        p->head = it->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        it->next = NULL;
        p->next_conn = (c->idx + 1) % p->nconns;
        ppg_send(c, it);
    }
}

ppg *ppg_new(uv_loop_t *loop, const char *conninfo, int nconns)
{
    if (!loop)
        return NULL;
    if (nconns < 1)
        nconns = 1;
    ppg *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->conninfo = strdup(conninfo ? conninfo : "");
    p->conns = calloc((size_t)nconns, sizeof *p->conns);
    if (!p->conninfo || !p->conns) {
        free(p->conninfo);
        free(p->conns);
        free(p);
        return NULL;
    }
    p->loop = loop;
    p->nconns = nconns;
    uv_timer_init(loop, &p->kick);
    p->kick.data = p;
    p->handles++;
    for (int i = 0; i < nconns; i++) {
        ppg_conn *c = &p->conns[i];
        c->p = p;
        c->idx = i;
        c->fd = -1;
        c->backoff_ms = PPG_BACKOFF_MIN_MS;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
        p->handles++;
    }
    for (int i = 0; i < nconns; i++)
        ppg_start_connect(&p->conns[i]);
    return p;
}

static void ppg_kick_cb(uv_timer_t *t)
{
    ppg *p = t->data;
    if (!p->closing)
        ppg_dispatch(p);
}

static char *ppg_dup(const void *src, size_t n)
{
    char *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, src, n);
    return d;
}

int ppg_query(ppg *p, const char *sql, int nparams, const char *const *values,
              const int *lengths, const int *formats, int result_binary, ppg_cb cb, void *ud)
{
    if (!p || p->closing || !sql || nparams < 0 || (nparams > 0 && !values) || !ppg_any_up(p))
        return -1;
    /* a slow database must push back on callers (they answer UNAVAILABLE), not grow memory */
    if (p->queued >= PARLEY_PG_QUEUE_MAX)
        return -1;
    ppg_item *it = calloc(1, sizeof *it);
    if (!it)
        return -1;
    it->cb = cb;
    it->ud = ud;
    it->result_binary = result_binary;
    it->sql = strdup(sql);
    if (!it->sql)
        goto oom;
    if (nparams > 0) {
        it->values = calloc((size_t)nparams, sizeof(char *));
        it->lengths = calloc((size_t)nparams, sizeof(int));
        it->formats = calloc((size_t)nparams, sizeof(int));
        if (!it->values || !it->lengths || !it->formats)
            goto oom;
        it->nparams = nparams;
        for (int i = 0; i < nparams; i++) {
            int binary = formats && formats[i];
            it->formats[i] = binary;
            if (!values[i])
                continue; /* SQL NULL */
            size_t n = binary ? (size_t)(lengths && lengths[i] > 0 ? lengths[i] : 0)
                              : strlen(values[i]) + 1;
            it->lengths[i] = binary ? (int)n : 0;
            if (!(it->values[i] = ppg_dup(values[i], n)))
                goto oom;
        }
    }
    if (p->tail)
        p->tail->next = it;
    else
        p->head = it;
    p->tail = it;
    p->queued++;
    if (!uv_is_active((uv_handle_t *)&p->kick))
        uv_timer_start(&p->kick, ppg_kick_cb, 0, 0);
    return 0;
oom:
    ppg_item_free(it); /* the caller logs: it knows what failed */
    return -1;
}

int ppg_up(const ppg *p)
{
    int n = 0;
    for (int i = 0; p && !p->closing && i < p->nconns; i++)
        n += p->conns[i].state == PPG_UP;
    return n;
}

int ppg_pending(const ppg *p)
{
    return p ? p->queued + p->running : 0;
}

void ppg_close(ppg *p)
{
    if (!p || p->closing)
        return;
    p->closing = 1;
    /* first tear everything down, then run the callbacks, so that a callback sees a closed pool */
    ppg_item *inflight = NULL;
    uv_timer_stop(&p->kick);
    uv_close((uv_handle_t *)&p->kick, ppg_handle_closed);
    for (int i = 0; i < p->nconns; i++) {
        ppg_conn *c = &p->conns[i];
        ppg_poll_drop(c);
        if (c->pg) {
            PQfinish(c->pg);
            c->pg = NULL;
        }
        if (c->res) {
            PQclear(c->res);
            c->res = NULL;
        }
        c->state = PPG_DOWN;
        if (c->cur) {
            c->cur->next = inflight;
            inflight = c->cur;
            c->cur = NULL;
            p->running--;
        }
        uv_timer_stop(&c->timer);
        c->timer.data = p;
        uv_close((uv_handle_t *)&c->timer, ppg_handle_closed);
    }
    while (inflight) {
        ppg_item *it = inflight;
        inflight = it->next;
        ppg_item_finish(it, NULL, "pool closing");
    }
    ppg_fail_queue(p, "pool closing");
}

const char *ppg_sqlstate(const PGresult *r)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

const char *ppg_why(const PGresult *r, const char *err)
{
    if (err)
        return err;
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return m ? m : "unknown error";
}
