/*
 * test_preamble.c: the echo backend must find the command after exactly
 * the PROXY header each relay sends, and refuse anything else rather than
 * echo a header back into a measured response.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "preamble.h"

static const uint8_t pp2_local[] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
				     0x21, 0x11, 0x00, 0x0c, 127, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0x40, 0x1f, 0x90 };

static int parse_str(const char *s, size_t len, enum echo_cmd *cmd)
{
	return preamble_parse((const uint8_t *)s, len, cmd);
}

static void test_preamble_bare_commands(void **state)
{
	enum echo_cmd cmd = CMD_NONE;
	assert_int_equal(parse_str("ECHOxyz", 7, &cmd), 4);
	assert_int_equal(cmd, CMD_ECHO);
	assert_int_equal(parse_str("SINK", 4, &cmd), 4);
	assert_int_equal(cmd, CMD_SINK);
	assert_int_equal(parse_str("SRCE", 4, &cmd), 4);
	assert_int_equal(cmd, CMD_SOURCE);
}

static void test_preamble_unknown_command_rejected(void **state)
{
	enum echo_cmd cmd = CMD_NONE;
	assert_int_equal(parse_str("ECHX", 4, &cmd), -EPROTO);
	assert_int_equal(parse_str("GET / HTTP/1.1\r\n", 16, &cmd), -EPROTO);
	assert_int_equal(cmd, CMD_NONE);
}

static void test_preamble_v2_header_skipped(void **state)
{
	uint8_t buf[64];
	enum echo_cmd cmd = CMD_NONE;
	memcpy(buf, pp2_local, sizeof(pp2_local));
	memcpy(buf + sizeof(pp2_local), "SRCE", 4);
	assert_int_equal(preamble_parse(buf, sizeof(pp2_local) + 4, &cmd), (int)sizeof(pp2_local) + 4);
	assert_int_equal(cmd, CMD_SOURCE);
	/* Every shorter prefix asks for more bytes. */
	for (size_t n = 1; n < sizeof(pp2_local) + 4; n++)
		assert_int_equal(preamble_parse(buf, n, &cmd), 0);
}

static void test_preamble_v2_bad_signature_rejected(void **state)
{
	uint8_t buf[64];
	enum echo_cmd cmd = CMD_NONE;
	memcpy(buf, pp2_local, sizeof(pp2_local));
	memcpy(buf + sizeof(pp2_local), "ECHO", 4);
	buf[7] = 'X'; /* "QUIT" -> "XUIT" */
	assert_int_equal(preamble_parse(buf, sizeof(pp2_local) + 4, &cmd), -EPROTO);
	assert_int_equal(preamble_parse(buf, 8, &cmd), -EPROTO); /* as soon as it is visible */
}

static void test_preamble_v1_header_skipped(void **state)
{
	const char *s = "PROXY TCP4 127.0.0.1 127.0.0.1 40000 8080\r\nECHOpayload";
	enum echo_cmd cmd = CMD_NONE;
	int hl = (int)(strstr(s, "\r\n") - s) + 2;
	assert_int_equal(parse_str(s, strlen(s), &cmd), hl + 4);
	assert_int_equal(cmd, CMD_ECHO);
	assert_int_equal(parse_str(s, (size_t)hl + 3, &cmd), 0);
}

static void test_preamble_v1_without_crlf_rejected(void **state)
{
	char line[200];
	enum echo_cmd cmd = CMD_NONE;
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY ", 6);
	assert_int_equal(parse_str(line, 106, &cmd), 0);           /* may still end */
	assert_int_equal(parse_str(line, sizeof(line), &cmd), -EPROTO); /* too long for v1 */
	assert_int_equal(parse_str("PROXZ TCP4\r\nECHO", 16, &cmd), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_preamble_bare_commands),
		cmocka_unit_test(test_preamble_unknown_command_rejected),
		cmocka_unit_test(test_preamble_v2_header_skipped),
		cmocka_unit_test(test_preamble_v2_bad_signature_rejected),
		cmocka_unit_test(test_preamble_v1_header_skipped),
		cmocka_unit_test(test_preamble_v1_without_crlf_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
