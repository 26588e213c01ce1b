/*
 * control.h: mtlsd's control socket (the server side of `mtlsctl reload |
 * status | certs | drop | reopen`).
 *
 * A unix stream socket (default /run/mtlsd/control.sock, mode 0600, or
 * 0660 with control_group; its directory is created 0750 if missing),
 * served by one thread of its own so that nothing a client does can stall
 * a worker: up to 8 clients at once, each with 2 s from its accept to send
 * its whole request and 2 s to take its reply, so an idle or slow client
 * blocks no other; requests bounded at 64 KiB (lib/ctlproto.h). Peer
 * credentials (SO_PEERCRED) decide who may talk: root, mtlsd's own user,
 * or a member of control_group; anyone else gets an error reply and is
 * logged.
 *
 * Requests that touch connections (drop) are carried to each worker as an
 * io_uring message (IORING_OP_MSG_RING) into the worker's own ring and
 * executed on the worker thread; the control thread waits for every
 * worker's answer. Counters for status are read racily from the workers
 * (plain 64-bit loads) and the process-wide atomics.
 */
#ifndef MTLSD_CONTROL_H
#define MTLSD_CONTROL_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "guard.h"

#define CONTROL_SOCKET_DEFAULT "/run/mtlsd/control.sock"

struct worker;
struct ctl_msg;
struct generation;

/*
 * Create and bind the control socket named by cfg, before mtlsd gives up
 * its privileges (the runtime directory is usually root's): after the drop
 * the listening descriptor is all it needs. Returns 0 or -errno with err
 * naming the path. Idempotent.
 */
int control_open(const struct mtlsd_config *cfg, char *err, size_t errlen) MUST_CHECK;

/*
 * --takeover (a binary upgrade): where another mtlsd answers on the control
 * socket, control_open binds PATH.takeover instead of refusing, and
 * control_start renames it over PATH once this mtlsd serves, so mtlsctl
 * reaches the new instance from then on and the old one, which unlinks
 * only its own file, leaves it alone. Without it control_open fails with
 * -EADDRINUSE, naming the other instance's pid. Call before control_open.
 */
void control_set_takeover(bool on);

/*
 * Open the control socket (if control_open was not called) and start its thread, serving
 * workers ws[0..n). Returns 0 or -errno with err naming the path; mtlsd
 * keeps serving traffic without a control socket in that case (the caller
 * logs it).
 */
int control_start(const struct mtlsd_config *cfg, struct worker *ws, unsigned n, char *err,
		  size_t errlen) MUST_CHECK;

/* Stop the thread, close and unlink the socket (if it is still ours).
 * Call before the workers' memory goes. Safe without control_start(). */
void control_stop(void);

/* Called by a worker for its OP_CONTROL completion: run the pending
 * cross-thread request (drop) on this worker's connections. */
void control_on_worker_message(struct worker *w);

/* The body of `certs`: one "cert=" field per server certificate, partner
 * CA and CRL of generation g (control_certs.c). */
void control_certs_reply(const struct generation *g, struct ctl_msg *reply);

#endif
