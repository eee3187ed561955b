/* fanout_drive.c: test driver for the fanout, used by tests/integration/test_fanout.sh (built
 * by tests/tools/CMakeLists.txt as parley-fanout-drive). "send" XADDs a hand-built InternalSend
 * to its ingress shard, "garbage" an undecodable entry, "read" prints a gateway delivery stream
 * and deletes the entries it printed,
 * "load" measures the fanout under a sustained stream of sends (see ld_main below).
 * Usage: fo_drive REDIS_PORT send GW CONN REQ SENDER SDEV CLIENT RECIPIENT SHARDS URGENT
 *                 DEV:REG:CONTENT...
 *        fo_drive REDIS_PORT garbage SHARD
 *        fo_drive REDIS_PORT read GW
 *        fo_drive REDIS_PORT bulk GW N FIRST_CLIENT_ID SHARDS   (alice:1 -> bob 1:201 2:202)
 *        fo_drive REDIS_PORT count GW   (replies and pushes in a delivery stream)
 *        fo_drive REDIS_PORT load SHARDS [options]   (ld_usage lists them)
 *        fo_drive 0 loadsql PAIRS DEVICES   (SQL creating the accounts "load" uses) */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include "clock.h"
#include "keys.h"
#include "log.h"
#include "parley.pb-c.h"
#include "pg.h"
#include "redis.h"

static void dump_event(const char *id, const uint8_t *d, size_t n)
{
    Parley__V1__InternalEvent *ev = parley__v1__internal_event__unpack(NULL, n, d);
    if (!ev) { printf("%s undecodable\n", id); return; }
    if (ev->body_case == PARLEY__V1__INTERNAL_EVENT__BODY_REPLY) {
        Parley__V1__ServerFrame *f = parley__v1__server_frame__unpack(NULL, ev->reply->frame.len, ev->reply->frame.data);
        printf("reply conn=%" PRIu64 " req=%" PRIu64, ev->reply->conn_id, f ? f->request_id : 0);
        if (f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_SEND_RESULT) {
            printf(" result dup=%d stored=", f->send_result->duplicate);
            for (size_t i = 0; i < f->send_result->n_stored; i++)
                printf("%s%u:%" PRIu64, i ? "," : "", f->send_result->stored[i]->device_id, f->send_result->stored[i]->envelope_id);
        } else if (f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR) {
            Parley__V1__Error *e = f->error;
            printf(" error code=%d msg=\"%s\"", e->code, e->message);
            if (e->mismatch) {
                printf(" missing="); for (size_t i = 0; i < e->mismatch->n_missing; i++) printf("%u,", e->mismatch->missing[i]);
                printf(" extra="); for (size_t i = 0; i < e->mismatch->n_extra; i++) printf("%u,", e->mismatch->extra[i]);
                printf(" stale="); for (size_t i = 0; i < e->mismatch->n_stale; i++) printf("%u,", e->mismatch->stale[i]);
            }
            if (e->n_full_devices) { printf(" full="); for (size_t i = 0; i < e->n_full_devices; i++) printf("%u,", e->full_devices[i]); }
        }
        printf("\n");
        if (f) parley__v1__server_frame__free_unpacked(f, NULL);
    } else if (ev->body_case == PARLEY__V1__INTERNAL_EVENT__BODY_PUSH) {
        Parley__V1__Envelope *e = ev->push->envelope;
        printf("push %s:%u id=%" PRIu64 " from=%s:%u ts=%d urgent=%d content=%.*s\n", ev->push->account, ev->push->device_id,
               e->id, e->sender, e->sender_device, e->timestamp_ms > 0, e->urgent, (int)e->content.len, (char *)e->content.data);
    } else printf("%s other\n", id);
    parley__v1__internal_event__free_unpacked(ev, NULL);
}

/* ---- load: a sustained stream of sends through the fanout ------------------------------------
 * Pairs k = 0..pairs-1: sender "ls<k>" device 1 sends to "lr<k>", whose devices 1..devices have
 * registration id ld_reg(k, d) ("loadsql" prints the SQL that creates them). Sends are XADDed
 * at --rate per second (0: as fast as --window unanswered sends allow) for --seconds, replies
 * and pushes are read back from the delivery streams of --gateways gateways "ldgw<i>", and with
 * --ack every pushed envelope is acked through parley_gw_ack the way a gateway batches acks.
 * At the end (--ack) whatever is still queued for the recipients is drained and acked, as a
 * reconnecting client would, and every envelope id a reply named must have been pushed or
 * drained: "missing" counts those that were not (a loss). Progress goes to stderr once a
 * second, a key=value summary to stdout at the end; exit status 3 on a loss. */

#define LD_RING (1u << 22)               /* send times kept: more than any window */
#define LD_LAT_STEP_US 100               /* latency histogram resolution */
#define LD_LAT_BUCKETS 300000            /* up to 30 s */
#define LD_TICK_MS 1
#define LD_PER_TICK_MAX 4000             /* XADDs queued per tick at most */
#define LD_ACK_EVERY_MS 5                /* like the gateway: acks wait this long for company */
#define LD_ACK_INFLIGHT_MAX 64           /* PARLEY_ACK_STATEMENTS_MAX of a gateway */
#define LD_DRAIN_TIMEOUT_US (60ULL * 1000 * 1000)
#define LD_WARMUP_US (2ULL * 1000 * 1000)

