/*
 * generation.c: build, publish and retire the reloadable state of mtlsd.
 *
 * A generation is made once, off the hot path, from a validated config:
 * per partner, an X509_STORE holding exactly that partner's CAs and CRLs
 * with the verification flags verify.c relies on, and then the server
 * SSL_CTX, which server_ctx.c builds on top of them. Every file is opened
 * during the build, so every file error is reported there, naming the
 * config line that named the file.
 *
 * Publication is a pointer guarded by a mutex that is held only to swap the
 * pointer or to take a reference: acquire-then-ref can never race with the
 * last unref of the generation being replaced, which a bare atomic pointer
 * cannot promise. Workers do not take the lock per connection: they cache a
 * reference and compare generation_current_id() (one atomic load) on accept.
 */
#include "generation.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cert_name.h"
#include "crypto_accel.h"
#include "generation_internal.h"
#include "log.h"
#include "pemutil.h"
#include "server_chain.h"

static const char *flag_of_key(const char *key)
{
	return strcmp(key, "ca") == 0 ? "client-ca" : key;
}

/*
 * Report a problem with a file: "mtlsd.conf:7: cert /x/y.pem: reason" when
 * the file came from the config file, "--cert /x/y.pem: reason" when it
 * came from a flag. Returns rc.
 */
int build_file_fail(struct build *b, int rc, int line, const char *key, const char *file,
		     const char *fmt, ...)
{
	const char *cfg_path = b->g->cfg.path;
	int off;

	if (cfg_path && line > 0)
		off = snprintf(b->err, b->errlen, "%s:%d: %s %s: ", cfg_path, line, key, file);
	else
		off = snprintf(b->err, b->errlen, "--%s %s: ", flag_of_key(key), file);
	if (off < 0 || (size_t)off >= b->errlen)
		off = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->err + off, b->errlen - (size_t)off, fmt, ap);
	va_end(ap);
	return rc;
}

/* Report a problem with a partner as a whole, at its section header. */
__attribute__((format(printf, 4, 5)))
static int partner_fail(struct build *b, int rc, const struct cfg_partner *cp, const char *fmt, ...)
{
	const char *cfg_path = b->g->cfg.path;
	int off;

	if (cfg_path && cp->line > 0)
		off = snprintf(b->err, b->errlen, "%s:%d: [partner.%s]: ", cfg_path, cp->line, cp->name);
	else
		off = snprintf(b->err, b->errlen, "partner '%s': ", cp->name);
	if (off < 0 || (size_t)off >= b->errlen)
		off = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->err + off, b->errlen - (size_t)off, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- partners: CA bundle, CRLs, store ----------------------------------- */

static int stack_push_ref(STACK_OF(X509) *sk, X509 *x)
{
	ENSURE(sk_X509_push(sk, x) > 0, ENOMEM);
	X509_up_ref(x);
	return 0;
}

/*
 * Sort the bundle into anchors (self-signed) and intermediates, put both in
 * the store (OpenSSL only anchors a chain at a self-signed certificate, so
 * the intermediates there only help clients that do not send them).
 */
static int load_partner_cas(struct build *b, struct partner *p)
{
	const struct cfg_partner *cp = p->cfg;
	STACK_OF(X509) *certs = NULL;
	char why[512], name[256];
	int rc;

	rc = pem_load_certs(cp->ca_path, &certs, why, sizeof(why));
	if (rc < 0)
		return build_file_fail(b, rc, cp->ca_line, "ca", cp->ca_path, "%s", why);
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		if (X509_check_ca(x) == 0) {
			rc = build_file_fail(b, -EINVAL, cp->ca_line, "ca", cp->ca_path, "certificate #%d ('%s') is "
				       "not a CA; a CA bundle holds the partner's CA certificates only",
				       i + 1, subject_of(x, name, sizeof(name)));
			goto out;
		}
		if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
			log_warn("%s: CA '%s' has expired; clients of partner '%s' under it will be refused",
				 cp->ca_path, subject_of(x, name, sizeof(name)), cp->name);
		bool anchor = x509_is_self_signed(x);
		GUARD_GOTO(stack_push_ref(anchor ? p->anchors : p->intermediates, x), rc, out);
		ENSURE_GOTO(X509_STORE_add_cert(p->store, x) == 1, rc, ENOMEM, out);
	}
	if (sk_X509_num(p->anchors) == 0)
		rc = build_file_fail(b, -EINVAL, cp->ca_line, "ca", cp->ca_path, "no self-signed root CA in the "
			       "bundle; add the partner's root CA (its intermediates may follow)");
out:
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

/* The CA of this partner that signed crl, or NULL. */
static X509 *crl_issuer_in(STACK_OF(X509) *cas, X509_CRL *crl)
{
	for (int i = 0; i < sk_X509_num(cas); i++) {
		X509 *ca = sk_X509_value(cas, i);
		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) == 0 &&
		    X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1)
			return ca;
	}
	ERR_clear_error();
	return NULL;
}

