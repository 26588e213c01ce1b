/*
 * engine.h: the connection state machine's entry points, shared by the
 * per-thread loop (thread.c) and the state machine itself (engine.c).
 */
#ifndef LG_ENGINE_H
#define LG_ENGINE_H

#include "loadgen.h"

/* Fill the shared payload pattern once, before threads start. */
void lg_pattern_init(void);

/* Open a new connection in slot c (which must be ST_FREE). */
void lg_conn_start(struct lg_thread *t, struct lg_conn *c);

/* Count error e against c and close it; the slot is recycled once no
 * request points at it. No-op on a slot already closing. */
void lg_conn_fail(struct lg_thread *t, struct lg_conn *c, enum lg_err e);

/* Close c cleanly (close_notify); the slot is recycled once no request
 * points at it, and restarted unless the run is stopping. */
void lg_conn_close(struct lg_thread *t, struct lg_conn *c);

/* rr: c (ST_READY) takes the oldest due request, if any. */
void lg_conn_ready(struct lg_thread *t, struct lg_conn *c);

/* Decode and act on one completion. */
void lg_dispatch(struct lg_thread *t, const struct io_uring_cqe *cqe);

#endif
