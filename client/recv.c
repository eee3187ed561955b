#include "recv.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "clock.h"
#include "plain.h"

#define LOOKUP_RETRY_MS 500

typedef struct rx_env {
    struct rx_env *next;
    Parley__V1__Envelope *e; /* a copy (unpacked from its own packing), owned */
    int looked_up;           /* the sender's devices were fetched for this envelope */
} rx_env;

typedef struct sender {
    struct sender *next;
    char *name;
    char *distrust;          /* why the sender's device list cannot be trusted, or NULL */
    size_t n;
    uint32_t ids[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    uint32_t regs[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    uint8_t signing[PARLEY_MAX_DEVICES_PER_ACCOUNT][32];
    uint8_t identity[PARLEY_MAX_DEVICES_PER_ACCOUNT][32];
} sender;

struct pc_recv {
    pc_session *s;
    pc_vault *v;
    pc_seen *seen;
    pc_recv_events ev;
    void *ud;
    rx_env *head, *tail;
    sender *senders;
    int paused;
    int lookup_pending;
    int lookup_retry;        /* lookup_pending is a pause before asking again */
    pc_conn *lookup_conn;    /* where the GetDevices waits, if it does */
    uint64_t *acks;          /* ids to ack, not yet sent */
    size_t n_acks, cap_acks;
    unsigned acks_inflight;
    uv_timer_t flush_timer;  /* batches acks per loop turn; also retries failed lookups */
    int freed;
};

static void process(pc_recv *r);

/* ---- small helpers -------------------------------------------------------------------- */

static rx_env *pop(pc_recv *r)
{
    rx_env *x = r->head;

    if (x) {
        r->head = x->next;
        if (!r->head)
            r->tail = NULL;
    }
    return x;
}

static void env_free(rx_env *x)
{
    if (x) {
        parley__v1__envelope__free_unpacked(x->e, NULL);
        free(x);
    }
}

static sender *find_sender(pc_recv *r, const char *name)
{
    for (sender *s = r->senders; s; s = s->next)
        if (!strcmp(s->name, name))
            return s;
    return NULL;
}

/* The server's entry of the device (keys pointing into s), or 0 when s does not list it. */
static int find_dev(const sender *s, uint32_t device, Parley__V1__DeviceInfo *out)
{
    for (size_t i = 0; s && i < s->n; i++) {
        if (s->ids[i] != device)
            continue;
        parley__v1__device_info__init(out);
        out->device_id = device;
        out->registration_id = s->regs[i];
        out->signing_key.data = (uint8_t *)s->signing[i];
        out->signing_key.len = 32;
        out->identity_key.data = (uint8_t *)s->identity[i];
        out->identity_key.len = 32;
        return 1;
    }
    return 0;
}

static void flush_cb(uv_timer_t *t);

static void schedule_flush(pc_recv *r, uint64_t delay_ms)
{
    if (!r->freed)
        uv_timer_start(&r->flush_timer, flush_cb, delay_ms, 0);
}

static void add_ack(pc_recv *r, uint64_t id)
{
    if (r->n_acks == r->cap_acks) {
        size_t cap = r->cap_acks ? r->cap_acks * 2 : 64;
        uint64_t *n = realloc(r->acks, cap * sizeof *n);
        if (!n)
            return; /* unacked: the server redelivers it and the seen set drops it then */
        r->acks = n;
        r->cap_acks = cap;
    }
    r->acks[r->n_acks++] = id;
    schedule_flush(r, 0);
}

/* ---- acks ----------------------------------------------------------------------------- */

static void on_ack_response(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                            void *ud)
{
    pc_recv *r = ud;

    (void)c;
    (void)f;
    (void)st;
    /* an Error or a lost connection leaves the rows queued: they come back and are dropped as
     * duplicates, so nothing more to do here than count */
    if (r->acks_inflight)
        r->acks_inflight--;
    if (r->ev.on_acked)
        r->ev.on_acked(r, r->ud);
}

static void send_acks(pc_recv *r)
{
    pc_conn *c = pc_session_conn(r->s);
    size_t off = 0;
    pc_status st0;

    if (!r->n_acks || !c)
        return;
    /* what was decrypted moved the ratchets and may have used a one-time prekey: that state
     * is on disk before the server forgets the envelopes */
    if (pc_vault_save(r->v, &st0) < 0) {
        if (r->ev.on_save_failed)
            r->ev.on_save_failed(r, &st0, r->ud);
        schedule_flush(r, LOOKUP_RETRY_MS);
        return;
    }
    if (r->ev.on_persist)
        r->ev.on_persist(r, r->ud);
    while (off < r->n_acks) {
        Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
        Parley__V1__Ack a = PARLEY__V1__ACK__INIT;
        size_t n = r->n_acks - off;
        pc_status st;
        if (n > PARLEY_MAX_ACK_IDS)
            n = PARLEY_MAX_ACK_IDS;
        a.envelope_ids = r->acks + off;
        a.n_envelope_ids = n;
        f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_ACK;
        f.ack = &a;
        if (pc_conn_request(c, &f, on_ack_response, r, &st) < 0)
            break; /* the connection is going: redelivery covers the rest */
        r->acks_inflight++;
        off += n;
    }
    r->n_acks = 0;
}

static void flush_cb(uv_timer_t *t)
{
    pc_recv *r = t->data;

    send_acks(r);
    if (r->lookup_retry) {
        r->lookup_retry = 0;
        r->lookup_pending = 0;
        process(r);
    }
}

/* ---- sender keys ---------------------------------------------------------------------- */

/* Keeps the sender's verified devices (dl: pc_dt_verified_devices; NULL: an unknown account)
 * or, with dl NULL and distrust set, why none can be trusted. Returns -1 when out of memory:
 * the caller retries, never treats the sender as unknown (that would ack, and so delete, a
 * message it could open later). */
static int store_sender(pc_recv *r, const char *name, const Parley__V1__DeviceList *dl,
                        const char *distrust)
{
    sender *s = find_sender(r, name);
    char *why = NULL;

    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || !(s->name = strdup(name))) {
            free(s);
            return -1;
        }
        s->next = r->senders;
        r->senders = s;
    }
    if (distrust && !(why = strdup(distrust)))
        return -1;
    free(s->distrust);
    s->distrust = why;
    s->n = 0;
    for (size_t i = 0; dl && i < dl->n_devices && s->n < PARLEY_MAX_DEVICES_PER_ACCOUNT; i++) {
        const Parley__V1__DeviceInfo *d = dl->devices[i];
        if (d->identity_key.len != 32 || d->signing_key.len != 32)
            continue;
        s->ids[s->n] = d->device_id;
        s->regs[s->n] = d->registration_id;
        memcpy(s->signing[s->n], d->signing_key.data, 32);
        memcpy(s->identity[s->n], d->identity_key.data, 32);
        s->n++;
    }
    return 0;
}

