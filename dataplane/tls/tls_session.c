/*
 * tls_session.c: the SSL object of a connection and its slice BIO.
 *
 * See tls_session.h for the model. The BIO method is created once per
 * process; each session's BIO points back at its struct tls_session, so a
 * BIO read or write is a memcpy between OpenSSL and the connection's own
 * buffers and nothing else.
 */
#include "tls_session.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <pthread.h>
#include <string.h>

static BIO_METHOD *slice_method;
static pthread_once_t slice_method_once = PTHREAD_ONCE_INIT;

static int slice_read(BIO *bio, char *out, size_t want, size_t *got)
{
	struct tls_session *ts = BIO_get_data(bio);
	uint32_t left = tls_session_input_left(ts);

	BIO_clear_retry_flags(bio);
	if (left == 0) {
		/* Nothing in user space: ask the worker for the next receive. */
		BIO_set_retry_read(bio);
		*got = 0;
		return 0;
	}
	size_t n = want < left ? want : left;
	memcpy(out, ts->in + ts->in_off, n);
	ts->in_off += (uint32_t)n;
	ts->bytes_in += n;
	*got = n;
	return 1;
}

static int slice_write(BIO *bio, const char *data, size_t len, size_t *written)
{
	struct tls_session *ts = BIO_get_data(bio);

	BIO_clear_retry_flags(bio);
	*written = 0;
	if (outq_reserve(&ts->out, ts->pool) < 0)
		return 0; /* no retry flag: a fatal error for OpenSSL */
	/*
	 * All or nothing: OpenSSL hands over one whole record per write, so a
	 * chunk only ever holds whole records. When the record does not fit,
	 * it stays in OpenSSL's write buffer until the chunk was sent.
	 */
	if (len > outq_room(&ts->out)) {
		BIO_set_retry_write(bio);
		return 0;
	}
	memcpy(ts->out.chunk->data + ts->out.len, data, len);
	ts->out.len += (uint32_t)len;
	ts->bytes_out += len;
	*written = len;
	return 1;
}

static long slice_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	struct tls_session *ts = BIO_get_data(bio);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		/* Output is flushed by the worker's send; nothing to do here. */
		return 1;
	case BIO_CTRL_PENDING:
		return ts ? (long)tls_session_input_left(ts) : 0;
	case BIO_CTRL_WPENDING:
		return ts ? (long)outq_pending(&ts->out) : 0;
	case BIO_CTRL_EOF:
		return 0;
	default:
		return 0;
	}
}

static int slice_create(BIO *bio)
{
	BIO_set_init(bio, 1);
	return 1;
}

static int slice_destroy(BIO *bio)
{
	BIO_set_data(bio, NULL);
	return 1;
}

static void slice_method_create(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mtlsd slice");
	if (!m)
		return;
	if (BIO_meth_set_read_ex(m, slice_read) != 1 || BIO_meth_set_write_ex(m, slice_write) != 1 ||
	    BIO_meth_set_ctrl(m, slice_ctrl) != 1 || BIO_meth_set_create(m, slice_create) != 1 ||
	    BIO_meth_set_destroy(m, slice_destroy) != 1) {
		BIO_meth_free(m);
		return;
	}
	slice_method = m;
}

/*
 * OpenSSL's message callback sees every handshake message once it is
 * complete, before it is processed. It is per SSL (the client-hello
 * callback would be per SSL_CTX, shared by every connection of a
 * generation). The hello watch ends with the handshake; an observer
 * (tls_session_observe) goes on seeing every message, and once neither is
 * left the callback is removed, so a plain relay never pays for it.
 */
static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len,
			SSL *ssl, void *arg)
{
	struct tls_session *ts = arg;

	if (ts->watching_hello && !write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
	    ((const uint8_t *)buf)[0] == SSL3_MT_CLIENT_HELLO)
		ts->hello_received = true;
	if (ts->observer)
		ts->observer(write_p, version, content_type, buf, len, ssl, arg);
}

static void msg_callback_update(struct tls_session *ts)
{
	if (ts->watching_hello || ts->observer) {
		SSL_set_msg_callback(ts->ssl, on_msg);
		SSL_set_msg_callback_arg(ts->ssl, ts);
	} else {
		SSL_set_msg_callback(ts->ssl, NULL);
	}
}

