/*
 * control_certs.c: what `mtlsctl certs` lists: every certificate and CRL
 * the published generation actually loaded (not what the files say now).
 *
 * One "cert=" field each, tab-separated so subjects may hold commas:
 *   KIND \t OWNER \t SUBJECT \t SERIAL \t SHA256 \t NOT_AFTER \t DAYS_LEFT
 * KIND is server, ca (a partner's trust anchor), intermediate or crl;
 * OWNER is "-" for server certificates, else the partner's name. For a
 * CRL, SUBJECT is its issuer, SERIAL its CRL number, SHA256 the digest of
 * its DER and NOT_AFTER its nextUpdate. NOT_AFTER is Unix time; DAYS_LEFT
 * may be negative. mtlsctl does the flagging (30, 15, 7 days). An eighth
 * field, when present, is a note: "no_crl" on a CA of a partner with
 * crl_missing = fail that no loaded CRL is from (every client under it is
 * refused). Older mtlsctl versions ignore it.
 */
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cert_name.h"
#include "certinfo.h"
#include "control.h"
#include "ctlproto.h"
#include "generation.h"

static long long days_left(time_t t)
{
	double d = difftime(t, time(NULL)) / 86400.0;
	return (long long)(d < 0 ? d - 1 : d); /* floor: expired 1 hour ago is -1 */
}

static void add_cert(struct ctl_msg *reply, const char *kind, const char *owner, X509 *x, const char *note)
{
	struct cert_identity id;
	if (certinfo_from_x509(x, &id) < 0) {
		ctlproto_add(reply, "cert", "%s\t%s\t(unreadable)\t-\t-\t0\t0%s%s", kind, owner,
			     note ? "\t" : "", note ? note : "");
		return;
	}
	ctlproto_add(reply, "cert", "%s\t%s\t%s\t%s\t%s\t%lld\t%lld%s%s", kind, owner, id.subject,
		     id.serial_hex, id.sha256_hex, (long long)id.not_after, days_left(id.not_after),
		     note ? "\t" : "", note ? note : "");
}

/* "no_crl" when p refuses every client under ca for want of its CRL. */
static const char *ca_note(const struct partner *p, X509 *ca)
{
	if (p->cfg->crl_missing != CRL_POLICY_FAIL || p->cfg->crl_paths.n == 0)
		return NULL;
	for (int i = 0; i < sk_X509_num(p->cas_without_crl); i++)
		if (sk_X509_value(p->cas_without_crl, i) == ca)
			return "no_crl";
	return NULL;
}

struct crl_reply {
	struct ctl_msg *reply;
	const char *owner;
};

static void add_crl(X509_CRL *crl, void *arg)
{
	struct ctl_msg *reply = ((struct crl_reply *)arg)->reply;
	const char *owner = ((struct crl_reply *)arg)->owner;
	char issuer[512] = "", number[64] = "-", hex[65];
	unsigned char md[32];
	unsigned mdlen = 0;
	time_t next = 0;
	struct tm tm;

	cert_name_format(X509_CRL_get_issuer(crl), issuer, sizeof(issuer));
	ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	if (num) {
		BIGNUM *bn = ASN1_INTEGER_to_BN(num, NULL);
		char *dec = bn ? BN_bn2dec(bn) : NULL;
		if (dec)
			snprintf(number, sizeof(number), "%s", dec);
		OPENSSL_free(dec);
		BN_free(bn);
		ASN1_INTEGER_free(num);
	}
	if (X509_CRL_digest(crl, EVP_sha256(), md, &mdlen) == 1)
		hex_encode(md, mdlen, hex, 0, 0);
	else
		snprintf(hex, sizeof(hex), "-");
	const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);
	if (nu && ASN1_TIME_to_tm(nu, &tm) == 1)
		next = timegm(&tm);
	ctlproto_add(reply, "cert", "crl\t%s\t%s\t%s\t%s\t%lld\t%lld", owner, issuer, number, hex,
		     (long long)next, next ? days_left(next) : 0);
}

static void add_server_certs(const struct generation *g, struct ctl_msg *reply)
{
	/* Walk the key-type slots (ECDSA, RSA) on a throwaway SSL: it has
	 * its own copy of the certificate table, so the shared SSL_CTX that
	 * workers use is never touched from this thread. */
	SSL *ssl = SSL_new(g->ssl_ctx);
	if (!ssl) {
		ctlproto_add(reply, "cert", "server\t-\t(out of memory)\t-\t-\t0\t0");
		return;
	}
	for (int rc = SSL_set_current_cert(ssl, SSL_CERT_SET_FIRST); rc == 1;
	     rc = SSL_set_current_cert(ssl, SSL_CERT_SET_NEXT)) {
		X509 *x = SSL_get_certificate(ssl);
		if (x)
			add_cert(reply, "server", "-", x, NULL);
	}
	SSL_free(ssl);
}

void control_certs_reply(const struct generation *g, struct ctl_msg *reply)
{
	add_server_certs(g, reply);
	for (size_t i = 0; i < g->n_partners; i++) {
		const struct partner *p = &g->partners[i];
		const char *name = p->cfg->name;
		for (int k = 0; k < sk_X509_num(p->anchors); k++) {
			X509 *x = sk_X509_value(p->anchors, k);
			add_cert(reply, "ca", name, x, ca_note(p, x));
		}
		for (int k = 0; k < sk_X509_num(p->intermediates); k++) {
			X509 *x = sk_X509_value(p->intermediates, k);
			add_cert(reply, "intermediate", name, x, ca_note(p, x));
		}
		struct crl_reply cr = { reply, name };
		partner_for_each_crl(p, add_crl, &cr);
	}
}
