/*
 * test_ktls.c: kTLS key derivation, sequence numbers and control records,
 * proven without a kTLS kernel.
 *
 * A client and a server SSL run a real handshake in memory. ktls.c derives
 * the kernel's crypto_info for the server side; the test then decrypts the
 * client's real application records with the RX parameters and the
 * server's real records with the TX parameters, with its own AEAD code (the
 * kernel's nonce and AAD rules). A wrong key or sequence number must fail to
 * decrypt. The setsockopt/sendmsg seam is replaced to capture what would go
 * to the kernel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <string.h>

#include "ktls.h"

/* ---- the seam: remember what would reach the kernel ---- */

static union ktls_crypto_info seen_tx, seen_rx;
static int seen_ulp, seen_tx_n, seen_rx_n, refuse_name, refuse_errno;
static uint8_t sent_type, sent_buf[64];
static size_t sent_len;

static int fake_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (refuse_name && name == refuse_name && level != SOL_TCP) {
		errno = refuse_errno;
		return -1;
	}
	if (level == SOL_TCP && name == TCP_ULP)
		seen_ulp++;
	else if (level == SOL_TLS && name == TLS_TX)
		memcpy(&seen_tx, val, len), seen_tx_n++;
	else if (level == SOL_TLS && name == TLS_RX)
		memcpy(&seen_rx, val, len), seen_rx_n++;
	return 0;
}

static ssize_t fake_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg);

	sent_type = c ? *CMSG_DATA(c) : 0;
	sent_len = msg->msg_iov[0].iov_len;
	memcpy(sent_buf, msg->msg_iov[0].iov_base, sent_len);
	return (ssize_t)sent_len;
}

/* What the kernel would deliver next: a record of this type, or nothing. */
static int next_record_type = -1;

static ssize_t fake_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct cmsghdr *c = CMSG_FIRSTHDR(msg);

	if (next_record_type < 0 || !c) {
		errno = EAGAIN;
		return -1;
	}
	/* The kernel reports the type only when it is not application data
	 * or the caller asked (always, with a control buffer). */
	c->cmsg_level = SOL_TLS;
	c->cmsg_type = TLS_GET_RECORD_TYPE;
	c->cmsg_len = CMSG_LEN(sizeof(uint8_t));
	*CMSG_DATA(c) = (uint8_t)next_record_type;
	msg->msg_controllen = CMSG_SPACE(sizeof(uint8_t));
	((uint8_t *)msg->msg_iov[0].iov_base)[0] = 1;
	((uint8_t *)msg->msg_iov[0].iov_base)[1] = 0;
	return 2;
}

static const struct ktls_ops fake_ops = { fake_setsockopt, fake_recvmsg, fake_sendmsg };

static void reset_seen(void)
{
	memset(&seen_tx, 0, sizeof(seen_tx));
	memset(&seen_rx, 0, sizeof(seen_rx));
	seen_ulp = seen_tx_n = seen_rx_n = refuse_name = refuse_errno = 0;
	sent_len = 0;
}

/* ---- an in-memory TLS session ---- */

struct session {
	SSL_CTX *sctx, *cctx;
	SSL *server, *client;
	BIO *s_in, *s_out, *c_in, *c_out; /* each SSL reads *_in, writes *_out */
	struct ktls_conn kc;
};

static EVP_PKEY *test_key;
static X509 *test_cert;

