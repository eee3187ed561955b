/* test_fanout.c: the fanout's pure logic: ingress entry checks, reply and push events, human
 * messages, presence values, the parameters of parley_accept_batch and the parsing of its
 * binary result (built with libpq's PQmakeEmptyPGresult, no server needed). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

/* ---- helpers ---- */

typedef struct {
    Parley__V1__InternalSend is;
    Parley__V1__Send send;
    Parley__V1__OutEnvelope env[PARLEY_MAX_ENVELOPES_PER_SEND + 1];
    Parley__V1__OutEnvelope *envp[PARLEY_MAX_ENVELOPES_PER_SEND + 1];
    char contents[PARLEY_MAX_ENVELOPES_PER_SEND + 1][16];
} send_fixture;

/* recipient, then n pairs of device id and registration id; content "c<device>" */
static void make_send(send_fixture *s, const char *recipient, size_t n, const uint32_t *ids)
{
    parley__v1__internal_send__init(&s->is);
    parley__v1__send__init(&s->send);
    s->is.gateway_id = "gw1";
    s->is.conn_id = 42;
    s->is.request_id = 7;
    s->is.sender = "alice";
    s->is.sender_device = 1;
    s->is.send = &s->send;
    s->is.received_ms = 1000;
    s->send.client_id = 99;
    s->send.recipient = (char *)recipient;
    for (size_t i = 0; i < n; i++) {
        parley__v1__out_envelope__init(&s->env[i]);
        s->env[i].device_id = ids[2 * i];
        s->env[i].registration_id = ids[2 * i + 1];
        snprintf(s->contents[i], sizeof s->contents[i], "c%u", ids[2 * i]);
        s->env[i].content.data = (uint8_t *)s->contents[i];
        s->env[i].content.len = strlen(s->contents[i]);
        s->envp[i] = &s->env[i];
    }
    s->send.n_envelopes = n;
    s->send.envelopes = s->envp;
}

static int decode_fixture(send_fixture *s, pfo_entry *e)
{
    size_t len = parley__v1__internal_send__get_packed_size(&s->is);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    parley__v1__internal_send__pack(&s->is, buf);
    memset(e, 0, sizeof *e);
    int rc = pfo_entry_decode(e, buf, len);
    free(buf);
    return rc;
}

static void entry_free(pfo_entry *e)
{
    if (e->msg)
        parley__v1__internal_send__free_unpacked(e->msg, NULL);
    pfo_result_clear(&e->res);
    e->msg = NULL;
}

/* Unpacks a reply event; returns the ServerFrame (free with server_frame__free_unpacked). */
static Parley__V1__ServerFrame *reply_frame(const uint8_t *buf, size_t len, uint64_t conn)
{
    Parley__V1__InternalEvent *ev = parley__v1__internal_event__unpack(NULL, len, buf);
    assert_non_null(ev);
    assert_int_equal(ev->body_case, PARLEY__V1__INTERNAL_EVENT__BODY_REPLY);
    assert_int_equal(ev->reply->conn_id, conn);
    Parley__V1__ServerFrame *f =
        parley__v1__server_frame__unpack(NULL, ev->reply->frame.len, ev->reply->frame.data);
    uint64_t rid = ev->reply->request_id;
    parley__v1__internal_event__free_unpacked(ev, NULL);
    assert_non_null(f);
    /* the gateway matches its pending send by this copy, so it must equal the frame's */
    assert_true(rid == f->request_id);
    assert_true(rid != 0);
    return f;
}

/* ---- entry decoding ---- */

static void test_decode_valid(void **state)
{
    (void)state;
    send_fixture s;
    pfo_entry e;
    const uint32_t ids[] = {1, 201, 2, 202};
    make_send(&s, "Bob", 2, ids);
    assert_int_equal(decode_fixture(&s, &e), 0);
    assert_true(e.to_store);
    assert_string_equal(e.recipient, "bob"); /* normalised */
    assert_string_equal(e.sender, "alice");
    assert_int_equal(e.msg->send->n_envelopes, 2);
    entry_free(&e);
}

