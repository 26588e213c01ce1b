/*
 * test_admin_http.c: the admin listener's request handling
 * (admin_http_respond) without sockets: routes, methods, malformed and
 * oversized requests, the health hook. The listener over real sockets is
 * exercised by test_bpf_accounting.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin_http.h"

static char *respond(const struct admin_http_hooks *hooks, const char *req, int *status)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	*status = admin_http_respond(hooks, req, strlen(req), f);
	fclose(f);
	return text;
}

static bool sick(char *why, size_t len)
{
	snprintf(why, len, "no worker running");
	return false;
}

static bool well(char *why, size_t len)
{
	(void)why;
	(void)len;
	return true;
}

static void extra_metrics(FILE *out)
{
	fputs("mtlsd_workers 2\n", out);
}

static void test_admin_http_healthz_ok(void **state)
{
	struct admin_http_hooks hooks = { .healthy = well };
	int status;
	(void)state;

	char *r = respond(&hooks, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &status);
	assert_int_equal(status, 200);
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r, "Content-Length: 3\r\n"));
	assert_non_null(strstr(r, "\r\n\r\nok\n"));
	free(r);
}

static void test_admin_http_healthz_unhealthy_is_503(void **state)
{
	struct admin_http_hooks hooks = { .healthy = sick };
	int status;
	(void)state;

	char *r = respond(&hooks, "GET /healthz HTTP/1.0\r\n\r\n", &status);
	assert_int_equal(status, 503);
	assert_non_null(strstr(r, "unhealthy: no worker running"));
	free(r);
}

static void test_admin_http_metrics_format_and_hook(void **state)
{
	struct admin_http_hooks hooks = { .metrics = extra_metrics };
	int status;
	(void)state;

	/* acct_init() was not called here: only the hook's families. */
	char *r = respond(&hooks, "GET /metrics?name[]=x HTTP/1.1\r\n\r\n", &status);
	assert_int_equal(status, 200);
	assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
	assert_non_null(strstr(r, "\r\n\r\nmtlsd_workers 2\n"));
	free(r);
}

static void test_admin_http_head_has_no_body(void **state)
{
	int status;
	(void)state;

	char *r = respond(NULL, "HEAD /healthz HTTP/1.1\r\n\r\n", &status);
	assert_int_equal(status, 200);
	assert_non_null(strstr(r, "Content-Length: 3\r\n"));
	assert_null(strstr(r, "ok\n"));
	free(r);
}

static void test_admin_http_rejects_other_paths_and_methods(void **state)
{
	int status;
	(void)state;

	char *r = respond(NULL, "GET /metrics/../etc HTTP/1.1\r\n\r\n", &status);
	assert_int_equal(status, 404);
	free(r);
	r = respond(NULL, "POST /metrics HTTP/1.1\r\n\r\n", &status);
	assert_int_equal(status, 405);
	assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
	free(r);
}

static void test_admin_http_rejects_malformed_requests(void **state)
{
	int status;
	(void)state;

	static const char *const bad[] = {
		"GET /healthz\r\n\r\n",                  /* no version */
		"GET /healthz SPDY/3\r\n\r\n",           /* not HTTP/1.x */
		"GET healthz HTTP/1.1\r\n\r\n",          /* not a path */
		"GET  /healthz HTTP/1.1\r\n\r\n",        /* empty token */
		"\x16\x03\x01\x02\x00\x01\x00",          /* a TLS ClientHello */
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *r = respond(NULL, bad[i], &status);
		assert_int_equal(status, 400);
		free(r);
	}
}

static void test_admin_http_rejects_oversized_head(void **state)
{
	int status;
	(void)state;

	char *big = malloc(9000);
	assert_non_null(big);
	memset(big, 'a', 8999);
	memcpy(big, "GET /healthz HTTP/1.1\r\nX: ", 26);
	big[8999] = '\0';
	char *r = respond(NULL, big, &status);
	assert_int_equal(status, 431);
	free(r);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admin_http_healthz_ok),
		cmocka_unit_test(test_admin_http_healthz_unhealthy_is_503),
		cmocka_unit_test(test_admin_http_metrics_format_and_hook),
		cmocka_unit_test(test_admin_http_head_has_no_body),
		cmocka_unit_test(test_admin_http_rejects_other_paths_and_methods),
		cmocka_unit_test(test_admin_http_rejects_malformed_requests),
		cmocka_unit_test(test_admin_http_rejects_oversized_head),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
