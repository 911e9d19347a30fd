"""The rendered haproxy.cfg, checked by real haproxy: syntax, and health checks that work."""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kube_ha.config import parse_cluster
from kube_ha.loadbalancer.haproxy import (
    NODE_LOCAL_HEALTH,
    detection_ms,
    render_haproxy_cfg,
    session_guard_lua,
)
from kube_ha.model import HealthCheckSettings
from tests.harness import pki, reference_configs
from tests.harness.lab import Lab, haproxy_paths_under
from tests.harness.wait import wait_until


def haproxy_check(cfg: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    return subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)


def test_rendered_dev_config_is_valid_for_haproxy(raw: dict[str, Any], tmp_path: Path) -> None:
    cluster = parse_cluster(raw)
    ca = pki.make_ca()
    paths = haproxy_paths_under(tmp_path, ca, pki.issue(ca, "kube-ha:lb-health-check", client=True),
                                cluster.health_check)
    Path(paths.state_file).write_text("1\n")
    result = haproxy_check(render_haproxy_cfg(cluster, paths), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr


def test_rendered_config_shape(raw: dict[str, Any]) -> None:
    cfg = render_haproxy_cfg(parse_cluster(raw))
    assert "    mode tcp" in cfg
    assert "http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host api.k8s.lab.internal" in cfg
    assert "check-ssl verify required ca-file /etc/haproxy/kube-ha/ca.crt" in cfg
    assert "option redispatch 1" in cfg
    assert "ssl-hello-chk" not in cfg
    assert "on-marked-down shutdown-sessions" not in cfg
    assert "frontend stats" in cfg and "bind 127.0.0.1:8404" in cfg
    assert "prometheus-exporter" in cfg
    raw["loadBalancer"]["prometheusMetrics"] = False
    assert "prometheus-exporter" not in render_haproxy_cfg(parse_cluster(raw))
    raw["loadBalancer"].pop("statsBind")
    assert "frontend stats" not in render_haproxy_cfg(parse_cluster(raw))


def _wait_check_status(lab: Lab, want: str, timeout: float = 8) -> dict[str, str]:
    """Every checked server's last check result once all of them are `want`."""
    seen: dict[str, str] = {}

    def settled() -> bool:
        seen.clear()
        seen.update(lab.stat("check_status"))
        return set(seen.values()) == {want}

    wait_until(settled, timeout, f"every server's check_status to be {want}", interval=0.1)
    return seen


def test_every_server_up_by_its_real_https_readyz_check(tmp_path: Path) -> None:
    with Lab(tmp_path) as lab:
        lab.start()
        assert set(_wait_check_status(lab, "L7OK").values()) == {"L7OK"}
        lab.wait_states({s.name: "UP" for s in lab.servers}, 5)
        assert lab.request().ok


def test_checks_authenticate_when_anonymous_auth_is_off(tmp_path: Path) -> None:
    with Lab(tmp_path, require_client_cert=True) as lab:
        lab.start()
        assert set(_wait_check_status(lab, "L7OK").values()) == {"L7OK"}


def test_checks_without_client_cert_fail_when_anonymous_auth_is_off(tmp_path: Path) -> None:
    def no_client_cert(lab: Lab) -> str:
        return render_haproxy_cfg(lab.cluster, replace(lab.paths, client_cert=None))

    with Lab(tmp_path, require_client_cert=True, renderer=no_client_cert) as lab:
        lab.start()
        # 401 from /readyz: what an unauthenticated check meets (kubernetes #43784).
        assert set(_wait_check_status(lab, "L7STS").values()) == {"L7STS"}
        lab.wait_states({s.name: "DOWN" for s in lab.servers}, 8)


def test_tutorial_config_never_requests_readiness(tmp_path: Path) -> None:
    """`option httpchk` + `option ssl-hello-chk`: passes `haproxy -c`, keeps a draining server UP."""
    with Lab(tmp_path, renderer=reference_configs.tutorial_ssl_hello, drain_seconds=6) as lab:
        lab.start()
        lab.drain("cp-2")
        time.sleep(3)  # our checks would have marked it DOWN in ~2 s
        assert lab.states()["cp-2"] == "UP"
        assert lab.stat("check_status")["cp-2"] == "L6OK"  # a TLS hello, not an HTTP answer


def test_tutorial_config_with_check_ssl_marks_every_server_down(tmp_path: Path) -> None:
    def with_check_ssl(lab: Lab) -> str:
        return reference_configs.tutorial_ssl_hello(lab, check_ssl=True)

    with Lab(tmp_path, renderer=with_check_ssl) as lab:
        lab.start()  # includes `haproxy -c`, which passes
        lab.wait_states({s.name: "DOWN" for s in lab.servers}, 8)
        assert not lab.request(timeout=2).ok


@pytest.mark.parametrize("tuning", [{"interMs": 800, "fall": 3}, {"shutdownSessionsOnDown": True}])
def test_tuning_reaches_the_config(raw: dict[str, Any], tuning: dict[str, Any]) -> None:
    raw["healthCheck"].update(tuning)
    cfg = render_haproxy_cfg(parse_cluster(raw))
    if "interMs" in tuning:
        assert "inter 800ms" in cfg and "fall 3" in cfg
    else:
        assert "on-marked-down shutdown-sessions" in cfg


def test_the_session_guard_waits_one_detection_time_before_believing_a_slow_server_alone(
) -> None:
    """A brownout fails every server's checks, but up to one check interval apart (checks are
    not synchronised): the guard's grace for a slow (L7 timeout) server is the whole detection
    time of the proxy's own health settings, so in a brownout the others are already failing
    when it would cut. Dead checks (no connection, no TLS handshake) are cut at once."""
    lb = session_guard_lua(HealthCheckSettings())
    local = session_guard_lua(NODE_LOCAL_HEALTH)
    assert detection_ms(HealthCheckSettings()) == 1450 and "local GRACE = 1.45\n" in lb
    assert detection_ms(NODE_LOCAL_HEALTH) == 8000 and "local GRACE = 8.0\n" in local
    assert 'L6TOUT = true' in lb.split("local SLOW")[0] and "L7TOUT = true" in lb.split("local SLOW")[1]