static bool name_is_ca_of(const struct partner *p, const X509_NAME *name)
{
	STACK_OF(X509) *sets[] = { p->anchors, p->intermediates };

	for (size_t s = 0; s < ARRAY_SIZE(sets); s++)
		for (int i = 0; i < sk_X509_num(sets[s]); i++)
			if (X509_NAME_cmp(X509_get_subject_name(sk_X509_value(sets[s], i)), name) == 0)
				return true;
	return false;
}

static int add_chain_crl(struct partner *p, X509_CRL *crl, size_t file_idx, int n)
{
	struct chain_crl *v = realloc(p->chain_crls, (p->n_chain_crls + 1) * sizeof(*v));

	ENSURE_PTR(v, ENOMEM);
	p->chain_crls = v;
	v = &p->chain_crls[p->n_chain_crls++];
	memset(v, 0, sizeof(*v));
	atomic_init(&v->key_state, 0);
	X509_CRL_up_ref(crl);
	v->crl = crl;
	v->file_idx = file_idx;
	v->n = n;
	return 0;
}

/*
 * A CRL signed by one of the partner's CAs goes into its store. One that
 * names a CA of the partner but is not signed by it is refused (forged, or
 * the CA was re-keyed and its new certificate is missing from ca). One
 * that names no CA of the partner is the CRL of a CA below them, which
 * clients present: kept as a chain CRL (generation.h).
 */
static int add_partner_crl(struct build *b, struct partner *p, size_t file_idx, int n, X509_CRL *crl)
{
	const struct cfg_partner *cp = p->cfg;
	const char *path = cp->crl_paths.v[file_idx];
	int line = cp->crl_paths.lines ? cp->crl_paths.lines[file_idx] : 0;
	char issuer[256];
	bool chain = false;

	cert_name_format(X509_CRL_get_issuer(crl), issuer, sizeof(issuer));
	if (!crl_issuer_in(p->anchors, crl) && !crl_issuer_in(p->intermediates, crl)) {
		if (name_is_ca_of(p, X509_CRL_get_issuer(crl)))
			return build_file_fail(b, -EINVAL, line, "crl", path, "CRL #%d names CA '%s' of partner '%s' "
					 "(%s) but is not signed by its key; give that CA's own CRL, or add its "
					 "current certificate to ca if it was re-keyed", n, issuer, cp->name,
					 cp->ca_path);
		chain = true;
	}
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	if (next && X509_cmp_current_time(next) < 0)
		log_warn("%s: CRL #%d of '%s' is past its nextUpdate; with crl_expired = %s clients under "
			 "this CA are %s until it is refreshed", path, n, issuer,
			 cp->crl_expired == CRL_POLICY_FAIL ? "fail" : "allow",
			 cp->crl_expired == CRL_POLICY_FAIL ? "refused" : "accepted");
	if (!chain) {
		ENSURE(X509_STORE_add_crl(p->store, crl) == 1, ENOMEM);
		return 0;
	}
	log_info("%s: CRL #%d of '%s', a CA not in %s: it applies to clients that present that CA "
		 "in their chain, checked against the certificate they present", path, n, issuer,
		 cp->ca_path);
	return add_chain_crl(p, crl, file_idx, n);
}

/* CRL_CHECK_ALL checks every CA of the chain, the root included: note
 * which CAs have no CRL (reload refuses that with crl_missing = fail,
 * reload.c) and say so before the first client finds out. */
