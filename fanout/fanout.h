/* fanout.h: the fanout service's shared types. A fanout reads sends from the ingress streams
 * (consume.c; readplan.c picks what to read), stores each batch with one PostgreSQL call
 * (store.c), answers the senders and pushes to the recipients' gateways (route.c), then acks
 * the batch. batch.c runs that pipeline for one batch; every ingress shard is a lane with at
 * most one batch at a time, so the lanes run side by side while each recipient's sends (one
 * shard) stay in order. frames.c holds the pure encoders and decoders. Module prefix: pfo_. */
#ifndef PARLEY_FANOUT_H
#define PARLEY_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include "limits.h"
#include "metrics.h"
#include "pgbin.h"
#include "service.h"
#include "parley.pb-c.h"

typedef struct predis predis;
typedef struct ppg ppg;
typedef struct padmin padmin;

/* Configuration; STR fields are owned by pcfg (pcfg_free). */
typedef struct {
    psvc_backend backend;
    psvc_admin admin;
    char *fanout_id;
    long long queue_max;
    long long claim_idle_ms;
} pfo_config;

/* Outcome of one send. The order is the metric label order of pfo_status_name. */
typedef enum {
    PFO_ACCEPTED = 0,
    PFO_DUPLICATE,
    PFO_UNKNOWN_ACCOUNT,
    PFO_MISMATCH,
    PFO_QUEUE_FULL,
    PFO_INVALID,        /* failed the checks in C or in SQL */
    PFO_UNKNOWN_SENDER, /* the sender account no longer exists */
    PFO_INTERNAL,       /* the send made the database call fail; nothing stored */
    PFO_STATUS_COUNT
} pfo_status;

#define PFO_LIST_MAX PARLEY_MAX_ENVELOPES_PER_SEND

typedef struct {
    pfo_status status;
    uint64_t created_ms;                         /* accepted */
    size_t n_stored;                             /* accepted, duplicate */
    uint32_t stored_dev[PFO_LIST_MAX];
    uint64_t stored_id[PFO_LIST_MAX];
    size_t n_missing, n_extra, n_stale, n_full;  /* mismatch, queue_full */
    uint32_t missing[PFO_LIST_MAX], extra[PFO_LIST_MAX], stale[PFO_LIST_MAX];
    uint32_t full[PFO_LIST_MAX];
    size_t n_queued;                             /* duplicate: still queued, re-pushed */
    uint32_t queued_dev[PFO_LIST_MAX];
    uint64_t queued_id[PFO_LIST_MAX];
    uint64_t queued_created[PFO_LIST_MAX];
    uint8_t *queued_content[PFO_LIST_MAX];       /* owned: pfo_result_clear */
    size_t queued_len[PFO_LIST_MAX];
} pfo_result;

void pfo_result_clear(pfo_result *r);

/* A Redis stream entry id, "ms-seq": two 20-digit numbers, the dash and the NUL fit. */
#define PFO_ENTRY_ID_MAX 48

/* One stream entry of a batch (its stream is the batch's shard). */
typedef struct {
    char id[PFO_ENTRY_ID_MAX];       /* the stream entry id */
    Parley__V1__InternalSend *msg;   /* owned; NULL when malformed or deleted */
    int deleted;                     /* pending entry whose data is gone: ack only */
    int to_store;                    /* passed pfo_entry_check: goes to PostgreSQL */
    char sender[PARLEY_NAME_MAX + 1];    /* normalised names */
    char recipient[PARLEY_NAME_MAX + 1];
    pfo_result res;
} pfo_entry;

typedef struct {
    pmet_counter *batches, *entries, *malformed, *accepted, *duplicates, *envelopes;
    pmet_counter *rejected[PFO_STATUS_COUNT];
    pmet_counter *pushes, *pushes_offline, *replies, *store_failures, *route_failures;
    pmet_counter *reclaimed, *pruned;
    pmet_hist *batch_size, *batch_seconds, *commit_seconds, *e2e_seconds;
    pmet_gauge *backlog[PARLEY_INGRESS_SHARDS_MAX]; /* per shard, registered when first read */
} pfo_metrics;

typedef struct pfo_batch pfo_batch;

