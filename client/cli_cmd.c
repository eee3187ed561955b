/* cli_cmd.c: the run of one link or recovery command on the caller's loop, and the output every
 * command shares (cli_cmd.h). */
#include "cli_cmd.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.pb-c.h"
#include "url.h"
#include "wire.h"

/* after the work is done: how long the closing handshake may take before we leave */
#define SETTLE_MS 3000

/* ---- ending ------------------------------------------------------------------------------ */

static void settle_expired(uv_timer_t *t)
{
    uv_stop(((pc_cmd *)t->data)->loop);
}

void pc_cmd_finish(pc_cmd *c, int rc)
{
    if (c->finishing)
        return;
    c->finishing = 1;
    c->rc = rc;
    uv_timer_stop(&c->deadline);
    if (c->sess && pc_session_active(c->sess)) {
        pc_session_close(c->sess); /* its on_down stops the loop */
        uv_timer_start(&c->settle, settle_expired, SETTLE_MS, 0);
    } else if (c->conn) {
        pc_conn_close(c->conn, PWIRE_CLOSE_NORMAL, "bye"); /* its on_close stops the loop */
        uv_timer_start(&c->settle, settle_expired, SETTLE_MS, 0);
    } else {
        uv_stop(c->loop);
    }
}

void pc_cmd_fail(pc_cmd *c, const char *fmt, ...)
{
    va_list ap;

    if (c->finishing)
        return;
    fflush(stdout);
    fputs("parley: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    pc_cmd_finish(c, 1);
}

void pc_cmd_fail_status(pc_cmd *c, const pc_status *st)
{
    if (st->kind == PC_ERR_NET)
        pc_cmd_fail(c, "cannot reach server %s: %s", c->url, st->msg);
    else
        pc_cmd_fail(c, "%s", st->msg);
}

void pc_cmd_no_answer(pc_cmd *c, double s)
{
    pc_cmd_fail(c, "no answer from server %s within %g s", c->url, s);
}

void pc_cmd_session_down(pc_cmd *c, const pc_status *st, int retrying)
{
    if (c->finishing) {
        if (!retrying)
            uv_stop(c->loop);
        return;
    }
    if (retrying)
        return;
    if (st->kind == PC_ERR_SERVER && st->server_code == PARLEY__V1__ERROR_CODE__AUTH_FAILED)
        pc_cmd_fail(c, "authentication failed as %s device %u: %s", c->home.id.username,
                    (unsigned)c->home.id.device_id, st->msg);
    else if (st->close_code == PWIRE_CLOSE_DEVICE_REMOVED)
        pc_cmd_fail(c, "%s device %u was removed from the account", c->home.id.username,
                    (unsigned)c->home.id.device_id);
    else
        pc_cmd_fail_status(c, st);
}

/* ---- deadline ---------------------------------------------------------------------------- */

static void deadline_expired(uv_timer_t *t)
{
    pc_cmd *c = t->data;

    if (c->expired)
        c->expired(c->expired_ud);
    else
        pc_cmd_no_answer(c, c->deadline_s);
}

double pc_cmd_wait_s(const pc_cmd *c)
{
    return c->o->timeout_s > 0 ? c->o->timeout_s : PC_CMD_DEFAULT_TIMEOUT_S;
}

void pc_cmd_deadline(pc_cmd *c, double s, pc_cmd_expired_cb expired, void *ud)
{
    c->deadline_s = s;
    c->expired = expired;
    c->expired_ud = ud;
    uv_timer_start(&c->deadline, deadline_expired, (uint64_t)llround(s * 1000), 0);
}

/* ---- setup ------------------------------------------------------------------------------- */

void pc_cmd_init(pc_cmd *c, const pc_cmd_opts *o)
{
    memset(c, 0, sizeof *c);
    c->o = o;
    c->loop = o->loop;
    c->rc = 1;
    uv_timer_init(c->loop, &c->deadline);
    uv_timer_init(c->loop, &c->settle);
    c->deadline.data = c->settle.data = c;
}

int pc_cmd_open_home(pc_cmd *c, int create)
{
    char *def = NULL;
    pc_status st;
    int rc;

    if (!c->o->home_dir) {
        def = pc_home_default_dir();
        if (!def) {
            pc_cmd_fail(c, "HOME is not set: use --home DIR");
            return -1;
        }
    }
    rc = pc_home_open(&c->home, c->o->home_dir ? c->o->home_dir : def, create, &st);
    free(def);
    c->home_open = 1;
    c->new_home = create;
    if (rc < 0) {
        pc_cmd_fail(c, "%s", st.msg);
        return -1;
    }
    return 0;
}

int pc_cmd_load_home(pc_cmd *c)
{
    pc_status st;

    if (pc_home_load(&c->home, &st) < 0) {
        pc_cmd_fail(c, "%s", st.msg);
        return -1;
    }
    return 0;
}

int pc_cmd_need_empty_home(pc_cmd *c, const char *what)
{
    if (!pc_home_exists(&c->home))
        return 0;
    pc_cmd_fail(c, "%s already holds an identity: %s into an empty folder (--home)", c->home.dir,
                what);
    return -1;
}

int pc_cmd_need_account_key(pc_cmd *c, const char *what)
{
    if (c->home.id.keys.has_account_sk)
        return 0;
    pc_cmd_fail(c, "only a device holding the account key (the first device, or one recovered "
                   "from a kit) can %s",
                what);
    return -1;
}

int pc_cmd_set_url(pc_cmd *c, const char *url)
{
    pc_url u;
    pc_status st;

    if (!url) {
        pc_cmd_fail(c, "no server known for %s: use --server URL", c->home.dir);
        return -1;
    }
    if (pc_url_parse(url, &u, &st) < 0) {
        pc_cmd_fail(c, "%s", st.msg);
        return -1;
    }
    c->url = strdup(url);
    if (!c->url) {
        pc_cmd_fail(c, "out of memory");
        return -1;
    }
    return 0;
}

int pc_cmd_start_ctx(pc_cmd *c)
{
    pc_status st;

    c->ctx = pc_ctx_new(c->loop, c->o->verbose, &st);
    if (!c->ctx) {
        pc_cmd_fail(c, "%s", st.msg);
        return -1;
    }
    return 0;
}

int pc_cmd_open_vault(pc_cmd *c)
{
    pc_status st;

    if (pc_vault_open(c->home.dir, &c->home.id, &c->vault, &st) < 0) {
        pc_cmd_fail(c, "%s", st.msg);
        return -1;
    }
    return 0;
}

/* ---- run and release --------------------------------------------------------------------- */

int pc_cmd_run_and_free(pc_cmd *c)
{
    int rc;

    uv_run(c->loop, UV_RUN_DEFAULT);
    rc = c->rc;
    pc_session_free(c->sess);
    pc_conn_free(c->conn);
    /* after the session: its conn answered the upload callback (or failed it) first */
    pc_upkeep_free(c->upkeep);
    if (c->ctx)
        pc_ctx_free(c->ctx);
    uv_close((uv_handle_t *)&c->deadline, NULL);
    uv_close((uv_handle_t *)&c->settle, NULL);
    uv_run(c->loop, UV_RUN_DEFAULT);
    pc_vault_free(c->vault);
    if (c->home_open) {
        if (rc != 0 && !c->saved && c->new_home)
            pc_home_discard(&c->home);
        pc_home_free(&c->home);
    }
    free(c->url);
    return rc;
}

/* ---- output every command shares --------------------------------------------------------- */

void pc_cmd_print_escaped(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\\': fputs("\\\\", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        default:
            if (c < 0x20 || c == 0x7f)
                printf("\\x%02x", c);
            else
                putchar(c);
        }
    }
}

void pc_cmd_warn_key_change(char warned[PARLEY_NAME_MAX + 1], const char *account)
{
    if (!strcmp(warned, account))
        return;
    snprintf(warned, PARLEY_NAME_MAX + 1, "%s", account);
    fflush(stdout);
    fprintf(stderr,
            "parley: warning: the keys of %s changed (a reinstall, or someone else): the safety "
            "number is new; compare it with `parley safety-number %s`\n",
            account, account);
}
