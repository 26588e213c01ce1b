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
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ini.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define NO_LINE_FIELD ((size_t)-1)
#define NAME_MAX_LEN 63

enum value_kind {
	V_BOOL, V_UINT, V_DURATION, V_PATH, V_PATH_LIST, V_STR_LIST, V_LISTEN,
	V_ADDR, V_CRL_POLICY, V_KTLS, V_LOG_LEVEL, V_PROXY, V_TLV_TYPE, V_AUDIT,
};

struct key_desc {
	const char *name;
	enum value_kind kind;
	size_t offset;      /* of the value in its section's struct */
	size_t line_offset; /* of an int receiving the line, or NO_LINE_FIELD */
	unsigned min, max;  /* V_UINT, V_DURATION (ms) */
	bool repeatable;
};

#define KEY(n, k, s, f) { n, k, offsetof(s, f), NO_LINE_FIELD, 0, 0, false }
#define KEY_RANGE(n, k, s, f, lo, hi) { n, k, offsetof(s, f), NO_LINE_FIELD, lo, hi, false }
#define KEY_LINE(n, k, s, f, l) { n, k, offsetof(s, f), offsetof(s, l), 0, 0, false }
#define KEY_LIST(n, k, s, f) { n, k, offsetof(s, f), NO_LINE_FIELD, 0, 0, true }

static const struct key_desc mtlsd_keys[] = {
	KEY_LIST("listen", V_LISTEN, struct mtlsd_config, listen),
	KEY_RANGE("workers", V_UINT, struct mtlsd_config, workers, 0, 1024),
	KEY("cpu_pin", V_BOOL, struct mtlsd_config, cpu_pin),
	KEY_RANGE("handshake_timeout", V_DURATION, struct mtlsd_config, handshake_timeout_ms, 100, 600000),
	KEY_RANGE("idle_timeout", V_DURATION, struct mtlsd_config, idle_timeout_ms, 1000, 604800000),
	KEY_RANGE("connect_timeout", V_DURATION, struct mtlsd_config, connect_timeout_ms, 100, 600000),
	KEY_RANGE("drain_timeout", V_DURATION, struct mtlsd_config, drain_timeout_ms, 0, 3600000),
	KEY_RANGE("max_connections", V_UINT, struct mtlsd_config, max_connections, 1, 10000000),
	KEY_RANGE("max_handshakes", V_UINT, struct mtlsd_config, max_handshakes, 1, 1000000),
	KEY("audit_log", V_AUDIT, struct mtlsd_config, audit_path),
	KEY("ktls", V_KTLS, struct mtlsd_config, ktls),
	KEY("log_level", V_LOG_LEVEL, struct mtlsd_config, log_level),
	KEY("allow_insecure_key_permissions", V_BOOL, struct mtlsd_config, allow_insecure_key_perms),
};

static const struct key_desc server_cert_keys[] = {
	KEY_LINE("cert", V_PATH, struct cfg_server_cert, cert_path, line),
	KEY_LINE("key", V_PATH, struct cfg_server_cert, key_path, key_line),
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
};

#define MAX_SECTION_KEYS ARRAY_SIZE(partner_keys)
_Static_assert(ARRAY_SIZE(mtlsd_keys) <= 16 && ARRAY_SIZE(partner_keys) <= 16,
	       "flag_resets packs one bit per key of [mtlsd] and of [partner]");

enum section_kind { SEC_NONE = 0, SEC_MTLSD, SEC_SERVER_CERT, SEC_PARTNER };

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

void config_init(struct mtlsd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->handshake_timeout_ms = 10000;
	cfg->idle_timeout_ms = 300000;
	cfg->connect_timeout_ms = 5000;
	cfg->drain_timeout_ms = 30000;
	cfg->max_connections = 10000;
	cfg->max_handshakes = 1000;
	cfg->ktls = KTLS_MODE_AUTO;
	cfg->log_level = LOG_LVL_INFO;
}

