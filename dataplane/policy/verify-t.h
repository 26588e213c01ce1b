/*
 * verify-t.h: the types of client-certificate verification (verify.h has
 * the functions and the policy they apply).
 *
 * A partner's compiled allow-list (embedded in struct partner), the
 * identity verification vouches for, and the verdict a connection keeps
 * (struct verify_result, embedded in struct conn). No prototypes here, so
 * a header that only needs these layouts (engine/conn-t.h, generation-t.h)
 * does not see verification's functions.
 */
#ifndef MTLSD_VERIFY_T_H
#define MTLSD_VERIFY_T_H

#include <openssl/x509.h>
#include <stdbool.h>

#include "config.h"
#include "outcome.h"

/* Compiled allow-list of one partner. */
struct partner_policy {
	struct cfg_strlist dns, uri, cn, ou; /* patterns (owned copies) */
	bool any_allowed;                    /* no allow_* configured: any identity */
	bool multiple_identities;            /* several SPIFFE IDs / CNs may pass */
	int min_rsa_bits;                    /* 2048 */
	int min_ec_bits;                     /* 256 */
};

/*
 * The identity mtlsd vouches for to a backend: the SPIFFE ID and the CN the
 * partner's allow-list checked (verify_identity.c says exactly which), each
 * NULL when there is none to report. Owned; verified_identity_clear().
 */
struct verified_identity {
	char *spiffe_id;
	char *cn;
};

struct verify_result {
	enum hs_outcome outcome;  /* HS_OK only after chain + policy passed */
	int x509_err;             /* X509_V_ERR_* behind the outcome, 0 if none */
	int partner;              /* partner index, -1 if none; on a refusal, the
				   * partner whose CA certificate the chain
				   * verified up to, every signature checked
				   * (audit, counters, accounting: relay only when
				   * HS_OK) */
	int claimed_partner;      /* on a refusal not attributed (partner -1):
				   * the partner whose CA the chain's issuer names
				   * pointed at, a claim only (-1 if none) */
	bool resumed;             /* accepted through a session ticket / cache */
	bool chain_checked;       /* the verify callback ran and decided outcome */
	X509 *leaf;               /* presented leaf (own reference) or NULL */
	struct verified_identity identity; /* set with HS_OK only: what the PROXY
				   * header, audit line and accounting report */
	char detail[256];         /* precise, loggable reason */
};

#endif
