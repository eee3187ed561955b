/* The TURN client (client/turn_client.h): URI parsing, and one allocation's whole life against
 * a scripted relay on a loopback UDP socket in the same loop: the 401 realm/nonce exchange, a
 * 438 stale nonce retried with the new nonce, lost requests retransmitted with the same
 * transaction, CreatePermission + ChannelBind, ChannelData both ways, a forged (unsigned)
 * success ignored, deletion on close; and wrong credentials reported once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "relay_auth.h"
#include "stun.h"
#include "turn_client.h"

#define REALM "fake.test"
#define USER "1999999999:alice"
#define PASS "right-password"

static int uri(const char *u, char host[64], uint16_t *port)
{
    pc_status st;
    return pc_turn_uri_parse(u, host, 64, port, &st);
}

static void test_uri(void **state)
{
    char host[64];
    uint16_t port;
    pc_status st;

    (void)state;
    assert_int_equal(uri("turn:relay.example:3479", host, &port), 0);
    assert_string_equal(host, "relay.example");
    assert_int_equal(port, 3479);
    assert_int_equal(uri("turn:10.0.0.1", host, &port), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 3478);
    assert_int_equal(uri("TURN:h:1?transport=udp", host, &port), 0);
    assert_string_equal(host, "h");
    assert_int_equal(port, 1);
    assert_int_equal(uri("turn:[::1]:5000", host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 5000);
    assert_int_equal(uri("turn:[::1]", host, &port), 0);
    assert_int_equal(port, 3478);

    assert_int_equal(uri("turn:h:1?transport=tcp", host, &port), -1);
    assert_int_equal(uri("turns:h:1", host, &port), -1);
    assert_int_equal(uri("stun:h:1", host, &port), -1);
    assert_int_equal(uri("turn:", host, &port), -1);
    assert_int_equal(uri("turn::80", host, &port), -1);
    assert_int_equal(uri("turn:h:", host, &port), -1);
    assert_int_equal(uri("turn:h:0", host, &port), -1);
    assert_int_equal(uri("turn:h:65536", host, &port), -1);
    assert_int_equal(uri("turn:h:12a", host, &port), -1);
    assert_int_equal(uri("turn:[::1", host, &port), -1);
    assert_int_equal(uri("turn:[::1]x", host, &port), -1);
    assert_int_equal(pc_turn_uri_parse("turn:averylonghostname", host, 8, &port, &st), -1);
    assert_int_equal(uri(NULL, host, &port), -1);
}

/* ---- the scripted relay ---- */

typedef struct {
    uv_loop_t loop;
    uv_udp_t sock;
    uv_timer_t guard;
    struct sockaddr_in addr;
    uint8_t key[STUN_LT_KEY_LEN];
    const char *nonce;        /* the current nonce */
    int stale_once;           /* answer the first signed Allocate with 438 */
    int forge_once;           /* before the real answer to ChannelBind, an unsigned success */
    uint8_t dropped_tid[STUN_TID_LEN];
    int drop_chanbind_once;   /* drop the first copy of the ChannelBind */
    int seen_tid_copies;      /* copies received of the ChannelBind's transaction */
    int allocates, unauth_allocates, permissions, chanbinds, deletes, chdata;
    uint16_t channel;
    /* client side */
    pc_turn *turn;
    int ready, peered, got_data, errors, closed;
    char error[PC_STATUS_MSG_MAX];
    struct sockaddr_in relayed, peer;
    pc_turn_stats stats;
} fake;

static void fake_send(fake *f, const struct sockaddr *to, const uint8_t *buf, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    assert_int_equal(uv_udp_try_send(&f->sock, &b, 1, to), (int)len);
}

static void answer_error(fake *f, const stun_msg *m, const struct sockaddr *to, int code,
                         const char *reason)
{
    uint8_t out[512];
    stun_builder b;
    stun_build_begin(&b, out, sizeof out, m->method, STUN_ERROR_RESPONSE, m->tid);
    stun_put_error(&b, code, reason);
    stun_put(&b, STUN_A_REALM, REALM, strlen(REALM));
    stun_put(&b, STUN_A_NONCE, f->nonce, strlen(f->nonce));
    stun_put_fingerprint(&b);
    fake_send(f, to, out, stun_build_end(&b));
}

static void answer_ok(fake *f, const stun_msg *m, const struct sockaddr *to, int sign)
{
    uint8_t out[512];
    stun_builder b;
    stun_build_begin(&b, out, sizeof out, m->method, STUN_SUCCESS, m->tid);
    if (m->method == TURN_ALLOCATE) {
        struct sockaddr_in relayed;
        uv_ip4_addr("127.0.0.1", 40000, &relayed);
        stun_put_addr(&b, STUN_A_XOR_RELAYED_ADDRESS, 1, (const struct sockaddr *)&relayed);
        stun_put_addr(&b, STUN_A_XOR_MAPPED_ADDRESS, 1, to);
        stun_put_u32(&b, STUN_A_LIFETIME, 600);
    }
    if (sign)
        stun_put_integrity(&b, f->key, sizeof f->key);
    stun_put_fingerprint(&b);
    fake_send(f, to, out, stun_build_end(&b));
}

