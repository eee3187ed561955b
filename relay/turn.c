/* turn.c: STUN/TURN requests from clients (RFC 8489, RFC 8656): Binding, then, under
 * long-term credentials, Allocate, Refresh, CreatePermission and ChannelBind; Send indications
 * are handed to server.c. Each request gets exactly one answer built in relay->txbuf, signed
 * with the request's key once it authenticated, with FINGERPRINT when the request had one. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "log.h"
#include "relay.h"
#include "tcp.h"

typedef struct {
    relay *r;
    const stun_msg *m;
    const struct sockaddr *client;
    rtcp_conn *conn;    /* NULL over UDP */
    const uint8_t *key; /* NULL until authenticated */
} txn;

static const char *reason_of(int code)
{
    switch (code) {
    case STUN_ERR_BAD_REQUEST: return "Bad Request";
    case STUN_ERR_UNAUTHORIZED: return "Unauthorized";
    case STUN_ERR_FORBIDDEN: return "Forbidden";
    case STUN_ERR_UNKNOWN_ATTRIBUTE: return "Unknown Attribute";
    case STUN_ERR_ALLOCATION_MISMATCH: return "Allocation Mismatch";
    case STUN_ERR_STALE_NONCE: return "Stale Nonce";
    case STUN_ERR_ADDRESS_FAMILY: return "Address Family not Supported";
    case STUN_ERR_WRONG_CREDENTIALS: return "Wrong Credentials";
    case STUN_ERR_UNSUPPORTED_TRANSPORT: return "Unsupported Transport Protocol";
    case STUN_ERR_PEER_FAMILY_MISMATCH: return "Peer Address Family Mismatch";
    case STUN_ERR_QUOTA: return "Allocation Quota Reached";
    case STUN_ERR_INSUFFICIENT_CAPACITY: return "Insufficient Capacity";
    default: return "Server Error";
    }
}

static void begin(const txn *t, stun_builder *b, stun_class cls)
{
    stun_build_begin(b, t->r->txbuf, sizeof t->r->txbuf, t->m->method, cls, t->m->tid);
}

static void finish(const txn *t, stun_builder *b)
{
    if (t->key)
        stun_put_integrity(b, t->key, STUN_LT_KEY_LEN);
    if (t->m->has_fingerprint)
        stun_put_fingerprint(b);
    size_t len = stun_build_end(b);
    if (len == 0) {
        plog_error("stun_build", "method=%u err=%s", t->m->method, stun_strerror(b->err));
        return;
    }
    relay_send_to_client(t->r, t->client, t->conn, t->r->txbuf, len);
}

static void reply_error(const txn *t, int code, rref_reason why)
{
    relay_refuse(t->r, why);
    stun_builder b;
    begin(t, &b, STUN_ERROR_RESPONSE);
    stun_put_error(&b, code, reason_of(code));
    finish(t, &b);
}

/* 420 naming the attributes not understood. */
static void reply_unknown(const txn *t, const uint16_t *types, size_t n)
{
    relay_refuse(t->r, RREF_UNKNOWN_ATTRIBUTE);
    stun_builder b;
    begin(t, &b, STUN_ERROR_RESPONSE);
    stun_put_error(&b, STUN_ERR_UNKNOWN_ATTRIBUTE, reason_of(STUN_ERR_UNKNOWN_ATTRIBUTE));
    stun_put_unknown(&b, types, n);
    finish(t, &b);
}

/* 401 or 438 with a fresh nonce: unsigned, so rate limited per source. */
static void reply_challenge(const txn *t, int code, rref_reason why)
{
    relay *r = t->r;
    relay_refuse(r, why);
    if (!rauth_reject_allowed(&r->auth, t->client, uv_now(r->loop) / 1000)) {
        relay_refuse(r, RREF_RATE_LIMITED);
        return;
    }
    char nonce[RAUTH_NONCE_LEN + 1];
    rauth_nonce(&r->auth, t->client, (uint64_t)time(NULL), nonce);
    stun_builder b;
    begin(t, &b, STUN_ERROR_RESPONSE);
    stun_put_error(&b, code, reason_of(code));
    stun_put(&b, STUN_A_REALM, r->auth.realm, strlen(r->auth.realm));
    stun_put(&b, STUN_A_NONCE, nonce, RAUTH_NONCE_LEN);
    finish(t, &b);
}

static int same_user(const ralloc *a, const stun_msg *m)
{
    const stun_attr *u = stun_find(m, STUN_A_USERNAME);
    return u && u->len == a->ulen && memcmp(u->val, a->username, a->ulen) == 0;
}

