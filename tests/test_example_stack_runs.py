"""The kubeadm host scripts of every example stack (Pulumi.<stack>.yaml), run for real on fake
nodes with the recording stand-ins and real etcd of tests/test_script_runs.py (whose docstring
lists the upstream behaviours the stand-ins reproduce; each is cited in
tests/harness/standins/*.py). test_script_runs covers the dev stack's paths in depth; here each
stack runs one new cluster (install-ca, bootstrap twice, a control-plane and a worker join twice
each, kube-proxy twice, the worker retired twice) and one adopted cluster (bootstrap and
kube-proxy twice), and the tests assert what the stack's endpoint changes: the
controlPlaneEndpoint, what each kubeconfig dials, which port a node's checks of its own
apiserver use, what runs before anything dials the endpoint's name.

Every step runs in full: a worker's node-local haproxy (node-local) is started for real by the
systemctl stand-in, and the endpoint switcher's units (service) are installed, enabled and
started in every node step. A call a stand-in refuses fails the test; KNOWN_GAPS lists, per
stack, the calls known to be unmodelled (each xfails its test, naming the call): none now.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_ha.config import parse_cluster
from kube_ha.endpoint_switch import SWITCH, TIMER, UNIT
from kube_ha.hosts_entry import MARK
from kube_ha.kubeadm import scripts as ks
from kube_ha.kubeadm.admin import MANAGED_MARKER
from kube_ha.kubeadm.config import cert_sans_items
from kube_ha.loadbalancer.haproxy import NODE_LOCAL_HEALTH, node_local_frontend, render_haproxy_cfg
from kube_ha.loadbalancer.scripts import configure_script, install_script
from kube_ha.model import Cluster
from kube_ha.render import artifacts
from tests.harness import pki
from tests.harness.script_host import ScriptHost, StepResult, seed_cluster
from tests.harness.standins.common import UNSUPPORTED_RC
from tests.program import EXAMPLE_STACKS, example_stack
from tests.test_script_runs import (
    JOIN_YAML,
    cm,
    config_docs,
    count,
    credentials,
    find,
    read_ca,
    restarts,
    serving,
)

pytestmark = pytest.mark.slow

every_stack = pytest.mark.parametrize("stack", EXAMPLE_STACKS)

# Calls a stack's steps make that the stand-ins refuse (exit UNSUPPORTED_RC), by the start of
# the call's command line: the harness cannot show what those steps do after them.
KNOWN_GAPS: dict[str, tuple[str, ...]] = {}
ADMIN, KUBELET = "/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf"
WORKER, JOINING = "ubuntu-74", "ubuntu-70"


def ran(stack: str, res: StepResult) -> StepResult:
    """`res`, once no stand-in refused a call in it. A refusal the harness is known not to model
    for `stack` xfails the test, naming the call; any other fails it."""
    refused = [c for c in res.calls if c.rc == UNSUPPORTED_RC]
    if refused:
        line = refused[0].line
        if line.startswith(KNOWN_GAPS.get(stack, ())):
            pytest.xfail(f"harness gap: the {refused[0].tool} stand-in does not model `{line}`"
                         f" ({stack} stack, step on {res.node})")
        pytest.fail(f"a stand-in refused `{line}`:\n{res.explain()}")
    return res


def changes(res: StepResult) -> list[str]:
    """The calls of a step that change something: any kubeadm call, and systemctl calls that
    changed a unit (the stand-in records which in the call's "changed"); a rerun may still ask
    `is-active`, `enable` a unit enabled already or `start` one running (the node-local proxy,
    the endpoint switcher's units), which change nothing."""
    return [c.line for c in res.calls
            if c.tool == "kubeadm" or (c.tool == "systemctl" and c.extra.get("changed", True))]


def switcher_setup(cluster: Cluster, first_run: bool) -> list[str]:
    """The systemctl calls that install the endpoint switcher (endpoint.type service), first in
    every node step: daemon-reload only when its unit files were written."""
    if not cluster.endpoint.service:
        return []
    return [*(["systemctl daemon-reload"] if first_run else []),
            "systemctl enable --quiet kube-ha-endpoint-switch.service kube-ha-endpoint-switch.timer",
            "systemctl start kube-ha-endpoint-switch.timer"]


def stack_cluster(stack: str) -> Cluster:
    return parse_cluster(example_stack(stack))


def local_url(cluster: Cluster, address: object) -> str:
    """A node's own apiserver, as kubeadm's local kubeconfigs and the readiness waits dial it."""
    return f"https://{address}:{cluster.apiserver_port}"


def cert_sans(cc: dict[str, Any]) -> list[str]:
    return [str(s) for s in cc.get("apiServer", {}).get("certSANs") or []]


def shared_names(cluster: Cluster) -> list[str]:
    """The certSANs the program sets (cert_sans_items, each a JSON-quoted YAML item), as YAML
    reads them back."""
    return [str(yaml.safe_load(item)) for item in cert_sans_items(cluster)]


def kube_proxy_server(host: ScriptHost) -> str:
    doc = yaml.safe_load(cm(host, "kube-system", "kube-proxy")["kubeconfig.conf"])
    return str(doc["clusters"][0]["cluster"]["server"])


def cluster_info_server(host: ScriptHost) -> str:
    doc = yaml.safe_load(cm(host, "kube-public", "cluster-info")["kubeconfig"])
    return str(doc["clusters"][0]["cluster"]["server"])


def kubeadm_cluster_configuration(host: ScriptHost) -> dict[str, Any]:
    return yaml.safe_load(cm(host, "kube-system", "kubeadm-config")["ClusterConfiguration"])  # type: ignore[no-any-return]


def local_proxy(cluster: Cluster, ca: pki.KeyPair) -> tuple[str, str] | None:
    """The node-local haproxy's install and configure scripts, as components/loadbalancer.py
    node_local_proxy renders them (the health-check client's certificate and key in one file)."""
    if not cluster.node_local_proxy:
        return None
    client = pki.issue(ca, "kube-ha:lb-health-check", client=True)
    cfg = render_haproxy_cfg(cluster, frontend=node_local_frontend(cluster))
    return (install_script(cluster, node_local=True),
            configure_script(cluster, cfg, ca.cert_pem, client.cert_pem + client.key_pem,
                             health=NODE_LOCAL_HEALTH))


# --- a new cluster, per stack -------------------------------------------------------------

@dataclass
class NewCluster:
    host: ScriptHost
    cluster: Cluster
    serving: pki.KeyPair
    steps: dict[str, StepResult]
    creds_cp: dict[str, str]
    servers: dict[str, str]  # "<node> <kubeconfig>": the server it dials, before the retire
    members: list[str]  # the real etcd's members after the control-plane join


def build_new(tmp: Path, stack: str) -> NewCluster:
    """caSource generate, as `pulumi up` orders the steps: (external: the endpoint check),
    install-ca, bootstrap twice (external: the check again, as the next `up` runs it), ubuntu-70's
    control-plane join twice, worker ubuntu-74's step twice (its node-local proxy first, when
    the stack has them), kube-proxy twice (after the workers, as with node-local proxies or a
    name kept in /etc/hosts; the program runs it before them otherwise, which changes nothing
    here), then ubuntu-74 retired twice (its retire step: the config no longer lists it). No pod
    network: no Node turns Ready."""
    cluster = stack_cluster(stack)
    boot, joining, worker = cluster.bootstrap, cluster.node(JOINING), cluster.node(WORKER)
    art = artifacts(cluster)
    ca = pki.make_ca()
    mine = serving(ca, cluster, boot)
    bootstrap = ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem)
    steps: dict[str, StepResult] = {}
    servers: dict[str, str] = {}

    def look(node: str, conf: str) -> None:
        if host.file(node, conf).exists():
            servers[f"{node} {conf}"] = host.server(node, conf)

    with ScriptHost(tmp, cluster, cni=False) as host:
        check = art.get("kubeadm/endpoint-check.sh")
        if check is not None:
            steps["check-before"] = host.run(boot.name, check)
        steps["install-ca"] = host.run(boot.name, ks.install_ca_script(ca.cert_pem, ca.key_pem))
        steps["bootstrap"] = host.run(boot.name, bootstrap)
        steps["bootstrap-again"] = host.run(boot.name, bootstrap)
        if check is not None:
            steps["check-after"] = host.run(boot.name, check)
        steps["creds-cp"], creds_cp = credentials(host, cluster, control_plane=True)
        theirs = serving(ca, cluster, joining)
        join = ks.control_plane_join_script(cluster, joining, theirs.cert_pem, theirs.key_pem,
                                            creds_cp)
        steps["join-cp"] = host.run(joining.name, join)
        steps["join-cp-again"] = host.run(joining.name, join)
        members = host.etcd_members(boot.name) if steps["join-cp"].rc == 0 else []
        steps["creds-worker"], creds_w = credentials(host, cluster, control_plane=False)
        work = ks.worker_join_script(cluster, worker, creds_w, local_proxy(cluster, ca))
        steps["join-worker"] = host.run(worker.name, work)
        steps["join-worker-again"] = host.run(worker.name, work)
        steps["kube-proxy"] = host.run(boot.name, art["kubeadm/kube-proxy.sh"])
        steps["kube-proxy-again"] = host.run(boot.name, art["kubeadm/kube-proxy.sh"])
        for node in (boot.name, joining.name, worker.name):
            for conf in (ADMIN, KUBELET):
                look(node, conf)
        steps["retire-worker"] = host.run(worker.name, art["kubeadm/retire.sh"])
        steps["retire-worker-again"] = host.run(worker.name, art["kubeadm/retire.sh"])
    return NewCluster(host, cluster, mine, steps, creds_cp, servers, members)


@pytest.fixture(scope="module")
def new(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], NewCluster]:
    """Each stack's new cluster, built once, when a test first asks for it."""
    return functools.cache(lambda stack: build_new(tmp_path_factory.mktemp(f"new-{stack}"), stack))


