/* wire.h: the WebSocket-level names of the protocol, shared by the gateway and the client:
 * the path, the subprotocol and the close codes (docs/PROTOCOL.md, "Close codes"). */
#ifndef PARLEY_WIRE_H
#define PARLEY_WIRE_H

#define PWIRE_PATH "/v1/ws"
#define PWIRE_SUBPROTOCOL "parley.v1"

#define PWIRE_CLOSE_NORMAL 1000
#define PWIRE_CLOSE_GOING_AWAY 1001   /* the gateway drains; reconnect (elsewhere) */
#define PWIRE_CLOSE_POLICY 1008       /* auth failure, request before auth, bad frames */
#define PWIRE_CLOSE_TOO_BIG 1009
#define PWIRE_CLOSE_INTERNAL 1011     /* a backend is unavailable */
#define PWIRE_CLOSE_REPLACED 4001     /* a newer connection of the same device took over */
#define PWIRE_CLOSE_TOO_SLOW 4002     /* the client did not read: outbound buffer over the limit */
#define PWIRE_CLOSE_DEVICE_REMOVED 4003 /* the device left the account's signed device list */

#endif
