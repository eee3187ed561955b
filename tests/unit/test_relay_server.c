/* test_relay_server.c: parley-relay's TURN server end to end on loopback, driven by a
 * hand-written client over real UDP sockets while the test runs the relay's libuv loop:
 * Binding; the 401 challenge, then Allocate with REST credentials; wrong password, expired
 * username, stale and forged nonces; peers refused by policy (127.0.0.1, 10.0.0.1,
 * 169.254.169.254; ::1 and ::ffff:127.0.0.1 on an IPv6 relay) and allowed by the allow list;
 * Send/Data indications and ChannelData both ways; Refresh and deletion; retransmitted
 * Allocate; allocation mismatch; per-user quota; EVEN-PORT with RESERVATION-TOKEN; unknown
 * comprehension-required attributes; garbage input; TCP framing (split and coalesced frames,
 * padded ChannelData), and the allocation ending with its connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "relay.h"

#define SECRET "test-secret"
#define REALM  "parley.test"

typedef struct {
    uv_loop_t loop;
    relay r;
    relay_config cfg;
    struct sockaddr_storage server;
    int family;
} env;

static char *dup_str(const char *s) { return strcpy(malloc(strlen(s) + 1), s); }

static env *env_new(const char *ip, const char *allow, long long quota)
{
    env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    e->cfg.listen_host = dup_str(ip);
    e->cfg.listen_port = 0;
    e->cfg.relay_ip = dup_str(ip);
    e->cfg.external_ip = dup_str("");
    e->cfg.port_min = 40000;
    e->cfg.port_max = 40999;
    e->cfg.realm = dup_str(REALM);
    e->cfg.secrets = dup_str("other-secret," SECRET);
    e->cfg.allow_peers = dup_str(allow);
    e->cfg.user_quota = quota;
    e->cfg.max_allocations = 64;
    e->cfg.nonce_ttl_s = 600;
    e->cfg.max_tcp = 16;
    e->cfg.admin.admin_host = dup_str("127.0.0.1");
    e->cfg.admin.admin_port = 0;
    e->cfg.admin.log_level = dup_str("info");
    assert_int_equal(relay_start(&e->r, &e->loop, &e->cfg), 0);
    e->family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    memset(&e->server, 0, sizeof e->server);
    if (e->family == AF_INET6)
        uv_ip6_addr(ip, relay_port(&e->r), (struct sockaddr_in6 *)&e->server);
    else
        uv_ip4_addr(ip, relay_port(&e->r), (struct sockaddr_in *)&e->server);
    return e;
}

static void env_free(env *e)
{
    relay_stop(&e->r);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    relay_free(&e->r);
    free(e->cfg.listen_host);
    free(e->cfg.relay_ip);
    free(e->cfg.external_ip);
    free(e->cfg.realm);
    free(e->cfg.secrets);
    free(e->cfg.allow_peers);
    free(e->cfg.admin.admin_host);
    free(e->cfg.admin.log_level);
    free(e);
}

static int udp_socket(env *e)
{
    int fd = socket(e->family, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (e->family == AF_INET6)
        uv_ip6_addr("::1", 0, (struct sockaddr_in6 *)&ss);
    else
        uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&ss);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, ralloc_addr_len((struct sockaddr *)&ss)), 0);
    return fd;
}

static void local_addr(int fd, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof *ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)ss, &len), 0);
}

static void send_to(int fd, const struct sockaddr_storage *to, const uint8_t *buf, size_t len)
{
    ssize_t n = sendto(fd, buf, len, 0, (const struct sockaddr *)to,
                       ralloc_addr_len((const struct sockaddr *)to));
    assert_int_equal(n, (ssize_t)len);
}

/* Runs the relay's loop until a datagram reaches fd (or timeout_ms passes): its length or 0. */
static size_t recv_on(env *e, int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited++) {
        uv_run(&e->loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n > 0)
            return (size_t)n;
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 1);
    }
    return 0;
}

/* --- a minimal TURN client ------------------------------------------------------------------ */

typedef struct {
    env *e;
    int fd;
    char username[64];
    char password[RAUTH_PASSWORD_LEN + 1];
    char nonce[128];
    uint8_t key[STUN_LT_KEY_LEN];
    uint8_t tid[STUN_TID_LEN];
    uint8_t resp[2048];
    size_t resp_len;
    stun_msg m; /* the last response, parsed */
} client;

static void client_init(client *c, env *e, const char *user, long expiry_offset,
                        const char *secret)
{
    memset(c, 0, sizeof *c);
    c->e = e;
    c->fd = udp_socket(e);
    snprintf(c->username, sizeof c->username, "%ld:%s", (long)time(NULL) + expiry_offset, user);
    assert_int_equal(rauth_password(secret, c->username, strlen(c->username), c->password), 0);
    assert_int_equal(rauth_key(c->username, strlen(c->username), REALM, strlen(REALM),
                               c->password, c->key),
                     0);
}

static void new_tid(client *c)
{
    randombytes_buf(c->tid, sizeof c->tid);
}

