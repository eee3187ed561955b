/* main.c: parley-gateway: configuration, startup of every gateway part on one libuv loop, and
 * the SIGTERM drain (stop accepting, wait for pending send answers up to drain_timeout_ms,
 * close clients with 1001, exit 0). */
#include <ctype.h>
#include "gw_proto.h"
#include <libwebsockets.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "clock.h"
#include "config.h"
#include "gw.h"
#include "gw_ack.h"
#include "gw_auth.h"
#include "gw_events.h"
#include "gw_overload.h"
#include "gw_presence.h"
#include "gw_proc.h"
#include "gw_reaper.h"
#include "gw_send.h"
#include "gw_server.h"
#include "gw_sweep.h"
#include "gw_turn.h"
#include "log.h"
#include "wire.h"

#define GW_TICK_MS 100
_Static_assert(GW_TICK_MS == GW_OVERLOAD_TICK_MS, "overload rates count per gateway tick");
#define GW_CLOSE_WAIT_MS 3000 /* after 1001 closes, how long clients get to answer them */
#define GW_EXIT_WAIT_MS 3000  /* for handles to close before the loop is stopped anyway */

_Static_assert(PARLEY_OUTBOUND_MAX_DEFAULT == 1048576, "outbound_max default below");
_Static_assert(PARLEY_GW_MAX_CONNECTIONS_DEFAULT == 250000, "max_connections default below");
_Static_assert(PARLEY_GW_INGRESS_BACKLOG_DEFAULT == 10000, "ingress_backlog_max default below");
_Static_assert(PARLEY_PREKEYS_FETCH_RATE_DEFAULT == 60, "prekey_fetch_rate_per_minute default below");
_Static_assert(PARLEY_PREKEYS_TARGET_RATE_DEFAULT == 120,
               "prekey_target_rate_per_minute default below");
_Static_assert(PARLEY_TURN_TTL_DEFAULT_S == 3600, "turn_ttl_s default below");
_Static_assert(PARLEY_TURN_RATE_DEFAULT == 10, "turn_credentials_rate_per_minute default below");

static const pcfg_opt gw_opts[] = {
    {"listen_host", PCFG_STR, offsetof(gw_cfg, listen_host), "127.0.0.1", 0, 0,
     "address of the WebSocket listener"},
    {"listen_port", PCFG_INT, offsetof(gw_cfg, listen_port), "8080", 1, 65535,
     "port of the WebSocket listener (path /v1/ws)"},
    {"gateway_id", PCFG_STR, offsetof(gw_cfg, gateway_id), NULL, 0, 0,
     "unique, stable id of this process (default hostname-pid); [A-Za-z0-9._-]"},
    PSVC_BACKEND_OPTS(gw_cfg, backend, "4"),
    PSVC_ADMIN_OPTS(gw_cfg, admin, "9080"),
    {"pow_difficulty", PCFG_INT, offsetof(gw_cfg, pow_difficulty), "16", 1,
     PARLEY_POW_DIFFICULTY_MAX, "leading zero bits of the registration proof of work"},
    {"register_rate_per_minute", PCFG_INT, offsetof(gw_cfg, register_rate_per_minute), "30", 1,
     1000000, "registrations per source address and minute"},
    {"outbound_max", PCFG_INT, offsetof(gw_cfg, outbound_max), "1048576",
     2 * PARLEY_MAX_FRAME_BYTES, 64LL * 1024 * 1024,
     "unsent bytes per connection before it is closed with 4002"},
    {"drain_timeout_ms", PCFG_INT, offsetof(gw_cfg, drain_timeout_ms), "10000", 0, 600000,
     "on SIGTERM, how long to wait for pending send answers"},
    {"max_connections", PCFG_INT, offsetof(gw_cfg, max_connections), "250000", 1,
     PARLEY_GW_MAX_CONNECTIONS_MAX,
     "WebSocket connections held at most (lowered to fit RLIMIT_NOFILE); more are refused"},
    {"ingress_backlog_max", PCFG_INT, offsetof(gw_cfg, ingress_backlog_max), "10000", 1,
     PARLEY_GW_INGRESS_BACKLOG_MAX,
     "sends waiting in the ingress streams (all shards) from which new sends are answered "
     "UNAVAILABLE with retry_after_ms instead of queued; also bounds this gateway's unanswered "
     "sends"},
    {"tls_cert", PCFG_STR, offsetof(gw_cfg, tls_cert), NULL, 0, 0,
     "PEM certificate (chain) file: serve wss:// directly; unset = plain ws:// (TLS in front)"},
    {"tls_key", PCFG_STR, offsetof(gw_cfg, tls_key), NULL, 0, 0,
     "PEM private key file for tls_cert"},
    {"prekey_fetch_rate_per_minute", PCFG_INT, offsetof(gw_cfg, prekey_fetch_rate_per_minute),
     "60", 1, PARLEY_PREKEYS_RATE_MAX, "GetPrekeys requests per requesting device and minute"},
    {"prekey_target_rate_per_minute", PCFG_INT, offsetof(gw_cfg, prekey_target_rate_per_minute),
     "120", 1, PARLEY_PREKEYS_RATE_MAX,
     "GetPrekeys requests per target account and minute (each claims one-time prekeys)"},
    {"turn_uris", PCFG_STR, offsetof(gw_cfg, turn_uris), NULL, 0, 0,
     "TURN relays for calls, comma separated (e.g. turn:relay.example:3478?transport=udp); "
     "unset: GetTurnCredentials answers NOT_CONFIGURED"},
    {"turn_secret", PCFG_STR, offsetof(gw_cfg, turn_secret), NULL, 0, 0,
     "TURN REST secret shared with the relays (one of their secrets) to mint credentials with"},
    {"turn_secret_file", PCFG_STR, offsetof(gw_cfg, turn_secret_file), NULL, 0, 0,
     "file whose first line is turn_secret (instead of turn_secret)"},
    {"turn_ttl_s", PCFG_INT, offsetof(gw_cfg, turn_ttl_s), "3600", 1, PARLEY_TURN_TTL_MAX_S,
     "seconds minted TURN credentials stay valid"},
    {"turn_credentials_rate_per_minute", PCFG_INT,
     offsetof(gw_cfg, turn_credentials_rate_per_minute), "10", 1, PARLEY_TURN_RATE_MAX,
     "GetTurnCredentials requests per device and minute"},
};

