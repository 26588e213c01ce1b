"""servers.py: the three servers bench/compare runs, configured alike.

Each server gets the same certificates (the test fixtures made by mtlsctl),
the same echo backend, one worker pinned to the same CPU, TLS 1.2 and 1.3,
client certificates required and verified against the same partner bundle,
and a PROXY header toward the backend (mtlsd and HAProxy: v2 with the
client's identity; nginx's stream module can only send v1, without it).
A server is a running process tree: its CPU time and memory are read from
/proc for the whole tree (nginx's master and worker, mtlsd's threads).
"""
import os
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} never listened on 127.0.0.1:{port}")


def tree_pids(pid):
    """pid and all its descendants (nginx master -> worker)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pid):
    """User + system CPU seconds of the process tree."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / tick


def rss_bytes(pid):
    """Resident memory of the process tree (VmRSS summed)."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class Server:
    """One server under test: name, port, the command that ran it."""

    def __init__(self, name, label, argv, port, work, env=None):
        self.name, self.label, self.argv, self.port = name, label, argv, port
        self.env = env
        self.log_path = os.path.join(work, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_port(port, self.proc, label)

    def restart(self):
        """A fresh process on the same port and configuration: memory
        measurements must not see what an earlier test left in the
        allocator's free lists."""
        self.stop()
        self.log = open(self.log_path, "ab")
        for _ in range(50):  # the old listener may take a moment to go
            self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
            try:
                wait_port(self.port, self.proc, self.label)
                return
            except RuntimeError:
                if self.proc.poll() is None:
                    self.proc.kill()
                self.proc.wait()
                time.sleep(0.2)
        raise RuntimeError(f"{self.label} did not restart on port {self.port}")

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Stack:
    """The OpenSSL a server runs on. "system" is the distribution's; "lts"
    is OpenSSL 3.5 LTS from tools/openssl-lts.sh: mtlsd comes from a build
    configured with -Dopenssl=lts (it finds the libraries through its
    RUNPATH), nginx and HAProxy are Debian's binaries run against the same
    libraries through LD_LIBRARY_PATH (OpenSSL keeps the ABI within 3.x)."""

    def __init__(self, name, mtlsd_build, libdir=None):
        self.name, self.mtlsd_build, self.libdir = name, mtlsd_build, libdir

    def env(self):
        if not self.libdir:
            return None
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = self.libdir
        return env

    def suffix(self):
        return "" if self.name == "system" else "@" + self.name


def lts_libdir():
    """The lib/ of the OpenSSL LTS prefix tools/openssl-lts.sh built, or None."""
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools/openssl-lts.sh")
    r = subprocess.run(["bash", tool, "--prefix"], capture_output=True, text=True)
    return os.path.join(r.stdout.strip(), "lib") if r.returncode == 0 else None


def openssl_of(pid):
    """The libssl a running process mapped (proof of the stack it runs on)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                if "libssl.so" in line:
                    return line.split()[-1]
    except OSError:
        pass
    return "?"


def start_mtlsd(build, fx, backend_port, cpu, work, binary=None, extra=(), name="mtlsd", stack=None):
    port = free_port()
    if stack:
        build = stack.mtlsd_build
        name += stack.suffix()
    argv = ["taskset", "-c", str(cpu), binary or os.path.join(build, "dataplane/mtlsd"),
            "--listen", f"127.0.0.1:{port}", "--workers", "1",
            "--cert", f"{fx}/server/chain.pem", "--key", f"{fx}/server/key.pem",
            "--client-ca", f"{fx}/pki/ca-bundle.pem", "--verify-depth", "3",
            "--backend", f"127.0.0.1:{backend_port}", "--proxy-protocol", "v2",
            "--max-connections", str(fd_budget()), "--idle-timeout", "600s",
            "--audit-log", os.path.join(work, f"{name}-audit.log"),
            "--control-socket", os.path.join(work, f"{name}-control.sock")] + list(extra)
    return Server(name, name, argv, port, work, env=None)


NGINX_CONF = """load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
worker_cpu_affinity {mask};
worker_rlimit_nofile {nofile};
daemon off;
pid {work}/nginx{tag}.pid;
error_log {work}/nginx{tag}-error.log warn;
events {{ worker_connections {nofile}; }}
stream {{
  server {{
    listen 127.0.0.1:{port} ssl backlog=4096;
    ssl_certificate {fx}/server/chain.pem;
    ssl_certificate_key {fx}/server/key.pem;
    ssl_client_certificate {fx}/pki/ca-bundle.pem;
    ssl_verify_client on;
    ssl_verify_depth 3;
    ssl_protocols TLSv1.2 TLSv1.3;
    proxy_protocol on;
    proxy_timeout 10m;
    proxy_pass 127.0.0.1:{backend};
  }}
}}
"""


def start_nginx(build, fx, backend_port, cpu, work, stack=None):
    port = free_port()
    sfx = stack.suffix() if stack else ""
    tag = sfx.replace("@", "-")
    conf = os.path.join(work, f"nginx{tag}.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(mask=format(1 << cpu, "b"), work=work, port=port, fx=fx, tag=tag,
                                  backend=backend_port, nofile=2 * fd_budget() + 50))
    argv = ["taskset", "-c", str(cpu), "nginx", "-c", conf, "-e", os.path.join(work, f"nginx{tag}-error.log")]
    return Server("nginx" + sfx, "nginx (stream)" + sfx, argv, port, work, env=stack.env() if stack else None)


HAPROXY_CONF = """global
  nbthread 1
  maxconn {maxconn}
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m
frontend mtls
  bind 127.0.0.1:{port} ssl crt {pem} ca-file {fx}/pki/ca-bundle.pem verify required
  maxconn {maxconn}
  default_backend echo
backend echo
  server echo 127.0.0.1:{backend} send-proxy-v2-ssl-cn
"""


def start_haproxy(build, fx, backend_port, cpu, work, stack=None):
    port = free_port()
    sfx = stack.suffix() if stack else ""
    tag = sfx.replace("@", "-")
    pem = os.path.join(work, f"haproxy{tag}.pem")
    fd = os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        for part in ("server/chain.pem", "server/key.pem"):
            with open(os.path.join(fx, part)) as f:
                out.write(f.read())
    conf = os.path.join(work, f"haproxy{tag}.cfg")
    with open(conf, "w") as f:
        f.write(HAPROXY_CONF.format(port=port, pem=pem, fx=fx, backend=backend_port, maxconn=fd_budget()))
    argv = ["taskset", "-c", str(cpu), "haproxy", "-db", "-f", conf]
    return Server("haproxy" + sfx, "HAProxy" + sfx, argv, port, work, env=stack.env() if stack else None)


def fd_budget():
    """Connections a server may hold: two descriptors each, some spare."""
    import resource
    return (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 100) // 2


STARTERS = {"mtlsd": start_mtlsd, "nginx": start_nginx, "haproxy": start_haproxy}


def versions(build):
    def run(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unavailable"
    return {
        "mtlsd": run([os.path.join(build, "dataplane/mtlsd"), "--version"]),
        "nginx": run(["nginx", "-v"]),
        "haproxy": run(["haproxy", "-v"]),
        "openssl": run(["openssl", "version"]),
        "kernel": run(["uname", "-sr"]),
    }
