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

#endif
