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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drive.h"

#define DEFAULT_TIMEOUT_S 30.0
#define COUNT_MAX 100000

typedef struct {
    drive_base b;
    long count, answered;
} drive;

static void request(drive *d);

static void answered(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                     void *ud)
{
    drive *d = ud;

    (void)c;
    if (d->b.done)
        return;
    if (!f) {
        drive_fail(&d->b, "no answer: %s", st->msg);
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
        drive_fail(&d->b, "unexpected answer (body %d)", (int)f->body_case);
        return;
    }
    if (++d->answered == d->count)
        drive_stop(&d->b, 0);
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
    if (pc_conn_request(d->b.conn, &f, answered, d, &st) < 0)
        drive_fail(&d->b, "request: %s", st.msg);
}

static void sess_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    drive *d = ud;

    (void)ok;
    if (d->b.conn)
        return; /* re-authenticated after a drop: the run has failed already */
    d->b.conn = pc_session_conn(s);
    printf("auth\n");
    request(d);
}

static void deadline_cb(uv_timer_t *t)
{
    drive *d = t->data;

    drive_fail(&d->b, "timed out after %g s with %ld of %ld answers", d->b.timeout_s,
               d->answered, d->count);
}

static int parse(drive *d, int argc, char **argv)
{
    d->count = 1;
    for (int i = 1; i < argc; i++) {
        int rc = drive_common_option(&d->b, argc, argv, &i);
        if (rc == 1)
            continue;
        if (rc)
            return rc;
        if (strcmp(argv[i], "--count") != 0)
            return drive_usage(&d->b, "unknown argument %s", argv[i]);
        if (i + 1 >= argc)
            return drive_usage(&d->b, "--count needs a value");
        d->count = strtol(argv[++i], NULL, 10);
        if (d->count < 1 || d->count > COUNT_MAX)
            return drive_usage(&d->b, "--count wants 1..%d", COUNT_MAX);
    }
    if (!d->b.home_open)
        return drive_usage(&d->b, "--home is required");
    return 0;
}

static int start(drive *d)
{
    static const pc_session_events ev = { sess_up, NULL, drive_session_down, NULL, NULL };

    if (drive_load_home(&d->b) < 0 || drive_start_ctx(&d->b) < 0 ||
        !drive_start_session(&d->b, &ev, d))
        return -1;
    drive_arm(&d->b, deadline_cb);
    return 0;
}

int main(int argc, char **argv)
{
    drive d;
    int rc;

    memset(&d, 0, sizeof d);
    if (drive_init(&d.b, "parley-turncreds-drive",
                   "parley-turncreds-drive [--server URL] --home DIR [--count N] [--timeout S]",
                   DEFAULT_TIMEOUT_S) < 0)
        return 1;
    rc = parse(&d, argc, argv);
    if (rc == 0 && start(&d) == 0)
        uv_run(&d.b.loop, UV_RUN_DEFAULT);
    else if (rc == 0)
        rc = 1;
    drive_finish(&d.b);
    return rc ? rc : d.b.rc;
}
