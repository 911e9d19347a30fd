"""Issued apiserver certificates: real X.509 checked by openssl, and by kubectl through haproxy."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_ha.config import parse_cluster
from kube_ha.kubeadm.config import kubeadm_config
from kube_ha.kubeadm.scripts import cluster_configuration_edit
from kube_ha.model import Cluster
from kube_ha.topology import apiserver_sans
from tests.harness import pki
from tests.harness.lab import Lab
from tests.mocks import ClusterMocks
from tests.program import (
    SSH_KEY,
    Run,
    changed_between,
    dev_stack,
    grown_stack,
    run_program,
    vip_stack,
)


def issued(mocks: ClusterMocks, stem: str) -> pki.KeyPair:
    return pki.KeyPair(mocks.outputs[f"{stem}-cert"]["certPem"],
                       mocks.outputs[f"{stem}-key"]["privateKeyPem"])


def openssl_verify(ca: Path, cert: Path, *check: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), *check, str(cert)],
                          capture_output=True, text=True)


def test_dev_certs_verify_for_every_name_a_client_dials(tmp_path: Path) -> None:
    mocks = ClusterMocks()
    run_program(dev_stack(), mocks=mocks)
    cluster = parse_cluster(dev_stack())
    ca = tmp_path / "ca.crt"
    ca.write_text(mocks.ca.cert_pem)
    for node in cluster.control_plane:
        pair = issued(mocks, f"kubernetes-pki-apiserver-{node.name}")
        crt, _ = pair.write(tmp_path, node.name)
        want = apiserver_sans(cluster, node)
        assert pki.sans_of(pair.cert_pem) == (list(want.dns_names), list(want.ip_addresses))
        for ip in want.ip_addresses:
            result = openssl_verify(ca, crt, "-verify_ip", ip, "-purpose", "sslserver")
            assert result.returncode == 0, (node.name, ip, result.stdout + result.stderr)
        for name in want.dns_names:
            result = openssl_verify(ca, crt, "-verify_hostname", name)
            assert result.returncode == 0, (node.name, name, result.stdout + result.stderr)
        # Another node's address is not in this node's certificate.
        other = next(n for n in cluster.control_plane if n != node)
        assert openssl_verify(ca, crt, "-verify_ip", str(other.address)).returncode != 0


def test_health_check_client_cert_is_a_client_cert(tmp_path: Path) -> None:
    mocks = ClusterMocks()
    run_program(dev_stack(), mocks=mocks)
    ca = tmp_path / "ca.crt"
    ca.write_text(mocks.ca.cert_pem)
    crt, _ = issued(mocks, "kubernetes-pki-lb-health-check").write(tmp_path, "client")
    assert openssl_verify(ca, crt, "-purpose", "sslclient").returncode == 0
    assert openssl_verify(ca, crt, "-purpose", "sslserver").returncode != 0


def kubectl_version(lab: Lab, tmp_path: Path, server_name: str | None) -> subprocess.CompletedProcess[str]:
    kubeconfig = tmp_path / "empty-kubeconfig"
    kubeconfig.write_text("")
    args = ["kubectl", f"--kubeconfig={kubeconfig}", f"--server=https://{lab.endpoint}:{lab.port}",
            f"--certificate-authority={lab.ca_file}", "--token=test-token", "--request-timeout=5s",
            "get", "--raw",
            "/version"]
    if server_name:
        args.insert(1, f"--tls-server-name={server_name}")
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


@pytest.fixture()
def issued_lab(tmp_path: Path) -> Any:
    """A lab whose apiservers serve the certificates the program issued for this topology."""
    mocks = ClusterMocks()
    lab = Lab(tmp_path / "lab", ca=mocks.ca)
    run_program({**lab.raw_config(), "sshPrivateKey": SSH_KEY}, mocks=mocks)
    lab.certs = {s.name: issued(mocks, f"kubernetes-pki-apiserver-{s.name}") for s in lab.servers}
    health = issued(mocks, "kubernetes-pki-lb-health-check")
    lab.client_pem.write_text(health.cert_pem + health.key_pem)
    lab.start()
    lab.wait_states({s.name: "UP" for s in lab.servers}, 10)
    yield lab
    lab.close()


@pytest.mark.parametrize("server_name", [None, "api.lab.kube-ha.test", "kubernetes.default.svc",
                                         "kubernetes"])
def test_kubectl_trusts_every_endpoint_name_through_haproxy(issued_lab: Lab, tmp_path: Path,
                                                            server_name: str | None) -> None:
    for _ in range(len(issued_lab.servers)):  # leastconn spreads these over every backend
        result = kubectl_version(issued_lab, tmp_path, server_name)
        assert result.returncode == 0, result.stderr
        assert '"gitVersion"' in result.stdout


def test_seed_failure_reproduced_with_kubeadm_default_sans(tmp_path: Path) -> None:
    """kubeadm's original cert names the service IP and the node only: the LB address fails."""
    lab = Lab(tmp_path / "lab")
    assert lab.ca is not None
    lab.certs = {s.name: pki.issue(lab.ca, "kube-apiserver", dns=[s.name, "kubernetes"],
                                   ips=["10.96.0.1", s.address]) for s in lab.servers}
    with lab:
        lab.start()
        # Our checks verify the endpoint's name (check-sni + verifyhost), so these backends
        # are DOWN; the fail-open twins still carry the traffic, and the client sees the error.
        lab.wait_states({s.name: "DOWN" for s in lab.servers}, 10)
        result = kubectl_version(lab, tmp_path, None)
    assert result.returncode != 0
    assert "x509: certificate is valid for" in result.stderr, result.stderr
    assert f"not {lab.endpoint}" in result.stderr


