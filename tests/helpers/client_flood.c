/*
 * client_flood.c: many distinct client certificates, made in process, and
 * one mTLS handshake with each (the accounting and metrics tests: a
 * stranger with 20,000 self-made certificates, a partner CA that issued
 * names chosen to break a parser).
 *
 * usage: client_flood --connect HOST:PORT --count N [options]
 *        client_flood --write FILE --count N [options]
 *
 *   --threads T        connections in flight, one per thread (default 4)
 *   --issuer CERT --issuer-key KEY
 *                      sign with this CA (key passphrase: $MTLS_FIXTURE_PASS):
 *                      genuine certificates of whoever owns the CA
 *   --claim CERT       forged: issuer name and authority key id copied
 *                      from CERT's subject and key id, signed by our own
 *                      key (what anyone can make of a partner's public CA)
 *                      default without --issuer/--claim: self-signed
 *   --cn TEXT          subject CN; repeatable: certificate i gets the
 *                      (i mod n)-th. \xNN and \\ are decoded, so any byte
 *                      can be given; a "t61:" prefix makes it a
 *                      TeletexString (Latin-1). Default "flood-<i>"
 *   --o TEXT           subject O (decoded the same way)
 *   --uri TEXT         a SAN URI; "%d" becomes i (decoded the same way)
 *   --dns TEXT         a SAN DNS name (decoded the same way)
 *
 * Every certificate has its own random serial and carries one P-256 key,
 * made once. Names are put in as UTF8String bytes exactly as given (OpenSSL
 * refuses to encode, or decode, one that is not UTF-8: such bytes can only
 * reach a reader through a SAN, an IA5String it does not check). With --connect, a client that got through
 * sends "ping\n" and waits for it back (the echo backend); a refused one
 * reads the alert. One JSON line at the end: {"count":..,"accepted":..,
 * "refused":..,"errors":..}. Exit 0 when every connection ended one way
 * or the other, 1 on setup errors or when some could not even connect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_CNS 64
#define MAX_TEXT 1024

struct text {
	unsigned char b[MAX_TEXT];
	size_t len;
};

static struct {
	const char *connect, *write, *issuer_path, *issuer_key_path, *claim_path;
	unsigned count, threads;
	struct text cn[MAX_CNS];
	unsigned n_cn;
	struct text o, uri, dns;
	bool has_o, has_uri, has_dns;
	struct sockaddr_in addr;
	EVP_PKEY *key;            /* every leaf's key */
	EVP_PKEY *issuer_key;     /* --issuer-key, else key */
	X509 *issuer;             /* --issuer or --claim, else NULL */
} opt = { .threads = 4 };

static atomic_uint next_index, accepted, refused, errors;

static void die(const char *what)
{
	fprintf(stderr, "client_flood: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* Decode \xNN and \\ so argv can carry any byte but NUL... and NUL too. */
static void decode(const char *in, struct text *t)
{
	t->len = 0;
	for (const char *p = in; *p && t->len < MAX_TEXT; p++) {
		unsigned v;
		if (p[0] == '\\' && p[1] == 'x' && sscanf(p + 2, "%2x", &v) == 1) {
			t->b[t->len++] = (unsigned char)v;
			p += 3;
		} else if (p[0] == '\\' && p[1] == '\\') {
			t->b[t->len++] = '\\';
			p++;
		} else {
			t->b[t->len++] = (unsigned char)*p;
		}
	}
}

static X509 *load_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (!x)
		die("cannot read the certificate given");
	return x;
}

/* V_ASN1_UTF8STRING, not MBSTRING_UTF8: the bytes go in unchecked (but
 * OpenSSL refuses to encode a name whose UTF8String is not UTF-8). A
 * "t61:" prefix makes it a TeletexString, which readers take as Latin-1:
 * "t61:\x9b" is U+009B, CSI. */
static void add_name(X509_NAME *n, int nid, const struct text *t)
{
	bool t61 = t->len >= 4 && memcmp(t->b, "t61:", 4) == 0;
	int type = t61 ? V_ASN1_T61STRING : V_ASN1_UTF8STRING;
	size_t skip = t61 ? 4 : 0;

	if (!X509_NAME_add_entry_by_NID(n, nid, type, (unsigned char *)t->b + skip, (int)(t->len - skip), -1, 0))
		die("cannot add a name entry");
}

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	if (!e || !X509_add_ext(x, e, -1))
		die("cannot add an extension");
	X509_EXTENSION_free(e);
}

