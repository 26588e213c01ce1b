/*
 * ktls_control.c: records that are not application data, on a socket whose
 * TLS is in the kernel.
 *
 * The kernel decrypts every record but hands non-data records only to a
 * recvmsg that carries a control buffer, with the content type in a
 * TLS_GET_RECORD_TYPE message (a plain recv fails with EIO), and sends
 * alerts and handshake messages given to sendmsg with TLS_SET_RECORD_TYPE.
 * mtlsd's rules: close_notify ends the client's direction in order; a
 * client NewSessionTicket is ignored; a TLS 1.3 KeyUpdate installs the next
 * key where the kernel can rekey (6.14+) and otherwise closes cleanly;
 * anything else closes the connection. Every outcome is counted.
 */
#include <openssl/crypto.h>
#include <string.h>

#include "ktls_internal.h"

#define TLS_ALERT_WARNING 1
#define TLS_ALERT_CLOSE_NOTIFY 0
#define TLS_HS_NEW_SESSION_TICKET 4
#define TLS_HS_KEY_UPDATE 24

void ktls_rxmsg_init(struct ktls_msg *m, void *buf, size_t len)
{
	memset(m, 0, sizeof(*m));
	m->iov.iov_base = buf;
	m->iov.iov_len = len;
	m->msg.msg_iov = &m->iov;
	m->msg.msg_iovlen = 1;
	m->msg.msg_control = m->control.buf;
	m->msg.msg_controllen = sizeof(m->control.buf);
}

uint8_t ktls_rxmsg_type(const struct ktls_msg *m)
{
	/* CMSG_NXTHDR takes a non-const msghdr; nothing is written. */
	struct msghdr *msg = (struct msghdr *)&m->msg;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c))
		if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE &&
		    c->cmsg_len >= CMSG_LEN(sizeof(uint8_t)))
			return *(const uint8_t *)CMSG_DATA(c);
	return KTLS_CT_APPLICATION_DATA;
}

ssize_t ktls_recv_record(int fd, void *buf, size_t len, int flags, uint8_t *type)
{
	struct ktls_msg m;
	ssize_t n;

	ktls_rxmsg_init(&m, buf, len);
	n = ktls_sys->recvmsg(fd, &m.msg, flags);
	if (n < 0)
		return -errno;
	*type = ktls_rxmsg_type(&m);
	return n;
}

void ktls_txmsg_init(struct ktls_msg *m, uint8_t type, const void *data, size_t len)
{
	struct cmsghdr *c;

	ktls_rxmsg_init(m, (void *)data, len);
	c = CMSG_FIRSTHDR(&m->msg);
	c->cmsg_level = SOL_TLS;
	c->cmsg_type = TLS_SET_RECORD_TYPE;
	c->cmsg_len = CMSG_LEN(sizeof(uint8_t));
	*CMSG_DATA(c) = type;
}

void ktls_txmsg_close_notify(struct ktls_msg *m)
{
	/* init clears the structure; the iovec points at body either way */
	ktls_txmsg_init(m, KTLS_CT_ALERT, m->body, 2);
	m->body[0] = TLS_ALERT_WARNING;
	m->body[1] = TLS_ALERT_CLOSE_NOTIFY;
}

/* One record of the given content type through the kernel. Never blocks
 * the worker: a full send buffer is -EAGAIN (the relay sends its
 * close_notify through io_uring instead, see ktls_txmsg_close_notify). */
