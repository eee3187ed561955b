/* cli_link.c: the commands link and approve (cli_link.h). Each runs in its own pc_cmd
 * (cli_cmd.h) on the caller's loop.
 *
 * link (new device, opener)            approve (device with the account key, joiner)
 *   ProvisionOpen{opener_pk}  ->
 *   print code + QR                      ProvisionJoin{channel_id, joiner_pk} -> ProvisionPeer
 *   <- ProvisionPeer push{joiner_pk}
 *   ProvisionSend(LinkOffer)  ->         ProvisionData push: check the offer's proof,
 *                                        pc_devchange_start(add), save the pin
 *   <- ProvisionData push(LinkGrant)     ProvisionSend(LinkGrant or LinkRefused)
 *   check the grant's list, save identity and pin, log in as the new device, publish prekeys
 *   (cli_join.h) */
#include "cli_link.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cli_join.h"
#include "devchange.h"
#include "devlist.h"
#include "link.h"
#include "link.pb-c.h"
#include "parley_client.h"
#include "qr.h"
#include "wire.h"

/* link waits this much longer than the code lives: the server closes the channel first */
#define LINK_WAIT_EXTRA_S 15.0
#define LINK_FORMAT_VERSION 1
/* a LinkRefused reason longer than this is cut on the wire (link.proto) */
#define REASON_MAX 200
/* our own copy of a refusal: the reason around a status message */
#define REFUSAL_MAX (PC_STATUS_MSG_MAX + PARLEY_NAME_MAX + 64)

const char pc_cmd_link_usage[] =
    "  link                       (new device, with --server) ask to join an account: prints a\n"
    "                             link code and its QR code, waits for approval (10 minutes)\n"
    "  approve CODE               add the device showing CODE to your account (needs the\n"
    "                             account key); prints \"approved device N\"\n";

typedef enum {
    PH_START,
    PH_OPENED,    /* link: code shown, waiting for a joiner */
    PH_OFFERED,   /* link: offer sent, waiting for the grant; approve: waiting for the offer */
    PH_CHANGING,  /* approve: the device list is being published */
    PH_ANSWERING, /* approve: grant or refusal on its way */
    PH_SAVED,     /* link: identity saved; the channel's close starts the login (cli_join.h) */
} lk_phase;

typedef struct {
    pc_cmd c;              /* c.conn: the unauthenticated channel */
    lk_phase phase;
    pc_link_chan chan;
    pc_keys keys;          /* the new device's */
    pc_dt_pin pin;         /* the own account's, until the vault exists */
} link_cmd;

typedef struct {
    pc_cmd c;              /* c.sess: this device, logged in */
    lk_phase phase;
    pc_link_chan chan;
    char account[PARLEY_NAME_MAX + 1];
    pc_dt_pin *vpin;       /* the vault's pin of the own account */
    pdl_device offer;      /* the new device */
    char refusal[REFUSAL_MAX]; /* sent to the new device, then our failure line */
} approve_cmd;

/* ---- what both ends share ----------------------------------------------------------------- */

/* The frame's Error; NULL when it is not an Error. */
static const Parley__V1__Error *frame_error(const Parley__V1__ServerFrame *f)
{
    return f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR ? f->error : NULL;
}

static void fail_error(pc_cmd *c, const char *what, const Parley__V1__Error *e)
{
    pc_status st;

    pc_status_from_error(&st, e);
    if (e->code == PARLEY__V1__ERROR_CODE__RATE_LIMITED)
        pc_cmd_fail(c, "%s: rate limited by the server: try again in %u s", what,
                    (unsigned)((e->retry_after_ms + 999) / 1000));
    else
        pc_cmd_fail(c, "%s: %s", what, st.msg);
}

