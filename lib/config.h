/*
 * config.h: mtlsd's configuration, parsed and validated into one struct.
 *
 * Sources: an INI file (libinih) and/or command-line flags (the
 * single-partner case: --listen --cert --key --client-ca --crl --backend
 * --proxy-protocol --workers). Flags given on the command line override the
 * [mtlsd] section; flags that describe a partner create/override the partner
 * named "default".
 *
 * The struct is immutable once validated: a reload parses a new one.
 * Every error message names file:line and the key, says what is wrong and
 * what to do ("mtlsd.conf:12: key 'verify_depth': '0' is not in 1..8").
 */
#ifndef MTLS_CONFIG_H
#define MTLS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "guard.h"
#include "log.h"

#define CFG_MAX_LISTEN 16
#define CFG_MAX_SERVER_CERTS 4
#define CFG_MAX_PARTNERS 256

enum crl_policy { CRL_POLICY_FAIL = 0, CRL_POLICY_ALLOW, CRL_POLICY_MAX };
/* May a client certificate carry several SPIFFE IDs or CNs (verify.h)? */
enum multiple_identities { MULTIPLE_IDENTITIES_REFUSE = 0, MULTIPLE_IDENTITIES_ALLOW, MULTIPLE_IDENTITIES_MAX };
enum ktls_mode { KTLS_MODE_AUTO = 0, KTLS_MODE_ON, KTLS_MODE_OFF, KTLS_MODE_MAX };
/* How TLS sessions resume: tickets (stateless, shareable across a fleet
 * with ticket_key_file), a server-side session cache, or not at all. */
/* AUTO (the default) is STATEFUL without a ticket_key_file and TICKETS with
 * one: config_session_cache() says which. */
enum session_cache_mode {
	SESSION_CACHE_TICKETS = 0,
	SESSION_CACHE_STATEFUL,
	SESSION_CACHE_OFF,
	SESSION_CACHE_AUTO,
	SESSION_CACHE_MAX
};

/*
 * The words each keyword key takes, indexed by value ("fail"/"allow",
 * "refuse"/"allow", "auto"/"on"/"off", "tickets"/"stateful"/"off"/"auto"), with
 * name/from_name lookups (lib/string_table.h). The config reader matches
 * them without regard to case.
 */
extern const char *const crl_policy_names[CRL_POLICY_MAX];
extern const char *const multiple_identities_names[MULTIPLE_IDENTITIES_MAX];
extern const char *const ktls_mode_names[KTLS_MODE_MAX];
extern const char *const session_cache_mode_names[SESSION_CACHE_MAX];
const char *crl_policy_name(enum crl_policy v);
int crl_policy_from_name(const char *s);
const char *multiple_identities_name(enum multiple_identities v);
int multiple_identities_from_name(const char *s);
const char *ktls_mode_name(enum ktls_mode v);
int ktls_mode_from_name(const char *s);
const char *session_cache_mode_name(enum session_cache_mode v);
int session_cache_mode_from_name(const char *s);

/* A TCP address (v4/v6) or a unix socket path ("unix:/run/app.sock"). */
struct cfg_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	bool is_unix;
	char text[128]; /* as written, for logs: "127.0.0.1:9000", "[::1]:8443" */
};

/* A list of strings (allow-list patterns, CRL paths). */
struct cfg_strlist {
	char **v;
	int *lines;      /* config line of each entry, 0 for flags */
	size_t n;
};

struct cfg_server_cert {
	char *cert_path; /* leaf first, then intermediates; a root in it is dropped */
	char *key_path;  /* a PEM file, or a URI such as pkcs11:token=T;object=O (lib/keyref.h) */
	int line;        /* config line of the cert key, 0 for flags */
	int key_line;    /* config line of the key key, 0 for flags */
};

struct cfg_partner {
	char *name;                 /* [partner.NAME]; "default" for flags */
	int line;                   /* line of the section header, 0 for flags */
	char *ca_path;              /* trust anchors (and optional intermediates) */
	int ca_line;                /* config line of 'ca', 0 for flags */
	struct cfg_strlist crl_paths;
	enum crl_policy crl_missing;  /* default FAIL */
	enum crl_policy crl_expired;  /* default FAIL */
	unsigned verify_depth;      /* max index of the trust anchor, leaf = 0; default 3 */
	struct cfg_addr backend;
	int backend_line;           /* config line of 'backend', 0 for flags */
	bool proxy_v2;              /* default off */
	uint8_t proxy_tlv_type;     /* 0xE0..0xEF, default 0xE0 */
	bool proxy_send_cert;       /* client cert DER in the PROXY header, default off */
	struct cfg_strlist allow_dns, allow_uri, allow_cn, allow_ou;
	enum multiple_identities multiple_identities; /* default refuse */
};