typedef enum { GW_RUNNING, GW_WAIT_SENDS, GW_CLOSING, GW_EXITING } gw_phase;

typedef struct {
    uv_loop_t loop; /* here, not on the stack: reachable if startup fails (see main) */
    gw g;
    gw_cfg cfg;
    gw_phase phase;
    uint64_t phase_deadline_us;
    psvc_signals signals;
    uv_timer_t exit_timer;
} gw_main;

static int gw_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PARLEY_GATEWAY_ID_MAX)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return 0;
    return 1;
}

static void gw_default_id(char out[PARLEY_GATEWAY_ID_MAX + 1])
{
    char host[256] = "gateway";
    if (gethostname(host, sizeof host - 1) != 0)
        strcpy(host, "gateway");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            *p = '-';
    char pid[24];
    int pl = snprintf(pid, sizeof pid, "-%ld", (long)getpid());
    size_t keep = PARLEY_GATEWAY_ID_MAX - (size_t)pl, hl = strlen(host);
    if (hl > keep)
        hl = keep;
    memcpy(out, host, hl);
    memcpy(out + hl, pid, (size_t)pl + 1);
}

static int gw_ready(void *ud)
{
    gw *g = ud;
    return !g->draining && g->lws && predis_up(g->redis) && predis_up(g->redis_block) &&
           ppg_up(g->pg) > 0;
}

static void gw_close_each(gw_conn *c, void *ud)
{
    gw_conn_close(ud, c, PWIRE_CLOSE_GOING_AWAY, "going away", 1);
}

static void gw_exit_timer_cb(uv_timer_t *t)
{
    plog_warn("exit_forced", "msg=\"handles still open; stopping the loop\"");
    uv_stop(t->loop);
}

static void gw_finish(gw_main *m)
{
    gw *g = &m->g;
    m->phase = GW_EXITING;
    plog_info("shutdown_final", "connections=%zu", g->conns.count);
    gw_server_destroy(g);
    if (g->admin) {
        padmin_stop(g->admin);
        g->admin = NULL;
    }
    gw_events_stop(g);
    gw_ack_close(g);
    uv_close((uv_handle_t *)&g->tick, NULL);
    psvc_signals_close(&m->signals);
    predis_close(g->redis_block);
    predis_close(g->redis);
    ppg_close(g->pg);
    g->redis_block = g->redis = NULL;
    g->pg = NULL;
    uv_timer_init(g->loop, &m->exit_timer);
    uv_timer_start(&m->exit_timer, gw_exit_timer_cb, GW_EXIT_WAIT_MS, 0);
    uv_unref((uv_handle_t *)&m->exit_timer);
}

