/* cli_call.h: the `parley` commands of calls: call (ring an account, stream media through the
 * TURN relay for --seconds, hang up) and answer (wait for a call, answer it, stream until the
 * caller hangs up). Both log in with the home's device, receive on the way like `parley recv`
 * (text messages that arrive meanwhile are printed in its FROM<TAB>DEVICE<TAB>TEXT form, so
 * none is acked unseen), and end with one line on stdout:
 *     call ID: sent N received M lost L (x.x%) rtt X ms jitter Y ms
 * or their one `parley: ...` failure line on stderr (busy, no answer, no call, relay or server
 * failures). They return the process exit code: 0 ok, 1 failure. Same conventions as
 * cli_link.h (the caller parses options; handles closed on return; the loop is the caller's). */
#ifndef PC_CLI_CALL_H
#define PC_CLI_CALL_H

#include "cli_cmd.h"

/* parley [--home DIR] call NAME [--seconds S] [--video] [--timeout RING_S] */
int pc_cmd_call(const pc_cmd_opts *o, const char *name, double seconds, int video);
/* parley [--home DIR] answer [--timeout S] */
int pc_cmd_answer(const pc_cmd_opts *o);

/* The lines of these commands for `parley --help`, inside its "commands:" block. */
extern const char pc_cmd_call_usage[];

#endif
