/*
 * acct_driver.c: a stand-in for mtlsd's connection code in the accounting
 * tests. It calls the real acct_* API, so the real USDT probe fires into
 * the real BPF program and maps (or the in-process fallback), and
 * mtlsctl stats reads what it left, exactly as with the daemon.
 *
 * usage: acct_driver [--instance NAME] [--no-bpf] [--hold SECONDS] [--spray N]
 *                    [--drop-caps-after-init] [--admin HOST:PORT] < SCENARIO
 * Each scenario line is one kind of handshake, repeated COUNT times:
 *   ISSUER_HEX SERIAL_HEX OUTCOME PARTNER COUNT DURATION_NS [PARTNER_NAME CN]
 * ISSUER_HEX and SERIAL_HEX are "-" for "no certificate"; "cert:PATH ="
 * instead takes the identity and names from a PEM certificate through
 * lib/certinfo.h, as mtlsd does (a relative PATH is under $MTLS_FIXTURES).
 * OUTCOME is a name
 * from lib/outcome.c ("ok", "expired", "weak_key"...). Blank lines and lines
 * starting with '#' are skipped. --spray N first adds N distinct
 * certificates (issuer cc..cc, serials 1..N) with one ok handshake each,
 * to overflow the bounded tables. --drop-caps-after-init clears every
 * capability after acct_init(), as a daemon dropping privileges would.
 * --admin also serves /metrics and /healthz on HOST:PORT after the scenario
 * (port 0: a free one, picked here), prints "admin port N", and runs until
 * SIGTERM or SIGINT.
 * Prints "source: bpf|fallback", the description and the number of threads
 * right after acct_init() (mtlsd drops privileges then: it must be 1),
 * then exits after acct_shutdown() (the fallback publishes its snapshot
 * then).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acct.h"
#include "admin_http.h"
#include "log.h"

static int parse_hex(const char *hex, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strlen(hex);

	ENSURE(n % 2 == 0 && n / 2 <= cap, EINVAL);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		ENSURE(sscanf(hex + 2 * i, "%2x", &v) == 1, EINVAL);
		out[i] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

static int parse_outcome(const char *name, enum hs_outcome *out)
{
	for (int o = 0; o < HS_OUTCOME_MAX; o++) {
		if (strcmp(hs_outcome_name((enum hs_outcome)o), name) == 0) {
			*out = (enum hs_outcome)o;
			return 0;
		}
	}
	return -EINVAL;
}

/* The identity of a PEM certificate, as the connection code computes it. */
static int load_identity(const char *path, struct cert_identity *id)
{
	char full[1024];
	const char *dir = getenv("MTLS_FIXTURES");

	if (path[0] != '/' && dir)
		snprintf(full, sizeof(full), "%s/%s", dir, path);
	else
		snprintf(full, sizeof(full), "%s", path);
	FILE *f = fopen(full, "r");
	if (!f) {
		fprintf(stderr, "%s: %s\n", full, strerror(errno));
		return -errno;
	}
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x) {
		fprintf(stderr, "%s: no PEM certificate\n", full);
		return -EBADMSG;
	}
	int rc = certinfo_from_x509(x, id);
	X509_free(x);
	return rc;
}

/* One scenario line -> COUNT calls of acct_handshake_end. */
static int run_line(char *line, unsigned lineno)
{
	char issuer[64], serial[64], outcome[32], pname[64] = "", cn[64] = "";
	unsigned long count, duration;
	int partner;
	struct acct_event ev = { 0 };
	struct cert_identity id;
	size_t len;

	int n = sscanf(line, "%63s %63s %31s %d %lu %lu %63s %63s", issuer, serial, outcome,
		       &partner, &count, &duration, pname, cn);
	if (n < 6 || parse_outcome(outcome, &ev.outcome) < 0) {
		fprintf(stderr, "scenario line %u: want ISSUER SERIAL OUTCOME PARTNER COUNT "
			"DURATION_NS [PARTNER_NAME CN], got '%s'\n", lineno, line);
		return -EINVAL;
	}
	if (strncmp(issuer, "cert:", 5) == 0) {
		if (load_identity(issuer + 5, &id) < 0)
			return -EINVAL;
		acct_event_set_cert(&ev, &id);
	} else if (strcmp(serial, "-") != 0) {
		if (parse_hex(issuer, ev.issuer_id, sizeof(ev.issuer_id), &len) < 0 ||
		    len != sizeof(ev.issuer_id) ||
		    parse_hex(serial, ev.serial, sizeof(ev.serial), &ev.serial_len) < 0) {
			fprintf(stderr, "scenario line %u: bad issuer id (40 hex digits) or serial\n", lineno);
			return -EINVAL;
		}
	}
	ev.partner = partner;
	ev.tls_version = 0x0304;
	ev.cipher = 0x1301;
	ev.duration_ns = duration;
	ev.partner_name = pname[0] ? pname : NULL;
	if (strncmp(issuer, "cert:", 5) != 0) {
		ev.subject_cn = cn[0] ? cn : NULL;
		ev.issuer = "CN=Test Issuing CA";
	}
	for (unsigned long i = 0; i < count; i++)
		acct_handshake_end(&ev);
	return 0;
}

