/*
 * exdata.c: the ex_data registry (exdata.h).
 *
 * The indexes are written once inside pthread_once and only read
 * afterwards: every reader runs on an object (an SSL, an SSL_CTX, a store
 * context) that exists because a setter already went through
 * exdata_init(), which orders the write before it. A getter on an object
 * no setter touched reads -1 (before init) or an empty slot: NULL either
 * way, as OpenSSL answers for an index it never gave out.
 */
#include "exdata.h"

#include <pthread.h>

int exdata_index[EXDATA_SLOTS] = { -1, -1, -1, -1, -1, -1 };
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void free_ca_links(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	ca_links_free(ptr);
}

static void free_ticket_keyset(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	ticket_keyset_free(ptr);
}

static void free_session_cache(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	session_cache_free(ptr);
}

static void allocate(void)
{
	int *ix = exdata_index;

	ix[EXDATA_SSL_VERIFY_RESULT] = SSL_get_ex_new_index(0, "mtlsd verify_result", NULL, NULL, NULL);
	ix[EXDATA_SSL_KTLS_CONN] = SSL_get_ex_new_index(0, "mtlsd ktls_conn", NULL, NULL, NULL);
	ix[EXDATA_CTX_CA_LINKS] = SSL_CTX_get_ex_new_index(0, "mtlsd ca_links", NULL, NULL, free_ca_links);
	ix[EXDATA_CTX_TICKET_KEYSET] = SSL_CTX_get_ex_new_index(0, "mtlsd ticket_keyset", NULL, NULL,
								 free_ticket_keyset);
	ix[EXDATA_CTX_SESSION_CACHE] = SSL_CTX_get_ex_new_index(0, "mtlsd session_cache", NULL, NULL,
								 free_session_cache);
	ix[EXDATA_STORE_VERIFY_ATTEMPT] = X509_STORE_CTX_get_ex_new_index(0, "mtlsd verify_attempt", NULL,
									  NULL, NULL);
}

int exdata_init(void)
{
	pthread_once(&once, allocate);
	for (int i = 0; i < EXDATA_SLOTS; i++)
		ENSURE(exdata_index[i] >= 0, ENOMEM);
	return 0;
}

int exdata_set_verify_result(SSL *ssl, struct verify_result *res)
{
	GUARD_OSSL(SSL_set_ex_data(ssl, exdata_index[EXDATA_SSL_VERIFY_RESULT], res), ENOMEM);
	return 0;
}

int exdata_set_ca_links(SSL_CTX *ctx, struct ca_links *links)
{
	struct ca_links *old = SSL_CTX_get_ex_data(ctx, exdata_index[EXDATA_CTX_CA_LINKS]);

	if (SSL_CTX_set_ex_data(ctx, exdata_index[EXDATA_CTX_CA_LINKS], links) != 1) {
		ca_links_free(links);
		return -ENOMEM;
	}
	ca_links_free(old);
	return 0;
}

int exdata_set_ticket_keyset(SSL_CTX *ctx, struct ticket_keyset *ks)
{
	struct ticket_keyset *old = SSL_CTX_get_ex_data(ctx, exdata_index[EXDATA_CTX_TICKET_KEYSET]);

	if (SSL_CTX_set_ex_data(ctx, exdata_index[EXDATA_CTX_TICKET_KEYSET], ks) != 1) {
		ticket_keyset_free(ks);
		return -ENOMEM;
	}
	ticket_keyset_free(old);
	return 0;
}

int exdata_set_session_cache(SSL_CTX *ctx, struct session_cache *sc)
{
	struct session_cache *old = SSL_CTX_get_ex_data(ctx, exdata_index[EXDATA_CTX_SESSION_CACHE]);

	if (SSL_CTX_set_ex_data(ctx, exdata_index[EXDATA_CTX_SESSION_CACHE], sc) != 1) {
		session_cache_free(sc);
		return -ENOMEM;
	}
	session_cache_free(old);
	return 0;
}

int exdata_set_verify_attempt(X509_STORE_CTX *v, struct verify_attempt *a)
{
	GUARD_OSSL(X509_STORE_CTX_set_ex_data(v, exdata_index[EXDATA_STORE_VERIFY_ATTEMPT], a), ENOMEM);
	return 0;
}
