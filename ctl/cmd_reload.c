/*
 * cmd_reload.c: `mtlsctl reload`: ask mtlsd to re-read its configuration
 * and every file it names, and switch only if all of it is valid.
 *
 * Prints the new generation, or the exact file and reason mtlsd refused
 * it for (the running configuration then keeps serving) and exits 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "ctl_client.h"
#include "log.h"

extern const struct ctl_command cmd_reload;

#define RELOAD_TIMEOUT_S 120 /* a large trust store takes a while to build */

static int run_reload(int argc, char **argv)
{
	static struct ctl_reply reply;
	int code;

	if (ctl_client_simple(&cmd_reload, argc, argv, "reload", RELOAD_TIMEOUT_S,
			      CTL_EXIT_CHECK_FAILED, &reply, &code) < 0)
		return code;
	if (strcmp(reply.status, "ok") != 0) {
		fprintf(stderr, "mtlsctl reload: refused, the running configuration keeps serving: %s\n",
			reply.error ? reply.error : "(no reason given)");
		return CTL_EXIT_CHECK_FAILED;
	}
	const char *gen = ctlproto_get(reply.fields, reply.n, "generation");
	printf("reloaded: generation %s is serving new connections\n", gen ? gen : "?");
	return CTL_EXIT_OK;
}

const struct ctl_command cmd_reload = {
	.group = "reload",
	.name = "",
	.args = "[--socket PATH]",
	.summary = "re-read mtlsd's configuration and files; switch only if all are valid",
	.help =
		"  -s, --socket PATH     mtlsd's control socket (default $MTLSD_CONTROL_SOCKET,\n"
		"                        else /run/mtlsd/control.sock)\n"
		"\n"
		"Exit code: 0 the new configuration serves, 1 refused (the exact file and\n"
		"reason are printed; the old configuration keeps serving) or mtlsd unreachable.\n",
	.run = run_reload,
};
