/* consume.c: reading the ingress streams. One XREADGROUP at a time on the blocking connection,
 * consumer group "fanout" (created on every (re)connect and on NOGROUP), over the shards whose
 * lane is free (readplan.c decides which and how much); each shard's entries become one batch
 * in its lane. Normally it reads new entries (">"). After a failure in a lane, a reconnect or a
 * reclaim the shard's next reads take this consumer's own pending entries ("0") until none are
 * left, which is how a batch that could not be stored or acked is retried. A timer XAUTOCLAIMs
 * entries that another (dead or stuck) consumer left idle for claim_idle_ms, making them ours
 * and pending. Consumers of exited fanouts (every process has its own name) are removed from
 * the group once they have nothing pending and were silent for an hour. */
#include "fanout.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "pg.h"
#include "redis.h"

#define RETRY_READ_MS 500
#define RETRY_WAIT_MS 250        /* polling for PostgreSQL or the command connection */
/* a running fanout reads at least every second: one silent this long has exited */
#define FORGET_IDLE_MS (3600LL * 1000)

/* One per stream: the XAUTOCLAIM position, and the context of the per-stream commands
 * (XAUTOCLAIM, XLEN, XINFO CONSUMERS) whose answers need to know the stream. */
struct pfo_claim {
    pfo *f;
    unsigned shard;
    char cursor[PFO_ENTRY_ID_MAX]; /* a stream id "ms-seq" */
};

int pfo_consume_init(pfo *f)
{
    f->streams = calloc(f->nshards, sizeof *f->streams);
    f->claims = calloc(f->nshards, sizeof *f->claims);
    if (!f->streams || !f->claims)
        return -1;
    for (unsigned i = 0; i < f->nshards; i++) {
        char key[PKEYS_MAX];
        if (pkeys_ingress(key, i) < 0 || !(f->streams[i] = strdup(key)))
            return -1;
        f->claims[i] = (struct pfo_claim){f, i, "0-0"};
    }
    return 0;
}

void pfo_consume_free(pfo *f)
{
    for (unsigned i = 0; f->streams && i < f->nshards; i++)
        free(f->streams[i]);
    free(f->streams);
    free(f->claims);
    f->streams = NULL;
    f->claims = NULL;
}

static void group_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    const char *stream = privdata;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9)) {
        char q[256];
        plog_warn("group_create_failed", "stream=%s error=%s", stream,
                  plog_q(q, sizeof q, reply->str));
    }
}

/* The group starts at "0", not "$": every processed entry is XDELed, so whatever a stream holds
 * without a group (Redis restarted empty and a gateway XADDed first) is unprocessed sends. */
static void create_groups(pfo *f)
{
    for (unsigned i = 0; i < f->nshards; i++) {
        const char *argv[] = {"XGROUP", "CREATE", f->streams[i], PKEYS_FANOUT_GROUP, "0",
                              "MKSTREAM"};
        size_t lens[6];
        for (int k = 0; k < 6; k++)
            lens[k] = strlen(argv[k]);
        /* on the reading connection, so the next XREADGROUP runs after it */
        if (predis_cmd(f->rd_read, group_cb, f->streams[i], 6, argv, lens) != 0)
            return; /* down again: the next on_up retries */
    }
}

static void all_pending(pfo *f)
{
    for (unsigned i = 0; i < f->nshards; i++)
        f->pending[i] = 1;
}

void pfo_consume_on_up(predis *r, void *ud)
{
    (void)r;
    pfo *f = ud;
    create_groups(f);
    /* entries may have been delivered to us by a read whose answer was lost */
    all_pending(f);
    pfo_consume_next(f);
}

static void retry_cb(uv_timer_t *t)
{
    pfo_consume_next(t->data);
}

void pfo_consume_retry(pfo *f, uint64_t delay_ms)
{
    if (!f->stopping)
        uv_timer_start(&f->retry_timer, retry_cb, delay_ms, 0);
}

