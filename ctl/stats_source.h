/*
 * stats_source.h: where mtlsctl stats gets its numbers.
 *
 * Two sources hold the same records (bpf/acct_user.h): the maps mtlsd's
 * BPF program pinned under /sys/fs/bpf/mtlsd/<instance>/, or the snapshot
 * file the in-process fallback publishes under <runtime dir>/<instance>/.
 * Both are read without mtlsd's help, so they work while it is down or hung.
 */
#ifndef MTLSCTL_STATS_SOURCE_H
#define MTLSCTL_STATS_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "guard.h"
#include "bpf/acct_user.h"

enum stats_source_kind {
	STATS_SRC_AUTO = 0,  /* the fallback snapshot if there is one, else BPF */
	STATS_SRC_BPF,
	STATS_SRC_FALLBACK,
	STATS_SRC_MAX
};

struct stats_view {
	enum stats_source_kind kind;   /* the source actually read */
	char instance[ACCT_INSTANCE_MAX + 1];
	char where[600];               /* pin directory or snapshot path */
	char reason[160];              /* fallback: why mtlsd did not use BPF */
	pid_t writer_pid;              /* fallback: the mtlsd that wrote it */
	bool writer_alive;
	uint64_t written_boot_ns;      /* fallback: when it was written */
	uint64_t capacity;
	struct acct_totals totals;
	struct acct_record *recs;
	size_t n;                      /* records in recs (after any filter) */
	size_t n_present;              /* records the source held */
};

/* "bpf", "fallback" (the words --source takes and JSON prints). */
/* "auto", "bpf", "fallback" (lib/string_table.h), and back (-ENOENT). */
const char *stats_source_name(enum stats_source_kind k);
int stats_source_from_name(const char *s);
/* --source's value into *out; -EINVAL for another word. */
int stats_source_parse(const char *s, enum stats_source_kind *out) MUST_CHECK;

/*
 * Read every record of instance from the wanted source. runtime_root
 * overrides $RUNTIME_DIRECTORY and /run/mtlsd (NULL: default). On failure
 * returns -errno and err says which path failed and what to do.
 */
int stats_load(const char *instance, const char *runtime_root, enum stats_source_kind want,
	       struct stats_view *out, char *err, size_t errlen) MUST_CHECK;

void stats_view_free(struct stats_view *v);

#endif