/* ProvisionSend of msg sealed for the other side; the answer goes to cb with ud. */
static int send_sealed(pc_link_chan *chan, pc_conn *conn,
                       const Parley__Link__V1__LinkMessage *msg, pc_response_cb cb, void *ud,
                       pc_status *st)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__ProvisionSend ps = PARLEY__V1__PROVISION_SEND__INIT;
    size_t len = parley__link__v1__link_message__get_packed_size(msg);
    uint8_t *plain, *sealed;
    int rc;

    if (len + PC_LINK_SEAL_OVERHEAD > PARLEY_PROVISION_DATA_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "link message too large (%zu bytes)", len);
    plain = malloc(len + 1);
    sealed = malloc(len + PC_LINK_SEAL_OVERHEAD);
    if (!plain || !sealed) {
        free(plain);
        free(sealed);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    parley__link__v1__link_message__pack(msg, plain);
    pc_link_seal(chan, plain, len, sealed);
    sodium_memzero(plain, len);
    free(plain);
    ps.channel_id = chan->code.channel_id;
    ps.data.data = sealed;
    ps.data.len = len + PC_LINK_SEAL_OVERHEAD;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_SEND;
    f.provision_send = &ps;
    rc = pc_conn_request(conn, &f, cb, ud, st);
    free(sealed);
    return rc;
}

/* Opens a ProvisionData push into a LinkMessage (caller frees with
 * parley__link__v1__link_message__free_unpacked), or NULL with st set. */
static Parley__Link__V1__LinkMessage *open_sealed(pc_link_chan *chan,
                                                  const Parley__V1__ProvisionData *d,
                                                  pc_status *st)
{
    Parley__Link__V1__LinkMessage *m;
    uint8_t *plain;
    size_t len;

    if (strcmp(d->channel_id ? d->channel_id : "", chan->code.channel_id) != 0) {
        pc_status_set(st, PC_ERR_PROTO, "link message for another channel");
        return NULL;
    }
    if (d->data.len < PC_LINK_SEAL_OVERHEAD || d->data.len > PARLEY_PROVISION_DATA_MAX) {
        pc_status_set(st, PC_ERR_CRYPTO, "link message does not open");
        return NULL;
    }
    plain = malloc(d->data.len);
    if (!plain) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        return NULL;
    }
    if (pc_link_open(chan, d->data.data, d->data.len, plain, &len, st) < 0) {
        free(plain);
        return NULL;
    }
    m = parley__link__v1__link_message__unpack(NULL, len, plain);
    sodium_memzero(plain, len);
    free(plain);
    if (!m) {
        pc_status_set(st, PC_ERR_PROTO, "malformed link message");
        return NULL;
    }
    if (m->version != LINK_FORMAT_VERSION) {
        pc_status_set(st, PC_ERR_PROTO, "link message of format version %u (this parley speaks 1)",
                      (unsigned)m->version);
        parley__link__v1__link_message__free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

/* ---- link (the new device) ---------------------------------------------------------------- */

static void link_expired(void *ud)
{
    link_cmd *k = ud;

    if (k->phase == PH_OPENED || k->phase == PH_OFFERED) {
        if (k->c.o->timeout_s > 0)
            pc_cmd_fail(&k->c, "no approval within %g s: not linked", k->c.o->timeout_s);
        else
            pc_cmd_fail(&k->c, "the link code expired before a device approved it: not linked");
        return;
    }
    pc_cmd_no_answer(&k->c, pc_cmd_wait_s(&k->c));
}

static void link_offer_sent(pc_conn *conn, const Parley__V1__ServerFrame *f,
                            const pc_status *st, void *ud)
{
    link_cmd *k = ud;

    (void)conn;
    if (!f) {
        if (!k->c.finishing)
            pc_cmd_fail_status(&k->c, st);
        return;
    }
    if (frame_error(f))
        fail_error(&k->c, "cannot reach the approving device", f->error);
}

static void link_got_peer(link_cmd *k, const Parley__V1__ProvisionPeer *p)
{
    Parley__Link__V1__LinkMessage m = PARLEY__LINK__V1__LINK_MESSAGE__INIT;
    Parley__Link__V1__LinkOffer o = PARLEY__LINK__V1__LINK_OFFER__INIT;
    uint8_t sig[64];
    pc_status st;

    if (k->phase != PH_OPENED)
        return; /* one joiner per channel: the server never sends a second */
    if (pc_link_chan_key(&k->chan, &k->chan.code, p->data.data, p->data.len, &st) < 0) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return;
    }
    pc_link_offer_sign(&k->chan, k->keys.signing_pk, k->keys.signing_sk, k->keys.identity_pk,
                       k->keys.registration_id, sig);
    o.signing_key.data = k->keys.signing_pk;
    o.signing_key.len = 32;
    o.identity_key.data = k->keys.identity_pk;
    o.identity_key.len = 32;
    o.registration_id = k->keys.registration_id;
    o.signature.data = sig;
    o.signature.len = sizeof sig;
    m.version = LINK_FORMAT_VERSION;
    m.body_case = PARLEY__LINK__V1__LINK_MESSAGE__BODY_OFFER;
    m.offer = &o;
    if (send_sealed(&k->chan, k->c.conn, &m, link_offer_sent, k, &st) < 0) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return;
    }
    k->phase = PH_OFFERED;
    fputs("a device is approving this one...\n", stdout);
    fflush(stdout);
}

