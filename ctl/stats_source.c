/*
 * stats_source.c: read the accounting records from the pinned BPF maps or
 * from the fallback snapshot (see stats_source.h).
 */
#include "stats_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpf/acct_read.h"
#include "string_table.h"

static const char *const source_names[STATS_SRC_MAX] = {
	[STATS_SRC_AUTO] = "auto", [STATS_SRC_BPF] = "bpf", [STATS_SRC_FALLBACK] = "fallback",
};

DEFINE_STRING_TABLE(stats_source, enum stats_source_kind, source_names, "?")

int stats_source_parse(const char *s, enum stats_source_kind *out)
{
	int k = stats_source_from_name(s);

	ENSURE(k >= 0, EINVAL);
	*out = (enum stats_source_kind)k;
	return 0;
}

static int map_open(const char *dir, const char *name, int *fd, char *err, size_t errlen)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	*fd = bpf_obj_get(path);
	if (*fd >= 0)
		return 0;
	int rc = -errno;
	if (rc == -ENOENT)
		snprintf(err, errlen, "%s does not exist: mtlsd has not run with BPF accounting for "
			 "this instance (see its log), or bpffs was unmounted", path);
	else if (rc == -EPERM || rc == -EACCES)
		snprintf(err, errlen, "%s: %s: reading BPF maps needs root (or CAP_BPF)", path,
			 strerror(-rc));
	else
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
	return rc;
}

/* A map pinned by another mtlsd version would be misread: refuse it. */
static int check_layout(const char *dir, int stats_fd, uint64_t *capacity, char *err, size_t errlen)
{
	uint32_t max_entries = 0;
	int rc = acct_map_check_layout(stats_fd, &max_entries);

	if (rc == -EPROTO)
		snprintf(err, errlen, "%s/%s has another layout than this mtlsctl reads: use the "
			 "mtlsctl of the mtlsd that pinned it", dir, ACCT_MAP_STATS);
	else if (rc < 0)
		snprintf(err, errlen, "%s/%s: %s", dir, ACCT_MAP_STATS, strerror(-rc));
	*capacity = max_entries;
	return rc;
}

static int load_bpf(const char *instance, struct stats_view *v, char *err, size_t errlen)
{
	int stats_fd = -1, meta_fd = -1, totals_fd = -1, rc;

	v->kind = STATS_SRC_BPF;
	GUARD(acct_pin_dir(instance, v->where, sizeof(v->where)));
	GUARD_GOTO(map_open(v->where, ACCT_MAP_STATS, &stats_fd, err, errlen), rc, out);
	GUARD_GOTO(check_layout(v->where, stats_fd, &v->capacity, err, errlen), rc, out);
	GUARD_GOTO(map_open(v->where, ACCT_MAP_META, &meta_fd, err, errlen), rc, out);
	GUARD_GOTO(map_open(v->where, ACCT_MAP_TOTALS, &totals_fd, err, errlen), rc, out);
	rc = acct_read_totals(totals_fd, &v->totals);
	if (rc == 0)
		rc = acct_read_records(stats_fd, meta_fd, &v->recs, &v->n);
	if (rc < 0)
		snprintf(err, errlen, "reading the maps in %s: %s", v->where, strerror(-rc));
out:
	if (stats_fd >= 0)
		close(stats_fd);
	if (meta_fd >= 0)
		close(meta_fd);
	if (totals_fd >= 0)
		close(totals_fd);
	return rc;
}

static int snapshot_path(const char *instance, const char *runtime_root, char *buf, size_t len)
{
	char dir[512];

	GUARD(acct_runtime_dir(runtime_root, instance, dir, sizeof(dir)));
	int n = snprintf(buf, len, "%s/%s", dir, ACCT_SNAPSHOT_NAME);
	ENSURE(n > 0 && (size_t)n < len, ENAMETOOLONG);
	return 0;
}

static int load_fallback(struct stats_view *v, char *err, size_t errlen)
{
	struct acct_snapshot_header h;

	v->kind = STATS_SRC_FALLBACK;
	int rc = acct_snapshot_read(v->where, &h, &v->recs, &v->n);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s%s", v->where, strerror(-rc),
			 rc == -EPROTO ? " (written by another mtlsd version)" :
			 rc == -ENOENT ? " (mtlsd has not run with fallback accounting for this instance)" : "");
		return rc;
	}
	snprintf(v->reason, sizeof(v->reason), "%s", h.reason);
	v->writer_pid = (pid_t)h.pid;
	v->writer_alive = h.pid > 0 && (kill((pid_t)h.pid, 0) == 0 || errno == EPERM);
	v->written_boot_ns = h.written_boot_ns;
	v->capacity = h.capacity;
	v->totals = h.totals;
	return 0;
}

int stats_load(const char *instance, const char *runtime_root, enum stats_source_kind want,
	       struct stats_view *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!acct_instance_valid(instance)) {
		snprintf(err, errlen, "instance name '%s' is invalid: use 1 to %d of A-Z a-z 0-9 _ . -",
			 instance, ACCT_INSTANCE_MAX);
		return -EINVAL;
	}
	snprintf(out->instance, sizeof(out->instance), "%s", instance);
	int rc = snapshot_path(instance, runtime_root, out->where, sizeof(out->where));
	if (rc < 0) {
		snprintf(err, errlen, "runtime directory path too long");
		return rc;
	}
	/* mtlsd moves the snapshot aside when it starts with BPF, so a snapshot
	 * present means the last mtlsd of this instance counted in process. */
	if (want == STATS_SRC_AUTO)
		want = access(out->where, F_OK) == 0 ? STATS_SRC_FALLBACK : STATS_SRC_BPF;
	rc = want == STATS_SRC_FALLBACK ? load_fallback(out, err, errlen)
					: load_bpf(instance, out, err, errlen);
	out->n_present = out->n;
	return rc;
}

void stats_view_free(struct stats_view *v)
{
	free(v->recs);
	v->recs = NULL;
	v->n = 0;
}