/* Long-term credential check (RFC 8489 9.2.4). Answers and returns -1 on failure.
 * A credential's expiry bounds when an allocation can be made with it, not how long that
 * allocation lives (coturn reads it the same way): a request on an existing allocation under
 * the username it was made with is checked against the key it was made with, expired or not,
 * so a call outlives the credentials' time to live while its client keeps refreshing. */
static int authenticate(txn *t, uint8_t key[STUN_LT_KEY_LEN])
{
    relay *r = t->r;
    const stun_msg *m = t->m;
    if (m->integrity_off == 0) {
        reply_challenge(t, STUN_ERR_UNAUTHORIZED, RREF_UNAUTHENTICATED);
        return -1;
    }
    const stun_attr *u = stun_find(m, STUN_A_USERNAME);
    const stun_attr *realm = stun_find(m, STUN_A_REALM);
    const stun_attr *nonce = stun_find(m, STUN_A_NONCE);
    if (!u || !realm || !nonce) {
        reply_error(t, STUN_ERR_BAD_REQUEST, RREF_BAD_REQUEST);
        return -1;
    }
    uint64_t now_s = (uint64_t)time(NULL);
    const ralloc *own = m->method == TURN_ALLOCATE ? NULL : ralloc_find(r, t->client, t->conn);
    if (own && !same_user(own, m))
        own = NULL; /* answered 441 by own_allocation once the credentials check out */
    const char *user;
    size_t user_len;
    /* an expiry of 0 is never in the past: only the form is checked */
    rauth_result res = rauth_username((const char *)u->val, u->len, own ? 0 : now_s, &user,
                                      &user_len);
    if (res != RAUTH_OK) {
        reply_challenge(t, STUN_ERR_UNAUTHORIZED,
                        res == RAUTH_EXPIRED ? RREF_EXPIRED : RREF_BAD_CREDENTIALS);
        return -1;
    }
    res = rauth_nonce_check(&r->auth, (const char *)nonce->val, nonce->len, t->client, now_s);
    if (res != RAUTH_OK) {
        reply_challenge(t, STUN_ERR_STALE_NONCE, RREF_STALE_NONCE);
        return -1;
    }
    if (own) {
        res = stun_check_integrity(m, own->key, STUN_LT_KEY_LEN) == STUN_OK ? RAUTH_OK
                                                                            : RAUTH_BAD_INTEGRITY;
        if (res == RAUTH_OK)
            memcpy(key, own->key, STUN_LT_KEY_LEN);
    } else {
        res = rauth_verify(&r->auth, m, now_s, key);
    }
    if (res != RAUTH_OK) {
        if (plog_enabled(PLOG_DEBUG)) {
            char q[PARLEY_RELAY_STUN_USERNAME_MAX + 3], name[PARLEY_RELAY_STUN_USERNAME_MAX + 1];
            /* rauth_username bounded u->len already; the clamp keeps this safe on its own */
            size_t n = u->len < sizeof name ? u->len : sizeof name - 1;
            memcpy(name, u->val, n);
            name[n] = '\0';
            plog_debug("auth_failed", "username=%s reason=%s", plog_q(q, sizeof q, name),
                       rauth_result_name(res));
        }
        reply_challenge(t, STUN_ERR_UNAUTHORIZED,
                        res == RAUTH_EXPIRED ? RREF_EXPIRED : RREF_BAD_CREDENTIALS);
        return -1;
    }
    t->key = key;
    return 0;
}

/* The lifetime RFC 8656 7.2 asks for: the requested one clamped to the maximum, the default when
 * absent or shorter than the default. */
static uint32_t lifetime_of(const stun_msg *m)
{
    const stun_attr *l = stun_find(m, STUN_A_LIFETIME);
    uint32_t v;
    if (!l || stun_get_u32(l, &v) != STUN_OK || v < PARLEY_RELAY_ALLOC_LIFETIME_DEFAULT)
        return PARLEY_RELAY_ALLOC_LIFETIME_DEFAULT;
    return v > PARLEY_RELAY_ALLOC_LIFETIME_MAX ? PARLEY_RELAY_ALLOC_LIFETIME_MAX : v;
}

static void reply_allocate_ok(const txn *t, const ralloc *a)
{
    relay *r = t->r;
    stun_builder b;
    begin(t, &b, STUN_SUCCESS);
    stun_put_addr(&b, STUN_A_XOR_RELAYED_ADDRESS, 1, (const struct sockaddr *)&a->relayed);
    uint64_t now = uv_now(r->loop);
    uint32_t left = a->expires > now ? (uint32_t)((a->expires - now + 999) / 1000) : 0;
    stun_put_u32(&b, STUN_A_LIFETIME, left);
    if (a->has_token)
        stun_put(&b, STUN_A_RESERVATION_TOKEN, a->token, sizeof a->token);
    stun_put_addr(&b, STUN_A_XOR_MAPPED_ADDRESS, 1, t->client);
    finish(t, &b);
}