static void fake_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static uint8_t rx[65536];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)rx, sizeof rx);
}

static void fake_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                      unsigned flags)
{
    fake *f = h->data;
    const uint8_t *d = (const uint8_t *)buf->base;
    stun_msg m;
    (void)flags;
    if (nread <= 0 || !from)
        return;
    if ((d[0] & 0xC0) == 0x40) { /* ChannelData: the peer answers with the same bytes */
        uint16_t ch;
        const uint8_t *data;
        size_t dlen;
        assert_int_equal(stun_chdata_parse(d, (size_t)nread, &ch, &data, &dlen), STUN_OK);
        assert_int_equal(ch, f->channel);
        f->chdata++;
        fake_send(f, from, d, (size_t)nread);
        return;
    }
    assert_int_equal(stun_parse(&m, d, (size_t)nread), STUN_OK);
    assert_int_equal(m.cls, STUN_REQUEST);
    assert_true(m.has_fingerprint);
    if (!stun_find(&m, STUN_A_MESSAGE_INTEGRITY)) {
        assert_int_equal(m.method, TURN_ALLOCATE); /* only the first request goes unsigned */
        f->unauth_allocates++;
        answer_error(f, &m, from, STUN_ERR_UNAUTHORIZED, "Unauthorized");
        return;
    }
    {
        const stun_attr *n = stun_find(&m, STUN_A_NONCE);
        const stun_attr *r = stun_find(&m, STUN_A_REALM);
        const stun_attr *u = stun_find(&m, STUN_A_USERNAME);
        assert_non_null(n);
        assert_non_null(r);
        assert_non_null(u);
        assert_int_equal(r->len, strlen(REALM));
        assert_int_equal(u->len, strlen(USER));
        assert_memory_equal(u->val, USER, u->len);
        if (stun_check_integrity(&m, f->key, sizeof f->key) != STUN_OK) {
            answer_error(f, &m, from, STUN_ERR_UNAUTHORIZED, "Unauthorized");
            return;
        }
        if (n->len != strlen(f->nonce) || memcmp(n->val, f->nonce, n->len) != 0) {
            answer_error(f, &m, from, STUN_ERR_STALE_NONCE, "Stale Nonce");
            return;
        }
    }
    switch (m.method) {
    case TURN_ALLOCATE:
        f->allocates++;
        if (f->stale_once) {
            f->stale_once = 0;
            f->nonce = "nonce-two";
            answer_error(f, &m, from, STUN_ERR_STALE_NONCE, "Stale Nonce");
            return;
        }
        answer_ok(f, &m, from, 1);
        return;
    case TURN_CREATE_PERMISSION:
        f->permissions++;
        answer_ok(f, &m, from, 1);
        return;
    case TURN_CHANNEL_BIND: {
        const stun_attr *c = stun_find(&m, STUN_A_CHANNEL_NUMBER);
        assert_non_null(c);
        assert_int_equal(stun_get_channel(c, &f->channel), STUN_OK);
        if (f->drop_chanbind_once) {
            f->drop_chanbind_once = 0;
            memcpy(f->dropped_tid, m.tid, STUN_TID_LEN);
            return; /* lost on the way: the client must send it again, same transaction */
        }
        assert_memory_equal(f->dropped_tid, m.tid, STUN_TID_LEN);
        f->chanbinds++;
        if (f->forge_once) {
            f->forge_once = 0;
            answer_ok(f, &m, from, 0);
        }
        answer_ok(f, &m, from, 1);
        return;
    }
    case TURN_REFRESH: {
        const stun_attr *l = stun_find(&m, STUN_A_LIFETIME);
        uint32_t life = 1;
        assert_non_null(l);
        assert_int_equal(stun_get_u32(l, &life), STUN_OK);
        assert_int_equal(life, 0);
        f->deletes++;
        answer_ok(f, &m, from, 1);
        return;
    }
    default:
        fail();
    }
}

/* ---- client callbacks ---- */

static void c_ready(pc_turn *t, const struct sockaddr *relayed, const struct sockaddr *mapped,
                    void *arg)
{
    fake *f = arg;
    pc_status st;
    (void)mapped;
    assert_int_equal(relayed->sa_family, AF_INET);
    memcpy(&f->relayed, relayed, sizeof f->relayed);
    f->ready++;
    uv_ip4_addr("10.1.2.3", 5000, &f->peer);
    assert_int_equal(pc_turn_add_peer(t, (const struct sockaddr *)&f->peer, &st), 0);
    /* a second add of the same peer is a no-op */
    assert_int_equal(pc_turn_add_peer(t, (const struct sockaddr *)&f->peer, &st), 0);
    assert_int_equal(f->peered, 0); /* never from inside the call */
}

