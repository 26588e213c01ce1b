/*
 * fuzz_handshake.c: libFuzzer target for the server side of the handshake,
 * what any unauthenticated host on the internet can reach.
 *
 * The SSL_CTX is mtlsd's own: built once by reload_build() from a config
 * naming the fixture server certificate and the fixture partner (exactly
 * what start-up does), so the verify callback, CA list, ticket callbacks,
 * protocol floor and renegotiation refusal are the ones in production. Each
 * input is the client's side of the byte stream, fed to a connection set up
 * the way conn.c sets it up (tls_session over the slice BIO, verify_attach);
 * the handshake runs until it needs more input or fails, and the failure is
 * settled and cleared as conn.c does, so LeakSanitizer sees every path.
 *
 * Needs MTLS_FIXTURES (the `fixtures` target's directory). Built and run by
 * tests/fuzz/run.sh; seeds are real ClientHellos (corpus/handshake/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "chunk.h"
#include "config.h"
#include "generation.h"
#include "log.h"
#include "reload.h"
#include "tls_session.h"
#include "verify.h"

enum { MAX_STEPS = 64 };

static struct generation *gen;
static struct chunk_pool pool;

static __attribute__((noreturn)) void fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_handshake: %s: %s\n", what, detail);
	exit(2);
}

static void build_generation(void)
{
	const char *fx = getenv("MTLS_FIXTURES");
	char conf[] = "/tmp/fuzz_handshake.XXXXXX";
	char err[512];
	struct mtlsd_config cfg;
	FILE *f;
	int fd;

	if (!fx)
		fail("MTLS_FIXTURES is not set", "point it at the build's tests/fixtures");
	fd = mkstemp(conf);
	if (fd < 0 || !(f = fdopen(fd, "w")))
		fail("cannot create a config file in /tmp", conf);
	fprintf(f,
		"[mtlsd]\nlisten = 127.0.0.1:1\n\n"
		"[server_cert.ec]\ncert = %1$s/server/chain.pem\nkey = %1$s/server/key.pem\n\n"
		"[partner.partner]\nca = %1$s/pki/ca-bundle.pem\ncrl = %1$s/pki/crls.pem\n"
		"backend = 127.0.0.1:1\nproxy_protocol = v2\n"
		"allow_uri = spiffe://partner.example/prod/*\n", fx);
	fclose(f);
	config_init(&cfg);
	if (config_load_file(&cfg, conf, err, sizeof(err)) < 0 ||
	    config_validate(&cfg, err, sizeof(err)) < 0 ||
	    reload_build(&cfg, 1, &gen, err, sizeof(err)) < 0)
		fail(conf, err);
	unlink(conf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_LVL_ERR);
	build_generation();
	chunk_pool_init(&pool, 16);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_session ts;
	struct verify_result vr;
	uint8_t plain[4096];
	size_t n;

	memset(&vr, 0, sizeof(vr));
	if (tls_session_init(&ts, gen->ssl_ctx, &pool) < 0)
		abort();
	if (verify_attach(ts.ssl, &vr) < 0)
		abort();
	tls_session_set_input(&ts, data, (uint32_t)size);
	for (int step = 0; step < MAX_STEPS; step++) {
		enum tls_io r = tls_session_handshake(&ts);

		/* What the server would send is dropped: the client is the input. */
		outq_consume(&ts.out, &pool, outq_pending(&ts.out));
		if (r == TLS_IO_WANT_WRITE)
			continue;
		if (r == TLS_IO_OK) {
			if (verify_settle_success(ts.ssl, gen, &vr) == HS_OK)
				(void)tls_session_read(&ts, plain, sizeof(plain), &n);
			break;
		}
		if (r == TLS_IO_ERROR)
			verify_settle_failure(ts.ssl, ts.first_error, &vr);
		break;
	}
	verify_result_clear(&vr);
	tls_session_free(&ts);
	return 0;
}
