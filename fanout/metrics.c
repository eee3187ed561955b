/* metrics.c: the fanout's Prometheus metrics, registered once at startup. */
#include "fanout.h"

#include <stdio.h>

static const char *const status_names[PFO_STATUS_COUNT] = {
    [PFO_ACCEPTED] = "accepted",
    [PFO_DUPLICATE] = "duplicate",
    [PFO_UNKNOWN_ACCOUNT] = "unknown_account",
    [PFO_MISMATCH] = "device_mismatch",
    [PFO_QUEUE_FULL] = "queue_full",
    [PFO_INVALID] = "invalid",
    [PFO_UNKNOWN_SENDER] = "unknown_sender",
    [PFO_INTERNAL] = "internal",
};

const char *pfo_status_name(pfo_status s)
{
    return (unsigned)s < PFO_STATUS_COUNT ? status_names[s] : "internal";
}

static const double size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

void pfo_metrics_init(pfo_metrics *m, pmetrics *r)
{
    m->batches = pmetrics_counter(r, "parley_fanout_batches_total",
                                  "Batches read from the ingress streams and processed.", NULL);
    m->entries = pmetrics_counter(r, "parley_fanout_entries_total",
                                  "Ingress stream entries processed (acked).", NULL);
    m->malformed = pmetrics_counter(r, "parley_fanout_malformed_entries_total",
                                    "Undecodable ingress entries, logged and acked.", NULL);
    m->accepted = pmetrics_counter(r, "parley_fanout_sends_accepted_total",
                                   "Sends stored in PostgreSQL.", NULL);
    m->duplicates = pmetrics_counter(r, "parley_fanout_sends_duplicate_total",
                                     "Resends of an accepted client_id, answered from sends.",
                                     NULL);
    m->envelopes = pmetrics_counter(r, "parley_fanout_envelopes_stored_total",
                                    "Envelopes inserted into device queues.", NULL);
    for (int s = PFO_UNKNOWN_ACCOUNT; s < PFO_STATUS_COUNT; s++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", status_names[s]);
        m->rejected[s] = pmetrics_counter(r, "parley_fanout_sends_rejected_total",
                                          "Sends rejected, by reason.", labels);
    }
    m->replies = pmetrics_counter(r, "parley_fanout_replies_total",
                                  "Replies published to sender gateways.", NULL);
    m->pushes = pmetrics_counter(r, "parley_fanout_pushes_total",
                                 "Envelopes pushed to the gateway holding the device.", NULL);
    m->pushes_offline = pmetrics_counter(r, "parley_fanout_pushes_offline_total",
                                         "Stored envelopes whose device had no presence.",
                                         NULL);
    m->store_failures = pmetrics_counter(r, "parley_fanout_store_failures_total",
                                         "Batches left pending because PostgreSQL failed.",
                                         NULL);
    m->route_failures = pmetrics_counter(r, "parley_fanout_route_failures_total",
                                         "Batches left pending because Redis failed while "
                                         "replying, pushing or acking.", NULL);
    m->reclaimed = pmetrics_counter(r, "parley_fanout_reclaimed_total",
                                    "Idle pending entries claimed from other consumers.", NULL);
    m->pruned = pmetrics_counter(r, "parley_fanout_sends_pruned_total",
                                 "Rows of sends removed after the idempotency window.", NULL);
    m->batch_size = pmetrics_hist(r, "parley_fanout_batch_size", "Entries per batch.", NULL,
                                  size_bounds, sizeof size_bounds / sizeof size_bounds[0]);
    m->batch_seconds = pmetrics_hist(r, "parley_fanout_batch_seconds",
                                     "From reading a batch to acking it.", NULL,
                                     pmetrics_latency_bounds, pmetrics_latency_nbounds);
    m->commit_seconds = pmetrics_hist(r, "parley_fanout_commit_seconds",
                                      "The PostgreSQL call of a batch, until committed.", NULL,
                                      pmetrics_latency_bounds, pmetrics_latency_nbounds);
    m->e2e_seconds = pmetrics_hist(r, "parley_fanout_send_seconds",
                                   "From the gateway receiving a send to its reply being "
                                   "published (gateway and fanout clocks).", NULL,
                                   pmetrics_latency_bounds, pmetrics_latency_nbounds);
}
