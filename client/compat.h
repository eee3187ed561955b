/* compat.h: works around common/limits.h shadowing the system <limits.h> (common/ is on the
 * include path, so `#include <limits.h>` in protobuf-c's and OpenSSL's headers finds Parley's
 * file and INT_MAX stays undefined). Included first by every client header; delete once the
 * include path is fixed (reported to the lead). GCC's own limits.h #undefs before defining, so
 * this cannot clash with it. */
#ifndef PC_COMPAT_H
#define PC_COMPAT_H

#ifndef INT_MAX
#define INT_MAX __INT_MAX__
#endif

#endif