static int drop_all_caps(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { 0 };

	return syscall(SYS_capset, &hdr, data) == 0 ? 0 : -errno;
}

/* Threads of this process: mtlsd drops privileges after acct_init() and
 * refuses to while more than one thread runs. */
static int count_threads(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/task");

	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void spray(unsigned long n)
{
	struct acct_event ev = { .outcome = HS_OK, .partner = 0, .duration_ns = 1000 };

	memset(ev.issuer_id, 0xcc, sizeof(ev.issuer_id));
	ev.serial_len = 4;
	for (unsigned long i = 1; i <= n; i++) {
		ev.serial[0] = (uint8_t)(i >> 24);
		ev.serial[1] = (uint8_t)(i >> 16);
		ev.serial[2] = (uint8_t)(i >> 8);
		ev.serial[3] = (uint8_t)i;
		acct_handshake_end(&ev);
	}
}

/* Port 0 becomes a port the kernel has just given out and taken back: the
 * driver must print the port it serves, and mtlsd itself only logs it. */
static int bound_port(const struct sockaddr *sa)
{
	return ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
					      : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

static int pick_free_port(struct addrinfo *ai)
{
	socklen_t len = ai->ai_addrlen;
	int fd, rc = 0;

	if (bound_port(ai->ai_addr) != 0)
		return bound_port(ai->ai_addr);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || getsockname(fd, ai->ai_addr, &len) != 0)
		rc = -errno;
	close(fd);
	return rc < 0 ? rc : bound_port(ai->ai_addr);
}

/* Serve the admin listener until asked to stop. */
static int serve_admin(const char *text)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM }, *ai;
	struct admin_http *admin;
	char host[128], err[256];
	const char *colon = strrchr(text, ':');
	sigset_t set;
	int sig, rc, port;

	if (!colon || (size_t)(colon - text) >= sizeof(host)) {
		fprintf(stderr, "--admin %s: not HOST:PORT\n", text);
		return -EINVAL;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - text), text);
	if (host[0] == '[') {      /* [::1]:0 */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
		fprintf(stderr, "--admin %s: not a numeric HOST:PORT\n", text);
		return -EINVAL;
	}
	port = pick_free_port(ai);
	if (port < 0) {
		fprintf(stderr, "--admin %s: no free port: %s\n", text, strerror(-port));
		freeaddrinfo(ai);
		return port;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	rc = admin_http_start(ai->ai_addr, ai->ai_addrlen, NULL, &admin, err, sizeof(err));
	freeaddrinfo(ai);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return rc;
	}
	printf("admin port %d\n", port);
	fflush(stdout);
	sigwait(&set, &sig);
	admin_http_stop(admin);
	return 0;
}

int main(int argc, char **argv)
{
	const char *admin = NULL;
	unsigned long spray_n = 0;
	bool drop_caps = false;
	const char *instance = NULL;
	bool may_use_bpf = true;
	unsigned hold = 0, lineno = 0;
	char line[512];
	int ch, rc = 0;

	static const struct option longopts[] = {
		{ "instance", required_argument, NULL, 'i' },
		{ "no-bpf", no_argument, NULL, 'n' },
		{ "hold", required_argument, NULL, 'h' },
		{ "spray", required_argument, NULL, 's' },
		{ "drop-caps-after-init", no_argument, NULL, 'd' },
		{ "admin", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i': instance = optarg; break;
		case 'n': may_use_bpf = false; break;
		case 'h': hold = (unsigned)atoi(optarg); break;
		case 's': spray_n = strtoul(optarg, NULL, 10); break;
		case 'd': drop_caps = true; break;
		case 'a': admin = optarg; break;
		default: return 2;
		}
	}
	log_set_ident("acct_driver");
	if (acct_init(instance, may_use_bpf) < 0)
		return 1;
	if (drop_caps && drop_all_caps() < 0) {
		perror("capset");
		return 1;
	}
	printf("source: %s\n%s\nthreads after acct_init: %d\n",
	       acct_source() == ACCT_SOURCE_BPF ? "bpf" : "fallback", acct_source_describe(),
	       count_threads());
	fflush(stdout);
	if (acct_start() < 0)
		return 1;
	spray(spray_n);
	while (rc == 0 && fgets(line, sizeof(line), stdin)) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		rc = run_line(line, lineno);
	}
	if (hold)
		sleep(hold);
	if (rc == 0 && admin)
		rc = serve_admin(admin);
	acct_shutdown();
	return rc == 0 ? 0 : 1;
}
