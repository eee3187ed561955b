#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "devlist.h"
#include "prekeys.h"
#include "url.h"
#include "wire.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 2000

/* ---- register ------------------------------------------------------------------------- */

typedef struct {
    const pc_keys *keys;
    char name[PARLEY_NAME_MAX + 1];
    pc_register_cb cb;
    void *ud;
} reg_op;

static void reg_finish(reg_op *op, pc_conn *c, const pc_status *st, const char *username,
                       uint32_t device_id)
{
    pc_register_cb cb = op->cb;
    void *ud = op->ud;

    free(op);
    cb(c, st, username, device_id, ud);
}

static void reg_on_response(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                            void *ud)
{
    reg_op *op = ud;
    pc_status r;

    if (!f) {
        reg_finish(op, c, st, NULL, 0);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_REGISTER_OK && f->register_ok) {
        pc_status_ok(&r);
        reg_finish(op, c, &r, f->register_ok->username, f->register_ok->device_id);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error)
        pc_status_from_error(&r, f->error);
    else
        pc_status_set(&r, PC_ERR_PROTO, "unexpected answer to Register (frame %d)",
                      (int)f->body_case);
    reg_finish(op, c, &r, NULL, 0);
}

static void reg_on_challenge(pc_conn *c, const pc_challenge *ch, const pc_status *st, void *ud)
{
    reg_op *op = ud;
    const pc_keys *k = op->keys;
    uint8_t tr[PAUTH_TRANSCRIPT_MAX], asig[64], dsig[64];
    size_t trlen;
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__Register reg = PARLEY__V1__REGISTER__INIT;
    pc_status err;

    if (!ch) {
        reg_finish(op, c, st, NULL, 0);
        return;
    }
    if (ch->pow_difficulty > PARLEY_POW_DIFFICULTY_MAX) {
        pc_status_set(&err, PC_ERR_PROTO, "server asks for proof of work of %u bits (max %d)",
                      ch->pow_difficulty, PARLEY_POW_DIFFICULTY_MAX);
        reg_finish(op, c, &err, NULL, 0);
        return;
    }
    trlen = pauth_register_transcript(tr, ch->nonce, op->name, k->account_pk, k->signing_pk,
                                      k->identity_pk, k->registration_id);
    if (!trlen) {
        pc_status_set(&err, PC_ERR_LOCAL, "cannot build the register transcript");
        reg_finish(op, c, &err, NULL, 0);
        return;
    }
    pc_keys_sign_account(k, asig, tr, trlen);
    pc_keys_sign_device(k, dsig, tr, trlen);
    /* the account's first signed device list: this device alone, as device 1 */
    pdl_list l;
    uint8_t *body, lsig[PDL_SIG_BYTES];
    size_t body_len;
    memset(&l, 0, sizeof l);
    memcpy(l.account, op->name, sizeof l.account);
    l.version = 1;
    l.n = 1;
    l.dev[0].device_id = 1;
    l.dev[0].registration_id = k->registration_id;
    memcpy(l.dev[0].signing_pk, k->signing_pk, 32);
    memcpy(l.dev[0].identity_pk, k->identity_pk, 32);
    l.max_device_id = 1;
    l.timestamp_ms = pclock_wall_ms();
    if (!k->has_account_sk || pdl_encode(&l, &body, &body_len) < 0) {
        pc_status_set(&err, PC_ERR_LOCAL, "cannot build the first device list");
        reg_finish(op, c, &err, NULL, 0);
        return;
    }
    pdl_sign(lsig, body, body_len, k->account_sk);
    Parley__V1__SignedDeviceList sdl = PARLEY__V1__SIGNED_DEVICE_LIST__INIT;
    sdl.body.data = body;
    sdl.body.len = body_len;
    sdl.signature.data = lsig;
    sdl.signature.len = PDL_SIG_BYTES;
    reg.device_list = &sdl;
    reg.username = op->name;
    reg.account_key.data = (uint8_t *)k->account_pk;
    reg.account_key.len = 32;
    reg.device_signing_key.data = (uint8_t *)k->signing_pk;
    reg.device_signing_key.len = 32;
    reg.device_identity_key.data = (uint8_t *)k->identity_pk;
    reg.device_identity_key.len = 32;
    reg.registration_id = k->registration_id;
    reg.pow_nonce = pauth_pow_solve(ch->nonce, op->name, ch->pow_difficulty);
    reg.account_signature.data = asig;
    reg.account_signature.len = 64;
    reg.device_signature.data = dsig;
    reg.device_signature.len = 64;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_REGISTER;
    f.register_ = &reg;
    int rc = pc_conn_request(c, &f, reg_on_response, op, &err);
    free(body);
    if (rc < 0)
        reg_finish(op, c, &err, NULL, 0);
}

