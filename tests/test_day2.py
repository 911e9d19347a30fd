"""Day-2 edits against what the last `up` deployed: the program reads its own last outputs
(`membership`, through the engine's `pulumi:pulumi:readStackOutputs`, builtins.go) before it
registers anything, and refuses an edit that would re-create steps whose deletes reset a host
that is still wanted, naming the key. In preview as in up.

Removing a node is carried out by steps that never run on it (it may be dead): the removals
step on the bootstrap node, then the node's retire step from where `pulumi up` runs. The
engine never runs a per-node step's delete: each one is retained on delete (Pulumi's
`retainOnDelete`: the engine removes it from state without calling the provider's Delete,
pulumi/pulumi#8746), so pulumi-command's "a delete fails when its host is gone" (#104) cannot
fail an `up`, and `pulumi destroy` resets nothing."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from components.config import InvalidConfig
from components.kubeadm import MEMBERSHIP_STEP
from kube_ha.config import parse_cluster
from kube_ha.membership import membership_record
from tests.harness.hosts import host
from tests.mocks import ClusterMocks, is_secret, plain
from tests.program import SSH_KEY, dev_stack, run_program, value_of

Edit = Callable[[dict[str, Any]], None]


def deployed() -> dict[str, Any]:
    """The `membership` output the dev stack's last `up` left (__main__ exports this)."""
    record = membership_record(parse_cluster(dev_stack()))
    assert record["nodes"]["10.21.22.73"] == {
        "name": "ubuntu-73", "role": "controlPlane", "user": "root", "port": 22,
        "hostKey": dev_stack()["controlPlane"][0]["hostKey"]}
    assert record["perNodeDeletes"] == "retained"
    return record


def _run(edit: Edit, preview: bool, record: dict[str, Any] | None = None) -> Any:
    raw = copy.deepcopy(dev_stack())
    edit(raw)
    mocks = ClusterMocks()
    mocks.previous_outputs = {"membership": deployed() if record is None else record}
    return run_program(raw, preview=preview, mocks=mocks)


def _remove_bootstrap(raw: dict[str, Any]) -> None:
    raw["controlPlane"].pop(0)  # ubuntu-73: the first listed of the rest becomes bootstrap
    raw["allowEvenControlPlane"] = True


def _bootstrap_a_new_node(raw: dict[str, Any]) -> None:
    del raw["controlPlane"][0]["bootstrap"]
    raw["controlPlane"].insert(0, {**host("ubuntu-60", "10.21.22.60"), "bootstrap": True})
    raw["allowEvenControlPlane"] = True


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
    ("give a node a new address", lambda r: r["workers"][1].update(address="10.21.22.85"),
     "workers[1].address"),
    ("make a node the last up never deployed the bootstrap node", _bootstrap_a_new_node,
     "controlPlane[0].bootstrap"),
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
    assert value_of(ha.recorded["membership"]) == deployed()


def _earlier_record() -> dict[str, Any]:
    """The record an earlier kube-ha left: no ssh fields, no perNodeDeletes (its steps in
    the stack carry deletes the engine would run on the removed node)."""
    record = deployed()
    del record["perNodeDeletes"]
    for v in record["nodes"].values():
        for k in ("user", "port", "hostKey"):
            del v[k]
    return record


@pytest.mark.parametrize("preview", [True, False])
def test_a_removal_against_an_earlier_kube_has_record_is_refused_until_one_up_ran(
        preview: bool) -> None:
    """Those steps' state still says `retainOnDelete: false`, and the engine acts on the
    stored option for a resource that leaves the program ("the data saved to state defines
    what we do with the old version", pulumi/pulumi#13428): the old delete hooks would run on
    the removed node. One `up` with the node still listed records the option."""
    with pytest.raises(InvalidConfig) as err:
        _run(_remove_bootstrap, preview, record=_earlier_record())
    assert "kube-ha:controlPlane: ubuntu-73 (10.21.22.73) left the list" in str(err.value)
    assert "run `pulumi up` once with it still listed" in str(err.value)
    kept = _run(lambda r: None, preview, record=_earlier_record())
    assert kept.scope["last"].departed == []


def _per_node_steps(run: Any) -> list[Any]:
    return [r for r in run.monitor.registrations.values()
            if r.typ == "command:remote:Command"
            and r.name.endswith(("-control-plane", MEMBERSHIP_STEP, "-join"))]


