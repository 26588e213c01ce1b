/*
 * main.c: mtlsd's entry point: flags and config, the first generation, the
 * audit sink, the worker threads, and signals.
 *
 * The main thread does no I/O for connections. After starting the workers
 * it waits on a signalfd (SIGTERM/SIGINT: drain; SIGHUP: reopen the audit
 * log, then reload, see reload.h) and on an eventfd the workers write when
 * they exit. No work is
 * done in signal handlers: the signals are blocked and read as data.
 *
 * Exit codes: 0 clean stop, 1 configuration or runtime error, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "acct.h"
#include "admin_http.h"
#include "metrics.h"
#include "audit.h"
#include "config.h"
#include "control.h"
#include "crypto_accel.h"
#include "generation.h"
#include "host_probe.h"
#include "ktls.h"
#include "listener.h"
#include "log.h"
#include "reload.h"
#include "service.h"
#include "worker.h"

#define EXIT_USAGE 2

/* Options that are config keys: passed to config_apply_flag() by name. */
/* Room for every flag config_list_flags() reports (checked at start). */
#define MAX_CONFIG_FLAGS 96
static struct config_flag config_flags[MAX_CONFIG_FLAGS];
static size_t n_config_flags;

enum { OPT_HELP = 'h', OPT_VERSION = 'V', OPT_CONFIG = 'c', OPT_CHECK = 1, OPT_TAKEOVER = 2,
       OPT_CONFIG_BASE = 256 };

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsd [--config FILE] [options]\n"
		"       mtlsd --check-config [--config FILE] [options]\n"
		"\n"
		"Accepts mutual TLS from partners and relays verified connections to a backend.\n"
		"\n"
		"  --config FILE             INI configuration (flags override it)\n"
		"  --check-config            parse and build everything, print the result, exit\n"
		"  --takeover                start beside a running mtlsd on the same addresses and\n"
		"                            take its control socket (binary upgrade; see\n"
		"                            docs/operations.md); without it mtlsd refuses to start\n"
		"  --listen ADDR             host:port or [v6]:port (repeatable)\n"
		"  --cert FILE --key FILE    server certificate chain and key (repeatable pair)\n"
		"  --client-ca FILE          the partner's CA bundle (partner \"default\")\n"
		"  --crl FILE                CRLs of that partner (repeatable)\n"
		"  --backend ADDR            host:port or unix:/path\n"
		"  --proxy-protocol v2|off   send a PROXY v2 header to the backend\n"
		"  --workers N               worker threads (default: one per online CPU)\n"
		"  --cpu-pin                 pin worker i to CPU i\n"
		"  --handshake-timeout T --idle-timeout T --connect-timeout T --drain-timeout T\n"
		"  --max-connections N --max-handshakes N --audit-log FILE|- --log-level LEVEL\n"
		"  --allow-dns P --allow-uri P --allow-cn P --allow-ou P --verify-depth N\n"
		"  --crl-missing fail|allow --crl-expired fail|allow --ktls auto|on|off\n"
		"  --user NAME --group NAME --keep-capabilities LIST   privileges after start\n"
		"  --instance NAME --accounting auto|off --admin-listen HOST:PORT\n"
		"  --version, --help\n");
}

static void build_options(struct option *opts)
{
	size_t n = 0;
	opts[n++] = (struct option){ "help", no_argument, NULL, OPT_HELP };
	opts[n++] = (struct option){ "version", no_argument, NULL, OPT_VERSION };
	opts[n++] = (struct option){ "config", required_argument, NULL, OPT_CONFIG };
	opts[n++] = (struct option){ "check-config", no_argument, NULL, OPT_CHECK };
	opts[n++] = (struct option){ "takeover", no_argument, NULL, OPT_TAKEOVER };
	for (size_t i = 0; i < n_config_flags; i++)
		opts[n++] = (struct option){ config_flags[i].name,
					     config_flags[i].is_bool ? optional_argument : required_argument,
					     NULL, OPT_CONFIG_BASE + (int)i };
	opts[n] = (struct option){ NULL, 0, NULL, 0 };
}

struct cli {
	const char *config_path;
	bool check_only;
	bool takeover;
};

/*
 * Two passes over argv: the first finds --config/--check-config/--help
 * (the file is loaded before any flag so flags override it), the second
 * applies config flags in order. Returns 0, or the exit code to use.
 */
