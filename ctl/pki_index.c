/*
 * pki_index.c: parsing and writing the CA record (format in pki_index.h).
 *
 * The parser is strict on purpose: this file decides what a CRL contains,
 * so anything it does not recognise stops the command instead of being
 * skipped.
 */
#include "pki_index.h"

#include <inttypes.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "string_table.h"

#define INDEX_MAGIC "mtlsctl-index 1"
#define INDEX_MAX_BYTES (64u << 20)

/* RFC 5280 5.3.1 by code. certificateHold (6) and removeFromCRL (8) are
 * not reasons a revocation here may give: unnamed, so never parsed. */
static const char *const reason_names[CRL_REASON_AA_COMPROMISE + 1] = {
	[CRL_REASON_UNSPECIFIED] = "unspecified",
	[CRL_REASON_KEY_COMPROMISE] = "keyCompromise",
	[CRL_REASON_CA_COMPROMISE] = "cACompromise",
	[CRL_REASON_AFFILIATION_CHANGED] = "affiliationChanged",
	[CRL_REASON_SUPERSEDED] = "superseded",
	[CRL_REASON_CESSATION_OF_OPERATION] = "cessationOfOperation",
	[CRL_REASON_PRIVILEGE_WITHDRAWN] = "privilegeWithdrawn",
	[CRL_REASON_AA_COMPROMISE] = "aACompromise",
};

DEFINE_STRING_TABLE(pki_reason, int, reason_names, "unknown")

const char *pki_reason_list(void)
{
	return "unspecified|keyCompromise|cACompromise|affiliationChanged|superseded|"
	       "cessationOfOperation|privilegeWithdrawn|aACompromise";
}

/* n decimal digits at s (already checked to be digits). */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* "20270225120000Z" <-> time_t, always UTC. */
static int time_parse(const char *s, time_t *out)
{
	ENSURE(strlen(s) == 15 && s[14] == 'Z', EINVAL);
	for (int i = 0; i < 14; i++)
		ENSURE(s[i] >= '0' && s[i] <= '9', EINVAL); /* no sign, no blank */
	struct tm tm = {
		.tm_year = digits(s, 4) - 1900,
		.tm_mon = digits(s + 4, 2) - 1,
		.tm_mday = digits(s + 6, 2),
		.tm_hour = digits(s + 8, 2),
		.tm_min = digits(s + 10, 2),
		.tm_sec = digits(s + 12, 2),
	};
	/* X.509 times start in 1950 (UTCTime); four digits keep the text form fixed. */
	ENSURE(tm.tm_year >= 1950 - 1900 && tm.tm_mon >= 0 && tm.tm_mon <= 11 &&
	       tm.tm_mday >= 1 && tm.tm_mday <= 31 &&
	       tm.tm_hour <= 23 && tm.tm_min <= 59 && tm.tm_sec <= 59, EINVAL);
	/* timegm normalises Feb 31 to Mar 3: refuse dates that do not exist. */
	struct tm check = tm;
	time_t t = timegm(&check);
	ENSURE(check.tm_mday == tm.tm_mday && check.tm_mon == tm.tm_mon, EINVAL);
	*out = t;
	return 0;
}

static void time_format(time_t t, char buf[16])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, 16, "%Y%m%d%H%M%SZ", &tm);
}

static int index_grow(struct pki_index *idx)
{
	if (idx->n < idx->cap)
		return 0;
	size_t cap = idx->cap ? idx->cap * 2 : 16;
	struct pki_record *r = realloc(idx->rec, cap * sizeof(*r));
	ENSURE_PTR(r, ENOMEM);
	idx->rec = r;
	idx->cap = cap;
	return 0;
}

/* Split a line on tabs into exactly n fields (modifies line). */
static bool split_fields(char *line, char **f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		f[i] = line;
		char *tab = strchr(line, '\t');
		if (i + 1 < n) {
			if (!tab)
				return false;
			*tab = '\0';
			line = tab + 1;
		} else if (tab) {
			return false;
		}
	}
	return true;
}

