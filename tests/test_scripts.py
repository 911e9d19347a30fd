"""Every script a host receives: shellcheck-clean, and the parts that can run here run twice."""

from __future__ import annotations

import copy
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kube_ha.config import parse_cluster
from kube_ha.elastic.pool import PoolTaints, pool_script
from kube_ha.endpoint_switch import switch_program
from kube_ha.kubeadm import scripts as ks
from kube_ha.kubeadm.config import join_configuration, kubeadm_config
from kube_ha.kubeadm.etcd import control_plane_removals_script, member_removal_script
from kube_ha.loadbalancer import keepalived
from kube_ha.render import artifacts
from kube_ha.shell import script, write_file
from tests.harness import pki
from tests.harness.hosts import host
from tests.program import dev_stack, service_stack, vip_stack


def all_scripts() -> dict[str, str]:
    c = parse_cluster(dev_stack())
    out = {k: v for k, v in artifacts(c).items() if k.endswith(".sh")}
    # A virtual-IP endpoint adds keepalived to the LB scripts.
    out.update({f"vip-{k}": v for k, v in artifacts(parse_cluster(vip_stack())).items()
                if k.startswith("lb/") and k.endswith(".sh")})
    out["vrrp-check.sh"] = keepalived.check_script(c)
    out["install-ca.sh"] = ks.install_ca_script("CERT", "KEY")
    out["membership.sh"] = member_removal_script("n", "10.0.0.1")
    out["elastic-pool-untaint.sh"] = pool_script(PoolTaints(("a",), ("b", "c")))
    kept = dev_stack()
    kept["endpoint"] = {**kept["endpoint"], "manageHostsEntry": True}
    service = parse_cluster(service_stack())
    out["worker-service.sh"] = ks.worker_join_script(
        service, service.workers[0], {"token": "T", "caCertHash": "sha256:H"})
    out["endpoint-switch.sh"] = switch_program("a.example", "10.96.0.50", 6443,
                                               ["10.0.0.1", "10.0.0.2"], 6443)
    out["worker-hosts-entry.sh"] = ks.worker_join_script(
        parse_cluster(kept), parse_cluster(kept).workers[0],
        {"token": "T", "caCertHash": "sha256:H"})
    return out


