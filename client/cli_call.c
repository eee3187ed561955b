/* cli_call.c: `parley call` and `parley answer` (cli_call.h). */
#include "cli_call.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "clock.h"
#include "recv.h"
#include "seen.h"

/* how long the acks of what was received may take once the call is over */
#define WIND_DOWN_MS 3000
#define WIND_POLL_MS 10

const char pc_cmd_call_usage[] =
    "  call NAME                  call NAME: ring every device of NAME, stream encrypted media\n"
    "                             through the TURN relay, then print \"call ID: sent N received\n"
    "                             M lost L (x.x%) rtt X ms jitter Y ms\"\n"
    "      [--seconds S]          media time (10)\n"
    "      [--video]              video-sized bursts as well as audio frames\n"
    "      [--timeout S]          ring for S seconds (30)\n"
    "  answer                     wait for a call and answer it; prints the same line when the\n"
    "                             caller hangs up (a second caller meanwhile hears busy)\n"
    "      [--timeout S]          wait S seconds for a call (30)\n"
    "                             (both print messages arriving meanwhile as recv does)\n";

typedef struct {
    pc_cmd cmd;                 /* first: pc_cmd callbacks get &cmd */
    int answering;              /* answer; else call */
    const char *name;           /* call: the callee as given */
    pc_call_opts co;
    pc_recv *recv;
    pc_seen seen;
    int seen_init;
    pc_call *call;
    int ever_up;
    int deadline_passed;        /* answer: while a call was under way */
    int winding;
    int rc;
    uint64_t wind_start;
    uv_timer_t wind;
    char warned[PARLEY_NAME_MAX + 1];
    int persist_warned;
    /* answer: an offer that came after the last call ended but before its end was reported
     * (pc_call_over); taken once it is. pending.sender points at pending_sender, the signal
     * is decoded in pending_sig (which holds the media key: wiped when done). */
    int has_pending;
    pc_call_message pending;
    char pending_sender[PARLEY_NAME_MAX + 1];
    pc_call_sig pending_sig;
} callcmd;

/* ---- output ----------------------------------------------------------------------------- */

/* ---- ending ----------------------------------------------------------------------------- */

/* Our objects go before the session (pc_cmd_run_and_free frees it after the loop). */
static void release_ours(callcmd *cc)
{
    pc_call_free(cc->call);
    cc->call = NULL;
    pc_recv_free(cc->recv);
    cc->recv = NULL;
    uv_timer_stop(&cc->wind);
}

static void finish(callcmd *cc, int rc)
{
    release_ours(cc);
    pc_cmd_finish(&cc->cmd, rc);
}

