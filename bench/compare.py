#!/usr/bin/python3
"""bench/compare.py: mtlsd against nginx and HAProxy, one command, one run.

Same machine, same certificates (the test fixtures), same echo backend,
same pinning (servers on --server-cpu with one worker, the load generator
and the echo backend on --client-cpu). Every metric is measured --rounds
times, the servers taking turns in a rotating order, and the median and
the min..max spread are reported. Writes docs/benchmarks.md, a PNG chart
next to it, and every raw loadgen JSON to BUILDDIR/bench-results.json.

usage: bench/compare.py BUILDDIR [--rounds N] [--duration S] [--quick] ...
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402
import servers  # noqa: E402


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.realpath(args.builddir)
        self.fx = os.path.join(self.build, "tests/fixtures")
        self.loadgen = os.path.join(self.build, "bench/loadgen")
        self.raw = []        # every loadgen JSON with its context
        self.commands = []   # one example command line per kind of run

    def lg_argv(self, server, mode, extra):
        a = self.args
        return ["taskset", "-c", str(a.client_cpu), self.loadgen,
                "--connect", f"127.0.0.1:{server.port}",
                "--cert", f"{self.fx}/client-ec/chain.pem", "--key", f"{self.fx}/client-ec/key.pem",
                "--ca", f"{self.fx}/pki/ca-bundle.pem", "--tls", a.tls, "--mode", mode] + extra

    def note_command(self, kind, argv):
        if kind not in dict(self.commands):
            shown = [x.replace(self.build, "$BUILD") for x in argv]
            shown = [x.replace(os.path.dirname(self.fx), "$WORK") for x in shown]
            self.commands.append((kind, " ".join(shown)))

    def run_load(self, server, kind, mode, extra):
        """One loadgen run; returns its JSON plus the server's CPU use."""
        a = self.args
        extra = extra + ["--duration", str(a.duration), "--warmup", str(a.warmup)]
        argv = self.lg_argv(server, mode, extra)
        self.note_command(kind, argv)
        cpu0, t0 = servers.cpu_seconds(server.pid), time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=a.duration + a.warmup + 120)
        cpu1, t1 = servers.cpu_seconds(server.pid), time.monotonic()
        if r.returncode != 0 or not r.stdout.strip():
            raise RuntimeError(f"loadgen against {server.name} failed ({r.returncode}): {r.stderr.strip()}")
        out = json.loads(r.stdout)
        # Utilisation over the whole run (warm-up included: same steady load).
        out["server_util"] = (cpu1 - cpu0) / (t1 - t0)
        out["server"], out["kind"] = server.name, kind
        self.raw.append(out)
        if out["errors_total"]:
            print(f"  {server.name} {kind}: {out['errors_total']} errors {out['errors']}", file=sys.stderr)
        return out

    def idle_memory(self, server):
        """RSS growth of the server tree per idle established connection."""
        a = self.args
        with tempfile.TemporaryDirectory() as d:
            ready = os.path.join(d, "ready")
            argv = self.lg_argv(server, "idle", ["--connections", str(a.idle_connections),
                                                 "--concurrency", "200", "--timeout", "60",
                                                 "--ready-file", ready])
            self.note_command("idle", argv)
            time.sleep(0.5)
            before = servers.rss_bytes(server.pid)
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                # On a busy machine handshakes can run at tens per second.
                deadline = time.monotonic() + max(120, a.idle_connections / 10)
                while not os.path.exists(ready) and p.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(1.0)  # let the server finish its backend legs and settle
                after = servers.rss_bytes(server.pid) if os.path.exists(ready) else None
                p.send_signal(signal.SIGTERM)
                out, err = p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        if after is None:
            raise RuntimeError(f"{server.name}: {a.idle_connections} idle connections never established: {err.strip()}")
        res = json.loads(out)
        res.update(server=server.name, kind="idle", rss_before=before, rss_after=after,
                   bytes_per_conn=(after - before) / a.idle_connections)
        self.raw.append(res)
        time.sleep(2.0)  # closing 10,000 connections takes the server a moment
        return res


