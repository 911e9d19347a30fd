"""Preflight: the read-only script per host, run for real on fake hosts (tests/harness/
script_host.py: a network namespace per node, real `ip`, `ss`, `getent`, `openssl`; stand-ins
for kubeadm, kubelet, crictl that answer as the real ones do, each fact cited in
tests/harness/standins), one good host and one with each problem; and under the engine mocks,
no step that changes a host can start before every preflight passed.

The stand-ins' facts these tests lean on: `kubeadm version -o short` prints "v1.32.3"
(cmd/version.go); `kubelet --version` prints "Kubernetes v1.32.3" (component-base verflag);
`crictl version` fails when the runtime does not answer (cri-tools cmd/crictl/version.go,
main.go); kubeadm's static pods name their image with the cluster's version
(phases/controlplane/manifests.go); kubelet.conf's client certificate is system:node:<name>.
"""

from __future__ import annotations

import dataclasses
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from kube_ha.config import parse_cluster
from kube_ha.model import Cluster
from kube_ha.preflight import (
    HELPERS,
    Target,
    haproxy_version,
    openssl_san,
    preflight_command,
    preflight_script,
    targets,
)
from tests.harness import pki
from tests.harness.hosts import host
from tests.harness.script_host import ScriptHost, StepResult, seed_cluster
from tests.program import cluster_of, dev_stack, run_program, vip_stack

pytestmark = pytest.mark.slow

LISTEN = ("python3 -c 'import socket, time; s = socket.socket(); "
          "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"0.0.0.0\", {port}));"
          " s.listen(); time.sleep(120)' </dev/null >/dev/null 2>&1 &\n"
          # listening before the step returns (bounded: 5 s)
          "for _ in $(seq 50); do ss -Hltn '( sport = :{port} )' | grep -q . && break;"
          " sleep 0.1; done\n")


def target(cluster: Cluster, name: str) -> Target:
    return next(t for t in targets(cluster) if t.host.name == name)


