/* drive.h: what parley-probe and the parley-*-drive test tools share: one libuv loop with the
 * run's deadline and a timer for the tool's own waits, a client context, the home folder of
 * --home, the options every tool takes (--server, --home, --timeout), usage errors (exit 2),
 * AuthAnswers signed by hand, and the one way a run ends: drive_stop, or drive_fail with its
 * "TOOL: ..." line on stderr (exit 1). A tool's state embeds a drive_base as its first member,
 * so that the timers' data and the user data it gives the client library are both its own
 * state and the base. */
#ifndef PARLEY_TEST_DRIVE_H
#define PARLEY_TEST_DRIVE_H

#include "parley_client.h"

typedef struct {
    const char *prog;    /* "parley-prekeys-drive": the start of every message */
    const char *usage;   /* the synopsis printed after a usage error */
    uv_loop_t loop;
    uv_timer_t deadline; /* the whole run's (drive_arm) */
    uv_timer_t wait;     /* the tool's own waits and polls; stopped when the run stops */
    pc_ctx *ctx;         /* drive_start_ctx */
    pc_home home;        /* --home, loaded by drive_load_home */
    int home_open;
    const char *server;  /* --server, else (drive_load_home) the home's */
    double timeout_s;    /* --timeout */
    pc_session *sess;    /* drive_start_session */
    pc_conn *conn;       /* borrowed: where requests go (the session's, or one the tool opened
                            and frees itself) */
    int done, rc;
} drive_base;

/* libsodium, the loop and both timers (their data: b), SIGPIPE ignored; timeout_s the default
 * of --timeout. -1 after saying so. */
int drive_init(drive_base *b, const char *prog, const char *usage, double timeout_s);
/* "TOOL: message", then the synopsis, on stderr; returns 2 (the exit code of usage errors). */
int drive_usage(const drive_base *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* argv[*i] when it is --server, --home or --timeout: takes its value (*i moves past it) and
 * returns 1; 0 when it is another argument; 2 after a usage error. */
int drive_common_option(drive_base *b, int argc, char **argv, int *i);
/* The value of --timeout: 0, or 2 after a usage error. */
int drive_timeout_option(drive_base *b, const char *value);

/* Each of these fails the run (drive_fail) and returns -1 (NULL) when it cannot be done. */
/* Loads the --home identity; without --server the home's server is used. */
int drive_load_home(drive_base *b);
/* The client context; PARLEY_PROBE_VERBOSE in the environment: libwebsockets diagnostics. */
int drive_start_ctx(drive_base *b);
/* A session of the home's device on b->server (b->sess), started; ev's user data is ud. */
pc_session *drive_start_session(drive_base *b, const pc_session_events *ev, void *ud);
/* Fills a (initialised by the caller) with id's answer to ch, made at now_ms: signed by the
 * device key, or by the account key for device 0 (an account session); sig holds the
 * signature a points to. -1 when the transcript cannot be built. */
int drive_auth_answer(const pc_identity *id, const pc_challenge *ch, uint64_t now_ms,
                      Parley__V1__AuthAnswer *a, uint8_t sig[64]);
/* Starts the deadline: cb (data: b) after b->timeout_s. */
void drive_arm(drive_base *b, uv_timer_cb cb);

/* Ending. After the first of these, the others do nothing. */
void drive_stop(drive_base *b, int rc);
void drive_fail(drive_base *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A session's on_down for a tool whose run needs its session all along (ud: the tool's state):
 * the run fails, whether the login was refused or the connection lost afterwards. */
void drive_session_down(pc_session *s, const pc_status *st, int retrying, void *ud);

/* After uv_run: frees b->sess (its pending requests are cancelled; their callbacks see
 * b->done), the context, the timers, the loop and the home. Call it after freeing the
 * tool's own connections. */
void drive_finish(drive_base *b);

#endif
