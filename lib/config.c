/*
 * config.c: mtlsd's configuration from an INI file and command-line flags.
 *
 * Three section kinds exist: [mtlsd], [server_cert.NAME] and [partner.NAME].
 * Each has a table of keys (name, value kind, where the value goes, range,
 * repeatable or not); one function applies a value to its destination, so a
 * key behaves the same whether it comes from the file or from a flag, and
 * the table is the single list of what exists (the "did you mean" hints and
 * the valid-key lists in errors are read from it).
 *
 * libinih does the tokenizing. Debian's build does not hand line numbers to
 * the handler, so the file is fed through our own reader, which counts lines
 * and also sees every section header (inih calls no handler for a header,
 * and an empty unknown section must still be an error). The reader strips
 * leading blanks: inih's multi-line continuation would otherwise silently
 * glue an indented line onto the previous key.
 *
 * Nothing here opens certificate or key files: the generation build does,
 * and names the config line it got from here.
 */
#include "config_internal.h"
#include "keyref.h"
#include "string_table.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unistd.h>

/*
 * Each section's keys. What a key's value owns follows from its kind
 * (config_key_owns), so config_free walks these tables; a key marked
 * FIXED_AT_START shapes sockets or threads, and a reload that changes it
 * is refused (config_fixed_key_changed).
 */
static const struct key_desc mtlsd_keys[] = {
	KEY_LIST("listen", V_LISTEN, struct mtlsd_config, listen, FIXED_AT_START),
	KEY_RANGE("workers", V_UINT, struct mtlsd_config, workers, 0, 1024, FIXED_AT_START),
	KEY("cpu_pin", V_BOOL, struct mtlsd_config, cpu_pin),
	KEY_RANGE("handshake_timeout", V_DURATION, struct mtlsd_config, handshake_timeout_ms, 100, 600000),
	KEY_RANGE("idle_timeout", V_DURATION, struct mtlsd_config, idle_timeout_ms, 1000, 604800000),
	KEY_RANGE("connect_timeout", V_DURATION, struct mtlsd_config, connect_timeout_ms, 100, 600000),
	KEY_RANGE("drain_timeout", V_DURATION, struct mtlsd_config, drain_timeout_ms, 0, 3600000),
	KEY_RANGE("max_connections", V_UINT, struct mtlsd_config, max_connections, 1, 10000000,
		  FIXED_AT_START),
	KEY_RANGE("max_handshakes", V_UINT, struct mtlsd_config, max_handshakes, 1, 1000000),
	KEY_RANGE("max_handshakes_per_source", V_UINT, struct mtlsd_config, max_handshakes_per_source, 0, 1000000),
	KEY("audit_log", V_AUDIT, struct mtlsd_config, audit_path, FIXED_AT_START),
	KEY("ktls", V_KTLS, struct mtlsd_config, ktls),
	KEY("log_level", V_LOG_LEVEL, struct mtlsd_config, log_level),
	KEY("allow_insecure_key_permissions", V_BOOL, struct mtlsd_config, allow_insecure_key_perms),
	KEY("user", V_NAME, struct mtlsd_config, user, FIXED_AT_START),
	KEY("group", V_NAME, struct mtlsd_config, group, FIXED_AT_START),
	KEY("keep_capabilities", V_CAPS, struct mtlsd_config, keep_caps),
	KEY("control_socket", V_PATH, struct mtlsd_config, control_socket, FIXED_AT_START),
	KEY("control_group", V_NAME, struct mtlsd_config, control_group, FIXED_AT_START),
	KEY("ticket_key_file", V_PATH, struct mtlsd_config, ticket_key_file),
	KEY("session_cache", V_SESSION_CACHE, struct mtlsd_config, session_cache),
	KEY_RANGE("session_cache_size", V_UINT, struct mtlsd_config, session_cache_size, 0, 16777216),
	KEY_RANGE("session_tickets", V_UINT, struct mtlsd_config, session_tickets, 0, 8),
	/* 1 s..7 days: a TLS 1.3 ticket may not live longer (RFC 8446 4.6.1). */
	KEY_RANGE("session_lifetime", V_SECONDS, struct mtlsd_config, session_lifetime_s, 1, 604800),
	KEY("instance", V_NAME, struct mtlsd_config, instance),
	KEY("accounting", V_ACCOUNTING, struct mtlsd_config, bpf_accounting),
	KEY("admin_listen", V_ADDR, struct mtlsd_config, admin_listen),
	KEY("openssl_conf", V_PATH, struct mtlsd_config, openssl_conf),
	KEY("provider_path", V_PATH, struct mtlsd_config, provider_path),
	KEY_LIST("provider", V_STR_LIST, struct mtlsd_config, providers),
	KEY("engine", V_NAME, struct mtlsd_config, engine),
	KEY_LIST("engine_ctrl", V_STR_LIST, struct mtlsd_config, engine_ctrls),
	KEY_LIST("engine_default", V_STR_LIST, struct mtlsd_config, engine_default),
	KEY("key_pin_file", V_PATH, struct mtlsd_config, key_pin_file),
	KEY("key_pin_env", V_NAME, struct mtlsd_config, key_pin_env),
	KEY("ssl_async", V_BOOL, struct mtlsd_config, ssl_async),
	KEY("certificate_compression", V_BOOL, struct mtlsd_config, cert_compression),
};

