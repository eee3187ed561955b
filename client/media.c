/* media.c: the media stream of one call (media.h). Timestamps are microseconds of the
 * monotonic clock (uv_hrtime); each side reads only its own, except in the jitter, where the
 * constant offset between the two clocks cancels out. */
#include "media.h"

#include <string.h>

#include <sodium.h>

#define MEDIA_TS_LEN 8
#define MEDIA_IDX_LEN 8
#define MEDIA_COUNTED_LEN (MEDIA_TS_LEN + MEDIA_IDX_LEN)

_Static_assert(PC_MEDIA_KEY_LEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES, "key length");
_Static_assert(PC_MEDIA_TAG_LEN == crypto_aead_chacha20poly1305_ietf_ABYTES, "tag length");
_Static_assert(PC_MEDIA_REPLAY_WINDOW % 64 == 0 && PC_MEDIA_REPLAY_WINDOW >= 64, "window");
_Static_assert(PC_MEDIA_HDR_LEN + PC_MEDIA_VIDEO_BYTES + PC_MEDIA_TAG_LEN <= PC_MEDIA_PACKET_MAX,
               "a video packet fits");
_Static_assert(PC_MEDIA_AUDIO_BYTES >= MEDIA_COUNTED_LEN + MEDIA_TS_LEN, "audio body");

struct pc_media {
    uv_loop_t *loop;
    pc_turn *turn; /* not owned */
    struct sockaddr_storage peer;
    uint8_t key[PC_MEDIA_KEY_LEN];
    pc_media_config cfg;
    pc_media_cbs cbs;
    void *arg;
    uint8_t dir, peer_dir;

    uv_timer_t frame_timer; /* HELLO before flowing, then audio */
    uv_timer_t video_timer;
    uv_timer_t ping_timer;
    uv_timer_t bye_timer;
    int handles_open;
    int freeing;

    int flowing;
    int stopping;
    int bye_tries;
    int stop_reported;
    uint64_t next_seq;
    uint64_t next_idx; /* counted packets sent */
    uint64_t audio_sent, video_sent, send_errors;

    pc_media_replay win;
    uint64_t received, audio_received, video_received;
    int have_idx;
    uint64_t max_idx;
    int peer_sent_known;
    uint64_t peer_sent;
    pc_media_jitter jitter;
    uint64_t rtt_samples;
    double rtt_sum_ms, rtt_min_ms, rtt_max_ms;
    uint64_t dropped_auth, dropped_replay, dropped_old;

    uint8_t pkt[PC_MEDIA_PACKET_MAX];
    uint8_t body[PC_MEDIA_PACKET_MAX];
};

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static int64_t now_us(void)
{
    return (int64_t)(uv_hrtime() / 1000);
}

/* ---- pure parts ---- */

static void make_nonce(uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES], uint8_t dir,
                       uint64_t seq)
{
    memset(nonce, 0, crypto_aead_chacha20poly1305_ietf_NPUBBYTES);
    nonce[3] = dir;
    put_u64(nonce + 4, seq);
}

long pc_media_seal(uint8_t *out, size_t cap, const uint8_t key[PC_MEDIA_KEY_LEN], uint8_t dir,
                   uint8_t type, uint64_t seq, const uint8_t *body, size_t blen)
{
    uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    unsigned long long clen = 0;
    size_t total = PC_MEDIA_HDR_LEN + blen + PC_MEDIA_TAG_LEN;
    if (total > cap || total > PC_MEDIA_PACKET_MAX || dir > 1)
        return -1;
    out[0] = PC_MEDIA_VERSION;
    out[1] = type;
    out[2] = dir;
    out[3] = 0;
    put_u64(out + 4, seq);
    make_nonce(nonce, dir, seq);
    if (crypto_aead_chacha20poly1305_ietf_encrypt(out + PC_MEDIA_HDR_LEN, &clen, body, blen, out,
                                                  PC_MEDIA_HDR_LEN, NULL, nonce, key) != 0)
        return -1;
    return (long)(PC_MEDIA_HDR_LEN + clen);
}

