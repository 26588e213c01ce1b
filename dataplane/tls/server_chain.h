/*
 * server_chain.h: is the chain mtlsd presents complete?
 *
 * A `cert` file should hold the server certificate and every intermediate
 * up to (not necessarily including) a root the clients trust. A file that
 * lacks an intermediate passes every other check: the key matches, the
 * leaf is a server certificate; only the partners' clients fail, with
 * "unable to get local issuer certificate". server_chain_check() walks the
 * chain from the leaf through the file, and looks the last issuer up among
 * the CAs mtlsd knows besides: the partners' CA bundles and the host's
 * trust store. It never refuses anything; the build logs its finding.
 */
#ifndef MTLSD_SERVER_CHAIN_H
#define MTLSD_SERVER_CHAIN_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * certs: the file's certificates, leaf first. known: other CA certificates
 * (may be NULL). roots: a store to look issuers up in, e.g. the system's
 * (may be NULL). Returns true when the chain reaches a self-signed
 * certificate (in the file, in known or in roots); else false, with why
 * naming the certificate where it stops and the issuer that is missing
 * ("... 'CN=x' is issued by 'CN=y', which is not in the file (found in
 * ...)" or "... which mtlsd cannot find ..."), without the file name.
 */
bool server_chain_check(STACK_OF(X509) *certs, STACK_OF(X509) *known, X509_STORE *roots,
			char *why, size_t len);

#endif