static uint32_t ld_reg(unsigned k, unsigned d)
{
    return 1 + (k * 8u + d) % 16380u;
}

/* A set of envelope ids (open addressing; 0 is never an id). */
typedef struct {
    uint64_t *slot;
    size_t cap, n;
} ld_idset;

static int ld_idset_add(ld_idset *s, uint64_t id)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1 << 16;
        uint64_t *slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i])
                for (size_t h = (s->slot[i] * 0x9E3779B97F4A7C15ULL) & (cap - 1);;
                     h = (h + 1) & (cap - 1))
                    if (!slot[h]) {
                        slot[h] = s->slot[i];
                        break;
                    }
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    for (size_t h = (id * 0x9E3779B97F4A7C15ULL) & (s->cap - 1);; h = (h + 1) & (s->cap - 1)) {
        if (s->slot[h] == id)
            return 0;
        if (!s->slot[h]) {
            s->slot[h] = id;
            s->n++;
            return 0;
        }
    }
}

static int ld_idset_has(const ld_idset *s, uint64_t id)
{
    if (!s->cap)
        return 0;
    for (size_t h = (id * 0x9E3779B97F4A7C15ULL) & (s->cap - 1);; h = (h + 1) & (s->cap - 1)) {
        if (s->slot[h] == id)
            return 1;
        if (!s->slot[h])
            return 0;
    }
}

typedef struct {
    unsigned shards, pairs, devices, bytes, gateways, ack_conns, ack_batch;
    double rate, seconds;
    unsigned long window;
    int online;
    const char *ack_pg;
    uint64_t client_base;

    uv_loop_t *loop;
    predis *rd_send, *rd_read;
    ppg *pg;
    uv_timer_t tick;
    char (*ingress)[PKEYS_MAX];          /* per pair */
    char (*sender)[16], (*rcpt)[16];     /* per pair */
    char (*gw)[32], (*delivery)[PKEYS_MAX], (*last)[48]; /* per gateway */
    const char **read_argv;
    size_t *read_lens;
    int64_t *account_id;                 /* per pair: the recipient's account id (acks) */
    uint8_t *content, *packbuf;
    size_t packcap;

    int started, sending_done, finished;
    uint64_t t0_us, t_end_us, t_warm_us, last_report_us;
    uint64_t sent, xadd_errors, replies, accepted, duplicates, errors, pushes;
    uint64_t acked, deleted, ack_calls, ack_failures, drained, missing;
    ld_idset stored, delivered;          /* ids named by replies / pushed or drained (--ack) */
    int unchecked;                       /* the loss check could not be made */
    uint64_t warm_accepted, end_accepted, warm_deleted, end_deleted;
    uint64_t rep_sent, rep_replies, rep_pushes, rep_deleted;
    uint32_t *sent_at;                   /* ring: µs after t0 of send seq */
    uint8_t *answered;                   /* per send seq: a reply came (replies may repeat) */
    size_t answered_cap;
    uint64_t answered_n;
    uint64_t *lat;                       /* histogram of reply latency */
    int reading;
    int64_t *ack_a;
    uint32_t *ack_d;
    uint64_t *ack_i;
    size_t ack_n, ack_cap;
    unsigned ack_inflight;
    uint64_t ack_last_us;
} ld_state;

static void ld_read(ld_state *L);

static void ld_usage(void)
{
    fprintf(stderr,
            "usage: parley-fanout-drive REDIS_PORT load SHARDS [--pairs N] [--devices D] "
            "[--bytes B] [--rate R] [--window W] [--seconds S] [--gateways G] [--online] "
            "[--ack CONNINFO] [--ack-batch N] [--ack-conns N]\n"
            "       parley-fanout-drive 0 loadsql PAIRS DEVICES\n");
}

static void ld_xadd_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    ld_state *L = privdata;
    redisReply *reply = r;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        L->xadd_errors++;
}

static void ld_send_one(ld_state *L)
{
    uint64_t seq = L->sent;
    if (seq >= L->answered_cap) {
        size_t cap = L->answered_cap ? 2 * L->answered_cap : 1 << 20;
        uint8_t *a = realloc(L->answered, cap);
        if (!a) {
            L->xadd_errors++;
            return;
        }
        memset(a + L->answered_cap, 0, cap - L->answered_cap);
        L->answered = a;
        L->answered_cap = cap;
    }
    unsigned k = (unsigned)(seq % L->pairs);
    Parley__V1__InternalSend s = PARLEY__V1__INTERNAL_SEND__INIT;
    Parley__V1__Send snd = PARLEY__V1__SEND__INIT;
    Parley__V1__OutEnvelope env[16], *envp[16];
    for (unsigned d = 0; d < L->devices; d++) {
        parley__v1__out_envelope__init(&env[d]);
        env[d].device_id = d + 1;
        env[d].registration_id = ld_reg(k, d + 1);
        env[d].content.data = L->content;
        env[d].content.len = L->bytes;
        envp[d] = &env[d];
    }
    s.gateway_id = L->gw[k % L->gateways];
    s.conn_id = k + 1;
    s.request_id = seq + 1;
    s.sender = L->sender[k];
    s.sender_device = 1;
    s.received_ms = pclock_wall_ms();
    snd.client_id = L->client_base + seq;
    snd.recipient = L->rcpt[k];
    snd.n_envelopes = L->devices;
    snd.envelopes = envp;
    s.send = &snd;
    size_t len = parley__v1__internal_send__pack(&s, L->packbuf);
    const char *argv[] = {"XADD", L->ingress[k], "*", PKEYS_FIELD, (const char *)L->packbuf};
    size_t lens[] = {4, strlen(L->ingress[k]), 1, 1, len};
    if (predis_cmd(L->rd_send, ld_xadd_cb, L, 5, argv, lens) != 0)
        L->xadd_errors++;
    L->sent_at[seq % LD_RING] = (uint32_t)(pclock_mono_us() - L->t0_us);
    L->sent++;
}

