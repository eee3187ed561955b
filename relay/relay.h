/* relay.h: the parley-relay process: its config, the relay object that owns the listener, the
 * allocation table, the reserved ports, the policy, the credentials and the metrics. The
 * modules split its work: server.c (the listener and the packet paths), udpio.c (batched UDP
 * reads and writes of every UDP socket), tcp.c (TCP clients), turn.c
 * (STUN/TURN requests), alloc.c (allocations, permissions, channels, relay ports,
 * reservations), relay_metrics.c, stun.c (the codec), policy.c (peer addresses), relay_auth.c
 * (credentials).
 * Single-threaded on one libuv loop. */
#ifndef PARLEY_RELAY_H
#define PARLEY_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "admin.h"
#include "limits.h"
#include "metrics.h"
#include "policy.h"
#include "relay_auth.h"
#include "service.h"
#include "stun.h"
#include "udpio.h"

typedef struct {
    char *listen_host;
    long long listen_port;
    char *relay_ip;    /* relay sockets bind here */
    char *external_ip; /* advertised in XOR-RELAYED-ADDRESS ("" = relay_ip) */
    long long port_min, port_max;
    char *realm;
    char *secrets;
    char *allow_peers;
    long long user_quota;
    long long alloc_bandwidth; /* bytes/s per allocation, 0: unlimited */
    long long max_allocations;
    long long nonce_ttl_s;
    long long max_tcp;
    psvc_admin admin;
} relay_config;

/* refusal reasons counted in parley_relay_refusals_total; the first ones mirror rpol_reason */
typedef enum {
    RREF_POLICY_FIRST = 0, /* + rpol_reason (RPOL_OK unused) */
    RREF_UNAUTHENTICATED = RPOL_NREASONS,
    RREF_BAD_CREDENTIALS,
    RREF_EXPIRED,
    RREF_STALE_NONCE,
    RREF_RATE_LIMITED,
    RREF_QUOTA,
    RREF_CAPACITY,
    RREF_MISMATCH,
    RREF_BAD_REQUEST,
    RREF_UNKNOWN_ATTRIBUTE,
    RREF_UNSUPPORTED_TRANSPORT,
    RREF_FAMILY,
    RREF_NO_PERMISSION,
    RREF_BANDWIDTH,
    RREF_COUNT
} rref_reason;

typedef struct {
    pmet_gauge *allocations, *permissions, *channels, *reservations, *tcp_conns;
    pmet_counter *pkts_to_peer, *pkts_to_client, *bytes_to_peer, *bytes_to_client;
    pmet_counter *requests, *send_errors, *malformed;
    pmet_counter *refusals[RREF_COUNT];
} rmet;

typedef struct ralloc ralloc;
typedef struct rresv rresv;
typedef struct rtcp_conn rtcp_conn; /* a TURN client's TCP connection (tcp.c) */

typedef struct relay {
    uv_loop_t *loop;
    const relay_config *cfg;
    rudp udp; /* the client-facing UDP listener */
    int udp_open;
    rudp_io *io; /* receive slots and send queue of every UDP socket */
    int io_open;  /* its check handle is not closed yet */
    uv_tcp_t tcp; /* the client-facing TCP listener, same port */
    int tcp_open;
    rtcp_conn *conns;
    size_t nconns;
    uv_timer_t tick;
    int tick_open;
    padmin *admin;
    pmetrics *metrics;
    rmet met;
    rpol pol;
    rauth auth;
    struct sockaddr_storage listen_addr;
    struct sockaddr_storage relay_addr; /* bind address of relay sockets (port 0) */
    struct sockaddr_storage ext_addr;   /* advertised address (port 0) */
    /* allocations: a hash of the client transport address, plus a list of all */
    ralloc **buckets;
    size_t nbuckets;
    ralloc *all;
    size_t nallocs, nperms, nchans;
    uint8_t hash_key[16];
    /* ports of the range held by us (allocations and reservations) */
    uint8_t *port_used;
    uint32_t port_cursor;
    rresv *reservations;
    size_t nresv;
    /* Data indications' transaction ids: a random prefix and a counter, no syscall per packet */
    uint8_t tid_prefix[4];
    uint64_t tid_counter;
    uint8_t txbuf[2048]; /* STUN answers (turn.c) */
    int stopping;
    void (*on_stopped)(struct relay *r);
} relay;

/* server.c */
/* Starts the listener, the admin port and the timer. 0, or -1 (logged). */
int relay_start(relay *r, uv_loop_t *loop, const relay_config *cfg);
/* Closes everything; on_stopped is called once the handles are closed. */
void relay_stop(relay *r);
/* Frees what relay_start allocated (after the loop has run the closes). */
void relay_free(relay *r);
/* The bound listener port (tests). */
int relay_port(const relay *r);
/* Sends one message to a client: a datagram from the UDP listener (conn NULL), or onto its TCP
 * connection. 0, or -1 (dropped and counted). */
int relay_send_to_client(relay *r, const struct sockaddr *client, rtcp_conn *conn,
                         const uint8_t *data, size_t len);
/* A Send indication from client: relayed when it names a permitted peer, else dropped. */
void relay_send_indication(relay *r, const stun_msg *m, const struct sockaddr *client,
                           rtcp_conn *conn);
/* A ChannelData message from client: relayed to the channel's peer, else dropped. */
void relay_channel_data(relay *r, const struct sockaddr *client, rtcp_conn *conn,
                        const uint8_t *buf, size_t len);
/* The TCP listener's close callback ran (tcp.c tells server.c). */
void relay_tcp_closed(relay *r);
/* Count a refusal. */
void relay_refuse(relay *r, rref_reason why);

/* A peer's datagram on an allocation's relay socket (server.c; alloc.c opens the sockets). */
void relay_on_peer_recv(rudp *s, uint8_t *data, size_t len, const struct sockaddr *peer);

/* turn.c: one STUN message from client arrived on the listener (ChannelData is in server.c). */
void turn_handle(relay *r, const struct sockaddr *client, rtcp_conn *conn, const uint8_t *buf,
                 size_t len);

/* relay_metrics.c */
void rmet_init(rmet *m, pmetrics *reg);
const char *rref_name(rref_reason why);

#endif
