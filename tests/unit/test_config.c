/*
 * test_config.c: the configuration file and flags. Every error path is
 * checked for the exact "FILE:LINE: key 'NAME':" location, next to a twin
 * that shows the same key accepted when its value is right.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <malloc.h>

#include "config.h"
#include "config_internal.h"
#include "skip_because.h"

static char scratch[] = "/tmp/test_config.XXXXXX";
static char conf_path[600];
static char err[2048];

/* A minimal valid configuration, to which tests append. */
#define BASE                                                                   \
	"[mtlsd]\n"                                                            \
	"listen = 127.0.0.1:8443\n"                                            \
	"[server_cert.ec]\n"                                                   \
	"cert = server.pem\n"                                                  \
	"key = server.key\n"                                                   \
	"[partner.acme]\n"                                                     \
	"ca = acme-ca.pem\n"                                                   \
	"backend = 127.0.0.1:9000\n"

static void write_conf(const char *text)
{
	FILE *f = fopen(conf_path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Load text; return rc and leave cfg loaded (caller frees). */
static int load(struct mtlsd_config *cfg, const char *text)
{
	config_init(cfg);
	write_conf(text);
	err[0] = '\0';
	return config_load_file(cfg, conf_path, err, sizeof(err));
}

/* Loading text fails; err starts with "PATH:LINE: " + prefix and contains hint. */
static void expect_load_error(const char *text, int line, const char *prefix, const char *hint)
{
	struct mtlsd_config cfg;
	char want[1024];

	assert_int_equal(load(&cfg, text), -EINVAL);
	snprintf(want, sizeof(want), "%s:%d: %s", conf_path, line, prefix);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error is\n  %s\nexpected it to start with\n  %s", err, want);
	if (hint && !strstr(err, hint))
		fail_msg("error is\n  %s\nexpected it to contain\n  %s", err, hint);
	config_free(&cfg);
}

static void expect_load_ok(const char *text)
{
	struct mtlsd_config cfg;
	if (load(&cfg, text) != 0)
		fail_msg("unexpected error: %s", err);
	if (config_validate(&cfg, err, sizeof(err)) != 0)
		fail_msg("unexpected validation error: %s", err);
	config_free(&cfg);
}

/* BASE with keys added to its [mtlsd] section (from line 2 on). */
static const char *base_with(const char *keys)
{
	static char text[4096];
	snprintf(text, sizeof(text), "[mtlsd]\n%s%s", keys, BASE + strlen("[mtlsd]\n"));
	return text;
}

/* Issue 16: session_cache = auto (the default) is stateful without a
 * ticket_key_file and tickets with one; an explicit mode is kept as given.
 * session_cache_size 0 is sized to memory within its bounds. */
static void test_config_session_cache_auto(void **state)
{
	struct mtlsd_config cfg;
	(void)state;

	config_init(&cfg);
	assert_int_equal(cfg.session_cache, SESSION_CACHE_AUTO);
	assert_int_equal(config_session_cache(&cfg), SESSION_CACHE_STATEFUL);
	unsigned n = config_session_cache_size(&cfg);
	assert_true(n >= 1024 && n <= 1048576);
	cfg.session_cache_size = 5;
	assert_int_equal(config_session_cache_size(&cfg), 5);
	config_free(&cfg);

	assert_int_equal(load(&cfg, base_with("ticket_key_file = /etc/mtlsd/ticket.keys\n")), 0);
	assert_int_equal(config_session_cache(&cfg), SESSION_CACHE_TICKETS);
	config_free(&cfg);
}

/* Twin: an explicit mode wins over the rule, both ways. */
static void test_config_session_cache_explicit(void **state)
{
	struct mtlsd_config cfg;
	(void)state;

	assert_int_equal(load(&cfg, base_with("session_cache = tickets\n")), 0);
	assert_int_equal(config_session_cache(&cfg), SESSION_CACHE_TICKETS);
	config_free(&cfg);
	assert_int_equal(load(&cfg, base_with("session_cache = stateful\n"
						 "ticket_key_file = /etc/mtlsd/ticket.keys\n")), 0);
	assert_int_equal(config_session_cache(&cfg), SESSION_CACHE_STATEFUL);
	config_free(&cfg);
	expect_load_error(base_with("session_cache = lru\n"), 2, "key 'session_cache'", "auto");
}

static void test_config_defaults(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	config_init(&cfg);
	assert_int_equal(cfg.handshake_timeout_ms, 10000);
	assert_int_equal(cfg.idle_timeout_ms, 300000);
	assert_int_equal(cfg.connect_timeout_ms, 5000);
	assert_int_equal(cfg.drain_timeout_ms, 30000);
	assert_int_equal(cfg.max_connections, 10000);
	assert_int_equal(cfg.max_handshakes, 1000);
	assert_int_equal(cfg.workers, 0);
	assert_int_equal(cfg.ktls, KTLS_MODE_AUTO);
	assert_int_equal(cfg.log_level, LOG_LVL_INFO);
	assert_false(cfg.allow_insecure_key_perms);
	assert_null(cfg.audit_path);
	assert_int_equal(cfg.session_lifetime_s, 3600);
	config_free(&cfg);

	assert_int_equal(load(&cfg, BASE), 0);
	const struct cfg_partner *p = &cfg.partners[0];
	assert_int_equal(p->verify_depth, 3);
	assert_int_equal(p->crl_missing, CRL_POLICY_FAIL);
	assert_int_equal(p->crl_expired, CRL_POLICY_FAIL);
	assert_false(p->proxy_v2);
	assert_int_equal(p->proxy_tlv_type, 0xE0);
	assert_false(p->proxy_send_cert);
	assert_int_equal(p->line, 6);
	config_free(&cfg);
}

static void test_config_every_key(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	int rc = load(&cfg,
		      "; every key, once\n"
		      "[mtlsd]\n"
		      "listen = 127.0.0.1:8443, [::1]:8443\n"
		      "listen = 127.0.0.2:8444\n"
		      "workers = 4\n"
		      "cpu_pin = yes\n"
		      "handshake_timeout = 5s\n"
		      "idle_timeout = 2m\n"
		      "connect_timeout = 1500ms\n"
		      "drain_timeout = 0\n"
		      "max_connections = 5000\n"
		      "max_handshakes = 200\n"
		      "audit_log = /var/log/mtlsd/audit.json\n"
		      "ktls = off\n"
		      "log_level = debug\n"
		      "allow_insecure_key_permissions = true\n"
		      "[server_cert.ec]\n"
		      "cert = /etc/mtlsd/ec.pem\n"
		      "key = /etc/mtlsd/ec.key\n"
		      "[server_cert.rsa]\n"
		      "cert = /etc/mtlsd/rsa.pem\n"
		      "key = /etc/mtlsd/rsa.key\n"
		      "[partner.acme]\n"
		      "ca = /etc/mtlsd/acme/ca.pem\n"
		      "crl = /etc/mtlsd/acme/crl1.pem\n"
		      "crl = /etc/mtlsd/acme/crl2.pem\n"
		      "crl_missing = allow\n"
		      "crl_expired = allow\n"
		      "verify_depth = 4\n"
		      "backend = unix:/run/app.sock\n"
		      "proxy_protocol = v2\n"
		      "proxy_tlv_type = 0xE5\n"
		      "proxy_send_cert = on\n"
		      "allow_dns = *.acme.example\n"
		      "allow_uri = spiffe://acme.example/prod/*\n"
		      "allow_uri = spiffe://acme.example/ops/**\n"
		      "allow_cn = Acme, Inc. gateway\n"
		      "allow_ou = Payments\n");
	if (rc != 0)
		fail_msg("%s", err);
	assert_int_equal(cfg.n_listen, 3);
	assert_string_equal(cfg.listen[1].text, "[::1]:8443");
	assert_int_equal(cfg.listen[1].ss.ss_family, AF_INET6);
	assert_int_equal(cfg.workers, 4);
	assert_true(cfg.cpu_pin);
	assert_int_equal(cfg.handshake_timeout_ms, 5000);
	assert_int_equal(cfg.idle_timeout_ms, 120000);
	assert_int_equal(cfg.connect_timeout_ms, 1500);
	assert_int_equal(cfg.drain_timeout_ms, 0);
	assert_int_equal(cfg.max_connections, 5000);
	assert_int_equal(cfg.max_handshakes, 200);
	assert_string_equal(cfg.audit_path, "/var/log/mtlsd/audit.json");
	assert_int_equal(cfg.ktls, KTLS_MODE_OFF);
	assert_int_equal(cfg.log_level, LOG_LVL_DEBUG);
	assert_true(cfg.allow_insecure_key_perms);
	assert_int_equal(cfg.n_certs, 2);
	assert_string_equal(cfg.certs[1].key_path, "/etc/mtlsd/rsa.key");
	assert_int_equal(cfg.certs[1].line, 21);
	assert_int_equal(cfg.certs[1].key_line, 22);
	assert_int_equal(cfg.n_partners, 1);
	const struct cfg_partner *p = &cfg.partners[0];
	assert_string_equal(p->name, "acme");
	assert_int_equal(p->ca_line, 24);
	assert_int_equal(p->crl_paths.n, 2);
	assert_int_equal(p->crl_paths.lines[1], 26);
	assert_int_equal(p->crl_missing, CRL_POLICY_ALLOW);
	assert_int_equal(p->crl_expired, CRL_POLICY_ALLOW);
	assert_int_equal(p->verify_depth, 4);
	assert_true(p->backend.is_unix);
	assert_true(p->proxy_v2);
	assert_int_equal(p->proxy_tlv_type, 0xE5);
	assert_true(p->proxy_send_cert);
	assert_int_equal(p->allow_dns.n, 1);
	assert_int_equal(p->allow_uri.n, 2);
	assert_string_equal(p->allow_cn.v[0], "Acme, Inc. gateway"); /* commas kept */
	assert_string_equal(p->allow_ou.v[0], "Payments");
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	config_free(&cfg);
}

/* ---- what the key table derives: config_free, the reload's fixed keys --- */

/* A valid text for key k: which = 0 or 1 give two different values. */
static const char *sample_value(const struct key_desc *k, int which, char *buf, size_t len)
{
	switch (k->kind) {
	case V_LISTEN:
	case V_ADDR:
		snprintf(buf, len, "127.0.0.1:%d", 8443 + which);
		break;
	case V_UINT:
		snprintf(buf, len, "%u", which ? k->max : k->min);
		break;
	case V_DURATION:
		snprintf(buf, len, "%ums", which ? k->max : k->min);
		break;
	case V_SECONDS:
		snprintf(buf, len, "%us", which ? k->max : k->min);
		break;
	case V_TLV_TYPE:
		snprintf(buf, len, "0xE%d", which + 1);
		break;
	case V_BOOL:
		return which ? "yes" : "no";
	case V_PATH:
	case V_PATH_LIST:
	case V_AUDIT:
	case V_KEY:
		snprintf(buf, len, "/etc/mtlsd/%s.%d", k->name, which);
		break;
	case V_NAME:
	case V_STR_LIST:
		snprintf(buf, len, "%s%d", k->name, which);
		break;
	case V_CAPS:
		return which ? "net_raw" : "net_admin";
	case V_KTLS:
		return which ? "off" : "on";
	case V_LOG_LEVEL:
		return which ? "debug" : "warning";
	case V_SESSION_CACHE:
		return which ? "off" : "stateful";
	case V_ACCOUNTING:
	case V_PROXY:
		return which ? "off" : (k->kind == V_PROXY ? "v2" : "auto");
	case V_CRL_POLICY:
	case V_MULTI_IDENTITY:
		return which ? "allow" : (k->kind == V_CRL_POLICY ? "fail" : "refuse");
	default:
		fail_msg("key '%s': kind %d has no sample value in test_config.c; add one", k->name, k->kind);
	}
	return buf;
}

/* Apply the sample value of every key of kind's table to obj. */
static void fill_section(struct mtlsd_config *cfg, enum section_kind kind, void *obj, int which)
{
	struct parse_state ps = { .cfg = cfg, .path = "test", .dir = "/" };
	size_t n;
	const struct key_desc *keys = config_section_keys(kind, &n);
	char buf[256], why[512];

	assert_true(n > 0);
	for (size_t i = 0; i < n; i++)
		if (config_apply_value(&ps, &keys[i], obj, sample_value(&keys[i], which, buf, sizeof(buf)),
				       why, sizeof(why)) < 0)
			fail_msg("key '%s' = '%s': %s", keys[i].name, buf, why);
}

static void fill_every_key(struct mtlsd_config *cfg, int which)
{
	config_init(cfg);
	fill_section(cfg, SEC_MTLSD, cfg, which);
	cfg->n_certs = 1;
	fill_section(cfg, SEC_SERVER_CERT, &cfg->certs[0], which);
	struct cfg_partner *p = config_partner_add(cfg, "acme", 1);
	assert_non_null(p);
	fill_section(cfg, SEC_PARTNER, p, which);
	cfg->path = strdup("/etc/mtlsd/mtlsd.conf");
}

/* Every key that owns memory holds some (the test reached it). */
static void assert_section_owns(enum section_kind kind, const void *obj)
{
	size_t n;
	const struct key_desc *keys = config_section_keys(kind, &n);

	for (size_t i = 0; i < n; i++) {
		const void *field = (const char *)obj + keys[i].offset;
		if (config_key_owns(&keys[i]) == KEY_OWNS_STRING && !*(char *const *)field)
			fail_msg("key '%s' holds no string after being set", keys[i].name);
		if (config_key_owns(&keys[i]) == KEY_OWNS_LIST && ((const struct cfg_strlist *)field)->n == 0)
			fail_msg("key '%s' holds an empty list after being set", keys[i].name);
	}
}

/*
 * Every key of every section set (each path, name and list key owning heap
 * memory), then config_free: the heap in use is what it was. Under ASan
 * (the sanitize CI stage) mallinfo2 sees nothing and LeakSanitizer does
 * the same check at exit.
 */
#if defined(__SANITIZE_ADDRESS__)
#define HEAP_COUNTED false /* ASan's allocator: mallinfo2 does not see it, LSan does */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_COUNTED false
#endif
#endif
#ifndef HEAP_COUNTED
#define HEAP_COUNTED true
#endif

static void test_config_free_releases_every_key(void **state)
{
	struct mtlsd_config cfg;
	(void)state;

	fill_every_key(&cfg, 0); /* once for whatever the C library sets up lazily */
	config_free(&cfg);
	size_t before = mallinfo2().uordblks;
	fill_every_key(&cfg, 1);
	assert_section_owns(SEC_MTLSD, &cfg);
	assert_section_owns(SEC_SERVER_CERT, &cfg.certs[0]);
	assert_section_owns(SEC_PARTNER, &cfg.partners[0]);
	if (HEAP_COUNTED)
		assert_true(mallinfo2().uordblks > before);
	config_free(&cfg);
	size_t after = mallinfo2().uordblks;
	if (HEAP_COUNTED && after != before)
		fail_msg("config_free left %zd bytes allocated: a key the table does not free",
			 (ssize_t)(after - before));
}

/* Accepts a zeroed struct, and leaves one. */
static void test_config_free_zeroed(void **state)
{
	struct mtlsd_config cfg, zero;
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	memset(&zero, 0, sizeof(zero));
	config_free(&cfg);
	fill_every_key(&cfg, 0);
	config_free(&cfg);
	assert_memory_equal(&cfg, &zero, sizeof(cfg));
}

/*
 * The reload's start-up-only keys are the ones the table marks: changing
 * exactly one [mtlsd] key is refused, naming it, iff it is marked; and the
 * marked set is the one docs/configuration.md describes as fixed.
 */
static void test_config_fixed_keys_follow_the_table(void **state)
{
	static const char *const fixed[] = { "listen", "workers", "max_connections", "audit_log",
					     "user", "group", "control_socket", "control_group" };
	struct mtlsd_config a, b;
	size_t n, n_fixed = 0;
	const struct key_desc *keys = config_section_keys(SEC_MTLSD, &n);
	char buf[256], why[512];
	(void)state;

	fill_every_key(&a, 0);
	fill_every_key(&b, 0);
	assert_null(config_fixed_key_changed(&a, &b));
	for (size_t i = 0; i < n; i++) {
		struct parse_state ps = { .cfg = &b, .path = "test", .dir = "/" };
		bool want = false;
		for (size_t f = 0; f < ARRAY_SIZE(fixed); f++)
			want |= strcmp(fixed[f], keys[i].name) == 0;
		n_fixed += keys[i].fixed;
		if (keys[i].fixed != want)
			fail_msg("key '%s' is %sfixed at start in lib/config.c, expected %s", keys[i].name,
				 keys[i].fixed ? "" : "not ", want ? "fixed" : "reloadable");
		/* b differs from a in key i only (lists and listen: replaced). */
		config_clear_field(&keys[i], (char *)&b + keys[i].offset);
		if (keys[i].kind == V_LISTEN)
			b.n_listen = 0;
		assert_int_equal(config_apply_value(&ps, &keys[i], &b, sample_value(&keys[i], 1, buf, sizeof(buf)),
						    why, sizeof(why)), 0);
		assert_false(config_field_equal(&keys[i], &a, &b));
		const char *changed = config_fixed_key_changed(&a, &b);
		if (want && (!changed || strcmp(changed, keys[i].name) != 0))
			fail_msg("changing '%s' gave %s, expected the key named", keys[i].name,
				 changed ? changed : "no fixed key");
		if (!want && changed)
			fail_msg("changing '%s' reported '%s' as changed", keys[i].name, changed);
		config_free(&b);
		fill_every_key(&b, 0);
	}
	assert_int_equal(n_fixed, ARRAY_SIZE(fixed));
	config_free(&a);
	config_free(&b);
}

static void test_config_relative_paths_resolve_against_file(void **state)
{
	struct mtlsd_config cfg;
	char want[700];
	(void)state;
	assert_int_equal(load(&cfg, BASE "crl = sub/crl.pem\n"), 0);
	snprintf(want, sizeof(want), "%s/server.pem", scratch);
	assert_string_equal(cfg.certs[0].cert_path, want);
	snprintf(want, sizeof(want), "%s/sub/crl.pem", scratch);
	assert_string_equal(cfg.partners[0].crl_paths.v[0], want);
	config_free(&cfg);
}

static void test_config_unknown_key_did_you_mean(void **state)
{
	(void)state;
	expect_load_error(BASE "alow_uri = spiffe://x/*\n", 9,
			  "unknown key 'alow_uri' in [partner.acme]", "did you mean 'allow_uri'?");
	expect_load_ok(BASE "allow_uri = spiffe://x/*\n");
}

static void test_config_unknown_key_lists_valid(void **state)
{
	(void)state;
	expect_load_error("[mtlsd]\ncolour = blue\n", 2, "unknown key 'colour' in [mtlsd]",
			  "valid keys: listen, workers,");
}

static void test_config_key_in_wrong_section(void **state)
{
	(void)state;
	expect_load_error("[mtlsd]\nbackend = 127.0.0.1:9000\n", 2,
			  "key 'backend' belongs in [partner.NAME], not in [mtlsd]", NULL);
	expect_load_error(BASE "listen = 127.0.0.1:1\n", 9,
			  "key 'listen' belongs in [mtlsd], not in [partner.acme]", NULL);
	expect_load_ok(BASE); /* the same keys in their own sections */
}

static void test_config_unknown_section(void **state)
{
	(void)state;
	/* Even with no key under it: the header itself is the error. */
	expect_load_error(BASE "\n[partners.x]\n", 10, "unknown section [partners.x]",
			  "[partner.NAME]");
	expect_load_error("[partner.a b]\n", 1, "section [partner.a b]: name 'a b'", NULL);
}

static void test_config_key_outside_section(void **state)
{
	(void)state;
	expect_load_error("listen = 127.0.0.1:1\n", 1, "key 'listen' is outside any section", "[mtlsd]");
}

static void test_config_repeated_key_names_both_lines(void **state)
{
	(void)state;
	expect_load_error(BASE "ca = other.pem\n", 9, "key 'ca': already set on line 7", NULL);
	/* crl is repeatable */
	expect_load_ok(BASE "crl = a.pem\ncrl = b.pem\n");
}

static void test_config_repeated_section(void **state)
{
	(void)state;
	expect_load_error(BASE "[partner.acme]\n", 9, "section [partner.acme] already defined on line 6", NULL);
	expect_load_error(BASE "[mtlsd]\n", 9, "section [mtlsd] already defined on line 1", NULL);
	expect_load_ok(BASE "[partner.other]\nca = o.pem\nbackend = 127.0.0.1:9001\n");
}

static void test_config_bad_values(void **state)
{
	(void)state;
	expect_load_error(BASE "verify_depth = 0\n", 9, "key 'verify_depth': '0' is not a number in 1..8", NULL);
	expect_load_ok(BASE "verify_depth = 8\n");
	expect_load_error(BASE "verify_depth = 9\n", 9, "key 'verify_depth':", NULL);
	/* never C octal: 010 is ten, out of range */
	expect_load_error(BASE "verify_depth = 010\n", 9, "key 'verify_depth': '010' is not a number", NULL);
	expect_load_ok(BASE "verify_depth = 07\nproxy_tlv_type = 224\n");
	expect_load_error(BASE "proxy_send_cert = maybe\n", 9, "key 'proxy_send_cert': 'maybe' is not a boolean", NULL);
	expect_load_error(BASE "proxy_protocol = v1\n", 9, "key 'proxy_protocol': 'v1' is not one of", "off, v2");
	expect_load_error(BASE "proxy_tlv_type = 0xD0\n", 9, "key 'proxy_tlv_type': '0xD0' is not in 0xE0..0xEF", NULL);
	expect_load_ok(BASE "proxy_tlv_type = 0xEF\n");
	expect_load_error(BASE "crl_missing = ignore\n", 9, "key 'crl_missing':", "fail, allow");
	expect_load_error(BASE "[partner.b]\nbackend = nowhere\n", 10, "key 'backend': 'nowhere' is not an address", NULL);
	expect_load_error(BASE "[mtlsd]\n", 9, "section [mtlsd] already", NULL);
	expect_load_error("[mtlsd]\nhandshake_timeout = 10 s\n", 2, "key 'handshake_timeout': '10 s' is not a duration", NULL);
	expect_load_error("[mtlsd]\nhandshake_timeout = 20m\n", 2, "key 'handshake_timeout': '20m' is out of range", NULL);
	expect_load_error("[mtlsd]\nworkers = -1\n", 2, "key 'workers':", NULL);
	expect_load_error("[mtlsd]\nktls = maybe\n", 2, "key 'ktls':", "auto, on, off");
	expect_load_error("[mtlsd]\nlog_level = loud\n", 2, "key 'log_level':", "debug");
	expect_load_error("[mtlsd]\nlisten = unix:/run/x.sock\n", 2, "key 'listen': 'unix:/run/x.sock' is not a TCP address", NULL);
	expect_load_error("[mtlsd]\nlisten = 127.0.0.1:1, :2\n", 2, "key 'listen': ':2'", NULL);
	expect_load_error("[mtlsd]\naudit_log =\n", 2, "key 'audit_log': empty value", NULL);
}

/* session_lifetime: whole seconds, 1 s to 7 days (a TLS 1.3 ticket's
 * limit); sub-second values would be rounded, so they are refused. */
static void test_config_session_lifetime(void **state)
{
	struct mtlsd_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "[mtlsd]\nsession_lifetime = 90m\n"), 0);
	assert_int_equal(cfg.session_lifetime_s, 5400);
	config_free(&cfg);
	assert_int_equal(load(&cfg, "[mtlsd]\nsession_lifetime = 2000ms\n"), 0);
	assert_int_equal(cfg.session_lifetime_s, 2);
	config_free(&cfg);
	assert_int_equal(load(&cfg, "[mtlsd]\nsession_lifetime = 168h\n"), 0);
	assert_int_equal(cfg.session_lifetime_s, 604800);
	config_free(&cfg);
	expect_load_error("[mtlsd]\nsession_lifetime = 1500ms\n", 2,
			  "key 'session_lifetime': '1500ms' is not a duration in whole seconds", NULL);
	expect_load_error("[mtlsd]\nsession_lifetime = 0\n", 2,
			  "key 'session_lifetime': '0' is out of range; give 1s..604800s", NULL);
	expect_load_error("[mtlsd]\nsession_lifetime = 169h\n", 2, "key 'session_lifetime': '169h' is out of range", NULL);
	expect_load_error("[mtlsd]\nsession_lifetime = soon\n", 2, "key 'session_lifetime': 'soon' is not a duration", NULL);
}

