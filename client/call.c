#include "call.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "call.pb-c.h"
#include "clock.h"
#include "plain.h"
#include "send.h"
#include "turn_client.h"

_Static_assert((int)PC_CALL_OFFER == (int)PARLEY__CALL__V1__CALL_SIGNAL__TYPE__OFFER &&
                   (int)PC_CALL_BUSY == (int)PARLEY__CALL__V1__CALL_SIGNAL__TYPE__BUSY,
               "signal types are call.proto's");
_Static_assert((int)PC_CALL_DONE == (int)PARLEY__CALL__V1__CALL_SIGNAL__HANGUP_REASON__DONE &&
                   (int)PC_CALL_ACK == (int)PARLEY__CALL__V1__CALL_SIGNAL__HANGUP_REASON__ACK &&
                   (int)PC_CALL_ANSWERED_ELSEWHERE ==
                       (int)PARLEY__CALL__V1__CALL_SIGNAL__HANGUP_REASON__ANSWERED_ELSEWHERE,
               "hangup reasons are call.proto's");

#define SIG_VERSION 1
#define MEDIA_BYTES_MAX PC_MEDIA_PACKET_MAX
#define FRAME_MS_MAX 1000

/* ---- signals -------------------------------------------------------------------------- */

const char *pc_call_sig_type_name(int type)
{
    switch (type) {
    case PC_CALL_OFFER: return "offer";
    case PC_CALL_ANSWER: return "answer";
    case PC_CALL_CANDIDATE: return "candidate";
    case PC_CALL_HANGUP: return "hangup";
    case PC_CALL_BUSY: return "busy";
    default: return "unknown";
    }
}

void pc_call_sig_wipe(pc_call_sig *s)
{
    sodium_memzero(s, sizeof *s);
}

/* The checks both directions share, on the decoded form. */
static int sig_check(const pc_call_sig *s, pc_status *st)
{
    int needs_addr = s->type == PC_CALL_OFFER || s->type == PC_CALL_ANSWER ||
                     s->type == PC_CALL_CANDIDATE;

    if (!s->call_id)
        return pc_status_set(st, PC_ERR_PROTO, "call signal without a call id");
    if (s->type < PC_CALL_OFFER || s->type > PC_CALL_BUSY)
        return pc_status_set(st, PC_ERR_PROTO, "call signal of unknown type %d", s->type);
    if (s->has_key != (s->type == PC_CALL_OFFER))
        return pc_status_set(st, PC_ERR_PROTO, "a call %s %s a media key",
                             pc_call_sig_type_name(s->type),
                             s->has_key ? "must not carry" : "must carry");
    if (s->n_candidates > PC_CALL_CANDIDATES_MAX)
        return pc_status_set(st, PC_ERR_PROTO, "call %s with more than %d candidates",
                             pc_call_sig_type_name(s->type), PC_CALL_CANDIDATES_MAX);
    if (needs_addr && !s->n_candidates)
        return pc_status_set(st, PC_ERR_PROTO, "call %s without a relayed address",
                             pc_call_sig_type_name(s->type));
    if (s->type == PC_CALL_OFFER && (s->ring_s == 0 || s->ring_s > PC_CALL_RING_MAX_S))
        return pc_status_set(st, PC_ERR_PROTO, "call offer ringing for %u s (1..%d allowed)",
                             (unsigned)s->ring_s, PC_CALL_RING_MAX_S);
    if ((s->answered_device != 0) !=
        (s->type == PC_CALL_HANGUP && s->reason == PC_CALL_ANSWERED_ELSEWHERE))
        return pc_status_set(st, PC_ERR_PROTO, "a call %s %s an answering device",
                             pc_call_sig_type_name(s->type),
                             s->answered_device ? "must not name" : "must name");
    if (s->has_media && (s->frame_ms == 0 || s->frame_ms > FRAME_MS_MAX ||
                         s->audio_bytes > MEDIA_BYTES_MAX || s->video_bytes > MEDIA_BYTES_MAX))
        return pc_status_set(st, PC_ERR_PROTO, "call %s with impossible media parameters",
                             pc_call_sig_type_name(s->type));
    return 0;
}

static int addr_in(const Parley__Call__V1__Candidate *c, struct sockaddr_storage *out,
                   pc_status *st)
{
    memset(out, 0, sizeof *out);
    if (c->kind != PARLEY__CALL__V1__CANDIDATE__KIND__RELAY)
        return pc_status_set(st, PC_ERR_PROTO, "call candidate of unknown kind %d", (int)c->kind);
    if (c->port == 0 || c->port > 65535)
        return pc_status_set(st, PC_ERR_PROTO, "call candidate with port %u",
                             (unsigned)c->port);
    if (c->ip.len == 4) {
        struct sockaddr_in *a = (struct sockaddr_in *)out;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, c->ip.data, 4);
        a->sin_port = htons((uint16_t)c->port);
        return 0;
    }
    if (c->ip.len == 16) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, c->ip.data, 16);
        a->sin6_port = htons((uint16_t)c->port);
        return 0;
    }
    return pc_status_set(st, PC_ERR_PROTO, "call candidate with a %zu-byte address", c->ip.len);
}