static void partner_init(struct cfg_partner *p)
{
	memset(p, 0, sizeof(*p));
	p->crl_missing = CRL_POLICY_FAIL;
	p->crl_expired = CRL_POLICY_FAIL;
	p->verify_depth = 3;
	p->proxy_tlv_type = 0xE0;
}

static void strlist_free(struct cfg_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->lines);
	memset(l, 0, sizeof(*l));
}

static int strlist_push(struct cfg_strlist *l, const char *s, int line)
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

void config_free(struct mtlsd_config *cfg)
{
	for (size_t i = 0; i < cfg->n_certs; i++) {
		free(cfg->certs[i].cert_path);
		free(cfg->certs[i].key_path);
	}
	for (size_t i = 0; i < cfg->n_partners; i++) {
		struct cfg_partner *p = &cfg->partners[i];
		free(p->name);
		free(p->ca_path);
		strlist_free(&p->crl_paths);
		strlist_free(&p->allow_dns);
		strlist_free(&p->allow_uri);
		strlist_free(&p->allow_cn);
		strlist_free(&p->allow_ou);
	}
	free(cfg->partners);
	free(cfg->audit_path);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- value parsers ---------------------------------------------------- */

static int parse_uint(const char *text, unsigned long long max, unsigned long long *out)
{
	char *end;
	/* Decimal, or hex with 0x; never C's octal ("010" is ten). */
	bool hex = text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
	ENSURE(isdigit((unsigned char)text[0]) && (!hex || isxdigit((unsigned char)text[2])), EINVAL);
	errno = 0;
	unsigned long long v = strtoull(hex ? text + 2 : text, &end, hex ? 16 : 10);
	ENSURE(errno == 0 && *end == '\0' && v <= max, EINVAL);
	*out = v;
	return 0;
}

int config_parse_duration_ms(const char *text, unsigned *out_ms)
{
	static const struct { const char *suffix; unsigned long long mult; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "", 1000 },
	};
	char *end;

	ENSURE(text && isdigit((unsigned char)text[0]), EINVAL);
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	ENSURE(errno == 0, EINVAL);
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		ENSURE(v <= UINT_MAX / units[i].mult, EINVAL);
		*out_ms = (unsigned)(v * units[i].mult);
		return 0;
	}
	return -EINVAL;
}

static int parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
			*out = strcasecmp(text, yes[i]) == 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_unix_addr(const char *path, struct cfg_addr *out)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
	size_t len = strlen(path);

	/* "@name" is the Linux abstract namespace: no file, leading NUL. */
	ENSURE(len > 0 && len < sizeof(sun->sun_path), EINVAL);
	ENSURE(path[0] == '/' || path[0] == '@', EINVAL);
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, len);
	if (path[0] == '@')
		sun->sun_path[0] = '\0';
	out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
	out->is_unix = true;
	return 0;
}

static int resolve_host(const char *host, uint16_t port, struct cfg_addr *out)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;

	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		out->len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		out->len = sizeof(*sin6);
		return 0;
	}
	/* A host name is resolved once, at load time (and at each reload). */
	ENSURE(getaddrinfo(host, NULL, &hints, &res) == 0 && res, EINVAL);
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	if (out->ss.ss_family == AF_INET)
		sin->sin_port = htons(port);
	else
		sin6->sin6_port = htons(port);
	return 0;
}

