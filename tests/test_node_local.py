"""Node-local proxies (RKE style): haproxy on every worker's 127.0.0.1, checked gently, kept
in step with the membership list, and failing over through redispatch."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from kube_ha.config import parse_cluster
from kube_ha.kubeadm import scripts as ks
from kube_ha.loadbalancer.haproxy import NODE_LOCAL_HEALTH, node_local_frontend, render_haproxy_cfg
from kube_ha.topology import apiserver_sans
from tests.harness import pki
from tests.harness.lab import Lab, haproxy_paths_under, node_local
from tests.mocks import plain
from tests.program import changed_between, dev_stack, grown_stack, run_program


@pytest.fixture()
def local_raw() -> dict[str, Any]:
    raw = dev_stack()
    raw["nodeLocalProxy"] = True
    return raw


def test_node_local_cfg_is_valid_and_gentle(local_raw: dict[str, Any], tmp_path: Path) -> None:
    cluster = parse_cluster(local_raw)
    frontend = node_local_frontend(cluster)
    ca = pki.make_ca()
    paths = haproxy_paths_under(tmp_path, ca, pki.issue(ca, "kube-ha:lb-health-check", client=True),
                                frontend.health)
    cfg = render_haproxy_cfg(cluster, paths, frontend)
    (tmp_path / "local.cfg").write_text(cfg)
    check = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "local.cfg")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "    bind 127.0.0.1:6443\n" in cfg
    assert f"inter {NODE_LOCAL_HEALTH.inter_ms}ms" in cfg and "option redispatch 1" in cfg
    assert "observe layer4" in cfg and "frontend stats" not in cfg
    for node in cluster.control_plane:
        assert f"server {node.name} {node.address}:6443" in cfg
        assert "127.0.0.1" in apiserver_sans(cluster, node).ip_addresses


def test_workers_get_a_local_proxy_before_they_join(local_raw: dict[str, Any]) -> None:
    """One step per worker (plus its credentials): the proxy is installed and answering before
    the join and before kubelet is pointed at it; kube-proxy's shared kubeconfig is switched to
    127.0.0.1 only after every worker's step (issue 11, item 13)."""
    run = run_program(local_raw)
    names = {r.name for r in run.mocks.resources}
    assert not {n for n in names if "local-proxy" in n}
    deps = {run.monitor.by_urn(u).name
            for u in run.reg("kubernetes-kubeadm-ubuntu-74-join").dependencies}
    # Its credentials, and what its proxy config is made of (the CA read, the client cert).
    assert deps == {"kubernetes-kubeadm-ubuntu-74-join-credentials", "kubernetes-pki-read-ca",
                    "kubernetes-pki-lb-health-check-cert", "kubernetes-pki-lb-health-check-key"}
    join = plain(run.inputs("kubernetes-kubeadm-ubuntu-74-join"))
    assert join["connection"]["host"] == "10.21.22.74"
    text = join["stdin"]
    repoint = ks.repoint_kubeconfig("/etc/kubernetes/kubelet.conf", "https://127.0.0.1:6443")
    assert text.index("bind 127.0.0.1:6443") < text.index("does not answer on 127.0.0.1:6443") \
        < text.index("kubeadm join") < text.index(repoint)
    assert "keepalived" not in text
    boot = plain(run.inputs("kubernetes-kubeadm-ubuntu-73-control-plane"))["stdin"]
    kube_proxy = plain(run.inputs("kubernetes-kubeadm-kube-proxy"))["stdin"]
    assert "configmap kube-proxy" not in boot
    assert ks.has_line("server: https://127.0.0.1:6443", "") in kube_proxy
    kp_deps = {run.monitor.by_urn(u).name for u in run.reg("kubernetes-kubeadm-kube-proxy").dependencies}
    assert {"kubernetes-kubeadm-ubuntu-74-join", "kubernetes-kubeadm-ubuntu-75-join"} <= kp_deps


def test_control_plane_change_rewrites_every_local_proxy_and_nothing_else(
        local_raw: dict[str, Any]) -> None:
    before = run_program(local_raw)
    after = run_program({**grown_stack(), "nodeLocalProxy": True})
    changed = changed_between(before, after)
    for w in ("ubuntu-74", "ubuntu-75"):
        step = f"kubernetes-kubeadm-{w}-join"
        # The worker's one step carries its proxy config: rewritten in place, never stale
        # (kubespray #12102); its join part is skipped on a joined node.
        assert "server ubuntu-77 10.21.22.77:6443" in plain(after.inputs(step))["stdin"]
        assert "ubuntu-77" not in plain(before.inputs(step))["stdin"]
        assert before.inputs(f"{step}-credentials") and f"{step}-credentials" not in changed


def test_switching_node_local_proxies_off_rewrites_steps_in_place(local_raw: dict[str, Any]
                                                                  ) -> None:
    """`nodeLocalProxy: false` on a running stack deletes no remote step (a delete resets a
    node): each worker's step is rewritten to point its kubelet at the endpoint and then take
    its proxy away (run for real in test_script_runs), and kube-proxy's step moves before the
    workers' so its kubeconfig stops naming 127.0.0.1 first."""
    on = run_program(local_raw)
    off = run_program({**local_raw, "nodeLocalProxy": False})
    commands = {r.name for r in on.mocks.resources if r.typ == "command:remote:Command"}
    assert commands <= {r.name for r in off.mocks.resources}
    changed = changed_between(on, off)
    assert {"kubernetes-kubeadm-ubuntu-74-join", "kubernetes-kubeadm-ubuntu-75-join",
            "kubernetes-kubeadm-kube-proxy"} <= changed
    for w in ("ubuntu-74", "ubuntu-75"):
        assert "kubernetes-kubeadm-kube-proxy" in off.upstream(f"kubernetes-kubeadm-{w}-join")
    script = ks.worker_join_script(parse_cluster({**local_raw, "nodeLocalProxy": False}),
                                   parse_cluster(local_raw).workers[0], {"token": "t",
                                                                          "caCertHash": "h"})
    assert script.index("systemctl restart kubelet") < script.index("systemctl disable --now")


def test_worker_script_points_kubelet_at_the_local_proxy(local_raw: dict[str, Any]) -> None:
    cluster = parse_cluster(local_raw)
    text = ks.worker_join_script(cluster, cluster.workers[0], {
        "token": "t", "caCertHash": "sha256:00", "certificateKey": ""})
    assert ks.repoint_kubeconfig("/etc/kubernetes/kubelet.conf", "https://127.0.0.1:6443") in text


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["crash", "drain"])
def test_gentle_checks_still_fail_no_request(tmp_path: Path, fault: str) -> None:
    with Lab(tmp_path, renderer=node_local, drain_seconds=2) as lab:
        lab.start()
        lab.wait_states({s.name: "UP" for s in lab.servers}, 10)
        action = {"crash": lambda: lab.crash("cp-2"), "drain": lambda: lab.drain("cp-2")}[fault]
        report = lab.load(9, 40, action, fault_after=2)
    assert report.failed_after_fault == [], report.summary()
    assert len(report.failed) <= (1 if fault == "crash" else 0), report.summary()