/* Starts a request; the caller adds attributes, then calls transact. */
static void req_begin(client *c, stun_builder *b, uint8_t *buf, size_t cap, uint16_t method)
{
    stun_build_begin(b, buf, cap, method, STUN_REQUEST, c->tid);
}

/* Signs (when a nonce is known), sends and waits for the response with the same tid. Returns
 * the response's error code, 0 for success, -1 for no answer. */
static int transact(client *c, stun_builder *b, int sign)
{
    if (sign) {
        stun_put(b, STUN_A_USERNAME, c->username, strlen(c->username));
        stun_put(b, STUN_A_REALM, REALM, strlen(REALM));
        stun_put(b, STUN_A_NONCE, c->nonce, strlen(c->nonce));
        stun_put_integrity(b, c->key, sizeof c->key);
    }
    stun_put_fingerprint(b);
    size_t len = stun_build_end(b);
    assert_true(len > 0);
    send_to(c->fd, &c->e->server, b->buf, len);
    for (;;) {
        c->resp_len = recv_on(c->e, c->fd, c->resp, sizeof c->resp, 2000);
        if (c->resp_len == 0)
            return -1;
        if (stun_parse(&c->m, c->resp, c->resp_len) != STUN_OK)
            continue; /* e.g. a Data indication or ChannelData */
        if (memcmp(c->m.tid, c->tid, STUN_TID_LEN) != 0 || c->m.cls == STUN_INDICATION)
            continue;
        assert_true(c->m.has_fingerprint);
        break;
    }
    if (c->m.cls == STUN_SUCCESS) {
        /* success responses to signed requests are signed with the same key */
        if (sign)
            assert_int_equal(stun_check_integrity(&c->m, c->key, sizeof c->key), STUN_OK);
        return 0;
    }
    assert_int_equal(c->m.cls, STUN_ERROR_RESPONSE);
    const stun_attr *ea = stun_find(&c->m, STUN_A_ERROR_CODE);
    assert_non_null(ea);
    int code;
    const char *reason;
    size_t rlen;
    assert_int_equal(stun_get_error(ea, &code, &reason, &rlen), STUN_OK);
    const stun_attr *na = stun_find(&c->m, STUN_A_NONCE);
    if (na && na->len < sizeof c->nonce) {
        memcpy(c->nonce, na->val, na->len);
        c->nonce[na->len] = '\0';
        const stun_attr *ra = stun_find(&c->m, STUN_A_REALM);
        assert_non_null(ra);
        assert_int_equal(ra->len, strlen(REALM));
        assert_memory_equal(ra->val, REALM, ra->len);
    }
    return code;
}

/* Allocate, learning the nonce from the first 401. Returns the final code (0: success). */
static int allocate(client *c, struct sockaddr_storage *relayed)
{
    uint8_t buf[512];
    stun_builder b;
    if (!c->nonce[0]) {
        new_tid(c);
        req_begin(c, &b, buf, sizeof buf, TURN_ALLOCATE);
        stun_put_transport(&b, STUN_TRANSPORT_UDP);
        assert_int_equal(transact(c, &b, 0), 401);
        assert_true(c->nonce[0] != '\0');
    }
    new_tid(c);
    req_begin(c, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    int rc = transact(c, &b, 1);
    if (rc == 0 && relayed) {
        const stun_attr *ra = stun_find(&c->m, STUN_A_XOR_RELAYED_ADDRESS);
        assert_non_null(ra);
        assert_int_equal(stun_get_addr(&c->m, ra, 1, relayed), STUN_OK);
    }
    return rc;
}

static void set_addr(struct sockaddr_storage *ss, const char *ip, int port)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(ip, ':'))
        assert_int_equal(uv_ip6_addr(ip, port, (struct sockaddr_in6 *)ss), 0);
    else
        assert_int_equal(uv_ip4_addr(ip, port, (struct sockaddr_in *)ss), 0);
}

static int create_permission(client *c, const char *ip)
{
    uint8_t buf[512];
    stun_builder b;
    struct sockaddr_storage peer;
    set_addr(&peer, ip, 9);
    new_tid(c);
    req_begin(c, &b, buf, sizeof buf, TURN_CREATE_PERMISSION);
    stun_put_addr(&b, STUN_A_XOR_PEER_ADDRESS, 1, (struct sockaddr *)&peer);
    return transact(c, &b, 1);
}

static int channel_bind(client *c, uint16_t ch, const struct sockaddr_storage *peer)
{
    uint8_t buf[512];
    stun_builder b;
    new_tid(c);
    req_begin(c, &b, buf, sizeof buf, TURN_CHANNEL_BIND);
    stun_put_channel(&b, ch);
    stun_put_addr(&b, STUN_A_XOR_PEER_ADDRESS, 1, (const struct sockaddr *)peer);
    return transact(c, &b, 1);
}

static int refresh(client *c, int lifetime)
{
    uint8_t buf[512];
    stun_builder b;
    new_tid(c);
    req_begin(c, &b, buf, sizeof buf, TURN_REFRESH);
    if (lifetime >= 0)
        stun_put_u32(&b, STUN_A_LIFETIME, (uint32_t)lifetime);
    return transact(c, &b, 1);
}

