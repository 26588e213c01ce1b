/*
 * cmd_status.c: `mtlsctl status`: what the running mtlsd is doing:
 * version, uptime, workers, connections, handshake rate, kernel TLS and
 * BPF, configuration generation and the last reload.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "ctl_client.h"
#include "log.h"

extern const struct ctl_command cmd_status;

/* Unix times are shown as UTC and as an age. */
static void print_field(const struct ctl_field *f)
{
	if (strcmp(f->key, "reload.last_time") == 0) {
		time_t t = (time_t)strtoll(f->value, NULL, 10);
		char when[64] = "never";
		struct tm tm;
		if (t > 0 && gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%-26s %s\n", f->key, when);
		return;
	}
	printf("%-26s %s\n", f->key, f->value);
}

static int run_status(int argc, char **argv)
{
	static struct ctl_reply reply;
	int code;

	if (ctl_client_simple(&cmd_status, argc, argv, "status", 10, CTL_EXIT_CHECK_FAILED,
			      &reply, &code) < 0)
		return code;
	if (strcmp(reply.status, "ok") != 0) {
		log_err("mtlsd: %s", reply.error ? reply.error : "(no reason given)");
		return CTL_EXIT_CHECK_FAILED;
	}
	for (size_t i = 0; i < reply.n; i++)
		if (strcmp(reply.fields[i].key, "status") != 0)
			print_field(&reply.fields[i]);
	return CTL_EXIT_OK;
}

const struct ctl_command cmd_status = {
	.group = "status",
	.name = "",
	.args = "[--socket PATH]",
	.summary = "the running mtlsd: uptime, connections, handshakes/s, generation, last reload",
	.help =
		"  -s, --socket PATH     mtlsd's control socket (default $MTLSD_CONTROL_SOCKET,\n"
		"                        else /run/mtlsd/control.sock)\n"
		"\n"
		"Exit code: 0 printed, 1 mtlsd unreachable or refused the request.\n",
	.run = run_status,
};
