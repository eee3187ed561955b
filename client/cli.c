/* cli.c: the `parley` command line client. Each command sets up the library objects, runs the
 * loop until the command is done, and exits 0 (success), 1 (failure: one `parley: ...` line on
 * stderr), 2 (usage error) or 3 (recv --count: fewer messages than asked before the timeout).
 * Here: usage, options and the helpers the commands share; the commands are in cli_register.c,
 * cli_send.c, cli_recv.c and cli_devices.c (cli_app.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "call.h"
#include "cli_app.h"
#include "cli_call.h"
#include "cli_link.h"
#include "cli_recover.h"
#include "parley_client.h"
#include "wire.h"

#define DEFAULT_TIMEOUT_S 30.0
/* recv --timeout expired before the first authentication finished: how long to wait for it. */
#define AUTH_GRACE_MS 5000

static const char usage_head[] =
    "usage: parley [--home DIR] [--server URL] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  register NAME              create account NAME (device 1) on --server; keys go to the home\n"
    "  send NAME TEXT             send TEXT to every device of NAME (to your own other devices\n"
    "                             if NAME is you); prints NAME<TAB>DEVICE<TAB>ENVELOPE_ID\n"
    "      [--client-id N]        reuse a client id (a resend is then idempotent)\n"
    "      [--timeout S]          keep resending until accepted or S seconds passed (30)\n"
    "  recv                       print messages as FROM<TAB>DEVICE<TAB>TEXT and ack them\n"
    "      [--count N]            exit 0 after N messages (3 if fewer came before the timeout)\n"
    "      [--timeout S]          stop after S seconds (30; 0 waits forever)\n"
    "      [--json]               one JSON object a line: from, device, id, timestamp, text\n"
    "                             (and to, for a copy of a message you sent elsewhere)\n"
    "  devices NAME               device ids of NAME's signed device list, one a line (yours:\n"
    "                             \"this device\" after a tab); devices the server lists\n"
    "                             beyond it are reported on stderr\n"
    "  devices remove ID          remove your device ID (needs the account key): it loses its\n"
    "                             queue and connection, and nobody encrypts to it any more\n"
    "  safety-number NAME         the safety number of your account and NAME's (60 digits):\n"
    "                             compare it with NAME in person or on a call; it covers\n"
    "                             every device of both accounts. When NAME's account key is\n"
    "                             not the one you trusted, it prints the number for the new\n"
    "                             key and exits 1: send refuses NAME until you trust it\n"
    "  trust NAME                 accept NAME's new account key (NAME started over) after\n"
    "                             comparing the safety number; prints the number\n";
/* recv's line for a call offer (the call commands are in cli_call.h) */
static const char usage_recv_calls[] =
    "  (recv prints a call offer as \"NAME DEVICE called you (call ID)\"; --json: a \"call\"\n"
    "   key in place of \"text\")\n";

/* after the commands of cli_link.h and cli_recover.h */
static const char usage_tail[] =
    "\n"
    "options:\n"
    "  --home DIR                 this device's folder (default ~/.parley)\n"
    "  --server URL               ws://HOST:PORT[/PATH] or wss://...; default: the one used at\n"
    "                             register (path defaults to /v1/ws)\n"
    "  --verbose                  libwebsockets diagnostics on stderr\n"
    "\n"
    "Messages are end-to-end encrypted (X3DH and the Double Ratchet); sessions and keys live in\n"
    "the home folder. Messages go only to the devices in an account's device list signed by\n"
    "its account key (pinned at first contact); a device the server lists beyond it gets\n"
    "nothing, and send fails naming it. A copy of a message you sent from another of your\n"
    "devices shows as YOU->NAME in the FROM column.\n"
    "In TEXT output, backslash, tab, newline, carriage return and other control characters\n"
    "are written as \\\\, \\t, \\n, \\r and \\xHH. Exit: 0 ok, 1 failure, 2 usage, 3 recv timeout\n"
    "before --count messages.\n";

/* ---- output and errors ------------------------------------------------------------------ */