/* Finds the value of field "m" in an entry's field list. */
static const redisReply *entry_payload(const redisReply *fields)
{
    for (size_t k = 0; k + 1 < fields->elements; k += 2) {
        const redisReply *name = fields->element[k];
        if (name->type == REDIS_REPLY_STRING && name->len == strlen(PKEYS_FIELD) &&
            !memcmp(name->str, PKEYS_FIELD, name->len) &&
            fields->element[k + 1]->type == REDIS_REPLY_STRING)
            return fields->element[k + 1];
    }
    return NULL;
}

static int shard_of(pfo *f, const redisReply *name)
{
    for (unsigned i = 0; i < f->nshards; i++)
        if (name->type == REDIS_REPLY_STRING && strlen(f->streams[i]) == name->len &&
            !memcmp(f->streams[i], name->str, name->len))
            return (int)i;
    return -1;
}

/* Turns one stream's part of an XREADGROUP answer into a batch for its lane. Returns NULL when
 * it held no entries (or on allocation failure, then *err is set). */
static pfo_batch *build_batch(pfo *f, unsigned shard, const redisReply *list, int *err)
{
    *err = 0;
    if (list->elements == 0)
        return NULL;
    pfo_batch *b = pfo_batch_new(f, shard, list->elements);
    if (!b) {
        *err = 1;
        return NULL;
    }
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *ent = list->element[i];
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
            ent->element[0]->type != REDIS_REPLY_STRING ||
            ent->element[0]->len >= PFO_ENTRY_ID_MAX)
            continue;
        pfo_entry *e = pfo_batch_add(b);
        memcpy(e->id, ent->element[0]->str, ent->element[0]->len + 1);
        const redisReply *fields = ent->element[1];
        if (fields->type != REDIS_REPLY_ARRAY) {
            /* a pending entry deleted meanwhile: only its PEL slot is left */
            e->deleted = 1;
            continue;
        }
        const redisReply *m = entry_payload(fields);
        if (!m || pfo_entry_decode(e, (const uint8_t *)m->str, m->len) != 0) {
            plog_warn("entry_malformed", "stream=%s id=%s bytes=%zu", f->streams[shard], e->id,
                      m ? m->len : 0);
            pmet_inc(f->met.malformed, 1);
            if (e->msg)
                parley__v1__internal_send__free_unpacked(e->msg, NULL);
            e->msg = NULL;
            e->to_store = 0;
        }
    }
    return b;
}

/* The read's shards get their pending entries read again (the answer was lost or unusable). */
static void read_lost(pfo *f)
{
    for (unsigned i = 0; i < f->read.n; i++)
        f->pending[f->read.shard[i]] = 1;
}

static void read_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    pfo *f = privdata;
    redisReply *reply = r;
    f->reading = 0;
    if (!reply) {
        /* connection lost; predis reconnects and on_up reads again */
        read_lost(f);
        pfo_consume_retry(f, RETRY_READ_MS);
        pfo_maybe_stopped(f);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (!strncmp(reply->str, "NOGROUP", 7)) {
            /* the streams or the group vanished (Redis restarted empty, or FLUSHALL) */
            plog_warn("group_missing", "action=recreate");
            create_groups(f);
            pfo_consume_next(f);
        } else {
            char q[256];
            plog_warn("read_failed", "error=%s", plog_q(q, sizeof q, reply->str));
            pfo_consume_retry(f, RETRY_READ_MS);
        }
        pfo_maybe_stopped(f);
        return;
    }
    /* a batch that ends at once may plan the next read: work on this one's copy */
    pfo_readplan rd = f->read;
    if (rd.history)
        /* a history read answers at once, with every stream read; a shard that gets no batch
         * from it has no pending entries left: back to new ones */
        for (unsigned i = 0; i < rd.n; i++)
            f->pending[rd.shard[i]] = 0;
    for (size_t s = 0; reply->type == REDIS_REPLY_ARRAY && s < reply->elements; s++) {
        const redisReply *st = reply->element[s];
        int shard;
        /* the answer names only the streams read (a nil answer: BLOCK timed out), and their
         * lanes are free */
        if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
            st->element[1]->type != REDIS_REPLY_ARRAY ||
            (shard = shard_of(f, st->element[0])) < 0 || f->lane[shard])
            continue;
        const redisReply *list = st->element[1];
        int err;
        pfo_batch *b = build_batch(f, (unsigned)shard, list, &err);
        if (err) {
            plog_error("batch_alloc_failed", "stream=%s entries=%zu", f->streams[shard],
                       list->elements);
            f->pending[shard] = 1;
            pfo_consume_retry(f, RETRY_READ_MS);
        } else if (b) {
            if (rd.history)
                f->pending[shard] = 1; /* more may follow: read them until none is left */
            pfo_batch_start(f, b);
        }
    }
    pfo_consume_next(f);
    pfo_maybe_stopped(f);
}

