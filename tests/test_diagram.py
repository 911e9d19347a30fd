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
from kube_ha.diagram import _coverage, dialled_names, missing, served_certificates, topology_dot, topology_svg
from kube_ha.render import stack_config
from kube_ha.topology import SanSet, lb_backends
from tests.program import EXAMPLE_STACKS, ROOT, cluster_of, dev_stack, example_stack, segment_colocated_stack

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


def test_the_hops_are_the_endpoints_names_and_loopback_only_with_node_local_proxies() -> None:
    """What the picture says clients dial, hop by hop: each is checked against every served
    certificate, so a hop that is not there would claim coverage nobody needs."""
    plain = parse_cluster(dev_stack())
    assert dialled_names(plain) == {"endpoint": ["api.k8s.lab.internal", "10.21.22.101"]}
    local = parse_cluster(example_stack("node-local"))
    assert dialled_names(local)["node-local proxy"] == ["127.0.0.1"]
    bare = cluster_of(endpoint={**dev_stack()["endpoint"], "dnsName": None})
    assert dialled_names(bare) == {"endpoint": ["10.21.22.101"]}


def test_the_elastic_apiservers_certificate_is_served_only_when_they_run() -> None:
    off = cluster_of(elasticApiserver={"enabled": False})
    assert set(served_certificates(off)) == {"ubuntu-70", "ubuntu-72", "ubuntu-73"}


def test_each_certificate_lacking_names_is_named_with_them() -> None:
    """The hop's label is the review's answer: which server's certificate lacks which names."""
    certs = {"a": SanSet(("x.example",), ("10.0.0.1",)), "b": SanSet((), ()), "c": SanSet(("y.example",), ())}
    names = ["x.example", "10.0.0.1"]
    assert _coverage(names, certs) == "b lacks x.example, 10.0.0.1; c lacks x.example, 10.0.0.1"
    assert _coverage(names, {"a": certs["a"]}) == "every served certificate names them"


@pytest.mark.parametrize("name", EXAMPLE_STACKS)
def test_the_readmes_picture_of_each_topology_is_current(name: str) -> None:
    """docs/topology/<name>.svg is drawn from <name>.dot (python -m tools.topology_pictures),
    which must be what the render makes of the committed example stack today."""
    assert tools.topology_pictures.EXAMPLES == EXAMPLE_STACKS
    cluster = parse_cluster(*stack_config(ROOT / f"Pulumi.{name}.yaml"))
    assert (ROOT / "docs" / "topology" / f"{name}.dot").read_text() == topology_dot(cluster), (
        "run python -m tools.topology_pictures")
    assert texts((ROOT / "docs" / "topology" / f"{name}.svg").read_text())
