/* probe.c: parley-probe, a raw protocol tool for integration tests: bad input, hand-made
 * authentication (replays), floods and clients that stop reading.
 *
 *   parley-probe --server URL [--home DIR | --keys DIR] [--timeout S] ACTION...
 *
 * Connects (and with --home first authenticates as that device through the client library;
 * --keys only loads that home's device keys for --auth), then performs the actions in order.
 * Every frame received is printed as one line ("frame pong", "frame error code=BAD_FRAME
 * msg=...", "close 1009", ...); lines of connections opened by --new-conn start with "connN "
 * (N = 2, 3, ...). Expectations look at the current connection (the latest one) only, wait for
 * a matching frame, skipping others; an answer to the probe's own latest request that does not
 * match fails at once. Exit 0 when every expectation was met in order, 1 when one was not
 * (timeout, close, wrong answer), 2 on a usage error.
 *
 * Actions:
 *   --send-hex HEX              one binary message with these bytes
 *   --send-text STR             one text message
 *   --send-size N               one binary message of N bytes 0xAB
 *   --ping                      Ping{data "probe"} with request_id 7
 *   --send-raw-envelopes RECIPIENT DEV:REG[,DEV:REG...]
 *                               Send{random client_id} with 16 random bytes of content for each
 *   --expect-error CODE         an Error with that ErrorCode name (BAD_FRAME, ...)
 *   --expect-pong | --expect-send-ok
 *   --expect-close CODE         the server closed with that WebSocket close code
 *   --expect-challenge | --expect-auth-ok
 *
 * Authentication by hand (needs --keys):
 *   --auth                      AuthAnswer (request_id 2) signed over the current connection's
 *                               latest unused challenge; the probe keeps its exact bytes
 *   --resend-auth               those very bytes again, on the current connection
 *   --new-conn                  opens another connection to the server; it becomes current
 *   --auth-replay               shorthand: --auth --expect-auth-ok --new-conn --expect-challenge
 *                               --resend-auth --expect-error AUTH_FAILED --expect-close 1008
 * Volume and slowness:
 *   --flood RECIPIENT DEV:REG[,DEV:REG...] COUNT BYTES
 *                               COUNT Sends (random client_ids) with BYTES random bytes per
 *                               envelope, paced under the gateway's send rate and pending-send
 *                               limits; done when every one got a SendResult (an Error fails)
 *   --stall SECONDS             prints "stall SECONDS" and blocks: nothing is read from the
 *                               socket for that long (a client that stopped reading)
 *   --expect-envelopes N        N distinct envelope ids arrived on the current connection
 *   --ack-received              acks every envelope id received on the current connection
 *                               (Ack frames of up to PARLEY_MAX_ACK_IDS ids, one at a time,
 *                               each waiting for its AckOk); prints "acked N" */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "drive.h"

#define DEFAULT_TIMEOUT_S 10.0
#define PING_REQUEST_ID 7
#define FIRST_SEND_REQUEST_ID 1000 /* far from the ids the library's own requests use */
#define SEND_SIZE_MAX (64u * 1024 * 1024)
#define DUMMY_CONTENT_BYTES 16
#define CLOSE_ABNORMAL 1006        /* RFC 6455: no close frame was received */
#define AUTH_REQUEST_ID 2
#define CONNS_MAX 8                /* the first connection and those --new-conn opens */
#define FLOOD_TICK_MS 15           /* one Send per tick: ~66/s, under PARLEY_SEND_RATE_PER_S */
#define FLOOD_INFLIGHT_MAX (PARLEY_PENDING_SENDS_MAX / 2)
#define STALL_MAX_S 3600

_Static_assert(1000 / FLOOD_TICK_MS < PARLEY_SEND_RATE_PER_S, "flood pacing over the send rate");

/* The sends come first: run() treats every kind before A_EXPECT_ERROR as something to do. */
enum act_kind {
    A_SEND_HEX, A_SEND_TEXT, A_SEND_SIZE, A_PING, A_SEND_ENV,
    A_AUTH, A_RESEND_AUTH, A_NEW_CONN, A_FLOOD, A_STALL, A_ACK_RECEIVED,
    A_EXPECT_ERROR, A_EXPECT_PONG, A_EXPECT_SEND_OK, A_EXPECT_CLOSE,
    A_EXPECT_CHALLENGE, A_EXPECT_AUTH_OK, A_EXPECT_ENVELOPES,
};

typedef struct {
    enum act_kind kind;
    const char *arg;   /* hex, text, recipient */
    const char *arg2;  /* DEV:REG list */
    long num;          /* size, error code, close code, count, seconds */
    long num2;         /* flood: bytes per envelope */
} action;

enum ev_kind { E_FRAME, E_CLOSE };

typedef struct {
    enum ev_kind kind;
    int body;          /* ServerFrame body case */
    int error_code;
    uint64_t request_id;
    int close_code;
    int conn_ix;       /* which connection: 0 the first, then --new-conn's */
    uint64_t env_id;   /* envelope frames */
} event;