static int send_typed(int fd, uint8_t type, const void *data, size_t len)
{
	struct ktls_msg m;
	ssize_t n;

	ktls_txmsg_init(&m, type, data, len);
	n = ktls_sys->sendmsg(fd, &m.msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	ENSURE((size_t)n == len, EIO);
	return 0;
}

int ktls_send_close_notify(int fd)
{
	static const uint8_t alert[2] = { TLS_ALERT_WARNING, TLS_ALERT_CLOSE_NOTIFY };

	return send_typed(fd, KTLS_CT_ALERT, alert, sizeof(alert));
}

/* Replace one direction's secret by the next one (RFC 8446 7.2) and hand
 * the key to the kernel with the sequence number restarting at 0. */
static int rekey(struct ktls_conn *kc, int fd, enum ktls_dir dir)
{
	uint8_t *secret = dir == KTLS_DIR_TX ? kc->server_secret : kc->client_secret;
	uint8_t next[KTLS_SECRET_MAX];
	union ktls_crypto_info info;
	struct ktls_suite s;
	socklen_t len;
	int rc;

	GUARD_GOTO(ktls_suite_of_cipher(kc->suite, &s), rc, out);
	GUARD_GOTO(ktls_hkdf_expand_label(s.md, secret, kc->secret_len, "traffic upd", next,
					  kc->secret_len), rc, out);
	GUARD_GOTO(ktls_tls13_info(&s, next, kc->secret_len, 0, &info, &len), rc, out);
	if (ktls_sys->setsockopt(fd, SOL_TLS, dir == KTLS_DIR_TX ? TLS_TX : TLS_RX, &info, len) < 0) {
		rc = -errno;
		goto out;
	}
	memcpy(secret, next, kc->secret_len);
out:
	OPENSSL_cleanse(next, sizeof(next));
	OPENSSL_cleanse(&info, sizeof(info));
	return rc;
}

static enum ktls_action on_key_update(struct ktls_conn *kc, int fd, bool update_requested,
				      enum ktls_event *why)
{
	/* update_not_requested: the answer to the peer's request. */
	static const uint8_t answer[5] = { TLS_HS_KEY_UPDATE, 0, 0, 1, 0 };

	if (rekey(kc, fd, KTLS_DIR_RX) < 0) {
		/* Kernels before 6.14 refuse a second TLS_RX (EBUSY): the
		 * records after this one are under a key they cannot take. */
		*why = KTLS_EV_KEYUPDATE_UNSUPPORTED;
		return KTLS_ACT_SHUTDOWN;
	}
	/* The answer goes out under the old key, then the key changes. */
	if (update_requested &&
	    (send_typed(fd, KTLS_CT_HANDSHAKE, answer, sizeof(answer)) < 0 ||
	     rekey(kc, fd, KTLS_DIR_TX) < 0)) {
		*why = KTLS_EV_KEYUPDATE_UNSUPPORTED;
		return KTLS_ACT_ABORT;
	}
	*why = KTLS_EV_KEYUPDATE;
	return KTLS_ACT_CONTINUE;
}

static enum ktls_action on_handshake(struct ktls_conn *kc, int fd, const uint8_t *rec,
				     size_t len, enum ktls_event *why)
{
	size_t off = 0;

	*why = KTLS_EV_BAD_RECORD;
	if (len == 0)
		return KTLS_ACT_ABORT;
	while (off < len) {
		size_t mlen;

		/* A message split across records is not something a client
		 * does after the handshake: refuse rather than reassemble. */
		if (len - off < 4)
			return KTLS_ACT_ABORT;
		mlen = (size_t)rec[off + 1] << 16 | (size_t)rec[off + 2] << 8 | rec[off + 3];
		if (len - off - 4 < mlen)
			return KTLS_ACT_ABORT;
		switch (rec[off]) {
		case TLS_HS_NEW_SESSION_TICKET:
			*why = KTLS_EV_TICKET_IGNORED;
			break;
		case TLS_HS_KEY_UPDATE:
			/* It must be alone at the end of its record (RFC 8446
			 * 5.1): what follows is under the next key. */
			if (kc->version != TLS_1_3_VERSION || mlen != 1 || rec[off + 4] > 1 ||
			    off + 5 != len)
				return KTLS_ACT_ABORT;
			return on_key_update(kc, fd, rec[off + 4] == 1, why);
		default:
			return KTLS_ACT_ABORT;
		}
		off += 4 + mlen;
	}
	return KTLS_ACT_CONTINUE;
}

enum ktls_action ktls_on_control(struct ktls_conn *kc, int fd, uint8_t type,
				 const uint8_t *rec, size_t len, enum ktls_event *why)
{
	enum ktls_action act;

	switch (type) {
	case KTLS_CT_ALERT:
		if (len == 2 && rec[1] == TLS_ALERT_CLOSE_NOTIFY) {
			*why = KTLS_EV_CLOSE_NOTIFY;
			act = KTLS_ACT_SHUTDOWN;
		} else {
			*why = len == 2 ? KTLS_EV_ALERT : KTLS_EV_BAD_RECORD;
			act = KTLS_ACT_ABORT;
		}
		break;
	case KTLS_CT_HANDSHAKE:
		act = on_handshake(kc, fd, rec, len, why);
		break;
	default:
		*why = KTLS_EV_BAD_RECORD;
		act = KTLS_ACT_ABORT;
		break;
	}
	ktls_count_event(*why);
	return act;
}