static int parse_cli(int argc, char **argv, struct mtlsd_config *cfg, struct cli *cli)
{
	struct option opts[MAX_CONFIG_FLAGS + 6];
	char err[1024];
	int opt;

	n_config_flags = config_list_flags(config_flags, MAX_CONFIG_FLAGS);
	if (n_config_flags > MAX_CONFIG_FLAGS) {
		log_err("internal error: %zu config flags, room for %d", n_config_flags, MAX_CONFIG_FLAGS);
		return 1;
	}
	build_options(opts);
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "hVc:", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_HELP: usage(stdout); exit(0);
		/* "--version -v": getopt stops here, before it would refuse -v. */
		case OPT_VERSION:
			crypto_accel_print_version(stdout, "mtlsd", argc, argv);
			for (int i = 1; i < argc; i++)
				if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0)
					printf("  allocator: %s\n", MTLSD_ALLOCATOR);
			exit(0);
		case OPT_CONFIG: cli->config_path = optarg; break;
		case OPT_CHECK: cli->check_only = true; break;
		case OPT_TAKEOVER: cli->takeover = true; break;
		case '?': usage(stderr); return EXIT_USAGE;
		default: break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mtlsd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (cli->config_path && config_load_file(cfg, cli->config_path, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "hVc:", opts, NULL)) != -1) {
		if (opt < OPT_CONFIG_BASE)
			continue;
		const char *name = config_flags[opt - OPT_CONFIG_BASE].name;
		if (config_apply_flag(cfg, name, optarg, err, sizeof(err)) < 0) {
			log_err("%s", err);
			return 1;
		}
	}
	if (config_validate(cfg, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	return 0;
}

/* How mtlsd was started, for reload_load(). */
static int saved_argc;
static char **saved_argv;
static const char *saved_config_path;

/*
 * reload.h's loader: the same file, then the same flags on top, exactly as
 * at start-up, with every error in err. Runs under reload.c's mutex, the
 * only user of getopt once mtlsd is up.
 */
static int reload_load(struct mtlsd_config *cfg, char *err, size_t errlen)
{
	struct option opts[MAX_CONFIG_FLAGS + 6];
	int opt;

	build_options(opts);
	if (saved_config_path)
		GUARD(config_load_file(cfg, saved_config_path, err, errlen));
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(saved_argc, saved_argv, "hVc:", opts, NULL)) != -1) {
		if (opt < OPT_CONFIG_BASE)
			continue;
		GUARD(config_apply_flag(cfg, config_flags[opt - OPT_CONFIG_BASE].name, optarg, err, errlen));
	}
	return config_validate(cfg, err, errlen);
}

/*
 * Fail early and clearly when io_uring is switched off or filtered, or
 * lacks an operation mtlsd submits (lib/host_probe.h: the same table
 * `mtlsctl doctor` checks), rather than at the first connection.
 */
static int probe_io_uring(void)
{
	struct io_uring ring;
	uint32_t have = 0;
	char missing[160];
	int rc = io_uring_queue_init(2, &ring, 0);
	if (rc < 0) {
		log_err("io_uring is unavailable (%s): check sysctl kernel.io_uring_disabled (must be 0) "
			"and seccomp/container policy; mtlsd needs io_uring", strerror(-rc));
		return rc;
	}
	rc = host_probe_uring_ops(&ring, &have);
	io_uring_queue_exit(&ring);
	if (rc < 0 || have != URING_NEEDS_ALL) {
		log_err("io_uring on this kernel lacks operations mtlsd submits: [%s]; run a kernel "
			">= 5.19 (`mtlsctl doctor` lists what else it needs)",
			rc < 0 ? "no opcode probe" : uring_needs_missing(have, missing, sizeof(missing)));
		return rc < 0 ? rc : -EOPNOTSUPP;
	}
	return 0;
}