def test_a_san_change_touches_exactly_the_certs_and_their_install_steps(dev: Run) -> None:
    raw = dev_stack()
    raw["certificates"]["extraSans"] = ["k8s.example.com"]
    changed = changed_between(dev, run_program(raw))
    nodes = ["ubuntu-73", "ubuntu-70", "ubuntu-72"]
    certs = {f"kubernetes-pki-apiserver-{n}-{p}" for n in nodes for p in ("csr", "cert")}
    elastic = {"kubernetes-elastic-apiserver-serving-csr", "kubernetes-elastic-apiserver-serving-cert",
               "kubernetes-elastic-apiserver-serving-secret"}
    installs = {f"kubernetes-kubeadm-{n}-{step}" for n in nodes
                for step in ("control-plane", "serving-certificate")}
    # The preflight compares what each apiserver serves with its new names.
    checks = {f"kubernetes-preflight-control-plane-{n}" for n in nodes}
    # The LB's checks of the elastic servers ask for the name that marks the new set
    # (topology.elastic_san_marker): a pod stays out until it serves the new certificate.
    lb = {"kubernetes-lb-haproxy-101-configure"}
    assert changed == certs | elastic | installs | checks | lb, changed


def test_adding_a_control_plane_node_leaves_the_others_certs_alone(dev: Run) -> None:
    changed = changed_between(dev, run_program(grown_stack()))
    existing = tuple(f"kubernetes-pki-apiserver-{n}-" for n in ("ubuntu-73", "ubuntu-70",
                                                                 "ubuntu-72"))
    assert not any(n.startswith(existing) for n in changed), changed
    assert "kubernetes-lb-haproxy-101-configure" in changed
    assert {"kubernetes-pki-apiserver-ubuntu-76-cert", "kubernetes-kubeadm-ubuntu-76-control-plane",
            "kubernetes-kubeadm-ubuntu-77-membership"} <= changed
    assert "kubernetes-kubeadm-ubuntu-70-control-plane" not in changed


def test_rotation_counter_rekeys_every_issued_certificate() -> None:
    raw = dev_stack()
    raw["certificates"]["rotation"] = 3
    run = run_program(raw)
    keys = [r for r in run.monitor.registrations.values()
            if r.typ == "tls:index/privateKey:PrivateKey"]
    assert len(keys) >= 5
    for reg in keys:
        assert reg.replacement_trigger == 3, (reg.name, reg.replacement_trigger)