/* c->ip points into a (no copy). */
static int addr_out(const struct sockaddr_storage *a, Parley__Call__V1__Candidate *c,
                    pc_status *st)
{
    parley__call__v1__candidate__init(c);
    c->kind = PARLEY__CALL__V1__CANDIDATE__KIND__RELAY;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
        c->ip.data = (uint8_t *)&v4->sin_addr;
        c->ip.len = 4;
        c->port = ntohs(v4->sin_port);
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;
        c->ip.data = (uint8_t *)&v6->sin6_addr;
        c->ip.len = 16;
        c->port = ntohs(v6->sin6_port);
    } else {
        return pc_status_set(st, PC_ERR_LOCAL, "call candidate of address family %d",
                             (int)a->ss_family);
    }
    if (!c->port)
        return pc_status_set(st, PC_ERR_LOCAL, "call candidate without a port");
    return 0;
}

int pc_call_sig_encode(const pc_call_sig *s, uint8_t **out, size_t *out_len, pc_status *st)
{
    Parley__Call__V1__CallSignal m = PARLEY__CALL__V1__CALL_SIGNAL__INIT;
    Parley__Call__V1__Candidate cand[PC_CALL_CANDIDATES_MAX], *candp[PC_CALL_CANDIDATES_MAX];
    Parley__Call__V1__Media media = PARLEY__CALL__V1__MEDIA__INIT;
    uint8_t key[PC_MEDIA_KEY_LEN];
    size_t n;
    uint8_t *buf;

    if (sig_check(s, st) < 0)
        return -1;
    m.version = SIG_VERSION;
    m.call_id = s->call_id;
    m.type = (Parley__Call__V1__CallSignal__Type)s->type;
    m.to_device = s->to_device;
    if (s->has_key) {
        memcpy(key, s->key, sizeof key);
        m.key.data = key;
        m.key.len = sizeof key;
    }
    for (size_t i = 0; i < s->n_candidates; i++) {
        if (addr_out(&s->candidates[i], &cand[i], st) < 0)
            return -1;
        candp[i] = &cand[i];
    }
    m.n_candidates = s->n_candidates;
    m.candidates = s->n_candidates ? candp : NULL;
    if (s->has_media) {
        media.frame_ms = s->frame_ms;
        media.audio_bytes = s->audio_bytes;
        media.video_bytes = s->video_bytes;
        m.media = &media;
    }
    m.ring_s = s->ring_s;
    m.frames_sent = s->frames_sent;
    m.reason = (Parley__Call__V1__CallSignal__HangupReason)s->reason;
    m.answered_device = s->answered_device;
    n = parley__call__v1__call_signal__get_packed_size(&m);
    if (!(buf = malloc(n ? n : 1))) {
        sodium_memzero(key, sizeof key);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    parley__call__v1__call_signal__pack(&m, buf);
    sodium_memzero(key, sizeof key);
    *out = buf;
    *out_len = n;
    return 0;
}

int pc_call_sig_decode(const uint8_t *buf, size_t len, pc_call_sig *out, pc_status *st)
{
    Parley__Call__V1__CallSignal *m;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (len > PC_PLAIN_SIGNAL_MAX)
        return pc_status_set(st, PC_ERR_PROTO, "call signal too long");
    if (!(m = parley__call__v1__call_signal__unpack(NULL, len, buf)))
        return pc_status_set(st, PC_ERR_PROTO, "malformed call signal");
    if (m->version != SIG_VERSION) {
        pc_status_set(st, PC_ERR_PROTO, "call signal version %u", (unsigned)m->version);
        goto done;
    }
    out->call_id = m->call_id;
    out->type = (int)m->type;
    out->to_device = m->to_device;
    if (m->key.len) {
        if (m->key.len != PC_MEDIA_KEY_LEN) {
            pc_status_set(st, PC_ERR_PROTO, "call media key of %zu bytes", m->key.len);
            goto done;
        }
        memcpy(out->key, m->key.data, PC_MEDIA_KEY_LEN);
        out->has_key = 1;
    }
    if (m->n_candidates > PC_CALL_CANDIDATES_MAX) {
        pc_status_set(st, PC_ERR_PROTO, "call signal with more than %d candidates",
                      PC_CALL_CANDIDATES_MAX);
        goto done;
    }
    for (size_t i = 0; i < m->n_candidates; i++)
        if (addr_in(m->candidates[i], &out->candidates[i], st) < 0)
            goto done;
    out->n_candidates = m->n_candidates;
    if (m->media) {
        out->has_media = 1;
        out->frame_ms = m->media->frame_ms;
        out->audio_bytes = m->media->audio_bytes;
        out->video_bytes = m->media->video_bytes;
    }
    out->ring_s = m->ring_s;
    out->frames_sent = m->frames_sent;
    out->reason = (int)m->reason;
    out->answered_device = m->answered_device;
    rc = sig_check(out, st);
done:
    if (m->key.data)
        sodium_memzero(m->key.data, m->key.len);
    parley__call__v1__call_signal__free_unpacked(m, NULL);
    if (rc < 0)
        pc_call_sig_wipe(out);
    return rc;
}

int pc_call_offer_fresh(const pc_call_sig *offer, uint64_t accepted_ms, uint64_t now_ms)
{
    /* a clock behind the server's counts as no time passed */
    return now_ms < accepted_ms || now_ms - accepted_ms < (uint64_t)offer->ring_s * 1000;
}

pc_call_route_t pc_call_route(const pc_call_view *v, const char *sender, uint32_t sender_device,
                              const pc_call_sig *s)
{
    if (s->to_device && s->to_device != v->own_device)
        return PC_CALL_ROUTE_IGNORE;
    if (s->call_id != v->call_id)
        return s->type == PC_CALL_OFFER ? PC_CALL_ROUTE_BUSY : PC_CALL_ROUTE_IGNORE;
    if (strcmp(sender, v->peer) || (v->peer_device && sender_device != v->peer_device))
        return PC_CALL_ROUTE_IGNORE;
    switch (s->type) {
    case PC_CALL_ANSWER:
    case PC_CALL_BUSY:
        return v->caller ? PC_CALL_ROUTE_TAKE : PC_CALL_ROUTE_IGNORE;
    case PC_CALL_HANGUP:
        /* the device that took the call goes on; the others stop ringing */
        return s->reason == PC_CALL_ANSWERED_ELSEWHERE && s->answered_device == v->own_device
                   ? PC_CALL_ROUTE_IGNORE
                   : PC_CALL_ROUTE_TAKE;
    case PC_CALL_CANDIDATE:
        return PC_CALL_ROUTE_TAKE;
    default:
        return PC_CALL_ROUTE_IGNORE; /* an offer of this very call: a redelivery */
    }
}

int pc_call_all_busy(const uint32_t *offered, size_t n, const uint32_t *busy, size_t nbusy)
{
    if (n == 0)
        return 0; /* not known yet where the offer went */
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < nbusy && busy[j] != offered[i])
            j++;
        if (j == nbusy)
            return 0;
    }
    return 1;
}

