/*
 * test_ticket_keys.c: session-ticket keys from a file (dataplane/
 * ticket_keys.c): which files are accepted, what each session_cache mode
 * sets, and real resumptions between two SSL_CTXs over memory BIOs: same
 * key file resumes, another key file does not, an older key still opens
 * its tickets.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "config.h"
#include "session_cache.h"
#include "ticket_keys.h"
#include "skip_because.h"

static char dir[] = "/tmp/test_ticket_keys.XXXXXX";
static char err[1024];

static const char *write_keys(const char *name, const unsigned char *bytes, size_t len, mode_t mode)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static int configure(SSL_CTX *ctx, const char *path, enum session_cache_mode mode)
{
	struct mtlsd_config cfg;
	config_init(&cfg);
	cfg.ticket_key_file = (char *)path;
	cfg.session_cache = mode;
	return ticket_keys_configure(ctx, &cfg, err, sizeof(err));
}

/* A server context with the fixture's certificate and key, nothing else. */
static SSL_CTX *bare_server_ctx(void)
{
	const char *fx = getenv("MTLS_FIXTURES");
	char cert[512], key[512];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	snprintf(cert, sizeof(cert), "%s/server/chain.pem", fx);
	snprintf(key, sizeof(key), "%s/server/key.pem", fx);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
	return ctx;
}

static SSL_CTX *server_ctx(const char *keys)
{
	SSL_CTX *ctx = bare_server_ctx();
	assert_int_equal(configure(ctx, keys, SESSION_CACHE_TICKETS), 0);
	return ctx;
}

static int setup(void **state)
{
	(void)state;
	if (!getenv("MTLS_FIXTURES")) {
		fprintf(stderr, "MTLS_FIXTURES is not set (run through meson test)\n");
		return -1;
	}
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_ticket_keys_one_and_eight_keys_accepted(void **state)
{
	unsigned char k[TICKET_KEY_LEN * TICKET_KEYS_MAX];
	char what[512];
	(void)state;
	RAND_bytes(k, sizeof(k));
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct mtlsd_config cfg;
	config_init(&cfg);
	cfg.ticket_key_file = (char *)write_keys("one", k, TICKET_KEY_LEN, 0600);
	assert_int_equal(ticket_keys_configure(ctx, &cfg, err, sizeof(err)), 0);
	ticket_keys_describe(ctx, &cfg, what, sizeof(what));
	assert_non_null(strstr(what, "1 key)"));
	SSL_CTX_free(ctx);
	ctx = SSL_CTX_new(TLS_server_method());
	cfg.ticket_key_file = (char *)write_keys("eight", k, sizeof(k), 0600);
	assert_int_equal(ticket_keys_configure(ctx, &cfg, err, sizeof(err)), 0);
	ticket_keys_describe(ctx, &cfg, what, sizeof(what));
	assert_non_null(strstr(what, "8 keys)"));
	SSL_CTX_free(ctx);
}

static void test_ticket_keys_bad_sizes_refused(void **state)
{
	unsigned char k[TICKET_KEY_LEN * (TICKET_KEYS_MAX + 1)] = { 0 };
	const size_t sizes[] = { 0, 48, TICKET_KEY_LEN - 1, TICKET_KEY_LEN + 1, sizeof(k) };
	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
		const char *path = write_keys("bad", k, sizes[i], 0600);
		assert_int_equal(configure(ctx, path, SESSION_CACHE_TICKETS), -EINVAL);
		assert_non_null(strstr(err, path));
		assert_non_null(strstr(err, "openssl rand 80"));
		SSL_CTX_free(ctx);
	}
}

