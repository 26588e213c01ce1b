/*
 * acct_fallback.c: the bounded in-process counter table (see
 * acct_fallback.h). One mutex: it is taken once per handshake end, which
 * costs a few tens of nanoseconds next to a handshake's ~1 ms.
 */
#include "acct_fallback.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Slots searched from a key's hash before an entry is replaced. */
#define PROBE_WINDOW 8

struct slot {
	bool used;
	struct acct_record rec;
};

struct acct_table {
	pthread_mutex_t lock;
	size_t mask;               /* capacity - 1 */
	uint64_t version;
	struct acct_totals totals;
	struct slot *slots;
};

static size_t round_up_pow2(size_t n)
{
	size_t p = PROBE_WINDOW;

	while (p < n)
		p <<= 1;
	return p;
}

int acct_table_new(size_t capacity, struct acct_table **out)
{
	struct acct_table *t;

	*out = NULL;
	ENSURE(capacity > 0 && capacity <= (1u << 24), EINVAL);
	t = calloc(1, sizeof(*t));
	ENSURE_PTR(t, ENOMEM);
	capacity = round_up_pow2(capacity);
	t->slots = calloc(capacity, sizeof(*t->slots));
	if (!t->slots) {
		free(t);
		return -ENOMEM;
	}
	t->mask = capacity - 1;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void acct_table_free(struct acct_table *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->slots);
	free(t);
}

/* FNV-1a over the whole key (padding is always zero). */
static uint64_t key_hash(const struct acct_key *key)
{
	const uint8_t *p = (const uint8_t *)key;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < sizeof(*key); i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/*
 * The slot for key: its own, else a free one in the window (*fresh set),
 * else the least recently seen one in the window, evicted (*fresh set).
 * Called with the lock held.
 */
static struct slot *slot_for(struct acct_table *t, const struct acct_key *key, bool *fresh)
{
	size_t start = (size_t)key_hash(key);
	struct slot *free_slot = NULL, *oldest = NULL;

	*fresh = false;
	for (size_t i = 0; i < PROBE_WINDOW; i++) {
		struct slot *s = &t->slots[(start + i) & t->mask];
		if (!s->used) {
			if (!free_slot)
				free_slot = s;
			continue;
		}
		if (memcmp(&s->rec.key, key, sizeof(*key)) == 0)
			return s;
		if (!oldest || s->rec.c.last_seen_ns < oldest->rec.c.last_seen_ns)
			oldest = s;
	}
	struct slot *s = free_slot ? free_slot : oldest;
	memset(s, 0, sizeof(*s));
	s->used = true;
	s->rec.key = *key;
	s->rec.c.last_partner = ACCT_NO_PARTNER;
	*fresh = true;
	return s;
}

bool acct_table_add(struct acct_table *t, const struct acct_key *key,
		    const struct acct_sample *smp)
{
	bool fresh;

	pthread_mutex_lock(&t->lock);
	struct slot *s = slot_for(t, key, &fresh);
	struct acct_counters *c = &s->rec.c;
	if (fresh)
		t->totals.new_keys++;
	t->totals.events++;
	c->outcome[smp->bucket < ACCT_BUCKETS ? smp->bucket : ACCT_B_OTHER]++;
	c->hist[acct_hist_slot(smp->duration_ns)]++;
	c->duration_sum_ns += smp->duration_ns;
	c->last_seen_ns = smp->boot_ns;
	c->last_partner = smp->partner;
	c->last_tls_version = smp->tls_version;
	c->last_cipher = smp->cipher;
	bool wants_meta = !s->rec.has_meta;
	t->version++;
	pthread_mutex_unlock(&t->lock);
	return wants_meta;
}

/* Only looks (never inserts or evicts): the key was added just before. */
void acct_table_set_meta(struct acct_table *t, const struct acct_key *key,
			 const struct acct_meta *meta)
{
	size_t start = (size_t)key_hash(key);

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < PROBE_WINDOW; i++) {
		struct slot *s = &t->slots[(start + i) & t->mask];
		if (s->used && memcmp(&s->rec.key, key, sizeof(*key)) == 0) {
			if (!s->rec.has_meta) {
				s->rec.meta = *meta;
				s->rec.has_meta = 1;
				t->version++;
			}
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

size_t acct_table_snapshot(struct acct_table *t, struct acct_record *out, size_t cap,
			   struct acct_totals *totals)
{
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i <= t->mask && n < cap; i++)
		if (t->slots[i].used)
			out[n++] = t->slots[i].rec;
	*totals = t->totals;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void acct_table_restore(struct acct_table *t, const struct acct_record *recs, size_t n,
			const struct acct_totals *totals)
{
	bool fresh;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < n; i++) {
		struct slot *s = slot_for(t, &recs[i].key, &fresh);
		if (fresh)
			s->rec = recs[i];
		else
			acct_counters_merge(&s->rec.c, &recs[i].c);
	}
	/* The saved totals already count these keys as inserted once. */
	t->totals = *totals;
	t->version++;
	pthread_mutex_unlock(&t->lock);
}

uint64_t acct_table_version(struct acct_table *t)
{
	pthread_mutex_lock(&t->lock);
	uint64_t v = t->version;
	pthread_mutex_unlock(&t->lock);
	return v;
}

size_t acct_table_capacity(const struct acct_table *t)
{
	return t->mask + 1;
}
