/*
 * crypto_accel.c: providers, the engine and CPU features (lib/crypto_accel.h).
 *
 * Order matters and follows OpenSSL's own start-up: the config file first (it
 * may load and configure providers with parameters, which OpenSSL 3.0 only
 * accepts from a config file), then the search path, then providers by name,
 * then the engine, whose control commands run before ENGINE_init() (SO_PATH,
 * ID, LOAD for the dynamic engine; MODULE_PATH for libp11's pkcs11 engine).
 *
 * The engine API is deprecated in OpenSSL 3 but is still how Debian ships
 * libp11's PKCS#11 support and how accelerators such as Intel QAT plug in;
 * this file is the one place mtlsd calls it for loading.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "crypto_accel.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/provider.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "keyref.h"
#include "log.h"

#define MAX_PROVIDERS 16

static struct {
	bool applied;
	unsigned char settings[SHA256_DIGEST_LENGTH]; /* of the keys applied */
	ENGINE *engine;
	OSSL_PROVIDER *providers[MAX_PROVIDERS];
	size_t n_providers;
} accel;

ENGINE *crypto_accel_engine(void)
{
	return accel.engine;
}

__attribute__((format(printf, 3, 4)))
static int accel_fail(char *err, size_t errlen, const char *fmt, ...)
{
	char ossl[256];
	va_list ap;
	va_start(ap, fmt);
	int off = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	ossl_errors_str(ossl, sizeof(ossl));
	if (off > 0 && (size_t)off < errlen && ossl[0])
		snprintf(err + off, errlen - (size_t)off, " (OpenSSL: %s)", ossl);
	return -EINVAL;
}

static int load_provider(const char *name, char *err, size_t errlen)
{
	ENSURE(accel.n_providers < MAX_PROVIDERS, E2BIG);
	OSSL_PROVIDER *p = OSSL_PROVIDER_load(NULL, name);
	if (!p)
		return accel_fail(err, errlen, "provider = %s: OpenSSL cannot load it; check the name, "
				  "provider_path (or OPENSSL_MODULES) and that the module is installed", name);
	accel.providers[accel.n_providers++] = p;
	return 0;
}

static int load_providers(const struct mtlsd_config *cfg, char *err, size_t errlen)
{
	bool has_base = false;

	if (cfg->provider_path && OSSL_PROVIDER_set_default_search_path(NULL, cfg->provider_path) != 1)
		return accel_fail(err, errlen, "provider_path = %s: not accepted; give a directory",
				  cfg->provider_path);
	for (size_t i = 0; i < cfg->providers.n; i++) {
		const char *name = cfg->providers.v[i];
		has_base |= strcmp(name, "default") == 0 || strcmp(name, "fips") == 0;
		GUARD(load_provider(name, err, errlen));
	}
	/* Loading any provider by hand switches off OpenSSL's implicit
	 * "default": keep TLS working unless the operator chose fips. */
	if (cfg->providers.n > 0 && !has_base)
		GUARD(load_provider("default", err, errlen));
	return 0;
}

/* "NAME:VALUE" or "NAME" (a command without argument, such as LOAD). */
static int engine_ctrl(ENGINE *e, const char *cmd, char *err, size_t errlen)
{
	char name[64];
	const char *colon = strchr(cmd, ':');
	size_t len = colon ? (size_t)(colon - cmd) : strlen(cmd);

	char shown[512];

	keyref_redact_engine_ctrl(cmd, shown, sizeof(shown));
	if (len == 0 || len >= sizeof(name))
		return accel_fail(err, errlen, "engine_ctrl = %s: write NAME:VALUE or NAME "
				  "(e.g. SO_PATH:/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so)", shown);
	memcpy(name, cmd, len);
	name[len] = '\0';
	if (ENGINE_ctrl_cmd_string(e, name, colon ? colon + 1 : NULL, 0) != 1)
		return accel_fail(err, errlen, "engine_ctrl = %s: the engine refused command %s; "
				  "see `openssl engine -vvv %s` for the commands it takes", shown, name,
				  ENGINE_get_id(e));
	return 0;
}