static void ld_ack_cb(PGresult *res, const char *err, void *ud)
{
    ld_state *L = ud;
    L->ack_inflight--;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        L->ack_failures++;
        if (L->ack_failures <= 3)
            fprintf(stderr, "ack failed: %s\n", err ? err : PQresultErrorMessage(res));
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        L->deleted += strtoull(PQgetvalue(res, i, 1), NULL, 10);
}

/* "{v,...}" of column col (0 accounts, 1 devices, 2 ids, 3 request numbers) (malloc'd). */
static char *ld_array(const int64_t *a, const uint32_t *d, const uint64_t *ids, size_t n, int col)
{
    char *s = malloc(3 + n * 21);
    if (!s)
        return NULL;
    size_t o = 0;
    s[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            s[o++] = ',';
        if (col == 0)
            o += (size_t)sprintf(s + o, "%" PRId64, a[i]);
        else if (col == 1)
            o += (size_t)sprintf(s + o, "%" PRIu32, d[i]);
        else if (col == 2)
            o += (size_t)sprintf(s + o, "%" PRIu64, ids[i]);
        else
            o += (size_t)sprintf(s + o, "%zu", i / 8); /* a client acks a few ids per frame */
    }
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

static void ld_ack_flush(ld_state *L)
{
    while (L->ack_n > 0 && L->ack_inflight < LD_ACK_INFLIGHT_MAX) {
        size_t n = L->ack_n < L->ack_batch ? L->ack_n : L->ack_batch;
        /* the newest n ids go: the order of acks does not matter to the database */
        size_t from = L->ack_n - n;
        char *v[4];
        for (int c = 0; c < 4; c++)
            v[c] = ld_array(L->ack_a + from, L->ack_d + from, L->ack_i + from, n, c);
        int rc = -1;
        if (v[0] && v[1] && v[2] && v[3])
            rc = ppg_query(L->pg,
                           "SELECT req, deleted FROM parley_gw_ack($1::bigint[], $2::integer[], "
                           "$3::bigint[], $4::integer[])",
                           4, (const char *const *)v, NULL, NULL, 0, ld_ack_cb, L);
        for (int c = 0; c < 4; c++)
            free(v[c]);
        if (rc != 0)
            return; /* retried on the next tick */
        L->ack_inflight++;
        L->ack_calls++;
        L->acked += n;
        L->ack_n = from;
    }
    L->ack_last_us = pclock_mono_us();
}

static int ld_ack_add(ld_state *L, const Parley__V1__InternalPush *p)
{
    if (strncmp(p->account, "lr", 2) != 0)
        return -1;
    unsigned long k = strtoul(p->account + 2, NULL, 10);
    if (k >= L->pairs || !p->envelope)
        return -1;
    if (L->ack_n == L->ack_cap) {
        size_t cap = L->ack_cap ? L->ack_cap * 2 : 4096;
        int64_t *a = realloc(L->ack_a, cap * sizeof *a);
        if (a)
            L->ack_a = a;
        uint32_t *d = realloc(L->ack_d, cap * sizeof *d);
        if (d)
            L->ack_d = d;
        uint64_t *i = realloc(L->ack_i, cap * sizeof *i);
        if (i)
            L->ack_i = i;
        if (!a || !d || !i)
            return -1;
        L->ack_cap = cap;
    }
    L->ack_a[L->ack_n] = L->account_id[k];
    L->ack_d[L->ack_n] = p->device_id;
    L->ack_i[L->ack_n] = p->envelope->id;
    L->ack_n++;
    return 0;
}

static void ld_event(ld_state *L, const uint8_t *d, size_t n, uint64_t now_us)
{
    Parley__V1__InternalEvent *ev = parley__v1__internal_event__unpack(NULL, n, d);
    if (!ev) {
        L->errors++;
        return;
    }
    if (ev->body_case == PARLEY__V1__INTERNAL_EVENT__BODY_REPLY) {
        L->replies++;
        uint64_t seq = ev->reply->request_id - 1;
        /* a fanout killed after replying re-processes the send: only the first reply counts */
        if (seq < L->sent && !L->answered[seq]) {
            L->answered[seq] = 1;
            L->answered_n++;
        } else {
            parley__v1__internal_event__free_unpacked(ev, NULL);
            return;
        }
        if (L->sent - seq <= LD_RING) {
            uint64_t us = now_us - L->t0_us - L->sent_at[seq % LD_RING];
            size_t b = us / LD_LAT_STEP_US;
            L->lat[b < LD_LAT_BUCKETS ? b : LD_LAT_BUCKETS - 1]++;
        }
        Parley__V1__ServerFrame *f =
            parley__v1__server_frame__unpack(NULL, ev->reply->frame.len, ev->reply->frame.data);
        if (f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_SEND_RESULT) {
            if (f->send_result->duplicate)
                L->duplicates++;
            else
                L->accepted++;
            for (size_t i = 0; L->ack_pg && i < f->send_result->n_stored; i++)
                if (ld_idset_add(&L->stored, f->send_result->stored[i]->envelope_id) != 0)
                    L->unchecked = 1;
        } else {
            if (L->errors < 3 && f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR)
                fprintf(stderr, "send error %d: %s\n", f->error->code, f->error->message);
            L->errors++;
        }
        if (f)
            parley__v1__server_frame__free_unpacked(f, NULL);
    } else if (ev->body_case == PARLEY__V1__INTERNAL_EVENT__BODY_PUSH) {
        L->pushes++;
        if (L->ack_pg && (ld_ack_add(L, ev->push) != 0 ||
                          ld_idset_add(&L->delivered, ev->push->envelope->id) != 0))
            L->unchecked = 1;
    }
    parley__v1__internal_event__free_unpacked(ev, NULL);
}

static void ld_read_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    ld_state *L = privdata;
    redisReply *reply = r;
    L->reading = 0;
    uint64_t now = pclock_mono_us();
    if (reply && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < reply->elements; s++) {
            const redisReply *st = reply->element[s];
            if (st->type != REDIS_REPLY_ARRAY || st->elements != 2)
                continue;
            unsigned g;
            for (g = 0; g < L->gateways; g++)
                if (strlen(L->delivery[g]) == st->element[0]->len &&
                    !memcmp(L->delivery[g], st->element[0]->str, st->element[0]->len))
                    break;
            if (g == L->gateways)
                continue;
            const redisReply *list = st->element[1];
            for (size_t i = 0; i < list->elements; i++) {
                const redisReply *e = list->element[i];
                if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
                    continue;
                snprintf(L->last[g], sizeof L->last[g], "%s", e->element[0]->str);
                const redisReply *fl = e->element[1];
                if (fl->type == REDIS_REPLY_ARRAY && fl->elements == 2)
                    ld_event(L, (const uint8_t *)fl->element[1]->str, fl->element[1]->len, now);
            }
        }
    }
    if (!L->finished)
        ld_read(L);
}

