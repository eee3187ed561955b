/* provision_drive.c: parley-provision-drive, the provisioning channel of device linking
 * (ProvisionOpen, ProvisionJoin, ProvisionSend and their pushes) over several named
 * connections, for tests/integration/test_provision.sh.
 *
 *   parley-provision-drive [--timeout S] STEP...
 *
 * The steps run in order, each after the previous one finished. Server errors are printed, not
 * failures: "NAME error CODE retry=MS msg=...". Exit 0 when every step ran, 1 on a failure
 * (connect, registration, the overall timeout: default 60 s), 2 on a usage error.
 * Data SPEC: "N" or "N/SEED": N bytes made from SEED (default "x"), the same for the same SPEC;
 * received data is printed as "len=N sum=HEX" (the first 8 bytes of its BLAKE2b-256).
 *
 * Steps:
 *   conn NAME URL          an unauthenticated connection (ready once the challenge came)
 *   device NAME URL USER   registers USER (fresh keys; the client library sends the signed
 *                          device list) on a new connection, then authenticates on it as
 *                          device 1
 *   open NAME SPEC         ProvisionOpen: "NAME opened ID ttl=S" (S: expires_ms from now)
 *   join NAME CH SPEC      ProvisionJoin: "NAME peer ch=ID len=N sum=HEX". CH: a channel id,
 *                          or =OTHER for the channel connection OTHER opened or joined
 *   send NAME CH SPEC      ProvisionSend: "NAME sent"
 *   expect NAME KIND S     waits up to S s for a push KIND (peer or data) on NAME: "NAME got
 *                          KIND ch=ID len=N sum=HEX", or "NAME no KIND" (also when NAME closed)
 *   quiet NAME S           S s later: "NAME quiet" when no push came meanwhile, else the push
 *   ping NAME              Ping: "NAME pong"
 *   state NAME             "NAME open" or "NAME closed code=C"
 *   wait-closed NAME S     waits up to S s for NAME to close; then like state
 *   close NAME             closes NAME (1000) and waits for the close
 *   sleep S
 *   sum SPEC               "sum SPEC HEX", the sum of SPEC's bytes
 * A request on a closed connection prints "NAME closed code=C". */
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drive.h"

#define DEFAULT_TIMEOUT_S 60.0
#define POLL_MS 20
#define CONNS_MAX 16
#define NAME_LEN 32
#define PUSHES_MAX 64
#define DATA_MAX (2 * PARLEY_PROVISION_DATA_MAX)
#define SUM_HEX 17

typedef struct {
    int kind; /* 'p' peer, 'd' data */
    char chan[32];
    size_t len;
    char sum[SUM_HEX];
} push;

typedef struct {
    struct drive *d;
    char name[NAME_LEN];
    pc_conn *c;
    int closed, close_code;
    pc_identity id;
    char chan[32];
    push pushes[PUSHES_MAX];
    int npushes;
} dconn;

typedef struct drive {
    drive_base b;        /* b.wait: the polls of waiting steps */
    char **steps;
    int nsteps, pos;
    dconn conns[CONNS_MAX];
    int nconns;
    /* a waiting step: polled until cond says done or wait_until_ms passed */
    int (*cond)(struct drive *d, int timed_out);
    dconn *wc;
    int wkind;
    uint64_t wait_until_ms;
    int done, rc;
} drive;

static void run(drive *d);

static void next_step(drive *d)
{
    d->cond = NULL;
    uv_timer_stop(&d->b.wait);
    fflush(stdout);
    run(d);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- data -------------------------------------------------------------------------------- */

/* SPEC "N" or "N/SEED" into buf (DATA_MAX); returns N or -1. */
static long spec_bytes(const char *spec, uint8_t *buf)
{
    char *end;
    long n = strtol(spec, &end, 10);
    const char *seed = "x";
    uint8_t key[randombytes_SEEDBYTES];

    if (end == spec || n < 0 || n > DATA_MAX || (*end && *end != '/'))
        return -1;
    if (*end == '/')
        seed = end + 1;
    crypto_generichash(key, sizeof key, (const uint8_t *)seed, strlen(seed), NULL, 0);
    randombytes_buf_deterministic(buf, (size_t)n, key);
    return n;
}

static void sum_hex(char out[SUM_HEX], const uint8_t *p, size_t n)
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, p, n, NULL, 0);
    sodium_bin2hex(out, SUM_HEX, h, 8);
}