int pc_register_start(pc_conn *c, const pc_keys *k, const char *name, pc_register_cb cb,
                      void *ud, pc_status *st)
{
    reg_op *op = calloc(1, sizeof *op);

    if (!op)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    if (pauth_name_normalize(name, op->name) < 0) {
        free(op);
        return pc_status_set(st, PC_ERR_LOCAL, "invalid name %s", name);
    }
    op->keys = k;
    op->cb = cb;
    op->ud = ud;
    pc_conn_on_challenge(c, reg_on_challenge, op);
    return 0;
}

/* ---- authenticate --------------------------------------------------------------------- */

typedef struct {
    const pc_identity *id;
    pc_auth_cb cb;
    void *ud;
    int64_t skew_ms; /* server clock minus ours, for the error message */
} auth_op;

static void auth_finish(auth_op *op, pc_conn *c, const pc_status *st,
                        const Parley__V1__AuthOk *ok)
{
    pc_auth_cb cb = op->cb;
    void *ud = op->ud;

    free(op);
    cb(c, st, ok, ud);
}

static void auth_on_response(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                             void *ud)
{
    auth_op *op = ud;
    pc_status r;

    if (!f) {
        auth_finish(op, c, st, NULL);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_AUTH_OK && f->auth_ok) {
        pc_status_ok(&r);
        auth_finish(op, c, &r, f->auth_ok);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error) {
        pc_status_from_error(&r, f->error);
        if (f->error->code == PARLEY__V1__ERROR_CODE__AUTH_FAILED &&
            llabs(op->skew_ms) > PARLEY_AUTH_SKEW_MS) {
            size_t n = strlen(r.msg);
            snprintf(r.msg + n, sizeof r.msg - n, " (this clock is %lld s off the server's)",
                     (long long)(op->skew_ms / 1000));
        }
    } else {
        pc_status_set(&r, PC_ERR_PROTO, "unexpected answer to AuthAnswer (frame %d)",
                      (int)f->body_case);
    }
    auth_finish(op, c, &r, NULL);
}

static void auth_on_challenge(pc_conn *c, const pc_challenge *ch, const pc_status *st, void *ud)
{
    auth_op *op = ud;
    const pc_identity *id = op->id;
    uint8_t tr[PAUTH_TRANSCRIPT_MAX], sig[64];
    size_t trlen;
    uint64_t now = pclock_wall_ms();
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__AuthAnswer a = PARLEY__V1__AUTH_ANSWER__INIT;
    pc_status err;

    if (!ch) {
        auth_finish(op, c, st, NULL);
        return;
    }
    op->skew_ms = (int64_t)ch->server_time_ms - (int64_t)now;
    /* a wrong local clock must not lock the device out: the challenge (fresh, single use)
     * says what time the gateway thinks it is */
    if (ch->server_time_ms && llabs(op->skew_ms) > PARLEY_AUTH_SKEW_MS / 2)
        now = ch->server_time_ms;
    trlen = pauth_auth_transcript(tr, ch->nonce, ch->gateway_id, id->username, id->device_id,
                                  now);
    if (!trlen) {
        pc_status_set(&err, PC_ERR_LOCAL, "cannot build the auth transcript");
        auth_finish(op, c, &err, NULL);
        return;
    }
    if (id->device_id == 0) /* an account session (session.h) */
        pc_keys_sign_account(&id->keys, sig, tr, trlen);
    else
        pc_keys_sign_device(&id->keys, sig, tr, trlen);
    a.account = (char *)id->username;
    a.device_id = id->device_id;
    a.timestamp_ms = now;
    a.signature.data = sig;
    a.signature.len = 64;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_AUTH;
    f.auth = &a;
    if (pc_conn_request(c, &f, auth_on_response, op, &err) < 0)
        auth_finish(op, c, &err, NULL);
}

