/*
 * loadgen.h: the mTLS load generator's shared types.
 *
 * The load generator opens TLS connections with a client certificate, as a
 * partner would, and measures one thing per run (the mode): full or resumed
 * handshakes per second, request/response latency at a fixed offered rate,
 * bulk throughput in one direction, or the cost of N idle connections held
 * open. Each thread owns one io_uring, one SSL_CTX and a fixed table of
 * connection slots; threads share nothing but the options and a stop flag,
 * and their counters are merged once at the end into one JSON object.
 */
#ifndef LG_LOADGEN_H
#define LG_LOADGEN_H

#include <liburing.h>
#include <netinet/in.h>
#include <signal.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "guard.h"
#include "hist.h"

enum lg_mode { MODE_HANDSHAKE = 0, MODE_RESUME, MODE_RR, MODE_BULK_UP, MODE_BULK_DOWN, MODE_IDLE, MODE_MAX };
const char *lg_mode_name(enum lg_mode m);

/* Why a connection failed; the JSON "errors" object is keyed by these names. */
enum lg_err {
	ERR_CONNECT = 0,  /* TCP connect refused, unreachable, out of ports */
	ERR_HANDSHAKE,    /* the server refused the handshake: alert, close or reset before it confirmed */
	ERR_VERIFY,       /* the server's chain or name did not verify */
	ERR_TLS_IO,       /* TLS error after the handshake */
	ERR_EOF,          /* the server closed before we were done */
	ERR_RESET,        /* ECONNRESET and other socket errors on receive */
	ERR_SEND,         /* socket error on send */
	ERR_TIMEOUT,      /* no progress within --timeout */
	ERR_ECHO,         /* the echoed bytes are not the bytes we sent */
	ERR_MAX
};
const char *lg_err_name(enum lg_err e);

/* The echo backend's commands: the first four application bytes a
 * connection sends choose what the backend does with the rest. */
#define ECHO_CMD_LEN  4
#define ECHO_CMD_ECHO "ECHO" /* send back every byte (rr, idle) */
#define ECHO_CMD_SINK "SINK" /* read and discard (bulk-up) */
#define ECHO_CMD_SRCE "SRCE" /* send an endless stream (bulk-down) */

struct lg_options {
	enum lg_mode mode;
	struct sockaddr_storage target;
	socklen_t target_len;
	const char *target_str;
	const char *servername; /* name checked in the server certificate (and sent as SNI) */
	const char *cert, *key, *ca;
	int tls_version;        /* TLS1_2_VERSION or TLS1_3_VERSION */
	const char *ciphers;    /* TLS 1.2 cipher list, optional */
	unsigned threads;
	unsigned concurrency;   /* connections in flight (per run, split across threads) */
	unsigned connections;   /* idle mode: how many to hold */
	double duration_s, warmup_s, hold_s, timeout_s;
	double rate;            /* rr: requests per second offered; handshake, resume:
				 * connections per second started; 0 = closed loop */
	size_t size;            /* rr request size; bulk write/read chunk size */
	const char *ready_file; /* idle mode: written once all are established */
};

enum lg_state {
	ST_FREE = 0,      /* slot unused */
	ST_CONNECTING,    /* TCP connect in flight */
	ST_HANDSHAKE,     /* SSL_do_handshake until it returns 1 */
	ST_CONFIRM,       /* TLS 1.3: wait for the server's first ticket, proof it accepted us */
	ST_READY,         /* established, nothing outstanding (rr between requests, idle) */
	ST_REQUEST,       /* rr/idle probe: request written or being written, response awaited */
	ST_BULK,          /* bulk-up or bulk-down streaming */
	ST_CLOSING,       /* closing: waiting for in-flight requests to complete */
	ST_MAX
};
const char *lg_state_name(enum lg_state s);

