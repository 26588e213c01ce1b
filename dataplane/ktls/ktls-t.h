/*
 * ktls-t.h: the types of kernel TLS (ktls.h has the functions).
 *
 * What a connection embeds (struct ktls_conn), what the relay reads back
 * (decisions, events, actions) and the syscall seam a test replaces. No
 * prototypes here, so a header that only needs the layout of a connection
 * (engine/conn-t.h) does not see kTLS's functions.
 */
#ifndef MTLSD_KTLS_T_H
#define MTLSD_KTLS_T_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#define KTLS_SECRET_MAX 48 /* SHA-384 traffic secrets */

/* Why a connection stays in user space (KTLS_OFFLOAD: it does not). */
enum ktls_decision {
	KTLS_OFFLOAD = 0,
	KTLS_DECLINE_MODE_OFF,   /* ktls = off */
	KTLS_DECLINE_NO_ULP,     /* the kernel has no tls ULP */
	KTLS_DECLINE_VERSION,    /* neither TLS 1.2 nor TLS 1.3 */
	KTLS_DECLINE_CIPHER,     /* not AES-128/256-GCM or ChaCha20-Poly1305 */
	KTLS_DECLINE_NO_SECRETS, /* keylog callback missing on the SSL_CTX */
	KTLS_DECLINE_REKEYED,    /* renegotiation or KeyUpdate before the handoff */
	KTLS_DECLINE_KERNEL,     /* the kernel refused the key (cipher missing) */
	KTLS_DECISION_MAX
};

/* What happened on offloaded connections; counted process-wide. */
enum ktls_event {
	KTLS_EV_HANDOFF = 0,        /* both directions installed */
	KTLS_EV_CLOSE_NOTIFY,       /* peer closed with close_notify */
	KTLS_EV_ALERT,              /* peer sent another alert: closed */
	KTLS_EV_TICKET_IGNORED,     /* NewSessionTicket from the client */
	KTLS_EV_KEYUPDATE,          /* KeyUpdate taken (kernel >= 6.14) */
	KTLS_EV_KEYUPDATE_UNSUPPORTED, /* KeyUpdate on a kernel that cannot rekey: closed */
	KTLS_EV_DECRYPT_ERROR,      /* EBADMSG: corrupted record, connection aborted */
	KTLS_EV_BAD_RECORD,         /* unexpected or malformed control record */
	KTLS_EVENT_MAX
};

struct ktls_stats {
	uint64_t declined[KTLS_DECISION_MAX]; /* [KTLS_OFFLOAD] = connections offloaded */
	uint64_t events[KTLS_EVENT_MAX];
};

/* The syscalls kTLS needs, replaceable by tests. Each returns like the
 * libc call (-1 and errno on failure). */
struct ktls_ops {
	int (*setsockopt)(int fd, int level, int name, const void *val, socklen_t len);
	ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
	ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
};

/* Per-connection state; embed it in the connection. Holds traffic secrets
 * until ktls_conn_clear(). */
struct ktls_conn {
	SSL *ssl;
	uint64_t tx_records;       /* records written in the current write epoch */
	uint64_t rx_records;       /* records read in the current read epoch */
	unsigned write_epochs;     /* CCS (1.2) / Finished (1.3) written */
	unsigned read_epochs;
	bool rekeyed;              /* KeyUpdate or renegotiation seen in user space */
	bool tx_offloaded, rx_offloaded;
	uint16_t version;          /* TLS1_2_VERSION / TLS1_3_VERSION at install */
	uint16_t cipher;           /* TLS_CIPHER_* at install */
	const SSL_CIPHER *suite;   /* the session's cipher, kept past ktls_conn_detach */
	size_t secret_len;
	uint8_t client_secret[KTLS_SECRET_MAX]; /* TLS 1.3 application secrets */
	uint8_t server_secret[KTLS_SECRET_MAX];
	bool have_client_secret, have_server_secret;
};

enum ktls_dir { KTLS_DIR_TX = 0, KTLS_DIR_RX };

/*
 * A msghdr with room for the record-type control message, for recvmsg or
 * sendmsg on an offloaded socket (synchronously or as an io_uring request:
 * it must then live until the completion).
 * Receiving: ktls_rxmsg_init() before each submission, ktls_rxmsg_type() on
 * the completion (application data when absent).
 * Sending: ktls_txmsg_init() for a record of another content type;
 * ktls_txmsg_close_notify() fills in the close_notify alert, body included.
 */
struct ktls_msg {
	struct msghdr msg;
	struct iovec iov;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(uint8_t))];
	} control;
	uint8_t body[2];
};

enum ktls_action {
	KTLS_ACT_CONTINUE = 0, /* record consumed, keep relaying */
	KTLS_ACT_SHUTDOWN,     /* orderly: half-close toward the backend */
	KTLS_ACT_ABORT,        /* close now */
};

#endif
