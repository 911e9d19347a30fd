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
from tests.program import dev_stack, run_program
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


def plan(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    old, new = run_program(before), run_program(after)

    def states(run: Any) -> dict[str, dict[str, Any]]:
        return {reg.urn: {"urn": reg.urn, "type": reg.typ,
                          "inputs": _shown(run.mocks.named(reg.name).inputs)}
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
        assert f"`kubernetes-kubeadm-{node}-membership` (delete): removes an etcd member" in text
        assert f"`kubernetes-kubeadm-{node}-control-plane` (delete): resets the node" in text
    assert "ubuntu-73" not in text
    code, text = _gate(tmp_path, doc, "--approved")
    assert code == 0 and "(approved)" in text


def test_renaming_the_cluster_is_stopped() -> None:
    """clusterName is in every resource name today: a rename deletes every old step, each
    delete resetting its node (day-2 review F1). The gate names them all."""
    raw = dev_stack()
    after = copy.deepcopy(raw)
    after["clusterName"] = "prod"
    found = destructive_gate.findings(plan(raw, after))
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
