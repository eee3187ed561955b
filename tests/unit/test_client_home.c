/* Home folder files: an atomic replace that fails (file size limit hit mid-write) leaves the
 * old file intact and no temporary file behind; a successful one replaces the content and sets
 * mode 0600; the seen-id file round-trips in order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parley_client.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/parley-test-home.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_replace(void **state)
{
    char path[128], *text;
    pc_status st;
    struct stat sb;
    FILE *f;

    (void)state;
    snprintf(path, sizeof path, "%s/file", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("old content\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0644), 0);

    assert_int_equal(pc_home_write_atomic(path, "new\n", 4, &st), 0);
    assert_int_equal(pc_home_read_file(path, 1 << 20, &text, NULL), 0);
    assert_string_equal(text, "new\n");
    free(text);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(count_entries(tmpdir), 1);
    unlink(path);
}

static void test_failed_write_keeps_old(void **state)
{
    char path[128], *text, big[8192];
    struct rlimit old, small;
    pc_status st;
    FILE *f;

    (void)state;
    snprintf(path, sizeof path, "%s/file", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("old content\n", f);
    fclose(f);

    /* the kernel refuses writes past 100 bytes (EFBIG), as a full disk would */
    memset(big, 'x', sizeof big);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = pc_home_write_atomic(path, big, sizeof big, &st);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);

    assert_int_equal(rc, -1);
    assert_int_equal(st.kind, PC_ERR_LOCAL);
    assert_non_null(strstr(st.msg, "file"));
    assert_int_equal(pc_home_read_file(path, 1 << 20, &text, NULL), 0);
    assert_string_equal(text, "old content\n");
    free(text);
    assert_int_equal(count_entries(tmpdir), 1); /* no temporary file left */
    unlink(path);
}

static void test_missing_folder_fails(void **state)
{
    char path[160];
    pc_status st;

    (void)state;
    snprintf(path, sizeof path, "%s/no/such/dir/file", tmpdir);
    assert_int_equal(pc_home_write_atomic(path, "x", 1, &st), -1);
    assert_int_equal(st.kind, PC_ERR_LOCAL);
}

static void test_seen_file_round_trip(void **state)
{
    pc_home h;
    pc_seen a, b;
    pc_status st;

    (void)state;
    assert_int_equal(pc_home_open(&h, tmpdir, 0, &st), 0);
    assert_int_equal(pc_seen_init(&a, 4), 0);
    assert_int_equal(pc_seen_init(&b, 4), 0);
    /* no file yet: empty set */
    assert_int_equal(pc_home_load_seen(&h, &b, &st), 0);
    assert_int_equal(pc_seen_count(&b), 0);
    for (uint64_t id = 10; id <= 15; id++)
        pc_seen_add(&a, id);
    assert_int_equal(pc_home_save_seen(&h, &a, &st), 0);
    assert_int_equal(pc_home_load_seen(&h, &b, &st), 0);
    assert_int_equal(pc_seen_count(&b), 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pc_seen_at(&b, i), 12 + i);
    pc_seen_free(&a);
    pc_seen_free(&b);
    pc_home_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_folder_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seen_file_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
