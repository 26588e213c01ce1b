/*
 * pki_ca.h: a CA hierarchy on disk, as `pki init` lays it out.
 *
 *   DIR/root/          ca.crt ca.key(encrypted) index.txt crl.pem
 *   DIR/intermediate/  ca.crt ca.key(encrypted) index.txt crl.pem
 *   DIR/issuing/       ca.crt ca.key(plain, online) index.txt crl.pem
 *   DIR/chain.pem      issuing + intermediate: what a leaf presents after itself
 *   DIR/ca-bundle.pem  root + intermediate + issuing: what a verifier trusts
 *   DIR/crls.pem       the current CRL of every CA
 *   DIR/trust-package/ what a partner is given (pki_ca_write_trust_package)
 *   DIR/issued/NAME/   cert.pem key.pem chain.pem from `pki issue`
 *
 * Tiers are ordered root first, issuing last; test hierarchies may have
 * more intermediates (intermediate2, ...) between them.
 */
#ifndef MTLSCTL_PKI_CA_H
#define MTLSCTL_PKI_CA_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "guard.h"
#include "pki_index.h"

#define PKI_MAX_TIERS 6
#define PKI_PATH_MAX 1024

struct pki_tier {
	char name[32];            /* "root", "intermediate", "issuing" */
	char dir[PKI_PATH_MAX];   /* DIR/name */
	X509 *cert;
	EVP_PKEY *key;            /* NULL until pki_ca_load_key */
	struct pki_index idx;
};

struct pki_hierarchy {
	char dir[PKI_PATH_MAX];
	struct pki_tier tier[PKI_MAX_TIERS];
	size_t n;
	bool locked;
	int lock_fd;              /* DIR itself, flock'ed while open */
};

/* Directory name of tier i of n ("root", "intermediate", "intermediate2", "issuing"). */
void pki_tier_name(size_t i, size_t n, char *buf, size_t cap);

/* True for tiers whose key is kept encrypted (all but issuing). */
bool pki_tier_is_offline(const struct pki_hierarchy *h, size_t i);

/*
 * Open the hierarchy in dir: every tier's certificate and index. Keys are
 * not loaded. The directory stays locked (flock) until pki_ca_close, so two
 * mtlsctl runs never interleave their read-modify-write of a record;
 * -EWOULDBLOCK if another one holds it. Errors name the file in err
 * ("DIR/issuing/index.txt: line 3: ..."). pki_ca_close releases everything
 * and accepts a zeroed struct.
 */
int pki_ca_open(const char *dir, struct pki_hierarchy *h, char *err, size_t errlen) MUST_CHECK;
void pki_ca_close(struct pki_hierarchy *h);

/* Load tier i's key (pass for offline tiers, ignored otherwise). */
int pki_ca_load_key(struct pki_hierarchy *h, size_t i, const char *pass,
		    char *err, size_t errlen) MUST_CHECK;

/* "DIR/<tier>/<file>" into buf. */
int pki_tier_path(const struct pki_hierarchy *h, size_t i, const char *file,
		  char *buf, size_t cap) MUST_CHECK;

/*
 * Rewrite what is derived from the tiers: chain.pem, ca-bundle.pem,
 * crls.pem (from each tier's crl.pem) and trust-package/. err names the file
 * that could not be written.
 */
int pki_ca_write_bundles(const struct pki_hierarchy *h, char *err, size_t errlen) MUST_CHECK;

/* The subject O of the issuing CA: the name leaves are issued under. */
void pki_ca_org(const struct pki_hierarchy *h, char *buf, size_t cap);

#endif
