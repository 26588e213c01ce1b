/*
 * ctlproto.c: the control protocol's frame and field codec (ctlproto.h).
 *
 * Everything a peer sends is bounded before it is read: the header says
 * how long the body is, a body above CTLPROTO_MAX_BODY is refused from the
 * header alone, and the body is checked byte by byte before any field is
 * handed out.
 */
#include "ctlproto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t magic[3] = { 'M', 'T', 'C' };

void ctlproto_init(struct ctl_msg *m)
{
	m->len = CTLPROTO_HEADER_LEN;
	m->overflow = false;
}

static bool key_ok(const char *k, size_t len)
{
	if (len == 0 || len > CTLPROTO_MAX_KEY)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = k[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
			return false;
	}
	return true;
}

void ctlproto_add(struct ctl_msg *m, const char *key, const char *fmt, ...)
{
	size_t klen = strlen(key);
	size_t room = sizeof(m->data) - m->len;
	va_list ap;

	if (m->overflow || !key_ok(key, klen) || room < klen + 2) {
		m->overflow = true;
		return;
	}
	char *p = (char *)m->data + m->len;
	memcpy(p, key, klen);
	p[klen] = '=';
	va_start(ap, fmt);
	int n = vsnprintf(p + klen + 1, room - klen - 1, fmt, ap);
	va_end(ap);
	/* vsnprintf needs the byte for its NUL; the newline takes its place. */
	if (n < 0 || (size_t)n + klen + 2 > room) {
		m->overflow = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[klen + 1 + i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			p[klen + 1 + i] = ' ';
	}
	p[klen + 1 + (size_t)n] = '\n';
	m->len += klen + 2 + (size_t)n;
}

int ctlproto_finish(struct ctl_msg *m)
{
	ENSURE(!m->overflow, EMSGSIZE);
	uint32_t body = (uint32_t)(m->len - CTLPROTO_HEADER_LEN);
	memcpy(m->data, magic, sizeof(magic));
	m->data[3] = CTLPROTO_VERSION;
	for (int i = 0; i < 4; i++)
		m->data[4 + i] = (uint8_t)(body >> (24 - 8 * i));
	return 0;
}

int ctlproto_parse_header(const uint8_t hdr[CTLPROTO_HEADER_LEN], uint32_t *body_len,
			  uint8_t *version)
{
	uint32_t len = 0;

	ENSURE(memcmp(hdr, magic, sizeof(magic)) == 0, EPROTO);
	*version = hdr[3];
	ENSURE(hdr[3] == CTLPROTO_VERSION, EPROTONOSUPPORT);
	for (int i = 0; i < 4; i++)
		len = (len << 8) | hdr[4 + i];
	ENSURE(len <= CTLPROTO_MAX_BODY, EMSGSIZE);
	*body_len = len;
	return 0;
}

int ctlproto_frame_status(const uint8_t *buf, size_t len, size_t *frame_len)
{
	uint32_t body;
	uint8_t version;

	if (len < CTLPROTO_HEADER_LEN)
		return 0;
	GUARD(ctlproto_parse_header(buf, &body, &version));
	*frame_len = CTLPROTO_HEADER_LEN + (size_t)body;
	return len >= *frame_len ? 1 : 0;
}

/* One "key=value" line (without its newline, NUL-terminated in place). */
static int parse_line(char *line, struct ctl_field *f)
{
	char *eq = strchr(line, '=');
	ENSURE(eq && key_ok(line, (size_t)(eq - line)), EBADMSG);
	for (const char *v = eq + 1; *v; v++) {
		unsigned char c = (unsigned char)*v;
		ENSURE(!((c < 0x20 && c != '\t') || c == 0x7f), EBADMSG);
	}
	*eq = '\0';
	f->key = line;
	f->value = eq + 1;
	return 0;
}

int ctlproto_parse_body(char *body, size_t len, struct ctl_field *fields, size_t max)
{
	size_t n = 0, start = 0;

	ENSURE(len <= CTLPROTO_MAX_BODY, EMSGSIZE);
	ENSURE(len == 0 || body[len - 1] == '\n', EBADMSG);
	ENSURE(memchr(body, '\0', len) == NULL, EBADMSG);
	body[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (body[i] != '\n')
			continue;
		ENSURE(n < max && n < CTLPROTO_MAX_FIELDS, EBADMSG);
		body[i] = '\0';
		GUARD(parse_line(body + start, &fields[n]));
		n++;
		start = i + 1;
	}
	return (int)n;
}

const char *ctlproto_get(const struct ctl_field *fields, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fields[i].key, key) == 0)
			return fields[i].value;
	return NULL;
}

const char *ctlproto_strerror(int rc)
{
	switch (rc) {
	case 0: return "ok";
	case -EPROTO: return "not a control-protocol frame (bad magic)";
	case -EPROTONOSUPPORT: return "unsupported control-protocol version";
	case -EMSGSIZE: return "message larger than 64 KiB";
	case -EBADMSG: return "malformed body (each line must be key=value, printable)";
	case -ECONNRESET: return "connection closed inside a frame";
	case -EAGAIN: return "timed out waiting for the peer";
	default: return strerror(-rc);
	}
}

/* ---- descriptors --------------------------------------------------------- */

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, (char *)buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		if (r == 0)
			return -ECONNRESET;
		got += (size_t)r;
	}
	return 0;
}

int ctlproto_read_frame(int fd, char *buf, size_t cap, size_t *body_len)
{
	uint8_t hdr[CTLPROTO_HEADER_LEN];
	uint32_t len;
	uint8_t version;

	GUARD(read_full(fd, hdr, sizeof(hdr)));
	GUARD(ctlproto_parse_header(hdr, &len, &version));
	ENSURE(len < cap, EMSGSIZE);
	GUARD(read_full(fd, buf, len));
	*body_len = len;
	return 0;
}

int ctlproto_write_frame(int fd, const struct ctl_msg *m)
{
	size_t off = 0;
	while (off < m->len) {
		/* A socket always: no SIGPIPE when the peer is gone. */
		ssize_t w = send(fd, m->data + off, m->len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		off += (size_t)w;
	}
	return 0;
}
