/*
 * relay.c: what every relay does the same way (relay.h).
 *
 * The backend speaks plaintext whichever way TLS is done, so a backend
 * receive is recorded the same way by every relay; the client's end is
 * forwarded as SHUT_WR toward the backend without any TLS; and the end of
 * every pump tells the state machine which side has ended.
 */
#include "relay.h"

#include "conn_submit.h"

void relay_backend_received(struct conn *c, int res, int bid)
{
	struct conn_dir *b = &c->dir[CONN_BACKEND];

	if (res > 0) {
		b->bid = bid;
		b->len = (uint32_t)res;
		b->off = 0;
	} else if (res == 0) {
		b->flags |= DIR_F_EOF;
	} else {
		conn_mark_close(c, CLOSE_BACKEND_ERROR);
	}
}

bool relay_client_idle(struct conn *c)
{
	unsigned cf = c->dir[CONN_CLIENT].flags;

	if (cf & DIR_F_EOF) {
		/* Everything the client sent is at the backend: forward the end. */
		conn_submit_shutdown(c, CONN_BACKEND);
		return true;
	}
	return (cf & (DIR_F_RECV_ARMED | DIR_F_WANT_RECV)) != 0;
}

void relay_backend_idle(struct conn *c)
{
	unsigned bf = c->dir[CONN_BACKEND].flags;

	if (bf & DIR_F_EOF) {
		c->relay->half_close(c);
		return;
	}
	if (bf & (DIR_F_RECV_ARMED | DIR_F_WANT_RECV))
		return;
	conn_submit_recv(c, CONN_BACKEND);
}

void relay_note_ends(struct conn *c)
{
	unsigned cf = c->dir[CONN_CLIENT].flags, bf = c->dir[CONN_BACKEND].flags;

	if ((cf & DIR_F_SHUT_DONE) && (bf & DIR_F_SHUT_DONE)) {
		conn_mark_close(c, CLOSE_COMPLETE);
		return;
	}
	if ((cf & DIR_F_EOF) && !(bf & DIR_F_EOF))
		conn_fire(c, CONN_EV_CLIENT_END);
	else if ((bf & DIR_F_EOF) && !(cf & DIR_F_EOF))
		conn_fire(c, CONN_EV_BACKEND_END);
}