def test_no_step_on_a_node_has_a_delete_the_engine_would_run() -> None:
    """The generic guard: every remote step that carries a `delete` is retained on delete, so
    no edit (a removal, a rename that slipped through, `pulumi destroy`) resets a host or
    removes an etcd member by a delete. The join steps keep the delete they were recorded
    with (a changed input re-runs the step: pulumi-command 1.2.1 Update runs `update`/`create`
    on any input change, remote/commandController.go), never run."""
    run = run_program(dev_stack())
    with_delete = [r.name for r in run.mocks.by_type("command:remote:Command")
                   if r.inputs.get("delete")]
    assert with_delete, "the join steps still carry their recorded delete"
    assert all(run.reg(n).retain_on_delete for n in with_delete)
    per_node = _per_node_steps(run)
    assert len(per_node) == 3 + 3 + 2  # control-plane + membership per CP node, join per worker
    assert all(r.retain_on_delete for r in per_node)
    assert not any(run.reg(n).retain_on_delete for n in (
        "kubernetes-kubeadm-control-plane-removals", "kubernetes-kubeadm-workers"))


def test_removing_the_bootstrap_node_takes_it_out_from_a_surviving_member() -> None:
    """The old bootstrap node ubuntu-73 leaves; ubuntu-70 becomes the bootstrap node. The
    removals step runs on ubuntu-70 with the list without ubuntu-73 (it removes ubuntu-73's
    member and Node, tests/test_script_runs.py); ubuntu-73's retire step (local) runs after
    it; no remote step reaches ubuntu-73 any more; the record names ubuntu-73 no longer,
    once the retire step is done."""
    run = _run(_remove_bootstrap, preview=False)
    removals = run.inputs("kubernetes-kubeadm-control-plane-removals")
    assert plain(removals["connection"])["host"] == "10.21.22.70"
    script = plain(removals["stdin"])
    assert "departing=ubuntu-73,10.21.22.73\n" in script
    remote_hosts = {plain(r.inputs["connection"])["host"]
                    for r in run.mocks.by_type("command:remote:Command")}
    assert "10.21.22.73" not in remote_hosts
    (retired,) = run.mocks.by_type("command:local:Command")
    assert retired.name == "kubernetes-kubeadm-ubuntu-73-retire"
    assert "-- 10.21.22.73 " in retired.inputs["create"]
    assert "kube-ha-retired-node " + dev_stack()["controlPlane"][0]["hostKey"] in (
        retired.inputs["create"])
    assert is_secret(retired.inputs["stdin"]) and plain(retired.inputs["stdin"]) == SSH_KEY
    assert SSH_KEY.splitlines()[1] not in retired.inputs["create"]
    assert "kubernetes-kubeadm-control-plane-removals" in run.upstream(retired.name)
    record = value_of(run.scope["ha"].recorded["membership"])
    assert "10.21.22.73" not in record["nodes"] and "10.21.22.70" in record["nodes"]


def test_a_removed_worker_is_retired_after_the_workers_step() -> None:
    run = _run(_remove_worker, preview=False)
    (retired,) = run.mocks.by_type("command:local:Command")
    assert retired.name == "kubernetes-kubeadm-ubuntu-75-retire"
    assert "kubernetes-kubeadm-workers" in run.upstream(retired.name)
    create = retired.inputs["create"]
    assert "-p 22 -l root " in create and "-- 10.21.22.75 " in create


def test_nothing_is_retired_without_a_removal() -> None:
    run = _run(lambda r: None, preview=False)
    assert not run.mocks.by_type("command:local:Command")
    assert run.scope["last"].departed == []


def _resources_behind(output: Any) -> set[str]:
    """Names of the resources an Output waits for (what must succeed for it to resolve)."""
    names: list[str] = []

    @pulumi.runtime.test
    def collect() -> pulumi.Output[None]:
        async def read() -> None:
            names.extend(r._name for r in await output.resources())
        done: pulumi.Output[None] = pulumi.Output.from_input(asyncio.ensure_future(read()))  # type: ignore[arg-type]
        return done

    collect()
    return set(names)


def test_the_record_moves_on_only_once_the_departed_are_retired() -> None:
    """The `membership` output waits for each departed node's retire step (which waits for
    the removals step): in an `up` where either fails it never resolves, the engine keeps the
    last record (pulumi/pulumi#15754), and the next run still sees the node as departed and
    removes and retires it again. So does the elastic pool step: a worker that left the pool
    is untainted again. Without either the record is a plain value."""
    removing = _run(_remove_bootstrap, preview=False)
    record = removing.scope["ha"].recorded["membership"]
    assert isinstance(record, pulumi.Output)
    assert _resources_behind(record) == {"kubernetes-kubeadm-ubuntu-73-retire",
                                         "kubernetes-kubeadm-elastic-pool",
                                         "kubernetes-elastic-paths-haproxy-101-reach",
                                         *(f"kubernetes-elastic-paths-ubuntu-{n}-firewall"
                                           for n in (70, 72, 74, 75))}
    untainted = {**deployed(), "elasticPool": [], "elasticFirewall": []}
    unchanged = _run(lambda r: r["elasticApiserver"].update(enabled=False), preview=False,
                     record=untainted)
    assert unchanged.scope["ha"].recorded["membership"] == untainted
