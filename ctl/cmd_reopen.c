/*
 * cmd_reopen.c: `mtlsctl reopen`: ask mtlsd to reopen its audit log, for
 * logrotate's postrotate (tuning/logrotate.d/mtlsd, docs/audit.md).
 *
 * Unlike SIGHUP it reloads nothing: rotating a log must not also apply a
 * configuration someone is halfway through editing. Every audit line goes
 * to the old file or to the new one, exactly once.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "ctl_client.h"
#include "log.h"

extern const struct ctl_command cmd_reopen;

static int run_reopen(int argc, char **argv)
{
	static struct ctl_reply reply;
	int code;

	if (ctl_client_simple(&cmd_reopen, argc, argv, "reopen", 10, CTL_EXIT_CHECK_FAILED, &reply,
			      &code) < 0)
		return code;
	if (strcmp(reply.status, "ok") != 0) {
		log_err("mtlsd: %s", reply.error ? reply.error : "(no reason given)");
		return CTL_EXIT_CHECK_FAILED;
	}
	printf("audit log reopened\n");
	return CTL_EXIT_OK;
}

const struct ctl_command cmd_reopen = {
	.group = "reopen",
	.name = "",
	.args = "[--socket PATH]",
	.summary = "reopen mtlsd's audit log (after logrotate renamed it)",
	.help =
		"  -s, --socket PATH     mtlsd's control socket (default $MTLSD_CONTROL_SOCKET,\n"
		"                        else /run/mtlsd/control.sock)\n"
		"\n"
		"The file named by audit_log is opened again (created if it was renamed away)\n"
		"and replaces the old one; the configuration is not reloaded.\n"
		"Exit code: 0 reopened, 1 mtlsd could not reopen it (the reason is printed; it\n"
		"keeps writing to the file it had) or mtlsd unreachable.\n",
	.run = run_reopen,
};
