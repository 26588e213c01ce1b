/*
 * generation-t.h: the types of a generation and its partners (generation.h
 * has the functions, and what a generation is for).
 *
 * No prototypes here, so a header that only needs these layouts does not
 * see the build and publication functions.
 */
#ifndef MTLSD_GENERATION_T_H
#define MTLSD_GENERATION_T_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "verify-t.h"

/*
 * A CRL whose issuer is not among the partner's CAs: the CRL of an issuing
 * CA that clients present in their chain (a trust package that gives the
 * root and policy CA in `ca` and the CRLs of every level). It cannot be
 * checked at load, so it is applied only to a handshake whose client sent
 * a certificate with its issuer's name whose key verifies its signature
 * (verify.c); OpenSSL then checks it against the verified chain as it
 * checks every CRL. The key that verified it is remembered, once, so later
 * handshakes with the same issuer skip that check.
 */
struct chain_crl {
	X509_CRL *crl;                   /* own reference */
	size_t file_idx;                 /* in cfg->crl_paths, and its rank there (from 1), */
	int n;                           /* for messages */
	_Atomic int key_state;           /* 0 unknown, 1 being written, 2 key_sha256 set */
	unsigned char key_sha256[32];    /* SHA-256 of the issuer key that verified it */
};

struct partner {
	unsigned idx;                 /* index in generation->partners */
	unsigned stat_slot;           /* partner_stat_slot() of its name */
	const struct cfg_partner *cfg;/* points into generation->cfg */
	X509_STORE *store;            /* this partner's anchors + CRLs, flags set */
	STACK_OF(X509) *anchors;      /* trust anchors from ca_path (refs) */
	STACK_OF(X509) *intermediates;/* non-self-signed CAs from ca_path (refs) */
	struct partner_policy policy; /* compiled allow-list + limits (verify-t.h) */
	struct chain_crl *chain_crls; /* CRLs of CAs not in ca_path (see above) */
	size_t n_chain_crls;
	STACK_OF(X509) *cas_without_crl; /* CAs of ca_path no loaded CRL is from (refs),
	                               * empty unless crl checking is on */
};

struct generation {
	atomic_uint refs;
	uint64_t id;                  /* 1, 2, 3... in order of publication */
	uint64_t trust_id;            /* digest of what verification depends on, set by
	                               * reload_build (reload.h); 0 = not computed.
	                               * Sessions are bound to it, so hosts sharing a
	                               * ticket key resume each other's sessions as
	                               * long as their trust material is identical. */
	struct mtlsd_config cfg;      /* owned; partners' cfg pointers point here */
	SSL_CTX *ssl_ctx;             /* complete, from server_ctx_build (server_ctx.c) */
	struct partner *partners;
	size_t n_partners;
};

#endif
