#include "send.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "box.h"
#include "clock.h"

#define RETRY_FIRST_MS 200
#define RETRY_MAX_MS 2000

/* ---- building ------------------------------------------------------------------------- */

void pc_send_msg_clear(pc_send_msg *m)
{
    for (size_t i = 0; i < m->send.n_envelopes; i++)
        free(m->env[i].content.data);
    memset(m, 0, sizeof *m);
}

int pc_send_msg_build(pc_send_msg *m, const pc_identity *from, const char *recipient,
                      const Parley__V1__DeviceList *devs, const char *text, size_t len,
                      uint64_t client_id, pc_status *st)
{
    int to_self = !strcmp(recipient, from->username);
    uint64_t now = pclock_wall_ms();
    size_t n = 0;

    memset(m, 0, sizeof *m);
    parley__v1__send__init(&m->send);
    snprintf(m->recipient, sizeof m->recipient, "%s", recipient);
    for (size_t i = 0; i < devs->n_devices; i++) {
        const Parley__V1__DeviceInfo *d = devs->devices[i];
        Parley__V1__OutEnvelope *e = &m->env[n];
        if (to_self && d->device_id == from->device_id)
            continue;
        if (n == PARLEY_MAX_ENVELOPES_PER_SEND) {
            pc_send_msg_clear(m);
            return pc_status_set(st, PC_ERR_PROTO, "account %s has more than %d devices",
                                 recipient, PARLEY_MAX_ENVELOPES_PER_SEND);
        }
        if (d->identity_key.len != 32) {
            pc_send_msg_clear(m);
            return pc_status_set(st, PC_ERR_PROTO, "device %u of %s has a malformed key",
                                 d->device_id, recipient);
        }
        parley__v1__out_envelope__init(e);
        e->device_id = d->device_id;
        e->registration_id = d->registration_id;
        if (pc_box_seal_text(text, len, now, d->identity_key.data, from->keys.identity_sk,
                             &e->content.data, &e->content.len, st) < 0) {
            pc_send_msg_clear(m);
            return -1;
        }
        m->envp[n] = e;
        m->send.n_envelopes = ++n;
    }
    if (n == 0) {
        pc_send_msg_clear(m);
        if (to_self)
            return pc_status_set(st, PC_ERR_LOCAL, "account %s has no other device to send to",
                                 recipient);
        return pc_status_set(st, PC_ERR_PROTO, "account %s has no devices", recipient);
    }
    m->send.client_id = client_id;
    m->send.recipient = m->recipient;
    m->send.envelopes = m->envp;
    return 0;
}

