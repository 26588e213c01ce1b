/*
 * config_values.c: turning one configuration value's text into its field.
 *
 * The parsers here (integers, durations, booleans, keywords, addresses,
 * paths) are shared by the INI reader and the command-line flags, through
 * config_apply_value(): a value means the same thing wherever it is written.
 * Each failure fills `why` with what is wrong and what to write instead; the
 * caller prefixes the file and line or the flag name.
 *
 * Host names in addresses are resolved here, once per load (and reload).
 */
#include "config_internal.h"
#include "keyref.h"
#include "string_table.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <linux/capability.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- the words of keyword keys ------------------------------------------ */

const char *const crl_policy_names[CRL_POLICY_MAX] = {
	[CRL_POLICY_FAIL] = "fail", [CRL_POLICY_ALLOW] = "allow",
};
const char *const multiple_identities_names[MULTIPLE_IDENTITIES_MAX] = {
	[MULTIPLE_IDENTITIES_REFUSE] = "refuse", [MULTIPLE_IDENTITIES_ALLOW] = "allow",
};
const char *const ktls_mode_names[KTLS_MODE_MAX] = {
	[KTLS_MODE_AUTO] = "auto", [KTLS_MODE_ON] = "on", [KTLS_MODE_OFF] = "off",
};
const char *const session_cache_mode_names[SESSION_CACHE_MAX] = {
	[SESSION_CACHE_TICKETS] = "tickets", [SESSION_CACHE_STATEFUL] = "stateful",
	[SESSION_CACHE_OFF] = "off", [SESSION_CACHE_AUTO] = "auto",
};

DEFINE_STRING_TABLE(crl_policy, enum crl_policy, crl_policy_names, "?")
DEFINE_STRING_TABLE(multiple_identities, enum multiple_identities, multiple_identities_names, "?")
DEFINE_STRING_TABLE(ktls_mode, enum ktls_mode, ktls_mode_names, "?")
DEFINE_STRING_TABLE(session_cache_mode, enum session_cache_mode, session_cache_mode_names, "?")

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

/* ---- user names and capabilities --------------------------------------- */

/* What useradd accepts on Debian, minus what would read as an option. */
static int parse_name(const char *text, char **out, char *why, size_t wl)
{
	size_t len = strlen(text);
	/* Names also become path components (the accounting instance): never
	 * "." or "..". */
	bool ok = len <= 32 && text[0] != '-' && strcmp(text, ".") != 0 && strcmp(text, "..") != 0;

	for (const char *c = text; ok && *c; c++)
		ok = isalnum((unsigned char)*c) || *c == '_' || *c == '-' || *c == '.';
	if (!ok) {
		snprintf(why, wl, "'%s' is not a valid name; give a name such as mtlsd "
			 "(letters, digits, '.', '-', '_'; at most 32; not '.' or '..')", text);
		return -EINVAL;
	}
	char *copy = strdup(text);
	ENSURE_PTR(copy, ENOMEM);
	free(*out);
	*out = copy;
	return 0;
}

/* Names as capabilities(7) spells them, without "CAP_", by number. */
static const char *const cap_names[] = {
	[CAP_CHOWN] = "chown", [CAP_DAC_OVERRIDE] = "dac_override",
	[CAP_DAC_READ_SEARCH] = "dac_read_search", [CAP_FOWNER] = "fowner",
	[CAP_FSETID] = "fsetid", [CAP_KILL] = "kill", [CAP_SETGID] = "setgid",
	[CAP_SETUID] = "setuid", [CAP_SETPCAP] = "setpcap",
	[CAP_LINUX_IMMUTABLE] = "linux_immutable", [CAP_NET_BIND_SERVICE] = "net_bind_service",
	[CAP_NET_BROADCAST] = "net_broadcast", [CAP_NET_ADMIN] = "net_admin",
	[CAP_NET_RAW] = "net_raw", [CAP_IPC_LOCK] = "ipc_lock", [CAP_IPC_OWNER] = "ipc_owner",
	[CAP_SYS_MODULE] = "sys_module", [CAP_SYS_RAWIO] = "sys_rawio",
	[CAP_SYS_CHROOT] = "sys_chroot", [CAP_SYS_PTRACE] = "sys_ptrace",
	[CAP_SYS_PACCT] = "sys_pacct", [CAP_SYS_ADMIN] = "sys_admin", [CAP_SYS_BOOT] = "sys_boot",
	[CAP_SYS_NICE] = "sys_nice", [CAP_SYS_RESOURCE] = "sys_resource",
	[CAP_SYS_TIME] = "sys_time", [CAP_SYS_TTY_CONFIG] = "sys_tty_config",
	[CAP_MKNOD] = "mknod", [CAP_LEASE] = "lease", [CAP_AUDIT_WRITE] = "audit_write",
	[CAP_AUDIT_CONTROL] = "audit_control", [CAP_SETFCAP] = "setfcap",
	[CAP_MAC_OVERRIDE] = "mac_override", [CAP_MAC_ADMIN] = "mac_admin",
	[CAP_SYSLOG] = "syslog", [CAP_WAKE_ALARM] = "wake_alarm",
	[CAP_BLOCK_SUSPEND] = "block_suspend", [CAP_AUDIT_READ] = "audit_read",
	[CAP_PERFMON] = "perfmon", [CAP_BPF] = "bpf", [CAP_CHECKPOINT_RESTORE] = "checkpoint_restore",
};

