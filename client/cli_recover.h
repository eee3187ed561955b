/* cli_recover.h: the `parley` commands of account recovery: recovery-kit (export the account
 * key under a passphrase, no network) and recover (a new device of the account from a kit).
 * They run like the link commands (cli_link.h): on the loop they are given, result on stdout,
 * one `parley: ...` failure line on stderr, exit code 0 or 1, every handle closed on return.
 * recover creates the home folder and refuses one that already holds an identity;
 * recovery-kit loads it. The passphrase comes from $PARLEY_PASSPHRASE or the terminal
 * (recovery.h). */
#ifndef PC_CLI_RECOVER_H
#define PC_CLI_RECOVER_H

#include "cli_cmd.h"

/* parley [--home DIR] recovery-kit FILE */
int pc_cmd_recovery_kit(const pc_cmd_opts *o, const char *file);
/* parley [--home NEW] [--server URL] recover FILE */
int pc_cmd_recover(const pc_cmd_opts *o, const char *file);

/* The lines of these commands for `parley --help`, after pc_cmd_link_usage. */
extern const char pc_cmd_recover_usage[];

#endif
