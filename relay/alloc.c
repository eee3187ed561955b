/* alloc.c: allocations, permissions, channels, relay ports and reservations (see alloc.h). */
#include "alloc.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "tcp.h"

socklen_t ralloc_addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* IP bytes of sa (IPv4 in the first 4, the rest zero) and its port; 0 or -1. */
static int ip_port(const struct sockaddr *sa, uint8_t ip[16], uint16_t *port)
{
    memset(ip, 0, 16);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        memcpy(ip, &s->sin_addr, 4);
        *port = s->sin_port;
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        memcpy(ip, &s->sin6_addr, 16);
        *port = s->sin6_port;
        return 0;
    }
    return -1;
}

int ralloc_addr_eq(const struct sockaddr *a, const struct sockaddr *b)
{
    uint8_t ia[16], ib[16];
    uint16_t pa, pb;
    if (a->sa_family != b->sa_family || ip_port(a, ia, &pa) != 0 || ip_port(b, ib, &pb) != 0)
        return 0;
    return pa == pb && memcmp(ia, ib, 16) == 0;
}

static size_t bucket_of(const relay *r, const struct sockaddr *sa)
{
    uint8_t in[19] = {0}, h[crypto_shorthash_BYTES];
    uint16_t port = 0;
    in[0] = (uint8_t)sa->sa_family;
    ip_port(sa, in + 1, &port);
    memcpy(in + 17, &port, 2);
    /* keyed: clients choose their addresses, and must not be able to pile into one chain */
    crypto_shorthash(h, in, sizeof in, r->hash_key);
    uint64_t v = 0;
    memcpy(&v, h, sizeof v);
    return (size_t)(v & (r->nbuckets - 1));
}

int ralloc_table_init(relay *r)
{
    size_t n = 1;
    while (n < (size_t)r->cfg->max_allocations)
        n <<= 1;
    r->nbuckets = n;
    r->buckets = calloc(n, sizeof *r->buckets);
    size_t nports = (size_t)(r->cfg->port_max - r->cfg->port_min + 1);
    r->port_used = calloc(nports, 1);
    if (!r->buckets || !r->port_used)
        return -1;
    crypto_shorthash_keygen(r->hash_key);
    r->port_cursor = randombytes_uniform((uint32_t)nports);
    return 0;
}

static void port_release(relay *r, uint16_t port)
{
    if (r->port_used && port >= r->cfg->port_min && port <= r->cfg->port_max)
        r->port_used[port - r->cfg->port_min] = 0;
}

static void resv_free(relay *r, rresv *v)
{
    close(v->fd);
    port_release(r, v->port);
    r->nresv--;
    free(v);
}

void ralloc_table_close(relay *r)
{
    while (r->all)
        ralloc_delete(r->all);
    while (r->reservations) {
        rresv *v = r->reservations;
        r->reservations = v->next;
        resv_free(r, v);
    }
}

void ralloc_table_free(relay *r)
{
    free(r->buckets);
    r->buckets = NULL;
    free(r->port_used);
    r->port_used = NULL;
}

ralloc *ralloc_find(relay *r, const struct sockaddr *client, const rtcp_conn *conn)
{
    for (ralloc *a = r->buckets[bucket_of(r, client)]; a; a = a->hnext)
        if (a->conn == conn && ralloc_addr_eq((const struct sockaddr *)&a->client, client))
            return a;
    return NULL;
}

size_t ralloc_user_count(relay *r, const char *user, size_t len)
{
    size_t n = 0;
    for (ralloc *a = r->all; a; a = a->next)
        if (a->user_len == len && memcmp(a->username + a->user_off, user, len) == 0)
            n++;
    return n;
}