struct probe;

/* one connection of the probe; the first is the session's with --home */
typedef struct {
    struct probe *p;
    int ix;
    pc_conn *raw;      /* owned, NULL for the session's */
    int closed;
} pconn;

typedef struct probe {
    drive_base b;      /* b.conn: where actions go, the current conn; NULL once it closed.
                          b.wait: the linger after the last action */
    const char *home_dir;
    int keys_only;     /* --keys: the home's identity for --auth, no session */
    action *acts;
    int nacts;

    pconn conns[CONNS_MAX];
    int nconns;
    int cur;           /* index of the current conn in conns */
    uv_timer_t flood_timer;

    int busy;          /* an action that completes later (--auth, --flood, --ack-received) */
    int in_run;
    uint8_t *auth_bytes; /* the packed AuthAnswer of --auth */
    size_t auth_len;

    uint64_t flood_first_req;
    long flood_sent, flood_answered;

    uint64_t ack_first_req, ack_next_req;
    uint64_t *ack_ids;
    size_t ack_n, ack_done;

    uint64_t *env_ids; /* distinct ids seen by the current --expect-envelopes */
    size_t n_env_ids, cap_env_ids;
    int env_ids_act;   /* the action they belong to, -1 none */

    event *evs;
    int nevs, capevs;
    int cursor;        /* next event an expectation looks at */
    int next_act;
    uint64_t next_req;
    uint64_t last_req; /* request id of the probe's latest request, 0 if none */
    int started;
} probe;

static const char *act_name(const action *a)
{
    static const char *names[] = { "--send-hex", "--send-text", "--send-size", "--ping",
                                   "--send-raw-envelopes", "--auth", "--resend-auth",
                                   "--new-conn", "--flood", "--stall", "--ack-received",
                                   "--expect-error", "--expect-pong", "--expect-send-ok",
                                   "--expect-close", "--expect-challenge", "--expect-auth-ok",
                                   "--expect-envelopes" };
    return names[a->kind];
}

/* ---- printing --------------------------------------------------------------------------- */

static void print_u32s(const char *label, const uint32_t *v, size_t n)
{
    printf(" %s=", label);
    for (size_t i = 0; i < n; i++)
        printf("%s%u", i ? "," : "", (unsigned)v[i]);
}

static void print_prefix(int conn_ix)
{
    if (conn_ix > 0)
        printf("conn%d ", conn_ix + 1);
}

static void print_frame(int conn_ix, const Parley__V1__ServerFrame *f)
{
    print_prefix(conn_ix);
    switch (f->body_case) {
    case PARLEY__V1__SERVER_FRAME__BODY_CHALLENGE:
        printf("frame challenge gateway=%s difficulty=%u", f->challenge->gateway_id,
               (unsigned)f->challenge->pow_difficulty);
        break;
    case PARLEY__V1__SERVER_FRAME__BODY_AUTH_OK:
        printf("frame auth_ok account=%s device=%u queued=%" PRIu64, f->auth_ok->account,
               (unsigned)f->auth_ok->device_id, f->auth_ok->queued);
        break;
    case PARLEY__V1__SERVER_FRAME__BODY_ERROR: {
        const Parley__V1__Error *e = f->error;
        printf("frame error code=%s msg=%s", pc_error_name(e->code), e->message);
        if (e->retry_after_ms)
            printf(" retry_after_ms=%u", (unsigned)e->retry_after_ms);
        if (e->mismatch) {
            print_u32s("missing", e->mismatch->missing, e->mismatch->n_missing);
            print_u32s("extra", e->mismatch->extra, e->mismatch->n_extra);
            print_u32s("stale", e->mismatch->stale, e->mismatch->n_stale);
        }
        if (e->n_full_devices)
            print_u32s("full", e->full_devices, e->n_full_devices);
        break;
    }
    case PARLEY__V1__SERVER_FRAME__BODY_REGISTER_OK:
        printf("frame register_ok username=%s device=%u", f->register_ok->username,
               (unsigned)f->register_ok->device_id);
        break;
    case PARLEY__V1__SERVER_FRAME__BODY_SEND_RESULT:
        printf("frame send_result ids=");
        for (size_t i = 0; i < f->send_result->n_stored; i++)
            printf("%s%" PRIu64, i ? "," : "", f->send_result->stored[i]->envelope_id);
        printf(" duplicate=%d", f->send_result->duplicate ? 1 : 0);
        break;
    case PARLEY__V1__SERVER_FRAME__BODY_ENVELOPE:
        printf("frame envelope id=%" PRIu64 " sender=%s device=%u bytes=%zu", f->envelope->id,
               f->envelope->sender, (unsigned)f->envelope->sender_device,
               f->envelope->content.len);
        break;
    case PARLEY__V1__SERVER_FRAME__BODY_QUEUE_EMPTY:
        printf("frame queue_empty");
        break;
    case PARLEY__V1__SERVER_FRAME__BODY_DEVICES:
        printf("frame devices account=%s ids=", f->devices->account);
        for (size_t i = 0; i < f->devices->n_devices; i++)
            printf("%s%u", i ? "," : "", (unsigned)f->devices->devices[i]->device_id);
        break;
    case PARLEY__V1__SERVER_FRAME__BODY_PONG:
        printf("frame pong");
        break;
    case PARLEY__V1__SERVER_FRAME__BODY_ACK_OK:
        printf("frame ack_ok count=%u", (unsigned)f->ack_ok->count);
        break;
    default:
        printf("frame unknown body=%d", (int)f->body_case);
        break;
    }
    putchar('\n');
    fflush(stdout);
}