int config_parse_addr(const char *text, struct cfg_addr *out)
{
	char host[128];
	unsigned long long port;
	const char *colon;

	memset(out, 0, sizeof(*out));
	ENSURE(text && strlen(text) < sizeof(out->text), EINVAL);
	strcpy(out->text, text);
	if (strncmp(text, "unix:", 5) == 0)
		return parse_unix_addr(text + 5, out);

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		ENSURE(close && close[1] == ':', EINVAL);
		colon = close + 1;
		ENSURE(strchr(text + 1, '[') == NULL, EINVAL);
		size_t hlen = (size_t)(close - text - 1);
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
		/* Brackets promise an IPv6 literal: no name lookup behind them. */
		ENSURE(hlen > 0 && strchr(host, ':'), EINVAL);
	} else {
		colon = strrchr(text, ':');
		ENSURE(colon && colon != text, EINVAL);
		/* An unbracketed IPv6 address is ambiguous ("::1:80"). */
		ENSURE(memchr(text, ':', (size_t)(colon - text)) == NULL, EINVAL);
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
	}
	GUARD(parse_uint(colon + 1, 65535, &port));
	ENSURE(port > 0 && isdigit((unsigned char)colon[1]) && colon[1] != '0', EINVAL);
	return resolve_host(host, (uint16_t)port, out);
}

/* ---- applying one value ------------------------------------------------ */

/* Make a path from the file absolute against the file's directory, and one
 * from a flag absolute against the working directory (mtlsd may chdir). */
static int resolve_path(const struct parse_state *ps, const char *value, char **out)
{
	char base[PATH_MAX];
	const char *dir = ps->dir;

	if (value[0] == '/') {
		*out = strdup(value);
		return *out ? 0 : -ENOMEM;
	}
	if (dir[0] == '\0') {
		ENSURE(getcwd(base, sizeof(base)) != NULL, errno);
		dir = base;
	}
	ENSURE(asprintf(out, "%s/%s", dir, value) >= 0, ENOMEM);
	return 0;
}

static int apply_listen(struct parse_state *ps, const char *value, char *why, size_t wl)
{
	struct mtlsd_config *cfg = ps->cfg;
	char buf[1024];
	char *save = NULL;

	ENSURE(strlen(value) < sizeof(buf), E2BIG);
	strcpy(buf, value);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*tok))
			tok++;
		for (char *e = tok + strlen(tok); e > tok && isspace((unsigned char)e[-1]);)
			*--e = '\0';
		if (cfg->n_listen == CFG_MAX_LISTEN) {
			snprintf(why, wl, "more than %d listen addresses; merge them or use a wildcard address",
				 CFG_MAX_LISTEN);
			return -E2BIG;
		}
		struct cfg_addr *a = &cfg->listen[cfg->n_listen];
		if (config_parse_addr(tok, a) < 0 || a->is_unix) {
			snprintf(why, wl, "'%s' is not a TCP address; use HOST:PORT or [IPv6]:PORT, "
				 "e.g. 127.0.0.1:8443", tok);
			return -EINVAL;
		}
		cfg->n_listen++;
	}
	return 0;
}

