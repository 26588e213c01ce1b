/*
 * test_tls_session.c: the slice BIO, byte for byte.
 *
 * A real OpenSSL client (memory BIOs) talks to a tls_session. The tests
 * check what the kTLS handoff and the relay rely on: OpenSSL consumes
 * exactly one record at a time from the input slice, a partial record is
 * taken in and waits for the rest, output stops at the chunk boundary with
 * "retry write", and garbage or close_notify are reported as such.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "chunk.h"
#include "tls_session.h"

struct fixture {
	SSL_CTX *server_ctx, *client_ctx;
	SSL *client;
	BIO *c_in, *c_out;  /* client's rbio (we write server output) / wbio */
	struct chunk_pool pool;
	struct tls_session ts;
	uint8_t wire[65536]; /* client -> server bytes of the current step */
	size_t wire_len;
};

static int make_server_ctx(SSL_CTX **out)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int ok = key && x && ctx;

	ok = ok && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -60) &&
	     X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	ok = ok && X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
					      (const unsigned char *)"test", -1, -1, 0);
	ok = ok && X509_set_issuer_name(x, X509_get_subject_name(x)) && X509_set_pubkey(x, key);
	ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
	ok = ok && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1;
	/* No tickets: keeps the byte accounting of these tests simple. */
	ok = ok && SSL_CTX_set_num_tickets(ctx, 0) == 1;
	X509_free(x);
	EVP_PKEY_free(key);
	if (!ok) {
		SSL_CTX_free(ctx);
		return -1;
	}
	*out = ctx;
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(make_server_ctx(&f->server_ctx), 0);
	f->client_ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(f->client_ctx);
	SSL_CTX_set_verify(f->client_ctx, SSL_VERIFY_NONE, NULL);
	f->client = SSL_new(f->client_ctx);
	f->c_in = BIO_new(BIO_s_mem());
	f->c_out = BIO_new(BIO_s_mem());
	SSL_set_bio(f->client, f->c_in, f->c_out);
	SSL_set_connect_state(f->client);
	chunk_pool_init(&f->pool, 4);
	assert_int_equal(tls_session_init(&f->ts, f->server_ctx, &f->pool), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tls_session_free(&f->ts);
	chunk_pool_destroy(&f->pool);
	SSL_free(f->client);
	SSL_CTX_free(f->client_ctx);
	SSL_CTX_free(f->server_ctx);
	free(f);
	return 0;
}

/* Collect what the client wants to send. */
static size_t client_take(struct fixture *f)
{
	int n = BIO_read(f->c_out, f->wire, sizeof(f->wire));
	f->wire_len = n > 0 ? (size_t)n : 0;
	return f->wire_len;
}

/* Hand the server's queued output to the client, as a completed send. */
static void server_flush(struct fixture *f)
{
	uint32_t n = outq_pending(&f->ts.out);
	if (n == 0)
		return;
	assert_int_equal(BIO_write(f->c_in, f->ts.out.chunk->data + f->ts.out.off, (int)n), (int)n);
	outq_consume(&f->ts.out, &f->pool, n);
}

static void handshake(struct fixture *f)
{
	for (int round = 0; round < 10; round++) {
		int cr = SSL_do_handshake(f->client);
		client_take(f);
		tls_session_set_input(&f->ts, f->wire, (uint32_t)f->wire_len);
		enum tls_io r = tls_session_handshake(&f->ts);
		/* Whatever happened, the slice is fully consumed: a handshake
		 * flight is a whole number of records. */
		assert_int_equal(tls_session_input_left(&f->ts), 0);
		server_flush(f);
		if (r == TLS_IO_OK && cr == 1)
			return;
		assert_true(r == TLS_IO_OK || r == TLS_IO_WANT_READ);
	}
	fail_msg("handshake did not complete");
}

static void test_tls_session_handshake_through_slices(void **state)
{
	struct fixture *f = *state;
	handshake(f);
	assert_true(SSL_is_init_finished(f->ts.ssl));
	assert_true(f->ts.bytes_in > 0);
	assert_true(f->ts.bytes_out > 0);
	/* No output chunk is held once everything was sent. */
	assert_null(f->ts.out.chunk);
}

/* Rejecting twin: bytes that are not TLS end the handshake with an error
 * (and an error code for verify_settle_failure), never with WANT_READ. */
static void test_tls_session_garbage_is_error(void **state)
{
	struct fixture *f = *state;
	static const char garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	tls_session_set_input(&f->ts, (const uint8_t *)garbage, sizeof(garbage) - 1);
	assert_int_equal(tls_session_handshake(&f->ts), TLS_IO_ERROR);
	assert_int_not_equal(f->ts.first_error, 0);
}

/* Two records in one receive: OpenSSL takes exactly the first, and
 * input_left() is exactly the second record's size. */
