/*
 * bench_acct.c: what handshake accounting costs (a benchmark, not a test:
 * `meson test --benchmark -C BUILD acct_overhead`, or run it directly).
 *
 * Runs real TLS 1.3 handshakes with client certificates between two
 * in-memory OpenSSL endpoints (a BIO pair, no sockets) and calls
 * acct_handshake_end() after each, in four modes:
 *   baseline  no accounting call at all
 *   detached  the call and its probe, nothing attached (acct_init not run)
 *   bpf       the BPF program attached to the probe (needs root)
 *   fallback  the in-process counters
 * Rounds of the modes are interleaved so drift on a shared machine hits all
 * of them alike; the median round per mode is reported, as handshakes per
 * CPU second of the process and relative to baseline. Then the same for the accounting call
 * alone, in ns per call. The machine is shared and noisy: read ratios, not
 * absolute numbers.
 */
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "bpf/acct_user.h"
#include "log.h"

enum mode { MODE_BASELINE, MODE_DETACHED, MODE_BPF, MODE_FALLBACK, MODE_COUNT };

static const char *const mode_names[MODE_COUNT] = {
	[MODE_BASELINE] = "baseline", [MODE_DETACHED] = "detached",
	[MODE_BPF] = "bpf", [MODE_FALLBACK] = "fallback",
};

#define ROUNDS 9
#define HANDSHAKES_PER_ROUND 200
#define CALLS_PER_ROUND 200000

