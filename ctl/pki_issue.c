/*
 * pki_issue.c: issuing a leaf from the issuing CA (pki_issue_run).
 *
 * Order of effects: the CA record (index.txt) is written before the
 * certificate leaves the tool, so the CA never forgets a certificate it
 * issued; if writing the files fails after that, the serial is recorded and
 * can be revoked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cert_describe.h"
#include "cmd.h"
#include "fsutil.h"
#include "pki_ca.h"
#include "pki_ops.h"
#include "pki_policy.h"

const char *pki_default_dir(const char *flag)
{
	const char *env = getenv("MTLS_PKI_DIR");
	if (flag)
		return flag;
	return env && *env ? env : ".";
}

static int profile_days(const struct pki_issue_opts *o, char *err, size_t errlen)
{
	bool server = o->kind == PKI_PROFILE_SERVER;
	int def = server ? PKI_SERVER_DAYS_DEFAULT : PKI_CLIENT_DAYS_DEFAULT;
	int max = server ? PKI_SERVER_DAYS_MAX : PKI_CLIENT_DAYS_MAX;
	int days = o->days ? o->days : def;
	if (days > max && !o->allow_long_lifetime) {
		snprintf(err, errlen, "--days %d: longer than the policy maximum of %d days for %s "
			 "certificates; add --allow-long-lifetime if you mean it", days, max,
			 server ? "server" : "client");
		return -EINVAL;
	}
	return days;
}

/* Validity window: the profile's, or a test override relative to now. */
static int set_validity(struct pki_cert_profile *p, const struct pki_issue_opts *o, X509 *ca,
			char *err, size_t errlen)
{
	time_t now = time(NULL);
	if (o->test_validity) {
		p->not_before = now + o->test_not_before;
		p->not_after = now + o->test_not_after;
		return 0;
	}
	int days = profile_days(o, err, errlen);
	GUARD(days);
	p->not_before = now - PKI_BACKDATE_SECONDS;
	p->not_after = now + days * PKI_DAY;
	if (ASN1_TIME_cmp_time_t(X509_get0_notAfter(ca), p->not_after) < 0) {
		snprintf(err, errlen, "--days %d: the certificate would outlive the issuing CA; "
			 "issue a shorter one or rotate the issuing CA", days);
		return -EINVAL;
	}
	return 0;
}

static int fresh_serial(const struct pki_issue_opts *o, const struct pki_index *idx,
			struct pki_serial *out, char *err, size_t errlen)
{
	if (o->test_serial_set) {
		*out = o->test_serial;
	} else {
		/* 2^-127 odds, but the record decides: never reuse a serial. */
		do
			GUARD(pki_serial_random(out));
		while (pki_index_find(idx, out));
	}
	if (pki_index_find(idx, out)) {
		snprintf(err, errlen, "serial already used by this CA");
		return -EEXIST;
	}
	return 0;
}

static int output_paths(const struct pki_issue_opts *o, char *dir, size_t cap, char *err,
			size_t errlen)
{
	char cert[PKI_PATH_MAX];
	if (o->out_dir)
		GUARD(fs_path(dir, cap, "%s", o->out_dir));
	else
		GUARD(fs_path(dir, cap, "%s/issued/%s", o->dir, o->name));
	GUARD(fs_path(cert, sizeof(cert), "%s/cert.pem", dir));
	if (fs_exists(cert) && !o->replace) {
		snprintf(err, errlen, "%s: exists; give --replace to issue a new certificate in "
			 "its place (then revoke the old serial as superseded)", cert);
		return -EEXIST;
	}
	return 0;
}

/*
 * cert.pem is what makes NAME taken (output_paths), so it is written last:
 * a failure before it leaves the name free, and for a new name the files
 * this run wrote are removed again, so a retry needs no --replace.
 */
