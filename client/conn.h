/* conn.h: one WebSocket connection to a gateway: connects (ws:// or wss://, subprotocol
 * parley.v1), sends ClientFrames (assigning request ids and routing each response to its
 * callback), reassembles and decodes ServerFrames, keeps the latest Challenge, and reports
 * pushes and the close. It knows nothing about accounts or keys (session.c does).
 *
 * Callbacks run on the loop, never from inside the pc_conn_* call that caused them, with the
 * exceptions noted at pc_conn_on_challenge and pc_conn_free. Any callback may call
 * pc_conn_free. */
#ifndef PC_CONN_H
#define PC_CONN_H


#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "limits.h"
#include "parley.pb-c.h"
#include "status.h"

typedef struct pc_conn pc_conn;

typedef struct {
    uint8_t nonce[PARLEY_CHALLENGE_BYTES];
    char gateway_id[PARLEY_GATEWAY_ID_MAX + 1];
    unsigned pow_difficulty;
    uint64_t server_time_ms;
} pc_challenge;

typedef struct {
    /* Every decoded frame, before routing (for tools that print traffic); may be NULL. */
    void (*on_tap)(pc_conn *c, const Parley__V1__ServerFrame *f, void *ud);
    /* Pushes (request_id 0) and responses nobody waits for. The frame is freed on return. */
    void (*on_frame)(pc_conn *c, const Parley__V1__ServerFrame *f, void *ud);
    /* The connection failed or closed; st->close_code is the peer's close code (0 if it sent
     * none). Called once; the conn is dead afterwards (only pc_conn_free remains). */
    void (*on_close)(pc_conn *c, const pc_status *st, void *ud);
} pc_conn_events;

/* f is the response (freed on return) or NULL when the connection closed first (st says how). */
typedef void (*pc_response_cb)(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                               void *ud);
/* A fresh challenge (it counts as used after this call), or ch NULL when the connection closed
 * before one came (st says how). */
typedef void (*pc_challenge_cb)(pc_conn *c, const pc_challenge *ch, const pc_status *st,
                                void *ud);

/* Starts connecting to url. Returns a conn owned by the caller (pc_conn_free) or NULL with st
 * set when the URL is invalid; a refused connection is reported through on_close. */
pc_conn *pc_conn_open(pc_ctx *ctx, const char *url, const pc_conn_events *ev, void *ud,
                      pc_status *st);
/* pc_conn_open with the socket bound to local_addr, an IPv4 or IPv6 literal (NULL: any
 * address), before it connects. A load generator spreads its connections over many loopback
 * addresses (127.0.1.x) so that they are not limited by one address's ephemeral ports. The
 * string is copied. Fails (NULL, st set) when local_addr is not an address literal. */
pc_conn *pc_conn_open_from(pc_ctx *ctx, const char *url, const char *local_addr,
                           const pc_conn_events *ev, void *ud, pc_status *st);
/* Closes (if open: queued frames first, then close 1000) and releases c. Pending response
 * callbacks and the challenge waiter are called with NULL (status "cancelled") before this
 * returns, so whoever waits can clean up; they must not use c. No other callback runs after. */
void pc_conn_free(pc_conn *c);
/* Flushes queued frames, then sends a close frame with code and reason. */
void pc_conn_close(pc_conn *c, int code, const char *reason);

/* Sends f with a fresh request_id (written into f) and calls cb with the answer. Frames
 * queued before the socket opens go out when it does. Returns 0, or -1 with st set. */
int pc_conn_request(pc_conn *c, Parley__V1__ClientFrame *f, pc_response_cb cb, void *ud,
                    pc_status *st);
/* Drops every pending response callback whose ud is ud, without calling it (its owner is going
 * away). The answers, if they come, go to on_frame. */
void pc_conn_forget(pc_conn *c, void *ud);
/* Sends f as is (its request_id untouched), expecting no routed answer. */
int pc_conn_post(pc_conn *c, const Parley__V1__ClientFrame *f, pc_status *st);
/* Sends arbitrary bytes as one binary (or text) message, any size: for test tools. */
int pc_conn_send_raw(pc_conn *c, const void *data, size_t len, int binary, pc_status *st);

/* Calls cb with the next unused challenge: immediately (before returning) if one is already
 * here, else when it arrives, or with NULL if the connection closes first. One waiter at a
 * time; a new call replaces the old waiter. */
void pc_conn_on_challenge(pc_conn *c, pc_challenge_cb cb, void *ud);

int pc_conn_is_open(const pc_conn *c);   /* handshake done and not closing */
const char *pc_conn_url(const pc_conn *c);
void *pc_conn_userdata(const pc_conn *c);
/* Bytes queued but not yet handed to the socket. */
size_t pc_conn_queued_bytes(const pc_conn *c);

#endif
