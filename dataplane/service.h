/*
 * service.h: mtlsd as a system service: readiness notification to the
 * service manager and the privilege drop after start-up.
 *
 * Notification speaks systemd's plain NOTIFY_SOCKET protocol (one datagram
 * of "KEY=value" lines to the unix socket named in $NOTIFY_SOCKET; a leading
 * '@' names an abstract socket), so mtlsd needs no libsystemd and works the
 * same under any manager that implements sd_notify(3). Without
 * $NOTIFY_SOCKET every notify call is a no-op returning 0.
 *
 * The order main.c follows (docs/service.md):
 *   bind listeners, read keys, load BPF  ->  service_drop_privileges()
 *   -> start workers -> listeners accepting -> service_notify_ready()
 *   SIGHUP: service_notify_reloading() ... build, publish ... service_notify_ready()
 *   SIGTERM: service_notify_stopping() -> drain -> exit
 */
#ifndef MTLS_SERVICE_H
#define MTLS_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "guard.h"

/*
 * Send one notification (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET.
 * 0 when sent or when there is no $NOTIFY_SOCKET; a negative errno when the
 * socket is named but the message cannot be delivered (the caller logs it:
 * a manager that never hears READY=1 kills the service at its timeout).
 */
int service_notify(const char *state) MUST_CHECK;

/*
 * The three moments main.c reports. Each logs a warning itself when the
 * manager cannot be reached (a manager that never hears READY=1 times the
 * service out, so the log says why) and never fails the caller.
 *
 * service_notify_ready: READY=1 and STATUS=<status>; after every listener
 * accepts at start, and after a reload finished (or was refused).
 * service_notify_reloading: RELOADING=1 with MONOTONIC_USEC= (systemd 253+
 * wants it for Type=notify-reload); before a reload starts.
 * service_notify_stopping: STOPPING=1; when the drain starts.
 */
void service_notify_ready(const char *status);
void service_notify_reloading(void);
void service_notify_stopping(void);

/* The resolved target of a privilege drop. */
struct service_identity {
	uid_t uid;
	gid_t gid;
	uint64_t keep_caps; /* bit n = capability n */
};

/*
 * Resolve cfg's user/group (names or numeric ids) into id. -ENOENT when the
 * user or group does not exist; err names the key and what to do.
 */
int service_resolve_identity(const struct mtlsd_config *cfg, struct service_identity *id,
			     char *err, size_t errlen) MUST_CHECK;

/*
 * Lock the process down once everything privileged is done (listeners bound,
 * keys read, BPF loaded): switch to cfg's user and group with no
 * supplementary groups beyond that group, keep only cfg->keep_caps
 * (effective and permitted; none inheritable or ambient), set
 * PR_SET_NO_NEW_PRIVS and PR_SET_DUMPABLE 0 so keys never land in a core
 * dump or in another process of the same user through ptrace.
 *
 * Without cfg->user only the last two happen (and a warning when running as
 * root). Call it before starting mtlsd's own threads (they then inherit the
 * dropped state); threads a library started while keys were loaded are
 * reached too (service.c says how), and every thread is read back after:
 * -EPERM, naming the thread, if one still holds more than keep_caps, runs
 * as another uid or lacks no_new_privs (without cfg->user a library's
 * thread keeps its capabilities, so that is refused). Also opens the notify
 * socket first, so notifications still reach a manager socket the new user
 * could not open. 0 on success; otherwise err says what failed and what to do.
 */
int service_drop_privileges(const struct mtlsd_config *cfg, char *err, size_t errlen) MUST_CHECK;

/*
 * The same with a resolved identity, for tests: apply_ids false keeps the
 * current uid/gid and only trims capabilities, sets the prctls and checks
 * every thread.
 */
int service_apply_identity(const struct service_identity *id, bool apply_ids,
			   char *err, size_t errlen) MUST_CHECK;

#endif
