"""A linear-time answer to the Python SDK's cycle check, for programs of 5,000 hosts.

Before it records a dependency, the SDK asks whether the new edge would close a cycle by
walking everything upstream of the dependency (pulumi/runtime/resource_cycle_breaker.py
`declare_dependency` -> `_reachable`, called from rpc.py `_add_dependency`). Every worker
step is downstream of the preflight barrier (one step per host), so each of a worker's
dependencies walks every host's preflight: quadratic in the worker count.

The exact shortcut: an edge `a -> b` closes a cycle only if `a` is reachable from `b`, and
nothing reaches `a` while no dependency points at `a` yet. This answers that case at once
(the resource being registered usually has no dependents) and leaves every other to the
SDK's own check, so what is refused stays exactly what the SDK refuses.

Installed only over the function it was written against (the pinned SDK's); with any other
the SDK's own check runs, correct and slower.
"""

from __future__ import annotations

import weakref
from typing import Any

from pulumi.runtime import resource_cycle_breaker, rpc

_sdk_check = resource_cycle_breaker.declare_dependency
_depended_on: weakref.WeakSet[Any] = weakref.WeakSet()


def declare_dependency(from_resource: Any, to_resource: Any) -> bool:
    """resource_cycle_breaker.declare_dependency, with its walk skipped when it cannot find
    anything: record `from_resource -> to_resource` unless that closes a cycle."""
    if from_resource is not to_resource and from_resource not in _depended_on:
        resource_cycle_breaker._add_dep(from_resource, to_resource)
        _depended_on.add(to_resource)
        return True
    recorded = _sdk_check(from_resource, to_resource)
    if recorded:
        _depended_on.add(to_resource)
    return recorded


def install() -> bool:
    """Use `declare_dependency` for this program's registrations; False (nothing changed)
    when the SDK is not the one it was written against."""
    namespace = vars(rpc)  # rpc.py imports the function by name; that name is what it calls
    if namespace.get("declare_dependency") is declare_dependency:
        return True
    if namespace.get("declare_dependency") is not _sdk_check or not hasattr(
            resource_cycle_breaker, "_add_dep"):
        return False
    namespace["declare_dependency"] = declare_dependency
    return True
