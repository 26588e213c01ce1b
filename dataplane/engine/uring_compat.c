/*
 * uring_compat.c: see uring_compat.h.
 */
#include "uring_compat.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int uring_compat_queue_init(unsigned entries, struct io_uring *ring, unsigned *flags_out)
{
	static const unsigned attempts[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -ENOSYS;

	for (size_t i = 0; i < ARRAY_SIZE(attempts); i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		p.flags = attempts[i];
		rc = io_uring_queue_init_params(entries, ring, &p);
		if (rc == 0) {
			*flags_out = attempts[i];
			return 0;
		}
		/* Only "flag not supported" is worth another try; EPERM, ENOSYS,
		 * ENOMEM mean io_uring itself is not available. */
		if (rc != -EINVAL)
			return rc;
	}
	return rc;
}

int uring_compat_setup_buf_ring(struct io_uring *ring, unsigned entries, int bgid,
				struct io_uring_buf_ring **out)
{
	size_t len = (size_t)entries * sizeof(struct io_uring_buf);
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;

	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)mem;
	reg.ring_entries = entries;
	reg.bgid = (unsigned short)bgid;
	int rc = io_uring_register_buf_ring(ring, &reg, 0);
	if (rc < 0) {
		munmap(mem, len);
		return rc;
	}
	*out = mem;
	io_uring_buf_ring_init(*out);
	return 0;
}

void uring_compat_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br,
				unsigned entries, int bgid)
{
	if (!br)
		return;
	(void)io_uring_unregister_buf_ring(ring, bgid);
	munmap(br, (size_t)entries * sizeof(struct io_uring_buf));
}
