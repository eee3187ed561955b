/* Call signals (call.h): encoding and the checks of decoding, the routing of a received signal
 * to a call, the freshness of an offer and the end-of-call line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "call.pb-c.h"

static void v4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    struct sockaddr_in *a = (struct sockaddr_in *)ss;

    memset(ss, 0, sizeof *ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
}

static void v6(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
}

static pc_call_sig offer(void)
{
    pc_call_sig s;

    memset(&s, 0, sizeof s);
    s.call_id = 0x0123456789abcdefULL;
    s.type = PC_CALL_OFFER;
    s.has_key = 1;
    for (int i = 0; i < PC_MEDIA_KEY_LEN; i++)
        s.key[i] = (uint8_t)(i + 1);
    s.n_candidates = 2;
    v4(&s.candidates[0], "127.0.0.1", 49152);
    v6(&s.candidates[1], "2001:db8::7", 50000);
    s.has_media = 1;
    s.frame_ms = 20;
    s.audio_bytes = 160;
    s.video_bytes = 1000;
    s.ring_s = 30;
    return s;
}

/* encode then decode; returns decode's result */
static int round_trip(const pc_call_sig *in, pc_call_sig *out, pc_status *st)
{
    uint8_t *buf;
    size_t len;
    int rc;

    if (pc_call_sig_encode(in, &buf, &len, st) < 0)
        return -1;
    rc = pc_call_sig_decode(buf, len, out, st);
    free(buf);
    return rc;
}

static void test_offer_round_trip(void **state)
{
    pc_call_sig in = offer(), out;
    pc_status st;

    (void)state;
    assert_int_equal(round_trip(&in, &out, &st), 0);
    assert_true(out.call_id == in.call_id);
    assert_int_equal(out.type, PC_CALL_OFFER);
    assert_int_equal(out.has_key, 1);
    assert_memory_equal(out.key, in.key, PC_MEDIA_KEY_LEN);
    assert_int_equal(out.n_candidates, 2);
    assert_memory_equal(&out.candidates[0], &in.candidates[0], sizeof(struct sockaddr_in));
    assert_memory_equal(&out.candidates[1], &in.candidates[1], sizeof(struct sockaddr_in6));
    assert_int_equal(out.has_media, 1);
    assert_int_equal(out.frame_ms, 20);
    assert_int_equal(out.audio_bytes, 160);
    assert_int_equal(out.video_bytes, 1000);
    assert_int_equal(out.ring_s, 30);
    pc_call_sig_wipe(&out);
    assert_int_equal(out.has_key, 0);
    assert_int_equal(out.key[0], 0);
}

static void test_other_types_round_trip(void **state)
{
    pc_call_sig in, out;
    pc_status st;

    (void)state;
    memset(&in, 0, sizeof in);
    in.call_id = 7;
    in.type = PC_CALL_ANSWER;
    in.to_device = 3;
    in.n_candidates = 1;
    v4(&in.candidates[0], "192.0.2.1", 3479);
    assert_int_equal(round_trip(&in, &out, &st), 0);
    assert_int_equal(out.type, PC_CALL_ANSWER);
    assert_int_equal(out.to_device, 3);
    assert_int_equal(out.has_key, 0);
    assert_int_equal(out.has_media, 0);

    memset(&in, 0, sizeof in);
    in.call_id = 7;
    in.type = PC_CALL_HANGUP;
    in.reason = PC_CALL_ACK;
    in.frames_sent = 1234567890123ULL;
    assert_int_equal(round_trip(&in, &out, &st), 0);
    assert_int_equal(out.type, PC_CALL_HANGUP);
    assert_int_equal(out.reason, PC_CALL_ACK);
    assert_true(out.frames_sent == 1234567890123ULL);
    assert_int_equal(out.n_candidates, 0);

    in.type = PC_CALL_BUSY;
    in.reason = 0;
    in.frames_sent = 0;
    assert_int_equal(round_trip(&in, &out, &st), 0);
    assert_int_equal(out.type, PC_CALL_BUSY);
    assert_string_equal(pc_call_sig_type_name(PC_CALL_BUSY), "busy");

    /* answered elsewhere names the device that took the call, and only that hangup does */
    memset(&in, 0, sizeof in);
    in.call_id = 7;
    in.type = PC_CALL_HANGUP;
    in.reason = PC_CALL_ANSWERED_ELSEWHERE;
    in.answered_device = 4;
    assert_int_equal(round_trip(&in, &out, &st), 0);
    assert_int_equal(out.reason, PC_CALL_ANSWERED_ELSEWHERE);
    assert_int_equal(out.answered_device, 4);
    in.answered_device = 0;
    assert_int_equal(round_trip(&in, &out, &st), -1);
    assert_int_equal(st.kind, PC_ERR_PROTO);
    assert_non_null(strstr(st.msg, "must name an answering device"));
    in.reason = PC_CALL_DONE;
    in.answered_device = 4;
    assert_int_equal(round_trip(&in, &out, &st), -1);
    assert_non_null(strstr(st.msg, "must not name an answering device"));
}

