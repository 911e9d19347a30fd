"""The offline render's topology picture (kube_ha.diagram): laid out by Graphviz's real `dot`
into SVG, from the same membership list as the configs, for each topology the program
builds; and the coverage each hop's label states."""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

import tools.topology_pictures
from kube_ha.config import parse_cluster
from kube_ha.diagram import missing, served_certificates, topology_dot, topology_svg
from kube_ha.render import stack_config
from kube_ha.topology import SanSet, lb_backends
from tests.program import EXAMPLE_STACKS, ROOT, dev_stack, example_stack, segment_colocated_stack

SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


STACKS: dict[str, Callable[[], dict[str, Any]]] = {
    name: functools.partial(example_stack, name) for name in EXAMPLE_STACKS}
STACKS["control-plane LBs on a segment"] = segment_colocated_stack


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


@pytest.mark.parametrize("name", EXAMPLE_STACKS)
def test_the_readmes_picture_of_each_topology_is_current(name: str) -> None:
    """docs/topology/<name>.svg is drawn from <name>.dot (python -m tools.topology_pictures),
    which must be what the render makes of the committed example stack today."""
    assert tools.topology_pictures.EXAMPLES == EXAMPLE_STACKS
    cluster = parse_cluster(*stack_config(ROOT / f"Pulumi.{name}.yaml"))
    assert (ROOT / "docs" / "topology" / f"{name}.dot").read_text() == topology_dot(cluster), (
        "run python -m tools.topology_pictures")
    assert texts((ROOT / "docs" / "topology" / f"{name}.svg").read_text())