/* ---- connections ------------------------------------------------------------------------- */

static dconn *find(drive *d, const char *name)
{
    for (int i = 0; i < d->nconns; i++)
        if (!strcmp(d->conns[i].name, name))
            return &d->conns[i];
    return NULL;
}

static void print_push(const dconn *k, const push *p)
{
    printf("%s got %s ch=%s len=%zu sum=%s\n", k->name, p->kind == 'p' ? "peer" : "data",
           p->chan, p->len, p->sum);
}

static void on_frame(pc_conn *c, const Parley__V1__ServerFrame *f, void *ud)
{
    dconn *k = ud;
    const char *chan = NULL;
    const ProtobufCBinaryData *data = NULL;
    int kind = 0;

    (void)c;
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_PROVISION_PEER && f->provision_peer) {
        kind = 'p';
        chan = f->provision_peer->channel_id;
        data = &f->provision_peer->data;
    } else if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_PROVISION_DATA &&
               f->provision_data) {
        kind = 'd';
        chan = f->provision_data->channel_id;
        data = &f->provision_data->data;
    } else if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error) {
        printf("%s push-error %s msg=%s\n", k->name, pc_error_name(f->error->code),
               f->error->message ? f->error->message : "");
        return;
    } else {
        return; /* challenges, queue_empty and the like */
    }
    if (k->npushes == PUSHES_MAX) {
        drive_fail(&k->d->b, "%s: too many pushes", k->name);
        return;
    }
    push *p = &k->pushes[k->npushes++];
    p->kind = kind;
    snprintf(p->chan, sizeof p->chan, "%s", chan ? chan : "");
    p->len = data->len;
    sum_hex(p->sum, data->data, data->len);
}

static void on_close(pc_conn *c, const pc_status *st, void *ud)
{
    dconn *k = ud;
    (void)c;
    k->closed = 1;
    k->close_code = st->close_code;
}

static const pc_conn_events conn_events = {NULL, on_frame, on_close};

static dconn *conn_new(drive *d, const char *name, const char *url)
{
    pc_status st;
    if (d->nconns == CONNS_MAX || find(d, name) || strlen(name) >= NAME_LEN) {
        drive_fail(&d->b, "bad or duplicate connection name %s", name);
        return NULL;
    }
    dconn *k = &d->conns[d->nconns++];
    memset(k, 0, sizeof *k);
    k->d = d;
    snprintf(k->name, sizeof k->name, "%s", name);
    k->c = pc_conn_open(d->b.ctx, url, &conn_events, k, &st);
    if (!k->c) {
        drive_fail(&d->b, "%s: %s", name, st.msg);
        return NULL;
    }
    return k;
}

/* ---- waiting ----------------------------------------------------------------------------- */

static void poll_cb(uv_timer_t *t)
{
    drive *d = t->data;
    if (d->b.done || !d->cond)
        return;
    int timed_out = uv_now(&d->b.loop) >= d->wait_until_ms;
    if (d->cond(d, timed_out))
        next_step(d);
}

static void wait_for(drive *d, int (*cond)(drive *d, int timed_out), dconn *k, double secs)
{
    d->cond = cond;
    d->wc = k;
    d->wait_until_ms = uv_now(&d->b.loop) + (uint64_t)llround(secs * 1000);
    uv_timer_start(&d->b.wait, poll_cb, 0, POLL_MS);
}

static int take_push(dconn *k, int kind)
{
    for (int i = 0; i < k->npushes; i++) {
        if (k->pushes[i].kind != kind)
            continue;
        print_push(k, &k->pushes[i]);
        memmove(&k->pushes[i], &k->pushes[i + 1], (size_t)(k->npushes - i - 1) * sizeof(push));
        k->npushes--;
        return 1;
    }
    return 0;
}

static int cond_expect(drive *d, int timed_out)
{
    dconn *k = d->wc;
    if (take_push(k, d->wkind))
        return 1;
    if (timed_out || k->closed) {
        printf("%s no %s\n", k->name, d->wkind == 'p' ? "peer" : "data");
        return 1;
    }
    return 0;
}

