/* outcome.c: names for enum hs_outcome (see outcome.h). */
#include "outcome.h"

#include "string_table.h"

static const char *const outcome_names[HS_OUTCOME_MAX] = {
	[HS_OK] = "ok",
	[HS_NO_CERT] = "no_certificate",
	[HS_UNKNOWN_CA] = "unknown_ca",
	[HS_EXPIRED] = "expired",
	[HS_NOT_YET_VALID] = "not_yet_valid",
	[HS_REVOKED] = "revoked",
	[HS_BAD_EKU] = "bad_eku",
	[HS_POLICY_DENIED] = "policy_denied",
	[HS_BAD_SIGNATURE] = "bad_signature",
	[HS_PROTOCOL_ERROR] = "protocol_error",
	[HS_TIMEOUT] = "timeout",
	[HS_OTHER] = "other",
	[HS_CHAIN_TOO_DEEP] = "chain_too_deep",
	[HS_WEAK_KEY] = "weak_key",
	[HS_CRL_UNAVAILABLE] = "crl_unavailable",
};

DEFINE_STRING_TABLE(hs_outcome, enum hs_outcome, outcome_names, "other")
