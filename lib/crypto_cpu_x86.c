/*
 * crypto_cpu_x86.c: the CPU features OpenSSL uses on x86-64.
 *
 * OpenSSL 3.0 keeps its capability vector (OPENSSL_ia32cap_P) private, so
 * this repeats its detection (crypto/x86_64cpuid.pl): CPUID leaves 1 and 7,
 * vector extensions dropped when the OS does not save their registers
 * (XCR0), then the OPENSSL_ia32cap environment variable, which OpenSSL
 * honours the same way ("[~]0xLEAF1[:[~]0xLEAF7]", ~ clears bits). Bit
 * positions are those of OPENSSL_ia32cap(3).
 */
#include "crypto_accel.h"

#include <cpuid.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XCR0_AVX_STATE    0x06u /* SSE + AVX registers */
#define XCR0_AVX512_STATE 0xe0u /* opmask + ZMM halves */

static uint64_t xcr0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

/* One "[~]0xNNN" half of OPENSSL_ia32cap applied to two words. */
static void apply_override(const char *s, unsigned int *w)
{
	bool clear = *s == '~';
	uint64_t v = strtoull(s + clear, NULL, 0);

	if (clear) {
		w[0] &= ~(uint32_t)v;
		w[1] &= ~(uint32_t)(v >> 32);
	} else {
		w[0] = (uint32_t)v;
		w[1] = (uint32_t)(v >> 32);
	}
}

static void read_cpuid(unsigned int cap[4])
{
	unsigned int a, b, c, d;

	if (__get_cpuid(1, &a, &b, &c, &d)) {
		cap[0] = d;
		cap[1] = c;
	}
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
		cap[2] = b;
		cap[3] = c;
	}
	uint64_t xsave = (cap[1] >> 27) & 1 ? xcr0() : 0;
	if ((xsave & XCR0_AVX_STATE) != XCR0_AVX_STATE) {
		cap[1] &= ~((1u << 28) | (1u << 12)); /* AVX, FMA */
		cap[2] &= ~(1u << 5);                 /* AVX2 */
		cap[3] &= ~((1u << 9) | (1u << 10));  /* VAES, VPCLMULQDQ */
	}
	if ((xsave & XCR0_AVX512_STATE) != XCR0_AVX512_STATE)
		cap[2] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) |
			    (1u << 28) | (1u << 30) | (1u << 31));
}

#define CAP(c, word, bit) ((((c)->cap[word]) >> (bit)) & 1u)

void crypto_accel_cpu(struct crypto_cpu *out)
{
	memset(out, 0, sizeof(*out));
	read_cpuid(out->cap);
	const char *env = getenv("OPENSSL_ia32cap");
	if (env) {
		apply_override(env, &out->cap[0]);
		const char *colon = strchr(env, ':');
		if (colon)
			apply_override(colon + 1, &out->cap[2]);
	}
	out->known = true;
	out->pclmulqdq = CAP(out, 1, 1);
	out->aesni = CAP(out, 1, 25);
	out->avx = CAP(out, 1, 28);
	out->avx2 = CAP(out, 2, 5);
	out->avx512f = CAP(out, 2, 16);
	out->sha_ni = CAP(out, 2, 29);
	out->avx512bw = CAP(out, 2, 30);
	out->avx512vl = CAP(out, 2, 31);
	out->vaes = CAP(out, 3, 9);
	out->vpclmulqdq = CAP(out, 3, 10);
}
