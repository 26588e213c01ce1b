/*
 * ktls_keys.c: the record keys the kernel needs, derived by mtlsd.
 *
 * TLS 1.3 (RFC 8446 7.1, 7.3): key = HKDF-Expand-Label(secret, "key"),
 * iv = HKDF-Expand-Label(secret, "iv", 12) from each side's application
 * traffic secret. TLS 1.2 (RFC 5246 6.3): the key block
 * PRF(master, "key expansion", server_random || client_random) cut into
 * client key, server key, client IV, server IV (AEAD suites have no MAC
 * keys). The kernel wants, per direction: key, salt (GCM: the 4 implicit
 * bytes), iv (GCM TLS 1.3: the other 8 IV bytes; GCM TLS 1.2: the explicit
 * nonce of the next record; ChaCha20: all 12), and the record sequence.
 * Every buffer that held key material is cleansed before returning.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <string.h>

#include "ktls_internal.h"

#define TLS_RANDOM_LEN 32
#define TLS12_MASTER_LEN 48
#define TLS_AEAD_IV_LEN 12

/* Fetched once: fetching per connection takes OpenSSL 3.0's global locks. */
static EVP_KDF *kdf_hkdf;
static EVP_KDF *kdf_tls1_prf;

int ktls_keys_init(void)
{
	if (!kdf_hkdf)
		kdf_hkdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
	if (!kdf_tls1_prf)
		kdf_tls1_prf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_TLS1_PRF, NULL);
	ENSURE(kdf_hkdf && kdf_tls1_prf, ENOSYS);
	return 0;
}

int ktls_suite_of(const SSL *ssl, struct ktls_suite *out)
{
	return ktls_suite_of_cipher(SSL_get_current_cipher(ssl), out);
}

int ktls_suite_of_cipher(const SSL_CIPHER *c, struct ktls_suite *out)
{
	ENSURE_PTR(c, EINVAL);
	memset(out, 0, sizeof(*out));
	switch (SSL_CIPHER_get_cipher_nid(c)) {
	case NID_aes_128_gcm:
		*out = (struct ktls_suite){ TLS_CIPHER_AES_GCM_128, 16, 4, NULL };
		break;
	case NID_aes_256_gcm:
		*out = (struct ktls_suite){ TLS_CIPHER_AES_GCM_256, 32, 4, NULL };
		break;
	case NID_chacha20_poly1305:
		*out = (struct ktls_suite){ TLS_CIPHER_CHACHA20_POLY1305, 32, 12, NULL };
		break;
	default:
		return -EPROTONOSUPPORT;
	}
	out->md = SSL_CIPHER_get_handshake_digest(c);
	ENSURE_PTR(out->md, EPROTONOSUPPORT);
	return 0;
}

int ktls_hkdf_expand_label(const EVP_MD *md, const uint8_t *secret, size_t secret_len,
			   const char *label, uint8_t *out, size_t out_len)
{
	/* struct HkdfLabel { uint16 length; opaque label<7..255> = "tls13 " +
	 * label; opaque context<0..255> = ""; } */
	static const char prefix[] = "tls13 ";
	uint8_t info[2 + 1 + 255 + 1];
	size_t label_len = strlen(label), n = 0;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	EVP_KDF_CTX *kctx;
	int rc = 0;

	ENSURE(label_len + sizeof(prefix) - 1 <= 255 && out_len <= 0xffff, EINVAL);
	info[n++] = (uint8_t)(out_len >> 8);
	info[n++] = (uint8_t)out_len;
	info[n++] = (uint8_t)(sizeof(prefix) - 1 + label_len);
	memcpy(info + n, prefix, sizeof(prefix) - 1);
	n += sizeof(prefix) - 1;
	memcpy(info + n, label, label_len);
	n += label_len;
	info[n++] = 0;

	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						 (char *)EVP_MD_get0_name(md), 0),
		OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
		OSSL_PARAM_construct_end(),
	};
	kctx = EVP_KDF_CTX_new(kdf_hkdf);
	ENSURE_PTR(kctx, ENOMEM);
	if (EVP_KDF_derive(kctx, out, out_len, params) != 1)
		rc = -EINVAL;
	EVP_KDF_CTX_free(kctx);
	return rc;
}

static void put_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (uint8_t)v;
}

/*
 * Fill the kernel structure from a key and the full IV as TLS defines it
 * (TLS 1.3: 12 bytes; TLS 1.2 GCM: the 4-byte implicit salt; TLS 1.2
 * ChaCha20: 12 bytes).
 */
