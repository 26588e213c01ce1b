/*
 * worker_sqe.c: the one place an SQE is taken from a worker's ring.
 *
 * Alone in its file on purpose: it is the seam between the engine and the
 * kernel. tests/unit/test_conn_fsm.c links its own worker_sqe() instead of
 * this one (the linker then never pulls this object out of the library)
 * and so sees every request the state machine and the relays make, with
 * no ring and no sockets; mtlsd pays nothing for it.
 */
#include "worker.h"

struct io_uring_sqe *worker_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	while (!sqe) {
		/* SQ full: hand what we have to the kernel and take a fresh slot. */
		(void)io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}