/* ---- the action engine ------------------------------------------------------------------ */

static int matches(const action *a, const event *e)
{
    switch (a->kind) {
    case A_EXPECT_ERROR:
        return e->kind == E_FRAME && e->body == PARLEY__V1__SERVER_FRAME__BODY_ERROR &&
               e->error_code == a->num;
    case A_EXPECT_PONG:
        return e->kind == E_FRAME && e->body == PARLEY__V1__SERVER_FRAME__BODY_PONG;
    case A_EXPECT_SEND_OK:
        return e->kind == E_FRAME && e->body == PARLEY__V1__SERVER_FRAME__BODY_SEND_RESULT;
    case A_EXPECT_CLOSE:
        return e->kind == E_CLOSE && e->close_code == a->num;
    case A_EXPECT_CHALLENGE:
        return e->kind == E_FRAME && e->body == PARLEY__V1__SERVER_FRAME__BODY_CHALLENGE;
    case A_EXPECT_AUTH_OK:
        return e->kind == E_FRAME && e->body == PARLEY__V1__SERVER_FRAME__BODY_AUTH_OK;
    default:
        return 0;
    }
}

static int cur_closed(const probe *p)
{
    return p->conns[p->cur].closed;
}

static void run(probe *p);

/* An action that completed later (a callback) than do_send returned. */
static void async_done(probe *p)
{
    p->busy = 0;
    p->next_act++;
    run(p);
}

static int send_frame(probe *p, Parley__V1__ClientFrame *f)
{
    pc_status st;

    if (pc_conn_post(p->b.conn, f, &st) < 0) {
        drive_fail(&p->b, "cannot send: %s", st.msg);
        return -1;
    }
    p->last_req = f->request_id;
    return 0;
}

/* One Send of random content_len bytes per DEV:REG in list (request_id rid). */
static int send_envelopes(probe *p, const char *recipient, const char *list, size_t content_len,
                          uint64_t rid)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__Send s = PARLEY__V1__SEND__INIT;
    size_t n = 1, i = 0;
    const char *q;
    Parley__V1__OutEnvelope *env, **envp;
    uint8_t *content;
    int rc;

    for (q = list; *q; q++)
        n += *q == ',';
    env = calloc(n, sizeof *env);
    envp = calloc(n, sizeof *envp);
    content = malloc(content_len ? content_len : 1);
    if (!env || !envp || !content) {
        free(env);
        free(envp);
        free(content);
        drive_fail(&p->b, "out of memory");
        return -1;
    }
    randombytes_buf(content, content_len);
    for (q = list; i < n; i++) {
        char *end;
        unsigned long dev = strtoul(q, &end, 10), reg = 0;
        if (*end == ':')
            reg = strtoul(end + 1, &end, 10);
        parley__v1__out_envelope__init(&env[i]);
        env[i].device_id = (uint32_t)dev;
        env[i].registration_id = (uint32_t)reg;
        env[i].content.data = content;
        env[i].content.len = content_len;
        envp[i] = &env[i];
        q = *end == ',' ? end + 1 : end;
    }
    while (!(s.client_id = ((uint64_t)randombytes_random() << 32) | randombytes_random()))
        ;
    s.recipient = (char *)recipient;
    s.envelopes = envp;
    s.n_envelopes = n;
    f.request_id = rid;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_SEND;
    f.send = &s;
    rc = send_frame(p, &f);
    free(env);
    free(envp);
    free(content);
    return rc;
}

/* ---- --auth: an AuthAnswer signed by hand, its bytes kept for --resend-auth ---------------- */

static void auth_on_challenge(pc_conn *c, const pc_challenge *ch, const pc_status *st, void *ud)
{
    probe *p = ud;
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__AuthAnswer a = PARLEY__V1__AUTH_ANSWER__INIT;
    uint8_t sig[64];
    pc_status err;

    (void)c;
    if (p->b.done)
        return;
    if (!ch) {
        drive_fail(&p->b, "--auth: no challenge: %s", st ? st->msg : "closed");
        return;
    }
    if (drive_auth_answer(&p->b.home.id, ch, pclock_wall_ms(), &a, sig) < 0) {
        drive_fail(&p->b, "--auth: cannot build the auth transcript");
        return;
    }
    f.request_id = AUTH_REQUEST_ID;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_AUTH;
    f.auth = &a;
    free(p->auth_bytes);
    p->auth_len = parley__v1__client_frame__get_packed_size(&f);
    p->auth_bytes = malloc(p->auth_len);
    if (!p->auth_bytes) {
        drive_fail(&p->b, "out of memory");
        return;
    }
    parley__v1__client_frame__pack(&f, p->auth_bytes);
    if (pc_conn_send_raw(p->b.conn, p->auth_bytes, p->auth_len, 1, &err) < 0) {
        drive_fail(&p->b, "--auth: %s", err.msg);
        return;
    }
    p->last_req = AUTH_REQUEST_ID;
    async_done(p);
}