static void test_decode_invalid(void **state)
{
    (void)state;
    send_fixture s;
    pfo_entry e;
    const uint32_t dup[] = {1, 201, 1, 202};
    make_send(&s, "bob", 2, dup);
    assert_int_equal(decode_fixture(&s, &e), 0);
    assert_false(e.to_store);
    assert_int_equal(e.res.status, PFO_INVALID);
    entry_free(&e);

    const uint32_t ok[] = {1, 201};
    make_send(&s, "bob", 1, ok);
    s.send.client_id = 0;
    assert_int_equal(decode_fixture(&s, &e), 0);
    assert_int_equal(e.res.status, PFO_INVALID);
    entry_free(&e);

    make_send(&s, "bob", 1, ok);
    s.env[0].device_id = 0x80000000u; /* does not fit PostgreSQL integer */
    assert_int_equal(decode_fixture(&s, &e), 0);
    assert_int_equal(e.res.status, PFO_INVALID);
    entry_free(&e);

    make_send(&s, "b!", 1, ok);
    assert_int_equal(decode_fixture(&s, &e), 0);
    assert_int_equal(e.res.status, PFO_INVALID);
    assert_string_equal(e.recipient, "b!"); /* as written, for the message */
    entry_free(&e);

    uint32_t many[2 * (PARLEY_MAX_ENVELOPES_PER_SEND + 1)];
    for (uint32_t i = 0; i < PARLEY_MAX_ENVELOPES_PER_SEND + 1; i++) {
        many[2 * i] = i + 1;
        many[2 * i + 1] = 1;
    }
    make_send(&s, "bob", PARLEY_MAX_ENVELOPES_PER_SEND + 1, many);
    assert_int_equal(decode_fixture(&s, &e), 0);
    assert_int_equal(e.res.status, PFO_INVALID);
    entry_free(&e);
}

static void test_decode_malformed(void **state)
{
    (void)state;
    pfo_entry e;
    memset(&e, 0, sizeof e);
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(pfo_entry_decode(&e, junk, sizeof junk), -1);
    entry_free(&e);

    /* decodable but without a reply address */
    send_fixture s;
    const uint32_t ok[] = {1, 201};
    make_send(&s, "bob", 1, ok);
    s.is.gateway_id = "";
    assert_int_equal(decode_fixture(&s, &e), -1);
    entry_free(&e);
}

/* ---- replies ---- */

static void test_reply_accepted_order(void **state)
{
    (void)state;
    send_fixture s;
    const uint32_t ids[] = {2, 202, 1, 201};
    make_send(&s, "bob", 2, ids);
    pfo_result r = {0};
    r.status = PFO_DUPLICATE;
    r.n_stored = 2; /* stored in the first send's order: 1 then 2 */
    r.stored_dev[0] = 1;
    r.stored_id[0] = 10;
    r.stored_dev[1] = 2;
    r.stored_id[1] = 11;
    uint8_t *buf;
    size_t len;
    assert_int_equal(pfo_frame_reply(&s.is, "bob", 0, &r, &buf, &len), 0);
    Parley__V1__ServerFrame *f = reply_frame(buf, len, 42);
    free(buf);
    assert_int_equal(f->request_id, 7);
    assert_int_equal(f->body_case, PARLEY__V1__SERVER_FRAME__BODY_SEND_RESULT);
    assert_true(f->send_result->duplicate);
    assert_int_equal(f->send_result->n_stored, 2);
    /* in the order of this Send's envelopes */
    assert_int_equal(f->send_result->stored[0]->device_id, 2);
    assert_int_equal(f->send_result->stored[0]->envelope_id, 11);
    assert_int_equal(f->send_result->stored[1]->device_id, 1);
    assert_int_equal(f->send_result->stored[1]->envelope_id, 10);
    parley__v1__server_frame__free_unpacked(f, NULL);
}

