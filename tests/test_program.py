"""The whole program under engine mocks: components, parents, secrets, ordering."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from kube_ha.config import parse_cluster
from tests.harness.hosts import host
from tests.mocks import is_secret, plain
from tests.program import SSH_KEY, Run, dev_stack, run_after, run_program, scaled_stack, vip_stack

COMMAND = "command:remote:Command"


def _commands(run: Run) -> dict[str, Any]:
    return {r.name: r for r in run.mocks.by_type(COMMAND)}


def test_each_concept_has_its_component_and_each_host_its_steps(dev: Run) -> None:
    names = set(_commands(dev))
    assert {
        "kubernetes-pki-read-ca",
        "kubernetes-lb-haproxy-101-install",
        "kubernetes-lb-haproxy-101-configure",
        "kubernetes-kubeadm-ubuntu-73-control-plane",
        "kubernetes-kubeadm-ubuntu-70-control-plane",
        "kubernetes-kubeadm-ubuntu-72-control-plane",
        "kubernetes-kubeadm-ubuntu-74-join",
        "kubernetes-kubeadm-ubuntu-75-join",
    } <= names
    types = {r.typ for r in dev.mocks.resources}
    assert {"kube-ha:index:HaCluster", "kube-ha:lb:LoadBalancer",
            "kube-ha:tls:ClusterCertificates", "kube-ha:kubeadm:ControlPlane",
            "kube-ha:kubeadm:Workers"} <= types


def test_every_step_is_a_child_of_its_concepts_component(dev: Run) -> None:
    top = dev.reg("kubernetes").urn
    lb = dev.reg("kubernetes-lb")
    assert lb.parent == top
    for step in ("install", "configure"):
        assert dev.reg(f"kubernetes-lb-haproxy-101-{step}").parent == lb.urn
    control_plane, workers = dev.reg("kubernetes-kubeadm").urn, dev.reg("kubernetes-workers")
    assert workers.typ == "kube-ha:kubeadm:Workers" and workers.parent == top
    for step in ("ubuntu-73-control-plane", "ubuntu-70-join-credentials", "ubuntu-70-membership",
                 "revoke-join-credentials", "kube-proxy"):
        assert dev.reg(f"kubernetes-kubeadm-{step}").parent == control_plane, step
    for step in ("workers", "ubuntu-74-join-credentials", "ubuntu-74-join", "ubuntu-75-join"):
        assert dev.reg(f"kubernetes-kubeadm-{step}").parent == workers.urn, step
    assert dev.reg("kubernetes-pki-read-ca").parent == dev.reg("kubernetes-pki").urn


def test_lb_commands_target_lb_host_and_carry_the_rendered_cfg(dev: Run) -> None:
    configure = plain(dev.inputs("kubernetes-lb-haproxy-101-configure"))
    assert configure["connection"]["host"] == "10.21.22.101"
    assert configure["create"] == configure["update"]
    assert "timeout -k 30 1800 bash -s" in configure["create"] and configure["create"].startswith("sh -c ")
    script = configure["stdin"]
    assert "server ubuntu-73 10.21.22.73:6443" in script
    assert "haproxy -c -q -f \"$tmp\"" in script
    # The cluster CA read from the bootstrap node is what haproxy verifies against.
    assert dev.mocks.ca.cert_pem.strip() in script


def test_ssh_key_is_secret_and_never_in_a_command_string(dev: Run) -> None:
    for name, rec in _commands(dev).items():
        conn = rec.inputs["connection"]
        key = conn["privateKey"] if not is_secret(conn) else conn["value"]["privateKey"]
        assert is_secret(key) or is_secret(conn), f"{name}: SSH key not secret"
        for field in ("create", "update", "delete"):
            assert "TEST-SSH-KEY-MATERIAL" not in str(plain(rec.inputs.get(field))), name
        stdin = rec.inputs.get("stdin")
        if not is_secret(stdin):
            assert "TEST-SSH-KEY-MATERIAL" not in str(stdin), name
    assert SSH_KEY  # the material the checks above look for


MOCK_TOKEN = re.compile(r"abcdef\.[0-9a-f]{16}")  # the join tokens ClusterMocks prints


def test_scripts_carrying_keys_or_tokens_are_secret(dev: Run) -> None:
    cmds = _commands(dev)
    for name in ("kubernetes-lb-haproxy-101-configure", "kubernetes-kubeadm-ubuntu-73-control-plane",
                 "kubernetes-kubeadm-ubuntu-70-control-plane", "kubernetes-kubeadm-ubuntu-74-join"):
        stdin = cmds[name].inputs["stdin"]
        assert is_secret(stdin), f"{name}: stdin carries a key or token but is not secret"
        assert "PRIVATE KEY" in plain(stdin) or MOCK_TOKEN.search(plain(stdin))
    for name, rec in cmds.items():
        if not is_secret(rec.inputs.get("stdin")):
            assert "PRIVATE KEY-----\n" not in str(rec.inputs.get("stdin")), name
            assert not MOCK_TOKEN.search(str(rec.inputs.get("stdin"))), name
    for name in ("kubernetes-pki-read-ca", "kubernetes-kubeadm-ubuntu-70-join-credentials",
                 "kubernetes-kubeadm-ubuntu-74-join-credentials"):
        assert "stdout" in dev.reg(name).secret_outputs, f"{name}: stdout not secret"
        assert plain(cmds[name].inputs["logging"]) == "none"
        # pulumi-command sends the previous stdout to update/delete runs as PULUMI_COMMAND_STDOUT
        # unless this is false (sdk remote/command.py: "Defaults to true").
        assert plain(cmds[name].inputs.get("addPreviousOutputInEnv")) is False, name


def test_no_command_uses_triggers_or_copy_to_remote(dev: Run) -> None:
    # triggers always replace (create-then-delete); CopyToRemote fails in preview.
    for rec in dev.mocks.resources:
        assert "triggers" not in rec.inputs, rec.name
        assert rec.typ != "command:remote:CopyToRemote"


def _deps(run: Run, name: str) -> set[str]:
    return {run.monitor.by_urn(u).name for u in run.reg(name).dependencies}


def test_control_plane_joins_form_a_chain_and_workers_depend_on_their_own_credentials(
        dev: Run) -> None:
    assert "kubernetes-lb-haproxy-101-configure" in _deps(
        dev, "kubernetes-kubeadm-ubuntu-73-serving-certificate")
    chain = ["kubernetes-kubeadm-ubuntu-73-serving-certificate",
             "kubernetes-kubeadm-ubuntu-70-serving-certificate",
             "kubernetes-kubeadm-ubuntu-72-serving-certificate",
             "kubernetes-kubeadm-ubuntu-73-control-plane", "kubernetes-kubeadm-ubuntu-73-membership",
             "kubernetes-kubeadm-ubuntu-70-join-credentials",
             "kubernetes-kubeadm-ubuntu-70-control-plane", "kubernetes-kubeadm-ubuntu-70-membership",
             "kubernetes-kubeadm-ubuntu-72-join-credentials",
             "kubernetes-kubeadm-ubuntu-72-control-plane", "kubernetes-kubeadm-ubuntu-72-membership"]
    for before, after in itertools.pairwise(chain):
        assert before in _deps(dev, after), (before, after)
    for w in ("ubuntu-74", "ubuntu-75"):
        assert _deps(dev, f"kubernetes-kubeadm-{w}-join-credentials") == {
            "kubernetes-kubeadm-ubuntu-73-control-plane"}
        assert _deps(dev, f"kubernetes-kubeadm-{w}-join") == {
            f"kubernetes-kubeadm-{w}-join-credentials", "kubernetes-kubeadm-kube-proxy"}
    # kube-proxy's shared kubeconfig names the endpoint, which answers once the bootstrap step
    # is done: re-pointed then, before any worker's step (one switching its node-local proxy
    # off removes it only after kube-proxy's kubeconfig stops naming it).
    assert _deps(dev, "kubernetes-kubeadm-kube-proxy") == {
        "kubernetes-kubeadm-ubuntu-73-control-plane"}
    # The revocation waits for every join.
    assert _deps(dev, "kubernetes-kubeadm-revoke-join-credentials") == {
        "kubernetes-kubeadm-ubuntu-72-membership", "kubernetes-kubeadm-ubuntu-74-join",
        "kubernetes-kubeadm-ubuntu-75-join"}


def test_with_node_local_proxies_kube_proxy_is_re_pointed_after_every_worker() -> None:
    """With node-local proxies kube-proxy's kubeconfig says 127.0.0.1, which answers on a
    worker only once its step installed the proxy: that step comes last."""
    run = run_program({**dev_stack(), "nodeLocalProxy": True})
    assert _deps(run, "kubernetes-kubeadm-kube-proxy") == {
        "kubernetes-kubeadm-ubuntu-72-membership", "kubernetes-kubeadm-ubuntu-74-join",
        "kubernetes-kubeadm-ubuntu-75-join"}
    for w in ("ubuntu-74", "ubuntu-75"):
        assert "kubernetes-kubeadm-kube-proxy" not in run.upstream(f"kubernetes-kubeadm-{w}-join")


@pytest.mark.parametrize("stack", [dev_stack(), vip_stack(), {**dev_stack(), "nodeLocalProxy": True}],
                         ids=["LB", "virtual IP", "node-local proxies"])
def test_no_client_is_pointed_at_the_endpoint_before_every_apiserver_serves_its_certificate(
        stack: dict[str, Any]) -> None:
    """haproxy verifies a DNS name in its check (`verifyhost`) but not an IP SAN, so with an
    IP-only endpoint only the order keeps a client from reaching a backend still on a
    certificate without the address it dialled (the real-kubeadm issue, item 6): every step
    that points a client at the endpoint (bootstrap re-points cluster-info and its
    kubeconfigs; joins and workers dial it) waits for every control-plane node's
    serving-certificate step, and those run one at a time."""
    run = run_program(stack)
    cluster = parse_cluster(stack)
    serving = [f"kubernetes-kubeadm-{n.name}-serving-certificate" for n in cluster.control_plane]
    for before, after in itertools.pairwise(serving):
        assert before in _deps(run, after), (before, after)
    dialling = [r.name for r in run.monitor.registrations.values()
                if r.typ == "command:remote:Command" and r.name.startswith("kubernetes-kubeadm-")
                and r.name.endswith(("-control-plane", "-join", "-kube-proxy"))]
    assert len(dialling) == len(cluster.control_plane) + len(cluster.workers) + 1
    for name in dialling:
        assert set(serving) <= run.upstream(name), name


def test_a_worker_added_later_gets_fresh_credentials_and_no_other_worker_re_runs() -> None:
    """kubeadm's bootstrap tokens expire (1 h here): a worker added on day 2 must join with a
    token created in the same `up`. Its own credentials step is new, so it runs in that `up`;
    every existing worker's steps keep their inputs, so none re-runs."""

    before = run_program(dev_stack())
    raw = dev_stack()
    raw["workers"].append(host("ubuntu-76", "10.21.22.76"))
    after = run_program(raw)
    old = {r.name: r.inputs for r in before.mocks.resources}
    new = {r.name: r.inputs for r in after.mocks.resources}
    assert {"kubernetes-kubeadm-ubuntu-76-join-credentials",
            "kubernetes-kubeadm-ubuntu-76-join"} <= set(new) - set(old)
    changed = {n for n in old.keys() & new.keys() if old[n] != new[n]}
    assert not {n for n in changed if "ubuntu-74" in n or "ubuntu-75" in n}, changed
    assert _deps(after, "kubernetes-kubeadm-ubuntu-76-join") == {
        "kubernetes-kubeadm-ubuntu-76-join-credentials", "kubernetes-kubeadm-kube-proxy"}