@every_stack
def test_new_cluster_is_initialised_once_for_the_stacks_endpoint(
        stack: str, new: Callable[[str], NewCluster]) -> None:
    """kubeadm init runs once, first, with --config: controlPlaneEndpoint is this stack's
    endpoint (its name and port, 8443 for control-plane-lb) while the apiserver binds the node's
    apiserverPort; certSANs name the endpoint's address (the VIP, the external LB, the
    ClusterIP). kubeadm keeps the pre-placed serving pair only when it names all of that
    (certs.go validateCertificateWithConfig), and writes admin.conf, super-admin.conf and
    kubelet.conf for the controlPlaneEndpoint, controller-manager.conf and scheduler.conf for
    the local one (phases/kubeconfig/kubeconfig.go); cluster-info, which joining nodes
    discover, carries the endpoint."""
    nc = new(stack)
    c, boot = nc.cluster, nc.cluster.bootstrap
    assert nc.steps["install-ca"].rc == 0, nc.steps["install-ca"].explain()
    first = ran(stack, nc.steps["bootstrap"])
    assert first.rc == 0, first.explain()
    (init,) = first.of("kubeadm init")
    before = first.lines[:first.calls.index(init)]
    assert before == switcher_setup(c, first_run=True) + (["crictl ps -q --name ^kube-proxy$"]
                                                           if c.endpoint.service else [])
    assert f"--config={ks.KUBEADM_CONFIG}" in init.argv
    docs = config_docs(init.config)
    assert docs["InitConfiguration"]["localAPIEndpoint"] == {
        "advertiseAddress": str(boot.address), "bindPort": c.apiserver_port}
    cc = docs["ClusterConfiguration"]
    assert cc["controlPlaneEndpoint"] == c.endpoint.host_port
    assert {c.endpoint.host, str(c.endpoint.address)} <= set(cert_sans(cc))
    assert 'Using the existing "apiserver" certificate and key' in first.stderr
    assert nc.host.file(boot.name, "/etc/kubernetes/pki/apiserver.crt").read_text() == nc.serving.cert_pem
    for conf in (ADMIN, KUBELET, "/etc/kubernetes/super-admin.conf"):
        assert nc.host.server(boot.name, conf) == c.endpoint.url, conf
    for conf in ("controller-manager.conf", "scheduler.conf"):
        assert nc.host.server(boot.name, f"/etc/kubernetes/{conf}") == local_url(c, boot.address)
    assert not first.of("systemctl restart")
    assert kubeadm_cluster_configuration(nc.host)["controlPlaneEndpoint"] == c.endpoint.host_port
    assert cluster_info_server(nc.host) == c.endpoint.url