static void on_allocate(txn *t)
{
    relay *r = t->r;
    const stun_msg *m = t->m;
    ralloc *a = ralloc_find(r, t->client, t->conn);
    if (a) {
        /* a retransmission gets the original answer again; anything else is a mismatch */
        if (memcmp(a->tid, m->tid, STUN_TID_LEN) == 0 && same_user(a, m))
            reply_allocate_ok(t, a);
        else
            reply_error(t, STUN_ERR_ALLOCATION_MISMATCH, RREF_MISMATCH);
        return;
    }
    if (stun_find(m, STUN_A_DONT_FRAGMENT)) {
        /* RFC 8656 7.2: a server that cannot set DF per datagram treats it as unknown */
        uint16_t df = STUN_A_DONT_FRAGMENT;
        reply_unknown(t, &df, 1);
        return;
    }
    const stun_attr *tr = stun_find(m, STUN_A_REQUESTED_TRANSPORT);
    uint8_t proto;
    if (!tr || stun_get_transport(tr, &proto) != STUN_OK) {
        reply_error(t, STUN_ERR_BAD_REQUEST, RREF_BAD_REQUEST);
        return;
    }
    if (proto != STUN_TRANSPORT_UDP) {
        reply_error(t, STUN_ERR_UNSUPPORTED_TRANSPORT, RREF_UNSUPPORTED_TRANSPORT);
        return;
    }
    const stun_attr *ep = stun_find(m, STUN_A_EVEN_PORT);
    const stun_attr *tok = stun_find(m, STUN_A_RESERVATION_TOKEN);
    const stun_attr *fam = stun_find(m, STUN_A_REQUESTED_ADDRESS_FAMILY);
    int even = 0, reserve_next = 0;
    uint8_t token[STUN_RESERVATION_TOKEN_LEN], family = STUN_FAMILY_IPV4;
    if ((ep && tok) || (tok && fam) || (ep && stun_get_even_port(ep, &reserve_next) != STUN_OK) ||
        (tok && stun_get_token(tok, token) != STUN_OK) ||
        (fam && stun_get_family(fam, &family) != STUN_OK)) {
        reply_error(t, STUN_ERR_BAD_REQUEST, RREF_BAD_REQUEST);
        return;
    }
    even = ep != NULL;
    int relay_family = r->relay_addr.ss_family == AF_INET6 ? STUN_FAMILY_IPV6 : STUN_FAMILY_IPV4;
    if (fam && family != relay_family) {
        reply_error(t, STUN_ERR_ADDRESS_FAMILY, RREF_FAMILY);
        return;
    }
    const stun_attr *u = stun_find(m, STUN_A_USERNAME);
    const char *user;
    size_t user_len;
    /* authenticate() accepted this username, so this only finds its USER part */
    (void)rauth_username((const char *)u->val, u->len, 0, &user, &user_len);
    if (ralloc_user_count(r, user, user_len) >= (size_t)r->cfg->user_quota) {
        reply_error(t, STUN_ERR_QUOTA, RREF_QUOTA);
        return;
    }
    if (r->nallocs + r->nresv >= (size_t)r->cfg->max_allocations) {
        reply_error(t, STUN_ERR_INSUFFICIENT_CAPACITY, RREF_CAPACITY);
        return;
    }
    int err = 0;
    a = ralloc_create(r, t->client, t->conn, even, reserve_next, tok ? token : NULL, &err);
    if (!a) {
        reply_error(t, err, err == STUN_ERR_INSUFFICIENT_CAPACITY ? RREF_CAPACITY
                                                                  : RREF_BAD_REQUEST);
        return;
    }
    memcpy(a->tid, m->tid, STUN_TID_LEN);
    memcpy(a->key, t->key, STUN_LT_KEY_LEN);
    memcpy(a->username, u->val, u->len);
    a->username[u->len] = '\0';
    a->ulen = u->len;
    a->user_off = (size_t)(user - (const char *)u->val);
    a->user_len = user_len;
    uint32_t lifetime = lifetime_of(m);
    a->expires = uv_now(r->loop) + lifetime * 1000ull;
    if (t->conn)
        rtcp_attach(t->conn, a);
    if (plog_enabled(PLOG_INFO)) {
        char q[PARLEY_RELAY_STUN_USERNAME_MAX + 3], ip[INET6_ADDRSTRLEN] = "?";
        if (t->client->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)t->client)->sin6_addr, ip,
                      sizeof ip);
        else
            inet_ntop(AF_INET, &((const struct sockaddr_in *)t->client)->sin_addr, ip, sizeof ip);
        plog_info("allocation",
                  "username=%s client=%s transport=%s port=%u lifetime=%u reserved=%d",
                  plog_q(q, sizeof q, a->username), ip, t->conn ? "tcp" : "udp", a->port, lifetime,
                  a->has_token);
    }
    reply_allocate_ok(t, a);
}