@dataclass
class World:
    host: ScriptHost
    cluster: Cluster
    runs: dict[str, StepResult]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The dev cluster as its user built it (ubuntu-73 and ubuntu-72 joined, worker ubuntu-75),
    ubuntu-70 and ubuntu-74 still to join. Each preflight runs on a good world, then on one
    with the problems each case plants."""
    cluster = cluster_of()
    n = {h.name: h for h in cluster.nodes}
    runs: dict[str, StepResult] = {}
    with ScriptHost(tmp_path_factory.mktemp("preflight"), cluster) as h:
        seed_cluster(h, control_plane=[n["ubuntu-73"], n["ubuntu-72"]], workers=[n["ubuntu-75"]],
                     endpoint="10.21.22.101:6443")
        h.metrics_api("available")  # the dev stack's elastic apiservers scale on it
        for t in targets(cluster):
            if t.role != "lb":
                runs[f"good {t.host.name}"] = h.run(t.host.name, preflight_script(cluster, t))
        # An LB host: the dev LB's checks, run on a host of this world (ubuntu-74's address).
        lb = dataclasses.replace(cluster.load_balancers[0], address=n["ubuntu-74"].address)
        runs["good lb"] = h.run("ubuntu-74", preflight_script(
            cluster, Target(lb, "loadBalancers[0]", "lb")))
        vip = parse_cluster({**vip_stack(), "loadBalancer": {"vrrpInterface": "ens3"}})
        vip_lb = dataclasses.replace(vip.load_balancers[0], address=lb.address)
        runs["vip lb without its interface"] = h.run("ubuntu-74", preflight_script(
            vip, Target(vip_lb, "loadBalancers[0]", "lb")))
        # No vrrpInterface: the one holding the LB's address, which must then be on the host.
        found = parse_cluster(vip_stack())
        runs["good vip lb, interface from its address"] = h.run("ubuntu-74", preflight_script(
            found, Target(dataclasses.replace(found.load_balancers[0], address=lb.address),
                          "loadBalancers[0]", "lb")))
        runs["vip lb, address not here"] = h.run("ubuntu-74", preflight_script(
            found, Target(found.load_balancers[0], "loadBalancers[0]", "lb")))
        # An earlier kube-ha configured keepalived on eth9 here (its default was eth0).
        h.run("ubuntu-74", "mkdir -p /etc/keepalived\n"
                           "printf '    interface eth9\\n' > /etc/keepalived/keepalived.conf\n")
        runs["vip lb, keepalived on another interface"] = h.run("ubuntu-74", preflight_script(
            found, Target(dataclasses.replace(found.load_balancers[0], address=lb.address),
                          "loadBalancers[0]", "lb")))
        h.run("ubuntu-74", "rm -r /etc/keepalived\n")
        # ubuntu-70 (to join the control plane) cut off from its peers two ways: no route to
        # ubuntu-73 here (an ICMP error at once), and ubuntu-72 dropping what it would answer
        # (a firewall's DROP: no answer at all). Undone after.
        cut = (f"ip route add unreachable {n['ubuntu-73'].address}/32\n",
               f"ip route add blackhole {n['ubuntu-70'].address}/32\n")
        h.run("ubuntu-70", cut[0])
        h.run("ubuntu-72", cut[1])
        runs["cut off ubuntu-70"] = h.run("ubuntu-70", preflight_script(
            cluster, target(cluster, "ubuntu-70")))
        h.run("ubuntu-70", cut[0].replace(" add ", " del "))
        h.run("ubuntu-72", cut[1].replace(" add ", " del "))
        # The stack's networking is not the running cluster's; metrics-server is down, then
        # absent.
        other_net = cluster_of(serviceSubnet="10.100.0.0/16", clusterDomain="corp.internal",
                               clusterName="prod")
        h.metrics_api("unavailable")
        runs["other networking, metrics down"] = h.run("ubuntu-73", preflight_script(
            other_net, target(other_net, "ubuntu-73")))
        h.metrics_api(None)
        runs["no metrics api"] = h.run("ubuntu-73", preflight_script(
            cluster, target(cluster, "ubuntu-73")))
        # Asked to install metrics-server: none yet, or its own, passes; another metrics API
        # (prometheus-adapter's) is not taken over.
        install = cluster_of(elasticApiserver={**dev_stack()["elasticApiserver"],
                                               "installMetricsServer": True})
        runs["install, no metrics api"] = h.run("ubuntu-73", preflight_script(
            install, target(install, "ubuntu-73")))
        h.metrics_api("unavailable")
        runs["install, metrics-server down"] = h.run("ubuntu-73", preflight_script(
            install, target(install, "ubuntu-73")))
        h.metrics_api("available", served_by="monitoring/prometheus-adapter")
        runs["install over another metrics api"] = h.run("ubuntu-73", preflight_script(
            install, target(install, "ubuntu-73")))
        h.metrics_api("available")

        # ubuntu-70: kubeadm missing, a kubelet newer than the control plane, no runtime,
        # and something already on etcd's port.
        h.install("ubuntu-70", kubeadm="absent", kubelet="v1.33.1", runtime="down")
        h.run("ubuntu-70", LISTEN.format(port=2379))
        runs["bad ubuntu-70"] = h.run("ubuntu-70", preflight_script(
            cluster, target(cluster, "ubuntu-70")))
        # ubuntu-74: a kubeadm two minors old; something on the LB port (as an LB host).
        h.install("ubuntu-74", kubeadm="v1.30.4")
        runs["bad ubuntu-74"] = h.run("ubuntu-74", preflight_script(
            cluster, target(cluster, "ubuntu-74")))
        h.run("ubuntu-74", LISTEN.format(port=6443))
        runs["bad lb"] = h.run("ubuntu-74", preflight_script(
            cluster, Target(lb, "loadBalancers[0]", "lb")))
        # The config names ubuntu-73's address under another name, and an older version.
        renamed = cluster_of(kubernetesVersion="v1.31.2", controlPlane=[
            {**e, "name": "ubuntu-99"} if e["name"] == "ubuntu-73" else e
            for e in dev_stack()["controlPlane"]])
        runs["renamed ubuntu-73"] = h.run("ubuntu-73", preflight_script(
            renamed, target(renamed, "ubuntu-99")))
        # A joined worker listed as a control-plane node: no apiserver manifest there. The
        # script must still list what it found (a failing lookup must not end it silently).
        listed_wrong = cluster_of(allowEvenControlPlane=True, controlPlane=[
            *dev_stack()["controlPlane"], next(w for w in dev_stack()["workers"]
                                               if w["name"] == "ubuntu-75")],
            workers=[w for w in dev_stack()["workers"] if w["name"] != "ubuntu-75"])
        runs["worker listed as control plane"] = h.run("ubuntu-75", preflight_script(
            listed_wrong, target(listed_wrong, "ubuntu-75")))
        # The endpoint's name resolves nowhere; the pod network is gone.
        unresolved = cluster_of(endpoint={**dev_stack()["endpoint"],
                                          "dnsName": "api.elsewhere.internal"})
        h.hub("rm -f /etc/cni/net.d/*\n")
        runs["bare ubuntu-73"] = h.run("ubuntu-73", preflight_script(
            unresolved, target(unresolved, "ubuntu-73")))
        # The name resolves, to another address than the endpoint's.
        elsewhere = cluster_of(endpoint={**dev_stack()["endpoint"], "address": "10.21.22.102"},
                               loadBalancers=[host("haproxy-102", "10.21.22.102")])
        runs["misresolved ubuntu-75"] = h.run("ubuntu-75", preflight_script(
            elsewhere, target(elsewhere, "ubuntu-75")))
        # A new endpoint address: the seed's certificates name the old one (10.21.22.101, its
        # controlPlaneEndpoint), which clients may still dial, unless it is kept as an extra
        # SAN; once kube-ha installed its own certificate (a backup is left), no longer asked.
        runs["moved ubuntu-72"] = h.run("ubuntu-72", preflight_script(
            elsewhere, target(elsewhere, "ubuntu-72")))
        kept = cluster_of(endpoint={**dev_stack()["endpoint"], "address": "10.21.22.102"},
                          loadBalancers=[host("haproxy-102", "10.21.22.102")],
                          certificates={**dev_stack()["certificates"],
                                        "extraSans": ["10.21.22.101"]})
        runs["moved ubuntu-72, old address kept"] = h.run("ubuntu-72", preflight_script(
            kept, target(kept, "ubuntu-72")))
        h.run("ubuntu-72", "cp -p /etc/kubernetes/pki/apiserver.crt"
                           " /etc/kubernetes/pki/apiserver.crt.kube-ha-20261122000000\n")
        runs["moved ubuntu-72 after kube-ha"] = h.run("ubuntu-72", preflight_script(
            elsewhere, target(elsewhere, "ubuntu-72")))
    return World(h, cluster, runs)


def problems(res: StepResult) -> list[str]:
    return [line.strip() for line in res.stderr.splitlines() if line.startswith("  ")]


def test_every_good_host_passes_and_changes_nothing(world: World) -> None:
    """Joined or not, control plane, worker or LB: no problem. Only read-only calls ran."""
    good = {k: r for k, r in world.runs.items() if k.startswith("good")}
    assert len(good) == 7
    for name, res in good.items():
        assert res.rc == 0, (name, res.explain())
        assert "is ready" in res.stderr
        assert {c.verb for c in res.calls} <= {"kubeadm version", "kubelet --version",
                                               "crictl version", "kubectl get configmap",
                                               "kubectl get"}, name


def test_a_host_with_many_problems_lists_them_all_naming_its_key(world: World) -> None:
    res = world.runs["bad ubuntu-70"]
    assert res.rc == 1
    found = problems(res)
    assert all(p.startswith("controlPlane[1] (ubuntu-70): ") for p in found), found
    text = "\n".join(found)
    assert "kubeadm is not installed" in text
    assert "kubelet is 1.33; with kubernetesVersion v1.32.3 it must be 1.29 to 1.32" in text
    assert "no container runtime answers crictl" in text
    assert "port 2379 is in use" in text
    assert len(found) == 4
    assert "refusing before any host is changed" in res.stderr


def test_version_skew_is_judged_as_kubeadm_documents_it(world: World) -> None:
    """kubeadm 1.30 cannot deploy 1.32; the running control plane's version (from its static
    pod's image) must be the configured one: this program joins, it does not upgrade."""
    assert problems(world.runs["bad ubuntu-74"]) == [
        "workers[0] (ubuntu-74): kubeadm is 1.30; kubernetesVersion v1.32.3 needs kubeadm 1.32"
        " or 1.33"]
    renamed = "\n".join(problems(world.runs["renamed ubuntu-73"]))
    assert "kube-apiserver runs v1.32.3 here but kubernetesVersion is v1.31.2" in renamed


