/*
 * pki_ops.h: the PKI operations behind the `pki` commands.
 *
 * Each command file parses its options into one of these structs and calls
 * the operation; tests/helpers/make_fixtures calls the same operations with the test-only
 * fields set, so the test certificates come from the code operators run.
 * Operations validate everything and build everything in memory before
 * they write the first byte: a bad input changes nothing. Errors are
 * returned as a negative errno with a message naming the file or option in
 * err; the command prints it.
 */
#ifndef MTLSCTL_PKI_OPS_H
#define MTLSCTL_PKI_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "guard.h"
#include "pki_cert.h"
#include "pki_key.h"
#include "pki_serial.h"

struct pki_init_opts {
	const char *dir;
	const char *name;          /* subject O of every CA; default: basename of dir */
	enum pki_key_type key;     /* ec-p256 default */
	const char *pass;          /* protects the offline CA keys */
	size_t tiers;              /* 3; 4+ only for test hierarchies */
};

int pki_init_run(const struct pki_init_opts *o, char *err, size_t errlen) MUST_CHECK;

struct pki_issue_opts {
	const char *dir;
	enum pki_profile_kind kind; /* SERVER or CLIENT */
	const char *name;
	const char *out_dir;        /* NULL: DIR/issued/NAME */
	enum pki_key_type key;
	int days;                   /* 0: the profile's default */
	bool allow_long_lifetime;
	bool replace;
	struct pki_names dns, ip, uri;

	/* Test-only (ctl_test_mode): validity relative to now, in seconds,
	 * EKU override, a forced serial, a CA certificate issued as a leaf. */
	bool test_validity;
	long test_not_before, test_not_after;
	enum pki_eku test_eku;
	bool test_serial_set;
	struct pki_serial test_serial;
	bool test_ca_leaf;
};

/* Issue a certificate; *serial receives its serial. */
int pki_issue_run(const struct pki_issue_opts *o, struct pki_serial *serial,
		  char *err, size_t errlen) MUST_CHECK;

/* Mark serial revoked in the record of the CA that issued it. What was
 * done is printed to report unless it is NULL. */
int pki_revoke_run(const char *dir, const struct pki_serial *serial, int reason,
		   FILE *report, char *err, size_t errlen) MUST_CHECK;

/* Re-sign CRLs: of every CA (only == NULL), or only of the CA named only
 * ("issuing", "intermediate", "root"). pass is needed for all but the
 * issuing CA. The new CRL numbers are printed to report unless it is NULL. */
int pki_crl_run(const char *dir, const char *pass, const char *only, int next_update_days,
		FILE *report, char *err, size_t errlen) MUST_CHECK;

/* The PKI directory: --dir, else $MTLS_PKI_DIR, else ".". */
const char *pki_default_dir(const char *flag);

#endif