/* The encoder refuses what the decoder would. */
static void test_encode_refuses(void **state)
{
    pc_call_sig s;
    uint8_t *buf;
    size_t len;
    pc_status st;

    (void)state;
    s = offer();
    s.call_id = 0;
    assert_int_equal(pc_call_sig_encode(&s, &buf, &len, &st), -1);
    s = offer();
    s.has_key = 0; /* an offer carries the key */
    assert_int_equal(pc_call_sig_encode(&s, &buf, &len, &st), -1);
    s = offer();
    s.type = PC_CALL_ANSWER; /* nothing else does */
    assert_int_equal(pc_call_sig_encode(&s, &buf, &len, &st), -1);
    s = offer();
    s.n_candidates = 0;
    assert_int_equal(pc_call_sig_encode(&s, &buf, &len, &st), -1);
    s = offer();
    s.ring_s = PC_CALL_RING_MAX_S + 1;
    assert_int_equal(pc_call_sig_encode(&s, &buf, &len, &st), -1);
    s = offer();
    s.candidates[0].ss_family = AF_UNIX;
    assert_int_equal(pc_call_sig_encode(&s, &buf, &len, &st), -1);
    s = offer();
    s.type = 9;
    assert_int_equal(pc_call_sig_encode(&s, &buf, &len, &st), -1);
    s = offer();
    s.audio_bytes = PC_MEDIA_PACKET_MAX + 1;
    assert_int_equal(pc_call_sig_encode(&s, &buf, &len, &st), -1);
}

/* Packs a hand-made CallSignal and decodes it. */
static int decode_raw(const Parley__Call__V1__CallSignal *m, pc_call_sig *out, pc_status *st)
{
    size_t n = parley__call__v1__call_signal__get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    int rc;

    assert_non_null(buf);
    parley__call__v1__call_signal__pack(m, buf);
    rc = pc_call_sig_decode(buf, n, out, st);
    free(buf);
    return rc;
}

