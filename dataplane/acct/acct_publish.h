/*
 * acct_publish.h: how the in-process fallback's counters reach readers.
 *
 * mtlsctl cannot read mtlsd's memory, so a thread of its own writes the
 * fallback table (acct_fallback.h) to a snapshot file (bpf/acct_user.h)
 * when it changed, at most once per interval, and once more when stopped.
 * A restarted mtlsd seeds its table from the last snapshot, so fallback
 * counts persist across restarts like pinned maps do.
 */
#ifndef MTLSD_ACCT_PUBLISH_H
#define MTLSD_ACCT_PUBLISH_H

#include "acct_fallback.h"
#include "guard.h"

#define ACCT_PUBLISH_INTERVAL_S 1

struct acct_publisher;

/*
 * Create the snapshot's directory if needed (failure is logged, not fatal:
 * counting goes on), seed t from an existing snapshot at path, and start
 * the publisher thread (with every signal blocked). reason is what readers
 * show as "BPF unavailable: <reason>". t must outlive the publisher.
 */
int acct_publisher_start(struct acct_table *t, const char *path, const char *reason,
			 struct acct_publisher **out) MUST_CHECK;

/* Write one last snapshot, join the thread, free. NULL is fine. */
void acct_publisher_stop(struct acct_publisher *p);

#endif
