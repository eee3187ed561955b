/* relay_metrics.c: the relay's Prometheus series (names prefixed parley_relay_). */
#include <stdio.h>

#include "relay.h"

const char *rref_name(rref_reason why)
{
    if ((int)why < RPOL_NREASONS)
        return rpol_reason_name((rpol_reason)why);
    switch (why) {
    case RREF_UNAUTHENTICATED: return "unauthenticated";
    case RREF_BAD_CREDENTIALS: return "bad_credentials";
    case RREF_EXPIRED: return "expired";
    case RREF_STALE_NONCE: return "stale_nonce";
    case RREF_RATE_LIMITED: return "rate_limited";
    case RREF_QUOTA: return "quota";
    case RREF_CAPACITY: return "capacity";
    case RREF_MISMATCH: return "allocation_mismatch";
    case RREF_BAD_REQUEST: return "bad_request";
    case RREF_UNKNOWN_ATTRIBUTE: return "unknown_attribute";
    case RREF_UNSUPPORTED_TRANSPORT: return "unsupported_transport";
    case RREF_FAMILY: return "address_family";
    case RREF_NO_PERMISSION: return "no_permission";
    case RREF_BANDWIDTH: return "bandwidth";
    default: return "unknown";
    }
}

void rmet_init(rmet *m, pmetrics *reg)
{
    m->allocations =
        pmetrics_gauge(reg, "parley_relay_allocations", "Live TURN allocations.", NULL);
    m->permissions = pmetrics_gauge(reg, "parley_relay_permissions",
                                    "Live permissions over all allocations.", NULL);
    m->channels = pmetrics_gauge(reg, "parley_relay_channels",
                                 "Live channel bindings over all allocations.", NULL);
    m->reservations = pmetrics_gauge(reg, "parley_relay_reservations",
                                     "Relay ports held for a RESERVATION-TOKEN.", NULL);
    m->tcp_conns = pmetrics_gauge(reg, "parley_relay_tcp_connections",
                                  "Open TCP connections of TURN clients.", NULL);
    const char *ph = "Datagrams relayed.", *bh = "Application bytes relayed.";
    m->pkts_to_peer =
        pmetrics_counter(reg, "parley_relay_packets_total", ph, "direction=\"to_peer\"");
    m->pkts_to_client =
        pmetrics_counter(reg, "parley_relay_packets_total", ph, "direction=\"to_client\"");
    m->bytes_to_peer =
        pmetrics_counter(reg, "parley_relay_bytes_total", bh, "direction=\"to_peer\"");
    m->bytes_to_client =
        pmetrics_counter(reg, "parley_relay_bytes_total", bh, "direction=\"to_client\"");
    m->requests = pmetrics_counter(reg, "parley_relay_requests_total",
                                   "STUN/TURN requests received (well-formed).", NULL);
    m->send_errors = pmetrics_counter(reg, "parley_relay_send_errors_total",
                                      "Datagrams dropped because a send failed.", NULL);
    m->malformed = pmetrics_counter(reg, "parley_relay_malformed_total",
                                    "Datagrams and frames that were not valid STUN/ChannelData.",
                                    NULL);
    for (int i = 1; i < RREF_COUNT; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", rref_name((rref_reason)i));
        m->refusals[i] = pmetrics_counter(reg, "parley_relay_refusals_total",
                                          "Requests, peers and packets refused, by reason.",
                                          labels);
    }
}