/* SAN from raw bytes (IA5String bytes as given). */
static void add_san(X509 *x, unsigned i)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();

	if (opt.has_uri) {
		char fmt[MAX_TEXT + 1], text[MAX_TEXT + 32];
		memcpy(fmt, opt.uri.b, opt.uri.len);
		fmt[opt.uri.len] = '\0';
		char *pct = strstr(fmt, "%d");
		if (pct) {
			*pct = '\0';
			snprintf(text, sizeof(text), "%s%u%s", fmt, i, pct + 2);
		} else {
			snprintf(text, sizeof(text), "%s", fmt);
		}
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		ASN1_STRING_set(s, text, -1);
		GENERAL_NAME_set0_value(g, GEN_URI, s);
		sk_GENERAL_NAME_push(gens, g);
	}
	if (opt.has_dns) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		ASN1_STRING_set(s, opt.dns.b, (int)opt.dns.len);
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		sk_GENERAL_NAME_push(gens, g);
	}
	if (sk_GENERAL_NAME_num(gens) > 0 && !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT))
		die("cannot add the SAN");
	GENERAL_NAMES_free(gens);
}

/* Certificate number i. */
static X509 *make_cert(unsigned i)
{
	X509 *x = X509_new();
	X509_NAME *subject = X509_NAME_new();
	unsigned char serial[12];
	X509V3_CTX v3;

	if (!x || !subject || RAND_bytes(serial, sizeof(serial)) != 1)
		die("out of memory");
	serial[0] = (serial[0] & 0x7f) | 0x01; /* positive, 12 octets */
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		die("cannot set the serial");
	BN_free(bn);
	X509_set_version(x, 2);
	if (opt.has_o)
		add_name(subject, NID_organizationName, &opt.o);
	if (opt.n_cn) {
		add_name(subject, NID_commonName, &opt.cn[i % opt.n_cn]);
	} else {
		struct text t;
		t.len = (size_t)snprintf((char *)t.b, sizeof(t.b), "flood-%u", i);
		add_name(subject, NID_commonName, &t);
	}
	if (!X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, opt.issuer ? X509_get_subject_name(opt.issuer) : subject))
		die("cannot set the names (a UTF8String that is not UTF-8?)");
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, opt.key);
	X509V3_set_ctx(&v3, opt.issuer ? opt.issuer : x, x, NULL, NULL, 0);
	add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE");
	add_ext(x, &v3, NID_key_usage, "critical,digitalSignature");
	add_ext(x, &v3, NID_ext_key_usage, "clientAuth");
	if (opt.issuer)
		add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
	add_san(x, i);
	if (!X509_sign(x, opt.issuer_key, EVP_sha256()))
		die("cannot sign");
	X509_NAME_free(subject);
	return x;
}

/* One handshake with certificate x. */
static void run_one(SSL_CTX *ctx, X509 *x)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 20 };
	SSL *ssl = NULL;
	char buf[16];

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) != 0) {
		perror("client_flood: connect");
		atomic_fetch_add(&errors, 1);
		goto out;
	}
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd) || !SSL_use_certificate(ssl, x) ||
	    !SSL_use_PrivateKey(ssl, opt.key))
		die("cannot set up the TLS client");
	/* A TLS 1.3 client finishes before the server has read its
	 * certificate: the verdict is the echo, or the alert read after. */
	if (SSL_connect(ssl) == 1 && SSL_write(ssl, "ping\n", 5) == 5) {
		size_t got = 0;
		while (got < 5) {
			int n = SSL_read(ssl, buf + got, (int)(5 - got));
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (got == 5 && memcmp(buf, "ping\n", 5) == 0) {
			atomic_fetch_add(&accepted, 1);
			SSL_shutdown(ssl);
			goto out;
		}
	}
	atomic_fetch_add(&refused, 1);
out:
	ERR_clear_error();
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
}

