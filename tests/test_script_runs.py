"""The kubeadm host scripts, run for real: bash on fake nodes in private namespaces
(tests/harness/script_host.py), recording stand-ins for kubeadm, kubectl, crictl and systemctl,
and a real etcd member per control-plane node. Tests assert what ran, in which order, with
which arguments, what a second run skips, where a failure stops, and the state left behind.

The stand-ins behave as the real tools do, not as our scripts expect (each fact is cited in
tests/harness/standins/*.py); the ones these tests lean on:
- kubeadm init keeps a pre-placed CA and a pre-placed apiserver pair only when that pair is
  signed by the CA and names everything GetAPIServerAltNames lists (the node's name and
  address, the service names and IP, the controlPlaneEndpoint host, certSANs), else fails
  "certificate apiserver is invalid" (kubernetes/kubernetes cmd/kubeadm/app/phases/certs/
  certs.go validateCertificateWithConfig, cmd/kubeadm/app/util/pkiutil/pki_helpers.go). It
  writes admin.conf, super-admin.conf and kubelet.conf for the controlPlaneEndpoint
  (phases/kubeconfig/kubeconfig.go), prints the bootstrap token and the certificate key unless
  --skip-token-print / --skip-certificate-key-print (cmd/phases/init/bootstraptoken.go,
  showjoincommand.go), and fails a re-run on its own manifests (preflight/checks.go).
- kubeadm join refuses a node with kubelet.conf or a non-empty manifests directory
  (RunJoinNodeChecks), discovers through cluster-info whose server its kubelet.conf then dials
  (discovery/discovery.go), and adds a control-plane node's etcd member as a learner then
  promotes it (EtcdLearnerMode, on by default in 1.31/1.32: cmd/kubeadm/app/features).
- kubeadm reset empties /etc/kubernetes/manifests and pki but keeps the directories, and
  deletes the kubeconfigs (cmd/kubeadm/app/cmd/phases/reset/cleanupnode.go).
- kubectl: a missing object is 'Error from server (NotFound): ...', exit 1 (kubectl
  pkg/cmd/util/helpers.go); -o jsonpath prints the value without a newline; wait on a named
  missing object fails at once (pkg/cmd/wait/wait.go).
- crictl exec runs the command in the container image with the image's PATH; the etcd image
  is distroless/static plus /bin/sh and the etcd binaries, no `env` (kubernetes/kubernetes
  cluster/images/etcd/Dockerfile and Makefile); a failing command makes crictl exit 1
  (kubernetes-sigs/cri-tools cmd/crictl/exec.go, main.go).
- kube-apiserver serves a new apiserver.crt written to disk without a restart (dynamic
  serving certificates since 1.17, k8s.io/apiserver dynamiccertificates; kubernetes#87766):
  each node's stand-in apiserver is a TLS server on <address>:6443 that does the same.
- etcd refuses to add a member until every member has been connected for a while
  ("unhealthy cluster"), and `etcdctl endpoint health` on a dead member takes the whole
  --command-timeout: the real members here do both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_ha.elastic.pool import POOL_TAINT, PoolTaints, pool_script
from kube_ha.kubeadm import scripts as ks
from kube_ha.kubeadm.admin import KUBECTL, MANAGED_ANNOTATION, MANAGED_MARKER
from kube_ha.kubeadm.etcd import control_plane_removals_script
from kube_ha.loadbalancer.haproxy import node_local_frontend, render_haproxy_cfg
from kube_ha.model import Cluster, Host
from kube_ha.render import artifacts
from kube_ha.topology import apiserver_sans, kubernetes_service_ip, service_dns_names
from tests.harness import pki
from tests.harness.script_host import ScriptHost, StepResult, seed_cluster
from tests.harness.standins.certs import spki_sha256
from tests.program import cluster_of, dev_stack

pytestmark = pytest.mark.slow

JOIN_YAML = "/etc/kubernetes/kube-ha/join.yaml"
TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")


def serving(ca: pki.KeyPair, cluster: Cluster, node: Host) -> pki.KeyPair:
    """The apiserver pair the program issues for `node` (pulumi_tls in production)."""
    sans = apiserver_sans(cluster, node)
    return pki.issue(ca, "kube-apiserver", dns=list(sans.dns_names), ips=list(sans.ip_addresses))


def read_ca(host: ScriptHost, node: str) -> pki.KeyPair:
    """The cluster CA as the program reads it: the read-ca script on the bootstrap node."""
    res = host.run(node, ks.read_ca_script())
    assert res.rc == 0, res.explain()
    cert, key = res.stdout.split("-----END CERTIFICATE-----\n", 1)
    return pki.KeyPair(cert + "-----END CERTIFICATE-----\n", key.strip() + "\n")


def credentials(host: ScriptHost, cluster: Cluster, control_plane: bool
                ) -> tuple[StepResult, dict[str, str]]:
    res = host.run(cluster.bootstrap.name, ks.join_credentials_script(cluster, control_plane))
    creds = json.loads(res.stdout) if res.rc == 0 else {
        "token": "failed.credentials0", "caCertHash": "sha256:00", "certificateKey": ""}
    return res, creds


def find(res: StepResult, verb: str, *args: str) -> int:
    """Position of the first call of `verb` whose argv holds every one of `args` (-1: none);
    the words, not their order or the flags around them, carry the meaning."""
    return next((i for i, c in enumerate(res.calls)
                 if c.verb == verb and all(a in c.argv for a in args)), -1)


def count(res: StepResult, verb: str, *args: str) -> int:
    return sum(1 for c in res.calls if c.verb == verb and all(a in c.argv for a in args))


def config_docs(text: str | None) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(text or "") if d}


def stopped_at(res: StepResult) -> str:
    """The verb of the one failing call, after which nothing ran but its own pipeline."""
    (failed,) = [c for c in res.calls if c.rc != 0]
    later = {c.verb for c in res.calls if c.seq > failed.seq}
    assert later <= {"kubectl create configmap"}, res.explain()  # `create | apply` partner
    return failed.verb


def cm(host: ScriptHost, namespace: str, name: str) -> dict[str, str]:
    found = host.configmap(namespace, name)
    assert found is not None, f"configmap {namespace}/{name} missing"
    return found


def restarts(host: ScriptHost, node: str) -> int:
    return int(host.state()["kubelet"].get(node, {}).get("restarts", 0))


# --- a new cluster: install-ca, bootstrap twice, then the first control-plane join ----------

@dataclass
class NewCluster:
    host: ScriptHost
    cluster: Cluster
    ca: pki.KeyPair
    serving: pki.KeyPair
    install: StepResult
    first: StepResult
    second: StepResult
    join: StepResult


@pytest.fixture(scope="module")
def new_cluster(tmp_path_factory: pytest.TempPathFactory) -> NewCluster:
    """caSource generate: install-ca, bootstrap (kubeadm init), bootstrap again, credentials,
    then ubuntu-70's control-plane join. As on a real new cluster there is no pod network yet,
    so no Node turns Ready (the kubelet reports NetworkReady=false without a CNI config)."""
    cluster = cluster_of()
    boot, joining = cluster.bootstrap, cluster.node("ubuntu-70")
    ca = pki.make_ca()
    mine = serving(ca, cluster, boot)
    bootstrap = ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem)
    with ScriptHost(tmp_path_factory.mktemp("new"), cluster, cni=False) as host:
        install = host.run(boot.name, ks.install_ca_script(ca.cert_pem, ca.key_pem))
        first = host.run(boot.name, bootstrap)
        second = host.run(boot.name, bootstrap)
        _, creds = credentials(host, cluster, control_plane=True)
        theirs = serving(ca, cluster, joining)
        join = host.run(joining.name, ks.control_plane_join_script(
            cluster, joining, theirs.cert_pem, theirs.key_pem, creds))
    return NewCluster(host, cluster, ca, mine, install, first, second, join)


def test_new_cluster_is_initialised_once_with_our_config_ca_and_certificate(
        new_cluster: NewCluster) -> None:
    """kubeadm init runs once, first, with --config; it keeps the CA install-ca placed and the
    pre-placed serving pair (kubeadm's certs phase: existing pairs are kept when valid), and
    writes kubeconfigs that already dial the endpoint, so nothing is re-pointed and the
    kubelet is not restarted (phases/kubeconfig/kubeconfig.go: controlPlaneEndpoint)."""
    nc, boot = new_cluster, new_cluster.cluster.bootstrap.name
    assert nc.install.rc == 0, nc.install.explain()
    assert nc.first.rc == 0, nc.first.explain()
    (init,) = nc.first.of("kubeadm init")
    assert nc.first.calls[0] == init
    assert "--config=/etc/kubernetes/kube-ha/kubeadm.yaml" in init.argv
    docs = config_docs(init.config)
    assert docs["InitConfiguration"]["nodeRegistration"]["name"] == boot
    assert docs["ClusterConfiguration"]["controlPlaneEndpoint"] == nc.cluster.endpoint.host_port
    assert nc.host.file(boot, "/etc/kubernetes/pki/ca.crt").read_text() == nc.ca.cert_pem
    assert nc.host.file(boot, "/etc/kubernetes/pki/apiserver.crt").read_text() == nc.serving.cert_pem
    assert 'Using the existing "apiserver" certificate and key' in nc.first.stderr
    for conf in ("/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf"):
        assert nc.host.server(boot, conf) == nc.cluster.endpoint.url
    assert not nc.first.of("systemctl restart") and not nc.first.of("crictl stop")
    cc = yaml.safe_load(cm(nc.host, "kube-system", "kubeadm-config")["ClusterConfiguration"])
    assert cc["controlPlaneEndpoint"] == nc.cluster.endpoint.host_port


def test_new_cluster_marks_the_nodes_it_created(new_cluster: NewCluster) -> None:
    """After this program's `kubeadm init` and `join`: the marker file on both nodes, the
    annotation on both Nodes, so their deletes (and `pulumi destroy`) may undo them."""
    state = new_cluster.host.state()
    for name in ("ubuntu-73", "ubuntu-70"):
        assert new_cluster.host.file(name, MANAGED_MARKER).exists(), name
        assert state["nodes"][name]["annotations"][MANAGED_ANNOTATION] == "kube-ha", name


def test_new_cluster_second_bootstrap_changes_nothing(new_cluster: NewCluster) -> None:
    """Second run: no kubeadm at all, no ConfigMap written, no restart of anything."""
    second = new_cluster.second
    assert second.rc == 0, second.explain()
    assert "cluster already initialised" in second.stderr
    assert not [c for c in second.calls if c.tool in ("kubeadm", "systemctl")]
    assert not second.of("kubectl apply") and not second.of("kubectl rollout restart")
    assert not second.of("crictl stop")


def test_new_cluster_init_output_holds_no_join_secret(new_cluster: NewCluster) -> None:
    """Unless told not to, kubeadm init prints the bootstrap token ("[bootstrap-token] Using
    token", cmd/kubeadm/app/cmd/phases/init/bootstraptoken.go) and the join command with the
    certificate key (showjoincommand.go, cmd/util/join.go); the step's stderr is logged by
    Pulumi, so neither may appear in what the script prints."""
    state = new_cluster.host.state()
    secrets = [f"{tid}.{t['secret']}" for tid, t in state["tokens"].items()]
    secrets.append(state["kubeadm_certs"]["key"])
    printed = new_cluster.first.stdout + new_cluster.first.stderr
    assert secrets and not [s for s in secrets if s in printed]


def test_new_cluster_joins_without_a_pod_network(new_cluster: NewCluster) -> None:
    """A cluster kube-ha creates has no pod network until its user applies one, so no Node
    is Ready: the kubelet reports "runtime network not ready: NetworkReady=false
    reason:NetworkPluginNotReady ... cni config uninitialized" until a CNI config exists
    (kubernetes/kubernetes#43815, kubernetes/kubeadm#212). The join must not wait 600 s
    for a Ready that cannot come: it checks that its Node is registered and its etcd member
    healthy, and says why it did not wait."""
    join = new_cluster.join
    assert join.rc == 0, join.explain()
    assert not join.of("kubectl wait")
    assert find(join, "kubectl get", "node", "ubuntu-70") < find(join, "crictl exec", "endpoint",
                                                                 "health")
    assert "no Node is Ready (no pod network yet)" in join.stderr
    assert not new_cluster.host.state()["nodes"]["ubuntu-70"]["ready"]


def test_new_cluster_control_plane_join_passes_kubeadms_certificate_check(
        new_cluster: NewCluster) -> None:
    """kubeadm join --control-plane keeps a pre-placed apiserver.crt only if it names every
    GetAPIServerAltNames entry for *that* node, including ClusterConfiguration certSANs
    (pkiutil/pki_helpers.go; kubernetes#84644): the certSANs kubeadm.yaml sets at init must
    not carry the bootstrap node's own name and address."""
    join = new_cluster.join
    assert join.rc == 0, join.explain()
    assert "certificate apiserver is invalid" not in join.stderr
    assert new_cluster.host.file("ubuntu-70", "/etc/kubernetes/manifests/etcd.yaml").exists()


# --- a kubeadm cluster built before kube-ha, adopted --------------------------------------

@dataclass
class Adopted:
    host: ScriptHost
    cluster: Cluster
    before: dict[str, Any]
    first: StepResult
    second: StepResult
    proxy: StepResult
    proxy_again: StepResult
    old_cert: str
    serving: pki.KeyPair = field(repr=False)


def adopt(tmp: Path, kube_proxy: bool = True) -> Adopted:
    """A one-node cluster from `kubeadm init` without controlPlaneEndpoint; then the bootstrap
    script twice and the kube-proxy step (which runs after the workers) twice."""
    cluster = cluster_of()
    boot = cluster.bootstrap
    proxy_script = artifacts(cluster)["kubeadm/kube-proxy.sh"]
    with ScriptHost(tmp, cluster, real_etcd=False) as host:
        seed_cluster(host, control_plane=[boot], kube_proxy=kube_proxy)
        before = host.state()
        old = host.file(boot.name, "/etc/kubernetes/pki/apiserver.crt").read_text()
        mine = serving(read_ca(host, boot.name), cluster, boot)
        script = ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem)
        first, second = host.run(boot.name, script), host.run(boot.name, script)
        proxy, proxy_again = host.run(boot.name, proxy_script), host.run(boot.name, proxy_script)
    return Adopted(host, cluster, before, first, second, proxy, proxy_again, old, mine)


def applied(res: StepResult) -> list[str]:
    """namespace/name of every object `kubectl apply -f -` received, in order."""
    return [f"{d['metadata'].get('namespace', 'default')}/{d['metadata']['name']}"
            for c in res.of("kubectl apply") for d in yaml.safe_load_all(c.stdin or "") if d]


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> Adopted:
    return adopt(tmp_path_factory.mktemp("adopt"))


def test_adopting_moves_the_cluster_behind_the_endpoint(adopted: Adopted) -> None:
    """No kubeadm init on a running cluster. The serving pair is replaced (old one kept) and
    the running apiserver serves it without a restart (kube-apiserver re-reads its serving
    pair from disk since 1.17: k8s.io/apiserver dynamiccertificates; kubernetes#87766; a
    `crictl stop` would SIGKILL it, --timeout defaults to 0). kubeadm-config gains
    controlPlaneEndpoint by server-side apply (the rest unchanged); admin.conf and
    kubelet.conf are re-pointed and the kubelet restarted once, after that; cluster-info
    (whose server a joining kubelet's kubeconfig inherits: kubeadm discovery.go) dials the
    endpoint. controller-manager.conf and scheduler.conf keep the local endpoint, as kubeadm
    writes them (phases/kubeconfig/kubeconfig.go)."""
    a, boot = adopted, adopted.cluster.bootstrap.name
    url = a.cluster.endpoint.url
    first = a.first
    assert first.rc == 0, first.explain()
    assert not first.of("kubeadm init") and not first.of("crictl stop")
    pki_dir = a.host.file(boot, "/etc/kubernetes/pki")
    assert (pki_dir / "apiserver.crt").read_text() == a.serving.cert_pem
    assert [p.read_text() for p in pki_dir.glob("apiserver.crt.kube-ha-*")] == [a.old_cert]

    old_cc = yaml.safe_load(a.before["configmaps"]["kube-system/kubeadm-config"]
                            ["ClusterConfiguration"])
    new_cc = yaml.safe_load(cm(a.host, "kube-system", "kubeadm-config")["ClusterConfiguration"])
    assert "controlPlaneEndpoint" not in old_cc
    assert new_cc.pop("controlPlaneEndpoint") == a.cluster.endpoint.host_port
    assert new_cc.get("apiServer", {}).pop("certSANs", None)
    assert not old_cc.get("apiServer", {}).get("certSANs")
    assert new_cc == old_cc
    assert applied(first) == ["kube-system/kubeadm-config", "kube-public/cluster-info"]
    assert {c.extra["field-manager"] for c in first.of("kubectl apply")} == {"kube-ha"}
    assert all("--server-side" in c.argv for c in first.of("kubectl apply"))

    for conf in ("admin.conf", "kubelet.conf"):
        assert a.host.server(boot, f"/etc/kubernetes/{conf}") == url
    local = f"https://{a.cluster.bootstrap.address}:6443"
    for conf in ("controller-manager.conf", "scheduler.conf"):
        assert a.host.server(boot, f"/etc/kubernetes/{conf}") == local
    assert count(first, "systemctl restart", "kubelet") == 1
    assert 0 <= find(first, "kubectl apply") < find(first, "systemctl restart", "kubelet")
    info = yaml.safe_load(cm(a.host, "kube-public", "cluster-info")["kubeconfig"])
    assert info["clusters"][0]["cluster"]["server"] == url


def test_adopting_twice_is_a_no_op(adopted: Adopted) -> None:
    """Second run: every check finds its postcondition (kubeconfigs compared as text, the
    ConfigMaps read back with -o jsonpath, whose output has no added newline); nothing is
    written, restarted or applied."""
    second = adopted.second
    assert second.rc == 0, second.explain()
    assert not [c for c in second.calls if c.tool in ("kubeadm", "systemctl")]
    assert not second.of("kubectl apply") and not second.of("crictl stop")
    assert restarts(adopted.host, adopted.cluster.bootstrap.name) == 1


def test_kube_proxy_is_repointed_and_restarted_once(adopted: Adopted) -> None:
    """kubeadm's kube-proxy ConfigMap carries kubeconfig.conf for the controlPlaneEndpoint
    (here none yet: the node's address; phases/addons/proxy). The kube-proxy step points it at
    what nodes dial and restarts the DaemonSet once, after the apply; the next run does
    nothing."""
    a = adopted
    assert a.proxy.rc == 0, a.proxy.explain()
    assert applied(a.proxy) == ["kube-system/kube-proxy"]
    proxy = yaml.safe_load(cm(a.host, "kube-system", "kube-proxy")["kubeconfig.conf"])
    assert proxy["clusters"][0]["cluster"]["server"] == a.cluster.node_url
    assert "config.conf" in cm(a.host, "kube-system", "kube-proxy")  # other keys kept
    assert 0 <= find(a.proxy, "kubectl apply") < find(a.proxy, "kubectl rollout restart",
                                                       "daemonset/kube-proxy")
    assert a.host.state()["daemonsets"]["kube-system/kube-proxy"]["restarts"] == 1
    assert a.proxy_again.rc == 0, a.proxy_again.explain()
    assert not a.proxy_again.of("kubectl apply")
    assert not a.proxy_again.of("kubectl rollout restart")


def test_adopting_a_cluster_without_kube_proxy_goes_on(tmp_path: Path) -> None:
    """kubeadm init --skip-phases=addon/kube-proxy (Cilium's replacement) leaves no kube-proxy
    ConfigMap or DaemonSet; `kubectl get` on it is NotFound, exit 1 (kubectl helpers.go). The
    bootstrap and the kube-proxy step succeed and create no kube-proxy object."""
    a = adopt(tmp_path, kube_proxy=False)
    assert a.first.rc == 0, a.first.explain()
    info = yaml.safe_load(cm(a.host, "kube-public", "cluster-info")["kubeconfig"])
    assert info["clusters"][0]["cluster"]["server"] == a.cluster.endpoint.url
    assert a.proxy.rc == 0, a.proxy.explain()
    assert a.host.configmap("kube-system", "kube-proxy") is None
    assert not a.proxy.of("kubectl apply") and not a.proxy.of("kubectl rollout restart")
    assert a.second.rc == 0, a.second.explain()


def test_bootstrap_stops_before_repointing_when_the_first_apply_fails(tmp_path: Path) -> None:
    """The first server-side apply (controlPlaneEndpoint into kubeadm-config) fails: the step
    stops there, before any kubeconfig, kubelet or cluster-info is touched; the next run
    completes."""
    cluster = cluster_of()
    boot = cluster.bootstrap
    with ScriptHost(tmp_path, cluster, real_etcd=False) as host:
        seed_cluster(host, control_plane=[boot])
        mine = serving(read_ca(host, boot.name), cluster, boot)
        failed = host.run(boot.name, ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem),
                          fail=("kubectl apply",))
        assert failed.rc != 0
        assert stopped_at(failed) == "kubectl apply"
        local = f"https://{boot.address}:6443"
        assert host.server(boot.name, "/etc/kubernetes/admin.conf") == local
        assert host.server(boot.name, "/etc/kubernetes/kubelet.conf") == local
        assert restarts(host, boot.name) == 0
        info = yaml.safe_load(cm(host, "kube-public", "cluster-info")["kubeconfig"])
        assert info["clusters"][0]["cluster"]["server"] == local
        again = host.run(boot.name, ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem))
        assert again.rc == 0, again.explain()
        assert host.server(boot.name, "/etc/kubernetes/admin.conf") == cluster.endpoint.url


def test_a_half_finished_init_is_finished_on_the_next_run(tmp_path: Path) -> None:
    """kubeadm init fails in upload-config, after certs, kubeconfig, etcd and control-plane
    have written their files (KUBE_HA_FAIL="kubeadm init:upload-config"). The next run must
    end with an initialised cluster (kubeadm-config uploaded), still on the program's CA:
    re-running init needs `kubeadm reset` first (its preflight refuses its own manifests), and
    reset empties /etc/kubernetes/pki, CA included."""
    cluster = cluster_of()
    boot = cluster.bootstrap
    ca = pki.make_ca()
    mine = serving(ca, cluster, boot)
    script = ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem)
    with ScriptHost(tmp_path, cluster, real_etcd=False) as host:
        assert host.run(boot.name, ks.install_ca_script(ca.cert_pem, ca.key_pem)).rc == 0
        failed = host.run(boot.name, script, fail=("kubeadm init:upload-config",))
        assert failed.rc != 0 and host.file(boot.name, "/etc/kubernetes/admin.conf").exists()
        again = host.run(boot.name, script)
        assert again.rc == 0, again.explain()
        assert host.configmap("kube-system", "kubeadm-config") is not None
        assert host.file(boot.name, "/etc/kubernetes/pki/ca.crt").read_text() == ca.cert_pem


