/*
 * cmd.h: how mtlsctl's commands plug into the dispatcher.
 *
 * Every command ("pki init", "cert check", later "stats", "reload"...) lives
 * in its own file and exports one struct ctl_command; mtlsctl.c lists them in
 * a table. A command gets argv starting at its own name (argv[0] = "init"),
 * so it can use getopt_long directly, and returns an exit code.
 */
#ifndef MTLSCTL_CMD_H
#define MTLSCTL_CMD_H

#include <stdbool.h>

/* Exit codes shared by every command (documented in docs/pki.md). */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_CHECK_FAILED = 1, /* a check ran and found a problem */
	CTL_EXIT_USAGE = 2,        /* bad usage or bad input: nothing was changed */
};

struct ctl_command {
	const char *group;   /* "pki", "cert" */
	const char *name;    /* "init", "issue" */
	const char *args;    /* one-line synopsis of arguments */
	const char *summary; /* what it does, one line */
	const char *help;    /* the options, one per line, for --help */
	int (*run)(int argc, char **argv);
};

extern const struct ctl_command cmd_pki_init;
extern const struct ctl_command cmd_pki_issue;
extern const struct ctl_command cmd_pki_revoke;
extern const struct ctl_command cmd_pki_crl;
extern const struct ctl_command cmd_pki_list;
extern const struct ctl_command cmd_cert_inspect;
extern const struct ctl_command cmd_cert_check;
extern const struct ctl_command cmd_stats;

/*
 * Print "usage: mtlsctl GROUP NAME ARGS" for cmd to stderr and return
 * CTL_EXIT_USAGE, for commands to call on a bad argument.
 */
int ctl_usage(const struct ctl_command *cmd);

/*
 * Test-only options (forced serials, back-dated validity, weak keys...) are
 * accepted only inside the test helper tests/helpers/make_fixtures or when
 * MTLSCTL_TEST=1 is set, so an operator cannot produce a bad certificate
 * by accident.
 */
bool ctl_test_mode(void);
void ctl_set_test_mode(bool on);

/*
 * For commands that hold private keys or passphrases: no core dumps and no
 * ptrace by other processes of the same user (PR_SET_DUMPABLE 0).
 */
void ctl_protect_secrets(void);

#endif
