/* frames.c: the fanout's pure encoders and decoders: ingress entry decoding and checks, reply
 * and push events for the gateways, the human messages of rejected sends, presence values.
 * Nothing here does I/O, so tests/unit/test_fanout.c covers it directly. */
#include "fanout.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "sendcheck.h"

void pfo_result_clear(pfo_result *r)
{
    for (size_t i = 0; i < r->n_queued; i++)
        free(r->queued_content[i]);
    memset(r, 0, sizeof *r);
}

static int check_send(pfo_entry *e)
{
    const Parley__V1__InternalSend *m = e->msg;
    if (pauth_name_normalize(m->sender, e->sender) != 0)
        return -1;
    /* ids travel as PostgreSQL integer: larger ones cannot name a device */
    if (m->sender_device == 0 || m->sender_device > INT32_MAX)
        return -1;
    return psend_validate(m->send, e->recipient, NULL) == PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED
               ? 0
               : -1;
}

int pfo_entry_decode(pfo_entry *e, const uint8_t *data, size_t len)
{
    e->msg = parley__v1__internal_send__unpack(NULL, len, data);
    if (!e->msg)
        return -1;
    size_t gl = strlen(e->msg->gateway_id);
    if (gl == 0 || gl > PARLEY_GATEWAY_ID_MAX)
        return -1;
    if (check_send(e) != 0) {
        e->res.status = PFO_INVALID;
        e->to_store = 0;
        /* the reply names the recipient as the client wrote it */
        const Parley__V1__Send *s = e->msg->send;
        if (!s || pauth_name_normalize(s->recipient, e->recipient) != 0)
            snprintf(e->recipient, sizeof e->recipient, "%.*s", PARLEY_NAME_MAX,
                     s ? s->recipient : "");
        return 0;
    }
    e->to_store = 1;
    return 0;
}

Parley__V1__ErrorCode pfo_error_code(pfo_status s)
{
    switch (s) {
    case PFO_UNKNOWN_ACCOUNT: return PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT;
    case PFO_MISMATCH: return PARLEY__V1__ERROR_CODE__DEVICE_MISMATCH;
    case PFO_QUEUE_FULL: return PARLEY__V1__ERROR_CODE__QUEUE_FULL;
    case PFO_INVALID: return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    case PFO_UNKNOWN_SENDER: return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    default: return PARLEY__V1__ERROR_CODE__INTERNAL;
    }
}

typedef struct {
    char *buf;
    size_t len, cap;
} msgbuf;

