/*
 * ktls_peer.c: a minimal TLS server around dataplane/ktls/ktls.c, for the VM suite.
 *
 * It does what mtlsd does around the handoff, without the rest of mtlsd:
 * the handshake runs over memory BIOs fed from a blocking socket (so the
 * bytes OpenSSL has not consumed are known), then the session is handed to
 * the kernel, or stays in user space when ktls_conn_decide() says so, and
 * the connection moves data whose SHA-256 the harness compares with what the
 * peer (openssl s_client, gnutls-cli) sent or received:
 *
 *   ktls_peer server --cert C --key K --port-file F [--tls 1.2|1.3]
 *       [--cipher NAME] [--tickets N] [--ktls auto|on|off] [--wait-bytes N]
 *       [--upload | --download BYTES] [--connections N]
 *   ktls_peer corrupt-client --port P   (one good handshake, one bad record)
 *
 * The server prints one "conn ..." line per connection and exits 0 when
 * every connection ran without a local error.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "ktls.h"
#include "log.h"

#define CHUNK 65536

struct opts {
	const char *cert, *key, *port_file, *cipher;
	int version, tickets, wait_bytes, connections, port;
	enum ktls_mode mode;
	bool upload;
	unsigned long long download;
};

struct conn {
	int fd;
	SSL *ssl;
	BIO *rbio, *wbio;
	struct ktls_conn kc;
	bool offloaded;
	EVP_MD_CTX *hash;
	unsigned long long bytes, early;
	const char *event;
};

static void die(const char *what)
{
	fprintf(stderr, "ktls_peer: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(2);
}

static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		p += n, len -= (size_t)n;
	}
	return 0;
}

/* Everything OpenSSL wrote goes to the socket before anything else. */
static int flush_out(struct conn *c)
{
	char buf[CHUNK];
	int n;

	while ((n = BIO_read(c->wbio, buf, sizeof(buf))) > 0)
		GUARD(send_all(c->fd, buf, (size_t)n));
	return 0;
}

static int recv_into_bio(struct conn *c, size_t max)
{
	char buf[CHUNK];
	ssize_t n = recv(c->fd, buf, max < sizeof(buf) ? max : sizeof(buf), 0);

	if (n <= 0)
		return n == 0 ? -ECONNRESET : -errno;
	BIO_write(c->rbio, buf, (int)n);
	return 0;
}

/* Until the socket holds at least want bytes (or 10 s passed). */
static void wait_for_bytes(int fd, int want)
{
	for (int i = 0; i < 1000; i++) {
		int queued = 0;
		struct timespec ts = { 0, 10 * 1000000L };

		if (ioctl(fd, FIONREAD, &queued) < 0 || queued >= want)
			return;
		nanosleep(&ts, NULL);
	}
}

static int handshake(struct conn *c, const struct opts *o)
{
	int reads = 0;

	for (;;) {
		int r = SSL_do_handshake(c->ssl);
		GUARD(flush_out(c));
		if (r == 1)
			return 0;
		if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ)
			return -EPROTO;
		/* Before the second read (TLS 1.3: the client's Finished), let
		 * the Finished and the data right behind it pile up in the
		 * socket, then read in small pieces so the handoff finds whole
		 * and partial records in user space. */
		if (o->wait_bytes && reads++ == 1)
			wait_for_bytes(c->fd, o->wait_bytes);
		GUARD(recv_into_bio(c, o->wait_bytes ? 4096 : CHUNK));
	}
}

static void consume(struct conn *c, const void *buf, size_t n, bool early)
{
	EVP_DigestUpdate(c->hash, buf, n);
	c->bytes += n;
	if (early)
		c->early += n;
}

/*
 * The handoff, as mtlsd's hook does it: decrypt in user space every record
 * already received (completing a partial one with exactly its missing
 * bytes), deliver that plaintext first, then install the keys.
 */
