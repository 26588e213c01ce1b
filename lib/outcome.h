/*
 * outcome.h: why a handshake ended the way it did.
 *
 * One vocabulary shared by the verifier, the audit line, metrics, the USDT
 * probes and mtlsctl stats, so an operator reads the same word everywhere.
 * The numeric values are ABI for the BPF maps (bpf/): append only.
 */
#ifndef MTLS_OUTCOME_H
#define MTLS_OUTCOME_H

enum hs_outcome {
	HS_OK = 0,
	HS_NO_CERT,          /* client sent no certificate */
	HS_UNKNOWN_CA,       /* chain does not lead to any partner's CA */
	HS_EXPIRED,          /* leaf or a CA in the chain is past notAfter */
	HS_NOT_YET_VALID,    /* leaf or a CA in the chain is before notBefore */
	HS_REVOKED,          /* a certificate in the chain is on a CRL */
	HS_BAD_EKU,          /* leaf lacks extendedKeyUsage clientAuth */
	HS_POLICY_DENIED,    /* allow-list, one identity per certificate, RFC 5280 serial */
	HS_BAD_SIGNATURE,    /* a signature in the chain does not verify */
	HS_PROTOCOL_ERROR,   /* not TLS, wrong version, bad record, alert... */
	HS_TIMEOUT,          /* handshake did not finish in time */
	HS_OTHER,            /* anything not listed */
	HS_CHAIN_TOO_DEEP,   /* more CA levels than the partner's verify_depth */
	HS_WEAK_KEY,         /* EC < 256 bits or RSA < 2048 bits, anywhere in the chain */
	HS_CRL_UNAVAILABLE,  /* CRL checking is on and a CRL is missing or expired */
	HS_OUTCOME_MAX
};

/* Short stable name ("ok", "expired", "unknown_ca"...), used in JSON and metrics. */
const char *hs_outcome_name(enum hs_outcome o);
/* The outcome named s (as in the audit line), or -ENOENT. */
int hs_outcome_from_name(const char *s);

#endif