# --- the HA story: seed with two control-plane nodes and a worker, then every step ---------

@dataclass
class Story:
    host: ScriptHost
    cluster: Cluster
    ca: pki.KeyPair
    certs: dict[str, pki.KeyPair]
    steps: dict[str, StepResult]
    creds_cp: dict[str, str]
    creds_worker: dict[str, str]
    members: dict[str, list[str]]
    servers: dict[str, str]
    installed: dict[str, str]
    schedulable_after_refusal: bool
    managed: dict[str, dict[str, Any]]
    served: dict[str, str]


SEED_CERT_SANS = ["10.21.22.101", "10.21.22.73", "10.21.22.72"]


def served_certificate(host: ScriptHost, node: Host) -> str:
    """The certificate `node`'s apiserver presents on a TLS handshake, as PEM."""
    res = host.run(node.name, f"timeout 5 openssl s_client -connect {node.address}:6443"
                   " </dev/null 2>/dev/null | openssl x509\n")
    assert res.rc == 0, res.explain()
    return res.stdout


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    """The dev stack's cluster as a user built it: ubuntu-73 and ubuntu-72 with
    controlPlaneEndpoint 10.21.22.73:6443 and certSANs naming both and the LB, worker
    ubuntu-75. Then, as `pulumi up` runs them:
    bootstrap, join ubuntu-70, re-issue on ubuntu-72, join worker ubuntu-74 (first with
    kubeadm join failing), re-point ubuntu-75; then ubuntu-72's etcd dies: removing ubuntu-70
    is refused, removing ubuntu-72 goes ahead, then its reset. No etcdctl on any host."""
    cluster = cluster_of()
    n = {h.name: h for h in cluster.nodes}
    art = artifacts(cluster)
    steps: dict[str, StepResult] = {}
    members: dict[str, list[str]] = {}
    servers: dict[str, str] = {}
    installed: dict[str, str] = {}
    managed: dict[str, dict[str, Any]] = {}

    def removals(*departing: str) -> str:
        return control_plane_removals_script(tuple(n[d] for d in departing))

    def look(node: str, conf: str, label: str | None = None) -> None:
        path = host.file(node, f"/etc/kubernetes/{conf}")
        servers[label or f"{node} {conf}"] = host.server(node, f"/etc/kubernetes/{conf}") if path.exists() else ""

    with ScriptHost(tmp_path_factory.mktemp("story"), cluster) as host:
        # certSANs as its user left them: the LB's address added (seed 004's edit) and, as
        # often, each master's.
        seed_cluster(host, control_plane=[n["ubuntu-73"], n["ubuntu-72"]], workers=[n["ubuntu-75"]],
                     endpoint="10.21.22.73:6443", cert_sans=SEED_CERT_SANS)
        members["seed"] = host.etcd_members("ubuntu-73")
        ca = read_ca(host, "ubuntu-73")
        certs = {name: serving(ca, cluster, n[name]) for name in ("ubuntu-73", "ubuntu-70", "ubuntu-72")}
        # Before anything is pointed at the endpoint: each node's serving-certificate step.
        for name in ("ubuntu-73", "ubuntu-70", "ubuntu-72"):
            serving_step = ks.serving_certificate_script(cluster, n[name], certs[name].cert_pem,
                                                         certs[name].key_pem)
            steps[f"serving-{name}"] = host.run(name, serving_step)
            steps[f"serving-{name}-again"] = host.run(name, serving_step)
        served = {name: served_certificate(host, n[name]) for name in ("ubuntu-73", "ubuntu-72")}
        boot = ks.bootstrap_script(cluster, certs["ubuntu-73"].cert_pem, certs["ubuntu-73"].key_pem)
        steps["bootstrap"] = host.run("ubuntu-73", boot)
        steps["creds-cp"], creds_cp = credentials(host, cluster, control_plane=True)
        for name in ("ubuntu-70", "ubuntu-72"):
            script = ks.control_plane_join_script(cluster, n[name], certs[name].cert_pem,
                                                  certs[name].key_pem, creds_cp)
            steps[f"join-{name}"] = host.run(name, script)
            steps[f"join-{name}-again"] = host.run(name, script)
            look(name, "admin.conf")
            look(name, "kubelet.conf")
            installed[name] = host.file(name, "/etc/kubernetes/pki/apiserver.crt").read_text()
        members["joined"] = host.etcd_members("ubuntu-73")
        steps["membership-70"] = host.run("ubuntu-73", art["kubeadm/membership-ubuntu-70.sh"])
        steps["creds-worker"], creds_w = credentials(host, cluster, control_plane=False)
        worker = ks.worker_join_script(cluster, n["ubuntu-74"], creds_w)
        steps["worker-74-failing"] = host.run("ubuntu-74", worker, fail=("kubeadm join",))
        look("ubuntu-74", "kubelet.conf", "ubuntu-74 after failure")
        steps["worker-74"] = host.run("ubuntu-74", worker)
        steps["worker-74-again"] = host.run("ubuntu-74", worker)
        look("ubuntu-74", "kubelet.conf")
        old = ks.worker_join_script(cluster, n["ubuntu-75"], creds_w)
        look("ubuntu-75", "kubelet.conf", "ubuntu-75 before")
        steps["worker-75"] = host.run("ubuntu-75", old)
        steps["worker-75-again"] = host.run("ubuntu-75", old)
        look("ubuntu-75", "kubelet.conf")
        # The removals step after every join, with nothing departing: it touches nothing.
        steps["removals-none"] = host.run("ubuntu-73", removals())
        members["none departing"] = host.etcd_members("ubuntu-73")
        host.stop_etcd("ubuntu-72")
        host.stop_kubelet("ubuntu-72")
        steps["remove-70-refused"] = host.run("ubuntu-73", removals("ubuntu-70"))
        schedulable = not host.state()["nodes"].get("ubuntu-70", {}).get("unschedulable")
        members["refused"] = host.etcd_members("ubuntu-73")
        steps["reset-75-unmanaged"] = host.run("ubuntu-75", art["kubeadm/reset.sh"], delete=True)
        managed["after init/join"] = {
            name: host.file(name, MANAGED_MARKER).exists() for name in n}
        managed["annotated"] = {name: host.state()["nodes"].get(name, {}).get(
            "annotations", {}).get(MANAGED_ANNOTATION, "") for name in n}
        # ubuntu-72 (dead; in the cluster before kube-ha) leaves the config: it is taken out
        # from ubuntu-73, then retired.
        steps["remove-72"] = host.run("ubuntu-73", removals("ubuntu-72"))
        steps["remove-72-again"] = host.run("ubuntu-73", removals("ubuntu-72"))
        members["removed"] = host.etcd_members("ubuntu-73")
        steps["reset-72"] = host.run("ubuntu-72", art["kubeadm/retire.sh"])
        steps["reset-72-again"] = host.run("ubuntu-72", art["kubeadm/retire.sh"])
        steps["membership-72"] = host.run("ubuntu-73", art["kubeadm/membership-ubuntu-72.sh"])
        steps["membership-70-after"] = host.run("ubuntu-73", art["kubeadm/membership-ubuntu-70.sh"])
    # The world is gone (every process ended); its files and state stay readable.
    return Story(host, cluster, ca, certs, steps, creds_cp, creds_w, members, servers, installed,
                 schedulable, managed, served)


