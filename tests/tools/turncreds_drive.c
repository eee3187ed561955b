/* turncreds_drive.c: parley-turncreds-drive, GetTurnCredentials as a command-line tool for the
 * integration tests (tests/integration/test_turn_credentials.sh).
 *
 *   parley-turncreds-drive [--server URL] --home DIR [--count N] [--timeout S]
 *
 * Authenticates as the home's device (--server overrides the home's server), then sends N
 * (default 1) GetTurnCredentials one after the other and prints one line per answer:
 *   "creds ttl=T username=U password=P uris=URI[,URI...]"
 *   "error CODE retry=MS msg=..."            (a server error: printed, not a failure)
 * Exit 0 when every request was answered, 1 on a network failure or the timeout (default
 * 30 s), 2 on a usage error. */
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley_client.h"

#define DEFAULT_TIMEOUT_S 30.0
#define COUNT_MAX 100000

typedef struct {
    uv_loop_t loop;
    pc_ctx *ctx;
    pc_home home;
    int home_open;
    pc_session *sess;
    pc_conn *conn;
    const char *server;
    double timeout_s;
    long count, answered;
    uv_timer_t deadline;
    int done, rc;
} drive;

static void stop(drive *d, int rc)
{
    if (d->done)
        return;
    d->done = 1;
    d->rc = rc;
    fflush(stdout);
    uv_timer_stop(&d->deadline);
    uv_stop(&d->loop);
}

static void fail(drive *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(drive *d, const char *fmt, ...)
{
    va_list ap;

    if (d->done)
        return;
    fputs("parley-turncreds-drive: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    stop(d, 1);
}

static void request(drive *d);

static void answered(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                     void *ud)
{
    drive *d = ud;

    (void)c;
    if (d->done)
        return;
    if (!f) {
        fail(d, "no answer: %s", st->msg);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR) {
        printf("error %s retry=%u msg=%s\n", pc_error_name(f->error->code),
               (unsigned)f->error->retry_after_ms, f->error->message);
    } else if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_TURN_CREDENTIALS) {
        const Parley__V1__TurnCredentials *t = f->turn_credentials;
        printf("creds ttl=%" PRIu32 " username=%s password=%s uris=", t->ttl_s, t->username,
               t->password);
        for (size_t i = 0; i < t->n_uris; i++)
            printf("%s%s", i ? "," : "", t->uris[i]);
        putchar('\n');
    } else {
        fail(d, "unexpected answer (body %d)", (int)f->body_case);
        return;
    }
    if (++d->answered == d->count)
        stop(d, 0);
    else
        request(d);
}

static void request(drive *d)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__GetTurnCredentials g = PARLEY__V1__GET_TURN_CREDENTIALS__INIT;
    pc_status st;

    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_GET_TURN_CREDENTIALS;
    f.get_turn_credentials = &g;
    if (pc_conn_request(d->conn, &f, answered, d, &st) < 0)
        fail(d, "request: %s", st.msg);
}

static void sess_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    drive *d = ud;

    (void)ok;
    if (d->conn)
        return; /* re-authenticated after a drop: the run has failed already */
    d->conn = pc_session_conn(s);
    printf("auth\n");
    request(d);
}

static void sess_down(pc_session *s, const pc_status *st, int retrying, void *ud)
{
    drive *d = ud;

    (void)s;
    (void)retrying;
    fail(d, "%s: %s", d->conn ? "connection lost" : "authentication failed", st->msg);
}

static void deadline_cb(uv_timer_t *t)
{
    drive *d = t->data;

    fail(d, "timed out after %g s with %ld of %ld answers", d->timeout_s, d->answered,
         d->count);
}

static int usage(const char *msg)
{
    fprintf(stderr,
            "parley-turncreds-drive: %s\n"
            "usage: parley-turncreds-drive [--server URL] --home DIR [--count N] "
            "[--timeout S]\n",
            msg);
    return 2;
}

static int parse(drive *d, int argc, char **argv)
{
    d->timeout_s = DEFAULT_TIMEOUT_S;
    d->count = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (i + 1 >= argc)
            return usage("an option lacks its value");
        if (!strcmp(o, "--server")) {
            d->server = argv[++i];
        } else if (!strcmp(o, "--home")) {
            if (d->home_open)
                return usage("one --home");
            if (pc_home_open(&d->home, argv[++i], 0, NULL) < 0)
                return usage("cannot open the home folder");
            d->home_open = 1;
        } else if (!strcmp(o, "--count")) {
            d->count = strtol(argv[++i], NULL, 10);
            if (d->count < 1 || d->count > COUNT_MAX)
                return usage("--count wants 1..100000");
        } else if (!strcmp(o, "--timeout")) {
            d->timeout_s = strtod(argv[++i], NULL);
            if (!(d->timeout_s > 0))
                return usage("--timeout wants seconds");
        } else {
            return usage("unknown argument");
        }
    }
    if (!d->home_open)
        return usage("--home is required");
    return 0;
}

static int start(drive *d)
{
    pc_status st;
    pc_session_events ev = { sess_up, NULL, sess_down, NULL, NULL };

    if (pc_home_load(&d->home, &st) < 0) {
        fail(d, "%s", st.msg);
        return -1;
    }
    if (!d->server)
        d->server = d->home.server;
    if (!d->server) {
        fail(d, "no server: give --server");
        return -1;
    }
    d->ctx = pc_ctx_new(&d->loop, getenv("PARLEY_PROBE_VERBOSE") != NULL, &st);
    if (!d->ctx) {
        fail(d, "%s", st.msg);
        return -1;
    }
    d->sess = pc_session_new(d->ctx, d->server, &d->home.id, &ev, d, &st);
    if (!d->sess) {
        fail(d, "%s", st.msg);
        return -1;
    }
    pc_session_start(d->sess);
    uv_timer_start(&d->deadline, deadline_cb, (uint64_t)llround(d->timeout_s * 1000), 0);
    return 0;
}

int main(int argc, char **argv)
{
    drive d;
    int rc;

    memset(&d, 0, sizeof d);
    if (sodium_init() < 0 || uv_loop_init(&d.loop) != 0) {
        fputs("parley-turncreds-drive: initialisation failed\n", stderr);
        return 1;
    }
    uv_timer_init(&d.loop, &d.deadline);
    d.deadline.data = &d;
    signal(SIGPIPE, SIG_IGN);
    rc = parse(&d, argc, argv);
    if (rc == 0 && start(&d) == 0)
        uv_run(&d.loop, UV_RUN_DEFAULT);
    else if (rc == 0)
        rc = 1;

    /* the session first: its pending request is cancelled (the callback sees d.done) */
    d.done = 1;
    pc_session_free(d.sess);
    if (d.ctx)
        pc_ctx_free(d.ctx);
    uv_close((uv_handle_t *)&d.deadline, NULL);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uv_loop_close(&d.loop);
    if (d.home_open)
        pc_home_free(&d.home);
    return rc ? rc : d.rc;
}
