"""The in-cluster `apiserver` Service topology (`endpoint.type: service`,
kube_ha.endpoint_switch): the Service, the config rules, the program's wiring, and the /etc/hosts
switcher run for real against fake apiservers (TLS, the cluster CA) on loopback addresses,
the hosts file redirected to a test file."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kube_ha.config import parse_cluster
from kube_ha.endpoint_switch import MIRROR_LABELS, apiserver_service, retire_lines, switch_program
from kube_ha.kubeadm.scripts import retire_script
from kube_ha.shell import script
from tests.harness import pki
from tests.harness.lab import ROOT, free_port
from tests.harness.standins.common import static_pod
from tests.harness.wait import wait_until
from tests.mocks import plain
from tests.program import refused, run_program, service_stack

NAME = "apiserver.kube-system.svc.cluster.local"
CP1, CP2, CLUSTER_IP = "127.0.0.11", "127.0.0.12", "127.0.0.50"

# crictl as the switcher calls it (cri-tools cmd/crictl/container.go): `ps -q` prints only the
# matching containers' IDs, one a line; `stop <id>` prints the stopped container's ID.
CRICTL = """#!/bin/sh
echo "$*" >> "$CRICTL_CALLS"
case "$1" in
  ps) echo 3f2a9c1b0d4e ;;
  stop) echo "$2" ;;
  *) echo "crictl stand-in: unsupported $*" >&2; exit 2 ;;
esac
"""


class Apiservers:
    """Fake apiservers (tests/harness/fake_apiserver.py) started and stopped by address."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ca = pki.make_ca()
        (tmp / "ca.crt").write_text(self.ca.cert_pem)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, address: str, port: int) -> None:
        crt, key = pki.issue(self.ca, address, dns=[NAME], ips=[address]).write(self.tmp, address)
        self.procs[address] = subprocess.Popen(
            [sys.executable, "-m", "tests.harness.fake_apiserver", "--bind", address, "--port",
             str(port), "--cert", str(crt), "--key", str(key), "--name", address], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _open(address, port), 10, f"{address}:{port}")

    def stop(self, address: str) -> None:
        proc = self.procs.pop(address)
        proc.terminate()
        proc.wait(timeout=10)


def _open(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Apiservers, Path, int, int]]:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "crictl").write_text(CRICTL)
    (tmp_path / "bin" / "crictl").chmod(0o755)
    servers = Apiservers(tmp_path)
    try:
        yield servers, tmp_path, free_port("127.0.0.1"), free_port("127.0.0.1")
    finally:
        for address in list(servers.procs):
            servers.stop(address)


def test_the_switcher_follows_what_answers(world: tuple[Apiservers, Path, int, int]) -> None:
    """First control-plane node dead, the second alive: its address. The ClusterIP answers:
    the ClusterIP, and kube-proxy restarted. It vanishes: back. Nothing answers: kept. No
    entry and nothing answering (a new cluster): the first node listed."""
    servers, tmp, api_port, svc_port = world
    hosts = tmp / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    program = tmp / "switch"
    program.write_text(switch_program(NAME, CLUSTER_IP, svc_port, [CP1, CP2], api_port))
    env = {"PATH": f"{tmp / 'bin'}:/usr/bin:/bin", "KUBE_HA_HOSTS_FILE": str(hosts),
           "KUBE_HA_CA": str(tmp / "ca.crt"), "CRICTL_CALLS": str(tmp / "crictl.calls")}

    def switch() -> str:
        ran = subprocess.run(["bash", str(program)], env=env, capture_output=True, text=True,
                             timeout=60)
        assert ran.returncode == 0, ran.stderr
        mapped = [line.split()[0] for line in hosts.read_text().splitlines() if NAME in line]
        assert len(mapped) == 1, hosts.read_text()
        return mapped[0]

    def restarts() -> int:
        calls = tmp / "crictl.calls"
        return calls.read_text().count("stop 3f2a9c1b0d4e") if calls.exists() else 0

    servers.start(CP2, api_port)
    assert switch() == CP2 and restarts() == 1
    assert switch() == CP2 and restarts() == 1  # unchanged: nothing restarted
    servers.start(CLUSTER_IP, svc_port)
    assert switch() == CLUSTER_IP and restarts() == 2
    servers.stop(CLUSTER_IP)
    assert switch() == CP2 and restarts() == 3
    servers.stop(CP2)
    assert switch() == CP2 and restarts() == 3  # nothing answers: kept
    hosts.write_text("127.0.0.1 localhost\n")
    assert switch() == CP1  # no entry yet, nothing answers
    assert hosts.read_text().startswith("127.0.0.1 localhost\n")


