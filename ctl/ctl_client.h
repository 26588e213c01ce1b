/*
 * ctl_client.h: mtlsctl's side of the control socket (lib/ctlproto.h).
 *
 * One request, one reply: connect to the socket (--socket PATH, else
 * $MTLSD_CONTROL_SOCKET, else /run/mtlsd/control.sock), send the fields,
 * read the reply with a timeout, and hand back its fields.
 */
#ifndef MTLSCTL_CTL_CLIENT_H
#define MTLSCTL_CTL_CLIENT_H

#include <stddef.h>

#include "cmd.h"
#include "ctlproto.h"
#include "guard.h"

#define CTL_CLIENT_DEFAULT_SOCKET "/run/mtlsd/control.sock"

struct ctl_reply {
	char body[CTLPROTO_MAX_BODY + 1];
	struct ctl_field fields[CTLPROTO_MAX_FIELDS];
	size_t n;
	const char *status; /* "ok" or "error" */
	const char *error;  /* the reason when status is "error", else NULL */
};

/* The socket to use: path if given, else the environment, else the default. */
const char *ctl_client_socket(const char *path);

/*
 * Send req (finished by the caller) to the socket at path and read the
 * reply into *out, waiting up to timeout_s seconds. Returns 0 (whatever
 * the status field says) or -errno with err naming the socket and what to
 * check.
 */
int ctl_client_call(const char *path, const struct ctl_msg *req, unsigned timeout_s,
		    struct ctl_reply *out, char *err, size_t errlen) MUST_CHECK;

/*
 * The client side of a command whose only option is --socket (reload,
 * status, certs): parse argv for cmd, send {cmd = name}, read the reply
 * into *out, waiting up to timeout_s. Returns 0 once a reply arrived
 * (whatever its status says). Otherwise returns -EINVAL after printing
 * cmd's usage (*exit_code = the usage exit code), or -errno after logging
 * why mtlsd could not be asked (*exit_code = unreachable_code).
 */
int ctl_client_simple(const struct ctl_command *cmd, int argc, char **argv, const char *name,
		      unsigned timeout_s, int unreachable_code, struct ctl_reply *out,
		      int *exit_code) MUST_CHECK;

#endif