static int handoff(struct conn *c)
{
	static char in[4 * CHUNK];
	char *pending;
	size_t have = (size_t)BIO_get_mem_data(c->rbio, &pending);
	char plain[CHUNK];
	int n;

	memcpy(in, pending, have);
	(void)BIO_reset(c->rbio);
	for (;;) {
		size_t missing = ktls_rx_missing((const uint8_t *)in, have);
		if (missing > 0) {
			ssize_t r = recv(c->fd, in + have, missing, MSG_WAITALL);
			if (r <= 0)
				return r == 0 ? -ECONNRESET : -errno;
			have += (size_t)r;
			continue;
		}
		if (have == 0)
			break;
		BIO_write(c->rbio, in, (int)have);
		have = 0;
		while ((n = SSL_read(c->ssl, plain, sizeof(plain))) > 0)
			consume(c, plain, (size_t)n, true);
		/* A bad record or an alert among them ends the connection
		 * here, in user space: nothing is left for the kernel. */
		if (SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_READ) {
			c->event = "ssl_error";
			return -EPROTO;
		}
		GUARD(flush_out(c));
	}
	return ktls_conn_install(&c->kc, c->fd);
}

/* Plaintext from the client: from the kernel or through OpenSSL. */
static ssize_t read_plain(struct conn *c, char *buf, size_t len)
{
	if (c->offloaded) {
		for (;;) {
			uint8_t type;
			ssize_t n = ktls_recv_record(c->fd, buf, len, 0, &type);
			enum ktls_event why;

			if (n == -EBADMSG) {
				ktls_count_event(KTLS_EV_DECRYPT_ERROR);
				c->event = ktls_event_name(KTLS_EV_DECRYPT_ERROR);
				return -EBADMSG;
			}
			if (n <= 0 || type == KTLS_CT_APPLICATION_DATA)
				return n;
			switch (ktls_on_control(&c->kc, c->fd, type, (uint8_t *)buf, (size_t)n, &why)) {
			case KTLS_ACT_CONTINUE:
				continue;
			case KTLS_ACT_SHUTDOWN:
				c->event = ktls_event_name(why);
				return 0;
			case KTLS_ACT_ABORT:
			default:
				c->event = ktls_event_name(why);
				return -ECONNABORTED;
			}
		}
	}
	for (;;) {
		int n = SSL_read(c->ssl, buf, (int)len);
		if (n > 0)
			return n;
		GUARD(flush_out(c));
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_ZERO_RETURN:
			c->event = "close_notify";
			return 0;
		case SSL_ERROR_WANT_READ:
			GUARD(recv_into_bio(c, CHUNK));
			break;
		default:
			c->event = "ssl_error";
			return -EPROTO;
		}
	}
}

static int write_plain(struct conn *c, const char *buf, size_t len)
{
	if (c->offloaded)
		return send_all(c->fd, buf, len);
	if (SSL_write(c->ssl, buf, (int)len) != (int)len)
		return -EPROTO;
	return flush_out(c);
}

static int close_notify(struct conn *c)
{
	if (c->offloaded)
		return ktls_send_close_notify(c->fd);
	SSL_shutdown(c->ssl);
	return flush_out(c);
}

static int run_upload(struct conn *c)
{
	char buf[CHUNK];
	ssize_t n;

	while ((n = read_plain(c, buf, sizeof(buf))) > 0)
		consume(c, buf, (size_t)n, false);
	if (n < 0)
		return (int)n;
	return close_notify(c);
}

/* A stream anyone can regenerate: xorshift64 from a fixed seed. */
static int run_download(struct conn *c, unsigned long long total)
{
	static uint64_t buf[CHUNK / 8];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char sink[CHUNK];

	while (total > 0) {
		size_t n = total < sizeof(buf) ? (size_t)total : sizeof(buf);
		for (size_t i = 0; i < ARRAY_SIZE(buf); i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[i] = x;
		}
		GUARD(write_plain(c, (const char *)buf, n));
		consume(c, buf, n, false);
		total -= n;
	}
	GUARD(close_notify(c));
	shutdown(c->fd, SHUT_WR);
	/* Wait for the client to close so nothing is cut by a reset. */
	while (read_plain(c, sink, sizeof(sink)) > 0)
		;
	return 0;
}

/* The kernel's own view: a direction answers getsockopt only once its key
 * is set (EBUSY before). Asking for the header alone keeps keys out of it. */
static const char *kernel_view(int fd)
{
	struct tls_crypto_info ci;
	socklen_t len = sizeof(ci);
	bool tx = getsockopt(fd, SOL_TLS, TLS_TX, &ci, &len) == 0;

	len = sizeof(ci);
	bool rx = getsockopt(fd, SOL_TLS, TLS_RX, &ci, &len) == 0;
	return tx && rx ? "tx+rx" : tx ? "tx-only" : rx ? "rx-only" : "none";
}

