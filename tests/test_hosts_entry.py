"""The endpoint's name kept in /etc/hosts (`endpoint.manageHostsEntry`, kube_ha.hosts_entry):
the function run for real on a hosts file; every node step that dials the name writes it
first; the preflight names a line of someone else's that maps the name elsewhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kube_ha.config import ConfigError, parse_cluster
from kube_ha.hosts_entry import HOSTS_ENTRY_FN
from kube_ha.preflight import preflight_script, targets
from kube_ha.shell import script
from tests.harness.script_host import ScriptHost
from tests.mocks import plain
from tests.program import dev_stack, run_program

BEFORE = """127.0.0.1 localhost
# a comment
10.0.0.9 other.example
10.0.0.7 api2.k8s # kube-ha
10.0.0.8 apixk8s # kube-ha
"""


def _entry(hosts: Path, *calls: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script("t", HOSTS_ENTRY_FN, *calls)],
                          env={"KUBE_HA_HOSTS_FILE": str(hosts), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30)


def test_one_line_of_ours_maps_the_name_and_nothing_else_changes(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(BEFORE)
    first = _entry(hosts, "hosts_entry api.k8s 10.0.0.5")
    again = _entry(hosts, "hosts_entry api.k8s 10.0.0.5")
    assert first.returncode == 0 and again.returncode == 0, first.stderr
    assert hosts.read_text() == BEFORE + "10.0.0.5 api.k8s # kube-ha\n"
    assert "api.k8s -> 10.0.0.5" in first.stderr and again.stderr == ""  # a no-op
    moved = _entry(hosts, "hosts_entry api.k8s 10.0.0.6")  # the endpoint moved
    assert moved.returncode == 0
    assert hosts.read_text() == BEFORE + "10.0.0.6 api.k8s # kube-ha\n"


def stack(**endpoint: object) -> dict[str, object]:
    raw = dev_stack()
    raw["endpoint"] = {**raw["endpoint"], **endpoint}
    return raw


def test_every_step_that_dials_the_name_writes_it_first_and_kube_proxy_waits() -> None:
    run = run_program(stack(manageHostsEntry=True))
    call = "hosts_entry api.k8s.lab.internal 10.21.22.101"
    for step in ("ubuntu-73-control-plane", "ubuntu-70-control-plane", "ubuntu-74-join"):
        text = plain(run.inputs(f"kubernetes-kubeadm-{step}")["stdin"])
        assert call in text and text.index(call) < text.index("kubeadm "), step
    assert {"kubernetes-kubeadm-ubuntu-74-join", "kubernetes-kubeadm-ubuntu-75-join"} <= \
        run.upstream("kubernetes-kubeadm-kube-proxy")
    without = run_program(dev_stack())
    assert "hosts_entry" not in plain(without.inputs("kubernetes-kubeadm-ubuntu-74-join")["stdin"])


def test_it_needs_a_name() -> None:
    raw = stack(manageHostsEntry=True)
    del raw["endpoint"]["dnsName"]  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as err:
        parse_cluster(raw)
    assert err.value.keys == ["endpoint.manageHostsEntry"], str(err.value)


def test_the_preflight_names_a_line_of_someone_elses_mapping_the_name_elsewhere(
        tmp_path: Path) -> None:
    cluster = parse_cluster(stack(manageHostsEntry=True))
    t = next(t for t in targets(cluster) if t.host.name == "ubuntu-70")
    with ScriptHost(tmp_path, cluster, real_etcd=False) as h:
        ours = h.run(t.host.name, preflight_script(cluster, t))  # no line for the name yet
        h.hub("echo '10.9.9.9 api.k8s.lab.internal' >> /etc/hosts\n")
        theirs = h.run(t.host.name, preflight_script(cluster, t))
    assert ours.rc == 0, ours.explain()
    assert theirs.rc == 1
    assert ("controlPlane[1] (ubuntu-70): endpoint.manageHostsEntry: /etc/hosts here maps"
            " api.k8s.lab.internal to 10.9.9.9 in a line kube-ha does not keep: remove that line"
            " (the program writes its own)") in theirs.stderr