def test_a_joined_worker_listed_as_control_plane_is_reported_not_fatal(world: World) -> None:
    res = world.runs["worker listed as control plane"]
    assert res.rc == 1, res.explain()
    found = problems(res)
    assert ("controlPlane[3] (ubuntu-75): this host joined the cluster but runs no kube-apiserver"
            " static pod: is it a worker?") in found
    assert "kubectl is not installed" not in "\n".join(found)  # the stand-ins are on PATH


def test_an_lb_sharing_a_control_plane_host_and_name_gets_its_own_preflight() -> None:
    """An LB may run on a control-plane node (on another port) under the same name: the two
    preflights are two resources, named by role (the engine refuses duplicate URNs)."""
    raw = dev_stack()
    raw["loadBalancers"].append(host("ubuntu-70", "10.21.22.70"))
    raw["endpoint"] = {"address": "10.21.22.100", "port": 8443, "virtualIp": True}
    run = run_program(raw)
    names = [r.name for r in run.mocks.resources]
    assert len(names) == len(set(names))
    assert {"kubernetes-preflight-control-plane-ubuntu-70",
            "kubernetes-preflight-lb-ubuntu-70"} <= set(names)


def test_a_host_that_is_another_node_is_refused(world: World) -> None:
    """The address is ubuntu-73's (its kubelet's certificate says so): the config's
    ubuntu-99 there would be joined, drained or reset as someone else."""
    found = problems(world.runs["renamed ubuntu-73"])
    assert ("controlPlane[0] (ubuntu-99): this host joined as Node ubuntu-73, not ubuntu-99: the"
            " address belongs to another node (fix the name or the address)") in found