def test_every_script_passes_shellcheck(tmp_path: Path) -> None:
    scripts = all_scripts()
    assert len(scripts) >= 12
    paths = []
    for name, text in scripts.items():
        path = tmp_path / name.replace("/", "_")
        path.write_text(text)
        paths.append(str(path))
        assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text, name
    result = subprocess.run(["shellcheck", "--severity=style", "--shell=bash", *paths],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_bash_parses_every_script() -> None:
    for name, text in all_scripts().items():
        result = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        assert result.returncode == 0, (name, result.stderr)


def run(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-s"], input=text, capture_output=True, text=True)


def test_write_file_is_atomic_and_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "thing.conf"
    target.parent.mkdir()
    content = "line with $dollar and `backticks` and 'quotes'\nKUBE_HA_EOF\n"
    text = script("t", "changed=0", write_file(str(target), content, "0640"), 'echo "changed=$changed"')
    first, second = run(text), run(text)
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert target.read_text() == content
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert "changed=1" in first.stdout and "changed=0" in second.stdout
    assert "unchanged" in second.stderr
    assert [p.name for p in target.parent.iterdir()] == ["thing.conf"]  # no temp files left


@pytest.mark.parametrize("url", ["https://api.k8s.lab.internal:6443", "https://[fd00::101]:6443"])
def test_repoint_kubeconfig_runs_twice(tmp_path: Path, url: str) -> None:
    """The second run changes nothing, also for an IPv6 URL (whose brackets a regex match
    would read as a bracket expression, re-pointing and restarting kubelet on every run)."""
    conf = tmp_path / "kubelet.conf"
    conf.write_text("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: X\n"
                    "    server: https://10.21.22.73:6443\n  name: kubernetes\n")
    text = script("t", "changed=0", ks.repoint_kubeconfig(str(conf), url), 'echo "changed=$changed"')
    first, second = run(text), run(text)
    assert f"    server: {url}\n" in conf.read_text()
    assert "certificate-authority-data: X" in conf.read_text()
    assert "changed=1" in first.stdout and "changed=0" in second.stdout, (first, second)


@pytest.mark.parametrize("ca", [pki.make_ca(), None])
def test_ca_hash_matches_kubeadm_definition(tmp_path: Path, ca: pki.KeyPair | None) -> None:
    if ca is None:  # kubeadm's own CAs are RSA: check that key type too
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        ca = pki.KeyPair(pki.build_cert(subject_key_pem=key_pem, common_name="kubernetes",
                                        issuer=None, is_ca=True), key_pem)
    (tmp_path / "ca.crt").write_text(ca.cert_pem)
    got = subprocess.run(["bash", "-c", ks.ca_hash_command(str(tmp_path / "ca.crt"))],
                         capture_output=True, text=True, check=True).stdout.strip()
    spki = x509.load_pem_x509_certificate(ca.cert_pem.encode()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert got == hashlib.sha256(spki).hexdigest()


def test_secrets_only_in_secret_scripts(raw: dict[str, Any]) -> None:
    c = parse_cluster(raw)
    node = c.joining_control_plane[0]
    creds = {"token": "abcdef.0123456789abcdef", "caCertHash": "sha256:00", "certificateKey": "ff"}
    join = ks.control_plane_join_script(c, node, "CERT", "KEYMATERIAL", creds)
    # Secrets sit in the script body (which travels as secret stdin), never in a process
    # argument that `ps` would show: kubeadm reads them from its own command line only inside
    # the host, and the removal/reset scripts (plain command strings) carry none.
    assert "KEYMATERIAL" in join
    for text in (control_plane_removals_script((node,)), ks.reset_script(), ks.retire_script(),
                 ks.join_credentials_script(c, True), ks.read_ca_script()):
        assert "KEYMATERIAL" not in text and "abcdef.0123456789abcdef" not in text


def test_join_configuration_carries_the_secrets_kubeadm_needs(raw: dict[str, Any]) -> None:
    c = parse_cluster(raw)
    node = c.joining_control_plane[0]
    creds = {"token": "abcdef.0123456789abcdef", "caCertHash": "sha256:" + "a" * 64,
             "certificateKey": "f" * 64}
    doc = yaml.safe_load(join_configuration(c, node, creds, control_plane=True))
    assert doc["apiVersion"] == "kubeadm.k8s.io/v1beta4" and doc["kind"] == "JoinConfiguration"
    assert doc["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": "api.k8s.lab.internal:6443", "token": creds["token"],
        "caCertHashes": [creds["caCertHash"]]}
    assert doc["controlPlane"] == {"certificateKey": creds["certificateKey"], "localAPIEndpoint": {
        "advertiseAddress": "10.21.22.70", "bindPort": 6443}}
    worker = yaml.safe_load(join_configuration(c, c.workers[0], creds, control_plane=False))
    assert "controlPlane" not in worker and worker["nodeRegistration"] == {"name": "ubuntu-74"}
    script_text = ks.control_plane_join_script(c, node, "CERT", "KEY", creds)
    # Secrets stay off kubeadm's command line (visible in `ps` on the host).
    assert "--token" not in script_text and "--certificate-key" not in script_text
    assert "kubeadm join --config=/etc/kubernetes/kube-ha/join.yaml" in script_text


def test_init_configuration_names_the_endpoint_and_sans(raw: dict[str, Any]) -> None:
    docs = list(yaml.safe_load_all(kubeadm_config(parse_cluster(raw))))
    assert [d["kind"] for d in docs] == ["InitConfiguration", "ClusterConfiguration"]
    cc = docs[1]
    assert cc["controlPlaneEndpoint"] == "api.k8s.lab.internal:6443"
    assert {"10.21.22.101", "api.k8s.lab.internal", "10.96.0.1"} <= set(cc["apiServer"]["certSANs"])
    assert cc["networking"] == {"serviceSubnet": "10.96.0.0/12", "podSubnet": "10.244.0.0/16",
                                "dnsDomain": "cluster.local"}


CLUSTER_CONFIGURATION = """apiServer: {}
apiVersion: kubeadm.k8s.io/v1beta4
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
%s
kubernetesVersion: v1.32.3
networking:
  dnsDomain: cluster.local
  serviceSubnet: 10.96.0.0/12
"""


# ClusterConfiguration as kubeadm keeps it in kube-system/kubeadm-config (sigs.k8s.io/yaml:
# sorted keys, list items level with their key). v1beta4's extraArgs is itself a list of
# name/value items at the same indent as certSANs' items: it must survive the edit.
IMPORTED_API_SERVER = {
    "empty (kubeadm >= 1.31 default, the seed's)": "apiServer: {}\n",
    "certSANs listing each master and the LB (the seed's edit)": (
        "apiServer:\n  certSANs:\n  - 10.21.22.101\n  - 10.21.22.73\n  - 10.21.22.72\n"
        "  extraArgs:\n  - name: authorization-mode\n    value: Node,RBAC\n"),
    "v1beta3 with a timeout": "apiServer:\n  timeoutForControlPlane: 4m0s\n",
    "no apiServer key": "",
}


def awks() -> list[str]:
    """Every awk here: mawk is Debian's, gawk the RHEL family's, nawk the BSDs'."""
    return [a for a in ("mawk", "gawk", "nawk", "original-awk") if shutil.which(a)]


# Where controlPlaneEndpoint may be: absent (kubeadm init without one, as the seed did),
# where kubeadm sorts it, or first with an older value (kube-ha's own earlier patch, before an
# endpoint change on day 2).
ENDPOINT_BEFORE = {
    "absent": "",
    "the seed's first master": "controlPlaneEndpoint: 10.21.22.73:6443",
}


@pytest.mark.parametrize("awk", awks())
@pytest.mark.parametrize("endpoint", ENDPOINT_BEFORE.values(), ids=ENDPOINT_BEFORE.keys())
@pytest.mark.parametrize("api_server", IMPORTED_API_SERVER.values(), ids=IMPORTED_API_SERVER.keys())
def test_adoption_sets_the_endpoint_and_the_shared_cert_sans(
        raw: dict[str, Any], api_server: str, endpoint: str, awk: str, tmp_path: Path) -> None:
    """The adoption's edit of ClusterConfiguration, run with each awk there is: the endpoint
    is controlPlaneEndpoint, certSANs become exactly the names every apiserver shares (kubeadm
    checks a joining node's pre-placed certificate against them, pkiutil.GetAPIServerAltNames),
    nothing else changes, and a second pass is the identity (the step's "already up to
    date")."""
    c = parse_cluster(raw)
    (tmp_path / "awk").symlink_to(shutil.which(awk) or awk)
    text = api_server + (CLUSTER_CONFIGURATION % endpoint).replace("apiServer: {}\n", "")
    pipeline = ks.cluster_configuration_edit(c)

    def edit(source: str) -> str:
        return subprocess.run(["bash", "-c", pipeline], input=source, capture_output=True,
                              text=True, check=True,
                              env={"PATH": f"{tmp_path}:/usr/bin:/bin"}).stdout

    once = edit(text)
    doc, before = yaml.safe_load(once), yaml.safe_load(text) or {}
    assert doc["apiServer"]["certSANs"] == [*dict.fromkeys([
        "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "api.k8s.lab.internal", "10.96.0.1",
        "10.21.22.101"])]
    assert {k: v for k, v in doc["apiServer"].items() if k != "certSANs"} == {
        k: v for k, v in (before.get("apiServer") or {}).items() if k != "certSANs"}
    assert doc["controlPlaneEndpoint"] == "api.k8s.lab.internal:6443"
    assert once.count("controlPlaneEndpoint") == 1
    assert {k: v for k, v in doc.items() if k not in ("apiServer", "controlPlaneEndpoint")} == {
        k: v for k, v in before.items() if k not in ("apiServer", "controlPlaneEndpoint")}
    assert edit(once) == once
    # Day 2: a new endpoint replaces the line an earlier run put first.
    moved = parse_cluster({**raw, "endpoint": {**raw["endpoint"], "port": 8443}})
    again = subprocess.run(["bash", "-c", ks.cluster_configuration_edit(moved)], input=once,
                           capture_output=True, text=True, check=True,
                           env={"PATH": f"{tmp_path}:/usr/bin:/bin"}).stdout
    assert yaml.safe_load(again)["controlPlaneEndpoint"] == "api.k8s.lab.internal:8443"
    assert again.count("controlPlaneEndpoint") == 1


def test_kubeadm_config_carries_the_image_repository(raw: dict[str, Any]) -> None:
    """Air-gapped registries: kubeadm pulls the control-plane images from
    ClusterConfiguration.imageRepository (default registry.k8s.io), so the stack key must reach it."""
    raw["imageRepository"] = "registry.example.com/k8s"
    docs = list(yaml.safe_load_all(kubeadm_config(parse_cluster(raw))))
    cc = next(d for d in docs if d["kind"] == "ClusterConfiguration")
    assert cc["imageRepository"] == "registry.example.com/k8s"


def test_an_ipv6_endpoint_is_bracketed_once_and_quoted_in_yaml(raw: dict[str, Any]) -> None:
    """`[fd00::10]:6443` in a URL and host:port (RFC 3986), bracketed once; in YAML it must be
    quoted, or it reads as a flow sequence and kubeadm refuses the file."""
    raw["endpoint"] = {"address": "fd00::10", "port": 6443, "virtualIp": True}
    raw["loadBalancers"] = [host("lb-a", "fd00::20"), host("lb-b", "fd00::21")]
    c = parse_cluster(raw)
    assert c.endpoint.url == "https://[fd00::10]:6443" == c.node_url
    cc = list(yaml.safe_load_all(kubeadm_config(c)))[1]
    assert cc["controlPlaneEndpoint"] == "[fd00::10]:6443"
    join = yaml.safe_load(join_configuration(c, c.workers[0], {
        "token": "t", "caCertHash": "h", "certificateKey": "k"}, False))
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "[fd00::10]:6443"
    edited = subprocess.run(["bash", "-c", ks.cluster_configuration_edit(c)], input="",
                            capture_output=True, text=True, check=True).stdout
    assert yaml.safe_load(edited)["controlPlaneEndpoint"] == "[fd00::10]:6443"
    assert "fd00::10" in yaml.safe_load(edited)["apiServer"]["certSANs"]


def test_revocation_re_runs_whenever_a_credentials_step_does(raw: dict[str, Any]) -> None:
    """Its script changes with the set of joining nodes and with the credentials scripts (a
    new kubernetesVersion re-runs every control-plane credentials step: new tokens and a new
    kubeadm-certs upload to revoke), and only then."""
    base = ks.revoke_join_credentials_script(parse_cluster(raw))
    assert ks.revoke_join_credentials_script(parse_cluster(copy.deepcopy(raw))) == base
    patch = ks.revoke_join_credentials_script(parse_cluster({**raw, "kubernetesVersion": "v1.32.4"}))
    more = copy.deepcopy(raw)
    more["workers"].append(host("ubuntu-76", "10.21.22.76"))
    assert patch != base
    assert ks.revoke_join_credentials_script(parse_cluster(more)) != base