static const struct key_desc server_cert_keys[] = {
	KEY_LINE("cert", V_PATH, struct cfg_server_cert, cert_path, line),
	KEY_LINE("key", V_KEY, struct cfg_server_cert, key_path, key_line),
};

static const struct key_desc partner_keys[] = {
	KEY_LINE("ca", V_PATH, struct cfg_partner, ca_path, ca_line),
	KEY_LIST("crl", V_PATH_LIST, struct cfg_partner, crl_paths),
	KEY("crl_missing", V_CRL_POLICY, struct cfg_partner, crl_missing),
	KEY("crl_expired", V_CRL_POLICY, struct cfg_partner, crl_expired),
	KEY_RANGE("verify_depth", V_UINT, struct cfg_partner, verify_depth, 1, 8),
	KEY_LINE("backend", V_ADDR, struct cfg_partner, backend, backend_line),
	KEY("proxy_protocol", V_PROXY, struct cfg_partner, proxy_v2),
	KEY("proxy_tlv_type", V_TLV_TYPE, struct cfg_partner, proxy_tlv_type),
	KEY("proxy_send_cert", V_BOOL, struct cfg_partner, proxy_send_cert),
	KEY_LIST("allow_dns", V_STR_LIST, struct cfg_partner, allow_dns),
	KEY_LIST("allow_uri", V_STR_LIST, struct cfg_partner, allow_uri),
	KEY_LIST("allow_cn", V_STR_LIST, struct cfg_partner, allow_cn),
	KEY_LIST("allow_ou", V_STR_LIST, struct cfg_partner, allow_ou),
	KEY("multiple_identities", V_MULTI_IDENTITY, struct cfg_partner, multiple_identities),
};

/* config_flags.c packs one bit per key of [mtlsd] and of [partner] into
 * flag_resets, and keeps the top bit for the server certificates. */
_Static_assert(ARRAY_SIZE(mtlsd_keys) <= MAX_SECTION_KEYS &&
	       ARRAY_SIZE(server_cert_keys) <= MAX_SECTION_KEYS &&
	       ARRAY_SIZE(partner_keys) <= MAX_PARTNER_KEYS,
	       "flag_resets has one bit per key of [mtlsd] and of [partner], and one for the certs");

void config_init(struct mtlsd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->handshake_timeout_ms = 10000;
	cfg->idle_timeout_ms = 300000;
	cfg->connect_timeout_ms = 5000;
	cfg->drain_timeout_ms = 30000;
	cfg->max_connections = 10000;
	cfg->max_handshakes = 1000;
	cfg->max_handshakes_per_source = 250;
	cfg->ktls = KTLS_MODE_AUTO;
	cfg->session_cache = SESSION_CACHE_AUTO;
	cfg->session_tickets = 1;
	cfg->session_lifetime_s = 3600;
	cfg->cert_compression = true;
	cfg->log_level = LOG_LVL_INFO;
	cfg->bpf_accounting = true;
}