static void test_ticket_keys_group_readable_refused(void **state)
{
	unsigned char k[TICKET_KEY_LEN] = { 1 };
	(void)state;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *path = write_keys("open", k, sizeof(k), 0640);
	assert_int_equal(configure(ctx, path, SESSION_CACHE_TICKETS), -EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	/* The twin: the operator's explicit override. */
	struct mtlsd_config cfg;
	config_init(&cfg);
	cfg.ticket_key_file = (char *)path;
	cfg.allow_insecure_key_perms = true;
	assert_int_equal(ticket_keys_configure(ctx, &cfg, err, sizeof(err)), 0);
	SSL_CTX_free(ctx);
}

/* Group-writable is as bad as group-readable: whoever can write the keys
 * can seal a ticket, that is mint a session, for any partner. */
static void test_ticket_keys_group_writable_refused(void **state)
{
	unsigned char k[TICKET_KEY_LEN] = { 1 };
	(void)state;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *path = write_keys("group-writable", k, sizeof(k), 0620);
	assert_int_equal(configure(ctx, path, SESSION_CACHE_TICKETS), -EPERM);
	assert_non_null(strstr(err, "mode 0620"));
	assert_non_null(strstr(err, "mint a session"));
	SSL_CTX_free(ctx);
}

/* The private-key owner rule: a file another user owns is refused (that
 * user can rewrite it whatever its mode), naming the chown. Needs root. */
static void test_ticket_keys_owned_by_other_user_refused(void **state)
{
	unsigned char k[TICKET_KEY_LEN] = { 1 };
	char want[64];
	(void)state;
	SKIP_UNLESS_ROOT("only root can chown a key file to another user");
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *path = write_keys("foreign", k, sizeof(k), 0600);
	assert_int_equal(chown(path, 4321, 4321), 0);
	assert_int_equal(configure(ctx, path, SESSION_CACHE_TICKETS), -EPERM);
	assert_non_null(strstr(err, "owned by uid 4321"));
	snprintf(want, sizeof(want), "chown %u %s", (unsigned)geteuid(), path);
	assert_non_null(strstr(err, want));
	SSL_CTX_free(ctx);
}

/* The twin: owned by the service user (user =), as a key file may be, so a
 * reload after the privilege drop reads the same file. */
static void test_ticket_keys_owned_by_service_user_accepted(void **state)
{
	unsigned char k[TICKET_KEY_LEN] = { 1 };
	(void)state;
	SKIP_UNLESS_ROOT("only root can chown a key file to another user");
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct mtlsd_config cfg;
	config_init(&cfg);
	cfg.ticket_key_file = (char *)write_keys("service-user", k, sizeof(k), 0600);
	assert_int_equal(chown(cfg.ticket_key_file, 4321, 4321), 0);
	cfg.user = (char *)"4321";
	assert_int_equal(ticket_keys_configure(ctx, &cfg, err, sizeof(err)), 0);
	SSL_CTX_free(ctx);
}

static void test_ticket_keys_missing_file_refused(void **state)
{
	(void)state;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(configure(ctx, "/nonexistent/ticket.keys", SESSION_CACHE_TICKETS), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/ticket.keys"));
	SSL_CTX_free(ctx);
}

static void test_ticket_keys_modes_set_options(void **state)
{
	(void)state;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(configure(ctx, NULL, SESSION_CACHE_OFF), 0);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET);
	assert_int_equal(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF);
	assert_int_equal(SSL_CTX_get_num_tickets(ctx), 0);
	assert_int_equal(configure(ctx, NULL, SESSION_CACHE_STATEFUL), 0);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET);
	/* mtlsd's own cache (session_cache.h), not OpenSSL's internal one */
	assert_int_equal(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
	struct session_cache_stats st;
	assert_true(session_cache_stats(ctx, &st));
	assert_int_equal(configure(ctx, NULL, SESSION_CACHE_TICKETS), 0);
	assert_false(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET);
	SSL_CTX_free(ctx);
}

/* ---- resumption over memory BIOs ------------------------------------------ */

static void pump(SSL *client, SSL *server)
{
	for (int i = 0; i < 100; i++) {
		int c = SSL_do_handshake(client), s = SSL_do_handshake(server);
		if (c == 1 && s == 1)
			return;
	}
	ERR_print_errors_fp(stderr);
	fail_msg("handshake did not finish");
}

/* One connection to server ctx sctx; resumes sess if given. Returns the
 * client's session (with the ticket) and whether this one was resumed. */
static SSL_SESSION *connect_once(SSL_CTX *sctx, SSL_SESSION *sess, bool *reused)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	BIO *cb, *sb;
	char buf[8];
	assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	if (sess)
		assert_int_equal(SSL_set_session(c, sess), 1);
	pump(c, s);
	*reused = SSL_session_reused(c) == 1;
	/* TLS 1.3 tickets come after the handshake: move data so they arrive. */
	assert_int_equal(SSL_write(s, "x", 1), 1);
	assert_int_equal(SSL_read(c, buf, sizeof(buf)), 1);
	SSL_SESSION *out = SSL_get1_session(c);
	/* A connection freed without a shutdown marks its session unusable. */
	SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN); /* the server's too (stateful) */
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	return out;
}

