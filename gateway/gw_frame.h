/* gw_frame.h: the wire codec of the gateway: ClientFrame decoding with its failure classes,
 * ServerFrame packing into outbound items, error frames, and reading the request id of an
 * already packed ServerFrame (fanout replies are forwarded as is). No I/O. */
#ifndef PARLEY_GW_FRAME_H
#define PARLEY_GW_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "gw_outq.h"
#include "gw_proto.h"

typedef enum {
    GW_FRAME_OK = 0,
    GW_FRAME_UNDECODABLE, /* not a ClientFrame at all */
    GW_FRAME_NO_BODY,     /* decodes, but no (known) oneof member is set */
} gw_frame_status;

/* On GW_FRAME_OK *out is a ClientFrame the caller frees with gw_frame_free; otherwise NULL.
 * The caller bounds len (protobuf-c allocates while it unpacks). */
gw_frame_status gw_frame_decode(const uint8_t *buf, size_t len, Parley__V1__ClientFrame **out);
void gw_frame_free(Parley__V1__ClientFrame *f);

/* Packs f into a new outbound item (caller owns); NULL on OOM. */
gw_out *gw_frame_pack(const Parley__V1__ServerFrame *f);
/* An outbound item holding bytes verbatim (caller owns); NULL on OOM. */
gw_out *gw_frame_raw(const uint8_t *bytes, size_t len);
/* ServerFrame{request_id, error{code, message, retry_after_ms}} (caller owns); NULL on OOM.
 * message may be NULL. */
gw_out *gw_frame_error(uint64_t request_id, Parley__V1__ErrorCode code, const char *message,
                       uint32_t retry_after_ms);

/* "BAD_FRAME" etc.; "UNKNOWN" for values outside the enum. */
const char *gw_frame_error_name(Parley__V1__ErrorCode code);

#endif