void pc_call_format_stats(uint64_t call_id, const pc_media_stats *ms, char *out, size_t cap)
{
    snprintf(out, cap,
             "call %016" PRIx64 ": sent %" PRIu64 " received %" PRIu64 " lost %" PRIu64
             " (%.1f%%) rtt %.1f ms jitter %.1f ms",
             call_id, ms->sent, ms->received, ms->lost, ms->loss_pct, ms->rtt_ms, ms->jitter_ms);
}

/* ---- a call ---------------------------------------------------------------------------- */

enum {
    S_CREDS,      /* asking the gateway for TURN credentials */
    S_ALLOC,      /* allocating on the relay */
    S_RINGING,    /* caller: the offer is out */
    S_BINDING,    /* permission and channel to the peer's relayed address */
    S_WAIT_MEDIA, /* callee: answered, until the caller's first packet */
    S_MEDIA,
    S_STOPPING,   /* the BYE exchange (media.h) */
    S_HANGUP,     /* the last signal is on its way */
    S_DONE,       /* on_end is due or made */
};

typedef struct sig_op {
    struct sig_op *next;
    pc_call *c;
    pc_sendop *op;
    int type;
    int last;     /* the call's last signal: on_end follows it */
} sig_op;

struct pc_call {
    pc_session *s;
    pc_vault *v;
    uv_loop_t *loop;
    pc_call_events ev;
    void *ud;
    int caller;
    int state;
    uint64_t call_id;
    char peer[PARLEY_NAME_MAX + 1];
    uint32_t peer_device;
    uint8_t key[PC_MEDIA_KEY_LEN];
    pc_call_opts o;
    int video;
    struct sockaddr_storage peer_addr;  /* the peer's relayed address */
    struct sockaddr_storage own_addr;   /* ours */
    pc_conn *creds_conn;                /* where GetTurnCredentials waits, if it does */
    pc_turn *turn;
    pc_media *media;
    int peer_bye, stopped;
    pc_call_result res;
    pc_status end_st;
    sig_op *ops;
    /* caller: the callee's devices the offer went to (0 until the server accepted it), and
     * those that answered BUSY */
    uint32_t offered[PARLEY_MAX_ENVELOPES_PER_SEND];
    size_t noffered;
    uint32_t busy[PARLEY_MAX_ENVELOPES_PER_SEND];
    size_t nbusy;
    uv_timer_t timer;                   /* the phase's deadline */
    uv_timer_t notify;                  /* on_end, from the loop rather than a nested call */
    int open_handles;                   /* timers and the pc_turn still closing */
    int freed;
};