static void c_peer(pc_turn *t, const struct sockaddr *peer, void *arg)
{
    fake *f = arg;
    pc_status st;
    const uint8_t msg[] = "hello";
    struct sockaddr_in stranger;
    f->peered++;
    assert_int_equal(((const struct sockaddr_in *)peer)->sin_port, f->peer.sin_port);
    assert_int_equal(pc_turn_send(t, peer, msg, sizeof msg, &st), 0);
    uv_ip4_addr("10.9.9.9", 1, &stranger);
    assert_int_equal(pc_turn_send(t, (const struct sockaddr *)&stranger, msg, sizeof msg, &st), -1);
}

static void c_data(pc_turn *t, const struct sockaddr *peer, const uint8_t *data, size_t len,
                   void *arg)
{
    fake *f = arg;
    (void)peer;
    assert_int_equal(len, 6);
    assert_memory_equal(data, "hello", 6);
    f->got_data++;
    pc_turn_get_stats(t, &f->stats);
    pc_turn_close(t);
}

static void c_error(pc_turn *t, const pc_status *st, void *arg)
{
    fake *f = arg;
    f->errors++;
    snprintf(f->error, sizeof f->error, "%s", st->msg);
    pc_turn_get_stats(t, &f->stats);
    pc_turn_close(t);
}

static void c_closed(pc_turn *t, void *arg)
{
    fake *f = arg;
    (void)t;
    f->closed++;
    uv_close((uv_handle_t *)&f->sock, NULL);
    uv_close((uv_handle_t *)&f->guard, NULL);
}

static void on_guard(uv_timer_t *h)
{
    (void)h;
    fail_msg("the exchange did not finish in time");
}

static void run_fake(fake *f, const char *password)
{
    char uri[64];
    pc_status st;
    pc_turn_cbs cbs = {.on_ready = c_ready, .on_peer = c_peer, .on_data = c_data,
                       .on_error = c_error, .on_closed = c_closed};
    pc_turn_config cfg = {.username = USER, .password = password};
    int namelen = sizeof f->addr;

    assert_int_equal(sodium_init() >= 0, 1);
    assert_int_equal(rauth_key(USER, strlen(USER), REALM, strlen(REALM), PASS, f->key), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_udp_init(&f->loop, &f->sock);
    f->sock.data = f;
    uv_ip4_addr("127.0.0.1", 0, &f->addr);
    assert_int_equal(uv_udp_bind(&f->sock, (const struct sockaddr *)&f->addr, 0), 0);
    assert_int_equal(uv_udp_getsockname(&f->sock, (struct sockaddr *)&f->addr, &namelen), 0);
    assert_int_equal(uv_udp_recv_start(&f->sock, fake_alloc, fake_recv), 0);
    uv_timer_init(&f->loop, &f->guard);
    uv_timer_start(&f->guard, on_guard, 10000, 0);
    snprintf(uri, sizeof uri, "turn:127.0.0.1:%u", (unsigned)ntohs(f->addr.sin_port));
    cfg.uri = uri;
    f->turn = pc_turn_new(&f->loop, &cfg, &cbs, f, &st);
    assert_non_null(f->turn);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void test_allocation_life(void **state)
{
    fake f;

    (void)state;
    memset(&f, 0, sizeof f);
    f.nonce = "nonce-one";
    f.stale_once = 1;
    f.drop_chanbind_once = 1;
    f.forge_once = 1;
    run_fake(&f, PASS);
    assert_int_equal(f.errors, 0);
    assert_int_equal(f.unauth_allocates, 1);
    assert_int_equal(f.allocates, 2); /* 438, then granted */
    assert_int_equal(f.ready, 1);
    assert_int_equal(ntohs(f.relayed.sin_port), 40000);
    assert_int_equal(f.permissions, 1);
    assert_int_equal(f.chanbinds, 1);
    assert_int_equal(f.channel, STUN_CHANNEL_MIN);
    assert_int_equal(f.peered, 1); /* the forged success changed nothing */
    assert_int_equal(f.chdata, 1);
    assert_int_equal(f.got_data, 1);
    assert_int_equal(f.deletes, 1);
    assert_int_equal(f.closed, 1);
    assert_int_equal(f.stats.stale_nonces, 1);
    assert_int_equal(f.stats.retransmits, 1);
    assert_int_equal(f.stats.requests, 5); /* 2 Allocate + 438 retry, permission, bind */
    assert_int_equal(f.stats.chdata_sent, 1);
    assert_int_equal(f.stats.chdata_received, 1);
}

static void test_wrong_password(void **state)
{
    fake f;

    (void)state;
    memset(&f, 0, sizeof f);
    f.nonce = "nonce-one";
    run_fake(&f, "wrong-password");
    assert_int_equal(f.errors, 1);
    assert_non_null(strstr(f.error, "401"));
    assert_int_equal(f.ready, 0);
    assert_int_equal(f.unauth_allocates, 1);
    assert_int_equal(f.stats.requests, 2); /* no endless retry of refused credentials */
    assert_int_equal(f.deletes, 0);
    assert_int_equal(f.closed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri),
        cmocka_unit_test(test_allocation_life),
        cmocka_unit_test(test_wrong_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