static void test_reply_mismatch(void **state)
{
    (void)state;
    send_fixture s;
    const uint32_t ids[] = {1, 201, 5, 1};
    make_send(&s, "bob", 2, ids);
    pfo_result r = {0};
    r.status = PFO_MISMATCH;
    r.n_missing = 1;
    r.missing[0] = 2;
    r.n_extra = 1;
    r.extra[0] = 5;
    r.n_stale = 2;
    r.stale[0] = 3;
    r.stale[1] = 4;
    uint8_t *buf;
    size_t len;
    assert_int_equal(pfo_frame_reply(&s.is, "bob", 0, &r, &buf, &len), 0);
    Parley__V1__ServerFrame *f = reply_frame(buf, len, 42);
    free(buf);
    assert_int_equal(f->body_case, PARLEY__V1__SERVER_FRAME__BODY_ERROR);
    assert_int_equal(f->error->code, PARLEY__V1__ERROR_CODE__DEVICE_MISMATCH);
    assert_non_null(f->error->mismatch);
    assert_int_equal(f->error->mismatch->n_missing, 1);
    assert_int_equal(f->error->mismatch->missing[0], 2);
    assert_int_equal(f->error->mismatch->n_extra, 1);
    assert_int_equal(f->error->mismatch->extra[0], 5);
    assert_int_equal(f->error->mismatch->n_stale, 2);
    assert_non_null(strstr(f->error->message, "recipient bob has devices you did not address: 2"));
    assert_non_null(strstr(f->error->message, "5"));
    assert_non_null(strstr(f->error->message, "3, 4"));
    parley__v1__server_frame__free_unpacked(f, NULL);

    char msg[PFO_MSG_MAX];
    pfo_error_message(msg, "alice", 1, &r);
    assert_non_null(strstr(msg, "your account has other devices you did not address: 2"));
}

static void test_reply_errors(void **state)
{
    (void)state;
    send_fixture s;
    const uint32_t ids[] = {1, 201};
    make_send(&s, "bob", 1, ids);
    pfo_result r = {0};
    r.status = PFO_QUEUE_FULL;
    r.n_full = 1;
    r.full[0] = 1;
    uint8_t *buf;
    size_t len;
    assert_int_equal(pfo_frame_reply(&s.is, "bob", 0, &r, &buf, &len), 0);
    Parley__V1__ServerFrame *f = reply_frame(buf, len, 42);
    free(buf);
    assert_int_equal(f->error->code, PARLEY__V1__ERROR_CODE__QUEUE_FULL);
    assert_int_equal(f->error->n_full_devices, 1);
    assert_int_equal(f->error->full_devices[0], 1);
    assert_null(f->error->mismatch);
    parley__v1__server_frame__free_unpacked(f, NULL);

    const struct {
        pfo_status st;
        Parley__V1__ErrorCode code;
        const char *text;
    } cases[] = {
        {PFO_UNKNOWN_ACCOUNT, PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT, "unknown account bob"},
        {PFO_INVALID, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT, "invalid send"},
        {PFO_UNKNOWN_SENDER, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT, "no longer exists"},
        {PFO_INTERNAL, PARLEY__V1__ERROR_CODE__INTERNAL, "could not be stored"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&r, 0, sizeof r);
        r.status = cases[i].st;
        assert_int_equal(pfo_frame_reply(&s.is, "bob", 0, &r, &buf, &len), 0);
        f = reply_frame(buf, len, 42);
        free(buf);
        assert_int_equal(f->error->code, cases[i].code);
        assert_non_null(strstr(f->error->message, cases[i].text));
        parley__v1__server_frame__free_unpacked(f, NULL);
    }
}

static void test_message_bounded(void **state)
{
    (void)state;
    pfo_result r = {0};
    r.status = PFO_MISMATCH;
    r.n_missing = r.n_extra = r.n_stale = PFO_LIST_MAX;
    for (size_t i = 0; i < PFO_LIST_MAX; i++)
        r.missing[i] = r.extra[i] = r.stale[i] = 2147483647u;
    char msg[PFO_MSG_MAX];
    const char *name = "abcdefghijklmnopqrstuvwxyz012345";
    pfo_error_message(msg, name, 0, &r);
    assert_true(strlen(msg) < PFO_MSG_MAX);
    assert_non_null(strstr(msg, "nothing was queued")); /* nothing was cut */
}

/* ---- pushes and presence ---- */

