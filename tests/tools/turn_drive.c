/* turn_drive.c: parley-turn-drive, two ends of a call's media path in one process for
 * tests/integration/test_turn_client.sh: two pc_turn allocations on a real relay, each given
 * the other's relayed address as its peer, and a pc_media stream each way through the
 * channels under one random call key.
 *
 *   parley-turn-drive --uri URI --user NAME --pass PASSWORD [--seconds S] [--video]
 *                     [--lifetime S] [--refresh S] [--dup] [--tamper] [--timeout S]
 *
 * A is the caller and B the callee. After S seconds (default 3) of media A stops; B stops when
 * A's BYE arrives; both then print
 *   "A: sent N received M lost L (x.x%) rtt X ms jitter Y ms"
 *   "A: dropped auth=D replay=R old=O send_errors=E audio=AR video=VR"
 *   "A: turn requests=Q retransmits=T stale_nonces=S refreshes=F chdata_sent=C chdata_received=R"
 * (and the same for B). Before that: "relayed A ADDR" per allocation and "flowing" when media
 * started both ways. --lifetime: the allocation lifetime asked for; --refresh: refresh the
 * allocation this many seconds after each grant (the relay grants at least 600 s, so a run sees
 * refreshes, and 438 stale nonces, only with this). --dup: B's media also gets every packet a
 * second time (the replay window must drop those); --tamper: and a copy with one byte flipped
 * (must not authenticate). An allocation error prints "error A: MESSAGE". Exit 0 when both
 * ends ran to the end, 1 on any error or the timeout (default S + 20 s), 2 on a usage error. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "media.h"
#include "turn_client.h"

typedef struct drive drive;

typedef struct {
    drive *d;
    char name;
    pc_turn *turn;
    pc_media *media;
    struct sockaddr_storage relayed;
    int ready, peered, flowing, stopped, peer_bye, closed;
} end;

struct drive {
    uv_loop_t *loop;
    end a, b;
    uint8_t key[PC_MEDIA_KEY_LEN];
    double seconds;
    int video, dup, tamper;
    int failed, finishing, closed_handles;
    uv_timer_t stop_timer, deadline;
};

static void addr_str(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)sa;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        port = ntohs(s->sin_port);
        snprintf(out, cap, "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)sa;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        port = ntohs(s->sin6_port);
        snprintf(out, cap, "[%s]:%u", ip, port);
    } else {
        snprintf(out, cap, "none");
    }
}

static end *other(end *e)
{
    return e == &e->d->a ? &e->d->b : &e->d->a;
}

static void on_handle_closed(uv_handle_t *h)
{
    drive *d = h->data;
    d->closed_handles++;
}

static void print_end(end *e)
{
    pc_media_stats s;
    pc_turn_stats ts;
    if (e->media) {
        pc_media_get_stats(e->media, &s);
        printf("%c: sent %" PRIu64 " received %" PRIu64 " lost %" PRIu64
               " (%.1f%%) rtt %.1f ms jitter %.1f ms\n",
               e->name, s.sent, s.received, s.lost, s.loss_pct, s.rtt_ms, s.jitter_ms);
        printf("%c: dropped auth=%" PRIu64 " replay=%" PRIu64 " old=%" PRIu64
               " send_errors=%" PRIu64 " audio=%" PRIu64 " video=%" PRIu64 " expected=%" PRIu64
               " peer_count=%d rtt_samples=%" PRIu64 "\n",
               e->name, s.dropped_auth, s.dropped_replay, s.dropped_old, s.send_errors,
               s.audio_received, s.video_received, s.expected, s.peer_sent_known, s.rtt_samples);
    }
    if (e->turn) {
        pc_turn_get_stats(e->turn, &ts);
        printf("%c: turn requests=%" PRIu64 " retransmits=%" PRIu64 " stale_nonces=%" PRIu64
               " refreshes=%" PRIu64 " chdata_sent=%" PRIu64 " chdata_received=%" PRIu64 "\n",
               e->name, ts.requests, ts.retransmits, ts.stale_nonces, ts.refreshes,
               ts.chdata_sent, ts.chdata_received);
    }
}

/* Prints what there is, frees the media, closes the allocations; the loop then ends. */
static void finish(drive *d)
{
    if (d->finishing)
        return;
    d->finishing = 1;
    print_end(&d->a);
    print_end(&d->b);
    fflush(stdout);
    uv_close((uv_handle_t *)&d->stop_timer, on_handle_closed);
    uv_close((uv_handle_t *)&d->deadline, on_handle_closed);
    end *ends[2] = {&d->a, &d->b};
    for (int i = 0; i < 2; i++) {
        if (ends[i]->media)
            pc_media_free(ends[i]->media);
        ends[i]->media = NULL;
        if (ends[i]->turn)
            pc_turn_close(ends[i]->turn);
    }
}