static void ld_read(ld_state *L)
{
    if (L->reading || !predis_up(L->rd_read))
        return;
    size_t argc = 0;
    L->read_argv[argc++] = "XREAD";
    L->read_argv[argc++] = "COUNT";
    L->read_argv[argc++] = "20000";
    L->read_argv[argc++] = "BLOCK";
    L->read_argv[argc++] = "20";
    L->read_argv[argc++] = "STREAMS";
    for (unsigned g = 0; g < L->gateways; g++)
        L->read_argv[argc++] = L->delivery[g];
    for (unsigned g = 0; g < L->gateways; g++)
        L->read_argv[argc++] = L->last[g];
    for (size_t i = 0; i < argc; i++)
        L->read_lens[i] = strlen(L->read_argv[i]);
    if (predis_cmd(L->rd_read, ld_read_cb, L, (int)argc, L->read_argv, L->read_lens) == 0)
        L->reading = 1;
}

static double ld_pct(const ld_state *L, double q)
{
    uint64_t total = 0, acc = 0;
    for (size_t b = 0; b < LD_LAT_BUCKETS; b++)
        total += L->lat[b];
    if (!total)
        return 0;
    for (size_t b = 0; b < LD_LAT_BUCKETS; b++) {
        acc += L->lat[b];
        if ((double)acc >= q * (double)total)
            return (double)(b + 1) * LD_LAT_STEP_US / 1000.0;
    }
    return 0;
}

/* What is still queued for the recipients (pushes lost with a killed fanout, or sent before a
 * re-push arrived): delivered now, as a drain on reconnect would, then acked. Then every id a
 * reply named must have been delivered. */
static void ld_drain(ld_state *L)
{
    PGconn *c = PQconnectdb(L->ack_pg);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "drain: %s", PQerrorMessage(c));
        L->unchecked = 1;
        PQfinish(c);
        return;
    }
    PGresult *r = PQexec(c, "WITH q AS (SELECT e.account_id, e.device_id, e.id FROM envelopes e "
                            "JOIN accounts a ON a.id = e.account_id "
                            "WHERE a.username ~ '^lr[0-9]+$'), "
                            "d AS (SELECT * FROM parley_gw_ack((SELECT array_agg(account_id) "
                            "FROM q), (SELECT array_agg(device_id) FROM q), (SELECT "
                            "array_agg(id) FROM q), (SELECT array_agg(0) FROM q))) "
                            "SELECT id FROM q WHERE (SELECT count(*) FROM d) >= 0");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "drain: %s", PQresultErrorMessage(r));
        L->unchecked = 1;
    } else {
        for (int i = 0; i < PQntuples(r); i++)
            if (ld_idset_add(&L->delivered, strtoull(PQgetvalue(r, i, 0), NULL, 10)) != 0)
                L->unchecked = 1;
        L->drained = (uint64_t)PQntuples(r);
    }
    PQclear(r);
    PQfinish(c);
    for (size_t i = 0; i < L->stored.cap; i++)
        if (L->stored.slot[i] && !ld_idset_has(&L->delivered, L->stored.slot[i]))
            L->missing++;
}

