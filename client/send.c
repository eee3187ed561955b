#include "send.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "plain.h"

#define RETRY_FIRST_MS 200
#define RETRY_MAX_MS 2000

/* ---- building ------------------------------------------------------------------------- */

void pc_send_msg_clear(pc_send_msg *m)
{
    for (size_t i = 0; i < m->send.n_envelopes; i++)
        free(m->env[i].content.data);
    memset(m, 0, sizeof *m);
}

int pc_send_msg_build(pc_send_msg *m, pc_vault *v, const char *recipient,
                      const Parley__V1__DeviceList *devs, uint32_t skip_device,
                      const uint8_t *pt, size_t pt_len, uint64_t client_id, pc_status *st)
{
    size_t n = 0;

    memset(m, 0, sizeof *m);
    parley__v1__send__init(&m->send);
    snprintf(m->recipient, sizeof m->recipient, "%s", recipient);
    for (size_t i = 0; i < devs->n_devices; i++) {
        const Parley__V1__DeviceInfo *d = devs->devices[i];
        Parley__V1__OutEnvelope *e = &m->env[n];
        if (d->device_id == skip_device)
            continue;
        if (n == PARLEY_MAX_ENVELOPES_PER_SEND) {
            pc_send_msg_clear(m);
            return pc_status_set(st, PC_ERR_PROTO, "account %s has more than %d devices",
                                 recipient, PARLEY_MAX_ENVELOPES_PER_SEND);
        }
        parley__v1__out_envelope__init(e);
        e->device_id = d->device_id;
        e->registration_id = d->registration_id;
        if (pc_vault_encrypt(v, recipient, d->device_id, pt, pt_len, &e->content.data,
                             &e->content.len, st) < 0) {
            pc_send_msg_clear(m);
            return -1;
        }
        m->envp[n] = e;
        m->send.n_envelopes = ++n;
    }
    if (n == 0) {
        pc_send_msg_clear(m);
        return pc_status_set(st, PC_ERR_PROTO, "account %s has no device to send to",
                             recipient);
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

/* Two phases: the message to the recipient's devices, then (when the recipient is another
 * account) a sent transcript to the sender's own other devices. Each phase: GetDevices, bundles
 * for devices without a session, encrypt, save the vault, Send until accepted. */
enum { W_UP, W_DEVICES, W_BUNDLES, W_SEND, W_RETRY, W_DONE };

struct pc_sendop {
    pc_session *s;
    pc_vault *v;
    char recipient[PARLEY_NAME_MAX + 1];
    char *text;           /* kind 1: the text; kind 3: the serialised CallSignal */
    size_t len;
    int kind;             /* plain.h: PC_PLAIN_KIND_TEXT or PC_PLAIN_KIND_CALL */
    int urgent;           /* Send.urgent */
    uint64_t client_id;
    uint64_t timeout_ms;
    pc_send_cb cb;
    void *ud;
    int state;
    int phase;            /* 0: to the recipient, 1: the transcript to own other devices */
    int have_msg;
    int mismatch_retries;
    int key_changed;
    int fetching;         /* a prekey fetch waits for its callback (which always comes) */
    int freed;            /* pc_sendop_free came while fetching: the callback frees */
    pc_send_msg msg;
    Parley__V1__DeviceList *devs; /* the phase's device list, owned (unpacked copy) */
    unsigned retry_ms;
    pc_status last;       /* the most recent reason we had to wait or retry */
    uv_timer_t retry_timer, deadline_timer;
    int timers_open;
    pc_conn *req_conn;    /* where our request waits for its answer, if one does */
    size_t n_stored;      /* phase 0's answer */
    int duplicate;
    size_t sync_copies;
    uint32_t dev_ids[PARLEY_MAX_ENVELOPES_PER_SEND];
    uint64_t env_ids[PARLEY_MAX_ENVELOPES_PER_SEND];
};

static void step(pc_sendop *op);
static void ask_devices(pc_sendop *op, pc_conn *c);

static const char *target(const pc_sendop *op)
{
    return op->phase ? pc_session_identity(op->s)->username : op->recipient;
}

static int to_self(const pc_sendop *op)
{
    return !strcmp(target(op), pc_session_identity(op->s)->username);
}

/* The device a Send to the target leaves out: the sending one, on the own account. */
static uint32_t own_skip(const pc_sendop *op)
{
    return to_self(op) ? pc_session_identity(op->s)->device_id : 0;
}

/* The transcript's client id: derived from the message's, so a resend of the message resends
 * the same transcript. */
static uint64_t sync_client_id(uint64_t client_id)
{
    uint8_t in[13] = { 's', 'e', 'n', 't', '-' }, h[crypto_generichash_BYTES_MIN];
    uint64_t id = 0;

    for (int i = 0; i < 8; i++)
        in[5 + i] = (uint8_t)(client_id >> (56 - 8 * i));
    /* BLAKE2b-128 (libsodium's shortest); its first 8 bytes */
    crypto_generichash(h, sizeof h, in, sizeof in, NULL, 0);
    for (int i = 0; i < 8; i++)
        id = id << 8 | h[i];
    return id ? id : 1;
}

static void finish(pc_sendop *op, const pc_status *st, const pc_send_result *res)
{
    op->state = W_DONE;
    uv_timer_stop(&op->retry_timer);
    uv_timer_stop(&op->deadline_timer);
    /* last: the callback may free op */
    op->cb(op, st, res, op->ud);
}

/* The message reached the recipient; a failure of the transcript is reported with it. */
static void finish_sent(pc_sendop *op, const pc_status *sync_error)
{
    pc_send_result res;
    pc_status ok;

    res.recipient = op->recipient;
    res.count = op->n_stored;
    res.device_ids = op->dev_ids;
    res.envelope_ids = op->env_ids;
    res.duplicate = op->duplicate;
    res.sync_copies = op->sync_copies;
    res.sync_error = sync_error;
    res.key_changed = op->key_changed;
    pc_status_ok(&ok);
    finish(op, &ok, &res);
}

/* A failure: of the whole send in phase 0, of the transcript only in phase 1. */
static void fail(pc_sendop *op, const pc_status *st)
{
    if (op->phase == 1)
        finish_sent(op, st);
    else
        finish(op, st, NULL);
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

static void forget_devices(pc_sendop *op)
{
    if (op->devs)
        parley__v1__device_list__free_unpacked(op->devs, NULL);
    op->devs = NULL;
}

static void next_phase(pc_sendop *op)
{
    pc_send_msg_clear(&op->msg);
    op->have_msg = 0;
    forget_devices(op);
    op->phase = 1;
    op->mismatch_retries = 0;
    op->retry_ms = RETRY_FIRST_MS;
    step(op);
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
        size_t n = sr->n_stored;
        if (n != op->msg.send.n_envelopes) {
            pc_status_set(&r, PC_ERR_PROTO, "server stored %zu envelopes of %zu", n,
                          op->msg.send.n_envelopes);
            fail(op, &r);
            return;
        }
        if (op->phase == 1) {
            op->sync_copies = n;
            finish_sent(op, NULL);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            op->dev_ids[i] = sr->stored[i]->device_id;
            op->env_ids[i] = sr->stored[i]->envelope_id;
        }
        op->n_stored = n;
        op->duplicate = sr->duplicate;
        /* a call signal is for the peer's devices alone: no transcript */
        if (to_self(op) || op->kind == PC_PLAIN_KIND_CALL)
            finish_sent(op, NULL);
        else
            next_phase(op);
        return;
    }
    if (f->body_case != PARLEY__V1__SERVER_FRAME__BODY_ERROR || !f->error) {
        pc_status_set(&r, PC_ERR_PROTO, "unexpected answer to Send (frame %d)",
                      (int)f->body_case);
        fail(op, &r);
        return;
    }
    e = f->error;
    pc_status_from_error(&r, e);
    if (e->code == PARLEY__V1__ERROR_CODE__DEVICE_MISMATCH) {
        char what[PC_STATUS_MSG_MAX / 2];
        pc_send_describe_mismatch(e->mismatch, what, sizeof what);
        if (op->mismatch_retries++ < PC_SEND_MISMATCH_RETRIES) {
            /* our device list or sessions were outdated: sessions with stale (reinstalled)
             * and extra (removed) devices go, then devices, bundles and encryption again */
            for (size_t i = 0; e->mismatch && i < e->mismatch->n_stale; i++)
                pc_vault_drop(op->v, target(op), e->mismatch->stale[i]);
            for (size_t i = 0; e->mismatch && i < e->mismatch->n_extra; i++)
                pc_vault_drop(op->v, target(op), e->mismatch->extra[i]);
            op->last = r;
            pc_send_msg_clear(&op->msg);
            op->have_msg = 0;
            forget_devices(op);
            step(op);
            return;
        }
        pc_status_set(&r, PC_ERR_SERVER, "device list of %s keeps changing: %s", target(op),
                      what[0] ? what : "no details");
        r.server_code = e->code;
        fail(op, &r);
        return;
    }
    if (e->code == PARLEY__V1__ERROR_CODE__QUEUE_FULL) {
        char ids[PC_STATUS_MSG_MAX / 2];
        put_ids(ids, sizeof ids, 0, "devices", e->full_devices, e->n_full_devices);
        pc_status_set(&r, PC_ERR_SERVER, "queue full for %s (%s)", target(op), ids);
        r.server_code = e->code;
        fail(op, &r);
        return;
    }
    if (pc_error_retryable(e->code)) {
        retry_later(op, &r);
        return;
    }
    fail(op, &r);
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
        fail(op, &st);
    }
}

/* Every addressed device has a session: encrypt, save, send. */
static void build_and_send(pc_sendop *op, pc_conn *c)
{
    const pc_identity *me = pc_session_identity(op->s);
    uint32_t skip = own_skip(op);
    uint64_t id = op->phase ? sync_client_id(op->client_id) : op->client_id;
    uint8_t *pt;
    size_t pt_len;
    pc_status r;
    int rc;

    if (op->phase == 1) {
        size_t others = 0;
        for (size_t i = 0; i < op->devs->n_devices; i++)
            others += op->devs->devices[i]->device_id != me->device_id;
        if (!others) {
            finish_sent(op, NULL); /* no other own device to tell */
            return;
        }
    }
    if (op->kind == PC_PLAIN_KIND_CALL)
        rc = pc_plain_build_call((const uint8_t *)op->text, op->len, pclock_wall_ms(), &pt,
                                 &pt_len, &r);
    else
        rc = pc_plain_build(op->text, op->len, pclock_wall_ms(),
                            op->phase ? op->recipient : NULL, &pt, &pt_len, &r);
    if (rc < 0) {
        fail(op, &r);
        return;
    }
    rc = pc_send_msg_build(&op->msg, op->v, target(op), op->devs, skip, pt, pt_len, id, &r);
    sodium_memzero(pt, pt_len);
    free(pt);
    op->msg.send.urgent = op->urgent;
    /* the ratchets moved: saved before anything leaves, so a crash cannot reuse a key */
    if (rc < 0 || pc_vault_save(op->v, &r) < 0) {
        pc_send_msg_clear(&op->msg);
        fail(op, &r);
        return;
    }
    op->have_msg = 1;
    send_now(op, c);
}

/* Runs the server's answer through the target's pin (devtrust.h) and, when it verifies and
 * the server lists no device the signed list lacks, sets op->devs to the verified list: the
 * devices encrypted to are the signed list's, never the server's rows. PC_DT_MORE: a page of
 * a longer chain verified, ask for the next. */
static int trust_devices(pc_sendop *op, const Parley__V1__DeviceList *dl, pc_status *st)
{
    uint32_t ghosts[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    size_t n_ghosts;
    pc_dt_pin *pin = pc_vault_pin(op->v, target(op), st);

    int rc;

    /* pc_dt_accept leaves the pin as it was when it refuses */
    if (!pin || (rc = pc_dt_accept(pin, target(op), dl, st)) < 0)
        return -1;
    pc_vault_pin_changed(op->v, target(op));
    if (rc == PC_DT_MORE)
        return PC_DT_MORE;
    pc_dt_ghosts(pin, dl, ghosts, PARLEY_MAX_DEVICES_PER_ACCOUNT, &n_ghosts);
    if (n_ghosts)
        return pc_dt_ghost_status(st, target(op), ghosts,
                                  n_ghosts < PARLEY_MAX_DEVICES_PER_ACCOUNT
                                      ? n_ghosts
                                      : PARLEY_MAX_DEVICES_PER_ACCOUNT,
                                  op->phase ? "no copy went to your devices"
                                            : "nothing was sent");
    if (!(op->devs = pc_dt_verified_devices(pin, target(op))))
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    return 0;
}

/* A fetched bundle must carry the keys the signed list gives its device: else the server
 * swapped them. */
static int bundle_listed(const pc_sendop *op, const pc_prekey_bundle *b, pc_status *st)
{
    for (size_t i = 0; i < op->devs->n_devices; i++) {
        const Parley__V1__DeviceInfo *d = op->devs->devices[i];
        if (d->device_id != b->device_id)
            continue;
        if (d->registration_id == b->registration_id &&
            !memcmp(d->signing_key.data, b->signing_pk, 32) &&
            !memcmp(d->identity_key.data, b->identity_pk, 32))
            return 0;
        break;
    }
    return pc_status_set(st, PC_ERR_TRUST,
                         "the server's prekey bundle of device %u of %s does not carry the "
                         "keys of %s's signed device list; nothing was sent",
                         b->device_id, target(op), target(op));
}

static void on_bundles(pc_conn *c, const pc_status *st, pc_prekey_bundles *b, void *ud)
{
    pc_sendop *op = ud;
    pc_conn *now = pc_session_conn(op->s);
    uint32_t need[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    size_t n_need = 0;
    pc_status r;

    (void)c;
    op->fetching = 0;
    if (op->freed) {
        pc_prekey_bundles_free(b);
        pc_sendop_free(op);
        return;
    }
    if (op->state != W_BUNDLES) {
        pc_prekey_bundles_free(b);
        return;
    }
    if (!b) {
        if (st->kind == PC_ERR_NET) {
            op->last = *st;
            op->state = W_UP;
        } else if (st->kind == PC_ERR_SERVER && pc_error_retryable(st->server_code)) {
            retry_later(op, st);
        } else {
            fail(op, st);
        }
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (bundle_listed(op, &b->bundles[i], &r) < 0 ||
            pc_vault_add_bundle(op->v, target(op), &b->bundles[i], &op->key_changed, &r) < 0) {
            pc_prekey_bundles_free(b);
            fail(op, &r);
            return;
        }
    }
    pc_prekey_bundles_free(b);
    if (!now) {
        op->state = W_UP;
        return;
    }
    /* a device removed since GetDevices got no bundle: like a mismatch, start over */
    if (pc_vault_plan(op->v, target(op), op->devs, own_skip(op), need, &n_need, &r) < 0) {
        fail(op, &r);
        return;
    }
    if (n_need) {
        if (op->mismatch_retries++ < PC_SEND_MISMATCH_RETRIES) {
            forget_devices(op);
            step(op);
            return;
        }
        pc_status_set(&r, PC_ERR_SERVER, "device %u of %s has no prekey bundle", need[0],
                      target(op));
        fail(op, &r);
        return;
    }
    build_and_send(op, now);
}

static void on_devices(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                       void *ud)
{
    pc_sendop *op = ud;
    uint32_t need[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    size_t n_need = 0;
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
            pc_status_set(&r, PC_ERR_SERVER, "unknown account %s", target(op)),
                r.server_code = PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT;
        if (pc_error_retryable(f->error->code))
            retry_later(op, &r);
        else
            fail(op, &r);
        return;
    }
    if (f->body_case != PARLEY__V1__SERVER_FRAME__BODY_DEVICES || !f->devices) {
        pc_status_set(&r, PC_ERR_PROTO, "unexpected answer to GetDevices (frame %d)",
                      (int)f->body_case);
        fail(op, &r);
        return;
    }
    forget_devices(op);
    int trusted = trust_devices(op, f->devices, &r);
    if (trusted < 0) {
        fail(op, &r);
        return;
    }
    if (trusted == PC_DT_MORE) {
        ask_devices(op, c);
        return;
    }
    if (pc_vault_plan(op->v, target(op), op->devs, own_skip(op), need, &n_need, &r) < 0) {
        fail(op, &r);
        return;
    }
    if (!n_need) {
        build_and_send(op, c);
        return;
    }
    op->state = W_BUNDLES;
    if (pc_prekeys_fetch(c, target(op), need, n_need, on_bundles, op, &r) < 0) {
        if (r.kind == PC_ERR_NET) {
            op->state = W_UP;
            op->last = r;
            return;
        }
        fail(op, &r);
        return;
    }
    op->fetching = 1;
}

static void step(pc_sendop *op)
{
    pc_conn *c = pc_session_conn(op->s);

    if (!c) {
        op->state = W_UP;
        return;
    }
    if (op->have_msg) {
        send_now(op, c);
        return;
    }
    ask_devices(op, c);
}

/* GetDevices of the target from its pinned version. */
static void ask_devices(pc_sendop *op, pc_conn *c)
{
    pc_dt_pin *pin;
    pc_status st;

    if (!(pin = pc_vault_pin(op->v, target(op), &st))) {
        fail(op, &st);
        return;
    }
    op->state = W_DEVICES;
    if (pc_get_devices(c, target(op), pin->has_list ? pin->list.version : 0, on_devices, op,
                       &st) == 0) {
        op->req_conn = c;
    } else {
        if (st.kind == PC_ERR_NET) {
            op->state = W_UP;
            op->last = st;
            return;
        }
        fail(op, &st);
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
        if (op->phase == 1)
            pc_status_set(&r, PC_ERR_TIMEOUT, "the copy for your other devices was not accepted "
                                              "in time");
    }
    fail(op, &r);
}

static pc_sendop *start(pc_session *s, pc_vault *v, const char *recipient, int kind,
                        const char *text, size_t len, uint64_t client_id, uint64_t timeout_ms,
                        pc_send_cb cb, void *ud, pc_status *st)
{
    pc_sendop *op;
    uv_loop_t *loop;

    if (kind == PC_PLAIN_KIND_TEXT && len > PC_PLAIN_TEXT_MAX) {
        pc_status_set(st, PC_ERR_LOCAL, "message of %zu bytes is over the %d byte limit", len,
                      (int)PC_PLAIN_TEXT_MAX);
        return NULL;
    }
    if (kind == PC_PLAIN_KIND_CALL && (len == 0 || len > PC_PLAIN_SIGNAL_MAX)) {
        pc_status_set(st, PC_ERR_LOCAL, "call signal of %zu bytes (1..%d allowed)", len,
                      (int)PC_PLAIN_SIGNAL_MAX);
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
    op->kind = kind;
    op->urgent = kind == PC_PLAIN_KIND_CALL;
    op->s = s;
    op->v = v;
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

pc_sendop *pc_sendop_start(pc_session *s, pc_vault *v, const char *recipient, const char *text,
                           size_t len, uint64_t client_id, uint64_t timeout_ms, pc_send_cb cb,
                           void *ud, pc_status *st)
{
    return start(s, v, recipient, PC_PLAIN_KIND_TEXT, text, len, client_id, timeout_ms, cb, ud,
                 st);
}

pc_sendop *pc_sendop_start_call(pc_session *s, pc_vault *v, const char *recipient,
                                const uint8_t *sig, size_t len, uint64_t timeout_ms,
                                pc_send_cb cb, void *ud, pc_status *st)
{
    return start(s, v, recipient, PC_PLAIN_KIND_CALL, (const char *)sig, len, 0, timeout_ms, cb,
                 ud, st);
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
    if (op->state == W_DEVICES || op->state == W_SEND || op->state == W_BUNDLES)
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
        forget_devices(op);
        sodium_memzero(op->text, op->len);
        free(op->text);
        free(op);
    }
}

void pc_sendop_free(pc_sendop *op)
{
    if (!op)
        return;
    op->state = W_DONE;
    uv_timer_stop(&op->retry_timer);
    uv_timer_stop(&op->deadline_timer);
    if (op->fetching) {
        op->freed = 1; /* on_bundles comes back and frees */
        return;
    }
    if (op->req_conn)
        pc_conn_forget(op->req_conn, op);
    op->req_conn = NULL;
    uv_close((uv_handle_t *)&op->retry_timer, timer_closed);
    uv_close((uv_handle_t *)&op->deadline_timer, timer_closed);
}