static void on_timer(uv_timer_t *t);
static void end_call(pc_call *c, pc_call_end end, const pc_status *st, int hangup);

static pc_call_view view_of(const pc_call *c)
{
    pc_call_view v = { c->caller, c->call_id, c->peer, c->peer_device,
                       pc_session_identity(c->s)->device_id };
    return v;
}

static void arm(pc_call *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void notify_cb(uv_timer_t *t)
{
    pc_call *c = t->data;

    if (!c->freed && c->ev.on_end)
        c->ev.on_end(c, &c->end_st, &c->res, c->ud);
}

static void report_end(pc_call *c)
{
    c->state = S_DONE;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->notify, notify_cb, 0, 0);
}

/* ---- signals in flight ---------------------------------------------------------------- */

static void sig_sent(pc_sendop *op, const pc_status *st, const pc_send_result *res, void *ud)
{
    sig_op *so = ud, **pp;
    pc_call *c = so->c;

    for (pp = &c->ops; *pp && *pp != so; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = so->next;
    pc_sendop_free(op);
    if (res && res->key_changed)
        c->res.key_changed = 1;
    if (res && so->type == PC_CALL_OFFER && st->kind == PC_OK) {
        c->noffered = res->count < PARLEY_MAX_ENVELOPES_PER_SEND ? res->count
                                                                 : PARLEY_MAX_ENVELOPES_PER_SEND;
        memcpy(c->offered, res->device_ids, c->noffered * sizeof *c->offered);
        /* BUSY answers that came before the server's answer to the offer */
        if (c->state == S_RINGING && pc_call_all_busy(c->offered, c->noffered, c->busy, c->nbusy)) {
            free(so);
            end_call(c, PC_CALL_END_BUSY, NULL, PC_CALL_NO_ANSWER);
            return;
        }
    }
    if (so->last) {
        free(so);
        report_end(c);
        return;
    }
    if (st->kind != PC_OK && (so->type == PC_CALL_OFFER || so->type == PC_CALL_ANSWER) &&
        c->state < S_HANGUP) {
        c->end_st = *st;
        c->res.end = PC_CALL_END_FAILED;
        free(so);
        report_end(c);
        return;
    }
    free(so);
}

/* Sends s to account to (the peer unless a busy answer goes elsewhere). last: the call ends
 * once it went (or failed). */
static int send_sig(pc_call *c, const char *to, pc_call_sig *s, int last, pc_status *st)
{
    sig_op *so = calloc(1, sizeof *so);
    uint8_t *buf = NULL;
    size_t len = 0;

    s->call_id = s->call_id ? s->call_id : c->call_id;
    if (!so) {
        pc_call_sig_wipe(s);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    if (pc_call_sig_encode(s, &buf, &len, st) < 0) {
        pc_call_sig_wipe(s);
        free(so);
        return -1;
    }
    so->c = c;
    so->type = s->type;
    so->last = last;
    so->op = pc_sendop_start_call(c->s, c->v, to, buf, len, PC_CALL_SIGNAL_TIMEOUT_MS, sig_sent,
                                  so, st);
    sodium_memzero(buf, len);
    free(buf);
    pc_call_sig_wipe(s);
    if (!so->op) {
        free(so);
        return -1;
    }
    so->next = c->ops;
    c->ops = so;
    return 0;
}

/* The call is over: with hangup set, a HANGUP of that reason goes to the peer first. */
static void end_call(pc_call *c, pc_call_end end, const pc_status *st, int hangup)
{
    pc_call_sig s;
    pc_status e;

    if (c->state >= S_HANGUP)
        return;
    c->res.end = end;
    if (st)
        c->end_st = *st;
    if (c->media) {
        pc_media_get_stats(c->media, &c->res.stats);
        pc_media_stop(c->media);
    }
    if (!hangup) {
        report_end(c);
        return;
    }
    memset(&s, 0, sizeof s);
    s.type = PC_CALL_HANGUP;
    s.to_device = c->peer_device;
    s.reason = hangup;
    s.frames_sent = c->res.media_ran ? c->res.stats.sent : 0;
    c->state = S_HANGUP;
    uv_timer_stop(&c->timer);
    if (send_sig(c, c->peer, &s, 1, &e) < 0)
        report_end(c);
}

static void fail_call(pc_call *c, const pc_status *st)
{
    /* the peer hears of it once it could have heard of the call */
    int told = c->caller ? c->state >= S_RINGING : c->state >= S_WAIT_MEDIA;

    end_call(c, PC_CALL_END_FAILED, st, told ? PC_CALL_FAILED : 0);
}

/* ---- media ---------------------------------------------------------------------------- */

/* The media is over on our side: its counts go into the result and to the peer. */
static void media_done(pc_call *c)
{
    if (c->state != S_STOPPING)
        return;
    pc_media_get_stats(c->media, &c->res.stats);
    c->res.media_ran = 1;
    end_call(c, PC_CALL_END_DONE, NULL, c->caller ? PC_CALL_DONE : PC_CALL_ACK);
}

static void stop_media(pc_call *c)
{
    if (c->state != S_MEDIA)
        return;
    c->state = S_STOPPING;
    uv_timer_stop(&c->timer);
    pc_media_stop(c->media);
}

static void on_peer_bye(pc_media *m, uint64_t peer_sent, void *arg)
{
    pc_call *c = arg;

    (void)m;
    (void)peer_sent;
    c->peer_bye = 1;
    if (c->state == S_MEDIA)
        stop_media(c); /* the peer ended the call */
    else if (c->stopped)
        media_done(c);
}

static void on_stopped(pc_media *m, int acked, void *arg)
{
    pc_call *c = arg;

    (void)m;
    (void)acked;
    c->stopped = 1;
    if (c->peer_bye)
        media_done(c);
    else
        arm(c, PC_CALL_END_GRACE_MS); /* then without the peer's own count */
}

static int start_media(pc_call *c)
{
    pc_media_config cfg = { c->caller ? PC_MEDIA_CALLER : PC_MEDIA_CALLEE, c->video };
    pc_media_cbs cbs = { on_peer_bye, on_stopped };
    pc_status st;

    c->media = pc_media_new(c->loop, c->turn, (const struct sockaddr *)&c->peer_addr, c->key,
                            &cfg, &cbs, c, &st);
    if (!c->media) {
        fail_call(c, &st);
        return -1;
    }
    c->state = S_MEDIA;
    c->res.media_ran = 1;
    uv_timer_stop(&c->timer);
    if (c->caller)
        arm(c, (uint64_t)(c->o.seconds * 1000));
    if (c->ev.on_connected)
        c->ev.on_connected(c, c->ud);
    return 0;
}

/* ---- the relay ------------------------------------------------------------------------ */

static void fill_media(const pc_call *c, pc_call_sig *s)
{
    s->has_media = 1;
    s->frame_ms = PC_MEDIA_FRAME_MS;
    s->audio_bytes = PC_MEDIA_AUDIO_BYTES;
    s->video_bytes = c->video ? PC_MEDIA_VIDEO_BYTES : 0;
}

static void send_offer(pc_call *c)
{
    pc_call_sig s;
    pc_status st;

    memset(&s, 0, sizeof s);
    s.type = PC_CALL_OFFER;
    s.has_key = 1;
    memcpy(s.key, c->key, sizeof s.key);
    s.n_candidates = 1;
    s.candidates[0] = c->own_addr;
    fill_media(c, &s);
    s.ring_s = c->o.ring_s;
    c->state = S_RINGING;
    arm(c, (uint64_t)c->o.ring_s * 1000);
    if (send_sig(c, c->peer, &s, 0, &st) < 0)
        end_call(c, PC_CALL_END_FAILED, &st, 0);
}

static void send_answer(pc_call *c)
{
    pc_call_sig s;
    pc_status st;

    memset(&s, 0, sizeof s);
    s.type = PC_CALL_ANSWER;
    s.to_device = c->peer_device;
    s.n_candidates = 1;
    s.candidates[0] = c->own_addr;
    fill_media(c, &s);
    c->state = S_WAIT_MEDIA;
    if (send_sig(c, c->peer, &s, 0, &st) < 0)
        end_call(c, PC_CALL_END_FAILED, &st, 0);
}

static void bind_peer(pc_call *c)
{
    pc_status st;

    c->state = S_BINDING;
    if (pc_turn_add_peer(c->turn, (const struct sockaddr *)&c->peer_addr, &st) < 0)
        fail_call(c, &st);
}

static void on_ready(pc_turn *t, const struct sockaddr *relayed, const struct sockaddr *mapped,
                     void *arg)
{
    pc_call *c = arg;

    (void)t;
    (void)mapped;
    if (c->state != S_ALLOC)
        return;
    memset(&c->own_addr, 0, sizeof c->own_addr);
    memcpy(&c->own_addr, relayed,
           relayed->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                          : sizeof(struct sockaddr_in));
    if (c->caller)
        send_offer(c);
    else
        bind_peer(c);
}

static void on_peer(pc_turn *t, const struct sockaddr *peer, void *arg)
{
    pc_call *c = arg;

    (void)t;
    (void)peer;
    if (c->state != S_BINDING)
        return;
    if (c->caller)
        start_media(c);
    else
        send_answer(c);
}

static void on_data(pc_turn *t, const struct sockaddr *peer, const uint8_t *data, size_t len,
                    void *arg)
{
    pc_call *c = arg;

    (void)t;
    (void)peer;
    /* the caller's first packet: its permission for us exists, our media can flow */
    if (!c->media && c->state == S_WAIT_MEDIA && start_media(c) < 0)
        return;
    if (c->media)
        pc_media_input(c->media, data, len);
}

static void on_turn_error(pc_turn *t, const pc_status *st, void *arg)
{
    pc_call *c = arg;
    pc_status e;

    (void)t;
    pc_status_set(&e, st->kind, "relay: %s", st->msg);
    if (c->state == S_STOPPING)
        media_done(c);  /* what was counted stands */
    else
        fail_call(c, &e);
}

static void on_turn_closed(pc_turn *t, void *arg);

static void got_creds(pc_call *c, const Parley__V1__TurnCredentials *tc)
{
    pc_turn_cbs cbs = { on_ready, on_peer, on_data, on_turn_error, on_turn_closed };
    pc_turn_config cfg;
    char host[PC_TURN_HOST_MAX];
    uint16_t port;
    pc_status st;

    pc_status_set(&st, PC_ERR_PROTO, "the server named no TURN relay");
    for (size_t i = 0; i < tc->n_uris; i++) {
        if (pc_turn_uri_parse(tc->uris[i], host, sizeof host, &port, &st) < 0)
            continue;
        memset(&cfg, 0, sizeof cfg);
        cfg.uri = tc->uris[i];
        cfg.username = tc->username;
        cfg.password = tc->password;
        c->state = S_ALLOC;
        if (!(c->turn = pc_turn_new(c->loop, &cfg, &cbs, c, &st)))
            break;
        c->open_handles++;
        return;
    }
    fail_call(c, &st);
}

static void on_creds(pc_conn *conn, const Parley__V1__ServerFrame *f, const pc_status *st,
                     void *ud)
{
    pc_call *c = ud;
    pc_status r;

    (void)conn;
    c->creds_conn = NULL;
    if (c->state != S_CREDS)
        return;
    if (!f) {
        (void)st; /* the session reconnects and asks again (session_up) */
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_TURN_CREDENTIALS && f->turn_credentials) {
        got_creds(c, f->turn_credentials);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error) {
        pc_status_from_error(&r, f->error);
        if (f->error->code == PARLEY__V1__ERROR_CODE__NOT_CONFIGURED)
            pc_status_set(&r, PC_ERR_SERVER, "the server offers no TURN relay for calls"),
                r.server_code = f->error->code;
        else if (f->error->code == PARLEY__V1__ERROR_CODE__RATE_LIMITED)
            pc_status_set(&r, PC_ERR_SERVER,
                          "too many calls: TURN credentials rate limited, try again in %u s",
                          (unsigned)((f->error->retry_after_ms + 999) / 1000)),
                r.server_code = f->error->code;
        fail_call(c, &r);
        return;
    }
    pc_status_set(&r, PC_ERR_PROTO, "unexpected answer to GetTurnCredentials (frame %d)",
                  (int)f->body_case);
    fail_call(c, &r);
}

static void ask_creds(pc_call *c)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__GetTurnCredentials g = PARLEY__V1__GET_TURN_CREDENTIALS__INIT;
    pc_conn *conn = pc_session_conn(c->s);
    pc_status st;

    if (c->state != S_CREDS || c->creds_conn || !conn)
        return; /* asked already, or asked when the session is up */
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_GET_TURN_CREDENTIALS;
    f.get_turn_credentials = &g;
    if (pc_conn_request(conn, &f, on_creds, c, &st) == 0)
        c->creds_conn = conn;
    else if (st.kind != PC_ERR_NET)
        fail_call(c, &st);
}

/* ---- timers and input ----------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    pc_call *c = t->data;
    pc_status st;

    switch (c->state) {
    case S_RINGING:
        end_call(c, PC_CALL_END_NO_ANSWER, NULL, PC_CALL_NO_ANSWER);
        break;
    case S_MEDIA:
        stop_media(c); /* the call's seconds are over */
        break;
    case S_STOPPING:
        media_done(c); /* the peer's BYE never came */
        break;
    case S_WAIT_MEDIA:
        pc_status_set(&st, PC_ERR_TIMEOUT, "no media from %s within %d s of answering", c->peer,
                      PC_CALL_SETUP_TIMEOUT_MS / 1000);
        fail_call(c, &st);
        break;
    case S_DONE:
    case S_HANGUP:
        break;
    default:
        pc_status_set(&st, PC_ERR_TIMEOUT, "the call could not be set up within %d s%s",
                      PC_CALL_SETUP_TIMEOUT_MS / 1000,
                      c->state == S_CREDS ? " (no TURN credentials from the server)"
                      : c->state == S_ALLOC ? " (no allocation on the relay)"
                                            : " (no channel to the peer on the relay)");
        fail_call(c, &st);
    }
}