@every_stack
def test_new_cluster_second_bootstrap_only_checks(stack: str, new: Callable[[str], NewCluster]) -> None:
    """Initialised already (kubeadm-config exists): no kubeadm, no systemctl, nothing applied."""
    again = ran(stack, new(stack).steps["bootstrap-again"])
    assert again.rc == 0, again.explain()
    assert "cluster already initialised" in again.stderr
    assert not changes(again)
    assert not again.of("kubectl apply")


@every_stack
def test_new_control_plane_node_joins_through_the_endpoint(
        stack: str, new: Callable[[str], NewCluster]) -> None:
    """kubeadm join --control-plane discovers through the endpoint (host:port as the stack
    says) and advertises the node's own address on apiserverPort; kubeadm keeps the node's
    pre-placed serving pair (it names the stack's certSANs: pki_helpers.go
    GetAPIServerAltNames), adds its etcd member (a learner, then promoted: the real etcd lists
    it), and writes admin.conf for the controlPlaneEndpoint and kubelet.conf for cluster-info's
    server. The second run joins nothing."""
    nc = new(stack)
    c, node = nc.cluster, nc.cluster.node(JOINING)
    join = ran(stack, nc.steps["join-cp"])
    assert join.rc == 0, join.explain()
    (call,) = join.of("kubeadm join")
    assert call.argv == ("join", f"--config={JOIN_YAML}")
    doc = config_docs(call.config)["JoinConfiguration"]
    assert doc["discovery"]["bootstrapToken"]["apiServerEndpoint"] == c.endpoint.host_port
    assert doc["controlPlane"]["localAPIEndpoint"] == {
        "advertiseAddress": str(node.address), "bindPort": c.apiserver_port}
    assert doc["controlPlane"]["certificateKey"] == nc.creds_cp["certificateKey"]
    assert "certificate apiserver is invalid" not in join.stderr
    assert JOINING in nc.members and c.bootstrap.name in nc.members
    for conf in (ADMIN, KUBELET):
        assert nc.servers[f"{JOINING} {conf}"] == c.endpoint.url, conf
    again = ran(stack, nc.steps["join-cp-again"])
    assert again.rc == 0, again.explain()
    assert "already a control-plane node" in again.stderr
    assert not changes(again)