struct lg_conn {
	enum lg_state state;
	int fd;
	unsigned idx;
	unsigned inflight;      /* io_uring requests that point at this slot */
	bool recv_armed, send_armed, got_ticket, preface_sent;
	bool in_ready_stack;    /* rr: listed in the thread's ready stack */
	bool opening;           /* idle: counted in the thread's opening */
	SSL *ssl;
	BIO *rbio, *wbio;       /* network side: bytes received go in rbio, bytes to send come out of wbio */
	SSL_SESSION *session;   /* resume mode: the newest ticket this slot received */
	uint8_t *rx;            /* receive buffer (rx_cap) */
	uint8_t *tx;            /* bytes being sent: tx[tx_off..tx_len) */
	size_t tx_len, tx_off;
	uint64_t t_start;       /* connect or request start (scheduled time for rr), ns */
	uint64_t t_progress;    /* last progress, for --timeout */
	size_t req_left;        /* rr: request bytes still to SSL_write */
	size_t resp_left;       /* rr: response bytes still expected */
	uint32_t pattern;       /* rr: seed of this request's payload, checked on return */
};

struct lg_stats {
	uint64_t handshakes;    /* completed (and confirmed) handshakes */
	uint64_t resumed;       /* of which the server resumed the session */
	uint64_t requests;      /* completed request/response pairs */
	uint64_t bytes_up, bytes_down; /* application payload */
	uint64_t established;   /* idle mode: connections established */
	uint64_t backlog_max;   /* rr: most requests that were due with no free connection */
	uint64_t errors[ERR_MAX];
	struct hist hs_lat;     /* handshake latency: connect start to confirmed */
	struct hist rr_lat;     /* request latency from the scheduled send time */
};

struct lg_thread {
	unsigned id;
	const struct lg_options *opt;
	struct io_uring ring;
	SSL_CTX *ctx;
	struct lg_conn *conns;
	unsigned nconns;        /* slots */
	unsigned to_open;       /* idle mode: connections still to start */
	unsigned ramped;        /* rr/bulk: connections that reached steady state once */
	unsigned opening;       /* idle: connections started, not yet established */
	unsigned *ready_stack;  /* rr open loop: slots waiting for a due request */
	unsigned nready;
	size_t rx_cap, tx_cap;
	uint8_t *scratch;       /* SSL_read target for bytes we only count */
	uint64_t t_begin, t_measure, t_end; /* run start, measuring start, deadline (ns); 0 = not yet known */
	uint64_t t_stop;        /* when the run actually stopped */
	uint64_t t_sweep;       /* last timeout sweep */
	uint64_t t_drain_end;   /* stopping: give up on in-flight handshakes then */
	bool measuring, stopping, drained;
	double rate;            /* this thread's share of --rate */
	uint64_t next_due;      /* rr: scheduled time of the next request;
				 * open-loop handshakes: of the next connection */
	unsigned next_free;     /* open-loop handshakes: where the free-slot scan resumes */
	struct lg_stats st;
	int rc;
};

uint64_t lg_now_ns(void);

/* handshake/resume with --rate: connections are started on a schedule
 * (open loop) instead of replacing each other as they finish. */
static inline bool lg_hs_open_loop(const struct lg_options *o)
{
	return (o->mode == MODE_HANDSHAKE || o->mode == MODE_RESUME) && o->rate > 0;
}

/* Set by SIGINT/SIGTERM; every thread polls it on its timer. */
extern volatile sig_atomic_t lg_stop_requested;

/* Idle mode: count established connections across threads; the thread
 * that completes the set announces it (stderr and --ready-file). */
void lg_established_add(unsigned n);
unsigned lg_established_total(void);

/* Build this thread's client SSL_CTX from the options. Returns 0 or -errno
 * after logging what failed and which file. */
int lg_client_ctx(struct lg_thread *t) MUST_CHECK;

/* Run one thread's share of the load until the deadline or a stop. */
int lg_thread_run(struct lg_thread *t) MUST_CHECK;

/* Serve the echo backend on addr (host:port, port 0 = any) until SIGTERM;
 * prints "listening HOST:PORT" on stdout once bound. */
int echo_serve(const char *addr) MUST_CHECK;

/* Parse "host:port" / "[v6]:port" into ss. Returns 0 or -EINVAL. */
int lg_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len) MUST_CHECK;

#endif
