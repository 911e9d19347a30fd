"""Run the host scripts for real under bash, on fake nodes, with recording stand-ins on PATH.

One `ScriptHost` is one private world, started with `unshare --mount --net --pid --fork
--kill-child`: a tmpfs-backed overlay over /etc and /var/lib (so /etc/kubernetes,
/var/lib/kubelet and /var/lib/etcd can exist without touching this machine's), and one network
namespace per node, each with the node's address on `eth0`, routed through the world's own
namespace. A script runs on a node as Pulumi runs it (`bash -s` with the script on stdin; delete
scripts as `bash -c`), in that node's network namespace with the node's on-disk directories
bind-mounted at /etc/kubernetes, /var/lib/kubelet and /var/lib/etcd, and with PATH holding the
stand-ins first (tests/harness/standins). etcd is real: one member per control-plane node,
in its namespace, so 127.0.0.1:2379 on a node is its own member. The host's etcdctl is hidden
unless `host_etcdctl` (kubeadm nodes do not ship one), so scripts must go through
`crictl exec` into the etcd image, which the stand-in runs in a chroot holding only what that
image holds.

Every process started belongs to the world's PID namespace and dies with it, when the session
closes or when a step overruns its timeout.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kube_ha.model import Cluster, Host

ROOT = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).parent / "standins"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DRIVER = r"""
set -u
exec 3>&1 1>>"$T/driver.log" 2>&1
die() { echo "driver: $*"; echo "FAILED $*" >&3; exit 1; }
ip link set lo up || die lo
mount -t tmpfs tmpfs /run || die /run
mount -t tmpfs tmpfs "$T/ns" || die ns
mkdir -p "$T/ns/etc/up" "$T/ns/etc/work" "$T/ns/var/up" "$T/ns/var/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$T/ns/etc/up,workdir=$T/ns/etc/work" /etc \
  || die /etc
mount -t overlay overlay \
  -o "lowerdir=/var/lib,upperdir=$T/ns/var/up,workdir=$T/ns/var/work" /var/lib || die /var/lib
mkdir -p /etc/kubernetes /etc/haproxy /var/lib/kubelet /var/lib/etcd || die dirs
# A pod network, when the world has one, leaves its CNI config here (as Calico or Cilium do).
if [ "$POD_NETWORK" = 1 ]; then
  mkdir -p /etc/cni/net.d && echo '{}' > /etc/cni/net.d/10-pod-network.conflist || die cni
