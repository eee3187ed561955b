/* cli_register.c: `parley register NAME` (cli_app.h): a new account with this install as
 * device 1 (account key, device keys, signed device list version 1, proof of work), then one
 * login as it to publish its prekeys, so it can be written to at once. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cli_app.h"
#include "wire.h"

/* ---- register --------------------------------------------------------------------------- */

static void publish_done(pc_upkeep *u, const pc_status *st, void *ud)
{
    app *a = ud;

    (void)u;
    if (st->kind != PC_OK) {
        cli_fail(a, "registered %s device %u, but cannot publish its prekeys: %s (the next "
                "send or recv tries again)",
             a->home.id.username, (unsigned)a->home.id.device_id, st->msg);
        return;
    }
    printf("registered %s device %u\n", a->home.id.username, (unsigned)a->home.id.device_id);
    fflush(stdout);
    cli_finish(a, 0);
}

static void publish_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    app *a = ud;

    (void)s;
    a->ever_up = 1;
    pc_upkeep_session_up(a->upkeep, ok);
}

static void publish_down(pc_session *s, const pc_status *st, int retrying, void *ud)
{
    (void)s;
    cli_session_down_common(ud, st, retrying);
}

/* The account exists and its keys are saved: log in once to publish the prekeys, so that
 * others can start sessions with this device right away. */
static void publish_prekeys(app *a)
{
    static const pc_session_events ev = { publish_up, NULL, publish_down, NULL,
                                          cli_on_prekeys_low };

    if (cli_open_vault(a) < 0 || cli_open_session(a, &ev) < 0)
        return;
    a->upkeep = pc_upkeep_new(a->sess, a->vault, publish_done, a);
    if (!a->upkeep)
        cli_fail(a, "out of memory");
}

static void reg_on_close(pc_conn *c, const pc_status *st, void *ud)
{
    app *a = ud;

    (void)c;
    if (a->finishing) {
        cli_stop_loop(a);
        return;
    }
    if (a->registered) {
        publish_prekeys(a);
        return;
    }
    cli_fail_status(a, st);
}

static void reg_done(pc_conn *c, const pc_status *st, const char *username, uint32_t device_id,
                     void *ud)
{
    app *a = ud;
    pc_status e;

    if (st->kind != PC_OK) {
        if (st->kind == PC_ERR_SERVER) {
            switch (st->server_code) {
            case PARLEY__V1__ERROR_CODE__NAME_TAKEN:
                cli_fail(a, "name %s is taken", a->args[0]);
                return;
            case PARLEY__V1__ERROR_CODE__INVALID_NAME:
                cli_fail(a, "invalid name %s (use 3 to 32 of a-z 0-9 _ .)", a->args[0]);
                return;
            case PARLEY__V1__ERROR_CODE__RATE_LIMITED:
                cli_fail(a, "rate limited by the server: try again in %u s",
                     (unsigned)((st->retry_after_ms + 999) / 1000));
                return;
            default:
                cli_fail(a, "registration refused: %s", st->msg);
                return;
            }
        }
        cli_fail_status(a, st);
        return;
    }
    snprintf(a->home.id.username, sizeof a->home.id.username, "%s", username);
    a->home.id.device_id = device_id;
    a->home.id.keys = a->keys;
    free(a->home.server);
    a->home.server = strdup(a->url);
    if (!a->home.server) {
        cli_fail(a, "out of memory");
        return;
    }
    if (pc_home_save(&a->home, &e) < 0) {
        cli_fail(a, "registered %s, but cannot save its keys: %s", username, e.msg);
        return;
    }
    /* this connection served its one request; its close starts the publishing */
    a->registered = 1;
    pc_conn_close(c, PWIRE_CLOSE_NORMAL, "registered");
}

int cli_cmd_register(app *a)
{
    pc_conn_events ev = { NULL, NULL, reg_on_close };
    char norm[PARLEY_NAME_MAX + 1];
    pc_status st;

    if (pc_home_exists(&a->home)) {
        if (pc_home_load(&a->home, &st) == 0)
            cli_fail(a, "%s already holds account %s device %u", a->home.dir, a->home.id.username,
                 (unsigned)a->home.id.device_id);
        else
            cli_fail(a, "%s already holds an identity file", a->home.dir);
        return -1;
    }
    if (pauth_name_normalize(a->args[0], norm) < 0) {
        cli_fail(a, "invalid name %s (use 3 to 32 of a-z 0-9 _ .)", a->args[0]);
        return -1;
    }
    if (pc_keys_generate(&a->keys, &st) < 0) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    a->conn = pc_conn_open(a->ctx, a->url, &ev, a, &st);
    if (!a->conn) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    if (pc_register_start(a->conn, &a->keys, norm, reg_done, a, &st) < 0) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    cli_start_deadline(a, a->timeout_s);
    return 0;
}
