/*
 * test_pki_fsutil.c: the atomic replace every mtlsctl state file goes
 * through (ctl/fsutil.c). A write that fails half way (provoked with
 * RLIMIT_FSIZE, which makes write(2) fail with EFBIG past a size) must leave
 * the old file exactly as it was and no temporary file behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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

#include "fsutil.h"

struct scratch {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/test_pki_fsutil.XXXXXX");
	if (!mkdtemp(s->dir))
		return -1;
	snprintf(s->path, sizeof(s->path), "%s/index.txt", s->dir);
	/* Past RLIMIT_FSIZE the kernel sends SIGXFSZ; we want the EFBIG. */
	signal(SIGXFSZ, SIG_IGN);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct scratch *s = *state;
	int rc = fs_empty_dir(s->dir);
	rmdir(s->dir);
	free(s);
	return rc;
}

static size_t entries(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void assert_file(const char *path, const char *want, mode_t mode)
{
	char *got = NULL;
	size_t len = 0;
	struct stat st;
	assert_int_equal(fs_read_all(path, 1 << 20, &got, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, mode);
	free(got);
}

static void test_pki_fsutil_write_atomic_replaces(void **state)
{
	struct scratch *s = *state;
	assert_int_equal(fs_write_atomic(s->path, "old\n", 4, 0600), 0);
	assert_int_equal(fs_write_atomic(s->path, "new contents\n", 13, 0644), 0);
	assert_file(s->path, "new contents\n", 0644);
	assert_int_equal(entries(s->dir), 1);
}

static void test_pki_fsutil_failed_write_keeps_old_file(void **state)
{
	struct scratch *s = *state;
	char big[4096];
	struct rlimit old, tiny = { 64, 64 };
	memset(big, 'x', sizeof(big));
	assert_int_equal(fs_write_atomic(s->path, "old\n", 4, 0600), 0);

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	tiny.rlim_max = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &tiny), 0);
	int rc = fs_write_atomic(s->path, big, sizeof(big), 0600);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);

	assert_int_equal(rc, -EFBIG);
	assert_file(s->path, "old\n", 0600);
	assert_int_equal(entries(s->dir), 1); /* the temp file is gone */
}

static void test_pki_fsutil_write_into_missing_dir_fails(void **state)
{
	struct scratch *s = *state;
	char path[160];
	snprintf(path, sizeof(path), "%s/missing/file", s->dir);
	assert_int_equal(fs_write_atomic(path, "x", 1, 0600), -ENOENT);
	assert_int_equal(entries(s->dir), 0);
}

static void test_pki_fsutil_read_all_limits(void **state)
{
	struct scratch *s = *state;
	char *got = NULL;
	size_t len = 0;
	assert_int_equal(fs_write_atomic(s->path, "0123456789", 10, 0600), 0);
	assert_int_equal(fs_read_all(s->path, 9, &got, &len), -EFBIG);
	assert_int_equal(fs_read_all(s->path, 10, &got, &len), 0);
	assert_int_equal(len, 10);
	free(got);
	assert_int_equal(fs_read_all(s->dir, 10, &got, &len), -EINVAL); /* not a file */
}

static void test_pki_fsutil_empty_dir_keeps_dir(void **state)
{
	struct scratch *s = *state;
	char sub[160], deep[200];
	snprintf(sub, sizeof(sub), "%s/a/b", s->dir);
	assert_int_equal(fs_mkdir_p(sub, 0755), 0);
	snprintf(deep, sizeof(deep), "%s/f", sub);
	assert_int_equal(fs_write_atomic(deep, "x", 1, 0600), 0);
	assert_false(fs_dir_is_empty(s->dir));
	assert_int_equal(fs_empty_dir(s->dir), 0);
	assert_true(fs_dir_is_empty(s->dir));
	assert_true(fs_exists(s->dir));
}

static void test_pki_fsutil_path_refuses_truncation(void **state)
{
	char small[8];
	assert_int_equal(fs_path(small, sizeof(small), "%s", "1234567"), 0);
	assert_int_equal(fs_path(small, sizeof(small), "%s", "12345678"), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pki_fsutil_write_atomic_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pki_fsutil_failed_write_keeps_old_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pki_fsutil_write_into_missing_dir_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pki_fsutil_read_all_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pki_fsutil_empty_dir_keeps_dir, setup, teardown),
		cmocka_unit_test(test_pki_fsutil_path_refuses_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
