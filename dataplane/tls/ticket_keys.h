/*
 * ticket_keys.h: TLS session-ticket keys from a file, and the session
 * cache mode of a generation's SSL_CTX.
 *
 * With ticket_key_file set, every mtlsd host that reads the same file
 * encrypts tickets with the same key, so a client resumes on whichever
 * host the load balancer picks. The file holds one or more 80-byte keys
 * back to back, the layout nginx uses (16-byte name, 32-byte HMAC secret,
 * 32-byte AES-256 key): the first key encrypts new tickets, every key
 * decrypts. Rotation: put a fresh key first, keep the previous one(s)
 * after it for as long as tickets they sealed should still resume, and
 * reload every host (docs/operations.md). Without the file each generation
 * gets random keys from OpenSSL: tickets then resume only on the host and
 * generation that issued them.
 *
 * The keys live in the SSL_CTX (ex_data) and are cleansed when it is freed.
 */
#ifndef MTLSD_TICKET_KEYS_H
#define MTLSD_TICKET_KEYS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "guard.h"

#define TICKET_KEY_LEN 80
#define TICKET_KEYS_MAX 8

/*
 * Configure session resumption on ctx (not yet shared with any thread;
 * step 4 of server_ctx_build, tls/server_ctx.c): the longest a session
 * lives (session_lifetime), mode tickets|stateful|off with the number of
 * tickets a handshake sends (session_tickets; 0 when off); with tickets
 * and a key file, load the keys (the file must hold 1..TICKET_KEYS_MAX
 * whole keys and, unless allow_insecure_perms, be readable by its owner
 * only) and install the ticket key callback. Returns 0 or -errno with err = "FILE: reason".
 */
int ticket_keys_configure(SSL_CTX *ctx, const struct mtlsd_config *cfg, char *err,
			  size_t errlen) MUST_CHECK;

/* "tickets (shared keys from FILE, N keys)", "tickets (per-generation random keys)",
 * "stateful", "off": for status and logs. */
void ticket_keys_describe(SSL_CTX *ctx, const struct mtlsd_config *cfg, char *buf, size_t len);

#endif
