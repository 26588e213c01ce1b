/*
 * pki_trust.h: the trust package, what a partner is given to trust us.
 *
 * DIR/trust-package/ holds the root and intermediate certificates
 * (<tier>.crt), crls.pem (the current CRL of every CA, including the
 * issuing CA's, which revokes leaves) and POLICY.txt: the issuing policy and
 * the SHA-256 fingerprint of every CA, to be read out over a second channel
 * before the partner installs anything.
 */
#ifndef MTLSCTL_PKI_TRUST_H
#define MTLSCTL_PKI_TRUST_H

#include <stddef.h>

#include "guard.h"

struct pki_hierarchy;

/* Rewrite DIR/trust-package/. On error, path holds the file being written. */
int pki_trust_write(const struct pki_hierarchy *h, char *path, size_t cap) MUST_CHECK;

#endif