static void test_tls_session_reads_one_record_at_a_time(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[CHUNK_SIZE];
	size_t n = 0;

	handshake(f);
	assert_int_equal(SSL_write(f->client, "first", 5), 5);
	size_t first_len = client_take(f);
	uint8_t both[4096];
	memcpy(both, f->wire, first_len);
	assert_int_equal(SSL_write(f->client, "second!", 7), 7);
	size_t second_len = client_take(f);
	memcpy(both + first_len, f->wire, second_len);

	tls_session_set_input(&f->ts, both, (uint32_t)(first_len + second_len));
	assert_int_equal(tls_session_read(&f->ts, buf, sizeof(buf), &n), TLS_IO_OK);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "first", 5);
	assert_int_equal(tls_session_input_left(&f->ts), second_len);

	assert_int_equal(tls_session_read(&f->ts, buf, sizeof(buf), &n), TLS_IO_OK);
	assert_int_equal(n, 7);
	assert_int_equal(tls_session_input_left(&f->ts), 0);
	assert_int_equal(tls_session_read(&f->ts, buf, sizeof(buf), &n), TLS_IO_WANT_READ);
}

/* Rejecting twin: half a record yields no plaintext; OpenSSL keeps the
 * half, the slice is empty, and the rest completes it. */
static void test_tls_session_partial_record_waits(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[64];
	size_t n = 99;

	handshake(f);
	assert_int_equal(SSL_write(f->client, "split me", 8), 8);
	size_t len = client_take(f);
	uint8_t rec[1024];
	memcpy(rec, f->wire, len);

	tls_session_set_input(&f->ts, rec, (uint32_t)(len / 2));
	assert_int_equal(tls_session_read(&f->ts, buf, sizeof(buf), &n), TLS_IO_WANT_READ);
	assert_int_equal(n, 0);
	assert_int_equal(tls_session_input_left(&f->ts), 0);

	tls_session_set_input(&f->ts, rec + len / 2, (uint32_t)(len - len / 2));
	assert_int_equal(tls_session_read(&f->ts, buf, sizeof(buf), &n), TLS_IO_OK);
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "split me", 8);
	assert_int_equal(tls_session_input_left(&f->ts), 0);
}

/* Under pressure, handshakes without a whole ClientHello go first
 * (admission.h): hello_received is set once the last byte of it arrived,
 * not before, even when the message comes in pieces. */
static void test_tls_session_hello_received_when_whole(void **state)
{
	struct fixture *f = *state;
	uint8_t hello[4096];

	assert_int_equal(SSL_do_handshake(f->client), -1);
	size_t len = client_take(f);
	assert_true(len > 16 && len < sizeof(hello));
	memcpy(hello, f->wire, len);
	for (size_t off = 0; off + 1 < len; off += 7) {
		size_t n = off + 7 < len - 1 ? 7 : len - 1 - off;
		tls_session_set_input(&f->ts, hello + off, (uint32_t)n);
		assert_int_equal(tls_session_handshake(&f->ts), TLS_IO_WANT_READ);
		assert_false(f->ts.hello_received);
	}
	tls_session_set_input(&f->ts, hello + len - 1, 1);
	assert_int_equal(tls_session_handshake(&f->ts), TLS_IO_WANT_READ);
	assert_true(f->ts.hello_received);
}

/* Twin: garbage of the same size never counts as a ClientHello. */
static void test_tls_session_garbage_is_no_hello(void **state)
{
	struct fixture *f = *state;
	uint8_t junk[300];

	memset(junk, 0x16, sizeof(junk));
	tls_session_set_input(&f->ts, junk, sizeof(junk));
	assert_int_equal(tls_session_handshake(&f->ts), TLS_IO_ERROR);
	assert_false(f->ts.hello_received);
}

/* The chunk holds whole records only: walk the 5-byte headers. */
/* An SSL has one message callback: kTLS's record counting observes through
 * the session's instead of replacing it (replacing it lost the ClientHello
 * watch, and the handshake's end removed the counting, so a record read in
 * user space after the handshake went uncounted and the kernel's RX
 * sequence was off by one). The observer sees the ClientHello next to the
 * watch, and the application records after the handshake. */
static unsigned observed_hellos, observed_app_headers;
static void count_messages(int write_p, int version, int content_type, const void *buf, size_t len,
			   SSL *ssl, void *arg)
{
	const uint8_t *p = buf;

	(void)version, (void)ssl, (void)arg;
	if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 && p[0] == SSL3_MT_CLIENT_HELLO)
		observed_hellos++;
	if (!write_p && content_type == SSL3_RT_HEADER && len >= 1 && p[0] == SSL3_RT_APPLICATION_DATA)
		observed_app_headers++;
}

static void test_tls_session_observer_sees_every_message(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[64];
	size_t n = 0;

	observed_hellos = observed_app_headers = 0;
	tls_session_observe(&f->ts, count_messages);
	handshake(f);
	assert_true(f->ts.hello_received);
	assert_int_equal(observed_hellos, 1);
	unsigned during = observed_app_headers; /* TLS 1.3 wraps its handshake */
	assert_int_equal(SSL_write(f->client, "after", 5), 5);
	tls_session_set_input(&f->ts, f->wire, (uint32_t)client_take(f));
	assert_int_equal(tls_session_read(&f->ts, buf, sizeof(buf), &n), TLS_IO_OK);
	assert_int_equal(observed_app_headers, during + 1);
}