static void test_decode_refuses(void **state)
{
    Parley__Call__V1__CallSignal m = PARLEY__CALL__V1__CALL_SIGNAL__INIT;
    Parley__Call__V1__Candidate c = PARLEY__CALL__V1__CANDIDATE__INIT, *cp = &c;
    uint8_t key[33] = { 0 }, ip[5] = { 127, 0, 0, 1, 9 };
    const uint8_t garbage[] = { 0xff, 0xff, 0xff };
    pc_call_sig out;
    pc_status st;

    (void)state;
    m.version = 1;
    m.call_id = 5;
    m.type = PARLEY__CALL__V1__CALL_SIGNAL__TYPE__OFFER;
    m.key.data = key;
    m.key.len = 32;
    m.ring_s = 10;
    c.kind = PARLEY__CALL__V1__CANDIDATE__KIND__RELAY;
    c.ip.data = ip;
    c.ip.len = 4;
    c.port = 3478;
    m.n_candidates = 1;
    m.candidates = &cp;
    assert_int_equal(decode_raw(&m, &out, &st), 0);
    pc_call_sig_wipe(&out);

    m.version = 2;
    assert_int_equal(decode_raw(&m, &out, &st), -1);
    assert_int_equal(st.kind, PC_ERR_PROTO);
    m.version = 1;
    m.key.len = 33; /* a key of the wrong size */
    assert_int_equal(decode_raw(&m, &out, &st), -1);
    assert_int_equal(out.has_key, 0); /* nothing is left of a refused signal */
    m.key.len = 32;
    c.ip.len = 5; /* neither IPv4 nor IPv6 */
    assert_int_equal(decode_raw(&m, &out, &st), -1);
    c.ip.len = 4;
    c.port = 70000;
    assert_int_equal(decode_raw(&m, &out, &st), -1);
    c.port = 0;
    assert_int_equal(decode_raw(&m, &out, &st), -1);
    c.port = 3478;
    c.kind = PARLEY__CALL__V1__CANDIDATE__KIND__KIND_UNSPECIFIED;
    assert_int_equal(decode_raw(&m, &out, &st), -1);
    c.kind = PARLEY__CALL__V1__CANDIDATE__KIND__RELAY;
    m.ring_s = 0;
    assert_int_equal(decode_raw(&m, &out, &st), -1);
    m.ring_s = 10;
    m.call_id = 0;
    assert_int_equal(decode_raw(&m, &out, &st), -1);
    m.call_id = 5;
    m.type = PARLEY__CALL__V1__CALL_SIGNAL__TYPE__HANGUP; /* a hangup with a key */
    assert_int_equal(decode_raw(&m, &out, &st), -1);
    m.type = PARLEY__CALL__V1__CALL_SIGNAL__TYPE__TYPE_UNSPECIFIED;
    assert_int_equal(decode_raw(&m, &out, &st), -1);
    {
        /* more candidates than a signal may carry */
        Parley__Call__V1__Candidate *many[PC_CALL_CANDIDATES_MAX + 1];
        for (int i = 0; i <= PC_CALL_CANDIDATES_MAX; i++)
            many[i] = &c;
        m.type = PARLEY__CALL__V1__CALL_SIGNAL__TYPE__OFFER;
        m.candidates = many;
        m.n_candidates = PC_CALL_CANDIDATES_MAX + 1;
        assert_int_equal(decode_raw(&m, &out, &st), -1);
        m.n_candidates = PC_CALL_CANDIDATES_MAX;
        assert_int_equal(decode_raw(&m, &out, &st), 0);
        pc_call_sig_wipe(&out);
    }
    assert_int_equal(pc_call_sig_decode(garbage, sizeof garbage, &out, &st), -1);
    assert_int_equal(pc_call_sig_decode(garbage, 0, &out, &st), -1); /* version 0 */
}

