"""Plumbing shared by the stand-ins: the fake cluster's state, the call log, injected failures.

The harness sets, for every script it runs:
  KUBE_HA_STATE   directory of the fake cluster: cluster.json (API objects, tokens, node
                  registrations, kubelet and container state, per-node roots and addresses)
  KUBE_HA_CALLS   JSON-lines file, one line per stand-in call: argv, the stdin it read, the
                  --config file it read, its exit code, the node and step it ran in
  KUBE_HA_NODE    the host the script runs on;  KUBE_HA_STEP  the harness's step number
  KUBE_HA_FAIL    comma-separated verbs that fail ("kubectl drain") or phases of them
                  ("kubeadm init:upload-config"), to see where a script stops
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CALLS, STATE, NODE, STEP, FAIL = ("KUBE_HA_CALLS", "KUBE_HA_STATE", "KUBE_HA_NODE",
                                  "KUBE_HA_STEP", "KUBE_HA_FAIL")
REAL_KUBECTL, ETCD, ETCDCTL = "KUBE_HA_REAL_KUBECTL", "KUBE_HA_ETCD", "KUBE_HA_ETCDCTL"
IMAGE, WAIT_CAP = "KUBE_HA_ETCD_IMAGE", "KUBE_HA_WAIT_CAP"

K8S = Path("/etc/kubernetes")  # the node's own, bind-mounted from its root for each step
UNSUPPORTED_RC = 70

State = dict[str, Any]


class UnsupportedError(Exception):
    """A verb or flag our scripts do not use: the stand-in refuses rather than guess."""


class ToolError(Exception):
    """The tool's own error: `message` goes to stderr, the tool exits with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise UnsupportedError(f"{name} is not set: run this under tests/harness/script_host.py")
    return value


def node() -> str:
    return env(NODE)


def state_dir() -> Path:
    return Path(env(STATE))


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    with open(state_dir() / name, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load() -> State:
    with _locked("lock"):
        return json.loads((state_dir() / "cluster.json").read_text())  # type: ignore[no-any-return]


@contextlib.contextmanager
def mutate() -> Iterator[State]:
    """Read-modify-write of the cluster, under a lock (a pipe runs two kubectls at once)."""
    path = state_dir() / "cluster.json"
    with _locked("lock"):
        st = json.loads(path.read_text())
        yield st
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(st, indent=1, sort_keys=True))
        tmp.replace(path)


def _next_seq() -> int:
    path = state_dir() / "seq"
    with _locked("seq.lock"):
        n = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(n))
        return n


@dataclass
class Invocation:
    """One call of a stand-in: what it was asked, what it read, which verb it turned out to be."""

    tool: str
    argv: list[str]
    verb: str = ""
    stdin: str | None = None
    config: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def set_verb(self, verb: str, reads_stdin: bool = False) -> None:
        """Name the call ("kubectl drain"); fails it when the test asked for that. A tool that
        reads stdin has read it before anything can fail (else its writer dies of SIGPIPE)."""
        self.verb = verb
        if verb in _injected():
            if reads_stdin:
                self.read_stdin()
            raise ToolError(f"{verb}: injected failure (KUBE_HA_FAIL)")

    def phase(self, name: str) -> None:
        """Start of one phase of a multi-phase command (kubeadm's workflow phases)."""
        if f"{self.verb}:{name}" in _injected():
            raise ToolError(f"error execution phase {name}: injected failure (KUBE_HA_FAIL)")

    def read_stdin(self) -> str:
        """Only for tools that really read stdin: the script itself may be arriving on it."""
        self.stdin = sys.stdin.read()
        return self.stdin

    def read_config(self, path: str) -> str:
        try:
            self.config = Path(path).read_text()
        except FileNotFoundError as err:
            raise ToolError(f"unable to read config from {path!r} : open {path}: no such file or "
                            "directory") from err
        return self.config


def _injected() -> set[str]:
    return {v.strip() for v in os.environ.get(FAIL, "").split(",") if v.strip()}


def run(tool: str, argv: list[str], dispatch: Callable[[Invocation], int]) -> int:
    """Run one stand-in call and append it to the call log, whatever the outcome."""
    inv = Invocation(tool, argv)
    seq, started = _next_seq(), time.time()
    try:
        rc = dispatch(inv)
    except UnsupportedError as err:
        print(f"{tool} stand-in: unsupported: {' '.join(argv)}: {err}", file=sys.stderr)
        rc = UNSUPPORTED_RC
    except ToolError as err:
        if err.message:
            print(err.message, file=sys.stderr)
        rc = err.code
    sys.stdout.flush()
    entry = {"seq": seq, "tool": tool, "argv": argv, "verb": inv.verb, "rc": rc,
             "node": os.environ.get(NODE, ""), "step": int(os.environ.get(STEP, "0")),
             "stdin": inv.stdin, "config": inv.config, "extra": inv.extra,
             "seconds": round(time.time() - started, 3)}
    with _locked("calls.lock"), open(env(CALLS), "a") as fh:
        fh.write(json.dumps(entry) + "\n")
    return rc