def metrics_of_round(bench, srv, rr_rate, hs_rate, a):
    """The per-server numbers of one round (a dict metric -> value)."""
    m = {}
    hs = bench.run_load(srv, "handshake", "handshake", ["--concurrency", str(a.hs_concurrency)])
    m["hs_per_s"] = hs["handshakes_per_s"]
    m["hs_per_core"] = hs["handshakes_per_s"] / max(hs["server_util"], 1e-9)
    m["hs_util"] = hs["server_util"]
    rs = bench.run_load(srv, "resume", "resume", ["--concurrency", str(a.hs_concurrency)])
    m["resume_per_s"] = rs["handshakes_per_s"]
    m["resume_per_core"] = rs["handshakes_per_s"] / max(rs["server_util"], 1e-9)
    m["resumed_fraction"] = rs["resumed"] / rs["handshakes"] if rs["handshakes"] else 0.0
    # Handshake latency at a fixed offered rate (open loop: connections are
    # started on a schedule, latency runs from it), 70% of the reference
    # server's closed-loop handshake maximum.
    hl = bench.run_load(srv, "hs-rate", "handshake", ["--rate", f"{hs_rate:.0f}",
                                                      "--concurrency", str(4 * a.hs_concurrency)])
    m["hs_lat_p99_us"], m["hs_lat_p50_us"] = hl["handshake_latency_us"]["p99"], hl["handshake_latency_us"]["p50"]
    m["hs_lat_util"] = hl["server_util"]
    rr = bench.run_load(srv, "rr", "rr", ["--concurrency", str(a.rr_concurrency), "--rate", f"{rr_rate:.0f}",
                                         "--size", str(a.rr_size)])
    m["rr_p50_us"], m["rr_p99_us"] = rr["latency_us"]["p50"], rr["latency_us"]["p99"]
    for mode in ("bulk-up", "bulk-down"):
        b = bench.run_load(srv, mode, mode, ["--concurrency", str(a.bulk_concurrency)])
        mbs = b["mb_per_s_up"] + b["mb_per_s_down"]
        key = mode.replace("-", "_")
        m[f"{key}_mb_s"] = mbs
        m[f"{key}_mb_per_core"] = mbs / max(b["server_util"], 1e-9)
    if a.idle_connections:
        # A server that already held N connections has them in its free
        # lists: only a fresh process shows what N connections cost.
        srv.restart()
        idle = bench.idle_memory(srv)
        m["idle_bytes_per_conn"] = idle["bytes_per_conn"]
    return m


PROFILE_SKIP = {"clone3", "start_thread", "worker_main", "worker_loop", "dispatch", "entry_SYSCALL_64_after_hwframe",
                "do_syscall_64", "[unknown]", "0xffffffffffffffff", "ret_from_fork", "ret_from_fork_asm"}


def perf_top(data, children):
    """Named symbols of a perf.data with their share of samples, largest first."""
    argv = ["perf", "report", "-i", data, "--stdio", "--sort", "sym", "-g", "none", "--percent-limit", "0.5",
            "--children" if children else "--no-children"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    rows = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) < 3 or not parts[0].endswith("%"):
            continue
        pct = float(parts[0].rstrip("%"))
        sym = line.split("] ", 1)[-1].strip() if "] " in line else parts[-1]
        sym = sym.replace(" (inlined)", "")
        if sym in PROFILE_SKIP or sym.startswith("0x"):
            continue
        rows.append((pct, sym))
    return rows


def profile_mtlsd(bench, srv, a, work):
    """perf record (DWARF call graphs) of mtlsd under each kind of load,
    after the measured rounds: the top symbols, self and inclusive, that
    docs/benchmarks.md shows for every target. Nothing measured here."""
    if not a.profile or not shutil.which("perf"):
        return None
    out = {}
    kinds = [("handshake", "handshake", ["--concurrency", str(a.hs_concurrency)]),
             ("resume", "resume", ["--concurrency", str(a.hs_concurrency)]),
             ("bulk-up", "bulk-up", ["--concurrency", str(a.bulk_concurrency)]),
             ("bulk-down", "bulk-down", ["--concurrency", str(a.bulk_concurrency)])]
    secs = max(2.0, min(a.duration, 5.0))
    for kind, mode, extra in kinds:
        data = os.path.join(work, f"perf-{kind}.data")
        argv = bench.lg_argv(srv, mode, extra + ["--duration", str(secs + 2), "--warmup", "1"])
        lg = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        rec = ["perf", "record", "-q", "-F", "999", "--call-graph", "dwarf,16384", "-o", data,
               "-p", str(srv.pid), "--", "sleep", str(secs)]
        r = subprocess.run(rec, capture_output=True, text=True, timeout=secs + 120)
        lg.communicate(timeout=secs + 120)
        if r.returncode != 0 or not os.path.exists(data):
            print(f"compare: perf record failed: {r.stderr.strip()}", file=sys.stderr)
            return None
        out[kind] = {"self": perf_top(data, False)[:15], "children": perf_top(data, True)[:25]}
        os.unlink(data)
        bench.note_command("profile", rec)
    return out


