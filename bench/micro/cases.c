/*
 * cases.c: the small micro benchmark cases (see cases.h): policy check,
 * certificate identity, PROXY v2 encoding, one record's AEAD seal, the BPF-off accounting call.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "acct.h"
#include "cases.h"
#include "certinfo.h"
#include "config.h"
#include "guard.h"
#include "log.h"
#include "proxy_v2.h"
#include "verify.h"

struct policy_case {
	struct partner_policy policy;
	struct cfg_partner cfg;
	X509 *leaf;
};

int policy_case_new(const char *fx, struct policy_case **out)
{
	static char *dns[] = { "*.other.example", "app2.partner.example" };
	static char *uri[] = { "spiffe://other.example/*", "spiffe://partner.example/dev/*",
			       "spiffe://partner.example/prod/*" };
	char path[512], err[256];
	struct policy_case *pc = calloc(1, sizeof(*pc));

	ENSURE_PTR(pc, ENOMEM);
	pc->cfg.name = "bench";
	pc->cfg.allow_dns = (struct cfg_strlist){ .v = dns, .n = ARRAY_SIZE(dns) };
	pc->cfg.allow_uri = (struct cfg_strlist){ .v = uri, .n = ARRAY_SIZE(uri) };
	snprintf(path, sizeof(path), "%s/client-ec/cert.pem", fx);
	FILE *f = fopen(path, "r");
	if (f) {
		pc->leaf = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (!pc->leaf || partner_policy_compile(&pc->cfg, &pc->policy, err, sizeof(err)) < 0) {
		log_err("micro: policy case: %s", pc->leaf ? err : path);
		X509_free(pc->leaf);
		free(pc);
		return -EINVAL;
	}
	*out = pc;
	return 0;
}

int policy_case_run(struct policy_case *pc)
{
	char detail[256];
	return verify_policy_check(&pc->policy, pc->leaf, NULL, detail, sizeof(detail)) == HS_OK ? 0 : -EACCES;
}

int certinfo_case_run(struct policy_case *pc)
{
	struct cert_identity id;
	return certinfo_from_x509(pc->leaf, &id);
}

void policy_case_free(struct policy_case *pc)
{
	if (!pc)
		return;
	partner_policy_free(&pc->policy);
	X509_free(pc->leaf);
	free(pc);
}

int pp2_case_run(void)
{
	static const uint8_t sha[32] = { 0x02, 0xd7, 0xd1, 0x67 };
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(40000) };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(8443) };
	src.sin_addr.s_addr = htonl(0x7f000001);
	dst.sin_addr.s_addr = htonl(0x7f000001);
	const struct pp2_info info = {
		.src = (const struct sockaddr *)&src, .dst = (const struct sockaddr *)&dst,
		.client_flags = PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, .tls_version = "TLSv1.3",
		.cn = "client-ec", .cipher = "TLS_AES_256_GCM_SHA384", .sig_alg = "ecdsa-with-SHA256",
		.key_alg = "EC256", .app_tlv_type = 0xE0, .partner = "partner",
		.serial_hex = "49:EB:5A:B0:5C:25:2D:76:34:7D:E3:D3:28:4E:48:9F", .sha256 = sha,
		.x5t_s256 = "AtfRZ_X1qtS-1YVZ9b3k4q4A", .spiffe_id = "spiffe://partner.example/prod/app1",
	};
	uint8_t buf[PP2_MAX_HEADER_NO_CERT];
	int n = pp2_encode(&info, buf, sizeof(buf));
	__asm__ __volatile__("" : : "r"(buf) : "memory"); /* the bytes are used */
	return n > 0 ? 0 : n;
}

struct record_case {
	EVP_CIPHER_CTX *ctx;
	EVP_CIPHER *cipher;
	uint8_t key[32], iv[12], tag[16];
	uint8_t *in, *out;
	size_t len;
	uint64_t seq;
};

