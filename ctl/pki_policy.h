/*
 * pki_policy.h: the numbers of mtlsctl's issuing policy, in one place.
 *
 * `pki issue` applies them, `cert check` checks partners' certificates
 * against them, and the trust package prints them for the partner.
 */
#ifndef MTLSCTL_PKI_POLICY_H
#define MTLSCTL_PKI_POLICY_H

#define PKI_DAY 86400L

/* CA lifetimes: long-lived offline anchors, a short-lived online issuer. */
#define PKI_ROOT_DAYS 7305          /* 20 years */
#define PKI_INTERMEDIATE_DAYS 3653  /* about 10 years */
#define PKI_ISSUING_DAYS 730        /* about 2 years */

/* Leaves. Longer than the maximum only with --allow-long-lifetime. */
#define PKI_SERVER_DAYS_DEFAULT 90
#define PKI_SERVER_DAYS_MAX 397     /* the CA/Browser Forum's ceiling */
#define PKI_CLIENT_DAYS_DEFAULT 30
#define PKI_CLIENT_DAYS_MAX 90

/* notBefore is set this far in the past so a peer whose clock is a little
 * behind does not reject a certificate issued a second ago. */
#define PKI_BACKDATE_SECONDS 300

#define PKI_CRL_NEXT_UPDATE_DAYS 7

/* What `cert check` accepts as key strength anywhere in a chain. */
#define PKI_MIN_RSA_BITS 2048
#define PKI_MIN_EC_BITS 256

/* Default for `cert check --max-depth`: mtlsd's default verify_depth. */
#define PKI_CHECK_MAX_DEPTH 3

#endif
