/* test_config.c: option parsing precedence (default < file < env < flag), strict integers with
 * bounds, booleans, unknown keys, --help, and the error messages naming what was wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

typedef struct {
    char *host;
    long long port;
    int verbose;
    char *pg;
    long long shards;
} tcfg;

static const pcfg_opt opts[] = {
    {"listen_host", PCFG_STR, offsetof(tcfg, host), "127.0.0.1", 0, 0, "address to listen on"},
    {"listen_port", PCFG_INT, offsetof(tcfg, port), "8080", 1, 65535, "TCP port"},
    {"verbose", PCFG_BOOL, offsetof(tcfg, verbose), "false", 0, 0, "more output"},
    {"pg", PCFG_STR, offsetof(tcfg, pg), NULL, 0, 0, "libpq conninfo"},
    {"ingress_shards", PCFG_INT, offsetof(tcfg, shards), "4", 1, 64, "ingress streams"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static char cfgfile[64];
static char errfile[64];

static void clear_env(void)
{
    unsetenv("PARLEY_LISTEN_HOST");
    unsetenv("PARLEY_LISTEN_PORT");
    unsetenv("PARLEY_VERBOSE");
    unsetenv("PARLEY_PG");
    unsetenv("PARLEY_INGRESS_SHARDS");
    unsetenv("PARLEY_CONFIG");
}

static int setup(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clear_env();
    if (cfgfile[0])
        unlink(cfgfile);
    cfgfile[0] = '\0';
    return 0;
}

static void write_file(const char *text)
{
    snprintf(cfgfile, sizeof cfgfile, "/tmp/parley-test-config-XXXXXX");
    int fd = mkstemp(cfgfile);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Runs pcfg_parse with argv (NULL-terminated list) and stderr captured into err. */