/* What one XREADGROUP asks for (readplan.c). */
typedef struct {
    unsigned shard[PARLEY_INGRESS_SHARDS_MAX];  /* the streams read, in shard order */
    unsigned n;
    int history;                     /* our own pending entries ("0"), which never BLOCKs */
    size_t count;                    /* COUNT: entries per stream at most */
    const char *block_ms;            /* BLOCK, NULL for none */
} pfo_readplan;

typedef struct pfo {
    uv_loop_t *loop;
    const pfo_config *cfg;
    const char *consumer;            /* fanout_id */
    unsigned nshards;
    char **streams;                  /* owned: nshards ingress stream names */
    struct pfo_claim *claims;        /* owned: per stream, XAUTOCLAIM position and context */
    predis *rd_read;                 /* the blocking XREADGROUP only */
    predis *rd_cmd;                  /* everything else */
    ppg *pg;
    pmetrics *registry;
    pfo_metrics met;
    padmin *admin;
    uv_timer_t retry_timer, claim_timer, prune_timer;
    int reading;                     /* an XREADGROUP is in flight ... */
    pfo_readplan read;               /* ... asking for this */
    unsigned char pending[PARLEY_INGRESS_SHARDS_MAX]; /* next read of the shard takes "0" */
    unsigned claiming;               /* XAUTOCLAIM commands in flight */
    int pruning;                     /* a prune call is in flight */
    pfo_batch *lane[PARLEY_INGRESS_SHARDS_MAX]; /* per shard: its batch in flight, or NULL */
    unsigned busy;                   /* lanes with a batch */
    size_t held;                     /* entries read and not yet acked or dropped, all lanes */
    int stopping, stopped;
    int pg_down, route_down;         /* outage already logged */
    void (*on_stopped)(struct pfo *f); /* main.c: runs once everything is closing */
} pfo;

/* metrics.c */
void pfo_metrics_init(pfo_metrics *m, pmetrics *registry);
const char *pfo_status_name(pfo_status s);

/* frames.c: pure encoders (out buffers are malloc'd, the caller frees) */
#define PFO_MSG_MAX (256 + 4 * PFO_LIST_MAX * 12)
/* The human message of a rejected send; own: the recipient is the sender's account. */
void pfo_error_message(char out[PFO_MSG_MAX], const char *recipient, int own,
                       const pfo_result *r);
Parley__V1__ErrorCode pfo_error_code(pfo_status s);
/* InternalEvent{reply{conn_id, ServerFrame{request_id, send_result | error}}}. For send_result
 * the stored list follows the order of the Send's envelopes. 0, or -1 on allocation failure. */
int pfo_frame_reply(const Parley__V1__InternalSend *s, const char *recipient, int own,
                    const pfo_result *r, uint8_t **out, size_t *len);
/* InternalEvent{push{account, device_id, envelope}}. */
int pfo_frame_push(const char *account, uint32_t device_id, const Parley__V1__Envelope *env,
                   uint8_t **out, size_t *len);
/* Gateway id of a presence value "gw/conn" (before the last '/'). 0, or -1 when malformed. */
int pfo_presence_gateway(const char *val, size_t len, char out[PARLEY_GATEWAY_ID_MAX + 1]);
/* Decodes and checks one ingress entry's payload into e (msg, names, to_store). Returns 0 when
 * the entry can be answered (possibly with PFO_INVALID in e->res), -1 when it is malformed
 * (undecodable or without a usable reply address). */
int pfo_entry_decode(pfo_entry *e, const uint8_t *data, size_t len);

/* store.c */
typedef struct {
    char *text[9];              /* owned: the nine text-format array parameters */
    uint8_t *contents;          /* owned: every content, concatenated */
    size_t contents_len;
    char queue_max[24];
} pfo_params;
extern const char pfo_store_sql[];
/* Builds the parameters of parley_accept_batch for sends[0..n). 0, or -1 on allocation
 * failure or when the contents exceed what one parameter can carry. */
int pfo_store_params(pfo_params *p, pfo_entry *const *sends, size_t n, long long queue_max);
void pfo_store_params_free(pfo_params *p);
/* Fills sends[k]->res from a result of parley_accept_batch (binary format). Returns 0, or -1
 * when the result does not have the expected shape (then every send is PFO_INTERNAL). */
