/*
 * tls_session.h: one connection's TLS, driven entirely through memory.
 *
 * The session owns the SSL object and ONE custom BIO used as both its read
 * and write BIO. OpenSSL never touches a socket:
 *  - reads are served from the "input slice": the bytes of the receive
 *    buffer the worker just got from io_uring. When the slice is empty the
 *    BIO says "retry read" and the worker arms the next receive.
 *  - writes are appended to the session's output queue (a chunk, see
 *    chunk.h) that the worker sends to the client, one whole record at a
 *    time. When the record does not fit, the BIO says "retry write" and
 *    OpenSSL keeps it until the send completed.
 * read_ahead stays off, so OpenSSL pulls exactly the bytes of the record it
 * is working on: tls_session_input_left() is precisely the ciphertext still
 * in user space and not yet seen by OpenSSL. The kernel TLS handoff and the
 * byte accounting depend on that.
 */
#ifndef MTLSD_TLS_SESSION_H
#define MTLSD_TLS_SESSION_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "guard.h"

/* The result of one step, in the vocabulary the connection needs. */
enum tls_io {
	TLS_IO_OK = 0,      /* progress: handshake complete, or n > 0 bytes moved */
	TLS_IO_WANT_READ,   /* the input slice is exhausted: receive more */
	TLS_IO_WANT_WRITE,  /* the output queue is full: send it first */
	TLS_IO_CLOSED,      /* the peer sent close_notify */
	TLS_IO_ERROR,       /* fatal: protocol error, alert, verification failure */
	TLS_IO_WANT_ASYNC,  /* an async engine paused the job: poll tls_session_async_fd() */
};

/* OpenSSL's message callback, as SSL_set_msg_callback takes it. */
typedef void tls_msg_observer(int write_p, int version, int content_type, const void *buf,
			      size_t len, SSL *ssl, void *arg);

struct tls_session {
	SSL *ssl;
	struct chunk_pool *pool;     /* where the output queue gets its chunk */
	struct outq out;             /* TLS records waiting to go to the client */
	const uint8_t *in;           /* current input slice (not owned) */
	uint32_t in_len, in_off;
	uint64_t bytes_in;           /* ciphertext handed to OpenSSL, total */
	uint64_t bytes_out;          /* ciphertext produced by OpenSSL, total */
	unsigned long first_error;   /* ERR_peek_error() of the last TLS_IO_ERROR */
	bool hello_received;         /* a whole ClientHello has arrived (admission.h) */
	bool watching_hello;         /* until the handshake ends */
	tls_msg_observer *observer;  /* a second reader of every message (kTLS) */
};

/*
 * Create the SSL for a server-side connection on ctx, with the slice BIO,
 * partial writes, moving write buffers and no read-ahead. pool supplies
 * output chunks and must outlive the session. Until the handshake is done,
 * the session watches for the client's ClientHello and sets hello_received
 * once the whole message has arrived: under pressure, handshakes that never
 * got that far are the first to go (admission.h). Returns 0 or -ENOMEM.
 */
int tls_session_init(struct tls_session *ts, SSL_CTX *ctx, struct chunk_pool *pool) MUST_CHECK;

/*
 * An SSL has one message callback, and it is the session's: a second user
 * (kTLS counts the records of each epoch, ktls.h) observes through it
 * rather than replacing it, and keeps seeing every message after the
 * handshake. NULL stops the observer.
 */
void tls_session_observe(struct tls_session *ts, tls_msg_observer *observer);

/* Free the SSL and any queued output. A zeroed session is fine. */
void tls_session_free(struct tls_session *ts);

/* Point the BIO at new ciphertext. The previous slice must be exhausted. */
void tls_session_set_input(struct tls_session *ts, const uint8_t *data, uint32_t len);

/* Ciphertext of the current slice that OpenSSL has not consumed yet. */
static inline uint32_t tls_session_input_left(const struct tls_session *ts)
{
	return ts->in_len - ts->in_off;
}

/* Forget the slice (its buffer is going back to the ring); it must be
 * exhausted or the connection is being torn down. */
static inline void tls_session_clear_input(struct tls_session *ts)
{
	ts->in = NULL;
	ts->in_len = ts->in_off = 0;
}

/* One step of the server handshake. TLS_IO_OK when it completed. */
enum tls_io tls_session_handshake(struct tls_session *ts);

/* After TLS_IO_WANT_ASYNC: the fd the paused engine job waits on (readable
 * when it can resume), or -1 when the engine gave none. */
int tls_session_async_fd(struct tls_session *ts);

/* Decrypt up to cap bytes of application data into buf; *n gets the count. */
enum tls_io tls_session_read(struct tls_session *ts, uint8_t *buf, size_t cap, size_t *n);

/* Encrypt up to len bytes of buf into the output queue; *n gets how many
 * plaintext bytes were taken (possibly fewer: partial writes are on). */
enum tls_io tls_session_write(struct tls_session *ts, const uint8_t *buf, size_t len, size_t *n);

/* Queue our close_notify. TLS_IO_OK once it is in the output queue. */
enum tls_io tls_session_shutdown(struct tls_session *ts);

#endif
