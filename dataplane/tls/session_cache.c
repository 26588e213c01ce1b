/*
 * session_cache.c: mtlsd's server-side session cache (session_cache.h).
 *
 * One mutex guards the table: a lookup or an insert is a hash probe and
 * a few pointer moves, far below the cost of the handshake around it, and
 * the workers of a generation must share the cache (SO_REUSEPORT sends a
 * client's next connection to any of them). SSL_SESSION_free runs after
 * the lock is released.
 */
#include "session_cache.h"

#include "exdata.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	SSL_SESSION *sess;            /* one reference, ours */
	unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
	unsigned idlen;
	struct entry *hnext;          /* hash chain */
	struct entry *prev, *next;    /* LRU: head most recent */
};

struct session_cache {
	pthread_mutex_t mu;
	unsigned capacity, held;
	struct entry **buckets;
	size_t mask;                  /* buckets - 1, a power of two */
	struct entry lru;             /* sentinel */
	session_cache_judge_fn *judge;
	void *judge_arg;
	uint64_t hits, misses, refused, evicted;
};

static void unlink_entry(struct session_cache *sc, struct entry *e);

void session_cache_free(struct session_cache *sc)
{
	if (!sc)
		return;
	while (sc->lru.next != &sc->lru) {
		struct entry *e = sc->lru.next;
		unlink_entry(sc, e);
		SSL_SESSION_free(e->sess);
		free(e);
	}
	free(sc->buckets);
	pthread_mutex_destroy(&sc->mu);
	free(sc);
}

static struct session_cache *cache_of(SSL_CTX *ctx)
{
	return exdata_session_cache(ctx);
}

static struct session_cache *get_or_create(SSL_CTX *ctx)
{
	struct session_cache *sc;

	if (!ctx || exdata_init() < 0)
		return NULL;
	sc = cache_of(ctx);
	if (sc)
		return sc;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	pthread_mutex_init(&sc->mu, NULL);
	sc->lru.prev = sc->lru.next = &sc->lru;
	if (exdata_set_session_cache(ctx, sc) < 0)
		return NULL; /* freed by the registry */
	return sc;
}

/* Session ids are random (32 bytes from the server's RNG): their first
 * bytes are a fine hash; a short or chosen one still lands in a bucket. */
static size_t bucket_of(const struct session_cache *sc, const unsigned char *id, unsigned len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a over at most 8 bytes */
	for (unsigned i = 0; i < len && i < 8; i++)
		h = (h ^ id[i]) * 1099511628211ull;
	return (size_t)h & sc->mask;
}

static struct entry **find_slot(struct session_cache *sc, const unsigned char *id, unsigned len)
{
	struct entry **pp = &sc->buckets[bucket_of(sc, id, len)];
	while (*pp && ((*pp)->idlen != len || memcmp((*pp)->id, id, len) != 0))
		pp = &(*pp)->hnext;
	return pp;
}

static void lru_push_front(struct session_cache *sc, struct entry *e)
{
	e->prev = &sc->lru;
	e->next = sc->lru.next;
	sc->lru.next->prev = e;
	sc->lru.next = e;
}