/* Checks the grant and takes it: the list is signed by the granted account key and lists
 * exactly our keys at the granted id; the pin starts from it. */
static void link_got_grant(link_cmd *k, const Parley__Link__V1__LinkGrant *g)
{
    Parley__V1__DeviceList dl = PARLEY__V1__DEVICE_LIST__INIT;
    Parley__V1__SignedDeviceList sl = PARLEY__V1__SIGNED_DEVICE_LIST__INIT, *lists[1];
    char norm[PARLEY_NAME_MAX + 1], done[PC_CMD_LINE_MAX];
    const pdl_device *me;
    const char *why = NULL;
    pdl_list l;
    pc_status st;

    if (!g->account || pauth_name_normalize(g->account, norm) < 0 || strcmp(norm, g->account) ||
        g->account_key.len != 32 || g->device_id == 0)
        goto bad;
    if (pdl_verify(g->list_signature.data, g->list_signature.len, g->list_body.data,
                   g->list_body.len, g->account_key.data) < 0) {
        pc_cmd_fail(&k->c, "the grant's device list is not signed by the account key it names: "
                           "not linked");
        return;
    }
    if (pdl_parse(g->list_body.data, g->list_body.len, &l, &why) != 0)
        goto bad;
    me = pdl_find(&l, g->device_id);
    if (strcmp(l.account, g->account) || l.version != g->list_version || !me ||
        me->registration_id != k->keys.registration_id ||
        memcmp(me->signing_pk, k->keys.signing_pk, 32) ||
        memcmp(me->identity_pk, k->keys.identity_pk, 32)) {
        pc_cmd_fail(&k->c, "the grant's device list does not list this device's keys as device "
                           "%u: not linked",
                    (unsigned)g->device_id);
        return;
    }
    /* the own pin starts at the granted list (first contact with the own account) */
    sl.body = g->list_body;
    sl.signature = g->list_signature;
    lists[0] = &sl;
    dl.account = g->account;
    dl.account_key = g->account_key;
    dl.n_lists = 1;
    dl.lists = lists;
    dl.latest_version = l.version;
    memset(&k->pin, 0, sizeof k->pin);
    if (pc_dt_accept(&k->pin, g->account, &dl, &st) < 0) {
        pc_cmd_fail(&k->c, "cannot pin the account's device list: %s", st.msg);
        return;
    }
    memcpy(k->keys.account_pk, g->account_key.data, 32);
    sodium_memzero(k->keys.account_sk, sizeof k->keys.account_sk);
    k->keys.has_account_sk = 0;
    snprintf(k->c.home.id.username, sizeof k->c.home.id.username, "%s", g->account);
    k->c.home.id.device_id = g->device_id;
    k->c.home.id.keys = k->keys;
    snprintf(done, sizeof done, "linked as %s device %u", g->account, (unsigned)g->device_id);
    if (pc_join_save(&k->c, &k->pin, done) < 0)
        return;
    k->phase = PH_SAVED;
    /* the channel served its purpose; its close starts the login as the new device */
    pc_conn_close(k->c.conn, PWIRE_CLOSE_NORMAL, "linked");
    return;
bad:
    pc_cmd_fail(&k->c, "malformed grant from the approving device%s%s: not linked",
                why ? ": " : "", why ? why : "");
}

