"""Real etcd members for the fake nodes, run the way kubeadm's etcd static pod runs them.

The kubeadm stand-in starts one per control-plane node it initialises or joins (the kubelet
would, from the manifest kubeadm writes), inside that node's network namespace, so the
node's 127.0.0.1:2379 is its own member, exactly as on a kubeadm host. Flags follow kubeadm's
getEtcdCommand (kubernetes/kubernetes cmd/kubeadm/app/phases/etcd/local.go): client URLs on
127.0.0.1 and the node address, peer URL on the node address, client and peer certificate
auth against /etc/kubernetes/pki/etcd/ca.crt.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.harness.standins import common
from tests.harness.standins.common import State, ToolError


def pki_dir(root: Path) -> Path:
    return root / "etc/kubernetes/pki/etcd"


def etcdctl(args: list[str], endpoints: str, pki: Path, timeout: float = 20
            ) -> subprocess.CompletedProcess[str]:
    """The real etcdctl, with the healthcheck-client pair kubeadm issues to every member."""
    argv = [common.env(common.ETCDCTL), f"--endpoints={endpoints}", f"--cacert={pki / 'ca.crt'}",
            f"--cert={pki / 'healthcheck-client.crt'}", f"--key={pki / 'healthcheck-client.key'}",
            "--dial-timeout=2s", "--command-timeout=5s", *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "ETCDCTL_API": "3"}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", "etcdctl timed out")


def member_argv(name: str, address: str, root: Path, initial_cluster: str, new: bool) -> list[str]:
    pki = pki_dir(root)
    return [
        common.env(common.ETCD), f"--name={name}", f"--data-dir={root / 'var/lib/etcd'}",
        f"--listen-client-urls=https://127.0.0.1:2379,https://{address}:2379",
        f"--advertise-client-urls=https://{address}:2379",
        f"--listen-peer-urls=https://{address}:2380",
        f"--initial-advertise-peer-urls=https://{address}:2380",
        f"--initial-cluster={initial_cluster}",
        f"--initial-cluster-state={'new' if new else 'existing'}",
        f"--cert-file={pki / 'server.crt'}", f"--key-file={pki / 'server.key'}",
        f"--trusted-ca-file={pki / 'ca.crt'}", "--client-cert-auth=true",
        f"--peer-cert-file={pki / 'peer.crt'}", f"--peer-key-file={pki / 'peer.key'}",
        f"--peer-trusted-ca-file={pki / 'ca.crt'}", "--peer-client-cert-auth=true",
        "--snapshot-count=10000",
    ]


def running(st: State, name: str) -> bool:
    return common.alive(st["etcd"].get(name))


def start(st: State, name: str, initial_cluster: str, new: bool) -> None:
    """Start `name`'s member in the current (the node's) network namespace; wait until it
    answers on 127.0.0.1 (learners do not serve reads, so only a TCP-level check there)."""
    root, address = common.root_of(st, name), common.address_of(st, name)
    log = open(common.state_dir() / f"etcd-{name}.log", "a")  # noqa: SIM115 - the member keeps it
    proc = subprocess.Popen(member_argv(name, address, root, initial_cluster, new),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    with common.mutate() as live:
        live["etcd"][name] = proc.pid


def wait_healthy(root: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        res = etcdctl(["endpoint", "health"], "https://127.0.0.1:2379", pki_dir(root), timeout=8)
        if res.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise ToolError(f"[etcd] local etcd member did not become healthy: {res.stderr.strip()}")
        time.sleep(0.2)


def add_learner_and_promote(st: State, name: str, peers: str) -> None:
    """kubeadm's control-plane-join etcd phase with EtcdLearnerMode (beta, on by default in
    1.31/1.32: cmd/kubeadm/app/features/features.go): add as learner, start, promote once
    in sync (cmd/kubeadm/app/util/etcd/etcd.go AddMemberAsLearner / MemberPromote)."""
    root, address = common.root_of(st, name), common.address_of(st, name)
    deadline = time.monotonic() + 30
    # kubeadm retries the add with a backoff (etcd.go addMember): etcd refuses it with
    # "unhealthy cluster" until every member has been connected for a few seconds.
    while (add := etcdctl(["member", "add", name, "--learner",
                           f"--peer-urls=https://{address}:2380"], peers, pki_dir(root))
           ).returncode != 0:
        if time.monotonic() > deadline:
            raise ToolError(f"error execution phase control-plane-join/etcd: {add.stderr.strip()}")
        time.sleep(0.5)
    found = re.search(r'ETCD_INITIAL_CLUSTER="([^"]*)"', add.stdout)
    member_id = re.search(r"Member +([0-9a-f]+) added", add.stdout)  # %16x: may pad
    if not found or not member_id:
        raise ToolError(f"unexpected etcdctl member add output: {add.stdout!r}")
    start(st, name, found.group(1), new=False)
    deadline = time.monotonic() + 30
    while (res := etcdctl(["member", "promote", member_id.group(1)], peers, pki_dir(root))
           ).returncode != 0:
        if time.monotonic() > deadline:
            raise ToolError(f"error execution phase control-plane-join/etcd: {res.stderr.strip()}")
        time.sleep(0.3)
    wait_healthy(root)


def stop(name: str) -> None:
    """What the kubelet does when the manifest goes, or `kubeadm reset` removing containers."""
    with common.mutate() as st:
        pid = st["etcd"].pop(name, None)
    if common.alive(pid):
        os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while common.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if common.alive(pid):
            os.kill(int(pid), signal.SIGKILL)