def kubeadm_checked_names(kubeadm_yaml: str, node_name: str, advertise: str
                          ) -> tuple[set[str], set[str]]:
    """The names kubeadm requires in a pre-placed apiserver.crt of one node: its own rule,
    kubernetes/kubernetes cmd/kubeadm/app/util/pkiutil/pki_helpers.go GetAPIServerAltNames
    (node name, kubernetes[.default[.svc[.<dnsDomain>]]], the service subnet's first IP, the
    advertise address, controlPlaneEndpoint's host, then ClusterConfiguration.apiServer.certSANs);
    a pre-placed certificate missing one fails validation (kubernetes#84644)."""
    cc = next(d for d in yaml.safe_load_all(kubeadm_yaml) if d["kind"] == "ClusterConfiguration")
    dns = {node_name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{cc['networking']['dnsDomain']}"}
    ips = {str(next(ipaddress.ip_network(cc["networking"]["serviceSubnet"]).hosts())), advertise}
    host = cc["controlPlaneEndpoint"].rsplit(":", 1)[0].strip("[]")
    for name in [host, *cc["apiServer"]["certSANs"]]:
        try:
            ips.add(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.add(name)
    return dns, ips


def imported_cluster_configuration(cluster: Cluster) -> str:
    """An adopted cluster's ClusterConfiguration after the bootstrap step's edit (run with the
    real awk): before it, as kubeadm marshals it, with certSANs naming every master and the
    seed's LB address, and an older controlPlaneEndpoint."""
    masters = "".join(f"  - {h.address}\n" for h in cluster.control_plane)
    before = ("apiServer:\n  certSANs:\n  - 10.21.22.250\n" + masters
              + "apiVersion: kubeadm.k8s.io/v1beta4\nclusterName: kubernetes\n"
              + f"controlPlaneEndpoint: {cluster.control_plane[0].address}:6443\n"
              + "kind: ClusterConfiguration\nkubernetesVersion: v1.32.3\nnetworking:\n"
              + f"  dnsDomain: {cluster.networking.cluster_domain}\n"
              + f"  serviceSubnet: {cluster.networking.service_subnet}\n")
    return subprocess.run(["bash", "-c", cluster_configuration_edit(cluster)], input=before,
                          capture_output=True, text=True, check=True).stdout


STACKS = {
    "dev": dev_stack(),
    "extraSans": {**dev_stack(), "certificates": {"caSource": "generate", "rotation": 0,
                                                  "extraSans": ["api.example.org"]}},
    "nodeLocalProxy": {**dev_stack(), "nodeLocalProxy": True},
    "virtual IP": vip_stack(),
    "five control-plane nodes": grown_stack(),
}


@pytest.mark.parametrize("origin", ["new", "imported"])
@pytest.mark.parametrize("raw", STACKS.values(), ids=STACKS.keys())
def test_every_control_plane_cert_passes_kubeadms_own_san_check(raw: dict[str, Any],
                                                                 origin: str) -> None:
    """Each node's certificate (the real one the program issues) holds every name kubeadm checks
    when that node joins with it pre-placed, for the ClusterConfiguration the program writes
    (new) or leaves after adopting a cluster whose certSANs named each master (imported)."""
    mocks = ClusterMocks()
    run_program(raw, mocks=mocks)
    cluster = parse_cluster(raw)
    config = (kubeadm_config(cluster) if origin == "new"
              else imported_cluster_configuration(cluster))
    for node in cluster.control_plane:
        have_dns, have_ips = map(set, pki.sans_of(
            issued(mocks, f"kubernetes-pki-apiserver-{node.name}").cert_pem))
        want_dns, want_ips = kubeadm_checked_names(config, node.name, str(node.address))
        assert want_dns <= have_dns, (node.name, want_dns - have_dns)
        assert want_ips <= have_ips, (node.name, want_ips - have_ips)