void tls_session_observe(struct tls_session *ts, tls_msg_observer *observer)
{
	ts->observer = observer;
	if (ts->ssl)
		msg_callback_update(ts);
}

int tls_session_init(struct tls_session *ts, SSL_CTX *ctx, struct chunk_pool *pool)
{
	memset(ts, 0, sizeof(*ts));
	ts->pool = pool;
	pthread_once(&slice_method_once, slice_method_create);
	ENSURE_PTR(slice_method, ENOMEM);

	ts->ssl = SSL_new(ctx);
	ENSURE_PTR(ts->ssl, ENOMEM);
	BIO *bio = BIO_new(slice_method);
	if (!bio) {
		SSL_free(ts->ssl);
		ts->ssl = NULL;
		return -ENOMEM;
	}
	BIO_set_data(bio, ts);
	/* Same BIO both ways: SSL_set_bio takes the one reference. */
	SSL_set_bio(ts->ssl, bio, bio);
	SSL_set_accept_state(ts->ssl);
	/* No read-ahead: one record at a time, so input_left() is exact. */
	SSL_set_read_ahead(ts->ssl, 0);
	SSL_set_mode(ts->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	ts->watching_hello = true;
	msg_callback_update(ts);
	return 0;
}

void tls_session_free(struct tls_session *ts)
{
	if (ts->ssl)
		SSL_free(ts->ssl);
	ts->ssl = NULL;
	if (ts->pool)
		outq_release(&ts->out, ts->pool);
	tls_session_clear_input(ts);
}

void tls_session_set_input(struct tls_session *ts, const uint8_t *data, uint32_t len)
{
	ts->in = data;
	ts->in_len = len;
	ts->in_off = 0;
}

/* Map an SSL_get_error() code; keep the first queued error for the caller
 * (verify_settle_failure, logs) and leave the thread's queue empty so the
 * next connection on this worker starts clean. */
static enum tls_io classify(struct tls_session *ts, int ret)
{
	int err = SSL_get_error(ts->ssl, ret);

	switch (err) {
	case SSL_ERROR_WANT_READ:
		return TLS_IO_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_IO_WANT_WRITE;
	case SSL_ERROR_WANT_ASYNC:
		return TLS_IO_WANT_ASYNC;
	case SSL_ERROR_ZERO_RETURN:
		return TLS_IO_CLOSED;
	case SSL_ERROR_SSL:
	case SSL_ERROR_SYSCALL:
	default:
		ts->first_error = ERR_peek_error();
		return TLS_IO_ERROR;
	}
}

enum tls_io tls_session_handshake(struct tls_session *ts)
{
	ERR_clear_error();
	int ret = SSL_do_handshake(ts->ssl);
	if (ret == 1) {
		ts->watching_hello = false;
		msg_callback_update(ts);
		return TLS_IO_OK;
	}
	return classify(ts, ret);
}

int tls_session_async_fd(struct tls_session *ts)
{
	OSSL_ASYNC_FD fds[4];
	size_t n = 0;

	/* One engine, one job per connection: the first fd is the one. */
	if (SSL_get_all_async_fds(ts->ssl, NULL, &n) != 1 || n == 0 || n > ARRAY_SIZE(fds) ||
	    SSL_get_all_async_fds(ts->ssl, fds, &n) != 1)
		return -1;
	return fds[0];
}

enum tls_io tls_session_read(struct tls_session *ts, uint8_t *buf, size_t cap, size_t *n)
{
	ERR_clear_error();
	*n = 0;
	if (SSL_read_ex(ts->ssl, buf, cap, n) == 1)
		return TLS_IO_OK;
	return classify(ts, 0);
}

enum tls_io tls_session_write(struct tls_session *ts, const uint8_t *buf, size_t len, size_t *n)
{
	ERR_clear_error();
	*n = 0;
	if (SSL_write_ex(ts->ssl, buf, len, n) == 1)
		return TLS_IO_OK;
	return classify(ts, 0);
}

enum tls_io tls_session_shutdown(struct tls_session *ts)
{
	ERR_clear_error();
	int ret = SSL_shutdown(ts->ssl);
	/* 0 = our close_notify is queued, theirs not seen yet: all we need. */
	if (ret >= 0)
		return TLS_IO_OK;
	return classify(ts, ret);
}
