/*
 * host_probe.h: what mtlsd needs from this kernel, asked one way.
 *
 * mtlsd at start (ktls_global_init, main's io_uring check) and `mtlsctl
 * doctor` ask the same questions with the same code, so a host that
 * passes doctor is a host mtlsd runs on, and the other way round. Each
 * probe does the real thing on a small scale (attach the tls ULP to a
 * loopback connection, ask a ring which opcodes it has) instead of reading
 * a version number.
 *
 * The io_uring table below is the list of operations mtlsd submits, each
 * with the liburing helpers that submit it. tests/unit/test_host_probe.c
 * reads every io_uring_prep_*() call under dataplane/ and fails when one is
 * missing from the table, or when the table names a helper nothing calls:
 * the list doctor checks cannot drift from what the engine does.
 */
#ifndef MTLS_HOST_PROBE_H
#define MTLS_HOST_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "guard.h"

struct io_uring;

/* The io_uring operations mtlsd submits; bit n of a probe's answer. Append
 * only: doctor prints missing ones in this order. */
enum uring_need {
	URING_NEED_ACCEPT,
	URING_NEED_RECV,
	URING_NEED_SEND,
	URING_NEED_CONNECT,
	URING_NEED_READ,
	URING_NEED_NOP,
	URING_NEED_TIMEOUT,
	URING_NEED_LINK_TIMEOUT,
	URING_NEED_ASYNC_CANCEL,
	URING_NEED_SENDMSG,
	URING_NEED_POLL_ADD,
	URING_NEED_MSG_RING,
	URING_NEED_MAX
};

struct uring_need_desc {
	uint8_t opcode;                 /* IORING_OP_* */
	const char *const preps[3];     /* the io_uring_prep_*() helpers mtlsd submits it with */
};

/* Indexed by enum uring_need. */
extern const struct uring_need_desc uring_needs[URING_NEED_MAX];

/* "accept", "msg_ring"... (liburing's op name without IORING_OP_, lower case). */
const char *uring_need_name(enum uring_need n);
/* The need named s, or -ENOENT. */
int uring_need_from_name(const char *s);

/* Every need's bit set: what a ring must answer for mtlsd to run. */
#define URING_NEEDS_ALL ((uint32_t)((1u << URING_NEED_MAX) - 1))

/*
 * Which of uring_needs the kernel behind ring offers: bit n of *have for
 * uring_needs[n]. -ENOMEM or -errno when the kernel cannot be asked (a
 * kernel older than 5.6 has no IORING_REGISTER_PROBE).
 */
int host_probe_uring_ops(struct io_uring *ring, uint32_t *have) MUST_CHECK;

/* The names of the needs missing from have, "sendmsg,msg_ring", into buf
 * ("" when none is). Returns buf. */
const char *uring_needs_missing(uint32_t have, char *buf, size_t len);

/* setsockopt(2), or a test's stand-in for it (ktls.h's seam). */
typedef int (*host_setsockopt_fn)(int fd, int level, int name, const void *val, socklen_t len);

/*
 * Attach the tls ULP (setsockopt TCP_ULP "tls", through set, or the real
 * setsockopt when set is NULL) to the client end of a connected loopback
 * TCP pair: the only reliable test, since the module may be built in,
 * loadable or absent. 0 when it attached; -ENOENT when the kernel has no
 * such ULP; another -errno when the loopback pair could not be made.
 */
int host_probe_tls_ulp(host_setsockopt_fn set);

#endif