static void link_got_data(link_cmd *k, const Parley__V1__ProvisionData *d)
{
    Parley__Link__V1__LinkMessage *m;
    pc_status st;

    if (k->phase != PH_OFFERED)
        return;
    m = open_sealed(&k->chan, d, &st);
    if (!m) {
        pc_cmd_fail(&k->c, "%s: not linked", st.msg);
        return;
    }
    if (m->body_case == PARLEY__LINK__V1__LINK_MESSAGE__BODY_GRANT && m->grant)
        link_got_grant(k, m->grant);
    else if (m->body_case == PARLEY__LINK__V1__LINK_MESSAGE__BODY_REFUSED && m->refused)
        pc_cmd_fail(&k->c, "not linked: %s",
                    m->refused->reason && *m->refused->reason ? m->refused->reason
                                                              : "the approving device refused");
    else
        pc_cmd_fail(&k->c, "unexpected link message: not linked");
    parley__link__v1__link_message__free_unpacked(m, NULL);
}

static void link_frame(pc_conn *conn, const Parley__V1__ServerFrame *f, void *ud)
{
    link_cmd *k = ud;

    (void)conn;
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_PROVISION_PEER && f->provision_peer)
        link_got_peer(k, f->provision_peer);
    else if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_PROVISION_DATA && f->provision_data)
        link_got_data(k, f->provision_data);
}

static void link_close(pc_conn *conn, const pc_status *st, void *ud)
{
    link_cmd *k = ud;

    (void)conn;
    if (k->c.finishing) {
        uv_stop(k->c.loop);
        return;
    }
    if (k->phase == PH_SAVED) {
        pc_join_publish(&k->c);
        return;
    }
    if (k->phase == PH_OPENED || k->phase == PH_OFFERED)
        pc_cmd_fail(&k->c, "the server closed the link channel (the code expired?): %s", st->msg);
    else
        pc_cmd_fail_status(&k->c, st);
}

static void link_opened(pc_conn *conn, const Parley__V1__ServerFrame *f, const pc_status *st,
                        void *ud)
{
    link_cmd *k = ud;
    char text[PC_LINK_CODE_TEXT_MAX];
    const Parley__V1__ProvisionOpened *po;

    (void)conn;
    if (!f) {
        if (!k->c.finishing)
            pc_cmd_fail_status(&k->c, st);
        return;
    }
    if (frame_error(f)) {
        fail_error(&k->c, "cannot open a link channel", f->error);
        return;
    }
    po = f->body_case == PARLEY__V1__SERVER_FRAME__BODY_PROVISION_OPENED ? f->provision_opened
                                                                           : NULL;
    if (!po || !po->channel_id || !pc_link_channel_id_valid(po->channel_id)) {
        pc_cmd_fail(&k->c, "unexpected answer to ProvisionOpen");
        return;
    }
    memcpy(k->chan.code.channel_id, po->channel_id, PARLEY_LINK_CHANNEL_ID_LEN + 1);
    pc_link_code_format(&k->chan.code, text);
    k->phase = PH_OPENED;
    printf("link code: %s\n", text);
    if (pc_qr_print(stdout, text) < 0) {
        /* the code itself is printed; the picture is a convenience */
    }
    printf("on a device of the account, run: parley approve %s\n", text);
    printf("waiting for approval (expires in %d minutes)\n", PARLEY_LINK_TTL_S / 60);
    fflush(stdout);
}

static int run_link(link_cmd *k)
{
    static const pc_conn_events ev = { NULL, link_frame, link_close };
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__ProvisionOpen po = PARLEY__V1__PROVISION_OPEN__INIT;
    pc_status st;

    if (pc_cmd_need_empty_home(&k->c, "link a new device") < 0)
        return -1;
    if (pc_keys_generate(&k->keys, &st) < 0 || pc_link_chan_init(&k->chan, 1, &st) < 0 ||
        pc_link_secret_new(&k->chan.code, &st) < 0) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return -1;
    }
    /* a linked device never holds the account secret */
    sodium_memzero(k->keys.account_sk, sizeof k->keys.account_sk);
    k->keys.has_account_sk = 0;
    k->c.conn = pc_conn_open(k->c.ctx, k->c.url, &ev, k, &st);
    if (!k->c.conn) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return -1;
    }
    po.data.data = k->chan.my_pk;
    po.data.len = PC_LINK_PK_BYTES;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_OPEN;
    f.provision_open = &po;
    if (pc_conn_request(k->c.conn, &f, link_opened, k, &st) < 0) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return -1;
    }
    pc_cmd_deadline(&k->c,
                    k->c.o->timeout_s > 0 ? k->c.o->timeout_s
                                          : PARLEY_LINK_TTL_S + LINK_WAIT_EXTRA_S,
                    link_expired, k);
    return 0;
}

