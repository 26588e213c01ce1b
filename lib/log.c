/*
 * log.c: the one place that writes operational log lines.
 *
 * Lines are written with a single write(2) so lines from worker threads do
 * not interleave.
 */
#include "log.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "string_table.h"

static enum log_level current_level = LOG_LVL_INFO;
static const char *log_ident = "mtls";

const char *const log_level_names[LOG_LVL_MAX] = {
	[LOG_LVL_ERR] = "error", [LOG_LVL_WARN] = "warning",
	[LOG_LVL_INFO] = "info", [LOG_LVL_DEBUG] = "debug",
};

DEFINE_STRING_TABLE(log_level, enum log_level, log_level_names, "?")

void log_set_level(enum log_level lvl) { current_level = lvl; }
enum log_level log_get_level(void) { return current_level; }
void log_set_ident(const char *ident) { log_ident = ident; }

__attribute__((format(printf, 3, 0)))
static void log_vwrite(enum log_level lvl, const char *suffix, const char *fmt, va_list ap)
{
	char line[2048];
	int n = snprintf(line, sizeof(line), "%s: %s: ", log_ident, log_level_name(lvl));
	if (n < 0)
		return;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	size_t len = strnlen(line, sizeof(line) - 2);
	if (suffix && *suffix)
		len += (size_t)snprintf(line + len, sizeof(line) - 2 - len, ": %s", suffix);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (lvl > current_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(lvl, NULL, fmt, ap);
	va_end(ap);
}

const char *ossl_errors_str(char *buf, unsigned long len)
{
	unsigned long e;
	size_t off = 0;
	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		char one[256];
		ERR_error_string_n(e, one, sizeof(one));
		/* Keep only the human part: "error:XXXX:lib:func:reason" -> reason */
		const char *reason = strrchr(one, ':');
		reason = reason ? reason + 1 : one;
		int n = snprintf(buf + off, len - off, "%s%s", off ? "; " : "", reason);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	if (off == 0)
		snprintf(buf, len, "unknown OpenSSL error");
	return buf;
}

void log_ossl(enum log_level lvl, const char *fmt, ...)
{
	char errs[1024];
	ossl_errors_str(errs, sizeof(errs));
	if (lvl > current_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(lvl, errs, fmt, ap);
	va_end(ap);
}