int pc_auth_start(pc_conn *c, const pc_identity *id, pc_auth_cb cb, void *ud, pc_status *st)
{
    if (id->device_id == 0 && !id->keys.has_account_sk)
        return pc_status_set(st, PC_ERR_LOCAL, "an account session needs the account key");
    auth_op *op = calloc(1, sizeof *op);

    if (!op)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    op->id = id;
    op->cb = cb;
    op->ud = ud;
    pc_conn_on_challenge(c, auth_on_challenge, op);
    return 0;
}

int pc_get_devices(pc_conn *c, const char *account, uint64_t known_version, pc_response_cb cb,
                   void *ud, pc_status *st)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__GetDevices g = PARLEY__V1__GET_DEVICES__INIT;

    g.account = (char *)account;
    g.known_version = known_version;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_GET_DEVICES;
    f.get_devices = &g;
    return pc_conn_request(c, &f, cb, ud, st);
}

/* ---- session -------------------------------------------------------------------------- */

struct pc_session {
    pc_ctx *ctx;
    const char *url;
    const char *local_addr; /* borrowed; NULL: any */
    const pc_identity *id;
    pc_session_events ev;
    void *ud;
    pc_conn *conn;
    int up;
    int retry;
    int closing;   /* pc_session_close: no more reconnects */
    uv_timer_t timer;
    unsigned backoff_ms;
};

static void sess_connect(pc_session *s);

static void sess_on_tap(pc_conn *c, const Parley__V1__ServerFrame *f, void *ud)
{
    pc_session *s = ud;

    (void)c;
    if (s->ev.on_tap)
        s->ev.on_tap(s, f, s->ud);
}

static void sess_on_frame(pc_conn *c, const Parley__V1__ServerFrame *f, void *ud)
{
    pc_session *s = ud;
    uint32_t low;

    (void)c;
    if (s->ev.on_prekeys_low && pc_prekeys_low_push(f, &low)) {
        s->ev.on_prekeys_low(s, low, s->ud);
        return;
    }
    if (s->ev.on_push)
        s->ev.on_push(s, f, s->ud);
}

static void sess_timer_cb(uv_timer_t *t)
{
    sess_connect(t->data);
}

/* Conn c is finished (closed, failed, or refused us): drop it and maybe try again. */
static void sess_down(pc_session *s, pc_conn *c, const pc_status *st, int fatal)
{
    int retrying;

    if (c == s->conn)
        s->conn = NULL;
    pc_conn_free(c);
    s->up = 0;
    retrying = s->retry && !s->closing && !fatal;
    if (retrying) {
        uv_timer_start(&s->timer, sess_timer_cb, s->backoff_ms, 0);
        s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
    }
    /* last: the handler may free s */
    if (s->ev.on_down)
        s->ev.on_down(s, st, retrying, s->ud);
}

static void sess_on_close(pc_conn *c, const pc_status *st, void *ud)
{
    /* the server closes with 1008 on policy (auth) failures and 4001 when a newer connection of
     * this device replaced us: reconnecting would only repeat or fight it */
    int fatal = st->close_code == PWIRE_CLOSE_POLICY || st->close_code == PWIRE_CLOSE_REPLACED;

    sess_down(ud, c, st, fatal);
}

