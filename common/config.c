/* config.c: fills a service's config struct from its pcfg_opt table. Sources are applied in
 * precedence order (defaults, file, environment, flags) so each later one simply overwrites. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCFG_ENV_PREFIX "PARLEY_"
#define PCFG_NAME_MAX 64 /* longest option name; longer table names are a programming error */

/* Where a value came from, for error messages. */
typedef struct {
    const char *prog;
    const char *what; /* "default", "flag", "environment", a file name */
    const char *name; /* the spelling the user wrote */
    int line;         /* file line, 0 otherwise */
} pcfg_src;

static void pcfg_err(const pcfg_src *src, const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s: ", src->prog);
    if (src->line > 0 && src->name)
        fprintf(stderr, "%s:%d: %s: ", src->what, src->line, src->name);
    else if (src->line > 0)
        fprintf(stderr, "%s:%d: ", src->what, src->line);
    else
        fprintf(stderr, "%s %s: ", src->what, src->name);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
}

/* Option names compare with '-' and '_' the same and ASCII case ignored. */
static int pcfg_name_eq(const char *opt, const char *s, size_t len)
{
    size_t i = 0;
    for (; i < len && opt[i]; i++) {
        char a = opt[i] == '-' ? '_' : (char)tolower((unsigned char)opt[i]);
        char b = s[i] == '-' ? '_' : (char)tolower((unsigned char)s[i]);
        if (a != b)
            return 0;
    }
    return i == len && opt[i] == '\0';
}

static const pcfg_opt *pcfg_find(const pcfg_opt *opts, size_t nopts, const char *s, size_t len)
{
    for (size_t i = 0; i < nopts; i++)
        if (pcfg_name_eq(opts[i].name, s, len))
            return &opts[i];
    return NULL;
}