void cli_stop_loop(app *a)
{
    uv_stop(&a->loop);
}

static void settle_expired(uv_timer_t *t)
{
    cli_stop_loop(t->data);
}

/* Ends the command with exit code rc: closes the connection politely, then stops the loop. */
void cli_finish(app *a, int rc)
{
    if (a->finishing)
        return;
    a->finishing = 1;
    a->rc = rc;
    uv_timer_stop(&a->deadline);
    uv_timer_stop(&a->settle);
    if (a->sess && pc_session_active(a->sess)) {
        pc_session_close(a->sess); /* its on_down stops the loop */
        uv_timer_start(&a->settle, settle_expired, CLI_SETTLE_MS, 0);
    } else if (a->conn) {
        pc_conn_close(a->conn, PWIRE_CLOSE_NORMAL, "bye"); /* its on_close stops the loop */
        uv_timer_start(&a->settle, settle_expired, CLI_SETTLE_MS, 0);
    } else {
        cli_stop_loop(a);
    }
}

void cli_fail(app *a, const char *fmt, ...)
{
    va_list ap;

    if (a->finishing)
        return;
    fflush(stdout);
    fputs("parley: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cli_finish(a, 1);
}

/* The one line for a failed connection or an error the server answered. */
void cli_fail_status(app *a, const pc_status *st)
{
    if (st->kind == PC_ERR_NET)
        cli_fail(a, "cannot reach server %s: %s", a->url, st->msg);
    else
        cli_fail(a, "%s", st->msg);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes are not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD so the line stays valid JSON. */
void cli_print_json_string(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    putchar('"');
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t l;
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
            i++;
        } else if (c == '\n') {
            fputs("\\n", stdout);
            i++;
        } else if (c == '\t') {
            fputs("\\t", stdout);
            i++;
        } else if (c == '\r') {
            fputs("\\r", stdout);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            printf("\\u%04x", c);
            i++;
        } else if ((l = utf8_seq(p + i, n - i)) > 0) {
            fwrite(p + i, 1, l, stdout);
            i += l;
        } else {
            fputs("\\ufffd", stdout);
            i++;
        }
    }
    putchar('"');
}

/* ---- shared session plumbing ------------------------------------------------------------ */

static void deadline_expired(uv_timer_t *t);

void cli_start_deadline(app *a, double seconds)
{
    if (seconds > 0)
        uv_timer_start(&a->deadline, deadline_expired, (uint64_t)llround(seconds * 1000), 0);
}

void cli_session_down_common(app *a, const pc_status *st, int retrying)
{
    if (a->finishing) {
        if (!retrying)
            cli_stop_loop(a);
        return;
    }
    if (st->close_code == PWIRE_CLOSE_DEVICE_REMOVED) {
        /* no point in reconnecting: the device is gone from the account */
        cli_fail(a, "this device (%s device %u) was removed from the account", a->home.id.username,
             (unsigned)a->home.id.device_id);
        return;
    }
    if (retrying)
        return;
    if (st->kind == PC_ERR_SERVER && st->server_code == PARLEY__V1__ERROR_CODE__AUTH_FAILED)
        cli_fail(a, "authentication failed as %s device %u: %s", a->home.id.username,
             (unsigned)a->home.id.device_id, st->msg);
    else if (st->close_code == PWIRE_CLOSE_POLICY && !a->ever_up)
        cli_fail(a, "authentication failed as %s device %u: %s", a->home.id.username,
             (unsigned)a->home.id.device_id, st->msg);
    else if (st->close_code == PWIRE_CLOSE_REPLACED)
        cli_fail(a, "replaced by a newer connection of %s device %u", a->home.id.username,
             (unsigned)a->home.id.device_id);
    else
        cli_fail_status(a, st);
}

int cli_open_session(app *a, const pc_session_events *ev)
{
    pc_status st;

    a->sess = pc_session_new(a->ctx, a->url, &a->home.id, ev, a, &st);
    if (!a->sess) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    pc_session_start(a->sess);
    return 0;
}

