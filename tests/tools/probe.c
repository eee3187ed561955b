/* probe.c: parley-probe, a raw protocol tool for integration tests of bad input.
 *
 *   parley-probe --server URL [--home DIR] [--timeout S] ACTION...
 *
 * Connects (and with --home first authenticates as that device through the client library),
 * then performs the actions in order. Every frame received is printed as one line
 * ("frame pong", "frame error code=BAD_FRAME msg=...", "close 1009", ...). Expectations wait
 * for a matching frame, skipping others; an answer to the probe's own latest request that does
 * not match fails at once. Exit 0 when every expectation was met in order, 1 when one was not
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
 *   --expect-close CODE         the server closed with that WebSocket close code */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley_client.h"

#define DEFAULT_TIMEOUT_S 10.0
#define PING_REQUEST_ID 7
#define FIRST_SEND_REQUEST_ID 1000 /* far from the ids the library's own requests use */
#define SEND_SIZE_MAX (64u * 1024 * 1024)
#define DUMMY_CONTENT_BYTES 16
#define CLOSE_ABNORMAL 1006        /* RFC 6455: no close frame was received */

enum act_kind {
    A_SEND_HEX, A_SEND_TEXT, A_SEND_SIZE, A_PING, A_SEND_ENV,
    A_EXPECT_ERROR, A_EXPECT_PONG, A_EXPECT_SEND_OK, A_EXPECT_CLOSE,
};

typedef struct {
    enum act_kind kind;
    const char *arg;   /* hex, text, recipient */
    const char *arg2;  /* DEV:REG list */
    long num;          /* size, error code, close code */
} action;

enum ev_kind { E_FRAME, E_CLOSE };

typedef struct {
    enum ev_kind kind;
    int body;          /* ServerFrame body case */
    int error_code;
    uint64_t request_id;
    int close_code;
} event;

typedef struct {
    const char *server;
    const char *home_dir;
    double timeout_s;
    action *acts;
    int nacts;

    uv_loop_t loop;
    pc_ctx *ctx;
    pc_home home;
    int home_open;
    pc_session *sess;
    pc_conn *conn;     /* where actions go: the raw conn, or the session's; NULL once closed */
    pc_conn *raw;      /* owned: the conn without --home */
    int closed;
    uv_timer_t deadline;
    uv_timer_t linger;

    event *evs;
    int nevs, capevs;
    int cursor;        /* next event an expectation looks at */
    int next_act;
    uint64_t next_req;
    uint64_t last_req; /* request id of the probe's latest request, 0 if none */
    int started;
    int done;
    int rc;
} probe;

static void stop(probe *p, int rc)
{
    if (p->done)
        return;
    p->done = 1;
    p->rc = rc;
    uv_timer_stop(&p->deadline);
    uv_stop(&p->loop);
}

static void fail(probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(probe *p, const char *fmt, ...)
{
    va_list ap;

    if (p->done)
        return;
    fputs("parley-probe: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    stop(p, 1);
}

static const char *act_name(const action *a)
{
    static const char *names[] = { "--send-hex", "--send-text", "--send-size", "--ping",
                                   "--send-raw-envelopes", "--expect-error", "--expect-pong",
                                   "--expect-send-ok", "--expect-close" };
    return names[a->kind];
}

/* ---- printing --------------------------------------------------------------------------- */

static void print_u32s(const char *label, const uint32_t *v, size_t n)
{
    printf(" %s=", label);
    for (size_t i = 0; i < n; i++)
        printf("%s%u", i ? "," : "", (unsigned)v[i]);
}

static void print_frame(const Parley__V1__ServerFrame *f)
{
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
    default:
        return 0;
    }
}

static int send_frame(probe *p, Parley__V1__ClientFrame *f)
{
    pc_status st;

    if (pc_conn_post(p->conn, f, &st) < 0) {
        fail(p, "cannot send: %s", st.msg);
        return -1;
    }
    p->last_req = f->request_id;
    return 0;
}

static int do_send_envelopes(probe *p, const action *a)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__Send s = PARLEY__V1__SEND__INIT;
    size_t n = 1, i = 0;
    const char *q;
    Parley__V1__OutEnvelope *env, **envp;
    uint8_t content[DUMMY_CONTENT_BYTES];
    int rc;

    for (q = a->arg2; *q; q++)
        n += *q == ',';
    env = calloc(n, sizeof *env);
    envp = calloc(n, sizeof *envp);
    if (!env || !envp) {
        free(env);
        free(envp);
        fail(p, "out of memory");
        return -1;
    }
    randombytes_buf(content, sizeof content);
    for (q = a->arg2; i < n; i++) {
        char *end;
        unsigned long dev = strtoul(q, &end, 10), reg = 0;
        if (*end == ':')
            reg = strtoul(end + 1, &end, 10);
        parley__v1__out_envelope__init(&env[i]);
        env[i].device_id = (uint32_t)dev;
        env[i].registration_id = (uint32_t)reg;
        env[i].content.data = content;
        env[i].content.len = sizeof content;
        envp[i] = &env[i];
        q = *end == ',' ? end + 1 : end;
    }
    while (!(s.client_id = ((uint64_t)randombytes_random() << 32) | randombytes_random()))
        ;
    s.recipient = (char *)a->arg;
    s.envelopes = envp;
    s.n_envelopes = n;
    f.request_id = p->next_req++;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_SEND;
    f.send = &s;
    rc = send_frame(p, &f);
    free(env);
    free(envp);
    return rc;
}