static int parse_record(char *line, struct pki_record *r, char *err, size_t errlen)
{
	char *f[6];
	if (!split_fields(line, f, 6)) {
		snprintf(err, errlen, "expected 6 tab-separated fields");
		return -EBADMSG;
	}
	memset(r, 0, sizeof(*r));
	r->reason = -1;
	if (strcmp(f[0], "V") != 0 && strcmp(f[0], "R") != 0) {
		snprintf(err, errlen, "state '%s' is neither V nor R", f[0]);
		return -EBADMSG;
	}
	r->state = f[0][0] == 'V' ? PKI_CERT_VALID : PKI_CERT_REVOKED;
	if (time_parse(f[1], &r->not_after) < 0) {
		snprintf(err, errlen, "expiry '%s' is not YYYYMMDDHHMMSSZ", f[1]);
		return -EBADMSG;
	}
	if (r->state == PKI_CERT_VALID) {
		if (strcmp(f[2], "-") != 0 || strcmp(f[3], "-") != 0) {
			snprintf(err, errlen, "a valid record has '-' as revocation date and reason");
			return -EBADMSG;
		}
	} else {
		if (time_parse(f[2], &r->revoked_at) < 0) {
			snprintf(err, errlen, "revocation date '%s' is not YYYYMMDDHHMMSSZ", f[2]);
			return -EBADMSG;
		}
		r->reason = pki_reason_from_name(f[3]);
		if (r->reason < 0) {
			snprintf(err, errlen, "unknown revocation reason '%s'", f[3]);
			return -EBADMSG;
		}
	}
	if (pki_serial_parse(f[4], &r->serial) < 0) {
		snprintf(err, errlen, "serial '%s' is not colon-separated hex", f[4]);
		return -EBADMSG;
	}
	if (strlen(f[5]) >= sizeof(r->subject)) {
		snprintf(err, errlen, "subject longer than %d bytes", PKI_INDEX_SUBJECT_MAX - 1);
		return -EBADMSG;
	}
	strcpy(r->subject, f[5]);
	return 0;
}

/* One line of the file: header, counter, record or trailer, in that order. */
/* "prefix N" with N plain decimal (no sign, blank or leading zero). */
static bool parse_counter(const char *line, const char *prefix, uint64_t *out)
{
	size_t plen = strlen(prefix);
	const char *d = line + plen;
	uint64_t v = 0;
	if (strncmp(line, prefix, plen) != 0 || *d == '\0' || (d[0] == '0' && d[1] != '\0'))
		return false;
	for (; *d; d++) {
		if (*d < '0' || *d > '9' || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*d - '0');
	}
	*out = v;
	return true;
}

static int parse_line(struct pki_index *idx, char *line, size_t lineno, bool *ended,
		      char *err, size_t errlen)
{
	uint64_t v;
	if (*ended) {
		snprintf(err, errlen, "text after the 'end' line");
		return -EBADMSG;
	}
	if (lineno == 1) {
		if (strcmp(line, INDEX_MAGIC) != 0) {
			snprintf(err, errlen, "not an mtlsctl index (expected '%s')", INDEX_MAGIC);
			return -EBADMSG;
		}
		return 0;
	}
	if (lineno == 2) {
		if (!parse_counter(line, "crl_number ", &idx->crl_number)) {
			snprintf(err, errlen, "expected 'crl_number N'");
			return -EBADMSG;
		}
		return 0;
	}
	if (strncmp(line, "end ", 4) == 0) {
		if (!parse_counter(line, "end ", &v) || v != idx->n) {
			snprintf(err, errlen, "record count '%s' does not match the %zu records above",
				 line, idx->n);
			return -EBADMSG;
		}
		*ended = true;
		return 0;
	}
	GUARD(index_grow(idx));
	int rc = parse_record(line, &idx->rec[idx->n], err, errlen);
	if (rc < 0)
		return rc;
	if (pki_index_find(idx, &idx->rec[idx->n].serial)) {
		snprintf(err, errlen, "serial listed twice");
		return -EBADMSG;
	}
	idx->n++;
	return 0;
}

