/*
 * ktls.h: hand an established TLS session to the kernel (kTLS).
 *
 * After the handshake and mtlsd's verification, the session keys are
 * installed in the socket for transmit and receive, so the relay moves
 * plaintext with plain recv/send/splice and the kernel does the record
 * layer. mtlsd derives the keys itself (OpenSSL 3.0 cannot offload TLS 1.3
 * RX or ChaCha20-Poly1305): TLS 1.3 from the application traffic secrets
 * (captured with the keylog callback) through HKDF-Expand-Label, TLS 1.2
 * from the key block. Record sequence numbers come from counting, with
 * OpenSSL's message callback, the records each side sent in the current
 * epoch (TLS 1.3 NewSessionTickets, the TLS 1.2 Finished, application
 * records OpenSSL already decrypted). docs/ktls.md has the rules.
 *
 * The connection's side of the handoff (see docs/ktls.md, "the hook"):
 *   before the handshake   ktls_conn_attach(&kc, ssl), and route the SSL's
 *                          message callback to ktls_msg_observer (mtlsd:
 *                          tls_session_observe; a bare SSL:
 *                          SSL_set_msg_callback)
 *   after verification     if (ktls_conn_decide(&kc, mode) == KTLS_OFFLOAD)
 *     1. send everything OpenSSL wrote (tickets) to the socket;
 *     2. SSL_read the complete records left in the receive buffer and queue
 *        the plaintext for the backend; read exactly ktls_rx_missing() more
 *        bytes and repeat until the buffer is empty (a record boundary);
 *     3. ktls_conn_install(&kc, fd); on failure with !kc.tx_offloaded the
 *        connection goes on in user space;
 *     4. ktls_conn_release_ssl(&kc): the SSL's buffers are no longer needed.
 *   then relay; non-data records arrive through recvmsg with a record-type
 *   control message (ktls_recv_record / ktls_rxmsg for io_uring) and go to
 *   ktls_on_control(); shut down with ktls_send_close_notify().
 *
 * Every syscall goes through a seam (struct ktls_ops) a unit test replaces.
 */
#ifndef MTLSD_KTLS_H
#define MTLSD_KTLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config.h"
#include "guard.h"
#include "ktls-t.h"
#include "ktls_compat.h"

const char *ktls_decision_name(enum ktls_decision d);
const char *ktls_event_name(enum ktls_event e);
int ktls_decision_from_name(const char *s);
int ktls_event_from_name(const char *s);

void ktls_stats_snapshot(struct ktls_stats *out);
void ktls_count_event(enum ktls_event e);

/* NULL restores the real syscalls. Not thread-safe: tests only. */
void ktls_set_ops(const struct ktls_ops *ops);

/*
 * Once per process, before any SSL object exists: fetch the KDFs, create
 * the SSL ex_data slot and probe the tls ULP on a loopback TCP connection.
 * mode ON without the ULP fails with -ENOPROTOOPT and err says what to do;
 * AUTO logs one line saying whether kTLS is used.
 */
int ktls_global_init(enum ktls_mode mode, char *err, size_t errlen) MUST_CHECK;
/* Whether the probe found the tls ULP (false before ktls_global_init). */
bool ktls_available(void);

/*
 * Install the keylog callback that captures TLS 1.3 traffic secrets on a
 * server SSL_CTX (the generation code calls it for every SSL_CTX it
 * builds). A no-op when kTLS is off or unavailable.
 */
int ktls_ctx_prepare(SSL_CTX *ctx) MUST_CHECK;

/* Before the handshake: zero kc and hook the secret capture onto ssl (SSL
 * ex_data). The record counting needs every message of ssl from the first
 * on: ktls_msg_observer, which does nothing for an SSL not attached. It does
 * not install itself, because an SSL has one message callback and the
 * caller may own it (tls_session.h). */
int ktls_conn_attach(struct ktls_conn *kc, SSL *ssl) MUST_CHECK;
void ktls_msg_observer(int write_p, int version, int content_type, const void *buf, size_t len,
		       SSL *ssl, void *arg);