/* A bound non-blocking UDP socket on port of the relay address, or -errno. */
static int bind_port(relay *r, uint16_t port)
{
    struct sockaddr_storage ss = r->relay_addr;
    int family = ss.ss_family;
    if (family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (family == AF_INET6) {
        int on = 1;
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    }
    if (bind(fd, (struct sockaddr *)&ss, ralloc_addr_len((struct sockaddr *)&ss)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Picks and binds a port of the range (and the next one when reserve_next). 0, or the STUN
 * error code. Ports bound by other processes are skipped. */
static int pick_port(relay *r, int even, int reserve_next, int *fd, int *fd2, uint16_t *port)
{
    uint32_t n = (uint32_t)(r->cfg->port_max - r->cfg->port_min + 1);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (r->port_cursor + k) % n;
        uint16_t p = (uint16_t)(r->cfg->port_min + i);
        if (r->port_used[i] || (even && (p & 1)))
            continue;
        if (reserve_next && (i + 1 >= n || r->port_used[i + 1]))
            continue;
        int f = bind_port(r, p);
        if (f == -EADDRINUSE || f == -EACCES)
            continue;
        if (f < 0) {
            plog_error("relay_socket", "port=%u err=%s", p, strerror(-f));
            return STUN_ERR_SERVER_ERROR;
        }
        if (reserve_next) {
            int f2 = bind_port(r, (uint16_t)(p + 1));
            if (f2 < 0) {
                close(f);
                continue;
            }
            *fd2 = f2;
            r->port_used[i + 1] = 1;
        }
        r->port_used[i] = 1;
        *fd = f;
        *port = p;
        /* move on, so a freed port is not handed out again at once (stale peers' packets) */
        r->port_cursor = (i + 2) % n;
        return 0;
    }
    return STUN_ERR_INSUFFICIENT_CAPACITY;
}

static void on_sock_closed(uv_handle_t *h)
{
    ralloc *a = h->data;
    port_release(a->r, a->port);
    free(a);
}

ralloc *ralloc_create(relay *r, const struct sockaddr *client, rtcp_conn *conn, int even,
                      int reserve_next, const uint8_t *token, int *err)
{
    int fd = -1, fd2 = -1;
    uint16_t port = 0;
    if (token) {
        rresv **pp = &r->reservations;
        while (*pp && sodium_memcmp((*pp)->token, token, STUN_RESERVATION_TOKEN_LEN) != 0)
            pp = &(*pp)->next;
        if (!*pp) {
            *err = STUN_ERR_INSUFFICIENT_CAPACITY; /* RFC 8656 7.2: no such reservation */
            return NULL;
        }
        rresv *v = *pp;
        *pp = v->next;
        fd = v->fd;
        port = v->port;
        r->nresv--;
        free(v);
    } else {
        int rc = pick_port(r, even || reserve_next, reserve_next, &fd, &fd2, &port);
        if (rc != 0) {
            *err = rc;
            return NULL;
        }
    }
    ralloc *a = calloc(1, sizeof *a);
    rresv *v = reserve_next ? calloc(1, sizeof *v) : NULL;
    if (!a || (reserve_next && !v)) {
        free(a);
        free(v);
        close(fd);
        port_release(r, port);
        if (fd2 >= 0) {
            close(fd2);
            port_release(r, (uint16_t)(port + 1));
        }
        *err = STUN_ERR_SERVER_ERROR;
        return NULL;
    }
    a->r = r;
    a->port = port;
    a->bw_tokens = (uint64_t)r->cfg->alloc_bandwidth;
    a->bw_last = uv_now(r->loop);
    memcpy(&a->client, client, ralloc_addr_len(client));
    a->conn = conn;
    a->relayed = r->ext_addr;
    if (a->relayed.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->relayed)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&a->relayed)->sin_port = htons(port);
    int rc = rudp_open(&a->sock, r->loop, r->io, fd, relay_on_peer_recv, a);
    if (rc != 0) {
        plog_error("relay_socket", "port=%u err=%s", port, uv_strerror(rc));
        free(v);
        if (fd2 >= 0) {
            close(fd2);
            port_release(r, (uint16_t)(port + 1));
        }
        /* rudp_open closed fd unless its handle exists, which then must be closed first */
        if (a->sock.open) {
            rudp_close(&a->sock, on_sock_closed);
        } else {
            port_release(r, port);
            free(a);
        }
        *err = STUN_ERR_SERVER_ERROR;
        return NULL;
    }
    if (v) {
        randombytes_buf(v->token, sizeof v->token);
        v->fd = fd2;
        v->port = (uint16_t)(port + 1);
        v->expires = uv_now(r->loop) + PARLEY_RELAY_RESERVATION_LIFETIME * 1000ull;
        v->next = r->reservations;
        r->reservations = v;
        r->nresv++;
        memcpy(a->token, v->token, sizeof a->token);
        a->has_token = 1;
    }
    size_t b = bucket_of(r, client);
    a->hnext = r->buckets[b];
    r->buckets[b] = a;
    a->next = r->all;
    if (r->all)
        r->all->prev = a;
    r->all = a;
    r->nallocs++;
    pmet_set(r->met.allocations, (double)r->nallocs);
    pmet_set(r->met.reservations, (double)r->nresv);
    return a;
}

void ralloc_delete(ralloc *a)
{
    relay *r = a->r;
    if (a->closing)
        return;
    a->closing = 1;
    ralloc **pp = &r->buckets[bucket_of(r, (const struct sockaddr *)&a->client)];
    while (*pp && *pp != a)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = a->hnext;
    if (a->prev)
        a->prev->next = a->next;
    else
        r->all = a->next;
    if (a->next)
        a->next->prev = a->prev;
    r->nallocs--;
    pmet_set(r->met.allocations, (double)r->nallocs);
    if (a->conn)
        rtcp_detach(a->conn, a);
    rudp_close(&a->sock, on_sock_closed);
}

int ralloc_spend(ralloc *a, size_t bytes, uint64_t now)
{
    uint64_t rate = (uint64_t)a->r->cfg->alloc_bandwidth;
    if (rate == 0)
        return 1;
    if (now - a->bw_last >= 1000) {
        a->bw_tokens = rate; /* the bucket is 1 s deep */
        a->bw_last = now;
    } else if (now > a->bw_last) {
        uint64_t add = (now - a->bw_last) * rate / 1000; /* < 1000 * PARLEY_RELAY_ALLOC_BANDWIDTH_MAX */
        a->bw_tokens = a->bw_tokens + add > rate ? rate : a->bw_tokens + add;
        a->bw_last = now;
    }
    if (bytes > a->bw_tokens)
        return 0;
    a->bw_tokens -= bytes;
    return 1;
}

int ralloc_permitted(const ralloc *a, const struct sockaddr *peer, uint64_t now)
{
    uint8_t ip[16];
    uint16_t port;
    if (ip_port(peer, ip, &port) != 0)
        return 0;
    for (size_t i = 0; i < a->nperms; i++)
        if (a->perms[i].expires > now && memcmp(a->perms[i].ip, ip, 16) == 0)
            return 1;
    return 0;
}

int ralloc_permit(ralloc *a, const struct sockaddr *peer, uint64_t now)
{
    uint8_t ip[16];
    uint16_t port;
    if (ip_port(peer, ip, &port) != 0)
        return -1;
    uint64_t expires = now + PARLEY_RELAY_PERMISSION_LIFETIME * 1000ull;
    for (size_t i = 0; i < a->nperms; i++) {
        if (memcmp(a->perms[i].ip, ip, 16) == 0) {
            a->perms[i].expires = expires;
            return 0;
        }
    }
    if (a->nperms == PARLEY_RELAY_PERMS_PER_ALLOC_MAX)
        return -1;
    memcpy(a->perms[a->nperms].ip, ip, 16);
    a->perms[a->nperms].expires = expires;
    a->nperms++;
    return 0;
}

int ralloc_channel_check(const ralloc *a, uint16_t number, const struct sockaddr *peer)
{
    for (size_t i = 0; i < PARLEY_RELAY_CHANNELS_PER_ALLOC_MAX; i++) {
        const ralloc_chan *c = &a->chans[i];
        if (c->number == 0)
            continue;
        int same_peer = ralloc_addr_eq((const struct sockaddr *)&c->peer, peer);
        if ((c->number == number) != same_peer)
            return -1;
    }
    return 0;
}

int ralloc_channel_bind(ralloc *a, uint16_t number, const struct sockaddr *peer, uint64_t now)
{
    ralloc_chan *slot = NULL;
    for (size_t i = 0; i < PARLEY_RELAY_CHANNELS_PER_ALLOC_MAX; i++) {
        if (a->chans[i].number == number) {
            slot = &a->chans[i];
            break;
        }
        if (a->chans[i].number == 0 && !slot)
            slot = &a->chans[i];
    }
    if (!slot)
        return -1;
    slot->number = number;
    memcpy(&slot->peer, peer, ralloc_addr_len(peer));
    slot->expires = now + PARLEY_RELAY_CHANNEL_LIFETIME * 1000ull;
    return 0;
}

const ralloc_chan *ralloc_channel_by_number(const ralloc *a, uint16_t number, uint64_t now)
{
    for (size_t i = 0; i < PARLEY_RELAY_CHANNELS_PER_ALLOC_MAX; i++)
        if (a->chans[i].number == number)
            return a->chans[i].expires > now ? &a->chans[i] : NULL;
    return NULL;
}

const ralloc_chan *ralloc_channel_by_peer(const ralloc *a, const struct sockaddr *peer,
                                          uint64_t now)
{
    for (size_t i = 0; i < PARLEY_RELAY_CHANNELS_PER_ALLOC_MAX; i++) {
        const ralloc_chan *c = &a->chans[i];
        if (c->number && c->expires > now &&
            ralloc_addr_eq((const struct sockaddr *)&c->peer, peer))
            return c;
    }
    return NULL;
}

void ralloc_expire(relay *r, uint64_t now)
{
    size_t nperms = 0, nchans = 0;
    ralloc *next;
    for (ralloc *a = r->all; a; a = next) {
        next = a->next;
        if (a->expires <= now) {
            plog_info("allocation_expired", "port=%u", a->port);
            ralloc_delete(a);
            continue;
        }
        for (size_t i = 0; i < a->nperms;) {
            if (a->perms[i].expires <= now)
                a->perms[i] = a->perms[--a->nperms];
            else
                i++;
        }
        nperms += a->nperms;
        for (size_t i = 0; i < PARLEY_RELAY_CHANNELS_PER_ALLOC_MAX; i++) {
            ralloc_chan *c = &a->chans[i];
            if (!c->number)
                continue;
            if (c->expires + PARLEY_RELAY_PERMISSION_LIFETIME * 1000ull <= now)
                c->number = 0;
            else if (c->expires > now)
                nchans++;
        }
    }
    for (rresv **pp = &r->reservations; *pp;) {
        rresv *v = *pp;
        if (v->expires <= now) {
            *pp = v->next;
            resv_free(r, v);
        } else {
            pp = &v->next;
        }
    }
    r->nperms = nperms;
    r->nchans = nchans;
    pmet_set(r->met.permissions, (double)nperms);
    pmet_set(r->met.channels, (double)nchans);
    pmet_set(r->met.reservations, (double)r->nresv);
}