int record_case_new(const char *name, size_t len, struct record_case **out)
{
	struct record_case *rc = calloc(1, sizeof(*rc));
	ENSURE_PTR(rc, ENOMEM);
	rc->len = len;
	rc->ctx = EVP_CIPHER_CTX_new();
	/* Fetched once, as mtlsd's hot path should: no per-record lookups. */
	rc->cipher = EVP_CIPHER_fetch(NULL, name, NULL);
	rc->in = calloc(1, len);
	rc->out = malloc(len);
	if (!rc->ctx || !rc->cipher || !rc->in || !rc->out ||
	    EVP_EncryptInit_ex2(rc->ctx, rc->cipher, rc->key, rc->iv, NULL) != 1) {
		log_ossl(LOG_LVL_ERR, "micro: cipher %s", name);
		record_case_free(rc);
		return -EINVAL;
	}
	*out = rc;
	return 0;
}

int record_case_run(struct record_case *rc)
{
	uint8_t nonce[12], aad[5] = { 0x17, 0x03, 0x03 };
	int n, fin;

	/* TLS 1.3 nonce: static IV XOR the record sequence number. */
	memcpy(nonce, rc->iv, sizeof(nonce));
	for (int i = 0; i < 8; i++)
		nonce[11 - i] ^= (uint8_t)(rc->seq >> (8 * i));
	rc->seq++;
	aad[3] = (uint8_t)((rc->len + 16) >> 8);
	aad[4] = (uint8_t)(rc->len + 16);
	GUARD_OSSL(EVP_EncryptInit_ex2(rc->ctx, NULL, NULL, nonce, NULL), EIO);
	GUARD_OSSL(EVP_EncryptUpdate(rc->ctx, NULL, &n, aad, sizeof(aad)), EIO);
	GUARD_OSSL(EVP_EncryptUpdate(rc->ctx, rc->out, &n, rc->in, (int)rc->len), EIO);
	GUARD_OSSL(EVP_EncryptFinal_ex(rc->ctx, rc->out + n, &fin), EIO);
	GUARD_OSSL(EVP_CIPHER_CTX_ctrl(rc->ctx, EVP_CTRL_AEAD_GET_TAG, 16, rc->tag), EIO);
	return 0;
}

void record_case_free(struct record_case *rc)
{
	if (!rc)
		return;
	EVP_CIPHER_CTX_free(rc->ctx);
	EVP_CIPHER_free(rc->cipher);
	free(rc->in);
	free(rc->out);
	free(rc);
}

static struct acct_event acct_ev;
static bool acct_started;

int acct_case_init(bool fallback)
{
	static const uint8_t serial[] = { 0x49, 0xeb, 0x5a, 0xb0, 0x5c, 0x25, 0x2d, 0x76 };
	char instance[64];

	memset(&acct_ev, 0, sizeof(acct_ev));
	memcpy(acct_ev.serial, serial, sizeof(serial));
	acct_ev.serial_len = sizeof(serial);
	acct_ev.outcome = HS_OK;
	acct_ev.partner = 0;
	acct_ev.partner_name = "bench";
	acct_ev.tls_version = 0x0304;
	acct_ev.cipher = 0x1302;
	acct_ev.duration_ns = 900000;
	if (!fallback)
		return 0;
	/* A private instance so nothing of a running mtlsd is touched; its
	 * "BPF unavailable" notice is expected here. */
	log_set_level(LOG_LVL_ERR);
	snprintf(instance, sizeof(instance), "micro-%d", (int)getpid());
	GUARD(acct_init(instance, false));
	acct_started = true;
	return acct_source() == ACCT_SOURCE_FALLBACK ? 0 : -ENOTSUP;
}

void acct_case_run(void)
{
	acct_handshake_end(&acct_ev);
}

void acct_case_shutdown(void)
{
	if (acct_started)
		acct_shutdown();
	acct_started = false;
}