def parse_flags(args: list[str], known: dict[str, bool]) -> tuple[list[str], dict[str, str]]:
    """pflag-style parsing: `--flag=v`, `--flag v`, `-n v`; booleans take no value.
    Unknown flags are refused, so a script using one we do not model fails loudly."""
    positional: list[str] = []
    flags: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-" or not arg.startswith("-"):
            positional.append(arg)
        else:
            name, eq, value = arg.partition("=")
            if name not in known:
                raise UnsupportedError(f"flag {name}")
            if known[name] and not eq:
                i += 1
                if i == len(args):
                    raise ToolError(f"error: flag needs an argument: {name}")
                value = args[i]
            if known[name]:
                flags[name.lstrip("-")] = value
            elif value.lower() not in ("false", "0"):  # `--wait=false` turns a boolean off
                flags[name.lstrip("-")] = "true"
        i += 1
    return positional, flags


# --- the nodes ---------------------------------------------------------------------------

def root_of(st: State, name: str) -> Path:
    """On-disk root of a node: what its /etc/kubernetes, /var/lib/kubelet, /var/lib/etcd are."""
    return Path(st["hosts"][name]["root"])


def address_of(st: State, name: str) -> str:
    return str(st["hosts"][name]["address"])


def kubelet_active(st: State, name: str) -> bool:
    return bool(st["kubelet"].get(name, {}).get("active"))


def alive(pid: int | None) -> bool:
    """Running, not a zombie waiting for the namespace's init to reap it."""
    if pid is None:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def apiserver_up(st: State, name: str) -> bool:
    """A node serves the API while its kube-apiserver static pod's process runs
    (apiserver.py), which the kubelet starts from the manifest."""
    return alive(st["apiserver"].get(name))


def dial(st: State, server: str) -> str | None:
    """Who answers at `server` (https://host:port): None when an apiserver does, else why not
    ("refused" or "no such host"). The endpoint is the load balancer: up while any node is."""
    host_port = server.removeprefix("https://").rstrip("/")
    host, _, _port = host_port.rpartition(":")
    host = host.strip("[]")
    if host_port in st["endpoints"]:
        return None if any(apiserver_up(st, n) for n in st["hosts"]) else "refused"
    if host in ("127.0.0.1", "localhost", "::1"):
        return None if apiserver_up(st, node()) else "refused"
    for name, h in st["hosts"].items():
        if host in (h["address"], name):
            return None if apiserver_up(st, name) else "refused"
    return "no such host"


# --- files kubeadm writes -----------------------------------------------------------------

def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig(server: str, ca_pem: str, user: str, cert_pem: str, key_pem: str,
               cluster: str = "kubernetes") -> str:
    """A kubeconfig as kubeadm writes it (clientcmd.Write: keys in alphabetical order)."""
    context = f"{user}@{cluster}"
    return yaml.safe_dump({
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": b64(ca_pem), "server": server},
                      "name": cluster}],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": context}],
        "current-context": context, "kind": "Config", "preferences": {},
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem),
                                          "client-key-data": b64(key_pem)}}],
    })


def current_cluster(text: str) -> dict[str, Any]:
    """The cluster entry of a kubeconfig's current context (or its only cluster)."""
    doc = yaml.safe_load(text) or {}
    clusters = {c["name"]: c["cluster"] for c in doc.get("clusters") or []}
    ctx = {c["name"]: c["context"] for c in doc.get("contexts") or []}
    name = ctx.get(doc.get("current-context", ""), {}).get("cluster")
    if name is None and len(clusters) == 1:
        name = next(iter(clusters))
    if name not in clusters:
        raise ToolError("error: invalid configuration: no configuration has been provided")
    return clusters[name]  # type: ignore[no-any-return]


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def installed(tool: str) -> str:
    """The version of `tool` on this node ("installed" in the state, by node then tool; the
    cluster's version when unset). A tool marked "absent" is not on this node: as bash, exit
    127 ("command not found")."""
    st = load()
    version = st.get("installed", {}).get(node(), {}).get(tool, st.get("version", "v1.32.3"))
    if version == "absent":
        raise ToolError(f"bash: {tool}: command not found", code=127)
    return str(version)


def static_pod(name: str, command: list[str], image: str = "") -> str:
    """A static pod manifest: the kubelet runs one container named like the component
    (kubeadm's names: etcd, kube-apiserver, kube-controller-manager, kube-scheduler)."""
    container: dict[str, Any] = {"name": name, "command": command}
    if image:
        container["image"] = image
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system",
                     "labels": {"component": name, "tier": "control-plane"}},
        "spec": {"hostNetwork": True, "containers": [container]},
    })
