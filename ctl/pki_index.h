/*
 * pki_index.h: a CA's record of what it issued and revoked.
 *
 * One plain text file per CA (DIR/<tier>/index.txt), readable with less and
 * diffable in a backup, always replaced atomically (fsutil.h):
 *
 *   mtlsctl-index 1
 *   crl_number 4
 *   V <TAB> 20270225120000Z <TAB> - <TAB> - <TAB> 4F:A2:... <TAB> CN=app1,O=partner
 *   R <TAB> 20270225120000Z <TAB> 20261127063000Z <TAB> keyCompromise <TAB> 51:09:... <TAB> CN=...
 *   end 2
 *
 * The first line names the format, the last line counts the records: a file
 * cut short or edited by hand is detected, reported with its line number and
 * never rewritten. crl_number is the number of the last CRL this CA signed.
 */
#ifndef MTLSCTL_PKI_INDEX_H
#define MTLSCTL_PKI_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "guard.h"
#include "pki_serial.h"

#define PKI_INDEX_SUBJECT_MAX 512

enum pki_cert_state { PKI_CERT_VALID = 'V', PKI_CERT_REVOKED = 'R' };

struct pki_record {
	enum pki_cert_state state;
	time_t not_after;
	time_t revoked_at;   /* 0 unless revoked */
	int reason;          /* CRL_REASON_* (openssl/x509v3.h), -1 unless revoked */
	struct pki_serial serial;
	char subject[PKI_INDEX_SUBJECT_MAX]; /* RFC 2253, no tabs or newlines */
};

struct pki_index {
	uint64_t crl_number;
	struct pki_record *rec;
	size_t n, cap;
};

/* Revocation reasons by their RFC 5280 names ("keyCompromise"); -ENOENT
 * if unknown, "unknown" for a code without one (lib/string_table.h). */
int pki_reason_from_name(const char *name);
const char *pki_reason_name(int reason);
/* "unspecified|keyCompromise|..." for usage and error messages. */
const char *pki_reason_list(void);

/*
 * Parse the text of an index file. On error returns -EBADMSG and writes
 * "line N: what is wrong" into err. *out is initialised either way and must
 * be released with pki_index_free.
 */
int pki_index_parse(const char *text, size_t len, struct pki_index *out,
		    char *err, size_t errlen) MUST_CHECK;

/* Render the index; *out is malloc'ed, NUL-terminated. */
int pki_index_serialize(const struct pki_index *idx, char **out, size_t *len) MUST_CHECK;

/* Read and parse path; errors as pki_index_parse plus the errno of reading. */
int pki_index_load(const char *path, struct pki_index *out, char *err, size_t errlen) MUST_CHECK;

/* Serialize and replace path atomically (mode 0600). */
int pki_index_save(const char *path, const struct pki_index *idx) MUST_CHECK;

/* Append a valid record; the subject is copied (tabs/newlines become '?'). */
int pki_index_add(struct pki_index *idx, const struct pki_serial *serial,
		  time_t not_after, const char *subject) MUST_CHECK;

/* The record with this serial, or NULL. */
struct pki_record *pki_index_find(const struct pki_index *idx, const struct pki_serial *serial);

void pki_index_free(struct pki_index *idx);

#endif