int pc_cmd_link(const pc_cmd_opts *o)
{
    link_cmd k;
    int rc;

    memset(&k, 0, sizeof k);
    pc_cmd_init(&k.c, o);
    if (!o->server)
        pc_cmd_fail(&k.c, "link needs --server URL (the server of the account to join)");
    else if (pc_cmd_open_home(&k.c, 1) == 0 && pc_cmd_set_url(&k.c, o->server) == 0 &&
             pc_cmd_start_ctx(&k.c) == 0)
        run_link(&k);
    rc = pc_cmd_run_and_free(&k.c);
    pc_keys_wipe(&k.keys);
    pc_link_chan_wipe(&k.chan);
    return rc;
}

/* ---- approve (a device holding the account key) ------------------------------------------ */

static void approve_expired(void *ud)
{
    approve_cmd *k = ud;

    if (k->phase == PH_OFFERED) {
        pc_cmd_fail(&k->c, "the new device sent nothing within %g s (did its `parley link` "
                           "stop?); nothing was changed",
                    pc_cmd_wait_s(&k->c));
        return;
    }
    pc_cmd_no_answer(&k->c, pc_cmd_wait_s(&k->c));
}

/* The new device is in the list but will never learn it: the way out is to remove it. */
static void approve_stranded(approve_cmd *k, const char *what, const char *detail)
{
    pc_cmd_fail(&k->c, "device %u is in %s's device list, but %s%s%s%s: run `parley devices "
                       "remove %u`, then link again",
                (unsigned)k->offer.device_id, k->account, what, detail ? " (" : "",
                detail ? detail : "", detail ? ")" : "", (unsigned)k->offer.device_id);
}

static void approve_answered(pc_conn *conn, const Parley__V1__ServerFrame *f,
                             const pc_status *st, void *ud)
{
    approve_cmd *k = ud;

    (void)conn;
    if (k->refusal[0]) {
        /* the refusal reached the new device or not: ours is the same line either way */
        pc_cmd_fail(&k->c, "%s", k->refusal);
        return;
    }
    if (!f) {
        if (!k->c.finishing)
            approve_stranded(k, "the grant did not reach it", st->msg);
        return;
    }
    if (frame_error(f)) {
        pc_status e;

        pc_status_from_error(&e, f->error);
        approve_stranded(k, "the grant did not reach it", e.msg);
        return;
    }
    printf("approved device %u\n", (unsigned)k->offer.device_id);
    fflush(stdout);
    pc_cmd_finish(&k->c, 0);
}

static void approve_refuse(approve_cmd *k, const char *reason)
{
    Parley__Link__V1__LinkMessage m = PARLEY__LINK__V1__LINK_MESSAGE__INIT;
    Parley__Link__V1__LinkRefused r = PARLEY__LINK__V1__LINK_REFUSED__INIT;
    char wire[REASON_MAX + 1];
    pc_status st;

    snprintf(k->refusal, sizeof k->refusal, "%s", reason);
    snprintf(wire, sizeof wire, "%.*s", REASON_MAX, reason);
    r.reason = wire;
    m.version = LINK_FORMAT_VERSION;
    m.body_case = PARLEY__LINK__V1__LINK_MESSAGE__BODY_REFUSED;
    m.refused = &r;
    k->phase = PH_ANSWERING;
    if (send_sealed(&k->chan, pc_session_conn(k->c.sess), &m, approve_answered, k, &st) < 0)
        pc_cmd_fail(&k->c, "%s", k->refusal);
}

static void approve_grant(approve_cmd *k, const pdl_list *list, const uint8_t *body, size_t len,
                          const uint8_t *sig)
{
    Parley__Link__V1__LinkMessage m = PARLEY__LINK__V1__LINK_MESSAGE__INIT;
    Parley__Link__V1__LinkGrant g = PARLEY__LINK__V1__LINK_GRANT__INIT;
    pc_status st;

    g.account = k->account;
    g.account_key.data = k->c.home.id.keys.account_pk;
    g.account_key.len = 32;
    g.device_id = k->offer.device_id;
    g.list_version = list->version;
    g.list_body.data = (uint8_t *)body;
    g.list_body.len = len;
    g.list_signature.data = (uint8_t *)sig;
    g.list_signature.len = PDL_SIG_BYTES;
    g.server_url = k->c.url;
    m.version = LINK_FORMAT_VERSION;
    m.body_case = PARLEY__LINK__V1__LINK_MESSAGE__BODY_GRANT;
    m.grant = &g;
    k->phase = PH_ANSWERING;
    if (send_sealed(&k->chan, pc_session_conn(k->c.sess), &m, approve_answered, k, &st) < 0)
        approve_stranded(k, "the grant cannot be sent", st.msg);
}