def test_join_credentials_are_what_kubeadm_prints(story: Story) -> None:
    """`kubeadm token create` prints only the token, "[a-z0-9]{6}.[a-z0-9]{16}" (kubeadm
    cmd/token.go); `kubeadm certs certificate-key` 32 random bytes in hex (cmd/certs.go,
    copycerts.go); the hash is sha256 of the CA's SubjectPublicKeyInfo (pubkeypin.Hash)."""
    assert story.steps["creds-cp"].rc == 0, story.steps["creds-cp"].explain()
    for creds in (story.creds_cp, story.creds_worker):
        assert TOKEN.match(creds["token"])
        assert creds["caCertHash"] == spki_sha256(story.ca.cert_pem)
    assert re.fullmatch(r"[0-9a-f]{64}", story.creds_cp["certificateKey"])
    assert story.creds_worker["certificateKey"] == ""
    assert story.steps["creds-worker"].of("kubeadm init phase upload-certs") == []


def test_control_plane_join_joins_once_then_waits_for_node_and_etcd(story: Story) -> None:
    """kubeadm join reads everything secret from --config (not argv); the JoinConfiguration
    file is gone afterwards; the node's own serving pair is kept; the step then waits for the
    Node to be Ready and checks the local etcd member through `crictl exec` into the etcd
    container (no etcdctl on the host), and the member is a voter in the real etcd."""
    join = story.steps["join-ubuntu-70"]
    assert join.rc == 0, join.explain()
    (call,) = join.of("kubeadm join")
    assert call.argv == ("join", f"--config={JOIN_YAML}")
    doc = config_docs(call.config)["JoinConfiguration"]
    assert doc["discovery"]["bootstrapToken"]["token"] == story.creds_cp["token"]
    assert doc["discovery"]["bootstrapToken"]["caCertHashes"] == [story.creds_cp["caCertHash"]]
    assert doc["controlPlane"]["certificateKey"] == story.creds_cp["certificateKey"]
    assert not story.host.file("ubuntu-70", JOIN_YAML).exists()
    assert story.installed["ubuntu-70"] == story.certs["ubuntu-70"].cert_pem
    i_join = find(join, "kubeadm join")
    i_wait = find(join, "kubectl wait", "--for=condition=Ready", "node/ubuntu-70")
    i_health = find(join, "crictl exec", "endpoint", "health")
    assert 0 <= i_join < i_wait < i_health, join.lines
    assert not join.of("etcdctl member list") and not join.of("etcdctl endpoint health")
    assert story.members["joined"] == ["ubuntu-70", "ubuntu-72", "ubuntu-73"]
    for conf in ("admin.conf", "kubelet.conf"):
        assert story.servers[f"ubuntu-70 {conf}"] == story.cluster.endpoint.url


