/*
 * ticket_keys.c: session-ticket keys from a file (ticket_keys.h).
 *
 * OpenSSL asks the callback for a key when it seals a ticket (enc = 1: we
 * hand out the first key's name, a fresh IV, the cipher and HMAC keys) and
 * when it opens one (enc = 0: we look the ticket's key name up; unknown
 * means "no ticket", a full handshake; an older key means "use it, and
 * issue a new ticket under the current key").
 */
#include "ticket_keys.h"

#include "session_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exdata.h"
#include "pemutil.h"

struct ticket_key {
	unsigned char name[16];
	unsigned char hmac[32];
	unsigned char aes[32];
};

struct ticket_keyset {
	struct ticket_key keys[TICKET_KEYS_MAX];
	size_t n;
};

void ticket_keyset_free(struct ticket_keyset *ks)
{
	if (ks)
		OPENSSL_clear_free(ks, sizeof(*ks));
}

static int ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
			 EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	const struct ticket_keyset *ks = exdata_ticket_keyset(SSL_get_SSL_CTX(ssl));
	const struct ticket_key *k = NULL;
	size_t i = 0;

	if (!ks || ks->n == 0)
		return -1;
	if (enc) {
		k = &ks->keys[0];
		memcpy(key_name, k->name, sizeof(k->name));
		if (RAND_bytes(iv, 16) != 1)
			return -1;
	} else {
		for (i = 0; i < ks->n && !k; i++)
			if (CRYPTO_memcmp(key_name, ks->keys[i].name, 16) == 0)
				k = &ks->keys[i];
		if (!k)
			return 0; /* rotated out, or another fleet's: full handshake */
	}
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	if (EVP_MAC_init(hctx, k->hmac, sizeof(k->hmac), params) != 1)
		return -1;
	if (enc)
		return EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 1 : -1;
	if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1)
		return -1;
	/* i is one past the match: 1 for the current key, more for an older
	 * one, whose ticket is replaced by one under the current key. */
	return i == 1 ? 1 : 2;
}

/* Read the key file into ks. err names the file and what is wrong. The
 * file follows the private-key rules (lib/pemutil.h): whoever can write
 * it can mint a session for any partner, whoever reads it can decrypt
 * recorded sessions. */
