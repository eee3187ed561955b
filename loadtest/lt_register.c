#include "lt_register.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lt_progress.h"

#define LT_REG_BACKOFF_FIRST_MS 100
#define LT_REG_BACKOFF_MAX_MS 2000
#define LT_REG_RETRY_MS 1000     /* RATE_LIMITED without retry_after_ms, UNAVAILABLE */

struct lt_reg;

typedef struct {
    struct lt_reg *g;
    pc_conn *c;
    uv_timer_t timer;
    pc_keys keys;
    char name[PARLEY_NAME_MAX + 1];
    int have_job;       /* keys and name prepared: a retry keeps them */
    int busy;           /* a Register is on the wire */
    int done;
    unsigned backoff_ms;
    uint32_t src;
    unsigned server;
} lt_regw;

typedef struct lt_reg {
    lt_run *r;
    lt_regw *w;
    uint32_t nw, want, jobs, closing;
    uint32_t prefix, next_index;
    uint64_t t_start_us, t_progress_us, t_saved_us;
    uint32_t saved_n;
    uv_timer_t tick;
    int finishing;
    int failed;
    int pow_warned;
    char last_err[PC_STATUS_MSG_MAX];
} lt_reg;

static void lt_reg_next(lt_regw *w);
static void lt_reg_connect(lt_regw *w);

static int lt_reg_save(lt_reg *g)
{
    pc_status st;

    if (g->r->pool.n == g->saved_n)
        return 0;
    if (lt_pool_save(&g->r->pool, &st) < 0) {
        lt_fatal(g->r, "cannot save the pool: %s", st.msg);
        return -1;
    }
    g->saved_n = g->r->pool.n;
    g->t_saved_us = pclock_mono_us();
    return 0;
}

static void lt_reg_one_closed(lt_reg *g)
{
    if (--g->closing == 0)
        uv_stop(g->r->loop);
}

static void lt_reg_tick_closed(uv_handle_t *h)
{
    lt_reg_one_closed(h->data);
}

static void lt_reg_worker_closed(uv_handle_t *h)
{
    lt_regw *w = h->data;
    lt_reg_one_closed(w->g);
}

/* Stops every worker, saves the pool, and ends the loop once the timers are closed. */
static void lt_reg_finish(lt_reg *g, int failed)
{
    if (g->finishing)
        return;
    g->finishing = 1;
    g->failed = failed;
    for (uint32_t k = 0; k < g->nw; k++) {
        lt_regw *w = &g->w[k];
        pc_conn *c = w->c;
        w->c = NULL;
        w->done = 1;
        pc_conn_free(c); /* cancels a pending Register: lt_reg_on_done sees done */
        pc_keys_wipe(&w->keys);
        g->closing++;
        uv_close((uv_handle_t *)&w->timer, lt_reg_worker_closed);
    }
    if (lt_reg_save(g) < 0)
        g->failed = 1;
    g->closing++;
    uv_close((uv_handle_t *)&g->tick, lt_reg_tick_closed);
}

static void lt_reg_check_done(lt_reg *g)
{
    if (g->r->pool.n >= g->want)
        lt_reg_finish(g, 0);
}

static void lt_reg_timer_cb(uv_timer_t *t)
{
    lt_regw *w = t->data;

    if (w->done || w->g->finishing)
        return;
    if (!w->c)
        lt_reg_connect(w);
    else
        lt_reg_next(w);
}