static void test_push(void **state)
{
    (void)state;
    Parley__V1__Envelope env = PARLEY__V1__ENVELOPE__INIT;
    env.id = 77;
    env.sender = "alice";
    env.sender_device = 3;
    env.timestamp_ms = 123456;
    env.content.data = (uint8_t *)"xyz";
    env.content.len = 3;
    env.urgent = 1;
    uint8_t *buf;
    size_t len;
    assert_int_equal(pfo_frame_push("bob", 2, &env, &buf, &len), 0);
    Parley__V1__InternalEvent *ev = parley__v1__internal_event__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(ev);
    assert_int_equal(ev->body_case, PARLEY__V1__INTERNAL_EVENT__BODY_PUSH);
    assert_string_equal(ev->push->account, "bob");
    assert_int_equal(ev->push->device_id, 2);
    assert_int_equal(ev->push->envelope->id, 77);
    assert_string_equal(ev->push->envelope->sender, "alice");
    assert_int_equal(ev->push->envelope->sender_device, 3);
    assert_int_equal(ev->push->envelope->timestamp_ms, 123456);
    assert_memory_equal(ev->push->envelope->content.data, "xyz", 3);
    assert_true(ev->push->envelope->urgent);
    parley__v1__internal_event__free_unpacked(ev, NULL);
}

static void test_presence(void **state)
{
    (void)state;
    char gw[PARLEY_GATEWAY_ID_MAX + 1];
    assert_int_equal(pfo_presence_gateway("gw1/17", 6, gw), 0);
    assert_string_equal(gw, "gw1");
    assert_int_equal(pfo_presence_gateway("host/a-9/17", 11, gw), 0);
    assert_string_equal(gw, "host/a-9");
    assert_int_equal(pfo_presence_gateway("gw1", 3, gw), -1);
    assert_int_equal(pfo_presence_gateway("/17", 3, gw), -1);
    assert_int_equal(pfo_presence_gateway("gw1/", 4, gw), -1);
    assert_int_equal(pfo_presence_gateway("", 0, gw), -1);
    assert_int_equal(pfo_presence_gateway(NULL, 0, gw), -1);
    char longv[PARLEY_GATEWAY_ID_MAX + 8];
    memset(longv, 'g', sizeof longv);
    longv[PARLEY_GATEWAY_ID_MAX + 1] = '/';
    longv[PARLEY_GATEWAY_ID_MAX + 2] = '1';
    assert_int_equal(pfo_presence_gateway(longv, PARLEY_GATEWAY_ID_MAX + 3, gw), -1);
    longv[PARLEY_GATEWAY_ID_MAX] = '/';
    longv[PARLEY_GATEWAY_ID_MAX + 1] = '1';
    assert_int_equal(pfo_presence_gateway(longv, PARLEY_GATEWAY_ID_MAX + 2, gw), 0);
    assert_int_equal(strlen(gw), PARLEY_GATEWAY_ID_MAX);
}

/* ---- PostgreSQL binary values ---- */

static size_t put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

/* 1-D array of n elements of elen bytes each taken from data (int4: 4, int8: 8). */
static size_t make_array(uint8_t *out, uint32_t oid, const uint8_t *const *elems,
                         const int32_t *lens, uint32_t n)
{
    size_t o = 0;
    o += put32(out + o, n ? 1 : 0);
    o += put32(out + o, 0);
    o += put32(out + o, oid);
    if (n) {
        o += put32(out + o, n);
        o += put32(out + o, 1);
    }
    for (uint32_t i = 0; i < n; i++) {
        o += put32(out + o, (uint32_t)lens[i]);
        if (lens[i] > 0) {
            memcpy(out + o, elems[i], (size_t)lens[i]);
            o += (size_t)lens[i];
        }
    }
    return o;
}

static size_t i32_array(uint8_t *out, const uint32_t *v, uint32_t n)
{
    uint8_t be[PFO_LIST_MAX + 2][4];
    const uint8_t *el[PFO_LIST_MAX + 2];
    int32_t lens[PFO_LIST_MAX + 2];
    for (uint32_t i = 0; i < n; i++) {
        put32(be[i], v[i]);
        el[i] = be[i];
        lens[i] = 4;
    }
    return make_array(out, 23, el, lens, n);
}

static size_t i64_array(uint8_t *out, const uint64_t *v, uint32_t n)
{
    uint8_t be[PFO_LIST_MAX + 2][8];
    const uint8_t *el[PFO_LIST_MAX + 2];
    int32_t lens[PFO_LIST_MAX + 2];
    for (uint32_t i = 0; i < n; i++) {
        put32(be[i], (uint32_t)(v[i] >> 32));
        put32(be[i] + 4, (uint32_t)v[i]);
        el[i] = be[i];
        lens[i] = 8;
    }
    return make_array(out, 20, el, lens, n);
}

