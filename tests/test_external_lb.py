"""Bring your own load balancer (`endpoint.type: external`): the program configures none, tells
the user what to register (the loadBalancerBackends output), and before anything is pointed at
the endpoint checks, from the bootstrap node, that it answers /readyz with a certificate the
cluster CA verifies (the kubectl stand-in dials the endpoint as the LB would: answered while an
apiserver is up and the endpoint is registered, refused otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kube_ha.config import parse_cluster
from kube_ha.kubeadm.scripts import endpoint_check_script
from tests.harness.hosts import host
from tests.harness.script_host import ScriptHost, seed_cluster
from tests.program import external_stack, refused, run_program, value_of


def test_the_program_configures_no_lb_and_checks_the_endpoint_before_the_bootstrap() -> None:
    run = run_program(external_stack())
    steps = [r.name for r in run.mocks.by_type("command:remote:Command")]
    assert not any("-lb-" in n for n in steps), steps
    check = "kubernetes-kubeadm-endpoint-check"
    assert check in run.upstream("kubernetes-kubeadm-ubuntu-73-control-plane")
    assert {f"kubernetes-kubeadm-ubuntu-{n}-serving-certificate" for n in (70, 72, 73)} <= \
        run.upstream(check)
    assert "--server=https://api.k8s.lab.internal:6443" in run.inputs(check)["stdin"]
    backends = value_of(run.scope["ha"].backends)
    assert [(b["name"], b["address"], b["port"]) for b in backends] == [
        ("ubuntu-73", "10.21.22.73", 6443), ("ubuntu-70", "10.21.22.70", 6443),
        ("ubuntu-72", "10.21.22.72", 6443), ("elastic-ubuntu-74", "10.21.22.74", 7443),
        ("elastic-ubuntu-75", "10.21.22.75", 7443)]
    assert backends[0]["serverName"] == "api.k8s.lab.internal"
    assert backends[3]["serverName"].endswith(".kube-ha.invalid")


@pytest.mark.parametrize("edit, key, words", [
    (lambda r: r.setdefault("loadBalancers", []).append(host("haproxy-101", "10.21.22.101")),
     "loadBalancers",
     "endpoint.type is external"),
    (lambda r: r["endpoint"].update(type="f5"), "endpoint.type", "not one of"),
    (lambda r: r["endpoint"].update(virtualIp=True), "endpoint.virtualIp", "endpoint.type is"),
    (lambda r: r["endpoint"].update(type="loadBalancer"), "loadBalancers",
     "endpoint.type: external"),
])
def test_a_contradicting_topology_is_refused_naming_the_key(edit, key, words) -> None:  # type: ignore[no-untyped-def]
    refused(external_stack(), edit, key, words)


def test_the_endpoint_check_passes_only_when_the_endpoint_answers(tmp_path: Path) -> None:
    cluster = parse_cluster(external_stack())
    boot = cluster.bootstrap
    quick = endpoint_check_script(cluster, attempts=1)
    with ScriptHost(tmp_path, cluster, real_etcd=False) as h:
        fresh = h.run(boot.name, quick)  # nothing initialised yet
        seed_cluster(h, control_plane=[boot], endpoint=cluster.endpoint.host_port)
        answered = h.run(boot.name, quick)
        # The user has not registered the backends: nothing answers at the endpoint.
        cleared = h.hub("python3 -c 'from tests.harness.standins import common\n"
                        "with common.mutate() as st:\n    st[\"endpoints\"].clear()'")
        assert cleared.rc == 0, cleared.explain()
        unregistered = h.run(boot.name, quick)
    assert fresh.rc == 0 and "no cluster here yet" in fresh.stderr, fresh.explain()
    assert answered.rc == 0 and "answers /readyz" in answered.stderr, answered.explain()
    assert unregistered.rc == 1
    assert ("endpoint.address: https://api.k8s.lab.internal:6443 does not answer /readyz"
            in unregistered.stderr)
    assert "register every control-plane node on port 6443" in unregistered.stderr