static int find_cas_without_crl(struct partner *p, STACK_OF(X509_CRL) *all)
{
	STACK_OF(X509) *sets[] = { p->anchors, p->intermediates };
	char name[256];

	for (size_t s = 0; s < ARRAY_SIZE(sets); s++) {
		for (int i = 0; i < sk_X509_num(sets[s]); i++) {
			X509 *ca = sk_X509_value(sets[s], i);
			bool found = false;
			for (int j = 0; j < sk_X509_CRL_num(all) && !found; j++)
				found = X509_NAME_cmp(X509_CRL_get_issuer(sk_X509_CRL_value(all, j)),
						      X509_get_subject_name(ca)) == 0;
			if (found)
				continue;
			GUARD(stack_push_ref(p->cas_without_crl, ca));
			log_warn("partner '%s': no CRL for CA '%s'; with crl_missing = %s its clients are %s",
				 p->cfg->name, subject_of(ca, name, sizeof(name)),
				 p->cfg->crl_missing == CRL_POLICY_FAIL ? "fail" : "allow",
				 p->cfg->crl_missing == CRL_POLICY_FAIL ? "refused" : "accepted");
		}
	}
	return 0;
}

static int load_partner_crls(struct build *b, struct partner *p)
{
	const struct cfg_partner *cp = p->cfg;
	STACK_OF(X509_CRL) *all = NULL;
	char why[512];
	int rc = 0;

	if (cp->crl_paths.n == 0)
		return 0; /* no CRL checking for this partner */
	all = sk_X509_CRL_new_null();
	ENSURE_PTR(all, ENOMEM);
	for (size_t f = 0; f < cp->crl_paths.n; f++) {
		STACK_OF(X509_CRL) *crls = NULL;
		int line = cp->crl_paths.lines ? cp->crl_paths.lines[f] : 0;
		rc = pem_load_crls(cp->crl_paths.v[f], &crls, why, sizeof(why));
		if (rc < 0) {
			build_file_fail(b, rc, line, "crl", cp->crl_paths.v[f], "%s", why);
			break;
		}
		for (int i = 0; i < sk_X509_CRL_num(crls) && rc == 0; i++) {
			X509_CRL *crl = sk_X509_CRL_value(crls, i);
			rc = add_partner_crl(b, p, f, i + 1, crl);
			if (rc == 0 && sk_X509_CRL_push(all, crl) > 0)
				X509_CRL_up_ref(crl);
		}
		sk_X509_CRL_pop_free(crls, X509_CRL_free);
		if (rc < 0)
			break;
	}
	if (rc == 0)
		rc = find_cas_without_crl(p, all);
	sk_X509_CRL_pop_free(all, X509_CRL_free);
	return rc;
}

/*
 * Verification parameters. verify_depth counts the trust anchor (leaf = 0,
 * Root->Intermediate->Issuing->leaf is 3); OpenSSL's depth counts only the
 * intermediates between leaf and anchor, hence the -1.
 */
static int partner_store_params(struct partner *p)
{
	unsigned long flags = X509_V_FLAG_X509_STRICT;

	if (p->cfg->crl_paths.n > 0)
		flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
	GUARD_OSSL(X509_STORE_set_flags(p->store, flags), ENOMEM);
	GUARD_OSSL(X509_STORE_set_purpose(p->store, X509_PURPOSE_SSL_CLIENT), EINVAL);
	GUARD_OSSL(X509_STORE_set_depth(p->store, (int)p->cfg->verify_depth - 1), EINVAL);
	return 0;
}

/*
 * partner_policy_compile() names the bad pattern but cannot know its line:
 * compile each allow-list entry alone to find it. Returns 0 if not found.
 */
static int policy_error_line(const struct cfg_partner *cp)
{
	const struct cfg_strlist *lists[] = { &cp->allow_dns, &cp->allow_uri, &cp->allow_cn, &cp->allow_ou };

	for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
		for (size_t i = 0; i < lists[l]->n && lists[l]->lines; i++) {
			struct cfg_partner one = { .name = cp->name };
			struct cfg_strlist *slots[] = { &one.allow_dns, &one.allow_uri, &one.allow_cn, &one.allow_ou };
			struct partner_policy policy;
			char why[256];

			*slots[l] = (struct cfg_strlist){ .v = &lists[l]->v[i], .lines = &lists[l]->lines[i], .n = 1 };
			if (partner_policy_compile(&one, &policy, why, sizeof(why)) < 0)
				return lists[l]->lines[i];
			partner_policy_free(&policy);
		}
	}
	return 0;
}