def run_micro(bench, a, build):
    """bench/micro of a build (one per OpenSSL stack) on the server CPU,
    after the servers stopped: the median and coefficient of variation of
    --rounds repetitions per case."""
    exe = os.path.join(build, "bench/micro")
    if not a.micro or not os.path.exists(exe):
        return None
    argv = ["taskset", "-c", str(a.server_cpu), exe, "--benchmark_format=json",
            f"--benchmark_repetitions={max(a.rounds, 2)}", "--benchmark_report_aggregates_only=true",
            f"--benchmark_min_time={0.1 if a.quick else 1}"]
    bench.note_command("micro", argv)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, MTLS_FIXTURES=bench.fx))
    if r.returncode != 0:
        print(f"compare: bench/micro failed ({r.returncode}): {r.stderr.strip()}", file=sys.stderr)
        return None
    cases = {}
    for b in json.loads(r.stdout)["benchmarks"]:
        c = cases.setdefault(b["run_name"], {"error": b.get("error_message")})
        if b.get("aggregate_name") in ("median", "cv"):
            c[b["aggregate_name"]] = b
    return cases


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("builddir")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--tls", default="1.3", choices=["1.2", "1.3"])
    p.add_argument("--servers", default="mtlsd,nginx,haproxy")
    p.add_argument("--stacks", default="system",
                   help="comma-separated OpenSSL stacks, every server on each: system, lts (issue 16)")
    p.add_argument("--lts-build", default=None,
                   help="with --stacks ...lts: the mtlsd build configured with -Dopenssl=lts")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--hs-concurrency", type=int, default=32)
    p.add_argument("--rr-concurrency", type=int, default=32)
    p.add_argument("--rr-size", type=int, default=64)
    p.add_argument("--bulk-concurrency", type=int, default=4)
    p.add_argument("--idle-connections", type=int, default=10000)
    p.add_argument("--render", metavar="RAW_JSON", help="only rewrite the report from a saved run")
    p.add_argument("--no-micro", dest="micro", action="store_false", help="skip bench/micro")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip the perf profiles of mtlsd (taken after the measured rounds)")
    p.add_argument("--out", default=None, help="markdown report (default: docs/benchmarks.md of the source tree)")
    p.add_argument("--quick", action="store_true", help="1 round of 2 s, 1000 idle: checks the tooling, measures nothing")
    a = p.parse_args()
    if a.quick:
        a.rounds, a.duration, a.warmup, a.idle_connections = 1, 2, 0.5, min(a.idle_connections, 1000)
    if a.out is None:
        a.out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs/benchmarks.md")
    return a


