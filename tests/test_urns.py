"""Every resource's URN and type, pinned: a changed URN is a replace on an existing stack.

For a remote step a replace runs its delete script: `kubeadm reset` on a node, `etcdctl member
remove` on the bootstrap node. So a refactor or rename that changes a URN must either keep the
old name or carry `aliases` (the engine then moves the old state over and runs nothing), and
this test fails until the golden files say so on purpose.

The golden files (tests/golden/urns-<stack>.json) list `type urn` for the dev stack and three
larger ones (a virtual IP over two LBs, node-local proxies, five control-plane nodes), with
` delete` after each remote step that has a delete script. A URN may leave only if it is
aliased (ALIASED) or released (RELEASED: a remote step without a delete script, whose removal
runs nothing on any host), each with its reason.

After a deliberate change (a new resource, or an alias added): KUBE_HA_UPDATE_GOLDEN=1 pytest
tests/test_urns.py, then read the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness.hosts import host
from tests.program import dev_stack, run_program

GOLDEN = Path(__file__).parent / "golden"

# Old URN -> new URN, for every resource a change moved under an alias (nothing runs on
# `pulumi up`: the engine re-keys the state). Empty until a refactor needs one.
ALIASED: dict[str, str] = {}

# Remote steps removed on purpose, by resource name (with `*` for a node): deleting a step that
# has no delete script runs nothing. The test checks the pinned line carries no ` delete`.
RELEASED: dict[str, str] = {
    "kubernetes-kubeadm-worker-join-credentials":
        "one shared worker token, made when the first workers joined, expired for later ones: "
        "each worker now has its own credentials step",
    "kubernetes-kubeadm-*-local-proxy-install":
        "merged into the worker's own step (its proxy is set up before it joins)",
    "kubernetes-kubeadm-*-local-proxy": "likewise",
}


def _released(urn: str) -> bool:
    import fnmatch

    name = urn.rsplit("::", 1)[1]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in RELEASED)


def _vip() -> dict[str, Any]:
    raw = dev_stack()
    raw["endpoint"].update(address="10.21.22.100", virtualIp=True)
    raw["loadBalancers"].append(host("haproxy-102", "10.21.22.102"))
    return raw


def _node_local() -> dict[str, Any]:
    raw = dev_stack()
    raw["nodeLocalProxy"] = True
    return raw


def _five_control_plane() -> dict[str, Any]:
    raw = dev_stack()
    raw["controlPlane"] = [*copy.deepcopy(raw["controlPlane"]),
                           host("ubuntu-76", "10.21.22.76"),
                           host("ubuntu-77", "10.21.22.77")]
    raw["kubeScheduler"] = {"replicas": 2}
    return raw


STACKS: dict[str, Callable[[], dict[str, Any]]] = {
    "dev": dev_stack,
    "vip": _vip,
    "node-local": _node_local,
    "five-control-plane": _five_control_plane,
}


def registered(raw: dict[str, Any]) -> list[str]:
    """`type urn` of every resource the program registers (the root Stack is the engine's, and
    the SDK registers it once per process, so it is left out)."""
    run = run_program(raw)
    deletes = {r.name for r in run.mocks.resources if r.inputs.get("delete")}
    return sorted(f"{r.typ} {r.urn}" + (" delete" if r.name in deletes else "")
                  for r in run.monitor.registrations.values() if r.typ != "pulumi:pulumi:Stack")


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_urns_are_pinned(stack: str) -> None:
    path = GOLDEN / f"urns-{stack}.json"
    now = registered(STACKS[stack]())
    if os.environ.get("KUBE_HA_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(now, indent=1) + "\n")
    pinned: list[str] = json.loads(path.read_text())
    urns_now = {line.split(" ")[1] for line in now}
    gone = [line for line in pinned if line.split(" ")[1] not in urns_now
            and line.split(" ")[1] not in ALIASED
            and not (_released(line.split(" ")[1]) and not line.endswith(" delete"))]
    added = sorted(set(now) - set(pinned))
    assert not gone, (
        f"{len(gone)} pinned URNs disappeared from the {stack} stack: on an existing stack each is "
        "a delete (a remote step's delete resets a node or removes an etcd member). Keep the "
        "name or add `aliases`, and list it in ALIASED:\n  " + "\n  ".join(gone[:20]))
    assert not added, (f"new resources in the {stack} stack; if intended, update the golden "
                       "file (see the module docstring):\n  " + "\n  ".join(added[:20]))


def test_golden_files_cover_every_layer() -> None:
    """The pins are not vacuous: each stack's file holds its remote steps and components."""
    for stack in STACKS:
        lines = json.loads((GOLDEN / f"urns-{stack}.json").read_text())
        types = {line.split(" ", 1)[0] for line in lines}
        assert {"command:remote:Command", "kube-ha:index:HaCluster",
                "kube-ha:kubeadm:ControlPlane", "pulumi:providers:kubernetes"} <= types, stack
        assert all(line.split(" ")[1].startswith("urn:pulumi:dev::kube-ha::") for line in lines)
        # The steps whose delete resets a node or removes an etcd member are marked.
        assert any(line.endswith("-control-plane delete") for line in lines), stack
        assert any(line.endswith("-membership delete") for line in lines), stack