/* Twin: with the observer stopped, records after the handshake reach no
 * one (and the hello watch alone is gone with the handshake). */
static void test_tls_session_observer_stopped_sees_nothing(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[64];
	size_t n = 0;

	observed_hellos = observed_app_headers = 0;
	tls_session_observe(&f->ts, count_messages);
	handshake(f);
	tls_session_observe(&f->ts, NULL);
	unsigned during = observed_app_headers;
	assert_int_equal(SSL_write(f->client, "after", 5), 5);
	tls_session_set_input(&f->ts, f->wire, (uint32_t)client_take(f));
	assert_int_equal(tls_session_read(&f->ts, buf, sizeof(buf), &n), TLS_IO_OK);
	assert_int_equal(observed_app_headers, during);
	assert_true(f->ts.hello_received);
}

static void assert_whole_records(const struct outq *q)
{
	uint32_t off = q->off;
	while (off < q->len) {
		assert_true(q->len - off >= 5);
		uint32_t rec = 5u + ((uint32_t)q->chunk->data[off + 3] << 8 | q->chunk->data[off + 4]);
		assert_true(q->len - off >= rec);
		off += rec;
	}
	assert_int_equal(off, q->len);
}

/* Output stops at one chunk: a big write is taken partially, the next one
 * asks for the queue to be sent first, and the client decrypts everything
 * in order once the sends went through. */
static void test_tls_session_full_chunk_wants_write(void **state)
{
	struct fixture *f = *state;
	static uint8_t big[3 * 16384], back[sizeof(big)];
	size_t n = 0, done = 0, got = 0;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	handshake(f);
	assert_int_equal(tls_session_write(&f->ts, big, sizeof(big), &n), TLS_IO_OK);
	assert_true(n > 0 && n < sizeof(big));
	done = n;
	uint32_t before = outq_pending(&f->ts.out);
	assert_int_equal(tls_session_write(&f->ts, big + done, sizeof(big) - done, &n),
			 TLS_IO_WANT_WRITE);
	assert_int_equal(n, 0);
	assert_int_equal(outq_pending(&f->ts.out), before);
	for (int round = 0; done < sizeof(big) && round < 16; round++) {
		assert_true(outq_pending(&f->ts.out) <= CHUNK_SIZE);
		assert_whole_records(&f->ts.out);
		server_flush(f);
		enum tls_io r = tls_session_write(&f->ts, big + done, sizeof(big) - done, &n);
		assert_true(r == TLS_IO_OK || r == TLS_IO_WANT_WRITE);
		done += n;
	}
	assert_int_equal(done, sizeof(big));
	server_flush(f);
	int k;
	while (got < sizeof(back) && (k = SSL_read(f->client, back + got, (int)(sizeof(back) - got))) > 0)
		got += (size_t)k;
	assert_int_equal(got, sizeof(big));
	assert_memory_equal(back, big, sizeof(big));
}

/* Rejecting twin: with the chunk full, nothing is appended and nothing is
 * lost: the pending bytes stay exactly as they were. */
static void test_tls_session_full_chunk_keeps_queue(void **state)
{
	struct fixture *f = *state;
	static uint8_t big[16384];
	size_t n = 0;

	handshake(f);
	assert_int_equal(tls_session_write(&f->ts, big, sizeof(big), &n), TLS_IO_OK);
	uint32_t pending = outq_pending(&f->ts.out);
	uint64_t produced = f->ts.bytes_out;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(tls_session_write(&f->ts, big, sizeof(big), &n), TLS_IO_WANT_WRITE);
		assert_int_equal(outq_pending(&f->ts.out), pending);
		assert_true(f->ts.bytes_out == produced);
	}
}

/* The client's close_notify reads as CLOSED, not as an error. */
static void test_tls_session_close_notify_is_closed(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[64];
	size_t n;

	handshake(f);
	assert_true(SSL_shutdown(f->client) >= 0);
	client_take(f);
	tls_session_set_input(&f->ts, f->wire, (uint32_t)f->wire_len);
	assert_int_equal(tls_session_read(&f->ts, buf, sizeof(buf), &n), TLS_IO_CLOSED);
	assert_int_equal(tls_session_shutdown(&f->ts), TLS_IO_OK);
	assert_true(outq_pending(&f->ts.out) > 0); /* our close_notify */
}

/* Rejecting twin: a record whose bytes were altered is a TLS error. */
static void test_tls_session_tampered_record_is_error(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[64];
	size_t n;

	handshake(f);
	assert_int_equal(SSL_write(f->client, "payload", 7), 7);
	client_take(f);
	f->wire[f->wire_len - 1] ^= 0x01;
	tls_session_set_input(&f->ts, f->wire, (uint32_t)f->wire_len);
	assert_int_equal(tls_session_read(&f->ts, buf, sizeof(buf), &n), TLS_IO_ERROR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tls_session_handshake_through_slices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_garbage_is_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_reads_one_record_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_partial_record_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_hello_received_when_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_garbage_is_no_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_observer_sees_every_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_observer_stopped_sees_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_full_chunk_wants_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_full_chunk_keeps_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_close_notify_is_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_session_tampered_record_is_error, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