static void partner_init(struct cfg_partner *p)
{
	memset(p, 0, sizeof(*p));
	p->crl_missing = CRL_POLICY_FAIL;
	p->crl_expired = CRL_POLICY_FAIL;
	p->verify_depth = 3;
	p->proxy_tlv_type = 0xE0;
}

void config_strlist_free(struct cfg_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->lines);
	memset(l, 0, sizeof(*l));
}

int config_strlist_push(struct cfg_strlist *l, const char *s, int line)
{
	char *copy = strdup(s);
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (v)
		l->v = v;
	int *lines = realloc(l->lines, (l->n + 1) * sizeof(*lines));
	if (lines)
		l->lines = lines;
	if (!copy || !v || !lines) {
		free(copy);
		return -ENOMEM;
	}
	l->v[l->n] = copy;
	l->lines[l->n++] = line;
	return 0;
}

/* Release what the keys of one section's struct own. */
static void free_section(enum section_kind kind, void *obj)
{
	size_t n;
	const struct key_desc *keys = config_section_keys(kind, &n);

	for (size_t i = 0; i < n; i++)
		config_clear_field(&keys[i], (char *)obj + keys[i].offset);
}

void config_free(struct mtlsd_config *cfg)
{
	for (size_t i = 0; i < cfg->n_certs; i++)
		free_section(SEC_SERVER_CERT, &cfg->certs[i]);
	for (size_t i = 0; i < cfg->n_partners; i++) {
		free_section(SEC_PARTNER, &cfg->partners[i]);
		free(cfg->partners[i].name); /* the section's name, not a key */
	}
	free(cfg->partners);
	free_section(SEC_MTLSD, cfg);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

const char *config_fixed_key_changed(const struct mtlsd_config *old, const struct mtlsd_config *new)
{
	for (size_t i = 0; i < ARRAY_SIZE(mtlsd_keys); i++)
		if (mtlsd_keys[i].fixed && !config_field_equal(&mtlsd_keys[i], old, new))
			return mtlsd_keys[i].name;
	return NULL;
}

/* ---- sections and keys from the file ----------------------------------- */

static const char *const section_forms[SEC_MAX] = {
	[SEC_MTLSD] = "[mtlsd]", [SEC_SERVER_CERT] = "[server_cert.NAME]", [SEC_PARTNER] = "[partner.NAME]",
};

DEFINE_STRING_TABLE(config_section_form, enum section_kind, section_forms, "[?]")

const struct key_desc *config_section_keys(enum section_kind kind, size_t *n)
{
	switch (kind) {
	case SEC_MTLSD:
		*n = ARRAY_SIZE(mtlsd_keys);
		return mtlsd_keys;
	case SEC_SERVER_CERT:
		*n = ARRAY_SIZE(server_cert_keys);
		return server_cert_keys;
	case SEC_PARTNER:
		*n = ARRAY_SIZE(partner_keys);
		return partner_keys;
	default:
		*n = 0;
		return NULL;
	}
}

/* Edit distance, for "did you mean". Names are short (< 40). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[41], cur[41];
	if (la > 40 || lb > 40)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, sizeof(cur));
	}
	return prev[lb];
}

/* Record the first error only: later ones are usually its consequences. */
__attribute__((format(printf, 3, 4)))
static int parse_fail(struct parse_state *ps, int rc, const char *fmt, ...)
{
	if (ps->rc < 0)
		return ps->rc;
	int off = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->path, ps->line);
	if (off < 0 || (size_t)off >= ps->errlen)
		off = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->err + off, ps->errlen - (size_t)off, fmt, ap);
	va_end(ap);
	ps->rc = rc;
	ps->err_line = ps->line;
	return rc;
}