/* ---- end-to-end state -------------------------------------------------------------------- */

int cli_open_vault(app *a)
{
    pc_status st;

    if (pc_vault_open(a->home.dir, &a->home.id, &a->vault, &st) < 0) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    return 0;
}

/* The prekeys went up (or the upload failed): for send and recv a failure only warns, the
 * next login tries again. */
void cli_upkeep_done(pc_upkeep *u, const pc_status *st, void *ud)
{
    (void)u;
    (void)ud;
    if (st->kind != PC_OK && st->kind != PC_ERR_NET)
        fprintf(stderr, "parley: warning: cannot publish prekeys: %s\n", st->msg);
}

void cli_on_prekeys_low(pc_session *s, uint32_t count, void *ud)
{
    app *a = ud;

    (void)s;
    if (a->upkeep)
        pc_upkeep_low(a->upkeep, count);
}

static void auth_grace_expired(uv_timer_t *t)
{
    app *a = t->data;

    cli_fail(a, "cannot reach server %s: no answer to authentication", a->url);
}

static void deadline_expired(uv_timer_t *t)
{
    app *a = t->data;

    if (!strcmp(a->cmd, "recv")) {
        if (!a->ever_up && a->sess && pc_session_active(a->sess)) {
            a->timed_out = 1;
            uv_timer_start(&a->deadline, auth_grace_expired, AUTH_GRACE_MS, 0);
            return;
        }
        if (!a->ever_up) {
            cli_fail(a, "cannot reach server %s: timed out", a->url);
            return;
        }
        cli_wind_down(a, a->count ? 3 : 0);
        return;
    }
    cli_fail(a, "no answer from server %s within %g s", a->url, a->timeout_s);
}