static void client_close(client *c) { close(c->fd); }

static uint32_t lifetime_in(client *c)
{
    uint32_t v = 0;
    const stun_attr *l = stun_find(&c->m, STUN_A_LIFETIME);
    assert_non_null(l);
    assert_int_equal(stun_get_u32(l, &v), STUN_OK);
    return v;
}

/* --- tests ---------------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static void test_binding(void **state)
{
    (void)state;
    env *e = env_new("127.0.0.1", "", 10);
    client c;
    client_init(&c, e, "alice", 3600, SECRET);
    uint8_t buf[128];
    stun_builder b;
    new_tid(&c);
    req_begin(&c, &b, buf, sizeof buf, STUN_BINDING);
    assert_int_equal(transact(&c, &b, 0), 0);
    struct sockaddr_storage mapped, mine;
    const stun_attr *x = stun_find(&c.m, STUN_A_XOR_MAPPED_ADDRESS);
    assert_non_null(x);
    assert_int_equal(stun_get_addr(&c.m, x, 1, &mapped), STUN_OK);
    local_addr(c.fd, &mine);
    assert_true(ralloc_addr_eq((struct sockaddr *)&mapped, (struct sockaddr *)&mine));
    /* an unknown comprehension-required attribute: 420 naming it */
    new_tid(&c);
    req_begin(&c, &b, buf, sizeof buf, STUN_BINDING);
    stun_put(&b, 0x0031, "x", 1);
    assert_int_equal(transact(&c, &b, 0), 420);
    uint16_t types[4];
    size_t n;
    assert_int_equal(
        stun_get_unknown(stun_find(&c.m, STUN_A_UNKNOWN_ATTRIBUTES), types, 4, &n), STUN_OK);
    assert_int_equal(n, 1);
    assert_int_equal(types[0], 0x0031);
    /* garbage and a malformed request: the relay keeps serving */
    send_to(c.fd, &e->server, (const uint8_t *)"\xff\xff garbage", 10);
    uint8_t bad[24] = {0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xa4, 0x42};
    bad[20] = 0x00, bad[21] = 0x06, bad[22] = 0x00, bad[23] = 0x09; /* USERNAME past the end */
    send_to(c.fd, &e->server, bad, sizeof bad);
    uint8_t resp[256];
    size_t rl = recv_on(e, c.fd, resp, sizeof resp, 500);
    assert_true(rl > 0);
    stun_msg m;
    assert_int_equal(stun_parse(&m, resp, rl), STUN_OK);
    assert_int_equal(m.cls, STUN_ERROR_RESPONSE);
    new_tid(&c);
    req_begin(&c, &b, buf, sizeof buf, STUN_BINDING);
    assert_int_equal(transact(&c, &b, 0), 0);
    client_close(&c);
    env_free(e);
}

static void test_auth_failures(void **state)
{
    (void)state;
    env *e = env_new("127.0.0.1", "", 10);
    client c;
    /* wrong secret */
    client_init(&c, e, "mallory", 3600, "not-the-secret");
    assert_int_equal(allocate(&c, NULL), 401);
    client_close(&c);
    /* expired username */
    client_init(&c, e, "alice", -10, SECRET);
    assert_int_equal(allocate(&c, NULL), 401);
    client_close(&c);
    /* stale nonce: one the relay minted long ago for this client */
    client_init(&c, e, "alice", 3600, SECRET);
    struct sockaddr_storage mine;
    local_addr(c.fd, &mine);
    rauth_nonce(&e->r.auth, (struct sockaddr *)&mine, (uint64_t)time(NULL) - 10000, c.nonce);
    assert_int_equal(allocate(&c, NULL), 438);
    /* 438 carried a fresh nonce: the retry works */
    assert_int_equal(allocate(&c, NULL), 0);
    client_close(&c);
    /* a forged nonce */
    client_init(&c, e, "alice", 3600, SECRET);
    snprintf(c.nonce, sizeof c.nonce, "%s", "00000000000000000000000000000000000000000000000");
    assert_int_equal(allocate(&c, NULL), 438);
    client_close(&c);
    /* integrity present but REALM missing: 400 */
    client_init(&c, e, "alice", 3600, SECRET);
    assert_int_equal(allocate(&c, NULL), 0); /* learn a nonce and allocate */
    uint8_t buf[512];
    stun_builder b;
    new_tid(&c);
    req_begin(&c, &b, buf, sizeof buf, TURN_REFRESH);
    stun_put(&b, STUN_A_USERNAME, c.username, strlen(c.username));
    stun_put(&b, STUN_A_NONCE, c.nonce, strlen(c.nonce));
    stun_put_integrity(&b, c.key, sizeof c.key);
    assert_int_equal(transact(&c, &b, 0), 400);
    client_close(&c);
    env_free(e);
}