static void test_route(void **state)
{
    pc_call_view caller = { 1, 42, "bob", 0, 1 };
    pc_call_view callee = { 0, 42, "alice", 1, 2 };
    pc_call_sig s;

    (void)state;
    memset(&s, 0, sizeof s);
    s.call_id = 42;
    /* the caller takes the first answer from any device of the callee */
    s.type = PC_CALL_ANSWER;
    s.to_device = 1;
    assert_int_equal(pc_call_route(&caller, "bob", 3, &s), PC_CALL_ROUTE_TAKE);
    assert_int_equal(pc_call_route(&caller, "carol", 3, &s), PC_CALL_ROUTE_IGNORE);
    s.to_device = 2; /* for another device of the caller's account */
    assert_int_equal(pc_call_route(&caller, "bob", 3, &s), PC_CALL_ROUTE_IGNORE);
    s.to_device = 1;
    /* once answered, only that device counts */
    caller.peer_device = 3;
    assert_int_equal(pc_call_route(&caller, "bob", 4, &s), PC_CALL_ROUTE_IGNORE);
    s.type = PC_CALL_HANGUP;
    assert_int_equal(pc_call_route(&caller, "bob", 3, &s), PC_CALL_ROUTE_TAKE);
    s.type = PC_CALL_BUSY;
    assert_int_equal(pc_call_route(&caller, "bob", 3, &s), PC_CALL_ROUTE_TAKE);
    /* the callee takes no answer or busy, and a redelivered offer of its call is nothing new */
    s.to_device = 2;
    assert_int_equal(pc_call_route(&callee, "alice", 1, &s), PC_CALL_ROUTE_IGNORE);
    s.type = PC_CALL_OFFER;
    s.to_device = 0;
    assert_int_equal(pc_call_route(&callee, "alice", 1, &s), PC_CALL_ROUTE_IGNORE);
    s.type = PC_CALL_HANGUP;
    s.to_device = 2;
    assert_int_equal(pc_call_route(&callee, "alice", 1, &s), PC_CALL_ROUTE_TAKE);
    /* an offer of another call, from anyone, is answered busy; other signals of other calls
     * are ignored */
    s.call_id = 43;
    s.type = PC_CALL_OFFER;
    s.to_device = 0;
    assert_int_equal(pc_call_route(&callee, "carol", 1, &s), PC_CALL_ROUTE_BUSY);
    assert_int_equal(pc_call_route(&caller, "carol", 1, &s), PC_CALL_ROUTE_BUSY);
    s.type = PC_CALL_HANGUP;
    assert_int_equal(pc_call_route(&callee, "alice", 1, &s), PC_CALL_ROUTE_IGNORE);
    /* answered elsewhere: the callee device that took the call goes on, the others stop */
    s.call_id = 42;
    s.to_device = 0;
    s.reason = PC_CALL_ANSWERED_ELSEWHERE;
    s.answered_device = 2;
    assert_int_equal(pc_call_route(&callee, "alice", 1, &s), PC_CALL_ROUTE_IGNORE);
    s.answered_device = 5;
    assert_int_equal(pc_call_route(&callee, "alice", 1, &s), PC_CALL_ROUTE_TAKE);
}

static void test_all_busy(void **state)
{
    const uint32_t offered[] = { 1, 2, 5 };
    const uint32_t some[] = { 5, 1 }, all[] = { 2, 5, 1 }, other[] = { 3 };

    (void)state;
    /* the callee is busy only once every device the offer went to said so */
    assert_int_equal(pc_call_all_busy(offered, 3, some, 2), 0);
    assert_int_equal(pc_call_all_busy(offered, 3, all, 3), 1);
    assert_int_equal(pc_call_all_busy(offered, 3, other, 1), 0);
    assert_int_equal(pc_call_all_busy(offered, 1, some, 2), 1);
    /* before the server's answer it is not known where the offer went */
    assert_int_equal(pc_call_all_busy(offered, 0, all, 3), 0);
    assert_int_equal(pc_call_all_busy(offered, 3, all, 0), 0);
}

static void test_offer_fresh(void **state)
{
    pc_call_sig s = offer();

    (void)state;
    s.ring_s = 30;
    assert_true(pc_call_offer_fresh(&s, 1000000, 1000000));
    assert_true(pc_call_offer_fresh(&s, 1000000, 1029999));
    assert_false(pc_call_offer_fresh(&s, 1000000, 1030000));
    assert_true(pc_call_offer_fresh(&s, 1000000, 999000)); /* our clock behind the server's */
}

static void test_format(void **state)
{
    pc_media_stats ms;
    char line[200];

    (void)state;
    memset(&ms, 0, sizeof ms);
    ms.sent = 520;
    ms.received = 518;
    ms.lost = 2;
    ms.loss_pct = 100.0 * 2 / 520;
    ms.rtt_ms = 0.43;
    ms.jitter_ms = 0.14;
    pc_call_format_stats(0xabcULL, &ms, line, sizeof line);
    assert_string_equal(line, "call 0000000000000abc: sent 520 received 518 lost 2 (0.4%) rtt "
                              "0.4 ms jitter 0.1 ms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offer_round_trip),
        cmocka_unit_test(test_other_types_round_trip),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_all_busy),
        cmocka_unit_test(test_offer_fresh),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