/* ---- arguments -------------------------------------------------------------------------- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("parley: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see parley --help)\n", stderr);
    return 2;
}

/* Returns 0, 1 when --help was printed, or 2 on a usage error (already printed). */
static int parse_args(app *a, int argc, char **argv)
{
    const char *pos[4];
    int npos = 0, only_pos = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL, *eq;
        char name[32];

        if (only_pos || arg[0] != '-' || arg[1] == '\0') {
            if (npos == 4)
                return usage_error("too many arguments");
            pos[npos++] = arg;
            continue;
        }
        if (!strcmp(arg, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            fputs(usage_head, stdout);
            fputs(pc_cmd_link_usage, stdout);
            fputs(pc_cmd_recover_usage, stdout);
            fputs(pc_cmd_call_usage, stdout);
            fputs(usage_recv_calls, stdout);
            fputs(usage_tail, stdout);
            return 1;
        }
        eq = strchr(arg, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq ? (size_t)(eq - arg) : strlen(arg)), arg);
        if (!strcmp(name, "--json")) {
            a->json = 1;
            continue;
        }
        if (!strcmp(name, "--verbose")) {
            a->verbose = 1;
            continue;
        }
        if (!strcmp(name, "--video")) {
            a->video = 1;
            continue;
        }
        if (strcmp(name, "--home") && strcmp(name, "--server") && strcmp(name, "--timeout") &&
            strcmp(name, "--count") && strcmp(name, "--client-id") && strcmp(name, "--seconds"))
            return usage_error("unknown option %s", arg);
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            return usage_error("%s needs a value", name);
        if (!strcmp(name, "--home")) {
            a->home_dir = val;
        } else if (!strcmp(name, "--server")) {
            a->server = val;
        } else if (!strcmp(name, "--timeout")) {
            char *end;
            errno = 0;
            a->timeout_s = strtod(val, &end);
            if (errno || end == val || *end || !(a->timeout_s >= 0) || a->timeout_s > 86400.0 * 365)
                return usage_error("--timeout wants seconds, got %s", val);
            a->have_timeout = 1;
        } else if (!strcmp(name, "--seconds")) {
            char *end;
            errno = 0;
            a->seconds = strtod(val, &end);
            if (errno || end == val || *end || !(a->seconds > 0) ||
                a->seconds > PC_CALL_SECONDS_MAX)
                return usage_error("--seconds wants seconds (up to %d), got %s",
                                   PC_CALL_SECONDS_MAX, val);
        } else if (!strcmp(name, "--count")) {
            char *end;
            errno = 0;
            a->count = strtol(val, &end, 10);
            if (errno || end == val || *end || a->count < 1)
                return usage_error("--count wants a positive number, got %s", val);
        } else {
            char *end;
            errno = 0;
            a->client_id = strtoull(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-' || a->client_id == 0)
                return usage_error("--client-id wants a number from 1 to 2^64-1, got %s", val);
        }
    }
    if (npos == 0)
        return usage_error("no command");
    a->cmd = pos[0];
    a->nargs = npos - 1;
    for (int i = 1; i < npos && i <= 2; i++)
        a->args[i - 1] = pos[i];
    if (!strcmp(a->cmd, "devices")) {
        if (a->nargs == 2 ? strcmp(a->args[0], "remove") != 0 : a->nargs != 1)
            return usage_error("devices wants NAME, or remove ID");
    } else if (!strcmp(a->cmd, "register") || !strcmp(a->cmd, "safety-number") ||
               !strcmp(a->cmd, "trust")) {
        if (a->nargs != 1)
            return usage_error("%s wants one NAME", a->cmd);
    } else if (!strcmp(a->cmd, "send")) {
        if (a->nargs != 2)
            return usage_error("send wants NAME and TEXT");
    } else if (!strcmp(a->cmd, "call")) {
        if (a->nargs != 1)
            return usage_error("call wants one NAME");
    } else if (!strcmp(a->cmd, "recv") || !strcmp(a->cmd, "link") ||
               !strcmp(a->cmd, "answer")) {
        if (a->nargs != 0)
            return usage_error("%s takes no arguments", a->cmd);
    } else if (!strcmp(a->cmd, "approve")) {
        if (a->nargs != 1)
            return usage_error("approve wants the link CODE");
    } else if (!strcmp(a->cmd, "recovery-kit") || !strcmp(a->cmd, "recover")) {
        if (a->nargs != 1)
            return usage_error("%s wants one FILE", a->cmd);
    } else {
        return usage_error("unknown command %s", a->cmd);
    }
    if (a->json && strcmp(a->cmd, "recv"))
        return usage_error("--json is for recv");
    if (a->count && strcmp(a->cmd, "recv"))
        return usage_error("--count is for recv");
    if (a->client_id && strcmp(a->cmd, "send"))
        return usage_error("--client-id is for send");
    if ((a->seconds > 0 || a->video) && strcmp(a->cmd, "call"))
        return usage_error("--seconds and --video are for call");
    if (!strcmp(a->cmd, "call") && a->have_timeout &&
        !(a->timeout_s >= 1 && a->timeout_s <= PC_CALL_RING_MAX_S))
        return usage_error("call --timeout rings 1 to %d seconds, got %g", PC_CALL_RING_MAX_S,
                           a->timeout_s);
    if ((!strcmp(a->cmd, "register") || !strcmp(a->cmd, "link")) && !a->server)
        return usage_error("%s needs --server URL", a->cmd);
    if (!a->have_timeout)
        a->timeout_s = DEFAULT_TIMEOUT_S;
    return 0;
}

/* ---- main ------------------------------------------------------------------------------- */