/* Runs a DeviceList answer through the sender's pin (devtrust.h) and keeps the verified
 * devices: a message opens only from a device of the sender's signed list, with its keys.
 * PC_DT_MORE: a page of a longer chain verified, look up the next. */
static int trust_sender(pc_recv *r, const char *name, const Parley__V1__DeviceList *dl)
{
    pc_dt_pin *pin;
    Parley__V1__DeviceList *ok;
    pc_status st;
    int rc;

    if (!(pin = pc_vault_pin(r->v, name, &st)))
        return store_sender(r, name, NULL, st.msg);
    if ((rc = pc_dt_accept(pin, name, dl, &st)) < 0)
        return store_sender(r, name, NULL, st.msg);
    pc_vault_pin_changed(r->v, name);
    if (rc == PC_DT_MORE)
        return PC_DT_MORE;
    if (!(ok = pc_dt_verified_devices(pin, name)))
        return -1;
    rc = store_sender(r, name, ok, NULL);
    parley__v1__device_list__free_unpacked(ok, NULL);
    return rc;
}

static int start_lookup(pc_recv *r, rx_env *x);

static void on_lookup(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                      void *ud)
{
    pc_recv *r = ud;
    rx_env *x = r->head;

    (void)c;
    (void)st;
    r->lookup_conn = NULL;
    r->lookup_pending = 0;
    if (!f || !x)
        return; /* connection gone: session_down clears the queue */
    int stored = -1;
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_DEVICES && f->devices)
        stored = trust_sender(r, x->e->sender, f->devices);
    else if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error &&
             f->error->code == PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT)
        stored = store_sender(r, x->e->sender, NULL, NULL);
    if (stored == PC_DT_MORE) {
        x->looked_up = 0;
        if (start_lookup(r, x) == 0)
            return;
        stored = -1;
    }
    if (stored != 0) {
        /* the server could not answer now, or memory ran out: try again rather than drop a
         * message we could open later */
        x->looked_up = 0;
        r->lookup_pending = 1;
        r->lookup_retry = 1;
        schedule_flush(r, LOOKUP_RETRY_MS);
        return;
    }
    process(r);
}

