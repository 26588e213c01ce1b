/*
 * doctor_checks_tls.c: the checks about trust and crypto: the clock that
 * certificate validity depends on, OpenSSL, the CPU's crypto instructions,
 * and certificates near expiry. Pure functions of facts, like
 * doctor_checks.c.
 */
#include "doctor.h"

#include <string.h>
#include <sys/timex.h>

/* A peer's clock minutes off makes fresh certificates "not yet valid": the
 * first sign of drift is partners failing. An unsynchronised clock is a
 * warning because doctor cannot know the true time offline. */
void doctor_check_clock(const struct doctor_facts *f, struct doctor_report *rep)
{
	const char *remedy = "enable time sync: timedatectl set-ntp true (systemd-timesyncd), "
			     "or run chrony";

	if (f->clock_state < 0)
		doctor_add(rep, "clock", DOCTOR_WARN, remedy, "cannot read the clock state (adjtimex: %s)",
			   strerror(-f->clock_state));
	else if (f->clock_state == TIME_ERROR || f->clock_unsync)
		doctor_add(rep, "clock", DOCTOR_WARN, remedy, "clock not synchronised (adjtimex state %d%s): "
			   "drift of minutes makes partners' certificates look not yet valid or expired",
			   f->clock_state, f->clock_unsync ? ", STA_UNSYNC" : "");
	else if (f->clock_maxerror_us > 1000000)
		doctor_add(rep, "clock", DOCTOR_WARN, remedy, "clock synchronised but the kernel's maximum "
			   "error is %ld ms", f->clock_maxerror_us / 1000);
	else
		doctor_add(rep, "clock", DOCTOR_PASS, NULL, "clock synchronised (maximum error %ld ms)",
			   f->clock_maxerror_us / 1000);
}

void doctor_check_openssl(const struct doctor_facts *f, struct doctor_report *rep)
{
	unsigned major = (unsigned)(f->openssl_num >> 28), minor = (unsigned)(f->openssl_num >> 20) & 0xff;

	if (major < 3) {
		doctor_add(rep, "openssl", DOCTOR_FAIL, "install OpenSSL 3 (Debian 12: libssl3)",
			   "%s: mtlsd needs OpenSSL 3", f->openssl_text);
		return;
	}
	if (!f->openssl_ktls) {
		doctor_add(rep, "openssl", DOCTOR_WARN, "use a build without no-ktls (Debian's has kTLS)",
			   "%s built without kTLS support", f->openssl_text);
		return;
	}
	/* mtlsd installs the keys itself, so 3.0's missing TLS 1.3 RX offload
	 * is only worth a note. */
	doctor_add(rep, "openssl", DOCTOR_PASS, NULL, "%s, kTLS support compiled in%s", f->openssl_text,
		   major == 3 && minor < 2 ? " (TLS 1.3 RX offload by mtlsd, not OpenSSL, before 3.2)" : "");
}

void doctor_check_cpu(const struct doctor_facts *f, struct doctor_report *rep)
{
	if (!f->cpu_known) {
		doctor_add(rep, "cpu-crypto", DOCTOR_SKIP, NULL, "no x86 flags in /proc/cpuinfo");
		return;
	}
	if (!f->cpu_aes || !f->cpu_pclmul) {
		doctor_add(rep, "cpu-crypto", DOCTOR_WARN, "prefer ChaCha20-Poly1305 for partners, or move "
			   "to a CPU (or VM CPU model) with AES-NI", "no AES-NI/PCLMULQDQ: AES-GCM runs in "
			   "software, several times slower");
		return;
	}
	char used[160] = "";
	if (f->ossl_cpu.known)
		crypto_cpu_str(&f->ossl_cpu, used, sizeof(used));
	/* The CPU has it but OpenSSL was told not to use it (OPENSSL_ia32cap in
	 * the environment, or an OS that does not save the vector registers). */
	if (f->ossl_cpu.known && (!f->ossl_cpu.aesni || !f->ossl_cpu.pclmulqdq)) {
		doctor_add(rep, "cpu-crypto", DOCTOR_WARN, "unset OPENSSL_ia32cap in mtlsd's environment",
			   "the CPU has AES-NI and PCLMULQDQ but OpenSSL does not use them (it uses: %s)", used);
		return;
	}
	doctor_add(rep, "cpu-crypto", DOCTOR_PASS, NULL, "AES-NI, PCLMULQDQ%s%s%s%s%s%s", f->cpu_avx2 ? ", AVX2" : "",
		   f->cpu_vaes ? ", VAES" : "", f->cpu_sha ? ", SHA-NI" : "", f->cpu_avx512 ? ", AVX-512" : "",
		   used[0] ? "; OpenSSL uses: " : "", used);
}