static int serve(int lfd, SSL_CTX *ctx, const struct opts *o, int idx)
{
	struct conn c = { .event = "none" };
	unsigned char md[32];
	char hex[65];
	enum ktls_decision d;
	int rc = 0;

	c.fd = accept(lfd, NULL, NULL);
	if (c.fd < 0)
		die("accept");
	c.ssl = SSL_new(ctx);
	c.rbio = BIO_new(BIO_s_mem());
	c.wbio = BIO_new(BIO_s_mem());
	c.hash = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c.hash, EVP_sha256(), NULL);
	SSL_set_bio(c.ssl, c.rbio, c.wbio);
	SSL_set_accept_state(c.ssl);
	if (ktls_conn_attach(&c.kc, c.ssl) < 0)
		die("ktls_conn_attach");
	SSL_set_msg_callback(c.ssl, ktls_msg_observer);

	GUARD_GOTO(handshake(&c, o), rc, out);
	d = ktls_conn_decide(&c.kc, o->mode);
	if (d == KTLS_OFFLOAD) {
		rc = handoff(&c);
		if (rc < 0 && (c.kc.tx_offloaded || rc == -EPROTO))
			goto out;
		/* A refused key leaves a plain socket: stay in user space. */
		c.offloaded = rc == 0;
		if (c.offloaded)
			ktls_conn_release_ssl(&c.kc);
		else
			d = KTLS_DECLINE_KERNEL;
	}
	printf("conn %d: version=%s cipher=%s decision=%s install=%d kernel=%s tx_seq=%llu rx_seq=%llu\n",
	       idx, SSL_get_version(c.ssl), SSL_get_cipher_name(c.ssl), ktls_decision_name(d),
	       d == KTLS_DECLINE_KERNEL ? rc : 0, kernel_view(c.fd),
	       (unsigned long long)c.kc.tx_records, (unsigned long long)c.kc.rx_records);
	rc = o->upload ? run_upload(&c) : run_download(&c, o->download);
out:
	EVP_DigestFinal_ex(c.hash, md, NULL);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	printf("conn %d: %s bytes=%llu early=%llu sha256=%s event=%s rc=%d\n", idx,
	       o->upload ? "upload" : "download", c.bytes, c.early, hex, c.event, rc);
	fflush(stdout);
	ktls_conn_clear(&c.kc);
	EVP_MD_CTX_free(c.hash);
	SSL_free(c.ssl);
	close(c.fd);
	return rc;
}

static SSL_CTX *server_ctx(const struct opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1)
		die("loading the server certificate and key");
	if (o->version && (SSL_CTX_set_min_proto_version(ctx, o->version) != 1 ||
			   SSL_CTX_set_max_proto_version(ctx, o->version) != 1))
		die("setting the TLS version");
	if (o->cipher && o->version == TLS1_3_VERSION && SSL_CTX_set_ciphersuites(ctx, o->cipher) != 1)
		die("setting the TLS 1.3 cipher suite");
	if (o->cipher && o->version == TLS1_2_VERSION && SSL_CTX_set_cipher_list(ctx, o->cipher) != 1)
		die("setting the TLS 1.2 cipher");
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (o->tickets >= 0)
		SSL_CTX_set_num_tickets(ctx, (size_t)o->tickets);
	if (ktls_ctx_prepare(ctx) < 0)
		die("ktls_ctx_prepare");
	return ctx;
}

