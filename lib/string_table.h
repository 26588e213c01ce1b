/*
 * string_table.h: one way to name the values of an enum.
 *
 * Every enum mtlsd prints (outcomes, close reasons, connection states,
 * io_uring ops...) has a table of names indexed by value and a lookup in
 * both directions. Writing them by hand five times gave five slightly
 * different fallbacks; this macro writes them once (the idea of systemd's
 * DEFINE_STRING_TABLE_LOOKUP in src/basic/string-table.h).
 *
 *   static const char *const close_names[CLOSE_REASON_MAX] = { [CLOSE_X] = "x", ... };
 *   DEFINE_STRING_TABLE(close_reason, enum close_reason, close_names, "unknown")
 *
 * defines
 *   const char *close_reason_name(enum close_reason v);     // fallback for a value
 *                                                            // outside the table or unnamed
 *   int close_reason_from_name(const char *s);              // the value, or -ENOENT
 *
 * DEFINE_STRING_TABLE_TO_STRING(fn, type, table, fallback) defines fn alone,
 * for a table of descriptions rather than names.
 *
 * A test proves every value has a name by walking 0..MAX: X_name(v) is not
 * the fallback and X_from_name(X_name(v)) == v (or, with the table in
 * reach, string_table_complete()).
 */
#ifndef MTLS_STRING_TABLE_H
#define MTLS_STRING_TABLE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define STRING_TABLE_SIZE(t) (sizeof(t) / sizeof((t)[0]))

/* The value -> string half alone, as function fn: for tables of
 * descriptions, where looking a value up by its text means nothing. */
#define DEFINE_STRING_TABLE_TO_STRING(fn, type, table, fallback)                         \
	const char *fn(type v)                                                            \
	{                                                                                 \
		if ((size_t)v >= STRING_TABLE_SIZE(table) || !(table)[(size_t)v])          \
			return (fallback);                                                \
		return (table)[(size_t)v];                                                \
	}

#define DEFINE_STRING_TABLE(prefix, type, table, fallback)                               \
	DEFINE_STRING_TABLE_TO_STRING(prefix##_name, type, table, fallback)               \
	int prefix##_from_name(const char *s)                                             \
	{                                                                                 \
		for (size_t i_ = 0; s && i_ < STRING_TABLE_SIZE(table); i_++)             \
			if ((table)[i_] && strcmp((table)[i_], s) == 0)                   \
				return (int)i_;                                           \
		return -ENOENT;                                                           \
	}

/* Every slot of names[0..n) is set: for the tests that prove an enum and
 * its table did not drift apart. */
static inline bool string_table_complete(const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!names[i] || !names[i][0])
			return false;
	return true;
}

#endif
