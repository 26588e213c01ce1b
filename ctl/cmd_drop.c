/*
 * cmd_drop.c: `mtlsctl drop --serial S [--issuer I]`: close every
 * established connection of one client certificate now (its key is
 * compromised). Revoke it too, or it simply connects again: see
 * docs/operations.md, "Emergency revocation".
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cert_name.h"
#include "cert_serial.h"
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
	/* The same readers as mtlsd's, so bad input is bad usage here (2),
	 * not a failure of mtlsd (1). */
	struct cert_serial sn;
	if (cert_serial_parse(serial, &sn) < 0) {
		log_err("--serial '%s': not a serial; give its hex digits, e.g. 09:6E:D7 or 096ed7", serial);
		return CTL_EXIT_USAGE;
	}
	if (issuer && !(strlen(issuer) == 40 && strspn(issuer, "0123456789abcdefABCDEF") == 40)) {
		X509_NAME *name = cert_name_parse(issuer, err, sizeof(err));
		if (!name) {
			log_err("--issuer '%s': %s", issuer, err);
			return CTL_EXIT_USAGE;
		}
		X509_NAME_free(name);
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
	/* The serial in its one spelling (as mtlsd's reply and audit give it). */
	char canonical[CERT_SERIAL_TEXT_MAX];
	cert_serial_format(&sn, canonical, sizeof(canonical));
	const char *other = ctlproto_get(reply.fields, reply.n, "other_issuer");
	if (issuer && other && strtoul(n ? n : "0", NULL, 10) == 0) {
		const char *seen = ctlproto_get(reply.fields, reply.n, "seen_issuer");
		const char *seen_id = ctlproto_get(reply.fields, reply.n, "seen_issuer_id");
		log_err("--issuer '%s' matches none of the %s live connection(s) of serial %s, so none "
			"was dropped; their issuer is '%s' (issuer_id %s): give that, or leave --issuer "
			"out to drop every certificate with this serial", issuer, other, canonical,
			seen ? seen : "?", seen_id ? seen_id : "?");
		return CTL_EXIT_CHECK_FAILED;
	}
	printf("dropped %s connection(s) of serial %s%s%s\n", n ? n : "0", canonical,
	       issuer ? " issued by " : "", issuer ? issuer : "");
	if (other)
		printf("(%s other connection(s) of this serial have another issuer and were kept)\n", other);
	return CTL_EXIT_OK;
}

const struct ctl_command cmd_drop = {
	.group = "drop",
	.name = "",
	.args = "--serial HEX [--issuer NAME|ISSUER_ID] [--socket PATH]",
	.summary = "close the live connections of one client certificate (key compromise)",
	.help =
		"  -S, --serial HEX      the certificate's serial (colons, case and leading zeros\n"
		"                        do not matter: 00:96:ED = 96ed)\n"
		"  -I, --issuer NAME     only when issued by this CA: its name as the audit log\n"
		"                        prints it (CN=..,O=..) or in openssl's /O=../CN=.. form,\n"
		"                        or the issuer_id of `mtlsctl cert inspect` and the audit log\n"
		"  -s, --socket PATH     mtlsd's control socket (default $MTLSD_CONTROL_SOCKET,\n"
		"                        else /run/mtlsd/control.sock)\n"
		"\n"
		"Closes the connections only: revoke the certificate and reload as well, or\n"
		"it connects again. Exit code: 0 done (the count is printed, 0 when no live\n"
		"connection has that serial), 1 mtlsd unreachable, a worker did not answer,\n"
		"or --issuer matched none of the live connections of that serial (their\n"
		"issuer is printed), 2 bad usage (a serial that is not hex included).\n",
	.run = run_drop,
};