static void maybe_done(drive *d)
{
    if (d->a.stopped && d->b.stopped && d->a.peer_bye && d->b.peer_bye)
        finish(d);
}

/* ---- media ---- */

static void on_peer_bye(pc_media *m, uint64_t peer_sent, void *arg)
{
    end *e = arg;
    (void)m;
    (void)peer_sent;
    e->peer_bye = 1;
    if (e->media)
        pc_media_stop(e->media); /* B answers A's BYE with its own */
    maybe_done(e->d);
}

static void on_stopped(pc_media *m, int acked, void *arg)
{
    end *e = arg;
    (void)m;
    if (!acked) {
        printf("error %c: BYE not acknowledged\n", e->name);
        e->d->failed = 1;
    }
    e->stopped = 1;
    maybe_done(e->d);
}

static void on_stop_timer(uv_timer_t *h)
{
    drive *d = h->data;
    pc_media_stop(d->a.media);
}

static void on_flowing(pc_media *m, void *arg)
{
    end *e = arg;
    drive *d = e->d;
    (void)m;
    e->flowing = 1;
    if (d->a.flowing && d->b.flowing) {
        printf("flowing\n");
        fflush(stdout);
        uv_timer_start(&d->stop_timer, on_stop_timer, (uint64_t)(d->seconds * 1000), 0);
    }
}

static void start_media(end *e)
{
    pc_status st;
    pc_media_config cfg = {.role = e->name == 'A' ? PC_MEDIA_CALLER : PC_MEDIA_CALLEE,
                           .video = e->d->video};
    pc_media_cbs cbs = {.on_peer_bye = on_peer_bye, .on_stopped = on_stopped,
                        .on_flowing = on_flowing};
    e->media = pc_media_new(e->d->loop, e->turn, (const struct sockaddr *)&other(e)->relayed,
                            e->d->key, &cfg, &cbs, e, &st);
    if (!e->media) {
        printf("error %c: %s\n", e->name, st.msg);
        e->d->failed = 1;
        finish(e->d);
    }
}

/* ---- turn ---- */

static void add_peer(end *e)
{
    pc_status st;
    if (pc_turn_add_peer(e->turn, (const struct sockaddr *)&other(e)->relayed, &st) < 0) {
        printf("error %c: %s\n", e->name, st.msg);
        e->d->failed = 1;
        finish(e->d);
    }
}

static void on_ready(pc_turn *t, const struct sockaddr *relayed, const struct sockaddr *mapped,
                     void *arg)
{
    end *e = arg;
    char buf[80], mbuf[80];
    (void)t;
    memcpy(&e->relayed, relayed,
           relayed->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                          : sizeof(struct sockaddr_in));
    e->ready = 1;
    addr_str(relayed, buf, sizeof buf);
    addr_str(mapped, mbuf, sizeof mbuf);
    printf("relayed %c %s mapped %s\n", e->name, buf, mbuf);
    fflush(stdout);
    if (other(e)->ready) {
        add_peer(&e->d->a);
        if (!e->d->finishing)
            add_peer(&e->d->b);
    }
}

static void on_peer(pc_turn *t, const struct sockaddr *peer, void *arg)
{
    end *e = arg;
    (void)t;
    (void)peer;
    e->peered = 1;
    start_media(e);
}