def test_lb_ports_taken_by_another_program_and_a_missing_vrrp_interface(world: World) -> None:
    lb = problems(world.runs["bad lb"])
    assert len(lb) == 1 and lb[0].startswith("loadBalancers[0] (haproxy-101): port 6443 is in use")
    assert "python3" in lb[0]
    vip = "\n".join(problems(world.runs["vip lb without its interface"]))
    assert "loadBalancer.vrrpInterface: ens3 does not exist here (this host has: lo eth0" in vip


def test_the_vrrp_interface_is_the_one_holding_the_lb_address(world: World) -> None:
    """Without loadBalancer.vrrpInterface the configure step runs VRRP where the address is
    (test_lb_scripts); the preflight asks only that the address be this host's."""
    assert problems(world.runs["vip lb, address not here"]) == [
        "loadBalancers[0] (haproxy-101): 10.21.22.101 is not an address of this host (VRRP runs"
        " on the interface that holds it; or set loadBalancer.vrrpInterface)"]
    assert problems(world.runs["vip lb, keepalived on another interface"]) == [
        "loadBalancers[0] (haproxy-101): loadBalancer.vrrpInterface: keepalived here runs VRRP on"
        " eth9, but the interface holding 10.21.22.74 is eth0: set loadBalancer.vrrpInterface to"
        " eth9 to keep it there, or to eth0 to move it"]