static unsigned worker_count(const struct mtlsd_config *cfg)
{
	if (cfg->workers > 0)
		return cfg->workers;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/*
 * An open-files limit below what max_connections needs is not an error
 * (the limit may be raised for a later restart, and mtlsd backs off when
 * accept fails with EMFILE) but it is said at start, with the same figure
 * `mtlsctl doctor` checks (config_fds_needed) and what it means.
 */
static void warn_fd_limit(const struct mtlsd_config *cfg)
{
	struct rlimit rl;
	unsigned workers = worker_count(cfg);
	uint64_t need = config_fds_needed(cfg->max_connections, workers);
	uint64_t fixed = need - 2 * (uint64_t)cfg->max_connections;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return;
	char hard[32] = "unlimited";
	if (rl.rlim_max != RLIM_INFINITY)
		snprintf(hard, sizeof(hard), "%llu", (unsigned long long)rl.rlim_max);
	log_warn("open-files limit %llu (hard %s) is below the %llu descriptors max_connections = %u "
		 "needs with %u workers: about %llu connections fit before accepting fails (EMFILE); "
		 "raise it (LimitNOFILE=%llu in the unit, tuning/systemd/mtlsd.service; nofile in "
		 "tuning/limits.d/mtlsd.conf; ulimit -n %llu) or lower max_connections; "
		 "`mtlsctl doctor --pid PID` checks a running mtlsd",
		 (unsigned long long)rl.rlim_cur, hard, (unsigned long long)need, cfg->max_connections,
		 workers, (unsigned long long)(rl.rlim_cur > fixed ? (rl.rlim_cur - fixed) / 2 : 0),
		 (unsigned long long)need, (unsigned long long)need);
}

/*
 * Open every worker's listeners. Port 0 is resolved by the first worker
 * and reused by the others so they share one SO_REUSEPORT group. Unless
 * takeover, an address another process listens on is refused, before and
 * after (listener.h): sharing it would split new connections between two
 * configurations.
 */
static int open_listeners(struct worker *ws, unsigned n, const struct mtlsd_config *cfg,
			  bool takeover, char *text, size_t textlen)
{
	struct cfg_addr addrs[CFG_MAX_LISTEN];
	char err[768];
	size_t used = 0;

	memcpy(addrs, cfg->listen, sizeof(addrs));
	for (size_t k = 0; !takeover && k < cfg->n_listen; k++) {
		if (listener_check_free(&addrs[k], err, sizeof(err)) < 0) {
			log_err("%s", err);
			return -1;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (worker_open_listeners(&ws[i], addrs, cfg->n_listen, err, sizeof(err)) < 0) {
			log_err("%s", err);
			return -1;
		}
		for (size_t k = 0; i == 0 && k < cfg->n_listen; k++)
			if (listener_pin_port(&addrs[k], ws[0].listen_fds[k]) < 0)
				return -1;
	}
	int *fds = takeover ? NULL : calloc(n, sizeof(*fds));
	if (!takeover && !fds) {
		log_err("out of memory checking the listen addresses");
		return -1;
	}
	for (size_t k = 0; fds && k < cfg->n_listen; k++) {
		for (unsigned i = 0; i < n; i++)
			fds[i] = ws[i].listen_fds[k];
		if (listener_check_alone(&addrs[k], fds, n, err, sizeof(err)) < 0) {
			log_err("%s", err);
			free(fds);
			return -1;
		}
	}
	free(fds);
	if (takeover)
		log_info("--takeover: sharing the listen addresses with any mtlsd already on them; "
			 "stop the old one (SIGTERM: it drains) once this one is ready");
	text[0] = '\0';
	for (size_t k = 0; k < cfg->n_listen && used < textlen; k++)
		used += (size_t)snprintf(text + used, textlen - used, "%s%s", k ? ", " : "", addrs[k].text);
	return 0;
}

static void log_totals(struct worker *ws, unsigned n)
{
	struct worker_counters s;
	char hs[512];
	size_t used = 0;

	workers_sum_counters(ws, n, &s);
	hs[0] = '\0';
	for (unsigned k = 0; k < HS_OUTCOME_MAX && used < sizeof(hs); k++)
		if (s.handshakes[k])
			used += (size_t)snprintf(hs + used, sizeof(hs) - used, " %s=%llu",
						 hs_outcome_name((enum hs_outcome)k),
						 (unsigned long long)s.handshakes[k]);
	log_info("totals: accepted=%llu refused_limit=%llu backend_connect_failed=%llu "
		 "bytes_in=%llu bytes_out=%llu recv_nobufs=%llu handshakes:%s",
		 (unsigned long long)s.accepted, (unsigned long long)s.refused_limit,
		 (unsigned long long)s.backend_connect_failed,
		 (unsigned long long)s.bytes_client_to_backend,
		 (unsigned long long)s.bytes_backend_to_client, (unsigned long long)s.recv_nobufs,
		 hs[0] ? hs : " none");
	used = 0;
	hs[0] = '\0';
	for (unsigned k = 0; k < CLOSE_REASON_MAX && used < sizeof(hs); k++)
		if (s.closes[k])
			used += (size_t)snprintf(hs + used, sizeof(hs) - used, " %s=%llu",
						 close_reason_name((enum close_reason)k),
						 (unsigned long long)s.closes[k]);
	log_info("totals: closes:%s", hs[0] ? hs : " none");
}

/* Wait for signals and worker exits. Returns the number of workers that
 * exited before being asked to. */
static unsigned wait_for_workers(struct worker *ws, unsigned n, int sfd)
{
	unsigned exited = 0, early = 0;
	bool draining = false;

	while (exited < n) {
		struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = engine.done_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					char rerr[1024];
					uint64_t id;
					/* logrotate's postrotate may send it: the
					 * renamed file is let go first. */
					if (audit_reopen(rerr, sizeof(rerr)) < 0)
						log_err("SIGHUP: %s", rerr);
					/* reload_run logs the outcome and tells systemd. */
					if (reload_run("SIGHUP", &id, rerr, sizeof(rerr)) < 0)
						log_debug("SIGHUP: the running configuration stays");
				} else if (!draining) {
					log_info("%s: draining", strsignal((int)si.ssi_signo));
					service_notify_stopping();
					draining = true;
					for (unsigned i = 0; i < n; i++)
						worker_request_drain(&ws[i]);
				}
			}
		}
		if (p[1].revents & POLLIN) {
			uint64_t k;
			if (read(engine.done_fd, &k, sizeof(k)) == (ssize_t)sizeof(k)) {
				exited += (unsigned)k;
				if (!draining) {
					/* A worker died: the others stop too, and the
					 * exit code says it failed. */
					early += (unsigned)k;
					draining = true;
					for (unsigned i = 0; i < n; i++)
						worker_request_drain(&ws[i]);
				}
			}
		}
	}
	return early;
}

