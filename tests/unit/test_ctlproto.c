/*
 * test_ctlproto.c: the control protocol codec (lib/ctlproto.c): frames
 * round-trip, and every malformed or oversized input is refused with its
 * error, never read past its bounds.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctlproto.h"

static struct ctl_msg msg;
static char body[CTLPROTO_MAX_BODY + 1];
static struct ctl_field fields[64];

/* Parse msg's own frame back: header, then body. */
static int parse_back(const struct ctl_msg *m, int *nfields)
{
	uint32_t len;
	uint8_t version;
	int rc = ctlproto_parse_header(m->data, &len, &version);
	if (rc < 0)
		return rc;
	memcpy(body, m->data + CTLPROTO_HEADER_LEN, len);
	*nfields = ctlproto_parse_body(body, len, fields, ARRAY_SIZE(fields));
	return *nfields < 0 ? *nfields : 0;
}

static void test_ctlproto_roundtrip(void **state)
{
	int n;
	(void)state;
	ctlproto_init(&msg);
	ctlproto_add(&msg, "cmd", "drop");
	ctlproto_add(&msg, "serial", "%s", "0A1B");
	ctlproto_add(&msg, "issuer", "CN=Partner CA, O=Example");
	assert_int_equal(ctlproto_finish(&msg), 0);
	assert_int_equal(parse_back(&msg, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ctlproto_get(fields, (size_t)n, "cmd"), "drop");
	assert_string_equal(ctlproto_get(fields, (size_t)n, "serial"), "0A1B");
	assert_string_equal(ctlproto_get(fields, (size_t)n, "issuer"), "CN=Partner CA, O=Example");
	assert_null(ctlproto_get(fields, (size_t)n, "missing"));
}

static void test_ctlproto_value_newlines_flattened(void **state)
{
	int n;
	(void)state;
	ctlproto_init(&msg);
	ctlproto_add(&msg, "error", "line one\nline two\r");
	assert_int_equal(ctlproto_finish(&msg), 0);
	assert_int_equal(parse_back(&msg, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(fields[0].value, "line one line two ");
}

static void test_ctlproto_bad_key_refused(void **state)
{
	(void)state;
	ctlproto_init(&msg);
	ctlproto_add(&msg, "Bad-Key", "x");
	assert_true(msg.overflow);
	assert_int_equal(ctlproto_finish(&msg), -EMSGSIZE);
	ctlproto_init(&msg);
	ctlproto_add(&msg, "", "x");
	assert_int_equal(ctlproto_finish(&msg), -EMSGSIZE);
}

static void test_ctlproto_oversized_body_refused_when_built(void **state)
{
	char *big = malloc(CTLPROTO_MAX_BODY);
	(void)state;
	assert_non_null(big);
	memset(big, 'a', CTLPROTO_MAX_BODY - 1);
	big[CTLPROTO_MAX_BODY - 1] = '\0';
	ctlproto_init(&msg);
	ctlproto_add(&msg, "v", "%s", big);
	assert_int_equal(ctlproto_finish(&msg), -EMSGSIZE);
	/* The twin: the largest body that fits is accepted. */
	big[CTLPROTO_MAX_BODY - 3] = '\0'; /* "v=" + value + "\n" == MAX */
	ctlproto_init(&msg);
	ctlproto_add(&msg, "v", "%s", big);
	assert_int_equal(ctlproto_finish(&msg), 0);
	assert_int_equal(msg.len, CTLPROTO_HEADER_LEN + CTLPROTO_MAX_BODY);
	free(big);
}

static void test_ctlproto_header_checks(void **state)
{
	uint8_t h[CTLPROTO_HEADER_LEN] = { 'M', 'T', 'C', CTLPROTO_VERSION, 0, 1, 0, 0 };
	uint32_t len;
	uint8_t v;
	(void)state;
	assert_int_equal(ctlproto_parse_header(h, &len, &v), 0);
	assert_int_equal(len, 65536);
	h[5] = 1; h[7] = 1; /* 65537 */
	assert_int_equal(ctlproto_parse_header(h, &len, &v), -EMSGSIZE);
	h[4] = 0xff;
	assert_int_equal(ctlproto_parse_header(h, &len, &v), -EMSGSIZE);
	h[4] = 0; h[5] = 0;
	h[3] = 2;
	assert_int_equal(ctlproto_parse_header(h, &len, &v), -EPROTONOSUPPORT);
	assert_int_equal(v, 2);
	memcpy(h, "GET /", 5);
	assert_int_equal(ctlproto_parse_header(h, &len, &v), -EPROTO);
}

static int parse_text(const char *text)
{
	size_t len = strlen(text);
	memcpy(body, text, len);
	return ctlproto_parse_body(body, len, fields, ARRAY_SIZE(fields));
}

/* A server reading without blocking asks after every read whether the
 * frame is whole: not until its last byte. */
static void test_ctlproto_frame_status_complete_at_last_byte(void **state)
{
	size_t frame_len = 0;

	(void)state;
	ctlproto_init(&msg);
	ctlproto_add(&msg, "cmd", "status");
	assert_int_equal(ctlproto_finish(&msg), 0);
	for (size_t len = 0; len < msg.len; len++)
		assert_int_equal(ctlproto_frame_status(msg.data, len, &frame_len), 0);
	assert_int_equal(ctlproto_frame_status(msg.data, msg.len, &frame_len), 1);
	assert_int_equal(frame_len, msg.len);
}

/* Twin: a bad header is known as soon as its 8 bytes are in, so the
 * client is answered at once instead of waiting for a body. */
static void test_ctlproto_frame_status_bad_header_at_once(void **state)
{
	size_t frame_len = 0;

	(void)state;
	assert_int_equal(ctlproto_frame_status((const uint8_t *)"GET / HTTP/1.0\r\n", 8, &frame_len),
			 -EPROTO);
	assert_int_equal(ctlproto_frame_status((const uint8_t *)"MTC\x01\xff\xff\xff\xff", 8,
					       &frame_len), -EMSGSIZE);
	assert_int_equal(ctlproto_frame_status((const uint8_t *)"GET / H", 7, &frame_len), 0);
}

static void test_ctlproto_body_accepts_empty_value_and_empty_body(void **state)
{
	(void)state;
	assert_int_equal(parse_text(""), 0);
	assert_int_equal(parse_text("cmd=status\nnote=\n"), 2);
	assert_string_equal(fields[1].value, "");
	assert_int_equal(parse_text("a.b_1=x=y\n"), 1);
	assert_string_equal(fields[0].value, "x=y");
}

static void test_ctlproto_body_malformed_refused(void **state)
{
	(void)state;
	assert_int_equal(parse_text("cmd=status"), -EBADMSG);        /* no final newline */
	assert_int_equal(parse_text("cmdstatus\n"), -EBADMSG);       /* no '=' */
	assert_int_equal(parse_text("=status\n"), -EBADMSG);         /* empty key */
	assert_int_equal(parse_text("CMD=status\n"), -EBADMSG);      /* key charset */
	assert_int_equal(parse_text("cmd=st\x01tus\n"), -EBADMSG);   /* control char */
	assert_int_equal(parse_text("\n"), -EBADMSG);                /* empty line */
	assert_int_equal(parse_text("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1\n"), -EBADMSG); /* 32-char key */
	memcpy(body, "cmd=a\0b\n", 8);
	assert_int_equal(ctlproto_parse_body(body, 8, fields, ARRAY_SIZE(fields)), -EBADMSG);
}

static void test_ctlproto_body_too_many_fields_refused(void **state)
{
	(void)state;
	char text[64 * 4 + 8] = "";
	for (int i = 0; i < 65; i++)
		strcat(text, "a=\n");
	assert_int_equal(parse_text(text), -EBADMSG);
	text[3 * 64] = '\0';
	assert_int_equal(parse_text(text), 64);
}

/* Over a socketpair: a frame goes through; a truncated one is an error. */
static void test_ctlproto_socket_frame_and_truncation(void **state)
{
	int sv[2];
	size_t len;
	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ctlproto_init(&msg);
	ctlproto_add(&msg, "cmd", "status");
	assert_int_equal(ctlproto_finish(&msg), 0);
	assert_int_equal(ctlproto_write_frame(sv[0], &msg), 0);
	assert_int_equal(ctlproto_read_frame(sv[1], body, sizeof(body), &len), 0);
	assert_int_equal(len, strlen("cmd=status\n"));
	assert_memory_equal(body, "cmd=status\n", len);

	assert_int_equal(write(sv[0], msg.data, msg.len - 1), (ssize_t)(msg.len - 1));
	close(sv[0]);
	assert_int_equal(ctlproto_read_frame(sv[1], body, sizeof(body), &len), -ECONNRESET);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctlproto_roundtrip),
		cmocka_unit_test(test_ctlproto_value_newlines_flattened),
		cmocka_unit_test(test_ctlproto_bad_key_refused),
		cmocka_unit_test(test_ctlproto_oversized_body_refused_when_built),
		cmocka_unit_test(test_ctlproto_header_checks),
		cmocka_unit_test(test_ctlproto_frame_status_complete_at_last_byte),
		cmocka_unit_test(test_ctlproto_frame_status_bad_header_at_once),
		cmocka_unit_test(test_ctlproto_body_accepts_empty_value_and_empty_body),
		cmocka_unit_test(test_ctlproto_body_malformed_refused),
		cmocka_unit_test(test_ctlproto_body_too_many_fields_refused),
		cmocka_unit_test(test_ctlproto_socket_frame_and_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