void pfo_consume_next(pfo *f)
{
    if (f->reading || f->stopped || uv_is_active((uv_handle_t *)&f->retry_timer))
        return;
    /* a stop waits only for work already started */
    if (f->stopping || !predis_up(f->rd_read))
        return;
    /* Without PostgreSQL or the command connection a batch cannot finish. Do not even re-read
     * our pending entries then: that would reset their idle time and keep a healthy fanout
     * from claiming them while this one is cut off. */
    if (ppg_up(f->pg) == 0 || !predis_up(f->rd_cmd)) {
        pfo_consume_retry(f, RETRY_WAIT_MS);
        return;
    }
    if (!pfo_readplan_make(f, &f->read))
        return; /* a lane that finishes plans again */
    char count[24];
    snprintf(count, sizeof count, "%zu", f->read.count);
    /* XREADGROUP GROUP g c COUNT n [BLOCK ms] STREAMS s... id... */
    const char *argv[9 + 2 * PARLEY_INGRESS_SHARDS_MAX];
    size_t lens[9 + 2 * PARLEY_INGRESS_SHARDS_MAX], argc = 0;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = PKEYS_FANOUT_GROUP;
    argv[argc++] = f->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    if (f->read.block_ms) {
        argv[argc++] = "BLOCK";
        argv[argc++] = f->read.block_ms;
    }
    argv[argc++] = "STREAMS";
    for (unsigned i = 0; i < f->read.n; i++)
        argv[argc++] = f->streams[f->read.shard[i]];
    for (unsigned i = 0; i < f->read.n; i++)
        argv[argc++] = f->read.history ? "0" : ">";
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (predis_cmd(f->rd_read, read_cb, f, (int)argc, argv, lens) == 0)
        f->reading = 1;
    else
        pfo_consume_retry(f, RETRY_READ_MS);
}

static void claim_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct pfo_claim *c = privdata;
    pfo *f = c->f;
    redisReply *reply = r;
    f->claiming--;
    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* NOGROUP is repaired by the reader; anything else is worth a line */
        if (strncmp(reply->str, "NOGROUP", 7)) {
            char q[256];
            plog_warn("claim_failed", "stream=%s error=%s", f->streams[c->shard],
                      plog_q(q, sizeof q, reply->str));
        }
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    snprintf(c->cursor, sizeof c->cursor, "%s", reply->element[0]->str);
    size_t n = reply->element[1]->elements;
    if (n > 0) {
        plog_info("entries_reclaimed", "stream=%s count=%zu", f->streams[c->shard], n);
        pmet_inc(f->met.reclaimed, n);
        f->pending[c->shard] = 1;
    }
}

static void backlog_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    const struct pfo_claim *c = privdata;
    pfo *f = c->f;
    unsigned shard = c->shard;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        return;
    if (!f->met.backlog[shard]) {
        char labels[32];
        snprintf(labels, sizeof labels, "shard=\"%u\"", shard);
        f->met.backlog[shard] = pmetrics_gauge(
            f->registry, "parley_fanout_ingress_backlog",
            "Entries in an ingress stream: not yet read, or read and not yet acked.", labels);
    }
    pmet_set(f->met.backlog[shard], (double)reply->integer);
}

