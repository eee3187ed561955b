/* fanout_drive.c: test driver for the fanout, used by tests/integration/test_fanout.sh (built
 * by tests/tools/CMakeLists.txt as parley-fanout-drive). "send" XADDs a hand-built InternalSend to its ingress
 * shard, "garbage" an undecodable entry, "read" prints and deletes a gateway delivery stream.
 * Usage: fo_drive REDIS_PORT send GW CONN REQ SENDER SDEV CLIENT RECIPIENT SHARDS URGENT
 *                 DEV:REG:CONTENT...
 *        fo_drive REDIS_PORT garbage SHARD
 *        fo_drive REDIS_PORT read GW
 *        fo_drive REDIS_PORT bulk GW N FIRST_CLIENT_ID SHARDS   (alice:1 -> bob 1:201 2:202)
 *        fo_drive REDIS_PORT count GW   (replies and pushes in a delivery stream, then DEL) */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <time.h>
#include "keys.h"
#include "parley.pb-c.h"

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

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
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
        freeReplyObject(r);
        redisReply *d = redisCommand(c, "DEL %s", key); freeReplyObject(d);
    }
    redisFree(c);
    return 0;
}