def test_an_adopted_cluster_whose_cert_sans_name_its_masters_still_joins(story: Story) -> None:
    """kubeadm join --control-plane checks the pre-placed apiserver.crt against the
    ClusterConfiguration's certSANs from kubeadm-config (pkiutil.GetAPIServerAltNames,
    kubernetes#84644); the seed's certSANs name ubuntu-73 and ubuntu-72, which ubuntu-70's
    certificate does not. Adoption rewrote certSANs to the names every apiserver shares, so
    the join keeps our certificate."""
    join = story.steps["join-ubuntu-70"]
    assert join.rc == 0, join.explain()
    assert "certificate apiserver is invalid" not in join.stderr
    assert story.installed["ubuntu-70"] == story.certs["ubuntu-70"].cert_pem
    cc = yaml.safe_load(cm(story.host, "kube-system", "kubeadm-config")["ClusterConfiguration"])
    assert cc["apiServer"]["certSANs"] == [*dict.fromkeys(
        [*service_dns_names(story.cluster), "api.k8s.lab.internal",
         kubernetes_service_ip(story.cluster), "10.21.22.101"])]


def test_every_running_apiserver_serves_its_new_certificate_before_the_bootstrap_step(
        story: Story) -> None:
    """With an IP-only endpoint haproxy cannot keep a backend with the wrong certificate out
    (`verifyhost` checks DNS names only), so the order must: ubuntu-73 and ubuntu-72, joined
    before kube-ha, serve the certificates issued for them before the bootstrap step re-points
    cluster-info and the first kubeconfigs. The running apiserver re-reads its pair from disk
    (dynamiccertificates, kubernetes#87766): nothing is stopped. ubuntu-70 has not joined: its
    step leaves it alone (its join places the pair). A second run changes nothing."""
    for name in ("ubuntu-73", "ubuntu-72"):
        step, again = story.steps[f"serving-{name}"], story.steps[f"serving-{name}-again"]
        assert step.rc == 0, step.explain()
        assert not [c for c in step.calls if c.tool in ("kubeadm", "systemctl")]
        assert not step.of("crictl stop")
        assert story.served[name] == story.certs[name].cert_pem
        assert again.rc == 0 and "already current" in again.stderr, again.explain()
    fresh = story.steps["serving-ubuntu-70"]
    assert fresh.rc == 0 and "runs no apiserver yet" in fresh.stderr, fresh.explain()
    assert not fresh.calls


