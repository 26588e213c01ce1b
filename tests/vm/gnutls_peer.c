/*
 * gnutls_peer.c: a GnuTLS client that downloads and checksums, for the VM
 * suite.
 *
 * gnutls-cli writes what it receives one byte per write(2), which makes a
 * 64 MiB download take tens of minutes under TCG. This client does the
 * same TLS (GnuTLS, so ktls.c's key derivation is checked against a second
 * implementation) and prints the byte count and SHA-256 of what it read
 * until the server's close_notify, with the version and cipher used:
 *
 *   gnutls_peer [--cert CHAIN --key KEY] [--ca ROOT] PORT [PRIORITY]
 *     -> "bytes=N sha256=HEX version=TLS1.3 cipher=AES-128-GCM"
 *
 * --cert/--key: present a client certificate (CHAIN: the leaf, then its
 * intermediates; mtlsd requires one, ktls_peer does not ask). --ca: verify
 * the server's certificate against ROOT for the name "localhost" (without
 * it the server is not checked: the suite's subject is the record layer).
 * PRIORITY: a GnuTLS priority string choosing version and cipher, e.g.
 * "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+CHACHA20-POLY1305".
 */
#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void fail(const char *what, int rc)
{
	fprintf(stderr, "gnutls_peer: %s: %s\n", what, rc ? gnutls_strerror(rc) : "failed");
	exit(1);
}

static const char *usage =
	"usage: gnutls_peer [--cert CHAIN --key KEY] [--ca ROOT] PORT [PRIORITY]";

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const char *cert = NULL, *key = NULL, *ca = NULL, *port = NULL, *priority = "NORMAL";
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	gnutls_hash_hd_t h;
	static char buf[65536];
	unsigned char md[32];
	unsigned long long total = 0;
	ssize_t n;
	int fd, rc, positional = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
			cert = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
			ca = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1] == '-')
			fail(usage, 0);
		else if (positional++ == 0)
			port = argv[i];
		else
			priority = argv[i];
	}
	if (!port || positional > 2 || !cert != !key)
		fail(usage, 0);
	sa.sin_port = htons((unsigned short)atoi(port));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail("connect", 0);

	if ((rc = gnutls_certificate_allocate_credentials(&cred)) < 0 ||
	    (rc = gnutls_init(&s, GNUTLS_CLIENT)) < 0 ||
	    (rc = gnutls_priority_set_direct(s, priority, NULL)) < 0 ||
	    (rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred)) < 0)
		fail("setup", rc);
	/* A chain file: GnuTLS sends the leaf and the intermediates after it. */
	if (cert && (rc = gnutls_certificate_set_x509_key_file(cred, cert, key, GNUTLS_X509_FMT_PEM)) < 0)
		fail("loading the client certificate", rc);
	if (ca) {
		if ((rc = gnutls_certificate_set_x509_trust_file(cred, ca, GNUTLS_X509_FMT_PEM)) <= 0)
			fail("loading the CA", rc);
		if ((rc = gnutls_server_name_set(s, GNUTLS_NAME_DNS, "localhost", 9)) < 0)
			fail("server name", rc);
		gnutls_session_set_verify_cert(s, "localhost", 0);
	}
	gnutls_transport_set_int(s, fd);
	do
		rc = gnutls_handshake(s);
	while (rc < 0 && !gnutls_error_is_fatal(rc));
	if (rc < 0)
		fail("handshake", rc);

	if ((rc = gnutls_hash_init(&h, GNUTLS_DIG_SHA256)) < 0)
		fail("hash", rc);
	for (;;) {
		n = gnutls_record_recv(s, buf, sizeof(buf));
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0)
			fail("receive", (int)n);
		if (n == 0)
			break; /* close_notify */
		gnutls_hash(h, buf, (size_t)n);
		total += (unsigned long long)n;
	}
	gnutls_hash_deinit(h, md);
	gnutls_bye(s, GNUTLS_SHUT_WR);
	printf("bytes=%llu sha256=", total);
	for (int i = 0; i < 32; i++)
		printf("%02x", md[i]);
	printf(" version=%s cipher=%s\n", gnutls_protocol_get_name(gnutls_protocol_get_version(s)),
	       gnutls_cipher_get_name(gnutls_cipher_get(s)));
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	close(fd);
	return 0;
}
