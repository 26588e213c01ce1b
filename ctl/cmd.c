/*
 * cmd.c: what every command shares: the usage line and test mode.
 */
#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

static bool test_mode;

bool ctl_test_mode(void)
{
	const char *env = getenv("MTLSCTL_TEST");
	return test_mode || (env && strcmp(env, "1") == 0);
}

void ctl_set_test_mode(bool on)
{
	test_mode = on;
}

int ctl_usage(const struct ctl_command *cmd)
{
	fprintf(stderr, "usage: mtlsctl %s %s %s\n       (mtlsctl %s %s --help for details)\n",
		cmd->group, cmd->name, cmd->args, cmd->group, cmd->name);
	return CTL_EXIT_USAGE;
}

void ctl_protect_secrets(void)
{
	struct rlimit none = { 0, 0 };
	/* Best effort: a failure here leaves the defaults, it stops nothing. */
	(void)setrlimit(RLIMIT_CORE, &none);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