static int setup(app *a)
{
    pc_status st;
    char *def = NULL;
    int is_register = !strcmp(a->cmd, "register");
    int rc;

    if (!a->home_dir) {
        def = pc_home_default_dir();
        if (!def) {
            cli_fail(a, "HOME is not set: use --home DIR");
            return -1;
        }
    }
    rc = pc_home_open(&a->home, a->home_dir ? a->home_dir : def, is_register, &st);
    free(def);
    a->home_open = 1;
    if (rc < 0) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    if (!is_register) {
        if (pc_home_load(&a->home, &st) < 0) {
            cli_fail(a, "%s", st.msg);
            return -1;
        }
    }
    a->url = a->server ? a->server : a->home.server;
    if (!a->url) {
        cli_fail(a, "no server known for %s: use --server URL", a->home.dir);
        return -1;
    }
    {
        pc_url u;
        if (pc_url_parse(a->url, &u, &st) < 0) {
            cli_fail(a, "%s", st.msg);
            return -1;
        }
    }
    a->ctx = pc_ctx_new(&a->loop, a->verbose, &st);
    if (!a->ctx) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    if (is_register)
        return cli_cmd_register(a);
    if (!strcmp(a->cmd, "send"))
        return cli_cmd_send(a);
    if (!strcmp(a->cmd, "recv"))
        return cli_cmd_recv(a);
    if (!strcmp(a->cmd, "safety-number") || !strcmp(a->cmd, "trust"))
        return cli_cmd_safety(a);
    return cli_cmd_devices(a);
}

static void teardown(app *a)
{
    pc_sendop_free(a->op);
    pc_recv_free(a->recv);
    pc_session_free(a->sess);
    pc_conn_free(a->conn);
    /* after the session: its conn answered the upload callback (or failed it) first */
    pc_upkeep_free(a->upkeep);
    if (a->ctx)
        pc_ctx_free(a->ctx);
    uv_close((uv_handle_t *)&a->deadline, NULL);
    uv_close((uv_handle_t *)&a->settle, NULL);
    /* every handle closes asynchronously: run until none is left */
    uv_run(&a->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&a->loop) != 0 && a->verbose)
        fprintf(stderr, "parley: warning: event loop still had handles at exit\n");
    if (a->seen_init)
        pc_seen_free(&a->seen);
    pc_vault_free(a->vault);
    pc_keys_wipe(&a->keys);
    if (a->home_open) {
        if (a->rc != 0 && !strcmp(a->cmd, "register"))
            pc_home_discard(&a->home);
        pc_home_free(&a->home);
    }
}

static int is_link_command(const char *cmd)
{
    return !strcmp(cmd, "link") || !strcmp(cmd, "approve") || !strcmp(cmd, "recovery-kit") ||
           !strcmp(cmd, "recover") || !strcmp(cmd, "call") || !strcmp(cmd, "answer");
}

int main(int argc, char **argv)
{
    app a;
    int rc;

    memset(&a, 0, sizeof a);
    rc = parse_args(&a, argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;
    /* a server that vanishes mid-write must not kill us silently */
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&a.loop) != 0) {
        fputs("parley: cannot initialise the event loop\n", stderr);
        return 1;
    }
    if (is_link_command(a.cmd)) {
        /* these run their own setup on our loop (cli_link.h, cli_recover.h, cli_call.h) */
        pc_cmd_opts o = { &a.loop, a.home_dir, a.server, a.have_timeout ? a.timeout_s : 0,
                          a.verbose };
        if (!strcmp(a.cmd, "link"))
            rc = pc_cmd_link(&o);
        else if (!strcmp(a.cmd, "approve"))
            rc = pc_cmd_approve(&o, a.args[0]);
        else if (!strcmp(a.cmd, "recovery-kit"))
            rc = pc_cmd_recovery_kit(&o, a.args[0]);
        else if (!strcmp(a.cmd, "call"))
            rc = pc_cmd_call(&o, a.args[0], a.seconds, a.video);
        else if (!strcmp(a.cmd, "answer"))
            rc = pc_cmd_answer(&o);
        else
            rc = pc_cmd_recover(&o, a.args[0]);
        if (uv_loop_close(&a.loop) != 0 && a.verbose)
            fprintf(stderr, "parley: warning: event loop still had handles at exit\n");
        return rc;
    }
    uv_timer_init(&a.loop, &a.deadline);
    uv_timer_init(&a.loop, &a.settle);
    a.deadline.data = a.settle.data = &a;
    a.rc = 1;
    /* on a setup failure cli_finish() has run: the loop only lets the close complete */
    setup(&a);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    rc = a.rc;
    teardown(&a);
    return rc;
}