DEFINE_STRING_TABLE(config_capability, unsigned, cap_names, NULL)

static int capability_number(const char *name, size_t len)
{
	if (len > 4 && strncasecmp(name, "cap_", 4) == 0)
		name += 4, len -= 4;
	for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
		if (cap_names[i] && strlen(cap_names[i]) == len && strncasecmp(name, cap_names[i], len) == 0)
			return (int)i;
	return -EINVAL;
}

int config_parse_capabilities(const char *text, uint64_t *out, char *why, size_t wl)
{
	uint64_t mask = 0;

	if (strcasecmp(text, "none") == 0) {
		*out = 0;
		return 0;
	}
	for (const char *p = text; *p;) {
		size_t len = strcspn(p, ", \t");
		if (len > 0) {
			int cap = capability_number(p, len);
			if (cap < 0) {
				snprintf(why, wl, "'%.*s' is not a capability; give names from capabilities(7) "
					 "such as net_bind_service, bpf, perfmon, or none", (int)len, p);
				return -EINVAL;
			}
			mask |= UINT64_C(1) << cap;
		}
		p += len;
		p += strspn(p, ", \t");
	}
	*out = mask;
	return 0;
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
	/* Keys that are booleans spelled as words: index 1 is true. */
	static const char *const proxy_names[] = { "off", "v2" };
	static const char *const accounting_names[] = { "off", "auto" };
	int v;

	switch (k->kind) {
	case V_MULTI_IDENTITY:
		GUARD(parse_keyword(value, multiple_identities_names, ARRAY_SIZE(multiple_identities_names), &v, why, wl));
		*(enum multiple_identities *)field = (enum multiple_identities)v;
		return 0;
	case V_CRL_POLICY:
		GUARD(parse_keyword(value, crl_policy_names, ARRAY_SIZE(crl_policy_names), &v, why, wl));
		*(enum crl_policy *)field = (enum crl_policy)v;
		return 0;
	case V_KTLS:
		GUARD(parse_keyword(value, ktls_mode_names, ARRAY_SIZE(ktls_mode_names), &v, why, wl));
		*(enum ktls_mode *)field = (enum ktls_mode)v;
		return 0;
	case V_LOG_LEVEL:
		GUARD(parse_keyword(value, log_level_names, ARRAY_SIZE(log_level_names), &v, why, wl));
		*(enum log_level *)field = (enum log_level)v;
		return 0;
	case V_PROXY:
		GUARD(parse_keyword(value, proxy_names, ARRAY_SIZE(proxy_names), &v, why, wl));
		*(bool *)field = v == 1;
		return 0;
	case V_ACCOUNTING:
		GUARD(parse_keyword(value, accounting_names, ARRAY_SIZE(accounting_names), &v, why, wl));
		*(bool *)field = v == 1;
		return 0;
	case V_SESSION_CACHE:
		GUARD(parse_keyword(value, session_cache_mode_names, ARRAY_SIZE(session_cache_mode_names), &v, why, wl));
		*(enum session_cache_mode *)field = (enum session_cache_mode)v;
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
	case V_SECONDS:
		/* Session times are whole seconds (SSL_SESSION, the binding):
		 * refuse what would silently be rounded. */
		if (config_parse_duration_ms(value, &ms) < 0 || ms % 1000 != 0) {
			snprintf(why, wl, "'%s' is not a duration in whole seconds; write e.g. 90s, 30m, "
				 "1h (a plain number means seconds)", value);
			return -EINVAL;
		}
		if (ms / 1000 < k->min || ms / 1000 > k->max) {
			snprintf(why, wl, "'%s' is out of range; give %us..%us", value, k->min, k->max);
			return -EINVAL;
		}
		*(unsigned *)field = ms / 1000;
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

enum key_owns config_key_owns(const struct key_desc *k)
{
	switch (k->kind) {
	case V_PATH:
	case V_KEY:
	case V_AUDIT:
	case V_NAME:
		return KEY_OWNS_STRING;
	case V_PATH_LIST:
	case V_STR_LIST:
		return KEY_OWNS_LIST;
	default:
		return KEY_OWNS_NOTHING;
	}
}

void config_clear_field(const struct key_desc *k, void *field)
{
	switch (config_key_owns(k)) {
	case KEY_OWNS_STRING:
		free(*(char **)field);
		*(char **)field = NULL;
		break;
	case KEY_OWNS_LIST:
		config_strlist_free(field);
		break;
	default:
		break;
	}
}

static bool str_equal(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool list_equal(const struct cfg_strlist *a, const struct cfg_strlist *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	return true;
}

bool config_field_equal(const struct key_desc *k, const void *a, const void *b)
{
	const void *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;

	switch (k->kind) {
	case V_LISTEN: {
		/* Only [mtlsd] has it: the array and its count, as written. */
		const struct mtlsd_config *ca = a, *cb = b;
		if (ca->n_listen != cb->n_listen)
			return false;
		for (size_t i = 0; i < ca->n_listen; i++)
			if (strcmp(ca->listen[i].text, cb->listen[i].text) != 0)
				return false;
		return true;
	}
	case V_ADDR:
		return strcmp(((const struct cfg_addr *)fa)->text, ((const struct cfg_addr *)fb)->text) == 0;
	case V_BOOL:
	case V_PROXY:
	case V_ACCOUNTING:
		return *(const bool *)fa == *(const bool *)fb;
	case V_UINT:
	case V_DURATION:
	case V_SECONDS:
		return *(const unsigned *)fa == *(const unsigned *)fb;
	case V_TLV_TYPE:
		return *(const uint8_t *)fa == *(const uint8_t *)fb;
	case V_CAPS:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	case V_CRL_POLICY:
		return *(const enum crl_policy *)fa == *(const enum crl_policy *)fb;
	case V_KTLS:
		return *(const enum ktls_mode *)fa == *(const enum ktls_mode *)fb;
	case V_LOG_LEVEL:
		return *(const enum log_level *)fa == *(const enum log_level *)fb;
	case V_SESSION_CACHE:
		return *(const enum session_cache_mode *)fa == *(const enum session_cache_mode *)fb;
	case V_MULTI_IDENTITY:
		return *(const enum multiple_identities *)fa == *(const enum multiple_identities *)fb;
	case V_PATH:
	case V_KEY:
	case V_AUDIT:
	case V_NAME:
		return str_equal(*(char *const *)fa, *(char *const *)fb);
	case V_PATH_LIST:
	case V_STR_LIST:
		return list_equal(fa, fb);
	default:
		return false; /* a kind this does not know differs: refuse rather than miss */
	}
}

/* Apply value to key k of the struct at obj. why gets the reason on error. */
int config_apply_value(struct parse_state *ps, const struct key_desc *k, void *obj,
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
	case V_SECONDS:
	case V_TLV_TYPE:
		return apply_number(k, field, value, why, wl);
	case V_CRL_POLICY:
	case V_KTLS:
	case V_LOG_LEVEL:
	case V_PROXY:
	case V_SESSION_CACHE:
	case V_ACCOUNTING:
	case V_MULTI_IDENTITY:
		return apply_keyword(k, field, value, why, wl);
	case V_LISTEN:
		return apply_listen(ps, value, why, wl);
	case V_NAME:
		return parse_name(value, field, why, wl);
	case V_CAPS:
		return config_parse_capabilities(value, field, why, wl);
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
		return config_strlist_push(field, value, ps->line);
	case V_AUDIT:
		if (strcmp(value, "-") == 0) {
			config_clear_field(k, field);
			return 0;
		}
		__attribute__((fallthrough)); /* otherwise a path */
	case V_KEY:
		/* A private key may be a URI (pkcs11:...), kept as written. */
		if (k->kind == V_KEY && keyref_is_uri(value)) {
			char *uri = strdup(value);
			ENSURE_PTR(uri, ENOMEM);
			config_clear_field(k, field);
			*(char **)field = uri;
			return 0;
		}
		__attribute__((fallthrough));
	case V_PATH:
	case V_PATH_LIST:
		GUARD(resolve_path(ps, value, &path));
		if (k->kind == V_PATH_LIST) {
			rc = config_strlist_push(field, path, ps->line);
			free(path);
			return rc;
		}
		config_clear_field(k, field);
		*(char **)field = path;
		return 0;
	default:
		snprintf(why, wl, "internal error: unknown key kind %d", (int)k->kind);
		return -EINVAL;
	}
}