static int start_lookup(pc_recv *r, rx_env *x)
{
    pc_conn *c = pc_session_conn(r->s);
    pc_status st;

    pc_dt_pin *pin = pc_vault_pin(r->v, x->e->sender, &st);

    if (!c || !pin ||
        pc_get_devices(c, x->e->sender, pin->has_list ? pin->list.version : 0, on_lookup, r,
                       &st) < 0)
        return -1;
    x->looked_up = 1;
    r->lookup_pending = 1;
    r->lookup_conn = c;
    return 0;
}

/* ---- the pipeline --------------------------------------------------------------------- */

static void bad(pc_recv *r, rx_env *x, const pc_status *why)
{
    if (r->ev.on_bad)
        r->ev.on_bad(r, x->e, why, r->ud);
    /* a redelivery is reported no second time */
    if (r->seen)
        pc_seen_add(r->seen, x->e->id);
    add_ack(r, x->e->id);
}

static void deliver_call(pc_recv *r, const Parley__V1__Envelope *e, const pc_plain *t,
                         int key_changed)
{
    pc_call_message m;

    if (!r->ev.on_call)
        return;
    memset(&m, 0, sizeof m);
    m.sender = e->sender;
    m.sender_device = e->sender_device;
    m.id = e->id;
    m.timestamp_ms = e->timestamp_ms;
    m.sent_ms = t->sent_ms;
    m.signal = t->signal;
    m.signal_len = t->signal_len;
    m.urgent = e->urgent;
    m.key_changed = key_changed;
    r->ev.on_call(r, &m, r->ud);
}

/* Decrypts x (still at the head) and hands it over or reports it. Returns 1 when x's prekey
 * message carries keys other than dev's and the device list was not fetched again for it yet:
 * x then stays queued while it is (the list may be older than a reinstall). */
static int deliver(pc_recv *r, rx_env *x, const Parley__V1__DeviceInfo *dev)
{
    const Parley__V1__Envelope *e = x->e;
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    int changed = 0, rc;
    pc_plain t;
    pc_message m;
    pc_status st;

    rc = pc_vault_decrypt(r->v, e->sender, dev, e->content.data, e->content.len,
                          pclock_wall_ms(), &pt, &pt_len, &changed, &st);
    if (rc == PC_VAULT_ERR_KEYS && !x->looked_up)
        return 1;
    pop(r);
    if (rc != 0 || pc_plain_parse(pt, pt_len, &t, &st) < 0) {
        if (pt)
            sodium_memzero(pt, pt_len);
        free(pt);
        bad(r, x, &st);
        return 0;
    }
    if (t.kind == PC_PLAIN_KIND_CALL) {
        deliver_call(r, e, &t, changed);
        sodium_memzero(pt, pt_len);
        free(pt);
        if (r->seen)
            pc_seen_add(r->seen, e->id);
        add_ack(r, e->id);
        return 0;
    }
    memset(&m, 0, sizeof m);
    m.sender = e->sender;
    m.sender_device = e->sender_device;
    m.id = e->id;
    m.timestamp_ms = e->timestamp_ms;
    m.sent_ms = t.sent_ms;
    m.text = t.text;
    m.text_len = t.text_len;
    m.urgent = e->urgent;
    m.key_changed = changed;
    /* a transcript counts only from the own account (anyone else could claim to have sent
     * something "as" this account otherwise) */
    if (t.kind == PC_PLAIN_KIND_SENT) {
        if (strcmp(e->sender, pc_session_identity(r->s)->username)) {
            sodium_memzero(pt, pt_len);
            free(pt);
            pc_status_set(&st, PC_ERR_CRYPTO, "a sent transcript from another account");
            bad(r, x, &st);
            return 0;
        }
        m.sent_to = t.sent_to;
        m.sent_to_len = t.sent_to_len;
    }
    if (r->ev.on_message)
        r->ev.on_message(r, &m, r->ud);
    sodium_memzero(pt, pt_len);
    free(pt);
    if (r->seen)
        pc_seen_add(r->seen, e->id);
    add_ack(r, e->id);
    return 0;
}