static void fail(callcmd *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(callcmd *cc, const char *fmt, ...)
{
    char line[PC_STATUS_MSG_MAX * 2];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    release_ours(cc);
    pc_cmd_fail(&cc->cmd, "%s", line);
}

static void wind_check(uv_timer_t *t)
{
    callcmd *cc = t->data;

    if (!cc->recv || pc_recv_idle(cc->recv) || !pc_session_conn(cc->cmd.sess) ||
        uv_now(cc->cmd.loop) - cc->wind_start >= WIND_DOWN_MS)
        finish(cc, cc->rc);
}

/* Receive no more, let the acks of what was handled go out, then finish with rc. */
static void wind_down(callcmd *cc, int rc)
{
    if (cc->winding || cc->cmd.finishing)
        return;
    cc->winding = 1;
    cc->rc = rc;
    uv_timer_stop(&cc->cmd.deadline);
    if (cc->recv)
        pc_recv_pause(cc->recv);
    cc->wind_start = uv_now(cc->cmd.loop);
    uv_timer_start(&cc->wind, wind_check, 0, WIND_POLL_MS);
}

/* ---- the call --------------------------------------------------------------------------- */

static void call_connected(pc_call *c, void *ud)
{
    (void)c;
    (void)ud;
}

static void print_missed(const pc_call_message *m, const pc_call_sig *sig);
static void take_offer(callcmd *cc, const pc_call_message *m, const pc_call_sig *sig);

/* Keeps a copy of offer m (see callcmd.pending); one held before is a missed call. */
static void stash_offer(callcmd *cc, const pc_call_message *m, const pc_call_sig *sig)
{
    if (cc->has_pending)
        print_missed(&cc->pending, &cc->pending_sig);
    cc->pending = *m;
    snprintf(cc->pending_sender, sizeof cc->pending_sender, "%s", m->sender);
    cc->pending.sender = cc->pending_sender;
    cc->pending.signal = NULL; /* decoded in pending_sig */
    cc->pending.signal_len = 0;
    cc->pending_sig = *sig;
    cc->has_pending = 1;
}

/* The held offer: taken (take) or reported as missed. */
static void release_offer(callcmd *cc, int take)
{
    if (!cc->has_pending)
        return;
    cc->has_pending = 0;
    if (take)
        take_offer(cc, &cc->pending, &cc->pending_sig);
    else
        print_missed(&cc->pending, &cc->pending_sig);
    pc_call_sig_wipe(&cc->pending_sig);
}

/* Answering: the offered call ended before it became ours (what ... tail says how); takes an
 * offer that came meanwhile, else waits for the next one until the deadline. */
static void await_next(callcmd *cc, pc_call *c, const pc_call_result *res, const char *what,
                       const char *tail)
{
    fflush(stdout);
    fprintf(stderr, "parley: %s from %s device %u%s (call %016" PRIx64 ")\n", what, res->peer,
            (unsigned)res->peer_device, tail, res->call_id);
    pc_call_free(c);
    cc->call = NULL;
    if (cc->has_pending)
        release_offer(cc, 1);
    else if (cc->deadline_passed)
        fail(cc, "no call came within %g s", pc_cmd_wait_s(&cc->cmd));
}

static void call_end(pc_call *c, const pc_status *st, const pc_call_result *res, void *ud)
{
    callcmd *cc = ud;
    char line[256];

    if (res->key_changed)
        pc_cmd_warn_key_change(cc->warned, res->peer);
    /* an offer held for after this call is taken only when waiting for the next goes on */
    if (res->end != PC_CALL_END_ELSEWHERE && !(res->end == PC_CALL_END_HUNG_UP && cc->answering))
        release_offer(cc, 0);
    switch (res->end) {
    case PC_CALL_END_DONE:
        pc_call_format_stats(res->call_id, &res->stats, line, sizeof line);
        printf("%s\n", line);
        fflush(stdout);
        pc_call_free(c);
        cc->call = NULL;
        wind_down(cc, 0);
        return;
    case PC_CALL_END_BUSY:
        fail(cc, "%s is busy (call %016" PRIx64 ")", res->peer, res->call_id);
        return;
    case PC_CALL_END_NO_ANSWER:
        fail(cc, "%s did not answer within %u s (call %016" PRIx64 ")", res->peer,
             (unsigned)cc->co.ring_s, res->call_id);
        return;
    case PC_CALL_END_ELSEWHERE:
        /* taken on another device of this account */
        await_next(cc, c, res, "call", " answered on another device");
        return;
    case PC_CALL_END_HUNG_UP:
        if (cc->answering) {
            /* withdrawn before it was connected */
            await_next(cc, c, res, "missed call", "");
            return;
        }
        fail(cc, "%s declined the call (call %016" PRIx64 ")", res->peer, res->call_id);
        return;
    case PC_CALL_END_FAILED:
    default:
        if (st->kind == PC_ERR_NET)
            fail(cc, "call %016" PRIx64 ": cannot reach server %s: %s", res->call_id,
                 cc->cmd.url, st->msg);
        else
            fail(cc, "call %016" PRIx64 " failed: %s", res->call_id, st->msg);
        return;
    }
}

static const pc_call_events call_events = { call_connected, call_end };

static void print_missed(const pc_call_message *m, const pc_call_sig *sig)
{
    printf("%s %u called you (call %016" PRIx64 ")\n", m->sender, (unsigned)m->sender_device,
           sig->call_id);
    fflush(stdout);
}

static void take_offer(callcmd *cc, const pc_call_message *m, const pc_call_sig *sig)
{
    pc_status st;

    if (!pc_call_offer_fresh(sig, m->timestamp_ms, pclock_wall_ms())) {
        print_missed(m, sig);
        return;
    }
    if (!strcmp(m->sender, cc->cmd.home.id.username)) {
        print_missed(m, sig); /* from another device of this account: not answered here */
        return;
    }
    if (!(cc->call = pc_call_answer(cc->cmd.sess, cc->cmd.vault, m, sig, &call_events, cc, &st)))
        fail(cc, "%s", st.msg);
}

/* ---- receiving -------------------------------------------------------------------------- */

static void on_call(pc_recv *r, const pc_call_message *m, void *ud)
{
    callcmd *cc = ud;
    pc_call_sig sig;
    pc_status st;

    (void)r;
    if (cc->cmd.finishing || cc->winding)
        return;
    if (pc_call_sig_decode(m->signal, m->signal_len, &sig, &st) < 0) {
        fflush(stdout);
        fprintf(stderr, "parley: ignoring a call signal from %s device %u: %s\n", m->sender,
                (unsigned)m->sender_device, st.msg);
        return;
    }
    if (cc->call && cc->answering && sig.type == PC_CALL_OFFER && pc_call_over(cc->call))
        stash_offer(cc, m, &sig); /* the last call is over; its end is not reported yet */
    else if (cc->call)
        pc_call_input(cc->call, m, &sig);
    else if (sig.type == PC_CALL_OFFER && cc->answering)
        take_offer(cc, m, &sig);
    else if (sig.type == PC_CALL_OFFER)
        print_missed(m, &sig);
    pc_call_sig_wipe(&sig);
}

static void on_message(pc_recv *r, const pc_message *m, void *ud)
{
    callcmd *cc = ud;

    (void)r;
    printf("%s", m->sender);
    if (m->sent_to) {
        printf("->");
        pc_cmd_print_escaped(m->sent_to, m->sent_to_len);
    }
    printf("\t%u\t", (unsigned)m->sender_device);
    pc_cmd_print_escaped(m->text, m->text_len);
    putchar('\n');
    fflush(stdout);
    if (m->key_changed)
        pc_cmd_warn_key_change(cc->warned, m->sender);
}

static void on_bad(pc_recv *r, const Parley__V1__Envelope *e, const pc_status *why, void *ud)
{
    (void)r;
    (void)ud;
    fflush(stdout);
    fprintf(stderr, "parley: %s message %" PRIu64 " from %s device %u: %s\n",
            why->kind == PC_ERR_TRUST ? "not showing" : "cannot decrypt", e->id, e->sender,
            (unsigned)e->sender_device, why->msg);
}

static void on_persist(pc_recv *r, void *ud)
{
    callcmd *cc = ud;
    pc_status st;

    (void)r;
    if (pc_home_save_seen(&cc->cmd.home, &cc->seen, &st) < 0 && !cc->persist_warned) {
        cc->persist_warned = 1;
        fprintf(stderr, "parley: warning: %s (duplicates may show after a crash)\n", st.msg);
    }
}

/* ---- the session ------------------------------------------------------------------------ */

static void upkeep_done(pc_upkeep *u, const pc_status *st, void *ud)
{
    (void)u;
    (void)ud;
    if (st->kind != PC_OK && st->kind != PC_ERR_NET)
        fprintf(stderr, "parley: warning: cannot publish prekeys: %s\n", st->msg);
}

static void sess_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    callcmd *cc = ud;

    cc->ever_up = 1;
    pc_session_set_retry(s, 1); /* a drop during the call is retried; the call's timers bound it */
    if (cc->cmd.upkeep)
        pc_upkeep_session_up(cc->cmd.upkeep, ok);
    if (cc->recv)
        pc_recv_session_up(cc->recv);
    if (cc->call)
        pc_call_session_up(cc->call);
}

