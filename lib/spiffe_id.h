/*
 * spiffe_id.h: the one SPIFFE ID validator, used where IDs are made
 * (`mtlsctl pki issue --uri`), where they are matched (`allow_uri`
 * patterns, compiled by dataplane/policy/verify_policy.c) and where they are read
 * from a client certificate (dataplane/policy/verify_identity.c).
 *
 * The rules are the SPIFFE ID specification's (SPIFFE-ID.md, section 2):
 *   - scheme "spiffe" in lower case, then "://";
 *   - a trust domain of 1..255 characters of [a-z0-9.-_] (no upper case, no
 *     port, no user info);
 *   - a path of segments "/" [A-Za-z0-9.-_]+: no empty segment, no "." or
 *     ".." segment, no trailing '/', no percent-encoding, no query, no
 *     fragment;
 *   - at most 2048 bytes in all.
 * A pattern may also hold '*' inside a path segment (one segment's worth)
 * and "**" as the whole last segment (any remaining path).
 *
 * Each refusal is a phrase that says which rule, to follow "is not a
 * SPIFFE ID: " in a message.
 */
#ifndef MTLS_SPIFFE_ID_H
#define MTLS_SPIFFE_ID_H

#include <stdbool.h>

#define SPIFFE_ID_MAX 2048
#define SPIFFE_TRUST_DOMAIN_MAX 255

enum spiffe_id_flags {
	SPIFFE_ID_PATTERN = 1 << 0,   /* allow_uri: '*' and a final "**" */
	SPIFFE_ID_NEED_PATH = 1 << 1, /* a workload's ID: "spiffe://td" alone is not one */
};

/* NULL when text is a valid SPIFFE ID (or pattern, with SPIFFE_ID_PATTERN),
 * else the rule it breaks. text must be NUL-terminated. */
const char *spiffe_id_problem(const char *text, unsigned flags);

/*
 * Is text meant as a SPIFFE ID? Its scheme is "spiffe" in any case, or a
 * near miss of it ("spifee", "spiffie": at most two edits), so that a typo
 * is caught by spiffe_id_problem() instead of passing as some other URI.
 */
bool spiffe_id_intended(const char *text);

#endif