static void make_identity(void)
{
	X509_NAME *name;

	test_key = EVP_EC_gen("P-256");
	assert_non_null(test_key);
	test_cert = X509_new();
	ASN1_INTEGER_set(X509_get_serialNumber(test_cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(test_cert), -60);
	X509_gmtime_adj(X509_getm_notAfter(test_cert), 3600);
	X509_set_pubkey(test_cert, test_key);
	name = X509_get_subject_name(test_cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(test_cert, name);
	assert_true(X509_sign(test_cert, test_key, EVP_sha256()) > 0);
}

/* Move everything one side wrote to the other side's input. */
static void pump(BIO *from, BIO *to)
{
	char buf[16384];
	int n;

	while ((n = BIO_read(from, buf, sizeof(buf))) > 0)
		assert_int_equal(BIO_write(to, buf, n), n);
}

/* Take what one side wrote, without delivering it. */
static size_t take(BIO *from, uint8_t *out, size_t max)
{
	int n = BIO_read(from, out, (int)max);

	return n > 0 ? (size_t)n : 0;
}

static void session_start(struct session *s, int version, const char *cipher, int tickets)
{
	memset(s, 0, sizeof(*s));
	s->sctx = SSL_CTX_new(TLS_server_method());
	s->cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(s->sctx);
	assert_non_null(s->cctx);
	for (SSL_CTX **c = (SSL_CTX *[]){ s->sctx, s->cctx, NULL }; *c; c++) {
		assert_int_equal(SSL_CTX_set_min_proto_version(*c, version), 1);
		assert_int_equal(SSL_CTX_set_max_proto_version(*c, version), 1);
		if (version == TLS1_3_VERSION)
			assert_int_equal(SSL_CTX_set_ciphersuites(*c, cipher), 1);
		else
			assert_int_equal(SSL_CTX_set_cipher_list(*c, cipher), 1);
	}
	assert_int_equal(SSL_CTX_use_certificate(s->sctx, test_cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(s->sctx, test_key), 1);
	assert_int_equal(SSL_CTX_set_num_tickets(s->sctx, (size_t)tickets), 1);
	assert_int_equal(ktls_ctx_prepare(s->sctx), 0);

	s->server = SSL_new(s->sctx);
	s->client = SSL_new(s->cctx);
	s->s_in = BIO_new(BIO_s_mem()), s->s_out = BIO_new(BIO_s_mem());
	s->c_in = BIO_new(BIO_s_mem()), s->c_out = BIO_new(BIO_s_mem());
	SSL_set_bio(s->server, s->s_in, s->s_out);
	SSL_set_bio(s->client, s->c_in, s->c_out);
	SSL_set_accept_state(s->server);
	SSL_set_connect_state(s->client);
	assert_int_equal(ktls_conn_attach(&s->kc, s->server), 0);
	SSL_set_msg_callback(s->server, ktls_msg_observer);

	for (int round = 0; round < 10; round++) {
		int cr = SSL_do_handshake(s->client);
		pump(s->c_out, s->s_in);
		int sr = SSL_do_handshake(s->server);
		pump(s->s_out, s->c_in);
		if (cr == 1 && sr == 1)
			break;
	}
	assert_int_equal(SSL_is_init_finished(s->server), 1);
	assert_int_equal(SSL_is_init_finished(s->client), 1);
	/* The client reads the tickets; they need nothing from the server. */
	char tmp[1];
	assert_true(SSL_read(s->client, tmp, sizeof(tmp)) <= 0);
}

static void session_end(struct session *s)
{
	ktls_conn_clear(&s->kc);
	SSL_free(s->server);
	SSL_free(s->client);
	SSL_CTX_free(s->sctx);
	SSL_CTX_free(s->cctx);
}

/* One application record from the client, raw, not delivered. */
static size_t client_record(struct session *s, const char *text, uint8_t *rec, size_t max)
{
	assert_int_equal(SSL_write(s->client, text, (int)strlen(text)), (int)strlen(text));
	return take(s->c_out, rec, max);
}

static size_t server_record(struct session *s, const char *text, uint8_t *rec, size_t max)
{
	assert_int_equal(SSL_write(s->server, text, (int)strlen(text)), (int)strlen(text));
	return take(s->s_out, rec, max);
}

/* ---- the kernel's side: decrypt one record with a crypto_info ---- */

struct params {
	const EVP_CIPHER *cipher;
	uint8_t key[32], salt[4], iv[12], seq[8];
	size_t key_len, salt_len, iv_len;
};

static void params_of(const union ktls_crypto_info *ci, struct params *p)
{
	memset(p, 0, sizeof(*p));
	switch (ci->info.cipher_type) {
	case TLS_CIPHER_AES_GCM_128:
		p->cipher = EVP_aes_128_gcm(), p->key_len = 16, p->salt_len = 4, p->iv_len = 8;
		memcpy(p->key, ci->gcm128.key, 16), memcpy(p->salt, ci->gcm128.salt, 4);
		memcpy(p->iv, ci->gcm128.iv, 8), memcpy(p->seq, ci->gcm128.rec_seq, 8);
		break;
	case TLS_CIPHER_AES_GCM_256:
		p->cipher = EVP_aes_256_gcm(), p->key_len = 32, p->salt_len = 4, p->iv_len = 8;
		memcpy(p->key, ci->gcm256.key, 32), memcpy(p->salt, ci->gcm256.salt, 4);
		memcpy(p->iv, ci->gcm256.iv, 8), memcpy(p->seq, ci->gcm256.rec_seq, 8);
		break;
	case TLS_CIPHER_CHACHA20_POLY1305:
		p->cipher = EVP_chacha20_poly1305(), p->key_len = 32, p->iv_len = 12;
		memcpy(p->key, ci->chacha.key, 32), memcpy(p->iv, ci->chacha.iv, 12);
		memcpy(p->seq, ci->chacha.rec_seq, 8);
		break;
	default:
		fail_msg("unexpected cipher type %u", ci->info.cipher_type);
	}
}

static uint64_t seq_of(const union ktls_crypto_info *ci)
{
	struct params p;
	uint64_t v = 0;

	params_of(ci, &p);
	for (int i = 0; i < 8; i++)
		v = v << 8 | p.seq[i];
	return v;
}

/*
 * Decrypt rec (header included) as the kernel would with ci at record
 * number seq_delta after rec_seq. Returns the plaintext length (TLS 1.3:
 * including the inner content type) or -1 when authentication fails.
 */
static int kernel_open(const union ktls_crypto_info *ci, const uint8_t *rec, size_t len,
		       uint64_t seq_delta, uint8_t *out)
{
	struct params p;
	uint8_t nonce[12], aad[13], seqb[8];
	const uint8_t *body = rec + 5;
	size_t body_len = len - 5, aad_len;
	uint64_t seq = 0;
	int n, fin, ok;

	params_of(ci, &p);
	for (int i = 0; i < 8; i++)
		seq = seq << 8 | p.seq[i];
	seq += seq_delta;
	for (int i = 7; i >= 0; i--)
		seqb[i] = (uint8_t)(seq >> (8 * (7 - i)));

	bool explicit_nonce = ci->info.version == TLS_1_2_VERSION && p.salt_len == 4;
	if (explicit_nonce) { /* TLS 1.2 GCM: salt || explicit nonce from the record */
		memcpy(nonce, p.salt, 4), memcpy(nonce + 4, body, 8);
		body += 8, body_len -= 8;
	} else { /* the 12-byte IV xor the sequence number */
		memcpy(nonce, p.salt, p.salt_len), memcpy(nonce + p.salt_len, p.iv, p.iv_len);
		for (int i = 0; i < 8; i++)
			nonce[4 + i] ^= seqb[i];
	}
	assert_true(body_len >= 16);
	body_len -= 16;
	if (ci->info.version == TLS_1_3_VERSION) {
		memcpy(aad, rec, 5), aad_len = 5;
	} else { /* seq || type || version || plaintext length */
		memcpy(aad, seqb, 8), memcpy(aad + 8, rec, 3);
		aad[11] = (uint8_t)(body_len >> 8), aad[12] = (uint8_t)body_len, aad_len = 13;
	}
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	ok = EVP_DecryptInit_ex(c, p.cipher, NULL, NULL, NULL) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) == 1 &&
	     EVP_DecryptInit_ex(c, NULL, NULL, p.key, nonce) == 1 &&
	     EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1 &&
	     EVP_DecryptUpdate(c, out, &n, body, (int)body_len) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(body + body_len)) == 1 &&
	     EVP_DecryptFinal_ex(c, out + n, &fin) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? n + fin : -1;
}

/* The record decrypts to text (TLS 1.3: followed by content type 23). */
static bool opens_to(const union ktls_crypto_info *ci, const uint8_t *rec, size_t len,
		     uint64_t delta, const char *text)
{
	uint8_t out[1024];
	int n = kernel_open(ci, rec, len, delta, out);
	size_t tl = strlen(text);

	if (n < 0)
		return false;
	if (ci->info.version == TLS_1_3_VERSION)
		return (size_t)n == tl + 1 && memcmp(out, text, tl) == 0 && out[tl] == 23;
	return (size_t)n == tl && memcmp(out, text, tl) == 0;
}

/* ---- fixtures ---- */

struct row {
	int version;
	const char *cipher;
	uint16_t kernel_cipher;
};

static const struct row rows[] = {
	{ TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", TLS_CIPHER_AES_GCM_128 },
	{ TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", TLS_CIPHER_AES_GCM_256 },
	{ TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", TLS_CIPHER_CHACHA20_POLY1305 },
	{ TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", TLS_CIPHER_AES_GCM_128 },
	{ TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", TLS_CIPHER_AES_GCM_256 },
	{ TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", TLS_CIPHER_CHACHA20_POLY1305 },
};

static int group_setup(void **state)
{
	char err[256];

	make_identity();
	ktls_set_ops(&fake_ops);
	/* mode on: the probe goes through the fake seam and finds the ULP. */
	return ktls_global_init(KTLS_MODE_ON, err, sizeof(err)) == 0 && ktls_available() ? 0 : -1;
}

static int group_teardown(void **state)
{
	ktls_set_ops(NULL);
	X509_free(test_cert);
	EVP_PKEY_free(test_key);
	return 0;
}

/* ---- derivation against real records ---- */

static uint64_t base_rx_seq(int version)
{
	return version == TLS1_2_VERSION ? 1 : 0; /* TLS 1.2: the client's Finished */
}

static void test_ktls_rx_key_decrypts_client_record(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct session s;
		union ktls_crypto_info rx;
		socklen_t len;
		uint8_t rec[256];

		session_start(&s, rows[i].version, rows[i].cipher, 2);
		assert_int_equal(ktls_conn_decide(&s.kc, KTLS_MODE_AUTO), KTLS_OFFLOAD);
		assert_int_equal(ktls_conn_derive(&s.kc, KTLS_DIR_RX, &rx, &len), 0);
		assert_int_equal(rx.info.cipher_type, rows[i].kernel_cipher);
		assert_int_equal(seq_of(&rx), base_rx_seq(rows[i].version));
		size_t n = client_record(&s, "hello kernel", rec, sizeof(rec));
		assert_true(opens_to(&rx, rec, n, 0, "hello kernel"));
		session_end(&s);
	}
}

static void test_ktls_rx_wrong_seq_or_key_fails(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct session s;
		union ktls_crypto_info rx;
		socklen_t len;
		uint8_t rec[256];

		session_start(&s, rows[i].version, rows[i].cipher, 2);
		assert_int_equal(ktls_conn_derive(&s.kc, KTLS_DIR_RX, &rx, &len), 0);
		size_t n = client_record(&s, "hello kernel", rec, sizeof(rec));
		/* TLS 1.2 GCM carries its nonce in the record but the
		 * sequence number is in the AAD: both must fail. */
		assert_false(opens_to(&rx, rec, n, 1, "hello kernel"));
		rx.gcm128.key[0] ^= 1; /* the key starts at the same offset in every variant */
		assert_false(opens_to(&rx, rec, n, 0, "hello kernel"));
		session_end(&s);
	}
}

static void test_ktls_tx_seq_counts_tickets(void **state)
{
	static const int tickets[] = { 0, 2, 4 };

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		for (size_t t = 0; t < ARRAY_SIZE(tickets); t++) {
			struct session s;
			union ktls_crypto_info tx;
			socklen_t len;
			uint8_t rec[256];
			uint64_t want = rows[i].version == TLS1_3_VERSION ? (uint64_t)tickets[t] : 1;

			session_start(&s, rows[i].version, rows[i].cipher, tickets[t]);
			assert_int_equal(ktls_conn_derive(&s.kc, KTLS_DIR_TX, &tx, &len), 0);
			assert_int_equal(seq_of(&tx), want);
			size_t n = server_record(&s, "hello partner", rec, sizeof(rec));
			assert_true(opens_to(&tx, rec, n, 0, "hello partner"));
			session_end(&s);
		}
}

/* Assuming OpenSSL's default of two tickets is wrong with 0 or 4. */
static void test_ktls_tx_assumed_two_tickets_fails(void **state)
{
	static const int tickets[] = { 0, 4 };

	for (size_t t = 0; t < ARRAY_SIZE(tickets); t++) {
		struct session s;
		union ktls_crypto_info tx;
		socklen_t len;
		uint8_t rec[256];

		session_start(&s, TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", tickets[t]);
		assert_int_equal(ktls_conn_derive(&s.kc, KTLS_DIR_TX, &tx, &len), 0);
		size_t n = server_record(&s, "hello partner", rec, sizeof(rec));
		assert_false(opens_to(&tx, rec, n, (uint64_t)(2 - tickets[t]), "hello partner"));
		session_end(&s);
	}
}

/* Client data behind its Finished, decrypted in user space before the
 * handoff, moves the RX sequence on by one record each. */
static void test_ktls_rx_counts_records_read_in_userspace(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct session s;
		union ktls_crypto_info rx;
		socklen_t len;
		uint8_t rec[256], pending[512];
		char got[64];

		session_start(&s, rows[i].version, rows[i].cipher, 2);
		size_t n = client_record(&s, "first", rec, sizeof(rec));
		n += client_record(&s, "second", rec + n, sizeof(rec) - n);
		assert_int_equal(BIO_write(s.s_in, rec, (int)n), (int)n);
		/* What the hook sees: whole records, nothing missing. */
		int avail = BIO_read(s.s_in, pending, sizeof(pending));
		assert_int_equal(ktls_rx_missing(pending, (size_t)avail), 0);
		BIO_write(s.s_in, pending, avail);
		assert_int_equal(SSL_read(s.server, got, sizeof(got)), 5);
		assert_int_equal(SSL_read(s.server, got, sizeof(got)), 6);
		assert_false(SSL_has_pending(s.server));

		assert_int_equal(ktls_conn_derive(&s.kc, KTLS_DIR_RX, &rx, &len), 0);
		assert_int_equal(seq_of(&rx), base_rx_seq(rows[i].version) + 2);
		n = client_record(&s, "third", rec, sizeof(rec));
		assert_true(opens_to(&rx, rec, n, 0, "third"));
		session_end(&s);
	}
}

static void test_ktls_rx_uncounted_records_fail(void **state)
{
	struct session s;
	union ktls_crypto_info rx;
	socklen_t len;
	uint8_t rec[256];
	char got[16];

	session_start(&s, TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", 2);
	size_t n = client_record(&s, "first", rec, sizeof(rec));
	BIO_write(s.s_in, rec, (int)n);
	assert_int_equal(SSL_read(s.server, got, sizeof(got)), 5);
	assert_int_equal(ktls_conn_derive(&s.kc, KTLS_DIR_RX, &rx, &len), 0);
	n = client_record(&s, "second", rec, sizeof(rec));
	/* A handoff that forgot the record read in user space. */
	assert_false(opens_to(&rx, rec, n, (uint64_t)-1, "second"));
	assert_true(opens_to(&rx, rec, n, 0, "second"));
	session_end(&s);
}

static void test_ktls_rx_missing_whole_records(void **state)
{
	static const uint8_t two[] = { 23, 3, 3, 0, 2, 'a', 'b', 23, 3, 3, 0, 1, 'c' };

	assert_int_equal(ktls_rx_missing(NULL, 0), 0);
	assert_int_equal(ktls_rx_missing(two, sizeof(two)), 0);
}

static void test_ktls_rx_missing_partial_record(void **state)
{
	static const uint8_t two[] = { 23, 3, 3, 0, 2, 'a', 'b', 23, 3, 3, 1, 0, 'c' };

	assert_int_equal(ktls_rx_missing(two, sizeof(two)), 256 - 1);
	assert_int_equal(ktls_rx_missing(two, 3), 2);     /* header first */
	assert_int_equal(ktls_rx_missing(two, 9), 3);     /* second header */
	assert_int_equal(ktls_rx_missing(two, 6), 1);
}

/* ---- install through the seam ---- */

static void test_ktls_install_sets_ulp_tx_rx(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct session s;

		reset_seen();
		session_start(&s, rows[i].version, rows[i].cipher, 3);
		assert_int_equal(ktls_conn_install(&s.kc, 42), 0);
		assert_int_equal(seen_ulp, 1);
		assert_int_equal(seen_tx_n, 1);
		assert_int_equal(seen_rx_n, 1);
		assert_true(s.kc.tx_offloaded && s.kc.rx_offloaded);
		assert_int_equal(seen_tx.info.cipher_type, rows[i].kernel_cipher);
		assert_int_equal(seen_rx.info.version,
				 rows[i].version == TLS1_3_VERSION ? TLS_1_3_VERSION : TLS_1_2_VERSION);
		assert_int_equal(seq_of(&seen_tx), rows[i].version == TLS1_3_VERSION ? 3 : 1);
		ktls_conn_release_ssl(&s.kc);
		session_end(&s);
	}
}

static void test_ktls_install_refuses_partial_record(void **state)
{
	struct session s;
	uint8_t rec[256];
	char got[16];

	reset_seen();
	session_start(&s, TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", 2);
	size_t n = client_record(&s, "half", rec, sizeof(rec));
	BIO_write(s.s_in, rec, (int)n - 3);
	assert_true(SSL_read(s.server, got, sizeof(got)) <= 0);
	assert_int_equal(ktls_conn_install(&s.kc, 42), -EAGAIN);
	assert_int_equal(seen_ulp + seen_tx_n + seen_rx_n, 0);
	/* Completing the record makes the handoff possible. */
	BIO_write(s.s_in, rec + n - 3, 3);
	assert_int_equal(SSL_read(s.server, got, sizeof(got)), 4);
	assert_int_equal(ktls_conn_install(&s.kc, 42), 0);
	session_end(&s);
}

static void test_ktls_install_kernel_refusal_keeps_userspace(void **state)
{
	struct session s;
	struct ktls_stats before, after;

	reset_seen();
	ktls_stats_snapshot(&before);
	session_start(&s, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", 2);
	refuse_name = TLS_TX, refuse_errno = ENOENT;
	assert_int_equal(ktls_conn_install(&s.kc, 42), -ENOENT);
	assert_false(s.kc.tx_offloaded);
	ktls_stats_snapshot(&after);
	assert_int_equal(after.declined[KTLS_DECLINE_KERNEL], before.declined[KTLS_DECLINE_KERNEL] + 1);
	reset_seen();
	session_end(&s);
}

static void test_ktls_decide_offloads_aead(void **state)
{
	struct session s;

	session_start(&s, TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", 2);
	assert_int_equal(ktls_conn_decide(&s.kc, KTLS_MODE_AUTO), KTLS_OFFLOAD);
	assert_int_equal(ktls_conn_decide(&s.kc, KTLS_MODE_OFF), KTLS_DECLINE_MODE_OFF);
	session_end(&s);
}

/* TLS 1.3 needs both captured secrets; a declined session drops them. */
static void test_ktls_decide_declined_session_forgets_secrets(void **state)
{
	static const uint8_t zero[KTLS_SECRET_MAX];
	struct session s;
	union ktls_crypto_info tx;
	socklen_t len;

	session_start(&s, TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", 2);
	assert_true(s.kc.have_client_secret && s.kc.have_server_secret);
	assert_int_equal(ktls_conn_decide(&s.kc, KTLS_MODE_OFF), KTLS_DECLINE_MODE_OFF);
	assert_false(s.kc.have_client_secret || s.kc.have_server_secret);
	assert_memory_equal(s.kc.server_secret, zero, sizeof(zero));
	assert_int_equal(ktls_conn_derive(&s.kc, KTLS_DIR_TX, &tx, &len), -ENOKEY);
	assert_int_equal(ktls_conn_decide(&s.kc, KTLS_MODE_AUTO), KTLS_DECLINE_NO_SECRETS);
	session_end(&s);
}

static void test_ktls_decide_declines_other_ciphers(void **state)
{
	struct session s;
	struct ktls_stats before, after;

	ktls_stats_snapshot(&before);
	session_start(&s, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA256", 2);
	assert_int_equal(ktls_conn_decide(&s.kc, KTLS_MODE_AUTO), KTLS_DECLINE_CIPHER);
	session_end(&s);
	session_start(&s, TLS1_3_VERSION, "TLS_AES_128_CCM_SHA256", 2);
	assert_int_equal(ktls_conn_decide(&s.kc, KTLS_MODE_ON), KTLS_DECLINE_CIPHER);
	session_end(&s);
	ktls_stats_snapshot(&after);
	assert_int_equal(after.declined[KTLS_DECLINE_CIPHER], before.declined[KTLS_DECLINE_CIPHER] + 2);
}

/* ---- control records ---- */

static void test_ktls_control_close_notify_shuts_down(void **state)
{
	static const uint8_t close_notify[] = { 1, 0 };
	struct ktls_conn kc = { 0 };
	enum ktls_event why;

	assert_int_equal(ktls_on_control(&kc, 42, KTLS_CT_ALERT, close_notify, 2, &why),
			 KTLS_ACT_SHUTDOWN);
	assert_int_equal(why, KTLS_EV_CLOSE_NOTIFY);
}

static void test_ktls_control_other_alert_aborts(void **state)
{
	static const uint8_t bad_mac[] = { 2, 20 }, short_alert[] = { 1 };
	struct ktls_conn kc = { 0 };
	enum ktls_event why;

	assert_int_equal(ktls_on_control(&kc, 42, KTLS_CT_ALERT, bad_mac, 2, &why), KTLS_ACT_ABORT);
	assert_int_equal(why, KTLS_EV_ALERT);
	assert_int_equal(ktls_on_control(&kc, 42, KTLS_CT_ALERT, short_alert, 1, &why), KTLS_ACT_ABORT);
	assert_int_equal(why, KTLS_EV_BAD_RECORD);
	assert_int_equal(ktls_on_control(&kc, 42, KTLS_CT_CHANGE_CIPHER_SPEC, bad_mac, 1, &why),
			 KTLS_ACT_ABORT);
}

static void test_ktls_control_client_ticket_ignored(void **state)
{
	static const uint8_t ticket[] = { 4, 0, 0, 2, 0xaa, 0xbb };
	struct ktls_conn kc = { 0 };
	enum ktls_event why;

	assert_int_equal(ktls_on_control(&kc, 42, KTLS_CT_HANDSHAKE, ticket, sizeof(ticket), &why),
			 KTLS_ACT_CONTINUE);
	assert_int_equal(why, KTLS_EV_TICKET_IGNORED);
}

static void test_ktls_control_truncated_handshake_aborts(void **state)
{
	static const uint8_t cut[] = { 4, 0, 0, 9, 0xaa };
	static const uint8_t finished[] = { 20, 0, 0, 1, 0 };
	struct ktls_conn kc = { 0 };
	enum ktls_event why;

	assert_int_equal(ktls_on_control(&kc, 42, KTLS_CT_HANDSHAKE, cut, sizeof(cut), &why),
			 KTLS_ACT_ABORT);
	assert_int_equal(ktls_on_control(&kc, 42, KTLS_CT_HANDSHAKE, finished, sizeof(finished), &why),
			 KTLS_ACT_ABORT);
	assert_int_equal(why, KTLS_EV_BAD_RECORD);
}

/* The client updates its key; the next RX key must open its next record. */
static void test_ktls_keyupdate_installs_next_rx_key(void **state)
{
	static const uint8_t key_update[] = { 24, 0, 0, 1, 0 };
	struct session s;
	union ktls_crypto_info old_rx;
	uint8_t rec[512], out[64];
	enum ktls_event why;

	reset_seen();
	session_start(&s, TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", 2);
	assert_int_equal(ktls_conn_install(&s.kc, 42), 0);
	old_rx = seen_rx;
	assert_int_equal(SSL_key_update(s.client, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
	size_t n = client_record(&s, "after update", rec, sizeof(rec));
	size_t first = 5 + ((size_t)rec[3] << 8 | rec[4]);
	assert_true(n > first);
	/* The KeyUpdate itself is under the old key. */
	assert_int_equal(kernel_open(&old_rx, rec, first, 0, out), 6);
	assert_memory_equal(out, key_update, 5);
	assert_int_equal(ktls_on_control(&s.kc, 42, KTLS_CT_HANDSHAKE, key_update, 5, &why),
			 KTLS_ACT_CONTINUE);
	assert_int_equal(why, KTLS_EV_KEYUPDATE);
	assert_int_equal(seen_rx_n, 2);
	assert_int_equal(seq_of(&seen_rx), 0);
	assert_true(opens_to(&seen_rx, rec + first, n - first, 0, "after update"));
	assert_false(opens_to(&old_rx, rec + first, n - first, 1, "after update"));
	session_end(&s);
}

static void test_ktls_keyupdate_requested_answers_and_rekeys_tx(void **state)
{
	static const uint8_t requested[] = { 24, 0, 0, 1, 1 };
	struct session s;
	enum ktls_event why;

	reset_seen();
	session_start(&s, TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", 2);
	assert_int_equal(ktls_conn_install(&s.kc, 42), 0);
	assert_int_equal(ktls_on_control(&s.kc, 42, KTLS_CT_HANDSHAKE, requested, 5, &why),
			 KTLS_ACT_CONTINUE);
	assert_int_equal(sent_type, KTLS_CT_HANDSHAKE);
	assert_int_equal(sent_len, 5);
	assert_int_equal(sent_buf[4], 0); /* update_not_requested */
	assert_int_equal(seen_tx_n, 2);
	assert_int_equal(seq_of(&seen_tx), 0);
	session_end(&s);
}

/* Kernels before 6.14 refuse a second TLS_RX: close cleanly, counted. */
static void test_ktls_keyupdate_unsupported_kernel_closes(void **state)
{
	static const uint8_t key_update[] = { 24, 0, 0, 1, 0 };
	struct session s;
	struct ktls_stats before, after;
	enum ktls_event why;

	reset_seen();
	session_start(&s, TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", 2);
	assert_int_equal(ktls_conn_install(&s.kc, 42), 0);
	ktls_stats_snapshot(&before);
	refuse_name = TLS_RX, refuse_errno = EBUSY;
	assert_int_equal(ktls_on_control(&s.kc, 42, KTLS_CT_HANDSHAKE, key_update, 5, &why),
			 KTLS_ACT_SHUTDOWN);
	assert_int_equal(why, KTLS_EV_KEYUPDATE_UNSUPPORTED);
	ktls_stats_snapshot(&after);
	assert_int_equal(after.events[KTLS_EV_KEYUPDATE_UNSUPPORTED],
			 before.events[KTLS_EV_KEYUPDATE_UNSUPPORTED] + 1);
	reset_seen();
	session_end(&s);
}

static void test_ktls_close_notify_sent_as_alert_record(void **state)
{
	reset_seen();
	assert_int_equal(ktls_send_close_notify(42), 0);
	assert_int_equal(sent_type, KTLS_CT_ALERT);
	assert_int_equal(sent_len, 2);
	assert_int_equal(sent_buf[0], 1);
	assert_int_equal(sent_buf[1], 0);
}

static void test_ktls_recv_record_reports_type(void **state)
{
	uint8_t buf[16], type = 0;

	next_record_type = KTLS_CT_ALERT;
	assert_int_equal(ktls_recv_record(42, buf, sizeof(buf), MSG_DONTWAIT, &type), 2);
	assert_int_equal(type, KTLS_CT_ALERT);
	next_record_type = -1;
}

static void test_ktls_recv_record_error_passes_through(void **state)
{
	uint8_t buf[16], type = 0;

	next_record_type = -1;
	assert_int_equal(ktls_recv_record(42, buf, sizeof(buf), MSG_DONTWAIT, &type), -EAGAIN);
}

static void test_ktls_rxmsg_without_cmsg_is_data(void **state)
{
	struct ktls_msg m;
	uint8_t buf[4];

	ktls_rxmsg_init(&m, buf, sizeof(buf));
	m.msg.msg_controllen = 0; /* nothing came back */
	assert_int_equal(ktls_rxmsg_type(&m), KTLS_CT_APPLICATION_DATA);
}

/* Every decision and event has a name (the counters' labels), and each
 * name leads back to its value. */
static void test_ktls_names_complete(void **state)
{
	(void)state;
	for (int d = 0; d < KTLS_DECISION_MAX; d++) {
		assert_string_not_equal(ktls_decision_name((enum ktls_decision)d), "unknown");
		assert_int_equal(ktls_decision_from_name(ktls_decision_name((enum ktls_decision)d)), d);
	}
	for (int e = 0; e < KTLS_EVENT_MAX; e++) {
		assert_string_not_equal(ktls_event_name((enum ktls_event)e), "unknown");
		assert_int_equal(ktls_event_from_name(ktls_event_name((enum ktls_event)e)), e);
	}
}

/* Rejecting twin: outside the enums, the fallback; an unknown name, nothing. */
static void test_ktls_names_reject_unknown(void **state)
{
	(void)state;
	assert_string_equal(ktls_decision_name(KTLS_DECISION_MAX), "unknown");
	assert_string_equal(ktls_event_name((enum ktls_event)-1), "unknown");
	assert_true(ktls_decision_from_name("unknown") < 0);
	assert_true(ktls_event_from_name("Handoff") < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ktls_names_complete),
		cmocka_unit_test(test_ktls_names_reject_unknown),
		cmocka_unit_test(test_ktls_rx_key_decrypts_client_record),
		cmocka_unit_test(test_ktls_rx_wrong_seq_or_key_fails),
		cmocka_unit_test(test_ktls_tx_seq_counts_tickets),
		cmocka_unit_test(test_ktls_tx_assumed_two_tickets_fails),
		cmocka_unit_test(test_ktls_rx_counts_records_read_in_userspace),
		cmocka_unit_test(test_ktls_rx_uncounted_records_fail),
		cmocka_unit_test(test_ktls_rx_missing_whole_records),
		cmocka_unit_test(test_ktls_rx_missing_partial_record),
		cmocka_unit_test(test_ktls_install_sets_ulp_tx_rx),
		cmocka_unit_test(test_ktls_install_refuses_partial_record),
		cmocka_unit_test(test_ktls_install_kernel_refusal_keeps_userspace),
		cmocka_unit_test(test_ktls_decide_offloads_aead),
		cmocka_unit_test(test_ktls_decide_declined_session_forgets_secrets),
		cmocka_unit_test(test_ktls_decide_declines_other_ciphers),
		cmocka_unit_test(test_ktls_control_close_notify_shuts_down),
		cmocka_unit_test(test_ktls_control_other_alert_aborts),
		cmocka_unit_test(test_ktls_control_client_ticket_ignored),
		cmocka_unit_test(test_ktls_control_truncated_handshake_aborts),
		cmocka_unit_test(test_ktls_keyupdate_installs_next_rx_key),
		cmocka_unit_test(test_ktls_keyupdate_requested_answers_and_rekeys_tx),
		cmocka_unit_test(test_ktls_keyupdate_unsupported_kernel_closes),
		cmocka_unit_test(test_ktls_close_notify_sent_as_alert_record),
		cmocka_unit_test(test_ktls_recv_record_reports_type),
		cmocka_unit_test(test_ktls_recv_record_error_passes_through),
		cmocka_unit_test(test_ktls_rxmsg_without_cmsg_is_data),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
