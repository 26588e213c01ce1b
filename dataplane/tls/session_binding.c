/*
 * session_binding.c: the binding a session carries, and when it may be
 * resumed (session_binding.h).
 *
 * Decoding is byte-exact and bounds-checked: a ticket is sealed by our
 * keys, but a stateful-cache entry or a ticket from a host sharing the key
 * file is only as trustworthy as the code that wrote it, and an old mtlsd
 * wrote "mtb1" bindings, which are refused here (full handshake) rather
 * than read as if they said when they were verified.
 */
#include "session_binding.h"

#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "ossl_compat.h"
#include "string_table.h"

#define BINDING_MAGIC "mtb2"

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = (v << 8) | p[i];
	return v;
}

void session_binding_encode(const struct session_binding *b, uint8_t out[SESSION_BINDING_LEN])
{
	memcpy(out, BINDING_MAGIC, 4);
	put_be(out + 4, b->trust_id, 8);
	put_be(out + 12, b->partner, 4);
	put_be(out + 16, (uint64_t)b->verified_at, 8);
	put_be(out + 24, (uint64_t)b->valid_until, 8);
}

int session_binding_decode(const void *data, size_t len, struct session_binding *b)
{
	const uint8_t *p = data;

	ENSURE(p && len == SESSION_BINDING_LEN && memcmp(p, BINDING_MAGIC, 4) == 0, ENOENT);
	b->trust_id = get_be(p + 4, 8);
	b->partner = (uint32_t)get_be(p + 12, 4);
	b->verified_at = (int64_t)get_be(p + 16, 8);
	b->valid_until = (int64_t)get_be(p + 24, 8);
	return 0;
}

int session_binding_store(SSL_SESSION *sess, const struct session_binding *b)
{
	uint8_t buf[SESSION_BINDING_LEN];

	ENSURE(sess && b, EINVAL);
	session_binding_encode(b, buf);
	GUARD_OSSL(SSL_SESSION_set1_ticket_appdata(sess, buf, sizeof(buf)), ENOMEM);
	return 0;
}

int session_binding_load(SSL_SESSION *sess, struct session_binding *b)
{
	void *data = NULL;
	size_t len = 0;

	ENSURE(sess && SSL_SESSION_get0_ticket_appdata(sess, &data, &len) == 1, ENOENT);
	return session_binding_decode(data, len, b);
}

/* verified_at + lifetime_s; verified_at came from a decoded ticket, so
 * it never overflows. */
static int64_t aged_out_at(const struct session_binding *b, int64_t lifetime_s)
{
	return b->verified_at > INT64_MAX - lifetime_s ? INT64_MAX : b->verified_at + lifetime_s;
}

int64_t session_binding_expiry(const struct session_binding *b, int64_t lifetime_s)
{
	int64_t by_age = aged_out_at(b, lifetime_s);

	return by_age < b->valid_until ? by_age : b->valid_until;
}

enum session_verdict session_binding_judge(const struct session_binding *b, uint64_t trust_id,
					   size_t n_partners, int64_t now, int64_t lifetime_s)
{
	if (b->trust_id != trust_id || b->partner >= n_partners)
		return SESSION_FOREIGN;
	if (b->verified_at > now)
		return SESSION_FROM_FUTURE;
	/* now is past the bound once now >= it: a certificate whose notAfter
	 * is this very second is no longer valid (X509_cmp_time's rule). */
	if (now >= b->valid_until)
		return SESSION_OUTLIVED;
	if (now >= aged_out_at(b, lifetime_s))
		return SESSION_TOO_OLD;
	return SESSION_RESUMABLE;
}

int session_binding_bound_timeout(SSL_SESSION *sess, const struct session_binding *b, int64_t lifetime_s)
{
	int64_t left = session_binding_expiry(b, lifetime_s) - (int64_t)ossl_session_time(sess);

	/* At least a second: OpenSSL 3.0 fails the handshake (internal
	 * error) when it seals a ticket whose timeout is 0. The binding
	 * still refuses the session at once (ticket_decrypt_cb). */
	if (left < 1)
		left = 1;
	if (left > LONG_MAX)
		left = LONG_MAX;
	GUARD_OSSL(SSL_SESSION_set_timeout(sess, (long)left), EINVAL);
	return 0;
}

static const char *const verdict_texts[SESSION_VERDICT_MAX] = {
	[SESSION_RESUMABLE] = "resumable",
	[SESSION_FOREIGN] = "not bound to this configuration generation",
	[SESSION_TOO_OLD] = "its full verification is older than session_lifetime",
	[SESSION_OUTLIVED] = "a certificate of its chain or a CRL it was checked against has expired since",
	[SESSION_FROM_FUTURE] = "it claims a verification time in the future",
};

DEFINE_STRING_TABLE_TO_STRING(session_verdict_text, enum session_verdict, verdict_texts, "unknown")

static int64_t (*_Atomic clock_fn)(void);

int64_t session_clock_now(void)
{
	int64_t (*fn)(void) = atomic_load_explicit(&clock_fn, memory_order_relaxed);

	return fn ? fn() : (int64_t)time(NULL);
}

void session_clock_override(int64_t (*now)(void))
{
	atomic_store_explicit(&clock_fn, now, memory_order_relaxed);
}