def test_the_service_validates_and_selects_kubeadms_mirror_pods() -> None:
    cluster = parse_cluster(service_stack())
    svc = apiserver_service(cluster)
    kubernetes_validate.validate(svc, "1.32", strict=True)
    assert svc["spec"]["clusterIP"] == "10.96.0.50"
    assert svc["spec"]["ports"] == [{"name": "https", "protocol": "TCP", "port": 6443,
                                     "targetPort": 6443}]
    # What the kubeadm stand-in's static pods carry (kubeadm's ComponentPod labels).
    mirror = yaml.safe_load(static_pod("kube-apiserver", ["kube-apiserver"]))
    assert svc["spec"]["selector"] == MIRROR_LABELS == {
        k: v for k, v in mirror["metadata"]["labels"].items() if k in MIRROR_LABELS}


@pytest.mark.parametrize("edit, key, words", [
    (lambda r: r["endpoint"].update(address="10.112.0.5"), "endpoint.address", "outside"),
    (lambda r: r["endpoint"].update(address="10.96.0.1"), "endpoint.address",
     "the kubernetes Service's ClusterIP"),
    (lambda r: r["endpoint"].update(address="10.96.0.10"), "endpoint.address", "cluster DNS"),
    (lambda r: r["endpoint"].pop("dnsName"), "endpoint.dnsName", "needed"),
    (lambda r: r.update(loadBalancers=[{"name": "lb", "address": "10.21.22.101",
                                        "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"
                                        "ZzbLYwvlDMBBVb/WYnk+Mx8ljBHgY5Ew29XT0BCJvDWb"}]),
     "loadBalancers", "endpoint.type is service"),
    (lambda r: r["elasticApiserver"].update(enabled=True), "elasticApiserver.enabled",
     "cannot select the elastic pods"),
])
def test_a_service_endpoint_that_cannot_work_is_refused(edit, key, words) -> None:  # type: ignore[no-untyped-def]
    refused(service_stack(), edit, key, words)


def test_the_program_wires_the_service_topology() -> None:
    """No LB step; every node step installs and runs the switcher before kubeadm; kube-proxy
    is re-pointed after every node's step; the Service is created; the provider dials the
    bootstrap node (a ClusterIP answers only inside), the in-cluster kubeconfigs the
    ClusterIP."""
    run = run_program(service_stack())
    steps = [r.name for r in run.mocks.by_type("command:remote:Command")]
    assert not any("-lb-" in n for n in steps), steps
    for step in ("ubuntu-73-control-plane", "ubuntu-70-control-plane", "ubuntu-74-join"):
        text = plain(run.inputs(f"kubernetes-kubeadm-{step}")["stdin"])
        assert "/usr/local/sbin/kube-ha-endpoint-switch" in text
        assert text.index("kube-ha-endpoint-switch") < text.index("kubeadm "), step
    assert "kubernetes-kubeadm-ubuntu-75-join" in run.upstream("kubernetes-kubeadm-kube-proxy")
    svc = plain(run.inputs("kubernetes-apiserver-service"))
    assert svc["spec"]["clusterIP"] == "10.96.0.50"
    access = run.scope["ha"].access
    assert (access.url, access.in_cluster_url) == ("https://10.21.22.73:6443",
                                                   "https://10.96.0.50:6443")


def test_a_retired_node_keeps_no_line_of_ours(tmp_path: Path) -> None:
    """kubeadm reset knows nothing of the switcher or its /etc/hosts line: the retire step
    removes them (here: the line; no switcher is installed on this machine)."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n10.96.0.50 {NAME} # kube-ha\n10.0.0.9 other\n")
    ran = subprocess.run(["bash", "-c", script("t", retire_lines())], capture_output=True,
                         text=True, timeout=30, env={"KUBE_HA_HOSTS_FILE": str(hosts),
                                                     "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr
    assert hosts.read_text() == "127.0.0.1 localhost\n10.0.0.9 other\n"
    assert retire_lines() in retire_script()


def test_an_ipv6_control_plane_address_is_bracketed_for_curl(tmp_path: Path) -> None:
    """curl(1): `--resolve <host:port:addr>`, an IPv6 addr written in brackets. A curl that
    records its argv and answers nothing: every address is probed in curl's form."""
    (tmp_path / "curl").write_text('#!/bin/sh\necho "$@" >> "$CURL_CALLS"\nexit 7\n')
    (tmp_path / "curl").chmod(0o755)
    hosts = tmp_path / "hosts"
    hosts.write_text("")
    program = switch_program(NAME, "fd00::50", 6443, ["fd00::11", "10.0.0.12"], 6443)
    ran = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin", "KUBE_HA_HOSTS_FILE": str(hosts),
                              "KUBE_HA_CA": str(tmp_path / "none"),
                              "CURL_CALLS": str(tmp_path / "calls")})
    assert ran.returncode == 0, ran.stderr
    resolved = [c.split("--resolve ")[1].split(" ")[0]
                for c in (tmp_path / "calls").read_text().splitlines()]
    assert resolved == [f"{NAME}:6443:[fd00::50]", f"{NAME}:6443:[fd00::11]",
                        f"{NAME}:6443:10.0.0.12"]
    assert hosts.read_text() == f"fd00::11 {NAME} # kube-ha\n"  # nothing answered: the first
