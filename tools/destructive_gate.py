"""The pull request's destructive-change gate, over `pulumi preview --json`.

Fails (exit 1) when the plan would take a node apart: run a step that resets one (a removed
node's retire step, `kubeadm reset`), change the control-plane removals step so that it
removes an etcd member (a node left its list), delete or replace a remote step whose delete
would run and reset a node or remove a member (one not retained on delete: state from an
earlier kube-ha), or replace the Kubernetes provider (and with it every in-cluster object);
unless the run says the change was approved (the PR's `approve-destructive` label). Prints a
Markdown list of those steps for the PR comment either way.

The input is the engine's documented JSON (pulumi/pulumi pkg/display/json.go `previewDigest`:
`steps[]` of `{op, urn, oldState: {type, inputs, ...}, newState, replaceReasons}`); `op` is a
deploy.StepOp: delete, replace, create-replacement, delete-replaced, update, same, ...

    pulumi preview --json > preview.json
    python -m tools.destructive_gate preview.json [--approved]
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COMMAND = "command:remote:Command"
LOCAL_COMMAND = "command:local:Command"
K8S_PROVIDER = "pulumi:providers:kubernetes"
# Ops after which the old resource's delete runs (or the provider's objects are re-created).
REMOVING = {"delete", "replace", "delete-replaced"}
DANGEROUS_DELETES = {"kubeadm reset": "resets the node", "member remove": "removes an etcd member"}
RUNNING = {"create", "update", "replace", "create-replacement"}
# The nodes the control-plane removals step takes out (kube_ha.kubeadm.etcd): `name,address`.
_DEPARTING = re.compile(r"^departing=(.*)$", re.MULTILINE)


def _departing(script: object) -> set[str]:
    found = _DEPARTING.search(script) if isinstance(script, str) else None
    if not found:
        return set()
    return {w.split(",")[0] for word in shlex.split(found.group(1)) for w in word.split()}


@dataclass(frozen=True)
class Finding:
    op: str
    name: str
    what: str


def findings(plan: dict[str, Any]) -> list[Finding]:
    out: dict[tuple[str, str], Finding] = {}
    for step in plan.get("steps") or []:
        op = step.get("op", "")
        old = step.get("oldState") or {}
        new = step.get("newState") or {}
        name = str(step.get("urn", "")).rsplit("::", 1)[-1]
        if op in RUNNING and new.get("type") == LOCAL_COMMAND and "kubeadm reset" in str(
                (new.get("inputs") or {}).get("create") or ""):
            out[(name, "retire")] = Finding(op, name, "resets the node (kubeadm reset)")
        if op in RUNNING and new.get("type") == COMMAND and "member remove" in str(
                (new.get("inputs") or {}).get("stdin") or ""):
            for node in sorted(_departing((new.get("inputs") or {}).get("stdin"))):
                out[(name, node)] = Finding(op, name, f"removes the etcd member and Node of {node}")
        # A resource retained on delete leaves state without its provider's Delete.
        if op not in REMOVING or not old or old.get("retainOnDelete"):
            continue
        kind = old.get("type")
        if kind == COMMAND:
            delete = str((old.get("inputs") or {}).get("delete") or "")
            for marker, what in DANGEROUS_DELETES.items():
                if marker in delete:
                    out[(name, what)] = Finding(op, name, what)
        elif kind == K8S_PROVIDER:
            out[(name, "provider")] = Finding(
                op, name, "replaces the Kubernetes provider: every in-cluster object is re-created")
    return list(out.values())


def report(found: list[Finding], approved: bool) -> str:
    if not found:
        return "No step of this plan resets a node, removes an etcd member or replaces the Kubernetes provider."
    lines = ["**Destructive changes in this plan**" + (" (approved)" if approved else
             " — add the `approve-destructive` label if they are intended:")]
    lines += [f"- `{f.name}` ({f.op}): {f.what}" for f in sorted(found, key=lambda f: f.name)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("preview", type=Path, help="the output of `pulumi preview --json`")
    p.add_argument("--approved", action="store_true", help="the PR carries the approval label")
    args = p.parse_args(argv)
    found = findings(json.loads(args.preview.read_text()))
    print(report(found, args.approved))
    return 1 if found and not args.approved else 0


if __name__ == "__main__":
    sys.exit(main())