static int do_send(probe *p, const action *a)
{
    pc_status st;
    int rc = 0;

    if (p->closed) {
        fail(p, "%s: the connection is closed", act_name(a));
        return -1;
    }
    switch (a->kind) {
    case A_SEND_HEX: {
        size_t max = strlen(a->arg) / 2 + 1, len = 0;
        uint8_t *buf = malloc(max);
        if (!buf || sodium_hex2bin(buf, max, a->arg, strlen(a->arg), NULL, &len, NULL) != 0) {
            free(buf);
            fail(p, "--send-hex: not hex");
            return -1;
        }
        rc = pc_conn_send_raw(p->conn, buf, len, 1, &st);
        free(buf);
        break;
    }
    case A_SEND_TEXT:
        rc = pc_conn_send_raw(p->conn, a->arg, strlen(a->arg), 0, &st);
        break;
    case A_SEND_SIZE: {
        uint8_t *buf = malloc((size_t)a->num ? (size_t)a->num : 1);
        if (!buf) {
            fail(p, "out of memory");
            return -1;
        }
        memset(buf, 0xab, (size_t)a->num);
        rc = pc_conn_send_raw(p->conn, buf, (size_t)a->num, 1, &st);
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
        return do_send_envelopes(p, a);
    default:
        return 0;
    }
    if (rc < 0)
        fail(p, "%s: %s", act_name(a), st.msg);
    else
        p->last_req = 0; /* raw bytes: whatever request id they carry is not ours to track */
    return rc;
}

static void linger_done(uv_timer_t *t)
{
    stop(t->data, 0);
}

static void all_done(probe *p)
{
    uv_timer_stop(&p->deadline);
    /* let the last sends leave (and their answers print) before closing */
    if (p->conn && !p->closed) {
        pc_conn_close(p->conn, 1000, "probe done");
        uv_timer_start(&p->linger, linger_done, 1000, 0);
    } else {
        stop(p, 0);
    }
}

static void run(probe *p)
{
    if (!p->started || p->done)
        return;
    while (p->next_act < p->nacts) {
        const action *a = &p->acts[p->next_act];
        if (a->kind < A_EXPECT_ERROR) {
            if (do_send(p, a) < 0)
                return;
            p->next_act++;
            continue;
        }
        for (;;) {
            const event *e;
            if (p->cursor == p->nevs) {
                if (p->closed)
                    fail(p, "%s %ld: the connection closed first", act_name(a), a->num);
                return; /* wait for more */
            }
            e = &p->evs[p->cursor++];
            if (matches(a, e))
                break;
            if (e->kind == E_FRAME && p->last_req && e->request_id == p->last_req) {
                fail(p, "%s: the answer to request %" PRIu64 " was something else",
                     act_name(a), p->last_req);
                return;
            }
        }
        p->next_act++;
    }
    all_done(p);
}

static void add_event(probe *p, const event *e)
{
    if (p->nevs == p->capevs) {
        int cap = p->capevs ? p->capevs * 2 : 32;
        event *n = realloc(p->evs, (size_t)cap * sizeof *n);
        if (!n) {
            fail(p, "out of memory");
            return;
        }
        p->evs = n;
        p->capevs = cap;
    }
    p->evs[p->nevs++] = *e;
    run(p);
}

static void on_frame_seen(probe *p, const Parley__V1__ServerFrame *f)
{
    event e = { E_FRAME, (int)f->body_case, 0, f->request_id, 0 };

    print_frame(f);
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error)
        e.error_code = f->error->code;
    add_event(p, &e);
}