static int unknown_key(struct parse_state *ps, const char *name)
{
	size_t n, best_d = SIZE_MAX;
	const struct key_desc *keys = config_section_keys(ps->kind, &n), *best = NULL;
	char list[512] = "";
	size_t off = 0;

	for (enum section_kind k = SEC_MTLSD; k <= SEC_PARTNER; k++) {
		size_t other_n;
		const struct key_desc *other = config_section_keys(k, &other_n);
		for (size_t i = 0; k != ps->kind && i < other_n; i++)
			if (strcmp(other[i].name, name) == 0)
				return parse_fail(ps, -EINVAL, "key '%s' belongs in %s, not in [%s]; move it",
						  name, config_section_form_name(k), ps->section);
	}
	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(name, keys[i].name);
		if (d < best_d) {
			best_d = d;
			best = &keys[i];
		}
		int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", keys[i].name);
		if (w > 0 && (size_t)w < sizeof(list) - off)
			off += (size_t)w;
	}
	if (best && best_d <= 2)
		return parse_fail(ps, -EINVAL, "unknown key '%s' in [%s]; did you mean '%s'?",
				  name, ps->section, best->name);
	return parse_fail(ps, -EINVAL, "unknown key '%s' in [%s]; valid keys: %s", name, ps->section, list);
}

static int ini_handler_cb(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *ps = user;
	char why[512];
	size_t n;

	(void)section; /* the reader tracked it, with its line */
	if (ps->rc < 0)
		return 0;
	if (ps->kind == SEC_NONE) {
		parse_fail(ps, -EINVAL, "key '%s' is outside any section; put it under [mtlsd], "
			   "[server_cert.NAME] or [partner.NAME]", name);
		return 0;
	}
	const struct key_desc *keys = config_section_keys(ps->kind, &n);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].name, name) != 0)
			continue;
		if (ps->seen[i] && !keys[i].repeatable) {
			parse_fail(ps, -EINVAL, "key '%s': already set on line %d; give it once",
				   name, ps->seen[i]);
			return 0;
		}
		ps->seen[i] = ps->line;
		why[0] = '\0';
		int rc = config_apply_value(ps, &keys[i], ps->obj, value, why, sizeof(why));
		if (rc < 0)
			parse_fail(ps, rc, "key '%s': %s", name, why[0] ? why : strerror(-rc));
		return rc < 0 ? 0 : 1;
	}
	unknown_key(ps, name);
	return 0;
}

static bool valid_section_name(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return false;
	return true;
}

struct cfg_partner *config_partner_add(struct mtlsd_config *cfg, const char *name, int line)
{
	if (cfg->n_partners == CFG_MAX_PARTNERS)
		return NULL;
	struct cfg_partner *v = realloc(cfg->partners, (cfg->n_partners + 1) * sizeof(*v));
	if (!v)
		return NULL;
	cfg->partners = v;
	struct cfg_partner *p = &v[cfg->n_partners];
	partner_init(p);
	p->name = strdup(name);
	if (!p->name)
		return NULL;
	p->line = line;
	cfg->n_partners++;
	return p;
}

struct cfg_partner *config_partner_find(struct mtlsd_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_partners; i++)
		if (strcmp(cfg->partners[i].name, name) == 0)
			return &cfg->partners[i];
	return NULL;
}

static int enter_server_cert(struct parse_state *ps, const char *name)
{
	struct mtlsd_config *cfg = ps->cfg;
	for (size_t i = 0; i < cfg->n_certs; i++)
		if (strcmp(ps->cert_names[i], name) == 0)
			return parse_fail(ps, -EINVAL, "section [server_cert.%s] already defined on line %d; "
					  "give each section once", name, ps->cert_lines[i]);
	if (cfg->n_certs == CFG_MAX_SERVER_CERTS)
		return parse_fail(ps, -E2BIG, "more than %d [server_cert] sections; "
				  "one per key type (ECDSA, RSA) is enough", CFG_MAX_SERVER_CERTS);
	strcpy(ps->cert_names[cfg->n_certs], name);
	ps->cert_lines[cfg->n_certs] = ps->line;
	ps->kind = SEC_SERVER_CERT;
	ps->obj = &cfg->certs[cfg->n_certs++];
	return 0;
}

