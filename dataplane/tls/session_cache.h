/*
 * session_cache.h: the server-side session cache of `session_cache =
 * stateful` (the default without a ticket_key_file), in place of OpenSSL's
 * internal one.
 *
 * Why not OpenSSL's: its cache keeps its list ordered by expiry, and inserts
 * by walking it from the newest end whenever a session expires earlier than
 * the newest one. mtlsd gives every session the expiry its verification
 * allows (session_binding.h: a resumed session keeps its first verification
 * time), so every resumption's new session lands mid-list: on OpenSSL 3.5,
 * whose session times have nanosecond resolution, SSL_SESSION_list_add took
 * 11% of mtlsd's CPU on resumed handshakes with ~8,000 sessions held, and it
 * grows with the cache. And a session whose binding no longer holds can
 * only be refused after OpenSSL resumed it; here the lookup misses instead,
 * and the client is verified in full.
 *
 * This one: a hash of session ids and a least-recently-used list, O(1) for
 * every operation, one mutex per generation (the workers share it), holding
 * references to the SSL_SESSION objects themselves (nothing is encoded).
 * Bounded: past the capacity the least recently used session goes.
 */
#ifndef MTLSD_SESSION_CACHE_H
#define MTLSD_SESSION_CACHE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "guard.h"

/* Whether a cached session may still be resumed (the binding's verdict);
 * false makes the lookup miss and drops the session. */
typedef bool session_cache_judge_fn(SSL_SESSION *sess, void *arg);

/*
 * Make ctx's server cache this one, holding at most capacity sessions
 * (>= 1): SSL_SESS_CACHE_SERVER with OpenSSL's internal store and lookup
 * off, and the new/get/remove callbacks here. The cache is freed with ctx.
 * Returns 0, -EINVAL or -ENOMEM.
 */
int session_cache_attach(SSL_CTX *ctx, unsigned capacity) MUST_CHECK;

/* The judge consulted on every lookup of ctx's cache; may be set before or
 * after session_cache_attach (ctx gets a cache either way). */
int session_cache_set_judge(SSL_CTX *ctx, session_cache_judge_fn *judge, void *arg) MUST_CHECK;

struct session_cache_stats {
	unsigned capacity, held;
	uint64_t hits, misses, refused, evicted;
};

/* A snapshot; false when ctx has no attached cache. */
bool session_cache_stats(SSL_CTX *ctx, struct session_cache_stats *out);

#endif
