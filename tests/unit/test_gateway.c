/* test_gateway.c: the gateway's pure logic: Send validation, frame decoding and its failure
 * classes, error frames and request ids of packed frames, outbound queue accounting, presence
 * values, ack batches and their per-connection cost, the Send rate limit, timed-out (orphaned)
 * sends, the registration rate-limit subject and the re-drain start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_ack.h"
#include "gw_auth.h"
#include "gw_register.h"
#include "gw_conn.h"
#include "gw_drain.h"
#include "gw_frame.h"
#include "gw_outq.h"
#include "gw_presence.h"
#include "gw_send.h"
#include "sendcheck.h"

/* ---- Send validation ---------------------------------------------------------------------- */

typedef struct {
    Parley__V1__Send send;
    Parley__V1__OutEnvelope env[PARLEY_MAX_ENVELOPES_PER_SEND + 1];
    Parley__V1__OutEnvelope *ptr[PARLEY_MAX_ENVELOPES_PER_SEND + 1];
    uint8_t content[PARLEY_MAX_ENVELOPE_BYTES + 1];
} send_fixture;

static void fixture_init(send_fixture *f, size_t n)
{
    memset(f->content, 'c', sizeof f->content);
    parley__v1__send__init(&f->send);
    f->send.client_id = 42;
    f->send.recipient = "Bob.Smith";
    for (size_t i = 0; i < PARLEY_MAX_ENVELOPES_PER_SEND + 1; i++) {
        parley__v1__out_envelope__init(&f->env[i]);
        f->env[i].device_id = (uint32_t)i + 1;
        f->env[i].registration_id = 100 + (uint32_t)i;
        f->env[i].content.data = f->content;
        f->env[i].content.len = 10;
        f->ptr[i] = &f->env[i];
    }
    f->send.envelopes = f->ptr;
    f->send.n_envelopes = n;
}

static Parley__V1__ErrorCode validate(send_fixture *f, char out[PARLEY_NAME_MAX + 1])
{
    const char *why = NULL;
    Parley__V1__ErrorCode c = psend_validate(&f->send, out, &why);
    if (c != PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED)
        assert_non_null(why);
    return c;
}

static void test_send_valid(void **state)
{
    (void)state;
    static send_fixture f;
    char rcpt[PARLEY_NAME_MAX + 1];
    fixture_init(&f, 1);
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED);
    assert_string_equal(rcpt, "bob.smith");
    fixture_init(&f, PARLEY_MAX_ENVELOPES_PER_SEND);
    f.env[0].content.len = PARLEY_MAX_ENVELOPE_BYTES;
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED);
}

static void test_send_invalid(void **state)
{
    (void)state;
    static send_fixture f;
    char rcpt[PARLEY_NAME_MAX + 1];

    assert_int_equal(psend_validate(NULL, rcpt, NULL), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);

    fixture_init(&f, 1);
    f.send.client_id = 0;
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);

    fixture_init(&f, 1);
    f.send.recipient = "x";
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);
    f.send.recipient = "";
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);
    f.send.recipient = "bad name";
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);
    f.send.recipient = NULL;
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);

    fixture_init(&f, 0);
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);

    fixture_init(&f, PARLEY_MAX_ENVELOPES_PER_SEND + 1);
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__TOO_MANY_ENVELOPES);

    fixture_init(&f, 2);
    f.env[1].content.len = PARLEY_MAX_ENVELOPE_BYTES + 1;
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__ENVELOPE_TOO_LARGE);

    fixture_init(&f, 2);
    f.env[1].content.len = 0;
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);

    fixture_init(&f, 3);
    f.env[2].device_id = f.env[0].device_id;
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);

    fixture_init(&f, 2);
    f.env[1].device_id = 0;
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);

    fixture_init(&f, 2);
    f.env[1].registration_id = 0;
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);
    f.env[1].registration_id = PARLEY_REGISTRATION_ID_MAX + 1;
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);

    fixture_init(&f, 2);
    f.ptr[1] = NULL; /* what a broken unpack could never produce, but cheap to refuse */
    assert_int_equal(validate(&f, rcpt), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);
}

