/*
 * generation.h: everything reloadable, built off the hot path, published by
 * one atomic pointer swap.
 *
 * A generation owns the validated config, the server SSL_CTX (complete:
 * built in one fixed order by tls/server_ctx.c, with the ECDSA and/or RSA
 * certificate and its intermediates, never a root), and one struct
 * partner per [partner.NAME] with its own X509_STORE (CA bundle + CRLs),
 * verify policy and backend. It is refcounted: a worker takes a reference
 * for each connection at accept time, so a reload never touches an in-flight
 * handshake or an established connection; the old generation is freed when
 * its last connection is gone.
 */
#ifndef MTLSD_GENERATION_H
#define MTLSD_GENERATION_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "guard.h"
#include "verify.h"

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
	struct partner_policy policy; /* compiled allow-list + limits (verify.h) */
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
	SSL_CTX *ssl_ctx;
	struct partner *partners;
	size_t n_partners;
};

/*
 * Build a generation from a validated config. Takes ownership of *cfg (it is
 * moved into the generation and zeroed in the caller) on success and on
 * failure. Opens and checks every file: certificates parse, each key matches
 * its certificate and its file is not group/other-readable, CA bundles hold
 * at least one CA, CRLs parse; a CRL naming a CA of that partner is signed
 * by it, one naming no CA of it becomes a chain CRL (struct chain_crl).
 * On failure err gets "FILE: reason" (and the config line when known).
 */
int generation_build(struct mtlsd_config *cfg, uint64_t id, struct generation **out,
		     char *err, size_t errlen) MUST_CHECK;

struct generation *generation_ref(struct generation *g);
/* Drop a reference; frees the generation when it was the last. NULL is fine. */
void generation_unref(struct generation *g);

/*
 * The published generation. generation_publish() takes the caller's
 * reference and drops the one it held on the previous generation.
 * generation_acquire() returns a new reference to the current one (never
 * NULL once something was published). Safe from any thread.
 * generation_publish(NULL) unpublishes (at shutdown): acquire then returns
 * NULL and the id reads 0. acquire takes a small mutex: call it when the id
 * changed, not per connection.
 */
void generation_publish(struct generation *g);
struct generation *generation_acquire(void);
/* Id of the published generation, cheap (one atomic load), for workers that
 * cache a reference and refresh it only when this changes. */
uint64_t generation_current_id(void);

/*
 * Counters that outlive generations (metrics per partner) are kept by a
 * slot that belongs to a partner NAME for the life of the process, so a
 * reload that reorders, adds or removes partners never moves a count to
 * another name. partner_stat_slot() gives the name's slot (assigning the
 * next free one), CFG_MAX_PARTNERS when all are taken (counted as "-");
 * partner_stat_name() the name of a slot, NULL when unassigned.
 */
unsigned partner_stat_slot(const char *name);
const char *partner_stat_name(unsigned slot);

/*
 * Every CRL partner p loaded, the store's then the chain CRLs:
 * fn(crl, arg) for each. For readers off the hot
 * path (status, metrics, the trust digest); takes the store's lock.
 */
void partner_for_each_crl(const struct partner *p, void (*fn)(X509_CRL *crl, void *arg), void *arg);

#endif