static void sess_push(pc_session *s, const Parley__V1__ServerFrame *f, void *ud)
{
    callcmd *cc = ud;

    (void)s;
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ENVELOPE && f->envelope && cc->recv &&
        !cc->winding)
        pc_recv_envelope(cc->recv, f->envelope);
}

static void sess_down(pc_session *s, const pc_status *st, int retrying, void *ud)
{
    callcmd *cc = ud;

    (void)s;
    if (cc->recv)
        pc_recv_session_down(cc->recv);
    if (cc->call && retrying)
        pc_call_session_down(cc->call, st);
    if (cc->winding && !cc->cmd.finishing) {
        finish(cc, cc->rc);
        if (!retrying)
            uv_stop(cc->cmd.loop);
        return;
    }
    if (!retrying)
        release_ours(cc);
    pc_cmd_session_down(&cc->cmd, st, retrying);
}

static void prekeys_low(pc_session *s, uint32_t count, void *ud)
{
    callcmd *cc = ud;

    (void)s;
    if (cc->cmd.upkeep)
        pc_upkeep_low(cc->cmd.upkeep, count);
}

static void no_call(void *ud)
{
    callcmd *cc = ud;

    if (cc->call) {
        cc->deadline_passed = 1; /* the call under way has its own deadlines */
        return;
    }
    if (!cc->ever_up)
        fail(cc, "cannot reach server %s: timed out", cc->cmd.url);
    else
        fail(cc, "no call came within %g s", pc_cmd_wait_s(&cc->cmd));
}

