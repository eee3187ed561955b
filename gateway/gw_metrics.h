/* gw_metrics.h: the gateway's Prometheus series (names prefixed parley_gateway_). The registry
 * owns them; this struct only points into it. */
#ifndef PARLEY_GW_METRICS_H
#define PARLEY_GW_METRICS_H

#include "metrics.h"
#include "gw_proto.h"

/* room for every Parley__V1__ErrorCode value; gw_metrics_init fails loudly if one outgrows it */
#define GW_METRICS_ERROR_CODES 32

typedef struct {
    pmet_gauge *connections;
    pmet_gauge *authenticated;
    pmet_counter *frames_in, *frames_out, *bytes_in, *bytes_out;
    pmet_counter *errors[GW_METRICS_ERROR_CODES]; /* error frames sent, by code */
    pmet_counter *closes_slow, *closes_replaced, *closes_policy;
    pmet_counter *auth_ok, *auth_failed, *registers;
    pmet_counter *sends_forwarded, *send_timeouts, *send_replies, *send_late_replies;
    pmet_gauge *sends_pending;
    pmet_hist *send_latency;
    pmet_counter *pushes, *pushes_held, *kicks_sent, *kicks_received;
    pmet_counter *events_bad;
    pmet_hist *drain_size;
    pmet_counter *drained;
    pmet_counter *acks, *acks_deleted, *ack_flushes, *ack_failures;
    pmet_counter *presence_failures;
    pmet_gauge *rss_bytes, *fd_limit, *connections_max;
    pmet_counter *connections_refused, *closes_keepalive, *pings, *pongs, *heap_trims;
    /* sends shed by gw_overload.h, by reason */
    pmet_counter *shed_backlog, *shed_wait, *shed_pending;
    pmet_gauge *ingress_backlog, *ingress_backlog_max, *shedding;
    /* prekeys (gw_prekeys.h) */
    pmet_counter *prekey_uploads, *prekey_invalid_signatures, *prekey_fetches;
    pmet_counter *prekey_bundles_otk, *prekey_bundles_no_otk;
    pmet_counter *prekey_limited_requester, *prekey_limited_target, *prekey_low_pushes;
    /* device lists (gw_devlist.h) and account sessions */
    pmet_counter *devlist_published, *devlist_devices_added, *devlist_devices_removed;
    pmet_counter *devlist_refused_signature, *devlist_refused_conflict;
    pmet_counter *devlist_refused_too_many, *devlist_refused_invalid;
    pmet_counter *closes_removed, *account_sessions;
    /* provisioning channels (gw_provision.h) */
    pmet_gauge *prov_channels;
    pmet_counter *prov_opened, *prov_open_limited, *prov_joined, *prov_join_not_found;
    pmet_counter *prov_join_limited, *prov_relayed, *prov_expired, *prov_dropped;
    /* TURN credentials (gw_turn.h) */
    pmet_gauge *turn_uris;
    pmet_counter *turn_minted, *turn_limited, *turn_not_configured, *turn_unavailable;
} gw_metrics;

/* Registers every series in m; returns 0, or -1 on allocation failure. */
int gw_metrics_init(gw_metrics *gm, pmetrics *m);
void gw_metrics_error(gw_metrics *gm, Parley__V1__ErrorCode code);

#endif