static int load_engine(const struct mtlsd_config *cfg, char *err, size_t errlen)
{
	/* ENGINE_by_id() also finds "pkcs11" as pkcs11.so in OpenSSL's engines
	 * directory, through the dynamic engine. */
	ENGINE_load_builtin_engines();
	ENGINE *e = ENGINE_by_id(cfg->engine);
	if (!e)
		return accel_fail(err, errlen, "engine = %s: no such engine; install it (for PKCS#11: "
				  "apt-get install libengine-pkcs11-openssl) or use engine = dynamic with "
				  "engine_ctrl = SO_PATH:/path/to/engine.so", cfg->engine);
	for (size_t i = 0; i < cfg->engine_ctrls.n; i++) {
		if (engine_ctrl(e, cfg->engine_ctrls.v[i], err, errlen) < 0) {
			ENGINE_free(e);
			return -EINVAL;
		}
	}
	if (ENGINE_init(e) != 1) {
		int rc = accel_fail(err, errlen, "engine = %s: initialisation failed; check its "
				    "engine_ctrl commands (MODULE_PATH, SO_PATH)", cfg->engine);
		ENGINE_free(e);
		return rc;
	}
	/* The functional reference from ENGINE_init() keeps it alive. */
	ENGINE_free(e);
	accel.engine = e;
	for (size_t i = 0; i < cfg->engine_default.n; i++)
		if (ENGINE_set_default_string(e, cfg->engine_default.v[i]) != 1)
			return accel_fail(err, errlen, "engine_default = %s: not accepted by engine %s; "
					  "give ALL or a list such as RSA,EC,PKEY_CRYPTO",
					  cfg->engine_default.v[i], cfg->engine);
	return 0;
}

static void add_setting(EVP_MD_CTX *md, const char *key, const char *value)
{
	if (!value)
		return;
	EVP_DigestUpdate(md, key, strlen(key) + 1);
	EVP_DigestUpdate(md, value, strlen(value) + 1);
}

/* A digest of the keys this file applies, to notice a reload changing them. */
static void settings_digest(const struct mtlsd_config *cfg, unsigned char out[SHA256_DIGEST_LENGTH])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	memset(out, 0, SHA256_DIGEST_LENGTH);
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return;
	}
	add_setting(md, "openssl_conf", cfg->openssl_conf);
	add_setting(md, "provider_path", cfg->provider_path);
	for (size_t i = 0; i < cfg->providers.n; i++)
		add_setting(md, "provider", cfg->providers.v[i]);
	add_setting(md, "engine", cfg->engine);
	for (size_t i = 0; i < cfg->engine_ctrls.n; i++)
		add_setting(md, "engine_ctrl", cfg->engine_ctrls.v[i]);
	for (size_t i = 0; i < cfg->engine_default.n; i++)
		add_setting(md, "engine_default", cfg->engine_default.v[i]);
	EVP_DigestFinal_ex(md, out, NULL);
	EVP_MD_CTX_free(md);
}

int crypto_accel_apply(const struct mtlsd_config *cfg, char *err, size_t errlen)
{
	unsigned char now[SHA256_DIGEST_LENGTH];

	settings_digest(cfg, now);
	if (accel.applied) {
		if (memcmp(now, accel.settings, sizeof(now)) != 0)
			log_warn("%s: openssl_conf/provider/engine keys changed; they take effect when "
				 "mtlsd restarts (loaded providers and engines stay for the process)",
				 cfg->path ? cfg->path : "configuration");
		return 0;
	}
	accel.applied = true;
	memcpy(accel.settings, now, sizeof(now));
	ERR_clear_error();
	struct stat st;
	if (cfg->openssl_conf && stat(cfg->openssl_conf, &st) == 0)
		GUARD(config_check_trusted_file("openssl_conf = ", cfg->openssl_conf, &st, err, errlen));
	if (cfg->openssl_conf && OSSL_LIB_CTX_load_config(NULL, cfg->openssl_conf) != 1)
		return accel_fail(err, errlen, "openssl_conf = %s: OpenSSL could not apply it; check it "
				  "with `OPENSSL_CONF=%s openssl list -providers`", cfg->openssl_conf,
				  cfg->openssl_conf);
	GUARD(load_providers(cfg, err, errlen));
	if (cfg->engine)
		GUARD(load_engine(cfg, err, errlen));
	else if (cfg->engine_ctrls.n || cfg->engine_default.n)
		return accel_fail(err, errlen, "engine_ctrl/engine_default without engine; add "
				  "engine = ID (e.g. pkcs11)");
	return 0;
}

