/* sendcheck.h: the bounds of a Send, checked where it enters (gateway) and again where it is
 * stored (fanout, which must not trust what it reads from Redis). One definition, so the two
 * never drift apart. */
#ifndef PARLEY_SENDCHECK_H
#define PARLEY_SENDCHECK_H

#include "limits.h"
#include "parley.pb-c.h"

/* On success returns PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED and writes the normalised
 * recipient; otherwise the error code to answer with (*why, when why is not NULL, says which
 * check failed: a static string). Pure. */
Parley__V1__ErrorCode psend_validate(const Parley__V1__Send *s,
                                     char recipient[PARLEY_NAME_MAX + 1], const char **why);

#endif
