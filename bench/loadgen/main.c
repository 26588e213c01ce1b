/*
 * main.c: the mTLS load generator's flags, threads and JSON report.
 *
 * usage: loadgen --connect HOST:PORT --cert CHAIN --key KEY --ca BUNDLE
 *                --mode handshake|resume|rr|bulk-up|bulk-down|idle [options]
 *        loadgen --serve-echo HOST:PORT
 *
 * One JSON object goes to stdout at the end; diagnostics go to stderr.
 * Exit codes: 0 done (errors are counted in the JSON, not fatal), 1 setup
 * failure, 2 usage.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "report.h"

volatile sig_atomic_t lg_stop_requested;
static atomic_uint established_total;
static const struct lg_options *announce_opt;

static const char *const mode_names[MODE_MAX] = {
	[MODE_HANDSHAKE] = "handshake", [MODE_RESUME] = "resume", [MODE_RR] = "rr",
	[MODE_BULK_UP] = "bulk-up", [MODE_BULK_DOWN] = "bulk-down", [MODE_IDLE] = "idle",
};

const char *lg_mode_name(enum lg_mode m)
{
	return (unsigned)m < MODE_MAX && mode_names[m] ? mode_names[m] : "unknown";
}

static const char *const err_names[ERR_MAX] = {
	[ERR_CONNECT] = "connect", [ERR_HANDSHAKE] = "handshake", [ERR_VERIFY] = "verify",
	[ERR_TLS_IO] = "tls_io", [ERR_EOF] = "eof", [ERR_RESET] = "reset", [ERR_SEND] = "send",
	[ERR_TIMEOUT] = "timeout", [ERR_ECHO] = "echo_mismatch",
};

const char *lg_err_name(enum lg_err e)
{
	return (unsigned)e < ERR_MAX && err_names[e] ? err_names[e] : "unknown";
}

uint64_t lg_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

unsigned lg_established_total(void)
{
	return atomic_load(&established_total);
}

void lg_established_add(unsigned n)
{
	unsigned now = atomic_fetch_add(&established_total, n) + n;
	if (now != announce_opt->connections)
		return;
	fprintf(stderr, "loadgen: all %u connections established\n", now);
	if (announce_opt->ready_file) {
		FILE *f = fopen(announce_opt->ready_file, "w");
		if (!f || fprintf(f, "%u\n", now) < 0 || fclose(f) != 0)
			log_err("--ready-file %s: cannot write it", announce_opt->ready_file);
	}
}

static void on_signal(int sig)
{
	(void)sig;
	lg_stop_requested = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: loadgen --connect HOST:PORT --cert CHAIN.pem --key KEY.pem --ca BUNDLE.pem\n"
		"               --mode handshake|resume|rr|bulk-up|bulk-down|idle [options]\n"
		"       loadgen --serve-echo HOST:PORT      (the benchmark backend; port 0 = any)\n"
		"\n"
		"  --tls 1.2|1.3          protocol version (default 1.3)\n"
		"  --ciphers LIST         TLS 1.2 cipher list\n"
		"  --servername NAME      name or IP the server certificate must carry (default: HOST)\n"
		"  --threads N            threads, one io_uring each (default 1)\n"
		"  --concurrency C        connections in flight (default 64; idle: opening at once)\n"
		"  --duration S           measured seconds (default 10)\n"
		"  --warmup S             unmeasured seconds first (default 1)\n"
		"  --rate R               rr: requests/s offered; handshake, resume: connections/s\n"
		"                         started; open loop, latency from the schedule\n"
		"                         (default 0 = closed loop)\n"
		"  --size BYTES           rr request size, bulk write size (default 64 / 16384)\n"
		"  --connections N        idle: connections to establish and hold (default 1000)\n"
		"  --hold S               idle: seconds to hold them (default: until SIGTERM)\n"
		"  --ready-file PATH      idle: written once all are established\n"
		"  --timeout S            a connection without progress this long fails (default 10)\n"
		"\n"
		"A TLS 1.3 handshake counts once the server's first session ticket arrives:\n"
		"the client finishes before the server has checked its certificate, and the\n"
		"ticket is the server's word that it did. A server that sends no tickets\n"
		"shows up as handshake timeouts.\n");
}

static int parse_mode(const char *s, enum lg_mode *m)
{
	for (unsigned i = 0; i < MODE_MAX; i++)
		if (strcmp(s, mode_names[i]) == 0) {
			*m = (enum lg_mode)i;
			return 0;
		}
	return -EINVAL;
}

/* A positive number, or -EINVAL naming the flag. */
static int parse_num(const char *flag, const char *s, double min, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || v < min) {
		fprintf(stderr, "loadgen: %s %s: expected a number >= %g\n", flag, s, min);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

enum { OPT_CONNECT = 256, OPT_CERT, OPT_KEY, OPT_CA, OPT_TLS, OPT_CIPHERS, OPT_SERVERNAME,
       OPT_MODE, OPT_THREADS, OPT_CONC, OPT_DURATION, OPT_WARMUP, OPT_RATE, OPT_SIZE,
       OPT_CONNS, OPT_HOLD, OPT_READY, OPT_TIMEOUT, OPT_ECHO, OPT_HELP };

static const struct option long_opts[] = {
	{ "connect", 1, NULL, OPT_CONNECT }, { "cert", 1, NULL, OPT_CERT }, { "key", 1, NULL, OPT_KEY },
	{ "ca", 1, NULL, OPT_CA }, { "tls", 1, NULL, OPT_TLS }, { "ciphers", 1, NULL, OPT_CIPHERS },
	{ "servername", 1, NULL, OPT_SERVERNAME }, { "mode", 1, NULL, OPT_MODE },
	{ "threads", 1, NULL, OPT_THREADS }, { "concurrency", 1, NULL, OPT_CONC },
	{ "duration", 1, NULL, OPT_DURATION }, { "warmup", 1, NULL, OPT_WARMUP },
	{ "rate", 1, NULL, OPT_RATE }, { "size", 1, NULL, OPT_SIZE },
	{ "connections", 1, NULL, OPT_CONNS }, { "hold", 1, NULL, OPT_HOLD },
	{ "ready-file", 1, NULL, OPT_READY }, { "timeout", 1, NULL, OPT_TIMEOUT },
	{ "serve-echo", 1, NULL, OPT_ECHO }, { "help", 0, NULL, OPT_HELP }, { NULL, 0, NULL, 0 },
};

/* Fill o from argv. Returns 0, 1 for --serve-echo (addr in *echo), or -EINVAL. */
static int parse_args(int argc, char **argv, struct lg_options *o, const char **echo)
{
	double v;
	int c;
	bool size_set = false;

	*o = (struct lg_options){ .mode = MODE_HANDSHAKE, .tls_version = TLS1_3_VERSION, .threads = 1,
				  .concurrency = 64, .connections = 1000, .duration_s = 10,
				  .warmup_s = 1, .timeout_s = 10, .size = 64 };
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_CONNECT: o->target_str = optarg; break;
		case OPT_CERT: o->cert = optarg; break;
		case OPT_KEY: o->key = optarg; break;
		case OPT_CA: o->ca = optarg; break;
		case OPT_CIPHERS: o->ciphers = optarg; break;
		case OPT_SERVERNAME: o->servername = optarg; break;
		case OPT_READY: o->ready_file = optarg; break;
		case OPT_ECHO: *echo = optarg; return 1;
		case OPT_TLS:
			if (strcmp(optarg, "1.2") && strcmp(optarg, "1.3")) {
				fprintf(stderr, "loadgen: --tls %s: expected 1.2 or 1.3\n", optarg);
				return -EINVAL;
			}
			o->tls_version = strcmp(optarg, "1.2") == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
			break;
		case OPT_MODE:
			if (parse_mode(optarg, &o->mode) < 0) {
				fprintf(stderr, "loadgen: --mode %s: expected handshake, resume, rr, bulk-up, bulk-down or idle\n", optarg);
				return -EINVAL;
			}
			break;
		case OPT_THREADS: GUARD(parse_num("--threads", optarg, 1, &v)); o->threads = (unsigned)v; break;
		case OPT_CONC: GUARD(parse_num("--concurrency", optarg, 1, &v)); o->concurrency = (unsigned)v; break;
		case OPT_CONNS: GUARD(parse_num("--connections", optarg, 1, &v)); o->connections = (unsigned)v; break;
		case OPT_DURATION: GUARD(parse_num("--duration", optarg, 0.1, &o->duration_s)); break;
		case OPT_WARMUP: GUARD(parse_num("--warmup", optarg, 0, &o->warmup_s)); break;
		case OPT_HOLD: GUARD(parse_num("--hold", optarg, 0, &o->hold_s)); break;
		case OPT_TIMEOUT: GUARD(parse_num("--timeout", optarg, 0.1, &o->timeout_s)); break;
		case OPT_RATE: GUARD(parse_num("--rate", optarg, 0, &o->rate)); break;
		case OPT_SIZE:
			GUARD(parse_num("--size", optarg, 1, &v));
			o->size = (size_t)v;
			size_set = true;
			break;
		case OPT_HELP:
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc || !o->target_str || !o->cert || !o->key || !o->ca) {
		fprintf(stderr, "loadgen: --connect, --cert, --key and --ca are required\n");
		usage(stderr);
		return -EINVAL;
	}
	if (!size_set && (o->mode == MODE_BULK_UP || o->mode == MODE_BULK_DOWN))
		o->size = 16384;
	if (o->size > 16384 && (o->mode == MODE_BULK_UP || o->mode == MODE_BULK_DOWN)) {
		fprintf(stderr, "loadgen: --size %zu: bulk writes are at most one record (16384)\n", o->size);
		return -EINVAL;
	}
	if (lg_parse_addr(o->target_str, &o->target, &o->target_len) < 0) {
		fprintf(stderr, "loadgen: --connect %s: expected HOST:PORT or [V6]:PORT with a numeric host\n", o->target_str);
		return -EINVAL;
	}
	return 0;
}