long pc_media_open(uint8_t *body, size_t cap, const uint8_t key[PC_MEDIA_KEY_LEN],
                   const uint8_t *pkt, size_t len, uint8_t *dir, uint8_t *type, uint64_t *seq)
{
    uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    unsigned long long mlen = 0;
    if (len < PC_MEDIA_HDR_LEN + PC_MEDIA_TAG_LEN || len > PC_MEDIA_PACKET_MAX)
        return -1;
    if (pkt[0] != PC_MEDIA_VERSION || pkt[2] > 1 || pkt[3] != 0 || pkt[1] < PC_MEDIA_T_AUDIO ||
        pkt[1] > PC_MEDIA_T_HELLO_ACK)
        return -1;
    if (len - PC_MEDIA_HDR_LEN - PC_MEDIA_TAG_LEN > cap)
        return -1;
    make_nonce(nonce, pkt[2], get_u64(pkt + 4));
    if (crypto_aead_chacha20poly1305_ietf_decrypt(body, &mlen, NULL, pkt + PC_MEDIA_HDR_LEN,
                                                  len - PC_MEDIA_HDR_LEN, pkt, PC_MEDIA_HDR_LEN,
                                                  nonce, key) != 0)
        return -1;
    *dir = pkt[2];
    *type = pkt[1];
    *seq = get_u64(pkt + 4);
    return (long)mlen;
}

#define WINDOW_WORDS (PC_MEDIA_REPLAY_WINDOW / 64)

int pc_media_replay_check(const pc_media_replay *w, uint64_t seq)
{
    uint64_t diff;
    if (!w->any || seq > w->top)
        return PC_MEDIA_REPLAY_OK;
    diff = w->top - seq;
    if (diff >= PC_MEDIA_REPLAY_WINDOW)
        return PC_MEDIA_REPLAY_OLD;
    return (w->bits[diff / 64] >> (diff % 64)) & 1 ? PC_MEDIA_REPLAY_DUP : PC_MEDIA_REPLAY_OK;
}

/* Moves every remembered number n places older (bit i becomes bit i + n). */
static void window_shift(pc_media_replay *w, uint64_t n)
{
    if (n >= PC_MEDIA_REPLAY_WINDOW) {
        memset(w->bits, 0, sizeof w->bits);
        return;
    }
    size_t ws = (size_t)(n / 64), bs = (size_t)(n % 64);
    for (size_t k = WINDOW_WORDS; k-- > 0;) {
        uint64_t v = 0;
        if (k >= ws) {
            v = w->bits[k - ws] << bs;
            if (bs && k - ws >= 1)
                v |= w->bits[k - ws - 1] >> (64 - bs);
        }
        w->bits[k] = v;
    }
}

int pc_media_replay_accept(pc_media_replay *w, uint64_t seq)
{
    int rc = pc_media_replay_check(w, seq);
    if (rc != PC_MEDIA_REPLAY_OK)
        return rc;
    if (!w->any) {
        w->any = 1;
        w->top = seq;
        memset(w->bits, 0, sizeof w->bits);
    } else if (seq > w->top) {
        window_shift(w, seq - w->top);
        w->top = seq;
    }
    uint64_t diff = w->top - seq;
    w->bits[diff / 64] |= (uint64_t)1 << (diff % 64);
    return PC_MEDIA_REPLAY_OK;
}

void pc_media_jitter_add(pc_media_jitter *j, int64_t sent_us, int64_t arrived_us)
{
    int64_t transit = arrived_us - sent_us;
    if (j->have) {
        int64_t d = transit - j->last_transit_us;
        double ad = (double)(d < 0 ? -d : d);
        j->jitter_us += (ad - j->jitter_us) / 16.0;
    }
    j->have = 1;
    j->last_transit_us = transit;
}

void pc_media_loss(uint64_t expected, uint64_t received, uint64_t *lost, double *pct)
{
    *lost = expected > received ? expected - received : 0;
    *pct = expected ? 100.0 * (double)*lost / (double)expected : 0.0;
}

/* ---- sending ---- */

/* Seals and sends one packet; body holds blen bytes. Counted types take the next index
 * (written here into the body after the timestamp). */