static void test_config_syntax_error_line(void **state)
{
	(void)state;
	expect_load_error(BASE "this line has no equals sign\n", 9, "syntax error", NULL);
	expect_load_error("[mtlsd\n", 1, "syntax error", NULL);
}

/* inih would glue an indented line onto the previous key; we refuse it. */
static void test_config_indented_continuation_refused(void **state)
{
	(void)state;
	expect_load_error(BASE "allow_dns = a.example\n    b.example\n", 10, "syntax error", NULL);
	expect_load_ok(BASE "    allow_uri = spiffe://a/*\n");
}

static void test_config_long_line_refused(void **state)
{
	char text[1024];
	(void)state;
	/* 198 characters is the most Debian's libinih build can hold */
	snprintf(text, sizeof(text), BASE "crl = /%0187d.pem\n", 1);
	expect_load_ok(text);
	snprintf(text, sizeof(text), BASE "crl = /%0188d.pem\n", 1);
	expect_load_error(text, 9, "line is longer than 198 characters", NULL);
}

static void test_config_comments(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	assert_int_equal(load(&cfg, "# hash\n; semi\n" BASE "verify_depth = 2 ; inline\n"), 0);
	assert_int_equal(cfg.partners[0].verify_depth, 2);
	config_free(&cfg);
	/* a byte order mark and CRLF line ends, as some editors write */
	assert_int_equal(load(&cfg, "\xEF\xBB\xBF[mtlsd]\r\nworkers = 3\r\n"), 0);
	assert_int_equal(cfg.workers, 3);
	config_free(&cfg);
	/* '#' after a value is part of it: only " ;" starts a comment there */
	expect_load_error("[mtlsd]\nworkers = 3 # three\n", 2, "key 'workers': '3 # three'", NULL);
}

