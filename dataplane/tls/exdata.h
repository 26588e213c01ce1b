/*
 * exdata.h: every OpenSSL ex_data slot mtlsd uses, in one registry.
 *
 * OpenSSL hands out ex_data indexes per process, and a slot is only as
 * safe as the discipline around it: allocated once before any thread can
 * read it, typed at every use, freed by the one module that owns what it
 * holds. So the slots are listed here, allocated together by
 * exdata_init() (one pthread_once), and no module calls
 * *_get_ex_new_index() itself.
 *
 *   object          slot               holds                          owner
 *   SSL             verify result      struct verify_result *         policy/verify.c (the conn's)
 *   SSL             kTLS capture       struct ktls_conn *             ktls/ktls.c (the conn's)
 *   SSL_CTX         known CA links     struct ca_links *     (owned)  policy/verify.c
 *   SSL_CTX         ticket keys        struct ticket_keyset * (owned) tls/ticket_keys.c
 *   SSL_CTX         session cache      struct session_cache * (owned) tls/session_cache.c
 *   X509_STORE_CTX  verify attempt     struct verify_attempt *        policy/verify.c (a stack frame's)
 *
 * "Owned" slots are freed with their SSL_CTX, through the destructor the
 * owning module defines (declared at the end). The others point at memory
 * their owner keeps alive for as long as the object can call back.
 *
 * Slots are reached through the typed accessors below, except kTLS's:
 * ktls.c copies its index once (ktls_global_init) and keeps it as its
 * "capture on" flag, so the per-record path tests one integer.
 *
 * exdata_init() is called by every module before it sets a slot (the
 * verification and ticket steps of the SSL_CTX builder, verify_attach,
 * ktls_global_init); getters need no call: before init they find nothing
 * (an index of -1 reads NULL, as for any index OpenSSL never gave out).
 */
#ifndef MTLSD_EXDATA_H
#define MTLSD_EXDATA_H

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "guard.h"

struct verify_result;
struct ca_links;
struct ticket_keyset;
struct session_cache;
struct verify_attempt;

/* Allocate every slot, once per process (later calls only wait for the
 * first to finish). 0, or -ENOMEM when OpenSSL gave no index. */
int exdata_init(void) MUST_CHECK;

/* The slots' indexes, -1 until exdata_init(): for the accessors below
 * (inline getters: they run inside OpenSSL's callbacks) and ktls.c's copy. */
enum exdata_slot {
	EXDATA_SSL_VERIFY_RESULT,
	EXDATA_SSL_KTLS_CONN,
	EXDATA_CTX_CA_LINKS,
	EXDATA_CTX_TICKET_KEYSET,
	EXDATA_CTX_SESSION_CACHE,
	EXDATA_STORE_VERIFY_ATTEMPT,
	EXDATA_SLOTS
};
extern int exdata_index[EXDATA_SLOTS];

/* SSL: the connection's verification result (policy/verify.h). */
int exdata_set_verify_result(SSL *ssl, struct verify_result *res) MUST_CHECK;
static inline struct verify_result *exdata_verify_result(const SSL *ssl)
{
	return ssl ? SSL_get_ex_data(ssl, exdata_index[EXDATA_SSL_VERIFY_RESULT]) : NULL;
}

/* SSL_CTX: the links between the partners' CA certificates checked when
 * the context was built (policy/verify.c). Takes ownership of links,
 * on failure too, and frees what the slot held before. */
int exdata_set_ca_links(SSL_CTX *ctx, struct ca_links *links) MUST_CHECK;
static inline const struct ca_links *exdata_ca_links(const SSL_CTX *ctx)
{
	return SSL_CTX_get_ex_data(ctx, exdata_index[EXDATA_CTX_CA_LINKS]);
}

/* SSL_CTX: the session-ticket keys from ticket_key_file (tls/ticket_keys.c).
 * Takes ownership of ks, on failure too; what the slot held before is
 * cleansed and freed. */
int exdata_set_ticket_keyset(SSL_CTX *ctx, struct ticket_keyset *ks) MUST_CHECK;
static inline const struct ticket_keyset *exdata_ticket_keyset(const SSL_CTX *ctx)
{
	return SSL_CTX_get_ex_data(ctx, exdata_index[EXDATA_CTX_TICKET_KEYSET]);
}

/* SSL_CTX: the stateful session cache (tls/session_cache.c). Takes
 * ownership of sc, on failure too; what the slot held before is freed. */
int exdata_set_session_cache(SSL_CTX *ctx, struct session_cache *sc) MUST_CHECK;
static inline struct session_cache *exdata_session_cache(const SSL_CTX *ctx)
{
	return ctx ? SSL_CTX_get_ex_data(ctx, exdata_index[EXDATA_CTX_SESSION_CACHE]) : NULL;
}

/* X509_STORE_CTX: the attempt verifying a chain for one partner (policy/verify.c). */
int exdata_set_verify_attempt(X509_STORE_CTX *v, struct verify_attempt *a) MUST_CHECK;
static inline struct verify_attempt *exdata_verify_attempt(const X509_STORE_CTX *v)
{
	return X509_STORE_CTX_get_ex_data(v, exdata_index[EXDATA_STORE_VERIFY_ATTEMPT]);
}

/* Destructors of the owned slots, defined by their owners; NULL is fine. */
void ca_links_free(struct ca_links *links);        /* policy/verify.c */
void ticket_keyset_free(struct ticket_keyset *ks); /* tls/ticket_keys.c */
void session_cache_free(struct session_cache *sc); /* tls/session_cache.c */

#endif