static void send_packet(pc_media *m, uint8_t type, uint8_t *body, size_t blen)
{
    pc_status st;
    long n;
    if (!m->turn)
        return;
    put_u64(body, (uint64_t)now_us());
    if (type <= PC_MEDIA_T_ECHO)
        put_u64(body + MEDIA_TS_LEN, m->next_idx);
    n = pc_media_seal(m->pkt, sizeof m->pkt, m->key, m->dir, type, m->next_seq, body, blen);
    if (n < 0) {
        m->send_errors++;
        return;
    }
    m->next_seq++;
    if (type <= PC_MEDIA_T_ECHO)
        m->next_idx++; /* sent as far as we know: loss on the way is the peer's count */
    if (pc_turn_send(m->turn, (const struct sockaddr *)&m->peer, m->pkt, (size_t)n, &st) < 0)
        m->send_errors++;
}

static void send_filler(pc_media *m, uint8_t type, size_t size)
{
    uint8_t body[PC_MEDIA_VIDEO_BYTES > PC_MEDIA_AUDIO_BYTES ? PC_MEDIA_VIDEO_BYTES
                                                             : PC_MEDIA_AUDIO_BYTES];
    memset(body, 0, size);
    send_packet(m, type, body, size);
}

static void send_small(pc_media *m, uint8_t type, const uint8_t *extra, size_t elen)
{
    uint8_t body[MEDIA_COUNTED_LEN + 8];
    size_t off = type <= PC_MEDIA_T_ECHO ? MEDIA_COUNTED_LEN : MEDIA_TS_LEN;
    memset(body, 0, sizeof body);
    if (elen)
        memcpy(body + off, extra, elen);
    send_packet(m, type, body, off + elen);
}

static void on_frame(uv_timer_t *h)
{
    pc_media *m = h->data;
    if (!m->flowing) {
        send_small(m, PC_MEDIA_T_HELLO, NULL, 0);
        return;
    }
    send_filler(m, PC_MEDIA_T_AUDIO, PC_MEDIA_AUDIO_BYTES);
    m->audio_sent++;
}

static void on_video(uv_timer_t *h)
{
    pc_media *m = h->data;
    for (int i = 0; i < PC_MEDIA_VIDEO_BURST_PACKETS; i++) {
        send_filler(m, PC_MEDIA_T_VIDEO, PC_MEDIA_VIDEO_BYTES);
        m->video_sent++;
    }
}

static void on_ping(uv_timer_t *h)
{
    send_small(h->data, PC_MEDIA_T_PING, NULL, 0);
}

static void report_stopped(pc_media *m, int acked)
{
    if (m->stop_reported)
        return;
    m->stop_reported = 1;
    uv_timer_stop(&m->bye_timer);
    if (m->cbs.on_stopped)
        m->cbs.on_stopped(m, acked, m->arg);
}

static void send_bye(pc_media *m)
{
    uint8_t count[8];
    put_u64(count, m->next_idx);
    send_small(m, PC_MEDIA_T_BYE, count, sizeof count);
}

static void on_bye_timer(uv_timer_t *h)
{
    pc_media *m = h->data;
    if (m->bye_tries >= PC_MEDIA_BYE_TRIES) {
        report_stopped(m, 0);
        return;
    }
    m->bye_tries++;
    send_bye(m);
}

static void start_flowing(pc_media *m)
{
    m->flowing = 1;
    if (m->stopping)
        return;
    uv_timer_start(&m->frame_timer, on_frame, 0, PC_MEDIA_FRAME_MS);
    uv_timer_start(&m->ping_timer, on_ping, PC_MEDIA_PING_MS, PC_MEDIA_PING_MS);
    if (m->cfg.video)
        uv_timer_start(&m->video_timer, on_video, PC_MEDIA_VIDEO_INTERVAL_MS,
                       PC_MEDIA_VIDEO_INTERVAL_MS);
    if (m->cbs.on_flowing)
        m->cbs.on_flowing(m, m->arg);
}

/* ---- receiving ---- */

