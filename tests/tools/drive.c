/* drive.c: the loop, options and ending shared by the test tools (drive.h). */
#include "drive.h"

#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

int drive_init(drive_base *b, const char *prog, const char *usage, double timeout_s)
{
    b->prog = prog;
    b->usage = usage;
    b->timeout_s = timeout_s;
    if (sodium_init() < 0 || uv_loop_init(&b->loop) != 0) {
        fprintf(stderr, "%s: initialisation failed\n", prog);
        return -1;
    }
    uv_timer_init(&b->loop, &b->deadline);
    uv_timer_init(&b->loop, &b->wait);
    b->deadline.data = b->wait.data = b;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int drive_usage(const drive_base *b, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", b->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s\n", b->usage);
    return 2;
}

int drive_timeout_option(drive_base *b, const char *value)
{
    char *end;

    b->timeout_s = strtod(value, &end);
    if (end == value || *end || !(b->timeout_s > 0))
        return drive_usage(b, "--timeout wants seconds");
    return 0;
}

int drive_common_option(drive_base *b, int argc, char **argv, int *i)
{
    const char *o = argv[*i];
    pc_status st;

    if (strcmp(o, "--server") && strcmp(o, "--home") && strcmp(o, "--timeout"))
        return 0;
    if (*i + 1 >= argc)
        return drive_usage(b, "%s needs a value", o);
    const char *v = argv[++*i];
    if (!strcmp(o, "--server")) {
        b->server = v;
    } else if (!strcmp(o, "--home")) {
        if (b->home_open)
            return drive_usage(b, "one --home");
        int rc = pc_home_open(&b->home, v, 0, &st);
        b->home_open = 1; /* also when it failed: pc_home_free frees what it kept */
        if (rc < 0)
            return drive_usage(b, "cannot open the home folder %s: %s", v, st.msg);
    } else if (drive_timeout_option(b, v) != 0) {
        return 2;
    }
    return 1;
}

int drive_load_home(drive_base *b)
{
    pc_status st;

    if (pc_home_load(&b->home, &st) < 0) {
        drive_fail(b, "%s", st.msg);
        return -1;
    }
    if (!b->server)
        b->server = b->home.server;
    if (!b->server) {
        drive_fail(b, "no server: give --server");
        return -1;
    }
    return 0;
}

int drive_start_ctx(drive_base *b)
{
    pc_status st;

    b->ctx = pc_ctx_new(&b->loop, getenv("PARLEY_PROBE_VERBOSE") != NULL, &st);
    if (!b->ctx) {
        drive_fail(b, "%s", st.msg);
        return -1;
    }
    return 0;
}

pc_session *drive_start_session(drive_base *b, const pc_session_events *ev, void *ud)
{
    pc_status st;

    b->sess = pc_session_new(b->ctx, b->server, &b->home.id, ev, ud, &st);
    if (!b->sess) {
        drive_fail(b, "%s", st.msg);
        return NULL;
    }
    pc_session_start(b->sess);
    return b->sess;
}

int drive_auth_answer(const pc_identity *id, const pc_challenge *ch, uint64_t now_ms,
                      Parley__V1__AuthAnswer *a, uint8_t sig[64])
{
    uint8_t tr[PAUTH_TRANSCRIPT_MAX];
    size_t trlen = pauth_auth_transcript(tr, ch->nonce, ch->gateway_id, id->username,
                                         id->device_id, now_ms);

    if (!trlen)
        return -1;
    if (id->device_id == 0)
        pc_keys_sign_account(&id->keys, sig, tr, trlen);
    else
        pc_keys_sign_device(&id->keys, sig, tr, trlen);
    a->account = (char *)id->username;
    a->device_id = id->device_id;
    a->timestamp_ms = now_ms;
    a->signature.data = sig;
    a->signature.len = 64;
    return 0;
}

void drive_arm(drive_base *b, uv_timer_cb cb)
{
    uv_timer_start(&b->deadline, cb, (uint64_t)llround(b->timeout_s * 1000), 0);
}

void drive_stop(drive_base *b, int rc)
{
    if (b->done)
        return;
    b->done = 1;
    b->rc = rc;
    fflush(stdout);
    uv_timer_stop(&b->deadline);
    uv_timer_stop(&b->wait);
    uv_stop(&b->loop);
}

void drive_fail(drive_base *b, const char *fmt, ...)
{
    va_list ap;

    if (b->done)
        return;
    fprintf(stderr, "%s: ", b->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    drive_stop(b, 1);
}

void drive_session_down(pc_session *s, const pc_status *st, int retrying, void *ud)
{
    drive_base *b = ud;

    (void)s;
    (void)retrying;
    drive_fail(b, "%s: %s", b->conn ? "connection lost" : "authentication failed", st->msg);
}

void drive_finish(drive_base *b)
{
    b->done = 1;
    pc_session_free(b->sess);
    b->sess = NULL;
    if (b->ctx)
        pc_ctx_free(b->ctx);
    b->ctx = NULL;
    uv_close((uv_handle_t *)&b->deadline, NULL);
    uv_close((uv_handle_t *)&b->wait, NULL);
    /* twice: a uv_stop before any uv_run (setup failed) makes the first return at once */
    uv_run(&b->loop, UV_RUN_DEFAULT);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    uv_loop_close(&b->loop);
    if (b->home_open)
        pc_home_free(&b->home);
    b->home_open = 0;
}
