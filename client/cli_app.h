/* cli_app.h: one run of the `parley` commands that cli.c parses and runs itself (register,
 * send, recv, devices, safety-number, trust): its options and state, and the helpers those
 * commands share (cli.c implements them, with the argument parsing). The commands:
 * cli_register.c, cli_send.c, cli_recv.c, cli_devices.c (devices, safety-number, trust). The
 * newer commands (link, approve, recover, call, answer) run on cli_cmd.h instead. Not part of
 * the client library. */
#ifndef PC_CLI_APP_H
#define PC_CLI_APP_H

#include <stdint.h>

#include <uv.h>

#include "cli_cmd.h"
#include "parley_client.h"

/* After the work is done: how long acks and the closing handshake may take before we leave. */
#define CLI_SETTLE_MS 3000

typedef struct {
    /* options */
    const char *home_dir;
    const char *server;
    const char *cmd;
    const char *args[2];
    int nargs;
    double timeout_s;
    int have_timeout;
    long count;
    int json;
    uint64_t client_id;
    int verbose;
    double seconds;     /* call --seconds */
    int video;          /* call --video */

    /* run state */
    uv_loop_t loop;
    pc_ctx *ctx;
    pc_home home;
    int home_open;
    const char *url;
    int rc;
    int finishing;
    uv_timer_t deadline;
    uv_timer_t settle;

    pc_session *sess;
    int ever_up;
    int repinned; /* trust: the old account key of a->peer was dropped for the new one */
    pc_vault *vault;
    pc_upkeep *upkeep;
    int registered;     /* register: the account exists, its prekeys are being published */
    char warned[PARLEY_NAME_MAX + 1]; /* the last account a key change was reported for */

    /* register */
    pc_conn *conn;
    pc_keys keys;

    /* send */
    pc_sendop *op;

    /* devices, safety-number, trust */
    char peer[PARLEY_NAME_MAX + 1];
    uint32_t remove_id;  /* devices remove ID */

    /* recv */
    pc_recv *recv;
    pc_seen seen;
    int seen_init;
    long got;
    int timed_out;
    int winding_down;
    uint64_t wind_start;
    int persist_warned;
} app;

/* Ends the run with exit code rc once what is in flight settled (acks, closing handshake). */
void cli_finish(app *a, int rc);
/* Prints "parley: MESSAGE" on stderr (once per run) and ends the run with exit code 1. */
void cli_fail(app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cli_fail with st's message, naming the server for network errors. */
void cli_fail_status(app *a, const pc_status *st);
/* The command's deadline: past it the run fails (recv: ends, see cli.c). 0: none. */
void cli_start_deadline(app *a, double seconds);
/* What every command does when its session drops: fails on what a retry cannot mend (this
 * device removed, authentication refused, replaced); retrying: the session reconnects. */
void cli_session_down_common(app *a, const pc_status *st, int retrying);
/* Opens the vault of the home folder (a->vault). 0, or -1 after cli_fail. */
int cli_open_vault(app *a);
/* Starts the authenticated session (a->sess) with ev. 0, or -1 after cli_fail. */
int cli_open_session(app *a, const pc_session_events *ev);
/* recv: stops taking messages and ends with rc once the acks are out. */
void cli_wind_down(app *a, int rc);
/* Stops the loop (the run is over). */
void cli_stop_loop(app *a);
/* A JSON string (quoted, escaped; invalid UTF-8 replaced). */
void cli_print_json_string(const char *s, size_t n);
/* Prekey upkeep (upkeep.h) of the session: its end, and the server's low-pool push. */
void cli_upkeep_done(pc_upkeep *u, const pc_status *st, void *ud);
void cli_on_prekeys_low(pc_session *s, uint32_t count, void *ud);

/* The commands: 0 when started (the loop finishes them), -1 after cli_fail. */
int cli_cmd_register(app *a);
int cli_cmd_send(app *a);
int cli_cmd_devices(app *a);
int cli_cmd_safety(app *a); /* safety-number and trust */
int cli_cmd_recv(app *a);

#endif