static void add(msgbuf *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(msgbuf *m, const char *fmt, ...)
{
    if (m->len + 1 >= m->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->buf + m->len, m->cap - m->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        m->len = (size_t)n >= m->cap - m->len ? m->cap - 1 : m->len + (size_t)n;
}

static void add_list(msgbuf *m, const char *lead, const uint32_t *ids, size_t n)
{
    if (n == 0)
        return;
    add(m, "%s%s", m->len ? "; " : "", lead);
    for (size_t i = 0; i < n; i++)
        add(m, "%s%u", i ? ", " : "", ids[i]);
}

void pfo_error_message(char out[PFO_MSG_MAX], const char *recipient, int own,
                       const pfo_result *r)
{
    msgbuf m = {out, 0, PFO_MSG_MAX};
    char lead[128];
    out[0] = '\0';
    switch (r->status) {
    case PFO_UNKNOWN_ACCOUNT:
        add(&m, "unknown account %s", recipient);
        break;
    case PFO_MISMATCH:
        if (own) {
            add_list(&m, "your account has other devices you did not address: ", r->missing,
                     r->n_missing);
            add_list(&m, "addressed devices that are not your other devices: ", r->extra,
                     r->n_extra);
            add_list(&m, "your devices with a new registration id (reinstalled): ", r->stale,
                     r->n_stale);
        } else {
            snprintf(lead, sizeof lead, "recipient %s has devices you did not address: ",
                     recipient);
            add_list(&m, lead, r->missing, r->n_missing);
            snprintf(lead, sizeof lead, "addressed devices that %s does not have: ", recipient);
            add_list(&m, lead, r->extra, r->n_extra);
            snprintf(lead, sizeof lead, "devices of %s with a new registration id "
                     "(reinstalled): ", recipient);
            add_list(&m, lead, r->stale, r->n_stale);
        }
        if (!m.len)
            add(&m, "device list of %s changed", recipient);
        add(&m, "; nothing was queued, update the device list and resend");
        break;
    case PFO_QUEUE_FULL:
        snprintf(lead, sizeof lead, "queue full on devices of %s: ", recipient);
        add_list(&m, lead, r->full, r->n_full);
        add(&m, "; nothing was queued, retry later");
        break;
    case PFO_INVALID:
        add(&m, "invalid send: recipient, client_id, device ids, registration ids or "
                "contents out of bounds");
        break;
    case PFO_UNKNOWN_SENDER:
        add(&m, "the sending account no longer exists");
        break;
    default:
        /* also used when the result could not be read back: the send may be stored, and a
         * resend with the same client_id answers with its ids */
        add(&m, "the send could not be stored or confirmed; resend it with the same client_id");
        break;
    }
}

/* Packs ev into a fresh buffer. */
static int pack_event(const Parley__V1__InternalEvent *ev, uint8_t **out, size_t *len)
{
    size_t n = parley__v1__internal_event__get_packed_size(ev);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -1;
    *len = parley__v1__internal_event__pack(ev, buf);
    *out = buf;
    return 0;
}

int pfo_frame_reply(const Parley__V1__InternalSend *s, const char *recipient, int own,
                    const pfo_result *r, uint8_t **out, size_t *len)
{
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    Parley__V1__SendResult sr = PARLEY__V1__SEND_RESULT__INIT;
    Parley__V1__Stored st[PFO_LIST_MAX];
    Parley__V1__Stored *stp[PFO_LIST_MAX];
    Parley__V1__Error er = PARLEY__V1__ERROR__INIT;
    Parley__V1__DeviceMismatch mm = PARLEY__V1__DEVICE_MISMATCH__INIT;
    char msg[PFO_MSG_MAX];

    sf.request_id = s->request_id;
    if (r->status == PFO_ACCEPTED || r->status == PFO_DUPLICATE) {
        /* a resend may list its envelopes in another order than the stored first send */
        int used[PFO_LIST_MAX] = {0};
        size_t n = 0, nenv = s->send ? s->send->n_envelopes : 0;
        for (size_t i = 0; i < nenv; i++)
            for (size_t j = 0; j < r->n_stored; j++)
                if (!used[j] && r->stored_dev[j] == s->send->envelopes[i]->device_id) {
                    used[j] = 1;
                    stp[n++] = &st[j];
                    break;
                }
        for (size_t j = 0; j < r->n_stored; j++) {
            parley__v1__stored__init(&st[j]);
            st[j].device_id = r->stored_dev[j];
            st[j].envelope_id = r->stored_id[j];
            if (!used[j])
                stp[n++] = &st[j];
        }
        sr.n_stored = n;
        sr.stored = stp;
        sr.duplicate = r->status == PFO_DUPLICATE;
        sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_SEND_RESULT;
        sf.send_result = &sr;
    } else {
        er.code = pfo_error_code(r->status);
        pfo_error_message(msg, recipient, own, r);
        er.message = msg;
        if (r->status == PFO_MISMATCH) {
            mm.n_missing = r->n_missing;
            mm.missing = (uint32_t *)r->missing;
            mm.n_extra = r->n_extra;
            mm.extra = (uint32_t *)r->extra;
            mm.n_stale = r->n_stale;
            mm.stale = (uint32_t *)r->stale;
            er.mismatch = &mm;
        } else if (r->status == PFO_QUEUE_FULL) {
            er.n_full_devices = r->n_full;
            er.full_devices = (uint32_t *)r->full;
        }
        sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_ERROR;
        sf.error = &er;
    }

    size_t flen = parley__v1__server_frame__get_packed_size(&sf);
    uint8_t *frame = malloc(flen ? flen : 1);
    if (!frame)
        return -1;
    parley__v1__server_frame__pack(&sf, frame);
    Parley__V1__InternalReply rep = PARLEY__V1__INTERNAL_REPLY__INIT;
    rep.conn_id = s->conn_id;
    rep.request_id = sf.request_id;
    rep.frame.data = frame;
    rep.frame.len = flen;
    Parley__V1__InternalEvent ev = PARLEY__V1__INTERNAL_EVENT__INIT;
    ev.body_case = PARLEY__V1__INTERNAL_EVENT__BODY_REPLY;
    ev.reply = &rep;
    int rc = pack_event(&ev, out, len);
    free(frame);
    return rc;
}

int pfo_frame_push(const char *account, uint32_t device_id, const Parley__V1__Envelope *env,
                   uint8_t **out, size_t *len)
{
    Parley__V1__InternalPush push = PARLEY__V1__INTERNAL_PUSH__INIT;
    push.account = (char *)account;
    push.device_id = device_id;
    push.envelope = (Parley__V1__Envelope *)env;
    Parley__V1__InternalEvent ev = PARLEY__V1__INTERNAL_EVENT__INIT;
    ev.body_case = PARLEY__V1__INTERNAL_EVENT__BODY_PUSH;
    ev.push = &push;
    return pack_event(&ev, out, len);
}

int pfo_presence_gateway(const char *val, size_t len, char out[PARLEY_GATEWAY_ID_MAX + 1])
{
    if (!val)
        return -1;
    size_t slash = len;
    for (size_t i = len; i > 0; i--)
        if (val[i - 1] == '/') {
            slash = i - 1;
            break;
        }
    /* gateway ids may contain '/', connection ids do not: the last one separates them */
    if (slash == len || slash == 0 || slash > PARLEY_GATEWAY_ID_MAX || slash + 1 == len ||
        memchr(val, '\0', slash))
        return -1;
    memcpy(out, val, slash);
    out[slash] = '\0';
    return 0;
}
