/*
 * cmd_cert_inspect.c: `mtlsctl cert inspect FILE`, every certificate in a
 * PEM file, in the words `cert check` and mtlsd's logs use. Every field
 * taken from a certificate is printed escaped for the terminal
 * (cert_describe.h): the file may come from anyone.
 */
#include <getopt.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cert_describe.h"
#include "certinfo.h"
#include "cmd.h"
#include "log.h"
#include "pemutil.h"
#include "pki_cert.h"
#include "pki_policy.h"
#include "cert_serial.h"
#include "pki_serial.h"

static void print_validity(X509 *x)
{
	char from[40], to[40];
	cert_time_desc(X509_get0_notBefore(x), from, sizeof(from));
	cert_time_desc(X509_get0_notAfter(x), to, sizeof(to));
	long left = ((long)cert_not_after(x) - (long)time(NULL)) / PKI_DAY;
	printf("  not before     %s\n  not after      %s (%s%ld days %s)\n", from, to,
	       left < 0 ? "expired " : "", left < 0 ? -left : left, left < 0 ? "ago" : "left");
}

static void print_constraints(X509 *x)
{
	uint32_t flags = X509_get_extension_flags(x);
	long pathlen = X509_get_pathlen(x);
	if (!(flags & EXFLAG_CA))
		printf("  CA             no\n");
	else if (pathlen >= 0)
		printf("  CA             yes, pathlen %ld\n", pathlen);
	else
		printf("  CA             yes, no path length limit\n");
}

static void print_ids(X509 *x)
{
	char hex[PKI_SERIAL_HEX_MAX + 1], fp[128];
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
	if (ski) {
		pki_hex_colon(ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski), hex, sizeof(hex));
		printf("  subject key id %s\n", hex);
	}
	if (aki) {
		pki_hex_colon(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki), hex, sizeof(hex));
		printf("  authority key  %s\n", hex);
	}
	pki_cert_fingerprint(x, fp, sizeof(fp));
	printf("  SHA-256        %s\n", fp);
	/* The keys mtlsd's audit log, metrics and stats use for this certificate. */
	struct cert_identity id;
	if (certinfo_from_x509(x, &id) == 0)
		printf("  mtlsd keys     issuer_id %s, sha256 %s\n", id.issuer_id_hex, id.sha256_hex);
}

static void print_cert(X509 *x)
{
	char buf[2048], serial[CERT_SERIAL_TEXT_MAX];
	struct cert_serial s;
	int bits;
	cert_name_display(X509_get_subject_name(x), buf, sizeof(buf));
	printf("  subject        %s\n", buf);
	cert_name_display(X509_get_issuer_name(x), buf, sizeof(buf));
	printf("  issuer         %s\n", buf);
	/* As mtlsd's audit line and `mtlsctl drop` spell it, and why mtlsd
	 * would refuse it (zero, negative, too long). */
	if (cert_serial_from_asn1(X509_get0_serialNumber(x), &s) == 0) {
		const char *why = cert_serial_problem(&s);
		cert_serial_format(&s, serial, sizeof(serial));
		printf("  serial         %s%s%s%s\n", serial, why ? " (" : "", why ? why : "",
		       why ? ": mtlsd refuses it)" : "");
	} else {
		printf("  serial         (longer than %d octets: mtlsd refuses it)\n", CERT_SERIAL_HELD_MAX);
	}
	print_validity(x);
	cert_key_desc(x, buf, sizeof(buf), &bits);
	printf("  key            %s%s\n", buf, cert_key_strong(x) ? "" : " (too weak for mtlsd)");
	printf("  signature      %s\n", OBJ_nid2ln(X509_get_signature_nid(x)));
	print_constraints(x);
	cert_ku_desc(x, buf, sizeof(buf));
	printf("  key usage      %s\n", *buf ? buf : "(none)");
	cert_eku_desc(x, buf, sizeof(buf));
	printf("  extended usage %s\n", *buf ? buf : "(none)");
	cert_san_desc(x, buf, sizeof(buf));
	printf("  names (SAN)    %s\n", *buf ? buf : "(none)");
	print_ids(x);
}

static int run_inspect(int argc, char **argv)
{
	static const struct option none[] = { { NULL, 0, NULL, 0 } };
	STACK_OF(X509) *certs = NULL;
	if (getopt_long(argc, argv, "", none, NULL) != -1 || optind >= argc)
		return ctl_usage(&cmd_cert_inspect);
	for (int f = optind; f < argc; f++) {
		char why[512];
		if (pem_load_certs(argv[f], &certs, why, sizeof(why)) < 0) {
			log_err("%s: %s", argv[f], why);
			return CTL_EXIT_USAGE;
		}
		int n = sk_X509_num(certs);
		for (int i = 0; i < n; i++) {
			printf("%s: certificate %d of %d\n", argv[f], i + 1, n);
			print_cert(sk_X509_value(certs, i));
		}
		sk_X509_pop_free(certs, X509_free);
	}
	return CTL_EXIT_OK;
}

const struct ctl_command cmd_cert_inspect = {
	.group = "cert",
	.name = "inspect",
	.args = "FILE...",
	.summary = "show every certificate in PEM files: names, validity, key, usages, fingerprint",
	.help = "  FILE   a PEM file with one or more certificates (a chain is shown in order)\n",
	.run = run_inspect,
};
