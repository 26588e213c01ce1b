/*
 * mtlsctl.c: the command dispatcher of mtlsctl.
 *
 * Commands are "GROUP NAME" pairs ("pki init", "cert check") listed in one
 * table; each lives in its own file (cmd_*.c). Adding a command (stats,
 * reload, doctor...) is a new file plus one line here. The dispatcher owns
 * help and usage, so every command refuses unknown options the same way and
 * exits 2 on bad usage (cmd.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "guard.h"
#include "log.h"

extern const struct ctl_command cmd_doctor; /* ctl/cmd_doctor.c */
/* The control plane: ctl/cmd_{reload,status,certs,drop,reopen}.c over ctl_client.c. */
extern const struct ctl_command cmd_reload, cmd_status, cmd_certs, cmd_drop, cmd_reopen;

static const struct ctl_command *const commands[] = {
	&cmd_pki_init,
	&cmd_pki_issue,
	&cmd_pki_revoke,
	&cmd_pki_crl,
	&cmd_pki_list,
	&cmd_cert_inspect,
	&cmd_cert_check,
	&cmd_stats,
	&cmd_doctor,
	&cmd_reload,
	&cmd_status,
	&cmd_certs,
	&cmd_drop,
	&cmd_reopen,
};

static void print_commands(FILE *f, const char *group)
{
	fprintf(f, "usage: mtlsctl COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		const struct ctl_command *c = commands[i];
		if (group && strcmp(group, c->group) != 0)
			continue;
		char full[32];
		snprintf(full, sizeof(full), "%s %s", c->group, c->name);
		fprintf(f, "  %-14s %s\n", full, c->summary);
	}
	fprintf(f, "\nmtlsctl GROUP NAME --help shows a command's options. Exit codes: 0 ok,\n"
		   "1 a check failed, 2 bad usage or input (nothing was changed).\n");
}

static const struct ctl_command *find_command(const char *group, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i]->group, group) == 0 && strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

static bool group_exists(const char *group)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i]->group, group) == 0)
			return true;
	return false;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	log_set_ident("mtlsctl");
	if (argc < 2) {
		print_commands(stderr, NULL);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		print_commands(stdout, argc > 2 ? argv[2] : NULL);
		return CTL_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("mtlsctl %s\n", MTLSD_VERSION);
		return CTL_EXIT_OK;
	}
	if (!group_exists(argv[1])) {
		log_err("unknown command '%s': run mtlsctl help for the list", argv[1]);
		return CTL_EXIT_USAGE;
	}
	const struct ctl_command *cmd = argc > 2 ? find_command(argv[1], argv[2]) : NULL;
	int skip = 2;
	/* A one-word command ("doctor") has an empty name; options follow it. */
	if (!cmd && (cmd = find_command(argv[1], "")))
		skip = 1;
	if (!cmd) {
		if (argc > 2)
			log_err("unknown command '%s %s'", argv[1], argv[2]);
		print_commands(stderr, argv[1]);
		return CTL_EXIT_USAGE;
	}
	char prog[64];
	snprintf(prog, sizeof(prog), "mtlsctl %s%s%s", cmd->group, cmd->name[0] ? " " : "", cmd->name);
	argv[skip] = prog; /* getopt names the command in its messages */
	if (wants_help(argc - skip, argv + skip)) {
		printf("usage: %s %s\n\n%s\n\n%s", prog, cmd->args, cmd->summary, cmd->help);
		return CTL_EXIT_OK;
	}
	return cmd->run(argc - skip, argv + skip);
}