static size_t put_ids(char *out, size_t cap, size_t len, const char *label, const uint32_t *ids,
                      size_t n)
{
    int w;

    if (!n || len >= cap)
        return len;
    w = snprintf(out + len, cap - len, "%s%s ", len ? "; " : "", label);
    if (w < 0)
        return len;
    len += (size_t)w;
    for (size_t i = 0; i < n && len < cap; i++) {
        w = snprintf(out + len, cap - len, "%s%u", i ? "," : "", ids[i]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return len < cap ? len : cap - 1;
}

void pc_send_describe_mismatch(const Parley__V1__DeviceMismatch *m, char *out, size_t cap)
{
    size_t len = 0;

    if (!cap)
        return;
    out[0] = '\0';
    if (!m)
        return;
    len = put_ids(out, cap, len, "missing", m->missing, m->n_missing);
    len = put_ids(out, cap, len, "extra", m->extra, m->n_extra);
    put_ids(out, cap, len, "stale", m->stale, m->n_stale);
}

/* ---- the logical send ----------------------------------------------------------------- */

enum { W_UP, W_DEVICES, W_SEND, W_RETRY, W_DONE };

struct pc_sendop {
    pc_session *s;
    char recipient[PARLEY_NAME_MAX + 1];
    char *text;
    size_t len;
    uint64_t client_id;
    uint64_t timeout_ms;
    pc_send_cb cb;
    void *ud;
    int state;
    int have_msg;
    int mismatch_retries;
    pc_send_msg msg;
    unsigned retry_ms;
    pc_status last;       /* the most recent reason we had to wait or retry */
    uv_timer_t retry_timer, deadline_timer;
    int timers_open;
    pc_conn *req_conn;    /* where our request waits for its answer, if one does */
    uint32_t dev_ids[PARLEY_MAX_ENVELOPES_PER_SEND];
    uint64_t env_ids[PARLEY_MAX_ENVELOPES_PER_SEND];
};

static void step(pc_sendop *op);

static void finish(pc_sendop *op, const pc_status *st, const pc_send_result *res)
{
    op->state = W_DONE;
    uv_timer_stop(&op->retry_timer);
    uv_timer_stop(&op->deadline_timer);
    /* last: the callback may free op */
    op->cb(op, st, res, op->ud);
}

static void retry_cb(uv_timer_t *t)
{
    pc_sendop *op = t->data;

    if (op->state == W_RETRY)
        step(op);
}

static void retry_later(pc_sendop *op, const pc_status *why)
{
    unsigned ms = why && why->retry_after_ms ? why->retry_after_ms : op->retry_ms;

    if (why)
        op->last = *why;
    op->retry_ms = op->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : op->retry_ms * 2;
    op->state = W_RETRY;
    uv_timer_start(&op->retry_timer, retry_cb, ms, 0);
}

static int retryable(int code)
{
    return code == PARLEY__V1__ERROR_CODE__UNAVAILABLE ||
           code == PARLEY__V1__ERROR_CODE__SHUTTING_DOWN ||
           code == PARLEY__V1__ERROR_CODE__RATE_LIMITED;
}

static void on_send_response(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                             void *ud)
{
    pc_sendop *op = ud;
    const Parley__V1__Error *e;
    pc_status r;

    (void)c;
    op->req_conn = NULL;
    if (op->state != W_SEND)
        return;
    if (!f) {
        /* the connection went; the session reconnects (or gives up) and tells us */
        op->last = *st;
        op->state = W_UP;
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_SEND_RESULT && f->send_result) {
        const Parley__V1__SendResult *sr = f->send_result;
        pc_send_result res;
        size_t n = sr->n_stored;
        if (n != op->msg.send.n_envelopes) {
            pc_status_set(&r, PC_ERR_PROTO, "server stored %zu envelopes of %zu", n,
                          op->msg.send.n_envelopes);
            finish(op, &r, NULL);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            op->dev_ids[i] = sr->stored[i]->device_id;
            op->env_ids[i] = sr->stored[i]->envelope_id;
        }
        res.recipient = op->recipient;
        res.count = n;
        res.device_ids = op->dev_ids;
        res.envelope_ids = op->env_ids;
        res.duplicate = sr->duplicate;
        pc_status_ok(&r);
        finish(op, &r, &res);
        return;
    }
    if (f->body_case != PARLEY__V1__SERVER_FRAME__BODY_ERROR || !f->error) {
        pc_status_set(&r, PC_ERR_PROTO, "unexpected answer to Send (frame %d)",
                      (int)f->body_case);
        finish(op, &r, NULL);
        return;
    }
    e = f->error;
    pc_status_from_error(&r, e);
    if (e->code == PARLEY__V1__ERROR_CODE__DEVICE_MISMATCH) {
        char what[PC_STATUS_MSG_MAX / 2];
        pc_send_describe_mismatch(e->mismatch, what, sizeof what);
        if (op->mismatch_retries++ == 0) {
            /* our device list was outdated: refetch it and encrypt again */
            op->last = r;
            pc_send_msg_clear(&op->msg);
            op->have_msg = 0;
            step(op);
            return;
        }
        pc_status_set(&r, PC_ERR_SERVER, "device list of %s keeps changing: %s", op->recipient,
                      what[0] ? what : "no details");
        r.server_code = e->code;
        finish(op, &r, NULL);
        return;
    }
    if (e->code == PARLEY__V1__ERROR_CODE__QUEUE_FULL) {
        char ids[PC_STATUS_MSG_MAX / 2];
        put_ids(ids, sizeof ids, 0, "devices", e->full_devices, e->n_full_devices);
        pc_status_set(&r, PC_ERR_SERVER, "queue full for %s (%s)", op->recipient, ids);
        r.server_code = e->code;
        finish(op, &r, NULL);
        return;
    }
    if (retryable(e->code)) {
        retry_later(op, &r);
        return;
    }
    finish(op, &r, NULL);
}

static void send_now(pc_sendop *op, pc_conn *c)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    pc_status st;

    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_SEND;
    f.send = &op->msg.send;
    op->state = W_SEND;
    if (pc_conn_request(c, &f, on_send_response, op, &st) == 0) {
        op->req_conn = c;
    } else {
        if (st.kind == PC_ERR_NET) {
            op->state = W_UP;
            op->last = st;
            return;
        }
        finish(op, &st, NULL);
    }
}

static void on_devices(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                       void *ud)
{
    pc_sendop *op = ud;
    pc_status r;

    op->req_conn = NULL;
    if (op->state != W_DEVICES)
        return;
    if (!f) {
        op->last = *st;
        op->state = W_UP;
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error) {
        pc_status_from_error(&r, f->error);
        if (f->error->code == PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT)
            pc_status_set(&r, PC_ERR_SERVER, "unknown account %s", op->recipient),
                r.server_code = PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT;
        if (retryable(f->error->code))
            retry_later(op, &r);
        else
            finish(op, &r, NULL);
        return;
    }
    if (f->body_case != PARLEY__V1__SERVER_FRAME__BODY_DEVICES || !f->devices) {
        pc_status_set(&r, PC_ERR_PROTO, "unexpected answer to GetDevices (frame %d)",
                      (int)f->body_case);
        finish(op, &r, NULL);
        return;
    }
    if (pc_send_msg_build(&op->msg, pc_session_identity(op->s), op->recipient, f->devices,
                          op->text, op->len, op->client_id, &r) < 0) {
        finish(op, &r, NULL);
        return;
    }
    op->have_msg = 1;
    send_now(op, c);
}

static void step(pc_sendop *op)
{
    pc_conn *c = pc_session_conn(op->s);
    pc_status st;

    if (!c) {
        op->state = W_UP;
        return;
    }
    if (op->have_msg) {
        send_now(op, c);
        return;
    }
    op->state = W_DEVICES;
    if (pc_get_devices(c, op->recipient, on_devices, op, &st) == 0) {
        op->req_conn = c;
    } else {
        if (st.kind == PC_ERR_NET) {
            op->state = W_UP;
            op->last = st;
            return;
        }
        finish(op, &st, NULL);
    }
}

static void deadline_cb(uv_timer_t *t)
{
    pc_sendop *op = t->data;
    pc_status r;

    if (op->state == W_DONE)
        return;
    if (op->last.kind == PC_ERR_NET && !pc_session_conn(op->s)) {
        r = op->last;
    } else {
        pc_status_set(&r, PC_ERR_TIMEOUT,
                      "the server did not accept the message within %llu s%s%s%s",
                      (unsigned long long)(op->timeout_ms / 1000),
                      op->last.kind != PC_OK ? " (last error: " : "",
                      op->last.kind != PC_OK ? op->last.msg : "",
                      op->last.kind != PC_OK ? ")" : "");
    }
    finish(op, &r, NULL);
}

pc_sendop *pc_sendop_start(pc_session *s, const char *recipient, const char *text, size_t len,
                           uint64_t client_id, uint64_t timeout_ms, pc_send_cb cb, void *ud,
                           pc_status *st)
{
    pc_sendop *op;
    uv_loop_t *loop;

    if (len > PC_BOX_TEXT_MAX) {
        pc_status_set(st, PC_ERR_LOCAL, "message of %zu bytes is over the %d byte limit", len,
                      (int)PC_BOX_TEXT_MAX);
        return NULL;
    }
    op = calloc(1, sizeof *op);
    if (!op || !(op->text = malloc(len ? len : 1))) {
        free(op);
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        return NULL;
    }
    if (pauth_name_normalize(recipient, op->recipient) < 0) {
        free(op->text);
        free(op);
        pc_status_set(st, PC_ERR_LOCAL, "invalid account name %s", recipient);
        return NULL;
    }
    memcpy(op->text, text, len);
    op->len = len;
    op->s = s;
    if (!client_id)
        while (!(client_id = ((uint64_t)randombytes_random() << 32) | randombytes_random()))
            ;
    op->client_id = client_id;
    op->timeout_ms = timeout_ms;
    op->cb = cb;
    op->ud = ud;
    op->retry_ms = RETRY_FIRST_MS;
    loop = pc_ctx_loop(pc_session_ctx(s));
    uv_timer_init(loop, &op->retry_timer);
    uv_timer_init(loop, &op->deadline_timer);
    op->retry_timer.data = op->deadline_timer.data = op;
    op->timers_open = 2;
    if (timeout_ms)
        uv_timer_start(&op->deadline_timer, deadline_cb, timeout_ms, 0);
    op->state = W_UP;
    step(op);
    return op;
}

void pc_sendop_session_up(pc_sendop *op)
{
    if (op->state == W_UP)
        step(op);
}

void pc_sendop_session_down(pc_sendop *op, const pc_status *st)
{
    if (op->state == W_DONE)
        return;
    op->last = *st;
    if (op->state == W_DEVICES || op->state == W_SEND)
        op->state = W_UP;
}

uint64_t pc_sendop_client_id(const pc_sendop *op)
{
    return op->client_id;
}

static void timer_closed(uv_handle_t *h)
{
    pc_sendop *op = h->data;

    if (--op->timers_open == 0) {
        pc_send_msg_clear(&op->msg);
        free(op->text);
        free(op);
    }
}

void pc_sendop_free(pc_sendop *op)
{
    if (!op)
        return;
    op->state = W_DONE;
    if (op->req_conn)
        pc_conn_forget(op->req_conn, op);
    op->req_conn = NULL;
    uv_close((uv_handle_t *)&op->retry_timer, timer_closed);
    uv_close((uv_handle_t *)&op->deadline_timer, timer_closed);
}