/* ---- --flood ------------------------------------------------------------------------------ */

static void flood_tick(uv_timer_t *t)
{
    probe *p = t->data;
    const action *a = &p->acts[p->next_act];

    if (p->b.done || p->flood_sent >= a->num ||
        p->flood_sent - p->flood_answered >= FLOOD_INFLIGHT_MAX)
        return;
    if (!p->b.conn) {
        drive_fail(&p->b, "--flood: the connection closed after %ld of %ld sends",
                   p->flood_sent, a->num);
        return;
    }
    if (send_envelopes(p, a->arg, a->arg2, (size_t)a->num2,
                       p->flood_first_req + (uint64_t)p->flood_sent) == 0)
        p->flood_sent++;
}

/* A frame answering one of the flood's sends: count it, or fail on an error. */
static void flood_answer(probe *p, const Parley__V1__ServerFrame *f)
{
    const action *a = &p->acts[p->next_act];

    if (f->body_case != PARLEY__V1__SERVER_FRAME__BODY_SEND_RESULT) {
        drive_fail(&p->b, "--flood: send %" PRIu64 " was not accepted",
                   f->request_id - p->flood_first_req + 1);
        return;
    }
    if (++p->flood_answered < a->num)
        return;
    uv_timer_stop(&p->flood_timer);
    printf("flood done %ld\n", p->flood_answered);
    fflush(stdout);
    p->cursor = p->nevs; /* the answers were the flood's, not for later expectations */
    p->last_req = 0;
    p->next_req = p->flood_first_req + (uint64_t)p->flood_sent;
    async_done(p);
}

static int flood_owns(const probe *p, uint64_t rid)
{
    return p->busy && p->next_act < p->nacts && p->acts[p->next_act].kind == A_FLOOD &&
           rid >= p->flood_first_req && rid < p->flood_first_req + (uint64_t)p->flood_sent;
}

/* ---- --ack-received ----------------------------------------------------------------------- */

static int ack_send_next(probe *p)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__Ack ack = PARLEY__V1__ACK__INIT;
    size_t n = p->ack_n - p->ack_done;

    if (n > PARLEY_MAX_ACK_IDS)
        n = PARLEY_MAX_ACK_IDS;
    ack.envelope_ids = p->ack_ids + p->ack_done;
    ack.n_envelope_ids = n;
    f.request_id = p->ack_next_req;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_ACK;
    f.ack = &ack;
    return send_frame(p, &f);
}

static int ack_owns(const probe *p, uint64_t rid)
{
    return p->busy && p->next_act < p->nacts && p->acts[p->next_act].kind == A_ACK_RECEIVED &&
           rid == p->ack_next_req;
}

static void ack_answer(probe *p, const Parley__V1__ServerFrame *f)
{
    size_t n = p->ack_n - p->ack_done;

    if (f->body_case != PARLEY__V1__SERVER_FRAME__BODY_ACK_OK) {
        drive_fail(&p->b, "--ack-received: an Ack was refused");
        return;
    }
    p->ack_done += n > PARLEY_MAX_ACK_IDS ? PARLEY_MAX_ACK_IDS : n;
    p->ack_next_req++;
    if (p->ack_done < p->ack_n) {
        ack_send_next(p);
        return;
    }
    printf("acked %zu\n", p->ack_n);
    fflush(stdout);
    p->cursor = p->nevs;
    p->last_req = 0;
    p->next_req = p->ack_next_req;
    async_done(p);
}

static int has_id(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return 1;
    return 0;
}

/* 0 when there is nothing to ack (done at once), 1 when Acks went out, -1 on failure */
static int ack_start(probe *p)
{
    free(p->ack_ids);
    p->ack_ids = NULL;
    p->ack_n = p->ack_done = 0;
    for (int i = 0; i < p->nevs; i++) {
        const event *e = &p->evs[i];
        if (e->kind != E_FRAME || e->conn_ix != p->cur ||
            e->body != PARLEY__V1__SERVER_FRAME__BODY_ENVELOPE ||
            has_id(p->ack_ids, p->ack_n, e->env_id))
            continue;
        uint64_t *n = realloc(p->ack_ids, (p->ack_n + 1) * sizeof *n);
        if (!n) {
            drive_fail(&p->b, "out of memory");
            return -1;
        }
        p->ack_ids = n;
        p->ack_ids[p->ack_n++] = e->env_id;
    }
    if (!p->ack_n) {
        printf("acked 0\n");
        fflush(stdout);
        return 0;
    }
    p->ack_next_req = p->next_req;
    return ack_send_next(p) < 0 ? -1 : 1;
}

