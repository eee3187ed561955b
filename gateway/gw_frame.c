#include "gw_frame.h"

#include <string.h>

gw_frame_status gw_frame_decode(const uint8_t *buf, size_t len, Parley__V1__ClientFrame **out)
{
    *out = NULL;
    Parley__V1__ClientFrame *f = parley__v1__client_frame__unpack(NULL, len, buf);
    if (!f)
        return GW_FRAME_UNDECODABLE;
    switch (f->body_case) {
    case PARLEY__V1__CLIENT_FRAME__BODY_AUTH:
    case PARLEY__V1__CLIENT_FRAME__BODY_REGISTER:
    case PARLEY__V1__CLIENT_FRAME__BODY_SEND:
    case PARLEY__V1__CLIENT_FRAME__BODY_ACK:
    case PARLEY__V1__CLIENT_FRAME__BODY_GET_DEVICES:
    case PARLEY__V1__CLIENT_FRAME__BODY_PING:
    case PARLEY__V1__CLIENT_FRAME__BODY_UPLOAD_PREKEYS:
    case PARLEY__V1__CLIENT_FRAME__BODY_GET_PREKEYS:
    case PARLEY__V1__CLIENT_FRAME__BODY_PUBLISH_DEVICE_LIST:
    case PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_OPEN:
    case PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_JOIN:
    case PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_SEND:
    case PARLEY__V1__CLIENT_FRAME__BODY_GET_TURN_CREDENTIALS:
        *out = f;
        return GW_FRAME_OK;
    default:
        parley__v1__client_frame__free_unpacked(f, NULL);
        return GW_FRAME_NO_BODY;
    }
}

void gw_frame_free(Parley__V1__ClientFrame *f)
{
    if (f)
        parley__v1__client_frame__free_unpacked(f, NULL);
}

gw_out *gw_frame_pack(const Parley__V1__ServerFrame *f)
{
    size_t n = parley__v1__server_frame__get_packed_size(f);
    gw_out *o = gw_out_new(n);
    if (!o)
        return NULL;
    parley__v1__server_frame__pack(f, gw_out_payload(o));
    return o;
}

gw_out *gw_frame_raw(const uint8_t *bytes, size_t len)
{
    gw_out *o = gw_out_new(len);
    if (!o)
        return NULL;
    if (len)
        memcpy(gw_out_payload(o), bytes, len);
    return o;
}

gw_out *gw_frame_error(uint64_t request_id, Parley__V1__ErrorCode code, const char *message,
                       uint32_t retry_after_ms)
{
    Parley__V1__Error err = PARLEY__V1__ERROR__INIT;
    err.code = code;
    if (message)
        err.message = (char *)message; /* protobuf-c wants non-const; only read by pack */
    err.retry_after_ms = retry_after_ms;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = request_id;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_ERROR;
    sf.error = &err;
    return gw_frame_pack(&sf);
}

const char *gw_frame_error_name(Parley__V1__ErrorCode code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&parley__v1__error_code__descriptor, (int)code);
    return v ? v->name : "UNKNOWN";
}