static void test_config_missing_file(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	config_init(&cfg);
	assert_int_equal(config_load_file(&cfg, "/nonexistent/mtlsd.conf", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/mtlsd.conf: "));
	assert_non_null(strstr(err, "check the path"));
	config_free(&cfg);
}

static void test_config_world_writable_file_refused(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	write_conf(BASE);
	assert_int_equal(chmod(conf_path, 0666), 0);
	config_init(&cfg);
	assert_int_equal(config_load_file(&cfg, conf_path, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "writable by any user (mode 0666, owner uid"));
	assert_non_null(strstr(err, "chmod 0640"));
	config_free(&cfg);
	assert_int_equal(chmod(conf_path, 0644), 0);
	/* a directory is not a configuration file */
	config_init(&cfg);
	assert_int_equal(config_load_file(&cfg, scratch, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	config_free(&cfg);
}

/*
 * Started as root, the file can name engines, providers and openssl_conf,
 * which load code that runs as root: a group that may write it, or an owner
 * other than root (mtlsd's service user included: a compromised mtlsd could
 * rewrite what root loads next), is refused with the mode, the owner and
 * the fix. The twins: root's 0640 (group-readable for the service user's
 * reloads) and 0600 load.
 */
static void test_config_group_writable_refused_as_root(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	SKIP_UNLESS_ROOT("the rule applies to a root mtlsd, and only root can make a root-owned file");
	write_conf(BASE);
	assert_int_equal(chmod(conf_path, 0664), 0);
	config_init(&cfg);
	assert_int_equal(config_load_file(&cfg, conf_path, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, conf_path));
	assert_non_null(strstr(err, "writable by its group (mode 0664, owner uid 0"));
	assert_non_null(strstr(err, "chmod 0640"));
	config_free(&cfg);
	assert_int_equal(chmod(conf_path, 0640), 0);
	config_init(&cfg);
	assert_int_equal(config_load_file(&cfg, conf_path, err, sizeof(err)), 0);
	config_free(&cfg);
}

static void test_config_not_owned_by_root_refused_as_root(void **state)
{
	struct mtlsd_config cfg;
	char want[700];
	(void)state;
	SKIP_UNLESS_ROOT("the rule applies to a root mtlsd, and only root can chown a file away");
	/* Owned by the user the file itself names as mtlsd's: still refused. */
	char text[2048];
	snprintf(text, sizeof(text), "[mtlsd]\nuser = 4321\ngroup = 4321\n%s", &BASE[strlen("[mtlsd]\n")]);
	write_conf(text);
	assert_int_equal(chmod(conf_path, 0600), 0);
	assert_int_equal(chown(conf_path, 4321, 4321), 0);
	config_init(&cfg);
	assert_int_equal(config_load_file(&cfg, conf_path, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "owned by uid 4321 (mode 0600)"));
	snprintf(want, sizeof(want), "run: chown root %s", conf_path);
	assert_non_null(strstr(err, want));
	config_free(&cfg);
	assert_int_equal(chown(conf_path, 0, 0), 0);
	config_init(&cfg);
	assert_int_equal(config_load_file(&cfg, conf_path, err, sizeof(err)), 0);
	config_free(&cfg);
}

static void expect_validate_error(const char *text, int line, const char *what)
{
	struct mtlsd_config cfg;
	char want[1024];
	assert_int_equal(load(&cfg, text), 0);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -EINVAL);
	if (line)
		snprintf(want, sizeof(want), "%s:%d: %s", conf_path, line, what);
	else
		snprintf(want, sizeof(want), "%s: %s", conf_path, what);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error is\n  %s\nexpected it to start with\n  %s", err, want);
	config_free(&cfg);
}

static void test_config_validate_missing_parts(void **state)
{
	(void)state;
	expect_validate_error("[server_cert.ec]\ncert = a\nkey = b\n", 0, "no listen address");
	expect_validate_error("[mtlsd]\nlisten = 127.0.0.1:1\n", 0, "no server certificate");
	expect_validate_error("[mtlsd]\nlisten = 127.0.0.1:1\n[server_cert.x]\ncert = c.pem\n", 4,
			      "server certificate");
	expect_validate_error("[mtlsd]\nlisten = 127.0.0.1:1\n[server_cert.x]\ncert = c\nkey = k\n", 0,
			      "no partner");
	expect_validate_error(BASE "[partner.b]\nbackend = 127.0.0.1:1\n", 9, "[partner.b]: no CA bundle");
	expect_validate_error(BASE "[partner.b]\nca = b.pem\n", 9, "[partner.b]: no backend");
	expect_validate_error(BASE "proxy_send_cert = yes\n", 6, "[partner.acme]: proxy_send_cert needs");
	expect_validate_error("[mtlsd]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:1\n"
			      "[server_cert.x]\ncert = c\nkey = k\n[partner.p]\nca = c\nbackend = 127.0.0.1:2\n",
			      0, "listen address 127.0.0.1:1 is given twice");
	expect_validate_error("[mtlsd]\nlisten = 127.0.0.1:1\nmax_connections = 10\nmax_handshakes = 11\n"
			      "[server_cert.x]\ncert = c\nkey = k\n[partner.p]\nca = c\nbackend = 127.0.0.1:2\n",
			      0, "max_handshakes (11) is above max_connections (10)");
	expect_load_ok(BASE "proxy_protocol = v2\nproxy_send_cert = yes\n");
}

/* Random files over the parser's alphabet: every one either loads or
 * fails with -EINVAL and a located message (and never crashes: run under
 * ASan in CI to make "never" mean something). Seeded: reproducible. */
static void test_config_garbage_is_refused_cleanly(void **state)
{
	static const char *const atoms[] = {
		"[", "]", "=", ";", "#", ":", " ", "\t", "\n", "\n", "\r", ".", ",", "mtlsd",
		"partner", "server_cert", "listen", "ca", "crl", "allow_uri", "127.0.0.1:80", "[::1]:1",
		"unix:/x", "yes", "0x", "9999999999", "*", "\xEF\xBB\xBF", "\xff", "verify_depth",
	};
	char text[2048], prefix[700];
	unsigned seed = 12345;
	struct mtlsd_config cfg;
	(void)state;
	snprintf(prefix, sizeof(prefix), "%s:", conf_path);
	for (int round = 0; round < 500; round++) {
		size_t len = 0;
		int n = 1 + (int)(rand_r(&seed) % 60);
		for (int i = 0; i < n; i++) {
			const char *a = atoms[(size_t)rand_r(&seed) % ARRAY_SIZE(atoms)];
			if (len + strlen(a) + 1 >= sizeof(text))
				break;
			strcpy(text + len, a);
			len += strlen(a);
		}
		text[len] = '\0';
		int rc = load(&cfg, text);
		if (rc != 0 && (rc != -EINVAL || strncmp(err, prefix, strlen(prefix)) != 0))
			fail_msg("round %d: rc %d, err '%s' for:\n%s", round, rc, err, text);
		config_free(&cfg);
	}
}

static int flag(struct mtlsd_config *cfg, const char *name, const char *value)
{
	err[0] = '\0';
	return config_apply_flag(cfg, name, value, err, sizeof(err));
}

static void test_config_flags_single_partner(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	config_init(&cfg);
	assert_int_equal(flag(&cfg, "listen", "127.0.0.1:8443"), 0);
	assert_int_equal(flag(&cfg, "cert", "/etc/mtlsd/server-chain.pem"), 0);
	assert_int_equal(flag(&cfg, "key", "/etc/mtlsd/server.key"), 0);
	assert_int_equal(flag(&cfg, "client-ca", "partner-ca.pem"), 0);
	assert_int_equal(flag(&cfg, "crl", "/etc/mtlsd/crls.pem"), 0);
	assert_int_equal(flag(&cfg, "backend", "127.0.0.1:9000"), 0);
	assert_int_equal(flag(&cfg, "proxy-protocol", "v2"), 0);
	assert_int_equal(flag(&cfg, "workers", "2"), 0);
	assert_int_equal(flag(&cfg, "handshake-timeout", "3s"), 0);
	assert_int_equal(flag(&cfg, "cpu-pin", NULL), 0);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.n_partners, 1);
	assert_string_equal(cfg.partners[0].name, "default");
	assert_int_equal(cfg.partners[0].line, 0);
	assert_true(cfg.partners[0].proxy_v2);
	assert_int_equal(cfg.partners[0].crl_paths.n, 1);
	/* a relative flag path is made absolute against the working directory */
	assert_int_equal(cfg.partners[0].ca_path[0], '/');
	assert_non_null(strstr(cfg.partners[0].ca_path, "/partner-ca.pem"));
	assert_int_equal(cfg.workers, 2);
	assert_int_equal(cfg.handshake_timeout_ms, 3000);
	assert_true(cfg.cpu_pin);
	config_free(&cfg);
}

static void test_config_flags_errors(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	config_init(&cfg);
	assert_int_equal(flag(&cfg, "workers", "many"), -EINVAL);
	assert_string_equal(err, "--workers: 'many' is not a number in 0..1024");
	assert_int_equal(flag(&cfg, "workers", "8"), 0);
	assert_int_equal(flag(&cfg, "colour", "blue"), -EINVAL);
	assert_non_null(strstr(err, "--colour: unknown option"));
	assert_int_equal(flag(&cfg, "backend", NULL), -EINVAL);
	assert_string_equal(err, "--backend: needs a value");
	assert_int_equal(flag(&cfg, "proxy-protocol", "v3"), -EINVAL);
	assert_non_null(strstr(err, "--proxy-protocol: 'v3' is not one of"));
	config_free(&cfg);
}

static void test_config_flags_override_file(void **state)
{
	struct mtlsd_config cfg;
	(void)state;
	assert_int_equal(load(&cfg, "[mtlsd]\nlisten = 127.0.0.1:1, 127.0.0.1:2\nworkers = 3\n"
			      "[server_cert.ec]\ncert = a.pem\nkey = a.key\n"
			      "[partner.default]\nca = file-ca.pem\nbackend = 127.0.0.1:9\ncrl = f.pem\n"), 0);
	assert_int_equal(flag(&cfg, "listen", "127.0.0.1:3"), 0);
	assert_int_equal(flag(&cfg, "listen", "127.0.0.1:4"), 0);
	assert_int_equal(cfg.n_listen, 2); /* the file's two were replaced */
	assert_string_equal(cfg.listen[0].text, "127.0.0.1:3");
	assert_int_equal(flag(&cfg, "crl", "/x/g.pem"), 0);
	assert_int_equal(cfg.partners[0].crl_paths.n, 1);
	assert_string_equal(cfg.partners[0].crl_paths.v[0], "/x/g.pem");
	assert_int_equal(flag(&cfg, "client-ca", "/x/flag-ca.pem"), 0);
	assert_string_equal(cfg.partners[0].ca_path, "/x/flag-ca.pem");
	assert_int_equal(cfg.partners[0].ca_line, 0);
	assert_int_equal(cfg.workers, 3); /* untouched by flags */
	/* --cert/--key pairs replace the file's server certs */
	assert_int_equal(flag(&cfg, "key", "/x/ec.key"), 0);
	assert_int_equal(flag(&cfg, "cert", "/x/ec.pem"), 0);
	assert_int_equal(flag(&cfg, "cert", "/x/rsa.pem"), 0);
	assert_int_equal(flag(&cfg, "key", "/x/rsa.key"), 0);
	assert_int_equal(cfg.n_certs, 2);
	assert_string_equal(cfg.certs[0].cert_path, "/x/ec.pem");
	assert_string_equal(cfg.certs[0].key_path, "/x/ec.key");
	assert_string_equal(cfg.certs[1].key_path, "/x/rsa.key");
	assert_int_equal(cfg.n_partners, 1);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	/* a lone --cert is caught by validation */
	assert_int_equal(flag(&cfg, "cert", "/x/third.pem"), 0);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "server certificate /x/third.pem has no key"));
	config_free(&cfg);
}

