/* cli_send.c: `parley send NAME TEXT` (cli_app.h): one end-to-end encrypted message to every
 * device of NAME's signed list (and a copy to this account's other devices), resent under the
 * same client id until accepted or the timeout; prints NAME<TAB>DEVICE<TAB>ENVELOPE_ID per
 * envelope. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_app.h"

/* ---- send ------------------------------------------------------------------------------- */

static void send_done(pc_sendop *op, const pc_status *st, const pc_send_result *res, void *ud)
{
    app *a = ud;

    (void)op;
    if (st->kind != PC_OK) {
        cli_fail_status(a, st);
        return;
    }
    for (size_t i = 0; i < res->count; i++)
        printf("%s\t%u\t%" PRIu64 "\n", res->recipient, (unsigned)res->device_ids[i],
               res->envelope_ids[i]);
    fflush(stdout);
    if (res->key_changed)
        pc_cmd_warn_key_change(a->warned, res->recipient);
    if (res->sync_error) {
        cli_fail(a, "sent to %s, but not copied to your other devices: %s", res->recipient,
             res->sync_error->msg);
        return;
    }
    cli_finish(a, 0);
}

static void send_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    app *a = ud;

    a->ever_up = 1;
    pc_session_set_retry(s, 1); /* from now on a drop is retried until the deadline */
    if (a->upkeep)
        pc_upkeep_session_up(a->upkeep, ok);
    if (a->op)
        pc_sendop_session_up(a->op);
}

static void send_down(pc_session *s, const pc_status *st, int retrying, void *ud)
{
    app *a = ud;

    (void)s;
    if (a->op && retrying)
        pc_sendop_session_down(a->op, st);
    cli_session_down_common(a, st, retrying);
}

int cli_cmd_send(app *a)
{
    pc_session_events ev = { send_up, NULL, send_down, NULL, cli_on_prekeys_low };
    pc_status st;
    const char *text = a->args[1];

    if (cli_open_vault(a) < 0 || cli_open_session(a, &ev) < 0)
        return -1;
    if (!(a->upkeep = pc_upkeep_new(a->sess, a->vault, cli_upkeep_done, a))) {
        cli_fail(a, "out of memory");
        return -1;
    }
    a->op = pc_sendop_start(a->sess, a->vault, a->args[0], text, strlen(text), a->client_id,
                            (uint64_t)llround(a->timeout_s * 1000), send_done, a, &st);
    if (!a->op) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    return 0;
}
