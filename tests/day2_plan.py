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
Before any of that the engine puts back the old value of every `ignore_changes` input.
Component resources carry no inputs of their own and are left out.

`preview_plan` is the same edit as `pulumi preview` shows it: the engine answers with the
recorded outputs of a resource whose inputs are unchanged, and leaves unknown every output a
provider computes for one it would create, update or replace (`PreviewMocks`); whatever reads
those outputs then sees unknown inputs, and is planned from them as the providers would.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tests.mocks import ClusterMocks, plain
from tests.program import Run, dev_stack, run_after, run_program

Edit = Callable[[dict[str, Any]], None]
OPS = ("create", "delete", "forget", "replace", "update")


def _replaces(typ: str, old: dict[str, Any], new: dict[str, Any],
              secrets_mutable: bool = False) -> bool:
    if typ.startswith("command:"):
        return old.get("triggers") != new.get("triggers")
    if typ.startswith("tls:"):
        return True
    if typ == "pulumi:providers:kubernetes":
        return old.get("clusterIdentifier") != new.get("clusterIdentifier")
    mutable = secrets_mutable and typ == "kubernetes:core/v1:Secret"
    if typ in ("kubernetes:core/v1:Secret", "kubernetes:core/v1:ConfigMap") and not mutable and any(
            old.get(k) != new.get(k) for k in ("data", "stringData", "binaryData")):
        return True
    return (old.get("metadata") or {}).get("name") != (new.get("metadata") or {}).get("name")


def _secrets_mutable(run: Run) -> bool:
    """Whether the run's Kubernetes provider patches Secrets (`enableSecretMutable`)."""
    providers = run.mocks.by_type("pulumi:providers:kubernetes")
    return any(str(plain(p.inputs).get("enableSecretMutable")).lower() == "true"
               for p in providers)


def plan_between(before: Run, after: Run) -> dict[str, set[str]]:
    """Classes every resource by the inputs the engine stores for it (ignored inputs keep
    their old values: ClusterMocks.engine_inputs)."""
    a = {r.name: (r.typ, before.mocks.stored[r.name]) for r in before.mocks.resources}
    b = {r.name: (r.typ, after.mocks.stored[r.name]) for r in after.mocks.resources}
    mutable = _secrets_mutable(after)
    out: dict[str, set[str]] = {op: set() for op in OPS}
    for name in a.keys() | b.keys():
        typ = (b.get(name) or a[name])[0]
        if typ.startswith("kube-ha:"):
            continue
        if name not in a:
            out["create"].add(name)
        elif name not in b:
            out["forget" if before.reg(name).retain_on_delete else "delete"].add(name)
        else:
            new = b[name][1]
            trigger_changed = after.mocks.triggers.get(name) != before.mocks.triggers.get(name)
            if trigger_changed or new != a[name][1] or a[name][0] != b[name][0]:
                replace = trigger_changed or _replaces(typ, a[name][1], new, mutable)
                out["replace" if replace else "update"].add(name)
    return out


class PreviewMocks(ClusterMocks):
    """The engine and providers in `pulumi preview` after the run `before`. A resource the
    engine sees unchanged keeps its recorded outputs (ClusterMocks.after). Any other gets back
    only its inputs, so each output its provider computes is unknown: pulumi-command 1.2.1
    marks `stdout` computed in a preview update whenever an input changed (pulumi-go-provider
    v1.3.0 infer/resource.go markComputed: every output depends on every input), and a created
    or replaced resource's computed outputs (a tls key or certificate, a command's stdout) are
    unknown in preview."""

    def computed(self, typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        if typ == "pulumi:pulumi:StackReference":  # a read: the engine answers it in preview too
            return super().computed(typ, name, inputs)
        return dict(inputs)


def plan(edit: Edit, start: Callable[[], dict[str, Any]] = dev_stack, preview: bool = False
         ) -> tuple[dict[str, set[str]], Run, Run]:
    """The plan of `edit` applied to the stack `start()` after an `up` of it: what `up` does,
    or with `preview` what `pulumi preview` shows."""
    raw = start()
    before = run_program(raw)
    changed = copy.deepcopy(raw)
    edit(changed)
    after = run_after(before, changed, preview=preview,
                      mocks=PreviewMocks() if preview else None)
    return plan_between(before, after), before, after


def preview_plan(edit: Edit, start: Callable[[], dict[str, Any]] = dev_stack
                 ) -> tuple[dict[str, set[str]], Run, Run]:
    """The plan `pulumi preview` shows for `edit` applied to `start()` after an `up` of it."""
    return plan(edit, start, preview=True)
