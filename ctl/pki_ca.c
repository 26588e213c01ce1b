/*
 * pki_ca.c: opening a hierarchy, loading CA keys, and rewriting the files
 * derived from it (chain.pem, ca-bundle.pem, crls.pem, trust-package/).
 */
#include "pki_ca.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fsutil.h"
#include "pemutil.h"
#include "pki_cert.h"
#include "pki_key.h"
#include "pki_trust.h"

void pki_tier_name(size_t i, size_t n, char *buf, size_t cap)
{
	if (i == 0)
		snprintf(buf, cap, "root");
	else if (i + 1 == n)
		snprintf(buf, cap, "issuing");
	else if (i == 1)
		snprintf(buf, cap, "intermediate");
	else
		snprintf(buf, cap, "intermediate%zu", i);
}

bool pki_tier_is_offline(const struct pki_hierarchy *h, size_t i)
{
	return i + 1 < h->n;
}

int pki_tier_path(const struct pki_hierarchy *h, size_t i, const char *file, char *buf, size_t cap)
{
	return fs_path(buf, cap, "%s/%s", h->tier[i].dir, file);
}

/* How many tiers the directory holds: root, intermediates..., issuing. */
static int count_tiers(const char *dir, size_t *n)
{
	char path[PKI_PATH_MAX], name[32];
	GUARD(fs_path(path, sizeof(path), "%s/root/ca.crt", dir));
	ENSURE(fs_exists(path), ENOENT);
	GUARD(fs_path(path, sizeof(path), "%s/issuing/ca.crt", dir));
	ENSURE(fs_exists(path), ENOENT);
	size_t tiers = 2;
	for (size_t i = 1; i + 1 < PKI_MAX_TIERS; i++) {
		pki_tier_name(i, PKI_MAX_TIERS, name, sizeof(name));
		GUARD(fs_path(path, sizeof(path), "%s/%s/ca.crt", dir, name));
		if (!fs_exists(path))
			break;
		tiers++;
	}
	*n = tiers;
	return 0;
}

static int open_tier(struct pki_hierarchy *h, size_t i, char *err, size_t errlen)
{
	struct pki_tier *t = &h->tier[i];
	char path[PKI_PATH_MAX], why[512];
	STACK_OF(X509) *certs = NULL;

	pki_tier_name(i, h->n, t->name, sizeof(t->name));
	GUARD(fs_path(t->dir, sizeof(t->dir), "%s/%s", h->dir, t->name));
	GUARD(pki_tier_path(h, i, "ca.crt", path, sizeof(path)));
	int rc = pem_load_certs(path, &certs, why, sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return rc;
	}
	t->cert = sk_X509_shift(certs);
	sk_X509_pop_free(certs, X509_free);
	GUARD(pki_tier_path(h, i, "index.txt", path, sizeof(path)));
	rc = pki_index_load(path, &t->idx, why, sizeof(why));
	if (rc < 0)
		snprintf(err, errlen, "%s: %s; restore it from your backup (mtlsctl never "
			 "rewrites a damaged record)", path, why);
	return rc;
}

/* Lock the directory itself: no lock file to create, so a refused command
 * still writes nothing. */
static int lock_dir(struct pki_hierarchy *h, char *err, size_t errlen)
{
	int fd = open(h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			snprintf(err, errlen, "%s: another mtlsctl is working on this CA; "
				 "try again when it has finished", h->dir);
		return -e;
	}
	h->lock_fd = fd;
	h->locked = true;
	return 0;
}

int pki_ca_open(const char *dir, struct pki_hierarchy *h, char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	err[0] = '\0';
	GUARD(fs_path(h->dir, sizeof(h->dir), "%s", dir));
	int rc = count_tiers(dir, &h->n);
	if (rc == 0)
		rc = lock_dir(h, err, errlen);
	if (rc < 0) {
		if (!*err)
			snprintf(err, errlen, "%s: no CA hierarchy here (expected root/ca.crt and "
				 "issuing/ca.crt): give --dir, set MTLS_PKI_DIR, or run mtlsctl pki "
				 "init", dir);
		return rc;
	}
	for (size_t i = 0; i < h->n; i++)
		GUARD(open_tier(h, i, err, errlen));
	return 0;
}