/* ---- setup ------------------------------------------------------------------------------ */

static int setup(callcmd *cc)
{
    static const pc_session_events sev = { sess_up, sess_push, sess_down, NULL, prekeys_low };
    pc_recv_events rev = { on_message, on_bad, on_persist, NULL, NULL, on_call };
    pc_status st;

    if (pc_cmd_open_home(&cc->cmd, 0) < 0 || pc_cmd_load_home(&cc->cmd) < 0 ||
        pc_cmd_set_url(&cc->cmd, cc->cmd.o->server ? cc->cmd.o->server : cc->cmd.home.server) <
            0 ||
        pc_cmd_start_ctx(&cc->cmd) < 0 || pc_cmd_open_vault(&cc->cmd) < 0)
        return -1;
    if (pc_seen_init(&cc->seen, PC_HOME_SEEN_IDS) < 0) {
        pc_cmd_fail(&cc->cmd, "out of memory");
        return -1;
    }
    cc->seen_init = 1;
    if (pc_home_load_seen(&cc->cmd.home, &cc->seen, &st) < 0) {
        pc_cmd_fail(&cc->cmd, "%s", st.msg);
        return -1;
    }
    cc->cmd.sess = pc_session_new(cc->cmd.ctx, cc->cmd.url, &cc->cmd.home.id, &sev, cc, &st);
    if (!cc->cmd.sess) {
        pc_cmd_fail(&cc->cmd, "%s", st.msg);
        return -1;
    }
    if (!(cc->cmd.upkeep = pc_upkeep_new(cc->cmd.sess, cc->cmd.vault, upkeep_done, cc)) ||
        !(cc->recv = pc_recv_new(cc->cmd.sess, cc->cmd.vault, &cc->seen, &rev, cc, &st))) {
        pc_cmd_fail(&cc->cmd, "out of memory");
        return -1;
    }
    if (!cc->answering &&
        !(cc->call = pc_call_dial(cc->cmd.sess, cc->cmd.vault, cc->name, &cc->co, &call_events,
                                  cc, &st))) {
        fail(cc, "%s", st.msg);
        return -1;
    }
    if (cc->answering)
        pc_cmd_deadline(&cc->cmd, pc_cmd_wait_s(&cc->cmd), no_call, cc);
    pc_session_start(cc->cmd.sess);
    return 0;
}

static int run(callcmd *cc, const pc_cmd_opts *o)
{
    int rc;

    pc_cmd_init(&cc->cmd, o);
    uv_timer_init(o->loop, &cc->wind);
    cc->wind.data = cc;
    setup(cc);
    /* every way to the end went through release_ours (finish, fail, the session's end) */
    rc = pc_cmd_run_and_free(&cc->cmd);
    uv_close((uv_handle_t *)&cc->wind, NULL);
    uv_run(o->loop, UV_RUN_DEFAULT);
    if (cc->seen_init)
        pc_seen_free(&cc->seen);
    pc_call_sig_wipe(&cc->pending_sig);
    return rc;
}

int pc_cmd_call(const pc_cmd_opts *o, const char *name, double seconds, int video)
{
    callcmd cc;

    memset(&cc, 0, sizeof cc);
    cc.name = name;
    cc.co.seconds = seconds > 0 ? seconds : PC_CALL_SECONDS_DEFAULT;
    cc.co.video = video;
    cc.co.ring_s = o->timeout_s > 0 ? (uint32_t)ceil(o->timeout_s) : PC_CALL_RING_DEFAULT_S;
    return run(&cc, o);
}

int pc_cmd_answer(const pc_cmd_opts *o)
{
    callcmd cc;

    memset(&cc, 0, sizeof cc);
    cc.answering = 1;
    return run(&cc, o);
}
