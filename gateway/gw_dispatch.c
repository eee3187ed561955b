#include "gw_dispatch.h"

#include "gw.h"
#include "gw_ack.h"
#include "gw_auth.h"
#include "gw_register.h"
#include "gw_devices.h"
#include "gw_devlist.h"
#include "gw_frame.h"
#include "gw_prekeys.h"
#include "gw_provision.h"
#include "gw_send.h"
#include "gw_turn.h"
#include "log.h"
#include "wire.h"

static void gw_dispatch_bad(gw *g, gw_conn *c, const char *why)
{
    if (c->bad_frames < UINT8_MAX)
        c->bad_frames++;
    plog_debug("bad_frame", "conn=%llu why=\"%s\" count=%u", (unsigned long long)c->id, why,
               c->bad_frames);
    gw_conn_send_error(g, c, 0, PARLEY__V1__ERROR_CODE__BAD_FRAME, why, 0);
    if (c->bad_frames >= PARLEY_BAD_FRAMES_MAX) {
        char peer[GW_PEER_TEXT_MAX];
        plog_info("too_many_bad_frames", "conn=%llu peer=%s", (unsigned long long)c->id,
                  gw_peer_text(&c->peer, peer));
        gw_conn_close(g, c, PWIRE_CLOSE_POLICY, "too many bad frames", 1);
    }
}

void gw_dispatch_too_large(gw *g, gw_conn *c)
{
    char peer[GW_PEER_TEXT_MAX];
    plog_info("frame_too_large", "conn=%llu peer=%s", (unsigned long long)c->id,
              gw_peer_text(&c->peer, peer));
    gw_conn_send_error(g, c, 0, PARLEY__V1__ERROR_CODE__FRAME_TOO_LARGE,
                       "message larger than the frame limit", 0);
    gw_conn_close(g, c, PWIRE_CLOSE_TOO_BIG, "message too big", 1);
}

static void gw_dispatch_ping(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    if (f->ping->data.len > PARLEY_MAX_PING_BYTES) {
        gw_conn_send_error(g, c, f->request_id, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT,
                           "ping data too long", 0);
        return;
    }
    Parley__V1__Pong pong = PARLEY__V1__PONG__INIT;
    pong.data = f->ping->data;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = f->request_id;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_PONG;
    sf.pong = &pong;
    gw_conn_send_frame(g, c, &sf);
}

static void gw_dispatch_frame(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    switch (f->body_case) {
    case PARLEY__V1__CLIENT_FRAME__BODY_PING:
        gw_dispatch_ping(g, c, f);
        return;
    case PARLEY__V1__CLIENT_FRAME__BODY_AUTH:
    case PARLEY__V1__CLIENT_FRAME__BODY_REGISTER:
        if (c->state == GW_CONN_AUTHED) {
            gw_conn_send_error(g, c, f->request_id,
                               PARLEY__V1__ERROR_CODE__ALREADY_AUTHENTICATED,
                               "already authenticated", 0);
        } else if (f->body_case == PARLEY__V1__CLIENT_FRAME__BODY_AUTH) {
            gw_auth_answer(g, c, f);
        } else {
            gw_register(g, c, f);
        }
        return;
    case PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_OPEN:
    case PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_SEND:
        /* the new device of a link has no account yet: it works unauthenticated */
        if (c->state == GW_CONN_AUTHING) {
            gw_conn_send_error(g, c, f->request_id, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT,
                               "authentication in progress", 0);
            return;
        }
        if (f->body_case == PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_OPEN)
            gw_provision_open(g, c, f);
        else
            gw_provision_send(g, c, f);
        return;
    default:
        break;
    }
    if (c->state != GW_CONN_AUTHED) {
        gw_conn_send_error(g, c, f->request_id, PARLEY__V1__ERROR_CODE__NOT_AUTHENTICATED,
                           "authenticate first", 0);
        gw_conn_close(g, c, PWIRE_CLOSE_POLICY, "not authenticated", 1);
        return;
    }
    if (c->account_session && f->body_case != PARLEY__V1__CLIENT_FRAME__BODY_GET_DEVICES &&
        f->body_case != PARLEY__V1__CLIENT_FRAME__BODY_PUBLISH_DEVICE_LIST) {
        gw_conn_send_error(g, c, f->request_id, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT,
                           "an account session may only GetDevices, PublishDeviceList and Ping",
                           0);
        return;
    }
    switch (f->body_case) {
    case PARLEY__V1__CLIENT_FRAME__BODY_SEND:
        gw_send_handle(g, c, f);
        break;
    case PARLEY__V1__CLIENT_FRAME__BODY_ACK:
        gw_ack_handle(g, c, f);
        break;
    case PARLEY__V1__CLIENT_FRAME__BODY_GET_DEVICES:
        gw_devices_handle(g, c, f);
        break;
    case PARLEY__V1__CLIENT_FRAME__BODY_UPLOAD_PREKEYS:
        gw_prekeys_upload(g, c, f);
        break;
    case PARLEY__V1__CLIENT_FRAME__BODY_GET_PREKEYS:
        gw_prekeys_get(g, c, f);
        break;
    case PARLEY__V1__CLIENT_FRAME__BODY_PUBLISH_DEVICE_LIST:
        gw_devlist_publish(g, c, f);
        break;
    case PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_JOIN:
        gw_provision_join(g, c, f);
        break;
    case PARLEY__V1__CLIENT_FRAME__BODY_GET_TURN_CREDENTIALS:
        gw_turn_handle(g, c, f);
        break;
    default:
        break; /* gw_frame_decode only returns the cases above */
    }
}

void gw_dispatch_message(gw *g, gw_conn *c, const uint8_t *buf, size_t len, int binary)
{
    if (c->close_code)
        return;
    pmet_inc(g->m.frames_in, 1);
    pmet_inc(g->m.bytes_in, len);
    if (!binary) {
        gw_dispatch_bad(g, c, "text frames are not accepted; send binary protobuf");
        return;
    }
    Parley__V1__ClientFrame *f = NULL;
    switch (gw_frame_decode(buf, len, &f)) {
    case GW_FRAME_OK:
        gw_dispatch_frame(g, c, f);
        gw_frame_free(f);
        return;
    case GW_FRAME_NO_BODY:
        gw_dispatch_bad(g, c, "frame has no request body");
        return;
    default:
        gw_dispatch_bad(g, c, "not a decodable ClientFrame");
        return;
    }
}
