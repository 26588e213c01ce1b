/*
 * fsutil.c: atomic replacement of files and the few directory operations
 * the PKI commands need. See fsutil.h for the crash-safety contract.
 */
#include "fsutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_path(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	ENSURE(n >= 0 && (size_t)n < cap, ENAMETOOLONG);
	return 0;
}

bool fs_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

bool fs_dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool empty = true;
	if (!d)
		return true;
	while (empty && (e = readdir(d)) != NULL)
		empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
	closedir(d);
	return empty;
}

static int write_full(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		ENSURE(w > 0, w < 0 ? errno : EIO);
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static bool durable = true;

void fs_set_durable(bool on)
{
	durable = on;
}

int fs_fsync_dir(const char *dir)
{
	if (!durable)
		return 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ENSURE(dfd >= 0, errno);
	int rc = fsync(dfd) < 0 ? -errno : 0;
	close(dfd);
	return rc;
}

/* The rename is only durable once the directory entry itself is on disk. */
static int fsync_parent_dir(const char *path)
{
	char copy[4096];
	GUARD(fs_path(copy, sizeof(copy), "%s", path));
	return fs_fsync_dir(dirname(copy));
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[4096];
	GUARD(fs_path(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path));

	int fd = mkostemp(tmp, O_CLOEXEC);
	ENSURE(fd >= 0, errno);
	int rc = 0;
	/* mkostemp creates 0600; widen only after the file exists, never narrow
	 * later, so a key is never readable by others even for an instant. */
	if (fchmod(fd, mode) < 0) {
		rc = -errno;
		goto fail;
	}
	GUARD_GOTO(write_full(fd, data, len), rc, fail);
	if (durable && fsync(fd) < 0) {
		rc = -errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto fail;
	}
	return fsync_parent_dir(path);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int fs_read_fd(int fd, size_t max, char **out, size_t *len)
{
	struct stat st;
	ENSURE(fstat(fd, &st) == 0, errno);
	ENSURE(S_ISREG(st.st_mode), EINVAL);
	ENSURE((size_t)st.st_size <= max, EFBIG);
	char *buf = malloc((size_t)st.st_size + 1);
	ENSURE_PTR(buf, ENOMEM);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int rc = r < 0 ? -errno : -EIO;
			free(buf);
			return rc;
		}
		got += (size_t)r;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

int fs_read_all(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	ENSURE(fd >= 0, errno);
	int rc = fs_read_fd(fd, max, out, len);
	close(fd);
	return rc;
}

int fs_mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	GUARD(fs_path(buf, sizeof(buf), "%s", path));
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (ftw->level == 0)
		return 0; /* the directory itself stays */
	return remove(path) < 0 ? -errno : 0;
}

int fs_empty_dir(const char *dir)
{
	int rc = nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (rc == -1)
		return -errno;
	return rc;
}