def test_control_plane_join_second_run_only_checks(story: Story) -> None:
    """Joined already: no kubeadm join (it would fail its preflight on kubelet.conf and the
    manifests, preflight/checks.go RunJoinNodeChecks), no restart; the Ready wait and the etcd
    health check still run and pass, and so does the membership step."""
    again = story.steps["join-ubuntu-70-again"]
    assert again.rc == 0, again.explain()
    assert "already a control-plane node" in again.stderr
    assert not [c for c in again.calls if c.tool in ("kubeadm", "systemctl")]
    # It joined it: its Node keeps the annotation the removal step reads (re-applied).
    (annotate,) = again.of("kubectl annotate")
    assert f"{MANAGED_ANNOTATION}=kube-ha" in annotate.argv and "--overwrite" in annotate.argv
    assert not story.steps["join-ubuntu-72-again"].of("kubectl annotate")  # found, not joined
    assert not again.of("crictl stop")
    assert story.steps["membership-70"].rc == 0, story.steps["membership-70"].explain()


def test_existing_control_plane_node_gets_its_certificate_and_endpoint(story: Story) -> None:
    """ubuntu-72 joined before kube-ha (kubelet.conf and admin.conf on 10.21.22.73:6443): no
    kubeadm join; its serving pair is replaced and served by the running apiserver, which
    re-reads it from disk (dynamiccertificates, kubernetes#87766), so it is not stopped; both
    kubeconfigs dial the endpoint and the kubelet restarts once; the second run changes
    nothing."""
    first, again = story.steps["join-ubuntu-72"], story.steps["join-ubuntu-72-again"]
    assert first.rc == 0, first.explain()
    assert not first.of("kubeadm join")
    assert count(first, "systemctl restart", "kubelet") == 1
    assert not first.of("crictl stop")
    assert story.installed["ubuntu-72"] == story.certs["ubuntu-72"].cert_pem
    for conf in ("admin.conf", "kubelet.conf"):
        assert story.servers[f"ubuntu-72 {conf}"] == story.cluster.endpoint.url
    assert again.rc == 0, again.explain()
    assert not again.of("systemctl restart") and not again.of("crictl stop")


def test_worker_join_failure_leaves_no_join_configuration(story: Story) -> None:
    """kubeadm join fails: the step fails, the JoinConfiguration (token inside) is removed by
    the EXIT trap, nothing is re-pointed. The next run joins."""
    failed = story.steps["worker-74-failing"]
    assert failed.rc != 0
    assert stopped_at(failed) == "kubeadm join"
    assert story.servers["ubuntu-74 after failure"] == ""
    assert not failed.of("systemctl restart")
    assert story.steps["worker-74"].rc == 0, story.steps["worker-74"].explain()