static void test_policy_refusals(void **state)
{
    (void)state;
    env *e = env_new("127.0.0.1", "", 10);
    client c;
    client_init(&c, e, "alice", 3600, SECRET);
    assert_int_equal(allocate(&c, NULL), 0);
    assert_int_equal(create_permission(&c, "127.0.0.1"), 403);
    assert_int_equal(create_permission(&c, "10.0.0.1"), 403);
    assert_int_equal(create_permission(&c, "169.254.169.254"), 403);
    assert_int_equal(create_permission(&c, "0.0.0.0"), 403);
    /* an IPv6 peer on an IPv4 relay is a family mismatch */
    assert_int_equal(create_permission(&c, "::ffff:127.0.0.1"), 443);
    assert_int_equal(create_permission(&c, "8.8.8.8"), 0);
    struct sockaddr_storage peer;
    set_addr(&peer, "127.0.0.1", 5000);
    assert_int_equal(channel_bind(&c, 0x4000, &peer), 403);
    client_close(&c);
    env_free(e);
}

static void test_policy_ipv6(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&lo, sizeof lo) == 0;
    if (probe >= 0)
        close(probe);
    if (!have_v6)
        skip();
    env *e = env_new("::1", "", 10);
    client c;
    client_init(&c, e, "alice", 3600, SECRET);
    assert_int_equal(allocate(&c, NULL), 0);
    assert_int_equal(create_permission(&c, "::1"), 403);
    assert_int_equal(create_permission(&c, "::ffff:127.0.0.1"), 403);
    assert_int_equal(create_permission(&c, "::ffff:10.0.0.1"), 403);
    assert_int_equal(create_permission(&c, "64:ff9b::a9fe:a9fe"), 403);
    assert_int_equal(create_permission(&c, "fe80::1"), 403);
    assert_int_equal(create_permission(&c, "2606:4700:4700::1111"), 0);
    assert_int_equal(create_permission(&c, "127.0.0.1"), 443);
    client_close(&c);
    env_free(e);
    /* the allow list opens ::1, and only it */
    e = env_new("::1", "::1", 10);
    client_init(&c, e, "alice", 3600, SECRET);
    assert_int_equal(allocate(&c, NULL), 0);
    assert_int_equal(create_permission(&c, "::1"), 0);
    assert_int_equal(create_permission(&c, "::2"), 403);
    client_close(&c);
    env_free(e);
}

/* Data both ways through Send/Data indications and through a channel. */
static void test_relay_data(void **state)
{
    (void)state;
    env *e = env_new("127.0.0.1", "127.0.0.1/32", 10);
    client c;
    client_init(&c, e, "alice", 3600, SECRET);
    struct sockaddr_storage relayed, peer_addr;
    assert_int_equal(allocate(&c, &relayed), 0);
    assert_int_equal(relayed.ss_family, AF_INET);
    int port = ntohs(((struct sockaddr_in *)&relayed)->sin_port);
    assert_true(port >= 40000 && port <= 40999);
    assert_int_equal(lifetime_in(&c), PARLEY_RELAY_ALLOC_LIFETIME_DEFAULT);

    int peer = udp_socket(e);
    local_addr(peer, &peer_addr);
    uint8_t buf[2048], got[2048];
    stun_builder b;

    /* without a permission nothing passes, either way */
    new_tid(&c);
    stun_build_begin(&b, buf, sizeof buf, TURN_SEND, STUN_INDICATION, c.tid);
    stun_put_addr(&b, STUN_A_XOR_PEER_ADDRESS, 1, (struct sockaddr *)&peer_addr);
    stun_put(&b, STUN_A_DATA, "ping", 4);
    size_t len = stun_build_end(&b);
    send_to(c.fd, &e->server, buf, len);
    assert_int_equal(recv_on(e, peer, got, sizeof got, 200), 0);
    send_to(peer, &relayed, (const uint8_t *)"early", 5);
    assert_int_equal(recv_on(e, c.fd, got, sizeof got, 200), 0);

    assert_int_equal(create_permission(&c, "127.0.0.1"), 0);
    /* Send indication -> peer gets the bytes from the relayed address */
    send_to(c.fd, &e->server, buf, len);
    size_t n = recv_on(e, peer, got, sizeof got, 2000);
    assert_int_equal(n, 4);
    assert_memory_equal(got, "ping", 4);
    /* peer -> client as a Data indication naming the peer */
    const char odd[] = "odd-length"; /* 10 bytes: padded */
    sendto(peer, odd, 10, 0, (struct sockaddr *)&relayed, sizeof(struct sockaddr_in));
    n = recv_on(e, c.fd, got, sizeof got, 2000);
    assert_true(n > 0);
    stun_msg m;
    assert_int_equal(stun_parse(&m, got, n), STUN_OK);
    assert_int_equal(m.method, TURN_DATA);
    assert_int_equal(m.cls, STUN_INDICATION);
    const stun_attr *d = stun_find(&m, STUN_A_DATA);
    assert_non_null(d);
    assert_int_equal(d->len, 10);
    assert_memory_equal(d->val, odd, 10);
    struct sockaddr_storage named;
    assert_int_equal(stun_get_addr(&m, stun_find(&m, STUN_A_XOR_PEER_ADDRESS), 1, &named), STUN_OK);
    assert_true(ralloc_addr_eq((struct sockaddr *)&named, (struct sockaddr *)&peer_addr));

    /* a channel: ChannelData both ways */
    assert_int_equal(channel_bind(&c, 0x4001, &peer_addr), 0);
    uint8_t cd[4 + 6];
    stun_chdata_header(cd, 0x4001, 6);
    memcpy(cd + 4, "abcdef", 6);
    send_to(c.fd, &e->server, cd, sizeof cd);
    n = recv_on(e, peer, got, sizeof got, 2000);
    assert_int_equal(n, 6);
    assert_memory_equal(got, "abcdef", 6);
    sendto(peer, "xyz", 3, 0, (struct sockaddr *)&relayed, sizeof(struct sockaddr_in));
    n = recv_on(e, c.fd, got, sizeof got, 2000);
    assert_int_equal(n, 7);
    uint16_t ch;
    const uint8_t *data;
    size_t dlen;
    assert_int_equal(stun_chdata_parse(got, n, &ch, &data, &dlen), STUN_OK);
    assert_int_equal(ch, 0x4001);
    assert_int_equal(dlen, 3);
    assert_memory_equal(data, "xyz", 3);
    /* an unbound channel is dropped */
    stun_chdata_header(cd, 0x4002, 6);
    send_to(c.fd, &e->server, cd, sizeof cd);
    assert_int_equal(recv_on(e, peer, got, sizeof got, 200), 0);
    /* the same channel to another peer, or another channel to the same peer: 400 */
    struct sockaddr_storage other;
    set_addr(&other, "127.0.0.1", 9);
    assert_int_equal(channel_bind(&c, 0x4001, &other), 400);
    assert_int_equal(channel_bind(&c, 0x4003, &peer_addr), 400);
    assert_int_equal(channel_bind(&c, 0x3fff, &other), 400);
    /* rebinding the same pair refreshes it */
    assert_int_equal(channel_bind(&c, 0x4001, &peer_addr), 0);

    size_t tlen;
    char *text = pmetrics_render(e->r.metrics, &tlen);
    assert_non_null(strstr(text, "parley_relay_packets_total{direction=\"to_peer\"} 2\n"));
    assert_non_null(strstr(text, "parley_relay_packets_total{direction=\"to_client\"} 2\n"));
    assert_non_null(strstr(text, "parley_relay_bytes_total{direction=\"to_peer\"} 10\n"));
    assert_non_null(strstr(text, "parley_relay_refusals_total{reason=\"no_permission\"} 2\n"));
    assert_non_null(strstr(text, "parley_relay_allocations 1\n"));
    free(text);
    close(peer);
    client_close(&c);
    env_free(e);
}