void crypto_accel_shutdown(void)
{
	if (accel.engine)
		ENGINE_finish(accel.engine);
	accel.engine = NULL;
	while (accel.n_providers > 0)
		OSSL_PROVIDER_unload(accel.providers[--accel.n_providers]);
	accel.applied = false;
}

/* ---- what accelerates crypto here --------------------------------------- */

const char *crypto_cpu_str(const struct crypto_cpu *c, char *buf, size_t len)
{
	const struct { bool on; const char *name; } f[] = {
		{ c->aesni, "AES-NI" }, { c->pclmulqdq, "PCLMULQDQ" }, { c->avx, "AVX" },
		{ c->avx2, "AVX2" }, { c->vaes, "VAES" }, { c->vpclmulqdq, "VPCLMULQDQ" },
		{ c->sha_ni, "SHA-NI" }, { c->avx512f, "AVX-512F" }, { c->avx512bw, "AVX-512BW" },
		{ c->avx512vl, "AVX-512VL" },
	};
	size_t off = 0;

	snprintf(buf, len, "%s", c->known ? "none" : "unknown");
	for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
		if (!f[i].on)
			continue;
		int w = snprintf(buf + off, len - off, "%s%s", off ? " " : "", f[i].name);
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
	return buf;
}

struct names_buf {
	char *buf;
	size_t len, off;
};

static int add_provider_name(OSSL_PROVIDER *p, void *arg)
{
	struct names_buf *nb = arg;
	int w = snprintf(nb->buf + nb->off, nb->len - nb->off, "%s%s", nb->off ? ", " : "",
			 OSSL_PROVIDER_get0_name(p));
	if (w > 0 && (size_t)w < nb->len - nb->off)
		nb->off += (size_t)w;
	return 1;
}

const char *crypto_accel_providers_str(char *buf, size_t len)
{
	struct names_buf nb = { buf, len, 0 };

	buf[0] = '\0';
	OSSL_PROVIDER_do_all(NULL, add_provider_name, &nb);
	if (nb.off == 0)
		snprintf(buf, len, "none");
	return buf;
}

const char *crypto_accel_engine_str(char *buf, size_t len)
{
	if (!accel.engine)
		snprintf(buf, len, "none");
	else
		snprintf(buf, len, "%s (%s)", ENGINE_get_id(accel.engine), ENGINE_get_name(accel.engine));
	return buf;
}

void crypto_accel_describe(FILE *out, const char *indent)
{
	char buf[256];
	struct crypto_cpu cpu;

	crypto_accel_cpu(&cpu);
	fprintf(out, "%sopenssl: %s\n", indent, OpenSSL_version(OPENSSL_VERSION));
	fprintf(out, "%sproviders: %s\n", indent, crypto_accel_providers_str(buf, sizeof(buf)));
	fprintf(out, "%sengine: %s\n", indent, crypto_accel_engine_str(buf, sizeof(buf)));
	fprintf(out, "%scpu features OpenSSL uses: %s\n", indent, crypto_cpu_str(&cpu, buf, sizeof(buf)));
}

void crypto_accel_print_version(FILE *out, const char *program, int argc, char **argv)
{
	bool verbose = false;

	for (int i = 1; i < argc; i++)
		verbose |= strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0;
	fprintf(out, "%s %s\n", program, MTLSD_VERSION);
	if (verbose)
		crypto_accel_describe(out, "  ");
}