static int cond_quiet(drive *d, int timed_out)
{
    dconn *k = d->wc;
    if (!timed_out)
        return 0;
    if (k->npushes == 0)
        printf("%s quiet\n", k->name);
    while (k->npushes > 0)
        take_push(k, k->pushes[0].kind);
    return 1;
}

static void print_state(const dconn *k)
{
    if (k->closed)
        printf("%s closed code=%d\n", k->name, k->close_code);
    else
        printf("%s open\n", k->name);
}

static int cond_closed(drive *d, int timed_out)
{
    if (!d->wc->closed && !timed_out)
        return 0;
    print_state(d->wc);
    return 1;
}

static int cond_sleep(drive *d, int timed_out)
{
    (void)d;
    return timed_out;
}

/* ---- conn and device --------------------------------------------------------------------- */

static void challenge_cb(pc_conn *c, const pc_challenge *ch, const pc_status *st, void *ud)
{
    dconn *k = ud;
    (void)c;
    if (k->d->b.done)
        return;
    if (!ch) {
        drive_fail(&k->d->b, "%s: no challenge: %s", k->name, st->msg);
        return;
    }
    next_step(k->d);
}

static void auth_cb(pc_conn *c, const pc_status *st, const Parley__V1__AuthOk *ok, void *ud)
{
    dconn *k = ud;
    (void)c;
    if (k->d->b.done)
        return;
    if (!ok) {
        drive_fail(&k->d->b, "%s: authentication failed: %s", k->name, st->msg);
        return;
    }
    next_step(k->d);
}

static void register_cb(pc_conn *c, const pc_status *st, const char *username,
                        uint32_t device_id, void *ud)
{
    dconn *k = ud;
    pc_status st2;
    if (k->d->b.done)
        return;
    if (st->kind != PC_OK) {
        drive_fail(&k->d->b, "%s: registration failed: %s", k->name, st->msg);
        return;
    }
    snprintf(k->id.username, sizeof k->id.username, "%s", username);
    k->id.device_id = device_id;
    if (pc_auth_start(c, &k->id, auth_cb, k, &st2) != 0)
        drive_fail(&k->d->b, "%s: %s", k->name, st2.msg);
}

/* ---- requests ---------------------------------------------------------------------------- */

/* The answer of a request: an error is printed; returns the frame when it is of body case
 * want, else NULL (the step is over either way once the caller printed). */
static const Parley__V1__ServerFrame *answer(dconn *k, const Parley__V1__ServerFrame *f,
                                             const pc_status *st, int want)
{
    if (!f) {
        if (k->closed || st->kind == PC_ERR_NET)
            printf("%s closed code=%d\n", k->name, k->closed ? k->close_code : st->close_code);
        else
            printf("%s failed %s\n", k->name, st->msg);
        return NULL;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error) {
        printf("%s error %s retry=%u msg=%s\n", k->name, pc_error_name(f->error->code),
               (unsigned)f->error->retry_after_ms, f->error->message ? f->error->message : "");
        return NULL;
    }
    if ((int)f->body_case != want) {
        printf("%s unexpected body %d\n", k->name, (int)f->body_case);
        return NULL;
    }
    return f;
}

static void opened_cb(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                      void *ud)
{
    dconn *k = ud;
    (void)c;
    if (k->d->b.done)
        return;
    f = answer(k, f, st, PARLEY__V1__SERVER_FRAME__BODY_PROVISION_OPENED);
    if (f && f->provision_opened) {
        const Parley__V1__ProvisionOpened *o = f->provision_opened;
        snprintf(k->chan, sizeof k->chan, "%s", o->channel_id ? o->channel_id : "");
        int64_t left = (int64_t)o->expires_ms - (int64_t)wall_ms();
        printf("%s opened %s ttl=%" PRId64 "\n", k->name, k->chan, (left + 500) / 1000);
    }
    next_step(k->d);
}