/* Processed entries are deleted, so a stream's length is its backlog: what operators alert on
 * when fanout falls behind or stalls. */
void pfo_consume_backlog(pfo *f)
{
    if (f->stopping || !predis_up(f->rd_cmd))
        return;
    for (unsigned i = 0; i < f->nshards && i < PARLEY_INGRESS_SHARDS_MAX; i++) {
        const char *argv[] = {"XLEN", f->streams[i]};
        size_t lens[] = {4, strlen(f->streams[i])};
        if (predis_cmd(f->rd_cmd, backlog_cb, &f->claims[i], 2, argv, lens) != 0)
            return;
    }
}

void pfo_consume_claim(pfo *f)
{
    /* claimed entries would only wait here for a PostgreSQL that is not reachable */
    if (f->claiming || f->stopping || !predis_up(f->rd_cmd) || ppg_up(f->pg) == 0)
        return;
    char idle[24], count[16];
    snprintf(idle, sizeof idle, "%lld", f->cfg->claim_idle_ms);
    snprintf(count, sizeof count, "%d", PARLEY_FANOUT_BATCH_MAX);
    for (unsigned i = 0; i < f->nshards; i++) {
        /* JUSTID: the entries become ours and pending; the "0" read fetches them */
        const char *argv[] = {"XAUTOCLAIM", f->streams[i], PKEYS_FANOUT_GROUP, f->consumer,
                              idle, f->claims[i].cursor, "COUNT", count, "JUSTID"};
        size_t lens[9];
        for (int k = 0; k < 9; k++)
            lens[k] = strlen(argv[k]);
        if (predis_cmd(f->rd_cmd, claim_cb, &f->claims[i], 9, argv, lens) != 0)
            return;
        f->claiming++;
    }
}

/* Value of key in a consumer's flat [key, value, ...] description. */
static const redisReply *field(const redisReply *c, const char *key)
{
    for (size_t k = 0; k + 1 < c->elements; k += 2)
        if (c->element[k]->type == REDIS_REPLY_STRING && !strcmp(c->element[k]->str, key))
            return c->element[k + 1];
    return NULL;
}

static void consumers_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct pfo_claim *c = privdata;
    pfo *f = c->f;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || f->stopping)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *name = field(e, "name"), *pending = field(e, "pending"),
                         *idle = field(e, "idle");
        if (!name || name->type != REDIS_REPLY_STRING || !pending ||
            pending->type != REDIS_REPLY_INTEGER || !idle || idle->type != REDIS_REPLY_INTEGER ||
            pending->integer != 0 || idle->integer < FORGET_IDLE_MS ||
            !strcmp(name->str, f->consumer))
            continue;
        const char *argv[] = {"XGROUP", "DELCONSUMER", f->streams[c->shard], PKEYS_FANOUT_GROUP,
                              name->str};
        size_t lens[5];
        for (int k = 0; k < 5; k++)
            lens[k] = strlen(argv[k]);
        lens[4] = name->len;
        if (predis_cmd(f->rd_cmd, NULL, NULL, 5, argv, lens) == 0)
            plog_info("consumer_forgotten", "stream=%s consumer=%s idle_ms=%lld",
                      f->streams[c->shard], name->str, idle->integer);
    }
}

void pfo_consume_forget(pfo *f)
{
    if (f->stopping || !predis_up(f->rd_cmd))
        return;
    for (unsigned i = 0; i < f->nshards; i++) {
        const char *argv[] = {"XINFO", "CONSUMERS", f->streams[i], PKEYS_FANOUT_GROUP};
        size_t lens[4];
        for (int k = 0; k < 4; k++)
            lens[k] = strlen(argv[k]);
        if (predis_cmd(f->rd_cmd, consumers_cb, &f->claims[i], 4, argv, lens) != 0)
            return;
    }
}
