/*
 * admission.c: per-source handshake counts, eviction at the limit and
 * reduced timeouts under pressure (admission.h says why).
 *
 * The per-source counts are a count-min sketch: two rows of atomic
 * counters, each indexed by a keyed hash of the source. A source is over
 * its limit when both of its counters are, so a collision can only make
 * mtlsd stricter with an innocent source that shares both buckets with a
 * busy one (about (k/16384)^2 for k busy sources), never let anyone past
 * the limit. The hash key is drawn from getrandom() once per process, so
 * which sources collide cannot be worked out from outside. Fixed memory
 * (128 KiB), no lock, no allocation at accept.
 *
 * Eviction and the handshake deadlines walk the worker's handshake list,
 * which is in start order: the first match is the oldest.
 */
#include "admission.h"

#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "audit.h"
#include "conn.h"
#include "generation.h"
#include "log.h"
#include "string_table.h"
#include "worker.h"

#define SKETCH_ROWS 2
#define SKETCH_BITS 14
#define SKETCH_BUCKETS (1u << SKETCH_BITS)

static atomic_uint sketch[SKETCH_ROWS][SKETCH_BUCKETS];
static uint64_t sketch_key[SKETCH_ROWS][2]; /* [row][family: v4, v6] */
static pthread_once_t sketch_once = PTHREAD_ONCE_INIT;

static const char *const cause_names[EVICT_CAUSE_MAX] = {
	[EVICT_AT_LIMIT] = "limit",
	[EVICT_REDUCED_TIMEOUT] = "reduced_timeout",
};

DEFINE_STRING_TABLE(evict_cause, enum evict_cause, cause_names, "unknown")

static void sketch_init(void)
{
	if (getrandom(sketch_key, sizeof(sketch_key), 0) != (ssize_t)sizeof(sketch_key)) {
		/* Still correct without a secret, only predictable. */
		log_warn("getrandom failed: the per-source handshake counts use a fixed hash key");
		for (unsigned r = 0; r < SKETCH_ROWS; r++)
			for (unsigned f = 0; f < 2; f++)
				sketch_key[r][f] = 0x9e3779b97f4a7c15ull * (2 * r + f + 1);
	}
}

/* The source as 64 bits: an IPv4 address (v4-mapped IPv6 included), or
 * the /64 prefix of an IPv6 address. family 0 = v4, 1 = v6. false for
 * anything else (a unix socket is no source of its own). */
static bool source_key(const struct sockaddr *sa, uint64_t *key, unsigned *family)
{
	if (sa->sa_family == AF_INET) {
		*key = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		*family = 0;
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		uint64_t v = 0;
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
			for (unsigned i = 12; i < 16; i++)
				v = (v << 8) | a[i];
			*family = 0;
		} else {
			for (unsigned i = 0; i < 8; i++)
				v = (v << 8) | a[i];
			*family = 1;
		}
		*key = v;
		return true;
	}
	return false;
}