struct mtlsd_config {
	char *path;                 /* config file, NULL when flags only */
	struct cfg_addr listen[CFG_MAX_LISTEN];
	size_t n_listen;
	unsigned workers;           /* 0 = one per online CPU */
	bool cpu_pin;               /* pin worker i to CPU i % ncpu */
	struct cfg_server_cert certs[CFG_MAX_SERVER_CERTS];
	size_t n_certs;
	bool allow_insecure_key_perms; /* default false: 0640/0644 keys refused */
	unsigned handshake_timeout_ms; /* default 10000 */
	unsigned idle_timeout_ms;      /* default 300000 */
	unsigned connect_timeout_ms;   /* default 5000 */
	unsigned drain_timeout_ms;     /* default 30000 */
	unsigned max_connections;      /* default 10000 (whole process) */
	unsigned max_handshakes;       /* default 1000 in flight (whole process) */
	unsigned max_handshakes_per_source; /* default 250 per IPv4 address / IPv6 /64; 0 = no limit */
	char *audit_path;              /* NULL or "-" = stderr */
	enum ktls_mode ktls;           /* default auto */
	enum log_level log_level;      /* default info */
	char *user;                    /* drop to this user after start-up; NULL = stay */
	char *group;                   /* and this group; NULL = the user's primary group */
	uint64_t keep_caps;            /* capabilities kept after the drop, bit = CAP_* number */
	char *control_socket;          /* NULL = /run/mtlsd/control.sock */
	char *control_group;           /* group allowed on the control socket; NULL = root + our uid */
	char *ticket_key_file;         /* 80-byte session-ticket keys; NULL = random per generation */
	enum session_cache_mode session_cache; /* default auto */
	unsigned session_cache_size;   /* sessions kept by `stateful`; 0: sized to memory */
	unsigned session_tickets;      /* TLS 1.3 tickets per full handshake (default 1) */
	unsigned session_lifetime_s;   /* a session resumes at most this long after its full
	                                * verification (default 3600) */
	/* handshake accounting (dataplane/acct/acct.h) and the admin listener */
	char *instance;                /* names /sys/fs/bpf/mtlsd/<instance>; NULL = "default" */
	bool bpf_accounting;           /* accounting = auto (BPF when allowed) | off; default auto */
	struct cfg_addr admin_listen;  /* /metrics and /healthz; len 0 = off (the default) */
	/* crypto acceleration and HSM keys (lib/crypto_accel.h, lib/keyref.h) */
	char *openssl_conf;            /* OpenSSL config file applied first; NULL = none */
	char *provider_path;           /* provider module directory; NULL = OpenSSL's */
	struct cfg_strlist providers;  /* provider names, loaded in order */
	char *engine;                  /* legacy engine id ("pkcs11", "dynamic"); NULL = none */
	struct cfg_strlist engine_ctrls; /* "NAME:VALUE" commands run before ENGINE_init */
	struct cfg_strlist engine_default; /* algorithm classes the engine takes over ("ALL") */
	char *key_pin_file;            /* PIN for key URIs without pin-value; mode 0600 */
	char *key_pin_env;             /* or the environment variable holding it */
	bool ssl_async;                /* SSL_MODE_ASYNC for async engines (QAT) */
	bool cert_compression;         /* RFC 8879 where the stack has it; default yes */
	struct cfg_partner *partners;
	size_t n_partners;
	uint64_t flag_resets;          /* internal: lists a flag already replaced */
};

/*
 * File descriptors mtlsd needs to hold max_connections at once with
 * workers worker threads (0 = one per online CPU is resolved by the
 * caller; 0 counts as 1): two per connection (client and backend) plus, per
 * worker, a ring, an eventfd and up to 16 listeners, plus stdio, the audit
 * log, BPF maps and slack. The one figure mtlsd's start-up warning and
 * `mtlsctl doctor` both compare RLIMIT_NOFILE with.
 */
uint64_t config_fds_needed(unsigned max_connections, unsigned workers);

/* Defaults for everything; no listeners, certs or partners. */
void config_init(struct mtlsd_config *cfg);

/*
 * Parse an INI file into cfg (on top of what cfg holds). -ENOENT/-EACCES for
 * an unreadable file, -EPERM for one config_check_trusted_file() refuses,
 * -EINVAL for a syntax error, an unknown section or key, or a bad value.
 * err gets "PATH:LINE: ..." on failure.
 */
int config_load_file(struct mtlsd_config *cfg, const char *path, char *err, size_t errlen) MUST_CHECK;