/* ---- frame decoding ----------------------------------------------------------------------- */

static size_t pack_client(const Parley__V1__ClientFrame *cf, uint8_t *buf)
{
    return parley__v1__client_frame__pack(cf, buf);
}

static void test_decode_ok(void **state)
{
    (void)state;
    Parley__V1__Ping ping = PARLEY__V1__PING__INIT;
    ping.data.data = (uint8_t *)"hi";
    ping.data.len = 2;
    Parley__V1__ClientFrame cf = PARLEY__V1__CLIENT_FRAME__INIT;
    cf.request_id = 7;
    cf.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PING;
    cf.ping = &ping;
    uint8_t buf[64];
    size_t n = pack_client(&cf, buf);
    Parley__V1__ClientFrame *f = NULL;
    assert_int_equal(gw_frame_decode(buf, n, &f), GW_FRAME_OK);
    assert_non_null(f);
    assert_int_equal(f->request_id, 7);
    assert_int_equal(f->body_case, PARLEY__V1__CLIENT_FRAME__BODY_PING);
    assert_int_equal(f->ping->data.len, 2);
    gw_frame_free(f);
}

static void test_decode_bad(void **state)
{
    (void)state;
    Parley__V1__ClientFrame *f = (Parley__V1__ClientFrame *)1;
    /* empty: decodes, but no body */
    assert_int_equal(gw_frame_decode((const uint8_t *)"", 0, &f), GW_FRAME_NO_BODY);
    assert_null(f);
    /* only request_id */
    const uint8_t rid_only[] = {0x08, 0x05};
    assert_int_equal(gw_frame_decode(rid_only, sizeof rid_only, &f), GW_FRAME_NO_BODY);
    /* an unknown field (100, empty bytes) */
    const uint8_t unknown[] = {0x08, 0x01, 0xa2, 0x06, 0x00};
    assert_int_equal(gw_frame_decode(unknown, sizeof unknown, &f), GW_FRAME_NO_BODY);
    /* garbage */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(gw_frame_decode(junk, sizeof junk, &f), GW_FRAME_UNDECODABLE);
    assert_null(f);
    /* a length running past the end */
    const uint8_t trunc[] = {0x7a, 0x10, 0x0a, 0x02};
    assert_int_equal(gw_frame_decode(trunc, sizeof trunc, &f), GW_FRAME_UNDECODABLE);
    /* a body of the wrong wire type (field 15 as varint) */
    const uint8_t wrongtype[] = {0x78, 0x01};
    assert_int_equal(gw_frame_decode(wrongtype, sizeof wrongtype, &f), GW_FRAME_UNDECODABLE);
    /* a valid frame cut short */
    Parley__V1__Ping ping = PARLEY__V1__PING__INIT;
    uint8_t data[40] = {0};
    ping.data.data = data;
    ping.data.len = sizeof data;
    Parley__V1__ClientFrame cf = PARLEY__V1__CLIENT_FRAME__INIT;
    cf.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PING;
    cf.ping = &ping;
    uint8_t buf[64];
    size_t n = pack_client(&cf, buf);
    assert_int_equal(gw_frame_decode(buf, n - 5, &f), GW_FRAME_UNDECODABLE);
}

static void test_decode_many_ids(void **state)
{
    (void)state;
    /* a huge repeated field within the frame cap decodes (the cap bounds the allocation) */
    size_t nids = 20000;
    uint64_t *ids = malloc(nids * sizeof *ids);
    for (size_t i = 0; i < nids; i++)
        ids[i] = i + 1;
    Parley__V1__Ack ack = PARLEY__V1__ACK__INIT;
    ack.envelope_ids = ids;
    ack.n_envelope_ids = nids;
    Parley__V1__ClientFrame cf = PARLEY__V1__CLIENT_FRAME__INIT;
    cf.body_case = PARLEY__V1__CLIENT_FRAME__BODY_ACK;
    cf.ack = &ack;
    size_t n = parley__v1__client_frame__get_packed_size(&cf);
    assert_true(n <= PARLEY_MAX_FRAME_BYTES);
    uint8_t *buf = malloc(n);
    pack_client(&cf, buf);
    Parley__V1__ClientFrame *f = NULL;
    assert_int_equal(gw_frame_decode(buf, n, &f), GW_FRAME_OK);
    assert_int_equal(f->ack->n_envelope_ids, nids);
    gw_frame_free(f);
    free(buf);
    free(ids);
}

