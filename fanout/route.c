/* route.c: what happens to a batch after its COMMIT. Replies go to each sender's gateway, one
 * MGET finds the gateways holding the recipient devices, pushes go there, and only once every
 * one of those commands succeeded do XACK + XDEL remove the batch's entries. If any command
 * fails (Redis at maxmemory, connection lost) the batch is reported failed and its entries stay
 * pending: a re-run answers from `sends` as duplicates and pushes again. */
#include "fanout.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "keys.h"
#include "log.h"
#include "redis.h"

struct pfo_push {
    const pfo_entry *e;
    uint32_t device_id;
    uint64_t envelope_id, created_ms;
    const uint8_t *content;          /* borrowed from e->msg or e->res */
    size_t len;
};

static void send_acks(pfo *f, pfo_batch *b);

static void finish_if_done(pfo_batch *b)
{
    if (b->outstanding > 0 || !b->done)
        return;
    if (b->acks_due && !b->failed) {
        b->acks_due = 0;
        b->outstanding++;
        send_acks(b->f, b);
        b->outstanding--;
        if (b->outstanding > 0)
            return;
    }
    void (*done)(pfo_batch *, int) = b->done;
    b->done = NULL;
    done(b, b->failed);
}

static void note_failure(pfo_batch *b, const redisReply *reply, const char *what)
{
    if (!b->failed && !b->f->route_down) {
        char q[256];
        plog_warn("route_failed", "cmd=%s error=%s", what,
                  plog_q(q, sizeof q, reply ? reply->str : "connection lost"));
    }
    b->failed = 1;
}

static void cmd_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    pfo_batch *b = privdata;
    redisReply *reply = r;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        note_failure(b, reply, "write");
    b->outstanding--;
    finish_if_done(b);
}

static void send_cmd(pfo_batch *b, redisCallbackFn *cb, int argc, const char **argv,
                     const size_t *lens)
{
    if (predis_cmd(b->f->rd_cmd, cb, b, argc, argv, lens) == 0)
        b->outstanding++;
    else
        note_failure(b, NULL, argv[0]);
}

static void xadd(pfo_batch *b, const char *gateway_id, const uint8_t *data, size_t len)
{
    char key[PKEYS_MAX];
    if (pkeys_delivery(key, gateway_id) < 0) {
        note_failure(b, NULL, "delivery key");
        return;
    }
    const char *argv[] = {"XADD", key, "MAXLEN", "~", PKEYS_DELIVERY_MAXLEN, "*", PKEYS_FIELD,
                          (const char *)data};
    size_t lens[8];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    lens[7] = len;
    send_cmd(b, cmd_cb, 8, argv, lens);
}

static void publish_replies(pfo *f, pfo_batch *b)
{
    uint64_t now = pclock_wall_ms();
    for (size_t i = 0; i < b->n; i++) {
        const pfo_entry *e = &b->e[i];
        if (!e->msg)
            continue;
        uint8_t *frame;
        size_t len;
        int own = !strcmp(e->sender, e->recipient);
        if (pfo_frame_reply(e->msg, e->recipient, own, &e->res, &frame, &len) != 0) {
            note_failure(b, NULL, "reply frame");
            continue;
        }
        xadd(b, e->msg->gateway_id, frame, len);
        free(frame);
        pmet_inc(f->met.replies, 1);
        if (e->msg->received_ms && e->msg->received_ms <= now)
            pmet_observe(f->met.e2e_seconds, (double)(now - e->msg->received_ms) / 1e3);
    }
}

/* The stored envelopes to push: new ones from the send itself, and for a duplicate the ones
 * still queued (their first push may never have happened). */
static int collect_pushes(pfo_batch *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) {
        const pfo_result *r = &b->e[i].res;
        if (!b->e[i].msg)
            continue;
        n += r->status == PFO_ACCEPTED ? r->n_stored : r->status == PFO_DUPLICATE ? r->n_queued : 0;
    }
    b->npushes = 0;
    if (n == 0)
        return 0;
    b->pushes = calloc(n, sizeof *b->pushes);
    if (!b->pushes)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        const pfo_entry *e = &b->e[i];
        const pfo_result *r = &e->res;
        if (!e->msg)
            continue;
        if (r->status == PFO_ACCEPTED) {
            const Parley__V1__Send *s = e->msg->send;
            for (size_t j = 0; j < r->n_stored; j++)
                for (size_t k = 0; k < s->n_envelopes; k++)
                    if (s->envelopes[k]->device_id == r->stored_dev[j]) {
                        b->pushes[b->npushes++] = (struct pfo_push){
                            e, r->stored_dev[j], r->stored_id[j], r->created_ms,
                            s->envelopes[k]->content.data, s->envelopes[k]->content.len};
                        break;
                    }
        } else if (r->status == PFO_DUPLICATE) {
            for (size_t j = 0; j < r->n_queued; j++)
                b->pushes[b->npushes++] = (struct pfo_push){
                    e, r->queued_dev[j], r->queued_id[j], r->queued_created[j],
                    r->queued_content[j], r->queued_len[j]};
        }
    }
    return 0;
}