static void test_config_parse_addr(void **state)
{
	struct cfg_addr a;
	(void)state;
	assert_int_equal(config_parse_addr("127.0.0.1:9000", &a), 0);
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 9000);
	assert_int_equal(a.len, sizeof(struct sockaddr_in));
	assert_int_equal(config_parse_addr("[::1]:8443", &a), 0);
	assert_int_equal(a.ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port), 8443);
	assert_int_equal(config_parse_addr("localhost:80", &a), 0);
	assert_int_equal(config_parse_addr("unix:/run/app.sock", &a), 0);
	assert_true(a.is_unix);
	assert_string_equal(((struct sockaddr_un *)&a.ss)->sun_path, "/run/app.sock");
	assert_int_equal(config_parse_addr("unix:@abstract", &a), 0);
	assert_int_equal(((struct sockaddr_un *)&a.ss)->sun_path[0], '\0');
	assert_string_equal(a.text, "unix:@abstract");
}

static void test_config_parse_addr_rejects(void **state)
{
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:80x",
		"::1:80", "[::1]", "[::1]80", "[127.0.0.1]:80", "unix:", "unix:relative.sock",
		"127.0.0.1:-1", "127.0.0.1:0x50", "name.invalid:80", ":80", "127.0.0.1:080",
	};
	struct cfg_addr a;
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (config_parse_addr(bad[i], &a) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
}