/* ---- connections -------------------------------------------------------------------------- */

static void on_frame_seen(probe *p, int ix, const Parley__V1__ServerFrame *f);
static void on_closed(probe *p, int ix, const pc_status *st);

static void raw_tap(pc_conn *c, const Parley__V1__ServerFrame *f, void *ud)
{
    pconn *pc = ud;

    (void)c;
    on_frame_seen(pc->p, pc->ix, f);
}

static void raw_close(pc_conn *c, const pc_status *st, void *ud)
{
    pconn *pc = ud;

    (void)c;
    on_closed(pc->p, pc->ix, st);
}

/* Opens a raw conn and makes it current. */
static int open_raw(probe *p)
{
    pc_conn_events ev = { raw_tap, NULL, raw_close };
    pc_status st;
    pconn *pc;

    if (p->nconns == CONNS_MAX) {
        drive_fail(&p->b, "--new-conn: at most %d connections", CONNS_MAX);
        return -1;
    }
    pc = &p->conns[p->nconns];
    pc->p = p;
    pc->ix = p->nconns;
    pc->raw = pc_conn_open(p->b.ctx, p->b.server, &ev, pc, &st);
    if (!pc->raw) {
        drive_fail(&p->b, "%s", st.msg);
        return -1;
    }
    p->cur = p->nconns++;
    p->b.conn = pc->raw;
    p->last_req = 0;
    return 0;
}

/* ---- sends -------------------------------------------------------------------------------- */

