"""The policy pack, fed the resources the real program registers (under engine mocks)."""

from __future__ import annotations

import copy
import hashlib
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components import cluster_access, kubeadm
from kube_ha import paths, shell
from kube_ha.config import parse_cluster
from kube_ha.elastic import manifests, pool
from kube_ha.kubeadm import scripts as kubeadm_scripts
from kube_ha.loadbalancer import scripts as lb_scripts
from kube_ha.topology import lb_backends
from tests.mocks import ClusterMocks, plain
from tests.program import ROOT, Run, dev_stack, run_program, vip_stack

sys.path.insert(0, str(ROOT / "policy"))
import kube_ha_policies
from kube_ha_policies import POLICIES


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _resources(run: Run) -> list[PolicyResource]:
    out = []
    for rec in run.mocks.resources:
        if rec.typ == "pulumi:pulumi:StackReference":
            # A read resource: the engine gives stack policies what was read, its outputs.
            out.append(PolicyResource(rec.typ, plain(run.mocks.outputs[rec.name]),
                                      f"urn:{rec.name}", rec.name, _options(), None, None, [], {}))
            continue
        reg = run.monitor.registrations[rec.name]
        out.append(PolicyResource(rec.typ, plain(rec.inputs), reg.urn, rec.name, _options(), None,
                                  None, [], {}))
    return out


def violations(resources: list[PolicyResource]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for policy in POLICIES:
        def report(message: str, urn: str | None = None, name: str = policy.name) -> None:
            found.setdefault(name, []).append(message)

        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                policy.validate(ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name,
                                                       r.opts, None), report)
        elif isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(resources), report)
    return found