static void approve_changed(const pc_status *st, const pdl_list *list, uint32_t device_id,
                            void *ud)
{
    approve_cmd *k = ud;
    char reason[REFUSAL_MAX];
    uint8_t sig[PDL_SIG_BYTES], *body = NULL;
    size_t len;
    pdl_list copy;
    pc_status e;

    if (k->c.finishing)
        return;
    if (st->kind != PC_OK) {
        if (!pc_join_full(st, k->account, reason, sizeof reason))
            snprintf(reason, sizeof reason, "%s's device list cannot be changed: %s", k->account,
                     st->msg);
        approve_refuse(k, reason);
        return;
    }
    k->offer.device_id = device_id;
    pc_vault_pin_changed(k->c.vault, k->account);
    if (pc_vault_save(k->c.vault, &e) < 0)
        fprintf(stderr, "parley: warning: cannot save %s's device list: %s\n", k->account, e.msg);
    /* The new device pins exactly the bytes the server stores: encoding is deterministic and
     * Ed25519 signatures too, so encoding and signing the published list again gives them;
     * the hash check proves it. */
    copy = *list;
    if (pdl_encode(&copy, &body, &len) < 0 || memcmp(copy.hash, list->hash, PDL_HASH_BYTES)) {
        free(body);
        approve_stranded(k, "its signed list cannot be rebuilt for the grant", NULL);
        return;
    }
    pdl_sign(sig, body, len, k->c.home.id.keys.account_sk);
    approve_grant(k, list, body, len, sig);
    free(body);
}

static void approve_got_offer(approve_cmd *k, const Parley__Link__V1__LinkOffer *o)
{
    char reason[REFUSAL_MAX];
    pc_devchange ch;
    pc_status st;

    if (o->signing_key.len != 32 || o->identity_key.len != 32 || o->registration_id == 0 ||
        o->registration_id > PARLEY_REGISTRATION_ID_MAX) {
        approve_refuse(k, "malformed offer: not linked");
        return;
    }
    if (pc_link_offer_verify(&k->chan, o->signing_key.data, o->identity_key.data,
                             o->registration_id, o->signature.data, o->signature.len) < 0) {
        approve_refuse(k, "the new device's offer does not prove its keys: not linked");
        return;
    }
    memset(&ch, 0, sizeof ch);
    ch.add = 1;
    ch.dev.registration_id = o->registration_id;
    memcpy(ch.dev.signing_pk, o->signing_key.data, 32);
    memcpy(ch.dev.identity_pk, o->identity_key.data, 32);
    k->offer = ch.dev;
    k->phase = PH_CHANGING;
    if (pc_devchange_start(pc_session_conn(k->c.sess), k->vpin, &k->c.home.id.keys, k->account,
                           &ch, approve_changed, k, &st) < 0) {
        snprintf(reason, sizeof reason, "%s's device list cannot be changed: %s", k->account,
                 st.msg);
        approve_refuse(k, reason);
    }
}

static void approve_push(pc_session *s, const Parley__V1__ServerFrame *f, void *ud)
{
    approve_cmd *k = ud;
    Parley__Link__V1__LinkMessage *m;
    pc_status st;

    (void)s;
    if (f->body_case != PARLEY__V1__SERVER_FRAME__BODY_PROVISION_DATA || !f->provision_data ||
        k->phase != PH_OFFERED)
        return;
    m = open_sealed(&k->chan, f->provision_data, &st);
    if (!m) {
        /* Sealed under our key, the refusal will not open at the other end either: the new
         * device learns the exchange failed instead of waiting for the code to expire. */
        if (st.kind == PC_ERR_CRYPTO)
            approve_refuse(k, "the new device's message does not open: the code was mistyped, "
                              "or someone tampered with the channel; nothing was changed");
        else
            approve_refuse(k, "the new device's message is malformed; nothing was changed");
        return;
    }
    if (m->body_case == PARLEY__LINK__V1__LINK_MESSAGE__BODY_OFFER && m->offer)
        approve_got_offer(k, m->offer);
    else
        pc_cmd_fail(&k->c, "unexpected link message from the new device; nothing was changed");
    parley__link__v1__link_message__free_unpacked(m, NULL);
}