static void send_acks(pfo *f, pfo_batch *b)
{
    if (b->n == 0)
        return;
    /* "XACK stream group id..." and then "XDEL stream id..." share the id list */
    const char **argv = malloc((b->n + 3) * sizeof *argv);
    size_t *lens = malloc((b->n + 3) * sizeof *lens);
    if (!argv || !lens) {
        note_failure(b, NULL, "ack alloc");
        free(argv);
        free(lens);
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        argv[3 + i] = b->e[i].id;
        lens[3 + i] = strlen(b->e[i].id);
    }
    argv[0] = "XACK";
    argv[1] = f->streams[b->shard];
    argv[2] = PKEYS_FANOUT_GROUP;
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    send_cmd(b, cmd_cb, (int)(3 + b->n), argv, lens);
    argv[1] = "XDEL";
    argv[2] = f->streams[b->shard];
    lens[1] = strlen(argv[1]);
    lens[2] = strlen(argv[2]);
    send_cmd(b, cmd_cb, (int)(2 + b->n), argv + 1, lens + 1);
    free(argv);
    free(lens);
}

static void mget_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    pfo_batch *b = privdata;
    pfo *f = b->f;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != b->npushes) {
        note_failure(b, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL, "MGET");
    } else if (!b->failed) {
        for (size_t i = 0; i < b->npushes; i++) {
            const struct pfo_push *p = &b->pushes[i];
            const redisReply *v = reply->element[i];
            char gw[PARLEY_GATEWAY_ID_MAX + 1];
            if (v->type != REDIS_REPLY_STRING) {
                pmet_inc(f->met.pushes_offline, 1);
                continue;
            }
            if (pfo_presence_gateway(v->str, v->len, gw) != 0) {
                char q[128];
                plog_warn("presence_malformed", "account=%s device=%u value=%s",
                          p->e->recipient, p->device_id, plog_q(q, sizeof q, v->str));
                continue;
            }
            Parley__V1__Envelope env = PARLEY__V1__ENVELOPE__INIT;
            env.id = p->envelope_id;
            env.sender = (char *)p->e->sender;
            env.sender_device = p->e->msg->sender_device;
            env.timestamp_ms = p->created_ms;
            env.content.data = (uint8_t *)p->content;
            env.content.len = p->len;
            env.urgent = p->e->msg->send->urgent;
            uint8_t *ev;
            size_t len;
            if (pfo_frame_push(p->e->recipient, p->device_id, &env, &ev, &len) != 0) {
                note_failure(b, NULL, "push frame");
                continue;
            }
            xadd(b, gw, ev, len);
            free(ev);
            pmet_inc(f->met.pushes, 1);
        }
        b->acks_due = 1;
    }
    b->outstanding--;
    finish_if_done(b);
}

static void lookup_presence(pfo_batch *b)
{
    size_t n = b->npushes;
    const char **argv = malloc((n + 1) * sizeof *argv);
    size_t *lens = malloc((n + 1) * sizeof *lens);
    char (*keys)[PKEYS_MAX] = malloc(n * sizeof *keys);
    if (!argv || !lens || !keys) {
        note_failure(b, NULL, "MGET alloc");
    } else {
        argv[0] = "MGET";
        lens[0] = 4;
        for (size_t i = 0; i < n; i++) {
            int kl = pkeys_presence(keys[i], b->pushes[i].e->recipient, b->pushes[i].device_id);
            argv[i + 1] = keys[i];
            lens[i + 1] = kl < 0 ? 0 : (size_t)kl;
        }
        send_cmd(b, mget_cb, (int)n + 1, argv, lens);
    }
    free(argv);
    free(lens);
    free(keys);
}

void pfo_route_run(pfo *f, pfo_batch *b, void (*done)(pfo_batch *b, int failed))
{
    b->done = done;
    b->outstanding = 0;
    b->failed = 0;
    b->acks_due = 0;
    /* guards against finishing while commands are still being issued */
    b->outstanding++;
    publish_replies(f, b);
    if (collect_pushes(b) != 0)
        note_failure(b, NULL, "push alloc");
    else if (b->npushes > 0)
        lookup_presence(b);
    else
        b->acks_due = 1;
    b->outstanding--;
    finish_if_done(b);
}