static void on_closed(probe *p, const pc_status *st)
{
    event e = { E_CLOSE, 0, 0, 0, st->close_code ? st->close_code : CLOSE_ABNORMAL };

    if (p->closed)
        return;
    p->closed = 1;
    p->conn = NULL;
    if (p->next_act == p->nacts) {
        stop(p, 0); /* our own close after the last action */
        return;
    }
    printf("close %d\n", e.close_code);
    fflush(stdout);
    if (!st->close_code)
        fprintf(stderr, "parley-probe: %s\n", st->msg);
    add_event(p, &e);
}

/* raw connection callbacks */
static void raw_tap(pc_conn *c, const Parley__V1__ServerFrame *f, void *ud)
{
    (void)c;
    on_frame_seen(ud, f);
}

static void raw_close(pc_conn *c, const pc_status *st, void *ud)
{
    (void)c;
    on_closed(ud, st);
}

/* session callbacks (--home) */
static void sess_tap(pc_session *s, const Parley__V1__ServerFrame *f, void *ud)
{
    (void)s;
    on_frame_seen(ud, f);
}

static void sess_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    probe *p = ud;

    (void)ok;
    p->conn = pc_session_conn(s);
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
        fail(p, "authentication as %s device %u failed: %s", p->home.id.username,
             (unsigned)p->home.id.device_id, st->msg);
        return;
    }
    on_closed(p, st);
}

static void deadline_cb(uv_timer_t *t)
{
    probe *p = t->data;

    if (p->next_act < p->nacts)
        fail(p, "timed out after %g s waiting for %s", p->timeout_s,
             act_name(&p->acts[p->next_act]));
    else
        fail(p, "timed out after %g s", p->timeout_s);
}

/* ---- arguments and main ----------------------------------------------------------------- */

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
    va_list ap;

    fputs("parley-probe: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nusage: parley-probe --server URL [--home DIR] [--timeout S] ACTION...\n", stderr);
    return 2;
}

