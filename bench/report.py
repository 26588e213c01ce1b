"""report.py: turn bench/compare's rounds into docs/benchmarks.md and a chart.

Each cell is the median of the rounds with the min..max spread; the ratio
columns divide mtlsd's median by the other server's median. "Per core"
divides a rate by the server's measured CPU use during the run (CPU
seconds per wall second), so a server that the single-core client could
not saturate is still compared by what a core of it can do.
"""
import os
import platform
import socket
import statistics
import time

# key, label, unit divisor, higher is better, format
METRICS = [
    ("hs_per_core", "full mTLS handshakes/s per server core", 1, True, "{:.0f}"),
    ("hs_per_s", "  wall-clock handshakes/s (server pinned to 1 CPU)", 1, True, "{:.0f}"),
    ("hs_util", "  server CPU use during it (cores)", 1, True, "{:.2f}"),
    ("resume_per_core", "resumed handshakes/s per server core", 1, True, "{:.0f}"),
    ("resume_per_s", "  wall-clock resumed handshakes/s", 1, True, "{:.0f}"),
    ("resumed_fraction", "  fraction the server actually resumed", 1, True, "{:.2f}"),
    ("hs_lat_p99_us", "p99 handshake latency at 70% of {ref}'s max handshake rate (µs)", 1, False, "{:.0f}"),
    ("hs_lat_p50_us", "  p50 at that rate (µs)", 1, False, "{:.0f}"),
    ("hs_lat_util", "  server CPU use at that rate (cores)", 1, False, "{:.2f}"),
    ("rr_p99_us", "p99 request latency at 70% of {ref}'s max rate (µs)", 1, False, "{:.0f}"),
    ("rr_p50_us", "  p50 at that rate (µs)", 1, False, "{:.0f}"),
    ("bulk_up_mb_per_core", "bulk client→backend MB/s per server core", 1, True, "{:.0f}"),
    ("bulk_up_mb_s", "  wall-clock MB/s", 1, True, "{:.0f}"),
    ("bulk_down_mb_per_core", "bulk backend→client MB/s per server core", 1, True, "{:.0f}"),
    ("bulk_down_mb_s", "  wall-clock MB/s", 1, True, "{:.0f}"),
    ("idle_bytes_per_conn", "user memory per idle connection (KiB, {n} held)", 1024, False, "{:.1f}"),
    ("ceiling", "in-memory ceiling: idle connections in {mem} GiB", 1e6, True, "{:.1f} M"),
]
NO_RATIO = {"hs_util", "resumed_fraction", "hs_lat_util"}
CHART_KEYS = ["hs_per_core", "resume_per_core", "hs_lat_p99_us", "rr_p99_us", "bulk_up_mb_per_core",
              "bulk_down_mb_per_core", "idle_bytes_per_conn"]


def chart_path(md_path):
    return os.path.splitext(md_path)[0] + ".png"


def mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ktls_available():
    """Can a TCP socket take the tls ULP here? (No socket needs to connect.)"""
    srv = socket.socket()
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        cli = socket.create_connection(srv.getsockname())
        try:
            cli.setsockopt(socket.IPPROTO_TCP, 31, b"tls")  # TCP_ULP
            return True
        except OSError:
            return False
        finally:
            cli.close()
    finally:
        srv.close()


def add_ceiling(rounds):
    mem = mem_total()
    for per_server in rounds.values():
        for m in per_server:
            b = m.get("idle_bytes_per_conn")
            if b and b > 0:
                m["ceiling"] = mem / b


def summary(values):
    return statistics.median(values), min(values), max(values)


def cell(values, div, fmt):
    if not values:
        return "n/a"
    med, lo, hi = (v / div for v in summary(values))
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(lo)}..{fmt.format(hi)})"


def ratio(rounds, key, a, b):
    va = [m[key] for m in rounds.get(a, []) if key in m]
    vb = [m[key] for m in rounds.get(b, []) if key in m]
    if not va or not vb or statistics.median(vb) == 0:
        return "n/a"
    return f"{statistics.median(va) / statistics.median(vb):.2f}"