/* Caller, on the answer: the callee's other devices stop ringing (and any of them that
 * answered too gives up). Not needed when the offer went to that one device only. */
static void stop_other_devices(pc_call *c)
{
    pc_call_sig s;
    pc_status st;

    if (c->noffered == 1 && c->offered[0] == c->peer_device)
        return;
    memset(&s, 0, sizeof s);
    s.type = PC_CALL_HANGUP;
    s.reason = PC_CALL_ANSWERED_ELSEWHERE;
    s.answered_device = c->peer_device;
    send_sig(c, c->peer, &s, 0, &st); /* best effort: the others' ring times out otherwise */
}

static void reply_busy(pc_call *c, const pc_call_message *m, const pc_call_sig *sig)
{
    pc_call_sig s;
    pc_status st;

    memset(&s, 0, sizeof s);
    s.type = PC_CALL_BUSY;
    s.call_id = sig->call_id;
    s.to_device = m->sender_device;
    send_sig(c, m->sender, &s, 0, &st); /* best effort: the caller's ring times out otherwise */
}

void pc_call_input(pc_call *c, const pc_call_message *m, const pc_call_sig *sig)
{
    pc_call_view v = view_of(c);

    if (c->freed)
        return;
    switch (pc_call_route(&v, m->sender, m->sender_device, sig)) {
    case PC_CALL_ROUTE_BUSY:
        if (c->state != S_DONE && pc_call_offer_fresh(sig, m->timestamp_ms, pclock_wall_ms()))
            reply_busy(c, m, sig);
        return;
    case PC_CALL_ROUTE_IGNORE:
        return;
    case PC_CALL_ROUTE_TAKE:
        break;
    }
    if (m->key_changed)
        c->res.key_changed = 1;
    switch (sig->type) {
    case PC_CALL_ANSWER:
        if (c->state != S_RINGING)
            return;
        c->peer_device = m->sender_device;
        c->res.peer_device = m->sender_device;
        c->peer_addr = sig->candidates[0];
        c->video = c->video && sig->has_media && sig->video_bytes;
        arm(c, PC_CALL_SETUP_TIMEOUT_MS);
        stop_other_devices(c);
        bind_peer(c);
        return;
    case PC_CALL_BUSY:
        if (c->state != S_RINGING)
            return;
        if (c->nbusy < PARLEY_MAX_ENVELOPES_PER_SEND &&
            !pc_call_all_busy(&m->sender_device, 1, c->busy, c->nbusy))
            c->busy[c->nbusy++] = m->sender_device;
        /* while another device of the callee may still answer, the call rings on */
        if (pc_call_all_busy(c->offered, c->noffered, c->busy, c->nbusy)) {
            c->res.peer_device = m->sender_device;
            end_call(c, PC_CALL_END_BUSY, NULL, PC_CALL_NO_ANSWER);
        }
        return;
    case PC_CALL_HANGUP:
        if (c->state == S_MEDIA || c->state == S_STOPPING) {
            pc_media_set_peer_sent(c->media, sig->frames_sent);
            c->peer_bye = 1;
            if (c->state == S_MEDIA)
                stop_media(c);
            else if (c->stopped)
                media_done(c);
        } else if (c->state < S_HANGUP && sig->reason == PC_CALL_FAILED) {
            /* the peer answered but could not set up its side (relay, credentials) */
            pc_status e;
            pc_status_set(&e, PC_ERR_PROTO, "%s could not set up the call on its side",
                          c->peer);
            end_call(c, PC_CALL_END_FAILED, &e, 0);
        } else if (c->state < S_HANGUP) {
            end_call(c, sig->reason == PC_CALL_ANSWERED_ELSEWHERE ? PC_CALL_END_ELSEWHERE
                                                                  : PC_CALL_END_HUNG_UP,
                     NULL, 0);
        }
        return;
    default:
        return; /* further candidates: one relayed address is all this client uses */
    }
}