static int parse(tcfg *c, char *err, size_t errsize, ...)
{
    char *argv[16] = {"test"};
    int argc = 1;
    va_list ap;
    va_start(ap, errsize);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 15)
        argv[argc++] = a;
    va_end(ap);

    snprintf(errfile, sizeof errfile, "/tmp/parley-test-err-XXXXXX");
    int efd = mkstemp(errfile);
    assert_true(efd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(efd, 2);
    int rc = pcfg_parse("test", "A test service.", opts, NOPTS, c, argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(efd, 0, SEEK_SET);
    ssize_t n = read(efd, err, errsize - 1);
    err[n > 0 ? n : 0] = '\0';
    close(efd);
    unlink(errfile);
    return rc;
}

static void test_defaults(void **state)
{
    (void)state;
    tcfg c;
    char err[1024];
    assert_int_equal(parse(&c, err, sizeof err, NULL), 0);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_int_equal(c.verbose, 0);
    assert_null(c.pg);
    assert_int_equal(c.shards, 4);
    pcfg_free(opts, NOPTS, &c);
    assert_null(c.host);
}

static void test_precedence(void **state)
{
    (void)state;
    tcfg c;
    char err[1024];
    write_file("# comment\n\nlisten_host = file.host\nlisten-port = 1111\n"
               "ingress_shards = 8\npg = \"host=x port=5 \"\nverbose = yes\n");
    /* file over defaults */
    assert_int_equal(parse(&c, err, sizeof err, "--config", cfgfile, NULL), 0);
    assert_string_equal(c.host, "file.host");
    assert_int_equal(c.port, 1111);
    assert_int_equal(c.shards, 8);
    assert_int_equal(c.verbose, 1);
    assert_string_equal(c.pg, "host=x port=5 ");
    pcfg_free(opts, NOPTS, &c);

    /* env over file */
    setenv("PARLEY_LISTEN_PORT", "2222", 1);
    setenv("PARLEY_LISTEN_HOST", "env.host", 1);
    setenv("PARLEY_VERBOSE", "off", 1);
    assert_int_equal(parse(&c, err, sizeof err, "--config=" , NULL), 0); /* empty: no file */
    assert_int_equal(c.port, 2222);
    pcfg_free(opts, NOPTS, &c);
    assert_int_equal(parse(&c, err, sizeof err, "--config", cfgfile, NULL), 0);
    assert_string_equal(c.host, "env.host");
    assert_int_equal(c.port, 2222);
    assert_int_equal(c.shards, 8); /* from the file, no env for it */
    assert_int_equal(c.verbose, 0);
    pcfg_free(opts, NOPTS, &c);

    /* flags over env, both spellings, '-' and '_' alike */
    assert_int_equal(parse(&c, err, sizeof err, "--config", cfgfile, "--listen-port", "3333",
                           "--listen_host=flag.host", "--verbose", NULL),
                     0);
    assert_string_equal(c.host, "flag.host");
    assert_int_equal(c.port, 3333);
    assert_int_equal(c.verbose, 1);
    assert_int_equal(c.shards, 8);
    pcfg_free(opts, NOPTS, &c);

    /* PARLEY_CONFIG names the file when --config is absent; the last flag wins */
    setenv("PARLEY_CONFIG", cfgfile, 1);
    unsetenv("PARLEY_LISTEN_PORT");
    assert_int_equal(parse(&c, err, sizeof err, "--ingress-shards", "2", "--ingress-shards=3",
                           NULL),
                     0);
    assert_int_equal(c.port, 1111);
    assert_int_equal(c.shards, 3);
    pcfg_free(opts, NOPTS, &c);
}

static void test_bad_int(void **state)
{
    (void)state;
    tcfg c;
    char err[1024];
    const char *bad[] = {"12x", "", " 12", "0x10", "1e3", "abc", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--listen-port=%s", bad[i]);
        assert_int_equal(parse(&c, err, sizeof err, flag, NULL), -1);
        assert_non_null(strstr(err, "listen-port"));
        assert_null(c.host); /* nothing left allocated after an error */
    }
}

static void test_out_of_bounds(void **state)
{
    (void)state;
    tcfg c;
    char err[1024];
    assert_int_equal(parse(&c, err, sizeof err, "--listen-port", "0", NULL), -1);
    assert_non_null(strstr(err, "listen-port"));
    assert_non_null(strstr(err, "[1, 65535]"));
    assert_int_equal(parse(&c, err, sizeof err, "--listen-port", "65536", NULL), -1);
    assert_non_null(strstr(err, "[1, 65535]"));
    setenv("PARLEY_INGRESS_SHARDS", "65", 1);
    assert_int_equal(parse(&c, err, sizeof err, NULL), -1);
    assert_non_null(strstr(err, "PARLEY_INGRESS_SHARDS"));
    assert_non_null(strstr(err, "[1, 64]"));
    unsetenv("PARLEY_INGRESS_SHARDS");
    write_file("ingress_shards = -1\n");
    assert_int_equal(parse(&c, err, sizeof err, "--config", cfgfile, NULL), -1);
    assert_non_null(strstr(err, "ingress_shards"));
    assert_non_null(strstr(err, ":1:")); /* the line number */
    /* the edges are fine */
    assert_int_equal(parse(&c, err, sizeof err, "--listen-port", "65535", "--ingress-shards",
                           "1", NULL),
                     0);
    assert_int_equal(c.port, 65535);
    pcfg_free(opts, NOPTS, &c);
}

static void test_bool(void **state)
{
    (void)state;
    tcfg c;
    char err[1024];
    const char *yes[] = {"true", "1", "yes", "on", "TRUE", "On"};
    const char *no[] = {"false", "0", "no", "off", "False"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        assert_int_equal(parse(&c, err, sizeof err, "--verbose", yes[i], NULL), 0);
        assert_int_equal(c.verbose, 1);
        pcfg_free(opts, NOPTS, &c);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        setenv("PARLEY_VERBOSE", "1", 1);
        assert_int_equal(parse(&c, err, sizeof err, "--verbose", no[i], NULL), 0);
        assert_int_equal(c.verbose, 0);
        pcfg_free(opts, NOPTS, &c);
    }
    assert_int_equal(parse(&c, err, sizeof err, "--verbose=maybe", NULL), -1);
    assert_non_null(strstr(err, "verbose"));
}

static void test_unknown(void **state)
{
    (void)state;
    tcfg c;
    char err[1024];
    assert_int_equal(parse(&c, err, sizeof err, "--bogus", "1", NULL), -1);
    assert_non_null(strstr(err, "bogus"));
    assert_int_equal(parse(&c, err, sizeof err, "positional", NULL), -1);
    assert_int_equal(parse(&c, err, sizeof err, "--listen-port", NULL), -1); /* no value */
    write_file("listen_port = 1\nnot_a_key = 5\n");
    assert_int_equal(parse(&c, err, sizeof err, "--config", cfgfile, NULL), -1);
    assert_non_null(strstr(err, "not_a_key"));
    assert_non_null(strstr(err, ":2:"));
    unlink(cfgfile);
    write_file("just words\n");
    assert_int_equal(parse(&c, err, sizeof err, "--config", cfgfile, NULL), -1);
    assert_int_equal(parse(&c, err, sizeof err, "--config", "/nonexistent/parley.conf", NULL), -1);
    assert_non_null(strstr(err, "/nonexistent/parley.conf"));
}

static void test_help(void **state)
{
    (void)state;
    tcfg c;
    char err[1024];
    /* --help wins even over errors elsewhere on the line, and leaves nothing allocated */
    fflush(stdout);
    int saved = dup(1);
    char outfile[64];
    snprintf(outfile, sizeof outfile, "/tmp/parley-test-out-XXXXXX");
    int ofd = mkstemp(outfile);
    assert_true(ofd >= 0);
    dup2(ofd, 1);
    int rc = parse(&c, err, sizeof err, "--listen-port", "0", "--help", NULL);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    char out[4096];
    lseek(ofd, 0, SEEK_SET);
    ssize_t n = read(ofd, out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    close(ofd);
    unlink(outfile);
    assert_int_equal(rc, 1);
    assert_null(c.host);
    for (size_t i = 0; i < NOPTS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", opts[i].name);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_')
                *p = '-';
        assert_non_null(strstr(out, flag));
        assert_non_null(strstr(out, opts[i].help));
    }
    assert_non_null(strstr(out, "PARLEY_LISTEN_PORT"));
    assert_non_null(strstr(out, "[default: 8080]"));
    assert_non_null(strstr(out, "--config"));
    assert_non_null(strstr(out, "A test service."));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_int, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
