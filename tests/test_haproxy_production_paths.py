"""haproxy.cfg exactly as hosts receive it (production paths, not a test's temp dir) passes
`haproxy -c`, for the LB hosts and for a worker's node-local proxy.

The real haproxy runs in a private mount namespace where /etc/haproxy and /var/lib/haproxy are
fresh tmpfs mounts holding stand-in files at the paths the config names (the CA, the
health-check client certificate, the session guard). Nothing on this machine is touched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from kube_ha.config import parse_cluster
from kube_ha.loadbalancer.haproxy import (
    NODE_LOCAL_HEALTH,
    HaproxyPaths,
    node_local_frontend,
    render_haproxy_cfg,
    session_guard_lua,
)
from kube_ha.model import Cluster
from kube_ha.paths import HAPROXY_CFG
from tests.harness import pki
from tests.program import dev_stack

PATHS = HaproxyPaths()  # what every host gets

# Mounts the tmpfs, copies each staged file to its production path, runs haproxy -c on the
# production haproxy.cfg. $STAGE holds files named by their production path, '/' -> '%'.
DRIVER = r"""
set -eu
mount -t tmpfs -o mode=0755 tmpfs /etc/haproxy
mount -t tmpfs -o mode=0755 tmpfs /var/lib/haproxy
for f in "$STAGE"/*; do
  target=$(basename "$f" | tr '%' '/')
  mkdir -p "$(dirname "$target")"
  cp "$f" "$target"
done
haproxy -c -f /etc/haproxy/haproxy.cfg
"""


def _check(cfg: str, files: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    stage = tmp_path / "stage"
    stage.mkdir()
    for path, content in {HAPROXY_CFG: cfg, **files}.items():
        (stage / path.replace("/", "%")).write_text(content)
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", DRIVER],
                          env={"STAGE": str(stage), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                          capture_output=True, text=True, timeout=60)


def _host_files(cluster: Cluster, local: bool) -> dict[str, str]:
    ca = pki.make_ca()
    client = pki.issue(ca, "kube-ha:lb-health-check", client=True)
    assert PATHS.client_cert and PATHS.session_guard
    return {PATHS.ca_file: ca.cert_pem,
            PATHS.client_cert: client.cert_pem + client.key_pem,
            PATHS.session_guard: session_guard_lua(
                NODE_LOCAL_HEALTH if local else cluster.health_check)}


@pytest.mark.parametrize("local", [False, True], ids=["lb-host", "node-local"])
def test_the_config_hosts_receive_passes_haproxy_c(local: bool, tmp_path: Path) -> None:
    raw: dict[str, Any] = {**dev_stack(), "nodeLocalProxy": local}
    cluster = parse_cluster(raw)
    cfg = render_haproxy_cfg(cluster, frontend=node_local_frontend(cluster)) if local else (
        render_haproxy_cfg(cluster))
    for path in (PATHS.ca_file, PATHS.client_cert, PATHS.session_guard):
        assert f"{path}" in cfg, path  # the check below reads these files at these paths
    result = _check(cfg, _host_files(cluster, local), tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_missing_file_at_a_production_path_fails_the_check(tmp_path: Path) -> None:
    """The check reads the production paths: without the CA there, haproxy refuses."""
    cluster = parse_cluster(dev_stack())
    files = _host_files(cluster, local=False)
    del files[PATHS.ca_file]
    result = _check(render_haproxy_cfg(cluster), files, tmp_path)
    assert result.returncode != 0
    assert PATHS.ca_file in result.stderr, result.stderr
