"""The offline render's topology picture (kube_ha.diagram): laid out by Graphviz's real `dot`
into SVG, from the same membership list as the configs, for each topology the program
builds; and the coverage each hop's label states."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from kube_ha.config import parse_cluster
from kube_ha.diagram import missing, served_certificates, topology_svg
from kube_ha.topology import SanSet, lb_backends
from tests.program import (
    dev_stack,
    external_stack,
    segment_colocated_stack,
    service_stack,
    vip_stack,
)

SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


STACKS: dict[str, Any] = {
    "dev": dev_stack,
    "vip": vip_stack,
    "node-local": lambda: {**dev_stack(), "nodeLocalProxy": True},
    "control-plane LBs": segment_colocated_stack,
    "external": external_stack,
    "service": service_stack,
}


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_each_topology_is_drawn_with_every_backend_and_hop(stack: str) -> None:
    cluster = parse_cluster(STACKS[stack]())
    shown = texts(topology_svg(cluster))
    ep = cluster.endpoint
    assert f"endpoint {ep.host_port}" in shown
    for b in lb_backends(cluster):
        assert b.name in shown and f"{b.address}:{b.port}" in shown, b
    dials = [t for t in shown if t.startswith("dial ")]
    assert f"dial {', '.join([*([ep.dns_name] if ep.dns_name else []), str(ep.address)])}" in dials
    assert shown.count("every served certificate names them") == len(dials)
    if cluster.uses_vip:
        assert f"VIP {ep.address}:{ep.port}" in shown
    if ep.external:
        assert f"{ep.address}:{ep.port}, TCP passthrough" in shown
    if ep.service:
        assert f"ClusterIP {ep.address}:{ep.port}" in shown
    if cluster.node_local_proxy:
        assert "dial 127.0.0.1" in dials and f"127.0.0.1:{cluster.apiserver_port}" in shown
    else:
        assert "dial 127.0.0.1" not in dials


def test_a_name_a_certificate_lacks_is_shown_on_its_hop() -> None:
    """IPs compare as addresses, DNS names without case; what is missing is named."""
    sans = SanSet(("API.k8s.example",), ("::1", "10.0.0.1"))
    assert missing(["api.k8s.example", "0:0::1", "10.0.0.1", "10.0.0.2", "other"], sans) == [
        "10.0.0.2", "other"]
    cluster = parse_cluster(dev_stack())
    certs = served_certificates(cluster)
    assert set(certs) == {"ubuntu-70", "ubuntu-72", "ubuntu-73", "elastic apiservers"}
    assert all(not missing(["api.k8s.lab.internal", "10.21.22.101"], s) for s in certs.values())