/* MurmurHash3's finalizer over the keyed value: a bijection that mixes
 * every input bit into every output bit. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

int admission_source_take(const struct sockaddr *peer, unsigned limit, struct source_ticket *t)
{
	uint64_t key;
	unsigned family, low = UINT32_MAX;

	memset(t, 0, sizeof(*t));
	if (limit == 0 || !source_key(peer, &key, &family))
		return 0;
	pthread_once(&sketch_once, sketch_init);
	for (unsigned r = 0; r < SKETCH_ROWS; r++) {
		t->bucket[r] = (uint16_t)(mix64(key ^ sketch_key[r][family]) >> (64 - SKETCH_BITS));
		unsigned before = atomic_fetch_add_explicit(&sketch[r][t->bucket[r]], 1, memory_order_relaxed);
		if (before < low)
			low = before;
	}
	t->held = true;
	if (low >= limit) {
		admission_source_put(t);
		return -EBUSY;
	}
	return 0;
}

void admission_source_put(struct source_ticket *t)
{
	if (!t->held)
		return;
	for (unsigned r = 0; r < SKETCH_ROWS; r++)
		atomic_fetch_sub_explicit(&sketch[r][t->bucket[r]], 1, memory_order_relaxed);
	t->held = false;
}

void admission_source_text(const struct sockaddr *peer, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (peer->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s", ip);
	} else if (peer->sa_family == AF_INET6) {
		struct in6_addr a = ((const struct sockaddr_in6 *)peer)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&a)) {
			inet_ntop(AF_INET, &a.s6_addr[12], ip, sizeof(ip));
			snprintf(buf, len, "%s", ip);
			return;
		}
		memset(&a.s6_addr[8], 0, 8);
		inet_ntop(AF_INET6, &a, ip, sizeof(ip));
		snprintf(buf, len, "%s/64", ip);
	} else {
		snprintf(buf, len, "(address family %d)", peer->sa_family);
	}
}

uint64_t admission_hello_timeout_ns(const struct mtlsd_config *cfg, unsigned in_flight)
{
	uint64_t full = (uint64_t)cfg->handshake_timeout_ms * 1000000ull;
	uint64_t floor = (uint64_t)ADMISSION_HELLO_TIMEOUT_FLOOR_MS * 1000000ull;
	uint64_t max = cfg->max_handshakes;
	uint64_t start = max * ADMISSION_PRESSURE_START_PCT; /* in hundredths */
	uint64_t now = (uint64_t)in_flight * 100;

	if (floor >= full || max == 0 || now <= start)
		return full;
	if (now >= max * 100)
		return floor;
	/* Linear from full at the start of pressure to floor at 100%. */
	return full - (full - floor) * (now - start) / (max * 100 - start);
}

/* ---- pressure: the peak occupancy, held for a while ------------------ */

/* The peak (high 32 bits) and when it was seen (low 32: ms, wrapping):
 * one word, so it moves with one compare-and-swap. */
static atomic_uint_fast64_t peak_word;

static uint64_t peak_pack(unsigned in_flight, uint64_t now)
{
	return ((uint64_t)in_flight << 32) | (uint32_t)(now / 1000000ull);
}

/* A peak matched again is re-stamped at most this often, so a steady load
 * at its peak does not make every accept write the shared word. */
#define PEAK_RESTAMP_MS 50

void admission_note_in_flight(unsigned in_flight, uint64_t now)
{
	uint_fast64_t cur = atomic_load_explicit(&peak_word, memory_order_relaxed);

	for (;;) {
		unsigned peak = (unsigned)(cur >> 32);
		uint32_t age_ms = (uint32_t)(now / 1000000ull) - (uint32_t)cur;
		if (in_flight < peak || (in_flight == peak && age_ms < PEAK_RESTAMP_MS))
			return; /* the common case: one load */
		if (atomic_compare_exchange_weak(&peak_word, &cur, peak_pack(in_flight, now)))
			return;
	}
}

unsigned admission_pressure(unsigned now_in_flight, uint64_t hold_ns, uint64_t now)
{
	uint_fast64_t cur = atomic_load_explicit(&peak_word, memory_order_relaxed);
	unsigned peak = (unsigned)(cur >> 32);
	uint32_t age_ms = (uint32_t)(now / 1000000ull) - (uint32_t)cur;

	if (age_ms > hold_ns / 1000000ull || peak < now_in_flight) {
		/* Expired (or lower than now): the present is the peak. */
		atomic_compare_exchange_strong(&peak_word, &cur, peak_pack(now_in_flight, now));
		return now_in_flight;
	}
	return peak;
}

/* ---- eviction --------------------------------------------------------- */

static void evict(struct conn *c, enum evict_cause cause, const char *why)
{
	c->w->counters.evicted[cause]++;
	log_debug("conn %llu: evicted (%s): %s", (unsigned long long)c->id, evict_cause_name(cause), why);
	audit_refusal(AUDIT_REFUSAL_EVICTED, c->id, (const struct sockaddr *)&c->peer, why);
	conn_close(c, CLOSE_HANDSHAKE_EVICTED);
}