def test_every_port_a_host_dials_is_reachable_or_refused(world: World) -> None:
    """Nothing listens on most of ubuntu-73's and ubuntu-72's probed ports in this world, and
    the good runs pass: a refusal is an answer. A route that fails at once (EHOSTUNREACH:
    bash prints strerror, "No route to host") and a peer that never answers (a DROP) are each
    named with the peer's key and the port, every port of it."""
    found = problems(world.runs["cut off ubuntu-70"])
    where = "controlPlane[1] (ubuntu-70): "
    assert all(p.startswith(where) for p in found), found
    ports = {"6443": "apiserver", "2379": "etcd client port", "2380": "etcd peer port",
             "10250": "kubelet"}
    expected = sorted(
        f"{where}cannot reach the {what} of controlPlane[{i}] ({peer}) at 10.21.22.{peer[-2:]}"
        f":{port} ({why}): open it between these hosts (README, Ports)"
        for i, peer, why in ((0, "ubuntu-73", "No route to host"),
                             (2, "ubuntu-72", "no answer in 3 s: a firewall dropping it?"))
        for port, what in ports.items())
    assert sorted(found) == expected


def test_the_live_cluster_networking_and_metrics_api_are_checked(world: World) -> None:
    """On the bootstrap node of a running cluster, through its admin.conf: kubeadm-config's
    networking (what the seed's `kubeadm init` recorded: 10.96.0.0/12, cluster.local) against
    the stack; the metrics API the elastic apiservers' HPA needs."""
    where = "controlPlane[0] (ubuntu-73): "
    # (The running certificate's service address and name would be lost too: extraSans; and
    # the in-cluster pods' flags would differ from the static pods': test below.)
    assert [p for p in problems(world.runs["other networking, metrics down"])
            if "extraSans" not in p and "would run" not in p] == [
        f"{where}clusterName: the cluster runs clusterName kubernetes (kubeadm-config), the stack"
        " says prod: set clusterName to the cluster's",
        f"{where}serviceSubnet: the cluster runs networking.serviceSubnet 10.96.0.0/12"
        " (kubeadm-config), the stack says 10.100.0.0/16: set serviceSubnet to the cluster's",
        f"{where}clusterDomain: the cluster runs networking.dnsDomain cluster.local"
        " (kubeadm-config), the stack says corp.internal: set clusterDomain to the cluster's",
        f"{where}elasticApiserver.enabled: the metrics API does not answer (Error from server"
        " (ServiceUnavailable): the server is currently unable to handle the request), so the"
        " elastic apiservers' HorizontalPodAutoscaler could never scale: install metrics-server"
        " first (README, Prerequisites), or set elasticApiserver.installMetricsServer: true"]
    assert problems(world.runs["no metrics api"]) == [
        f"{where}elasticApiserver.enabled: the metrics API does not answer (Error from server"
        " (NotFound): the server could not find the requested resource), so the elastic"
        " apiservers' HorizontalPodAutoscaler could never scale: install metrics-server first"
        " (README, Prerequisites), or set elasticApiserver.installMetricsServer: true"]
    for ok in ("install, no metrics api", "install, metrics-server down"):
        assert world.runs[ok].rc == 0, world.runs[ok].explain()
    assert problems(world.runs["install over another metrics api"]) == [
        f"{where}elasticApiserver.installMetricsServer: the metrics API is served by"
        " monitoring/prometheus-adapter (APIService v1beta1.metrics.k8s.io), which"
        " metrics-server's release would take over. Fix: leave"
        " elasticApiserver.installMetricsServer false; the HPA reads that API as it is"]


def test_an_unresolvable_endpoint_name_and_a_missing_pod_network(world: World) -> None:
    found = "\n".join(problems(world.runs["bare ubuntu-73"]))
    assert "endpoint.dnsName api.elsewhere.internal does not resolve here" in found
    assert "the cluster has no pod network" in found
    assert problems(world.runs["misresolved ubuntu-75"]) == [
        "workers[1] (ubuntu-75): endpoint.dnsName api.k8s.lab.internal resolves to 10.21.22.101"
        " here, not to endpoint.address 10.21.22.102"]