static void gw_tick_cb(uv_timer_t *t)
{
    gw_main *m = t->data;
    gw *g = &m->g;
    uint64_t now = pclock_mono_us();
    gw_auth_expire(g, now);
    gw_provision_expire(g, now);
    gw_send_expire(g, now);
    gw_overload_tick(g, now);
    gw_reaper_expire(g, now);
    gw_sweep_tick(g, now);
    gw_proc_tick(g, now);
    switch (m->phase) {
    case GW_WAIT_SENDS:
        if (g->pending.count == 0 || now >= m->phase_deadline_us) {
            plog_info("shutdown_closing", "connections=%zu unanswered_sends=%zu",
                      g->conns.count, g->pending.count);
            gw_conns_each(&g->conns, gw_close_each, g);
            gw_ack_flush(g);
            m->phase = GW_CLOSING;
            m->phase_deadline_us = now + (uint64_t)GW_CLOSE_WAIT_MS * 1000;
        }
        break;
    case GW_CLOSING:
        gw_ack_flush(g);
        if ((g->conns.count == 0 && g->acks.inflight == 0) || now >= m->phase_deadline_us)
            gw_finish(m);
        break;
    default:
        break;
    }
}

static void gw_signal_cb(int signum, void *ud)
{
    gw_main *m = ud;
    gw *g = &m->g;
    if (m->phase == GW_RUNNING) {
        plog_info("shutdown_start", "signal=%d connections=%zu unanswered_sends=%zu", signum,
                  g->conns.count, g->pending.count);
        gw_server_stop_accepting(g);
        m->phase = GW_WAIT_SENDS;
        m->phase_deadline_us = pclock_mono_us() + (uint64_t)g->cfg->drain_timeout_ms * 1000;
    } else if (m->phase == GW_WAIT_SENDS || m->phase == GW_CLOSING) {
        /* a second signal: do not wait any longer */
        m->phase_deadline_us = 0;
    }
}

/* The descriptor limit, raised for max_connections sockets, bounds how many are accepted. */
static void gw_size_connections(gw *g)
{
    uint64_t want = (uint64_t)g->cfg->max_connections;
    uint64_t soft = gw_proc_raise_nofile(want + PARLEY_GW_FD_RESERVE);
    uint64_t fit = soft > 2 * PARLEY_GW_FD_RESERVE ? soft - PARLEY_GW_FD_RESERVE : soft / 2;
    g->max_conns = (size_t)(soft && fit < want ? fit : want);
    pmet_set(g->m.fd_limit, (double)soft);
    pmet_set(g->m.connections_max, (double)g->max_conns);
    if (g->max_conns < want)
        plog_warn("max_connections_lowered", "max_connections=%lld effective=%zu fd_limit=%llu",
                  g->cfg->max_connections, g->max_conns, (unsigned long long)soft);
}

static int gw_start(gw_main *m)
{
    gw *g = &m->g;
    if (!(g->metrics = pmetrics_new()) || gw_metrics_init(&g->m, g->metrics) != 0 ||
        gw_conns_init(&g->conns) != 0 || gw_ack_init(g) != 0 || gw_events_init(g) != 0) {
        plog_error("startup_failed", "what=memory");
        return -1;
    }
    /* conn ids never repeat across restarts of a gateway_id (late replies and kicks for a
     * previous process must not match a new connection) */
    g->next_conn_id = pclock_wall_ms() << 16;
    if (pkeys_delivery(g->delivery_key, g->id) < 0) {
        plog_error("startup_failed", "what=delivery_key");
        return -1;
    }
    if (!(g->pg = ppg_new(g->loop, g->cfg->backend.pg, (int)g->cfg->backend.pg_pool)) ||
        !(g->redis = predis_new(g->loop, g->cfg->backend.redis_host, (int)g->cfg->backend.redis_port,
                                gw_presence_on_up, g)) ||
        !(g->redis_block = predis_new(g->loop, g->cfg->backend.redis_host, (int)g->cfg->backend.redis_port,
                                      gw_events_on_up, g))) {
        plog_error("startup_failed", "what=backends");
        return -1;
    }
    gw_size_connections(g);
    pmet_set(g->m.ingress_backlog_max, (double)g->cfg->ingress_backlog_max);
    pmet_set(g->m.turn_uris, (double)g->turn.nuris);
    if (gw_server_start(g) != 0)
        return -1;
    if (g->cfg->admin.admin_port > 0) {
        g->admin = padmin_start(g->loop, g->cfg->admin.admin_host, (int)g->cfg->admin.admin_port, g->metrics,
                                gw_ready, g);
        if (!g->admin)
            return -1;
    }
    if (uv_timer_init(g->loop, &g->tick) != 0)
        return -1;
    g->tick_init = 1;
    g->tick.data = m;
    uv_timer_start(&g->tick, gw_tick_cb, GW_TICK_MS, GW_TICK_MS);
    return psvc_signals_start(&m->signals, g->loop, gw_signal_cb, m);
}