static void peer_cb(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st, void *ud)
{
    dconn *k = ud;
    (void)c;
    if (k->d->b.done)
        return;
    f = answer(k, f, st, PARLEY__V1__SERVER_FRAME__BODY_PROVISION_PEER);
    if (f && f->provision_peer) {
        const Parley__V1__ProvisionPeer *p = f->provision_peer;
        char sum[SUM_HEX];
        sum_hex(sum, p->data.data, p->data.len);
        snprintf(k->chan, sizeof k->chan, "%s", p->channel_id ? p->channel_id : "");
        printf("%s peer ch=%s len=%zu sum=%s\n", k->name, k->chan, p->data.len, sum);
    }
    next_step(k->d);
}

static void sent_cb(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st, void *ud)
{
    dconn *k = ud;
    (void)c;
    if (k->d->b.done)
        return;
    if (answer(k, f, st, PARLEY__V1__SERVER_FRAME__BODY_PROVISION_SENT))
        printf("%s sent\n", k->name);
    next_step(k->d);
}

static void pong_cb(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st, void *ud)
{
    dconn *k = ud;
    (void)c;
    if (k->d->b.done)
        return;
    if (answer(k, f, st, PARLEY__V1__SERVER_FRAME__BODY_PONG))
        printf("%s pong\n", k->name);
    next_step(k->d);
}

static void request(drive *d, dconn *k, Parley__V1__ClientFrame *f, pc_response_cb cb)
{
    pc_status st;
    if (k->closed) {
        printf("%s closed code=%d\n", k->name, k->close_code);
        next_step(d);
        return;
    }
    if (pc_conn_request(k->c, f, cb, k, &st) != 0)
        drive_fail(&d->b, "%s: %s", k->name, st.msg);
}

/* CH: "=OTHER" is OTHER's channel */
static const char *channel_arg(drive *d, const char *ch)
{
    if (ch[0] != '=')
        return ch;
    dconn *o = find(d, ch + 1);
    return o ? o->chan : "";
}

/* ---- the steps --------------------------------------------------------------------------- */

static int nargs(const char *step)
{
    static const struct {
        const char *name;
        int n;
    } t[] = {{"conn", 2},  {"device", 3}, {"open", 2},  {"join", 3},        {"send", 3},
             {"expect", 3}, {"quiet", 2}, {"ping", 1},  {"state", 1},       {"wait-closed", 2},
             {"close", 1},  {"sleep", 1}, {"sum", 1}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(step, t[i].name))
            return t[i].n;
    return -1;
}