static int run(struct generation *gen, int sfd, bool takeover)
{
	const struct mtlsd_config *cfg = &gen->cfg;
	unsigned n = worker_count(cfg);
	char listening[512];
	unsigned started = 0, failed = 0, early;
	struct admin_http *admin = NULL;
	int rc = 1;

	struct worker *ws = calloc(n, sizeof(*ws));
	if (!ws) {
		log_err("out of memory for %u workers", n);
		return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		ws[i].id = i;
		ws[i].wake_fd = -1;
		for (size_t k = 0; k < CFG_MAX_LISTEN; k++)
			ws[i].listen_fds[k] = -1;
	}
	if (open_listeners(ws, n, cfg, takeover, listening, sizeof(listening)) < 0)
		goto out;
	char err[768];
	/* Bound while still privileged: the runtime directory is root's. A
	 * control socket another mtlsd answers on is not given up silently:
	 * mtlsctl would reach the other instance only. */
	control_set_takeover(takeover);
	int crc = control_open(cfg, err, sizeof(err));
	if (crc == -EADDRINUSE) {
		log_err("%s", err);
		goto out;
	}
	if (crc < 0)
		log_err("%s; serving without a control socket", err);
	/* Must happen before mtlsd starts a thread: capabilities are per
	 * thread. BPF accounting loads just before, while still privileged;
	 * its fallback publisher starts just after, as the final user. */
	if (acct_init(cfg->instance, cfg->bpf_accounting) < 0)
		goto out;
	if (service_drop_privileges(cfg, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	if (acct_start() < 0)
		goto out;
	/* After the drop: it is a thread of its own, and drop_privileges must
	 * run while this is the only one. */
	struct admin_http_hooks hooks = metrics_hooks(ws, n);
	if (cfg->admin_listen.len > 0 &&
	    admin_http_start((const struct sockaddr *)&cfg->admin_listen.ss, cfg->admin_listen.len,
			     &hooks, &admin, err, sizeof(err)) < 0) {
		log_err("admin_listen %s: %s", cfg->admin_listen.text, err);
		goto out;
	}
	for (; started < n; started++) {
		int e = pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]);
		if (e != 0) {
			log_err("cannot start worker %u: %s", started, strerror(e));
			break;
		}
	}
	for (unsigned i = 0; i < started; i++)
		sem_wait(&engine.started);
	for (unsigned i = 0; i < started; i++)
		if (ws[i].init_rc < 0)
			failed++;
	if (failed || started < n) {
		log_err("%u of %u workers failed to start", failed + (n - started), n);
		for (unsigned i = 0; i < started; i++)
			worker_request_drain(&ws[i]);
	} else {
		/* Before the readiness line: whoever waits for it may use the
		 * control socket at once. Traffic is served even without it. */
		if (control_start(cfg, ws, n, err, sizeof(err)) < 0)
			log_err("%s; serving without a control socket", err);
		log_info("mtlsd ready: listening on %s, %u workers, generation %llu", listening, n,
			 (unsigned long long)gen->id);
		service_notify_ready(listening);
	}
	early = wait_for_workers(ws, started, sfd);
	control_stop(); /* it reads the workers' counters and rings */
	for (unsigned i = 0; i < started; i++)
		pthread_join(ws[i].thread, NULL);
	log_totals(ws, started);
	if (!failed && started == n && early == 0)
		rc = 0;
out:
	for (unsigned i = 0; i < n; i++) {
		/* Threads that never started still own their sockets. */
		if (i >= started) {
			for (size_t k = 0; k < ws[i].n_listen; k++)
				if (ws[i].listen_fds[k] >= 0)
					close(ws[i].listen_fds[k]);
			if (ws[i].wake_fd >= 0)
				close(ws[i].wake_fd);
		}
	}
	control_stop(); /* a socket opened but never served is removed (no-op after the first call) */
	/* Before free(ws): the metrics hook reads the workers' counters. */
	admin_http_stop(admin);
	free(ws);
	acct_shutdown();
	return rc;
}

