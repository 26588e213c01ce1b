/*
 * cmd.c: what every command shares: the usage line and test mode.
 */
#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
