/*
 * cmd_drop.c: `mtlsctl drop --serial S [--issuer I]`: close every
 * established connection of one client certificate now (its key is
 * compromised). Revoke it too, or it simply connects again: see
 * docs/operations.md, "Emergency revocation".
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "ctl_client.h"
#include "log.h"

extern const struct ctl_command cmd_drop;

static int run_drop(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "serial", required_argument, NULL, 'S' },
		{ "issuer", required_argument, NULL, 'I' },
		{ "socket", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	static struct ctl_reply reply;
	static struct ctl_msg req;
	const char *socket_path = NULL, *serial = NULL, *issuer = NULL;
	char err[1024];
	int ch;

	while ((ch = getopt_long(argc, argv, "S:I:s:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'S': serial = optarg; break;
		case 'I': issuer = optarg; break;
		case 's': socket_path = optarg; break;
		default: return ctl_usage(&cmd_drop);
		}
	}
	if (optind != argc || !serial) {
		log_err("drop needs --serial HEX (as `mtlsctl cert inspect` or the audit log print it)");
		return ctl_usage(&cmd_drop);
	}
	ctlproto_init(&req);
	ctlproto_add(&req, "cmd", "drop");
	ctlproto_add(&req, "serial", "%s", serial);
	if (issuer)
		ctlproto_add(&req, "issuer", "%s", issuer);
	if (ctlproto_finish(&req) < 0) {
		log_err("--serial/--issuer: too long or holds characters the control protocol refuses");
		return CTL_EXIT_USAGE;
	}
	if (ctl_client_call(ctl_client_socket(socket_path), &req, 30, &reply, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return CTL_EXIT_CHECK_FAILED;
	}
	const char *n = ctlproto_get(reply.fields, reply.n, "dropped");
	if (strcmp(reply.status, "ok") != 0) {
		log_err("mtlsd: %s (connections closed so far: %s)", reply.error ? reply.error : "(no reason)",
			n ? n : "0");
		return CTL_EXIT_CHECK_FAILED;
	}
	printf("dropped %s connection(s) of serial %s%s%s\n", n ? n : "0", serial,
	       issuer ? " issued by " : "", issuer ? issuer : "");
	return CTL_EXIT_OK;
}

const struct ctl_command cmd_drop = {
	.group = "drop",
	.name = "",
	.args = "--serial HEX [--issuer NAME|ISSUER_ID] [--socket PATH]",
	.summary = "close the live connections of one client certificate (key compromise)",
	.help =
		"  -S, --serial HEX      the certificate's serial (colons and case do not matter)\n"
		"  -I, --issuer NAME     only when issued by this CA: its RFC 2253 name or the\n"
		"                        issuer_id that `mtlsctl cert inspect` and the audit log print\n"
		"  -s, --socket PATH     mtlsd's control socket (default $MTLSD_CONTROL_SOCKET,\n"
		"                        else /run/mtlsd/control.sock)\n"
		"\n"
		"Closes the connections only: revoke the certificate and reload as well, or\n"
		"it connects again. Exit code: 0 done (the count is printed), 1 mtlsd\n"
		"unreachable or a worker did not answer, 2 bad usage.\n",
	.run = run_drop,
};