@every_stack
def test_new_worker_joins_and_dials_what_the_stack_gives_workers(
        stack: str, new: Callable[[str], NewCluster]) -> None:
    """A worker's join has no controlPlane section and discovers through the endpoint; its
    kubelet.conf takes cluster-info's server, the endpoint (kubeadm discovery.go), so it is
    re-pointed, and the kubelet restarted once after the join, only where workers dial
    something else (Cluster.node_url: 127.0.0.1, their node-local proxy). The second run does
    nothing; no JoinConfiguration (token inside) is left behind."""
    nc = new(stack)
    c = nc.cluster
    joined = ran(stack, nc.steps["join-worker"])
    assert joined.rc == 0, joined.explain()
    (call,) = joined.of("kubeadm join")
    doc = config_docs(call.config)["JoinConfiguration"]
    assert "controlPlane" not in doc
    assert doc["discovery"]["bootstrapToken"]["apiServerEndpoint"] == c.endpoint.host_port
    assert nc.servers[f"{WORKER} {KUBELET}"] == c.node_url
    repointed = c.node_url != c.endpoint.url
    assert count(joined, "systemctl restart", "kubelet") == int(repointed)
    if repointed:
        assert find(joined, "kubeadm join") < find(joined, "systemctl restart", "kubelet")
    assert not nc.host.file(WORKER, JOIN_YAML).exists()
    again = ran(stack, nc.steps["join-worker-again"])
    assert again.rc == 0, again.explain()
    assert not changes(again)


@every_stack
def test_new_cluster_kube_proxy_dials_what_nodes_dial(stack: str, new: Callable[[str], NewCluster]) -> None:
    """kubeadm's kube-proxy ConfigMap already dials the controlPlaneEndpoint (phases/addons/
    proxy): the kube-proxy step changes it, and restarts the DaemonSet once, only where nodes
    dial something else (127.0.0.1 with node-local proxies: on a control-plane node its own
    apiserver). A second run changes nothing."""
    nc = new(stack)
    c = nc.cluster
    ran(stack, nc.steps["bootstrap"])
    first = ran(stack, nc.steps["kube-proxy"])
    assert first.rc == 0, first.explain()
    assert kube_proxy_server(nc.host) == c.node_url
    repointed = c.node_url != c.endpoint.url
    assert len(first.of("kubectl apply")) == int(repointed)
    assert nc.host.state()["daemonsets"]["kube-system/kube-proxy"]["restarts"] == int(repointed)
    again = ran(stack, nc.steps["kube-proxy-again"])
    assert again.rc == 0, again.explain()
    assert not again.of("kubectl apply") and not again.of("kubectl rollout restart")


