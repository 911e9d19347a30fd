"""The kube-apiserver container of a fake node, as far as a TLS client on the node's address
sees it: it serves the node's /etc/kubernetes/pki/apiserver.crt and .key on <address>:6443,
answers /readyz, /livez and /healthz with "ok", and picks up a new pair written to disk
without a restart, as kube-apiserver does since 1.17 (dynamic serving certificates:
k8s.io/apiserver/pkg/server/dynamiccertificates, the files re-read when they change;
kubernetes#87766). A pair that does not load (key written, certificate not yet) leaves the
previous one in use, as that controller does.

Started by the kubelet's part of the stand-ins (kubeadm after writing the manifest, crictl
after stopping the container) in the node's network namespace.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.harness.standins import common
from tests.harness.standins.common import State, alive

MANIFEST = "etc/kubernetes/manifests/kube-apiserver.yaml"


class _Pair:
    """The serving context, rebuilt when either file changes."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = cert, key
        self.stamp: tuple[float, float] | None = None
        self.context: ssl.SSLContext | None = None
        self.lock = threading.Lock()

    def current(self) -> ssl.SSLContext | None:
        with self.lock:
            try:
                stamp = (self.cert.stat().st_mtime, self.key.stat().st_mtime)
            except FileNotFoundError:
                return self.context
            if stamp != self.stamp:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                try:
                    ctx.load_cert_chain(self.cert, self.key)
                except (ssl.SSLError, OSError):
                    return self.context
                self.stamp, self.context = stamp, ctx
            return self.context


def _answer(conn: socket.socket, pair: _Pair) -> None:
    with conn:
        ctx = pair.current()
        if ctx is None:
            return
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(5)
                request = tls.recv(4096).decode(errors="replace")
                if not request:
                    return
                path = request.split(" ", 2)[1] if " " in request else "/"
                ok = path.split("?")[0] in ("/readyz", "/livez", "/healthz")
                body = b"ok" if ok else b'{"kind":"Status","code":404}'
                status = b"200 OK" if ok else b"404 Not Found"
                tls.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        except (ssl.SSLError, OSError):
            pass


def serve(address: str, port: int, cert: Path, key: Path) -> None:
    pair = _Pair(cert, key)
    with socket.create_server((address, port), reuse_port=False) as server:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=_answer, args=(conn, pair), daemon=True).start()


def running(st: State, name: str) -> bool:
    return alive(st["apiserver"].get(name))


def start(name: str) -> None:
    """The kubelet starting the static pod: needs the manifest and an active kubelet."""
    st = common.load()
    root = common.root_of(st, name)
    if running(st, name) or not (root / MANIFEST).exists() or not common.kubelet_active(st, name):
        return
    pki = root / "etc/kubernetes/pki"
    log = open(common.state_dir() / f"apiserver-{name}.log", "a")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen([sys.executable, "-m", "tests.harness.standins.apiserver",
                             common.address_of(st, name), "6443", str(pki / "apiserver.crt"),
                             str(pki / "apiserver.key")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    with common.mutate() as live:
        live["apiserver"][name] = proc.pid
    deadline = time.monotonic() + 10  # kubeadm's wait-control-plane, or the kubelet's start
    while time.monotonic() < deadline and alive(proc.pid):
        try:
            socket.create_connection((common.address_of(st, name), 6443), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)


def stop(name: str) -> None:
    with common.mutate() as st:
        pid = st["apiserver"].pop(name, None)
    if alive(pid):
        os.kill(int(pid), signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