static void sess_on_auth(pc_conn *c, const pc_status *st, const Parley__V1__AuthOk *ok,
                         void *ud)
{
    pc_session *s = ud;

    if (!ok) {
        /* a dropped or cancelled conn is reported by sess_on_close / the canceller */
        if (st->kind == PC_ERR_SERVER)
            sess_down(s, c, st, st->server_code == PARLEY__V1__ERROR_CODE__AUTH_FAILED);
        else if (st->kind != PC_ERR_NET)
            sess_down(s, c, st, 1);
        return;
    }
    s->up = 1;
    s->backoff_ms = BACKOFF_FIRST_MS;
    if (s->ev.on_up)
        s->ev.on_up(s, ok, s->ud);
}

static void sess_connect(pc_session *s)
{
    pc_conn_events ev = { sess_on_tap, sess_on_frame, sess_on_close };
    pc_status st;
    pc_conn *c;

    if (s->closing || s->conn)
        return;
    c = pc_conn_open_from(s->ctx, s->url, s->local_addr, &ev, s, &st);
    if (!c) {
        if (s->ev.on_down)
            s->ev.on_down(s, &st, 0, s->ud);
        return;
    }
    s->conn = c;
    if (pc_auth_start(c, s->id, sess_on_auth, s, &st) < 0)
        sess_down(s, c, &st, 1);
}

pc_session *pc_session_new(pc_ctx *ctx, const char *url, const pc_identity *id,
                           const pc_session_events *ev, void *ud, pc_status *st)
{
    pc_session *s;
    pc_url u;

    if (pc_url_parse(url, &u, st) < 0)
        return NULL;
    s = calloc(1, sizeof *s);
    if (!s) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        return NULL;
    }
    s->ctx = ctx;
    s->url = url;
    s->id = id;
    if (ev)
        s->ev = *ev;
    s->ud = ud;
    s->backoff_ms = BACKOFF_FIRST_MS;
    uv_timer_init(pc_ctx_loop(ctx), &s->timer);
    s->timer.data = s;
    return s;
}

void pc_session_start(pc_session *s)
{
    sess_connect(s);
}

void pc_session_set_retry(pc_session *s, int retry)
{
    s->retry = retry;
}

void pc_session_set_local_addr(pc_session *s, const char *local_addr)
{
    s->local_addr = local_addr;
}

pc_conn *pc_session_conn(pc_session *s)
{
    return s->up ? s->conn : NULL;
}

int pc_session_active(const pc_session *s)
{
    return s->conn != NULL;
}

void pc_session_close(pc_session *s)
{
    s->closing = 1;
    uv_timer_stop(&s->timer);
    if (s->conn)
        pc_conn_close(s->conn, PWIRE_CLOSE_NORMAL, "bye");
}

static void sess_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void pc_session_free(pc_session *s)
{
    pc_conn *c;

    if (!s)
        return;
    c = s->conn;
    s->conn = NULL;
    s->closing = 1;
    memset(&s->ev, 0, sizeof s->ev);
    pc_conn_free(c); /* may cancel our own auth request: sess_on_auth ignores that */
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, sess_timer_closed);
}

const pc_identity *pc_session_identity(const pc_session *s)
{
    return s->id;
}

const char *pc_session_url(const pc_session *s)
{
    return s->url;
}

pc_ctx *pc_session_ctx(const pc_session *s)
{
    return s->ctx;
}

Parley__V1__DeviceList *pc_device_list_copy(const Parley__V1__DeviceList *dl)
{
    size_t len = parley__v1__device_list__get_packed_size(dl);
    uint8_t *buf = malloc(len ? len : 1);
    Parley__V1__DeviceList *copy = NULL;

    if (buf) {
        parley__v1__device_list__pack(dl, buf);
        copy = parley__v1__device_list__unpack(NULL, len, buf);
        free(buf);
    }
    return copy;
}