int main(int argc, char **argv)
{
    static gw_main m; /* large; zeroed */
    gw *g = &m.g;
    int rc = pcfg_parse("parley-gateway", "Parley WebSocket gateway", gw_opts,
                        sizeof gw_opts / sizeof gw_opts[0], &m.cfg, argc, argv);
    if (rc != 0) {
        pcfg_free(gw_opts, sizeof gw_opts / sizeof gw_opts[0], &m.cfg);
        return rc > 0 ? 0 : 2;
    }
    if (psvc_logging("parley-gateway", "gateway", m.cfg.admin.log_level) != 0) {
        pcfg_free(gw_opts, sizeof gw_opts / sizeof gw_opts[0], &m.cfg);
        return 2;
    }
    if ((m.cfg.tls_cert && m.cfg.tls_cert[0]) != (m.cfg.tls_key && m.cfg.tls_key[0])) {
        fprintf(stderr, "parley-gateway: tls_cert and tls_key must be set together\n");
        pcfg_free(gw_opts, sizeof gw_opts / sizeof gw_opts[0], &m.cfg);
        return 2;
    }
    if (m.cfg.gateway_id) {
        if (!gw_id_valid(m.cfg.gateway_id)) {
            fprintf(stderr, "parley-gateway: gateway_id: 1..%d of [A-Za-z0-9._-]\n",
                    PARLEY_GATEWAY_ID_MAX);
            pcfg_free(gw_opts, sizeof gw_opts / sizeof gw_opts[0], &m.cfg);
            return 2;
        }
        snprintf(g->id, sizeof g->id, "%s", m.cfg.gateway_id);
    } else {
        gw_default_id(g->id);
    }
    if (sodium_init() < 0) {
        plog_error("startup_failed", "what=libsodium");
        pcfg_free(gw_opts, sizeof gw_opts / sizeof gw_opts[0], &m.cfg);
        return 1;
    }
    char turn_err[256];
    int turn_rc = gw_turn_init(&g->turn, m.cfg.turn_uris, m.cfg.turn_secret,
                               m.cfg.turn_secret_file, m.cfg.turn_ttl_s, turn_err,
                               sizeof turn_err);
    if (m.cfg.turn_secret) /* gw_turn keeps its own copy */
        sodium_memzero(m.cfg.turn_secret, strlen(m.cfg.turn_secret));
    if (turn_rc != 0) {
        fprintf(stderr, "parley-gateway: %s\n", turn_err);
        pcfg_free(gw_opts, sizeof gw_opts / sizeof gw_opts[0], &m.cfg);
        return 2;
    }

    uv_loop_init(&m.loop);
    g->loop = &m.loop;
    g->cfg = &m.cfg;
    plog_info("starting",
              "gateway_id=%s listen=%s:%lld admin_port=%lld ingress_shards=%lld "
              "ingress_backlog_max=%lld turn_uris=%zu",
              g->id, m.cfg.listen_host, m.cfg.listen_port, m.cfg.admin.admin_port,
              m.cfg.backend.ingress_shards, m.cfg.ingress_backlog_max, g->turn.nuris);

    int exit_code = 0;
    if (gw_start(&m) != 0) {
        /* Exit without running the loop again: lws 4.1 on a foreign libuv loop crashes in its
         * handle close callbacks after destroying a context whose vhost failed to bind (ours
         * or the admin one). Everything still allocated is reachable from m. */
        plog_error("startup_failed", "exit=1");
        pcfg_free(gw_opts, sizeof gw_opts / sizeof gw_opts[0], &m.cfg);
        return 1;
    } else {
        uv_run(&m.loop, UV_RUN_DEFAULT);
        if (m.phase == GW_EXITING) {
            uv_close((uv_handle_t *)&m.exit_timer, NULL);
            uv_run(&m.loop, UV_RUN_NOWAIT);
        }
        plog_info("stopped", "exit=0");
    }
    gw_send_free_all(g);
    gw_reaper_free(&g->reaper);
    gw_conns_free(&g->conns);
    gw_turn_clear(&g->turn);
    if (g->metrics)
        pmetrics_free(g->metrics);
    if (uv_loop_close(&m.loop) != 0)
        plog_warn("loop_not_closed", "msg=\"handles still open at exit\"");
    pcfg_free(gw_opts, sizeof gw_opts / sizeof gw_opts[0], &m.cfg);
    return exit_code;
}