static int pcfg_parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Stores value into the field of o; STR values are copied and replace (free) the old one. */
static int pcfg_set(const pcfg_opt *o, void *cfg, const char *value, const pcfg_src *src)
{
    char *field = (char *)cfg + o->offset;
    switch (o->type) {
    case PCFG_STR: {
        char *copy = NULL;
        if (value) {
            copy = strdup(value);
            if (!copy) {
                pcfg_err(src, "out of memory%s%s", "", "");
                return -1;
            }
        }
        char **slot = (char **)(void *)field;
        free(*slot);
        *slot = copy;
        return 0;
    }
    case PCFG_INT: {
        char lo[32], hi[32];
        snprintf(lo, sizeof lo, "%lld", o->min);
        snprintf(hi, sizeof hi, "%lld", o->max);
        if (!value || !value[0] || isspace((unsigned char)value[0])) {
            pcfg_err(src, "'%s' is not an integer%s", value ? value : "", "");
            return -1;
        }
        errno = 0;
        char *end = NULL;
        long long v = strtoll(value, &end, 10);
        if (*end != '\0') {
            pcfg_err(src, "'%s' is not an integer%s", value, "");
            return -1;
        }
        if (errno == ERANGE || v < o->min || v > o->max) {
            char msg[128];
            snprintf(msg, sizeof msg, "%s out of range [%s, %s]", value, lo, hi);
            pcfg_err(src, "%s%s", msg, "");
            return -1;
        }
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case PCFG_BOOL: {
        int b;
        if (!value || pcfg_parse_bool(value, &b) != 0) {
            pcfg_err(src, "'%s' is not a boolean (true/false, 1/0, yes/no, on/off)%s",
                     value ? value : "", "");
            return -1;
        }
        memcpy(field, &b, sizeof b);
        return 0;
    }
    }
    pcfg_err(src, "bad option type%s%s", "", "");
    return -1;
}

static void pcfg_env_name(const char *name, char out[sizeof PCFG_ENV_PREFIX + PCFG_NAME_MAX])
{
    size_t o = 0;
    memcpy(out, PCFG_ENV_PREFIX, sizeof PCFG_ENV_PREFIX - 1);
    o = sizeof PCFG_ENV_PREFIX - 1;
    for (size_t i = 0; name[i] && i < PCFG_NAME_MAX; i++)
        out[o++] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
    out[o] = '\0';
}

static char *pcfg_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int pcfg_load_file(const char *prog, const char *path, const pcfg_opt *opts,
                          size_t nopts, void *cfg)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open config file %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (getline(&buf, &cap, f) >= 0) {
        lineno++;
        char *line = pcfg_trim(buf);
        if (line[0] == '\0' || line[0] == '#')
            continue;
        pcfg_src src = {prog, path, NULL, lineno};
        char *eq = strchr(line, '=');
        if (!eq) {
            pcfg_err(&src, "expected \"key = value\", got '%s'%s", line, "");
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = pcfg_trim(line);
        char *value = pcfg_trim(eq + 1);
        /* "..." keeps leading/trailing spaces and allows an empty string */
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        src.name = key;
        const pcfg_opt *o = pcfg_find(opts, nopts, key, strlen(key));
        if (!o) {
            src.name = NULL;
            pcfg_err(&src, "unknown key '%s'%s", key, "");
            rc = -1;
            break;
        }
        if (pcfg_set(o, cfg, value, &src) != 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "%s: reading %s failed\n", prog, path);
        rc = -1;
    }
    free(buf);
    fclose(f);
    return rc;
}

static void pcfg_usage(const char *prog, const char *summary, const pcfg_opt *opts, size_t nopts)
{
    static const char *const types[] = {"STR", "INT", "BOOL"};
    printf("Usage: %s [--config FILE] [--OPTION VALUE | --OPTION=VALUE]...\n", prog);
    if (summary && summary[0])
        printf("%s\n", summary);
    printf("\nSettings are applied in order (later wins): defaults, the --config file (or\n"
           "PARLEY_CONFIG), PARLEY_* environment variables, command-line flags. In flags '-'\n"
           "and '_' are the same. Config file: one \"key = value\" per line, # comments.\n"
           "\nOptions:\n");
    printf("  --config FILE\n      config file of \"key = value\" lines [env PARLEY_CONFIG]\n");
    for (size_t i = 0; i < nopts; i++) {
        const pcfg_opt *o = &opts[i];
        char flag[PCFG_NAME_MAX + 1];
        size_t k = 0;
        for (; o->name[k] && k < PCFG_NAME_MAX; k++)
            flag[k] = o->name[k] == '_' ? '-' : o->name[k];
        flag[k] = '\0';
        char env[sizeof PCFG_ENV_PREFIX + PCFG_NAME_MAX];
        pcfg_env_name(o->name, env);
        printf("  --%s %s\n      %s", flag, types[o->type], o->help ? o->help : "");
        if (o->type == PCFG_INT)
            printf(" (%lld..%lld)", o->min, o->max);
        printf(" [default: %s] [env %s]\n", o->def ? o->def : "none", env);
    }
    printf("  --help, -h\n      print this help and exit\n");
}

static void pcfg_free_strs(const pcfg_opt *opts, size_t nopts, void *cfg)
{
    for (size_t i = 0; i < nopts; i++) {
        if (opts[i].type != PCFG_STR)
            continue;
        char **slot = (char **)(void *)((char *)cfg + opts[i].offset);
        free(*slot);
        *slot = NULL;
    }
}

/* Flags: returns the length of the option name in arg (after "--"), with *value pointing at
 * the text after '=' or NULL. */
static size_t pcfg_split_flag(const char *arg, const char **value)
{
    const char *eq = strchr(arg, '=');
    *value = eq ? eq + 1 : NULL;
    return eq ? (size_t)(eq - arg) : strlen(arg);
}

/* 1. defaults; fields start uninitialised, so nothing is freed here */
static int pcfg_apply_defaults(const char *prog, const pcfg_opt *opts, size_t nopts, void *cfg)
{
    for (size_t i = 0; i < nopts; i++)
        if (opts[i].type == PCFG_STR)
            *(char **)(void *)((char *)cfg + opts[i].offset) = NULL;
    for (size_t i = 0; i < nopts; i++) {
        if (strlen(opts[i].name) > PCFG_NAME_MAX) {
            fprintf(stderr, "%s: option name too long: %s\n", prog, opts[i].name);
            return -1;
        }
    }
    for (size_t i = 0; i < nopts; i++) {
        pcfg_src src = {prog, "default of", opts[i].name, 0};
        if ((opts[i].def || opts[i].type != PCFG_STR) &&
            pcfg_set(&opts[i], cfg, opts[i].def, &src) != 0)
            return -1;
    }
    return 0;
}

/* 2. the config file: the last --config wins, else PARLEY_CONFIG */
static int pcfg_apply_file(const char *prog, const pcfg_opt *opts, size_t nopts, void *cfg,
                           int argc, char **argv)
{
    const char *file = getenv(PCFG_ENV_PREFIX "CONFIG");
    for (int i = 1; i < argc; i++) {
        const char *value;
        if (strncmp(argv[i], "--", 2) != 0)
            continue;
        size_t n = pcfg_split_flag(argv[i] + 2, &value);
        if (n == 6 && strncmp(argv[i] + 2, "config", 6) == 0) {
            if (!value) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "%s: --config needs a file name\n", prog);
                    return -1;
                }
                value = argv[++i];
            }
            file = value;
        } else if (!value && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            i++; /* skip the value of another flag, which may look like "--config" only by accident */
        }
    }
    if (file && file[0] && pcfg_load_file(prog, file, opts, nopts, cfg) != 0)
        return -1;
    return 0;
}

