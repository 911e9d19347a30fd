"""Every resource's URN and type, pinned: a changed URN is a replace on an existing stack.

For a remote step a replace runs its delete script: `kubeadm reset` on a node, `etcdctl member
remove` on the bootstrap node. So a refactor or rename that changes a URN must either keep the
old name or carry `aliases` (the engine then moves the old state over and runs nothing), and
this test fails until the golden files say so on purpose.

The golden files (tests/golden/urns-<stack>.json) list `type urn` for the dev stack and three
larger ones (a virtual IP over two LBs, node-local proxies, five control-plane nodes), with
` delete` after each remote step that has a delete script and ` retained` after each one the
engine never deletes through its provider (`retainOnDelete`: leaving the program, or a
`pulumi destroy`, runs nothing on any host). A URN may leave only if it is
aliased (ALIASED) or released (RELEASED: a remote step without a delete script, whose removal
runs nothing on any host), each with its reason. Each earlier layout a user's stack may still
be in is kept too (urns-<stack>.<layout>.json): upgrading from it must replace nothing.

After a deliberate change (a new resource, or an alias added): KUBE_HA_UPDATE_GOLDEN=1 pytest
tests/test_urns.py, then read the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.program import (
    dev_stack,
    example_stack,
    external_stack,
    grown_stack,
    run_program,
    service_stack,
    vip_stack,
)

GOLDEN = Path(__file__).parent / "golden"

# Resources a change moved under an alias (nothing runs on `pulumi up`: the engine re-keys the
# state), by name (with `*` for a node): the parent chain they had -> why they moved.
_KUBEADM = "kube-ha:index:HaCluster$kube-ha:kubeadm:ControlPlane"
ALIASED: dict[str, tuple[str, str]] = {
    "kubernetes-kubeadm-workers": (_KUBEADM, "workers have their own component (Workers)"),
    "kubernetes-kubeadm-*-join-credentials": (_KUBEADM, "likewise, for workers' credentials"),
    "kubernetes-kubeadm-*-join": (_KUBEADM, "likewise"),
}
# Earlier layouts kept as golden files: upgrading a stack from each must replace nothing.
LAYOUTS = ("before-workers",)

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
    name = urn.rsplit("::", 1)[1]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in RELEASED)


def _node_local() -> dict[str, Any]:
    return example_stack("node-local")


def _five_control_plane() -> dict[str, Any]:
    raw = grown_stack(2)
    raw["kubeScheduler"] = {"replicas": 2}
    return raw


STACKS: dict[str, Callable[[], dict[str, Any]]] = {
    "dev": dev_stack,
    "vip": vip_stack,
    "node-local": _node_local,
    "five-control-plane": _five_control_plane,
    "external": external_stack,
    "service": service_stack,
    "control-plane-lb": lambda: example_stack("control-plane-lb"),
}


def registered(raw: dict[str, Any]) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """`type urn` of every resource the program registers (the root Stack is the engine's, and
    the SDK registers it once per process, so it is left out), and each one's alias URNs."""
    run = run_program(raw)
    deletes = {r.name for r in run.mocks.resources if r.inputs.get("delete")}
    regs = [r for r in run.monitor.registrations.values() if r.typ != "pulumi:pulumi:Stack"]
    return (sorted(f"{r.typ} {r.urn}" + (" delete" if r.name in deletes else "")
                   + (" retained" if r.retain_on_delete else "") for r in regs),
            {r.urn: r.alias_urns for r in regs})


