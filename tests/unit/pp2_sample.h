/*
 * pp2_sample.h: the fixed PROXY v2 inputs shared by test_proxy_v2.c (byte-
 * exact expectations) and pp2_print.c (fed to the independent Python
 * decoder). Change a value here and both must still agree.
 */
#ifndef MTLS_TEST_PP2_SAMPLE_H
#define MTLS_TEST_PP2_SAMPLE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "proxy_v2.h"

struct pp2_sample {
	struct sockaddr_storage src, dst;
	uint8_t sha256[32];
	struct pp2_info info;
};

/* TCP4, every optional field present. */
static inline void pp2_sample_v4(struct pp2_sample *s)
{
	struct sockaddr_in *src = (struct sockaddr_in *)&s->src;
	struct sockaddr_in *dst = (struct sockaddr_in *)&s->dst;

	memset(s, 0, sizeof(*s));
	src->sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.10", &src->sin_addr);
	src->sin_port = htons(50412);
	dst->sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.1", &dst->sin_addr);
	dst->sin_port = htons(8443);
	for (int i = 0; i < 32; i++)
		s->sha256[i] = (uint8_t)i;
	s->info = (struct pp2_info){
		.src = (struct sockaddr *)src, .dst = (struct sockaddr *)dst,
		.client_flags = PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS,
		.tls_version = "TLSv1.3", .cn = "client-ec", .cipher = "TLS_AES_128_GCM_SHA256",
		.sig_alg = "ecdsa-with-SHA256", .key_alg = "EC256",
		.alpn = (const uint8_t *)"h2", .alpn_len = 2, .sni = "api.example",
		.app_tlv_type = 0xE0, .partner = "acme", .serial_hex = "01:02",
		.sha256 = s->sha256, .x5t_s256 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
		.spiffe_id = "spiffe://acme.example/prod/app1",
	};
}

/* TCP6, resumed session, only the mandatory SSL sub-TLVs, no app TLV. */
static inline void pp2_sample_v6(struct pp2_sample *s)
{
	struct sockaddr_in6 *src = (struct sockaddr_in6 *)&s->src;
	struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&s->dst;

	memset(s, 0, sizeof(*s));
	src->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", &src->sin6_addr);
	src->sin6_port = htons(50412);
	dst->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::2", &dst->sin6_addr);
	dst->sin6_port = htons(8443);
	s->info = (struct pp2_info){
		.src = (struct sockaddr *)src, .dst = (struct sockaddr *)dst,
		.client_flags = PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS,
		.tls_version = "TLSv1.2", .cipher = "ECDHE-ECDSA-AES128-GCM-SHA256",
	};
}

/* A unix-socket client: UNSPEC, no addresses; a certificate DER and an
 * application TLV without SPIFFE ID (type 0xEF). */
static inline void pp2_sample_unix(struct pp2_sample *s)
{
	static const uint8_t fake_der[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
	struct sockaddr_un *src = (struct sockaddr_un *)&s->src;
	struct sockaddr_un *dst = (struct sockaddr_un *)&s->dst;

	pp2_sample_v4(s);
	memset(&s->src, 0, sizeof(s->src));
	memset(&s->dst, 0, sizeof(s->dst));
	src->sun_family = AF_UNIX;
	dst->sun_family = AF_UNIX;
	strcpy(dst->sun_path, "/run/mtlsd.sock");
	s->info.src = (struct sockaddr *)src;
	s->info.dst = (struct sockaddr *)dst;
	s->info.cert_der = fake_der;
	s->info.cert_der_len = sizeof(fake_der);
	s->info.app_tlv_type = 0xEF;
	s->info.spiffe_id = NULL;
	s->info.alpn = NULL;
	s->info.sni = NULL;
}

#endif