void pc_call_session_up(pc_call *c)
{
    if (c->freed)
        return;
    for (sig_op *so = c->ops; so; so = so->next)
        pc_sendop_session_up(so->op);
    ask_creds(c);
}

void pc_call_session_down(pc_call *c, const pc_status *st)
{
    if (c->freed)
        return;
    for (sig_op *so = c->ops; so; so = so->next)
        pc_sendop_session_down(so->op, st);
    c->creds_conn = NULL;
}

uint64_t pc_call_id(const pc_call *c)
{
    return c->call_id;
}

/* ---- life ----------------------------------------------------------------------------- */

static void release(pc_call *c)
{
    if (--c->open_handles == 0) {
        sodium_memzero(c->key, sizeof c->key);
        free(c);
    }
}

static void on_turn_closed(pc_turn *t, void *arg)
{
    (void)t;
    release(arg);
}

static void timer_closed(uv_handle_t *h)
{
    release(h->data);
}

static pc_call *call_new(pc_session *s, pc_vault *v, const pc_call_events *ev, void *ud,
                         pc_status *st)
{
    pc_call *c = calloc(1, sizeof *c);

    if (!c) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        return NULL;
    }
    c->s = s;
    c->v = v;
    c->loop = pc_ctx_loop(pc_session_ctx(s));
    if (ev)
        c->ev = *ev;
    c->ud = ud;
    pc_status_ok(&c->end_st);
    uv_timer_init(c->loop, &c->timer);
    uv_timer_init(c->loop, &c->notify);
    c->timer.data = c->notify.data = c;
    c->open_handles = 2;
    return c;
}