def test_worker_joins_once_through_the_endpoint(story: Story) -> None:
    """A worker's kubelet.conf takes cluster-info's server (kubeadm discovery.go), which the
    bootstrap pointed at the endpoint: nothing to re-point, no kubelet restart; the second run
    does nothing."""
    joined, again = story.steps["worker-74"], story.steps["worker-74-again"]
    (call,) = joined.of("kubeadm join")
    doc = config_docs(call.config)["JoinConfiguration"]
    assert "controlPlane" not in doc
    assert doc["discovery"]["bootstrapToken"]["apiServerEndpoint"] == story.cluster.endpoint.host_port
    assert story.servers["ubuntu-74 kubelet.conf"] == story.cluster.node_url
    assert not joined.of("systemctl restart")
    assert not story.host.file("ubuntu-74", JOIN_YAML).exists()
    assert again.rc == 0, again.explain()
    assert not [c for c in again.calls if c.tool in ("kubeadm", "systemctl")]


def test_worker_joined_before_kube_ha_is_repointed_once(story: Story) -> None:
    """ubuntu-75 joined the seed through 10.21.22.73:6443 (cluster-info's server then): its
    kubelet.conf is re-pointed and the kubelet restarted once; the second run does nothing."""
    first, again = story.steps["worker-75"], story.steps["worker-75-again"]
    assert story.servers["ubuntu-75 before"] == "https://10.21.22.73:6443"
    assert first.rc == 0, first.explain()
    assert not first.of("kubeadm join")
    assert story.servers["ubuntu-75 kubelet.conf"] == story.cluster.node_url
    assert count(first, "systemctl restart", "kubelet") == 1
    assert again.rc == 0 and not again.of("systemctl restart")


def test_refused_removal_touches_nothing(story: Story) -> None:
    """With ubuntu-72's member down, removing ubuntu-70 would leave 1 healthy member of 2: the
    step refuses before draining, removing the member or deleting the Node."""
    refused = story.steps["remove-70-refused"]
    assert refused.rc == 1
    assert "refusing to remove ubuntu-70" in refused.stderr
    assert not refused.of("kubectl drain") and not refused.of("kubectl delete node")
    assert find(refused, "crictl exec", "member", "remove") == -1
    assert story.schedulable_after_refusal
    assert story.members["refused"] == ["ubuntu-70", "ubuntu-72", "ubuntu-73"]


def test_removing_a_dead_node_cordons_removes_the_member_then_deletes_the_node(
        story: Story) -> None:
    """Removing the dead ubuntu-72 (etcd and kubelet gone; 2 healthy of 2 remain) from a
    surviving member: guard, cordon (a drain would wait out its whole timeout for pods only a
    live kubelet can confirm gone, then fail), `member remove` through the local member in the
    etcd container, then the Node; a second run finds nothing to do."""
    removed = story.steps["remove-72"]
    assert removed.rc == 0, removed.explain()
    assert removed.node == "ubuntu-73"
    guard = find(removed, "crictl exec", "endpoint", "health", "--cluster")
    cordon = find(removed, "kubectl cordon", "ubuntu-72")
    member = find(removed, "crictl exec", "member", "remove")
    delete = find(removed, "kubectl delete node", "ubuntu-72")
    assert 0 <= guard < cordon < member < delete, removed.lines
    assert not removed.of("kubectl drain")
    assert "ubuntu-72 is NotReady (its kubelet is gone)" in removed.stderr
    assert story.members["removed"] == ["ubuntu-70", "ubuntu-73"]
    assert "ubuntu-72" not in story.host.state()["nodes"]
    again = story.steps["remove-72-again"]
    assert again.rc == 0, again.explain()
    assert "ubuntu-72 is not an etcd member: nothing to remove" in again.stderr
    assert find(again, "crictl exec", "member", "remove") == -1 and not again.of("kubectl cordon")
    assert story.steps["membership-72"].rc == 1
    assert story.steps["membership-70-after"].rc == 0


def test_workers_that_left_are_drained_or_if_dead_cordoned_then_deleted(tmp_path: Path) -> None:
    """The bootstrap node's workers step, for workers the last `up` deployed and the config no
    longer lists: a live one is drained (kubectl drain), a dead one (kubelet gone, Node
    NotReady) only cordoned, as a drain would fail after its whole timeout; both Nodes are
    deleted; a second run finds nothing; with nothing departing, nothing is touched."""
    cluster = cluster_of()
    n = {h.name: h for h in cluster.nodes}
    fewer = cluster_of(workers=[w for w in dev_stack()["workers"] if w["name"] == "ubuntu-74"],
                elasticApiserver={"enabled": False})
    none = cluster_of(workers=[], elasticApiserver={"enabled": False})
    with ScriptHost(tmp_path, cluster, real_etcd=False) as host:
        seed_cluster(host, control_plane=[n["ubuntu-73"]], workers=[n["ubuntu-74"], n["ubuntu-75"]])
        first = host.run("ubuntu-73", ks.workers_reconcile_script(cluster))
        live = host.run("ubuntu-73", ks.workers_reconcile_script(fewer, (n["ubuntu-75"],)))
        host.stop_kubelet("ubuntu-74")
        dead = host.run("ubuntu-73", ks.workers_reconcile_script(none, (n["ubuntu-74"],)))
        again = host.run("ubuntu-73", ks.workers_reconcile_script(none, (n["ubuntu-74"],)))
        nodes = host.state()["nodes"]
    assert first.rc == 0 and not first.of("kubectl drain"), first.explain()
    assert live.rc == 0, live.explain()
    assert 0 <= find(live, "kubectl drain", "ubuntu-75") < find(live, "kubectl delete node",
                                                                "ubuntu-75")
    assert dead.rc == 0, dead.explain()
    assert not dead.of("kubectl drain")
    assert 0 <= find(dead, "kubectl cordon", "ubuntu-74") < find(dead, "kubectl delete node",
                                                                 "ubuntu-74")
    assert set(nodes) == {"ubuntu-73"}
    assert again.rc == 0 and not again.of("kubectl cordon") and not again.of("kubectl delete node")
    assert first.rc == 0 and "no worker left the list" in first.stderr
    assert not first.of("kubectl cordon") and not first.of("kubectl delete node")


def test_the_pool_step_taints_the_pool_workers_and_untaints_those_that_left(
        tmp_path: Path) -> None:
    """The elastic pool step on the bootstrap node (kubectl taint as the stand-in reproduces
    it, pkg/cmd/taint): run twice it is one taint; another owner's taint on the node stays; a
    Node that has not joined fails the step, naming it. Untainting removes ours only; again,
    or for a Node that is gone, it passes (kubectl's exact messages); with no apiserver
    answering it fails, and the record is not moved on, so the next `up` runs it again."""
    cluster = cluster_of()
    n = {h.name: h for h in cluster.nodes}
    boot = "ubuntu-73"
    ours = {"key": POOL_TAINT, "value": "true", "effect": "NoSchedule"}
    theirs = {"key": "example.com/gpu", "value": "a100", "effect": "NoExecute"}
    taint, untaint = pool_script(PoolTaints(("ubuntu-74",), ())), pool_script(
        PoolTaints((), ("ubuntu-74", "ubuntu-99")))
    with ScriptHost(tmp_path, cluster, real_etcd=False) as host:
        seed_cluster(host, control_plane=[n[boot]], workers=[n["ubuntu-74"], n["ubuntu-75"]])
        assert host.run(boot, f"{KUBECTL} taint nodes ubuntu-74 example.com/gpu=a100:NoExecute"
                        ).rc == 0
        first, second = (host.run(boot, taint) for _ in range(2))
        tainted = host.state()["nodes"]["ubuntu-74"]["taints"]
        other = host.state()["nodes"]["ubuntu-75"].get("taints", [])
        unjoined = host.run(boot, pool_script(PoolTaints(("ubuntu-99",), ())))
        removed = host.run(boot, untaint)
        left = host.state()["nodes"]["ubuntu-74"]["taints"]
        again = host.run(boot, untaint)
        host.hub("python3 -c 'from tests.harness.standins import common\n"
                 "with common.mutate() as st:\n    st[\"apiserver\"].clear()'")
        down = host.run(boot, untaint)
    assert first.rc == 0 and second.rc == 0, second.explain()
    assert [c.argv[-2:] for c in second.of("kubectl taint")] == [
        (f"{POOL_TAINT}=true:NoSchedule", "--overwrite")]
    assert sorted(tainted, key=str) == sorted([ours, theirs], key=str)
    assert other == []  # only the named node
    assert unjoined.rc != 0 and 'nodes "ubuntu-99" not found' in unjoined.stderr
    assert removed.rc == 0, removed.explain()
    assert "ubuntu-99 left the elastic apiservers pool" in removed.stderr  # gone: passes
    assert left == [theirs]
    assert again.rc == 0 and "ubuntu-74 left the elastic apiservers pool" in again.stderr, \
        again.explain()
    assert down.rc != 0 and "was refused" in down.stderr, down.explain()


