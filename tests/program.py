"""Run the real `__main__.py` under engine mocks with a given stack config."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi
import yaml

from tests.harness.hosts import host, host_key
from tests.mocks import ClusterMocks, RecordingMonitor

ROOT = Path(__file__).resolve().parents[1]
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST-SSH-KEY-MATERIAL\n-----END OPENSSH PRIVATE KEY-----\n"


def dev_stack() -> dict[str, Any]:
    """The committed dev stack's config, prefix stripped, plus a test SSH key."""
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    raw = {k.split(":", 1)[1]: v for k, v in doc["config"].items()}
    raw["sshPrivateKey"] = SSH_KEY
    return raw


def scaled_stack(cp: int, workers: int, node_local: bool = False) -> dict[str, Any]:
    """The dev stack with `cp` control-plane nodes and `workers` workers (two in the pool)."""
    raw = dev_stack()
    raw["controlPlane"] = [host(f"cp-{i}", f"10.1.0.{10 + i}") for i in range(cp)]
    raw["workers"] = [host(f"w-{i}", f"10.2.{i // 250}.{i % 250 + 1}")
                      for i in range(workers)]
    raw["elasticApiserver"]["poolNodes"] = ["w-0", "w-1"]
    raw["allowEvenControlPlane"] = True
    raw["controllerManager"]["replicas"] = min(cp, raw["controllerManager"]["replicas"])
    raw["nodeLocalProxy"] = node_local
    return raw


class Run:
    def __init__(self, mocks: ClusterMocks, monitor: RecordingMonitor, scope: dict[str, Any]):
        self.mocks, self.monitor, self.scope = mocks, monitor, scope

    def reg(self, name: str):  # type: ignore[no-untyped-def]
        return self.monitor.registrations[name]

    def inputs(self, name: str) -> dict[str, Any]:
        return self.mocks.named(name).inputs


def value_of(output: pulumi.Output[Any]) -> Any:
    """Resolve an Output under the mocks (None when unknown, as in preview)."""
    box: list[Any] = []

    @pulumi.runtime.test
    def resolve() -> pulumi.Output[Any]:
        return output.apply(lambda v: box.append(v))

    resolve()
    return box[0] if box else None


def run_program(config: dict[str, Any], preview: bool = False,
                mocks: ClusterMocks | None = None) -> Run:
    mocks = mocks or ClusterMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="kube-ha", stack="dev", preview=preview,
                             monitor=monitor)
    pulumi.runtime.set_all_config(
        {f"kube-ha:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()},
        secret_keys=["kube-ha:sshPrivateKey"],
    )
    scope: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> None:
        scope.update(runpy.run_path(str(ROOT / "__main__.py")))

    program()
    return Run(mocks, monitor, scope)


def run_bare_commands(count: int) -> float:
    """Seconds the SDK takes, under the same mocks, to register `count` bare remote Commands
    (one connection, one script each): the floor any program of that size pays."""
    import time

    import pulumi_command as command

    mocks = ClusterMocks()
    pulumi.runtime.set_mocks(mocks, project="kube-ha", stack="dev", preview=False,
                             monitor=RecordingMonitor(mocks))
    key = host_key("bare")  # made outside the timed part, as the program's stack config is

    @pulumi.runtime.test
    def program() -> None:
        for i in range(count):
            command.remote.Command(
                f"bare-{i}", connection=command.remote.ConnectionArgs(
                    host=f"10.2.{i // 250}.{i % 250 + 1}", user="root",
                    private_key=pulumi.Output.secret("k"), host_key=key),
                create="bash -s", update="bash -s", stdin="true\n")

    start = time.perf_counter()
    program()
    return time.perf_counter() - start
