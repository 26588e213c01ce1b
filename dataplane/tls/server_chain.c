/*
 * server_chain.c: the walk of server_chain_check() (server_chain.h).
 *
 * "Issued by" is X509_check_issued(): names, key identifiers and key
 * usage. Signatures are not checked: this is advice about a file the
 * operator wrote, and OpenSSL verifies nothing of the server's own chain
 * either. The walk is bounded by the number of certificates it can visit,
 * so a file whose certificates issue each other in a loop ends.
 */
#include "server_chain.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#include "cert_name.h"

static X509 *issuer_in(STACK_OF(X509) *set, X509 *x)
{
	for (int i = 0; i < sk_X509_num(set); i++)
		if (X509_check_issued(sk_X509_value(set, i), x) == X509_V_OK)
			return sk_X509_value(set, i);
	return NULL;
}

/* The issuer of x in roots (one reference), or NULL. */
static X509 *issuer_in_store(X509_STORE *roots, X509 *x)
{
	X509_STORE_CTX *v = roots ? X509_STORE_CTX_new() : NULL;
	X509 *issuer = NULL;

	if (v && X509_STORE_CTX_init(v, roots, x, NULL) == 1 && X509_STORE_CTX_get1_issuer(&issuer, v, x) != 1)
		issuer = NULL;
	X509_STORE_CTX_free(v);
	ERR_clear_error();
	return issuer;
}

static bool self_issued(X509 *x)
{
	return X509_check_issued(x, x) == X509_V_OK;
}

/* In warnings as everywhere: RFC 2253 (lib/cert_name.h). */
static void name_of(const X509_NAME *n, char *buf, size_t len)
{
	cert_name_format(n, buf, len);
}

bool server_chain_check(STACK_OF(X509) *certs, STACK_OF(X509) *known, X509_STORE *roots,
			char *why, size_t len)
{
	X509 *cur = sk_X509_value(certs, 0);
	int budget = sk_X509_num(certs) + sk_X509_num(known) + 1;
	char subject[256], issuer[256];

	why[0] = '\0';
	while (cur && budget-- > 0) {
		if (self_issued(cur))
			return true;
		X509 *next = issuer_in(certs, cur);
		if (next) {
			cur = next;
			continue;
		}
		name_of(X509_get_subject_name(cur), subject, sizeof(subject));
		name_of(X509_get_issuer_name(cur), issuer, sizeof(issuer));
		X509 *elsewhere = issuer_in(known, cur);
		const char *where = "a partner's ca bundle";
		X509 *stored = elsewhere ? NULL : issuer_in_store(roots, cur);
		if (stored) {
			elsewhere = stored;
			where = "the system trust store";
		}
		if (elsewhere && self_issued(elsewhere)) {
			X509_free(stored);
			return true; /* ends below a root: as it should */
		}
		if (elsewhere)
			snprintf(why, len, "'%s' is issued by '%s', an intermediate CA that is not in the file "
				 "(it is in %s): append its certificate after '%s', or clients fail with "
				 "'unable to get local issuer certificate'", subject, issuer, where, subject);
		else
			snprintf(why, len, "the chain stops at '%s': its issuer '%s' is not in the file, and "
				 "mtlsd knows it from no partner's ca bundle nor the system trust store; append "
				 "each intermediate up to the root clients trust (the root itself may follow: it "
				 "is not sent), or clients fail with 'unable to get local issuer certificate'",
				 subject, issuer);
		X509_free(stored);
		return false;
	}
	snprintf(why, len, "its certificates issue each other in a loop; order it leaf first, then each issuer");
	return false;
}