static void start(pc_call *c)
{
    c->res.call_id = c->call_id;
    c->res.peer = c->peer;
    c->state = S_CREDS;
    arm(c, PC_CALL_SETUP_TIMEOUT_MS);
    ask_creds(c);
}

pc_call *pc_call_dial(pc_session *s, pc_vault *v, const char *peer, const pc_call_opts *o,
                      const pc_call_events *ev, void *ud, pc_status *st)
{
    pc_call *c;
    char norm[PARLEY_NAME_MAX + 1];

    if (pauth_name_normalize(peer, norm) < 0) {
        pc_status_set(st, PC_ERR_LOCAL, "invalid account name %s", peer);
        return NULL;
    }
    if (!(o->seconds > 0) || o->seconds > PC_CALL_SECONDS_MAX || o->ring_s == 0 ||
        o->ring_s > PC_CALL_RING_MAX_S) {
        pc_status_set(st, PC_ERR_LOCAL, "a call lasts more than 0 and at most %d s, and rings 1..%d s",
                      PC_CALL_SECONDS_MAX, PC_CALL_RING_MAX_S);
        return NULL;
    }
    if (!(c = call_new(s, v, ev, ud, st)))
        return NULL;
    c->caller = 1;
    c->o = *o;
    c->video = o->video;
    snprintf(c->peer, sizeof c->peer, "%s", norm);
    while (!c->call_id)
        randombytes_buf(&c->call_id, sizeof c->call_id);
    randombytes_buf(c->key, sizeof c->key);
    start(c);
    return c;
}