void pki_ca_close(struct pki_hierarchy *h)
{
	for (size_t i = 0; i < PKI_MAX_TIERS; i++) {
		X509_free(h->tier[i].cert);
		EVP_PKEY_free(h->tier[i].key);
		pki_index_free(&h->tier[i].idx);
	}
	if (h->locked)
		close(h->lock_fd); /* releases the flock */
	memset(h, 0, sizeof(*h));
}

int pki_ca_load_key(struct pki_hierarchy *h, size_t i, const char *pass, char *err, size_t errlen)
{
	char path[PKI_PATH_MAX], why[256];
	struct pki_tier *t = &h->tier[i];
	GUARD(pki_tier_path(h, i, "ca.key", path, sizeof(path)));
	int rc = pki_key_load(path, pki_tier_is_offline(h, i) ? pass : NULL, &t->key,
			      why, sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return rc;
	}
	if (X509_check_private_key(t->cert, t->key) != 1) {
		snprintf(err, errlen, "%s: the key does not match %s/ca.crt", path, t->dir);
		return -EINVAL;
	}
	return 0;
}

static int concat_crls(const struct pki_hierarchy *h, const char *out_path)
{
	char path[PKI_PATH_MAX];
	char *all = NULL;
	size_t all_len = 0;
	FILE *f = open_memstream(&all, &all_len);
	ENSURE_PTR(f, ENOMEM);
	int rc = 0;
	for (size_t i = 0; i < h->n; i++) {
		char *text = NULL;
		size_t len = 0;
		GUARD_GOTO(pki_tier_path(h, i, "crl.pem", path, sizeof(path)), rc, out);
		GUARD_GOTO(fs_read_all(path, 64u << 20, &text, &len), rc, out);
		fwrite(text, 1, len, f);
		free(text);
	}
out:
	if (fclose(f) != 0 && rc == 0)
		rc = -ENOMEM;
	if (rc == 0)
		rc = fs_write_atomic(out_path, all, all_len, 0644);
	free(all);
	return rc;
}

static int write_chains(const struct pki_hierarchy *h, char *path, size_t cap)
{
	X509 *certs[PKI_MAX_TIERS];
	/* chain.pem: issuing first, up to but excluding the root. */
	for (size_t i = 0; i + 1 < h->n; i++)
		certs[i] = h->tier[h->n - 1 - i].cert;
	GUARD(fs_path(path, cap, "%s/chain.pem", h->dir));
	GUARD(pki_certs_save(path, certs, h->n - 1));
	for (size_t i = 0; i < h->n; i++)
		certs[i] = h->tier[i].cert;
	GUARD(fs_path(path, cap, "%s/ca-bundle.pem", h->dir));
	GUARD(pki_certs_save(path, certs, h->n));
	GUARD(fs_path(path, cap, "%s/crls.pem", h->dir));
	return concat_crls(h, path);
}

int pki_ca_write_bundles(const struct pki_hierarchy *h, char *err, size_t errlen)
{
	char path[PKI_PATH_MAX] = "";
	int rc = write_chains(h, path, sizeof(path));
	if (rc == 0)
		rc = pki_trust_write(h, path, sizeof(path));
	if (rc < 0)
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
	return rc;
}

void pki_ca_org(const struct pki_hierarchy *h, char *buf, size_t cap)
{
	buf[0] = '\0';
	X509_NAME *name = X509_get_subject_name(h->tier[h->n - 1].cert);
	int idx = X509_NAME_get_index_by_NID(name, NID_organizationName, -1);
	if (idx < 0)
		return;
	ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	snprintf(buf, cap, "%.*s", ASN1_STRING_length(v), (const char *)ASN1_STRING_get0_data(v));
}
