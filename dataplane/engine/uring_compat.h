/*
 * uring_compat.h: liburing feature backfills, in one place.
 *
 * Debian 12 ships liburing 2.3, which has io_uring_register_buf_ring() but
 * not io_uring_setup_buf_ring() (2.4). The ring setup flags are tried from
 * the most to the least capable so mtlsd degrades instead of failing on an
 * older kernel.
 */
#ifndef MTLSD_URING_COMPAT_H
#define MTLSD_URING_COMPAT_H

#include <liburing.h>
#include <stdint.h>

#include "guard.h"

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif

/*
 * Create a ring of `entries` SQEs, asking for SINGLE_ISSUER|COOP_TASKRUN and
 * retrying without them when the kernel refuses (-EINVAL). Returns 0 or the
 * negative errno of the last attempt (-EPERM/-ENOSYS/-EACCES when io_uring
 * is disabled or filtered). *flags_out gets the flags that were accepted.
 */
int uring_compat_queue_init(unsigned entries, struct io_uring *ring, unsigned *flags_out) MUST_CHECK;

/*
 * Map and register a provided-buffer ring of `entries` (a power of two)
 * for buffer group bgid. *out points at the ring; release it with
 * uring_compat_free_buf_ring(). Returns 0 or a negative errno.
 */
int uring_compat_setup_buf_ring(struct io_uring *ring, unsigned entries, int bgid,
				struct io_uring_buf_ring **out) MUST_CHECK;
void uring_compat_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br,
				unsigned entries, int bgid);

#endif