static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static char *slot_names[CFG_MAX_PARTNERS];
static _Atomic unsigned n_slots;

unsigned partner_stat_slot(const char *name)
{
	unsigned n, i;

	pthread_mutex_lock(&slot_lock);
	n = atomic_load(&n_slots);
	for (i = 0; i < n && strcmp(slot_names[i], name) != 0; i++)
		;
	if (i == n && n < CFG_MAX_PARTNERS && (slot_names[n] = strdup(name)) != NULL)
		atomic_store(&n_slots, n + 1); /* published after the name */
	else if (i == n)
		i = CFG_MAX_PARTNERS;
	pthread_mutex_unlock(&slot_lock);
	return i;
}

const char *partner_stat_name(unsigned slot)
{
	/* Slots below n_slots are written once, before n_slots moved. */
	return slot < atomic_load(&n_slots) ? slot_names[slot] : NULL;
}

static int build_partner(struct build *b, size_t idx)
{
	struct partner *p = &b->g->partners[idx];
	char why[512];

	p->idx = (unsigned)idx;
	p->cfg = &b->g->cfg.partners[idx];
	p->stat_slot = partner_stat_slot(p->cfg->name);
	p->store = X509_STORE_new();
	p->anchors = sk_X509_new_null();
	p->intermediates = sk_X509_new_null();
	p->cas_without_crl = sk_X509_new_null();
	ENSURE(p->store && p->anchors && p->intermediates && p->cas_without_crl, ENOMEM);
	GUARD(partner_store_params(p));
	GUARD(load_partner_cas(b, p));
	GUARD(load_partner_crls(b, p));
	why[0] = '\0';
	int rc = partner_policy_compile(p->cfg, &p->policy, why, sizeof(why));
	if (rc == 0)
		return 0;
	int line = rc == -EINVAL && b->g->cfg.path ? policy_error_line(p->cfg) : 0;
	if (line > 0) {
		snprintf(b->err, b->errlen, "%s:%d: %s", b->g->cfg.path, line, why);
		return rc;
	}
	return partner_fail(b, rc, p->cfg, "%s", why[0] ? why : strerror(-rc));
}

static bool same_ca(X509 *a, X509 *b)
{
	/* Same name and key is the same CA even if re-issued with new dates
	 * or cross-signed: OpenSSL builds the same chains through either. */
	return X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(b)) == 0 &&
	       EVP_PKEY_eq(X509_get0_pubkey(a), X509_get0_pubkey(b)) == 1;
}

/* The CA of q with x's name and key, or NULL; *anchor says if it is one. */
static X509 *find_same_ca(const struct partner *q, X509 *x, bool *anchor)
{
	STACK_OF(X509) *sets[] = { q->anchors, q->intermediates };

	for (size_t s = 0; s < ARRAY_SIZE(sets); s++) {
		for (int i = 0; i < sk_X509_num(sets[s]); i++) {
			if (same_ca(x, sk_X509_value(sets[s], i))) {
				*anchor = s == 0;
				return sk_X509_value(sets[s], i);
			}
		}
	}
	return NULL;
}

/* The first CA of p that q also has, reported at p's ca line. */
static int check_partner_pair(struct build *b, const struct partner *p, const struct partner *q)
{
	STACK_OF(X509) *sets[] = { p->anchors, p->intermediates };
	char name[256];
	bool anchor_there;

	for (size_t s = 0; s < ARRAY_SIZE(sets); s++) {
		for (int k = 0; k < sk_X509_num(sets[s]); k++) {
			X509 *x = sk_X509_value(sets[s], k);
			if (!find_same_ca(q, x, &anchor_there))
				continue;
			return build_file_fail(b, -EINVAL, p->cfg->ca_line, "ca", p->cfg->ca_path,
					 "%s '%s' is also a %s of partner '%s' (%s); a connection must be "
					 "attributable to exactly one partner: give each partner its own CA",
					 s == 0 ? "trust anchor" : "CA", subject_of(x, name, sizeof(name)),
					 anchor_there ? "trust anchor" : "CA", q->cfg->name, q->cfg->ca_path);
		}
	}
	return 0;
}