# Stand-in digests: the policy reads the reference, not the registry.
DIGESTS = {c: "sha256:" + hashlib.sha256(c.encode()).hexdigest()
           for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")}


def pinned_dev_stack() -> dict[str, Any]:
    """The dev stack with its deployed images pinned by digest (`imageDigests`)."""
    return {**dev_stack(), "imageDigests": DIGESTS}


@pytest.fixture(scope="module")
def dev_resources() -> list[PolicyResource]:
    return _resources(run_program(pinned_dev_stack()))


def test_dev_stack_passes_every_policy(dev_resources: list[PolicyResource]) -> None:
    assert violations(dev_resources) == {}


def test_key_holding_images_by_tag_are_advised_against() -> None:
    """The committed dev stack pins no digest (only its operator can know them): each of its
    key-holding Deployments (elastic apiserver, controller-manager) is reported, nothing else."""
    found = violations(_resources(run_program(dev_stack())))
    assert list(found) == ["key-holding-images-by-digest"]
    assert sorted(m.split()[0] for m in found["key-holding-images-by-digest"]) == [
        "kube-apiserver", "kube-controller-manager"]


def _edited(resources: list[PolicyResource], name: str, edit: Any) -> list[PolicyResource]:
    out = copy.deepcopy(resources)
    target = next(r for r in out if r.name == name)
    edit(target.props)
    return out


@pytest.mark.parametrize("resource, edit, policy", [
    ("kubernetes-kubeadm-ubuntu-70-control-plane",
     lambda p: p.update(create="kubeadm join x --token abcdef.0123456789abcdef",
                        update="kubeadm join x --token abcdef.0123456789abcdef"),
     "no-secret-on-command-line"),
    ("kubernetes-lb-haproxy-101-configure", lambda p: p.update(triggers=["x"]),
     "scripts-update-in-place"),
    ("kubernetes-kubeadm-ubuntu-74-join", lambda p: p["connection"].pop("hostKey"),
     "ssh-host-key-verified"),
    ("kubernetes-lb-haproxy-101-configure",
     lambda p: p.update(stdin=p["stdin"].replace('haproxy -c -q -f "$tmp"', "true")),
     "haproxy-validated-before-live"),
    ("kubernetes-elastic-apiserver-deployment",
     lambda p: p["spec"]["template"]["spec"]["volumes"].append(
         {"name": "pki", "hostPath": {"path": "/etc/kubernetes/pki"}}), "no-host-pki"),
    ("kubernetes-controller-manager-deployment",
     lambda p: p["spec"]["template"]["spec"]["containers"][0]["command"].remove(
         "--leader-elect=true"), "leader-election"),
    ("kubernetes-elastic-apiserver-deployment", lambda p: p["spec"].update(replicas=3),
     "hpa-owns-replicas"),
    ("kubernetes-controller-manager-deployment",
     lambda p: p["spec"]["template"]["spec"]["containers"][0].update(
         image="registry.k8s.io/kube-controller-manager:v1.32.3"),
     "key-holding-images-by-digest"),
    ("kubernetes-elastic-apiserver-deployment",
     lambda p: p["spec"]["template"]["spec"].update(nodeSelector={"kube-ha.io/pool": "true"}),
     "key-holding-pods-pinned"),
    ("kubernetes-controller-manager-deployment",
     lambda p: p["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
         "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0].update(
         matchFields=[], matchExpressions=[{"key": "kubernetes.io/hostname", "operator": "In",
                                            "values": ["ubuntu-74"]}]),
     "key-holding-pods-pinned"),
    # A pool worker no step taints: the elastic apiservers' keys would share it with any pod.
    ("kubernetes-kubeadm-elastic-pool",
     lambda p: p.update(stdin=p["stdin"].replace("taint nodes ubuntu-75", "label nodes x")),
     "key-holding-pool-dedicated"),
    # Pods that do not tolerate the taint cannot run on their pool.
    ("kubernetes-elastic-apiserver-deployment",
     lambda p: p["spec"]["template"]["spec"]["tolerations"].pop(), "key-holding-pool-dedicated"),
])
def test_each_policy_catches_its_violation(dev_resources: list[PolicyResource], resource: str,
                                           edit: Any, policy: str) -> None:
    found = violations(_edited(dev_resources, resource, edit))
    assert list(found) == [policy], found


def test_even_control_plane_is_advised_against() -> None:
    raw = pinned_dev_stack()
    raw["controlPlane"].pop()
    raw["allowEvenControlPlane"] = True
    found = violations(_resources(run_program(raw)))
    assert list(found) == ["odd-control-plane"]


def test_a_lab_stack_without_host_keys_is_refused_by_the_pack() -> None:
    raw = pinned_dev_stack()
    for group in ("controlPlane", "workers", "loadBalancers"):
        for entry in raw[group]:
            entry.pop("hostKey")
    raw["insecureSkipHostKeyCheck"] = True
    resources = _resources(run_program(raw))
    found = violations(resources)
    assert list(found) == ["ssh-host-key-verified"]
    steps = [r for r in resources if r.resource_type == "command:remote:Command"]
    assert len(steps) >= 19 and len(found["ssh-host-key-verified"]) == len(steps)  # every one


def test_a_certificate_near_expiry_is_reported(dev_resources: list[PolicyResource]) -> None:
    """Advisory: within 30 days of the provider's validityEndTime."""

    cert = "kubernetes-pki-lb-health-check-cert"
    soon = (datetime.now(UTC) + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = violations(_edited(dev_resources, cert, lambda p: p.update(validityEndTime=soon)))
    assert list(found) == ["certificate-expiry"]
    assert cert in found["certificate-expiry"][0]
    later = (datetime.now(UTC) + timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert violations(_edited(dev_resources, cert, lambda p: p.update(validityEndTime=later))) == {}


def test_a_copied_certificate_near_expiry_is_reported() -> None:
    """Advisory: the last run's record of the copies (controlPlaneCopies) within 30 days."""


    def found(days: int) -> dict[str, list[str]]:
        end = (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        mocks = ClusterMocks()
        mocks.previous_outputs = {"controlPlaneCopies": {"generation": "0", "expiry": {
            "admin.conf": end, "front-proxy-client.crt": "2099-01-01T00:00:00Z"}}}
        return violations(_resources(run_program(pinned_dev_stack(), mocks=mocks)))

    soon = found(20)
    assert list(soon) == ["certificate-expiry"]
    (message,) = soon["certificate-expiry"]
    assert "admin.conf" in message and "kubeadm certs renew" in message
    assert found(40) == {}


def test_the_packs_markers_are_the_programs_own(dev_resources: list[PolicyResource]) -> None:
    """The pack keys on markers, not on incidental text; each is the program's own constant and
    occurs in what the program registers, so renaming one in the program fails here instead of
    switching a policy off silently."""
    pack = kube_ha_policies
    assert (pack.HAPROXY_CFG, pack.HAPROXY_CHECK, pack.GOES_LIVE, pack.MEMBERSHIP_STEP,
            pack.COPIES_OUTPUT) == (paths.HAPROXY_CFG, lb_scripts.HAPROXY_CHECK, shell.GOES_LIVE,
                                    kubeadm.MEMBERSHIP_STEP, cluster_access.COPIES_OUTPUT)
    stdins = [str(r.props.get("stdin") or "") for r in dev_resources]
    live = pack.GOES_LIVE.format(path=pack.HAPROXY_CFG)
    assert any(live in s and pack.HAPROXY_CHECK in s for s in stdins)
    members = [r.name for r in dev_resources if r.name.endswith(pack.MEMBERSHIP_STEP)]
    assert len(members) == 3, members
    assert (pack.CONTROL_PLANE_STEP, pack.WORKERS_STEP, pack.CONTROL_PLANE_ROLE) == (
        kubeadm.CONTROL_PLANE_STEP, kubeadm.WORKERS_STEP, manifests.CONTROL_PLANE_LABEL)
    assert f"{pool.POOL_TAINT}={pool.POOL_TAINT_VALUE}:{pool.POOL_TAINT_EFFECT}" == pack.POOL_TAINT
    assert pool.pool_toleration() == pack.POOL_TOLERATION
    tainted = [s for s in stdins if f"{pack.POOL_TAINT} --overwrite" in s]
    assert len(tainted) == 1 and all(f"taint nodes {n} " in tainted[0]
                                     for n in dev_stack()["elasticApiserver"]["poolNodes"])
    assert sum(r.name.endswith(pack.CONTROL_PLANE_STEP) for r in dev_resources) == 3
    assert pack.REPOINT.findall(kubeadm_scripts._sed_server("https://[::1]:6443")) == [
        "https://[::1]:6443"]
    csrs = {r.name: r for r in dev_resources if r.resource_type == pack.CERT_REQUEST}
    served = [n for n, r in csrs.items() if r.props["subject"]["commonName"] == pack.APISERVER_CN]
    assert sorted(served) == sorted([*(f"kubernetes-pki{pack.SERVING_CSR.format(node=n)}"
                                       for n in ("ubuntu-70", "ubuntu-72", "ubuntu-73")),
                                     f"kubernetes{pack.ELASTIC_CSR}"])
    cluster = parse_cluster(dev_stack())
    assert [b.name.startswith(pack.ELASTIC_SERVER) for b in lb_backends(cluster)] == [
        b.elastic for b in lb_backends(cluster)]
    assert sum(r.name.endswith(pack.WORKERS_STEP) for r in dev_resources
               if r.resource_type == pack.COMMAND) == 1


def test_a_pool_of_control_plane_nodes_needs_no_taint() -> None:
    """Control-plane nodes carry kubeadm's taint and the control plane's keys already: an
    elastic pool of them passes with no pool step; one worker in it must be tainted."""
    raw = pinned_dev_stack()
    raw["elasticApiserver"].update(poolNodes=["ubuntu-70", "ubuntu-72"], maxReplicas=2)
    resources = _resources(run_program(raw))
    assert not any(r.name.endswith("-elastic-pool") for r in resources)
    assert violations(resources) == {}
    raw["elasticApiserver"]["poolNodes"].append("ubuntu-74")
    resources = _resources(run_program(raw))
    untainted = _edited(resources, "kubernetes-kubeadm-elastic-pool",
                        lambda p: p.update(stdin="true"))
    found = violations(untainted)
    assert list(found) == ["key-holding-pool-dedicated"]
    assert "on ubuntu-74," in found["key-holding-pool-dedicated"][0]


def test_a_rotated_stack_passes_every_policy() -> None:
    """A `certificates.rotation` bump (the README's way to re-key, and to read the CA again)
    must not trip a mandatory policy: the CA is read again by a step of a new name, not by
    `triggers`, which `scripts-update-in-place` refuses."""
    raw = pinned_dev_stack()
    raw["certificates"] = {**raw["certificates"], "rotation": 1}
    assert violations(_resources(run_program(raw))) == {}


def _without_san(name: str, csr: str) -> Any:
    def edit(p: dict[str, Any]) -> None:
        for key in ("dnsNames", "ipAddresses"):
            p[key] = [n for n in p.get(key) or [] if n != name]
    return csr, edit


@pytest.mark.parametrize("stack", ["dev", "node-local", "vip"])
def test_every_name_dialled_on_each_hop_is_served(stack: str) -> None:
    """The program's own stacks pass: what kubeconfigs dial (the endpoint name, a VIP,
    127.0.0.1 with node-local proxies) is in every apiserver serving certificate, and what
    each health check verifies is in the certificates of the servers it checks."""
    raw = {"dev": pinned_dev_stack, "vip": lambda: {**pinned_dev_stack(), **_vip()},
           "node-local": lambda: {**pinned_dev_stack(), "nodeLocalProxy": True}}[stack]()
    found = violations(_resources(run_program(raw)))
    assert "names-covered-on-each-hop" not in found, found


def _vip() -> dict[str, Any]:
    raw = vip_stack()
    return {"endpoint": raw["endpoint"], "loadBalancers": raw["loadBalancers"]}


@pytest.mark.parametrize("stack, name, csr, expected", [
    # A kubeconfig dials the endpoint's name, one control-plane certificate lacks it.
    ("dev", "api.k8s.lab.internal", "kubernetes-pki-apiserver-ubuntu-70-csr",
     "points kubeconfigs at api.k8s.lab.internal, which kubernetes-pki-apiserver-ubuntu-70-csr"),
    # Node-local proxies: kubelets dial 127.0.0.1, which the elastic certificate must name.
    ("node-local", "127.0.0.1", "kubernetes-elastic-apiserver-serving-csr",
     "points kubeconfigs at 127.0.0.1, which kubernetes-elastic-apiserver-serving-csr"),
])
def test_a_name_a_hop_dials_but_a_served_certificate_lacks_is_refused(
        stack: str, name: str, csr: str, expected: str) -> None:
    raw = pinned_dev_stack() if stack == "dev" else {**pinned_dev_stack(), "nodeLocalProxy": True}
    found = violations(_edited(_resources(run_program(raw)), *_without_san(name, csr)))
    assert list(found) == ["names-covered-on-each-hop"], found
    assert all(expected in m for m in found["names-covered-on-each-hop"]
               if "points kubeconfigs" in m)


def test_a_health_check_name_the_checked_server_does_not_serve_is_refused(
        dev_resources: list[PolicyResource]) -> None:
    """The LB checks each elastic server for the marker name only the elastic certificate
    carries: without it there, the check keeps every elastic server DOWN."""
    csr = "kubernetes-elastic-apiserver-serving-csr"
    marker = next(n for r in dev_resources if r.name == csr for n in r.props["dnsNames"]
                  if n.endswith(".kube-ha.invalid"))
    found = violations(_edited(dev_resources, *_without_san(marker, csr)))
    assert list(found) == ["names-covered-on-each-hop"], found
    assert found["names-covered-on-each-hop"] == [
        f"kubernetes-lb-haproxy-101-configure checks server elastic-ubuntu-{n} for {marker},"
        f" which {csr} does not name: the check would keep it DOWN." for n in (74, 75)]
