/* cli_recv.c: `parley recv` (cli_app.h): messages and call offers printed as they come (text
 * or --json), acked after the vault is saved, until --count messages or the timeout; then a
 * wind-down that lets the acks go out. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "cli_app.h"

/* ---- recv ------------------------------------------------------------------------------- */

static void settle_check(uv_timer_t *t)
{
    app *a = t->data;

    if (pc_recv_idle(a->recv) || uv_now(&a->loop) - a->wind_start >= CLI_SETTLE_MS ||
        !pc_session_conn(a->sess)) {
        uv_timer_stop(t);
        cli_finish(a, a->rc);
    }
}

/* Stop handing out messages, let the acks of the printed ones settle, then finish with rc. */
void cli_wind_down(app *a, int rc)
{
    if (a->winding_down || a->finishing)
        return;
    a->winding_down = 1;
    a->rc = rc;
    uv_timer_stop(&a->deadline);
    pc_recv_pause(a->recv);
    a->wind_start = uv_now(&a->loop);
    uv_timer_start(&a->settle, settle_check, 0, 10);
}

static void recv_message(pc_recv *r, const pc_message *m, void *ud)
{
    app *a = ud;

    (void)r;
    if (a->json) {
        printf("{\"from\":");
        cli_print_json_string(m->sender, strlen(m->sender));
        if (m->sent_to) {
            printf(",\"to\":");
            cli_print_json_string(m->sent_to, m->sent_to_len);
        }
        printf(",\"device\":%u,\"id\":%" PRIu64 ",\"timestamp\":%" PRIu64 ",\"text\":",
               (unsigned)m->sender_device, m->id, m->timestamp_ms);
        cli_print_json_string(m->text, m->text_len);
        printf("}\n");
    } else {
        printf("%s", m->sender);
        if (m->sent_to) {
            /* the name comes out of a decrypted plaintext: escaped like the text */
            printf("->");
            pc_cmd_print_escaped(m->sent_to, m->sent_to_len);
        }
        printf("\t%u\t", (unsigned)m->sender_device);
        pc_cmd_print_escaped(m->text, m->text_len);
        putchar('\n');
    }
    if (m->key_changed)
        pc_cmd_warn_key_change(a->warned, m->sender);
    /* printed before acked: the ack is what makes the server forget it */
    fflush(stdout);
    a->got++;
    if (a->count && a->got >= a->count)
        cli_wind_down(a, 0);
}

/* A call signal: an offer shows as a call nobody answered (`parley answer` answers them). */
static void recv_call(pc_recv *r, const pc_call_message *m, void *ud)
{
    app *a = ud;
    pc_call_sig sig;
    pc_status st;
    int offer;

    (void)r;
    if (pc_call_sig_decode(m->signal, m->signal_len, &sig, &st) < 0) {
        fflush(stdout);
        fprintf(stderr, "parley: ignoring a call signal %" PRIu64 " from %s device %u: %s\n",
                m->id, m->sender, (unsigned)m->sender_device, st.msg);
        return;
    }
    if (sig.type == PC_CALL_OFFER) {
        if (a->json) {
            printf("{\"from\":");
            cli_print_json_string(m->sender, strlen(m->sender));
            printf(",\"device\":%u,\"id\":%" PRIu64 ",\"timestamp\":%" PRIu64
                   ",\"call\":\"%016" PRIx64 "\"}\n",
                   (unsigned)m->sender_device, m->id, m->timestamp_ms, sig.call_id);
        } else {
            printf("%s %u called you (call %016" PRIx64 ")\n", m->sender,
                   (unsigned)m->sender_device, sig.call_id);
        }
        fflush(stdout);
        a->got++;
    }
    if (m->key_changed)
        pc_cmd_warn_key_change(a->warned, m->sender);
    offer = sig.type == PC_CALL_OFFER;
    pc_call_sig_wipe(&sig);
    if (offer && a->count && a->got >= a->count)
        cli_wind_down(a, 0);
}

static void recv_bad(pc_recv *r, const Parley__V1__Envelope *e, const pc_status *why, void *ud)
{
    (void)r;
    (void)ud;
    fflush(stdout);
    if (why->kind == PC_ERR_TRUST)
        fprintf(stderr, "parley: not showing message %" PRIu64 " from %s device %u: %s\n",
                e->id, e->sender, (unsigned)e->sender_device, why->msg);
    else
        fprintf(stderr, "parley: cannot decrypt message %" PRIu64 " from %s device %u: %s\n",
                e->id, e->sender, (unsigned)e->sender_device, why->msg);
}

static void recv_persist(pc_recv *r, void *ud)
{
    app *a = ud;
    pc_status st;

    (void)r;
    if (pc_home_save_seen(&a->home, &a->seen, &st) < 0 && !a->persist_warned) {
        a->persist_warned = 1;
        fprintf(stderr, "parley: warning: %s (duplicates may show after a crash)\n", st.msg);
    }
}

static void recv_save_failed(pc_recv *r, const pc_status *why, void *ud)
{
    app *a = ud;

    (void)r;
    if (!a->persist_warned) {
        a->persist_warned = 1;
        fprintf(stderr, "parley: warning: %s (acks wait until it can be saved)\n", why->msg);
    }
}

static void recv_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    app *a = ud;

    a->ever_up = 1;
    pc_session_set_retry(s, 1);
    if (a->upkeep)
        pc_upkeep_session_up(a->upkeep, ok);
    if (a->timed_out) {
        /* the timeout passed while the first authentication was still under way */
        cli_wind_down(a, a->count ? 3 : 0);
        return;
    }
    pc_recv_session_up(a->recv);
}

static void recv_push(pc_session *s, const Parley__V1__ServerFrame *f, void *ud)
{
    app *a = ud;

    (void)s;
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ENVELOPE && f->envelope &&
        !a->winding_down)
        pc_recv_envelope(a->recv, f->envelope);
}

static void recv_down(pc_session *s, const pc_status *st, int retrying, void *ud)
{
    app *a = ud;

    (void)s;
    if (a->recv)
        pc_recv_session_down(a->recv);
    if (a->winding_down && !a->finishing) {
        /* the acks in flight are lost with the connection: redelivery and the seen set cover
         * them */
        uv_timer_stop(&a->settle);
        cli_finish(a, a->rc);
        if (!retrying)
            cli_stop_loop(a);
        return;
    }
    cli_session_down_common(a, st, retrying);
}

static void recv_acked(pc_recv *r, void *ud)
{
    (void)r;
    (void)ud; /* settle_check polls pc_recv_idle */
}

int cli_cmd_recv(app *a)
{
    pc_session_events ev = { recv_up, recv_push, recv_down, NULL, cli_on_prekeys_low };
    pc_recv_events rev = { recv_message, recv_bad,         recv_persist,
                           recv_acked,   recv_save_failed, recv_call };
    pc_status st;

    if (pc_seen_init(&a->seen, PC_HOME_SEEN_IDS) < 0) {
        cli_fail(a, "out of memory");
        return -1;
    }
    a->seen_init = 1;
    if (pc_home_load_seen(&a->home, &a->seen, &st) < 0) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    if (cli_open_vault(a) < 0 || cli_open_session(a, &ev) < 0)
        return -1;
    if (!(a->upkeep = pc_upkeep_new(a->sess, a->vault, cli_upkeep_done, a))) {
        cli_fail(a, "out of memory");
        return -1;
    }
    a->recv = pc_recv_new(a->sess, a->vault, &a->seen, &rev, a, &st);
    if (!a->recv) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    cli_start_deadline(a, a->timeout_s);
    return 0;
}
