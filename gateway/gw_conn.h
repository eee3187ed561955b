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
#include "gw_peer.h"
#include "gw_send.h"
#include "limits.h"
#include "gw_proto.h"

struct lws;
struct gw;
struct gw_pending;
struct gw_rx;
struct gw_provision;

typedef enum {
    GW_CONN_OPEN = 0, /* challenge sent, not authenticated */
    GW_CONN_AUTHING,  /* AuthAnswer being checked */
    GW_CONN_AUTHED,
} gw_conn_state;

/* The drain (gw_drain.c) of a connection: what lasts between passes. The state of a running
 * pass, and the live pushes held meanwhile, live in a gw_drain_pass that exists only from auth
 * until the drain ends, so an idle connection does not carry it. */
struct gw_drain_pass;
typedef struct {
    uint64_t done_cursor;    /* cursor at the end of the last completed pass */
    uint64_t last_delivered; /* highest envelope id pushed to the client */
    struct gw_drain_pass *pass; /* non-NULL while live pushes are held (auth until drain end) */
} gw_drain_state;

/* What only a connection that has not authenticated yet needs; freed once AuthOk is sent. */
typedef struct gw_conn_auth {
    struct gw_conn *conn;
    struct gw_conn_auth *prev, *next; /* the auth timeout list (gw->auth_head), oldest first */
    uint64_t opened_us;               /* start of the auth timeout */
    uint64_t request_id;              /* of the AuthAnswer, echoed in AuthOk */
    uint64_t queued;                  /* queue_len at auth, reported in AuthOk */
    uint32_t one_time_prekeys;        /* the device's prekeys at auth, reported in AuthOk */
    uint32_t signed_prekey_id;
    uint8_t challenge[PARLEY_CHALLENGE_BYTES];
    uint8_t has_challenge; /* cleared when an AuthAnswer or Register consumes it */
    uint8_t in_list;
} gw_conn_auth;

/* One WebSocket. Sized for holding hundreds of thousands of idle ones: everything that only a
 * connection in the middle of something needs (auth, a message being reassembled, a drain
 * pass) hangs off a pointer that is NULL when idle. */
typedef struct gw_conn {
    uint64_t id;
    struct lws *wsi;
    struct gw_conn *id_next, *dev_next; /* intrusive links, owned by gw_conns */
    gw_conn_auth *auth;                 /* until AuthOk was sent */
    struct gw_rx *rx;                   /* a message being reassembled (gw_rx.h) */
    struct gw_provision *prov; /* the provisioning channel it opened or joined (gw_provision.h) */
    gw_outq out;
    struct gw_pending *pending; /* sends waiting for fanout (see gw_send.h) */
    gw_send_bucket send_bucket;
    gw_drain_state drain;
    const char *close_reason; /* a string literal, set with close_code */
    int64_t account_id;
    uint32_t device_id;
    uint32_t last_rx_s; /* loop time (s) of the last frame or pong from the client */
    unsigned npending;  /* sends waiting and orphaned */
    uint16_t lookups;   /* requests in flight (gw_lookup.h) */
    uint16_t ack_ids;   /* ack ids queued or being deleted (see gw_ack.h) */
    uint16_t close_code; /* non-zero once closing: no more input is handled */
    uint8_t state;       /* gw_conn_state */
    uint8_t bad_frames;
    uint8_t close_flush : 1;  /* send what is queued before the close frame */
    uint8_t in_dev_table : 1;
    uint8_t ping_due : 1;     /* a keepalive ping waits for the socket to be writable */
    uint8_t account_session : 1; /* authenticated as the account (AuthAnswer device_id 0): only
                                    GetDevices, PublishDeviceList and Ping */
    char account[PARLEY_NAME_MAX + 1]; /* normalised; set once authenticated */
    gw_peer peer; /* source address, for the registration rate limit and logs */
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
/* Adds c (id set) to / removes it from the id table (gw_conn_new and gw_conn_destroy do). */
int gw_conns_add(gw_conns *t, gw_conn *c);
void gw_conns_remove(gw_conns *t, gw_conn *c);
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
/* Starts closing c with a WebSocket close code and reason (a string with static storage: it is
 * kept, not copied). flush: send the queued frames first (an error frame explaining the close);
 * otherwise the queue is dropped. Later calls are ignored. A connection that has not finished
 * closing PARLEY_CLOSE_BACKSTOP_S later is cut (gw_reaper.h). */
void gw_conn_close(struct gw *g, gw_conn *c, int code, const char *reason, int flush);

/* The loop's time in whole seconds, the clock of last_rx_s. */
uint32_t gw_conn_now_s(const struct gw *g);

/* Unauthenticated connections, oldest first, for the auth timeout: c goes to the end (its
 * timeout starts now) / leaves the list. */
void gw_conn_auth_list_append(struct gw *g, gw_conn *c);
void gw_conn_auth_list_remove(struct gw *g, gw_conn *c);
/* Frees c->auth (AuthOk was sent; the connection stays). */
void gw_conn_auth_free(struct gw *g, gw_conn *c);
/* Visits the connections in table buckets [first, first + n) (clipped to the table); returns
 * how many it visited. The table (gw_conns_buckets buckets) only grows, by doubling, and an
 * entry of bucket b then lands in b or b + old size: a cursor kept across a growth misses no
 * one (some are visited twice). fn must not add or destroy connections. */
size_t gw_conns_visit(const gw_conns *t, size_t first, size_t n, void (*fn)(gw_conn *c, void *ud),
                      void *ud);
size_t gw_conns_buckets(const gw_conns *t);

#endif
