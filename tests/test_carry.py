"""The in-cluster control-plane pods run what the static pods run (kube_ha.elastic.carry).

Clusters are built by the kubeadm stand-in (tests/harness/standins/kubeadm.py): each static pod's
command is getXCommand's (phases/controlplane/manifests.go) with the ClusterConfiguration's
extraArgs merged in as util/arguments.go ArgumentsToCommand does (an extraArg replaces the
default of its name; sorted by name), and kubeadm-config holds the ClusterConfiguration
(phases/uploadconfig). The read step and the preflight run for real on those hosts.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from kube_ha.config import parse_cluster
from kube_ha.elastic import manifests as m
from kube_ha.elastic.carry import CARRIED_DIR, CarryError, carry, read_static_pod_output
from kube_ha.kubeadm.scripts import read_static_pod_script
from kube_ha.model import Cluster
from kube_ha.preflight import preflight_script, targets
from tests.harness.script_host import ScriptHost, StepResult, seed_cluster
from tests.harness.standins import common
from tests.mocks import ClusterMocks, is_secret, kubeadm_static_flags, plain
from tests.program import dev_stack, run_program

# kubernetes.io/docs/tasks/administer-cluster/encrypt-data: an aescbc key, identity to read
# what was written before.
ENCRYPTION = """apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Cg==
      - identity: {}
"""
# KMS v2 (kubernetes.io/docs/tasks/administer-cluster/kms-provider): a plugin on a host socket.
KMS = """apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms:
          apiVersion: v2
          name: vault
          endpoint: unix:///var/run/kms/vault.sock
      - identity: {}
