/*
 * conn_fsm.c: the connection's state machine as data.
 *
 * One row per state, one column per event: the state the event leads to.
 * An event that does not apply where the connection is leaves it there
 * (written out, so the table reads as a whole and a unit test can walk
 * every pair: tests/unit/test_conn_fsm.c). conn_fire() (conn.c) applies
 * it and runs the entry step of the state it enters; the handlers only
 * say what happened. The model is s2n-tls's tls/s2n_handshake_io.c, where
 * the handshake is a table and the code only walks it.
 *
 * Reading the table: a connection is given a slot (ACCEPTED), verified,
 * connected, sends its PROXY header and relays; either side may end first
 * (HALF_CLOSED_*); FLUSH lets the client have what it is owed (an alert
 * after a failed handshake, our close_notify) before CLOSE; CLOSE is
 * possible from anywhere live; a closing connection becomes FREE when
 * the last of its requests completed.
 */
#include "conn.h"

#include "string_table.h"

static const char *const state_names[CONN_STATE_MAX] = {
	[CONN_FREE] = "FREE",
	[CONN_HANDSHAKE] = "HANDSHAKE",
	[CONN_BACKEND_CONNECTING] = "BACKEND_CONNECTING",
	[CONN_PROXY_HEADER] = "PROXY_HEADER",
	[CONN_RELAY] = "RELAY",
	[CONN_HALF_CLOSED_CLIENT] = "HALF_CLOSED_CLIENT",
	[CONN_HALF_CLOSED_BACKEND] = "HALF_CLOSED_BACKEND",
	[CONN_FLUSH_CLOSE] = "FLUSH_CLOSE",
	[CONN_CLOSING] = "CLOSING",
};

DEFINE_STRING_TABLE(conn_state, enum conn_state, state_names, "UNKNOWN")

static const char *const event_names[CONN_EVENT_MAX] = {
	[CONN_EV_ACCEPTED] = "accepted",
	[CONN_EV_VERIFIED] = "verified",
	[CONN_EV_BACKEND_CONNECTED] = "backend_connected",
	[CONN_EV_HEADER_SENT] = "header_sent",
	[CONN_EV_CLIENT_END] = "client_end",
	[CONN_EV_BACKEND_END] = "backend_end",
	[CONN_EV_FLUSH] = "flush",
	[CONN_EV_CLOSE] = "close",
	[CONN_EV_RELEASED] = "released",
};

DEFINE_STRING_TABLE(conn_event, enum conn_event, event_names, "unknown")

/* Short names so that the table fits the screen. */
#define FREE CONN_FREE
#define HS   CONN_HANDSHAKE
#define BC   CONN_BACKEND_CONNECTING
#define PH   CONN_PROXY_HEADER
#define RL   CONN_RELAY
#define HCC  CONN_HALF_CLOSED_CLIENT
#define HCB  CONN_HALF_CLOSED_BACKEND
#define FC   CONN_FLUSH_CLOSE
#define CL   CONN_CLOSING

static const enum conn_state transitions[CONN_STATE_MAX][CONN_EVENT_MAX] = {
	/*           accepted verified connected header client_end backend_end flush close released */
	[FREE] = {   HS,      FREE,    FREE,     FREE,  FREE,      FREE,       FREE, FREE, FREE },
	[HS]   = {   HS,      BC,      HS,       HS,    HS,        HS,         FC,   CL,   HS   },
	[BC]   = {   BC,      BC,      PH,       BC,    BC,        BC,         FC,   CL,   BC   },
	[PH]   = {   PH,      PH,      PH,       RL,    PH,        PH,         FC,   CL,   PH   },
	[RL]   = {   RL,      RL,      RL,       RL,    HCC,       HCB,        FC,   CL,   RL   },
	[HCC]  = {   HCC,     HCC,     HCC,      HCC,   HCC,       HCC,        FC,   CL,   HCC  },
	[HCB]  = {   HCB,     HCB,     HCB,      HCB,   HCB,       HCB,        FC,   CL,   HCB  },
	[FC]   = {   FC,      FC,      FC,       FC,    FC,        FC,         FC,   CL,   FC   },
	[CL]   = {   CL,      CL,      CL,       CL,    CL,        CL,         CL,   CL,   FREE },
};

enum conn_state conn_next_state(enum conn_state s, enum conn_event ev)
{
	if ((unsigned)s >= CONN_STATE_MAX || (unsigned)ev >= CONN_EVENT_MAX)
		return s;
	return transitions[s][ev];
}