/* -1 failed, 0 done, 1 completes later (async_done) */
static int do_send(probe *p, const action *a)
{
    pc_status st;
    int rc = 0;

    if (a->kind == A_NEW_CONN)
        return open_raw(p);
    if (a->kind == A_STALL) {
        uint64_t end = pclock_mono_us() + (uint64_t)a->num * 1000000;
        printf("stall %ld\n", a->num);
        fflush(stdout);
        /* blocking on purpose: the loop does not run, so nothing is read from the socket */
        while (pclock_mono_us() < end) {
            struct timespec ts = { 0, 50 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        return 0;
    }
    if (!p->b.conn || cur_closed(p)) {
        drive_fail(&p->b, "%s: the connection is closed", act_name(a));
        return -1;
    }
    switch (a->kind) {
    case A_SEND_HEX: {
        size_t max = strlen(a->arg) / 2 + 1, len = 0;
        uint8_t *buf = malloc(max);
        if (!buf || sodium_hex2bin(buf, max, a->arg, strlen(a->arg), NULL, &len, NULL) != 0) {
            free(buf);
            drive_fail(&p->b, "--send-hex: not hex");
            return -1;
        }
        rc = pc_conn_send_raw(p->b.conn, buf, len, 1, &st);
        free(buf);
        break;
    }
    case A_SEND_TEXT:
        rc = pc_conn_send_raw(p->b.conn, a->arg, strlen(a->arg), 0, &st);
        break;
    case A_SEND_SIZE: {
        uint8_t *buf = malloc((size_t)a->num ? (size_t)a->num : 1);
        if (!buf) {
            drive_fail(&p->b, "out of memory");
            return -1;
        }
        memset(buf, 0xab, (size_t)a->num);
        rc = pc_conn_send_raw(p->b.conn, buf, (size_t)a->num, 1, &st);
        free(buf);
        break;
    }
    case A_PING: {
        Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
        Parley__V1__Ping ping = PARLEY__V1__PING__INIT;
        ping.data.data = (uint8_t *)"probe";
        ping.data.len = 5;
        f.request_id = PING_REQUEST_ID;
        f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PING;
        f.ping = &ping;
        return send_frame(p, &f);
    }
    case A_SEND_ENV:
        return send_envelopes(p, a->arg, a->arg2, DUMMY_CONTENT_BYTES, p->next_req++);
    case A_AUTH:
        p->busy = 1;
        /* may call back before returning: async_done then finds p->in_run set */
        pc_conn_on_challenge(p->b.conn, auth_on_challenge, p);
        return 1;
    case A_RESEND_AUTH:
        if (!p->auth_bytes) {
            drive_fail(&p->b, "--resend-auth: no --auth before it");
            return -1;
        }
        if (pc_conn_send_raw(p->b.conn, p->auth_bytes, p->auth_len, 1, &st) < 0) {
            drive_fail(&p->b, "--resend-auth: %s", st.msg);
            return -1;
        }
        p->last_req = AUTH_REQUEST_ID;
        return 0;
    case A_FLOOD:
        p->busy = 1;
        p->flood_first_req = p->next_req;
        p->flood_sent = p->flood_answered = 0;
        uv_timer_start(&p->flood_timer, flood_tick, 0, FLOOD_TICK_MS);
        return 1;
    case A_ACK_RECEIVED:
        p->busy = 1;
        rc = ack_start(p);
        if (rc <= 0)
            p->busy = 0;
        return rc;
    default:
        return 0;
    }
    if (rc < 0)
        drive_fail(&p->b, "%s: %s", act_name(a), st.msg);
    else
        p->last_req = 0; /* raw bytes: whatever request id they carry is not ours to track */
    return rc;
}

static void linger_done(uv_timer_t *t)
{
    drive_stop(t->data, 0);
}

static void all_done(probe *p)
{
    uv_timer_stop(&p->b.deadline);
    /* let the last sends leave (and their answers print) before closing */
    if (p->b.conn && !cur_closed(p)) {
        pc_conn_close(p->b.conn, 1000, "probe done");
        uv_timer_start(&p->b.wait, linger_done, 1000, 0);
    } else {
        drive_stop(&p->b, 0);
    }
}

/* --expect-envelopes: 1 once e makes the count */
static int count_envelope(probe *p, const action *a, const event *e)
{
    if (p->env_ids_act != p->next_act) {
        p->env_ids_act = p->next_act;
        p->n_env_ids = 0;
    }
    if (e->kind != E_FRAME || e->body != PARLEY__V1__SERVER_FRAME__BODY_ENVELOPE)
        return 0;
    if (!has_id(p->env_ids, p->n_env_ids, e->env_id)) {
        if (p->n_env_ids == p->cap_env_ids) {
            size_t cap = p->cap_env_ids ? p->cap_env_ids * 2 : 64;
            uint64_t *n = realloc(p->env_ids, cap * sizeof *n);
            if (!n) {
                drive_fail(&p->b, "out of memory");
                return 0;
            }
            p->env_ids = n;
            p->cap_env_ids = cap;
        }
        p->env_ids[p->n_env_ids++] = e->env_id;
    }
    return p->n_env_ids >= (size_t)a->num;
}

static void run_body(probe *p)
{
    while (p->next_act < p->nacts && !p->b.done) {
        const action *a = &p->acts[p->next_act];
        if (p->busy)
            return; /* an action completes later */
        if (a->kind < A_EXPECT_ERROR) {
            int rc = do_send(p, a);
            if (rc < 0)
                return;
            if (rc == 0)
                p->next_act++;
            continue; /* rc 1: busy until async_done, which may already have run */
        }
        if (a->kind == A_EXPECT_ENVELOPES && a->num == 0) {
            p->next_act++;
            continue;
        }
        for (;;) {
            const event *e;
            if (p->cursor == p->nevs) {
                if (cur_closed(p))
                    drive_fail(&p->b, "%s %ld: the connection closed first", act_name(a), a->num);
                return; /* wait for more */
            }
            e = &p->evs[p->cursor++];
            if (e->conn_ix != p->cur)
                continue;
            if (a->kind == A_EXPECT_ENVELOPES ? count_envelope(p, a, e) : matches(a, e))
                break;
            if (e->kind == E_FRAME && p->last_req && e->request_id == p->last_req) {
                drive_fail(&p->b, "%s: the answer to request %" PRIu64 " was something else",
                           act_name(a), p->last_req);
                return;
            }
        }
        p->next_act++;
    }
    if (!p->b.done && !p->busy)
        all_done(p);
}

static void run(probe *p)
{
    if (!p->started || p->b.done || p->in_run)
        return;
    p->in_run = 1;
    run_body(p);
    p->in_run = 0;
}

static void add_event(probe *p, const event *e)
{
    if (p->nevs == p->capevs) {
        int cap = p->capevs ? p->capevs * 2 : 32;
        event *n = realloc(p->evs, (size_t)cap * sizeof *n);
        if (!n) {
            drive_fail(&p->b, "out of memory");
            return;
        }
        p->evs = n;
        p->capevs = cap;
    }
    p->evs[p->nevs++] = *e;
    run(p);
}

static void on_frame_seen(probe *p, int ix, const Parley__V1__ServerFrame *f)
{
    event e = { E_FRAME, (int)f->body_case, 0, f->request_id, 0, ix, 0 };

    print_frame(ix, f);
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error)
        e.error_code = f->error->code;
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ENVELOPE && f->envelope)
        e.env_id = f->envelope->id;
    add_event(p, &e);
    if (ix != p->cur || !f->request_id || p->b.done)
        return;
    if (flood_owns(p, f->request_id))
        flood_answer(p, f);
    else if (ack_owns(p, f->request_id))
        ack_answer(p, f);
}

static void on_closed(probe *p, int ix, const pc_status *st)
{
    event e = { E_CLOSE, 0, 0, 0, st->close_code ? st->close_code : CLOSE_ABNORMAL, ix, 0 };

    if (p->conns[ix].closed)
        return;
    p->conns[ix].closed = 1;
    if (ix == p->cur) {
        p->b.conn = NULL;
        if (p->next_act == p->nacts) {
            drive_stop(&p->b, 0); /* our own close after the last action */
            return;
        }
    }
    print_prefix(ix);
    printf("close %d\n", e.close_code);
    fflush(stdout);
    if (!st->close_code)
        fprintf(stderr, "parley-probe: %s\n", st->msg);
    add_event(p, &e);
    if (ix == p->cur && p->busy)
        drive_fail(&p->b, "%s: the connection closed first", act_name(&p->acts[p->next_act]));
}

