/*
 * log.h: operational logging for mtlsd and mtlsctl.
 *
 * One line per event to stderr (journald picks it up under systemd), with a
 * level prefix. The audit trail is separate (dataplane/acct/audit.h): this is for
 * operators reading why something happened. Never pass key material here.
 */
#ifndef MTLS_LOG_H
#define MTLS_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG, LOG_LVL_MAX };

/* "error", "warning", "info", "debug": the line prefix and the words the
 * log_level key takes (lib/string_table.h). */
extern const char *const log_level_names[LOG_LVL_MAX];
const char *log_level_name(enum log_level lvl);
int log_level_from_name(const char *s);

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Prefix every line with this program name ("mtlsd", "mtlsctl"). */
void log_set_ident(const char *ident);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/*
 * Append the OpenSSL error queue (drained) to a message:
 * log_ossl(LOG_LVL_ERR, "loading %s", path) -> "loading x.pem: <reason>; <reason>".
 */
void log_ossl(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Render the OpenSSL error queue into buf (drains it). Returns buf. */
const char *ossl_errors_str(char *buf, unsigned long len);

#endif
