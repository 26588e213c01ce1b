/*
 * pki_crl.h: signing CRLs from a CA's record.
 *
 * Each CA's CRL lists every certificate its index.txt marks revoked, with
 * the revocation date and reason, a CRL number one above the last one this
 * CA signed, and an authorityKeyIdentifier. Revoked entries are never
 * dropped, also after they expire: the lists stay small and a verifier with
 * a wrong clock still sees the revocation.
 */
#ifndef MTLSCTL_PKI_CRL_H
#define MTLSCTL_PKI_CRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "guard.h"

struct pki_hierarchy;
struct pki_tier;

/* Build and sign a CRL of tier t (key loaded) with this number. */
int pki_crl_build(const struct pki_tier *t, uint64_t number, time_t now, int next_update_days,
		  X509_CRL **out) MUST_CHECK;

/*
 * Sign a new CRL for every tier whose key is loaded (tiers without a key
 * keep their current crl.pem), then write, per tier, first index.txt with
 * the new CRL number and then crl.pem, and finally the bundles. All CRLs are
 * built before anything is written, so a failure leaves the directory as it
 * was. err names the file or the CA.
 */
int pki_crl_refresh(struct pki_hierarchy *h, int next_update_days, char *err,
		    size_t errlen) MUST_CHECK;

#endif
