"""The paths the elastic control plane adds (kube_ha.elastic.firewall), opened and checked for
real: the firewall steps run on the world's nodes (tests/harness/script_host.py) with the
firewall-cmd stand-in (tests/harness/firewalld, which keeps firewalld's permanent config as
firewall-cmd(1) documents its --query-/--add-/--remove- verbs), and the probes dial the other
nodes' network namespaces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kube_ha.config import parse_cluster
from kube_ha.elastic.firewall import OPENED, firewall_nodes, firewall_script, openings
from kube_ha.preflight import _paths, elastic_paths, reach_check, targets
from tests.harness.hosts import host
from tests.harness.script_host import ScriptHost
from tests.program import dev_stack

FIREWALLD = Path(__file__).parent / "harness" / "firewalld"
STATE = "/etc/kubernetes/firewalld.json"  # per node: each has its own /etc/kubernetes


def on_firewalld(text: str) -> str:
    """The step as a host with firewalld running sees it (the stand-ins first on PATH)."""
    head, _, rest = text.partition("\n")
    return f"{head}\nexport PATH={FIREWALLD}:$PATH FIREWALLD_STATE={STATE}\n{rest}"


def rule(source: str, port: int) -> str:
    return (f'rule family="ipv4" source address="{source}" port port="{port}" '
            'protocol="tcp" accept')


def test_what_each_node_admits_and_who_probes_what() -> None:
    """The control plane admits the pool's workers (not a control-plane pool node) to etcd;
    each pool node admits the LB hosts to its elastic port, every host when node-local proxies
    dial it; pool workers probe etcd, LB hosts the elastic ports; the preflight probes neither
    (firewalld would refuse them before this opens them)."""
    raw = dev_stack()
    raw["elasticApiserver"]["poolNodes"] = ["ubuntu-70", "ubuntu-74"]
    c = parse_cluster(raw)
    got = {n: [(o.port, None if o.sources is None else [str(a) for a in o.sources])
               for o in opened] for n, opened in openings(c).items()}
    assert got == {"ubuntu-73": [(2379, ["10.21.22.74"])],
                   "ubuntu-70": [(2379, ["10.21.22.74"]), (7443, ["10.21.22.101"])],
                   "ubuntu-72": [(2379, ["10.21.22.74"])],
                   "ubuntu-74": [(7443, ["10.21.22.101"])]}
    raw["nodeLocalProxy"] = True
    assert openings(parse_cluster(raw))["ubuntu-74"][0].sources is None
    n = {h.name: h for h in (*c.nodes, *c.load_balancers)}
    assert [(p.name, port) for p, port, _ in elastic_paths(c, n["ubuntu-74"])] == [
        ("ubuntu-73", 2379), ("ubuntu-70", 2379), ("ubuntu-72", 2379)]
    assert [(p.name, port) for p, port, _ in elastic_paths(c, n["haproxy-101"])] == [
        ("ubuntu-70", 7443), ("ubuntu-74", 7443)]
    assert elastic_paths(c, n["ubuntu-75"]) == elastic_paths(c, n["ubuntu-70"]) == []
    for t in targets(c):
        if t.role != "control-plane":
            assert {port for _, port, _ in _paths(c, t)} == {6443}, t.key
    # Switched off: nothing to open; what the last `up` opened on a listed node is closed.
    raw["elasticApiserver"]["enabled"] = False
    off = parse_cluster(raw)
    assert openings(off) == {}
    assert [h.name for h in firewall_nodes({"elasticFirewall": ["ubuntu-70", "gone"]}, off)] \
        == ["ubuntu-70"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    raw = dev_stack()
    raw["workers"].append(host("ubuntu-76", "10.21.22.76"))
    c = parse_cluster(raw)
    wanted = openings(c)
    out: dict[str, Any] = {}

    def fw(node: str) -> dict[str, object]:
        state = json.loads(h.run(node, f"cat {STATE}").stdout)
        calls = h.run(node, f"cat {STATE}.calls").stdout.splitlines()
        return {"state": state, "calls": [json.loads(x) for x in calls],
                "opened": h.run(node, f"cat {OPENED}").stdout.splitlines()}

    with ScriptHost(tmp_path_factory.mktemp("elastic-paths"), c, real_etcd=False) as h:
        # ubuntu-72's operator had admitted ubuntu-74 to etcd already, by the same rule.
        h.run("ubuntu-72", f"echo '{json.dumps({'ports': [], 'rich_rules': [rule('10.21.22.74', 2379)]})}'"
                           f" > {STATE}")
        for node in ("ubuntu-73", "ubuntu-72"):
            out[f"{node} first"] = h.run(node, on_firewalld(firewall_script(wanted[node])))
            out[f"{node} second"] = h.run(node, on_firewalld(firewall_script(wanted[node])))
            out[f"{node} firewalld"] = fw(node)
        # The pool worker opens its elastic port to the LB and probes etcd (nothing listens:
        # refused, which passes); then with ubuntu-73 dropping what it would answer.
        check = reach_check(c, c.node("ubuntu-74"), elastic_paths(c, c.node("ubuntu-74")))
        out["ubuntu-74"] = h.run("ubuntu-74", on_firewalld(firewall_script(wanted["ubuntu-74"],
                                                                           check)))
        out["ubuntu-74 firewalld"] = fw("ubuntu-74")
        h.run("ubuntu-73", "ip route add blackhole 10.21.22.74/32\n")
        out["ubuntu-74 cut off"] = h.run("ubuntu-74", on_firewalld(
            firewall_script(wanted["ubuntu-74"], check)))
        h.run("ubuntu-73", "ip route del blackhole 10.21.22.74/32\n")
        # Switched off: each node closes what it opened, and only that.
        for node in ("ubuntu-72", "ubuntu-74"):
            out[f"{node} closed"] = h.run(node, on_firewalld(firewall_script(())))
            out[f"{node} closed firewalld"] = fw(node)
        # A host where firewalld does not run: nothing is touched, the probe still runs.
        out["no firewalld"] = h.run("ubuntu-75", firewall_script(wanted["ubuntu-74"], check))
    return out


def test_the_control_plane_admits_the_pool_workers_to_etcd_once(runs: dict[str, Any]) -> None:
    for node in ("ubuntu-73", "ubuntu-72"):
        assert runs[f"{node} first"].rc == 0 and runs[f"{node} second"].rc == 0, \
            runs[f"{node} second"].explain()
    fw = runs["ubuntu-73 firewalld"]
    assert sorted(fw["state"]["rich_rules"]) == [rule("10.21.22.74", 2379),
                                                 rule("10.21.22.75", 2379)]
    adds = [c for c in fw["calls"] if any(a.startswith("--add-") for a in c)]
    assert len(adds) == 2  # the second run adds nothing
    assert fw["calls"].count(["--reload"]) == 1
    assert fw["opened"] == [f"rich-rule={rule('10.21.22.74', 2379)}",
                            f"rich-rule={rule('10.21.22.75', 2379)}"]
    # The operator's own rule is left to them: not recorded as this program's.
    assert runs["ubuntu-72 firewalld"]["opened"] == [f"rich-rule={rule('10.21.22.75', 2379)}"]
    assert "already open (not by kube-ha" in runs["ubuntu-72 first"].stderr


def test_a_pool_worker_opens_its_port_to_the_lb_and_checks_etcd(runs: dict[str, Any]) -> None:
    assert runs["ubuntu-74"].rc == 0, runs["ubuntu-74"].explain()
    assert runs["ubuntu-74 firewalld"]["state"]["rich_rules"] == [rule("10.21.22.101", 7443)]
    cut = runs["ubuntu-74 cut off"]
    assert cut.rc == 1
    assert ("workers[0] (ubuntu-74): cannot reach the etcd client port of controlPlane[0] "
            "(ubuntu-73) at 10.21.22.73:2379 (no answer in 3 s: a firewall dropping it?)"
            ) in cut.stderr
    assert "ubuntu-70" not in cut.stderr and "ubuntu-72" not in cut.stderr


def test_switched_off_each_node_closes_only_what_it_opened(runs: dict[str, Any]) -> None:
    assert runs["ubuntu-72 closed"].rc == 0, runs["ubuntu-72 closed"].explain()
    assert runs["ubuntu-72 closed firewalld"]["state"]["rich_rules"] == [
        rule("10.21.22.74", 2379)]  # the operator's
    assert runs["ubuntu-72 closed firewalld"]["opened"] == []
    assert runs["ubuntu-74 closed firewalld"]["state"]["rich_rules"] == []


def test_without_firewalld_nothing_is_opened_and_the_probe_runs(runs: dict[str, Any]) -> None:
    res = runs["no firewalld"]
    assert res.rc == 0, res.explain()
    assert "firewalld does not run here" in res.stderr
    assert not any(c.argv[0] == "firewall-cmd" for c in res.calls)
