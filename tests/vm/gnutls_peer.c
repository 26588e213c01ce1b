/*
 * gnutls_peer.c: a GnuTLS client that downloads and checksums, for the VM
 * suite.
 *
 * gnutls-cli writes what it receives one byte per write(2), which makes a
 * 64 MiB download take tens of minutes under TCG. This client does the
 * same TLS (GnuTLS, so ktls.c's key derivation is checked against a second
 * implementation) and prints the byte count and SHA-256 of what it read
 * until the server's close_notify:
 *
 *   gnutls_peer PORT [PRIORITY]   ->   "bytes=N sha256=HEX"
 */
#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void fail(const char *what, int rc)
{
	fprintf(stderr, "gnutls_peer: %s: %s\n", what, rc ? gnutls_strerror(rc) : "failed");
	exit(1);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	gnutls_hash_hd_t h;
	static char buf[65536];
	unsigned char md[32];
	unsigned long long total = 0;
	ssize_t n;
	int fd, rc;

	if (argc < 2)
		fail("usage: gnutls_peer PORT [PRIORITY]", 0);
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail("connect", 0);

	/* The server certificate is not what this client tests: the suite's
	 * subject is the record layer after the handshake. */
	if ((rc = gnutls_certificate_allocate_credentials(&cred)) < 0 ||
	    (rc = gnutls_init(&s, GNUTLS_CLIENT)) < 0 ||
	    (rc = gnutls_priority_set_direct(s, argc > 2 ? argv[2] : "NORMAL", NULL)) < 0 ||
	    (rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred)) < 0)
		fail("setup", rc);
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
	printf("\n");
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	close(fd);
	return 0;
}
