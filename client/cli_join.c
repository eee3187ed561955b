/* cli_join.c: saving a new device and publishing its prekeys (cli_join.h). */
#include "cli_join.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "parley.pb-c.h"

static void publish_done(pc_upkeep *u, const pc_status *st, void *ud)
{
    pc_cmd *c = ud;

    (void)u;
    if (st->kind != PC_OK) {
        pc_cmd_fail(c, "%s, but cannot publish its prekeys: %s (the next send or recv tries "
                       "again)",
                    c->done_line, st->msg);
        return;
    }
    printf("%s\n", c->done_line);
    fflush(stdout);
    pc_cmd_finish(c, 0);
}

static void publish_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    pc_cmd *c = ud;

    (void)s;
    pc_upkeep_session_up(c->upkeep, ok);
}

static void publish_low(pc_session *s, uint32_t count, void *ud)
{
    pc_cmd *c = ud;

    (void)s;
    pc_upkeep_low(c->upkeep, count);
}

static void publish_down(pc_session *s, const pc_status *st, int retrying, void *ud)
{
    (void)s;
    pc_cmd_session_down(ud, st, retrying);
}

int pc_join_save(pc_cmd *c, const pc_dt_pin *pin, const char *done_line)
{
    pc_dt_pin *vp;
    pc_status st;

    free(c->home.server);
    c->home.server = strdup(c->url);
    if (!c->home.server) {
        pc_cmd_fail(c, "out of memory");
        return -1;
    }
    if (pc_home_save(&c->home, &st) < 0) {
        pc_cmd_fail(c, "%s device %u is in the account, but its keys cannot be saved: %s",
                    c->home.id.username, (unsigned)c->home.id.device_id, st.msg);
        return -1;
    }
    c->saved = 1;
    if (pc_cmd_open_vault(c) < 0)
        return -1;
    vp = pc_vault_pin(c->vault, c->home.id.username, &st);
    if (!vp) {
        pc_cmd_fail(c, "%s", st.msg);
        return -1;
    }
    *vp = *pin;
    pc_vault_pin_changed(c->vault, c->home.id.username);
    if (pc_vault_save(c->vault, &st) < 0) {
        pc_cmd_fail(c, "%s", st.msg);
        return -1;
    }
    snprintf(c->done_line, sizeof c->done_line, "%s", done_line);
    return 0;
}

void pc_join_publish(pc_cmd *c)
{
    static const pc_session_events ev = { publish_up, NULL, publish_down, NULL, publish_low };
    pc_status st;

    c->sess = pc_session_new(c->ctx, c->url, &c->home.id, &ev, c, &st);
    if (!c->sess) {
        pc_cmd_fail(c, "%s", st.msg);
        return;
    }
    c->upkeep = pc_upkeep_new(c->sess, c->vault, publish_done, c);
    if (!c->upkeep) {
        pc_cmd_fail(c, "out of memory");
        return;
    }
    pc_session_start(c->sess);
    pc_cmd_deadline(c, PC_CMD_DEFAULT_TIMEOUT_S, NULL, NULL);
}

int pc_join_full(const pc_status *st, const char *account, char *line, size_t cap)
{
    if (st->kind != PC_ERR_SERVER || st->server_code != PARLEY__V1__ERROR_CODE__TOO_MANY_DEVICES)
        return 0;
    snprintf(line, cap,
             "%s already has %d devices (the most): remove one first (parley devices remove ID)",
             account, PARLEY_MAX_DEVICES_PER_ACCOUNT);
    return 1;
}
