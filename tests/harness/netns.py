"""Test hosts as network namespaces on one switch: real L2 (ARP, VRRP), nothing leaves them.

Each host is a namespace with one interface, `eth0`, on a bridge in a switch namespace, with an
address from TEST-NET-1 (192.0.2.0/24). Everything started here is ended by PID on close, and
the namespaces (with their veths) are deleted.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Segment:
    def __init__(self) -> None:
        self.tag = "kh" + secrets.token_hex(3)
        self.switch = f"{self.tag}-sw"
        self.hosts: dict[str, str] = {}
        self.procs: list[subprocess.Popen[str]] = []
        _ip("netns", "add", self.switch)
        self.namespaces = [self.switch]
        self.run(self.switch, ["ip", "link", "add", "br0", "type", "bridge"])
        self.run(self.switch, ["ip", "link", "set", "br0", "up"])

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def add_host(self, host: str, address: str) -> None:
        ns = self.ns(host)
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        n = len(self.hosts)
        inner, outer = f"{self.tag}h{n}", f"{self.tag}s{n}"
        _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        _ip("link", "set", inner, "netns", ns)
        _ip("link", "set", outer, "netns", self.switch)
        self.run(self.switch, ["ip", "link", "set", outer, "master", "br0", "up"])
        self.run(ns, ["ip", "link", "set", inner, "name", "eth0"])
        self.run(ns, ["ip", "addr", "add", f"{address}/24", "dev", "eth0"])
        self.run(ns, ["ip", "link", "set", "eth0", "up"])
        self.run(ns, ["ip", "link", "set", "lo", "up"])
        self.hosts[host] = address

    def cmd(self, host: str, argv: Sequence[str]) -> list[str]:
        ns = host if host.startswith(self.tag) else self.ns(host)
        return ["ip", "netns", "exec", ns, *argv]

    def run(self, host: str, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(host, argv), check=True, capture_output=True, text=True)

    def start(self, host: str, argv: Sequence[str], log: Path, cwd: Path | None = None
              ) -> subprocess.Popen[str]:
        with log.open("w") as out:
            proc = subprocess.Popen(self.cmd(host, argv), stdout=out, stderr=subprocess.STDOUT,
                                    text=True, cwd=cwd)
        self.procs.append(proc)
        return proc

    def addresses(self, host: str) -> str:
        return self.run(host, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"]).stdout

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def __enter__(self) -> Segment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