static void ld_summary(ld_state *L, uint64_t now)
{
    double send_s = (double)(L->t_end_us - L->t0_us) / 1e6;
    double all_s = (double)(now - L->t0_us) / 1e6;
    double steady_s = (double)(L->t_end_us - L->t_warm_us) / 1e6;
    printf("sent=%" PRIu64 " answered=%" PRIu64 " xadd_errors=%" PRIu64 " replies=%" PRIu64
           " accepted=%" PRIu64
           " duplicate=%" PRIu64 " errors=%" PRIu64 " pushes=%" PRIu64 " acked=%" PRIu64
           " deleted=%" PRIu64 " ack_calls=%" PRIu64 " ack_failures=%" PRIu64
           " drained=%" PRIu64 " missing=%" PRIu64 " unchecked=%d\n",
           L->sent, L->answered_n, L->xadd_errors, L->replies, L->accepted, L->duplicates, L->errors, L->pushes,
           L->acked, L->deleted, L->ack_calls, L->ack_failures, L->drained, L->missing,
           L->unchecked);
    printf("send_seconds=%.2f total_seconds=%.2f offered_per_s=%.0f accepted_per_s=%.0f "
           "steady_accepted_per_s=%.0f steady_deleted_per_s=%.0f\n",
           send_s, all_s, (double)L->sent / send_s, (double)L->accepted / all_s,
           (double)(L->end_accepted - L->warm_accepted) / steady_s,
           (double)(L->end_deleted - L->warm_deleted) / steady_s);
    printf("latency_ms p50=%.1f p90=%.1f p99=%.1f max=%.1f\n", ld_pct(L, 0.5), ld_pct(L, 0.9),
           ld_pct(L, 0.99), ld_pct(L, 1.0));
    fflush(stdout);
}

static void ld_finish(ld_state *L)
{
    L->finished = 1;
    uv_timer_stop(&L->tick);
    uv_close((uv_handle_t *)&L->tick, NULL);
    predis_close(L->rd_send);
    predis_close(L->rd_read);
    if (L->pg)
        ppg_close(L->pg);
}

static void ld_tick(uv_timer_t *t)
{
    ld_state *L = t->data;
    uint64_t now = pclock_mono_us();
    if (!L->started) {
        if (!predis_up(L->rd_send) || !predis_up(L->rd_read) || (L->pg && ppg_up(L->pg) == 0))
            return;
        L->started = 1;
        L->t0_us = L->last_report_us = now;
        L->t_end_us = now + (uint64_t)(L->seconds * 1e6);
        L->t_warm_us = now + (L->seconds * 1e6 > 2 * LD_WARMUP_US ? LD_WARMUP_US : 0);
        ld_read(L);
    }
    if (!L->sending_done) {
        if (now >= L->t_end_us) {
            L->sending_done = 1;
            L->end_accepted = L->accepted;
            L->end_deleted = L->deleted;
        } else {
            uint64_t open = L->sent - L->answered_n;
            uint64_t due = L->window > open ? L->window - open : 0;
            if (L->rate > 0) {
                double want = L->rate * (double)(now - L->t0_us) / 1e6 - (double)L->sent;
                if (want < (double)due)
                    due = want > 0 ? (uint64_t)want : 0;
            }
            if (due > LD_PER_TICK_MAX)
                due = LD_PER_TICK_MAX;
            for (uint64_t i = 0; i < due; i++)
                ld_send_one(L);
            if (now >= L->t_warm_us && !L->warm_accepted) {
                L->warm_accepted = L->accepted ? L->accepted : 1;
                L->warm_deleted = L->deleted;
            }
        }
    }
    if (L->pg && L->ack_n > 0 &&
        (L->ack_n >= L->ack_batch || now - L->ack_last_us >= LD_ACK_EVERY_MS * 1000))
        ld_ack_flush(L);
    if (now - L->last_report_us >= 1000000) {
        double dt = (double)(now - L->last_report_us) / 1e6;
        fprintf(stderr,
                "t=%.0f sent/s=%.0f replies/s=%.0f pushes/s=%.0f deleted/s=%.0f unanswered=%" PRIu64
                " ack_backlog=%zu acks_inflight=%u\n",
                (double)(now - L->t0_us) / 1e6, (double)(L->sent - L->rep_sent) / dt,
                (double)(L->replies - L->rep_replies) / dt,
                (double)(L->pushes - L->rep_pushes) / dt,
                (double)(L->deleted - L->rep_deleted) / dt, L->sent - L->answered_n, L->ack_n,
                L->ack_inflight);
        L->rep_sent = L->sent;
        L->rep_replies = L->replies;
        L->rep_pushes = L->pushes;
        L->rep_deleted = L->deleted;
        L->last_report_us = now;
    }
    if (L->sending_done) {
        uint64_t want_pushes = L->online ? L->accepted * L->devices : 0;
        int done = L->answered_n >= L->sent && L->pushes >= want_pushes &&
                   (!L->pg || (L->ack_n == 0 && L->ack_inflight == 0));
        if (done || now - L->t_end_us > LD_DRAIN_TIMEOUT_US) {
            if (L->pg)
                ld_drain(L);
            ld_summary(L, now);
            ld_finish(L);
        }
    }
}