@every_stack
def test_retiring_the_worker_wipes_it_once(stack: str, new: Callable[[str], NewCluster]) -> None:
    """The retire step of a worker the config no longer lists: kubeadm reset --force, which
    deletes kubelet.conf, empties pki and stops the kubelet (cleanupnode.go); the marker goes
    too, so nothing claims the node. Run again, it finds nothing to reset."""
    nc = new(stack)
    ran(stack, nc.steps["join-worker"])
    first = ran(stack, nc.steps["retire-worker"])
    assert first.rc == 0, first.explain()
    (call,) = first.of("kubeadm reset")
    assert call.argv == ("reset", "--force")
    f = nc.host.file
    assert not f(WORKER, KUBELET).exists() and not f(WORKER, MANAGED_MARKER).exists()
    assert list(f(WORKER, "/etc/kubernetes/pki").iterdir()) == []
    assert not nc.host.state()["kubelet"][WORKER]["active"]
    again = ran(stack, nc.steps["retire-worker-again"])
    assert again.rc == 0, again.explain()
    assert not again.calls and "nothing to reset" in again.stderr


def test_external_endpoint_is_checked_only_once_a_cluster_answers(
        new: Callable[[str], NewCluster]) -> None:
    """endpoint.type external: before `kubeadm init` there is nothing behind the user's LB to
    check (init dials it itself), so the check passes without a call; on the next `up` it asks
    the endpoint's /readyz through admin.conf's CA, at the endpoint's URL, not a node's."""
    nc = new("external")
    before, after = nc.steps["check-before"], nc.steps["check-after"]
    assert before.rc == 0 and not before.calls, before.explain()
    assert "no cluster here yet" in before.stderr
    assert after.rc == 0, after.explain()
    (readyz,) = after.of("kubectl get")
    assert f"--server={nc.cluster.endpoint.url}" in readyz.argv and "--raw=/readyz" in readyz.argv


def test_node_local_proxy_is_configured_before_the_worker_joins(
        new: Callable[[str], NewCluster]) -> None:
    """nodeLocalProxy: the worker's step writes its proxy's config first, which the real
    haproxy accepts (`haproxy -c` before it goes live, else the step stops and no file is
    left): a frontend on 127.0.0.1:apiserverPort and every control-plane node as a server. No
    kubeadm runs before the proxy, which is started (the real haproxy, answering on
    127.0.0.1:apiserverPort before the join goes on) and, on the second run, found running
    with this config: no start, no reload."""
    nc = new("node-local")
    c, step = nc.cluster, nc.steps["join-worker"]
    cfg = nc.host.file(WORKER, "/etc/haproxy/haproxy.cfg").read_text()
    assert cfg == render_haproxy_cfg(c, frontend=node_local_frontend(c))
    assert f"bind 127.0.0.1:{c.apiserver_port}" in cfg
    for cp in c.control_plane:
        assert f"{cp.address}:{c.apiserver_port}" in cfg, cp.name
    proxy = [i for i, call in enumerate(step.calls) if call.tool == "systemctl" and "haproxy" in call.argv]
    assert [step.calls[i].line for i in proxy] == [
        "systemctl enable --quiet haproxy", "systemctl is-active --quiet haproxy",
        "systemctl start haproxy"], step.explain()
    assert [step.calls[i].rc for i in proxy] == [0, 3, 0]
    assert nc.host.state()["units"][WORKER]["haproxy"] == {"active": True, "enabled": True}
    again = nc.steps["join-worker-again"]
    assert [c.line for c in again.calls if c.tool == "systemctl"] == [
        "systemctl enable --quiet haproxy", "systemctl is-active --quiet haproxy"], again.explain()
    assert "haproxy running with this config already" in again.stderr
    assert all(i > max(proxy) for i, call in enumerate(step.calls) if call.tool == "kubeadm")


