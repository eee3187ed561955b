/* gw_conn.h: one client connection's state (auth, reassembly, outbound queue, drain state) and
 * the gateway's connection tables: by conn_id and by (account, device). A connection is owned
 * by the table from gw_conn_new until gw_conn_destroy (called when lws reports it closed).
 * Asynchronous callbacks must carry the conn_id and look the connection up again: it may be
 * gone by then. */
#ifndef PARLEY_GW_CONN_H
#define PARLEY_GW_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "gw_outq.h"
#include "gw_send.h"
#include "limits.h"
#include "gw_proto.h"

struct lws;
struct gw;
struct gw_pending;

typedef enum {
    GW_CONN_OPEN = 0, /* challenge sent, not authenticated */
    GW_CONN_AUTHING,  /* AuthAnswer being checked */
    GW_CONN_AUTHED,
} gw_conn_state;

/* A live push that arrived while the queue drained. */
typedef struct gw_held {
    struct gw_held *next;
    uint64_t id;
    gw_out *frame;
} gw_held;

typedef struct {
    int active;   /* live pushes are held (from auth until the drain ends) */
    int running;  /* a drain pass runs */
    int querying; /* a page query is in flight */
    int waiting;  /* the next page waits for outbound space */
    int initial;  /* the first drain after auth: ends with QueueEmpty */
    int again;    /* run one more pass when this one reaches the end */
    uint64_t cursor;         /* highest id this pass delivered (or started after) */
    uint64_t done_cursor;    /* cursor at the end of the last completed pass */
    uint64_t last_delivered; /* highest envelope id pushed to the client */
    uint64_t pass_count;     /* envelopes delivered by the current pass */
    gw_held *held, *held_tail;
    size_t held_count, held_bytes;
    int held_overflow; /* held pushes were dropped: the pass must query once more */
} gw_drain_state;

typedef struct gw_conn {
    uint64_t id;
    struct lws *wsi;
    gw_conn_state state;
    char peer[64]; /* source address, for the registration rate limit and logs */
    uint64_t opened_us;

    uint8_t challenge[PARLEY_CHALLENGE_BYTES];
    int has_challenge; /* cleared when an AuthAnswer or Register consumes it */

    char account[PARLEY_NAME_MAX + 1]; /* normalised; set once authenticated */
    uint32_t device_id;
    int64_t account_id;
    uint64_t auth_request_id; /* of the AuthAnswer, echoed in AuthOk */
    uint64_t auth_queued;     /* queue_len at auth, reported in AuthOk */

    /* inbound message reassembly */
    unsigned char *rx;
    size_t rx_len, rx_cap;
    int rx_in_msg, rx_binary, rx_skip;
    int rx_too_large;            /* discarding an oversized message; answered at its end */
    unsigned bad_frames;

    /* outbound */
    gw_outq out;
    int close_code; /* non-zero once closing: no more input is handled */
    int close_flush; /* send what is queued before the close frame */
    char close_reason[64];

    /* sends waiting for fanout (see gw_send.h) */
    struct gw_pending *pending;
    unsigned npending; /* waiting and orphaned */
    gw_send_bucket send_bucket;
    unsigned lookups;  /* GetDevices queries in flight */
    unsigned ack_ids;  /* ack ids queued or being deleted (see gw_ack.h) */

    gw_drain_state drain;

    /* intrusive links, owned by gw_conns / the auth timeout list */
    struct gw_conn *id_next, *dev_next;
    struct gw_conn *auth_prev, *auth_next;
    int in_auth_list, in_dev_table;
} gw_conn;

typedef struct {
    gw_conn **by_id;
    size_t id_cap, count;
    gw_conn **by_dev;
    size_t dev_cap, dev_count;
} gw_conns;

int gw_conns_init(gw_conns *t);
/* Frees the tables; connections still in them are destroyed without any I/O. */
void gw_conns_free(gw_conns *t);
gw_conn *gw_conns_get(const gw_conns *t, uint64_t id);
gw_conn *gw_conns_device(const gw_conns *t, const char *account, uint32_t device_id);
/* Binds c (account and device_id set) in the device table; a previous holder must be unbound
 * first. */
void gw_conns_bind_device(gw_conns *t, gw_conn *c);
void gw_conns_unbind_device(gw_conns *t, gw_conn *c);
/* Calls fn for every connection; fn must not add or destroy connections. */
void gw_conns_each(const gw_conns *t, void (*fn)(gw_conn *c, void *ud), void *ud);

/* Allocates a connection for wsi and adds it to the table; NULL on OOM. */
gw_conn *gw_conn_new(struct gw *g, struct lws *wsi);
/* Removes c from every table and list (pending sends dropped, held pushes freed), frees it. */
void gw_conn_destroy(struct gw *g, gw_conn *c);

/* Queues one outbound frame (takes o in every case). Over outbound_max the connection is
 * closed with 4002 and its queue freed; returns -1 then, or when c is already closing. */
int gw_conn_send(struct gw *g, gw_conn *c, gw_out *o);
/* Packs and queues f. */
int gw_conn_send_frame(struct gw *g, gw_conn *c, const Parley__V1__ServerFrame *f);
/* Queues Error{code}; counted in the error metric. */
int gw_conn_send_error(struct gw *g, gw_conn *c, uint64_t request_id, Parley__V1__ErrorCode code,
                       const char *message, uint32_t retry_after_ms);
/* Starts closing c with a WebSocket close code. flush: send the queued frames first (an error
 * frame explaining the close); otherwise the queue is dropped. Later calls are ignored. */
void gw_conn_close(struct gw *g, gw_conn *c, int code, const char *reason, int flush);

/* Unauthenticated connections, oldest first, for the auth timeout. */
void gw_conn_auth_list_remove(struct gw *g, gw_conn *c);

#endif