def test_with_nothing_departing_the_removals_step_touches_nothing(story: Story) -> None:
    """It takes out only the nodes it is given (the last `up` deployed them, the config no
    longer lists them); with none, no member, Node or drain is touched."""
    none = story.steps["removals-none"]
    assert none.rc == 0, none.explain()
    assert find(none, "crictl exec", "member", "remove") == -1
    assert not none.of("kubectl cordon") and not none.of("kubectl drain")
    assert not none.of("kubectl delete node")
    assert story.members["none departing"] == story.members["joined"]


def test_what_kube_ha_did_not_join_keeps_its_recorded_delete_inert(story: Story) -> None:
    """The delete the join steps were recorded with (never run now: retained on delete) still
    leaves a node kube-ha did not join as it is. What kube-ha did join (ubuntu-70, ubuntu-74)
    carries the marker file; ubuntu-70's Node the annotation (the bootstrap of an adopted
    cluster ran no init: neither)."""
    reset = story.steps["reset-75-unmanaged"]
    assert reset.rc == 0 and not reset.of("kubeadm reset"), reset.explain()
    assert "not joined by kube-ha" in reset.stderr
    assert story.host.file("ubuntu-75", "/etc/kubernetes/kubelet.conf").exists()
    assert story.managed["after init/join"] == {
        "ubuntu-73": False, "ubuntu-70": True, "ubuntu-72": False, "ubuntu-74": True,
        "ubuntu-75": False}
    assert story.managed["annotated"] == {
        "ubuntu-73": "", "ubuntu-70": "kube-ha", "ubuntu-72": "", "ubuntu-74": "",
        "ubuntu-75": ""}


def test_reset_wipes_kubeadm_state(story: Story) -> None:
    """The retire step's kubeadm reset --force on the removed node, which kube-ha did not
    join (removing it from the list is the request): kubeconfigs gone, manifests and pki
    emptied (the directories stay: cleanupnode.go CleanDir), etcd data emptied, kubelet
    stopped."""
    reset = story.steps["reset-72"]
    assert reset.rc == 0, reset.explain()
    (call,) = reset.of("kubeadm reset")
    assert call.argv == ("reset", "--force")
    f = story.host.file
    assert not f("ubuntu-72", "/etc/kubernetes/kubelet.conf").exists()
    assert not f("ubuntu-72", "/etc/kubernetes/admin.conf").exists()
    assert list(f("ubuntu-72", "/etc/kubernetes/manifests").iterdir()) == []
    assert list(f("ubuntu-72", "/etc/kubernetes/pki").iterdir()) == []
    assert list(f("ubuntu-72", "/var/lib/etcd").iterdir()) == []
    assert not story.host.state()["kubelet"]["ubuntu-72"]["active"]


def test_reset_twice_is_a_no_op(story: Story) -> None:
    """After `kubeadm reset` the node holds no kubelet.conf and an empty manifests directory
    (cleanupnode.go: CleanDir empties, keeps the directory); a second run must not reset
    again."""
    again = story.steps["reset-72-again"]
    assert again.rc == 0, again.explain()
    assert not again.of("kubeadm reset")
    assert "nothing to reset" in again.stderr


# --- variations --------------------------------------------------------------------------

def test_worker_with_node_local_proxy_dials_localhost(tmp_path: Path) -> None:
    """nodeLocalProxy: the worker's kubelet.conf, written by kubeadm join for cluster-info's
    server, is re-pointed at 127.0.0.1 (its local haproxy) and the kubelet restarted once."""
    cluster = cluster_of(nodeLocalProxy=True)
    boot, worker = cluster.bootstrap, cluster.node("ubuntu-74")
    with ScriptHost(tmp_path, cluster, real_etcd=False) as host:
        seed_cluster(host, control_plane=[boot])
        mine = serving(read_ca(host, boot.name), cluster, boot)
        assert host.run(boot.name, ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem)).rc == 0
        _, creds = credentials(host, cluster, control_plane=False)
        script = ks.worker_join_script(cluster, worker, creds)
        first, again = host.run(worker.name, script), host.run(worker.name, script)
        assert first.rc == 0, first.explain()
        assert host.server(worker.name, "/etc/kubernetes/kubelet.conf") == "https://127.0.0.1:6443"
        assert count(first, "systemctl restart", "kubelet") == 1
        assert 0 <= find(first, "kubeadm join") < find(first, "systemctl restart", "kubelet")
        assert again.rc == 0 and not again.of("systemctl restart")


def test_switching_node_local_proxies_off_removes_them_after_the_kubelet_is_re_pointed(
        tmp_path: Path) -> None:
    """nodeLocalProxy on, then off: the worker's step re-points its kubelet at the endpoint
    first, then stops and disables the node-local haproxy and sets its config aside; a second
    run changes nothing. A haproxy that is not kube-ha's node-local proxy (the distribution's
    default config) is left alone."""
    on, off = cluster_of(nodeLocalProxy=True), cluster_of()
    boot = on.bootstrap
    with ScriptHost(tmp_path, on, real_etcd=False) as host:
        seed_cluster(host, control_plane=[boot])
        mine = serving(read_ca(host, boot.name), on, boot)
        assert host.run(boot.name, ks.bootstrap_script(on, mine.cert_pem, mine.key_pem)).rc == 0
        _, creds = credentials(host, on, control_plane=False)
        for name in ("ubuntu-74", "ubuntu-75"):
            assert host.run(name, ks.worker_join_script(on, on.node(name), creds)).rc == 0
        proxy = render_haproxy_cfg(on, frontend=node_local_frontend(on))
        host.file("ubuntu-74", "/etc/haproxy/haproxy.cfg").write_text(proxy)
        foreign = "global\n    log /dev/log local0\n"  # Debian's packaged haproxy.cfg
        host.file("ubuntu-75", "/etc/haproxy/haproxy.cfg").write_text(foreign)
        first = host.run("ubuntu-74", ks.worker_join_script(off, off.node("ubuntu-74"), creds))
        again = host.run("ubuntu-74", ks.worker_join_script(off, off.node("ubuntu-74"), creds))
        other = host.run("ubuntu-75", ks.worker_join_script(off, off.node("ubuntu-75"), creds))
        assert host.server("ubuntu-74", "/etc/kubernetes/kubelet.conf") == off.endpoint.url
        units = host.state().get("units", {})
        etc = host.file("ubuntu-74", "/etc/haproxy")
        assert first.rc == 0, first.explain()
        assert 0 <= find(first, "systemctl restart", "kubelet") < find(
            first, "systemctl disable", "haproxy")
        assert units["ubuntu-74"]["haproxy"] == {"active": False, "enabled": False}
        assert not (etc / "haproxy.cfg").exists()
        assert [p.read_text() for p in etc.glob("haproxy.cfg.kube-ha-off-*")] == [proxy]
        assert again.rc == 0 and not again.calls, again.explain()
        assert other.rc == 0 and not other.of("systemctl disable"), other.explain()
        assert host.file("ubuntu-75", "/etc/haproxy/haproxy.cfg").read_text() == foreign
        assert "ubuntu-75" not in units