/* The per-allocation bandwidth cap drops what exceeds it, both ways. */
static void test_bandwidth_cap(void **state)
{
    (void)state;
    env *e = env_new("127.0.0.1", "127.0.0.1", 10);
    e->cfg.alloc_bandwidth = 1000; /* bytes per second */
    client c;
    client_init(&c, e, "alice", 3600, SECRET);
    struct sockaddr_storage relayed, peer_addr;
    assert_int_equal(allocate(&c, &relayed), 0);
    int peer = udp_socket(e);
    local_addr(peer, &peer_addr);
    assert_int_equal(channel_bind(&c, 0x4000, &peer_addr), 0);
    uint8_t cd[4 + 600], got[2048];
    memset(cd, 'x', sizeof cd);
    stun_chdata_header(cd, 0x4000, 600);
    int passed = 0;
    for (int i = 0; i < 3; i++) {
        send_to(c.fd, &e->server, cd, sizeof cd);
        passed += recv_on(e, peer, got, sizeof got, 100) == 600;
    }
    /* 1000 bytes of budget, plus at most 300 ms of refill: one 600-byte datagram, maybe two */
    assert_true(passed >= 1 && passed <= 2);
    sendto(peer, cd, 600, 0, (struct sockaddr *)&relayed, sizeof(struct sockaddr_in));
    sendto(peer, cd, 600, 0, (struct sockaddr *)&relayed, sizeof(struct sockaddr_in));
    int back = 0;
    while (recv_on(e, c.fd, got, sizeof got, 100) > 0)
        back++;
    assert_true(passed + back <= 3);
    size_t tlen;
    char *text = pmetrics_render(e->r.metrics, &tlen);
    assert_null(strstr(text, "parley_relay_refusals_total{reason=\"bandwidth\"} 0\n"));
    assert_non_null(strstr(text, "parley_relay_refusals_total{reason=\"bandwidth\"}"));
    free(text);
    close(peer);
    client_close(&c);
    env_free(e);
}

