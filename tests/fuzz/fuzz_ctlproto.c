/*
 * fuzz_ctlproto.c: libFuzzer target for the control protocol codec
 * (lib/ctlproto.c), what mtlsd runs on every byte a control client sends.
 *
 * The input is a frame: the header is decoded, the body split into fields;
 * every field accepted must re-encode into a frame that parses back to the
 * same key and value (the codec is its own inverse on what it accepts).
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilib \
 *     tests/fuzz/fuzz_ctlproto.c lib/ctlproto.c -o fuzz_ctlproto
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ctlproto.h"

static char body[CTLPROTO_MAX_BODY + 1];
static char back[CTLPROTO_MAX_BODY + 1];
static struct ctl_field fields[CTLPROTO_MAX_FIELDS], again[2];
static struct ctl_msg msg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t len;
	uint8_t version;

	if (size < CTLPROTO_HEADER_LEN)
		return 0;
	if (ctlproto_parse_header(data, &len, &version) < 0)
		return 0;
	size_t have = size - CTLPROTO_HEADER_LEN;
	if (len > have)
		len = (uint32_t)have; /* what a truncated read would have delivered */
	memcpy(body, data + CTLPROTO_HEADER_LEN, len);
	int n = ctlproto_parse_body(body, len, fields, CTLPROTO_MAX_FIELDS);
	for (int i = 0; i < n; i++) {
		ctlproto_init(&msg);
		ctlproto_add(&msg, fields[i].key, "%s", fields[i].value);
		if (ctlproto_finish(&msg) < 0)
			abort(); /* it parsed, so it must encode */
		uint32_t blen;
		if (ctlproto_parse_header(msg.data, &blen, &version) < 0)
			abort();
		memcpy(back, msg.data + CTLPROTO_HEADER_LEN, blen);
		if (ctlproto_parse_body(back, blen, again, 2) != 1 ||
		    strcmp(again[0].key, fields[i].key) != 0 || strcmp(again[0].value, fields[i].value) != 0)
			abort();
	}
	return 0;
}