/*
 * A connection must be attributable to exactly one partner, so no CA may
 * belong to two partners: not a root, and not an intermediate either (a
 * cross-signed copy of one partner's root in another's bundle would let
 * the same client chain verify under both).
 */
static int check_shared_cas(struct build *b)
{
	const struct generation *g = b->g;

	for (size_t i = 1; i < g->n_partners; i++)
		for (size_t j = 0; j < i; j++)
			GUARD(check_partner_pair(b, &g->partners[i], &g->partners[j]));
	return 0;
}

void partner_for_each_crl(const struct partner *p, void (*fn)(X509_CRL *crl, void *arg), void *arg)
{
	/* The store is shared with handshakes that may add to its cache. */
	if (X509_STORE_lock(p->store)) {
		STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(p->store);
		for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
			X509_CRL *crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objs, i));
			if (crl)
				fn(crl, arg);
		}
		X509_STORE_unlock(p->store);
	}
	for (size_t i = 0; i < p->n_chain_crls; i++)
		fn(p->chain_crls[i].crl, arg);
}

/*
 * A chain CRL signed by a CA of another partner is a mix-up (the CRL file
 * of one partner given to another): it would revoke nothing where it is,
 * and what it revokes would stay admitted. Refused at the crl line.
 */
static int check_chain_crls_foreign(struct build *b)
{
	const struct generation *g = b->g;
	char issuer[256];

	for (size_t i = 0; i < g->n_partners; i++) {
		const struct partner *p = &g->partners[i];
		const struct cfg_strlist *files = &p->cfg->crl_paths;

		for (size_t k = 0; k < p->n_chain_crls; k++) {
			const struct chain_crl *c = &p->chain_crls[k];

			for (size_t j = 0; j < g->n_partners; j++) {
				const struct partner *q = &g->partners[j];

				if (j == i || (!crl_issuer_in(q->anchors, c->crl) &&
					       !crl_issuer_in(q->intermediates, c->crl)))
					continue;
				cert_name_format(X509_CRL_get_issuer(c->crl), issuer, sizeof(issuer));
				return build_file_fail(b, -EINVAL, files->lines ? files->lines[c->file_idx] : 0, "crl",
						 files->v[c->file_idx], "CRL #%d (issuer '%s') is signed by a CA "
						 "of partner '%s', not of partner '%s'; give each partner its own "
						 "CRLs", c->n, issuer, q->cfg->name, p->cfg->name);
			}
		}
	}
	return 0;
}

/* ---- the presented chain, once every CA is known ------------------------ */

/*
 * A cert file without an intermediate loads fine and fails only on the
 * clients' side: warn, naming the file and the missing issuer
 * (server_chain.h). The partners' CAs count as known (a server PKI is
 * often a partner's too); the system trust store is read only when they
 * do not settle it.
 */
static void warn_incomplete_server_chains(const struct generation *g)
{
	STACK_OF(X509) *known = sk_X509_new_null();
	char why[1024];

	for (size_t i = 0; known && i < g->n_partners; i++) {
		STACK_OF(X509) *sets[] = { g->partners[i].anchors, g->partners[i].intermediates };
		for (size_t s = 0; s < ARRAY_SIZE(sets); s++)
			for (int k = 0; k < sk_X509_num(sets[s]); k++)
				(void)sk_X509_push(known, sk_X509_value(sets[s], k)); /* borrowed */
	}
	for (size_t i = 0; i < g->cfg.n_certs; i++) {
		const char *path = g->cfg.certs[i].cert_path;
		STACK_OF(X509) *certs = NULL;

		if (pem_load_certs(path, &certs, why, sizeof(why)) < 0)
			continue; /* it loaded a moment ago; a race with an editor */
		bool complete = server_chain_check(certs, known, NULL, why, sizeof(why));
		if (!complete) {
			X509_STORE *roots = X509_STORE_new();
			if (roots && X509_STORE_set_default_paths(roots) == 1)
				complete = server_chain_check(certs, known, roots, why, sizeof(why));
			X509_STORE_free(roots);
			ERR_clear_error();
		}
		if (!complete)
			log_warn("%s: %s", path, why);
		sk_X509_pop_free(certs, X509_free);
	}
	sk_X509_free(known);
}