/* ---- encoding ----------------------------------------------------------------------------- */

static void test_error_frame(void **state)
{
    (void)state;
    gw_out *o = gw_frame_error(99, PARLEY__V1__ERROR_CODE__RATE_LIMITED, "slow down", 1500);
    assert_non_null(o);
    Parley__V1__ServerFrame *sf =
        parley__v1__server_frame__unpack(NULL, o->len, gw_out_payload(o));
    assert_non_null(sf);
    assert_int_equal(sf->request_id, 99);
    assert_int_equal(sf->body_case, PARLEY__V1__SERVER_FRAME__BODY_ERROR);
    assert_int_equal(sf->error->code, PARLEY__V1__ERROR_CODE__RATE_LIMITED);
    assert_string_equal(sf->error->message, "slow down");
    assert_int_equal(sf->error->retry_after_ms, 1500);
    parley__v1__server_frame__free_unpacked(sf, NULL);
    gw_out_free(o);

    assert_string_equal(gw_frame_error_name(PARLEY__V1__ERROR_CODE__FRAME_TOO_LARGE),
                        "FRAME_TOO_LARGE");
    assert_string_equal(gw_frame_error_name((Parley__V1__ErrorCode)999), "UNKNOWN");
}

/* ---- outbound accounting ------------------------------------------------------------------ */

static gw_out *out_of(size_t len, unsigned char fill)
{
    gw_out *o = gw_out_new(len);
    assert_non_null(o);
    memset(gw_out_payload(o), fill, len);
    return o;
}

static void test_outq(void **state)
{
    (void)state;
    gw_outq q;
    gw_outq_init(&q);
    assert_null(gw_outq_peek(&q));
    assert_null(gw_outq_pop(&q));
    assert_int_equal(gw_outq_push(&q, out_of(400, 'a'), 1000), 0);
    assert_int_equal(gw_outq_push(&q, out_of(600, 'b'), 1000), 0); /* exactly at the limit */
    assert_int_equal(q.bytes, 1000);
    assert_int_equal(q.count, 2);
    gw_out *over = out_of(1, 'c');
    assert_int_equal(gw_outq_push(&q, over, 1000), -1); /* refused: still ours */
    assert_int_equal(q.bytes, 1000);
    gw_out_free(over);
    gw_out *big = out_of(2000, 'd');
    gw_outq q2;
    gw_outq_init(&q2);
    assert_int_equal(gw_outq_push(&q2, big, 1000), -1); /* larger than the limit by itself */
    gw_out_free(big);

    gw_out *o = gw_outq_pop(&q);
    assert_int_equal(o->len, 400);
    assert_int_equal(gw_out_payload(o)[0], 'a');
    assert_int_equal(q.bytes, 600);
    gw_out_free(o);
    assert_int_equal(gw_outq_push(&q, out_of(400, 'e'), 1000), 0);
    assert_int_equal(gw_outq_peek(&q)->len, 600);
    gw_outq_clear(&q);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(q.count, 0);
    assert_null(gw_outq_pop(&q));
    /* the queue works again after a clear */
    assert_int_equal(gw_outq_push(&q, out_of(10, 'f'), 1000), 0);
    gw_outq_clear(&q);
}

/* ---- presence values ---------------------------------------------------------------------- */

