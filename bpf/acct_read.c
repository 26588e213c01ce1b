/*
 * acct_read.c: walk the accounting maps (see acct_read.h).
 */
#include "acct_read.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdlib.h>
#include <string.h>

int acct_map_check_layout(int stats_fd, uint32_t *max_entries)
{
	struct bpf_map_info info = { 0 };
	__u32 info_len = sizeof(info);

	if (bpf_obj_get_info_by_fd(stats_fd, &info, &info_len) != 0)
		return -errno;
	ENSURE(info.key_size == sizeof(struct acct_key), EPROTO);
	ENSURE(info.value_size == sizeof(struct acct_counters), EPROTO);
	*max_entries = info.max_entries;
	return 0;
}

int acct_read_totals(int totals_fd, struct acct_totals *sum)
{
	int ncpu = libbpf_num_possible_cpus();
	__u32 zero = 0;

	memset(sum, 0, sizeof(*sum));
	ENSURE(ncpu > 0, EINVAL);
	struct acct_totals *per_cpu = calloc((size_t)ncpu, sizeof(*per_cpu));
	ENSURE_PTR(per_cpu, ENOMEM);
	int rc = bpf_map_lookup_elem(totals_fd, &zero, per_cpu) == 0 ? 0 : -errno;
	for (int i = 0; rc == 0 && i < ncpu; i++) {
		sum->events += per_cpu[i].events;
		sum->new_keys += per_cpu[i].new_keys;
		sum->failures += per_cpu[i].failures;
	}
	free(per_cpu);
	return rc;
}

/* The walk never restarts: a key evicted under us ends its chain early at
 * worst (get_next_key from a missing key starts over at the first key, so
 * the count bound below is what guarantees termination). */
int acct_read_records(int stats_fd, int meta_fd, struct acct_record **recs, size_t *n)
{
	struct acct_key key, next, *prev = NULL;
	struct acct_record *v;
	size_t count = 0;

	*recs = NULL;
	*n = 0;
	v = calloc(ACCT_MAX_KEYS, sizeof(*v));
	ENSURE_PTR(v, ENOMEM);
	while (count < ACCT_MAX_KEYS && bpf_map_get_next_key(stats_fd, prev, &next) == 0) {
		struct acct_record *r = &v[count];
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(stats_fd, &key, &r->c) != 0)
			continue;
		r->key = key;
		r->has_meta = bpf_map_lookup_elem(meta_fd, &key, &r->meta) == 0;
		acct_record_sanitize(r);
		count++;
	}
	*recs = v;
	*n = count;
	return 0;
}
