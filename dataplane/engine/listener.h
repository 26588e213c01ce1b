/*
 * listener.h: a listening TCP socket for one worker.
 *
 * Every worker opens its own socket per configured address with
 * SO_REUSEPORT, so the kernel spreads new connections across workers and no
 * accept lock is shared. IPv6 sockets are V6ONLY: "[::]:8443" and
 * "0.0.0.0:8443" are two listeners, as configured.
 */
#ifndef MTLSD_LISTENER_H
#define MTLSD_LISTENER_H

#include "config.h"
#include "guard.h"

#define LISTEN_BACKLOG 4096

/* Open, bind and listen on addr. Returns 0 and *fd, or -errno. */
int listener_open(const struct cfg_addr *addr, int *fd) MUST_CHECK;

/*
 * When addr asks for port 0, rewrite it (and its text) to the port the
 * kernel picked for fd, so the next workers join the same port.
 */
int listener_pin_port(struct cfg_addr *addr, int fd) MUST_CHECK;

/*
 * One mtlsd per address. SO_REUSEPORT would let a second process bind the
 * same address and the kernel would split new connections between the two
 * (two configurations, two CRLs), so mtlsd refuses to start beside another
 * listener unless told to take over (--takeover, a binary upgrade):
 *
 * listener_check_free, before addr is opened: bind a probe socket without
 * SO_REUSEPORT (SO_REUSEADDR on, so sockets in TIME_WAIT and connections
 * still draining from a stopped instance do not count: only a listener
 * makes it fail). -EADDRINUSE when something listens, err naming the
 * address and, when /proc shows it, the process. Port 0 always passes;
 * other bind errors pass too (listener_open reports them).
 *
 * listener_check_alone, once every worker's socket for addr is open (fds,
 * n): -EADDRINUSE when a socket other than those listens on addr, so of two
 * instances started at the same moment, which both passed the probe, the
 * later one at least sees the other.
 */
int listener_check_free(const struct cfg_addr *addr, char *err, size_t errlen) MUST_CHECK;
int listener_check_alone(const struct cfg_addr *addr, const int *fds, size_t n, char *err,
			 size_t errlen) MUST_CHECK;

#endif