def table(rounds, ctx, names=None):
    """One table: the given servers (default: all), the ratio columns the
    first mtlsd among them against each other one."""
    names = names or list(rounds)
    labels = ctx["labels"]
    mine = next((n for n in names if n.startswith("mtlsd")), None)
    others = [n for n in names if n != mine]
    head = ["metric"] + [labels[n] for n in names] + [f"{labels[mine]}/{labels[o]}" for o in others if mine]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    mem_gib = mem_total() / 2**30
    for key, label, div, _, fmt in METRICS:
        label = label.format(ref="nginx", n=ctx["args"]["idle_connections"], mem=f"{mem_gib:.0f}")
        row = [label.replace("  ", "↳ ", 1) if label.startswith("  ") else label]
        for n in names:
            row.append(cell([m[key] for m in rounds[n] if key in m], div, fmt))
        if mine:
            # A ratio of CPU use or of resumed fractions says nothing.
            row += [ratio(rounds, key, mine, o) if key not in NO_RATIO else "" for o in others]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def stack_title(ctx, st):
    libs = sorted({ctx.get("openssl_of", {}).get(n, "?") for n, s in ctx.get("stack_of", {}).items() if s == st})
    what = {"system": "the system OpenSSL (Debian's package)",
            "lts": "OpenSSL 3.5 LTS (tools/openssl-lts.sh; nginx and HAProxy through LD_LIBRARY_PATH)"}
    return f"{what.get(st, st)}: every server mapped {', '.join(libs)}"


def tables(rounds, ctx):
    """A table per OpenSSL stack (each server against the others on the same
    library), and with both stacks the row a Debian 12 operator gets:
    mtlsd on the LTS against the packaged nginx and HAProxy on 3.0."""
    stack_of = ctx.get("stack_of") or {n: "system" for n in rounds}
    stacks = ctx.get("stacks") or ["system"]
    out = []
    for st in stacks:
        names = [n for n in rounds if stack_of.get(n) == st]
        out.append(f"### On {stack_title(ctx, st)}\n\n" + table(rounds, ctx, names))
    if "lts" in stacks and "system" in stacks:
        names = [n for n in rounds if n.startswith("mtlsd") and stack_of.get(n) == "lts"] + \
                [n for n in rounds if not n.startswith("mtlsd") and stack_of.get(n) == "system"]
        out.append("### What a Debian 12 operator gets: mtlsd on OpenSSL 3.5 LTS, nginx and HAProxy as "
                   "packaged (OpenSSL 3.0)\n\n" + table(rounds, ctx, names))
    return "\n\n".join(out)