static void lt_reg_on_done(pc_conn *c, const pc_status *st, const char *username,
                           uint32_t device_id, void *ud)
{
    lt_regw *w = ud;
    lt_reg *g = w->g;
    lt_run *r = g->r;
    uint64_t delay;

    (void)c;
    w->busy = 0;
    if (w->done || g->finishing)
        return;
    if (st->kind == PC_OK) {
        if (device_id != 1) {
            lt_fatal(r, "registering %s: the server made it device %u, expected 1", username,
                     (unsigned)device_id);
            lt_reg_finish(g, 1);
            return;
        }
        /* libsodium's Ed25519 secret key starts with its 32-byte seed */
        if (lt_pool_add(&r->pool, username, w->keys.registration_id, w->keys.signing_sk) < 0) {
            lt_fatal(r, "out of memory for the pool");
            lt_reg_finish(g, 1);
            return;
        }
        pc_keys_wipe(&w->keys);
        w->have_job = 0;
        g->jobs--;
        r->m.registered++;
        g->t_progress_us = pclock_mono_us();
        w->backoff_ms = LT_REG_BACKOFF_FIRST_MS;
        lt_reg_check_done(g);
        if (!g->finishing)
            lt_reg_next(w);
        return;
    }
    if (st->kind == PC_ERR_NET)
        return; /* on_close follows: reconnect there */
    snprintf(g->last_err, sizeof g->last_err, "%s", st->msg);
    if (st->kind == PC_ERR_SERVER) {
        switch (st->server_code) {
        case PARLEY__V1__ERROR_CODE__NAME_TAKEN:
            lt_reasons_add(&r->m.reg_retried, "NAME_TAKEN", st->msg, 1);
            snprintf(w->name, sizeof w->name, "lt%08xx%u", (unsigned)randombytes_random(),
                     (unsigned)g->next_index++);
            lt_reg_next(w);
            return;
        case PARLEY__V1__ERROR_CODE__RATE_LIMITED:
        case PARLEY__V1__ERROR_CODE__UNAVAILABLE:
        case PARLEY__V1__ERROR_CODE__INTERNAL:
            lt_reasons_add(&r->m.reg_retried, pc_error_name(st->server_code), st->msg, 1);
            delay = st->retry_after_ms ? st->retry_after_ms : LT_REG_RETRY_MS;
            uv_timer_start(&w->timer, lt_reg_timer_cb, delay, 0);
            return;
        case PARLEY__V1__ERROR_CODE__SHUTTING_DOWN:
            lt_reasons_add(&r->m.reg_retried, "SHUTTING_DOWN", st->msg, 1);
            return; /* the gateway closes the socket (1001): reconnect elsewhere */
        default:
            break;
        }
    }
    lt_fatal(r, "registration of %s refused: %s", w->name, st->msg);
    lt_reg_finish(g, 1);
}

/* The next Register on w's connection: a new device, or the one that has to be retried. */
static void lt_reg_next(lt_regw *w)
{
    lt_reg *g = w->g;
    lt_run *r = g->r;
    pc_status st;

    if (w->busy || !w->c || w->done || g->finishing)
        return;
    if (!w->have_job) {
        if (r->pool.n + g->jobs >= g->want) {
            pc_conn *c = w->c;
            w->c = NULL;
            w->done = 1;
            pc_conn_free(c);
            return;
        }
        if (pc_keys_generate(&w->keys, &st) < 0) {
            lt_fatal(r, "%s", st.msg);
            lt_reg_finish(g, 1);
            return;
        }
        snprintf(w->name, sizeof w->name, "lt%08xx%u", (unsigned)g->prefix,
                 (unsigned)g->next_index++);
        w->have_job = 1;
        g->jobs++;
    }
    if (pc_register_start(w->c, &w->keys, w->name, lt_reg_on_done, w, &st) < 0) {
        lt_fatal(r, "cannot register %s: %s", w->name, st.msg);
        lt_reg_finish(g, 1);
        return;
    }
    w->busy = 1;
}

static void lt_reg_on_frame(pc_conn *c, const Parley__V1__ServerFrame *f, void *ud)
{
    lt_regw *w = ud;

    (void)c;
    /* the proof of work is solved on the loop: say once when it is expensive */
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_CHALLENGE && f->challenge &&
        f->challenge->pow_difficulty > 12 && !w->g->pow_warned) {
        w->g->pow_warned = 1;
        fprintf(stderr,
                LT_PROG ": the server asks for %u bits of proof of work per "
                "registration; large pools register slowly (load-test gateways: "
                "pow_difficulty = 1, see deploy/bench/gateway.conf)\n",
                (unsigned)f->challenge->pow_difficulty);
    }
}