# --- an adopted cluster, per stack ----------------------------------------------------------

@dataclass
class Adopted:
    host: ScriptHost
    cluster: Cluster
    steps: dict[str, StepResult]
    before: dict[str, Any]


def build_adopted(tmp: Path, stack: str) -> Adopted:
    """A one-node cluster from `kubeadm init` without controlPlaneEndpoint, then the bootstrap
    step twice and the kube-proxy step twice."""
    cluster = stack_cluster(stack)
    boot = cluster.bootstrap
    proxy = artifacts(cluster)["kubeadm/kube-proxy.sh"]
    steps: dict[str, StepResult] = {}
    with ScriptHost(tmp, cluster, real_etcd=False) as host:
        seed_cluster(host, control_plane=[boot])
        before = host.state()
        mine = serving(read_ca(host, boot.name), cluster, boot)
        script = ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem)
        steps["bootstrap"], steps["bootstrap-again"] = (host.run(boot.name, script)
                                                        for _ in range(2))
        steps["kube-proxy"], steps["kube-proxy-again"] = (host.run(boot.name, proxy)
                                                          for _ in range(2))
    return Adopted(host, cluster, steps, before)


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Adopted]:
    return functools.cache(lambda stack: build_adopted(tmp_path_factory.mktemp(f"adopt-{stack}"),
                                                       stack))


@every_stack
def test_adopting_puts_the_cluster_behind_the_stacks_endpoint(
        stack: str, adopted: Callable[[str], Adopted]) -> None:
    """No kubeadm init on a running cluster. The new serving pair is in place before anything
    dials the endpoint: the step waits for the node's own apiserver to serve it at the node's
    address on apiserverPort (not the endpoint's port). Then kubeadm-config gains this stack's
    controlPlaneEndpoint and certSANs (the rest unchanged), admin.conf and kubelet.conf dial the
    endpoint, the kubelet restarts once after the apply, and cluster-info, which joining
    kubelets inherit, dials the endpoint."""
    a = adopted(stack)
    c, boot = a.cluster, a.cluster.bootstrap
    first = ran(stack, a.steps["bootstrap"])
    assert first.rc == 0, first.explain()
    assert not first.of("kubeadm init") and not first.of("crictl stop")
    wait = find(first, "kubectl get", f"--server={local_url(c, boot.address)}", "--raw=/readyz")
    apply = find(first, "kubectl apply")
    assert 0 <= wait < apply, first.lines
    old_cc = yaml.safe_load(a.before["configmaps"]["kube-system/kubeadm-config"]["ClusterConfiguration"])
    new_cc = kubeadm_cluster_configuration(a.host)
    assert "controlPlaneEndpoint" not in old_cc
    assert new_cc.pop("controlPlaneEndpoint") == c.endpoint.host_port
    assert new_cc["apiServer"].pop("certSANs") == shared_names(c)
    assert str(c.endpoint.address) in shared_names(c)
    assert new_cc == old_cc
    for conf in (ADMIN, KUBELET):
        assert a.host.server(boot.name, conf) == c.endpoint.url, conf
    assert a.host.server(boot.name, "/etc/kubernetes/scheduler.conf") == local_url(c, boot.address)
    assert count(first, "systemctl restart", "kubelet") == 1
    assert apply < find(first, "systemctl restart", "kubelet")
    assert cluster_info_server(a.host) == c.endpoint.url


@every_stack
def test_adopting_twice_is_a_no_op(stack: str, adopted: Callable[[str], Adopted]) -> None:
    a = adopted(stack)
    again = ran(stack, a.steps["bootstrap-again"])
    assert again.rc == 0, again.explain()
    assert not changes(again)
    assert not again.of("kubectl apply") and not again.of("crictl stop")
    assert restarts(a.host, a.cluster.bootstrap.name) == 1


