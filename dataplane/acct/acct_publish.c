/*
 * acct_publish.c: the fallback's snapshot publisher (see acct_publish.h).
 */
#include "acct_publish.h"

#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct acct_publisher {
	struct acct_table *table;
	char path[600];
	char reason[160];
	struct acct_record *buf;   /* room for the whole table */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;       /* CLOCK_MONOTONIC: wall-clock jumps do not matter */
	bool stopping;
};

static int write_snapshot(struct acct_publisher *p)
{
	struct acct_snapshot_header h = { .layout_version = ACCT_LAYOUT_VERSION };

	memcpy(h.magic, ACCT_SNAPSHOT_MAGIC, sizeof(h.magic));
	h.record_size = sizeof(struct acct_record);
	h.pid = (__u32)getpid();
	h.capacity = acct_table_capacity(p->table);
	snprintf(h.reason, sizeof(h.reason), "%s", p->reason);
	size_t n = acct_table_snapshot(p->table, p->buf, acct_table_capacity(p->table), &h.totals);
	h.n_records = (__u32)n;
	h.written_boot_ns = acct_boot_now_ns();
	return acct_snapshot_write(p->path, &h, p->buf, n);
}

/* Waits one interval or until stopped; returns true when stopping. */
static bool wait_interval(struct acct_publisher *p)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ACCT_PUBLISH_INTERVAL_S;
	pthread_mutex_lock(&p->lock);
	while (!p->stopping && pthread_cond_timedwait(&p->wake, &p->lock, &until) == 0)
		;
	bool stop = p->stopping;
	pthread_mutex_unlock(&p->lock);
	return stop;
}

/* Reports a write error once per distinct errno, and the recovery. */
static void *publisher_main(void *arg)
{
	struct acct_publisher *p = arg;
	uint64_t written = UINT64_MAX;
	int last_err = 0;
	bool stop = false;

	while (!stop) {
		stop = wait_interval(p);
		uint64_t version = acct_table_version(p->table);
		if (version == written)
			continue;
		int rc = write_snapshot(p);
		if (rc < 0 && rc != last_err)
			log_warn("handshake accounting: writing %s failed: %s; mtlsctl stats will show "
				 "older numbers (check that the directory is writable)", p->path,
				 strerror(-rc));
		else if (rc == 0 && last_err != 0)
			log_info("handshake accounting: writing %s works again", p->path);
		last_err = rc;
		if (rc == 0)
			written = version;
	}
	return NULL;
}

static int mkdir_p(const char *dir)
{
	char path[600];

	snprintf(path, sizeof(path), "%s", dir);
	for (char *c = path + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return -errno;
		*c = '/';
	}
	/* The instance directory itself: the service's group may read it. */
	if (mkdir(path, 0750) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Continue from the last snapshot at path, if there is a readable one. */
static void restore(struct acct_table *t, const char *path)
{
	struct acct_snapshot_header h;
	struct acct_record *recs;
	size_t n;

	int rc = acct_snapshot_read(path, &h, &recs, &n);
	if (rc == -ENOENT)
		return;
	if (rc < 0) {
		log_warn("handshake accounting: ignoring %s (%s); counting from zero", path,
			 strerror(-rc));
		return;
	}
	acct_table_restore(t, recs, n, &h.totals);
	free(recs);
}

static void prepare(struct acct_table *t, const char *path)
{
	char dir[600];

	snprintf(dir, sizeof(dir), "%s", path);
	int rc = mkdir_p(dirname(dir));
	if (rc < 0)
		log_warn("handshake accounting: cannot create the directory of %s: %s; counting "
			 "goes on but mtlsctl stats cannot read it", path, strerror(-rc));
	else
		restore(t, path);
}

static int start_thread(struct acct_publisher *p)
{
	pthread_condattr_t attr;
	sigset_t all, old;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&p->lock, NULL);
	/* The publisher must never be the thread a process signal lands on:
	 * mtlsd reads its signals from a signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&p->thread, NULL, publisher_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&p->wake);
		pthread_mutex_destroy(&p->lock);
	}
	return -rc;
}

int acct_publisher_start(struct acct_table *t, const char *path, const char *reason,
			 struct acct_publisher **out)
{
	struct acct_publisher *p;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	ENSURE_PTR(p, ENOMEM);
	p->table = t;
	snprintf(p->path, sizeof(p->path), "%s", path);
	snprintf(p->reason, sizeof(p->reason), "%s", reason);
	p->buf = calloc(acct_table_capacity(t), sizeof(*p->buf));
	if (!p->buf) {
		free(p);
		return -ENOMEM;
	}
	prepare(t, path);
	int rc = start_thread(p);
	if (rc < 0) {
		free(p->buf);
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void acct_publisher_stop(struct acct_publisher *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p->buf);
	free(p);
}
