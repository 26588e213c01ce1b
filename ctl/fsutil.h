/*
 * fsutil.h: the file operations mtlsctl's state depends on.
 *
 * Everything the PKI writes (keys, certificates, the CA record, CRLs) goes
 * through fs_write_atomic: a temp file in the same directory, fsync, rename,
 * fsync of the directory. A crash leaves either the old or the new file,
 * never a mix. Functions return 0 or a negative errno and report nothing:
 * the caller knows which file it was writing and why.
 */
#ifndef MTLSCTL_FSUTIL_H
#define MTLSCTL_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "guard.h"

/*
 * Durability (the fsyncs) is on by default. tests/helpers/make_fixtures turns it off:
 * it rebuilds throw-away test files on every build, where hundreds of
 * fsyncs cost seconds and protect nothing. Atomicity (rename) stays.
 */
void fs_set_durable(bool on);

/* Replace path with exactly len bytes of data, created with mode. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode) MUST_CHECK;

/*
 * Read a whole file (at most max bytes) into a NUL-terminated buffer that
 * the caller frees (with OPENSSL_clear_free if it may hold secrets).
 * -EFBIG if larger than max.
 */
int fs_read_all(const char *path, size_t max, char **out, size_t *len) MUST_CHECK;

/* The same from an open descriptor (after checks on that very file). */
int fs_read_fd(int fd, size_t max, char **out, size_t *len) MUST_CHECK;

/* fsync a directory, making renames and creations in it durable. */
int fs_fsync_dir(const char *dir) MUST_CHECK;

/* mkdir -p with mode for the directories it creates. */
int fs_mkdir_p(const char *path, mode_t mode) MUST_CHECK;

/* Remove everything inside dir (not dir itself). Does not follow symlinks. */
int fs_empty_dir(const char *dir) MUST_CHECK;

bool fs_exists(const char *path);

/* True if dir has no entries (or cannot be read). */
bool fs_dir_is_empty(const char *dir);

/* snprintf into buf that fails with -ENAMETOOLONG instead of truncating. */
int fs_path(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4))) MUST_CHECK;

#endif
