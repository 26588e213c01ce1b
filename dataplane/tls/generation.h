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
#include <stdint.h>

#include "config.h"
#include "generation-t.h"
#include "guard.h"
#include "verify.h"

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