pc_call *pc_call_answer(pc_session *s, pc_vault *v, const pc_call_message *m,
                        const pc_call_sig *offer, const pc_call_events *ev, void *ud,
                        pc_status *st)
{
    pc_call *c;

    if (offer->type != PC_CALL_OFFER || !offer->has_key || !offer->n_candidates) {
        pc_status_set(st, PC_ERR_LOCAL, "not a call offer");
        return NULL;
    }
    if (!(c = call_new(s, v, ev, ud, st)))
        return NULL;
    c->call_id = offer->call_id;
    snprintf(c->peer, sizeof c->peer, "%s", m->sender);
    c->peer_device = m->sender_device;
    c->res.peer_device = m->sender_device;
    c->res.key_changed = m->key_changed;
    memcpy(c->key, offer->key, sizeof c->key);
    c->peer_addr = offer->candidates[0];
    c->video = offer->has_media && offer->video_bytes > 0;
    start(c);
    return c;
}

int pc_call_over(const pc_call *c)
{
    return c->state == S_DONE;
}

void pc_call_free(pc_call *c)
{
    if (!c)
        return;
    c->freed = 1;
    while (c->ops) {
        sig_op *so = c->ops;
        c->ops = so->next;
        pc_sendop_free(so->op);
        free(so);
    }
    if (c->creds_conn)
        pc_conn_forget(c->creds_conn, c);
    c->creds_conn = NULL;
    /* the media first: it sends through the pc_turn */
    pc_media_free(c->media);
    c->media = NULL;
    if (c->turn)
        pc_turn_close(c->turn); /* on_turn_closed releases its share */
    c->turn = NULL;
    uv_timer_stop(&c->timer);
    uv_timer_stop(&c->notify);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
    uv_close((uv_handle_t *)&c->notify, timer_closed);
}