/* A keyword value: the index of text in names, or -EINVAL with a hint. */
static int parse_keyword(const char *text, const char *const *names, size_t n, int *out,
			 char *why, size_t wl)
{
	for (size_t i = 0; i < n; i++) {
		if (names[i] && strcasecmp(text, names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	int off = snprintf(why, wl, "'%s' is not one of", text);
	for (size_t i = 0; i < n && off > 0 && (size_t)off < wl; i++)
		if (names[i])
			off += snprintf(why + off, wl - (size_t)off, "%s %s", i ? "," : "", names[i]);
	return -EINVAL;
}

static int apply_keyword(const struct key_desc *k, void *field, const char *value,
			 char *why, size_t wl)
{
	static const char *const crl_names[] = { [CRL_POLICY_FAIL] = "fail", [CRL_POLICY_ALLOW] = "allow" };
	static const char *const ktls_names[] = { [KTLS_MODE_AUTO] = "auto", [KTLS_MODE_ON] = "on", [KTLS_MODE_OFF] = "off" };
	static const char *const level_names[] = { [LOG_LVL_ERR] = "error", [LOG_LVL_WARN] = "warning",
						   [LOG_LVL_INFO] = "info", [LOG_LVL_DEBUG] = "debug" };
	static const char *const proxy_names[] = { "off", "v2" };
	int v;

	switch (k->kind) {
	case V_CRL_POLICY:
		GUARD(parse_keyword(value, crl_names, ARRAY_SIZE(crl_names), &v, why, wl));
		*(enum crl_policy *)field = (enum crl_policy)v;
		return 0;
	case V_KTLS:
		GUARD(parse_keyword(value, ktls_names, ARRAY_SIZE(ktls_names), &v, why, wl));
		*(enum ktls_mode *)field = (enum ktls_mode)v;
		return 0;
	case V_LOG_LEVEL:
		GUARD(parse_keyword(value, level_names, ARRAY_SIZE(level_names), &v, why, wl));
		*(enum log_level *)field = (enum log_level)v;
		return 0;
	case V_PROXY:
		GUARD(parse_keyword(value, proxy_names, ARRAY_SIZE(proxy_names), &v, why, wl));
		*(bool *)field = v == 1;
		return 0;
	default:
		snprintf(why, wl, "internal error: key kind %d is not a keyword", (int)k->kind);
		return -EINVAL;
	}
}

static int apply_number(const struct key_desc *k, void *field, const char *value,
			char *why, size_t wl)
{
	unsigned long long n;
	unsigned ms;

	switch (k->kind) {
	case V_UINT:
		if (parse_uint(value, UINT_MAX, &n) < 0 || n < k->min || n > k->max) {
			snprintf(why, wl, "'%s' is not a number in %u..%u", value, k->min, k->max);
			return -EINVAL;
		}
		*(unsigned *)field = (unsigned)n;
		return 0;
	case V_DURATION:
		if (config_parse_duration_ms(value, &ms) < 0) {
			snprintf(why, wl, "'%s' is not a duration; write e.g. 500ms, 10s, 5m, 1h "
				 "(a plain number means seconds)", value);
			return -EINVAL;
		}
		if (ms < k->min || ms > k->max) {
			snprintf(why, wl, "'%s' is out of range; give %ums..%ums", value, k->min, k->max);
			return -EINVAL;
		}
		*(unsigned *)field = ms;
		return 0;
	case V_TLV_TYPE:
		if (parse_uint(value, 0xFF, &n) < 0 || n < 0xE0 || n > 0xEF) {
			snprintf(why, wl, "'%s' is not in 0xE0..0xEF (the PROXY v2 range for custom TLVs)",
				 value);
			return -EINVAL;
		}
		*(uint8_t *)field = (uint8_t)n;
		return 0;
	default:
		snprintf(why, wl, "internal error: key kind %d is not a number", (int)k->kind);
		return -EINVAL;
	}
}

/* Free a single-valued string or reset a list before a flag replaces it. */
static void clear_field(const struct key_desc *k, void *field)
{
	switch (k->kind) {
	case V_PATH:
	case V_AUDIT:
		free(*(char **)field);
		*(char **)field = NULL;
		break;
	case V_PATH_LIST:
	case V_STR_LIST:
		strlist_free(field);
		break;
	default:
		break;
	}
}

/* Apply value to key k of the struct at obj. why gets the reason on error. */
static int apply_value(struct parse_state *ps, const struct key_desc *k, void *obj,
		       const char *value, char *why, size_t wl)
{
	void *field = (char *)obj + k->offset;
	char *path = NULL;
	int rc;

	if (value[0] == '\0') {
		snprintf(why, wl, "empty value; give a value or remove the line");
		return -EINVAL;
	}
	if (k->line_offset != NO_LINE_FIELD)
		*(int *)((char *)obj + k->line_offset) = ps->line;

	switch (k->kind) {
	case V_BOOL:
		if (parse_bool(value, field) < 0) {
			snprintf(why, wl, "'%s' is not a boolean; use yes/no, true/false, on/off or 1/0", value);
			return -EINVAL;
		}
		return 0;
	case V_UINT:
	case V_DURATION:
	case V_TLV_TYPE:
		return apply_number(k, field, value, why, wl);
	case V_CRL_POLICY:
	case V_KTLS:
	case V_LOG_LEVEL:
	case V_PROXY:
		return apply_keyword(k, field, value, why, wl);
	case V_LISTEN:
		return apply_listen(ps, value, why, wl);
	case V_ADDR:
		if (config_parse_addr(value, field) < 0) {
			snprintf(why, wl, "'%s' is not an address; use HOST:PORT, [IPv6]:PORT or "
				 "unix:/path/to.sock (a host name must resolve)", value);
			return -EINVAL;
		}
		return 0;
	case V_STR_LIST:
		for (const char *c = value; *c; c++) {
			if (iscntrl((unsigned char)*c)) {
				snprintf(why, wl, "control character in pattern; remove it");
				return -EINVAL;
			}
		}
		return strlist_push(field, value, ps->line);
	case V_AUDIT:
		if (strcmp(value, "-") == 0) {
			clear_field(k, field);
			return 0;
		}
		__attribute__((fallthrough)); /* otherwise a path */
	case V_PATH:
	case V_PATH_LIST:
		GUARD(resolve_path(ps, value, &path));
		if (k->kind == V_PATH_LIST) {
			rc = strlist_push(field, path, ps->line);
			free(path);
			return rc;
		}
		clear_field(k, field);
		*(char **)field = path;
		return 0;
	default:
		snprintf(why, wl, "internal error: unknown key kind %d", (int)k->kind);
		return -EINVAL;
	}
}

/* ---- sections and keys from the file ----------------------------------- */

static const struct key_desc *section_keys(enum section_kind kind, size_t *n)
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
	const struct key_desc *keys = section_keys(ps->kind, &n), *best = NULL;
	char list[512] = "";
	size_t off = 0;

	static const char *const section_forms[] = {
		[SEC_MTLSD] = "[mtlsd]", [SEC_SERVER_CERT] = "[server_cert.NAME]", [SEC_PARTNER] = "[partner.NAME]",
	};
	for (enum section_kind k = SEC_MTLSD; k <= SEC_PARTNER; k++) {
		size_t other_n;
		const struct key_desc *other = section_keys(k, &other_n);
		for (size_t i = 0; k != ps->kind && i < other_n; i++)
			if (strcmp(other[i].name, name) == 0)
				return parse_fail(ps, -EINVAL, "key '%s' belongs in %s, not in [%s]; move it",
						  name, section_forms[k], ps->section);
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
	const struct key_desc *keys = section_keys(ps->kind, &n);
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
		int rc = apply_value(ps, &keys[i], ps->obj, value, why, sizeof(why));
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

static struct cfg_partner *partner_add(struct mtlsd_config *cfg, const char *name, int line)
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

static struct cfg_partner *partner_find(struct mtlsd_config *cfg, const char *name)
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
	struct cfg_partner *p = partner_find(ps->cfg, name);
	if (p && p->line)
		return parse_fail(ps, -EINVAL, "section [partner.%s] already defined on line %d; "
				  "give each section once", name, p->line);
	if (!p)
		p = partner_add(ps->cfg, name, ps->line);
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

/* The file decides where partners' traffic goes and which keys are read:
 * refuse one that any local user may rewrite (as sshd's StrictModes does). */
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
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen, "%s: writable by any user (mode %04o), who could redirect partners' "
			 "traffic; run: chmod o-w %s", path, (unsigned)(st.st_mode & 07777), path);
		return -EPERM;
	}
	return 0;
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

/* ---- command-line flags ------------------------------------------------ */

#define FLAG_RESET_PARTNER_BASE 16
#define FLAG_RESET_CERTS (1u << 31)

static const struct key_desc *find_key(const struct key_desc *keys, size_t n, const char *name,
				       size_t *idx)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			*idx = i;
			return &keys[i];
		}
	}
	return NULL;
}