/*
 * The rule for a file that decides what mtlsd loads and where traffic goes
 * (the config file, openssl_conf), from its stat: never writable by others;
 * when mtlsd runs as root (euid 0) also owned by root and not writable by
 * its group, because a line in it can load code that runs as root (engine,
 * provider, openssl_conf). Not mtlsd's service user either: a compromised
 * mtlsd could then rewrite what root loads at the next start. -EPERM with
 * err: what (a prefix such as "openssl_conf = ", or ""), the path, its mode
 * and owner, and the chown/chmod to run.
 */
struct stat;
int config_check_trusted_file(const char *what, const char *path, const struct stat *st,
			      char *err, size_t errlen) MUST_CHECK;

/*
 * Apply one command-line option (long name without dashes, e.g. "listen",
 * "client-ca", and its value) on top of cfg. err gets "--NAME: ...".
 */
int config_apply_flag(struct mtlsd_config *cfg, const char *name, const char *value,
		      char *err, size_t errlen) MUST_CHECK;

/*
 * Whole-config checks that need everything parsed: at least one listener,
 * one server certificate and one partner; each partner has a CA and a
 * backend; partner names unique. Does not open certificate files (the
 * generation build does that and reports the file).
 */
int config_validate(const struct mtlsd_config *cfg, char *err, size_t errlen) MUST_CHECK;

/* A command-line flag config_apply_flag() accepts. */
struct config_flag {
	char name[48];  /* without "--": a config key with '-' for '_' */
	bool is_bool;   /* may stand alone ("--cpu-pin" = "--cpu-pin=yes") */
};

/*
 * Every flag config_apply_flag() accepts, derived from the same key tables
 * as the INI file, so a new key is a new flag without a second list.
 * Fills up to cap entries; returns how many there are.
 */
size_t config_list_flags(struct config_flag *out, size_t cap);

/* Parse "host:port", "[v6]:port" or "unix:/path". Returns 0 or -EINVAL. */
int config_parse_addr(const char *text, struct cfg_addr *out) MUST_CHECK;

/* Parse a duration "10s", "500ms", "5m", or a plain number of seconds. */
int config_parse_duration_ms(const char *text, unsigned *out_ms) MUST_CHECK;

/*
 * Parse a capability list for keep_capabilities: names from capabilities(7)
 * with or without "cap_", any case, separated by commas or blanks; "none" is
 * the empty set. *out gets one bit per capability number. -EINVAL with the
 * reason in why for an unknown name.
 */
int config_parse_capabilities(const char *text, uint64_t *out, char *why, size_t wl) MUST_CHECK;

/* "net_bind_service" for CAP_NET_BIND_SERVICE; NULL for an unknown number.
 * config_capability_from_name("net_bind_service") is its number or -ENOENT
 * (exact spelling; keep_capabilities also takes "cap_" and any case). */
const char *config_capability_name(unsigned cap);
int config_capability_from_name(const char *s);

/*
 * Release everything cfg owns (not cfg itself). Accepts a zeroed struct.
 * Walks the key tables (lib/config.c): what a key owns follows from its
 * kind, so a new key needs no line here.
 */
void config_free(struct mtlsd_config *cfg);

/*
 * The first [mtlsd] key fixed at start-up (listen, workers, the user, the
 * control socket...: marked FIXED_AT_START in lib/config.c's table) whose
 * value differs between old and new, or NULL. A reload refuses a
 * configuration that changes one, naming the key.
 */
const char *config_fixed_key_changed(const struct mtlsd_config *old, const struct mtlsd_config *new);

/*
 * The session cache a configuration asks for: `auto` is `stateful` without
 * a ticket_key_file (a ticket could only ever resume on this host and
 * generation, so the server-side cache reaches the same clients for less
 * work: no session re-encode and encryption per ticket) and `tickets` with
 * one (any host of the fleet resumes it).
 */
enum session_cache_mode config_session_cache(const struct mtlsd_config *cfg);

/* Bytes a cached session takes in mtlsd's memory, measured with a P-256
 * client chain of 3: ~6.2 KB each, RSS growth over 8,196 sessions held
 * (docs/configuration.md, session_cache_size). */
#define SESSION_CACHE_BYTES_PER_SESSION 6144u

/*
 * How many sessions `stateful` keeps: session_cache_size, or when it is 0
 * (the default) 1/128 of the physical memory in sessions, between 1,024 and
 * 1,048,576. Past it the oldest session goes first (OpenSSL's cache is
 * LRU): its client does a full handshake.
 */
unsigned config_session_cache_size(const struct mtlsd_config *cfg);

#endif
