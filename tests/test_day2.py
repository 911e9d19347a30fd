"""Day-2 edits against what the last `up` deployed: the program reads its own last outputs
(`membership`, through the engine's `pulumi:pulumi:readStackOutputs`, builtins.go) before it
registers anything, and refuses an edit that would re-create steps whose deletes reset a host
that is still wanted, naming the key. In preview as in up."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from components.config import InvalidConfig
from kube_ha.config import parse_cluster
from kube_ha.membership import membership_record
from tests.harness.hosts import host
from tests.mocks import ClusterMocks
from tests.program import dev_stack, run_program

Edit = Callable[[dict[str, Any]], None]


def deployed() -> dict[str, Any]:
    """The `membership` output the dev stack's last `up` left (__main__ exports this)."""
    record = membership_record(parse_cluster(dev_stack()))
    assert record["nodes"]["10.21.22.73"] == {"name": "ubuntu-73", "role": "controlPlane"}
    return record


def _run(edit: Edit, preview: bool) -> Any:
    raw = copy.deepcopy(dev_stack())
    edit(raw)
    mocks = ClusterMocks()
    mocks.previous_outputs = {"membership": deployed()}
    return run_program(raw, preview=preview, mocks=mocks)


def _rename_node(raw: dict[str, Any]) -> None:
    raw["workers"][0]["name"] = "ubuntu-74-new"
    raw["elasticApiserver"]["poolNodes"] = ["ubuntu-74-new", "ubuntu-75"]


def _remove_worker(raw: dict[str, Any]) -> None:
    raw["workers"].pop()
    raw["elasticApiserver"].update(poolNodes=["ubuntu-74"], maxReplicas=1)


def _to_control_plane(raw: dict[str, Any]) -> None:
    raw["controlPlane"].append(raw["workers"].pop(0))
    raw["allowEvenControlPlane"] = True


def _to_workers_by_name(raw: dict[str, Any]) -> None:
    moved = raw["controlPlane"].pop(1)
    raw["workers"].append({**moved, "address": "10.21.22.90"})  # a new address, the same name
    raw["allowEvenControlPlane"] = True


@pytest.mark.parametrize("preview", [True, False])
@pytest.mark.parametrize("what, edit, key", [
    ("rename the cluster", lambda r: r.update(clusterName="prod"), "clusterName"),
    ("rename a node at the same address", _rename_node, "workers[0].name"),
    ("move a worker to the control plane", _to_control_plane, "controlPlane[3]"),
    ("move a control-plane node to the workers, new address", _to_workers_by_name, "workers[2]"),
])
def test_edits_that_would_reset_wanted_hosts_are_refused(what: str, edit: Edit, key: str,
                                                        preview: bool) -> None:
    with pytest.raises(InvalidConfig) as err:
        _run(edit, preview)
    assert f"kube-ha:{key}: " in str(err.value), str(err.value)
    assert "Fix:" in str(err.value)


@pytest.mark.parametrize("what, edit", [
    ("nothing", lambda r: None),
    ("add a worker", lambda r: r["workers"].append(host("ubuntu-76", "10.21.22.76"))),
    ("remove a worker", _remove_worker),
    ("remove a control-plane node", lambda r: (r["controlPlane"].pop(),
                                                r.update(allowEvenControlPlane=True))),
    ("give a node a new address", lambda r: r["workers"][1].update(address="10.21.22.85")),
])
def test_ordinary_edits_pass(what: str, edit: Edit) -> None:
    run = _run(edit, preview=False)
    assert run.mocks.by_type("command:remote:Command")


def test_a_stack_without_a_record_is_not_checked() -> None:
    """A stack's first run, or its first with this version: nothing to compare against."""
    raw = copy.deepcopy(dev_stack())
    raw["clusterName"] = "prod"
    assert run_program(raw).mocks.by_type("command:remote:Command")


def test_the_program_records_what_the_next_run_reads_back() -> None:
    """The outputs __main__ exports from `ha.recorded` are the ones the next run reads (the
    policy pack reads controlPlaneCopies by that name too)."""
    ha = run_program(dev_stack()).scope["ha"]
    assert set(ha.recorded) == {"controlPlaneCopies", "clusterIdentifier", "membership"}
    assert ha.recorded["membership"] == deployed()
