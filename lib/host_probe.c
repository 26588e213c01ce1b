/*
 * host_probe.c: the kernel features mtlsd needs, probed (see host_probe.h).
 */
#include "host_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <unistd.h>

#include "string_table.h"

/* What dataplane/ submits. A new io_uring_prep_*() call there fails
 * test_host_probe until its helper (and op) is listed here. */
const struct uring_need_desc uring_needs[URING_NEED_MAX] = {
	[URING_NEED_ACCEPT] = { IORING_OP_ACCEPT, { "io_uring_prep_multishot_accept" } },
	[URING_NEED_RECV] = { IORING_OP_RECV, { "io_uring_prep_recv" } },
	[URING_NEED_SEND] = { IORING_OP_SEND, { "io_uring_prep_send" } },
	[URING_NEED_CONNECT] = { IORING_OP_CONNECT, { "io_uring_prep_connect" } },
	[URING_NEED_READ] = { IORING_OP_READ, { "io_uring_prep_read" } },
	[URING_NEED_NOP] = { IORING_OP_NOP, { "io_uring_prep_nop" } },
	[URING_NEED_TIMEOUT] = { IORING_OP_TIMEOUT, { "io_uring_prep_timeout" } },
	[URING_NEED_LINK_TIMEOUT] = { IORING_OP_LINK_TIMEOUT, { "io_uring_prep_link_timeout" } },
	[URING_NEED_ASYNC_CANCEL] = { IORING_OP_ASYNC_CANCEL,
				      { "io_uring_prep_cancel64", "io_uring_prep_cancel_fd" } },
	[URING_NEED_SENDMSG] = { IORING_OP_SENDMSG, { "io_uring_prep_sendmsg" } },
	[URING_NEED_POLL_ADD] = { IORING_OP_POLL_ADD, { "io_uring_prep_poll_add" } },
	[URING_NEED_MSG_RING] = { IORING_OP_MSG_RING, { "io_uring_prep_msg_ring" } },
};

static const char *const need_names[URING_NEED_MAX] = {
	[URING_NEED_ACCEPT] = "accept",
	[URING_NEED_RECV] = "recv",
	[URING_NEED_SEND] = "send",
	[URING_NEED_CONNECT] = "connect",
	[URING_NEED_READ] = "read",
	[URING_NEED_NOP] = "nop",
	[URING_NEED_TIMEOUT] = "timeout",
	[URING_NEED_LINK_TIMEOUT] = "link_timeout",
	[URING_NEED_ASYNC_CANCEL] = "async_cancel",
	[URING_NEED_SENDMSG] = "sendmsg",
	[URING_NEED_POLL_ADD] = "poll_add",
	[URING_NEED_MSG_RING] = "msg_ring",
};

DEFINE_STRING_TABLE(uring_need, enum uring_need, need_names, "?")

int host_probe_uring_ops(struct io_uring *ring, uint32_t *have)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(ring);

	*have = 0;
	ENSURE_PTR(probe, ENOTSUP);
	for (unsigned i = 0; i < URING_NEED_MAX; i++)
		if (io_uring_opcode_supported(probe, uring_needs[i].opcode))
			*have |= 1u << i;
	io_uring_free_probe(probe);
	return 0;
}

const char *uring_needs_missing(uint32_t have, char *buf, size_t len)
{
	size_t off = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (unsigned i = 0; i < URING_NEED_MAX && off < len; i++) {
		if (have & (1u << i))
			continue;
		int w = snprintf(buf + off, len - off, "%s%s", off ? "," : "", need_names[i]);
		off += w > 0 ? (size_t)w : 0;
	}
	return buf;
}

int host_probe_tls_ulp(host_setsockopt_fn set)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	int lfd, cfd = -1, rc;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0) {
		rc = -errno;
		goto out;
	}
	/* Connected is enough: the kernel finishes the loopback handshake
	 * into the backlog, and a ULP attaches only to an established socket. */
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto out;
	}
	errno = 0;
	rc = (set ? set : setsockopt)(cfd, SOL_TCP, TCP_ULP, "tls", sizeof("tls"));
	if (rc != 0)
		rc = errno ? -errno : -EIO;
out:
	if (cfd >= 0)
		close(cfd);
	close(lfd);
	return rc;
}