static void test_bin_arrays(void **state)
{
    (void)state;
    uint8_t buf[512];
    uint32_t out32[PFO_LIST_MAX];
    uint64_t out64[PFO_LIST_MAX];
    const uint32_t v32[] = {1, 2, 0x7fffffff};
    size_t n = i32_array(buf, v32, 3);
    assert_int_equal(ppgbin_i32_array((char *)buf, (int)n, out32, PFO_LIST_MAX), 3);
    assert_int_equal(out32[2], 0x7fffffff);
    /* truncated, too long for max, wrong element type */
    assert_int_equal(ppgbin_i32_array((char *)buf, (int)n - 1, out32, PFO_LIST_MAX), -1);
    assert_int_equal(ppgbin_i32_array((char *)buf, (int)n, out32, 2), -1);
    assert_int_equal(ppgbin_i64_array((char *)buf, (int)n, out64, PFO_LIST_MAX), -1);
    /* empty array */
    n = i32_array(buf, v32, 0);
    assert_int_equal(n, 12);
    assert_int_equal(ppgbin_i32_array((char *)buf, (int)n, out32, PFO_LIST_MAX), 0);
    assert_int_equal(ppgbin_i32_array((char *)buf, 8, out32, PFO_LIST_MAX), -1);

    const uint64_t v64[] = {1, 0x123456789abcdefULL};
    n = i64_array(buf, v64, 2);
    assert_int_equal(ppgbin_i64_array((char *)buf, (int)n, out64, PFO_LIST_MAX), 2);
    assert_true(out64[1] == 0x123456789abcdefULL);

    /* NULL element is an error for ids */
    const uint8_t *el[1] = {NULL};
    int32_t lens[1] = {-1};
    n = make_array(buf, 23, el, lens, 1);
    assert_int_equal(ppgbin_i32_array((char *)buf, (int)n, out32, PFO_LIST_MAX), -1);

    const uint8_t *bel[2] = {(const uint8_t *)"ab", (const uint8_t *)""};
    int32_t blens[2] = {2, 0};
    n = make_array(buf, 17, bel, blens, 2);
    const char *pv[PFO_LIST_MAX];
    size_t pl[PFO_LIST_MAX];
    assert_int_equal(ppgbin_bytea_array((char *)buf, (int)n, pv, pl, PFO_LIST_MAX), 2);
    assert_int_equal(pl[0], 2);
    assert_memory_equal(pv[0], "ab", 2);
    assert_int_equal(pl[1], 0);

    /* a length pointing past the end */
    uint8_t bad[32];
    size_t o = 0;
    o += put32(bad + o, 1);
    o += put32(bad + o, 0);
    o += put32(bad + o, 17);
    o += put32(bad + o, 1);
    o += put32(bad + o, 1);
    o += put32(bad + o, 1000);
    assert_int_equal(ppgbin_bytea_array((char *)bad, (int)o, pv, pl, PFO_LIST_MAX), -1);

    int32_t i32;
    int64_t i64;
    assert_int_equal(ppgbin_i32("\0\0\0\5", 4, &i32), 0);
    assert_int_equal(i32, 5);
    assert_int_equal(ppgbin_i32("\0\0\0", 3, &i32), -1);
    assert_int_equal(ppgbin_i64("\xff\xff\xff\xff\xff\xff\xff\xfe", 8, &i64), 0);
    assert_true(i64 == -2);
}

/* ---- parameters and result of parley_accept_batch ---- */

