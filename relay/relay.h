/* relay.h: the parley-relay process: its config, the relay object that owns the listener, the
 * allocation table, the reserved ports, the policy, the credentials and the metrics. The
 * modules split its work: server.c (UDP sockets and packet I/O), tcp.c (TCP clients), turn.c
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
    uv_udp_t udp; /* the client-facing listener */
    int udp_open;
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
    /* one receive buffer for every socket: libuv hands it to exactly one recv callback at a
     * time, and there is room in front for a TURN header and behind for padding */
    uint8_t *rxbuf;
    uint8_t txbuf[2048];
    int stopping;
    void (*on_stopped)(struct relay *r);
} relay;

/* room in front of received data for a Data indication header (20 + 24 + 4) */
#define RELAY_RX_HEADROOM 64

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

/* libuv callbacks of the relay sockets (server.c), used by alloc.c */
void relay_sock_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void relay_on_peer_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *addr,
                        unsigned flags);

/* turn.c: one STUN message from client arrived on the listener (ChannelData is in server.c). */
void turn_handle(relay *r, const struct sockaddr *client, rtcp_conn *conn, const uint8_t *buf,
                 size_t len);

/* relay_metrics.c */
void rmet_init(rmet *m, pmetrics *reg);
const char *rref_name(rref_reason why);

#endif
