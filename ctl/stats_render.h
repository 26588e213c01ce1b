/*
 * stats_render.h: choosing, ordering and printing accounting records for
 * mtlsctl stats: a table for people, JSON for programs. Both say which
 * source the numbers come from.
 */
#ifndef MTLSCTL_STATS_RENDER_H
#define MTLSCTL_STATS_RENDER_H

#include <stdio.h>

#include "guard.h"
#include "stats_source.h"

enum stats_sort {
	STATS_SORT_FAILURES = 0,   /* most failures first (default) */
	STATS_SORT_TOTAL,          /* most handshakes first */
	STATS_SORT_LAST_SEEN,      /* most recent first */
	STATS_SORT_MAX
};

struct stats_filter {
	const char *partner;       /* partner name, or its index; NULL: all */
	const char *serial;        /* hex, colons and case ignored; NULL: all */
};

/* "failures", "total", "last-seen" (lib/string_table.h), and back (-ENOENT). */
const char *stats_sort_name(enum stats_sort s);
int stats_sort_from_name(const char *s);
/* --sort's value into *out; -EINVAL for another word. */
int stats_sort_parse(const char *s, enum stats_sort *out) MUST_CHECK;

/* Normalize a serial for comparison: hex digits only, upper case, leading
 * zero octets dropped ("00:4f:a2" -> "4FA2"). -EINVAL if not hex. */
int stats_serial_normalize(const char *in, char *out, size_t len) MUST_CHECK;

/* Keep the records that match f (in place) and sort them. */
void stats_select(struct stats_view *v, const struct stats_filter *f, enum stats_sort sort);

void stats_print_table(FILE *out, const struct stats_view *v);
void stats_print_json(FILE *out, const struct stats_view *v);

#endif
