/*
 * addr.c: numeric "host:port" and "[v6]:port" parsing for the load
 * generator and its echo backend. No name resolution: benchmarks name
 * their loopback addresses exactly.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

int lg_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	ENSURE(colon && colon != s, EINVAL);
	size_t hl = (size_t)(colon - s);
	if (s[0] == '[') {
		ENSURE(hl >= 2 && s[hl - 1] == ']', EINVAL);
		s++;
		hl -= 2;
	}
	ENSURE(hl < sizeof(host), EINVAL);
	memcpy(host, s, hl);
	host[hl] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	ENSURE(*end == '\0' && end != colon + 1 && port >= 0 && port <= 65535, EINVAL);

	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof(*v4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*v6);
		return 0;
	}
	return -EINVAL;
}
