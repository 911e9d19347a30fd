"""components/dependency_check.py answers the SDK's cycle check exactly as the SDK does
(pulumi/runtime/resource_cycle_breaker.py), only without walking when it cannot find a cycle."""

from __future__ import annotations

import random
from typing import Any

import pulumi
import pytest
from pulumi.runtime import resource_cycle_breaker, rpc

from components import dependency_check
from tests.mocks import ClusterMocks


class Node:
    """Stands for a Resource: the check only needs identity and an attribute."""


@pytest.mark.parametrize("seed", range(20))
def test_same_answers_and_same_graph_as_the_sdk(seed: int) -> None:
    """Random declarations, cycles and self-dependencies included, in registration order
    (a resource declares its dependencies on earlier or later ones): every answer and the
    recorded graph equal the SDK's own."""
    rng = random.Random(seed)
    n = 40
    ours: list[Any] = [Node() for _ in range(n)]
    sdks: list[Any] = [Node() for _ in range(n)]
    pairs = [(rng.randrange(n), rng.randrange(n)) for _ in range(300)]
    for a, b in pairs:
        assert (dependency_check.declare_dependency(ours[a], ours[b])
                == resource_cycle_breaker.declare_dependency(sdks[a], sdks[b])), (a, b)
    for mine, theirs in zip(ours, sdks, strict=True):
        assert {ours.index(d) for d in resource_cycle_breaker._deps(mine)} == {
            sdks.index(d) for d in resource_cycle_breaker._deps(theirs)}


def test_installed_by_the_program_and_a_cycle_is_still_refused() -> None:
    """The program installs it over the pinned SDK's function; a resource that depends on the
    component it is a child of (a cycle, pulumi/pulumi#12032) is refused as the SDK refuses
    it."""
    assert dependency_check.install()
    assert vars(rpc)["declare_dependency"] is dependency_check.declare_dependency
    pulumi.runtime.set_mocks(ClusterMocks(), project="kube-ha", stack="dev", preview=False)

    @pulumi.runtime.test
    def program() -> None:
        first = pulumi.ComponentResource("test:index:First", "first")
        second = pulumi.ComponentResource("test:index:Second", "second",
                                          opts=pulumi.ResourceOptions(parent=first,
                                                                      depends_on=[first]))
        pulumi.CustomResource("test:index:Leaf", "leaf",
                              opts=pulumi.ResourceOptions(parent=second))

    with pytest.raises(RuntimeError, match="circular dependency"):
        program()