static void lru_unlink(struct entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void unlink_entry(struct session_cache *sc, struct entry *e)
{
	if (sc->buckets) {
		struct entry **pp = find_slot(sc, e->id, e->idlen);
		if (*pp == e)
			*pp = e->hnext;
	}
	lru_unlink(e);
	sc->held--;
}

static int on_new(SSL *ssl, SSL_SESSION *sess)
{
	struct session_cache *sc = cache_of(SSL_get_SSL_CTX(ssl));
	unsigned len = 0;
	const unsigned char *id = SSL_SESSION_get_id(sess, &len);
	struct entry *gone = NULL, *e;

	if (!sc || !sc->buckets || len == 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
		return 0; /* not kept: OpenSSL frees nothing of ours */
	e = malloc(sizeof(*e));
	if (!e)
		return 0;
	e->sess = sess;
	memcpy(e->id, id, len);
	e->idlen = len;

	pthread_mutex_lock(&sc->mu);
	struct entry **pp = find_slot(sc, id, len);
	if (*pp) { /* the same id again: the newer session wins */
		gone = *pp;
		unlink_entry(sc, gone);
		pp = find_slot(sc, id, len);
	} else if (sc->held >= sc->capacity) {
		gone = sc->lru.prev;
		unlink_entry(sc, gone);
		sc->evicted++;
		pp = find_slot(sc, id, len);
	}
	e->hnext = NULL;
	*pp = e;
	lru_push_front(sc, e);
	sc->held++;
	pthread_mutex_unlock(&sc->mu);

	if (gone) {
		SSL_SESSION_free(gone->sess);
		free(gone);
	}
	return 1; /* the reference is ours now */
}

static SSL_SESSION *on_get(SSL *ssl, const unsigned char *id, int len, int *copy)
{
	struct session_cache *sc = cache_of(SSL_get_SSL_CTX(ssl));
	struct entry *e, *gone = NULL;
	SSL_SESSION *found = NULL;

	*copy = 1; /* OpenSSL takes its own reference to what we return */
	if (!sc || !sc->buckets || len <= 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
		return NULL;
	pthread_mutex_lock(&sc->mu);
	e = *find_slot(sc, id, (unsigned)len);
	if (!e) {
		sc->misses++;
	} else if (sc->judge && !sc->judge(e->sess, sc->judge_arg)) {
		/* Its binding no longer holds: a miss, so the client is
		 * verified in full rather than refused after resuming. */
		unlink_entry(sc, e);
		gone = e;
		sc->refused++;
	} else {
		lru_unlink(e);
		lru_push_front(sc, e);
		found = e->sess;
		sc->hits++;
	}
	pthread_mutex_unlock(&sc->mu);
	if (gone) {
		SSL_SESSION_free(gone->sess);
		free(gone);
	}
	return found;
}

static void on_remove(SSL_CTX *ctx, SSL_SESSION *sess)
{
	struct session_cache *sc = cache_of(ctx);
	unsigned len = 0;
	const unsigned char *id = SSL_SESSION_get_id(sess, &len);
	struct entry *e = NULL;

	if (!sc || !sc->buckets || len == 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
		return;
	pthread_mutex_lock(&sc->mu);
	struct entry *cand = *find_slot(sc, id, len);
	if (cand && cand->sess == sess) {
		unlink_entry(sc, cand);
		e = cand;
	}
	pthread_mutex_unlock(&sc->mu);
	if (e) {
		SSL_SESSION_free(e->sess);
		free(e);
	}
}

int session_cache_attach(SSL_CTX *ctx, unsigned capacity)
{
	ENSURE(ctx && capacity >= 1, EINVAL);
	struct session_cache *sc = get_or_create(ctx);
	ENSURE_PTR(sc, ENOMEM);
	ENSURE(!sc->buckets, EINVAL); /* once per context */

	size_t n = 1;
	while (n < capacity && n < ((size_t)1 << 24))
		n <<= 1;
	sc->buckets = calloc(n, sizeof(*sc->buckets));
	ENSURE_PTR(sc->buckets, ENOMEM);
	sc->mask = n - 1;
	sc->capacity = capacity;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_new_cb(ctx, on_new);
	SSL_CTX_sess_set_get_cb(ctx, on_get);
	SSL_CTX_sess_set_remove_cb(ctx, on_remove);
	return 0;
}

int session_cache_set_judge(SSL_CTX *ctx, session_cache_judge_fn *judge, void *arg)
{
	struct session_cache *sc = get_or_create(ctx);
	ENSURE_PTR(sc, ENOMEM);
	pthread_mutex_lock(&sc->mu);
	sc->judge = judge;
	sc->judge_arg = arg;
	pthread_mutex_unlock(&sc->mu);
	return 0;
}

bool session_cache_stats(SSL_CTX *ctx, struct session_cache_stats *out)
{
	struct session_cache *sc = cache_of(ctx);

	if (!sc || !sc->buckets)
		return false;
	pthread_mutex_lock(&sc->mu);
	*out = (struct session_cache_stats){ .capacity = sc->capacity, .held = sc->held, .hits = sc->hits,
					     .misses = sc->misses, .refused = sc->refused,
					     .evicted = sc->evicted };
	pthread_mutex_unlock(&sc->mu);
	return true;
}
