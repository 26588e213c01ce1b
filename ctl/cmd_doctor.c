/*
 * cmd_doctor.c: `mtlsctl doctor`, one line per check of whether this host
 * can run mtlsd well: kernel TLS, io_uring, BPF, descriptor limits, the
 * sysctl profile, the clock, OpenSSL, CPU crypto, certificate expiry.
 *
 * Exit code 0 when everything passes, 1 when something only warns, 2 when
 * something fails (or on bad usage). Read-only: doctor never changes the
 * host; each line says what to change instead (docs/tuning.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "doctor.h"
#include "log.h"

extern const struct ctl_command cmd_doctor;

static int doctor_usage(void)
{
	fprintf(stderr, "usage: mtlsctl doctor %s\n       (mtlsctl doctor --help for details)\n",
		cmd_doctor.args);
	return CTL_EXIT_USAGE;
}

static int run_doctor(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "warn-days", required_argument, NULL, 'w' },
		{ "pid", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL;
	unsigned long warn_days = 30, pid = 0;
	bool json = false;
	char *end;
	int ch;

	while ((ch = getopt_long(argc, argv, "c:jw:p:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'w':
			warn_days = strtoul(optarg, &end, 10);
			if (*end || end == optarg || warn_days == 0 || warn_days > 3650) {
				log_err("--warn-days: '%s' is not a number of days in 1..3650", optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'p':
			pid = strtoul(optarg, &end, 10);
			if (*end || end == optarg || pid == 0 || pid > 4194304) {
				log_err("--pid: '%s' is not a process id", optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		default:
			return doctor_usage();
		}
	}
	if (optind != argc)
		return doctor_usage();

	struct mtlsd_config cfg;
	char err[1024];
	config_init(&cfg);
	if (config_path && config_load_file(&cfg, config_path, err, sizeof(err)) < 0) {
		log_err("%s", err);
		config_free(&cfg);
		return CTL_EXIT_USAGE;
	}

	/* Large: a few hundred bytes per result and per certificate. */
	struct doctor_facts *facts = calloc(1, sizeof(*facts));
	struct doctor_report *rep = calloc(1, sizeof(*rep));
	int rc = CTL_EXIT_USAGE;
	if (!facts || !rep) {
		log_err("doctor: out of memory");
		goto out;
	}
	doctor_gather(facts, config_path ? &cfg : NULL);
	if (pid && (rc = doctor_gather_nofile_of(facts, (int)pid)) < 0) {
		log_err("--pid %lu: cannot read /proc/%lu/limits: %s; give the pid of a running mtlsd",
			pid, pid, strerror(-rc));
		rc = CTL_EXIT_USAGE;
		goto out;
	}
	facts->expiry_warn_days = (unsigned)warn_days;
	doctor_check_all(facts, rep);
	if (json)
		doctor_print_json(stdout, rep);
	else
		doctor_print_text(stdout, rep);
	rc = doctor_exit_code(rep);
out:
	free(facts);
	free(rep);
	config_free(&cfg);
	return rc;
}

const struct ctl_command cmd_doctor = {
	.group = "doctor",
	.name = "",
	.args = "[--config FILE] [--pid PID] [--json] [--warn-days N]",
	.summary = "check this host for mtlsd: kTLS, io_uring, BPF, limits, sysctls, clock, certs",
	.help =
		"  -c, --config FILE     also check limits against FILE's max_connections and\n"
		"                        its certificates' expiry (default: built-in defaults)\n"
		"  -p, --pid PID         judge the descriptor limits of this running mtlsd\n"
		"                        (e.g. $(systemctl show -P MainPID mtlsd)), not doctor's own\n"
		"  -j, --json            one JSON document instead of one line per check\n"
		"  -w, --warn-days N     warn about certificates expiring within N days (30)\n"
		"\n"
		"Exit code: 0 all pass, 1 a warning, 2 a failure or bad usage.\n",
	.run = run_doctor,
};
