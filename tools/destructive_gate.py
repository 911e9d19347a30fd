"""The pull request's destructive-change gate, over `pulumi preview --json`.

Fails (exit 1) when the plan would delete or replace a remote step whose delete resets a node
(`kubeadm reset`) or removes an etcd member (`etcdctl ... member remove`), or would replace the
Kubernetes provider (and with it every in-cluster object), unless the run says the change was
approved (the PR's `approve-destructive` label). Prints a Markdown list of those steps for the
PR comment either way.

The input is the engine's documented JSON (pulumi/pulumi pkg/display/json.go `previewDigest`:
`steps[]` of `{op, urn, oldState: {type, inputs, ...}, newState, replaceReasons}`); `op` is a
deploy.StepOp: delete, replace, create-replacement, delete-replaced, update, same, ...

    pulumi preview --json > preview.json
    python -m tools.destructive_gate preview.json [--approved]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COMMAND = "command:remote:Command"
K8S_PROVIDER = "pulumi:providers:kubernetes"
# Ops after which the old resource's delete runs (or the provider's objects are re-created).
REMOVING = {"delete", "replace", "delete-replaced"}
DANGEROUS_DELETES = {"kubeadm reset": "resets the node", "member remove": "removes an etcd member"}


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
        if op not in REMOVING or not old:
            continue
        name = str(step.get("urn", "")).rsplit("::", 1)[-1]
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