/* Account ids of the recipients, for parley_gw_ack. */
static int ld_load_accounts(ld_state *L)
{
    PGconn *c = PQconnectdb(L->ack_pg);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "ack database: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    PGresult *r = PQexec(c, "SELECT substr(username, 3)::integer, id FROM accounts "
                            "WHERE username ~ '^lr[0-9]+$'");
    int found = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(r); i++) {
            long k = strtol(PQgetvalue(r, i, 0), NULL, 10);
            if (k >= 0 && (unsigned long)k < L->pairs) {
                L->account_id[k] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
                found++;
            }
        }
    PQclear(r);
    PQfinish(c);
    if ((unsigned)found != L->pairs) {
        fprintf(stderr, "ack database: %d of %u recipient accounts found (run loadsql)\n", found,
                L->pairs);
        return -1;
    }
    return 0;
}

/* Presence of every recipient device on its gateway, so that the fanout pushes. */
static int ld_presence(ld_state *L, int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err)
        return -1;
    size_t n = 0;
    for (unsigned k = 0; k < L->pairs; k++)
        for (unsigned d = 1; d <= L->devices; d++) {
            char key[PKEYS_MAX], val[64];
            pkeys_presence(key, L->rcpt[k], d);
            snprintf(val, sizeof val, "%s/%u", L->gw[k % L->gateways], k + 1);
            redisAppendCommand(c, "SET %s %s EX 3600", key, val);
            n++;
        }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r;
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            rc = -1;
        else
            freeReplyObject(r);
    }
    redisFree(c);
    return rc;
}

static int ld_opts(ld_state *L, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--online")) {
            L->online = 1;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (!strcmp(o, "--pairs"))
            L->pairs = (unsigned)atoi(v);
        else if (!strcmp(o, "--devices"))
            L->devices = (unsigned)atoi(v);
        else if (!strcmp(o, "--bytes"))
            L->bytes = (unsigned)atoi(v);
        else if (!strcmp(o, "--rate"))
            L->rate = atof(v);
        else if (!strcmp(o, "--window"))
            L->window = strtoul(v, NULL, 10);
        else if (!strcmp(o, "--seconds"))
            L->seconds = atof(v);
        else if (!strcmp(o, "--gateways"))
            L->gateways = (unsigned)atoi(v);
        else if (!strcmp(o, "--ack"))
            L->ack_pg = v;
        else if (!strcmp(o, "--ack-batch"))
            L->ack_batch = (unsigned)atoi(v);
        else if (!strcmp(o, "--ack-conns"))
            L->ack_conns = (unsigned)atoi(v);
        else
            return -1;
    }
    if (L->pairs == 0 || L->devices == 0 || L->devices > 16 || L->bytes == 0 ||
        L->bytes > 65536 || L->gateways == 0 || L->gateways > 64 || L->window == 0 ||
        L->window >= LD_RING || L->seconds <= 0 || L->ack_batch == 0 || L->ack_conns == 0 ||
        (L->ack_pg && !L->online))
        return -1;
    return 0;
}