static char instance[ACCT_INSTANCE_MAX + 1];

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of the whole process (every thread, user + kernel, so the
 * uprobe trap and the fallback's publisher count): on a shared machine it
 * moves far less than wall time when other work competes for the cores. */
static double cpu_s(void)
{
	return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static void die(const char *what)
{
	log_ossl(LOG_LVL_ERR, "%s", what);
	exit(1);
}

/* A throwaway P-256 key and self-signed certificate. */
static void make_identity(EVP_PKEY **key, X509 **cert, const char *cn)
{
	*key = EVP_EC_gen("P-256");
	*cert = X509_new();
	if (!*key || !*cert)
		die("generating a key");
	X509_set_version(*cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(*cert), 0x4fa2);
	X509_gmtime_adj(X509_getm_notBefore(*cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(*cert), 86400);
	X509_NAME *name = X509_get_subject_name(*cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(*cert, name);
	X509_set_pubkey(*cert, *key);
	if (!X509_sign(*cert, *key, EVP_sha256()))
		die("signing a certificate");
}

static int accept_any(int ok, X509_STORE_CTX *ctx)
{
	(void)ok;
	(void)ctx;
	return 1;
}

static SSL_CTX *make_ctx(bool server, EVP_PKEY *key, X509 *cert)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx || SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
		die("building an SSL_CTX");
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
	return ctx;
}

/* One full handshake over a BIO pair; returns the server SSL (caller frees). */
static SSL *handshake(SSL_CTX *sctx, SSL_CTX *cctx)
{
	SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
	BIO *sb = NULL, *cb = NULL;

	if (!s || !c || BIO_new_bio_pair(&sb, 0, &cb, 0) != 1)
		die("creating the endpoints");
	SSL_set_bio(s, sb, sb);
	SSL_set_bio(c, cb, cb);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	for (int i = 0; i < 20 && !(SSL_is_init_finished(s) && SSL_is_init_finished(c)); i++) {
		SSL_do_handshake(c);
		SSL_do_handshake(s);
	}
	if (!SSL_is_init_finished(s))
		die("handshake did not finish");
	SSL_free(c);
	return s;
}

static void fill_event(struct acct_event *ev, SSL *s, const struct cert_identity *id, double t0)
{
	memset(ev, 0, sizeof(*ev));
	acct_event_set_cert(ev, id);
	ev->outcome = HS_OK;
	ev->partner = 0;
	ev->partner_name = "bench";
	ev->tls_version = (uint16_t)SSL_version(s);
	ev->cipher = SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(s));
	ev->duration_ns = (uint64_t)((now_s() - t0) * 1e9);
}

static int mode_start(enum mode m)
{
	switch (m) {
	case MODE_BPF:
		GUARD(acct_init(instance, true));
		return acct_source() == ACCT_SOURCE_BPF ? 0 : -EPERM;
	case MODE_FALLBACK:
		GUARD(acct_init(instance, false));
		return acct_start();
	case MODE_BASELINE:
	case MODE_DETACHED:
	default:
		return 0;
	}
}

/* Handshakes per CPU second in mode m, one round. */
static double round_handshakes(enum mode m, SSL_CTX *sctx, SSL_CTX *cctx, const struct cert_identity *id)
{
	struct acct_event ev;
	double t0 = cpu_s();

	for (int i = 0; i < HANDSHAKES_PER_ROUND; i++) {
		double h0 = now_s();
		SSL *s = handshake(sctx, cctx);
		if (m != MODE_BASELINE) {
			fill_event(&ev, s, id, h0);
			acct_handshake_end(&ev);
		}
		SSL_free(s);
	}
	return HANDSHAKES_PER_ROUND / (cpu_s() - t0);
}

/* CPU ns per accounting call alone in mode m, one round. */
static double round_calls(enum mode m, const struct cert_identity *id)
{
	struct acct_event ev;

	memset(&ev, 0, sizeof(ev));
	acct_event_set_cert(&ev, id);
	ev.duration_ns = 900000;
	double t0 = cpu_s();
	for (int i = 0; i < CALLS_PER_ROUND; i++) {
		if (m != MODE_BASELINE)
			acct_handshake_end(&ev);
		__asm__ __volatile__("" ::: "memory");
	}
	return (cpu_s() - t0) * 1e9 / CALLS_PER_ROUND;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static char runtime_dir[] = "/tmp/bench-acct-XXXXXX";

/* Leave nothing behind: the pinned maps and the fallback snapshot. */
static void cleanup(void)
{
	static const char *const maps[] = { "acct_stats", "acct_meta", "acct_totals" };
	static const char *const files[] = { "stats.bin", "stats.bin.prev" };
	char path[256];

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", runtime_dir, instance, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/%s", runtime_dir, instance);
	rmdir(path);
	rmdir(runtime_dir);

	for (size_t i = 0; i < ARRAY_SIZE(maps); i++) {
		snprintf(path, sizeof(path), "/sys/fs/bpf/mtlsd/%s/%s", instance, maps[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "/sys/fs/bpf/mtlsd/%s", instance);
	rmdir(path);
}

int main(void)
{
	static double hs[MODE_COUNT][ROUNDS], calls[MODE_COUNT][ROUNDS];
	bool have[MODE_COUNT] = { true, true, true, true };
	EVP_PKEY *skey, *ckey;
	X509 *scert, *ccert;
	struct cert_identity id;

	log_set_ident("bench_acct");
	log_set_level(LOG_LVL_ERR);
	snprintf(instance, sizeof(instance), "bench-%d", (int)getpid());
	if (!mkdtemp(runtime_dir)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("RUNTIME_DIRECTORY", runtime_dir, 1);
	make_identity(&skey, &scert, "localhost");
	make_identity(&ckey, &ccert, "bench-client");
	SSL_CTX *sctx = make_ctx(true, skey, scert), *cctx = make_ctx(false, ckey, ccert);
	if (certinfo_from_x509(ccert, &id) < 0)
		die("certinfo");

	for (int r = 0; r < ROUNDS; r++) {
		for (enum mode m = 0; m < MODE_COUNT; m++) {
			if (!have[m] || mode_start(m) < 0) {
				have[m] = false;
				acct_shutdown();
				continue;
			}
			hs[m][r] = round_handshakes(m, sctx, cctx, &id);
			calls[m][r] = round_calls(m, &id);
			acct_shutdown();
		}
	}
	cleanup();

	double base_hs = median(hs[MODE_BASELINE], ROUNDS);
	double base_ns = median(calls[MODE_BASELINE], ROUNDS);
	printf("TLS 1.3 mTLS handshakes in memory (both ends in this process), %d rounds x %d,\n"
	       "median round, per CPU second of the process:\n", ROUNDS, HANDSHAKES_PER_ROUND);
	printf("%-9s %10s %8s %14s\n", "mode", "hs/cpu-s", "ratio", "ns/acct call");
	for (enum mode m = 0; m < MODE_COUNT; m++) {
		if (!have[m]) {
			printf("%-9s %10s %8s %14s  (not available: needs root)\n", mode_names[m], "-", "-", "-");
			continue;
		}
		double h = median(hs[m], ROUNDS), ns = median(calls[m], ROUNDS) - base_ns;
		printf("%-9s %10.0f %8.4f %14.0f\n", mode_names[m], h, h / base_hs, ns < 0 ? 0 : ns);
	}
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	X509_free(scert);
	X509_free(ccert);
	EVP_PKEY_free(skey);
	EVP_PKEY_free(ckey);
	return 0;
}