static void on_data(pc_turn *t, const struct sockaddr *peer, const uint8_t *data, size_t len,
                    void *arg)
{
    end *e = arg;
    (void)t;
    (void)peer;
    if (!e->media)
        return; /* the peer's HELLO before our channel is bound: it sends again */
    pc_media_input(e->media, data, len);
    /* each input may end the run (finish frees the media): look again before the next */
    if (e->name == 'B' && e->d->dup && e->media)
        pc_media_input(e->media, data, len);
    if (e->name == 'B' && e->d->tamper && e->media && len > 0 && len <= PC_TURN_DATA_MAX) {
        uint8_t copy[PC_TURN_DATA_MAX];
        memcpy(copy, data, len);
        copy[len - 1] ^= 0x01;
        pc_media_input(e->media, copy, len);
    }
}

static void on_error(pc_turn *t, const pc_status *st, void *arg)
{
    end *e = arg;
    (void)t;
    printf("error %c: %s\n", e->name, st->msg);
    e->d->failed = 1;
    finish(e->d);
}

static void on_closed(pc_turn *t, void *arg)
{
    end *e = arg;
    (void)t;
    e->closed = 1;
    e->turn = NULL;
}

static void on_deadline(uv_timer_t *h)
{
    drive *d = h->data;
    printf("error: timeout (a: ready=%d peered=%d flowing=%d stopped=%d bye=%d; b: ready=%d "
           "peered=%d flowing=%d stopped=%d bye=%d)\n",
           d->a.ready, d->a.peered, d->a.flowing, d->a.stopped, d->a.peer_bye, d->b.ready,
           d->b.peered, d->b.flowing, d->b.stopped, d->b.peer_bye);
    d->failed = 1;
    finish(d);
}

static int usage(void)
{
    fprintf(stderr, "usage: parley-turn-drive --uri URI --user NAME --pass PASSWORD "
                    "[--seconds S] [--video] [--lifetime S] [--refresh S] [--dup] [--tamper] "
                    "[--timeout S]\n");
    return 2;
}

int main(int argc, char **argv)
{
    drive d;
    pc_turn_config cfg = {0};
    pc_turn_cbs cbs = {.on_ready = on_ready, .on_peer = on_peer, .on_data = on_data,
                       .on_error = on_error, .on_closed = on_closed};
    pc_status st;
    double timeout = 0;
    uv_loop_t loop;
    memset(&d, 0, sizeof d);
    d.seconds = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--uri") && v)
            cfg.uri = v, i++;
        else if (!strcmp(a, "--user") && v)
            cfg.username = v, i++;
        else if (!strcmp(a, "--pass") && v)
            cfg.password = v, i++;
        else if (!strcmp(a, "--seconds") && v)
            d.seconds = atof(v), i++;
        else if (!strcmp(a, "--lifetime") && v)
            cfg.lifetime_s = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--refresh") && v)
            cfg.refresh_s = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--timeout") && v)
            timeout = atof(v), i++;
        else if (!strcmp(a, "--video"))
            d.video = 1;
        else if (!strcmp(a, "--dup"))
            d.dup = 1;
        else if (!strcmp(a, "--tamper"))
            d.tamper = 1;
        else
            return usage();
    }
    if (!cfg.uri || !cfg.username || !cfg.password || d.seconds <= 0 || d.seconds > 3600)
        return usage();
    if (timeout <= 0)
        timeout = d.seconds + 20;
    if (sodium_init() < 0)
        return 1;
    randombytes_buf(d.key, sizeof d.key);
    uv_loop_init(&loop);
    d.loop = &loop;
    d.a = (end){.d = &d, .name = 'A'};
    d.b = (end){.d = &d, .name = 'B'};
    uv_timer_init(&loop, &d.stop_timer);
    uv_timer_init(&loop, &d.deadline);
    d.stop_timer.data = d.deadline.data = &d;
    uv_timer_start(&d.deadline, on_deadline, (uint64_t)(timeout * 1000), 0);
    d.a.turn = pc_turn_new(&loop, &cfg, &cbs, &d.a, &st);
    if (d.a.turn)
        d.b.turn = pc_turn_new(&loop, &cfg, &cbs, &d.b, &st);
    if (!d.a.turn || !d.b.turn) {
        printf("error: %s\n", st.msg);
        d.failed = 1;
        finish(&d);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    /* every handle is closed once uv_run returns: the media and the allocations are freed */
    if (uv_loop_close(&loop) != 0) {
        printf("error: handles left open\n");
        return 1;
    }
    sodium_memzero(d.key, sizeof d.key);
    return d.failed ? 1 : 0;
}
