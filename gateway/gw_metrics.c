#include "gw_metrics.h"

#include <stdio.h>

#include "gw_frame.h"
#include "log.h"

static const double gw_drain_bounds[] = {0, 1, 10, 100, 1000, 10000};

int gw_metrics_init(gw_metrics *gm, pmetrics *m)
{
    int bad = 0;
#define C(field, name, help, labels) bad |= !(gm->field = pmetrics_counter(m, name, help, labels))
#define G(field, name, help) bad |= !(gm->field = pmetrics_gauge(m, name, help, NULL))
    G(connections, "parley_gateway_connections", "Open WebSocket connections.");
    G(authenticated, "parley_gateway_authenticated_connections",
      "Authenticated WebSocket connections.");
    C(frames_in, "parley_gateway_frames_in_total", "WebSocket messages received.", NULL);
    C(frames_out, "parley_gateway_frames_out_total", "WebSocket messages sent.", NULL);
    C(bytes_in, "parley_gateway_bytes_in_total", "WebSocket payload bytes received.", NULL);
    C(bytes_out, "parley_gateway_bytes_out_total", "WebSocket payload bytes sent.", NULL);
    /* one series per code the protocol defines, so a new code is counted without edits here */
    const ProtobufCEnumDescriptor *codes = &parley__v1__error_code__descriptor;
    for (unsigned k = 0; k < codes->n_values; k++) {
        int i = codes->values[k].value;
        if (i < 0 || i >= GW_METRICS_ERROR_CODES) {
            plog_error("metrics_init", "error_code=%d reason=\"outside GW_METRICS_ERROR_CODES\"", i);
            return -1;
        }
        char labels[64];
        snprintf(labels, sizeof labels, "code=\"%s\"", codes->values[k].name);
        C(errors[i], "parley_gateway_errors_total", "Error frames sent to clients, by code.",
          labels);
    }
    C(closes_slow, "parley_gateway_closes_total", "Connections closed by the gateway, by reason.",
      "reason=\"too_slow\"");
    C(closes_replaced, "parley_gateway_closes_total",
      "Connections closed by the gateway, by reason.", "reason=\"replaced\"");
    C(closes_policy, "parley_gateway_closes_total",
      "Connections closed by the gateway, by reason.", "reason=\"policy\"");
    C(auth_ok, "parley_gateway_auth_total", "Authentication attempts, by result.",
      "result=\"ok\"");
    C(auth_failed, "parley_gateway_auth_total", "Authentication attempts, by result.",
      "result=\"failed\"");
    C(registers, "parley_gateway_registrations_total", "Accounts registered.", NULL);
    C(sends_forwarded, "parley_gateway_sends_forwarded_total",
      "Sends validated and written to an ingress stream.", NULL);
    C(send_timeouts, "parley_gateway_send_timeouts_total",
      "Sends answered UNAVAILABLE because fanout did not answer in time.", NULL);
    C(send_replies, "parley_gateway_send_replies_total", "Fanout answers forwarded to clients.",
      NULL);
    C(send_late_replies, "parley_gateway_send_late_replies_total",
      "Fanout answers dropped (connection gone or already timed out).", NULL);
    G(sends_pending, "parley_gateway_sends_pending", "Sends waiting for a fanout answer.");
    bad |= !(gm->send_latency = pmetrics_hist(m, "parley_gateway_send_answer_seconds",
                                              "Time from a Send frame to its fanout answer.",
                                              NULL, pmetrics_latency_bounds,
                                              pmetrics_latency_nbounds));
    C(pushes, "parley_gateway_pushes_total", "Live envelopes pushed to connections.", NULL);
    C(pushes_held, "parley_gateway_pushes_held_total",
      "Live envelopes held back while the queue drained.", NULL);
    C(kicks_sent, "parley_gateway_kicks_sent_total",
      "Kicks sent to other gateways for replaced connections.", NULL);
    C(kicks_received, "parley_gateway_kicks_received_total", "Kicks received.", NULL);
    C(events_bad, "parley_gateway_delivery_bad_entries_total",
      "Undecodable delivery stream entries (skipped).", NULL);
    bad |= !(gm->drain_size = pmetrics_hist(m, "parley_gateway_drain_envelopes",
                                            "Envelopes delivered by one queue drain.", NULL,
                                            gw_drain_bounds,
                                            sizeof gw_drain_bounds / sizeof gw_drain_bounds[0]));
    C(drained, "parley_gateway_drained_envelopes_total", "Envelopes delivered by queue drains.",
      NULL);
    C(acks, "parley_gateway_acked_ids_total", "Envelope ids acknowledged by clients.", NULL);
    C(acks_deleted, "parley_gateway_ack_deleted_total", "Envelopes deleted by acks.", NULL);
    C(ack_flushes, "parley_gateway_ack_flushes_total", "Batched ack statements run.", NULL);
    C(ack_failures, "parley_gateway_ack_failures_total", "Batched ack statements that failed.",
      NULL);
    C(presence_failures, "parley_gateway_presence_failures_total",
      "Presence updates that could not reach Redis.", NULL);
    G(rss_bytes, "parley_gateway_rss_bytes", "Resident memory of the process, sampled every second.");
    G(fd_limit, "parley_gateway_fd_limit", "Soft RLIMIT_NOFILE of the process.");
    G(connections_max, "parley_gateway_connections_max",
      "Connections the gateway accepts (max_connections, lowered to fit the fd limit).");
    C(connections_refused, "parley_gateway_connections_refused_total",
      "TCP connections dropped at once because connections_max were open.", NULL);
    C(closes_keepalive, "parley_gateway_closes_total",
      "Connections closed by the gateway, by reason.", "reason=\"keepalive\"");
    C(pings, "parley_gateway_pings_total", "Keepalive pings sent to idle connections.", NULL);
    C(pongs, "parley_gateway_pongs_total", "Pongs received (answers to keepalive pings).", NULL);
    C(heap_trims, "parley_gateway_heap_trims_total",
      "Freed heap returned to the kernel after many connections went away.", NULL);
    C(shed_backlog, "parley_gateway_sends_shed_total",
      "Sends answered UNAVAILABLE with retry_after_ms at once, not queued, by reason.",
      "reason=\"ingress_backlog\"");
    C(shed_wait, "parley_gateway_sends_shed_total",
      "Sends answered UNAVAILABLE with retry_after_ms at once, not queued, by reason.",
      "reason=\"answer_wait\"");
    C(shed_pending, "parley_gateway_sends_shed_total",
      "Sends answered UNAVAILABLE with retry_after_ms at once, not queued, by reason.",
      "reason=\"gateway_pending\"");
    G(ingress_backlog, "parley_gateway_ingress_backlog",
      "Sends in the ingress streams (all shards), sampled every 100 ms.");
    G(ingress_backlog_max, "parley_gateway_ingress_backlog_max",
      "ingress_backlog_max: from this backlog (or this many own sends pending) sends are shed.");
    G(shedding, "parley_gateway_shedding", "1 while sends are being shed, else 0.");
    C(prekey_uploads, "parley_gateway_prekey_uploads_total", "UploadPrekeys stored.", NULL);
    C(prekey_invalid_signatures, "parley_gateway_prekey_invalid_signatures_total",
      "UploadPrekeys refused because the signed prekey signature did not verify.", NULL);
    C(prekey_fetches, "parley_gateway_prekey_fetches_total",
      "GetPrekeys answered with bundles.", NULL);
    C(prekey_bundles_otk, "parley_gateway_prekey_bundles_total",
      "Prekey bundles served, by whether they carried a one-time prekey.", "one_time=\"yes\"");
    C(prekey_bundles_no_otk, "parley_gateway_prekey_bundles_total",
      "Prekey bundles served, by whether they carried a one-time prekey.", "one_time=\"no\"");
    C(prekey_limited_requester, "parley_gateway_prekey_fetches_rate_limited_total",
      "GetPrekeys refused with RATE_LIMITED, by the window exceeded.", "limit=\"requester\"");
    C(prekey_limited_target, "parley_gateway_prekey_fetches_rate_limited_total",
      "GetPrekeys refused with RATE_LIMITED, by the window exceeded.", "limit=\"target\"");
    C(prekey_low_pushes, "parley_gateway_prekey_low_pushes_total",
      "PrekeysLow pushes sent to devices held by this gateway.", NULL);
    C(devlist_published, "parley_gateway_device_lists_published_total",
      "Device list versions stored (PublishDeviceList accepted).", NULL);
    C(devlist_devices_added, "parley_gateway_device_list_devices_total",
      "Device rows added or removed by published device lists.", "change=\"added\"");
    C(devlist_devices_removed, "parley_gateway_device_list_devices_total",
      "Device rows added or removed by published device lists.", "change=\"removed\"");
#define GW_DEVLIST_REFUSED(field, reason)                                                      \
    C(field, "parley_gateway_device_lists_refused_total",                                      \
      "PublishDeviceList refused, by reason; nothing changed.", "reason=\"" reason "\"")
    GW_DEVLIST_REFUSED(devlist_refused_signature, "signature");
    GW_DEVLIST_REFUSED(devlist_refused_conflict, "conflict");
    GW_DEVLIST_REFUSED(devlist_refused_too_many, "too_many_devices");
    GW_DEVLIST_REFUSED(devlist_refused_invalid, "invalid");
#undef GW_DEVLIST_REFUSED
    C(closes_removed, "parley_gateway_closes_total",
      "Connections closed by the gateway, by reason.", "reason=\"device_removed\"");
    C(account_sessions, "parley_gateway_account_sessions_total",
      "Account sessions opened (AuthAnswer device_id 0, signed by the account key).", NULL);
    G(prov_channels, "parley_gateway_provision_channels",
      "Provisioning channels opened through this gateway that have not expired or closed.");
    C(prov_opened, "parley_gateway_provision_opens_total", "ProvisionOpen requests, by result.",
      "result=\"ok\"");
    C(prov_open_limited, "parley_gateway_provision_opens_total",
      "ProvisionOpen requests, by result.", "result=\"rate_limited\"");
    C(prov_joined, "parley_gateway_provision_joins_total", "ProvisionJoin requests, by result.",
      "result=\"ok\"");
    C(prov_join_not_found, "parley_gateway_provision_joins_total",
      "ProvisionJoin requests, by result.", "result=\"not_found\"");
    C(prov_join_limited, "parley_gateway_provision_joins_total",
      "ProvisionJoin requests, by result.", "result=\"rate_limited\"");
    C(prov_relayed, "parley_gateway_provision_relayed_total",
      "Provisioning pushes (ProvisionPeer, ProvisionData) relayed to the other side.", NULL);
    C(prov_expired, "parley_gateway_provision_expired_total",
      "Provisioning channels that expired while their opener was still connected.", NULL);
    C(prov_dropped, "parley_gateway_provision_dropped_total",
      "Relayed provisioning pushes dropped (the connection left the channel or is gone).", NULL);
#define GW_TURN_RESULT(field, result)                                                          \
    C(field, "parley_gateway_turn_credentials_total",                                          \
      "GetTurnCredentials requests, by result.", "result=\"" result "\"")
    GW_TURN_RESULT(turn_minted, "ok");
    GW_TURN_RESULT(turn_limited, "rate_limited");
    GW_TURN_RESULT(turn_not_configured, "not_configured");
    GW_TURN_RESULT(turn_unavailable, "unavailable");
#undef GW_TURN_RESULT
    G(turn_uris, "parley_gateway_turn_uris",
      "TURN relay URIs handed out with credentials (turn_uris); 0: GetTurnCredentials answers "
      "NOT_CONFIGURED.");
#undef C
#undef G
    return bad ? -1 : 0;
}

void gw_metrics_error(gw_metrics *gm, Parley__V1__ErrorCode code)
{
    if ((int)code >= 0 && (int)code < GW_METRICS_ERROR_CODES && gm->errors[code])
        pmet_inc(gm->errors[code], 1);
}
