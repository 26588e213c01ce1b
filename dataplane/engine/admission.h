/*
 * admission.h: who gets a handshake slot when slots are scarce.
 *
 * A limit that the cheapest attack fills is a lock-out switch: 1,000
 * connections that send eleven bytes of a ClientHello and then nothing
 * would otherwise hold every `max_handshakes` slot for the whole handshake
 * timeout while every partner is refused. So under pressure mtlsd makes
 * room instead of refusing, in three ways:
 *
 *  - Per source: one client address (IPv4) or one IPv6 /64 may hold at
 *    most `max_handshakes_per_source` handshakes; beyond it, refused at
 *    accept. A /64 because that is what one host or one customer is
 *    given: counting full IPv6 addresses would let one machine use 2^64.
 *  - At the limit (max_handshakes or max_connections reached), the worker
 *    that accepted the newcomer closes one of its own handshakes that made
 *    the least progress: one without a complete ClientHello, oldest first;
 *    failing that, the oldest that has been waiting at least
 *    ADMISSION_EVICT_MIN_AGE_MS for the client's next flight. Only if it
 *    has neither is the newcomer refused.
 *  - Reduced timeouts (Envoy's overload manager `reduce_timeouts`): above
 *    ADMISSION_PRESSURE_START_PCT of max_handshakes in flight, handshakes
 *    without a complete ClientHello get a timeout that shrinks linearly
 *    from handshake_timeout down to ADMISSION_HELLO_TIMEOUT_FLOOR_MS at
 *    100%. The occupancy that counts is the highest seen within the last
 *    handshake_timeout, not the current one: otherwise shedding half of a
 *    flood would bring the full timeout back for the other half, which
 *    would then hold its slots for all of it. A handshake that started in
 *    the crush is judged by the crush.
 *    This is also what sheds the stalled handshakes of *other* workers:
 *    a connection is only ever touched by the worker that owns it, so a
 *    worker cannot evict its neighbour's. The kernel spreads connections
 *    over workers by a hash of the 4-tuple with a boot-time secret, so an
 *    attacker's connections land as evenly as anyone's; a worker that has
 *    nothing of its own to evict refuses, and every worker sheds its
 *    stalled handshakes on its own tick within about a second.
 *
 * Closing under pressure is audited as `"event":"evicted"` through the
 * rate-limited refusal lines (audit.h) and counted by cause; it is not a
 * handshake outcome (nothing was presented yet).
 */
#ifndef MTLSD_ADMISSION_H
#define MTLSD_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "admission-t.h"
#include "config.h"
#include "guard.h"

struct conn;
struct worker;

/* Above this share of max_handshakes in flight, timeouts shrink. */
#define ADMISSION_PRESSURE_START_PCT 75
/* ... down to this (or handshake_timeout, if shorter) at 100%. */
#define ADMISSION_HELLO_TIMEOUT_FLOOR_MS 1000
/* A handshake that has its ClientHello is evicted only after this long. */
#define ADMISSION_EVICT_MIN_AGE_MS 1000

const char *evict_cause_name(enum evict_cause cause);
int evict_cause_from_name(const char *s);

/*
 * Count one more handshake from peer against limit (0: no per-source
 * limit; families other than IPv4/IPv6 are not counted). 0 and *t held,
 * or -EBUSY when the source already holds limit handshakes (nothing is
 * counted then). Process-wide and lock-free: a count-min sketch of
 * atomic counters under a per-process random key, which may over-count
 * (two sources sharing both buckets) but never under-counts, so a source
 * can never exceed its limit.
 */
int admission_source_take(const struct sockaddr *peer, unsigned limit, struct source_ticket *t)
	MUST_CHECK;

/* Give back what admission_source_take counted. Safe on an empty ticket. */
void admission_source_put(struct source_ticket *t);

/* The source as counted, for messages: "192.0.2.7" or "2001:db8:1:2::/64". */
void admission_source_text(const struct sockaddr *peer, char *buf, size_t len);

/*
 * The timeout, in ns, for a handshake without a complete ClientHello when
 * in_flight handshakes are running (process-wide) under cfg. Pure.
 */
uint64_t admission_hello_timeout_ns(const struct mtlsd_config *cfg, unsigned in_flight);

/*
 * The occupancy pressure is judged by: the most handshakes in flight seen
 * (admission_note_in_flight) within the last hold_ns, or now_in_flight if
 * higher. Any thread.
 */
unsigned admission_pressure(unsigned now_in_flight, uint64_t hold_ns, uint64_t now);

/* Record in_flight handshakes at now (accept calls it). Any thread. */
void admission_note_in_flight(unsigned in_flight, uint64_t now);

/*
 * A limit was reached while w accepted a connection: close the handshake
 * of w that made the least progress, so the newcomer can have its slot.
 * limit names what was reached, for the audit line ("max_handshakes (1000)
 * reached").
 * 0 when one was closed (its handshake slot is already free), -EBUSY when
 * w has none that may go.
 */
int admission_make_room(struct worker *w, const char *limit, uint64_t now) MUST_CHECK;

/*
 * The tick's handshake deadlines: handshakes past handshake_timeout time
 * out (outcome `timeout`), and under pressure those without a complete
 * ClientHello past the reduced timeout are evicted.
 */
void admission_expire_handshakes(struct worker *w, uint64_t now);

#endif