def on_terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    # Stop cleanly (servers, backend, load generator) on ^C or SIGTERM, even
    # when started in the background, where SIGINT arrives ignored.
    signal.signal(signal.SIGINT, on_terminate)
    signal.signal(signal.SIGTERM, on_terminate)
    a = parse_args()
    if a.render:
        # Re-render a saved run (after changing the report, not the numbers).
        with open(a.render) as f:
            saved = json.load(f)
        report.write(a.out, saved["rounds"], saved["ctx"])
        print(f"wrote {a.out} from {a.render}", file=sys.stderr)
        return
    bench = Bench(a)
    if not os.path.exists(os.path.join(bench.fx, "server/chain.pem")):
        sys.exit(f"compare: no fixtures in {bench.fx}: run ninja -C {a.builddir} first")
    # N idle connections cost the server 2N descriptors (client and backend
    # legs). Raise the soft limit to the hard one (raising the hard limit
    # needs CAP_SYS_RESOURCE) and hold fewer connections if it is too low.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 65536), max(hard, 65536)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if a.idle_connections > (fd_limit - 256) // 2:
        a.idle_connections_asked = a.idle_connections
        a.idle_connections = (fd_limit - 256) // 2
        print(f"compare: descriptor limit {fd_limit}: holding {a.idle_connections} idle connections", file=sys.stderr)
    names = [n for n in a.servers.split(",") if n]
    load_before = os.getloadavg()
    work = tempfile.mkdtemp(prefix="mtlsd-compare.")
    # The build regenerates the fixtures on every ninja run: work on a copy
    # so a rebuild during the comparison cannot swap certificates under it.
    shutil.copytree(bench.fx, os.path.join(work, "fixtures"))
    bench.fx = os.path.join(work, "fixtures")
    echo = subprocess.Popen(["taskset", "-c", str(a.client_cpu), bench.loadgen, "--serve-echo", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, text=True)
    running = []
    stacks = []
    for st in [x for x in a.stacks.split(",") if x]:
        if st == "system":
            stacks.append(servers.Stack("system", bench.build))
        elif st == "lts":
            libdir = servers.lts_libdir()
            if not libdir or not a.lts_build:
                sys.exit("compare: --stacks lts needs tools/openssl-lts.sh built and --lts-build DIR "
                         "(a build with -Dopenssl=lts)")
            stacks.append(servers.Stack("lts", os.path.realpath(a.lts_build), libdir))
        else:
            sys.exit(f"compare: unknown stack {st!r} (system, lts)")
    cal = {}
    try:
        backend_port = int(echo.stdout.readline().split(":")[-1])
        stack_of = {}
        for st in stacks:
            for n in names:
                running.append(servers.STARTERS[n](bench.build, bench.fx, backend_port, a.server_cpu, work,
                                                   stack=st))
                stack_of[running[-1].name] = st.name
        by_name = {s.name: s for s in running}
        for s in running:
            s.openssl = servers.openssl_of(s.pid)
            print(f"{s.name}: pid {s.pid} runs on {s.openssl}", file=sys.stderr)
        # Calibrate per stack: that stack's nginx sets the offered rates of
        # its latency rows (70% of its closed-loop maximum).
        for st in stacks:
            sfx = st.suffix()
            ref = by_name.get("nginx" + sfx) or next(s for s in running if s.name.endswith(sfx))
            rr = [bench.run_load(ref, "rr-max", "rr", ["--concurrency", str(a.rr_concurrency), "--size",
                                                       str(a.rr_size)])["achieved_rate"] for _ in range(a.rounds)]
            hs = [bench.run_load(ref, "hs-max", "handshake", ["--concurrency", str(a.hs_concurrency)])
                  ["handshakes_per_s"] for _ in range(a.rounds)]
            c = dict(ref=ref.name, rr_max=sorted(rr)[len(rr) // 2], hs_max=sorted(hs)[len(hs) // 2])
            c.update(rr_rate=0.7 * c["rr_max"], hs_rate=0.7 * c["hs_max"])
            cal[st.name] = c
            print(f"{ref.name} closed-loop max {c['rr_max']:.0f} req/s, {c['hs_max']:.0f} handshakes/s; "
                  f"offering 70%", file=sys.stderr)
        rounds = {s.name: [] for s in running}
        for r in range(a.rounds):
            order = running[r % len(running):] + running[:r % len(running)]
            for srv in order:
                c = cal[stack_of[srv.name]]
                print(f"round {r + 1}/{a.rounds}: {srv.name}", file=sys.stderr)
                rounds[srv.name].append(metrics_of_round(bench, srv, c["rr_rate"], c["hs_rate"], a))
                if not srv.alive():
                    raise RuntimeError(f"{srv.name} died during round {r + 1}: see {work}/{srv.name}.log")
        prof_target = next((s for s in reversed(running) if s.name.startswith("mtlsd")), None)
        profile = profile_mtlsd(bench, prof_target, a, work) if prof_target else None
        if profile:
            profile["server"] = prof_target.name
    except BaseException:
        print(f"compare: failed; server logs and configuration kept in {work}", file=sys.stderr)
        raise
    finally:
        for s in running:
            s.stop()
        echo.terminate()
        echo.wait()
    micro = run_micro(bench, a, bench.build)
    micro_by_stack = {"system": micro}
    for st in stacks:
        if st.name != "system":
            micro_by_stack[st.name] = run_micro(bench, a, st.mtlsd_build)
    shutil.rmtree(work, ignore_errors=True)
    raw_path = os.path.join(bench.build, "bench-results.json")
    first = cal[stacks[0].name]
    ctx = dict(args=vars(a), versions=servers.versions(bench.build), load_before=load_before,
               load_after=os.getloadavg(), commands=bench.commands, rr_ref=first["ref"], rr_max=first["rr_max"],
               rr_rate=first["rr_rate"], hs_max=first["hs_max"], hs_rate=first["hs_rate"], micro=micro,
               micro_by_stack=micro_by_stack, calibration=cal, stacks=[st.name for st in stacks],
               stack_of=stack_of, openssl_of={s.name: s.openssl for s in running},
               profile=profile, labels={s.name: s.label for s in running}, raw_path=raw_path,
               server_argv={s.name: " ".join(s.argv).replace(bench.build, "$BUILD").replace(work, "$WORK")
                            for s in running})
    with open(raw_path, "w") as f:
        json.dump({"runs": bench.raw, "rounds": rounds, "ctx": ctx}, f, indent=1)
    report.write(a.out, rounds, ctx)
    print(f"wrote {a.out} and {report.chart_path(a.out)}; raw runs in {raw_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
