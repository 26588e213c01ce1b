/*
 * acct_user.c: paths, the fallback snapshot file and record arithmetic
 * shared by mtlsd and mtlsctl (see acct_user.h).
 */
#include "acct_user.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool acct_instance_valid(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > ACCT_INSTANCE_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
		if (!ok)
			return false;
	}
	return true;
}

int acct_pin_dir(const char *instance, char *buf, size_t len)
{
	ENSURE(acct_instance_valid(instance), EINVAL);
	int n = snprintf(buf, len, "%s/%s", ACCT_PIN_ROOT, instance);
	ENSURE(n > 0 && (size_t)n < len, ENAMETOOLONG);
	return 0;
}

int acct_runtime_dir(const char *runtime_root, const char *instance, char *buf, size_t len)
{
	ENSURE(acct_instance_valid(instance), EINVAL);
	/* systemd's RuntimeDirectory= exports the directory it made for us. */
	const char *root = runtime_root ? runtime_root : getenv("RUNTIME_DIRECTORY");
	if (!root || !*root)
		root = ACCT_RUNTIME_ROOT;
	int n = snprintf(buf, len, "%s/%s", root, instance);
	ENSURE(n > 0 && (size_t)n < len, ENAMETOOLONG);
	return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int acct_snapshot_write(const char *path, const struct acct_snapshot_header *h,
			const struct acct_record *recs, size_t n)
{
	char tmp[4096];
	int rc, fd;

	int len = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	ENSURE(len > 0 && (size_t)len < sizeof(tmp), ENAMETOOLONG);
	/* Partner names, CNs and serials: for the service's group, not for
	 * everyone (the pinned maps are root's only). */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return -errno;
	GUARD_GOTO(write_all(fd, h, sizeof(*h)), rc, out);
	GUARD_GOTO(write_all(fd, recs, n * sizeof(*recs)), rc, out);
	ENSURE_GOTO(close(fd) == 0, rc, errno, out_unlink);
	fd = -1;
	/* rename is atomic: readers see the old snapshot or the new one. */
	ENSURE_GOTO(rename(tmp, path) == 0, rc, errno, out_unlink);
	return 0;
out:
	close(fd);
out_unlink:
	unlink(tmp);
	return rc;
}

static int read_all(int fd, void *data, size_t len)
{
	char *p = data;

	while (len > 0) {
		ssize_t r = read(fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EBADMSG;  /* truncated */
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int acct_snapshot_read(const char *path, struct acct_snapshot_header *h,
		       struct acct_record **recs, size_t *n)
{
	struct acct_record *v = NULL;
	int rc;

	*recs = NULL;
	*n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	GUARD_GOTO(read_all(fd, h, sizeof(*h)), rc, out);
	ENSURE_GOTO(memcmp(h->magic, ACCT_SNAPSHOT_MAGIC, sizeof(h->magic)) == 0, rc, EBADMSG, out);
	ENSURE_GOTO(h->layout_version == ACCT_LAYOUT_VERSION, rc, EPROTO, out);
	ENSURE_GOTO(h->record_size == sizeof(struct acct_record), rc, EBADMSG, out);
	ENSURE_GOTO(h->n_records <= ACCT_MAX_KEYS * 4u, rc, EBADMSG, out);
	h->reason[sizeof(h->reason) - 1] = '\0';
	if (h->n_records > 0) {
		v = calloc(h->n_records, sizeof(*v));
		ENSURE_GOTO(v != NULL, rc, ENOMEM, out);
		GUARD_GOTO(read_all(fd, v, h->n_records * sizeof(*v)), rc, out);
		for (size_t i = 0; i < h->n_records; i++)
			acct_record_sanitize(&v[i]);
	}
	*recs = v;
	*n = h->n_records;
	v = NULL;
	rc = 0;
out:
	free(v);
	close(fd);
	return rc;
}

void acct_record_sanitize(struct acct_record *r)
{
	if (r->key.serial_len > ACCT_SERIAL_MAX)
		r->key.serial_len = ACCT_SERIAL_MAX;
	r->meta.partner_name[sizeof(r->meta.partner_name) - 1] = '\0';
	r->meta.subject_cn[sizeof(r->meta.subject_cn) - 1] = '\0';
	r->meta.issuer[sizeof(r->meta.issuer) - 1] = '\0';
}

int acct_key_make(struct acct_key *key, const uint8_t *issuer_id, const uint8_t *serial,
		  size_t serial_len)
{
	memset(key, 0, sizeof(*key));
	ENSURE(serial_len <= ACCT_SERIAL_MAX, EINVAL);
	if (serial_len == 0 || !issuer_id || !serial)
		return 0;
	memcpy(key->issuer_id, issuer_id, ACCT_ISSUER_ID_LEN);
	memcpy(key->serial, serial, serial_len);
	key->serial_len = (__u8)serial_len;
	return 0;
}

bool acct_key_is_no_cert(const struct acct_key *key)
{
	return key->serial_len == 0;
}

void acct_key_serial_hex(const struct acct_key *key, char *buf, size_t len)
{
	size_t off = 0;

	if (len < 2)
		return;
	if (acct_key_is_no_cert(key)) {
		snprintf(buf, len, "-");
		return;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < key->serial_len && off + 3 < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%02X", i ? ":" : "", key->serial[i]);
}

void acct_record_partner(const struct acct_record *r, char *buf, size_t len)
{
	if (r->has_meta && r->meta.partner_name[0])
		snprintf(buf, len, "%s", r->meta.partner_name);
	else if (r->c.last_partner != ACCT_NO_PARTNER)
		snprintf(buf, len, "#%u", r->c.last_partner);
	else
		snprintf(buf, len, "-");
}

uint64_t acct_total(const struct acct_counters *c)
{
	uint64_t sum = 0;

	for (size_t b = 0; b < ACCT_BUCKETS; b++)
		sum += c->outcome[b];
	return sum;
}

uint64_t acct_failures(const struct acct_counters *c)
{
	return acct_total(c) - c->outcome[ACCT_B_OK];
}

void acct_counters_merge(struct acct_counters *dst, const struct acct_counters *src)
{
	for (size_t b = 0; b < ACCT_BUCKETS; b++)
		dst->outcome[b] += src->outcome[b];
	for (size_t s = 0; s < ACCT_HIST_SLOTS; s++)
		dst->hist[s] += src->hist[s];
	dst->duration_sum_ns += src->duration_sum_ns;
	if (src->last_seen_ns >= dst->last_seen_ns) {
		dst->last_seen_ns = src->last_seen_ns;
		dst->last_partner = src->last_partner;
		dst->last_tls_version = src->last_tls_version;
		dst->last_cipher = src->last_cipher;
	}
}

uint64_t acct_hist_quantile_ns(const __u64 hist[ACCT_HIST_SLOTS], double q)
{
	uint64_t total = 0, seen = 0;

	for (size_t s = 0; s < ACCT_HIST_SLOTS; s++)
		total += hist[s];
	if (total == 0 || q <= 0 || q > 1)
		return 0;
	/* The rank of the quantile, rounded up: p50 of 3 samples is the 2nd. */
	uint64_t rank = (uint64_t)(q * (double)total);
	if ((double)rank < q * (double)total)
		rank++;
	if (rank == 0)
		rank = 1;
	for (size_t s = 0; s < ACCT_HIST_SLOTS; s++) {
		seen += hist[s];
		if (seen >= rank)
			return 2ULL << s;
	}
	return 2ULL << (ACCT_HIST_SLOTS - 1);
}

uint64_t acct_boot_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

time_t acct_boot_to_realtime(uint64_t boot_ns)
{
	struct timespec now;

	if (boot_ns == 0)
		return 0;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t boot_now = acct_boot_now_ns();
	uint64_t ago_s = boot_now > boot_ns ? (boot_now - boot_ns) / 1000000000ULL : 0;
	return now.tv_sec - (time_t)ago_s;
}
