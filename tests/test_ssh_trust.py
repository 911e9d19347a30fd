"""SSH host keys: every connection pins its host's key; a host without one is refused.

pulumi-command 1.2.1 verifies the server only when the connection's `hostKey` is set
(provider/pkg/provider/remote/connection.go: `ssh.ParseAuthorizedKey(*con.HostKey)`, then
`ssh.FixedHostKey` and `HostKeyAlgorithms = [key.Type()]`; otherwise `ssh.InsecureIgnoreHostKey`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from kube_ha.config import ConfigError, parse_cluster
from tests.harness.hosts import host_key
from tests.mocks import plain
from tests.program import ROOT, dev_stack, run_program


def _configured_keys(raw: dict[str, Any]) -> dict[str, str]:
    return {entry["address"]: entry["hostKey"]
            for group in ("controlPlane", "workers", "loadBalancers") for entry in raw[group]}


def test_every_connection_pins_the_configured_host_key() -> None:
    raw = dev_stack()
    keys = _configured_keys(raw)
    assert len(set(keys.values())) == len(keys) == 6
    run = run_program(raw)
    commands = run.mocks.by_type("command:remote:Command")
    pinned = json.loads((ROOT / "tests/golden/urns-dev.json").read_text())
    assert len(commands) == sum(1 for line in pinned if line.startswith("command:remote:Command "))
    for rec in commands:
        connection = plain(rec.inputs)["connection"]
        assert connection.get("hostKey") == keys[connection["host"]], rec.name


@pytest.mark.parametrize("group, index", [("controlPlane", 0), ("workers", 1), ("loadBalancers", 0)])
def test_a_host_without_a_key_is_refused_naming_it(group: str, index: int) -> None:
    raw = dev_stack()
    raw[group][index].pop("hostKey")
    with pytest.raises(ConfigError) as err:
        parse_cluster(raw)
    assert err.value.keys == [f"{group}[{index}].hostKey"]
    assert "insecureSkipHostKeyCheck" in str(err.value)


@pytest.mark.parametrize("value, why", [
    ("AAAAC3NzaC1lZDI1NTE5AAAAIO9oTijcaMbbta6EQv2DjB5qhs7iCBymc6RXy7eFxRRh", "no type"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO9oTijcaMbbta6EQv2DjB5qhs7", "truncated blob"),
    ("ecdsa-sha2-nistp256 AAAAC3NzaC1lZDI1NTE5AAAAIO9oTijcaMbbta6EQv2DjB5qhs7iCBymc6RXy7eFxRRh",
     "blob of another type"),
    ("ssh-ed25519 AAAA$(reboot)", "shell"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO9oTijcaMbbta6EQv2DjB5qhs7iCBymc6RXy7eFxRRh\nx", "newline"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----", "a private key pasted by mistake"),
])
def test_a_malformed_key_is_refused(value: str, why: str) -> None:
    raw = dev_stack()
    raw["workers"][0]["hostKey"] = value
    with pytest.raises(ConfigError) as err:
        parse_cluster(raw)
    assert err.value.keys == ["workers[0].hostKey"], why


def test_a_key_line_with_a_comment_is_kept_without_it() -> None:
    raw = dev_stack()
    raw["workers"][0]["hostKey"] = host_key("ubuntu-74") + " root@ubuntu-74"
    assert parse_cluster(raw).workers[0].host_key == host_key("ubuntu-74")


def test_the_lab_opt_out_is_explicit_and_loud(caplog: pytest.LogCaptureFixture) -> None:
    raw = dev_stack()
    raw["workers"][0].pop("hostKey")
    raw["insecureSkipHostKeyCheck"] = True
    with caplog.at_level(logging.WARNING):
        run = run_program(raw)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("insecureSkipHostKeyCheck" in m and "ubuntu-74" in m for m in warned), warned
    join = plain(run.inputs("kubernetes-kubeadm-ubuntu-74-join"))["connection"]
    assert "hostKey" not in join or join["hostKey"] is None
    other = plain(run.inputs("kubernetes-kubeadm-ubuntu-75-join"))["connection"]
    assert other["hostKey"] == raw["workers"][1]["hostKey"]  # keys given are still pinned
