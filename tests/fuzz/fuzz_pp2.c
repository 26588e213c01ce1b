/*
 * fuzz_pp2.c: libFuzzer target for pp2_encode (dataplane/identity/proxy_v2.c).
 *
 * The input is cut into the strings and flags of a struct pp2_info. The
 * encoder must never write past the capacity it is given, must report
 * -ENOSPC for every capacity below the header's length, and the length
 * field must always describe exactly the bytes written. Build and run with
 * tests/fuzz/run.sh.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proxy_v2.h"

/* Next length-prefixed field of the input (1 length byte), as a string. */
static const char *take(const uint8_t **d, size_t *n, char *buf, size_t cap)
{
	size_t len;

	if (*n == 0)
		return NULL;
	len = (*d)[0] % cap;
	(*d)++;
	(*n)--;
	if (len > *n)
		len = *n;
	memcpy(buf, *d, len);
	buf[len] = '\0';
	*d += len;
	*n -= len;
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[10][256];
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(443) };
	uint8_t sha[32] = { 0 }, cert[300];
	struct pp2_info info;
	uint8_t *buf;
	int n;

	if (size < 4)
		return 0;
	memset(&info, 0, sizeof(info));
	info.client_flags = data[0];
	info.app_tlv_type = data[1];
	info.src = info.dst = (data[2] & 1) ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4;
	if (data[2] & 2)
		info.src = NULL;
	if (data[2] & 4) {
		info.cert_der = cert;
		info.cert_der_len = data[3] % sizeof(cert);
		memset(cert, 0x30, sizeof(cert));
	}
	if (data[2] & 8)
		info.sha256 = sha;
	data += 4;
	size -= 4;
	info.tls_version = take(&data, &size, s[0], sizeof(s[0]));
	info.cn = take(&data, &size, s[1], sizeof(s[1]));
	info.cipher = take(&data, &size, s[2], sizeof(s[2]));
	info.sig_alg = take(&data, &size, s[3], sizeof(s[3]));
	info.key_alg = take(&data, &size, s[4], sizeof(s[4]));
	info.sni = take(&data, &size, s[5], sizeof(s[5]));
	info.partner = take(&data, &size, s[6], sizeof(s[6]));
	info.serial_hex = take(&data, &size, s[7], sizeof(s[7]));
	info.x5t_s256 = take(&data, &size, s[8], sizeof(s[8]));
	info.spiffe_id = take(&data, &size, s[9], sizeof(s[9]));
	info.alpn = data;
	info.alpn_len = size;

	buf = malloc(PP2_MAX_HEADER_NO_CERT + sizeof(cert) + size);
	n = pp2_encode(&info, buf, PP2_MAX_HEADER_NO_CERT + sizeof(cert) + size);
	if (n < 0) {
		/* Over the protocol's 64 KiB, and said so by the sizing pass too. */
		assert(n == -EINVAL || (n == -EMSGSIZE && pp2_encoded_size(&info) > PP2_MAX_HEADER));
		free(buf);
		return 0;
	}
	assert(n >= 16 && 16 + ((buf[14] << 8) | buf[15]) == n);
	assert(pp2_encoded_size(&info) == (size_t)n);
	/* Exactly n bytes in a buffer of exactly n (ASan sees any overrun). */
	uint8_t *exact = malloc((size_t)n);
	assert(pp2_encode(&info, exact, (size_t)n) == n);
	assert(memcmp(exact, buf, (size_t)n) == 0);
	assert(pp2_encode(&info, exact, (size_t)n - 1) == -ENOSPC);
	free(exact);
	free(buf);
	return 0;
}
