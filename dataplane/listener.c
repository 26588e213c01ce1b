/*
 * listener.c: see listener.h.
 */
#include "listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int listener_open(const struct cfg_addr *addr, int *fd_out)
{
	int one = 1, rc = 0;

	ENSURE(!addr->is_unix, EAFNOSUPPORT);
	int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (addr->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	*fd_out = fd;
	return 0;
fail:
	rc = -errno;
	close(fd);
	return rc;
}

int listener_pin_port(struct cfg_addr *addr, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *have = (struct sockaddr_in *)&addr->ss;
		const struct sockaddr_in *got = (const struct sockaddr_in *)&ss;
		if (have->sin_port != 0)
			return 0;
		have->sin_port = got->sin_port;
		inet_ntop(AF_INET, &got->sin_addr, host, sizeof(host));
		snprintf(addr->text, sizeof(addr->text), "%s:%u", host, ntohs(got->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *have = (struct sockaddr_in6 *)&addr->ss;
		const struct sockaddr_in6 *got = (const struct sockaddr_in6 *)&ss;
		if (have->sin6_port != 0)
			return 0;
		have->sin6_port = got->sin6_port;
		inet_ntop(AF_INET6, &got->sin6_addr, host, sizeof(host));
		snprintf(addr->text, sizeof(addr->text), "[%s]:%u", host, ntohs(got->sin6_port));
	}
	return 0;
}
