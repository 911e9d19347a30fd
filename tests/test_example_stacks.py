"""Each topology's committed example stack (Pulumi.<name>.yaml; README, Topologies) renders,
and what it renders is accepted by the real tools: haproxy -c (at the production paths, as
tests/test_haproxy_production_paths.py stages them), keepalived -t, strict manifest
validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kube_ha.config import parse_cluster
from tests.program import EXAMPLE_STACKS, ROOT, example_stack
from tests.test_haproxy_production_paths import _check, _host_files
from tests.test_render import assert_keepalived_accepts

# What each example's render must hold beyond the common artifacts.
EXPECTED = {
    "dev": ["lb/haproxy.cfg", "lb/configure-haproxy-101.sh"],
    "vip": ["lb/keepalived-haproxy-101.conf", "lb/keepalived-haproxy-102.conf"],
    "node-local": ["node-local/haproxy.cfg"],
    "control-plane-lb": ["lb/keepalived-ubuntu-73.conf", "lb/configure-ubuntu-72.sh"],
    "external": ["kubeadm/endpoint-check.sh", "backends.json"],
    "service": ["manifests/apiserver-service.yaml", "endpoint/switch.sh"],
}


@pytest.mark.parametrize("name", EXAMPLE_STACKS)
def test_each_example_stack_renders_and_the_real_tools_accept_it(name: str,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    ran = subprocess.run([sys.executable, "-m", "kube_ha.render", "--stack", name, "--out",
                          str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    for rel in ["topology.svg", "sans.json", *EXPECTED[name]]:
        assert (out / rel).is_file(), rel
    cluster = parse_cluster(example_stack(name))
    for rel, local in (("lb/haproxy.cfg", False), ("node-local/haproxy.cfg", True)):
        if (out / rel).exists() and (local or cluster.load_balancers):
            staging = tmp_path / rel.replace("/", "-")
            staging.mkdir()
            checked = _check((out / rel).read_text(), _host_files(cluster, local), staging)
            assert checked.returncode == 0, (rel, checked.stderr)
    for conf in sorted((out / "lb").glob("keepalived-*.conf")):
        assert_keepalived_accepts(conf)
    version = cluster.kubernetes_version.lstrip("v").rsplit(".", 1)[0]
    manifests = sorted((out / "manifests").glob("*.yaml"))
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                kubernetes_validate.validate(doc, version, strict=True)
    assert manifests or name == "service"
