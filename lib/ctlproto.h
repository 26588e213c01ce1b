/*
 * ctlproto.h: the control protocol between mtlsctl and mtlsd.
 *
 * One request, one response, over a unix stream socket. Each message is a
 * frame: an 8-byte header ("MTC", a version byte, the body length as 4
 * bytes big-endian) and a body of at most CTLPROTO_MAX_BODY bytes. The
 * body is text, one "key=value" field per line; keys are [a-z0-9_.]{1,31},
 * values are printable (no control characters but tab) and a key may
 * repeat (one "cert=" line per certificate). A request names its command
 * in its first field ("cmd=reload"); a response starts with "status=ok" or
 * "status=error" followed by "error=REASON".
 *
 * Text rather than JSON: both sides stay a page of C with no parser, an
 * operator can read a captured frame, and the codec is small enough to
 * fuzz exhaustively. The version byte lets a later mtlsctl talk to an older
 * mtlsd: a daemon answers a version it does not speak with an error frame
 * of its own version.
 *
 * The codec functions are pure (no I/O, no allocation); ctlproto_read_frame
 * and ctlproto_write_frame are the only ones that touch a descriptor.
 */
#ifndef MTLS_CTLPROTO_H
#define MTLS_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"

#define CTLPROTO_VERSION 1
#define CTLPROTO_HEADER_LEN 8
#define CTLPROTO_MAX_BODY (64u * 1024u)
#define CTLPROTO_MAX_KEY 31
#define CTLPROTO_MAX_FIELDS 4096

/* A message being built: header space + body, in one bounded buffer. */
struct ctl_msg {
	uint8_t data[CTLPROTO_HEADER_LEN + CTLPROTO_MAX_BODY];
	size_t len;       /* header + body so far */
	bool overflow;    /* a field did not fit; ctlproto_finish fails */
};

/* One parsed field; both point into the parsed body (NUL-terminated). */
struct ctl_field {
	const char *key;
	const char *value;
};

/* Start an empty message. */
void ctlproto_init(struct ctl_msg *m);

/*
 * Append "key=value\n". The value is printf-formatted; control characters
 * in it (a newline in an OpenSSL error, say) become spaces so one field
 * stays one line. A key outside [a-z0-9_.]{1,31} or a body that would
 * exceed CTLPROTO_MAX_BODY sets m->overflow instead.
 */
void ctlproto_add(struct ctl_msg *m, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Write the header. Returns 0, or -EMSGSIZE after an overflow. */
int ctlproto_finish(struct ctl_msg *m) MUST_CHECK;

/*
 * Decode a frame header. *body_len gets the announced length. Returns 0,
 * -EPROTO (not our magic), -EPROTONOSUPPORT (another version; *version
 * says which) or -EMSGSIZE (body larger than CTLPROTO_MAX_BODY).
 */
int ctlproto_parse_header(const uint8_t hdr[CTLPROTO_HEADER_LEN], uint32_t *body_len,
			  uint8_t *version) MUST_CHECK;

/*
 * Split a body (len bytes at body, which must have room for one more byte:
 * it is modified in place and NUL-terminated) into fields. Returns the
 * number of fields, or -EBADMSG for a NUL byte, a line without '=', a bad
 * key, a control character in a value, a missing final newline, or more
 * than max fields.
 */
int ctlproto_parse_body(char *body, size_t len, struct ctl_field *fields, size_t max) MUST_CHECK;

/*
 * How a frame arriving in buf stands after len bytes: 0 while more are
 * needed, 1 once buf holds all of it (*frame_len = header + body), or a
 * ctlproto_parse_header error as soon as the header is known to be bad.
 * Pure: for a server that reads without blocking.
 */
int ctlproto_frame_status(const uint8_t *buf, size_t len, size_t *frame_len) MUST_CHECK;

/* The value of the first field named key, or NULL. */
const char *ctlproto_get(const struct ctl_field *fields, size_t n, const char *key);

/* The name of a parse error for messages ("bad magic", "message too large"). */
const char *ctlproto_strerror(int rc);

/*
 * Read one frame from fd into buf (at least CTLPROTO_MAX_BODY + 1 bytes):
 * *body_len gets the body length. Blocking; the caller bounds it with
 * SO_RCVTIMEO. Returns 0, a ctlproto_parse_header error, -ECONNRESET for
 * EOF inside a frame, -EAGAIN on timeout, or another -errno.
 */
int ctlproto_read_frame(int fd, char *buf, size_t cap, size_t *body_len) MUST_CHECK;

/* Write a finished message. Returns 0 or -errno. */
int ctlproto_write_frame(int fd, const struct ctl_msg *m) MUST_CHECK;

#endif