/* What does the crypto: providers and the engine (docs/hardware.md). */
void doctor_check_accel(const struct doctor_facts *f, struct doctor_report *rep)
{
	if (f->accel_rc < 0) {
		doctor_add(rep, "crypto-providers", DOCTOR_FAIL, "fix the [mtlsd] crypto keys "
			   "(docs/hardware.md); mtlsd would refuse to start", "%s", f->accel_err);
		return;
	}
	doctor_add(rep, "crypto-providers", DOCTOR_PASS, NULL, "providers: %s; engine: %s",
		   f->providers[0] ? f->providers : "none", f->engine[0] ? f->engine : "none");
}

static const char *days_word(double days)
{
	return days >= 0.5 && days < 1.5 ? "day" : "days";
}

/* A CRL past nextUpdate refuses every client of the partner under
 * crl_expired = fail; CRLs are reissued often, so warn a day ahead. */
static void check_one_crl(const struct doctor_facts *f, const struct doctor_cert *c,
			  struct doctor_report *rep)
{
	char name[56], remedy[200];
	double days = difftime(c->not_after, f->now) / 86400.0;

	snprintf(name, sizeof(name), "crl %s", c->role);
	snprintf(remedy, sizeof(remedy), "fetch the partner's current CRL into %s (mtlsctl pki crl "
		 "for your own CAs), then reload", c->path);
	if (c->load_rc < 0)
		doctor_add(rep, name, DOCTOR_FAIL, "check the path and that it holds PEM CRLs",
			   "%s: %s", c->path, strerror(-c->load_rc));
	else if (days < 0)
		doctor_add(rep, name, c->crl_fail ? DOCTOR_FAIL : DOCTOR_WARN, remedy, "%s: CRL of '%s' "
			   "stale since %.0f %s (crl_expired = %s)", c->path, c->subject, -days,
			   days_word(-days), c->crl_fail ? "fail: the partner is refused" : "allow");
	else if (days < 1)
		doctor_add(rep, name, DOCTOR_WARN, remedy, "%s: CRL of '%s' goes stale in %.0f hours",
			   c->path, c->subject, days * 24);
	else
		doctor_add(rep, name, DOCTOR_PASS, NULL, "%s: next update due in %.0f %s", c->path, days,
			   days_word(days));
}

static void check_one_cert(const struct doctor_facts *f, const struct doctor_cert *c,
			   struct doctor_report *rep)
{
	char name[56], remedy[200];
	double days = difftime(c->not_after, f->now) / 86400.0;

	snprintf(name, sizeof(name), "cert %s", c->role);
	snprintf(remedy, sizeof(remedy), "renew it (mtlsctl pki issue; docs/pki.md) and replace %s, "
		 "then reload", c->path);
	if (c->load_rc < 0)
		doctor_add(rep, name, DOCTOR_FAIL, "check the path and that it holds PEM certificates",
			   "%s: %s", c->path, strerror(-c->load_rc));
	else if (days < 0)
		doctor_add(rep, name, DOCTOR_FAIL, remedy, "%s: '%s' expired %.0f %s ago", c->path,
			   c->subject, -days, days_word(-days));
	else if (days < f->expiry_warn_days)
		doctor_add(rep, name, DOCTOR_WARN, remedy, "%s: '%s' expires in %.0f %s", c->path,
			   c->subject, days, days_word(days));
	else
		doctor_add(rep, name, DOCTOR_PASS, NULL, "%s: earliest expiry in %.0f %s ('%s')", c->path,
			   days, days_word(days), c->subject);
}

void doctor_check_certs(const struct doctor_facts *f, struct doctor_report *rep)
{
	if (!f->have_config) {
		doctor_add(rep, "certs", DOCTOR_SKIP, NULL, "no configuration given; add --config FILE "
			   "to check its certificates' expiry");
		return;
	}
	for (size_t i = 0; i < f->n_certs; i++) {
		if (f->certs[i].is_crl)
			check_one_crl(f, &f->certs[i], rep);
		else
			check_one_cert(f, &f->certs[i], rep);
	}
}

/* Server keys in a token: reachable, logged in, found (docs/hardware.md). */
void doctor_check_token_keys(const struct doctor_facts *f, struct doctor_report *rep)
{
	for (size_t i = 0; i < f->n_token_keys; i++) {
		const struct doctor_token_key *k = &f->token_keys[i];
		char name[56];
		snprintf(name, sizeof(name), "token-key %zu", i + 1);
		if (k->rc < 0)
			doctor_add(rep, name, DOCTOR_FAIL, "see docs/hardware.md; mtlsd would refuse to start",
				   "%s: %s", k->ref, k->err);
		else
			doctor_add(rep, name, DOCTOR_PASS, NULL, "%s: the token holds it and took the PIN",
				   k->ref);
	}
}
