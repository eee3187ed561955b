/* cli_link.h: the `parley` commands that link a new device into an account: link (the new
 * device asks to join and shows a link code) and approve (a device holding the account key
 * lets it in), with the sealed link messages both ends exchange. Each command runs on the
 * loop it is given until it is done, prints its own result ("linked as NAME device N",
 * "approved device N") on stdout and its one `parley: ...` failure line on stderr, and returns
 * the process exit code: 0 ok, 1 failure. Usage errors (argument counts) are the caller's
 * (cli.c).
 *
 * The caller (cli.c) parses the options and calls the function instead of its own setup: these
 * commands open the home folder themselves (link creates it and refuses one that already holds
 * an identity; approve loads it). On return every handle the command opened on the loop is
 * closed and the loop has run until they finished; the caller still owns the loop
 * (uv_loop_close is its job). The recovery commands are in cli_recover.h. */
#ifndef PC_CLI_LINK_H
#define PC_CLI_LINK_H

#include "cli_cmd.h"

/* parley --server URL [--home NEW] link */
int pc_cmd_link(const pc_cmd_opts *o);
/* parley [--home OLD] approve CODE */
int pc_cmd_approve(const pc_cmd_opts *o, const char *code);

/* The lines of these commands for `parley --help`, inside its "commands:" block. */
extern const char pc_cmd_link_usage[];

#endif
