"""Every numeric rule of the stack config at its edge, and every default once.

For each bounded key: the values just inside the range are accepted and the values just outside
are refused, naming that key. Other keys may object to a value for their own reasons (a port
another component holds, a timeout above an interval): the edges are judged on the key's own
range message, and where a neighbour's rule would interfere the case moves the neighbour out of
the way (`also`). The defaults are what a stack gets for every key it leaves out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from kube_ha.config import ConfigError, parse_cluster
from kube_ha.model import Cluster
from tests.program import dev_stack

RANGE_WORDS = ("too small", "too large", "out of range")


@dataclass(frozen=True)
class Edge:
    key: str  # dotted path; `controlPlane.0.port` indexes a list
    low: int | None  # smallest accepted value (None: no lower bound under test)
    high: int | None  # largest accepted value
    also: dict[str, Any] = field(default_factory=dict)  # neighbours moved out of the way


EDGES = [
    Edge("sshPort", 1, 65535),
    Edge("apiserverPort", 1, 65535),
    Edge("endpoint.port", 1, 65535),
    Edge("controlPlane.0.port", 1, 65535),
    Edge("workers.0.port", 1, 65535),
    Edge("loadBalancers.0.port", 1, 65535),
    Edge("elasticApiserver.port", 1, 65535),
    Edge("controllerManager.port", 1, 65535),
    Edge("kubeScheduler.port", 1, 65535),
    Edge("loadBalancer.virtualRouterId", 1, 255),
    Edge("healthCheck.interMs", 100, 60_000, {"healthCheck.timeoutMs": 50}),
    Edge("healthCheck.fastInterMs", 50, 60_000),
    Edge("healthCheck.downInterMs", 100, 60_000),
    Edge("healthCheck.rise", 1, 100),
    Edge("healthCheck.fall", 1, 100),
    # Its range's top (60 000) is out of reach: it must stay below interMs, itself at most
    # 60 000 (the overlap rule, tested below).
    Edge("healthCheck.timeoutMs", 50, None),
    Edge("loadBalancer.maxConn", 100, 1_000_000),
    Edge("loadBalancer.connectTimeoutMs", 50, 60_000),
    Edge("loadBalancer.clientTimeoutSeconds", 600, 7 * 86_400),
    Edge("loadBalancer.tunnelTimeoutSeconds", 600, 7 * 86_400),
    Edge("loadBalancer.retries", 1, 10),
    Edge("certificates.rotation", 0, None),
    Edge("certificates.validityHours", 24, 87_600),
    Edge("elasticApiserver.minReplicas", 1, 1000, {"elasticApiserver.maxReplicas": 1000}),
    Edge("elasticApiserver.maxReplicas", 1, 1000, {"elasticApiserver.minReplicas": 1}),
    Edge("elasticApiserver.cpuTargetPercent", 1, 1000),
    Edge("elasticApiserver.memoryTargetPercent", 1, 1000),
    Edge("elasticApiserver.scaleDownStabilizationSeconds", 0, 3600),
    Edge("controllerManager.replicas", 0, None),
    Edge("kubeScheduler.replicas", 0, None),
]


def put(raw: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = raw
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[int(last) if last.isdigit() else last] = value


def range_problems(raw: dict[str, Any], key: str) -> list[str]:
    """The range messages `key` gets (its config key spells a list index as `[i]`)."""
    wanted = ".".join(f"[{p}]" if p.isdigit() else p for p in key.split(".")).replace(".[", "[")
    try:
        parse_cluster(raw)
    except ConfigError as err:
        return [m for k, m in err.problems if k == wanted and any(w in m for w in RANGE_WORDS)]
    return []


def edited(edge: Edge, value: int) -> dict[str, Any]:
    raw = copy.deepcopy(dev_stack())
    for path, v in edge.also.items():
        put(raw, path, v)
    put(raw, edge.key, value)
    return raw


@pytest.mark.parametrize("edge", EDGES, ids=[e.key for e in EDGES])
def test_each_bound_accepts_its_edge_and_refuses_one_past_it(edge: Edge) -> None:
    if edge.low is not None:
        assert not range_problems(edited(edge, edge.low), edge.key)
        assert range_problems(edited(edge, edge.low - 1), edge.key)
    if edge.high is not None:
        assert not range_problems(edited(edge, edge.high), edge.key)
        assert range_problems(edited(edge, edge.high + 1), edge.key)


@pytest.mark.parametrize("timeout, refused", [(799, False), (800, True), (801, True)])
def test_a_check_timeout_must_stay_below_its_interval(timeout: int, refused: bool) -> None:
    """haproxy starts the next check at the interval: a timeout as long would let checks
    overlap (the dev stack's interMs is 800)."""
    raw = dev_stack()
    raw["healthCheck"]["timeoutMs"] = timeout
    try:
        parse_cluster(raw)
    except ConfigError as err:
        assert refused and "healthCheck.timeoutMs" in err.keys, err
    else:
        assert not refused


def minimal_stack() -> dict[str, Any]:
    """Only what has no default: the key, the endpoint's address, and the hosts."""
    full = dev_stack()
    return {"sshPrivateKey": full["sshPrivateKey"],
            "endpoint": {"address": full["endpoint"]["address"]},
            **{k: full[k] for k in ("loadBalancers", "controlPlane", "workers")}}


def test_every_default() -> None:
    """What a stack gets for each key it leaves out, each value stated once (Pulumi.yaml
    declares every key with the model's default: test_config keeps the two equal)."""
    c: Cluster = parse_cluster(minimal_stack())
    assert (c.name, c.kubernetes_version, c.apiserver_port) == ("kubernetes", "v1.32.3", 6443)
    assert {h.user for h in c.nodes} == {"root"} and {h.port for h in c.nodes} == {22}
    assert (str(c.networking.service_subnet), str(c.networking.pod_subnet),
            c.networking.cluster_domain) == ("10.96.0.0/12", "10.244.0.0/16", "cluster.local")
    assert (c.node_local_proxy, c.image_repository, dict(c.image_digests),
            c.insecure_skip_host_key_check) == (False, "registry.k8s.io", {}, False)
    assert (c.endpoint.port, c.endpoint.dns_name, c.endpoint.virtual_ip) == (6443, None, False)
    hc = c.health_check
    assert (hc.inter_ms, hc.fast_inter_ms, hc.down_inter_ms, hc.rise, hc.fall, hc.timeout_ms,
            hc.shutdown_sessions_on_down) == (500, 50, 1000, 2, 2, 450, False)
    lb = c.load_balancer
    assert (lb.bind_address, lb.stats_bind, lb.prometheus_metrics, lb.max_conn,
            lb.connect_timeout_ms, lb.client_timeout_s, lb.tunnel_timeout_s, lb.retries,
            lb.vrrp_interface, lb.virtual_router_id) == (
        "*", None, True, 20000, 350, 600, 3600, 3, None, 51)
    ce = c.certificates
    assert (ce.ca_source, ce.rotation, ce.extra_sans, ce.validity_hours) == (
        "import", 0, (), 8760)
    e = c.elastic_apiserver
    assert (e.enabled, e.pool_nodes, e.port, e.min_replicas, e.max_replicas,
            e.cpu_target_percent, e.memory_target_percent, e.scale_down_stabilization_s,
            e.cpu_request, e.memory_request) == (
        False, (), 7443, 1, 3, 70, None, 300, "250m", "512Mi")
    assert (c.controller_manager.replicas, c.controller_manager.port) == (0, 10357)
    assert (c.scheduler.replicas, c.scheduler.port) == (0, 10359)
    assert c.bootstrap.name == c.control_plane[0].name
