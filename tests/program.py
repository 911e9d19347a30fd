"""Run the real `__main__.py` under engine mocks with a given stack config."""

from __future__ import annotations

import json
import runpy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import yaml

from kube_ha.config import parse_cluster
from kube_ha.model import Cluster
from tests.harness.hosts import host, host_key
from tests.mocks import ClusterMocks, RecordingMonitor, plain

ROOT = Path(__file__).resolve().parents[1]
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST-SSH-KEY-MATERIAL\n-----END OPENSSH PRIVATE KEY-----\n"


def example_stack(name: str) -> dict[str, Any]:
    """A committed example stack's config (Pulumi.<name>.yaml), prefix stripped, plus a test
    SSH key: one per topology (README, Topologies)."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text())
    raw = {k.split(":", 1)[1]: v for k, v in doc["config"].items()}
    raw["sshPrivateKey"] = SSH_KEY
    return raw


EXAMPLE_STACKS = ("dev", "vip", "node-local", "control-plane-lb", "external", "service")


def dev_stack() -> dict[str, Any]:
    """The committed dev stack: one LB VM (the seed write-up's cluster)."""
    return example_stack("dev")


def cluster_of(raw: dict[str, Any] | None = None, **edits: Any) -> Cluster:
    """The dev stack (or `raw`) with the top-level keys in `edits` replaced, as parse_cluster
    reads it."""
    return parse_cluster({**(dev_stack() if raw is None else raw), **edits})


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


def vip_stack() -> dict[str, Any]:
    """Pulumi.vip.yaml: the dev cluster behind a keepalived virtual IP (10.21.22.100) held by
    two LB hosts, haproxy-101 and haproxy-102."""
    return example_stack("vip")


def external_stack() -> dict[str, Any]:
    """Pulumi.external.yaml: the dev cluster behind a load balancer of the user's at
    10.21.22.200 (endpoint.type: external): no LB host of the program's."""
    return example_stack("external")


def service_stack() -> dict[str, Any]:
    """Pulumi.service.yaml: the dev cluster behind the in-cluster Service kube-system/apiserver
    (seed 002's design): ClusterIP 10.96.0.50, named apiserver.kube-system.svc.cluster.local;
    no LB host, no elastic apiservers (the Service selects the static ones)."""
    return example_stack("service")


def grown_stack(extra: int = 2) -> dict[str, Any]:
    """The dev stack with `extra` control-plane nodes added after its three: ubuntu-76, -77, ..."""
    raw = dev_stack()
    raw["controlPlane"] += [host(f"ubuntu-{76 + i}", f"10.21.22.{76 + i}") for i in range(extra)]
    return raw


# The smallest virtual-IP topology, on TEST-NET-1 as the network-namespace tests wire it.
SEGMENT_VIP, SEGMENT_CP = "192.0.2.100", "192.0.2.11"
SEGMENT_LBS = {"lb1": "192.0.2.2", "lb2": "192.0.2.3"}


def segment_vip_stack() -> dict[str, Any]:
    """One control-plane node (cp-1, SEGMENT_CP) behind the VIP SEGMENT_VIP held by the two
    LB hosts of SEGMENT_LBS; maxConn within this sandbox's FD limit."""
    return {
        "sshPrivateKey": SSH_KEY,
        "controlPlane": [host("cp-1", SEGMENT_CP)],
        "loadBalancers": [host(n, a) for n, a in SEGMENT_LBS.items()],
        "endpoint": {"address": SEGMENT_VIP, "port": 6443, "virtualIp": True},
        "loadBalancer": {"maxConn": 4000},
    }


def segment_colocated_stack() -> dict[str, Any]:
    """Seed 002's data-centre setup on the same segment: the two control-plane nodes are the
    LB hosts (haproxy and keepalived beside kube-apiserver), the VIP on port 8443."""
    cps = [host(n, a) for n, a in SEGMENT_LBS.items()]
    return {
        "sshPrivateKey": SSH_KEY,
        "controlPlane": cps,
        "allowEvenControlPlane": True,
        "loadBalancers": cps,
        "endpoint": {"address": SEGMENT_VIP, "port": 8443, "virtualIp": True},
        "loadBalancer": {"maxConn": 4000},
    }


def stack_file(raw: dict[str, Any]) -> str:
    """The Pulumi.<stack>.yaml text a user would write for `raw` (without the SSH key, which a
    stack file holds encrypted)."""
    return yaml.safe_dump({"config": {f"kube-ha:{k}": v for k, v in raw.items()
                                      if k != "sshPrivateKey"}})


class Run:
    def __init__(self, mocks: ClusterMocks, monitor: RecordingMonitor, scope: dict[str, Any]):
        self.mocks, self.monitor, self.scope = mocks, monitor, scope

    def reg(self, name: str):  # type: ignore[no-untyped-def]
        return self.monitor.registrations[name]

    def inputs(self, name: str) -> dict[str, Any]:
        return self.mocks.named(name).inputs

    def upstream(self, name: str) -> set[str]:
        """Names of every resource `name` waits for, directly or through others."""
        seen: set[str] = set()
        todo = list(self.reg(name).dependencies)
        while todo:
            urn = todo.pop()
            # The StackReference is read, not registered: nothing it waits for.
            if urn not in seen and "::pulumi:pulumi:StackReference::" not in urn:
                seen.add(urn)
                todo += self.monitor.by_urn(urn).dependencies
        return {self.monitor.by_urn(u).name for u in seen}


def changed_between(before: Run, after: Run) -> set[str]:
    """Names of the resources registered by only one of the two runs, or by both with inputs
    that differ once secret markers are unwrapped: the same value, secret in one run and plain
    in the other, is no change here."""
    a = {r.name: plain(r.inputs) for r in before.mocks.resources}
    b = {r.name: plain(r.inputs) for r in after.mocks.resources}
    return {n for n in a.keys() | b.keys() if n not in a or n not in b or a[n] != b[n]}


def value_of(output: pulumi.Input[Any]) -> Any:
    """Resolve an Output (or a plain value) under the mocks (None when unknown, as in
    preview)."""
    box: list[Any] = []

    @pulumi.runtime.test
    def resolve() -> pulumi.Output[Any]:
        return pulumi.Output.from_input(output).apply(lambda v: box.append(v))

    resolve()
    return box[0] if box else None


def run_program(config: dict[str, Any], preview: bool = False,
                mocks: ClusterMocks | None = None) -> Run:
    mocks = mocks or ClusterMocks()
    mocks.config = config
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


def run_after(before: Run, config: dict[str, Any], preview: bool = False,
              mocks: ClusterMocks | None = None) -> Run:
    """The next `up` after `before`: `config` run with every output `before` recorded read
    back, as the engine answers readStackOutputs from the stack's last checkpoint."""
    mocks = (mocks or ClusterMocks()).after(before.mocks)
    mocks.previous_outputs = {k: value_of(v) for k, v in before.scope["ha"].recorded.items()}
    return run_program(config, preview=preview, mocks=mocks)


def run_bare_commands(count: int) -> float:
    """Seconds the SDK takes, under the same mocks, to register `count` bare remote Commands
    (one connection, one script each): the floor any program of that size pays."""
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


def refused(raw: dict[str, Any], edit: Callable[[dict[str, Any]], object], key: str,
            words: str) -> None:
    """`edit` makes the stack config one parse_cluster refuses, naming `key` with `words`."""
    from kube_ha.config import ConfigError, parse_cluster

    edit(raw)
    try:
        parse_cluster(raw)
    except ConfigError as err:
        assert key in err.keys, str(err)
        assert words in str(err), str(err)
    else:
        raise AssertionError(f"not refused: {key}")
