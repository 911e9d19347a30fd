"""The etcd member-removal script against a real three-member etcd cluster on loopback."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kube_ha.kubeadm.etcd import EtcdAccess, member_removal_script, membership_check_script
from kube_ha.model import Host
from tests.harness.lab import free_port, loopback_block
from tests.harness.wait import wait_until

pytestmark = pytest.mark.slow


@dataclass
class Member:
    name: str
    address: str
    client: str
    peer: str
    proc: subprocess.Popen[bytes] | None = None


class EtcdCluster:
    def __init__(self, workdir: Path, size: int):
        prefix = loopback_block()
        self.members = []
        for i in range(size):
            addr = f"{prefix}{11 + i}"
            self.members.append(Member(f"m{i + 1}", addr, f"http://{addr}:{free_port(addr)}",
                                       f"http://{addr}:{free_port(addr)}"))
        initial = ",".join(f"{m.name}={m.peer}" for m in self.members)
        for m in self.members:
            m.proc = subprocess.Popen(
                ["etcd", "--name", m.name, "--data-dir", str(workdir / m.name),
                 "--listen-client-urls", m.client, "--advertise-client-urls", m.client,
                 "--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
                 "--initial-cluster", initial, "--initial-cluster-state", "new",
                 "--initial-cluster-token", "kube-ha-test"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.access = EtcdAccess(endpoints=",".join(m.client for m in self.members),
                                 cacert=None, cert=None, key=None)
        try:
            wait_until(lambda: self.etcdctl("endpoint", "health", "--cluster").returncode == 0, 30,
                       "the etcd cluster to become healthy", interval=0.3)
        except TimeoutError:
            self.close()  # no fixture teardown runs for a cluster that never came up
            raise

    def etcdctl(self, *args: str, endpoints: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["etcdctl", f"--endpoints={endpoints or self.access.endpoints}",
                               "--dial-timeout=2s", "--command-timeout=5s", *args],
                              env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True,
                              text=True)

    def names(self) -> list[str]:
        out = self.etcdctl("member", "list").stdout
        return sorted(line.split(", ")[2] for line in out.splitlines() if line)

    def kill(self, name: str) -> None:
        m = next(m for m in self.members if m.name == name)
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait()

    def close(self) -> None:
        for m in self.members:
            if m.proc and m.proc.poll() is None:
                os.kill(m.proc.pid, signal.SIGKILL)
                m.proc.wait()


@pytest.fixture()
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path, 3)
    yield cluster
    cluster.close()


def remove(etcd: EtcdCluster, name: str) -> subprocess.CompletedProcess[str]:
    m = next(m for m in etcd.members if m.name == name)
    text = member_removal_script(name, m.address, etcd.access)
    return subprocess.run(["bash", "-s"], input=text, capture_output=True, text=True, timeout=60)


def test_removes_member_keeps_quorum_and_second_run_is_a_noop(etcd: EtcdCluster) -> None:
    first = remove(etcd, "m3")
    assert first.returncode == 0, first.stderr
    assert "removed etcd member m3" in first.stderr
    assert etcd.names() == ["m1", "m2"]
    etcd.kill("m3")  # what `kubeadm reset` on the node does next
    # The two left still have quorum: a write succeeds (after a leader election, if m3 led).
    left = ",".join(m.client for m in etcd.members[:2])
    wait_until(lambda: etcd.etcdctl("put", "k", "v", endpoints=left).returncode == 0, 15,
               "a write to m1 and m2 (their quorum) after removing m3", interval=0.5)

    second = remove(etcd, "m3")
    assert second.returncode == 0, second.stderr
    assert "nothing to remove" in second.stderr
    assert etcd.names() == ["m1", "m2"]


def test_membership_check_passes_for_members_only(etcd: EtcdCluster) -> None:
    def check(name: str) -> int:
        host = Host(name, ipaddress.ip_address("192.0.2.1"), "root", 22)
        text = membership_check_script(host, etcd.access)
        return subprocess.run(["bash", "-s"], input=text, capture_output=True, text=True,
                              timeout=60).returncode

    assert check("m2") == 0
    assert check("m9") == 1


def test_refuses_removal_that_would_break_quorum(etcd: EtcdCluster) -> None:
    etcd.kill("m2")
    result = remove(etcd, "m3")  # {m1, m2-dead} would be 1 healthy of 2
    assert result.returncode == 1
    assert "refusing to remove m3: 1 healthy members would remain, 2 of 2 needed" in result.stderr
    assert etcd.names() == ["m1", "m2", "m3"]


def test_removing_the_dead_member_is_allowed(etcd: EtcdCluster) -> None:
    etcd.kill("m2")
    result = remove(etcd, "m2")  # {m1, m3} both healthy: 2 of 2
    assert result.returncode == 0, result.stderr
    assert etcd.names() == ["m1", "m3"]


def test_refuses_to_remove_the_last_member(tmp_path: Path) -> None:
    single = EtcdCluster(tmp_path, 1)
    try:
        result = remove(single, "m1")
        assert result.returncode == 1
        assert "last etcd member" in result.stderr
        assert single.names() == ["m1"]
    finally:
        single.close()


def test_a_learner_or_unstarted_member_is_not_a_membership(tmp_path: Path) -> None:
    """kubeadm adds a joining member as a learner and promotes it later (EtcdLearnerMode, on by
    default in 1.31/1.32); until then, or while unstarted, it is no voting member. etcdctl's
    simple `member list` rows are `ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER`
    (etcd etcdctl/ctlv3/command/printer.go makeMemberListTable; printer_simple.go joins them
    with ", "): a host etcdctl printing exactly that stands in for the cluster here."""
    rows = {
        "voter": "8e9e05c52164694d, started, voter, https://10.0.0.1:2380, https://10.0.0.1:2379, false",
        "learner": "91bc3c398fb3c146, started, learner, https://10.0.0.2:2380, https://10.0.0.2:2379, true",
        "": "fd422379fda50e48, unstarted, , https://10.0.0.3:2380, , false",
    }
    fake = tmp_path / "etcdctl"
    fake.write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n".join(rows.values()) + "\nEOF\n")
    fake.chmod(0o755)

    def check(name: str) -> int:
        host = Host(name, ipaddress.ip_address("192.0.2.1"), "root", 22)
        return subprocess.run(["bash", "-s"], input=membership_check_script(host),
                              capture_output=True, text=True, timeout=30,
                              env={"PATH": f"{tmp_path}:/usr/bin:/bin"}).returncode

    assert check("voter") == 0
    assert check("learner") == 1
    assert check("fd422379fda50e48") == 1