/* 3. environment */
static int pcfg_apply_env(const char *prog, const pcfg_opt *opts, size_t nopts, void *cfg)
{
    for (size_t i = 0; i < nopts; i++) {
        char env[sizeof PCFG_ENV_PREFIX + PCFG_NAME_MAX];
        pcfg_env_name(opts[i].name, env);
        const char *v = getenv(env);
        if (!v)
            continue;
        pcfg_src src = {prog, "environment", env, 0};
        if (pcfg_set(&opts[i], cfg, v, &src) != 0)
            return -1;
    }
    return 0;
}

/* 4. flags */
static int pcfg_apply_flags(const char *prog, const pcfg_opt *opts, size_t nopts, void *cfg,
                            int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            fprintf(stderr, "%s: unexpected argument '%s' (options are --name value)\n", prog, arg);
            return -1;
        }
        const char *value;
        size_t n = pcfg_split_flag(arg + 2, &value);
        if (n == 6 && strncmp(arg + 2, "config", 6) == 0) {
            if (!value)
                i++;
            continue;
        }
        const pcfg_opt *o = pcfg_find(opts, nopts, arg + 2, n);
        if (!o) {
            fprintf(stderr, "%s: unknown option '%.*s' (see --help)\n", prog, (int)n + 2, arg);
            return -1;
        }
        if (!value) {
            int is_next_value = i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0;
            if (o->type == PCFG_BOOL && !is_next_value) {
                value = "true"; /* a bare boolean flag switches it on */
            } else if (!is_next_value) {
                fprintf(stderr, "%s: option '%s' needs a value\n", prog, arg);
                return -1;
            } else {
                value = argv[++i];
            }
        }
        pcfg_src src = {prog, "option", arg, 0};
        if (pcfg_set(o, cfg, value, &src) != 0)
            return -1;
    }
    return 0;
}

/* Later sources override earlier ones: defaults < file < environment < flags. */
static int pcfg_apply(const char *prog, const pcfg_opt *opts, size_t nopts, void *cfg, int argc,
                      char **argv)
{
    if (pcfg_apply_defaults(prog, opts, nopts, cfg) != 0 ||
        pcfg_apply_file(prog, opts, nopts, cfg, argc, argv) != 0 ||
        pcfg_apply_env(prog, opts, nopts, cfg) != 0 ||
        pcfg_apply_flags(prog, opts, nopts, cfg, argc, argv) != 0)
        return -1;
    return 0;
}

int pcfg_parse(const char *prog, const char *summary, const pcfg_opt *opts, size_t nopts,
               void *cfg, int argc, char **argv)
{
    if (!prog)
        prog = "parley";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            pcfg_usage(prog, summary, opts, nopts);
            fflush(stdout);
            for (size_t k = 0; k < nopts; k++) /* leave nothing to free */
                if (opts[k].type == PCFG_STR)
                    *(char **)(void *)((char *)cfg + opts[k].offset) = NULL;
            return 1;
        }
    }
    if (pcfg_apply(prog, opts, nopts, cfg, argc, argv) != 0) {
        pcfg_free_strs(opts, nopts, cfg);
        return -1;
    }
    return 0;
}

void pcfg_free(const pcfg_opt *opts, size_t nopts, void *cfg)
{
    if (cfg)
        pcfg_free_strs(opts, nopts, cfg);
}