def test_making_another_node_bootstrap_deletes_nothing_that_removes_or_resets() -> None:
    """A delete of a control-plane or membership step resets a node or removes its etcd member:
    promoting another node to bootstrap must only re-run scripts."""
    before = run_program(dev_stack())
    raw = dev_stack()
    raw["controlPlane"][0]["bootstrap"] = False
    raw["controlPlane"][1]["bootstrap"] = True
    after = run_program(raw)
    gone = {r.name for r in before.mocks.resources} - {r.name for r in after.mocks.resources}
    assert gone == {"kubernetes-kubeadm-ubuntu-70-join-credentials"}, gone
    boot = plain(after.inputs("kubernetes-kubeadm-ubuntu-70-control-plane"))
    assert "kube-ha: bootstrap" in boot["stdin"] and boot["connection"]["host"] == "10.21.22.70"
    member = plain(after.inputs("kubernetes-kubeadm-ubuntu-73-membership"))
    assert member["connection"]["host"] == "10.21.22.70"  # removals now run via the new one


def test_chain_grows_with_control_plane_not_workers() -> None:
    depth = {(cp, w): run_program(scaled_stack(cp, w)).monitor.command_chain_depth()
             for cp, w in ((1, 2), (1, 40), (3, 2), (3, 40), (5, 2))}
    assert depth[(1, 2)] == depth[(1, 40)]
    assert depth[(3, 2)] == depth[(3, 40)]
    assert depth[(1, 2)] < depth[(3, 2)] < depth[(5, 2)]
    # Each extra control-plane node adds exactly its serving-certificate, credentials, join
    # and membership steps.
    assert depth[(5, 2)] - depth[(3, 2)] == 2 * 4