def test_a_name_the_running_apiserver_serves_is_not_dropped_silently(world: World) -> None:
    """The seed's apiserver certificates name its controlPlaneEndpoint (10.21.22.101; kubeadm
    puts that host in every apiserver certificate: pkiutil.GetAPIServerAltNames). Moving the
    endpoint elsewhere would replace them with certificates without it, and clients that
    still dial it would fail: refused, naming certificates.extraSans, until the name is kept
    there. Another node's own address in that certificate is no loss, and a certificate kube-ha
    installed itself (its backup beside it) is not asked about: dropping a SAN from the config
    is then deliberate."""
    found = [p for p in problems(world.runs["moved ubuntu-72"]) if "extraSans" in p]
    assert len(found) == 1, problems(world.runs["moved ubuntu-72"])
    assert found[0].startswith("controlPlane[2] (ubuntu-72): certificates.extraSans: the apiserver"
                               " here serves IP Address:10.21.22.101 (")
    for case in ("moved ubuntu-72, old address kept", "moved ubuntu-72 after kube-ha"):
        assert not [p for p in problems(world.runs[case]) if "extraSans" in p], case
    assert not [p for name, run in world.runs.items() if name.startswith("good")
                for p in problems(run) if "extraSans" in p]


@pytest.mark.parametrize("names", [["kubernetes.default", "10.96.0.1"],
                                   ["API.Example.org", "fd00::10", "::1", "2001:db8::a:0:1"]])
def test_san_names_are_compared_in_the_form_openssl_prints(names: list[str], tmp_path: Path
                                                            ) -> None:
    """`openssl x509 -ext subjectAltName` prints `DNS:`/`IP Address:` entries, IPv6 as eight
    upper-case groups (crypto/x509/v3_san.c); the preflight compares against openssl_san."""
    ca = pki.make_ca()
    pair = pki.issue(ca, "kube-apiserver", dns=[n for n in names if ":" not in n and
                                                not n[0].isdigit()],
                     ips=[n for n in names if ":" in n or n[0].isdigit()])
    (tmp_path / "c.pem").write_text(pair.cert_pem)
    out = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                          str(tmp_path / "c.pem")], capture_output=True, text=True,
                         check=True).stdout
    printed = [e.strip() for e in out.splitlines()[1].split(",")]
    assert sorted(printed) == sorted(openssl_san(n) for n in names)


def test_no_step_changes_a_host_before_every_preflight_passed() -> None:
    """Under the engine mocks: every remote step but the preflights and the read-only reads
    depends, directly or through others, on every host's preflight."""
    run = run_program(dev_stack())
    commands = [r.name for r in run.monitor.registrations.values()
                if r.typ == "command:remote:Command"]
    preflights = {n for n in commands if "-preflight-" in n}
    assert len(preflights) == len(targets(cluster_of()))
    # The reads (the CA, the admin kubeconfig, each Secret's files) change nothing.
    changing = [n for n in commands if n not in preflights and "-read-" not in n]
    assert len(changing) > 10
    for name in changing:
        assert preflights <= run.upstream(name), name


# sudo -n when the sudoers rule needs a password: "sudo: a password is required", exit 1
# (sudo-project/sudo
# plugins/sudoers/check.c check_user: with -n, log_auth_failure in logging.c prints "a password is
# required" through sudo_warnx, which puts "sudo: " first; src/sudo.c returns EXIT_FAILURE). A
# user not in sudoers at all gets the same with -n: check_user runs before log_denial.
SUDO_ASKS = '#!/bin/sh\n[ "$1" = -n ] || exit 99\necho "sudo: a password is required" >&2\nexit 1\n'
SUDO_LETS = '#!/bin/sh\n[ "$1" = -n ] || exit 99\nshift\nexec "$@"\n'


