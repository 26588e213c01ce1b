/*
 * relay.h: moving bytes once a connection is verified (relay_user.c in
 * user-space TLS, relay_ktls.c on an offloaded socket).
 */
#ifndef MTLSD_RELAY_H
#define MTLSD_RELAY_H

#include <stdbool.h>

#include "conn.h"
#include "ktls.h"

void relay_pump(struct conn *c);
void relay_arm_client_recv(struct conn *c);

/*
 * Kernel TLS (relay_ktls.c). relay_ktls_handoff() runs while ktls_pending:
 * it drains what user space still holds and installs the keys; false while
 * it waits for a completion, true once the relay may go on (offloaded or
 * staying in user space). The rest is the relay on an offloaded socket.
 */
bool relay_ktls_handoff(struct conn *c);
void relay_ktls_filled(struct conn *c, int res);
void relay_ktls_client_to_backend(struct conn *c);
void relay_ktls_backend_to_client(struct conn *c);
/* A client receive failed with -EIO (a record that is not data) or
 * -EBADMSG (a record the kernel could not authenticate). */
void relay_ktls_recv_error(struct conn *c, int res);
void relay_ktls_client_sent(struct conn *c, int res);
void relay_ktls_backend_sent(struct conn *c, int res);
/* Queue our close_notify through the kernel (graceful close). */
void relay_ktls_close_notify(struct conn *c);
void relay_submit_shutdown(struct conn *c, int fd, enum uring_op op);
void relay_arm_backend_recv(struct conn *c);
/* The end of each direction, shared by both relays: nothing is pending
 * toward the other side. relay_client_idle: forwards the client's end, or
 * says a client receive is already armed or parked (true: nothing more to
 * do now; false: arm one). relay_backend_idle: forwards the backend's end
 * (our close_notify, then FIN) or arms the next backend receive. */
bool relay_client_idle(struct conn *c);
void relay_backend_idle(struct conn *c);

#endif