static void lt_reg_on_close(pc_conn *c, const pc_status *st, void *ud)
{
    lt_regw *w = ud;

    pc_conn_free(c);
    if (w->c != c)
        return;
    w->c = NULL;
    w->busy = 0;
    if (w->done || w->g->finishing)
        return;
    snprintf(w->g->last_err, sizeof w->g->last_err, "%s", st->msg);
    uv_timer_start(&w->timer, lt_reg_timer_cb, w->backoff_ms, 0);
    w->backoff_ms = w->backoff_ms * 2 > LT_REG_BACKOFF_MAX_MS ? LT_REG_BACKOFF_MAX_MS
                                                              : w->backoff_ms * 2;
}

static void lt_reg_connect(lt_regw *w)
{
    static const pc_conn_events ev = { lt_reg_on_frame, NULL, lt_reg_on_close };
    lt_run *r = w->g->r;
    const lt_server *sv = &r->servers[w->server];
    pc_status st;

    w->server = (w->server + 1) % r->nservers; /* the next attempt goes elsewhere */
    w->c = pc_conn_open_from(r->ctx, sv->url, sv->v6 || !r->nsrc ? NULL : r->src[w->src], &ev,
                             w, &st);
    if (!w->c) {
        lt_fatal(r, "cannot open a connection to %s: %s", sv->url, st.msg);
        lt_reg_finish(w->g, 1);
        return;
    }
    lt_reg_next(w);
}

static void lt_reg_tick_cb(uv_timer_t *t)
{
    lt_reg *g = t->data;
    lt_run *r = g->r;
    uint64_t now = pclock_mono_us();

    if (g->finishing)
        return;
    if (!r->o->quiet)
        lt_progress_register(r, g->want);
    if (r->interrupted) {
        lt_fatal(r, "interrupted while registering (%u of %u devices in the pool)", r->pool.n,
                 g->want);
        lt_reg_finish(g, 1);
    } else if (now - g->t_start_us > (uint64_t)(r->o->register_timeout * 1e6)) {
        lt_fatal(r, "registration did not finish within %.0f s (%u of %u devices in the pool; "
                    "last error: %s)",
                 r->o->register_timeout, r->pool.n, g->want,
                 g->last_err[0] ? g->last_err : "none");
        lt_reg_finish(g, 1);
    } else if (now - g->t_progress_us > LT_REG_GIVE_UP_S * 1000000ull) {
        lt_fatal(r, "no device registered for %d s on %s: %s", LT_REG_GIVE_UP_S,
                 r->servers[0].url, g->last_err[0] ? g->last_err : "no answer");
        lt_reg_finish(g, 1);
    } else if (now - g->t_saved_us > LT_REG_SAVE_S * 1000000ull && lt_reg_save(g) < 0) {
        lt_reg_finish(g, 1);
    }
}

int lt_register(lt_run *r, uint32_t want)
{
    lt_reg g;
    uint32_t missing = want > r->pool.n ? want - r->pool.n : 0;
    uint64_t t0 = pclock_mono_us();

    if (!missing)
        return 0;
    memset(&g, 0, sizeof g);
    g.r = r;
    g.want = want;
    g.prefix = randombytes_random();
    g.next_index = r->pool.n;
    g.t_start_us = g.t_progress_us = g.t_saved_us = t0;
    g.saved_n = r->pool.n;
    g.nw = missing < r->o->concurrency ? missing : r->o->concurrency;
    g.w = calloc(g.nw, sizeof *g.w);
    if (!g.w) {
        lt_fatal(r, "out of memory");
        return -1;
    }
    r->phase = LT_PH_REGISTER;
    uv_timer_init(r->loop, &g.tick);
    g.tick.data = &g;
    uv_timer_start(&g.tick, lt_reg_tick_cb, 200, 200);
    for (uint32_t k = 0; k < g.nw; k++) {
        lt_regw *w = &g.w[k];
        w->g = &g;
        w->src = r->nsrc ? k % r->nsrc : 0;
        w->server = k % r->nservers;
        w->backoff_ms = LT_REG_BACKOFF_FIRST_MS;
        uv_timer_init(r->loop, &w->timer);
        w->timer.data = w;
    }
    for (uint32_t k = 0; k < g.nw && !g.finishing; k++)
        lt_reg_connect(&g.w[k]);
    uv_run(r->loop, UV_RUN_DEFAULT);
    r->m.register_us = pclock_mono_us() - t0;
    free(g.w);
    return g.failed ? -1 : 0;
}