static int load_keys(const char *path, const struct mtlsd_config *cfg, struct ticket_keyset *ks,
		     char *err, size_t errlen)
{
	const struct secret_file_rule rule = {
		.what = "session-ticket key file",
		.why = "whoever can write it can mint a session for any partner, whoever reads it can "
		       "decrypt recorded sessions",
		.allow_insecure = cfg->allow_insecure_key_perms, .overridable = true,
		.also_owner = secret_file_owner_uid(cfg->user),
	};
	unsigned char buf[TICKET_KEY_LEN * TICKET_KEYS_MAX + 1];
	struct stat st;
	ssize_t got = 0, r;
	int rc = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open the session-ticket key file: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		rc = -EINVAL;
		goto out;
	}
	char why[768];
	if ((rc = secret_file_check(&rule, path, &st, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
	while ((size_t)got < sizeof(buf) && (r = read(fd, buf + got, sizeof(buf) - (size_t)got)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: read: %s", path, strerror(errno));
			goto out;
		}
		got += r;
	}
	if (got == 0 || got % TICKET_KEY_LEN != 0 || (size_t)got > sizeof(buf) - 1) {
		snprintf(err, errlen, "%s: holds %zd bytes; it must hold 1 to %d keys of %d bytes each "
			 "(make one with: openssl rand 80 > FILE)", path, got, TICKET_KEYS_MAX, TICKET_KEY_LEN);
		rc = -EINVAL;
		goto out;
	}
	ks->n = (size_t)got / TICKET_KEY_LEN;
	for (size_t i = 0; i < ks->n; i++)
		memcpy(&ks->keys[i], buf + i * TICKET_KEY_LEN, TICKET_KEY_LEN);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}

int ticket_keys_configure(SSL_CTX *ctx, const struct mtlsd_config *cfg, char *err, size_t errlen)
{
	GUARD(exdata_init());
	/* The longest any session may live; verify.c shortens each one to
	 * what its own verification allows (session_binding.h). */
	SSL_CTX_set_timeout(ctx, (long)cfg->session_lifetime_s);

	switch (config_session_cache(cfg)) {
	case SESSION_CACHE_OFF:
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		GUARD_OSSL(SSL_CTX_set_num_tickets(ctx, 0), EINVAL);
		return 0;
	case SESSION_CACHE_STATEFUL:
		/* TLS 1.3 "tickets" become session-ID references into the
		 * cache; TLS 1.2 uses session IDs. */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		/* mtlsd's own cache, bounded (config_session_cache_size),
		 * O(1), judged on every lookup (session_cache.h). */
		GUARD(session_cache_attach(ctx, config_session_cache_size(cfg)));
		GUARD_OSSL(SSL_CTX_set_num_tickets(ctx, cfg->session_tickets), EINVAL);
		return 0;
	case SESSION_CACHE_TICKETS:
		/*
		 * session_tickets, default 1, not OpenSSL's two. Sealing a
		 * TLS 1.3 ticket re-parses the whole session (i2d, d2i, i2d
		 * in construct_stateless_ticket), client certificate
		 * included, and in OpenSSL 3.0 decoding a certificate's key
		 * builds a decoder chain from scratch: the second ticket cost
		 * ~9% of a full handshake and a third of a resumed one
		 * (docs/benchmarks.md). A client resuming gets a fresh ticket
		 * each time, so one is enough to keep resuming.
		 */
		GUARD_OSSL(SSL_CTX_set_num_tickets(ctx, cfg->session_tickets), EINVAL);
		break;
	default:
		snprintf(err, errlen, "internal error: session cache mode %d", (int)config_session_cache(cfg));
		return -EINVAL;
	}
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	/* Stateless: no server-side cache to grow or to miss on another host. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (!cfg->ticket_key_file)
		return 0;

	struct ticket_keyset *ks = OPENSSL_zalloc(sizeof(*ks));
	ENSURE_PTR(ks, ENOMEM);
	int rc = load_keys(cfg->ticket_key_file, cfg, ks, err, errlen);
	if (rc < 0) {
		ticket_keyset_free(ks);
		return rc;
	}
	GUARD(exdata_set_ticket_keyset(ctx, ks));
	GUARD_OSSL(SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb), EINVAL);
	return 0;
}

void ticket_keys_describe(SSL_CTX *ctx, const struct mtlsd_config *cfg, char *buf, size_t len)
{
	const struct ticket_keyset *ks = exdata_ticket_keyset(ctx);

	const char *chosen = cfg->session_cache == SESSION_CACHE_AUTO ? ", auto: no ticket_key_file" : "";

	switch (config_session_cache(cfg)) {
	case SESSION_CACHE_OFF:
		snprintf(buf, len, "off");
		break;
	case SESSION_CACHE_STATEFUL:
	{
		struct session_cache_stats st = { 0 };
		(void)session_cache_stats(ctx, &st);
		snprintf(buf, len, "stateful (server-side cache of %u sessions, %u held, %llu resumed, "
			 "%llu evicted%s)", st.capacity, st.held, (unsigned long long)st.hits,
			 (unsigned long long)st.evicted, chosen);
	}
		break;
	case SESSION_CACHE_TICKETS:
		if (ks)
			snprintf(buf, len, "tickets (shared keys from %s, %zu key%s)", cfg->ticket_key_file,
				 ks->n, ks->n == 1 ? "" : "s");
		else
			snprintf(buf, len, "tickets (random keys per generation)");
		break;
	default:
		snprintf(buf, len, "unknown");
		break;
	}
}