/* ---- the build, and lifetime -------------------------------------------- */

/* Providers and the engine exist before the first certificate, key or
 * context is loaded (a no-op after the first build: they live as long as
 * the process). */
static int apply_crypto_accel(struct build *b)
{
	const struct mtlsd_config *cfg = &b->g->cfg;
	char why[512];
	int rc = crypto_accel_apply(cfg, why, sizeof(why));

	if (rc < 0)
		snprintf(b->err, b->errlen, "%s%s%s", cfg->path ? cfg->path : "", cfg->path ? ": " : "", why);
	return rc;
}

static void generation_free(struct generation *g)
{
	if (!g)
		return;
	/* The SSL_CTX first: verify.c's callbacks may point at the partners. */
	SSL_CTX_free(g->ssl_ctx);
	for (size_t i = 0; i < g->n_partners; i++) {
		struct partner *p = &g->partners[i];
		if (p->cfg)
			partner_policy_free(&p->policy);
		X509_STORE_free(p->store);
		sk_X509_pop_free(p->anchors, X509_free);
		sk_X509_pop_free(p->intermediates, X509_free);
		sk_X509_pop_free(p->cas_without_crl, X509_free);
		for (size_t k = 0; k < p->n_chain_crls; k++)
			X509_CRL_free(p->chain_crls[k].crl);
		free(p->chain_crls);
	}
	free(g->partners);
	config_free(&g->cfg);
	free(g);
}

int generation_build(struct mtlsd_config *cfg, uint64_t id, struct generation **out,
		     char *err, size_t errlen)
{
	struct generation *g = calloc(1, sizeof(*g));
	struct build b = { .g = g, .err = err, .errlen = errlen };
	int rc;

	*out = NULL;
	if (!g) {
		config_free(cfg);
		snprintf(err, errlen, "out of memory building the configuration");
		return -ENOMEM;
	}
	g->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	atomic_init(&g->refs, 1);
	g->id = id;

	GUARD_GOTO(config_validate(&g->cfg, err, errlen), rc, fail);
	GUARD_GOTO(apply_crypto_accel(&b), rc, fail);
	g->partners = calloc(g->cfg.n_partners, sizeof(*g->partners));
	ENSURE_GOTO(g->partners != NULL, rc, ENOMEM, fail);
	g->n_partners = g->cfg.n_partners;
	for (size_t i = 0; i < g->n_partners; i++)
		GUARD_GOTO(build_partner(&b, i), rc, fail);
	GUARD_GOTO(check_shared_cas(&b), rc, fail);
	GUARD_GOTO(check_chain_crls_foreign(&b), rc, fail);
	/* Verification needs the partners, so the context comes after them. */
	GUARD_GOTO(server_ctx_build(&b, &g->ssl_ctx), rc, fail);
	warn_incomplete_server_chains(g);
	*out = g;
	return 0;
fail:
	if (rc == -ENOMEM && err[0] == '\0')
		snprintf(err, errlen, "out of memory building the configuration");
	generation_free(g);
	return rc;
}

struct generation *generation_ref(struct generation *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

void generation_unref(struct generation *g)
{
	if (!g)
		return;
	/* acq_rel: every other thread's use of g happens before the free.
	 * (Not release + acquire fence: ThreadSanitizer cannot see fences.) */
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		generation_free(g);
}

/* ---- publication -------------------------------------------------------- */

static pthread_mutex_t published_lock = PTHREAD_MUTEX_INITIALIZER;
static struct generation *published;     /* guarded by published_lock */
static _Atomic uint64_t published_id;

void generation_publish(struct generation *g)
{
	pthread_mutex_lock(&published_lock);
	struct generation *old = published;
	published = g;
	atomic_store_explicit(&published_id, g ? g->id : 0, memory_order_release);
	pthread_mutex_unlock(&published_lock);
	/* Outside the lock: freeing a generation can take a while. */
	generation_unref(old);
}

struct generation *generation_acquire(void)
{
	pthread_mutex_lock(&published_lock);
	struct generation *g = published ? generation_ref(published) : NULL;
	pthread_mutex_unlock(&published_lock);
	return g;
}

uint64_t generation_current_id(void)
{
	return atomic_load_explicit(&published_id, memory_order_acquire);
}