/* The allocation of this 5-tuple, checked to belong to the request's user; answers and
 * returns NULL otherwise (437, 441). */
static ralloc *own_allocation(txn *t)
{
    ralloc *a = ralloc_find(t->r, t->client, t->conn);
    if (!a) {
        reply_error(t, STUN_ERR_ALLOCATION_MISMATCH, RREF_MISMATCH);
        return NULL;
    }
    if (!same_user(a, t->m)) {
        reply_error(t, STUN_ERR_WRONG_CREDENTIALS, RREF_BAD_CREDENTIALS);
        return NULL;
    }
    return a;
}

static void on_refresh(txn *t)
{
    ralloc *a = own_allocation(t);
    if (!a)
        return;
    const stun_attr *l = stun_find(t->m, STUN_A_LIFETIME);
    uint32_t requested = 1;
    if (l && stun_get_u32(l, &requested) != STUN_OK) {
        reply_error(t, STUN_ERR_BAD_REQUEST, RREF_BAD_REQUEST);
        return;
    }
    uint32_t lifetime = requested == 0 ? 0 : lifetime_of(t->m);
    if (lifetime == 0) {
        plog_info("allocation_deleted", "port=%u", a->port);
        ralloc_delete(a);
    } else {
        a->expires = uv_now(t->r->loop) + lifetime * 1000ull;
    }
    stun_builder b;
    begin(t, &b, STUN_SUCCESS);
    stun_put_u32(&b, STUN_A_LIFETIME, lifetime);
    finish(t, &b);
}

/* Decodes an XOR-PEER-ADDRESS and applies the family and address policy; answers and returns
 * -1 when it is refused. */
static int peer_of(txn *t, const ralloc *a, const stun_attr *pa, struct sockaddr_storage *peer)
{
    if (stun_get_addr(t->m, pa, 1, peer) != STUN_OK) {
        reply_error(t, STUN_ERR_BAD_REQUEST, RREF_BAD_REQUEST);
        return -1;
    }
    if (peer->ss_family != a->relayed.ss_family) {
        reply_error(t, STUN_ERR_PEER_FAMILY_MISMATCH, RREF_FAMILY);
        return -1;
    }
    rpol_reason why = rpol_check(&t->r->pol, (const struct sockaddr *)peer);
    if (why != RPOL_OK) {
        plog_debug("peer_refused", "reason=%s", rpol_reason_name(why));
        reply_error(t, STUN_ERR_FORBIDDEN, (rref_reason)why);
        return -1;
    }
    return 0;
}

static void on_create_permission(txn *t)
{
    ralloc *a = own_allocation(t);
    if (!a)
        return;
    struct sockaddr_storage peers[PARLEY_RELAY_PERMS_PER_ALLOC_MAX];
    size_t n = 0;
    for (size_t i = 0; i < t->m->nattrs; i++) {
        const stun_attr *pa = &t->m->attrs[i];
        if (pa->type != STUN_A_XOR_PEER_ADDRESS)
            continue;
        if (n == PARLEY_RELAY_PERMS_PER_ALLOC_MAX) {
            reply_error(t, STUN_ERR_INSUFFICIENT_CAPACITY, RREF_CAPACITY);
            return;
        }
        if (peer_of(t, a, pa, &peers[n]) != 0)
            return;
        n++;
    }
    if (n == 0) {
        reply_error(t, STUN_ERR_BAD_REQUEST, RREF_BAD_REQUEST);
        return;
    }
    /* all or nothing: check room first, so a refused request changes no permission */
    uint64_t now = uv_now(t->r->loop);
    size_t fresh = 0;
    for (size_t i = 0; i < n; i++) {
        int known = 0;
        for (size_t j = 0; j < i && !known; j++)
            known = ralloc_addr_eq((const struct sockaddr *)&peers[j],
                                   (const struct sockaddr *)&peers[i]);
        if (!known && !ralloc_permitted(a, (const struct sockaddr *)&peers[i], 0))
            fresh++;
    }
    if (a->nperms + fresh > PARLEY_RELAY_PERMS_PER_ALLOC_MAX) {
        reply_error(t, STUN_ERR_INSUFFICIENT_CAPACITY, RREF_CAPACITY);
        return;
    }
    for (size_t i = 0; i < n; i++)
        ralloc_permit(a, (const struct sockaddr *)&peers[i], now);
    stun_builder b;
    begin(t, &b, STUN_SUCCESS);
    finish(t, &b);
}

