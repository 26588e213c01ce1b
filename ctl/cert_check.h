/*
 * cert_check.h: the checks an operator runs on a partner's certificate
 * before trusting it (`mtlsctl cert check`).
 *
 * Each check is independent and gives pass, fail or skip with one line of
 * reason, so one run shows everything wrong with a certificate, not only
 * the first problem: chain, depth, key strength, signature strength, leaf
 * (not a CA), EKU, key usage, validity, lifetime, revocation, and optionally
 * the host name.
 */
#ifndef MTLSCTL_CERT_CHECK_H
#define MTLSCTL_CERT_CHECK_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "guard.h"

enum check_result { CHECK_PASS = 0, CHECK_FAIL, CHECK_SKIP, CHECK_RESULT_MAX };

const char *check_result_name(enum check_result r); /* "PASS", "FAIL", "SKIP" */
int check_result_from_name(const char *s);          /* the value, or -ENOENT */

struct check_input {
	X509 *leaf;
	STACK_OF(X509) *untrusted;   /* the rest of the presented file */
	STACK_OF(X509) *anchors;     /* --ca */
	STACK_OF(X509_CRL) *crls;    /* --crl, or NULL */
	bool server;                 /* --purpose server */
	const char *host;            /* --host: DNS name or IP the leaf must carry */
	int max_depth;               /* CA levels above the leaf, anchor included */
	int max_days;                /* lifetime ceiling */
	int min_days_left;
	time_t now;
};

struct check_state {
	const struct check_input *in;
	STACK_OF(X509) *chain;       /* verified chain leaf..anchor, NULL if none */
	int chain_error;             /* X509_V_ERR_* when chain is NULL */
	int chain_error_depth;
	char chain_error_subject[512];
};

struct cert_check {
	const char *name;
	enum check_result (*run)(struct check_state *st, char *reason, size_t cap);
};

extern const struct cert_check cert_checks[];
extern const size_t cert_checks_count;

/* Build the chain once (st->chain); the checks then read it. */
void check_state_init(struct check_state *st, const struct check_input *in);
void check_state_free(struct check_state *st);

#endif
