/*
 * config_internal.h: what lib/config.c, config_values.c and config_flags.c
 * share, and nothing else includes.
 *
 * A key is described once, in a table (config.c): its name, the kind of
 * value, where in its section's struct the value goes, a range. The file
 * reader (config.c) and the flag parser (config_flags.c) both hand a key and
 * its text to config_apply_value() (config_values.c), so a key behaves the
 * same whichever way it comes in.
 */
#ifndef MTLS_CONFIG_INTERNAL_H
#define MTLS_CONFIG_INTERNAL_H

#include <limits.h>
#include <stdio.h>

#include "config.h"

#define NO_LINE_FIELD ((size_t)-1)
#define NAME_MAX_LEN 63

enum value_kind {
	V_BOOL, V_UINT, V_DURATION, V_PATH, V_PATH_LIST, V_STR_LIST, V_LISTEN,
	V_ADDR, V_CRL_POLICY, V_KTLS, V_LOG_LEVEL, V_PROXY, V_TLV_TYPE, V_AUDIT,
	V_NAME, V_CAPS, V_SESSION_CACHE, V_KEY, V_ACCOUNTING, V_SECONDS, V_MULTI_IDENTITY,
};

struct key_desc {
	const char *name;
	enum value_kind kind;
	size_t offset;      /* of the value in its section's struct */
	size_t line_offset; /* of an int receiving the line, or NO_LINE_FIELD */
	unsigned min, max;  /* V_UINT, V_DURATION (ms), V_SECONDS (s) */
	bool repeatable;
	/* Shapes sockets or threads: a reload that changes it is refused
	 * (config_fixed_key_changed). [mtlsd] keys only. */
	bool fixed;
};

/* What the value of a key owns, by its kind: config_free and a flag that
 * replaces a value release it (config_clear_field). */
enum key_owns {
	KEY_OWNS_NOTHING, /* stored in place (numbers, keywords, addresses, listen) */
	KEY_OWNS_STRING,  /* a char * from strdup */
	KEY_OWNS_LIST,    /* a struct cfg_strlist */
};
enum key_owns config_key_owns(const struct key_desc *k);

/* A key's table entry; a trailing FIXED_AT_START marks it fixed. */
#define FIXED_AT_START .fixed = true
#define KEY(n, k, s, f, ...) \
	{ .name = n, .kind = k, .offset = offsetof(s, f), .line_offset = NO_LINE_FIELD, __VA_ARGS__ }
#define KEY_RANGE(n, k, s, f, lo, hi, ...) \
	{ .name = n, .kind = k, .offset = offsetof(s, f), .line_offset = NO_LINE_FIELD, \
	  .min = lo, .max = hi, __VA_ARGS__ }
#define KEY_LINE(n, k, s, f, l) \
	{ .name = n, .kind = k, .offset = offsetof(s, f), .line_offset = offsetof(s, l) }
#define KEY_LIST(n, k, s, f, ...) \
	{ .name = n, .kind = k, .offset = offsetof(s, f), .line_offset = NO_LINE_FIELD, \
	  .repeatable = true, __VA_ARGS__ }

enum section_kind { SEC_NONE = 0, SEC_MTLSD, SEC_SERVER_CERT, SEC_PARTNER, SEC_MAX };

/* How a section kind is written: "[mtlsd]", "[partner.NAME]" (none for
 * SEC_NONE), and back. */
const char *config_section_form_name(enum section_kind kind);
int config_section_form_from_name(const char *s);

/*
 * The most keys one section may have. flag_resets packs one bit per key of
 * [mtlsd] (bits 0..39) and of [partner] (bits 40..62; 63 is the certs'),
 * so [partner] may have at most MAX_PARTNER_KEYS.
 */
#define MAX_SECTION_KEYS 40
#define MAX_PARTNER_KEYS (63 - MAX_SECTION_KEYS)

/* One parse: the file being read (path == NULL for flags) and where we are. */
struct parse_state {
	struct mtlsd_config *cfg;
	const char *path;
	char dir[PATH_MAX];   /* base of relative paths; "" = the working directory */
	FILE *f;
	int line;
	enum section_kind kind;
	char section[NAME_MAX_LEN + 32];
	void *obj;            /* struct the current section's keys write to */
	int seen[MAX_SECTION_KEYS]; /* line each key was set on in this section */
	int mtlsd_line;
	char cert_names[CFG_MAX_SERVER_CERTS][NAME_MAX_LEN + 1];
	int cert_lines[CFG_MAX_SERVER_CERTS];
	int rc, err_line;
	char *err;
	size_t errlen;
};

/*
 * The key table of a section kind and its length; NULL (and *n = 0) for
 * SEC_NONE.
 */
const struct key_desc *config_section_keys(enum section_kind kind, size_t *n);

/* Find a partner by name, or NULL. */
struct cfg_partner *config_partner_find(struct mtlsd_config *cfg, const char *name);

/*
 * Append a partner with its defaults, named name, header on line (0 for
 * flags). NULL when out of memory or when CFG_MAX_PARTNERS exist already.
 */
struct cfg_partner *config_partner_add(struct mtlsd_config *cfg, const char *name, int line);

/* Release a string list's entries and reset it to empty. */
void config_strlist_free(struct cfg_strlist *l);

/* Append a copy of s, given on config line `line` (0 for flags). */
int config_strlist_push(struct cfg_strlist *l, const char *s, int line) MUST_CHECK;

/*
 * Apply the text value to key k of the struct at obj (the config, a server
 * certificate or a partner), recording ps->line where the key keeps one.
 * Paths are made absolute against ps->dir. On failure returns -EINVAL,
 * -E2BIG or -ENOMEM and why gets the reason, without file or line (the
 * caller knows them).
 */
int config_apply_value(struct parse_state *ps, const struct key_desc *k, void *obj,
		       const char *value, char *why, size_t wl) MUST_CHECK;

/* Free a single-valued string or empty a list (config_key_owns), before a
 * flag replaces it and in config_free. */
void config_clear_field(const struct key_desc *k, void *field);

/* Whether key k holds the same value in the structs at a and b. */
bool config_field_equal(const struct key_desc *k, const void *a, const void *b);

#endif
