"""A load-balancer lab on loopback: real haproxy in front of fake apiservers, a real TLS client.

Everything binds to a random 127.x.y.0/24 block, so runs never collide with each other or with
anything else on the machine; every process the lab starts is ended by PID when it closes.
Used by the failover tests and by bench/lb_failover.py, so both measure the same thing.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from kube_ha.config import parse_cluster
from kube_ha.loadbalancer.haproxy import (
    HaproxyPaths,
    node_local_frontend,
    render_haproxy_cfg,
    session_guard_lua,
)
from kube_ha.model import HealthCheckSettings
from kube_ha.topology import elastic_apiserver_sans
from tests.harness import pki
from tests.harness.hosts import host
from tests.harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


def loopback_block() -> str:
    """A random 127.a.b.0/24 prefix ("127.a.b.") — all of 127/8 reaches lo on Linux."""
    return f"127.{random.randint(10, 250)}.{random.randint(1, 250)}."


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def haproxy_paths_under(tmp: Path, ca: pki.KeyPair, client: pki.KeyPair,
                        health: HealthCheckSettings, log_level: str = "notice") -> HaproxyPaths:
    """Where a test's haproxy keeps its files: all under `tmp` (no chroot, no user switch, logs
    on stderr at `log_level`). Writes the CA, the health-check client's cert+key bundle and the
    session guard for `health` there; the admin socket and server-state file are haproxy's."""
    ca_file, client_cert, guard = tmp / "ca.crt", tmp / "health-client.pem", tmp / "session-guard.lua"
    ca_file.write_text(ca.cert_pem)
    client_cert.write_text(client.cert_pem + client.key_pem)
    guard.write_text(session_guard_lua(health))
    return HaproxyPaths(
        ca_file=str(ca_file), client_cert=str(client_cert), session_guard=str(guard),
        admin_socket=str(tmp / "admin.sock"), state_file=str(tmp / "server-state"),
        chroot=None, user=None, log_target=f"stderr format raw local0 {log_level}",
    )


@dataclass
class FakeApiserver:
    name: str
    address: str
    port: int
    proc: subprocess.Popen[str] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Result:
    start: float
    end: float
    ok: bool
    error: str = ""
    backend: str = ""


@dataclass
class Report:
    """Failures split by when the request started relative to the fault."""

    fault_at: float
    results: list[Result]
    marked_down_s: float | None = None  # fault -> haproxy reports the watched server DOWN

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    @property
    def failed_after_fault(self) -> list[Result]:
        return [r for r in self.failed if r.start >= self.fault_at]

    @property
    def window_s(self) -> float:
        """Fault to the start of the last failed request (0 when nothing failed)."""
        late = [r.start - self.fault_at for r in self.failed]
        return max(0.0, max(late)) if late else 0.0

    def summary(self) -> str:
        errors = sorted({r.error for r in self.failed})[:3]
        return (f"{len(self.results)} requests, {len(self.failed)} failed "
                f"({len(self.failed_after_fault)} started after the fault), "
                f"window {self.window_s:.2f}s {errors}")


ConfigRenderer = Callable[["Lab"], str]


def https_get(address: str, port: int, server_name: str, ca_file: str, path: str = "/version",
              timeout: float = 3.0, clock: Callable[[], float] = time.monotonic) -> Result:
    """One HTTPS GET on a fresh connection, CA and hostname verified; never raises."""
    start = clock()
    ctx = ssl.create_default_context(cafile=ca_file)
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            raw.settimeout(timeout)
            with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\n"
                            "Connection: close\r\n\r\n".encode())
                data = b""
                while chunk := tls.recv(65536):
                    data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
        ok = head.startswith("HTTP/1.1 200")
        backend = next((ln.split(":", 1)[1].strip() for ln in head.split("\r\n")
                        if ln.lower().startswith("x-backend:")), "")
        return Result(start, clock(), ok, "" if ok else head.split("\r\n")[0], backend)
    except (OSError, ssl.SSLError) as err:
        return Result(start, clock(), False, type(err).__name__)


def ours(lab: Lab) -> str:
    return render_haproxy_cfg(lab.cluster, lab.paths)


def node_local(lab: Lab) -> str:
    """Our node-local proxy's config, listening on the lab's address instead of 127.0.0.1."""
    fe = replace(node_local_frontend(lab.cluster), bind=f"{lab.endpoint}:{lab.port}")
    assert lab.paths.session_guard is not None
    Path(lab.paths.session_guard).write_text(session_guard_lua(fe.health))  # its own timings
    return render_haproxy_cfg(lab.cluster, lab.paths, fe)


