/* gw_proto.h: the generated wire types. Gateway files include them (and, in .c files, put it
 * before libwebsockets.h) through here because common/limits.h shadows the system <limits.h>
 * on the include path (-I common), and protobuf-c and OpenSSL need INT_MAX from it. GCC's
 * own limits.h #undefs before defining, so this is harmless once the include path is fixed. */
#ifndef PARLEY_GW_PROTO_H
#define PARLEY_GW_PROTO_H

#ifndef INT_MAX
#define INT_MAX __INT_MAX__
#endif

#include "parley.pb-c.h"

#endif
