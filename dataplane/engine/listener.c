/*
 * listener.c: see listener.h.
 *
 * Who else listens: the kernel's socket tables in /proc/net/tcp and tcp6
 * (state 0A, LISTEN; the local address and the socket's inode), then the
 * process holding that inode in /proc/PID/fd. Only read when something is
 * in the way, to name it; a process in another pid namespace stays
 * unnamed.
 */
#include "listener.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* ---- one mtlsd per address ------------------------------------------------ */

struct listen_entry {
	int family;
	unsigned char addr[16];
	unsigned port;
	unsigned long inode;
};

/* "0100007F:20FB" (IPv4) or 32 hex digits (IPv6), each 32-bit word in
 * host byte order as the kernel prints it. */
static bool parse_proc_addr(const char *text, int family, struct listen_entry *e)
{
	size_t words = family == AF_INET ? 1 : 4;
	const char *p = text;

	for (size_t i = 0; i < words; i++) {
		char hex[9];
		memcpy(hex, p, 8);
		hex[8] = '\0';
		for (int k = 0; k < 8; k++)
			if (!isxdigit((unsigned char)hex[k]))
				return false;
		uint32_t w = (uint32_t)strtoul(hex, NULL, 16);
		memcpy(e->addr + 4 * i, &w, 4);
		p += 8;
	}
	if (*p != ':')
		return false;
	e->family = family;
	e->port = (unsigned)strtoul(p + 1, NULL, 16);
	return true;
}

static void addr_of(const struct cfg_addr *a, int *family, unsigned char out[16], unsigned *port)
{
	*family = a->ss.ss_family;
	memset(out, 0, 16);
	if (*family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
		memcpy(out, &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
		memcpy(out, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
	}
}

static bool is_any(const unsigned char *a, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (a[i])
			return false;
	return true;
}

/* A listener the kernel would weigh against a socket bound to addr: same
 * family and port, and the same address or either one the wildcard. */
static bool overlaps(const struct listen_entry *e, const struct cfg_addr *addr)
{
	unsigned char want[16];
	unsigned port;
	int family;

	addr_of(addr, &family, want, &port);
	size_t len = family == AF_INET ? 4 : 16;
	return e->family == family && e->port == port &&
	       (memcmp(e->addr, want, len) == 0 || is_any(e->addr, len) || is_any(want, len));
}

/* The first listener overlapping addr whose inode is not in own[0..n). */
static bool find_listener(const struct cfg_addr *addr, const unsigned long *own, size_t n,
			  struct listen_entry *found)
{
	const int family = addr->ss.ss_family;
	FILE *f = fopen(family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6", "re");
	char line[512], local[64];
	unsigned st;
	bool hit = false;

	if (!f)
		return false;
	while (!hit && fgets(line, sizeof(line), f)) {
		struct listen_entry e = { 0 };
		/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
		if (sscanf(line, " %*u: %63s %*s %x %*s %*s %*s %*u %*u %lu", local, &st, &e.inode) != 3 ||
		    st != 0x0A || !parse_proc_addr(local, family, &e) || !overlaps(&e, addr))
			continue;
		hit = true;
		for (size_t i = 0; i < n; i++)
			if (own[i] == e.inode)
				hit = false;
		if (hit)
			*found = e;
	}
	fclose(f);
	return hit;
}

/* The pid (and command) holding socket inode, or 0. */
static pid_t owner_of(unsigned long inode, char *comm, size_t commlen)
{
	char want[64], path[600], link[64];
	pid_t pid = 0;
	DIR *proc = opendir("/proc");

	comm[0] = '\0';
	if (!proc)
		return 0;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	for (struct dirent *p; !pid && (p = readdir(proc));) {
		if (!isdigit((unsigned char)p->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
		DIR *fds = opendir(path);
		for (struct dirent *fd; fds && !pid && (fd = readdir(fds));) {
			snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, fd->d_name);
			ssize_t n = readlink(path, link, sizeof(link) - 1);
			if (n > 0 && (size_t)n == strlen(want) && memcmp(link, want, (size_t)n) == 0)
				pid = (pid_t)atoi(p->d_name);
		}
		if (fds)
			closedir(fds);
	}
	closedir(proc);
	if (pid) {
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		FILE *f = fopen(path, "re");
		if (f && fgets(comm, (int)commlen, f))
			comm[strcspn(comm, "\n")] = '\0';
		if (f)
			fclose(f);
	}
	return pid;
}

static int refuse(const struct cfg_addr *addr, const struct listen_entry *e, bool found,
		  const char *when, char *err, size_t errlen)
{
	char comm[64] = "", who[128] = "another process";
	pid_t pid = found ? owner_of(e->inode, comm, sizeof(comm)) : 0;

	if (pid)
		snprintf(who, sizeof(who), "pid %d (%s)", (int)pid, comm[0] ? comm : "?");
	snprintf(err, errlen, "listen %s: address already in use by %s%s; with SO_REUSEPORT both "
		 "would get a share of new connections. Stop it first, give this mtlsd another "
		 "listen address, or start with --takeover for a binary upgrade (docs/operations.md, "
		 "\"Upgrade the binary\")", addr->text, who, when);
	return -EADDRINUSE;
}

int listener_check_free(const struct cfg_addr *addr, char *err, size_t errlen)
{
	struct listen_entry e;
	unsigned char any[16];
	unsigned port;
	int family, one = 1;

	addr_of(addr, &family, any, &port);
	if (addr->is_unix || port == 0)
		return 0;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	/* As listener_open binds, minus SO_REUSEPORT. */
	int rc = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
	    (family != AF_INET6 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0) &&
	    bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 && errno == EADDRINUSE)
		rc = -EADDRINUSE;
	close(fd);
	if (rc == 0)
		return 0;
	return refuse(addr, &e, find_listener(addr, NULL, 0, &e), "", err, errlen);
}

int listener_check_alone(const struct cfg_addr *addr, const int *fds, size_t n, char *err,
			 size_t errlen)
{
	struct listen_entry e;
	struct stat st;
	size_t k = 0;

	if (addr->is_unix)
		return 0;
	unsigned long *own = calloc(n ? n : 1, sizeof(*own));
	ENSURE_PTR(own, ENOMEM);
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0 && fstat(fds[i], &st) == 0)
			own[k++] = (unsigned long)st.st_ino;
	bool other = find_listener(addr, own, k, &e);
	free(own);
	if (!other)
		return 0;
	return refuse(addr, &e, true, ", which started listening at the same time as this mtlsd",
		      err, errlen);
}