static int write_leaf(const char *dir, const struct pki_hierarchy *h, X509 *leaf, EVP_PKEY *key,
		      bool replace, char *path, size_t cap)
{
	static const char *const names[] = { "key.pem", "chain.pem", "cert.pem" };
	X509 *chain[PKI_MAX_TIERS];
	size_t n = 0, done = 0;
	int rc;

	chain[n++] = leaf;
	for (size_t i = h->n - 1; i > 0; i--)
		chain[n++] = h->tier[i].cert;
	GUARD(fs_path(path, cap, "%s", dir));
	GUARD(fs_mkdir_p(path, 0755));
	for (; done < ARRAY_SIZE(names); done++) {
		GUARD_GOTO(fs_path(path, cap, "%s/%s", dir, names[done]), rc, fail);
		rc = done == 0 ? pki_key_save(path, key, NULL)
		     : done == 1 ? pki_certs_save(path, chain, n) : pki_certs_save(path, &leaf, 1);
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	for (size_t i = 0; !replace && i < done; i++) {
		char written[PKI_PATH_MAX];
		if (fs_path(written, sizeof(written), "%s/%s", dir, names[i]) == 0)
			(void)unlink(written);
	}
	return rc;
}

static int build_leaf(const struct pki_issue_opts *o, struct pki_hierarchy *h, EVP_PKEY **key,
		      X509 **leaf, struct pki_serial *serial, char *err, size_t errlen)
{
	struct pki_tier *ca = &h->tier[h->n - 1];
	char org[128];
	pki_ca_org(h, org, sizeof(org));
	struct pki_cert_profile p = {
		.kind = o->test_ca_leaf ? PKI_PROFILE_CA : o->kind,
		.pathlen = 0,
		.cn = o->name,
		.org = *org ? org : NULL,
		.dns = o->dns, .ip = o->ip, .uri = o->uri,
		.eku = o->test_eku,
	};
	GUARD(set_validity(&p, o, ca->cert, err, errlen));
	GUARD(fresh_serial(o, &ca->idx, &p.serial, err, errlen));
	if (pki_key_generate(o->key, key) < 0) {
		snprintf(err, errlen, "cannot generate a %s key", pki_key_type_name(o->key));
		return -EIO;
	}
	GUARD(pki_cert_build(&p, *key, ca->cert, ca->key, leaf, err, errlen));
	*serial = p.serial;
	return 0;
}

static int record_leaf(struct pki_hierarchy *h, X509 *leaf, const struct pki_serial *serial,
		       char *err, size_t errlen)
{
	struct pki_tier *ca = &h->tier[h->n - 1];
	char subject[PKI_INDEX_SUBJECT_MAX], path[PKI_PATH_MAX];
	time_t not_after = 0;
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1)
		not_after = timegm(&tm);
	cert_name_desc(X509_get_subject_name(leaf), subject, sizeof(subject));
	GUARD(pki_index_add(&ca->idx, serial, not_after, subject));
	GUARD(pki_tier_path(h, h->n - 1, "index.txt", path, sizeof(path)));
	int rc = pki_index_save(path, &ca->idx);
	if (rc < 0)
		snprintf(err, errlen, "%s: cannot write: %s (nothing was issued)", path, strerror(-rc));
	return rc;
}

/* A CA revoked by its parent must not sign anything more. */
static int check_issuer_not_revoked(const struct pki_hierarchy *h, char *err, size_t errlen)
{
	struct pki_serial s;
	for (size_t i = 1; i < h->n; i++) {
		GUARD(pki_serial_from_asn1(X509_get0_serialNumber(h->tier[i].cert), &s));
		const struct pki_record *r = pki_index_find(&h->tier[i - 1].idx, &s);
		if (r && r->state == PKI_CERT_REVOKED) {
			snprintf(err, errlen, "%s: the %s CA is revoked (%s); nothing it signs would "
				 "be trusted: create a new hierarchy", h->dir, h->tier[i].name,
				 pki_reason_name(r->reason));
			return -EKEYREVOKED;
		}
	}
	return 0;
}

int pki_issue_run(const struct pki_issue_opts *o, struct pki_serial *serial, char *err,
		  size_t errlen)
{
	struct pki_hierarchy h;
	char out_dir[PKI_PATH_MAX], path[PKI_PATH_MAX];
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	int rc;

	GUARD_GOTO(pki_ca_open(o->dir, &h, err, errlen), rc, out);
	GUARD_GOTO(check_issuer_not_revoked(&h, err, errlen), rc, out);
	GUARD_GOTO(pki_ca_load_key(&h, h.n - 1, NULL, err, errlen), rc, out);
	GUARD_GOTO(output_paths(o, out_dir, sizeof(out_dir), err, errlen), rc, out);
	GUARD_GOTO(build_leaf(o, &h, &key, &leaf, serial, err, errlen), rc, out);
	GUARD_GOTO(record_leaf(&h, leaf, serial, err, errlen), rc, out);
	rc = write_leaf(out_dir, &h, leaf, key, o->replace, path, sizeof(path));
	if (rc < 0) {
		char hex[PKI_SERIAL_HEX_MAX + 1];
		pki_serial_format(serial, hex, sizeof(hex));
		snprintf(err, errlen, "%s: cannot write: %s; %s; serial %s is recorded as issued: "
			 "revoke it with mtlsctl pki revoke %s --reason superseded", path, strerror(-rc),
			 o->replace ? "some files may be new, others old: issue again with --replace"
				    : "nothing was left behind, the name is free to issue again",
			 hex, hex);
	}
out:
	X509_free(leaf);
	EVP_PKEY_free(key);
	pki_ca_close(&h);
	return rc;
}