static void test_ticket_keys_shared_file_resumes_other_does_not(void **state)
{
	unsigned char k1[TICKET_KEY_LEN], k2[TICKET_KEY_LEN], both[2 * TICKET_KEY_LEN];
	bool reused;
	(void)state;
	RAND_bytes(k1, sizeof(k1));
	RAND_bytes(k2, sizeof(k2));
	SSL_CTX *a = server_ctx(write_keys("k1a", k1, sizeof(k1), 0600));
	SSL_CTX *b = server_ctx(write_keys("k1b", k1, sizeof(k1), 0600));
	SSL_CTX *other = server_ctx(write_keys("k2", k2, sizeof(k2), 0600));
	memcpy(both, k2, sizeof(k2));
	memcpy(both + sizeof(k2), k1, sizeof(k1));
	SSL_CTX *rotated = server_ctx(write_keys("k2k1", both, sizeof(both), 0600));

	SSL_SESSION *sess = connect_once(a, NULL, &reused);
	assert_false(reused);
	SSL_SESSION *s2 = connect_once(b, sess, &reused);
	assert_true(reused);      /* the same key file on another "host" */
	SSL_SESSION_free(s2);
	s2 = connect_once(other, sess, &reused);
	assert_false(reused);     /* the twin: another key, a full handshake */
	SSL_SESSION_free(s2);
	s2 = connect_once(rotated, sess, &reused);
	assert_true(reused);      /* the old key, kept second, still opens it */
	SSL_SESSION_free(s2);

	SSL_SESSION_free(sess);
	SSL_CTX_free(a);
	SSL_CTX_free(b);
	SSL_CTX_free(other);
	SSL_CTX_free(rotated);
}

/* ---- the stateful cache (session_cache.c) -------------------------------- */

static SSL_CTX *stateful_ctx(unsigned capacity)
{
	SSL_CTX *ctx = bare_server_ctx();
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	assert_int_equal(SSL_CTX_set_num_tickets(ctx, 1), 1); /* mtlsd's default */
	assert_int_equal(session_cache_attach(ctx, capacity), 0);
	return ctx;
}

/* Capacity 2, three sessions: the least recently used (the first) is
 * gone, the last two resume; each TLS 1.3 resumption replaces its session
 * with the new one (single use), so the count stays at the capacity. */
static void test_session_cache_evicts_least_recent(void **state)
{
	bool reused;
	struct session_cache_stats st;
	(void)state;
	SSL_CTX *ctx = stateful_ctx(2);
	SSL_SESSION *s1 = connect_once(ctx, NULL, &reused);
	SSL_SESSION *s2 = connect_once(ctx, NULL, &reused);
	SSL_SESSION *s3 = connect_once(ctx, NULL, &reused);
	assert_true(session_cache_stats(ctx, &st));
	assert_int_equal(st.held, 2);
	assert_int_equal(st.evicted, 1);

	SSL_SESSION *r = connect_once(ctx, s1, &reused);
	assert_false(reused);
	SSL_SESSION_free(r);
	r = connect_once(ctx, s3, &reused);
	assert_true(reused);
	SSL_SESSION_free(r);
	assert_true(session_cache_stats(ctx, &st));
	assert_true(st.held <= 2);
	SSL_SESSION_free(s1);
	SSL_SESSION_free(s2);
	SSL_SESSION_free(s3);
	SSL_CTX_free(ctx);
}

static bool judge_says;
static bool judge(SSL_SESSION *sess, void *arg)
{
	(void)sess, (void)arg;
	return judge_says;
}

/* A cached session its judge refuses is a miss: the client does a full
 * handshake (and the session is dropped). The twin: the same sequence with
 * the judge agreeing resumes. */
static void test_session_cache_judge_refusal_is_a_miss(void **state)
{
	bool reused;
	struct session_cache_stats st;
	(void)state;
	for (int agree = 0; agree <= 1; agree++) {
		SSL_CTX *ctx = stateful_ctx(8);
		assert_int_equal(session_cache_set_judge(ctx, judge, NULL), 0);
		judge_says = agree;
		SSL_SESSION *s1 = connect_once(ctx, NULL, &reused);
		SSL_SESSION *r = connect_once(ctx, s1, &reused);
		assert_int_equal(reused, agree);
		assert_true(session_cache_stats(ctx, &st));
		assert_int_equal(st.refused, agree ? 0 : 1);
		SSL_SESSION_free(r);
		SSL_SESSION_free(s1);
		SSL_CTX_free(ctx);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ticket_keys_one_and_eight_keys_accepted),
		cmocka_unit_test(test_ticket_keys_bad_sizes_refused),
		cmocka_unit_test(test_ticket_keys_group_readable_refused),
		cmocka_unit_test(test_ticket_keys_group_writable_refused),
		cmocka_unit_test(test_ticket_keys_owned_by_other_user_refused),
		cmocka_unit_test(test_ticket_keys_owned_by_service_user_accepted),
		cmocka_unit_test(test_ticket_keys_missing_file_refused),
		cmocka_unit_test(test_ticket_keys_modes_set_options),
		cmocka_unit_test(test_ticket_keys_shared_file_resumes_other_does_not),
		cmocka_unit_test(test_session_cache_evicts_least_recent),
		cmocka_unit_test(test_session_cache_judge_refusal_is_a_miss),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