def test_membership_check_uses_a_host_etcdctl_when_there_is_one(tmp_path: Path) -> None:
    """On a host with etcdctl installed the check uses it (ETCDCTL_API=3 against
    127.0.0.1:2379 with the healthcheck-client pair) and never crictl."""
    cluster = cluster_of()
    with ScriptHost(tmp_path, cluster, host_etcdctl=True) as host:
        seed_cluster(host, control_plane=[cluster.bootstrap])
        art = artifacts(cluster)
        member = host.run("ubuntu-73", art["kubeadm/membership-ubuntu-73.sh"])
        stranger = host.run("ubuntu-73", art["kubeadm/membership-ubuntu-70.sh"])
    assert member.rc == 0, member.explain()
    assert [c.verb for c in member.calls] == ["etcdctl member list"]
    assert "--endpoints=https://127.0.0.1:2379" in member.calls[0].argv
    assert stranger.rc == 1 and "ubuntu-70 is not a started, voting etcd member" in stranger.stderr


def test_a_running_cluster_missing_its_kubeadm_config_is_never_reset(tmp_path: Path) -> None:
    """A cluster kube-ha did not initialise (no init marker) whose kube-system/kubeadm-config was
    deleted by hand looks, by that ConfigMap alone, like a half-finished init. Resetting it
    would wipe /var/lib/etcd and start a new cluster: the bootstrap refuses and touches
    nothing."""
    cluster = cluster_of()
    boot = cluster.bootstrap
    with ScriptHost(tmp_path, cluster, real_etcd=False) as host:
        seed_cluster(host, control_plane=[boot])
        state_file = tmp_path / "state" / "cluster.json"
        state = json.loads(state_file.read_text())
        del state["configmaps"]["kube-system/kubeadm-config"]
        state_file.write_text(json.dumps(state))
        mine = serving(read_ca(host, boot.name), cluster, boot)
        res = host.run(boot.name, ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem))
        assert host.file(boot.name, "/etc/kubernetes/admin.conf").exists()
    assert res.rc != 0, res.explain()
    assert "refusing to reset" in res.stderr
    assert not res.of("kubeadm reset") and not res.of("kubeadm init")


# --- join credentials are revoked once the joins are done ----------------------------------

@dataclass
class Revocation:
    host: ScriptHost
    creds_cp: dict[str, str]
    creds_worker: dict[str, str]
    before: dict[str, Any]
    after: dict[str, Any]
    steps: dict[str, StepResult]


@pytest.fixture(scope="module")
def revocation(tmp_path_factory: pytest.TempPathFactory) -> Revocation:
    """A kubeadm cluster whose operator keeps a token of their own (`ci runner`) beside the
    one `kubeadm init` made; then the credentials for a control-plane and a worker join, the
    revoke step (first with `kubeadm token delete` failing), the revoke step again, and a
    worker join with the revoked token."""
    cluster = cluster_of()
    boot = cluster.bootstrap
    steps: dict[str, StepResult] = {}
    revoke = ks.revoke_join_credentials_script(cluster)
    with ScriptHost(tmp_path_factory.mktemp("revoke"), cluster) as host:
        seed_cluster(host, control_plane=[boot])
        steps["own-token"] = host.run(boot.name, "kubeadm token create --description 'ci runner'"
                                      " >/dev/null\n")
        steps["creds-cp"], creds_cp = credentials(host, cluster, control_plane=True)
        steps["creds-worker"], creds_w = credentials(host, cluster, control_plane=False)
        before = host.state()
        steps["revoke-failing"] = host.run(boot.name, revoke, fail=("kubeadm token delete",))
        steps["revoke"] = host.run(boot.name, revoke)
        steps["revoke-again"] = host.run(boot.name, revoke)
        after = host.state()
        steps["late-join"] = host.run("ubuntu-74", ks.worker_join_script(
            cluster, cluster.node("ubuntu-74"), creds_w))
    return Revocation(host, creds_cp, creds_w, before, after, steps)


def _descriptions(state: dict[str, Any]) -> list[str]:
    return sorted(t.get("description", "") for t in state["tokens"].values())


def test_certificate_key_reaches_kubeadm_only_in_a_config_file(revocation: Revocation) -> None:
    """`init phase upload-certs` takes the key from the InitConfiguration's certificateKey
    (kubeadm cmd/init.go initData.CertificateKey) in a file removed afterwards; no argv of any
    call carries the key or a token's secret half, which any local user reads in
    /proc/<pid>/cmdline."""
    creds = revocation.steps["creds-cp"]
    assert creds.rc == 0, creds.explain()
    (upload,) = creds.of("kubeadm init phase upload-certs")
    docs = config_docs(upload.config)
    assert docs["InitConfiguration"]["certificateKey"] == revocation.creds_cp["certificateKey"]
    assert docs["ClusterConfiguration"]["kubernetesVersion"] == "v1.32.3"  # no stable-1 lookup
    assert revocation.before["kubeadm_certs"]["key"] == revocation.creds_cp["certificateKey"]
    secrets = [revocation.creds_cp["certificateKey"], revocation.creds_cp["token"].split(".")[1],
               revocation.creds_worker["token"].split(".")[1]]
    for res in revocation.steps.values():
        for call in res.calls:
            assert not any(s in arg for s in secrets for arg in call.argv), call.line
    conf = next(a for a in upload.argv if a.startswith("--config=")).removeprefix("--config=")
    assert not revocation.host.file("ubuntu-73", conf).exists()


def test_join_tokens_and_uploaded_certificates_are_revoked_and_no_one_elses(
        revocation: Revocation) -> None:
    """Deleted: the two tokens made for the joins and kubeadm's TTL proxy that owns the
    kubeadm-certs Secret, and that Secret (the CA keys under the certificate key). Kept: the
    operator's token and the one the seed's `kubeadm init` made."""
    assert _descriptions(revocation.before) == sorted([
        "The default bootstrap token generated by 'kubeadm init'.", "ci runner",
        "kube-ha join", "kube-ha join", ks.CERTS_PROXY_DESCRIPTION])
    done = revocation.steps["revoke"]
    assert done.rc == 0, done.explain()
    assert count(done, "kubeadm token delete") == 3
    assert _descriptions(revocation.after) == sorted([
        "The default bootstrap token generated by 'kubeadm init'.", "ci runner"])
    assert "kubeadm_certs" not in revocation.after


def test_revocation_fails_loudly_then_runs_again_as_a_no_op(revocation: Revocation) -> None:
    """A delete that fails for any reason but NotFound fails the step (the tokens would stay
    valid); once done, a second run finds nothing of ours."""
    failing = revocation.steps["revoke-failing"]
    assert failing.rc != 0 and stopped_at(failing) == "kubeadm token delete"
    again = revocation.steps["revoke-again"]
    assert again.rc == 0, again.explain()
    assert not again.of("kubeadm token delete")
    assert "revoked 0 bootstrap tokens" in again.stderr


def test_a_revoked_token_joins_nothing(revocation: Revocation) -> None:
    """kubeadm join with the deleted token fails discovery (no JWS signature for its ID in
    cluster-info, discovery/token/token.go)."""
    late = revocation.steps["late-join"]
    assert late.rc != 0
    assert stopped_at(late) == "kubeadm join"
