/* gw.h: the gateway process: configuration and the state every gateway module shares (one per
 * process, owned by main.c). Modules own their own part of it (see each gw_*.h). */
#ifndef PARLEY_GW_H
#define PARLEY_GW_H

#include <stdint.h>
#include <uv.h>

#include "admin.h"
#include "gw_ack.h"
#include "gw_conn.h"
#include "gw_events.h"
#include "gw_metrics.h"
#include "gw_overload.h"
#include "gw_presence.h"
#include "gw_proc.h"
#include "gw_provision.h"
#include "gw_reaper.h"
#include "gw_send.h"
#include "gw_sweep.h"
#include "gw_turn.h"
#include "keys.h"
#include "limits.h"
#include "service.h"
#include "metrics.h"
#include "pg.h"
#include "redis.h"

struct lws_context;

typedef struct {
    char *listen_host;
    long long listen_port;
    char *gateway_id;
    psvc_backend backend;
    psvc_admin admin;
    long long pow_difficulty;
    long long register_rate_per_minute;
    long long outbound_max;
    long long drain_timeout_ms;
    long long max_connections;
    long long ingress_backlog_max; /* sends in the ingress streams before new ones are shed */
    char *tls_cert; /* PEM certificate chain; TLS is off when unset */
    char *tls_key;
    long long prekey_fetch_rate_per_minute;  /* GetPrekeys per requesting device */
    long long prekey_target_rate_per_minute; /* GetPrekeys per target account */
    char *turn_uris;        /* TURN relays for calls (gw_turn.h); unset: NOT_CONFIGURED */
    char *turn_secret;      /* the REST secret shared with the relays, or ... */
    char *turn_secret_file; /* ... a file holding it */
    long long turn_ttl_s;
    long long turn_credentials_rate_per_minute; /* GetTurnCredentials per device */
} gw_cfg;

typedef struct gw {
    uv_loop_t *loop;
    const gw_cfg *cfg;
    char id[PARLEY_GATEWAY_ID_MAX + 1];
    char delivery_key[PKEYS_MAX];

    struct lws_context *lws; /* NULL once destroyed */
    predis *redis;           /* commands */
    predis *redis_block;     /* XREAD BLOCK of the delivery stream only */
    ppg *pg;
    pmetrics *metrics;
    gw_metrics m;
    padmin *admin;

    gw_conns conns;
    uint64_t next_conn_id;
    gw_conn_auth *auth_head, *auth_tail; /* unauthenticated connections, oldest first */
    gw_pendings pending;
    gw_acks acks;
    gw_events events;
    gw_overload overload;
    gw_reaper reaper;
    gw_sweep sweep;
    gw_proc proc;
    gw_presence_scripts scripts;
    gw_provisions provs; /* openers of live provisioning channels (gw_provision.h) */
    gw_turn turn;        /* TURN URIs and secret for GetTurnCredentials (gw_turn.h) */
    size_t max_conns; /* max_connections, lowered to what the descriptor limit allows */

    uv_timer_t tick; /* timeouts, the sweep, process statistics */
    int tick_init;
    int draining; /* SIGTERM: no new connections or sends */
} gw;

/* Sizes and budgets derived from the config. */
size_t gw_outbound_max(const gw *g);

#endif
