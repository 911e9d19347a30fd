"""What `pulumi up` would do after a config edit, judged as the engine and the pinned
providers judge it, from two runs of the real program under the engine mocks.

The previous run's `membership` output is read back (as the engine answers
readStackOutputs), then each resource is classed by what the step would be:
- create / delete: registered by one run only. A delete of a resource retained on delete
  (`retainOnDelete`) calls no provider (pulumi/pulumi#8746): kept apart as `forget`.
- replace / update, by the providers' own rules for changed inputs:
  pulumi-command 1.2.1: only `triggers` replace (pulumi-command #855, #189; its Update runs
  the `update`/`create` command on any other change, provider remote/commandController.go);
  pulumi-tls 5.x: every input of PrivateKey, CertRequest, LocallySignedCert forces a new
  resource (terraform-provider-tls schemas: RequiresReplace on each attribute), and the
  engine replaces on a changed `replacement_trigger`;
  pulumi-kubernetes 4.x: a Secret's or ConfigMap's data replaces it unless the provider
  enables them mutable (provider/pkg/provider/provider.go, `enableSecretMutable`), a changed
  `metadata.name` replaces any object, and the provider is replaced when its
  `cluster_identifier` changes; anything else is an update.
Component resources carry no inputs of their own and are left out.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tests.mocks import plain
from tests.program import Run, dev_stack, run_after, run_program

Edit = Callable[[dict[str, Any]], None]
OPS = ("create", "delete", "forget", "replace", "update")


def _replaces(typ: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    if typ.startswith("command:"):
        return old.get("triggers") != new.get("triggers")
    if typ.startswith("tls:"):
        return True
    if typ == "pulumi:providers:kubernetes":
        return old.get("clusterIdentifier") != new.get("clusterIdentifier")
    if typ in ("kubernetes:core/v1:Secret", "kubernetes:core/v1:ConfigMap") and any(
            old.get(k) != new.get(k) for k in ("data", "stringData", "binaryData")):
        return True
    return (old.get("metadata") or {}).get("name") != (new.get("metadata") or {}).get("name")


def plan_between(before: Run, after: Run) -> dict[str, set[str]]:
    a = {r.name: (r.typ, plain(r.inputs)) for r in before.mocks.resources}
    b = {r.name: (r.typ, plain(r.inputs)) for r in after.mocks.resources}
    out: dict[str, set[str]] = {op: set() for op in OPS}
    for name in a.keys() | b.keys():
        typ = (b.get(name) or a[name])[0]
        if typ.startswith("kube-ha:"):
            continue
        if name not in a:
            out["create"].add(name)
        elif name not in b:
            out["forget" if before.reg(name).retain_on_delete else "delete"].add(name)
        elif a[name][1] != b[name][1] or a[name][0] != b[name][0]:
            out["replace" if _replaces(typ, a[name][1], b[name][1]) else "update"].add(name)
    return out


def plan(edit: Edit, start: Callable[[], dict[str, Any]] = dev_stack
         ) -> tuple[dict[str, set[str]], Run, Run]:
    """The plan of `edit` applied to the stack `start()` after an `up` of it."""
    raw = start()
    before = run_program(raw)
    changed = copy.deepcopy(raw)
    edit(changed)
    after = run_after(before, changed)
    return plan_between(before, after), before, after
