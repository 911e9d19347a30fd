"""Broken stacks, one distinct mistake each: refused before anything is registered, the key
named, the fix given, as `pulumi up` prints it (a pulumi.RunError: the CLI shows the message
and no traceback).

Each case runs the real program under the engine mocks with the dev stack plus one mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from tests.harness.hosts import host
from tests.mocks import ClusterMocks
from tests.program import dev_stack, run_program

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    """`a.b[1].c` style path into the raw config."""
    def edit(raw: dict[str, Any]) -> None:
        parts = path.replace("]", "").replace("[", ".").split(".")
        node: Any = raw
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last = parts[-1]
        if value is _DROP:
            del node[int(last) if last.isdigit() else last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return edit


_DROP = object()


def _vip(address: str) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        raw["endpoint"].update(address=address, virtualIp=True)
        raw["loadBalancers"].append(host("haproxy-102", "10.21.22.102"))
    return edit


def _both(*edits: Edit) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        for e in edits:
            e(raw)
    return edit


CASES: list[tuple[str, Edit, str]] = [
    ("cluster name not DNS", _set("clusterName", "My_Cluster"), "clusterName"),
    ("cluster name too long", _set("clusterName", "a" * 64), "clusterName"),
    ("version without patch", _set("kubernetesVersion", "1.32"), "kubernetesVersion"),
    ("version with a newline", _set("kubernetesVersion", "v1.32.3\n"), "kubernetesVersion"),
    ("apiserver port 0", _set("apiserverPort", 0), "apiserverPort"),
    ("apiserver on the kubelet port", _set("apiserverPort", 10250), "apiserverPort"),
    ("apiserver port not a number", _set("apiserverPort", "6443x"), "apiserverPort"),
    ("ssh user with a space", _set("sshUser", "Root User"), "sshUser"),
    ("ssh port too high", _set("sshPort", 70000), "sshPort"),
    ("no ssh key", _set("sshPrivateKey", _DROP), "sshPrivateKey"),
    ("service subnet with host bits", _set("serviceSubnet", "10.96.0.1/12"), "serviceSubnet"),
    ("pod subnet overlaps services", _set("podSubnet", "10.96.0.0/16"), "podSubnet"),
    ("cluster domain with _", _set("clusterDomain", "cluster_local"), "clusterDomain"),
    ("boolean given as maybe", _set("allowEvenControlPlane", "maybe"), "allowEvenControlPlane"),
    ("node-local as yes", _set("nodeLocalProxy", "yes"), "nodeLocalProxy"),
    ("registry in capitals", _set("imageRepository", "Registry.K8s.io"), "imageRepository"),
    ("digest for an image we do not deploy",
     _set("imageDigests.etcd", "sha256:" + "0" * 64), "imageDigests.etcd"),
    ("digest without its algorithm", _set("imageDigests.kube-apiserver", "0" * 64),
     "imageDigests.kube-apiserver"),
    ("digest cut short", _set("imageDigests.kube-scheduler", "sha256:" + "a" * 63),
     "imageDigests.kube-scheduler"),
    ("digest with a tag pasted in",
     _set("imageDigests.kube-controller-manager", "v1.32.3@sha256:" + "a" * 64),
     "imageDigests.kube-controller-manager"),
    ("misspelt top-level key", _set("clusterNmae", "x"), "clusterNmae"),
    ("host-key opt-out not a boolean", _set("insecureSkipHostKeyCheck", "sure"),
     "insecureSkipHostKeyCheck"),
    ("no endpoint", _set("endpoint", _DROP), "endpoint"),
    ("endpoint address not an IP", _set("endpoint.address", "10.21.22.300"), "endpoint.address"),
    ("endpoint on a node", _set("endpoint.address", "10.21.22.70"), "endpoint.address"),
    ("endpoint port 0", _set("endpoint.port", 0), "endpoint.port"),
    ("endpoint DNS name in capitals", _set("endpoint.dnsName", "API.example"), "endpoint.dnsName"),
    ("endpoint as a list", _set("endpoint", ["10.21.22.101"]), "endpoint"),
    ("endpoint field misspelt", _set("endpoint.adress", "1.2.3.4"), "endpoint.adress"),
    ("endpoint YAML broken", _set("endpoint", "{address: [}"), "endpoint"),
    ("no control plane", _set("controlPlane", []), "controlPlane"),
    ("even control plane", lambda r: r["controlPlane"].pop(), "controlPlane"),
    ("two bootstrap nodes", _set("controlPlane[1].bootstrap", True), "controlPlane"),
    ("null control-plane entry", _set("controlPlane[1]", None), "controlPlane[1]"),
    ("node name not DNS", _set("controlPlane[0].name", "Ubuntu_73"), "controlPlane[0].name"),
    ("node address 0.0.0.0", _set("controlPlane[1].address", "0.0.0.0"), "controlPlane[1].address"),
    ("node address with zone id", _set("controlPlane[2].address", "fe80::72%eth0"),
     "controlPlane[2].address"),
    ("node port not a number", _set("controlPlane[0].port", "22a"), "controlPlane[0].port"),
    ("node user with a space", _set("controlPlane[0].user", "a b"), "controlPlane[0].user"),
    ("bootstrap as yes", _set("controlPlane[0].bootstrap", "yes"), "controlPlane[0].bootstrap"),
    ("no host key", _set("controlPlane[0].hostKey", _DROP), "controlPlane[0].hostKey"),
    ("host key garbage", _set("controlPlane[0].hostKey", "ssh-ed25519 zzz"),
     "controlPlane[0].hostKey"),
    ("control plane as a mapping", _set("controlPlane", {"name": "x"}), "controlPlane"),
    ("worker named like a control-plane node", _set("workers[0].name", "ubuntu-73"),
     "workers[0].name"),
    ("worker on a node's address", _set("workers[1].address", "10.21.22.70"),
     "workers[1].address"),
    ("worker marked bootstrap", _set("workers[0].bootstrap", True), "workers[0].bootstrap"),
    ("worker on a multicast address", _set("workers[0].address", "224.0.0.1"),
     "workers[0].address"),
    ("workers YAML broken", _set("workers", "[- name"), "workers"),
    ("no load balancer", _set("loadBalancers", []), "loadBalancers"),
    ("LB on a control-plane node, same port",
     lambda r: r["loadBalancers"].append(host("cp-lb", "10.21.22.73")) or r.update(
         endpoint={**r["endpoint"], "address": "10.21.22.100", "virtualIp": True}),
     "loadBalancers[1].address"),
    ("LB on a control-plane node, endpoint on etcd's port",
     lambda r: r["loadBalancers"].append(host("cp-lb", "10.21.22.73")) or r.update(
         endpoint={"address": "10.21.22.100", "port": 2379, "virtualIp": True}),
     "loadBalancers[1].address"),
    ("LB on a worker that runs a node-local proxy",
     lambda r: r["loadBalancers"].append(host("w-lb", "10.21.22.74")) or r.update(
         endpoint={"address": "10.21.22.100", "port": 8443, "virtualIp": True},
         nodeLocalProxy=True),
     "loadBalancers[1].address"),
    ("endpoint address 0.0.0.0", _set("endpoint.address", "0.0.0.0"), "endpoint.address"),
    ("two LBs with the same name",
     _both(_vip("10.21.22.100"), _set("loadBalancers[1].name", "haproxy-101")),
     "loadBalancers[1].name"),
    ("endpoint is one of two LBs", lambda r: r["loadBalancers"].append(
        host("haproxy-102", "10.21.22.102")), "endpoint.address"),
    ("VIP of the other address family", _vip("fd00::100"), "endpoint.address"),
    ("loopback VIP", _vip("127.0.0.5"), "endpoint.address"),
    ("an endpoint no LB owns, not declared a VIP (a typo must not claim an IP)",
     _set("endpoint.address", "10.21.22.110"), "endpoint.address"),
    ("a VIP that is an LB's own address", _set("endpoint.virtualIp", True),
     "endpoint.virtualIp"),
    ("a VIP without load balancers",
     _both(_set("loadBalancers", _DROP), _set("endpoint.virtualIp", True)), "endpoint.virtualIp"),
    ("virtualIp not a boolean", _both(_vip("10.21.22.100"), _set("endpoint.virtualIp", "maybe")),
     "endpoint.virtualIp"),
    ("check timeout not below interval", _set("healthCheck.timeoutMs", 900), "healthCheck.timeoutMs"),
    ("check interval 10 ms", _set("healthCheck.interMs", 10), "healthCheck.interMs"),
    ("fall 0", _set("healthCheck.fall", 0), "healthCheck.fall"),
    ("check interval an hour", _set("healthCheck.interMs", 3_600_000), "healthCheck.interMs"),
    ("health field misspelt", _set("healthCheck.intervalMs", 800), "healthCheck.intervalMs"),
    ("stats bind without address", _set("loadBalancer.statsBind", "8404"),
     "loadBalancer.statsBind"),
    ("stats on the endpoint port", _set("loadBalancer.statsBind", "127.0.0.1:6443"),
     "loadBalancer.statsBind"),
    ("bind address with a VIP", _both(_vip("10.21.22.100"),
                                      _set("loadBalancer.bindAddress", "10.21.22.100")),
     "loadBalancer.bindAddress"),
    ("router id 256", _set("loadBalancer.virtualRouterId", 256), "loadBalancer.virtualRouterId"),
    ("interface with a command", _set("loadBalancer.vrrpInterface", "eth0; reboot"),
     "loadBalancer.vrrpInterface"),
    ("maxConn 10", _set("loadBalancer.maxConn", 10), "loadBalancer.maxConn"),
    ("50 retries", _set("loadBalancer.retries", 50), "loadBalancer.retries"),
    ("CA source unknown", _set("certificates.caSource", "vault"), "certificates.caSource"),
    ("extra SAN not a name", _set("certificates.extraSans", ["not a name!"]),
     "certificates.extraSans[0]"),
    ("validity one hour", _set("certificates.validityHours", 1), "certificates.validityHours"),
    ("validity a century", _set("certificates.validityHours", 876_000),
     "certificates.validityHours"),
    ("rotation negative", _set("certificates.rotation", -1), "certificates.rotation"),
    ("pool node unknown", _set("elasticApiserver.poolNodes", ["nope", "ubuntu-75"]),
     "elasticApiserver.poolNodes[0]"),
    ("max replicas over the pool", _set("elasticApiserver.maxReplicas", 3),
     "elasticApiserver.maxReplicas"),
    ("min over max", _set("elasticApiserver.minReplicas", 3), "elasticApiserver.minReplicas"),
    ("elastic on the apiserver port", _set("elasticApiserver.port", 6443),
     "elasticApiserver.port"),
    ("elastic on etcd's port", _set("elasticApiserver.port", 2379), "elasticApiserver.port"),
    ("cpu request not a quantity", _set("elasticApiserver.cpuRequest", "lots"),
     "elasticApiserver.cpuRequest"),
    ("stabilization two hours", _set("elasticApiserver.scaleDownStabilizationSeconds", 7200),
     "elasticApiserver.scaleDownStabilizationSeconds"),
    ("empty pool", _set("elasticApiserver.poolNodes", []), "elasticApiserver.poolNodes"),
    ("controller-manager on the static pod's port", _set("controllerManager.port", 10257),
     "controllerManager.port"),
    ("scheduler on the controller-manager's port",
     _set("kubeScheduler", {"replicas": 1, "port": 10357}), "kubeScheduler.port"),
    ("five controller-managers on three nodes", _set("controllerManager.replicas", 5),
     "controllerManager.replicas"),
    ("scheduler on the static pod's port", _set("kubeScheduler", {"replicas": 1, "port": 10259}),
     "kubeScheduler.port"),
    ("scheduler field misspelt", _set("kubeScheduler", {"replica": 1}), "kubeScheduler.replica"),
]


def test_the_cases_are_many_and_distinct() -> None:
    assert len(CASES) >= 60
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("edit, key", [(e, k) for _, e, k in CASES], ids=[n for n, _, _ in CASES])
def test_a_broken_stack_is_refused_naming_its_key(edit: Edit, key: str) -> None:
    raw = dev_stack()
    edit(raw)
    mocks = ClusterMocks()
    with pytest.raises(pulumi.RunError) as err:
        run_program(raw, mocks=mocks)
    message = str(err.value)
    lines = [line.strip() for line in message.splitlines()[1:]]
    named = [line for line in lines if line.startswith(f"kube-ha:{key}: ")]
    assert named, f"{key} not named in:\n{message}"
    assert all("Fix:" in line for line in named), named
    assert message.startswith("invalid stack config:")
    assert mocks.resources == [], "resources were registered before the config was refused"