int pki_index_parse(const char *text, size_t len, struct pki_index *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	char *copy = strndup(text, len);
	ENSURE_PTR(copy, ENOMEM);
	int rc = 0;
	bool ended = false;
	size_t lineno = 0;
	char *line = copy, *nl;

	if (strlen(copy) != len) {
		snprintf(err, errlen, "line 1: file contains a NUL byte");
		rc = -EBADMSG;
		goto out;
	}
	while ((nl = strchr(line, '\n')) != NULL) {
		char one[128];
		*nl = '\0';
		lineno++;
		rc = parse_line(out, line, lineno, &ended, one, sizeof(one));
		if (rc < 0) {
			snprintf(err, errlen, "line %zu: %s", lineno, one);
			goto out;
		}
		line = nl + 1;
	}
	if (*line != '\0' || !ended) {
		snprintf(err, errlen, "line %zu: file ends without its 'end N' line (truncated?)",
			 lineno + 1);
		rc = -EBADMSG;
	}
out:
	free(copy);
	return rc;
}

int pki_index_serialize(const struct pki_index *idx, char **out, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	ENSURE_PTR(f, ENOMEM);
	fprintf(f, "%s\ncrl_number %" PRIu64 "\n", INDEX_MAGIC, idx->crl_number);
	for (size_t i = 0; i < idx->n; i++) {
		const struct pki_record *r = &idx->rec[i];
		char exp[16], rev[16] = "-", serial[PKI_SERIAL_HEX_MAX + 1];
		time_format(r->not_after, exp);
		if (r->state == PKI_CERT_REVOKED)
			time_format(r->revoked_at, rev);
		pki_serial_format(&r->serial, serial, sizeof(serial));
		fprintf(f, "%c\t%s\t%s\t%s\t%s\t%s\n", (char)r->state, exp, rev,
			r->state == PKI_CERT_REVOKED ? pki_reason_name(r->reason) : "-",
			serial, r->subject);
	}
	fprintf(f, "end %zu\n", idx->n);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = size;
	return 0;
}

int pki_index_load(const char *path, struct pki_index *out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	memset(out, 0, sizeof(*out));
	int rc = fs_read_all(path, INDEX_MAX_BYTES, &text, &len);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read: %s", strerror(-rc));
		return rc;
	}
	rc = pki_index_parse(text, len, out, err, errlen);
	free(text);
	return rc;
}

int pki_index_save(const char *path, const struct pki_index *idx)
{
	char *text = NULL;
	size_t len = 0;
	GUARD(pki_index_serialize(idx, &text, &len));
	int rc = fs_write_atomic(path, text, len, 0600);
	free(text);
	return rc;
}

int pki_index_add(struct pki_index *idx, const struct pki_serial *serial, time_t not_after,
		  const char *subject)
{
	ENSURE(pki_index_find(idx, serial) == NULL, EEXIST);
	ENSURE(strlen(subject) < PKI_INDEX_SUBJECT_MAX, ENAMETOOLONG);
	GUARD(index_grow(idx));
	struct pki_record *r = &idx->rec[idx->n];
	memset(r, 0, sizeof(*r));
	r->state = PKI_CERT_VALID;
	r->not_after = not_after;
	r->reason = -1;
	r->serial = *serial;
	strcpy(r->subject, subject);
	for (char *p = r->subject; *p; p++)
		if (*p == '\t' || *p == '\n' || *p == '\r')
			*p = '?';
	idx->n++;
	return 0;
}

struct pki_record *pki_index_find(const struct pki_index *idx, const struct pki_serial *serial)
{
	for (size_t i = 0; i < idx->n; i++)
		if (pki_serial_equal(&idx->rec[i].serial, serial))
			return &idx->rec[i];
	return NULL;
}

void pki_index_free(struct pki_index *idx)
{
	free(idx->rec);
	memset(idx, 0, sizeof(*idx));
}
