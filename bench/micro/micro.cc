// micro.cc: the Google Benchmark shim over bench/micro/cases.h.
// The measured code is mtlsd's C; this file only registers the cases.
// Fixtures: $MTLS_FIXTURES, else the build's tests/fixtures.
#include <benchmark/benchmark.h>
#include <cstdlib>
#include <string>

#include "cases.h"

static std::string fixtures()
{
	const char *e = std::getenv("MTLS_FIXTURES");
	return e ? e : MICRO_DEFAULT_FIXTURES;
}

// Args: TLS minor (2, 3), RSA-2048 (1) or P-256 (0), resumed (1) or full (0).
static void handshake_server(benchmark::State &st)
{
	hs_case *hc = nullptr;
	if (hs_case_new(fixtures().c_str(), st.range(0), st.range(1), st.range(2), &hc) < 0)
		return st.SkipWithError("cannot build the handshake case (fixtures?)");
	for (auto _ : st) {
		uint64_t ns = 0;
		if (hs_case_run(hc, &ns) < 0) {
			st.SkipWithError("handshake failed or did not resume");
			break;
		}
		st.SetIterationTime(ns / 1e9);
	}
	hs_case_free(hc);
}
BENCHMARK(handshake_server)->ArgNames({"tls1", "rsa", "resumed"})
	->ArgsProduct({{2, 3}, {0, 1}, {0, 1}})->UseManualTime()->Unit(benchmark::kMicrosecond);

static void policy_check(benchmark::State &st)
{
	policy_case *pc = nullptr;
	if (policy_case_new(fixtures().c_str(), &pc) < 0)
		return st.SkipWithError("cannot build the policy case");
	for (auto _ : st)
		if (policy_case_run(pc) < 0)
			return st.SkipWithError("policy refused the fixture client");
	policy_case_free(pc);
}
BENCHMARK(policy_check);

static void certinfo_identity(benchmark::State &st)
{
	policy_case *pc = nullptr;
	if (policy_case_new(fixtures().c_str(), &pc) < 0)
		return st.SkipWithError("cannot load the fixture client certificate");
	for (auto _ : st)
		if (certinfo_case_run(pc) < 0)
			return st.SkipWithError("certinfo_from_x509 failed");
	policy_case_free(pc);
}
BENCHMARK(certinfo_identity);

static void proxy_v2_encode(benchmark::State &st)
{
	for (auto _ : st)
		if (pp2_case_run() < 0)
			return st.SkipWithError("pp2_encode failed");
}
BENCHMARK(proxy_v2_encode);

static void record_seal_16k(benchmark::State &st, const char *cipher)
{
	record_case *rc = nullptr;
	if (record_case_new(cipher, 16384, &rc) < 0)
		return st.SkipWithError("cipher unavailable");
	for (auto _ : st)
		if (record_case_run(rc) < 0)
			return st.SkipWithError("seal failed");
	st.SetBytesProcessed(int64_t(st.iterations()) * 16384);
	record_case_free(rc);
}
BENCHMARK_CAPTURE(record_seal_16k, aes128gcm, "AES-128-GCM");
BENCHMARK_CAPTURE(record_seal_16k, aes256gcm, "AES-256-GCM");
BENCHMARK_CAPTURE(record_seal_16k, chacha20poly1305, "ChaCha20-Poly1305");

// Arg: 0 = probe site with nothing attached, 1 = in-process fallback counters.
static void accounting_bpf_off(benchmark::State &st)
{
	if (acct_case_init(st.range(0)) < 0)
		return st.SkipWithError("accounting fallback unavailable");
	for (auto _ : st)
		acct_case_run();
	acct_case_shutdown();
}
BENCHMARK(accounting_bpf_off)->ArgName("fallback")->Arg(0)->Arg(1);

BENCHMARK_MAIN();
