/*
 * ctl_client.c: one request/reply over mtlsd's control socket
 * (ctl_client.h).
 */
#include "ctl_client.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

const char *ctl_client_socket(const char *path)
{
	const char *env = getenv("MTLSD_CONTROL_SOCKET");
	if (path)
		return path;
	return env && env[0] ? env : CTL_CLIENT_DEFAULT_SOCKET;
}

static int connect_to(const char *path, unsigned timeout_s, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: path too long for a unix socket", path);
		return -ENAMETOOLONG;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot connect: %s (%s)", path, strerror(e),
			 e == ENOENT || e == ECONNREFUSED ? "is mtlsd running? is control_socket set to this path?"
			 : e == EACCES ? "run as root, mtlsd's user or a member of control_group"
			 : "check the socket");
		close(fd);
		return -e;
	}
	return fd;
}

int ctl_client_call(const char *path, const struct ctl_msg *req, unsigned timeout_s,
		    struct ctl_reply *out, char *err, size_t errlen)
{
	size_t len = 0;
	int fd = connect_to(path, timeout_s, err, errlen);
	if (fd < 0)
		return fd;
	int rc = ctlproto_write_frame(fd, req);
	/* mtlsd may refuse (credentials) and close before reading: its reply
	 * is then waiting even though our write failed. */
	if (rc == 0 || rc == -EPIPE || rc == -ECONNRESET)
		rc = ctlproto_read_frame(fd, out->body, sizeof(out->body), &len);
	close(fd);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, ctlproto_strerror(rc));
		return rc;
	}
	int n = ctlproto_parse_body(out->body, len, out->fields, ARRAY_SIZE(out->fields));
	if (n < 0) {
		snprintf(err, errlen, "%s: mtlsd's reply: %s", path, ctlproto_strerror(n));
		return n;
	}
	out->n = (size_t)n;
	out->status = ctlproto_get(out->fields, out->n, "status");
	out->error = ctlproto_get(out->fields, out->n, "error");
	if (!out->status) {
		snprintf(err, errlen, "%s: mtlsd's reply has no status", path);
		return -EBADMSG;
	}
	return 0;
}

int ctl_client_simple(const struct ctl_command *cmd, int argc, char **argv, const char *name,
		      unsigned timeout_s, int unreachable_code, struct ctl_reply *out,
		      int *exit_code)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	static struct ctl_msg req;
	const char *socket_path = NULL;
	char err[1024];
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "s:", longopts, NULL)) != -1) {
		if (ch != 's') {
			*exit_code = ctl_usage(cmd);
			return -EINVAL;
		}
		socket_path = optarg;
	}
	if (optind != argc) {
		*exit_code = ctl_usage(cmd);
		return -EINVAL;
	}
	ctlproto_init(&req);
	ctlproto_add(&req, "cmd", "%s", name);
	rc = ctlproto_finish(&req);
	if (rc < 0)
		snprintf(err, sizeof(err), "request '%s' does not fit a control frame", name);
	else
		rc = ctl_client_call(ctl_client_socket(socket_path), &req, timeout_s, out, err,
				     sizeof(err));
	if (rc < 0) {
		log_err("%s", err);
		*exit_code = unreachable_code;
	}
	return rc;
}