static void process(pc_recv *r)
{
    while (!r->paused && !r->lookup_pending && r->head && !r->freed) {
        rx_env *x = r->head;
        Parley__V1__DeviceInfo dev;
        pc_status st;

        if (r->seen && pc_seen_has(r->seen, x->e->id)) {
            add_ack(r, x->e->id);
            env_free(pop(r));
            continue;
        }
        if (!find_dev(find_sender(r, x->e->sender), x->e->sender_device, &dev)) {
            if (!x->looked_up) {
                /* on failure we are not connected: session_up resumes */
                start_lookup(r, x);
                return;
            }
            const sender *snd = find_sender(r, x->e->sender);
            pop(r);
            if (snd && snd->distrust)
                pc_status_set(&st, PC_ERR_TRUST, "%s", snd->distrust);
            else if (snd && snd->n)
                pc_status_set(&st, PC_ERR_TRUST,
                              "device %u of %s is not in %s's signed device list (removed "
                              "from the account, or added by the server)",
                              x->e->sender_device, x->e->sender, x->e->sender);
            else
                pc_status_set(&st, PC_ERR_CRYPTO, "sender %s has no device %u", x->e->sender,
                              x->e->sender_device);
            bad(r, x, &st);
            env_free(x);
            continue;
        }
        if (deliver(r, x, &dev)) {
            start_lookup(r, x);
            return;
        }
        env_free(x);
    }
}

void pc_recv_envelope(pc_recv *r, const Parley__V1__Envelope *e)
{
    size_t n = parley__v1__envelope__get_packed_size(e);
    uint8_t *buf = malloc(n ? n : 1);
    rx_env *x = calloc(1, sizeof *x);

    if (!buf || !x) {
        free(buf);
        free(x);
        return; /* unacked: redelivered after the next reconnect */
    }
    /* a deep copy: the pushed frame is freed when the push callback returns */
    parley__v1__envelope__pack(e, buf);
    x->e = parley__v1__envelope__unpack(NULL, n, buf);
    free(buf);
    if (!x->e) {
        free(x);
        return;
    }
    if (r->tail)
        r->tail->next = x;
    else
        r->head = x;
    r->tail = x;
    process(r);
}

void pc_recv_session_up(pc_recv *r)
{
    process(r);
}

void pc_recv_session_down(pc_recv *r)
{
    rx_env *x;

    while ((x = pop(r)))
        env_free(x);
    r->n_acks = 0;
    if (r->lookup_conn)
        pc_conn_forget(r->lookup_conn, r);
    r->lookup_conn = NULL;
    r->lookup_pending = 0;
    r->lookup_retry = 0;
}

void pc_recv_pause(pc_recv *r)
{
    r->paused = 1;
}

int pc_recv_idle(const pc_recv *r)
{
    return r->n_acks == 0 && r->acks_inflight == 0;
}

pc_recv *pc_recv_new(pc_session *s, pc_vault *v, pc_seen *seen, const pc_recv_events *ev,
                     void *ud, pc_status *st)
{
    pc_recv *r = calloc(1, sizeof *r);

    if (!r) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        return NULL;
    }
    r->s = s;
    r->v = v;
    r->seen = seen;
    if (ev)
        r->ev = *ev;
    r->ud = ud;
    uv_timer_init(pc_ctx_loop(pc_session_ctx(s)), &r->flush_timer);
    r->flush_timer.data = r;
    return r;
}

static void recv_closed(uv_handle_t *h)
{
    pc_recv *r = h->data;

    while (r->senders) {
        sender *s = r->senders;
        r->senders = s->next;
        free(s->distrust);
        free(s->name);
        free(s);
    }
    free(r->acks);
    free(r);
}

void pc_recv_free(pc_recv *r)
{
    rx_env *x;
    pc_conn *c;

    if (!r)
        return;
    r->freed = 1;
    memset(&r->ev, 0, sizeof r->ev);
    while ((x = pop(r)))
        env_free(x);
    if (r->lookup_conn)
        pc_conn_forget(r->lookup_conn, r);
    /* in-flight Acks wait on the session's conn with r as their ud */
    c = r->s ? pc_session_conn(r->s) : NULL;
    if (c)
        pc_conn_forget(c, r);
    uv_timer_stop(&r->flush_timer);
    uv_close((uv_handle_t *)&r->flush_timer, recv_closed);
}
