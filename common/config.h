/* config.h: service configuration from defaults, a config file, PARLEY_* environment variables
 * and command-line flags, in that order of precedence (later wins). A service declares its
 * options once in a pcfg_opt table; this module parses, validates and prints --help from it.
 *
 * File format: one "key = value" per line, '#' comments (whole lines), blank lines ignored;
 * surrounding spaces are trimmed, "..." keeps them (and allows an empty string). Keys spell
 * '-' or '_'. Unknown keys are errors naming the file, line and key.
 * Environment: option "listen_port" is PARLEY_LISTEN_PORT.
 * Flags: --listen-port 8080 or --listen-port=8080 ('-' and '_' are the same); a value starting
 * with "--" needs the '=' form. A BOOL flag alone (--verbose) means true.
 * Config file: --config FILE (the last one wins), else PARLEY_CONFIG if set.
 * INT: decimal only, whole string, within [min, max]. BOOL: true/false 1/0 yes/no on/off. */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stddef.h>

typedef enum { PCFG_STR, PCFG_INT, PCFG_BOOL } pcfg_type;

typedef struct {
    const char *name;   /* "listen_port" */
    pcfg_type type;
    size_t offset;      /* offsetof(struct, field): char * for STR, long long for INT, int for BOOL */
    const char *def;    /* default as text; NULL for STR means NULL */
    long long min, max; /* INT bounds, inclusive */
    const char *help;
} pcfg_opt;

/* Fills cfg (STR fields are malloc'd strings owned by cfg, free with pcfg_free). cfg's previous
 * contents are ignored (not freed). Returns 0 to run, 1 when --help (or -h) was printed on
 * stdout (exit 0), -1 on error (one message naming the option and, for INT, its bounds, printed
 * on stderr; exit 2). On 1 and -1 every STR field is NULL, so pcfg_free is optional. */
int pcfg_parse(const char *prog, const char *summary, const pcfg_opt *opts, size_t nopts,
               void *cfg, int argc, char **argv);
void pcfg_free(const pcfg_opt *opts, size_t nopts, void *cfg);

#endif