static void test_lifetimes_and_mismatch(void **state)
{
    (void)state;
    env *e = env_new("127.0.0.1", "", 10);
    client c;
    client_init(&c, e, "alice", 3600, SECRET);
    assert_int_equal(allocate(&c, NULL), 0);
    /* a retransmitted Allocate gets the same answer; a new one is a mismatch */
    uint8_t buf[512];
    stun_builder b;
    req_begin(&c, &b, buf, sizeof buf, TURN_ALLOCATE); /* same tid as the successful one */
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    assert_int_equal(transact(&c, &b, 1), 0);
    assert_int_equal(allocate(&c, NULL), 437);
    assert_int_equal(e->r.nallocs, 1);
    /* lifetimes: clamped to the maximum, the default below it */
    assert_int_equal(refresh(&c, 100000), 0);
    assert_int_equal(lifetime_in(&c), PARLEY_RELAY_ALLOC_LIFETIME_MAX);
    assert_int_equal(refresh(&c, 30), 0);
    assert_int_equal(lifetime_in(&c), PARLEY_RELAY_ALLOC_LIFETIME_DEFAULT);
    assert_int_equal(refresh(&c, -1), 0);
    assert_int_equal(lifetime_in(&c), PARLEY_RELAY_ALLOC_LIFETIME_DEFAULT);
    /* another user on the same 5-tuple: 441 */
    client other;
    client_init(&other, e, "bob", 3600, SECRET);
    memcpy(c.username, other.username, sizeof c.username);
    memcpy(c.key, other.key, sizeof c.key);
    assert_int_equal(refresh(&c, 600), 441);
    client_close(&other);
    client_init(&other, e, "alice", 3600, SECRET);
    memcpy(c.username, other.username, sizeof c.username);
    memcpy(c.key, other.key, sizeof c.key);
    client_close(&other);
    /* delete */
    assert_int_equal(refresh(&c, 0), 0);
    assert_int_equal(lifetime_in(&c), 0);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(e->r.nallocs, 0);
    assert_int_equal(refresh(&c, 600), 437);
    assert_int_equal(create_permission(&c, "8.8.8.8"), 437);
    /* the 5-tuple can allocate again */
    assert_int_equal(allocate(&c, NULL), 0);
    client_close(&c);
    env_free(e);
}