fi
# The endpoint's name resolves on every node, as the README asks of the user's DNS.
cat "$T/etc-hosts" >> /etc/hosts || die hosts
I=$T/image/etcd
mount --bind "$ETCD_BIN" "$I/usr/local/bin/etcd" || die image
mount --bind "$ETCDCTL_BIN" "$I/usr/local/bin/etcdctl" || die image
mount --bind "$BASH_BIN" "$I/bin/sh" || die image
# Only for this machine's dynamically linked bash and etcdctl; needs a merged /usr.
[ -L /lib ] || die "needs a merged /usr (/lib -> usr/lib)"
mount --bind /usr/lib "$I/usr/lib" || die image
if [ -d /usr/lib64 ]; then mount --bind /usr/lib64 "$I/usr/lib64" || die image; fi
if [ "$HIDE_ETCDCTL" = 1 ]; then
  # A whiteout in an overlay of /usr: gone, not merely unexecutable (bash's `command -v`
  # still reports a file it cannot execute). Never outside the overlay.
  case "$ETCDCTL_BIN" in /usr/*) ;; *) die "etcdctl outside /usr: $ETCDCTL_BIN" ;; esac
  mkdir -p "$T/ns/usr/up" "$T/ns/usr/work"
  mount -t overlay overlay -o "lowerdir=/usr,upperdir=$T/ns/usr/up,workdir=$T/ns/usr/work" /usr \
    || die /usr
  rm "$ETCDCTL_BIN" || die hide
  if PATH=$NODE_PATH command -v etcdctl; then die "another etcdctl on PATH"; fi
fi
echo 1 > /proc/sys/net/ipv4/ip_forward || die forward
n=0
while read -r name addr; do
  ip netns add "$name" || die "netns $name"
  ip link add "vh$n" type veth peer name eth0 netns "$name" || die "veth $name"
  { ip addr add 169.254.77.1/32 dev "vh$n" && ip link set "vh$n" up \
    && ip route add "$addr/32" dev "vh$n"; } || die "hub side $name"
  { ip -n "$name" link set lo up && ip -n "$name" link set eth0 up \
    && ip -n "$name" addr add "$addr/32" dev eth0 \
    && ip -n "$name" route add 169.254.77.1/32 dev eth0 \
    && ip -n "$name" route add default via 169.254.77.1; } || die "node side $name"
  n=$((n + 1))
done < "$T/hosts"
echo READY >&3
while read -r kind dir; do
  if [ "$kind" = NODE ]; then
    ip netns exec "$(cat "$dir/node")" bash "$dir/run.sh" 2>"$dir/setup.err"
  else
    bash "$dir/run.sh" 2>"$dir/setup.err"
  fi
  echo "$?" > "$dir/rc"
  echo DONE >&3
done
"""


@dataclass(frozen=True)
class Call:
    """One stand-in call, as it recorded itself."""

    seq: int
    tool: str
    argv: tuple[str, ...]
    verb: str
    rc: int
    node: str
    step: int
    stdin: str | None
    config: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return " ".join((self.tool, *self.argv))


@dataclass(frozen=True)
class StepResult:
    node: str
    rc: int
    stdout: str
    stderr: str
    calls: tuple[Call, ...]
    seconds: float = 0.0

    @property
    def lines(self) -> list[str]:
        return [c.line for c in self.calls]

    def of(self, verb: str) -> list[Call]:
        return [c for c in self.calls if c.verb == verb]

    def explain(self) -> str:
        calls = "\n  ".join(f"[{c.rc}] {c.line}" for c in self.calls)
        return f"rc={self.rc} after {self.seconds:.1f} s\ncalls:\n  {calls}\nstderr:\n{self.stderr}"


class ScriptHost:
    """A private world of fake nodes for one test; use as a context manager."""

    def __init__(self, workdir: Path, cluster: Cluster, *, host_etcdctl: bool = False,
                 real_etcd: bool = True, cni: bool = True, wait_cap: float = 2.0) -> None:
        self.t = workdir
        self.cluster = cluster
        self.host_etcdctl, self.real_etcd, self.cni = host_etcdctl, real_etcd, cni
        self.wait_cap = wait_cap
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._step = 0
        self.tools = {t: _which(t) for t in ("etcd", "etcdctl", "kubectl")}

    # --- the world ---------------------------------------------------------------------

    def __enter__(self) -> ScriptHost:
        self._layout()
        env = {"T": str(self.t), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
               "ETCD_BIN": self.tools["etcd"], "ETCDCTL_BIN": self.tools["etcdctl"],
               "BASH_BIN": _which("bash"), "NODE_PATH": SYSTEM_PATH,
               "HIDE_ETCDCTL": "0" if self.host_etcdctl else "1",
               "POD_NETWORK": "1" if self.cni else "0"}
        self._proc = subprocess.Popen(
            ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
             "--propagation", "private", "bash", "-c", DRIVER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._expect("READY", 30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()  # --kill-child takes the whole PID namespace with it
            proc.wait()

    def _layout(self) -> None:
        for d in ("state", "ns", "steps", "seed", "pybin"):
            (self.t / d).mkdir(parents=True, exist_ok=True)
        (self.t / "pybin/python3").symlink_to(sys.executable)
        image = self.t / "image/etcd"
        for d in ("usr/local/bin", "usr/lib", "usr/lib64", "bin", "tmp", "etc/kubernetes/pki/etcd"):
            (image / d).mkdir(parents=True, exist_ok=True)
        for f in ("usr/local/bin/etcd", "usr/local/bin/etcdctl", "bin/sh"):
            (image / f).touch()
        (image / "lib").symlink_to("usr/lib")
        (image / "lib64").symlink_to("usr/lib64")
        hosts = {}
        for h in self.cluster.nodes:
            root = self.t / "nodes" / h.name
            for d in ("etc/kubernetes", "etc/haproxy", "var/lib/kubelet", "var/lib/etcd"):
                (root / d).mkdir(parents=True, exist_ok=True)
            hosts[h.name] = {"address": str(h.address), "root": str(root)}
        (self.t / "hosts").write_text("".join(f"{n} {h['address']}\n" for n, h in hosts.items()))
        # The user's DNS maps the endpoint's name, except where the program keeps that line in
        # /etc/hosts itself (endpoint.type service, endpoint.manageHostsEntry).
        ep = self.cluster.endpoint
        theirs = ep.dns_name and not (ep.service or ep.manage_hosts_entry)
        (self.t / "etc-hosts").write_text(f"{ep.address} {ep.dns_name}\n" if theirs else "")
        endpoints = sorted({ep.host_port, f"{ep.address}:{ep.port}",
                            *(f"{lb.address}:{ep.port}" for lb in self.cluster.load_balancers)})
        state = {"hosts": hosts, "endpoints": endpoints, "cni": self.cni,
                 "version": self.cluster.kubernetes_version, "installed": {},
                 "real_etcd": self.real_etcd, "configmaps": {}, "daemonsets": {}, "nodes": {},
                 "tokens": {}, "kubelet": {}, "containers": {}, "etcd": {}, "apiserver": {}}
        (self.t / "state/cluster.json").write_text(json.dumps(state, indent=1))
        (self.t / "calls.jsonl").touch()

    def _send(self, line: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(line.encode() + b"\n")
        self._proc.stdin.flush()

    def _expect(self, word: str, timeout: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd, deadline = self._proc.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self._proc.kill()
                raise TimeoutError(f"no {word} within {timeout} s\n{self._log_tail()}")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"driver ended before {word}\n{self._log_tail()}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        if line.decode() != word:
            raise RuntimeError(f"driver said {line.decode()!r}, not {word}\n{self._log_tail()}")

    def _log_tail(self) -> str:
        log = self.t / "driver.log"
        return log.read_text()[-3000:] if log.exists() else ""

    # --- running scripts -----------------------------------------------------------------

    def env(self, node: str, step: int, fail: Iterable[str]) -> dict[str, str]:
        path = [str(STANDINS / "bin"), *([str(STANDINS / "hostbin")] if self.host_etcdctl else []),
                str(self.t / "pybin"), SYSTEM_PATH]
        return {"PATH": ":".join(path), "HOME": "/root", "LANG": "C.UTF-8",
                "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
                "KUBE_HA_STATE": str(self.t / "state"), "KUBE_HA_CALLS": str(self.t / "calls.jsonl"),
                "KUBE_HA_NODE": node, "KUBE_HA_STEP": str(step), "KUBE_HA_FAIL": ",".join(fail),
                "KUBE_HA_REAL_KUBECTL": self.tools["kubectl"], "KUBE_HA_ETCD": self.tools["etcd"],
                "KUBE_HA_ETCDCTL": str(self.t / "image/etcd/usr/local/bin/etcdctl"),
                "KUBE_HA_ETCD_IMAGE": str(self.t / "image/etcd"),
                "KUBE_HA_WAIT_CAP": str(self.wait_cap)}

    def run(self, node: str, script: str, *, delete: bool = False, fail: Iterable[str] = (),
            timeout: float = 90) -> StepResult:
        """Run `script` on `node` as Pulumi would: create/update steps get it on stdin
        (`bash -s`), delete steps as an argument (`bash -c`, no stdin)."""
        root = self.t / "nodes" / node
        binds = "".join(f"mount --bind {shlex.quote(str(root / d))} /{d}\n"
                        for d in ("etc/kubernetes", "etc/haproxy", "var/lib/kubelet",
                                  "var/lib/etcd"))
        return self._step_run("NODE", node, script, binds, delete, fail, timeout)

    def hub(self, script: str, timeout: float = 60) -> StepResult:
        """A harness command inside the world, outside every node (e.g. to stop an etcd)."""
        return self._step_run("HUB", "", script, "", True, (), timeout)

    def _step_run(self, kind: str, node: str, script: str, binds: str, delete: bool,
                  fail: Iterable[str], timeout: float) -> StepResult:
        self._step += 1
        d = self.t / "steps" / str(self._step)
        d.mkdir()
        (d / "script.sh").write_text(script)
        (d / "node").write_text(node)
        env = " ".join(shlex.quote(f"{k}={v}") for k, v in self.env(node, self._step, fail).items())
        q = {k: shlex.quote(str(d / k)) for k in ("script.sh", "stdout", "stderr")}
        bash = (f'/bin/bash -c "$(cat {q["script.sh"]})" </dev/null' if delete
                else f"/bin/bash -s <{q['script.sh']}")
        (d / "run.sh").write_text(f"set -e\n{binds}cd /\n"
                                  f"exec /usr/bin/env -i {env} {bash} >{q['stdout']} 2>{q['stderr']}\n")
        started = time.monotonic()
        self._send(f"{kind} {d}")
        self._expect("DONE", timeout)
        setup = (d / "setup.err").read_text()
        if setup.strip():
            raise RuntimeError(f"step {self._step} setup failed: {setup}")
        return StepResult(node, int((d / "rc").read_text()), (d / "stdout").read_text(),
                          (d / "stderr").read_text(), tuple(self.calls(self._step)),
                          round(time.monotonic() - started, 2))

    def calls(self, step: int | None = None) -> list[Call]:
        out = []
        for line in (self.t / "calls.jsonl").read_text().splitlines():
            c = json.loads(line)
            if step is None or c["step"] == step:
                out.append(Call(c["seq"], c["tool"], tuple(c["argv"]), c["verb"], c["rc"],
                                c["node"], c["step"], c["stdin"], c["config"], c["extra"]))
        return sorted(out, key=lambda c: c.seq)

    # --- looking at the world ------------------------------------------------------------

    def file(self, node: str, path: str) -> Path:
        """Where `node`'s absolute `path` (under /etc/kubernetes, /var/lib/...) lives on disk."""
        return self.t / "nodes" / node / path.lstrip("/")

    def state(self) -> dict[str, Any]:
        return json.loads((self.t / "state/cluster.json").read_text())  # type: ignore[no-any-return]

    def install(self, node: str, **tools: str) -> None:
        """What `node` has installed: a version per tool ("v1.30.4"), "absent", or for
        "runtime" "down" (see standins/common.installed)."""
        path = self.t / "state/cluster.json"
        st = json.loads(path.read_text())
        st.setdefault("installed", {}).setdefault(node, {}).update(tools)
        path.write_text(json.dumps(st, indent=1))

    def metrics_api(self, answer: str | None, served_by: str | None = None) -> None:
        """The aggregated metrics API: "available" (metrics-server installed and serving),
        "unavailable" (its APIService registered, its backend down) or None (not installed);
        `served_by`: the APIService names another Service ("monitoring/prometheus-adapter")."""
        path = self.t / "state/cluster.json"
        st = json.loads(path.read_text())
        st["metricsApi"] = answer
        st["apiServices"] = {"v1beta1.metrics.k8s.io": served_by} if served_by else {}
        path.write_text(json.dumps(st, indent=1))

    def configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.state()["configmaps"].get(f"{namespace}/{name}")  # type: ignore[no-any-return]

    def server(self, node: str, kubeconfig: str) -> str:
        """The server a kubeconfig on `node` dials."""
        doc = yaml.safe_load(self.file(node, kubeconfig).read_text())
        return str(doc["clusters"][0]["cluster"]["server"])

    def etcd_members(self, via: str) -> list[str]:
        """Names in the real etcd's member list, asked through `via`'s member."""
        pki = self.file(via, "/etc/kubernetes/pki/etcd")
        addr = next(str(h.address) for h in self.cluster.nodes if h.name == via)
        res = self.hub(f"ETCDCTL_API=3 \"$KUBE_HA_ETCDCTL\" --endpoints=https://{addr}:2379 "
                       f"--cacert={pki}/ca.crt --cert={pki}/healthcheck-client.crt "
                       f"--key={pki}/healthcheck-client.key --dial-timeout=2s member list")
        if res.rc != 0:
            raise RuntimeError(res.stderr)
        return sorted(line.split(", ")[2] for line in res.stdout.splitlines() if line)

    def stop_kubelet(self, node: str) -> None:
        """`node`'s kubelet is gone (the host died): the node lifecycle controller marks its
        Node NotReady (Unknown, after the grace period), and its pods can no longer be
        confirmed terminated."""
        res = self.hub("python3 -c 'from tests.harness.standins import common\n"
                       "with common.mutate() as st:\n"
                       f'    st["nodes"]["{node}"].update(ready=False, kubelet_down=True)\'')
        if res.rc != 0:
            raise RuntimeError(res.stderr)

    def stop_etcd(self, node: str) -> None:
        """The member on `node` goes down (its process ends), as when the node fails."""
        res = self.hub("python3 -c 'from tests.harness.standins import etcd; "
                       f'etcd.stop("{node}")\'')
        if res.rc != 0:
            raise RuntimeError(res.stderr)


def _which(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"{tool} not found: .ci/run installs it")
    return os.path.realpath(found)


# --- a cluster as its user built it with kubeadm, before kube-ha ---------------------------

def seed_cluster(host: ScriptHost, *, control_plane: list[Host], workers: Iterable[Host] = (),
                 endpoint: str | None = None, kube_proxy: bool = True,
                 cert_sans: Iterable[str] = (),
                 extra_args: dict[str, dict[str, str]] | None = None) -> None:
    """`kubeadm init` on the first node (controlPlaneEndpoint `endpoint`, none by default;
    apiServer.certSANs `cert_sans`; `extra_args` per component section, e.g. {"apiServer":
    {"audit-log-path": "/var/log/audit.log"}}), then `kubeadm join` for the others, all
    through the stand-ins: the files, API objects and etcd members are those kubeadm leaves.
    Each step must succeed."""
    first, *others = control_plane
    c = host.cluster
    init = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
            "localAPIEndpoint": {"advertiseAddress": str(first.address),
                                 "bindPort": c.apiserver_port},
            "nodeRegistration": {"name": first.name}}
    cc: dict[str, Any] = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                          "kubernetesVersion": c.kubernetes_version,
                          "networking": {"serviceSubnet": str(c.networking.service_subnet),
                                         "podSubnet": str(c.networking.pod_subnet),
                                         "dnsDomain": c.networking.cluster_domain}}
    if endpoint:
        cc["controlPlaneEndpoint"] = endpoint
    if cert_sans:
        cc["apiServer"] = {"certSANs": list(cert_sans)}
    for section, args in (extra_args or {}).items():  # v1beta4: a list of name/value
        cc.setdefault(section, {})["extraArgs"] = [{"name": k, "value": v}
                                                   for k, v in args.items()]
    path = host.t / "seed" / f"init-{first.name}.yaml"
    path.write_text(yaml.safe_dump_all([init, cc]))
    skip = "" if kube_proxy else " --skip-phases=addon/kube-proxy"
    _must(host.run(first.name, f"kubeadm init --config={path} --skip-token-print{skip}\n"))
    for node in others:
        _seed_join(host, first, node, control_plane=True)
    for node in workers:
        _seed_join(host, first, node, control_plane=False)


def _seed_join(host: ScriptHost, via: Host, node: Host, control_plane: bool) -> None:
    creds = _must(host.run(via.name, "set -e\ntoken=$(kubeadm token create)\n"
                           "key=$(kubeadm certs certificate-key)\n"
                           'kubeadm init phase upload-certs --upload-certs --certificate-key="$key"'
                           " >/dev/null\n"
                           "hash=$(openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | "
                           "openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)\n"
                           'echo "$token $key $hash"\n')).stdout.split()
    port = host.cluster.apiserver_port
    cc = yaml.safe_load(host.state()["configmaps"]["kube-system/kubeadm-config"]
                        ["ClusterConfiguration"])
    join: dict[str, Any] = {
        "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {
            "apiServerEndpoint": cc.get("controlPlaneEndpoint") or f"{via.address}:{port}",
            "token": creds[0], "caCertHashes": [f"sha256:{creds[2]}"]}},
        "nodeRegistration": {"name": node.name}}
    if control_plane:
        join["controlPlane"] = {"certificateKey": creds[1], "localAPIEndpoint": {
            "advertiseAddress": str(node.address), "bindPort": port}}
    path = host.t / "seed" / f"join-{node.name}.yaml"
    path.write_text(yaml.safe_dump(join))
    _must(host.run(node.name, f"kubeadm join --config={path}\n"))


def _must(res: StepResult) -> StepResult:
    if res.rc != 0:
        raise RuntimeError(f"seeding step on {res.node} failed:\n{res.explain()}")
    return res
