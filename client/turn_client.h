/* turn_client.h: one TURN (RFC 8656) allocation over UDP on one relay, driven by the caller's
 * libuv loop. Owns its UDP socket, its timers and the long-term credential state: Allocate with
 * the 401 realm/nonce exchange and a retry on 438 (stale nonce), Refresh before the allocation
 * and its channels expire, CreatePermission + ChannelBind per peer, ChannelData both ways,
 * retransmission of requests per RFC 8489 section 6.2.1 (RTO 500 ms doubling, 7 tries), and a
 * Refresh with LIFETIME 0 (deletion) when closed. Requests go one at a time in the order asked.
 *
 * Credentials are the REST pair the gateway mints (TurnCredentials: username "EXPIRY:ACCOUNT",
 * password); the relay address comes from a TurnCredentials URI ("turn:HOST[:PORT]
 * [?transport=udp]"; only UDP is spoken here).
 *
 * Lifetime: pc_turn_new starts resolving and allocating at once; exactly one of on_ready or
 * on_error follows. pc_turn_close deletes the allocation (bounded wait) and frees the pc_turn:
 * on_closed is the last callback, after which the pointer is gone. Callbacks are never made
 * from inside pc_turn_new, pc_turn_add_peer, pc_turn_send or pc_turn_close. */
#ifndef PC_TURN_CLIENT_H
#define PC_TURN_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "limits.h"
#include "status.h"

typedef struct pc_turn pc_turn;

typedef struct {
    /* the allocation exists: relayed is the address peers send to (tell the other side in
     * signalling), mapped our server-reflexive address as the relay saw it */
    void (*on_ready)(pc_turn *t, const struct sockaddr *relayed, const struct sockaddr *mapped,
                     void *arg);
    /* the permission and channel to peer are in place (after pc_turn_add_peer); data to and
     * from peer now goes as ChannelData */
    void (*on_peer)(pc_turn *t, const struct sockaddr *peer, void *arg);
    /* application data from a peer (ChannelData, or a Data indication from a permitted peer);
     * data points into a buffer reused after the callback returns */
    void (*on_data)(pc_turn *t, const struct sockaddr *peer, const uint8_t *data, size_t len,
                    void *arg);
    /* the allocation failed or was lost (relay gone, credentials refused, a refresh failed);
     * st says why. The pc_turn stays valid: the caller still calls pc_turn_close. */
    void (*on_error)(pc_turn *t, const pc_status *st, void *arg);
    /* after pc_turn_close: the last callback; t is freed when it returns */
    void (*on_closed)(pc_turn *t, void *arg);
} pc_turn_cbs;

typedef struct {
    const char *uri;        /* "turn:HOST[:PORT][?transport=udp]"; copied */
    const char *username;   /* copied */
    const char *password;   /* copied, wiped on free */
    uint32_t lifetime_s;    /* requested allocation lifetime; 0: PC_TURN_LIFETIME_S */
    uint32_t refresh_s;     /* refresh this long after each grant; 0: half the granted
                               lifetime (tests set it short to see refreshes and 438s) */
} pc_turn_config;

/* Starts one allocation. Returns a pc_turn owned by the caller (pc_turn_close) or NULL with st
 * set (bad URI, bad arguments, no memory). cbs is copied; every callback may be NULL. */
pc_turn *pc_turn_new(uv_loop_t *loop, const pc_turn_config *cfg, const pc_turn_cbs *cbs,
                     void *arg, pc_status *st);

/* Asks for a permission for peer's address and binds the next free channel to it; on_peer
 * when both are done (on_error if refused). At most PC_TURN_PEERS_MAX peers. Only after
 * on_ready. 0, or -1 with st set. */
int pc_turn_add_peer(pc_turn *t, const struct sockaddr *peer, pc_status *st);

/* Sends len bytes (at most PC_TURN_DATA_MAX) to peer as ChannelData once its channel is bound,
 * as a Send indication before that (the permission must exist: on_peer came, or will come
 * very soon). Best effort like any UDP send: 0 when queued, -1 with st set (no such peer, too
 * long, socket error). The data is copied. */
int pc_turn_send(pc_turn *t, const struct sockaddr *peer, const uint8_t *data, size_t len,
                 pc_status *st);

/* Deletes the allocation (Refresh LIFETIME 0, waiting at most PC_TURN_CLOSE_WAIT_MS for the
 * answer), closes the socket and frees t; on_closed then. No other callback after this call. */
void pc_turn_close(pc_turn *t);

/* Parses a TURN URI into host (NUL-terminated, at most hostcap - 1 bytes) and port (3478 by
 * default). Refuses turns: and transport=tcp (not spoken here). 0, or -1 with st set. */
int pc_turn_uri_parse(const char *uri, char *host, size_t hostcap, uint16_t *port,
                      pc_status *st);

/* Counters of one allocation, for tests and the end-of-call line. */
typedef struct {
    uint64_t requests;        /* STUN requests sent, first tries */
    uint64_t retransmits;     /* retransmissions of them */
    uint64_t stale_nonces;    /* 438 answers retried */
    uint64_t refreshes;       /* successful Refresh (allocation) */
    uint64_t chdata_sent;
    uint64_t chdata_received;
    uint64_t send_errors;     /* UDP sends that failed locally */
} pc_turn_stats;

void pc_turn_get_stats(const pc_turn *t, pc_turn_stats *out);

#endif