static void test_store_params(void **state)
{
    (void)state;
    send_fixture a, b;
    pfo_entry ea, eb;
    const uint32_t ia[] = {1, 201, 2, 202};
    const uint32_t ib[] = {3, 303};
    make_send(&a, "bob", 2, ia);
    make_send(&b, "carol", 1, ib);
    b.send.client_id = UINT64_MAX; /* travels as bigint -1 */
    b.send.urgent = 1;
    assert_int_equal(decode_fixture(&a, &ea), 0);
    assert_int_equal(decode_fixture(&b, &eb), 0);
    pfo_entry *sends[] = {&ea, &eb};
    pfo_params p;
    assert_int_equal(pfo_store_params(&p, sends, 2, 500), 0);
    assert_string_equal(p.text[0], "{\"alice\",\"alice\"}");
    assert_string_equal(p.text[1], "{1,1}");
    assert_string_equal(p.text[2], "{99,-1}");
    assert_string_equal(p.text[3], "{\"bob\",\"carol\"}");
    assert_string_equal(p.text[4], "{f,t}");
    assert_string_equal(p.text[5], "{0,0,1}");
    assert_string_equal(p.text[6], "{1,2,3}");
    assert_string_equal(p.text[7], "{201,202,303}");
    assert_string_equal(p.text[8], "{2,2,2}");
    assert_int_equal(p.contents_len, 6);
    assert_memory_equal(p.contents, "c1c2c3", 6);
    assert_string_equal(p.queue_max, "500");
    pfo_store_params_free(&p);

    assert_int_equal(pfo_store_params(&p, sends, 0, 1), 0);
    assert_string_equal(p.text[0], "{}");
    assert_string_equal(p.text[5], "{}");
    assert_int_equal(p.contents_len, 0);
    pfo_store_params_free(&p);
    entry_free(&ea);
    entry_free(&eb);
}

static void test_transient(void **state)
{
    (void)state;
    assert_true(pfo_store_transient(NULL));
    assert_true(pfo_store_transient("08006")); /* connection failure */
    assert_true(pfo_store_transient("40P01")); /* deadlock */
    assert_true(pfo_store_transient("57P01")); /* admin shutdown */
    assert_true(pfo_store_transient("25006")); /* read-only transaction: failover */
    assert_true(pfo_store_transient("42883")); /* function missing: migration not applied */
    assert_false(pfo_store_transient("22023"));
    assert_false(pfo_store_transient("23505"));
    assert_false(pfo_store_transient("XX000"));
}

static PGresult *make_result(void)
{
    static const char *names[] = {
        "r_send", "r_status", "r_device_ids", "r_envelope_ids", "r_created_ms", "r_missing",
        "r_extra", "r_stale", "r_full", "r_queued_devices", "r_queued_ids", "r_queued_created",
        "r_queued_content"};
    PGresAttDesc att[13];
    memset(att, 0, sizeof att);
    for (int i = 0; i < 13; i++) {
        att[i].name = (char *)names[i];
        att[i].format = 1;
        att[i].typlen = -1;
        att[i].atttypmod = -1;
    }
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_non_null(res);
    assert_int_equal(PQsetResultAttrs(res, 13, att), 1);
    return res;
}

static void set_i32(PGresult *res, int row, int col, uint32_t v)
{
    uint8_t b[4];
    put32(b, v);
    assert_int_equal(PQsetvalue(res, row, col, (char *)b, 4), 1);
}

static void set_bytes(PGresult *res, int row, int col, const void *v, size_t n)
{
    assert_int_equal(PQsetvalue(res, row, col, (char *)v, (int)n), 1);
}

static void set_null(PGresult *res, int row, int col)
{
    assert_int_equal(PQsetvalue(res, row, col, NULL, -1), 1);
}

