"""What the last `pulumi up` of this stack recorded: its outputs, read before anything is
registered. The engine's builtin provider answers `pulumi:pulumi:readStackOutputs` from the
stack's last checkpoint (pulumi/pulumi pkg/resource/deploy/builtins.go, the invoke the Node SDK's
StackReference uses synchronously); the Python SDK's `invoke` blocks until it answers, in preview
as in up."""

from __future__ import annotations

from typing import Any

import pulumi

READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"


def this_stack() -> str:
    """Fully qualified, as a reference needs it (`organization` on a self-managed backend)."""
    org = pulumi.get_organization() or "organization"
    return f"{org}/{pulumi.get_project()}/{pulumi.get_stack()}"


def previous_outputs() -> dict[str, Any]:
    """The stack outputs of the last `up` ({} on a stack's first run)."""
    result = pulumi.runtime.invoke(READ_STACK_OUTPUTS, {"name": this_stack()})
    return dict((result.value or {}).get("outputs") or {})