def test_removal_runs_on_bootstrap_after_every_join(dev: Run) -> None:
    removals = plain(dev.inputs("kubernetes-kubeadm-control-plane-removals"))
    assert removals["connection"]["host"] == "10.21.22.73"
    # The quorum guard refuses before anything is touched (a refused removal leaves the node
    # schedulable), then drain, member removal, Node deletion.
    script = removals["stdin"]
    assert script.index("refusing") < script.index("drain") < script.index("member remove") < \
        script.index("delete node")
    assert {"kubernetes-kubeadm-ubuntu-70-membership", "kubernetes-kubeadm-ubuntu-72-membership",
            } <= dev.upstream("kubernetes-kubeadm-control-plane-removals")
    # No step's delete takes anything apart: a membership step has none; a join step keeps
    # the reset it was recorded with, retained (never run).
    member = plain(dev.inputs("kubernetes-kubeadm-ubuntu-70-membership"))
    assert member["connection"]["host"] == "10.21.22.73" and not member.get("delete")
    join = plain(dev.inputs("kubernetes-kubeadm-ubuntu-70-control-plane"))
    assert join["connection"]["host"] == "10.21.22.70"
    assert dev.reg("kubernetes-kubeadm-ubuntu-70-control-plane").retain_on_delete


def test_the_stack_exports_the_endpoint_and_every_nodes_sans(dev: Run) -> None:
    assert dev.scope["ha"].endpoint == "https://api.k8s.lab.internal:6443"
    assert "10.21.22.101" in dev.scope["ha"].sans["ubuntu-73"]["ipAddresses"]


def test_removed_workers_are_drained_from_the_bootstrap_node_before_their_reset() -> None:
    before = run_program(dev_stack())
    raw = dev_stack()
    raw["workers"] = [w for w in raw["workers"] if w["name"] != "ubuntu-75"]
    raw["elasticApiserver"]["poolNodes"] = ["ubuntu-74"]
    raw["elasticApiserver"]["maxReplicas"] = 1
    after = run_after(before, raw)
    step = plain(after.inputs("kubernetes-kubeadm-workers"))
    assert step["connection"]["host"] == "10.21.22.73"
    assert "departing=ubuntu-75\n" in step["stdin"] and "drain" in step["stdin"]
    assert plain(before.inputs("kubernetes-kubeadm-workers"))["stdin"] != step["stdin"]
    assert _deps(after, "kubernetes-kubeadm-workers") == {
        "kubernetes-kubeadm-ubuntu-73-control-plane"}
    # The worker's own step leaves the program (retained: nothing runs); its retire step
    # resets it after the workers step.
    assert "kubernetes-kubeadm-ubuntu-75-join" not in {r.name for r in after.mocks.resources}
    assert "kubernetes-kubeadm-workers" in after.upstream("kubernetes-kubeadm-ubuntu-75-retire")