static int ld_main(int port, int argc, char **argv)
{
    ld_state *L = calloc(1, sizeof *L);
    if (!L || argc < 1)
        return 2;
    *L = (ld_state){.shards = (unsigned)atoi(argv[0]), .pairs = 1000, .devices = 1,
                    .bytes = 200, .gateways = 4, .ack_conns = 4, .ack_batch = 1024,
                    .rate = 0, .seconds = 10, .window = 20000,
                    .client_base = pclock_wall_ms() << 20};
    if (L->shards == 0 || ld_opts(L, argc - 1, argv + 1) != 0) {
        ld_usage();
        free(L);
        return 2;
    }
    L->ingress = calloc(L->pairs, sizeof *L->ingress);
    L->sender = calloc(L->pairs, sizeof *L->sender);
    L->rcpt = calloc(L->pairs, sizeof *L->rcpt);
    L->account_id = calloc(L->pairs, sizeof *L->account_id);
    L->gw = calloc(L->gateways, sizeof *L->gw);
    L->delivery = calloc(L->gateways, sizeof *L->delivery);
    L->last = calloc(L->gateways, sizeof *L->last);
    L->read_argv = calloc(6 + 2 * L->gateways, sizeof *L->read_argv);
    L->read_lens = calloc(6 + 2 * L->gateways, sizeof *L->read_lens);
    L->content = malloc(L->bytes);
    L->packcap = 256 + (size_t)L->devices * (L->bytes + 32);
    L->packbuf = malloc(L->packcap);
    L->sent_at = calloc(LD_RING, sizeof *L->sent_at);
    L->lat = calloc(LD_LAT_BUCKETS, sizeof *L->lat);
    if (!L->ingress || !L->sender || !L->rcpt || !L->account_id || !L->gw || !L->delivery ||
        !L->last || !L->read_argv || !L->read_lens || !L->content || !L->packbuf ||
        !L->sent_at || !L->lat)
        return 1;
    memset(L->content, 'x', L->bytes);
    for (unsigned k = 0; k < L->pairs; k++) {
        snprintf(L->sender[k], sizeof L->sender[k], "ls%u", k);
        snprintf(L->rcpt[k], sizeof L->rcpt[k], "lr%u", k);
        pkeys_ingress(L->ingress[k], pkeys_shard(L->rcpt[k], L->shards));
    }
    for (unsigned g = 0; g < L->gateways; g++) {
        snprintf(L->gw[g], sizeof L->gw[g], "ldgw%u", g);
        pkeys_delivery(L->delivery[g], L->gw[g]);
        snprintf(L->last[g], sizeof L->last[g], "$");
    }
    if ((L->ack_pg && ld_load_accounts(L) != 0) || (L->online && ld_presence(L, port) != 0))
        return 1;
    /* start from a clean slate: replies of an earlier run must not count */
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err)
        return 1;
    for (unsigned g = 0; g < L->gateways; g++)
        freeReplyObject(redisCommand(c, "DEL %s", L->delivery[g]));
    redisFree(c);
    for (unsigned g = 0; g < L->gateways; g++)
        snprintf(L->last[g], sizeof L->last[g], "0-0");

    plog_init("fanout-drive", PLOG_WARN);
    L->loop = uv_default_loop();
    L->rd_send = predis_new(L->loop, "127.0.0.1", port, NULL, NULL);
    L->rd_read = predis_new(L->loop, "127.0.0.1", port, NULL, NULL);
    if (L->ack_pg)
        L->pg = ppg_new(L->loop, L->ack_pg, (int)L->ack_conns);
    if (!L->rd_send || !L->rd_read || (L->ack_pg && !L->pg))
        return 1;
    uv_timer_init(L->loop, &L->tick);
    L->tick.data = L;
    uv_timer_start(&L->tick, ld_tick, LD_TICK_MS, LD_TICK_MS);
    uv_run(L->loop, UV_RUN_DEFAULT);
    uv_loop_close(L->loop);
    /* a failed ack only leaves rows for the final drain; a failed drain proves nothing */
    int lost = L->answered_n < L->sent || L->missing > 0 || L->unchecked;
    free(L->ingress); free(L->sender); free(L->rcpt); free(L->account_id); free(L->gw);
    free(L->delivery); free(L->last); free(L->read_argv); free(L->read_lens); free(L->content);
    free(L->packbuf); free(L->sent_at); free(L->lat); free(L->ack_a); free(L->ack_d);
    free(L->ack_i);
    free(L->stored.slot);
    free(L->answered);
    free(L->delivered.slot);
    free(L);
    return lost ? 3 : 0;
}

/* SQL creating the accounts and devices of "load" (idempotent; recipients keep exactly
 * DEVICES devices). */
