"""The PR check's destructive-change gate, on plans in `pulumi preview --json`'s format.

No Pulumi CLI runs here, so each plan is built from the real program's registrations before
and after an edit (under the engine mocks), in the engine's documented JSON shape
(pulumi/pulumi pkg/display/json.go previewDigest: steps of {op, urn, oldState{type, inputs},
newState}; secret values print as "[secret]").
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.mocks import is_secret
from tests.program import dev_stack, run_after, run_program
from tools import destructive_gate


def _shown(value: Any) -> Any:
    """Inputs as `--json` prints them: secrets masked."""
    if is_secret(value):
        return "[secret]"
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


def plan(before: dict[str, Any], after: dict[str, Any], earlier: bool = False
         ) -> dict[str, Any]:
    """The plan of `after` against a stack whose last `up` ran `before` (the program reads
    that run's outputs back, as it does from the engine). `earlier`: the state an earlier
    kube-ha left (no record, nothing retained on delete)."""
    old = run_program(before)
    new = run_program(after) if earlier else run_after(old, after)

    def states(run: Any) -> dict[str, dict[str, Any]]:
        return {reg.urn: {"urn": reg.urn, "type": reg.typ,
                          "inputs": _shown(run.mocks.named(reg.name).inputs),
                          # pkg/engine/events.go StepEventStateMetadata `json:"retainOnDelete"`
                          "retainOnDelete": reg.retain_on_delete and not (earlier and run is old)}
                for reg in run.monitor.registrations.values()
                if reg.typ != "pulumi:pulumi:Stack"}

    a, b = states(old), states(new)
    steps: list[dict[str, Any]] = []
    for urn in sorted(a.keys() | b.keys()):
        if urn not in b:
            steps.append({"op": "delete", "urn": urn, "oldState": a[urn]})
        elif urn not in a:
            steps.append({"op": "create", "urn": urn, "newState": b[urn]})
        else:
            op = "same" if a[urn]["inputs"] == b[urn]["inputs"] else "update"
            steps.append({"op": op, "urn": urn, "oldState": a[urn], "newState": b[urn]})
    summary: dict[str, int] = {}
    for step in steps:
        summary[step["op"]] = summary.get(step["op"], 0) + 1
    return {"steps": steps, "changeSummary": summary}


def _gate(tmp_path: Path, doc: dict[str, Any], *flags: str) -> tuple[int, str]:
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(doc))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = destructive_gate.main([str(path), *flags])
    return code, out.getvalue()


def test_a_safe_plan_passes(tmp_path: Path) -> None:
    raw = dev_stack()
    after = copy.deepcopy(raw)
    after["elasticApiserver"]["maxReplicas"] = 1
    doc = plan(raw, after)
    assert doc["changeSummary"].get("update")
    code, text = _gate(tmp_path, doc)
    assert code == 0 and "No step" in text


def test_removing_a_node_is_stopped_until_approved(tmp_path: Path) -> None:
    raw = dev_stack()
    after = copy.deepcopy(raw)
    after["controlPlane"] = after["controlPlane"][:1]
    after["allowEvenControlPlane"] = True
    after["controllerManager"]["replicas"] = 1  # one per control-plane node
    doc = plan(raw, after)
    code, text = _gate(tmp_path, doc)
    assert code == 1
    for node in ("ubuntu-70", "ubuntu-72"):
        assert (f"`kubernetes-kubeadm-control-plane-removals` (update): removes the etcd member"
                f" and Node of {node}") in text
        assert f"`kubernetes-kubeadm-{node}-retire` (create): resets the node" in text
        # Their per-node steps leave state retained: no delete runs on the node.
        assert f"`kubernetes-kubeadm-{node}-control-plane` (delete)" not in text
    assert "ubuntu-73" not in text
    code, text = _gate(tmp_path, doc, "--approved")
    assert code == 0 and "(approved)" in text


def test_renaming_the_cluster_is_stopped() -> None:
    """clusterName is in every resource name: a rename deletes every old step (day-2 review
    F1). The program refuses it against its record; a stack an earlier kube-ha left has no
    record and its steps are not retained, so each delete would reset its node. The gate names
    them all."""
    raw = dev_stack()
    after = copy.deepcopy(raw)
    after["clusterName"] = "prod"
    found = destructive_gate.findings(plan(raw, after, earlier=True))
    resets = {f.name for f in found if f.what == "resets the node"}
    assert {f"kubernetes-kubeadm-{n}-{kind}" for n, kind in [
        ("ubuntu-73", "control-plane"), ("ubuntu-70", "control-plane"),
        ("ubuntu-72", "control-plane"), ("ubuntu-74", "join"), ("ubuntu-75", "join")]} == resets
    assert any(f.name == "kubernetes-access-provider" for f in found)


@pytest.mark.parametrize("op", ["replace", "delete-replaced"])
def test_a_replaced_kubernetes_provider_is_stopped(op: str) -> None:
    doc = {"steps": [{"op": op, "urn": "urn:pulumi:dev::kube-ha::pulumi:providers:kubernetes::p",
                      "oldState": {"type": "pulumi:providers:kubernetes", "inputs": {}}}]}
    assert [f.what.split(":")[0] for f in destructive_gate.findings(doc)] == [
        "replaces the Kubernetes provider"]


def test_deletes_of_retained_steps_are_not_flagged() -> None:
    """The same rename against today's state (every per-node step retained on delete): the
    engine runs none of their deletes, so only the provider's replacement is left to flag."""
    doc = plan(dev_stack(), {**dev_stack(), "clusterName": "prod"}, earlier=True)
    for step in doc["steps"]:
        if step["op"] == "delete" and step["oldState"]["type"] == "command:remote:Command":
            step["oldState"]["retainOnDelete"] = True
    found = destructive_gate.findings(doc)
    assert [f.name for f in found] == ["kubernetes-access-provider"]