static void test_config_parse_duration(void **state)
{
	unsigned ms;
	(void)state;
	assert_int_equal(config_parse_duration_ms("10s", &ms), 0);
	assert_int_equal(ms, 10000);
	assert_int_equal(config_parse_duration_ms("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(config_parse_duration_ms("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(config_parse_duration_ms("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(config_parse_duration_ms("7", &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(config_parse_duration_ms("0", &ms), 0);
	assert_int_equal(ms, 0);
}

static void test_config_parse_duration_rejects(void **state)
{
	static const char *const bad[] = {
		"", "s", "1.5s", "-1", "+1", " 1s", "1 s", "10x", "10sec", "4294967296ms", "5000000s",
		"99999999999999999999",
	};
	unsigned ms;
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (config_parse_duration_ms(bad[i], &ms) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(scratch))
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/mtlsd.conf", scratch);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(conf_path);
	return rmdir(scratch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_session_cache_auto),
		cmocka_unit_test(test_config_session_cache_explicit),
		cmocka_unit_test(test_config_every_key),
		cmocka_unit_test(test_config_free_releases_every_key),
		cmocka_unit_test(test_config_free_zeroed),
		cmocka_unit_test(test_config_fixed_keys_follow_the_table),
		cmocka_unit_test(test_config_relative_paths_resolve_against_file),
		cmocka_unit_test(test_config_unknown_key_did_you_mean),
		cmocka_unit_test(test_config_unknown_key_lists_valid),
		cmocka_unit_test(test_config_key_in_wrong_section),
		cmocka_unit_test(test_config_unknown_section),
		cmocka_unit_test(test_config_key_outside_section),
		cmocka_unit_test(test_config_repeated_key_names_both_lines),
		cmocka_unit_test(test_config_repeated_section),
		cmocka_unit_test(test_config_bad_values),
		cmocka_unit_test(test_config_session_lifetime),
		cmocka_unit_test(test_config_syntax_error_line),
		cmocka_unit_test(test_config_indented_continuation_refused),
		cmocka_unit_test(test_config_long_line_refused),
		cmocka_unit_test(test_config_comments),
		cmocka_unit_test(test_config_missing_file),
		cmocka_unit_test(test_config_world_writable_file_refused),
		cmocka_unit_test(test_config_group_writable_refused_as_root),
		cmocka_unit_test(test_config_not_owned_by_root_refused_as_root),
		cmocka_unit_test(test_config_validate_missing_parts),
		cmocka_unit_test(test_config_garbage_is_refused_cleanly),
		cmocka_unit_test(test_config_flags_single_partner),
		cmocka_unit_test(test_config_flags_errors),
		cmocka_unit_test(test_config_flags_override_file),
		cmocka_unit_test(test_config_parse_addr),
		cmocka_unit_test(test_config_parse_addr_rejects),
		cmocka_unit_test(test_config_parse_duration),
		cmocka_unit_test(test_config_parse_duration_rejects),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