static void test_quota_and_request_checks(void **state)
{
    (void)state;
    env *e = env_new("127.0.0.1", "", 2);
    client a, b2, c3;
    client_init(&a, e, "alice", 3600, SECRET);
    client_init(&b2, e, "alice", 7200, SECRET); /* same user, another expiry */
    client_init(&c3, e, "alice", 3600, SECRET);
    assert_int_equal(allocate(&a, NULL), 0);
    assert_int_equal(allocate(&b2, NULL), 0);
    assert_int_equal(allocate(&c3, NULL), 486);
    client_close(&c3);
    client bob;
    client_init(&bob, e, "bob", 3600, SECRET);
    /* request checks, after authentication */
    uint8_t buf[512];
    stun_builder b;
    assert_int_equal(allocate(&bob, NULL), 0);
    assert_int_equal(refresh(&bob, 0), 0);
    new_tid(&bob);
    req_begin(&bob, &b, buf, sizeof buf, TURN_ALLOCATE); /* no REQUESTED-TRANSPORT */
    assert_int_equal(transact(&bob, &b, 1), 400);
    new_tid(&bob);
    req_begin(&bob, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, 6);
    assert_int_equal(transact(&bob, &b, 1), 442); /* TCP relaying */
    new_tid(&bob);
    req_begin(&bob, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put_family(&b, STUN_FAMILY_IPV6);
    assert_int_equal(transact(&bob, &b, 1), 440);
    new_tid(&bob);
    req_begin(&bob, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put(&b, STUN_A_DONT_FRAGMENT, NULL, 0);
    assert_int_equal(transact(&bob, &b, 1), 420);
    new_tid(&bob);
    req_begin(&bob, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put(&b, 0x0031, "u", 1);
    assert_int_equal(transact(&bob, &b, 1), 420);
    new_tid(&bob);
    req_begin(&bob, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put_even_port(&b, 0);
    stun_put(&b, STUN_A_RESERVATION_TOKEN, "12345678", 8);
    assert_int_equal(transact(&bob, &b, 1), 400);
    new_tid(&bob);
    req_begin(&bob, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put(&b, STUN_A_RESERVATION_TOKEN, "12345678", 8); /* unknown token */
    assert_int_equal(transact(&bob, &b, 1), 508);
    /* an unknown method */
    new_tid(&bob);
    req_begin(&bob, &b, buf, sizeof buf, 0x00A);
    assert_int_equal(transact(&bob, &b, 1), 400);
    client_close(&a);
    client_close(&b2);
    client_close(&bob);
    env_free(e);
}

static void test_even_port_reservation(void **state)
{
    (void)state;
    env *e = env_new("127.0.0.1", "", 10);
    client c, d;
    client_init(&c, e, "alice", 3600, SECRET);
    client_init(&d, e, "alice", 3600, SECRET);
    uint8_t buf[512];
    stun_builder b;
    assert_int_equal(allocate(&c, NULL), 0);
    assert_int_equal(refresh(&c, 0), 0);
    new_tid(&c);
    req_begin(&c, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put_even_port(&b, 1);
    assert_int_equal(transact(&c, &b, 1), 0);
    struct sockaddr_storage r1, r2;
    assert_int_equal(stun_get_addr(&c.m, stun_find(&c.m, STUN_A_XOR_RELAYED_ADDRESS), 1, &r1),
                     STUN_OK);
    int p1 = ntohs(((struct sockaddr_in *)&r1)->sin_port);
    assert_int_equal(p1 % 2, 0);
    uint8_t token[STUN_RESERVATION_TOKEN_LEN];
    const stun_attr *t = stun_find(&c.m, STUN_A_RESERVATION_TOKEN);
    assert_non_null(t);
    assert_int_equal(stun_get_token(t, token), STUN_OK);
    assert_int_equal(e->r.nresv, 1);
    /* the reserved port goes to whoever presents the token */
    assert_int_equal(allocate(&d, NULL), 0);
    assert_int_equal(refresh(&d, 0), 0);
    new_tid(&d);
    req_begin(&d, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put(&b, STUN_A_RESERVATION_TOKEN, token, sizeof token);
    assert_int_equal(transact(&d, &b, 1), 0);
    assert_int_equal(stun_get_addr(&d.m, stun_find(&d.m, STUN_A_XOR_RELAYED_ADDRESS), 1, &r2),
                     STUN_OK);
    assert_int_equal(ntohs(((struct sockaddr_in *)&r2)->sin_port), p1 + 1);
    assert_int_equal(e->r.nresv, 0);
    /* a token works once */
    client f;
    client_init(&f, e, "alice", 3600, SECRET);
    assert_int_equal(allocate(&f, NULL), 0);
    assert_int_equal(refresh(&f, 0), 0);
    new_tid(&f);
    req_begin(&f, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put(&b, STUN_A_RESERVATION_TOKEN, token, sizeof token);
    assert_int_equal(transact(&f, &b, 1), 508);
    client_close(&c);
    client_close(&d);
    client_close(&f);
    env_free(e);
}

static void test_unauthenticated_rate_limit(void **state)
{
    (void)state;
    env *e = env_new("127.0.0.1", "", 10);
    client c;
    client_init(&c, e, "alice", 3600, SECRET);
    uint8_t buf[128];
    stun_builder b;
    /* all at once, so at most one second boundary (one refill) falls in between */
    const int sent = 3 * PARLEY_RELAY_401_BURST;
    for (int i = 0; i < sent; i++) {
        new_tid(&c);
        req_begin(&c, &b, buf, sizeof buf, TURN_ALLOCATE);
        stun_put_transport(&b, STUN_TRANSPORT_UDP);
        stun_put_fingerprint(&b);
        size_t len = stun_build_end(&b);
        send_to(c.fd, &e->server, buf, len);
    }
    int answered = 0;
    uint8_t resp[512];
    while (recv_on(e, c.fd, resp, sizeof resp, 300) > 0)
        answered++;
    assert_true(answered >= PARLEY_RELAY_401_BURST);
    assert_true(answered <= PARLEY_RELAY_401_BURST + PARLEY_RELAY_401_RATE_PER_S);
    client_close(&c);
    env_free(e);
}

/* Reads one whole frame from a TCP socket while running the loop: its length or 0. */
static size_t tcp_frame(env *e, int fd, uint8_t *buf, size_t cap)
{
    size_t have = 0;
    for (int waited = 0; waited < 2000; waited++) {
        uv_run(&e->loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, buf + have, 1, MSG_DONTWAIT); /* byte by byte: never past a frame */
        if (n == 1) {
            have++;
            long fl = stun_frame_len(buf, have);
            assert_true(fl >= 0);
            if (fl > 0 && (size_t)fl <= have)
                return have;
            assert_true(have < cap);
            waited = 0;
            continue;
        }
        if (n == 0)
            return 0;
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 1);
    }
    return 0;
}

static void test_tcp(void **state)
{
    (void)state;
    env *e = env_new("127.0.0.1", "127.0.0.1", 10);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&e->server, sizeof(struct sockaddr_in)), 0);
    client c;
    client_init(&c, e, "alice", 3600, SECRET);
    uint8_t buf[1024], got[2048];
    stun_builder b;

    /* two requests in one write, the second split over two writes */
    uint8_t two[512];
    new_tid(&c);
    stun_build_begin(&b, two, sizeof two, STUN_BINDING, STUN_REQUEST, c.tid);
    size_t l1 = stun_build_end(&b);
    new_tid(&c);
    stun_build_begin(&b, two + l1, sizeof two - l1, TURN_ALLOCATE, STUN_REQUEST, c.tid);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    size_t l2 = stun_build_end(&b);
    assert_int_equal(send(fd, two, l1 + 5, 0), (ssize_t)(l1 + 5));
    size_t n = tcp_frame(e, fd, got, sizeof got);
    stun_msg m;
    assert_int_equal(stun_parse(&m, got, n), STUN_OK);
    assert_int_equal(m.method, STUN_BINDING);
    assert_int_equal(m.cls, STUN_SUCCESS);
    assert_int_equal(send(fd, two + l1 + 5, l2 - 5, 0), (ssize_t)(l2 - 5));
    n = tcp_frame(e, fd, got, sizeof got);
    assert_int_equal(stun_parse(&m, got, n), STUN_OK);
    assert_int_equal(m.cls, STUN_ERROR_RESPONSE); /* 401 with a nonce */
    const stun_attr *na = stun_find(&m, STUN_A_NONCE);
    assert_non_null(na);
    memcpy(c.nonce, na->val, na->len);
    c.nonce[na->len] = '\0';

    /* signed Allocate and CreatePermission over the stream */
    new_tid(&c);
    req_begin(&c, &b, buf, sizeof buf, TURN_ALLOCATE);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put(&b, STUN_A_USERNAME, c.username, strlen(c.username));
    stun_put(&b, STUN_A_REALM, REALM, strlen(REALM));
    stun_put(&b, STUN_A_NONCE, c.nonce, strlen(c.nonce));
    stun_put_integrity(&b, c.key, sizeof c.key);
    size_t len = stun_build_end(&b);
    assert_int_equal(send(fd, buf, len, 0), (ssize_t)len);
    n = tcp_frame(e, fd, got, sizeof got);
    assert_int_equal(stun_parse(&m, got, n), STUN_OK);
    assert_int_equal(m.cls, STUN_SUCCESS);
    assert_int_equal(stun_check_integrity(&m, c.key, sizeof c.key), STUN_OK);
    struct sockaddr_storage relayed, peer_addr;
    assert_int_equal(stun_get_addr(&m, stun_find(&m, STUN_A_XOR_RELAYED_ADDRESS), 1, &relayed),
                     STUN_OK);
    assert_int_equal(e->r.nallocs, 1);
    int peer = udp_socket(e);
    local_addr(peer, &peer_addr);
    new_tid(&c);
    req_begin(&c, &b, buf, sizeof buf, TURN_CHANNEL_BIND);
    stun_put_channel(&b, 0x4000);
    stun_put_addr(&b, STUN_A_XOR_PEER_ADDRESS, 1, (struct sockaddr *)&peer_addr);
    stun_put(&b, STUN_A_USERNAME, c.username, strlen(c.username));
    stun_put(&b, STUN_A_REALM, REALM, strlen(REALM));
    stun_put(&b, STUN_A_NONCE, c.nonce, strlen(c.nonce));
    stun_put_integrity(&b, c.key, sizeof c.key);
    len = stun_build_end(&b);
    assert_int_equal(send(fd, buf, len, 0), (ssize_t)len);
    n = tcp_frame(e, fd, got, sizeof got);
    assert_int_equal(stun_parse(&m, got, n), STUN_OK);
    assert_int_equal(m.cls, STUN_SUCCESS);

    /* ChannelData, padded on the stream, both ways */
    uint8_t cd[12] = {0};
    stun_chdata_header(cd, 0x4000, 5);
    memcpy(cd + 4, "hello", 5);
    assert_int_equal(send(fd, cd, sizeof cd, 0), (ssize_t)sizeof cd);
    n = recv_on(e, peer, got, sizeof got, 2000);
    assert_int_equal(n, 5);
    assert_memory_equal(got, "hello", 5);
    sendto(peer, "abc", 3, 0, (struct sockaddr *)&relayed, sizeof(struct sockaddr_in));
    n = tcp_frame(e, fd, got, sizeof got);
    assert_int_equal(n, 8); /* 4 + 3 + 1 padding */
    uint16_t ch;
    const uint8_t *data;
    size_t dlen;
    assert_int_equal(stun_chdata_parse(got, n, &ch, &data, &dlen), STUN_OK);
    assert_int_equal(dlen, 3);
    assert_memory_equal(data, "abc", 3);

    /* closing the connection ends the allocation */
    close(fd);
    for (int i = 0; i < 200 && e->r.nallocs; i++) {
        uv_run(&e->loop, UV_RUN_NOWAIT);
        struct pollfd p = {peer, POLLIN, 0};
        poll(&p, 1, 1);
    }
    assert_int_equal(e->r.nallocs, 0);

    /* bytes that are neither STUN nor ChannelData close the stream */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&e->server, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(send(fd, "\xff\xfe garbage", 10, 0), 10);
    int eof = 0;
    for (int i = 0; i < 2000 && !eof; i++) {
        uv_run(&e->loop, UV_RUN_NOWAIT);
        eof = recv(fd, got, sizeof got, MSG_DONTWAIT) == 0;
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 1);
    }
    assert_true(eof);
    close(fd);
    close(peer);
    client_close(&c);
    env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binding),
        cmocka_unit_test(test_auth_failures),
        cmocka_unit_test(test_policy_refusals),
        cmocka_unit_test(test_policy_ipv6),
        cmocka_unit_test(test_relay_data),
        cmocka_unit_test(test_bandwidth_cap),
        cmocka_unit_test(test_lifetimes_and_mismatch),
        cmocka_unit_test(test_quota_and_request_checks),
        cmocka_unit_test(test_even_port_reservation),
        cmocka_unit_test(test_unauthenticated_rate_limit),
        cmocka_unit_test(test_tcp),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