static void run(drive *d)
{
    static uint8_t buf[DATA_MAX];
    if (d->b.done)
        return;
    if (d->pos >= d->nsteps) {
        drive_stop(&d->b, 0);
        return;
    }
    char **a = d->steps + d->pos;
    const char *s = a[0];
    d->pos += 1 + nargs(s);
    if (!strcmp(s, "sleep")) {
        wait_for(d, cond_sleep, NULL, strtod(a[1], NULL));
        return;
    }
    if (!strcmp(s, "sum")) {
        char sum[SUM_HEX];
        long n = spec_bytes(a[1], buf);
        if (n < 0) {
            drive_fail(&d->b, "bad data spec %s", a[1]);
            return;
        }
        sum_hex(sum, buf, (size_t)n);
        printf("sum %s %s\n", a[1], sum);
        next_step(d);
        return;
    }
    if (!strcmp(s, "conn") || !strcmp(s, "device")) {
        dconn *k = conn_new(d, a[1], a[2]);
        pc_status st;
        if (!k)
            return;
        if (!strcmp(s, "conn")) {
            pc_conn_on_challenge(k->c, challenge_cb, k);
            return;
        }
        if (pc_keys_generate(&k->id.keys, &st) != 0 ||
            pc_register_start(k->c, &k->id.keys, a[3], register_cb, k, &st) != 0)
            drive_fail(&d->b, "%s: %s", k->name, st.msg);
        return;
    }
    dconn *k = find(d, a[1]);
    if (!k) {
        drive_fail(&d->b, "no connection %s", a[1]);
        return;
    }
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    if (!strcmp(s, "open")) {
        Parley__V1__ProvisionOpen o = PARLEY__V1__PROVISION_OPEN__INIT;
        long n = spec_bytes(a[2], buf);
        if (n < 0) {
            drive_fail(&d->b, "bad data spec %s", a[2]);
            return;
        }
        o.data.data = buf;
        o.data.len = (size_t)n;
        f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_OPEN;
        f.provision_open = &o;
        request(d, k, &f, opened_cb);
    } else if (!strcmp(s, "join") || !strcmp(s, "send")) {
        Parley__V1__ProvisionJoin j = PARLEY__V1__PROVISION_JOIN__INIT;
        Parley__V1__ProvisionSend sd = PARLEY__V1__PROVISION_SEND__INIT;
        long n = spec_bytes(a[3], buf);
        if (n < 0) {
            drive_fail(&d->b, "bad data spec %s", a[3]);
            return;
        }
        char ch[64];
        snprintf(ch, sizeof ch, "%s", channel_arg(d, a[2]));
        if (!strcmp(s, "join")) {
            j.channel_id = ch;
            j.data.data = buf;
            j.data.len = (size_t)n;
            f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_JOIN;
            f.provision_join = &j;
            request(d, k, &f, peer_cb);
        } else {
            sd.channel_id = ch;
            sd.data.data = buf;
            sd.data.len = (size_t)n;
            f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_SEND;
            f.provision_send = &sd;
            request(d, k, &f, sent_cb);
        }
    } else if (!strcmp(s, "expect")) {
        d->wkind = !strcmp(a[2], "peer") ? 'p' : 'd';
        wait_for(d, cond_expect, k, strtod(a[3], NULL));
    } else if (!strcmp(s, "quiet")) {
        wait_for(d, cond_quiet, k, strtod(a[2], NULL));
    } else if (!strcmp(s, "ping")) {
        Parley__V1__Ping p = PARLEY__V1__PING__INIT;
        f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PING;
        f.ping = &p;
        request(d, k, &f, pong_cb);
    } else if (!strcmp(s, "state")) {
        print_state(k);
        next_step(d);
    } else if (!strcmp(s, "wait-closed")) {
        wait_for(d, cond_closed, k, strtod(a[2], NULL));
    } else if (!strcmp(s, "close")) {
        if (!k->closed)
            pc_conn_close(k->c, 1000, "done");
        wait_for(d, cond_closed, k, 10);
    }
}

/* ---- arguments and main ------------------------------------------------------------------ */

static void start_cb(uv_timer_t *t)
{
    run(t->data);
}

static void deadline_cb(uv_timer_t *t)
{
    drive *d = t->data;
    drive_fail(&d->b, "timed out after %g s", d->b.timeout_s);
}

static int parse(drive *d, int argc, char **argv)
{
    int i = 1;
    if (i + 1 < argc && !strcmp(argv[i], "--timeout")) {
        if (drive_timeout_option(&d->b, argv[i + 1]) != 0)
            return 2;
        i += 2;
    }
    d->steps = argv + i;
    d->nsteps = argc - i;
    for (int p = 0; p < d->nsteps;) {
        int n = nargs(d->steps[p]);
        if (n < 0)
            return drive_usage(&d->b, "unknown step");
        if (p + n >= d->nsteps)
            return drive_usage(&d->b, "a step lacks its arguments");
        p += 1 + n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    drive d;
    int rc;

    memset(&d, 0, sizeof d);
    if (drive_init(&d.b, "parley-provision-drive", "parley-provision-drive [--timeout S] STEP...",
                   DEFAULT_TIMEOUT_S) < 0)
        return 1;
    rc = parse(&d, argc, argv);
    if (rc == 0 && drive_start_ctx(&d.b) == 0) {
        drive_arm(&d.b, deadline_cb);
        /* from the loop, so that a run without waiting steps still ends through uv_run */
        uv_timer_start(&d.b.wait, start_cb, 0, 0);
        uv_run(&d.b.loop, UV_RUN_DEFAULT);
    } else if (rc == 0) {
        rc = 1;
    }

    d.b.done = 1;
    for (int i = 0; i < d.nconns; i++) {
        pc_conn_free(d.conns[i].c);
        pc_keys_wipe(&d.conns[i].id.keys);
    }
    drive_finish(&d.b);
    return rc ? rc : d.b.rc;
}
