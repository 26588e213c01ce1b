/*
 * reload.c: build, check, publish (reload.h).
 *
 * Settings that shape sockets and threads (listen addresses, workers,
 * max_connections, the audit log, the control socket, the user: the keys
 * lib/config.c's table marks FIXED_AT_START) are fixed at start-up: a
 * reload that changes one is refused with the key's name, rather than
 * half-applied. Everything else, certificates and partners
 * included, is replaced whole.
 */
#include "reload.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cert_name.h"
#include "generation.h"
#include "log.h"
#include "pemutil.h"
#include "service.h"

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static reload_load_fn load_config;
static struct reload_status status; /* under reload_lock */

/* With crl_expired = fail an expired CRL refuses every client under its CA:
 * as a reload that is an outage, so it is refused before it applies. */
static int check_crls_current(const struct mtlsd_config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->n_partners; i++) {
		const struct cfg_partner *p = &cfg->partners[i];
		if (p->crl_expired != CRL_POLICY_FAIL)
			continue;
		for (size_t k = 0; k < p->crl_paths.n; k++) {
			STACK_OF(X509_CRL) *crls = NULL;
			char why[512];
			int rc = pem_load_crls(p->crl_paths.v[k], &crls, why, sizeof(why));
			if (rc < 0) {
				snprintf(err, errlen, "%s: %s", p->crl_paths.v[k], why);
				return rc;
			}
			int bad = -1;
			for (int c = 0; c < sk_X509_CRL_num(crls) && bad < 0; c++) {
				const ASN1_TIME *next = X509_CRL_get0_nextUpdate(sk_X509_CRL_value(crls, c));
				if (next && X509_cmp_current_time(next) < 0)
					bad = c;
			}
			sk_X509_CRL_pop_free(crls, X509_CRL_free);
			if (bad >= 0) {
				snprintf(err, errlen, "%s: CRL #%d of partner '%s' is past its nextUpdate "
					 "(with crl_expired = fail every client under its CA would be refused): "
					 "fetch a current CRL", p->crl_paths.v[k], bad + 1, p->name);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* With crl_missing = fail a CA of the partner that no loaded CRL is from
 * refuses every client under it (CRL_CHECK_ALL): an anchor without one
 * refuses the whole partner. Named with the partner's crl line. */
static int check_cas_have_crls(const struct generation *g, char *err, size_t errlen)
{
	for (size_t i = 0; i < g->n_partners; i++) {
		const struct partner *p = &g->partners[i];
		const struct cfg_partner *c = p->cfg;
		char ca[256];

		if (c->crl_missing != CRL_POLICY_FAIL || c->crl_paths.n == 0 ||
		    sk_X509_num(p->cas_without_crl) == 0)
			continue;
		X509 *x = sk_X509_value(p->cas_without_crl, 0);
		cert_name_format(X509_get_subject_name(x), ca, sizeof(ca));
		int line = c->crl_paths.lines ? c->crl_paths.lines[0] : 0;
		int off = g->cfg.path && line > 0
			? snprintf(err, errlen, "%s:%d: crl %s: ", g->cfg.path, line, c->crl_paths.v[0])
			: snprintf(err, errlen, "--crl %s: ", c->crl_paths.v[0]);
		if (off < 0 || (size_t)off >= errlen)
			off = 0;
		snprintf(err + off, errlen - (size_t)off, "partner '%s': no CRL of CA '%s' (from %s) in its crl "
			 "files; with crl_missing = fail every client under that CA would be refused "
			 "(crl_unavailable)%s: add that CA's current CRL, or set crl_missing = allow",
			 c->name, ca, c->ca_path,
			 x509_is_self_signed(x) ? ", that is every client of the partner" : "");
		return -EINVAL;
	}
	return 0;
}

int reload_check_admits(const struct generation *g, char *err, size_t errlen)
{
	GUARD(check_cas_have_crls(g, err, errlen));
	return check_crls_current(&g->cfg, err, errlen);
}

static void digest_bytes(EVP_MD_CTX *md, const void *p, size_t len)
{
	uint8_t lenbuf[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len };
	/* Length-prefixed, so ("ab","c") and ("a","bc") differ. */
	EVP_DigestUpdate(md, lenbuf, sizeof(lenbuf));
	EVP_DigestUpdate(md, p, len);
}

static void digest_str(EVP_MD_CTX *md, const char *s)
{
	digest_bytes(md, s ? s : "", s ? strlen(s) : 0);
}

static void digest_list(EVP_MD_CTX *md, const struct cfg_strlist *l)
{
	digest_bytes(md, &l->n, sizeof(l->n));
	for (size_t i = 0; i < l->n; i++)
		digest_str(md, l->v[i]);
}

static void digest_certs(EVP_MD_CTX *md, STACK_OF(X509) *certs)
{
	for (int i = 0; i < sk_X509_num(certs); i++) {
		unsigned char *der = NULL;
		int len = i2d_X509(sk_X509_value(certs, i), &der);
		if (len > 0)
			digest_bytes(md, der, (size_t)len);
		OPENSSL_free(der);
	}
}

static void digest_crl(X509_CRL *crl, void *md)
{
	unsigned char *der = NULL;
	int len = i2d_X509_CRL(crl, &der);

	if (len > 0)
		digest_bytes(md, der, (size_t)len);
	OPENSSL_free(der);
}

/*
 * generation.h's trust_id: SHA-256 over everything a verification decision
 * and a session's partner index depend on (partner order and names, the
 * DER of every CA and CRL loaded, allow-lists and multiple_identities, depth,
 * CRL policies), cut to 64 bits. Two hosts with the same files get the same value, so a ticket
 * sealed by one resumes on the other; any change to trust makes every
 * older session do a full handshake and be verified again.
 */
static uint64_t trust_id_of(const struct generation *g)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	uint64_t id = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return 0; /* verify.c falls back to the local generation id */
	}
	for (size_t i = 0; i < g->n_partners; i++) {
		const struct partner *p = &g->partners[i];
		const struct cfg_partner *c = p->cfg;
		digest_str(md, c->name);
		unsigned policy[4] = { c->verify_depth, (unsigned)c->crl_missing, (unsigned)c->crl_expired,
				       (unsigned)c->multiple_identities };
		digest_bytes(md, policy, sizeof(policy));
		digest_list(md, &c->allow_dns);
		digest_list(md, &c->allow_uri);
		digest_list(md, &c->allow_cn);
		digest_list(md, &c->allow_ou);
		digest_certs(md, p->anchors);
		digest_certs(md, p->intermediates);
		partner_for_each_crl(p, digest_crl, md);
	}
	if (EVP_DigestFinal_ex(md, d, &dlen) == 1 && dlen >= 8)
		for (int i = 0; i < 8; i++)
			id = (id << 8) | d[i];
	EVP_MD_CTX_free(md);
	return id;
}

int reload_build(struct mtlsd_config *cfg, uint64_t id, struct generation **out, char *err,
		 size_t errlen)
{
	struct generation *g = NULL;

	/* The build names the config line of a missing or broken file; the
	 * checks after it only see files that already parsed. */
	GUARD(generation_build(cfg, id, &g, err, errlen));
	g->trust_id = trust_id_of(g);
	*out = g;
	return 0;
}

void reload_init(reload_load_fn load, const struct generation *first)
{
	pthread_mutex_lock(&reload_lock);
	load_config = load;
	status.started = time(NULL);
	status.generation = first->id;
	pthread_mutex_unlock(&reload_lock);
}

/* Everything but the publication; the lock is held. */
static int reload_prepare(struct generation *cur, struct generation **out, char *err, size_t errlen)
{
	struct mtlsd_config cfg;
	const char *fixed;

	ENSURE(load_config && cur, ENOTSUP);
	config_init(&cfg);
	int rc = load_config(&cfg, err, errlen);
	if (rc < 0) {
		config_free(&cfg);
		return rc;
	}
	if ((fixed = config_fixed_key_changed(&cur->cfg, &cfg))) {
		snprintf(err, errlen, "%s: key '%s' changed; it is fixed at start-up: restart mtlsd to "
			 "apply it (nothing was changed)", cfg.path ? cfg.path : "command line", fixed);
		config_free(&cfg);
		return -EINVAL;
	}
	GUARD(reload_build(&cfg, cur->id + 1, out, err, errlen));
	/* Only a reload refuses a generation that would admit nobody under
	 * some CA: at start-up there is nothing better to fall back to, and
	 * one partner's stale or missing CRL must not keep every other
	 * partner down (generation_build warns instead). */
	rc = reload_check_admits(*out, err, errlen);
	if (rc < 0) {
		generation_unref(*out);
		*out = NULL;
	}
	return rc;
}

int reload_run(const char *origin, uint64_t *id, char *err, size_t errlen)
{
	struct generation *next = NULL;

	pthread_mutex_lock(&reload_lock);
	service_notify_reloading();
	struct generation *cur = generation_acquire();
	int rc = reload_prepare(cur, &next, err, errlen);
	if (rc == 0) {
		*id = next->id;
		generation_publish(next);
		status.generation = *id;
		status.applied++;
		log_info("reload (%s): generation %llu published", origin, (unsigned long long)*id);
	} else {
		status.refused++;
		snprintf(status.last_error, sizeof(status.last_error), "%s", err);
		log_err("reload (%s) refused, generation %llu keeps serving: %s", origin,
			(unsigned long long)(cur ? cur->id : 0), err);
	}
	status.last_time = time(NULL);
	status.last_ok = rc == 0;
	generation_unref(cur);
	service_notify_ready(rc == 0 ? "serving (reloaded)" : "serving (last reload refused)");
	pthread_mutex_unlock(&reload_lock);
	return rc;
}

void reload_get_status(struct reload_status *out)
{
	pthread_mutex_lock(&reload_lock);
	*out = status;
	pthread_mutex_unlock(&reload_lock);
}