static void on_channel_bind(txn *t)
{
    ralloc *a = own_allocation(t);
    if (!a)
        return;
    const stun_attr *ca = stun_find(t->m, STUN_A_CHANNEL_NUMBER);
    const stun_attr *pa = stun_find(t->m, STUN_A_XOR_PEER_ADDRESS);
    uint16_t ch;
    if (!ca || !pa || stun_get_channel(ca, &ch) != STUN_OK || ch < STUN_CHANNEL_MIN ||
        ch > STUN_CHANNEL_MAX) {
        plog_debug("channel_bind_refused", "channel=%u", ca && ca->len == 4 ? ch : 0);
        reply_error(t, STUN_ERR_BAD_REQUEST, RREF_BAD_REQUEST);
        return;
    }
    struct sockaddr_storage peer;
    if (peer_of(t, a, pa, &peer) != 0)
        return;
    const struct sockaddr *ps = (const struct sockaddr *)&peer;
    if (ralloc_channel_check(a, ch, ps) != 0) {
        plog_debug("channel_bind_refused", "channel=%u reason=conflict", ch);
        reply_error(t, STUN_ERR_BAD_REQUEST, RREF_BAD_REQUEST);
        return;
    }
    uint64_t now = uv_now(t->r->loop);
    if ((!ralloc_permitted(a, ps, 0) && a->nperms == PARLEY_RELAY_PERMS_PER_ALLOC_MAX) ||
        ralloc_channel_bind(a, ch, ps, now) != 0) {
        reply_error(t, STUN_ERR_INSUFFICIENT_CAPACITY, RREF_CAPACITY);
        return;
    }
    ralloc_permit(a, ps, now);
    stun_builder b;
    begin(t, &b, STUN_SUCCESS);
    finish(t, &b);
}

void turn_handle(relay *r, const struct sockaddr *client, rtcp_conn *conn, const uint8_t *buf,
                 size_t len)
{
    stun_msg m;
    int rc = stun_parse(&m, buf, len);
    txn t = {r, &m, client, conn, NULL};
    if (rc != STUN_OK) {
        pmet_inc(r->met.malformed, 1);
        /* a request whose header was sound gets 400; a bad FINGERPRINT means it was not meant
         * for us (or not STUN at all): silence */
        if (m.buf && m.cls == STUN_REQUEST && rc != STUN_EFINGERPRINT &&
            rauth_reject_allowed(&r->auth, client, uv_now(r->loop) / 1000)) {
            m.has_fingerprint = 0;
            reply_error(&t, STUN_ERR_BAD_REQUEST, RREF_BAD_REQUEST);
        }
        return;
    }
    if (m.cls == STUN_INDICATION) {
        if (m.method == TURN_SEND)
            relay_send_indication(r, &m, client, conn);
        return;
    }
    if (m.cls != STUN_REQUEST)
        return;
    pmet_inc(r->met.requests, 1);
    if (m.method == STUN_BINDING) {
        if (m.nunknown) {
            reply_unknown(&t, m.unknown, m.nunknown);
            return;
        }
        stun_builder b;
        begin(&t, &b, STUN_SUCCESS);
        stun_put_addr(&b, STUN_A_XOR_MAPPED_ADDRESS, 1, client);
        finish(&t, &b);
        return;
    }
    if (m.method != TURN_ALLOCATE && m.method != TURN_REFRESH &&
        m.method != TURN_CREATE_PERMISSION && m.method != TURN_CHANNEL_BIND) {
        reply_error(&t, STUN_ERR_BAD_REQUEST, RREF_BAD_REQUEST);
        return;
    }
    uint8_t key[STUN_LT_KEY_LEN];
    if (authenticate(&t, key) != 0)
        return;
    if (m.nunknown) {
        reply_unknown(&t, m.unknown, m.nunknown);
        return;
    }
    switch (m.method) {
    case TURN_ALLOCATE: on_allocate(&t); break;
    case TURN_REFRESH: on_refresh(&t); break;
    case TURN_CREATE_PERMISSION: on_create_permission(&t); break;
    case TURN_CHANNEL_BIND: on_channel_bind(&t); break;
    }
}
