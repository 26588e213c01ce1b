/*
 * probes.h: mtlsd's USDT probe points (sys/sdt.h, systemtap-sdt-dev).
 *
 * A probe is a nop in the instruction stream plus an ELF note that tells a
 * tracer where the nop is and where to find each argument, so an unattached
 * probe costs nothing but keeping its arguments in registers or memory.
 * bpf/acct.bpf.c attaches to handshake_end; anyone can also watch it with
 * bpftrace or perf (docs/accounting.md has examples).
 *
 * The names and argument orders are an interface: append arguments, never
 * reorder them.
 */
#ifndef MTLSD_PROBES_H
#define MTLSD_PROBES_H

#include <sys/sdt.h>

/*
 * mtlsd:handshake_end, once at the end of every handshake (success or not).
 *   arg0  const struct acct_key *  (issuer id, serial; bpf/acct.h)
 *   arg1  int       outcome        (enum hs_outcome, lib/outcome.h)
 *   arg2  int       partner index  (-1 when not attributed)
 *   arg3  int       TLS version    (0x0303, 0x0304; 0 if not negotiated)
 *   arg4  int       cipher id      (IANA, SSL_CIPHER_get_protocol_id)
 *   arg5  uint64_t  duration in ns (accept to handshake end)
 */
#define MTLSD_PROBE_HANDSHAKE_END(key, outcome, partner, tls_version, cipher, duration_ns) \
	DTRACE_PROBE6(mtlsd, handshake_end, key, outcome, partner, tls_version, cipher, duration_ns)

#endif