@pytest.mark.parametrize("sudo", [SUDO_ASKS, SUDO_LETS])
def test_a_user_without_passwordless_sudo_is_named(sudo: str, tmp_path: Path) -> None:
    """The preflight's command asks sudo first, so a host where sudo wants a password is
    refused naming the host and what to change, before the script runs."""
    cluster = cluster_of(sshUser="ubuntu")
    t = target(cluster, "ubuntu-70")
    assert t.host.user == "ubuntu"
    assert "sudo" not in preflight_command(target(cluster_of(), "ubuntu-70"))  # root: no sudo
    (tmp_path / "sudo").write_text(sudo)
    (tmp_path / "sudo").chmod(0o755)
    ran = subprocess.run(["sh", "-c", preflight_command(t)], input="echo the script ran\n",
                         capture_output=True, text=True, timeout=30,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    if sudo is SUDO_LETS:
        assert (ran.returncode, ran.stdout) == (0, "the script ran\n"), ran
        return
    assert ran.returncode == 1 and ran.stdout == ""
    assert ran.stderr == (
        "kube-ha: controlPlane[1] (ubuntu-70): the SSH user ubuntu cannot run sudo without a"
        " password here: allow it passwordless sudo (NOPASSWD in sudoers), or connect as root."
        " sudo said: sudo: a password is required\n")


def test_in_cluster_control_plane_pods_must_run_what_the_static_pods_run(
        tmp_path: Path) -> None:
    """A cluster built with extraArgs (kubeadm merges them into the static pods' command lines,
    util/arguments.go ArgumentsToCommand: the stand-in writes them so): encryption at rest and
    another admission plugin set on the apiserver, a node CIDR size and an external CA's empty
    signing key on the controller-manager. The in-cluster pods carry every flag over
    (tests/test_carry.py); what the preflight names is the one they could not: the encryption
    config the flag points at is not on the node (the pods would copy nothing and crash), named
    with the key that asks for those pods."""
    cluster = cluster_of(kubeScheduler={"replicas": 2, "port": 10359})
    cp = cluster.node("ubuntu-73")
    with ScriptHost(tmp_path, cluster) as h:
        seed_cluster(h, control_plane=[cp], extra_args={
            "apiServer": {"encryption-provider-config": "/etc/kubernetes/enc/enc.yaml",
                          "enable-admission-plugins": "NodeRestriction,EventRateLimit"},
            # kubeadm writes an empty value as `--name=` (an external CA's signing key).
            "controllerManager": {"node-cidr-mask-size": "26", "cluster-signing-key-file": ""}})
        h.metrics_api("available")
        refused = h.run("ubuntu-73", preflight_script(cluster, target(cluster, "ubuntu-73")))
        off = cluster_of(elasticApiserver={"enabled": False}, controllerManager={"replicas": 0})
        allowed = h.run("ubuntu-73", preflight_script(off, target(off, "ubuntu-73")))
    where = "controlPlane[0] (ubuntu-73): "
    assert [p.removeprefix(where) for p in problems(refused)] == [
        "elasticApiserver.enabled: the static kube-apiserver here runs --encryption-provider-config"
        "=/etc/kubernetes/enc/enc.yaml, but /etc/kubernetes/enc/enc.yaml is missing"]
    assert allowed.rc == 0, allowed.explain()


@pytest.mark.parametrize(("banner", "found"), [
    # haproxy.c display_version: "HA-Proxy version" up to 2.3 (Debian 11's 2.2.9),
    # "HAProxy version" since.
    ("HA-Proxy version 2.2.9-2+deb11u6 2023/12/17 - https://haproxy.org/",
     "where: haproxy 2.2 is installed here; kube-ha needs 2.4 or later: upgrade it"),
    ("HA-Proxy version 1.8.27-2+deb10u1 2021/06/11", "where: haproxy 1.8 is installed here;"
     " kube-ha needs 2.4 or later: upgrade it"),
    ("HAProxy version 2.4.22-0ubuntu0.22.04.3 2023/08/14 - https://haproxy.org/", ""),
    ("HAProxy version 3.0.11-1 2025/06/03 - https://haproxy.org/", ""),
])
def test_an_installed_haproxy_older_than_2_4_is_named(banner: str, found: str,
                                                      tmp_path: Path) -> None:
    (tmp_path / "haproxy").write_text(f"#!/bin/sh\necho '{banner}'\n")
    (tmp_path / "haproxy").chmod(0o755)
    ran = subprocess.run(["bash", "-c", "\n".join([
        "set -euo pipefail", "where=where", HELPERS, haproxy_version(),
        'printf "%s" "${problems[*]-}"'])], capture_output=True, text=True, timeout=30,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert (ran.returncode, ran.stdout) == (0, found), ran.stderr