/* The server name defaults to the host part of --connect, brackets off. */
static char *default_servername(const char *target)
{
	const char *colon = strrchr(target, ':');
	size_t n = colon ? (size_t)(colon - target) : strlen(target);
	if (n >= 2 && target[0] == '[' && target[n - 1] == ']')
		return strndup(target + 1, n - 2);
	return strndup(target, n);
}

/* More file descriptors for idle mode: raise the soft limit to the hard one. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void *thread_main(void *arg)
{
	struct lg_thread *t = arg;
	t->rc = lg_thread_run(t);
	return NULL;
}

/* Split n across threads, the first ones taking the remainder. */
static unsigned share(unsigned n, unsigned threads, unsigned i)
{
	return n / threads + (i < n % threads ? 1 : 0);
}

int main(int argc, char **argv)
{
	struct lg_options o;
	const char *echo_addr = NULL;
	_cleanup_(freep) char *servername = NULL;

	log_set_ident("loadgen");
	int prc = parse_args(argc, argv, &o, &echo_addr);
	if (prc < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	raise_nofile();
	if (prc == 1)
		return echo_serve(echo_addr) < 0 ? 1 : 0;

	if (!o.servername)
		o.servername = servername = default_servername(o.target_str);
	announce_opt = &o;
	lg_pattern_init();
	unsigned per_conn = o.mode == MODE_IDLE ? o.connections : o.concurrency;
	if (o.threads > per_conn)
		o.threads = per_conn;
	struct lg_thread *th = calloc(o.threads, sizeof(*th));
	pthread_t *tid = calloc(o.threads, sizeof(*tid));
	if (!th || !tid)
		return 1;
	for (unsigned i = 0; i < o.threads; i++) {
		th[i] = (struct lg_thread){ .id = i, .opt = &o, .nconns = share(per_conn, o.threads, i),
					    .rate = o.rate / o.threads };
		if (pthread_create(&tid[i], NULL, thread_main, &th[i]) != 0) {
			log_err("cannot start thread %u", i);
			return 1;
		}
	}
	int rc = 0;
	for (unsigned i = 0; i < o.threads; i++) {
		pthread_join(tid[i], NULL);
		if (th[i].rc < 0)
			rc = 1;
	}
	if (rc == 0)
		lg_report(stdout, &o, th, o.threads);
	free(th);
	free(tid);
	return rc;
}
