/*
 * reload.h: replacing the running configuration without dropping anything.
 *
 * SIGHUP (main thread) and `mtlsctl reload` (control thread) both end in
 * reload_run(): re-read the configuration the way mtlsd was started (file
 * and command-line flags), build a complete new generation off the hot
 * path (every certificate, key, CA bundle, CRL, ticket key file and
 * allow-list opened and checked), and only when all of it is valid publish
 * it with one pointer swap (generation_publish). Workers pick it up for
 * their next accept; handshakes in progress and established connections
 * keep the generation they started with, which is freed after its last
 * connection. Any error leaves the running generation untouched and is
 * returned as "FILE: reason" for mtlsctl to print and for the log.
 *
 * Reloads are serialized by a mutex; they never block a worker.
 */
#ifndef MTLSD_RELOAD_H
#define MTLSD_RELOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "guard.h"

struct generation;

/* Re-read the configuration from its sources into cfg (config_init'ed by
 * the caller); err gets the file:line and reason. Provided by main. */
typedef int (*reload_load_fn)(struct mtlsd_config *cfg, char *err, size_t errlen);

/* The outcome of the reloads so far, for `mtlsctl status`. */
struct reload_status {
	time_t started;            /* process start, wall clock */
	uint64_t generation;       /* id of the published generation */
	time_t last_time;          /* last reload attempt, 0 if none */
	bool last_ok;
	char last_error[1024];     /* "FILE: reason" of the last refused reload */
	uint64_t applied, refused;
};

/*
 * Build a generation from cfg (ownership moves as with generation_build)
 * and its trust_id (what sessions are bound to).
 * Used for the first generation too, so start-up and reload accept the
 * same files. (A reload also applies reload_check_admits(); start-up
 * only warns, see reload.c.)
 */
int reload_build(struct mtlsd_config *cfg, uint64_t id, struct generation **out, char *err,
		 size_t errlen) MUST_CHECK;

/*
 * The checks a reload makes on top of the build (and --check-config with
 * it): refused, with the file, line and CA, when a partner would refuse
 * every client under one of its CAs because of its CRL settings:
 * crl_missing = fail and a CA of its `ca` without a CRL, or
 * crl_expired = fail and a CRL past its nextUpdate. Start-up only warns.
 */
int reload_check_admits(const struct generation *g, char *err, size_t errlen) MUST_CHECK;

/* Remember how to re-read the configuration and the first generation
 * (already published). Call once, before the control server starts. */
void reload_init(reload_load_fn load, const struct generation *first);

/*
 * Reload now. origin ("SIGHUP", "control socket") is logged. Returns 0 and
 * the published id in *id, or -errno with err = the exact file and reason;
 * both are logged and recorded for reload_get_status().
 */
int reload_run(const char *origin, uint64_t *id, char *err, size_t errlen) MUST_CHECK;

void reload_get_status(struct reload_status *out);

#endif
