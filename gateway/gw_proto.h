/* gw_proto.h: the generated wire types, included by gateway files through here. */
#ifndef PARLEY_GW_PROTO_H
#define PARLEY_GW_PROTO_H

#include "parley.pb-c.h"

#endif