/* The first time in a while that pressure sheds handshakes, say so once:
 * the audit trail has the detail, the log only needs the fact. */
static void note_pressure(const char *what)
{
	static atomic_uint_fast64_t last_s;
	uint64_t now_s = now_ns() / 1000000000ull, prev = atomic_load(&last_s);

	if (prev && now_s < prev + 60)
		return;
	if (atomic_compare_exchange_strong(&last_s, &prev, now_s))
		log_warn("%s: closing handshakes that have not sent a complete ClientHello "
			 "(audit: \"event\":\"evicted\"; this line repeats at most once a minute)", what);
}

static bool evictable(const struct conn *c)
{
	return c->state == CONN_HANDSHAKE && (c->flags & CONN_F_HS_SLOT);
}

int admission_make_room(struct worker *w, const char *limit, uint64_t now)
{
	struct conn *waiting = NULL;
	char why[256];

	for (struct list_node *n = w->handshakes.next; n != &w->handshakes; n = n->next) {
		struct conn *c = list_entry(n, struct conn, timer);
		if (!evictable(c))
			continue;
		if (!c->tls.hello_received) {
			snprintf(why, sizeof(why), "evicted to make room: no complete ClientHello after "
				 "%llu ms; %s", (unsigned long long)((now - c->hs_start_ns) / 1000000), limit);
			note_pressure(limit);
			evict(c, EVICT_AT_LIMIT, why);
			return 0;
		}
		if (!waiting)
			waiting = c;
	}
	if (!waiting || now - waiting->hs_start_ns < (uint64_t)ADMISSION_EVICT_MIN_AGE_MS * 1000000ull)
		return -EBUSY;
	snprintf(why, sizeof(why), "evicted to make room: ClientHello received, client silent since; "
		 "handshake unfinished after %llu ms; %s",
		 (unsigned long long)((now - waiting->hs_start_ns) / 1000000), limit);
	evict(waiting, EVICT_AT_LIMIT, why);
	return 0;
}

void admission_expire_handshakes(struct worker *w, uint64_t now)
{
	const struct mtlsd_config *cfg = &w->gen->cfg;
	uint64_t full_ns = (uint64_t)cfg->handshake_timeout_ms * 1000000ull;
	unsigned in_flight = admission_pressure(atomic_load(&engine.handshakes), full_ns, now);
	uint64_t hello_ns = admission_hello_timeout_ns(cfg, in_flight);
	struct list_node *n = w->handshakes.next;
	char why[256];

	/* Start order and hello_ns <= full_ns: once one is younger than
	 * hello_ns, so is every one after it. */
	while (n != &w->handshakes) {
		struct conn *c = list_entry(n, struct conn, timer);
		uint64_t age = now - c->hs_start_ns;
		n = n->next; /* c may leave the list below */
		if (age < hello_ns)
			break;
		if (age >= full_ns) {
			if (c->state == CONN_HANDSHAKE)
				conn_handshake_timed_out(c);
			else
				conn_close(c, c->state == CONN_FLUSH_CLOSE ? c->close_reason
									   : CLOSE_HANDSHAKE_TIMEOUT);
		} else if (evictable(c) && !c->tls.hello_received) {
			snprintf(why, sizeof(why), "no complete ClientHello after %llu ms: the handshake "
				 "timeout is reduced to %llu ms under pressure (up to %u of max_handshakes %u "
				 "in flight within handshake_timeout)",
				 (unsigned long long)(age / 1000000), (unsigned long long)(hello_ns / 1000000),
				 in_flight, cfg->max_handshakes);
			note_pressure("handshakes near max_handshakes");
			evict(c, EVICT_REDUCED_TIMEOUT, why);
		}
	}
}
