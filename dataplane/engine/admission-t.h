/*
 * admission-t.h: the types of handshake admission (admission.h has the
 * functions and the reasoning).
 */
#ifndef MTLSD_ADMISSION_T_H
#define MTLSD_ADMISSION_T_H

#include <stdbool.h>
#include <stdint.h>

/* Why a handshake was closed under pressure; one counter each. */
enum evict_cause {
	EVICT_AT_LIMIT = 0,          /* a newcomer needed its slot */
	EVICT_REDUCED_TIMEOUT,       /* no ClientHello within the reduced timeout */
	EVICT_CAUSE_MAX
};

/* One handshake counted against its source (two buckets of the sketch). */
struct source_ticket {
	uint16_t bucket[2];
	bool held;
};

#endif