@every_stack
def test_adopted_kube_proxy_is_repointed_once(stack: str, adopted: Callable[[str], Adopted]) -> None:
    """kubeadm wrote kube-proxy's kubeconfig for the node's address (no controlPlaneEndpoint
    then): the step points it at what this stack's nodes dial and restarts the DaemonSet once,
    after the apply; the next run does nothing."""
    a = adopted(stack)
    first = ran(stack, a.steps["kube-proxy"])
    assert first.rc == 0, first.explain()
    assert kube_proxy_server(a.host) == a.cluster.node_url
    assert 0 <= find(first, "kubectl apply") < find(first, "kubectl rollout restart",
                                                    "daemonset/kube-proxy")
    assert a.host.state()["daemonsets"]["kube-system/kube-proxy"]["restarts"] == 1
    again = ran(stack, a.steps["kube-proxy-again"])
    assert again.rc == 0, again.explain()
    assert not again.of("kubectl apply") and not again.of("kubectl rollout restart")


# --- the Service topology's switcher --------------------------------------------------------

def test_the_service_switcher_maps_the_name_to_a_node_serving_it(tmp_path: Path) -> None:
    """endpoint.type service: the bootstrap step writes the switcher, its unit (before the
    kubelet) and its timer before any call, reloads the manager for the new files, enables both
    units and starts the timer, then runs the switcher. No DNS maps the name here (the harness
    leaves it to the program). At that point the ClusterIP does not answer (no kube-proxy
    here), ubuntu-73's certificate (kubeadm's, from before kube-ha) does not name the endpoint's
    name, ubuntu-70 serves the one the program issued, which does: the name maps to ubuntu-70.
    The step then puts ubuntu-73's own pair in place, so the switcher run again maps the name to
    ubuntu-73, the first control-plane node listed that answers for it: one line of ours in
    /etc/hosts, and the name resolves there. A third run changes nothing and restarts no
    kube-proxy."""
    cluster = stack_cluster("service")
    n = {h.name: h for h in cluster.nodes}
    name = cluster.endpoint.dns_name
    assert name is not None
    with ScriptHost(tmp_path, cluster, real_etcd=False) as host:
        seed_cluster(host, control_plane=[n["ubuntu-73"], n[JOINING]], endpoint="10.21.22.73:6443")
        ca = read_ca(host, "ubuntu-73")
        theirs = serving(ca, cluster, n[JOINING])
        cert = host.run(JOINING, ks.serving_certificate_script(cluster, n[JOINING], theirs.cert_pem,
                                                               theirs.key_pem))
        assert cert.rc == 0, cert.explain()
        unmapped = host.run("ubuntu-73", f"getent hosts {name}\n")
        mine = serving(ca, cluster, n["ubuntu-73"])
        boot = host.run("ubuntu-73", ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem))
        installed = host.run("ubuntu-73", f"stat -c '%a %n' {SWITCH} {UNIT} {TIMER}\n"
                                          f"grep -x Before=kubelet.service {UNIT}\n")
        first = host.run("ubuntu-73", f"{SWITCH}\n")
        again = host.run("ubuntu-73", f"{SWITCH}\n")
        hosts = host.run("ubuntu-73", f"grep -F -- '{MARK}' /etc/hosts; getent hosts {name}\n")
        st = host.state()
    assert unmapped.rc != 0 and not unmapped.stdout, unmapped.explain()
    assert boot.rc == 0, boot.explain()
    setup = switcher_setup(cluster, first_run=True)
    assert boot.lines[:len(setup)] == setup, boot.explain()
    assert all(c.extra["changed"] for c in boot.calls[:len(setup)])
    assert f"/etc/hosts: {name} -> {n[JOINING].address}" in boot.stderr
    assert st["units"]["ubuntu-73"] == {
        "kube-ha-endpoint-switch": {"active": False, "enabled": True},
        "kube-ha-endpoint-switch.timer": {"active": True, "enabled": True}}
    assert installed.rc == 0, installed.explain()
    assert installed.stdout.split("\n")[:3] == [f"755 {SWITCH}", f"644 {UNIT}", f"644 {TIMER}"]
    assert first.rc == 0, first.explain()
    assert f"{name} -> {n['ubuntu-73'].address}" in first.stderr
    assert first.of("crictl ps") and not first.of("crictl stop")  # no kube-proxy container yet
    assert again.rc == 0 and not again.calls and "->" not in again.stderr, again.explain()
    ours, resolved = hosts.stdout.strip().split("\n")
    assert ours == f"{n['ubuntu-73'].address} {name} {MARK}"
    assert resolved.split() == [str(n["ubuntu-73"].address), name]