static void test_presence_parse(void **state)
{
    (void)state;
    char gw[16];
    uint64_t conn = 0;
    const char *v = "gw-a.1/12345";
    assert_int_equal(gw_presence_parse(v, strlen(v), gw, sizeof gw, &conn), 0);
    assert_string_equal(gw, "gw-a.1");
    assert_int_equal(conn, 12345);
    v = "host/with/slash/7";
    char gw2[32];
    assert_int_equal(gw_presence_parse(v, strlen(v), gw2, sizeof gw2, &conn), 0);
    assert_string_equal(gw2, "host/with/slash");
    assert_int_equal(conn, 7);
    const char *bad[] = {"", "noslash", "/5", "gw/", "gw/12a", "gw/99999999999999999999",
                         "a-very-long-gateway-name/1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(gw_presence_parse(bad[i], strlen(bad[i]), gw, sizeof gw, &conn), -1);
}

/* ---- ack batches -------------------------------------------------------------------------- */

static void test_ack_batch(void **state)
{
    (void)state;
    gw_ack_batch b;
    gw_ack_batch_init(&b);
    const uint64_t ids1[] = {5, 0, 7, UINT64_MAX, (uint64_t)INT64_MAX};
    assert_int_equal(gw_ack_batch_add(&b, 11, 1, 100, 2, ids1, 5), 0);
    const uint64_t ids2[] = {9};
    assert_int_equal(gw_ack_batch_add(&b, 12, 0, 101, 1, ids2, 1), 0);
    assert_int_equal(gw_ack_batch_add(&b, 13, 4, 102, 1, NULL, 0), 0); /* AckOk{0} only */
    assert_int_equal(b.nreqs, 3);
    assert_int_equal(b.n, 4); /* 0 and UINT64_MAX dropped */
    char *a, *d, *i, *r;
    assert_int_equal(gw_ack_batch_arrays(&b, &a, &d, &i, &r), 0);
    assert_string_equal(a, "{100,100,100,101}");
    assert_string_equal(d, "{2,2,2,1}");
    assert_string_equal(i, "{5,7,9223372036854775807,9}");
    assert_string_equal(r, "{0,0,0,1}");
    free(a);
    free(d);
    free(i);
    free(r);
    gw_ack_batch_free(&b);

    /* growth over many adds */
    gw_ack_batch_init(&b);
    uint64_t many[PARLEY_MAX_ACK_IDS];
    for (size_t k = 0; k < PARLEY_MAX_ACK_IDS; k++)
        many[k] = k + 1;
    for (int k = 0; k < 40; k++)
        assert_int_equal(gw_ack_batch_add(&b, (uint64_t)k, 0, 1, 1, many, PARLEY_MAX_ACK_IDS),
                         0);
    assert_int_equal(b.n, 40 * PARLEY_MAX_ACK_IDS);
    assert_int_equal(b.req[b.n - 1], 39);
    assert_int_equal(gw_ack_batch_arrays(&b, &a, &d, &i, &r), 0);
    free(a);
    free(d);
    free(i);
    free(r);
    gw_ack_batch_free(&b);

    gw_ack_batch_init(&b);
    assert_int_equal(gw_ack_batch_arrays(&b, &a, &d, &i, &r), 0);
    assert_string_equal(a, "{}");
    free(a);
    free(d);
    free(i);
    free(r);
}

static void test_ack_units(void **state)
{
    (void)state;
    assert_int_equal(gw_ack_units(0), 1); /* an empty Ack waiting for AckOk still costs */
    assert_int_equal(gw_ack_units(1), 1);
    assert_int_equal(gw_ack_units(PARLEY_MAX_ACK_IDS), PARLEY_MAX_ACK_IDS);
    /* two full Acks may be in flight per connection, a third is refused */
    assert_true(2 * gw_ack_units(PARLEY_MAX_ACK_IDS) <= PARLEY_PENDING_ACK_IDS_MAX);
    assert_true(3 * gw_ack_units(PARLEY_MAX_ACK_IDS) > PARLEY_PENDING_ACK_IDS_MAX);

    gw_ack_batch b;
    gw_ack_batch_init(&b);
    const uint64_t ids[] = {5, 0, 7};
    assert_int_equal(gw_ack_batch_add(&b, 1, 1, 100, 2, ids, 3), 0);
    assert_int_equal(gw_ack_batch_add(&b, 2, 9, 100, 2, NULL, 0), 0);
    /* charged as sent (the id 0 too): released by the same amount */
    assert_int_equal(b.reqs[0].units, 3);
    assert_int_equal(b.reqs[1].units, 1);
    gw_ack_batch_free(&b);
}

/* ---- Send rate limit ---------------------------------------------------------------------- */

static void test_send_bucket(void **state)
{
    (void)state;
    gw_send_bucket b;
    uint32_t retry = 0;
    uint64_t t = 5000000;
    gw_send_bucket_init(&b, t);
    for (int i = 0; i < PARLEY_SEND_BURST; i++)
        assert_int_equal(gw_send_bucket_take(&b, t, &retry), 0);
    assert_int_equal(gw_send_bucket_take(&b, t, &retry), -1);
    assert_true(retry >= 1 && retry <= 1000 / PARLEY_SEND_RATE_PER_S);
    /* a refused send costs nothing; one interval later exactly one more is allowed */
    t += 1000000 / PARLEY_SEND_RATE_PER_S;
    assert_int_equal(gw_send_bucket_take(&b, t, &retry), 0);
    assert_int_equal(gw_send_bucket_take(&b, t, &retry), -1);
    /* sustained: one second brings PARLEY_SEND_RATE_PER_S sends */
    t += 1000000;
    for (int i = 0; i < PARLEY_SEND_RATE_PER_S; i++)
        assert_int_equal(gw_send_bucket_take(&b, t, &retry), 0);
    assert_int_equal(gw_send_bucket_take(&b, t, &retry), -1);
    /* a long pause refills up to the burst only */
    t += 3600ULL * 1000000;
    for (int i = 0; i < PARLEY_SEND_BURST; i++)
        assert_int_equal(gw_send_bucket_take(&b, t, &retry), 0);
    assert_int_equal(gw_send_bucket_take(&b, t, &retry), -1);
    /* a clock that does not advance refills nothing */
    assert_int_equal(gw_send_bucket_take(&b, t - 1000, &retry), -1);
}

/* ---- pending sends and orphans ------------------------------------------------------------ */

static void test_pending_orphans(void **state)
{
    (void)state;
    gw_pendings ps;
    memset(&ps, 0, sizeof ps);
    gw_conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->id = 77;
    const uint64_t t0 = 1000000, timeout = (uint64_t)PARLEY_SEND_ANSWER_TIMEOUT_MS * 1000;
    gw_pending *a = gw_pendings_add(&ps, c, 1, 3, t0);
    gw_pending *b = gw_pendings_add(&ps, c, 2, 0, t0 + 1000);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(c->npending, 2);
    /* the waiting ones are counted by ingress shard too (admission control reads them) */
    assert_int_equal(ps.shard_count[3], 1);
    assert_int_equal(ps.shard_count[0], 1);
    assert_null(gw_pendings_time_out(&ps, t0 + timeout - 1));

    /* the timed-out send becomes an orphan: no longer waited for, still holding its slot */
    assert_ptr_equal(gw_pendings_time_out(&ps, t0 + timeout), a);
    assert_null(gw_pendings_time_out(&ps, t0 + timeout));
    assert_true(a->orphan);
    assert_int_equal(ps.count, 1);
    assert_int_equal(ps.orphans, 1);
    assert_int_equal(ps.shard_count[3], 0);
    assert_int_equal(ps.shard_count[0], 1);
    assert_int_equal(c->npending, 2);
    assert_ptr_equal(gw_pendings_find(c, 1), a);

    /* its late answer releases the slot */
    gw_pendings_remove(&ps, c, a);
    assert_int_equal(c->npending, 1);
    assert_int_equal(ps.orphans, 0);
    assert_null(gw_pendings_find(c, 1));

    /* an orphan never answered is released PARLEY_SEND_ORPHAN_MS after it was sent */
    assert_ptr_equal(gw_pendings_time_out(&ps, t0 + 1000 + timeout), b);
    const uint64_t orphan_end = t0 + 1000 + (uint64_t)PARLEY_SEND_ORPHAN_MS * 1000;
    assert_null(gw_pendings_orphan_expired(&ps, orphan_end - 1));
    assert_ptr_equal(gw_pendings_orphan_expired(&ps, orphan_end), b);
    assert_int_equal(ps.shard_count[0], 0);
    gw_pendings_remove(&ps, c, b);
    assert_int_equal(c->npending, 0);
    assert_null(ps.head);
    assert_null(ps.orphan_head);
    assert_null(ps.orphan_tail);

    /* the cap counts orphans: a connection cannot refill it by letting sends time out */
    for (uint64_t i = 0; i < PARLEY_PENDING_SENDS_MAX; i++)
        assert_non_null(gw_pendings_add(&ps, c, 100 + i, (unsigned)i % 4, t0 + i));
    for (uint64_t i = 0; i < PARLEY_PENDING_SENDS_MAX; i++)
        assert_non_null(gw_pendings_time_out(&ps, t0 + timeout + PARLEY_PENDING_SENDS_MAX));
    assert_int_equal(ps.count, 0);
    assert_int_equal(ps.orphans, PARLEY_PENDING_SENDS_MAX);
    assert_int_equal(c->npending, PARLEY_PENDING_SENDS_MAX);
    /* a request id reused after a timeout: the older (orphaned) send is answered first */
    gw_pending *again =
        gw_pendings_add(&ps, c, 100, 1, t0 + timeout + PARLEY_PENDING_SENDS_MAX);
    assert_non_null(again);
    assert_true(gw_pendings_find(c, 100)->orphan);
    assert_int_equal(ps.shard_count[1], 1);
    while (c->pending)
        gw_pendings_remove(&ps, c, c->pending);
    assert_int_equal(ps.count + ps.orphans, 0);
    for (unsigned i = 0; i < PARLEY_INGRESS_SHARDS_MAX; i++)
        assert_int_equal(ps.shard_count[i], 0);
    free(c);
}

/* ---- registration rate-limit subject ------------------------------------------------------ */

static void test_rate_subject(void **state)
{
    (void)state;
    char a[64], b[64];
    gw_register_rate_subject("192.0.2.7", a, sizeof a);
    assert_string_equal(a, "192.0.2.7");
    gw_register_rate_subject("::ffff:192.0.2.7", a, sizeof a);
    assert_string_equal(a, "192.0.2.7");
    gw_register_rate_subject("2001:db8:1:2:3:4:5:6", a, sizeof a);
    assert_string_equal(a, "2001:db8:1:2::/64");
    /* every address of one /64 is one subject, whatever its spelling */
    gw_register_rate_subject("2001:0DB8:0001:0002:ffff:ffff:ffff:ffff", b, sizeof b);
    assert_string_equal(a, b);
    gw_register_rate_subject("2001:db8:1:3::1", b, sizeof b);
    assert_string_equal(b, "2001:db8:1:3::/64");
    gw_register_rate_subject("fe80::1%eth0", a, sizeof a);
    assert_string_equal(a, "fe80::/64");
    gw_register_rate_subject("::1", a, sizeof a);
    assert_string_equal(a, "::/64");
    gw_register_rate_subject("unknown", a, sizeof a);
    assert_string_equal(a, "unknown");
    gw_register_rate_subject("2001:db8:1:2:3:4:5:6", a, 8); /* truncated, terminated */
    assert_string_equal(a, "2001:db");
}

/* ---- re-drain start ----------------------------------------------------------------------- */

static void test_drain_start_cursor(void **state)
{
    (void)state;
    gw_drain_state d;
    memset(&d, 0, sizeof d);
    assert_int_equal(gw_drain_start_cursor(&d), 0);
    /* pass 1 ended at 10; live pushes 12 and 50 arrived, the push of 11 was lost: the re-drain
     * must start after 10, not after 50 */
    d.done_cursor = 10;
    d.last_delivered = 50;
    assert_int_equal(gw_drain_start_cursor(&d), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_valid),      cmocka_unit_test(test_send_invalid),
        cmocka_unit_test(test_decode_ok),       cmocka_unit_test(test_decode_bad),
        cmocka_unit_test(test_decode_many_ids), cmocka_unit_test(test_error_frame), cmocka_unit_test(test_outq),
        cmocka_unit_test(test_presence_parse),  cmocka_unit_test(test_ack_batch),
        cmocka_unit_test(test_ack_units),       cmocka_unit_test(test_send_bucket),
        cmocka_unit_test(test_pending_orphans), cmocka_unit_test(test_rate_subject),
        cmocka_unit_test(test_drain_start_cursor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