static void test_store_parse(void **state)
{
    (void)state;
    pfo_entry e[3];
    memset(e, 0, sizeof e);
    pfo_entry *sends[] = {&e[0], &e[1], &e[2]};
    PGresult *res = make_result();
    uint8_t buf[512];
    size_t n;

    /* rows may come in any order: row 0 answers send 1 (mismatch) */
    set_i32(res, 0, 0, 1);
    set_bytes(res, 0, 1, "mismatch", 8);
    for (int c = 2; c < 13; c++)
        set_null(res, 0, c);
    const uint32_t missing[] = {2};
    n = i32_array(buf, missing, 1);
    set_bytes(res, 0, 5, buf, n);
    n = i32_array(buf, missing, 0);
    set_bytes(res, 0, 6, buf, n);
    const uint32_t stale[] = {4, 5};
    n = i32_array(buf, stale, 2);
    set_bytes(res, 0, 7, buf, n);

    /* row 1: send 0 accepted */
    set_i32(res, 1, 0, 0);
    set_bytes(res, 1, 1, "accepted", 8);
    for (int c = 2; c < 13; c++)
        set_null(res, 1, c);
    const uint32_t devs[] = {1, 2};
    const uint64_t ids[] = {10, 11};
    n = i32_array(buf, devs, 2);
    set_bytes(res, 1, 2, buf, n);
    n = i64_array(buf, ids, 2);
    set_bytes(res, 1, 3, buf, n);
    uint8_t ts[8] = {0, 0, 0, 0, 0, 0, 0x30, 0x39};
    set_bytes(res, 1, 4, ts, 8);

    /* row 2: send 2 duplicate with one envelope still queued */
    set_i32(res, 2, 0, 2);
    set_bytes(res, 2, 1, "duplicate", 9);
    for (int c = 2; c < 13; c++)
        set_null(res, 2, c);
    n = i32_array(buf, devs, 2);
    set_bytes(res, 2, 2, buf, n);
    n = i64_array(buf, ids, 2);
    set_bytes(res, 2, 3, buf, n);
    n = i32_array(buf, devs + 1, 1);
    set_bytes(res, 2, 9, buf, n);
    n = i64_array(buf, ids + 1, 1);
    set_bytes(res, 2, 10, buf, n);
    const uint64_t created[] = {777};
    n = i64_array(buf, created, 1);
    set_bytes(res, 2, 11, buf, n);
    const uint8_t *cel[1] = {(const uint8_t *)"hello"};
    int32_t clen[1] = {5};
    n = make_array(buf, 17, cel, clen, 1);
    set_bytes(res, 2, 12, buf, n);

    assert_int_equal(pfo_store_parse(res, sends, 3), 0);
    assert_int_equal(e[0].res.status, PFO_ACCEPTED);
    assert_int_equal(e[0].res.n_stored, 2);
    assert_int_equal(e[0].res.stored_dev[1], 2);
    assert_int_equal(e[0].res.stored_id[1], 11);
    assert_int_equal(e[0].res.created_ms, 12345);
    assert_int_equal(e[1].res.status, PFO_MISMATCH);
    assert_int_equal(e[1].res.n_missing, 1);
    assert_int_equal(e[1].res.missing[0], 2);
    assert_int_equal(e[1].res.n_extra, 0);
    assert_int_equal(e[1].res.n_stale, 2);
    assert_int_equal(e[2].res.status, PFO_DUPLICATE);
    assert_int_equal(e[2].res.n_queued, 1);
    assert_int_equal(e[2].res.queued_dev[0], 2);
    assert_int_equal(e[2].res.queued_id[0], 11);
    assert_int_equal(e[2].res.queued_created[0], 777);
    assert_int_equal(e[2].res.queued_len[0], 5);
    assert_memory_equal(e[2].res.queued_content[0], "hello", 5);
    for (int i = 0; i < 3; i++)
        pfo_result_clear(&e[i].res);

    /* a row for a send index out of range: the whole result is distrusted */
    set_i32(res, 2, 0, 7);
    assert_int_equal(pfo_store_parse(res, sends, 3), -1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(e[i].res.status, PFO_INTERNAL);
        assert_int_equal(e[i].res.n_queued, 0);
    }
    /* fewer rows than sends */
    assert_int_equal(pfo_store_parse(res, sends, 2), -1);
    PQclear(res);

    /* an unknown status */
    res = make_result();
    set_i32(res, 0, 0, 0);
    set_bytes(res, 0, 1, "maybe", 5);
    for (int c = 2; c < 13; c++)
        set_null(res, 0, c);
    assert_int_equal(pfo_store_parse(res, sends, 1), -1);
    assert_int_equal(e[0].res.status, PFO_INTERNAL);
    PQclear(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_valid),
        cmocka_unit_test(test_decode_invalid),
        cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_reply_accepted_order),
        cmocka_unit_test(test_reply_mismatch),
        cmocka_unit_test(test_reply_errors),
        cmocka_unit_test(test_message_bounded),
        cmocka_unit_test(test_push),
        cmocka_unit_test(test_presence),
        cmocka_unit_test(test_bin_arrays),
        cmocka_unit_test(test_store_params),
        cmocka_unit_test(test_transient),
        cmocka_unit_test(test_store_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