static void *worker(void *arg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	unsigned i;

	(void)arg;
	if (!ctx)
		die("cannot make the TLS context");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	while ((i = atomic_fetch_add(&next_index, 1)) < opt.count) {
		X509 *x = make_cert(i);
		run_one(ctx, x);
		X509_free(x);
	}
	SSL_CTX_free(ctx);
	return NULL;
}

static void write_all(void)
{
	FILE *f = fopen(opt.write, "w");

	if (!f)
		die("cannot create the --write file");
	for (unsigned i = 0; i < opt.count; i++) {
		X509 *x = make_cert(i);
		if (!PEM_write_X509(f, x))
			die("cannot write a certificate");
		X509_free(x);
	}
	if (fclose(f) != 0)
		die("cannot write the --write file");
}

static void parse_connect(const char *s)
{
	char host[64];
	unsigned port;

	if (sscanf(s, "%63[^:]:%u", host, &port) != 2 || port == 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1)
		die("--connect wants IPV4:PORT");
	opt.addr.sin_family = AF_INET;
	opt.addr.sin_port = htons((uint16_t)port);
}

static const char *need(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		die("an option is missing its value");
	return argv[++*i];
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--connect"))
			opt.connect = need(argc, argv, &i);
		else if (!strcmp(a, "--write"))
			opt.write = need(argc, argv, &i);
		else if (!strcmp(a, "--count"))
			opt.count = (unsigned)strtoul(need(argc, argv, &i), NULL, 10);
		else if (!strcmp(a, "--threads"))
			opt.threads = (unsigned)strtoul(need(argc, argv, &i), NULL, 10);
		else if (!strcmp(a, "--issuer"))
			opt.issuer_path = need(argc, argv, &i);
		else if (!strcmp(a, "--issuer-key"))
			opt.issuer_key_path = need(argc, argv, &i);
		else if (!strcmp(a, "--claim"))
			opt.claim_path = need(argc, argv, &i);
		else if (!strcmp(a, "--cn") && opt.n_cn < MAX_CNS)
			decode(need(argc, argv, &i), &opt.cn[opt.n_cn++]);
		else if (!strcmp(a, "--o"))
			decode(need(argc, argv, &i), &opt.o), opt.has_o = true;
		else if (!strcmp(a, "--uri"))
			decode(need(argc, argv, &i), &opt.uri), opt.has_uri = true;
		else if (!strcmp(a, "--dns"))
			decode(need(argc, argv, &i), &opt.dns), opt.has_dns = true;
		else
			die("unknown option (see the comment at the top of client_flood.c)");
	}
	if (!opt.count || !opt.threads || !!opt.connect == !!opt.write ||
	    !!opt.issuer_path != !!opt.issuer_key_path || (opt.issuer_path && opt.claim_path))
		die("usage: --connect HOST:PORT|--write FILE --count N [--issuer CERT --issuer-key KEY|--claim CERT]");
	signal(SIGPIPE, SIG_IGN);
	opt.key = EVP_EC_gen("P-256");
	if (!opt.key)
		die("cannot make a key");
	opt.issuer_key = opt.key;
	if (opt.issuer_path) {
		FILE *f = fopen(opt.issuer_key_path, "r");
		opt.issuer_key = f ? PEM_read_PrivateKey(f, NULL, NULL, getenv("MTLS_FIXTURE_PASS")) : NULL;
		if (f)
			fclose(f);
		if (!opt.issuer_key)
			die("cannot read --issuer-key");
		opt.issuer = load_cert(opt.issuer_path);
	} else if (opt.claim_path) {
		opt.issuer = load_cert(opt.claim_path);
	}
	if (opt.write) {
		write_all();
		return 0;
	}
	parse_connect(opt.connect);
	pthread_t *t = calloc(opt.threads, sizeof(*t));
	if (!t)
		die("out of memory");
	for (unsigned i = 0; i < opt.threads; i++)
		if (pthread_create(&t[i], NULL, worker, NULL) != 0)
			die("cannot start a thread");
	for (unsigned i = 0; i < opt.threads; i++)
		pthread_join(t[i], NULL);
	free(t);
	printf("{\"count\":%u,\"accepted\":%u,\"refused\":%u,\"errors\":%u}\n", opt.count,
	       atomic_load(&accepted), atomic_load(&refused), atomic_load(&errors));
	return atomic_load(&errors) ? 1 : 0;
}
