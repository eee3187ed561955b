/* cli_cmd.h: what the `parley` commands of cli_link.h and cli_recover.h share: their options
 * (pc_cmd_opts, filled by cli.c) and the run of one such command on the caller's loop
 * (pc_cmd): the home folder and server URL it works on, its deadline, its one `parley: ...`
 * failure line on stderr, a clean ending (close the session or conn it opened, then stop the
 * loop) and the release of everything it opened. A command's own state embeds a pc_cmd; its
 * entry point is named pc_cmd_<command> (pc_cmd_link, pc_cmd_recover, ...). Also the output
 * every command prints alike (escaped text, the key-change warning), cli_app.h's included. */
#ifndef PC_CLI_CMD_H
#define PC_CLI_CMD_H

#include <uv.h>

#include "conn.h"
#include "ctx.h"
#include "home.h"
#include "session.h"
#include "status.h"
#include "upkeep.h"
#include "vault.h"

/* --timeout when not given: how long a command waits for the server */
#define PC_CMD_DEFAULT_TIMEOUT_S 30.0
#define PC_CMD_LINE_MAX 128

typedef struct {
    uv_loop_t *loop;        /* initialised by the caller, borrowed */
    const char *home_dir;   /* --home; NULL: the default folder (home.h pc_home_default_dir) */
    const char *server;     /* --server; NULL: link fails without it; approve and recovery-kit
                               use the home's; recover uses the kit's */
    double timeout_s;       /* --timeout; 0: the command's default (link: the code's lifetime,
                               PARLEY_LINK_TTL_S; the others PC_CMD_DEFAULT_TIMEOUT_S) */
    int verbose;            /* --verbose: libwebsockets diagnostics */
} pc_cmd_opts;

/* The deadline passed: the command fails with its own line (pc_cmd_fail). */
typedef void (*pc_cmd_expired_cb)(void *ud);

typedef struct {
    const pc_cmd_opts *o;
    uv_loop_t *loop;
    pc_ctx *ctx;
    pc_home home;
    int home_open;
    int new_home;          /* opened with create: discarded on failure unless saved */
    int saved;             /* the identity file was written: never discard the folder */
    char *url;             /* owned */
    int rc;                /* the exit code; 1 until the command succeeds */
    int finishing;
    uv_timer_t deadline, settle;
    double deadline_s;
    pc_cmd_expired_cb expired;
    void *expired_ud;

    /* Opened by the command, closed by pc_cmd_finish, freed by pc_cmd_run_and_free. */
    pc_conn *conn;
    pc_session *sess;
    pc_vault *vault;
    pc_upkeep *upkeep;
    char done_line[PC_CMD_LINE_MAX]; /* printed when the last step succeeds (cli_join.h) */
} pc_cmd;

/* Setup, each step failing the command (pc_cmd_fail) and returning -1 when it cannot be done. */
void pc_cmd_init(pc_cmd *c, const pc_cmd_opts *o);
/* Opens --home or the default folder; create: make it (link, recover). */
int pc_cmd_open_home(pc_cmd *c, int create);
/* pc_home_load: the folder's identity. */
int pc_cmd_load_home(pc_cmd *c);
/* Refuses a folder that already holds an identity; what: "link a new device", ... */
int pc_cmd_need_empty_home(pc_cmd *c, const char *what);
/* Refuses a device without the account key; what: "approve new devices", ... */
int pc_cmd_need_account_key(pc_cmd *c, const char *what);
/* Checks url and keeps a copy; NULL: no server is known. */
int pc_cmd_set_url(pc_cmd *c, const char *url);
int pc_cmd_start_ctx(pc_cmd *c);
/* Opens the vault of the identity in c->home.id. */
int pc_cmd_open_vault(pc_cmd *c);

/* --timeout, or PC_CMD_DEFAULT_TIMEOUT_S. */
double pc_cmd_wait_s(const pc_cmd *c);
/* (Re)starts the deadline: after s seconds expired(ud) runs, or with expired NULL the command
 * fails with pc_cmd_no_answer(c, s). */
void pc_cmd_deadline(pc_cmd *c, double s, pc_cmd_expired_cb expired, void *ud);

/* Ending. After the first of these, the others do nothing. */
void pc_cmd_finish(pc_cmd *c, int rc);
/* Prints "parley: " and the line on stderr, then finishes with 1. */
void pc_cmd_fail(pc_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A failure status as the line: a network failure names the server. */
void pc_cmd_fail_status(pc_cmd *c, const pc_status *st);
void pc_cmd_no_answer(pc_cmd *c, double s);
/* A session's on_down (approve, and the login of a new device): a refused login, a removed
 * device, or the status; while finishing, the session's end stops the loop. */
void pc_cmd_session_down(pc_cmd *c, const pc_status *st, int retrying);

/* Runs the loop until the command has ended, releases what it opened and returns its exit
 * code. The command wipes its own secrets afterwards. */
int pc_cmd_run_and_free(pc_cmd *c);

/* ---- output every command shares ------------------------------------------------------ */

/* TEXT as `parley recv` writes it on stdout: backslash, tab, newline, CR and other control
 * bytes escaped (\\, \t, \n, \r, \xHH). */
void pc_cmd_print_escaped(const char *s, size_t n);
/* "the keys of ACCOUNT changed" on stderr, once in a row per account: warned holds the
 * account warned about last (caller's buffer, "" at first). */
void pc_cmd_warn_key_change(char warned[PARLEY_NAME_MAX + 1], const char *account);

#endif