/*
 * --cert and --key come in pairs, in either order: each fills the newest
 * server certificate still missing that half, or starts a new one. The
 * first of them replaces the [server_cert] sections of the file.
 */
static int flag_server_cert(struct parse_state *ps, const struct key_desc *k, const char *value,
			    char *why, size_t wl)
{
	struct mtlsd_config *cfg = ps->cfg;

	if (!(cfg->flag_resets & FLAG_RESET_CERTS)) {
		for (size_t i = 0; i < cfg->n_certs; i++) {
			free(cfg->certs[i].cert_path);
			free(cfg->certs[i].key_path);
		}
		memset(cfg->certs, 0, sizeof(cfg->certs));
		cfg->n_certs = 0;
		cfg->flag_resets |= FLAG_RESET_CERTS;
	}
	struct cfg_server_cert *c = cfg->n_certs ? &cfg->certs[cfg->n_certs - 1] : NULL;
	if (!c || *(char **)((char *)c + k->offset) != NULL) {
		if (cfg->n_certs == CFG_MAX_SERVER_CERTS) {
			snprintf(why, wl, "more than %d server certificates; one per key type is enough",
				 CFG_MAX_SERVER_CERTS);
			return -E2BIG;
		}
		c = &cfg->certs[cfg->n_certs++];
	}
	return apply_value(ps, k, c, value, why, wl);
}