/* session callbacks (--home) */
static void sess_tap(pc_session *s, const Parley__V1__ServerFrame *f, void *ud)
{
    (void)s;
    on_frame_seen(ud, 0, f);
}

static void sess_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    probe *p = ud;

    (void)ok;
    p->b.conn = pc_session_conn(s);
    p->started = 1;
    /* frames before this (challenge, auth_ok) were printed but are not for the actions */
    p->cursor = p->nevs;
    run(p);
}

static void sess_down(pc_session *s, const pc_status *st, int retrying, void *ud)
{
    probe *p = ud;

    (void)s;
    (void)retrying;
    if (!p->started) {
        drive_fail(&p->b, "authentication as %s device %u failed: %s",
                   p->b.home.id.username, (unsigned)p->b.home.id.device_id, st->msg);
        return;
    }
    on_closed(p, 0, st);
}

static void deadline_cb(uv_timer_t *t)
{
    probe *p = t->data;

    if (p->next_act < p->nacts)
        drive_fail(&p->b, "timed out after %g s waiting for %s", p->b.timeout_s,
                   act_name(&p->acts[p->next_act]));
    else
        drive_fail(&p->b, "timed out after %g s", p->b.timeout_s);
}

/* ---- arguments and main ----------------------------------------------------------------- */

static int needs_values(const char *o)
{
    static const char *const one[] = { "--server", "--home", "--keys", "--timeout",
                                       "--send-hex", "--send-text", "--send-size",
                                       "--expect-error", "--expect-close", "--stall",
                                       "--expect-envelopes" };

    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        if (!strcmp(o, one[i]))
            return 1;
    if (!strcmp(o, "--send-raw-envelopes"))
        return 2;
    if (!strcmp(o, "--flood"))
        return 4;
    return 0;
}

/* strtol of a whole argument in lo..hi into *out; -1 when it is not */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;

    errno = 0;
    *out = strtol(s, &end, 10);
    return (errno || end == s || *end || *out < lo || *out > hi) ? -1 : 0;
}

static void push_act(probe *p, enum act_kind kind, long num)
{
    p->acts[p->nacts].kind = kind;
    p->acts[p->nacts].num = num;
    p->nacts++;
}