int main(int argc, char **argv)
{
	struct mtlsd_config cfg;
	struct cli cli = { 0 };
	struct generation *gen = NULL;
	char err[1024];
	int rc;

	log_set_ident("mtlsd");
	/* Signals are read from a signalfd by this thread only: block them
	 * before any thread exists so every thread inherits the mask. That
	 * includes threads a library starts while the keys are loaded (a
	 * PKCS#11 module through p11-kit): one that left SIGHUP unblocked
	 * would take the signal and its default action would end mtlsd. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	config_init(&cfg);
	rc = parse_cli(argc, argv, &cfg, &cli);
	if (rc != 0) {
		config_free(&cfg);
		return rc;
	}
	log_set_level(cfg.log_level);
	/* kTLS (docs/ktls.md): probe the tls ULP once; ktls = on refuses to
	 * start without it. */
	if (ktls_global_init(cfg.ktls, err, sizeof(err)) < 0) {
		log_err("%s", err);
		config_free(&cfg);
		return 1;
	}
	warn_fd_limit(&cfg);
	saved_argc = argc;
	saved_argv = argv;
	saved_config_path = cli.config_path;
	if (reload_build(&cfg, 1, &gen, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	if (cli.check_only) {
		/* What a reload would refuse, a check refuses: it is how an
		 * operator tries a change before reloading it. */
		if (reload_check_admits(gen, err, sizeof(err)) < 0) {
			log_err("%s", err);
			generation_unref(gen);
			return 1;
		}
		printf("configuration OK\n");
		generation_unref(gen);
		return 0;
	}
	if (probe_io_uring() < 0) {
		generation_unref(gen);
		return 1;
	}
	rc = audit_open(gen->cfg.audit_path);
	if (rc < 0) {
		log_err("cannot open the audit log %s: %s", gen->cfg.audit_path ? gen->cfg.audit_path : "-", strerror(-rc));
		generation_unref(gen);
		return 1;
	}

	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	engine.done_fd = eventfd(0, EFD_CLOEXEC);
	if (sfd < 0 || engine.done_fd < 0 || sem_init(&engine.started, 0, 0) < 0) {
		log_err("cannot set up signal handling: %s", strerror(errno));
		return 1;
	}

	generation_publish(gen); /* takes our reference */
	reload_init(reload_load, gen);
	rc = run(gen, sfd, cli.takeover);
	close(sfd);
	close(engine.done_fd);
	audit_close();
	return rc;
}