/*
 * After a successful handshake: may this connection be offloaded? Counts
 * the decision and logs the first occurrence of each reason once per
 * process. A declined session's captured secrets are cleansed here.
 */
enum ktls_decision ktls_conn_decide(struct ktls_conn *kc, enum ktls_mode mode);

/*
 * Bytes still to read from the socket so that buf (the received bytes
 * OpenSSL has not consumed, starting at a record boundary) ends on a record
 * boundary: 0 when it does. A missing header counts only the header bytes:
 * call again once they are in.
 */
size_t ktls_rx_missing(const uint8_t *buf, size_t len);

/*
 * Derive the kernel's crypto_info for one direction of the server side of
 * kc's session, with the record sequence number counted so far. *len gets
 * the size to pass to setsockopt. out holds key material: cleanse it.
 */
int ktls_conn_derive(const struct ktls_conn *kc, enum ktls_dir dir,
		     union ktls_crypto_info *out, socklen_t *len) MUST_CHECK;

/*
 * Install both directions on fd (TCP_ULP "tls", TLS_TX, TLS_RX). OpenSSL
 * must be on a record boundary with nothing buffered (-EAGAIN otherwise:
 * drain first) and everything it wrote already on the socket. On failure
 * with kc->tx_offloaded false the socket is still plain TCP and the
 * connection can stay in user space; otherwise it must be closed.
 */
int ktls_conn_install(struct ktls_conn *kc, int fd) MUST_CHECK;

/* Both directions are in the kernel: release the SSL's record buffers. */
void ktls_conn_release_ssl(struct ktls_conn *kc);

/*
 * Both directions are in the kernel and the caller is about to free the
 * SSL itself: unhook from it, and mark the session as cleanly established
 * (SSL_free would otherwise drop it from a stateful session cache). What
 * a later KeyUpdate needs (secrets, cipher) stays in kc.
 */
void ktls_conn_detach(struct ktls_conn *kc);

/* Cleanse the secrets and detach from the SSL. Accepts a zeroed kc. */
void ktls_conn_clear(struct ktls_conn *kc);

/* struct ktls_msg (ktls-t.h): ktls_rxmsg_init() before each receive,
 * ktls_rxmsg_type() on its completion (application data when absent). */
void ktls_rxmsg_init(struct ktls_msg *m, void *buf, size_t len);
uint8_t ktls_rxmsg_type(const struct ktls_msg *m);

/*
 * Synchronous form (flags as for recvmsg, e.g. MSG_DONTWAIT after an
 * io_uring recv failed with EIO at a control record): bytes read (0 at EOF)
 * or -errno; *type = record type.
 */
ssize_t ktls_recv_record(int fd, void *buf, size_t len, int flags, uint8_t *type) MUST_CHECK;

/*
 * A non-data record (type, plaintext rec/len) read from an offloaded
 * socket: close_notify -> SHUTDOWN; other alerts -> ABORT; client
 * NewSessionTicket -> CONTINUE; TLS 1.3 KeyUpdate -> new RX key (and answer
 * + new TX key when update_requested) where the kernel can rekey, else
 * SHUTDOWN. *why gets the counted event, for the caller's log line.
 */
enum ktls_action ktls_on_control(struct ktls_conn *kc, int fd, uint8_t type,
				 const uint8_t *rec, size_t len, enum ktls_event *why);

/* A record of another content type; ktls_txmsg_close_notify() fills in the
 * close_notify alert, body included. m must live until the send completed. */
void ktls_txmsg_init(struct ktls_msg *m, uint8_t type, const void *data, size_t len);
void ktls_txmsg_close_notify(struct ktls_msg *m);

/* Send a close_notify alert through the kernel, without blocking
 * (-EAGAIN when the socket's send buffer is full). */
int ktls_send_close_notify(int fd) MUST_CHECK;

#endif