static int fill_info(uint16_t version, const struct ktls_suite *s, const uint8_t *key,
		     const uint8_t *iv, uint64_t seq, union ktls_crypto_info *out, socklen_t *len)
{
	uint8_t *k, *salt, *nonce, *rec_seq;
	size_t salt_len, nonce_len;

	memset(out, 0, sizeof(*out));
	out->info.version = version;
	out->info.cipher_type = s->cipher;
	switch (s->cipher) {
	case TLS_CIPHER_AES_GCM_128:
		k = out->gcm128.key, salt = out->gcm128.salt, nonce = out->gcm128.iv;
		rec_seq = out->gcm128.rec_seq;
		*len = sizeof(out->gcm128);
		salt_len = TLS_CIPHER_AES_GCM_128_SALT_SIZE, nonce_len = TLS_CIPHER_AES_GCM_128_IV_SIZE;
		break;
	case TLS_CIPHER_AES_GCM_256:
		k = out->gcm256.key, salt = out->gcm256.salt, nonce = out->gcm256.iv;
		rec_seq = out->gcm256.rec_seq;
		*len = sizeof(out->gcm256);
		salt_len = TLS_CIPHER_AES_GCM_256_SALT_SIZE, nonce_len = TLS_CIPHER_AES_GCM_256_IV_SIZE;
		break;
	case TLS_CIPHER_CHACHA20_POLY1305:
		k = out->chacha.key, salt = out->chacha.salt, nonce = out->chacha.iv;
		rec_seq = out->chacha.rec_seq;
		*len = sizeof(out->chacha);
		salt_len = 0, nonce_len = TLS_CIPHER_CHACHA20_POLY1305_IV_SIZE;
		break;
	default:
		return -EPROTONOSUPPORT;
	}
	memcpy(k, key, s->key_len);
	memcpy(salt, iv, salt_len);
	if (version == TLS_1_2_VERSION && s->cipher != TLS_CIPHER_CHACHA20_POLY1305)
		/* TLS 1.2 GCM: the kernel sends iv as the explicit nonce of
		 * its first record and increments it; start it at the
		 * sequence number, as OpenSSL does. */
		put_be64(nonce, seq);
	else
		memcpy(nonce, iv + salt_len, nonce_len);
	put_be64(rec_seq, seq);
	return 0;
}

int ktls_tls13_info(const struct ktls_suite *s, const uint8_t *secret, size_t secret_len,
		    uint64_t seq, union ktls_crypto_info *out, socklen_t *len)
{
	uint8_t key[32], iv[TLS_AEAD_IV_LEN];
	int rc;

	GUARD_GOTO(ktls_hkdf_expand_label(s->md, secret, secret_len, "key", key, s->key_len), rc, out);
	GUARD_GOTO(ktls_hkdf_expand_label(s->md, secret, secret_len, "iv", iv, sizeof(iv)), rc, out);
	rc = fill_info(TLS_1_3_VERSION, s, key, iv, seq, out, len);
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	return rc;
}

/* TLS 1.2: the key block, then one direction's slice of it. */
static int tls12_info(const SSL *ssl, const struct ktls_suite *s, enum ktls_dir dir,
		      uint64_t seq, union ktls_crypto_info *out, socklen_t *len)
{
	static const char label[] = "key expansion";
	uint8_t master[TLS12_MASTER_LEN], seed[sizeof(label) - 1 + 2 * TLS_RANDOM_LEN];
	uint8_t block[2 * 32 + 2 * TLS_AEAD_IV_LEN];
	size_t master_len, block_len = 2 * s->key_len + 2 * s->fixed_iv_len;
	const SSL_SESSION *sess = SSL_get_session(ssl);
	EVP_KDF_CTX *kctx = NULL;
	int rc = -EINVAL;
	/* The server writes with the server key, reads with the client's. */
	bool server_side = dir == KTLS_DIR_TX;

	ENSURE_PTR(sess, EINVAL);
	master_len = SSL_SESSION_get_master_key(sess, master, sizeof(master));
	memcpy(seed, label, sizeof(label) - 1);
	ENSURE_GOTO(master_len == TLS12_MASTER_LEN &&
			    SSL_get_server_random(ssl, seed + sizeof(label) - 1, TLS_RANDOM_LEN) ==
				    TLS_RANDOM_LEN &&
			    SSL_get_client_random(ssl, seed + sizeof(label) - 1 + TLS_RANDOM_LEN,
						  TLS_RANDOM_LEN) == TLS_RANDOM_LEN,
		    rc, EINVAL, out);

	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						 (char *)EVP_MD_get0_name(s->md), 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, master, master_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof(seed)),
		OSSL_PARAM_construct_end(),
	};
	kctx = EVP_KDF_CTX_new(kdf_tls1_prf);
	ENSURE_GOTO(kctx != NULL, rc, ENOMEM, out);
	ENSURE_GOTO(EVP_KDF_derive(kctx, block, block_len, params) == 1, rc, EINVAL, out);
	/* client_write_key, server_write_key, client_write_IV, server_write_IV */
	rc = fill_info(TLS_1_2_VERSION, s, block + (server_side ? s->key_len : 0),
		       block + 2 * s->key_len + (server_side ? s->fixed_iv_len : 0), seq, out, len);
out:
	EVP_KDF_CTX_free(kctx);
	OPENSSL_cleanse(master, sizeof(master));
	OPENSSL_cleanse(block, sizeof(block));
	return rc;
}

int ktls_conn_derive(const struct ktls_conn *kc, enum ktls_dir dir,
		     union ktls_crypto_info *out, socklen_t *len)
{
	struct ktls_suite s;

	ENSURE_PTR(kc->ssl, EINVAL);
	GUARD(ktls_suite_of(kc->ssl, &s));
	switch (SSL_version(kc->ssl)) {
	case TLS1_3_VERSION:
		if (dir == KTLS_DIR_TX) {
			ENSURE(kc->have_server_secret, ENOKEY);
			return ktls_tls13_info(&s, kc->server_secret, kc->secret_len,
					       kc->tx_records, out, len);
		}
		ENSURE(kc->have_client_secret, ENOKEY);
		return ktls_tls13_info(&s, kc->client_secret, kc->secret_len, kc->rx_records, out, len);
	case TLS1_2_VERSION:
		return tls12_info(kc->ssl, &s, dir,
				  dir == KTLS_DIR_TX ? kc->tx_records : kc->rx_records, out, len);
	default:
		return -EPROTONOSUPPORT;
	}
}
