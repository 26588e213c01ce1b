/* outcome.c: names for enum hs_outcome (see outcome.h). */
#include "outcome.h"

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

const char *hs_outcome_name(enum hs_outcome o)
{
	if ((unsigned)o >= HS_OUTCOME_MAX || !outcome_names[o])
		return "other";
	return outcome_names[o];
}