static void approve_joined(pc_conn *conn, const Parley__V1__ServerFrame *f, const pc_status *st,
                           void *ud)
{
    approve_cmd *k = ud;
    pc_status e;

    (void)conn;
    if (!f) {
        if (!k->c.finishing)
            pc_cmd_fail_status(&k->c, st);
        return;
    }
    if (frame_error(f)) {
        if (f->error->code == PARLEY__V1__ERROR_CODE__LINK_NOT_FOUND)
            pc_cmd_fail(&k->c, "unknown, expired or already used link code");
        else
            fail_error(&k->c, "cannot join the link channel", f->error);
        return;
    }
    if (f->body_case != PARLEY__V1__SERVER_FRAME__BODY_PROVISION_PEER || !f->provision_peer) {
        pc_cmd_fail(&k->c, "unexpected answer to ProvisionJoin");
        return;
    }
    if (pc_link_chan_key(&k->chan, &k->chan.code, f->provision_peer->data.data,
                         f->provision_peer->data.len, &e) < 0) {
        pc_cmd_fail(&k->c, "%s", e.msg);
        return;
    }
    k->phase = PH_OFFERED; /* the new device's offer comes as a ProvisionData push */
}

static void approve_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    approve_cmd *k = ud;
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__ProvisionJoin pj = PARLEY__V1__PROVISION_JOIN__INIT;
    pc_status st;

    (void)ok;
    pj.channel_id = k->chan.code.channel_id;
    pj.data.data = k->chan.my_pk;
    pj.data.len = PC_LINK_PK_BYTES;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_JOIN;
    f.provision_join = &pj;
    if (pc_conn_request(pc_session_conn(s), &f, approve_joined, k, &st) < 0)
        pc_cmd_fail(&k->c, "%s", st.msg);
}

static void approve_down(pc_session *s, const pc_status *st, int retrying, void *ud)
{
    approve_cmd *k = ud;

    (void)s;
    pc_cmd_session_down(&k->c, st, retrying);
}

static int run_approve(approve_cmd *k, const char *code)
{
    static const pc_session_events ev = { approve_up, approve_push, approve_down, NULL, NULL };
    pc_status st;

    snprintf(k->account, sizeof k->account, "%s", k->c.home.id.username);
    if (pc_cmd_need_account_key(&k->c, "approve new devices") < 0)
        return -1;
    if (pc_link_chan_init(&k->chan, 0, &st) < 0 ||
        pc_link_code_parse(code, &k->chan.code, &st) < 0) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return -1;
    }
    if (pc_cmd_open_vault(&k->c) < 0)
        return -1;
    k->vpin = pc_vault_pin(k->c.vault, k->account, &st);
    if (!k->vpin) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return -1;
    }
    k->c.sess = pc_session_new(k->c.ctx, k->c.url, &k->c.home.id, &ev, k, &st);
    if (!k->c.sess) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return -1;
    }
    pc_session_start(k->c.sess);
    pc_cmd_deadline(&k->c, pc_cmd_wait_s(&k->c), approve_expired, k);
    return 0;
}

int pc_cmd_approve(const pc_cmd_opts *o, const char *code)
{
    approve_cmd k;
    int rc;

    memset(&k, 0, sizeof k);
    pc_cmd_init(&k.c, o);
    if (pc_cmd_open_home(&k.c, 0) == 0 && pc_cmd_load_home(&k.c) == 0 &&
        pc_cmd_set_url(&k.c, o->server ? o->server : k.c.home.server) == 0 &&
        pc_cmd_start_ctx(&k.c) == 0)
        run_approve(&k, code);
    rc = pc_cmd_run_and_free(&k.c);
    pc_link_chan_wipe(&k.chan);
    return rc;
}