static int enter_partner(struct parse_state *ps, const char *name)
{
	struct cfg_partner *p = config_partner_find(ps->cfg, name);
	if (p && p->line)
		return parse_fail(ps, -EINVAL, "section [partner.%s] already defined on line %d; "
				  "give each section once", name, p->line);
	if (!p)
		p = config_partner_add(ps->cfg, name, ps->line);
	if (!p)
		return parse_fail(ps, -ENOMEM, "cannot add [partner.%s]: at most %d partners",
				  name, CFG_MAX_PARTNERS);
	p->line = ps->line;
	ps->kind = SEC_PARTNER;
	ps->obj = p;
	return 0;
}

/* A "[...]" line: validate it and make it the current section. */
static int enter_section(struct parse_state *ps, const char *line)
{
	const char *close = strchr(line, ']');
	if (!close)
		return 0; /* inih reports the syntax error with its line */
	size_t len = (size_t)(close - line - 1);
	if (len >= sizeof(ps->section))
		return parse_fail(ps, -EINVAL, "section name is too long (at most %d characters)", NAME_MAX_LEN);
	memcpy(ps->section, line + 1, len);
	ps->section[len] = '\0';
	memset(ps->seen, 0, sizeof(ps->seen));

	const char *dot = strchr(ps->section, '.');
	if (strcmp(ps->section, "mtlsd") == 0) {
		if (ps->mtlsd_line)
			return parse_fail(ps, -EINVAL, "section [mtlsd] already defined on line %d; "
					  "give each section once", ps->mtlsd_line);
		ps->mtlsd_line = ps->line;
		ps->kind = SEC_MTLSD;
		ps->obj = ps->cfg;
		return 0;
	}
	if (dot && (strncmp(ps->section, "server_cert.", 12) == 0 || strncmp(ps->section, "partner.", 8) == 0)) {
		if (!valid_section_name(dot + 1))
			return parse_fail(ps, -EINVAL, "section [%s]: name '%s' must be 1..%d letters, digits, "
					  "'-' or '_'", ps->section, dot + 1, NAME_MAX_LEN);
		return ps->section[0] == 's' ? enter_server_cert(ps, dot + 1) : enter_partner(ps, dot + 1);
	}
	return parse_fail(ps, -EINVAL, "unknown section [%s]; valid sections: [mtlsd], "
			  "[server_cert.NAME], [partner.NAME]", ps->section);
}

/*
 * inih's reader: one line per call, like fgets. Counts lines, strips leading
 * blanks, and handles section headers. Returning NULL ends the parse.
 */