static int parse(probe *p, int argc, char **argv)
{
    p->acts = calloc((size_t)argc, sizeof *p->acts);
    p->timeout_s = DEFAULT_TIMEOUT_S;
    if (!p->acts)
        return usage("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        action *a = &p->acts[p->nacts];
        int need = 0;
        char *end;

        if (!strcmp(o, "--server") || !strcmp(o, "--home") || !strcmp(o, "--timeout") ||
            !strcmp(o, "--send-hex") || !strcmp(o, "--send-text") ||
            !strcmp(o, "--send-size") || !strcmp(o, "--expect-error") ||
            !strcmp(o, "--expect-close"))
            need = 1;
        else if (!strcmp(o, "--send-raw-envelopes"))
            need = 2;
        if (i + need >= argc)
            return usage("%s needs %d value%s", o, need, need > 1 ? "s" : "");
        if (!strcmp(o, "--server")) {
            p->server = argv[++i];
        } else if (!strcmp(o, "--home")) {
            p->home_dir = argv[++i];
        } else if (!strcmp(o, "--timeout")) {
            p->timeout_s = strtod(argv[++i], &end);
            if (*end || !(p->timeout_s > 0))
                return usage("--timeout wants seconds");
        } else if (!strcmp(o, "--send-hex")) {
            a->kind = A_SEND_HEX;
            a->arg = argv[++i];
            p->nacts++;
        } else if (!strcmp(o, "--send-text")) {
            a->kind = A_SEND_TEXT;
            a->arg = argv[++i];
            p->nacts++;
        } else if (!strcmp(o, "--send-size")) {
            a->kind = A_SEND_SIZE;
            a->num = strtol(argv[++i], &end, 10);
            if (*end || a->num < 0 || (unsigned long)a->num > SEND_SIZE_MAX)
                return usage("--send-size wants 0..%u", SEND_SIZE_MAX);
            p->nacts++;
        } else if (!strcmp(o, "--ping")) {
            a->kind = A_PING;
            p->nacts++;
        } else if (!strcmp(o, "--send-raw-envelopes")) {
            a->kind = A_SEND_ENV;
            a->arg = argv[++i];
            a->arg2 = argv[++i];
            p->nacts++;
        } else if (!strcmp(o, "--expect-error")) {
            a->kind = A_EXPECT_ERROR;
            a->num = pc_error_from_name(argv[++i]);
            if (a->num < 0)
                return usage("unknown error code %s", argv[i]);
            p->nacts++;
        } else if (!strcmp(o, "--expect-pong")) {
            a->kind = A_EXPECT_PONG;
            p->nacts++;
        } else if (!strcmp(o, "--expect-send-ok")) {
            a->kind = A_EXPECT_SEND_OK;
            p->nacts++;
        } else if (!strcmp(o, "--expect-close")) {
            a->kind = A_EXPECT_CLOSE;
            a->num = strtol(argv[++i], &end, 10);
            if (*end || a->num < 1000 || a->num > 4999)
                return usage("--expect-close wants a close code");
            p->nacts++;
        } else {
            return usage("unknown argument %s", o);
        }
    }
    if (!p->server)
        return usage("--server is required");
    return 0;
}

static int start(probe *p)
{
    pc_status st;

    p->ctx = pc_ctx_new(&p->loop, getenv("PARLEY_PROBE_VERBOSE") != NULL, &st);
    if (!p->ctx) {
        fail(p, "%s", st.msg);
        return -1;
    }
    if (p->home_dir) {
        pc_session_events ev = { sess_up, NULL, sess_down, sess_tap };
        if (pc_home_open(&p->home, p->home_dir, 0, &st) < 0 || (p->home_open = 1, 0) ||
            pc_home_load(&p->home, &st) < 0) {
            p->home_open = 1;
            fail(p, "%s", st.msg);
            return -1;
        }
        p->sess = pc_session_new(p->ctx, p->server, &p->home.id, &ev, p, &st);
        if (!p->sess) {
            fail(p, "%s", st.msg);
            return -1;
        }
        pc_session_start(p->sess);
    } else {
        pc_conn_events ev = { raw_tap, NULL, raw_close };
        p->raw = p->conn = pc_conn_open(p->ctx, p->server, &ev, p, &st);
        if (!p->conn) {
            fail(p, "%s", st.msg);
            return -1;
        }
        p->started = 1;
    }
    uv_timer_start(&p->deadline, deadline_cb, (uint64_t)llround(p->timeout_s * 1000), 0);
    run(p);
    return 0;
}

int main(int argc, char **argv)
{
    probe p;
    int rc;

    memset(&p, 0, sizeof p);
    rc = parse(&p, argc, argv);
    if (rc) {
        free(p.acts);
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0 || uv_loop_init(&p.loop) != 0) {
        fputs("parley-probe: initialisation failed\n", stderr);
        free(p.acts);
        return 1;
    }
    uv_timer_init(&p.loop, &p.deadline);
    uv_timer_init(&p.loop, &p.linger);
    p.deadline.data = p.linger.data = &p;
    p.next_req = FIRST_SEND_REQUEST_ID;
    start(&p);
    uv_run(&p.loop, UV_RUN_DEFAULT);

    pc_session_free(p.sess);
    pc_conn_free(p.raw);
    if (p.ctx)
        pc_ctx_free(p.ctx);
    uv_close((uv_handle_t *)&p.deadline, NULL);
    uv_close((uv_handle_t *)&p.linger, NULL);
    uv_run(&p.loop, UV_RUN_DEFAULT);
    uv_loop_close(&p.loop);
    if (p.home_open)
        pc_home_free(&p.home);
    free(p.evs);
    free(p.acts);
    return p.rc;
}