int pfo_store_parse(const PGresult *res, pfo_entry *const *sends, size_t n);
/* Whether a failed call should be retried later (connection, shutdown, lock, resource
 * problems) rather than blamed on the batch's data. sqlstate may be NULL (no result). */
int pfo_store_transient(const char *sqlstate);
/* Runs the batch's sends through PostgreSQL; done(b, failed) runs once, failed when the
 * batch must stay pending (transient failure). */
void pfo_store_run(pfo *f, pfo_batch *b, void (*done)(pfo_batch *b, int failed));
/* Starts pruning `sends` older than the idempotency window (no-op if already running). */
void pfo_store_prune(pfo *f);

/* route.c: publishes replies and pushes of a stored batch, then XACK + XDEL; done(b, failed)
 * runs once every command got its answer. */
void pfo_route_run(pfo *f, pfo_batch *b, void (*done)(pfo_batch *b, int failed));

/* readplan.c: the next read from the lanes (busy or free), the shards' pending marks and the
 * entries held. Returns 0 when nothing is to be read now: every lane is busy or
 * PARLEY_FANOUT_BATCH_MAX entries are held (a lane that finishes plans again). Pure. */
int pfo_readplan_make(const pfo *f, pfo_readplan *p);

/* consume.c */
int pfo_consume_init(pfo *f);          /* stream names; 0 or -1 on allocation failure */
void pfo_consume_free(pfo *f);
void pfo_consume_on_up(predis *r, void *ud);     /* rd_read (re)connected: (re)create groups */
void pfo_consume_next(pfo *f);         /* reads the next batch when idle */
void pfo_consume_retry(pfo *f, uint64_t delay_ms);
void pfo_consume_claim(pfo *f);        /* one XAUTOCLAIM round over every stream */
void pfo_consume_forget(pfo *f);       /* drops long-silent consumers with nothing pending */
void pfo_consume_backlog(pfo *f);      /* XLEN of every stream into the backlog gauges */

/* batch.c */
struct pfo_batch {
    pfo *f;
    unsigned shard;                  /* its lane: every entry comes from this stream */
    size_t n;
    pfo_entry *e;                    /* owned: n entries */
    uint64_t t_start_us, t_store_us;
    /* store.c and route.c progress */
    size_t outstanding;
    int failed;
    pfo_params params;               /* per call in flight (whole batch) */
    int split;                       /* the batch call failed on data: one call per send */
    size_t split_next;               /* split mode: the send being stored alone */
    pfo_entry **sends;               /* owned: the entries that go to PostgreSQL */
    size_t nsends;
    void (*done)(pfo_batch *b, int failed);
    /* route.c: presence keys and pushes */
    struct pfo_push *pushes;         /* owned */
    size_t npushes;
    int acks_due;                    /* ack the entries once every reply and push succeeded */
};
pfo_batch *pfo_batch_new(pfo *f, unsigned shard, size_t cap); /* NULL on allocation failure */
pfo_entry *pfo_batch_add(pfo_batch *b);        /* next zeroed entry (cap is never exceeded) */
void pfo_batch_free(pfo_batch *b);
/* Takes ownership of b and occupies its shard's lane (which must be free): store, route, ack,
 * then pfo_consume_next. */
void pfo_batch_start(pfo *f, pfo_batch *b);

/* service.c: the process's parts and their lifecycle */
/* Creates metrics, connections, admin listener and timers and starts reading. 0, or -1 (logged;
 * call pfo_stop and run the loop to release what was created). */
int pfo_start(pfo *f, uv_loop_t *loop, const pfo_config *cfg, const char *consumer);
/* Graceful stop: no new batch; once the batches in flight are finished everything is closed
 * and on_stopped runs. Safe to call more than once. */
void pfo_stop(pfo *f);
void pfo_maybe_stopped(pfo *f);        /* the pipeline went idle: finish a pending stop */
int pfo_ready(void *ud);               /* both Redis connections and one PostgreSQL conn up */
void pfo_free(pfo *f);                 /* after uv_run returned */

#endif