static char *ini_reader_cb(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	char *line = NULL;
	size_t cap = 0;

	if (ps->rc < 0)
		return NULL;
	ssize_t len = getline(&line, &cap, ps->f);
	if (len < 0) {
		free(line);
		return NULL;
	}
	ps->line++;
	char *p = line;
	/* Editors on some systems start files with a UTF-8 byte order mark. */
	if (ps->line == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3, len -= 3;
	while (*p == ' ' || *p == '\t')
		p++, len--;
	if (len > 0 && p[len - 1] == '\n')
		p[--len] = '\0';
	if (len > 0 && p[len - 1] == '\r')
		p[--len] = '\0';
	if (len + 2 > num) {
		parse_fail(ps, -EINVAL, "line is longer than %d characters; shorten it "
			   "(e.g. a shorter path, relative to this file)", num - 2);
		free(line);
		return NULL;
	}
	if (p[0] == '[' && enter_section(ps, p) < 0) {
		free(line);
		return NULL;
	}
	snprintf(str, (size_t)num, "%s\n", p);
	free(line);
	return str;
}

/* The directory relative paths in the file are resolved against, absolute. */
static void config_dir_of(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t off = 0;

	dir[0] = '\0';
	if (path[0] != '/') {
		if (!getcwd(dir, len))
			dir[0] = '\0'; /* resolve_path() retries getcwd() and reports */
		off = strlen(dir);
		if (slash && off < len)
			snprintf(dir + off, len - off, "/%.*s", (int)(slash - path), path);
		return;
	}
	snprintf(dir, len, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

static void owner_name(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "uid %u (%s)", (unsigned)uid, res->pw_name);
	else
		snprintf(buf, len, "uid %u", (unsigned)uid);
}

int config_check_trusted_file(const char *what, const char *path, const struct stat *st,
			      char *err, size_t errlen)
{
	char owner[300];
	unsigned mode = (unsigned)(st->st_mode & 07777);

	owner_name(st->st_uid, owner, sizeof(owner));
	if (st->st_mode & S_IWOTH) {
		snprintf(err, errlen, "%s%s: writable by any user (mode %04o, owner %s), who could redirect "
			 "partners' traffic or load code into mtlsd; run: chmod 0640 %s", what, path, mode,
			 owner, path);
		return -EPERM;
	}
	if (geteuid() != 0)
		return 0;
	/* Started as root: the file can name engines, providers and
	 * openssl_conf, all of which load code that runs as root. */
	if (st->st_uid != 0) {
		snprintf(err, errlen, "%s%s: owned by %s (mode %04o), but mtlsd runs as root and this file "
			 "can make it load code (engine, provider, openssl_conf): only root may own it; "
			 "run: chown root %s", what, path, owner, mode, path);
		return -EPERM;
	}
	if (st->st_mode & S_IWGRP) {
		snprintf(err, errlen, "%s%s: writable by its group (mode %04o, owner %s), but mtlsd runs as "
			 "root and this file can make it load code (engine, provider, openssl_conf); "
			 "run: chmod 0640 %s", what, path, mode, owner, path);
		return -EPERM;
	}
	return 0;
}

/* The file decides where partners' traffic goes, which keys are read and
 * which code is loaded: refuse one that others may rewrite (as sshd's
 * StrictModes does). The descriptor's stat, so the file checked is the
 * file parsed. */
static int check_config_file(const char *path, int fd, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file; give the path of the configuration file", path);
		return -EINVAL;
	}
	return config_check_trusted_file("", path, &st, err, errlen);
}

int config_load_file(struct mtlsd_config *cfg, const char *path, char *err, size_t errlen)
{
	struct parse_state ps = { .cfg = cfg, .path = path, .err = err, .errlen = errlen };

	ps.f = fopen(path, "re");
	if (!ps.f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s; %s", path, strerror(e),
			 e == ENOENT ? "check the path given to --config" : "make it readable by mtlsd");
		return -e;
	}
	int rc = check_config_file(path, fileno(ps.f), err, errlen);
	if (rc < 0) {
		fclose(ps.f);
		return rc;
	}
	config_dir_of(path, ps.dir, sizeof(ps.dir));

	int line = ini_parse_stream(ini_reader_cb, &ps, ini_handler_cb, &ps);
	fclose(ps.f);
	if (line > 0 && (ps.rc == 0 || line < ps.err_line)) {
		snprintf(err, errlen, "%s:%d: syntax error: expected 'key = value', '[section]' or a "
			 "comment starting with ';' or '#'", path, line);
		return -EINVAL;
	}
	if (ps.rc < 0)
		return ps.rc;
	if (line < 0) {
		snprintf(err, errlen, "%s: out of memory while parsing", path);
		return -ENOMEM;
	}
	free(cfg->path);
	cfg->path = strdup(path);
	return cfg->path ? 0 : -ENOMEM;
}

uint64_t config_fds_needed(unsigned max_connections, unsigned workers)
{
	return 2 * (uint64_t)max_connections + (uint64_t)(workers ? workers : 1) * 20 + 64;
}

/* ---- whole-config validation ------------------------------------------- */

