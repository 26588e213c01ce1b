/*
 * crypto_cpu_generic.c: CPU features off x86-64, where OpenSSL's
 * capability vector means something else: reported as unknown.
 */
#include "crypto_accel.h"

#include <string.h>

void crypto_accel_cpu(struct crypto_cpu *out)
{
	memset(out, 0, sizeof(*out));
}