void pc_media_input(pc_media *m, const uint8_t *data, size_t len)
{
    uint8_t dir, type;
    uint64_t seq;
    long blen;
    int rc;
    int64_t now = now_us();
    if (m->freeing)
        return;
    blen = pc_media_open(m->body, sizeof m->body, m->key, data, len, &dir, &type, &seq);
    if (blen < MEDIA_TS_LEN || dir != m->peer_dir) {
        m->dropped_auth++;
        return;
    }
    /* a counted packet needs its index; BYE its count */
    if ((type <= PC_MEDIA_T_ECHO && blen < MEDIA_COUNTED_LEN) ||
        (type == PC_MEDIA_T_ECHO && blen < MEDIA_COUNTED_LEN + MEDIA_TS_LEN) ||
        (type == PC_MEDIA_T_BYE && blen < MEDIA_TS_LEN + 8)) {
        m->dropped_auth++;
        return;
    }
    rc = pc_media_replay_accept(&m->win, seq);
    if (rc == PC_MEDIA_REPLAY_DUP) {
        m->dropped_replay++;
        return;
    }
    if (rc == PC_MEDIA_REPLAY_OLD) {
        m->dropped_old++;
        return;
    }
    int64_t sent_ts = (int64_t)get_u64(m->body);
    if (type <= PC_MEDIA_T_ECHO) {
        uint64_t idx = get_u64(m->body + MEDIA_TS_LEN);
        m->received++;
        if (!m->have_idx || idx > m->max_idx)
            m->max_idx = idx;
        m->have_idx = 1;
        /* media from the peer means the peer heard us: its HELLO_ACK may have been lost */
        if (!m->flowing)
            start_flowing(m);
    }
    switch (type) {
    case PC_MEDIA_T_AUDIO:
        m->audio_received++;
        pc_media_jitter_add(&m->jitter, sent_ts, now);
        break;
    case PC_MEDIA_T_VIDEO:
        m->video_received++;
        break;
    case PC_MEDIA_T_PING:
        if (!m->stopping) {
            uint8_t ts[8];
            put_u64(ts, (uint64_t)sent_ts);
            send_small(m, PC_MEDIA_T_ECHO, ts, sizeof ts);
        }
        break;
    case PC_MEDIA_T_ECHO: {
        int64_t ping_ts = (int64_t)get_u64(m->body + MEDIA_COUNTED_LEN);
        if (ping_ts <= now) {
            double rtt = (double)(now - ping_ts) / 1000.0;
            if (!m->rtt_samples || rtt < m->rtt_min_ms)
                m->rtt_min_ms = rtt;
            if (!m->rtt_samples || rtt > m->rtt_max_ms)
                m->rtt_max_ms = rtt;
            m->rtt_sum_ms += rtt;
            m->rtt_samples++;
        }
        break;
    }
    case PC_MEDIA_T_HELLO:
        send_small(m, PC_MEDIA_T_HELLO_ACK, NULL, 0);
        break;
    case PC_MEDIA_T_HELLO_ACK:
        if (!m->flowing)
            start_flowing(m);
        break;
    case PC_MEDIA_T_BYE: {
        uint64_t count = get_u64(m->body + MEDIA_TS_LEN);
        int first = !m->peer_sent_known;
        send_small(m, PC_MEDIA_T_BYE_ACK, NULL, 0);
        m->peer_sent_known = 1;
        m->peer_sent = count;
        if (first && m->cbs.on_peer_bye)
            m->cbs.on_peer_bye(m, count, m->arg);
        break;
    }
    case PC_MEDIA_T_BYE_ACK:
        if (m->stopping)
            report_stopped(m, 1);
        break;
    default:
        break;
    }
}

/* ---- lifetime ---- */