@dataclass
class Lab:
    workdir: Path
    backends_n: int = 3
    pool_n: int = 0
    require_client_cert: bool = False
    drain_seconds: float = 3.0
    readyz_latency: float = 0.0  # every /readyz takes this long (healthy, loaded)
    brownout_delay: float = 1.0  # during a brownout, /readyz takes this long on every backend
    brownout_seconds: float = 8.0
    goaway_chance: float = 0.0  # the share of a kept connection's requests that end it
    renderer: ConfigRenderer = ours
    config_overrides: dict[str, object] = field(default_factory=dict)
    prefix: str = field(default_factory=loopback_block)
    ca: pki.KeyPair | None = None  # default: a fresh CA
    certs: dict[str, pki.KeyPair] = field(default_factory=dict)  # per-server serving certs
    haproxy: subprocess.Popen[str] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.endpoint = self.prefix + "100"
        self.port = free_port(self.endpoint)
        self.apiserver_port = free_port(self.prefix + "11")
        self.pool_port = free_port(self.prefix + "21") if self.pool_n else 7443
        self.dns_name = "api.lab.kube-ha.test"
        self.cluster = parse_cluster(self.raw_config())
        self.ca = self.ca or pki.make_ca()
        self.client = pki.issue(self.ca, "kube-ha:lb-health-check", client=True)
        self.paths = haproxy_paths_under(self.workdir, self.ca, self.client,
                                         self.cluster.health_check)
        assert self.paths.client_cert is not None
        self.ca_file = Path(self.paths.ca_file)
        self.client_pem = Path(self.paths.client_cert)
        self.servers = [FakeApiserver(h.name, str(h.address), self.apiserver_port)
                        for h in self.cluster.control_plane]
        self.servers += [FakeApiserver(f"elastic-{h.name}", str(h.address), self.pool_port)
                         for h in self.cluster.workers[: self.pool_n]]

    def raw_config(self) -> dict[str, object]:
        """The stack config of this lab's cluster (what a user would write)."""
        raw: dict[str, object] = {
            "sshPrivateKey": "lab",
            "apiserverPort": self.apiserver_port,
            "controlPlane": [host(f"cp-{i + 1}", f"{self.prefix}{11 + i}")
                             for i in range(self.backends_n)],
            "workers": [host(f"pool-{i + 1}", f"{self.prefix}{21 + i}")
                        for i in range(self.pool_n)],
            "loadBalancers": [host("lb", self.endpoint)],
            "endpoint": {"address": self.endpoint, "dnsName": self.dns_name, "port": self.port},
            # The sandbox's hard FD limit is below what haproxy wants for 20000 connections.
            "loadBalancer": {"bindAddress": self.endpoint, "maxConn": 4000},
            "allowEvenControlPlane": True,
        }
        if self.pool_n:
            raw["elasticApiserver"] = {
                "enabled": True, "port": self.pool_port,
                "poolNodes": [f"pool-{i + 1}" for i in range(self.pool_n)],
                "minReplicas": 1, "maxReplicas": self.pool_n,
            }
        raw.update(self.config_overrides)
        return raw

    # --- processes -------------------------------------------------------------------------
    def start_backend(self, server: FakeApiserver) -> None:
        assert self.ca is not None
        cert = self.certs.get(server.name) or self.issued_cert(server.name)
        crt, key = cert.write(self.workdir, server.name)
        cmd = [sys.executable, "-m", "tests.harness.fake_apiserver", "--bind", server.address,
               "--port", str(server.port), "--cert", str(crt), "--key", str(key),
               "--client-ca", str(self.ca_file), "--name", server.name,
               "--drain-seconds", str(self.drain_seconds),
               "--readyz-latency", str(self.readyz_latency),
               "--brownout-delay", str(self.brownout_delay),
               "--brownout-seconds", str(self.brownout_seconds),
               "--goaway-chance", str(self.goaway_chance)]
        if self.require_client_cert:
            cmd.append("--require-client-cert")
        server.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert server.proc.stdout is not None
        line = server.proc.stdout.readline()
        assert line.strip() == "ready", f"{server.name} did not start: {line!r}"

    def issued_cert(self, name: str) -> pki.KeyPair:
        """The serving certificate the program issues for server `name`: the elastic
        apiservers' one names what elastic_apiserver_sans lists, marker included."""
        assert self.ca is not None
        if name.startswith("elastic-"):
            sans = elastic_apiserver_sans(self.cluster)
            return pki.issue(self.ca, "kube-apiserver", dns=list(sans.dns_names),
                             ips=list(sans.ip_addresses))
        server = self.server(name)
        return pki.issue(self.ca, name, dns=[name, self.dns_name],
                         ips=[server.address, self.endpoint])

    def start(self, backends: list[FakeApiserver] | None = None) -> None:
        for s in self.servers if backends is None else backends:
            self.start_backend(s)
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(self.renderer(self))
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stderr
        self.haproxy = subprocess.Popen(["haproxy", "-W", "-db", "-f", str(cfg)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)
        wait_until(self._accepts, 10, "haproxy to listen")

    def close(self) -> None:
        procs = [s.proc for s in self.servers if s.proc] + ([self.haproxy] if self.haproxy else [])
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- faults ----------------------------------------------------------------------------
    def server(self, name: str) -> FakeApiserver:
        return next(s for s in self.servers if s.name == name)

    def crash(self, name: str) -> None:
        p = self.server(name).proc
        assert p is not None
        os.kill(p.pid, signal.SIGKILL)

    def hang(self, name: str) -> None:
        p = self.server(name).proc
        assert p is not None
        os.kill(p.pid, signal.SIGSTOP)

    def drain(self, name: str) -> None:
        p = self.server(name).proc
        assert p is not None
        os.kill(p.pid, signal.SIGUSR1)

    def brownout(self) -> None:
        """Every backend's /readyz slow at once (etcd stalls); other requests still answered."""
        for s in self.servers:
            if s.running:
                assert s.proc is not None
                os.kill(s.proc.pid, signal.SIGUSR2)

    def reload(self) -> None:
        """What the LB's configure script does: save server state, then USR2 the master."""
        Path(self.paths.state_file).write_text(self.admin("show servers state"))
        assert self.haproxy is not None
        os.kill(self.haproxy.pid, signal.SIGUSR2)

    # --- observation -----------------------------------------------------------------------
    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(self.paths.admin_socket)
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stat(self, column: str) -> dict[str, str]:
        """One column of haproxy's `show stat` CSV, checked server name -> value; the FRONTEND
        and BACKEND rows and the unchecked fail-open twins (backup servers, 'no check') are
        left out."""
        rows = csv.DictReader(io.StringIO(self.admin("show stat").lstrip("# ")))
        return {r["svname"]: r[column] for r in rows
                if r["svname"] not in ("FRONTEND", "BACKEND") and r["bck"] != "1"}

    def states(self) -> dict[str, str]:
        """Checked server name -> haproxy status (UP, DOWN, 'UP 1/2', ...)."""
        return self.stat("status")

    def wait_states(self, want: dict[str, str], timeout: float) -> float:
        """Seconds until every server in `want` has its status; TimeoutError after `timeout`."""
        return wait_until(lambda: all(self._try_states().get(k) == v for k, v in want.items()),
                          timeout, f"servers to reach {want}")

    def _try_states(self) -> dict[str, str]:
        try:
            return self.states()
        except OSError:
            return {}

    def _accepts(self) -> bool:
        try:
            socket.create_connection((self.endpoint, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    # --- client ----------------------------------------------------------------------------
    def request(self, path: str = "/version", timeout: float = 3.0) -> Result:
        """One HTTPS GET through the LB on a fresh connection, CA and hostname verified."""
        return https_get(self.endpoint, self.port, self.dns_name, str(self.ca_file), path, timeout)

    def load(self, duration: float, rate: float, fault: Callable[[], None] | None = None,
             fault_after: float = 2.0, timeout: float = 3.0, watch: str | None = None,
             slow_every: int = 0) -> Report:
        """Requests at `rate`/s for `duration` s, each on its own thread; `fault` runs once.
        With `watch`, also times how long after the fault haproxy marks that server DOWN; with
        `slow_every`, every Nth request is one that takes 1.5 s to answer."""
        results: list[Result] = []
        lock = threading.Lock()
        marked: list[float] = []

        def poll_down() -> None:
            while time.monotonic() - t0 < duration:
                if fault_at != float("inf") and self._try_states().get(watch or "", "").startswith(
                        "DOWN"):
                    marked.append(time.monotonic() - fault_at)
                    return
                time.sleep(0.02)

        def one(path: str) -> None:
            r = self.request(path, timeout=timeout)
            with lock:
                results.append(r)

        threads = []
        t0 = time.monotonic()
        fault_at = float("inf")
        n = 0
        if watch:
            threads.append(threading.Thread(target=poll_down, daemon=True))
            threads[0].start()
        while (now := time.monotonic()) - t0 < duration:
            if fault is not None and fault_at == float("inf") and now - t0 >= fault_after:
                fault_at = time.monotonic()
                fault()
            path = "/slow" if slow_every and n % slow_every == 0 else "/version"
            t = threading.Thread(target=one, args=(path,), daemon=True)
            t.start()
            threads.append(t)
            n += 1
            time.sleep(max(0.0, t0 + n / rate - time.monotonic()))
        for t in threads:
            t.join(timeout + 5)
        return Report(fault_at, sorted(results, key=lambda r: r.start),
                      marked[0] if marked else None)


@dataclass
class LongLivedReport:
    """Per client: when each request on its kept connection succeeded, and which backend
    answered. A stall is the longest gap between two successes of one client."""

    fault_at: float
    successes: list[list[tuple[float, str]]]
    end: float
    reconnects: int = 0

    def stalls(self) -> list[float]:
        out = []
        for times in self.successes:
            marks = [t for t, _ in times] + [self.end]
            out.append(max((b - a for a, b in itertools.pairwise(marks)), default=0.0))
        return out

    @property
    def worst_stall_s(self) -> float:
        return max(self.stalls(), default=0.0)

    def stalled_over(self, seconds: float) -> int:
        return sum(1 for s in self.stalls() if s > seconds)


def keep_alive_clients(lab: Lab, clients: int, duration: float, interval: float = 0.5,
                       give_up: float = 45.0, fault: Callable[[], None] | None = None,
                       fault_after: float = 5.0) -> LongLivedReport:
    """`clients` kubelet-like clients, each with one kept TLS connection through the LB and a
    request every `interval`; a client abandons a connection that stays silent for `give_up`
    (client-go: HTTP/2 ReadIdleTimeout 30 s + PingTimeout 15 s) or that the LB closes, and
    reconnects at once. Bounded by `duration`."""
    t0 = time.monotonic()
    successes: list[list[tuple[float, str]]] = [[] for _ in range(clients)]
    reconnects = [0]
    lock = threading.Lock()
    ctx = ssl.create_default_context(cafile=str(lab.ca_file))

    def client(i: int) -> None:
        tls: ssl.SSLSocket | None = None
        while (now := time.monotonic()) - t0 < duration:
            try:
                if tls is None:
                    raw = socket.create_connection((lab.endpoint, lab.port), timeout=5)
                    tls = ctx.wrap_socket(raw, server_hostname=lab.dns_name)
                left = duration - (now - t0)
                tls.settimeout(max(0.1, min(give_up, left)))
                tls.sendall(f"GET /version HTTP/1.1\r\nHost: {lab.dns_name}\r\n"
                            "Connection: keep-alive\r\n\r\n".encode())
                backend = _read_response(tls)
                with lock:
                    successes[i].append((time.monotonic(), backend))
                time.sleep(interval)
            except (OSError, ssl.SSLError, ValueError):
                if tls is not None:
                    with contextlib.suppress(OSError):
                        tls.close()
                tls = None
                with lock:
                    reconnects[0] += 1
                time.sleep(0.05)
        if tls is not None:
            with contextlib.suppress(OSError):
                tls.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    fault_at = float("inf")
    if fault is not None:
        time.sleep(fault_after)
        fault_at = time.monotonic()
        fault()
    for t in threads:
        t.join(duration + 10)
    return LongLivedReport(fault_at, successes, t0 + duration, reconnects[0])


def read_response(tls: ssl.SSLSocket) -> tuple[str, bool]:
    """One HTTP/1.1 200 response with Content-Length: its X-Backend, and whether the server
    closes the connection after it. ValueError if the peer closes first or it is not a 200."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            raise ValueError("closed")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode(errors="replace").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(fields.get("content-length", "0"))
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            raise ValueError("closed")
        body += chunk
    if not lines[0].startswith("HTTP/1.1 200"):
        raise ValueError(lines[0])
    return fields.get("x-backend", ""), fields.get("connection", "").lower() == "close"


def _read_response(tls: ssl.SSLSocket) -> str:
    """One response's X-Backend; ValueError if the server closes the connection with it."""
    backend, closing = read_response(tls)
    if closing:
        raise ValueError("server closed")
    return backend