def _upgrade_losses(pinned: list[str], now: list[str], aliases: dict[str, tuple[str, ...]]
                    ) -> list[str]:
    """Pinned resources an `up` from that state would delete: neither still there nor carried
    by an alias to a resource of the same type and the same delete script (or one retained on
    delete, whose delete never runs), nor released."""
    now_by_urn = {line.split(" ")[1]: line for line in now}
    carried = {old: now_by_urn[new] for new, olds in aliases.items() for old in olds}
    lost = []
    for line in pinned:
        typ, urn = line.split(" ")[:2]
        successor = now_by_urn.get(urn) or carried.get(urn)
        if successor is not None:
            # A URN holds no blank: the flags are the words after it.
            if successor.split(" ")[0] != typ or (
                    (" delete" in line) != (" delete" in successor)
                    and not successor.endswith(" retained")):
                lost.append(f"{line} (now {successor})")
        elif not (_released(urn) and " delete" not in line):
            lost.append(line)
    return lost


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_urns_are_pinned(stack: str) -> None:
    path = GOLDEN / f"urns-{stack}.json"
    now, aliases = registered(STACKS[stack]())
    if os.environ.get("KUBE_HA_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(now, indent=1) + "\n")
    pinned: list[str] = json.loads(path.read_text())
    gone = _upgrade_losses(pinned, now, aliases)
    added = sorted(set(now) - set(pinned))
    assert not gone, (
        f"{len(gone)} pinned URNs disappeared from the {stack} stack: on an existing stack each is "
        "a delete (a remote step's delete resets a node or removes an etcd member). Keep the "
        "name or add `aliases`, and list it in ALIASED:\n  " + "\n  ".join(gone[:20]))
    assert not added, (f"new resources in the {stack} stack; if intended, update the golden "
                       "file (see the module docstring):\n  " + "\n  ".join(added[:20]))


@pytest.mark.parametrize("layout", LAYOUTS)
# The stacks that layout had (endpoint.type external and service came later).
@pytest.mark.parametrize("stack", sorted(set(STACKS) - {"external", "service", "control-plane-lb"}))
def test_a_stack_in_an_earlier_layout_upgrades_without_a_replace(stack: str, layout: str) -> None:
    """The state an existing stack holds (that layout's URNs) against what the program
    registers now: every resource is still there or carried by an alias; none is deleted."""
    pinned: list[str] = json.loads((GOLDEN / f"urns-{stack}.{layout}.json").read_text())
    now, aliases = registered(STACKS[stack]())
    assert not _upgrade_losses(pinned, now, aliases)
    moved = [line for line in pinned if line.split(" ")[1] not in {n.split(" ")[1] for n in now}]
    assert moved, "this layout differs from today's (else it needs no file)"


def test_every_moved_resource_carries_its_old_urn() -> None:
    """Each resource named in ALIASED declares an alias to exactly the URN it had under its
    old parent, in the stacks where it exists (the engine resolves it to that URN)."""
    _, aliases = registered(STACKS["node-local"]())
    checked = 0
    for urn, olds in aliases.items():
        if "$kube-ha:kubeadm:Workers$" not in urn:
            continue
        typ, name = urn.split("::")[2].rsplit("$", 1)[-1], urn.rsplit("::", 1)[1]
        for pattern, (chain, _) in ALIASED.items():
            if fnmatch.fnmatchcase(name, pattern):
                assert f"urn:pulumi:dev::kube-ha::{chain}${typ}::{name}" in olds, (urn, olds)
                checked += 1
                break
    assert checked >= 5  # the reconcile step and two steps for each of the two workers


def test_golden_files_cover_every_layer() -> None:
    """The pins are not vacuous: each stack's file holds its remote steps and components."""
    for stack in STACKS:
        lines = json.loads((GOLDEN / f"urns-{stack}.json").read_text())
        types = {line.split(" ", 1)[0] for line in lines}
        assert {"command:remote:Command", "kube-ha:index:HaCluster",
                "kube-ha:kubeadm:ControlPlane", "pulumi:providers:kubernetes"} <= types, stack
        assert all(line.split(" ")[1].startswith("urn:pulumi:dev::kube-ha::") for line in lines)
        # The per-node steps are retained on delete (the join steps keep the delete they
        # were recorded with, never run).
        assert any(line.endswith("-control-plane delete retained") for line in lines), stack
        assert any(line.endswith("-membership retained") for line in lines), stack
        assert not any(line.endswith(" delete") for line in lines), stack