pc_media *pc_media_new(uv_loop_t *loop, pc_turn *t, const struct sockaddr *peer,
                       const uint8_t key[PC_MEDIA_KEY_LEN], const pc_media_config *cfg,
                       const pc_media_cbs *cbs, void *arg, pc_status *st)
{
    pc_media *m;
    if (!loop || !t || !peer || !key || !cfg ||
        (peer->sa_family != AF_INET && peer->sa_family != AF_INET6) ||
        (cfg->role != PC_MEDIA_CALLER && cfg->role != PC_MEDIA_CALLEE)) {
        pc_status_set(st, PC_ERR_LOCAL, "media: bad arguments");
        return NULL;
    }
    if (sodium_init() < 0) {
        pc_status_set(st, PC_ERR_LOCAL, "libsodium did not initialise");
        return NULL;
    }
    m = sodium_malloc(sizeof *m); /* holds the call key: kept out of swap, wiped on free */
    if (!m) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        return NULL;
    }
    memset(m, 0, sizeof *m);
    m->loop = loop;
    m->turn = t;
    memcpy(&m->peer, peer,
           peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    memcpy(m->key, key, PC_MEDIA_KEY_LEN);
    m->cfg = *cfg;
    if (cbs)
        m->cbs = *cbs;
    m->arg = arg;
    m->dir = (uint8_t)cfg->role;
    m->peer_dir = (uint8_t)(1 - cfg->role);
    uv_timer_init(loop, &m->frame_timer);
    uv_timer_init(loop, &m->video_timer);
    uv_timer_init(loop, &m->ping_timer);
    uv_timer_init(loop, &m->bye_timer);
    m->frame_timer.data = m->video_timer.data = m->ping_timer.data = m->bye_timer.data = m;
    m->handles_open = 4;
    /* HELLO every frame interval until answered; the first goes out from the loop */
    uv_timer_start(&m->frame_timer, on_frame, 0, PC_MEDIA_FRAME_MS);
    return m;
}

void pc_media_stop(pc_media *m)
{
    if (m->stopping || m->freeing)
        return;
    m->stopping = 1;
    uv_timer_stop(&m->frame_timer);
    uv_timer_stop(&m->video_timer);
    uv_timer_stop(&m->ping_timer);
    m->bye_tries = 1;
    send_bye(m);
    uv_timer_start(&m->bye_timer, on_bye_timer, PC_MEDIA_BYE_INTERVAL_MS,
                   PC_MEDIA_BYE_INTERVAL_MS);
}

void pc_media_set_peer_sent(pc_media *m, uint64_t peer_sent)
{
    if (m->peer_sent_known)
        return;
    m->peer_sent_known = 1;
    m->peer_sent = peer_sent;
}

void pc_media_get_stats(const pc_media *m, pc_media_stats *out)
{
    memset(out, 0, sizeof *out);
    out->sent = m->next_idx;
    out->received = m->received;
    out->peer_sent_known = m->peer_sent_known;
    out->expected = m->peer_sent_known ? m->peer_sent : (m->have_idx ? m->max_idx + 1 : 0);
    pc_media_loss(out->expected, out->received, &out->lost, &out->loss_pct);
    out->audio_sent = m->audio_sent;
    out->video_sent = m->video_sent;
    out->audio_received = m->audio_received;
    out->video_received = m->video_received;
    out->rtt_samples = m->rtt_samples;
    if (m->rtt_samples) {
        out->rtt_ms = m->rtt_sum_ms / (double)m->rtt_samples;
        out->rtt_min_ms = m->rtt_min_ms;
        out->rtt_max_ms = m->rtt_max_ms;
    }
    out->jitter_ms = m->jitter.jitter_us / 1000.0;
    out->dropped_auth = m->dropped_auth;
    out->dropped_replay = m->dropped_replay;
    out->dropped_old = m->dropped_old;
    out->send_errors = m->send_errors;
    out->flowing = m->flowing;
}

static void on_timer_closed(uv_handle_t *h)
{
    pc_media *m = h->data;
    if (--m->handles_open == 0)
        sodium_free(m); /* wipes the key with the rest */
}

void pc_media_free(pc_media *m)
{
    if (!m || m->freeing)
        return;
    m->freeing = 1;
    m->turn = NULL;
    uv_close((uv_handle_t *)&m->frame_timer, on_timer_closed);
    uv_close((uv_handle_t *)&m->video_timer, on_timer_closed);
    uv_close((uv_handle_t *)&m->ping_timer, on_timer_closed);
    uv_close((uv_handle_t *)&m->bye_timer, on_timer_closed);
}