static void ld_sql(unsigned pairs, unsigned devices)
{
    printf("BEGIN;\n"
           "INSERT INTO accounts (username, account_key) SELECT p || i, decode(repeat('ab', 32), "
           "'hex') FROM generate_series(0, %u) i, (VALUES ('ls'), ('lr')) v(p) "
           "ON CONFLICT (username) DO NOTHING;\n",
           pairs - 1);
    printf("INSERT INTO devices (account_id, device_id, registration_id, signing_key, "
           "identity_key) SELECT a.id, 1, 1, decode(repeat('01', 32), 'hex'), "
           "decode(repeat('02', 32), 'hex') FROM accounts a WHERE a.username ~ '^ls[0-9]+$' "
           "ON CONFLICT DO NOTHING;\n");
    printf("DELETE FROM devices d USING accounts a WHERE a.id = d.account_id "
           "AND a.username ~ '^lr[0-9]+$' AND d.device_id > %u;\n", devices);
    printf("INSERT INTO devices (account_id, device_id, registration_id, signing_key, "
           "identity_key) SELECT a.id, d, 1 + (substr(a.username, 3)::integer * 8 + d) %% 16380, "
           "decode(repeat('01', 32), 'hex'), decode(repeat('02', 32), 'hex') "
           "FROM accounts a, generate_series(1, %u) d WHERE a.username ~ '^lr[0-9]+$' "
           "ON CONFLICT DO NOTHING;\n"
           "COMMIT;\n",
           devices);
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    if (!strcmp(argv[2], "load"))
        return ld_main(atoi(argv[1]), argc - 3, argv + 3);
    if (!strcmp(argv[2], "loadsql")) {
        if (argc < 5) return 2;
        ld_sql((unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
        return 0;
    }
    if (argc < 4) return 2; /* every command below takes at least one argument */
    redisContext *c = redisConnect("127.0.0.1", atoi(argv[1]));
    if (!c || c->err) { fprintf(stderr, "connect\n"); return 1; }
    char key[PKEYS_MAX];
    if (!strcmp(argv[2], "send") && argc >= 12) {
        /* send GW CONN REQ SENDER SDEV CLIENT RECIPIENT SHARDS URGENT dev:reg:content... */
        Parley__V1__InternalSend s = PARLEY__V1__INTERNAL_SEND__INIT;
        Parley__V1__Send snd = PARLEY__V1__SEND__INIT;
        s.gateway_id = argv[3]; s.conn_id = strtoull(argv[4], 0, 10); s.request_id = strtoull(argv[5], 0, 10);
        s.sender = argv[6]; s.sender_device = atoi(argv[7]); snd.client_id = strtoull(argv[8], 0, 10);
        snd.recipient = argv[9]; unsigned shards = atoi(argv[10]); snd.urgent = atoi(argv[11]);
        int n = argc - 12;
        Parley__V1__OutEnvelope env[16], *envp[16];
        if (n > 16) { fprintf(stderr, "at most 16 envelopes\n"); return 2; }
        for (int i = 0; i < n; i++) {
            parley__v1__out_envelope__init(&env[i]);
            char *a = argv[12 + i], *p1 = strchr(a, ':'), *p2 = p1 ? strchr(p1 + 1, ':') : NULL;
            if (!p2) return 2;
            env[i].device_id = atoi(a); env[i].registration_id = atoi(p1 + 1);
            env[i].content.data = (uint8_t *)p2 + 1; env[i].content.len = strlen(p2 + 1);
            envp[i] = &env[i];
        }
        snd.n_envelopes = n; snd.envelopes = envp; s.send = &snd; s.received_ms = (uint64_t)time(NULL) * 1000;
        size_t len = parley__v1__internal_send__get_packed_size(&s);
        uint8_t *buf = malloc(len); parley__v1__internal_send__pack(&s, buf);
        pkeys_ingress(key, pkeys_shard(snd.recipient, shards));
        redisReply *r = redisCommand(c, "XADD %s * m %b", key, buf, len);
        printf("%s %s\n", key, r && r->str ? r->str : "?");
        freeReplyObject(r); free(buf);
    } else if (!strcmp(argv[2], "garbage")) {
        pkeys_ingress(key, atoi(argv[3]));
        redisReply *r = redisCommand(c, "XADD %s * m %b", key, "\xff\xff\xff", (size_t)3);
        printf("%s %s\n", key, r && r->str ? r->str : "?"); freeReplyObject(r);
    } else if (!strcmp(argv[2], "bulk") && argc >= 7) {
        long n = atol(argv[4]);
        uint64_t first = strtoull(argv[5], 0, 10);
        unsigned shards = atoi(argv[6]);
        Parley__V1__InternalSend s = PARLEY__V1__INTERNAL_SEND__INIT;
        Parley__V1__Send snd = PARLEY__V1__SEND__INIT;
        Parley__V1__OutEnvelope env[2], *envp[2] = {&env[0], &env[1]};
        uint8_t content[200];
        memset(content, 'x', sizeof content);
        for (int i = 0; i < 2; i++) {
            parley__v1__out_envelope__init(&env[i]);
            env[i].device_id = i + 1;
            env[i].registration_id = 201 + i;
            env[i].content.data = content;
            env[i].content.len = sizeof content;
        }
        s.gateway_id = argv[3]; s.sender = "alice"; s.sender_device = 1; s.send = &snd;
        snd.recipient = "bob"; snd.n_envelopes = 2; snd.envelopes = envp;
        pkeys_ingress(key, pkeys_shard("bob", shards));
        for (long i = 0; i < n; i++) {
            uint8_t buf[1024];
            s.conn_id = 1; s.request_id = (uint64_t)i + 1; snd.client_id = first + (uint64_t)i;
            s.received_ms = (uint64_t)time(NULL) * 1000;
            size_t len = parley__v1__internal_send__pack(&s, buf);
            redisAppendCommand(c, "XADD %s * m %b", key, buf, len);
        }
        for (long i = 0; i < n; i++) {
            redisReply *r;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) return 1;
            freeReplyObject(r);
        }
        printf("queued %ld\n", n);
    } else if (!strcmp(argv[2], "count")) {
        pkeys_delivery(key, argv[3]);
        redisReply *r = redisCommand(c, "XLEN %s", key);
        printf("%lld\n", r ? r->integer : -1);
        freeReplyObject(r);
    } else if (!strcmp(argv[2], "read")) {
        pkeys_delivery(key, argv[3]);
        redisReply *r = redisCommand(c, "XRANGE %s - +", key);
        for (size_t i = 0; r && i < r->elements; i++) {
            redisReply *e = r->element[i];
            dump_event(e->element[0]->str, (uint8_t *)e->element[1]->element[1]->str, e->element[1]->element[1]->len);
        }
        /* delete what was printed, by id: a DEL of the key would also take an entry the fanout
         * added after the XRANGE, unseen */
        for (size_t i = 0; r && i < r->elements; i++) {
            redisReply *d = redisCommand(c, "XDEL %s %s", key, r->element[i]->element[0]->str);
            freeReplyObject(d);
        }
        freeReplyObject(r);
    }
    redisFree(c);
    return 0;
}