static int listen_loopback(const char *port_file)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	char tmp[4096];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FILE *f;

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		die("listening on 127.0.0.1");
	/* Written whole, then renamed: the harness polls for the file. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%u\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0)
		die("writing the port file");
	return fd;
}

/* One good record, then one with a flipped ciphertext byte. */
static int corrupt_client(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	struct conn c = { 0 };
	char buf[CHUNK];
	int n;

	c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!ctx || c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connecting");
	c.ssl = SSL_new(ctx);
	c.rbio = BIO_new(BIO_s_mem());
	c.wbio = BIO_new(BIO_s_mem());
	SSL_set_bio(c.ssl, c.rbio, c.wbio);
	SSL_set_connect_state(c.ssl);
	for (;;) {
		int r = SSL_do_handshake(c.ssl);
		if (flush_out(&c) < 0)
			die("sending");
		if (r == 1)
			break;
		if (SSL_get_error(c.ssl, r) != SSL_ERROR_WANT_READ || recv_into_bio(&c, CHUNK) < 0)
			die("client handshake");
	}
	/* Give the server time to hand the session to the kernel: records
	 * arriving before that are (rightly) judged by OpenSSL instead. */
	sleep(1);
	if (SSL_write(c.ssl, "good record\n", 12) != 12 || flush_out(&c) < 0)
		die("writing the good record");
	SSL_write(c.ssl, "bad record\n", 11);
	n = BIO_read(c.wbio, buf, sizeof(buf));
	if (n < 30)
		die("no record to corrupt");
	buf[n - 20] ^= 0x40;
	if (send_all(c.fd, buf, (size_t)n) < 0)
		die("sending the bad record");
	/* The server must drop the connection. */
	while ((n = (int)recv(c.fd, buf, sizeof(buf), 0)) > 0)
		;
	printf("corrupt-client: server closed the connection\n");
	SSL_free(c.ssl);
	SSL_CTX_free(ctx);
	close(c.fd);
	return 0;
}

static int parse_version(const char *v)
{
	if (strcmp(v, "1.2") == 0)
		return TLS1_2_VERSION;
	if (strcmp(v, "1.3") == 0)
		return TLS1_3_VERSION;
	die("--tls takes 1.2 or 1.3");
	return 0;
}

static enum ktls_mode parse_mode(const char *v)
{
	if (strcmp(v, "on") == 0)
		return KTLS_MODE_ON;
	if (strcmp(v, "off") == 0)
		return KTLS_MODE_OFF;
	if (strcmp(v, "auto") == 0)
		return KTLS_MODE_AUTO;
	die("--ktls takes auto, on or off");
	return KTLS_MODE_AUTO;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cert", required_argument, NULL, 'c' }, { "key", required_argument, NULL, 'k' },
		{ "port-file", required_argument, NULL, 'f' }, { "port", required_argument, NULL, 'p' },
		{ "tls", required_argument, NULL, 'v' }, { "cipher", required_argument, NULL, 'C' },
		{ "tickets", required_argument, NULL, 't' }, { "ktls", required_argument, NULL, 'm' },
		{ "wait-bytes", required_argument, NULL, 'w' }, { "upload", no_argument, NULL, 'u' },
		{ "download", required_argument, NULL, 'D' },
		{ "connections", required_argument, NULL, 'n' }, { NULL, 0, NULL, 0 },
	};
	struct opts o = { .tickets = -1, .connections = 1, .mode = KTLS_MODE_AUTO };
	char err[256];
	int opt, failures = 0;

	if (argc < 2)
		die("usage: ktls_peer server|corrupt-client [options]");
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'f': o.port_file = optarg; break;
		case 'p': o.port = atoi(optarg); break;
		case 'v': o.version = parse_version(optarg); break;
		case 'C': o.cipher = optarg; break;
		case 't': o.tickets = atoi(optarg); break;
		case 'm': o.mode = parse_mode(optarg); break;
		case 'w': o.wait_bytes = atoi(optarg); break;
		case 'u': o.upload = true; break;
		case 'D': o.download = strtoull(optarg, NULL, 10); break;
		case 'n': o.connections = atoi(optarg); break;
		default: die("unknown option");
		}
	}
	log_set_ident("ktls_peer");
	if (strcmp(argv[1], "corrupt-client") == 0)
		return corrupt_client(o.port);
	if (strcmp(argv[1], "server") != 0 || !o.cert || !o.key || !o.port_file)
		die("server needs --cert, --key and --port-file");
	if (ktls_global_init(o.mode, err, sizeof(err)) < 0)
		die(err);

	SSL_CTX *ctx = server_ctx(&o);
	int lfd = listen_loopback(o.port_file);
	for (int i = 1; i <= o.connections; i++)
		failures += serve(lfd, ctx, &o, i) < 0;

	struct ktls_stats st;
	ktls_stats_snapshot(&st);
	printf("stats:");
	for (int i = 0; i < KTLS_DECISION_MAX; i++)
		printf(" %s=%llu", ktls_decision_name(i), (unsigned long long)st.declined[i]);
	for (int i = 0; i < KTLS_EVENT_MAX; i++)
		printf(" %s=%llu", ktls_event_name(i), (unsigned long long)st.events[i]);
	printf("\n");
	close(lfd);
	SSL_CTX_free(ctx);
	return failures ? 1 : 0;
}