__attribute__((format(printf, 5, 6)))
static int invalid(const struct mtlsd_config *cfg, int line, char *err, size_t errlen,
		   const char *fmt, ...)
{
	int off = 0;
	if (cfg->path && line > 0)
		off = snprintf(err, errlen, "%s:%d: ", cfg->path, line);
	else if (cfg->path)
		off = snprintf(err, errlen, "%s: ", cfg->path);
	if (off < 0 || (size_t)off >= errlen)
		off = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + off, errlen - (size_t)off, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int validate_certs(const struct mtlsd_config *cfg, char *err, size_t errlen)
{
	if (cfg->n_certs == 0)
		return invalid(cfg, 0, err, errlen, "no server certificate; add a [server_cert.NAME] "
			       "section with cert and key, or give --cert FILE --key FILE");
	for (size_t i = 0; i < cfg->n_certs; i++) {
		const struct cfg_server_cert *c = &cfg->certs[i];
		if (!c->cert_path && !c->key_path)
			return invalid(cfg, 0, err, errlen, "a [server_cert.NAME] section is empty; "
				       "give it cert = FILE and key = FILE");
		if (!c->cert_path) {
			char shown[1024];
			return invalid(cfg, c->key_line, err, errlen, "server key %s has no certificate; "
				       "add cert = FILE to its section (or --cert FILE)",
				       keyref_redact(c->key_path, shown, sizeof(shown)));
		}
		if (!c->key_path)
			return invalid(cfg, c->line, err, errlen, "server certificate %s has no key; "
				       "add key = FILE to its section (or --key FILE)", c->cert_path);
	}
	return 0;
}

static int validate_partner(const struct mtlsd_config *cfg, const struct cfg_partner *p,
			    char *err, size_t errlen)
{
	char label[NAME_MAX_LEN + 32];

	if (p->line)
		snprintf(label, sizeof(label), "[partner.%s]", p->name);
	else
		snprintf(label, sizeof(label), "partner '%s' (from flags)", p->name);
	if (!p->ca_path)
		return invalid(cfg, p->line, err, errlen, "%s: no CA bundle; add ca = FILE "
			       "(or --client-ca FILE)", label);
	if (p->backend.len == 0)
		return invalid(cfg, p->line, err, errlen, "%s: no backend; add backend = HOST:PORT "
			       "or unix:/path (or --backend ADDR)", label);
	if (p->proxy_send_cert && !p->proxy_v2)
		return invalid(cfg, p->line, err, errlen, "%s: proxy_send_cert needs the PROXY header; "
			       "set proxy_protocol = v2 (or --proxy-protocol v2)", label);
	for (const struct cfg_partner *q = cfg->partners; q < p; q++)
		if (strcmp(q->name, p->name) == 0)
			return invalid(cfg, p->line, err, errlen, "%s: partner name used twice; "
				       "give each partner its own name", label);
	return 0;
}

int config_validate(const struct mtlsd_config *cfg, char *err, size_t errlen)
{
	if (cfg->n_listen == 0)
		return invalid(cfg, 0, err, errlen, "no listen address; add listen = HOST:PORT to "
			       "[mtlsd] or give --listen HOST:PORT");
	for (size_t i = 0; i < cfg->n_listen; i++)
		for (size_t j = 0; j < i; j++)
			if (cfg->listen[i].len == cfg->listen[j].len &&
			    memcmp(&cfg->listen[i].ss, &cfg->listen[j].ss, cfg->listen[i].len) == 0)
				return invalid(cfg, 0, err, errlen, "listen address %s is given twice "
					       "(as %s); give it once", cfg->listen[i].text, cfg->listen[j].text);
	GUARD(validate_certs(cfg, err, errlen));
	if (cfg->n_partners == 0)
		return invalid(cfg, 0, err, errlen, "no partner; add a [partner.NAME] section with ca "
			       "and backend, or give --client-ca FILE --backend ADDR");
	for (size_t i = 0; i < cfg->n_partners; i++)
		GUARD(validate_partner(cfg, &cfg->partners[i], err, errlen));
	if (cfg->max_handshakes > cfg->max_connections)
		return invalid(cfg, 0, err, errlen, "max_handshakes (%u) is above max_connections (%u); "
			       "a handshake is a connection: lower max_handshakes",
			       cfg->max_handshakes, cfg->max_connections);
	return 0;
}

enum session_cache_mode config_session_cache(const struct mtlsd_config *cfg)
{
	if (cfg->session_cache != SESSION_CACHE_AUTO)
		return cfg->session_cache;
	return cfg->ticket_key_file ? SESSION_CACHE_TICKETS : SESSION_CACHE_STATEFUL;
}

unsigned config_session_cache_size(const struct mtlsd_config *cfg)
{
	if (cfg->session_cache_size)
		return cfg->session_cache_size;
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t mem = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
	uint64_t n = mem / 128 / SESSION_CACHE_BYTES_PER_SESSION;
	return n < 1024 ? 1024 : n > 1048576 ? 1048576 : (unsigned)n;
}