static int parse(probe *p, int argc, char **argv)
{
    /* --auth-replay is the longest expansion: 7 actions for 1 argument */
    p->acts = calloc((size_t)argc * 7, sizeof *p->acts);
    if (!p->acts)
        return drive_usage(&p->b, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        action *a = &p->acts[p->nacts];
        int need = needs_values(o);

        if (i + need >= argc)
            return drive_usage(&p->b, "%s needs %d value%s", o, need, need > 1 ? "s" : "");
        /* --home here, not in drive_common_option: the session's, opened once parsed */
        if (!strcmp(o, "--home") || !strcmp(o, "--keys")) {
            p->home_dir = argv[++i];
            p->keys_only = !strcmp(o, "--keys");
            continue;
        }
        int rc = drive_common_option(&p->b, argc, argv, &i);
        if (rc == 1)
            continue;
        if (rc)
            return rc;
        if (!strcmp(o, "--send-hex")) {
            a->kind = A_SEND_HEX;
            a->arg = argv[++i];
            p->nacts++;
        } else if (!strcmp(o, "--send-text")) {
            a->kind = A_SEND_TEXT;
            a->arg = argv[++i];
            p->nacts++;
        } else if (!strcmp(o, "--send-size")) {
            a->kind = A_SEND_SIZE;
            if (parse_long(argv[++i], 0, SEND_SIZE_MAX, &a->num) < 0)
                return drive_usage(&p->b, "--send-size wants 0..%u", SEND_SIZE_MAX);
            p->nacts++;
        } else if (!strcmp(o, "--ping")) {
            push_act(p, A_PING, 0);
        } else if (!strcmp(o, "--send-raw-envelopes")) {
            a->kind = A_SEND_ENV;
            a->arg = argv[++i];
            a->arg2 = argv[++i];
            p->nacts++;
        } else if (!strcmp(o, "--flood")) {
            a->kind = A_FLOOD;
            a->arg = argv[++i];
            a->arg2 = argv[++i];
            if (parse_long(argv[++i], 1, 1000000, &a->num) < 0)
                return drive_usage(&p->b, "--flood wants a COUNT of 1..1000000");
            if (parse_long(argv[++i], 1, PARLEY_MAX_ENVELOPE_BYTES, &a->num2) < 0)
                return drive_usage(&p->b, "--flood wants BYTES of 1..%d",
                                   PARLEY_MAX_ENVELOPE_BYTES);
            p->nacts++;
        } else if (!strcmp(o, "--stall")) {
            a->kind = A_STALL;
            if (parse_long(argv[++i], 0, STALL_MAX_S, &a->num) < 0)
                return drive_usage(&p->b, "--stall wants 0..%d seconds", STALL_MAX_S);
            p->nacts++;
        } else if (!strcmp(o, "--expect-envelopes")) {
            a->kind = A_EXPECT_ENVELOPES;
            if (parse_long(argv[++i], 0, 100000000, &a->num) < 0)
                return drive_usage(&p->b, "--expect-envelopes wants a count");
            p->nacts++;
        } else if (!strcmp(o, "--ack-received")) {
            push_act(p, A_ACK_RECEIVED, 0);
        } else if (!strcmp(o, "--auth")) {
            push_act(p, A_AUTH, 0);
        } else if (!strcmp(o, "--resend-auth")) {
            push_act(p, A_RESEND_AUTH, 0);
        } else if (!strcmp(o, "--new-conn")) {
            push_act(p, A_NEW_CONN, 0);
        } else if (!strcmp(o, "--auth-replay")) {
            push_act(p, A_AUTH, 0);
            push_act(p, A_EXPECT_AUTH_OK, 0);
            push_act(p, A_NEW_CONN, 0);
            push_act(p, A_EXPECT_CHALLENGE, 0);
            push_act(p, A_RESEND_AUTH, 0);
            push_act(p, A_EXPECT_ERROR, PARLEY__V1__ERROR_CODE__AUTH_FAILED);
            push_act(p, A_EXPECT_CLOSE, 1008);
        } else if (!strcmp(o, "--expect-error")) {
            a->kind = A_EXPECT_ERROR;
            a->num = pc_error_from_name(argv[++i]);
            if (a->num < 0)
                return drive_usage(&p->b, "unknown error code %s", argv[i]);
            p->nacts++;
        } else if (!strcmp(o, "--expect-pong")) {
            push_act(p, A_EXPECT_PONG, 0);
        } else if (!strcmp(o, "--expect-send-ok")) {
            push_act(p, A_EXPECT_SEND_OK, 0);
        } else if (!strcmp(o, "--expect-challenge")) {
            push_act(p, A_EXPECT_CHALLENGE, 0);
        } else if (!strcmp(o, "--expect-auth-ok")) {
            push_act(p, A_EXPECT_AUTH_OK, 0);
        } else if (!strcmp(o, "--expect-close")) {
            a->kind = A_EXPECT_CLOSE;
            if (parse_long(argv[++i], 1000, 4999, &a->num) < 0)
                return drive_usage(&p->b, "--expect-close wants a close code");
            p->nacts++;
        } else {
            return drive_usage(&p->b, "unknown argument %s", o);
        }
    }
    if (!p->b.server)
        return drive_usage(&p->b, "--server is required");
    for (int k = 0; k < p->nacts; k++)
        if (p->acts[k].kind == A_AUTH && !(p->home_dir && p->keys_only))
            return drive_usage(&p->b, "--auth and --auth-replay need --keys");
    return 0;
}

static int start(probe *p)
{
    static const pc_session_events ev = { sess_up, NULL, sess_down, sess_tap, NULL };
    pc_status st;

    if (drive_start_ctx(&p->b) < 0)
        return -1;
    if (p->home_dir) {
        int rc = pc_home_open(&p->b.home, p->home_dir, 0, &st);
        p->b.home_open = 1; /* also when it failed: pc_home_free frees what it kept */
        if (rc < 0) {
            drive_fail(&p->b, "%s", st.msg);
            return -1;
        }
        if (drive_load_home(&p->b) < 0)
            return -1;
    }
    if (p->home_dir && !p->keys_only) {
        p->conns[0].p = p;
        p->nconns = 1;
        if (!drive_start_session(&p->b, &ev, p))
            return -1;
    } else {
        if (open_raw(p) < 0)
            return -1;
        p->started = 1;
    }
    drive_arm(&p->b, deadline_cb);
    run(p);
    return 0;
}

int main(int argc, char **argv)
{
    probe p;
    int rc;

    memset(&p, 0, sizeof p);
    p.env_ids_act = -1;
    if (drive_init(&p.b, "parley-probe",
                   "parley-probe --server URL [--home DIR | --keys DIR] [--timeout S] ACTION...",
                   DEFAULT_TIMEOUT_S) < 0)
        return 1;
    uv_timer_init(&p.b.loop, &p.flood_timer);
    p.flood_timer.data = &p;
    p.next_req = FIRST_SEND_REQUEST_ID;
    rc = parse(&p, argc, argv);
    if (rc == 0) {
        start(&p);
        uv_run(&p.b.loop, UV_RUN_DEFAULT);
    }

    p.b.done = 1;
    for (int i = 0; i < p.nconns; i++)
        pc_conn_free(p.conns[i].raw);
    uv_close((uv_handle_t *)&p.flood_timer, NULL);
    drive_finish(&p.b);
    free(p.auth_bytes);
    free(p.ack_ids);
    free(p.env_ids);
    free(p.evs);
    free(p.acts);
    return rc ? rc : p.b.rc;
}