int config_apply_flag(struct mtlsd_config *cfg, const char *name, const char *value,
		      char *err, size_t errlen)
{
	struct parse_state ps = { .cfg = cfg };
	const struct key_desc *k;
	char key[64], why[512] = "";
	void *obj = cfg;
	unsigned bit = 0;
	bool is_server_cert = false;
	size_t idx;
	int rc;

	if (strlen(name) >= sizeof(key)) {
		snprintf(err, errlen, "--%s: unknown option", name);
		return -EINVAL;
	}
	for (size_t i = 0; (key[i] = name[i] == '-' ? '_' : name[i]) != '\0'; i++)
		;
	if (strcmp(key, "client_ca") == 0)
		strcpy(key, "ca");

	if ((k = find_key(mtlsd_keys, ARRAY_SIZE(mtlsd_keys), key, &idx))) {
		bit = 1u << idx;
	} else if ((k = find_key(server_cert_keys, ARRAY_SIZE(server_cert_keys), key, &idx))) {
		is_server_cert = true;
	} else if ((k = find_key(partner_keys, ARRAY_SIZE(partner_keys), key, &idx))) {
		obj = partner_find(cfg, "default");
		if (!obj)
			obj = partner_add(cfg, "default", 0);
		ENSURE(obj != NULL, ENOMEM);
		bit = 1u << (FLAG_RESET_PARTNER_BASE + idx);
	} else {
		snprintf(err, errlen, "--%s: unknown option; see mtlsd --help", name);
		return -EINVAL;
	}
	if (!value && k->kind == V_BOOL)
		value = "yes";
	if (!value) {
		snprintf(err, errlen, "--%s: needs a value", name);
		return -EINVAL;
	}

	if (is_server_cert) {
		rc = flag_server_cert(&ps, k, value, why, sizeof(why));
	} else {
		/* A repeatable flag replaces what the file gave, then accumulates. */
		if (k->repeatable && !(cfg->flag_resets & bit)) {
			if (k->kind == V_LISTEN)
				cfg->n_listen = 0;
			else
				clear_field(k, (char *)obj + k->offset);
			cfg->flag_resets |= bit;
		}
		rc = apply_value(&ps, k, obj, value, why, sizeof(why));
	}
	if (rc < 0)
		snprintf(err, errlen, "--%s: %s", name, why[0] ? why : strerror(-rc));
	return rc;
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
		if (!c->cert_path)
			return invalid(cfg, c->key_line, err, errlen, "server key %s has no certificate; "
				       "add cert = FILE to its section (or --cert FILE)", c->key_path);
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
