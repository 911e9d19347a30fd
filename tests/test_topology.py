"""SAN sets and backend lists, table-tested over topologies."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kube_ha.config import parse_cluster
from kube_ha.topology import (
    apiserver_sans,
    elastic_apiserver_sans,
    elastic_san_marker,
    kubernetes_service_ip,
    lb_backends,
)
from tests.harness.hosts import host
from tests.program import grown_stack

SERVICE_NAMES = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"]


@pytest.mark.parametrize("change, node, want_dns, want_ips, not_ips", [
    # The seed's cluster: one LB VM with a DNS name.
    ({}, "ubuntu-70", ["api.k8s.lab.internal", "ubuntu-70", *SERVICE_NAMES],
     ["10.21.22.101", "10.21.22.70", "10.96.0.1"], ["127.0.0.1", "10.21.22.73"]),
    # keepalived VIP in front of two LB hosts: the VIP and both LB addresses.
    ({"endpoint": {"address": "10.21.22.100", "virtualIp": True},
      "loadBalancers": [host("lb-a", "10.21.22.101"),
                        host("lb-b", "10.21.22.102")]},
     "ubuntu-73", ["ubuntu-73", *SERVICE_NAMES],
     ["10.21.22.100", "10.21.22.101", "10.21.22.102", "10.21.22.73"], ["127.0.0.1"]),
    # Node-local proxies (RKE style): clients dial 127.0.0.1.
    ({"nodeLocalProxy": True}, "ubuntu-72", ["localhost", *SERVICE_NAMES],
     ["127.0.0.1", "::1", "10.21.22.72"], []),
    # Another service CIDR and domain, plus extra SANs.
    ({"serviceSubnet": "172.20.0.0/16", "clusterDomain": "corp.internal",
      "certificates": {"extraSans": ["k8s.example.com", "192.0.2.10"]}},
     "ubuntu-70", ["kubernetes.default.svc.corp.internal", "k8s.example.com"],
     ["172.20.0.1", "192.0.2.10"], ["10.96.0.1"]),
    # IPv6 endpoint.
    ({"endpoint": {"address": "fd00::100", "port": 6443},
      "loadBalancers": [host("lb6", "fd00::100")]},
     "ubuntu-70", [], ["fd00::100"], []),
])
def test_san_table(raw: dict[str, Any], change: dict[str, Any], node: str, want_dns: list[str],
                   want_ips: list[str], not_ips: list[str]) -> None:
    raw = copy.deepcopy(raw)
    raw.update(change)
    c = parse_cluster(raw)
    sans = apiserver_sans(c, c.node(node))
    assert set(want_dns) <= set(sans.dns_names), sans
    assert set(want_ips) <= set(sans.ip_addresses), sans
    assert not set(not_ips) & set(sans.ip_addresses), sans
    assert len(sans.ip_addresses) == len(set(sans.ip_addresses))


@pytest.mark.parametrize(("subnet", "ip"), [("10.96.0.0/12", "10.96.0.1"), ("10.96.0.0/28", "10.96.0.1"),
                                             ("fd00:96::/108", "fd00:96::1"), ("fd00:96::/124", "fd00:96::1")])
def test_service_ip_is_the_address_at_index_one(raw: dict[str, Any], subnet: str, ip: str) -> None:
    """kube-apiserver gives the `kubernetes` Service the range's address at index 1
    (pkg/controlplane/services.go ServiceIPRange: GetIndexedIP(range, 1)); it is a SAN."""
    c = parse_cluster({**raw, "serviceSubnet": subnet})
    assert kubernetes_service_ip(c) == ip
    assert ip in apiserver_sans(c, c.control_plane[0]).ip_addresses


def test_backends_follow_membership() -> None:
    names = [b.name for b in lb_backends(parse_cluster(grown_stack())) if not b.elastic]
    assert names == ["ubuntu-73", "ubuntu-70", "ubuntu-72", "ubuntu-76", "ubuntu-77"]


def test_elastic_pool_nodes_are_backends_on_elastic_port(raw: dict[str, Any]) -> None:
    raw["elasticApiserver"] = {"enabled": True, "poolNodes": ["ubuntu-74", "ubuntu-75"],
                               "port": 7443, "maxReplicas": 2}
    backends = lb_backends(parse_cluster(raw))
    elastic = [(b.address, b.port) for b in backends if b.elastic]
    assert elastic == [("10.21.22.74", 7443), ("10.21.22.75", 7443)]


@pytest.mark.parametrize("what, edit, renamed, pool_changed", [
    ("a virtual IP", lambda r: (r["endpoint"].update(address="10.21.22.100", virtualIp=True),
                                r["loadBalancers"].append(host("lb-b", "10.21.22.102"))),
     True, False),
    ("node-local proxies", lambda r: r.update(nodeLocalProxy=True), True, False),
    ("an extra SAN", lambda r: r["certificates"].update(extraSans=["k8s.example.com"]),
     True, False),
    ("another endpoint name", lambda r: r["endpoint"].update(dnsName="api.example.com"),
     True, False),
    ("a pool node fewer", lambda r: r["elasticApiserver"].update(
        poolNodes=["ubuntu-74"], maxReplicas=1), False, True),
    ("more replicas", lambda r: r["elasticApiserver"].update(minReplicas=2), False, False),
    ("another endpoint port", lambda r: r["endpoint"].update(port=7443), False, False),
    ("a control-plane node more", lambda r: (r["controlPlane"].append(
        host("ubuntu-76", "10.21.22.76")), r.update(allowEvenControlPlane=True)), False, False),
])
def test_the_elastic_marker_stands_for_the_names_clients_dial(
        raw: dict[str, Any], what: str, edit: Any, renamed: bool, pool_changed: bool) -> None:
    """The marker every elastic server's check verifies changes with the names clients dial
    (shared_sans), and only then: any other edit would take every elastic pod out of rotation
    until a certificate it did not need rolled out. A pool change re-issues the certificate
    (it names the pool nodes) but keeps the marker: a pod on the old one still serves every
    name a client dials."""
    before = parse_cluster(raw)
    changed = copy.deepcopy(raw)
    edit(changed)
    after = parse_cluster(changed)
    assert elastic_san_marker(after) in elastic_apiserver_sans(after).dns_names
    assert (elastic_san_marker(after) != elastic_san_marker(before)) is renamed
    assert (elastic_apiserver_sans(after) != elastic_apiserver_sans(before)) is (
        renamed or pool_changed)
    checked = {b.check_name for b in lb_backends(after) if b.elastic}
    assert checked == {elastic_san_marker(after)}
    assert {b.check_name for b in lb_backends(after) if not b.elastic} == {None}
