/*
 * guard.h: the error convention every mtlsd module follows.
 *
 * Fallible functions return int: 0 on success or a negative errno, the same
 * convention as io_uring's cqe->res and libbpf. Callers check every call
 * through these macros so that an error travels up unchanged and is reported
 * once, by the caller that knows the file, line, connection or partner.
 * (After s2n-tls's safety macros and systemd's cleanup attributes.)
 */
#ifndef MTLS_GUARD_H
#define MTLS_GUARD_H

#include <errno.h>
#include <stdlib.h>

#define MUST_CHECK __attribute__((warn_unused_result))
#define UNUSED     __attribute__((unused))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Propagate a negative return value unchanged. */
#define GUARD(expr)                                                          \
	do {                                                                 \
		int guard_rc_ = (expr);                                      \
		if (unlikely(guard_rc_ < 0))                                 \
			return guard_rc_;                                    \
	} while (0)

/* Return -err (err is a positive errno constant) unless cond holds. */
#define ENSURE(cond, err)                                                    \
	do {                                                                 \
		if (unlikely(!(cond)))                                       \
			return -(err);                                       \
	} while (0)

/* Non-NULL or return -err. */
#define ENSURE_PTR(ptr, err) ENSURE((ptr) != NULL, err)

/*
 * OpenSSL returns 1 for success from most calls. Anything else becomes
 * -err (the OpenSSL error queue still holds the detail for the caller that
 * reports it).
 */
#define GUARD_OSSL(expr, err)                                                \
	do {                                                                 \
		if (unlikely((expr) != 1))                                   \
			return -(err);                                       \
	} while (0)

/* The same, jumping to a cleanup label with rc set, for functions that own
 * several resources and release them in one place. */
#define GUARD_GOTO(expr, rc, label)                                          \
	do {                                                                 \
		(rc) = (expr);                                               \
		if (unlikely((rc) < 0))                                      \
			goto label;                                          \
	} while (0)

#define ENSURE_GOTO(cond, rc, err, label)                                    \
	do {                                                                 \
		if (unlikely(!(cond))) {                                     \
			(rc) = -(err);                                       \
			goto label;                                          \
		}                                                            \
	} while (0)

/* Scope-bound cleanup for locals: `_cleanup_(freep) char *s = ...`. */
#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p)
{
	free(*(void **)p);
}

#endif
