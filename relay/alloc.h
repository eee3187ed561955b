/* alloc.h: TURN allocations (RFC 8656 section 5): each owns a relay UDP socket on a port of the
 * configured range, its permissions (by peer IP) and channel bindings (number <-> peer transport
 * address), with their expiry times. Also the EVEN-PORT R=1 reservations, which hold the bound
 * socket of the next port until claimed with RESERVATION-TOKEN or expired. An allocation is
 * malloc'd when created and freed after its socket's close callback; nothing is allocated per
 * packet. Times are monotonic ms (uv_now). */
#ifndef PARLEY_RELAY_ALLOC_H
#define PARLEY_RELAY_ALLOC_H

#include "relay.h"

typedef struct {
    uint8_t ip[16]; /* IPv4 in the first 4 bytes */
    uint64_t expires;
} ralloc_perm;

typedef struct {
    uint16_t number; /* 0: free slot */
    struct sockaddr_storage peer;
    uint64_t expires; /* usable before this; the pair stays reserved PARLEY_RELAY_PERMISSION_LIFETIME
                       * longer (RFC 8656 section 12) */
} ralloc_chan;

struct ralloc {
    ralloc *hnext;      /* hash chain */
    ralloc *prev, *next; /* list of all allocations */
    relay *r;
    struct sockaddr_storage client; /* the client's transport address */
    rtcp_conn *conn;                /* its TCP connection; NULL over UDP */
    rudp sock;                      /* relay socket */
    uint16_t port;
    struct sockaddr_storage relayed; /* advertised relayed transport address */
    uint8_t tid[STUN_TID_LEN];       /* the Allocate's transaction, for retransmissions */
    uint8_t key[STUN_LT_KEY_LEN];
    char username[PARLEY_RELAY_STUN_USERNAME_MAX + 1];
    size_t ulen;
    size_t user_off, user_len; /* the REST USER part within username, for the quota */
    uint8_t token[STUN_RESERVATION_TOKEN_LEN];
    int has_token;
    uint64_t expires;
    uint64_t bw_tokens, bw_last; /* bandwidth cap: a token bucket of bytes, 1 s deep */
    ralloc_perm perms[PARLEY_RELAY_PERMS_PER_ALLOC_MAX];
    size_t nperms;
    ralloc_chan chans[PARLEY_RELAY_CHANNELS_PER_ALLOC_MAX];
    int closing;
};

struct rresv {
    rresv *next;
    uint8_t token[STUN_RESERVATION_TOKEN_LEN];
    int fd; /* bound, not yet handed to libuv */
    uint16_t port;
    uint64_t expires;
};

/* Table set-up and tear-down (relay_start / relay_stop). */
int ralloc_table_init(relay *r);
void ralloc_table_close(relay *r); /* closes every allocation and reservation */
void ralloc_table_free(relay *r);

/* The allocation of a 5-tuple: client address and, over TCP, its connection. */
ralloc *ralloc_find(relay *r, const struct sockaddr *client, const rtcp_conn *conn);
/* Allocations of the REST user (user, len). */
size_t ralloc_user_count(relay *r, const char *user, size_t len);

/* Creates an allocation bound to a fresh relay port. even: the port must be even; reserve_next:
 * also reserve port + 1 and set a->token; token: claim that reservation's port instead.
 * Returns the allocation, or NULL with *err set to the STUN error code to answer (508 when no
 * port, 500 when a socket call failed). */
ralloc *ralloc_create(relay *r, const struct sockaddr *client, rtcp_conn *conn, int even,
                      int reserve_next,
                      const uint8_t *token, int *err);
/* Closes the socket and frees a later (counts updated now). */
void ralloc_delete(ralloc *a);

/* Permission for ip of peer: found and unexpired. */
int ralloc_permitted(const ralloc *a, const struct sockaddr *peer, uint64_t now);
/* Installs or refreshes the permission of peer's IP until now + PARLEY_RELAY_PERMISSION_LIFETIME.
 * 0, or -1 when the table is full. */
int ralloc_permit(ralloc *a, const struct sockaddr *peer, uint64_t now);
/* Whether (number, peer) may be bound: 0 ok, -1 when either is bound to something else. */
int ralloc_channel_check(const ralloc *a, uint16_t number, const struct sockaddr *peer);
/* Binds or refreshes; 0, or -1 when the table is full. Call ralloc_channel_check first. */
int ralloc_channel_bind(ralloc *a, uint16_t number, const struct sockaddr *peer, uint64_t now);
/* The live channel of number, or NULL. */
const ralloc_chan *ralloc_channel_by_number(const ralloc *a, uint16_t number, uint64_t now);
/* The live channel of peer (IP and port), or NULL. */
const ralloc_chan *ralloc_channel_by_peer(const ralloc *a, const struct sockaddr *peer,
                                          uint64_t now);

/* Takes bytes from the allocation's bandwidth budget: 1 when they may be relayed, 0 when the
 * cap (config alloc_bandwidth, bytes per second, both directions) is reached. */
int ralloc_spend(ralloc *a, size_t bytes, uint64_t now);

/* Expires allocations, permissions, channels and reservations (the 1 s tick). */
void ralloc_expire(relay *r, uint64_t now);

/* Same address and port. */
int ralloc_addr_eq(const struct sockaddr *a, const struct sockaddr *b);
socklen_t ralloc_addr_len(const struct sockaddr *sa);

#endif
