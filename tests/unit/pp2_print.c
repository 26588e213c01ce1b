/*
 * pp2_print.c: print the encoded PROXY v2 header of each sample in
 * pp2_sample.h as "NAME HEX" lines, for tests/unit/test_pp2_decode.py to
 * check with the independent Python decoder (tests/pp2_decode.py).
 */
#include <stdio.h>

#include "pp2_sample.h"

static int print_sample(const char *name, void (*make)(struct pp2_sample *))
{
	struct pp2_sample s;
	uint8_t buf[PP2_MAX_HEADER_NO_CERT + 64];
	int n;

	make(&s);
	n = pp2_encode(&s.info, buf, sizeof(buf));
	if (n < 0) {
		fprintf(stderr, "pp2_print: %s: pp2_encode failed: %d\n", name, n);
		return 1;
	}
	printf("%s ", name);
	for (int i = 0; i < n; i++)
		printf("%02x", buf[i]);
	printf("\n");
	return 0;
}

int main(void)
{
	int failed = 0;

	failed |= print_sample("v4", pp2_sample_v4);
	failed |= print_sample("v6", pp2_sample_v6);
	failed |= print_sample("unix", pp2_sample_unix);
	return failed;
}