"""
AUDIT = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n"
OIDC_CA = "-----BEGIN CERTIFICATE-----\nMIIBfixture\n-----END CERTIFICATE-----\n"
FILES = {"/etc/kubernetes/enc/enc.yaml": ENCRYPTION,
         "/etc/kubernetes/audit/policy.yaml": AUDIT,
         "/etc/kubernetes/oidc/ca.pem": OIDC_CA}
CUSTOM = {
    "apiServer": {
        "encryption-provider-config": "/etc/kubernetes/enc/enc.yaml",
        "service-account-issuer": "https://issuer.corp.example/k8s",
        "audit-policy-file": "/etc/kubernetes/audit/policy.yaml",
        "audit-log-path": "/var/log/kubernetes/audit.log",
        "oidc-issuer-url": "https://sso.corp.example",
        "oidc-client-id": "kubernetes",
        "oidc-ca-file": "/etc/kubernetes/oidc/ca.pem",
        "enable-admission-plugins": "NodeRestriction,AlwaysPullImages",
    },
    "controllerManager": {"node-cidr-mask-size": "26"},
}


def custom_stack(version: str, **edits: Any) -> Cluster:
    raw = dev_stack()
    raw.update(kubernetesVersion=version, serviceSubnet="10.112.0.0/16",
               podSubnet="10.128.0.0/14", kubeScheduler={"replicas": 2})
    raw.update(edits)
    return parse_cluster(raw)


def write_files(h: ScriptHost, node: str, files: dict[str, str]) -> None:
    for path, text in files.items():
        b64 = base64.b64encode(text.encode()).decode()
        h.run(node, f"install -d {Path(path).parent}\necho {b64} | base64 -d > {path}\n")


def build(h: ScriptHost, node: str, files: dict[str, str], extra_args: dict[str, Any]) -> None:
    """`files` on the node, then the cluster kubeadm builds there with `extra_args`; the
    metrics API answers (the elastic apiservers' HPA needs it)."""
    write_files(h, node, files)
    seed_cluster(h, control_plane=[h.cluster.node(node)], extra_args=extra_args)
    h.metrics_api("available")


def preflight_on(h: ScriptHost, c: Cluster, node: str) -> StepResult:
    """Stack `c`'s preflight of `node`, run there."""
    return h.run(node, preflight_script(c, next(t for t in targets(c) if t.host.name == node)))


def read_pods(h: ScriptHost, node: str) -> dict[str, StepResult]:
    """The read step of the apiserver's and the controller-manager's static pods, run there."""
    return {comp: h.run(node, read_static_pod_script(comp, "0"))
            for comp in ("kube-apiserver", "kube-controller-manager")}


def problems(res: StepResult) -> list[str]:
    return [line.strip().split(": ", 1)[1] for line in res.stderr.splitlines()
            if line.startswith("  ")]


def _flags(command: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in command[1:])


def test_kubeadm_defaults_carry_to_the_flags_the_render_shows() -> None:
    """On a cluster kubeadm built with its defaults, each Deployment runs exactly what the
    offline render shows: the render's model of kubeadm's static pods and the stand-in's agree."""
    c = parse_cluster({**dev_stack(), "kubeScheduler": {"replicas": 2}})
    cases = [
        ("kube-apiserver", m.elastic_apiserver_view(c), m.elastic_apiserver_flags(c)[1:]),
        ("kube-controller-manager", m.controller_manager_view(c), m.controller_manager_flags(c)),
        ("kube-scheduler", m.scheduler_view(c), m.scheduler_flags(c)),
    ]
    for comp, view, rendered in cases:
        static = kubeadm_static_flags(c, comp)
        carried = carry(view, common.static_pod(comp, [comp, *static]), {})
        assert carried.flags == rendered, comp
        assert carried.files == {}


@pytest.mark.slow
@pytest.mark.parametrize("version", ["v1.31.4", "v1.32.3"])
def test_a_customised_cluster_is_carried_flag_for_flag(version: str, tmp_path: Path) -> None:
    """A cluster built (kubeadm v1.31 or v1.32, ClusterConfiguration v1beta4) with encryption at
    rest, a custom issuer, OIDC, audit, another admission plugin, custom CIDRs and a node CIDR
    size: the preflight passes; the read step, run on the node, hands `carry` what the elastic
    apiservers and the controller-manager Deployment then run: every static flag, the files it
    names as Secret data mounted where the flag points, each instance's own flags replaced; the
    Deployment validates strictly. A stack with kubeadm's default CIDRs is refused, naming
    them."""
    c = custom_stack(version)
    cp = c.node("ubuntu-73")
    with ScriptHost(tmp_path, c) as h:
        build(h, cp.name, FILES, CUSTOM)
        checked = preflight_on(h, c, cp.name)
        read = read_pods(h, cp.name)
        defaults = parse_cluster({**dev_stack(), "kubernetesVersion": version})
        refused = preflight_on(h, defaults, cp.name)
        manifest = h.run(cp.name, "cat /etc/kubernetes/manifests/kube-apiserver.yaml\n").stdout
    assert checked.rc == 0, checked.explain()
    for res in read.values():
        assert res.rc == 0, res.explain()

    apiserver = carry(m.elastic_apiserver_view(c), *read_static_pod_output(
        read["kube-apiserver"].stdout))
    flags = _flags(["kube-apiserver", *apiserver.flags])
    secret = {k: base64.b64decode(v).decode() for k, v in apiserver.files.items()}
    for flag, path in (("encryption-provider-config", "/etc/kubernetes/enc/enc.yaml"),
                       ("audit-policy-file", "/etc/kubernetes/audit/policy.yaml"),
                       ("oidc-ca-file", "/etc/kubernetes/oidc/ca.pem")):
        assert flags[flag].startswith(f"{CARRIED_DIR}/")
        assert secret[flags[flag].removeprefix(f"{CARRIED_DIR}/")] == FILES[path]
    assert len(secret) == 3
    assert flags["service-account-issuer"] == "https://issuer.corp.example/k8s"
    assert flags["service-cluster-ip-range"] == "10.112.0.0/16"
    assert flags["oidc-issuer-url"] == "https://sso.corp.example"
    assert flags["oidc-client-id"] == "kubernetes"
    assert flags["enable-admission-plugins"] == "NodeRestriction,AlwaysPullImages"
    # The container log, not a host file: "'-' means standard out" (kube-apiserver flag
    # reference, kubernetes.io/docs/reference/generated/kube-apiserver).
    assert flags["audit-log-path"] == "-"
    # Each instance's own, and nothing else, differs from the static pod.
    static = _flags(common_command(manifest))
    own = m.elastic_apiserver_view(c).own
    assert {k: v for k, v in flags.items() if k in own} == own
    differ = {k for k in static if flags.get(k) != static[k]} - set(own)
    assert differ == {"encryption-provider-config", "audit-policy-file", "oidc-ca-file",
                      "audit-log-path"}
    assert "shutdown-delay-duration" in flags and "shutdown-delay-duration" not in static

    cm = carry(m.controller_manager_view(c), *read_static_pod_output(
        read["kube-controller-manager"].stdout))
    cm_flags = _flags(["kube-controller-manager", *cm.flags])
    assert cm_flags["node-cidr-mask-size"] == "26"
    assert cm_flags["cluster-cidr"] == "10.128.0.0/14"
    assert cm_flags["cluster-signing-key-file"] == "/etc/kubernetes/kube-ha/ca.key"

    deployment = m.elastic_apiserver_deployment(c)
    deployment["spec"] = m.with_command(deployment["spec"], ["kube-apiserver", *apiserver.flags])
    for doc in (deployment, m.secret_manifest(m.carried_secret(m.ELASTIC), list(secret))):
        kubernetes_validate.validate(doc, version.lstrip("v").rsplit(".", 1)[0], strict=True)

    said = problems(refused)
    assert any(p.startswith("serviceSubnet: the cluster runs networking.serviceSubnet"
                            " 10.112.0.0/16 (kubeadm-config), the stack says 10.96.0.0/12")
               for p in said), said
    assert any(p.startswith("podSubnet: the cluster runs networking.podSubnet 10.128.0.0/14")
               for p in said), said


def common_command(manifest: str) -> list[str]:
    import yaml

    return [str(a) for a in yaml.safe_load(manifest)["spec"]["containers"][0]["command"]]


@pytest.mark.slow
def test_what_cannot_be_carried_is_refused_before_anything_changes(tmp_path: Path) -> None:
    """An encryption config with a KMS provider (its plugin listens on a socket on the
    control-plane hosts only) and a controller-manager flag naming a host directory no table
    knows: the preflight names each, with the key that asks for the pods, without printing the
    config's content; `carry` refuses the same."""
    c = custom_stack("v1.32.3")
    cp = c.node("ubuntu-73")
    flex = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"
    args = {**CUSTOM, "controllerManager": {"flex-volume-plugin-dir": flex}}
    with ScriptHost(tmp_path, c) as h:
        build(h, cp.name, {**FILES, "/etc/kubernetes/enc/enc.yaml": KMS}, args)
        refused = preflight_on(h, c, cp.name)
        read = read_pods(h, cp.name)
        off = custom_stack("v1.32.3", elasticApiserver={"enabled": False},
                           controllerManager={"replicas": 0})
        allowed = preflight_on(h, off, cp.name)
        # An external CA: kubeadm leaves ca.key off the nodes, and the controller-manager
        # Deployment's Secret could not be read.
        h.run(cp.name, "rm /etc/kubernetes/pki/ca.key\n")
        external = preflight_on(h, custom_stack("v1.32.3", elasticApiserver={"enabled": False},
                                                controllerManager={"replicas": 2}), cp.name)
    assert problems(external)[0] == (
        "controllerManager.replicas: /etc/kubernetes/pki/ca.key is missing here, and the"
        " controller-manager Deployment needs it (a cluster with an external CA keeps ca.key off"
        " its nodes): switch them off")
    assert len(problems(external)) == 2  # and the flex-volume flag, as above
    assert problems(refused) == [
        "elasticApiserver.enabled: the static kube-apiserver here runs"
        " --encryption-provider-config=/etc/kubernetes/enc/enc.yaml, whose \"kms:\" names a KMS"
        " plugin or a host file a pod on another node does not have: the elastic"
        " kube-apiservers cannot run it (switch them off)",
        "controllerManager.replicas: the static kube-controller-manager here runs"
        f" --flex-volume-plugin-dir={flex}: {flex} is a host file the controller-manager"
        " Deployment cannot be given (switch them off, or drop the flag)"]
    assert "vault" not in refused.stderr and "vault" not in refused.stdout
    assert allowed.rc == 0, allowed.explain()
    with pytest.raises(CarryError, match="KMS provider"):
        carry(m.elastic_apiserver_view(c), *read_static_pod_output(read["kube-apiserver"].stdout))
    with pytest.raises(CarryError, match="flex-volume-plugin-dir"):
        carry(m.controller_manager_view(c),
              *read_static_pod_output(read["kube-controller-manager"].stdout))


@pytest.mark.slow
def test_in_cluster_pods_are_never_newer_than_a_static_apiserver(tmp_path: Path) -> None:
    """The static pods run v1.32.1 (kubeadm names the image with the cluster's version); a stack
    at v1.32.3 would start elastic apiservers a patch newer than them: refused, naming
    kubernetesVersion. The same stack without in-cluster pods is let through (the node keeps
    its version; this program does not upgrade)."""
    older = parse_cluster({**dev_stack(), "kubernetesVersion": "v1.32.1"})
    cp = older.node("ubuntu-73")
    newer = parse_cluster({**dev_stack(), "kubernetesVersion": "v1.32.3"})
    plain = parse_cluster({**dev_stack(), "kubernetesVersion": "v1.32.3",
                           "elasticApiserver": {"enabled": False},
                           "controllerManager": {"replicas": 0}})
    with ScriptHost(tmp_path, older) as h:
        seed_cluster(h, control_plane=[cp])
        h.metrics_api("available")
        runs = {name: preflight_on(h, c, cp.name)
                for name, c in (("newer", newer), ("plain", plain), ("same", older))}
    assert problems(runs["newer"]) == [
        "kubernetesVersion: the elastic kube-apiservers and controller-manager Deployment would"
        " run v1.32.3, newer than the static kube-apiserver here (v1.32.1): set"
        " kubernetesVersion to v1.32.1, or upgrade this node first"]
    assert runs["plain"].rc == 0, runs["plain"].explain()
    assert runs["same"].rc == 0, runs["same"].explain()


def test_the_program_deploys_what_the_static_pod_runs_and_hides_the_copied_files() -> None:
    """Under the engine mocks, with the bootstrap node's static kube-apiserver built with
    encryption at rest (what the read step prints there, tests/mocks.py): the elastic
    Deployment runs the carried flag, the carried Secret holds the config as a Pulumi secret
    (an encryption key), and the pod template carries its digest, so a changed key rolls the
    pods. Without the flag the Secret is empty and the command is the render's."""

    def deployed(mocks: ClusterMocks) -> tuple[list[str], Any, dict[str, Any], str]:
        run = run_program(dev_stack(), mocks=mocks)
        dep = run.inputs("kubernetes-elastic-apiserver-deployment")["spec"]
        secret = run.inputs("kubernetes-elastic-apiserver-carried-secret")["data"]
        template = plain(dep)["template"]
        return (template["spec"]["containers"][0]["command"], secret,
                plain(secret), template["metadata"]["annotations"][m.CARRIED_ANNOTATION])

    bare = ClusterMocks()
    command, _, data, digest = deployed(bare)
    assert command == m.elastic_apiserver_flags(parse_cluster(dev_stack())) and data == {}

    encrypted = ClusterMocks()
    encrypted.extra_args = {"apiServer": [{"name": "encryption-provider-config",
                                           "value": "/etc/kubernetes/enc/enc.yaml"}]}
    encrypted.host_files = {"/etc/kubernetes/enc/enc.yaml": ENCRYPTION}
    command, raw_secret, data, other_digest = deployed(encrypted)
    assert f"--encryption-provider-config={CARRIED_DIR}/enc.yaml" in command
    assert {k: base64.b64decode(v).decode() for k, v in data.items()} == {"enc.yaml": ENCRYPTION}
    assert is_secret(raw_secret)  # kept encrypted in the state, hidden in previews and logs
    assert other_digest != digest