def draw_chart(path, rounds, ctx):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(rounds)
    ref = ctx["rr_ref"] if ctx["rr_ref"] in names else names[0]
    keys = [k for k in CHART_KEYS if all(any(k in m for m in rounds[n]) for n in names)]
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        meds, errs = [], [[], []]
        for k in keys:
            base = statistics.median([m[k] for m in rounds[ref] if k in m])
            med, lo, hi = (v / base for v in summary([m[k] for m in rounds[n] if k in m]))
            meds.append(med)
            errs[0].append(med - lo)
            errs[1].append(hi - med)
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(keys))]
        ax.bar(xs, meds, width, yerr=errs, capsize=3, label=ctx["labels"][n])
    higher = {k: h for k, _, _, h, _ in METRICS}
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([k.replace("_", " ") + ("\n(higher better)" if higher[k] else "\n(lower better)")
                        for k in keys], fontsize=8)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_ylabel(f"relative to {ctx['labels'][ref]} (= 1.0)")
    ax.set_title(f"mtlsd vs nginx vs HAProxy, TLS {ctx['args']['tls']} mTLS, 1 server core "
                 f"(median of {ctx['args']['rounds']}, bars = min..max)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def med(rounds, name, key):
    vals = [m[key] for m in rounds.get(name, []) if key in m]
    return statistics.median(vals) if vals else None


def micro_us(micro, case):
    """Median CPU time of one bench/micro case in µs, or None."""
    c = (micro or {}).get(case) or {}
    m = c.get("median")
    if c.get("error") or not m:
        return None
    key = "real_time" if case.endswith("manual_time") else "cpu_time"
    return m[key] * {"ns": 1e-3, "us": 1, "ms": 1e3, "s": 1e6}[m["time_unit"]]


# Issue 16's targets, each on one stack against the peers on the same
# stack: (what, metric, higher is better, factor, against) where against is
# "best" (the best peer's median), a peer's name, or "micro:CASE".
TARGETS = [
    ("resumed handshakes/s per core >= 1.3x the best peer", "resume_per_core", True, 1.3, "best"),
    ("resumed handshakes/s per core >= 0.85x the resumed in-memory ceiling (bench/micro)", "resume_per_core",
     True, 0.85, "micro:handshake_server/tls1:3/rsa:0/resumed:1/manual_time"),
    ("full handshakes/s per core >= 1.25x the best peer", "hs_per_core", True, 1.25, "best"),
    ("relay throughput client→backend per core >= 1.2x nginx", "bulk_up_mb_per_core", True, 1.2, "nginx"),
    ("relay throughput backend→client per core >= 1.2x nginx", "bulk_down_mb_per_core", True, 1.2, "nginx"),
    ("p99 handshake latency at 70% of nginx's max handshake rate <= nginx's", "hs_lat_p99_us", False, 1.0, "nginx"),
    ("user memory per idle connection <= 0.5x HAProxy's", "idle_bytes_per_conn", False, 0.5, "haproxy"),
]


def targets_section(rounds, ctx):
    stack_of = ctx.get("stack_of") or {n: "system" for n in rounds}
    micro_by_stack = ctx.get("micro_by_stack") or {"system": ctx.get("micro")}
    lines = ["| stack | target | mtlsd | reference | ratio | |", "|---|---|---|---|---|---|"]
    for st in ctx.get("stacks") or ["system"]:
        names = [n for n in rounds if stack_of.get(n) == st]
        mine_name = next((n for n in names if n.startswith("mtlsd")), None)
        peers = [n for n in names if n != mine_name]
        for what, key, higher, factor, against in TARGETS:
            mine = med(rounds, mine_name, key) if mine_name else None
            if against.startswith("micro:"):
                us = micro_us(micro_by_stack.get(st), against[6:])
                ref, ref_txt = (1e6 / us, f"{1e6 / us:.0f}/s ({us:.0f} µs)") if us else (None, "n/a")
            elif against == "best":
                vals = [(med(rounds, p, key), p) for p in peers]
                vals = [v for v in vals if v[0] is not None]
                best = (max if higher else min)(vals) if vals else (None, None)
                ref, ref_txt = best[0], f"{best[0]:.0f} ({ctx['labels'][best[1]]})" if best[0] else "n/a"
            else:
                p = next((n for n in peers if n.split("@")[0] == against), None)
                ref = med(rounds, p, key) if p else None
                ref_txt = f"{ref:.0f}" if ref is not None else "n/a"
            if mine is None or not ref:
                lines.append(f"| {st} | {what} | n/a | {ref_txt} | | not measured |")
                continue
            r = mine / ref
            met = r >= factor if higher else r <= factor
            lines.append(f"| {st} | {what} | {mine:.0f} | {ref_txt} | {r:.2f} | {'**met**' if met else '**missed**'} |")
    return "\n".join(lines)


def profile_section(profile):
    if not profile:
        return "No profile in this run (perf missing, or --no-profile).\n"
    out = [f"Profiled: {profile['server']}.", ""] if "server" in profile else []
    for kind, p in profile.items():
        if kind == "server":
            continue
        out.append(f"**{kind}** — self time, top symbols:")
        out.append(", ".join(f"{sym} {pct:.1f}%" for pct, sym in p["self"]) + ".")
        out.append("")
        out.append(f"**{kind}** — inclusive (a function and everything it calls):")
        out.append(", ".join(f"{sym} {pct:.1f}%" for pct, sym in p["children"]) + ".")
        out.append("")
    return "\n".join(out)


def notes_text():
    """bench/notes.md, hand-written analysis kept next to the tools and
    copied into the report verbatim (the rest of the report is generated)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def micro_section(micro, a):
    if not micro:
        return "bench/micro was not run (no C++ compiler or libbenchmark-dev, or --no-micro).\n"
    lines = [f"Google Benchmark, pinned to CPU {a['server_cpu']} after the servers stopped: CPU time per",
             f"operation, median of {max(a['rounds'], 2)} repetitions, and their coefficient of variation.",
             "Handshakes are mtlsd's server side only (its generation's SSL_CTX, verify callback and",
             "settle step; the in-memory client is not counted); `tls1:3/rsa:0/resumed:0` is a full",
             "TLS 1.3 handshake with P-256 certificates, `rsa:1` uses RSA-2048 server and client keys.", "",
             "| case | median | cv | throughput |", "|---|---|---|---|"]
    for name, c in micro.items():
        med, cv = c.get("median"), c.get("cv")
        if c.get("error") or not med:
            lines.append(f"| {name} | error: {c.get('error')} | | |")
            continue
        # Manual-time cases report the server's thread CPU time as real
        # time; for the others CPU time is the number a busy machine
        # disturbs least.
        key = "real_time" if name.endswith("manual_time") else "cpu_time"
        ns = med[key] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[med["time_unit"]]
        shown = f"{ns / 1e3:.1f} µs" if ns >= 1e3 else f"{ns:.1f} ns"
        tput = f"{med['bytes_per_second'] / 1e9:.2f} GB/s" if "bytes_per_second" in med else ""
        spread = f"{cv[key] * 100:.1f}%" if cv else ""
        lines.append(f"| {name.replace('/manual_time', '')} | {shown} | {spread} | {tput} |")
    return "\n".join(lines) + "\n"


def command_flags(a):
    """The flags that reproduce this run (as asked, before any capping)."""
    out = []
    for k, val in a.items():
        if k in ("builddir", "out", "quick", "render", "idle_connections_asked") or val is None:
            continue
        if k in ("micro", "profile"):
            out += [] if val else [f"--no-{k}"]
            continue
        if k == "idle_connections":
            val = a.get("idle_connections_asked") or val
        out.append(f"--{k.replace('_', '-')} {val}")
    return " ".join(out)


def estimate_minutes(a):
    per_server_round = 6 * (a["duration"] + a["warmup"] + 1) + 30
    calibration = 2 * a["rounds"] * (a["duration"] + a["warmup"])
    return round((3 * a["rounds"] * per_server_round + calibration) / 60 + 3)


def caveat(ctx):
    load = ctx["load_before"][0]
    if load <= 1.5:
        return ""
    return (f"**Caveat: this run shared the machine with other work (load average {load:.1f} on "
            f"{os.cpu_count()} CPUs at the start).** Wall-clock rates and latencies mostly measure that "
            "contention; the per-core rows and the ratios are the more robust reading, and the "
            "numbers are indicative until the comparison is re-run on a quiet machine.")


def write(md_path, rounds, ctx):
    add_ceiling(rounds)
    a, v = ctx["args"], ctx["versions"]
    png = chart_path(md_path)
    have_chart = draw_chart(png, rounds, ctx)
    ktls = "available" if ktls_available() else "not measured on this host (no `tls` ULP in this kernel)"
    capped = ""
    if a.get("idle_connections_asked"):
        capped = (f"\n  {a['idle_connections']} rather than {a['idle_connections_asked']}: the descriptor limit here"
                  " (RLIMIT_NOFILE hard limit, no CAP_SYS_RESOURCE to raise it) allows"
                  " two descriptors per connection in the server, no more.")
    cmd_lines = "\n".join(f"# {kind}\n{cmd}" for kind, cmd in ctx["commands"])
    srv_lines = "\n".join(f"# {n}\n{argv}" for n, argv in ctx["server_argv"].items())
    text = f"""# Benchmarks: mtlsd against nginx and HAProxy

Generated by `bench/compare.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.
Every number is the median of {a['rounds']} rounds with the min..max spread in
brackets; the servers take turns within each round. Ratios are mtlsd's median
divided by the other server's median (above 1 is better for mtlsd on a
"higher is better" row, worse on the latency and memory rows).

{tables(rounds, ctx)}

{"![chart](" + os.path.basename(png) + ")" if have_chart else "(no chart: python3-matplotlib is not installed)"}

Kernel TLS throughput: {ktls}.

{caveat(ctx)}
{"".join(f"{chr(10)}Note: {n}{chr(10)}" for n in ctx.get("notes", []))}
## Issue 16's targets in this run (each against the peers on the same stack)

{targets_section(rounds, ctx)}

## Where mtlsd's time goes in this run (perf)

`perf record -F 999 --call-graph dwarf` of the mtlsd process under each
kind of load, taken after the measured rounds (same pinning, one loadgen
run each; OpenSSL's internal functions have no symbols here, only its
exported ones, so their time shows up under the exported caller in the
inclusive list). Percentages are of mtlsd's samples.

{profile_section(ctx.get("profile"))}
{notes_text()}

## Reproduce
```
ninja -C $BUILD                 # builds bench/loadgen and bench/micro too
bench/compare.py $BUILD         # ~{estimate_minutes(a)} minutes on a quiet machine; --quick checks the tooling
```
Needs nginx-light + libnginx-mod-stream, haproxy, python3-matplotlib (chart),
libbenchmark-dev + g++ (micro benchmarks). Run it on a quiet machine: every
other process on the two cores is noise in these numbers.

## The tools
- `bench/loadgen` (C, io_uring, one ring per thread, TLS over memory BIOs):
  `--mode handshake|resume|rr|bulk-up|bulk-down|idle`, `--concurrency`,
  `--duration`, `--warmup`, `--rate` (rr: requests/s; handshake and
  resume: connections/s; open loop, latency from the schedule), `--size`,
  `--connections`/`--hold`/`--ready-file` (idle), `--tls 1.2|1.3`,
  `--cert/--key/--ca`, `--threads`. One JSON object on stdout: counts,
  rates, latency percentiles in µs (p50, p90, p99, p99.9, max), bytes, errors
  by kind (connect, handshake, verify, tls_io, eof, reset, send, timeout,
  echo_mismatch), and the client's own CPU time. `loadgen --serve-echo
  HOST:PORT` is the backend. `bench/tests/test_loadgen.py` runs every mode
  against a real mtlsd.
- `bench/micro` (Google Benchmark; a C++ shim over C cases that call mtlsd's
  modules), below.

## What is measured, and how
- **Handshakes**: TLS {a['tls']} with a client certificate (the `client-ec` fixture, ECDSA
  P-256, issued by a 3-level partner CA) verified by the server against the
  partner bundle, the server's chain verified by the client. `loadgen` keeps
  {a['hs_concurrency']} handshakes in flight and counts one only when the server has
  accepted it (TLS 1.3: its first session ticket arrived; TLS 1.2: its
  Finished), then closes with close_notify. **Per core** divides the rate by
  the server's CPU use over the run (CPU seconds per second from /proc), so a
  server the single client core cannot saturate is still compared fairly.
- **Resumed**: the same, each connection offering the newest ticket its slot
  received; the row below it says what fraction the server really resumed.
- **Handshake latency**: full handshakes started open-loop at 70% of
  {ctx['rr_ref']}'s closed-loop handshake maximum ({ctx.get('hs_max', 0):.0f}/s measured in this
  run, so {ctx.get('hs_rate', 0):.0f}/s), up to {4 * a['hs_concurrency']} in flight; latency runs from the
  scheduled start to the server's first ticket.
- **Request latency**: {a['rr_concurrency']} established connections, {a['rr_size']}-byte requests echoed by
  the backend, offered open-loop at 70% of {ctx['rr_ref']}'s closed-loop maximum
  ({ctx['rr_max']:.0f} req/s measured in this run, so {ctx['rr_rate']:.0f} req/s). Latency runs
  from the time a request was *scheduled*, so a stalled server pays for the
  queue it causes (no coordinated omission).
- **Bulk**: {a['bulk_concurrency']} connections streaming 16 KiB writes through the relay, one
  direction at a time; per core as above.
- **Idle memory**: {a['idle_connections']} connections established (handshake plus one echoed
  byte, so the backend leg exists too) and held; the growth of the server's
  resident memory (VmRSS summed over its processes) divided by the count.
  The ceiling divides this machine's RAM by it: user memory only, kernel
  socket buffers not included.{capped}
- Each measured run lasts {a['duration']} s after {a['warmup']} s of warm-up (rr and bulk: after
  every connection is established).

## Micro benchmarks (bench/micro)
{micro_section(ctx.get("micro"), a)}
## Setup
- Same certificates for all: the test fixtures (`tests/helpers/make_fixtures`), copied
  from `$BUILD/tests/fixtures` to `$WORK/fixtures` at the start so a rebuild
  cannot change them mid-run: `server/chain.pem` + `key.pem`, clients
  trusted through `pki/ca-bundle.pem`, the client is `client-ec`.
- Same backend: `loadgen --serve-echo`, one io_uring thread. It skips the
  PROXY header (v2 from mtlsd and HAProxy `send-proxy-v2-ssl-cn`, v1 from
  nginx `proxy_protocol on`: the stream module cannot send v2 or the client
  identity), then echoes, sinks or sources as the client asks.
- Pinning: every server runs one worker on CPU {a['server_cpu']}. The load generator
  (one thread) **and the echo backend share CPU {a['client_cpu']}**: this machine has two
  cores, so the client side competes with the backend; a server whose CPU use
  is below 1.0 core was limited by the client side, and the per-core rows
  correct for it.
- Machine: {cpu_model()}, {os.cpu_count()} CPUs, {mem_total() / 2**30:.0f} GiB,
  {v['kernel']}. Load average before / after: {' '.join(f'{x:.2f}' for x in ctx['load_before'])} /
  {' '.join(f'{x:.2f}' for x in ctx['load_after'])}.
- Versions: {v['mtlsd']}; {v['nginx']}; {v['haproxy']}; {v['openssl']} (the system library;
  the LTS stack: the prefix of `tools/openssl-lts.sh --prefix`).

## Exact commands
```
bench/compare.py {command_flags(a)} $BUILD
```
Servers (configuration files are written by `bench/servers.py`):
```
{srv_lines}
```
Load generator runs (one example of each kind; the ports vary):
```
{cmd_lines}
```
Raw results of every run: `{ctx['raw_path'].replace(os.path.realpath(a['builddir']), '$BUILD')}`.
"""
    os.makedirs(os.path.dirname(os.path.abspath(md_path)), exist_ok=True)
    with open(md_path, "w") as f:
        f.write(text)
