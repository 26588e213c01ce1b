/*
 * cases.h: the micro benchmark cases, in C, driving mtlsd's own modules.
 *
 * bench/micro/micro.cc is a thin Google Benchmark shim over these: it owns
 * the timing loop and the report, this file owns what is measured. Each
 * case is built once (new), run many times (run), freed (free); run
 * returns 0 or a negative errno, and a case that fails stops its
 * benchmark with an error instead of measuring something else.
 */
#ifndef MICRO_CASES_H
#define MICRO_CASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * mTLS handshakes in memory against the server SSL_CTX that mtlsd's
 * generation builds (its verify callback and policy included) from the
 * test fixtures in fixtures_dir. tls_minor: 2 or 3. rsa: the server uses
 * server-rsa and the client client-rsa (RSA-2048 keys) instead of the
 * P-256 server and client-ec. resume: every handshake resumes the session
 * of the previous one (a failure to resume is an error, not a full
 * handshake measured under the wrong name).
 */
struct hs_case;
int hs_case_new(const char *fixtures_dir, int tls_minor, bool rsa, bool resume, struct hs_case **out);
/* One handshake; *server_ns = time spent in the server's side of it. */
int hs_case_run(struct hs_case *hc, uint64_t *server_ns);
void hs_case_free(struct hs_case *hc);

/* verify_policy_check() on the client-ec leaf against an allow-list of
 * URI and DNS patterns (the match is the last pattern). */
struct policy_case;
int policy_case_new(const char *fixtures_dir, struct policy_case **out);
int policy_case_run(struct policy_case *pc);
void policy_case_free(struct policy_case *pc);
/* certinfo_from_x509() of the same leaf: what the audit line, the
 * accounting and the PROXY header derive from a client certificate. */
int certinfo_case_run(struct policy_case *pc);

/* pp2_encode() of a typical header: TCP4, SSL TLVs, mtlsd identity TLV. */
int pp2_case_run(void);

/* One 16 KiB TLS record's AEAD seal through EVP (cipher: "AES-128-GCM",
 * "AES-256-GCM", "ChaCha20-Poly1305"), nonce advanced per record. */
struct record_case;
int record_case_new(const char *cipher, size_t len, struct record_case **out);
int record_case_run(struct record_case *rc);
void record_case_free(struct record_case *rc);

/* acct_handshake_end() with BPF off: fallback = in-process counters
 * (acct_init with BPF disallowed), otherwise the bare probe site with
 * nothing attached. init once, run many, shutdown once. */
int acct_case_init(bool fallback);
void acct_case_run(void);
void acct_case_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif
