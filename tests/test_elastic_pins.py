"""What the elastic control plane's manifests and carried flags mean, value by value.

The strict schema validation in tests/test_elastic.py says each manifest is well formed; it
does not look at flag values, probe paths, placement or the HPA's numbers. Here each one is
read back by what it does: the elastic apiservers dial every control-plane node's etcd, each
file a flag names is the pod's copy of the host file the static pod reads, probes hit the
component's health endpoint on its port and scheme, the leader-elected pods join the static
pods' lease, the HPA scales the Deployment, the pool's taint is tolerated by these pods only.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_ha.config import parse_cluster
from kube_ha.elastic import carry as cy
from kube_ha.elastic import firewall as fw
from kube_ha.elastic import manifests as m
from kube_ha.elastic import metrics_server as ms
from kube_ha.elastic import pool
from kube_ha.model import Cluster
from tests.harness.hosts import host
from tests.mocks import kubeadm_static_flags
from tests.program import dev_stack

PKI = "/etc/kubernetes/pki"
POD_CONFIG = "/etc/kubernetes/kube-ha"
CARRIED_DIR = "/etc/kubernetes/kube-ha-carried"
# kubeadm's control-plane taint (kubeadm constants ControlPlaneTaint) and the pool's own.
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
POOL_TAINT = {"key": "kube-ha.io/elastic-apiserver", "value": "true", "effect": "NoSchedule"}


def cluster(**edits: Any) -> Cluster:
    raw = copy.deepcopy(dev_stack())
    for key, value in edits.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(value)
        else:
            raw[key] = value
    return parse_cluster(raw)


def flags(command: list[str]) -> dict[str, str | None]:
    """`--name=value` arguments as {name: value} (None for a bare flag); a name given twice
    fails, as it would be ambiguous to the component."""
    out: dict[str, str | None] = {}
    for arg in command:
        assert arg.startswith("--"), arg
        name, value = cy.split_flag(arg)
        assert name not in out, name
        out[name] = value
    return out


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod_spec(deployment)["containers"]
    assert isinstance(c, dict)
    return c


def tolerates(toleration: dict[str, str], taint: dict[str, str]) -> bool:
    """Kubernetes' ToleratesTaint (core/v1 toleration.go): an empty effect matches every
    effect; Exists ignores the value; Equal (the default) needs it; an empty key with Exists
    matches every taint."""
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("key", "") and toleration["key"] != taint["key"]:
        return False
    op = toleration.get("operator", "Equal")
    if op == "Exists":
        return True
    return op == "Equal" and toleration.get("value", "") == taint.get("value", "")


def pod_files(deployment: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Pod path -> (Secret name, key) of every file the pod's volumes mount."""
    pod = pod_spec(deployment)
    mounts = {vm["name"]: vm["mountPath"] for vm in container(deployment)["volumeMounts"]}
    out: dict[str, tuple[str, str]] = {}
    for volume in pod["volumes"]:
        base = mounts[volume["name"]]
        if "projected" in volume:
            for source in volume["projected"]["sources"]:
                for item in source["secret"]["items"]:
                    out[f"{base}/{item['path']}"] = (source["secret"]["name"], item["key"])
        elif "items" not in volume["secret"]:
            out[f"{base}/*"] = (volume["secret"]["secretName"], "*")
    return out


# --- the elastic kube-apiservers' command -----------------------------------------------------

def test_elastic_apiservers_dial_every_control_plane_nodes_etcd() -> None:
    """The stacked etcd members are the control-plane nodes: each pod dials all of them over
    TLS on the client port, so losing one member loses no apiserver."""
    for c in (cluster(), cluster(controlPlane=[*dev_stack()["controlPlane"],
                                              host("ubuntu-80", "10.21.22.80"),
                                              host("ubuntu-81", "10.21.22.81")])):
        got = flags(m.elastic_apiserver_flags(c)[1:])["etcd-servers"]
        assert got == ",".join(f"https://{h.address}:2379" for h in c.control_plane)
    assert flags(m.elastic_apiserver_flags(cluster())[1:])["etcd-servers"] == (
        "https://10.21.22.73:2379,https://10.21.22.70:2379,https://10.21.22.72:2379")


def test_elastic_apiservers_serve_on_the_pool_port_on_every_address_of_their_node() -> None:
    """hostNetwork: the pod listens on the node's own addresses at elasticApiserver.port, which
    the container port, each probe and the LB's backend all name; it advertises its node's
    address (the downward API's status.hostIP, expanded by the kubelet in `$(HOST_IP)`)."""
    c = cluster(elasticApiserver={"port": 8443})
    f = flags(m.elastic_apiserver_flags(c)[1:])
    assert (f["secure-port"], f["bind-address"], f["advertise-address"]) == (
        "8443", "0.0.0.0", "$(HOST_IP)")
    dep = m.elastic_apiserver_deployment(c)
    ctr = container(dep)
    assert ctr["env"] == [{"name": "HOST_IP",
                           "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}]
    assert ctr["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    assert pod_spec(dep)["hostNetwork"] is True
    assert pod_spec(dep)["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_elastic_apiservers_leave_the_kubernetes_service_alone_and_drain_slowly() -> None:
    """Their port differs from the static pods': with the lease reconciler they would rewrite
    the `kubernetes` Service's endpoints, which share one port. They keep serving 10 s after
    SIGTERM (haproxy takes them out in ~2 s), well within the 60 s grace period, and close one
    HTTP/2 connection in a thousand so clients spread onto new replicas."""
    f = flags(m.elastic_apiserver_flags(cluster())[1:])
    assert f["endpoint-reconciler-type"] == "none"
    assert f["shutdown-delay-duration"] == "10s"
    assert f["goaway-chance"] == "0.001"
    assert pod_spec(m.elastic_apiserver_deployment(cluster()))["terminationGracePeriodSeconds"] == 60


def test_elastic_apiservers_run_kubeadms_static_flags_with_only_their_own_replaced() -> None:
    """Every flag the static pod has that is not the instance's own has the static pod's value
    (the kubeadm stand-in writes getAPIServerCommand's), so the elastic pods are the same
    control plane; the arguments are in kubeadm's order (by name, then value)."""
    c = cluster()
    ours = m.elastic_apiserver_flags(c)
    assert ours[0] == "kube-apiserver"
    assert ours[1:] == sorted(ours[1:], key=lambda a: (cy.split_flag(a)[0], cy.split_flag(a)[1] or ""))
    f = flags(ours[1:])
    static = flags(kubeadm_static_flags(c, "kube-apiserver"))
    own = set(m.OWN_FLAGS["kube-apiserver"])
    assert {k: v for k, v in static.items() if k not in own} == {k: v for k, v in f.items()
                                                                 if k not in own}
    assert own == {"advertise-address", "bind-address", "secure-port", "etcd-servers",
                   "tls-cert-file", "tls-private-key-file", "endpoint-reconciler-type",
                   "shutdown-delay-duration", "goaway-chance"}
    assert own <= set(f)


def test_elastic_apiserver_flags_follow_the_clusters_networking() -> None:
    c = cluster(serviceSubnet="10.112.0.0/16", clusterDomain="corp.example")
    f = flags(m.elastic_apiserver_flags(c)[1:])
    assert f["service-cluster-ip-range"] == "10.112.0.0/16"
    assert f["service-account-issuer"] == "https://kubernetes.default.svc.corp.example"
    for name, value in (("allow-privileged", "true"), ("authorization-mode", "Node,RBAC"),
                        ("enable-admission-plugins", "NodeRestriction"),
                        ("enable-bootstrap-token-auth", "true"),
                        ("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname"),
                        ("requestheader-allowed-names", "front-proxy-client"),
                        ("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
                        ("requestheader-group-headers", "X-Remote-Group"),
                        ("requestheader-username-headers", "X-Remote-User")):
        assert f[name] == value, name


# Each file flag of the elastic apiserver and the host file it names (kubeadm's PKI layout).
APISERVER_FILES = {
    "client-ca-file": f"{PKI}/ca.crt",
    "etcd-cafile": f"{PKI}/etcd/ca.crt",
    "etcd-certfile": f"{PKI}/apiserver-etcd-client.crt",
    "etcd-keyfile": f"{PKI}/apiserver-etcd-client.key",
    "kubelet-client-certificate": f"{PKI}/apiserver-kubelet-client.crt",
    "kubelet-client-key": f"{PKI}/apiserver-kubelet-client.key",
    "proxy-client-cert-file": f"{PKI}/front-proxy-client.crt",
    "proxy-client-key-file": f"{PKI}/front-proxy-client.key",
    "requestheader-client-ca-file": f"{PKI}/front-proxy-ca.crt",
    "service-account-key-file": f"{PKI}/sa.pub",
    "service-account-signing-key-file": f"{PKI}/sa.key",
}


def test_each_file_an_elastic_apiserver_reads_is_the_copy_of_that_host_file() -> None:
    """A flag names a path in the pod; the pod's volumes put there the PKI Secret's key that
    the program fills from the very host file the static pod reads at that flag. The serving
    pair is the elastic serving certificate (tls.crt/tls.key), not the static pods'."""
    dep = m.elastic_apiserver_deployment(cluster())
    f = flags(container(dep)["command"][1:])
    mounted = pod_files(dep)
    for flag, host_file in APISERVER_FILES.items():
        pod_path = f[flag]
        assert pod_path is not None
        secret, key = mounted[pod_path]
        assert secret == "kube-ha-elastic-apiserver-pki", flag
        assert m.ELASTIC_PKI.files[key] == host_file, flag
    assert mounted[str(f["tls-cert-file"])] == ("kube-ha-elastic-apiserver-serving", "tls.crt")
    assert mounted[str(f["tls-private-key-file"])] == ("kube-ha-elastic-apiserver-serving", "tls.key")
    # Every key of the PKI Secret is mounted, and only the keys the Secret holds.
    keys = {k for s, k in mounted.values() if s == m.ELASTIC_PKI.name}
    assert keys == set(m.ELASTIC_PKI.files)
    assert {m.ELASTIC_PKI.files[k] for k in keys} == set(APISERVER_FILES.values())
    assert m.ELASTIC_PKI.name == "kube-ha-elastic-apiserver-pki"
    assert m.ELASTIC_SERVING == "kube-ha-elastic-apiserver-serving"
    assert m.ELASTIC_PKI.kubeconfigs == ()


def test_the_elastic_apiservers_view_maps_each_host_pki_file_to_its_pod_path() -> None:
    """carry replaces a static flag's host path by the pod's copy: for kubeadm's PKI the pod
    path is the host path (the Secret is mounted at the same place); own flags are the ones
    the Deployment sets."""
    c = cluster()
    view = m.elastic_apiserver_view(c)
    assert view.component == "kube-apiserver"
    assert dict(view.mapped) == {p: p for p in APISERVER_FILES.values()}
    f = flags(m.elastic_apiserver_flags(c)[1:])
    assert dict(view.own) == {k: f[k] for k in m.OWN_FLAGS["kube-apiserver"]}


# --- the elastic Deployment ------------------------------------------------------------------

def test_elastic_probes_hit_livez_and_readyz_over_https_on_the_pool_port() -> None:
    """The kubelet restarts a pod whose /livez fails (8 x 10 s), leaves it 5 s + 24 x 5 s to
    start, and takes it out of rotation after 3 failed /readyz 2 s apart; on the node's
    address (no host: hostNetwork pods are probed at the node IP), HTTPS."""
    ctr = container(m.elastic_apiserver_deployment(cluster(elasticApiserver={"port": 8443})))

    def get(port: int, path: str) -> dict[str, Any]:
        return {"path": path, "port": port, "scheme": "HTTPS"}

    assert ctr["startupProbe"] == {"httpGet": get(8443, "/livez"), "periodSeconds": 5,
                                   "timeoutSeconds": 5, "failureThreshold": 24,
                                   "initialDelaySeconds": 5}
    assert ctr["livenessProbe"] == {"httpGet": get(8443, "/livez"), "periodSeconds": 10,
                                    "timeoutSeconds": 5, "failureThreshold": 8}
    assert ctr["readinessProbe"] == {"httpGet": get(8443, "/readyz"), "periodSeconds": 2,
                                     "timeoutSeconds": 5, "failureThreshold": 3}


def test_elastic_pods_request_what_the_stack_says_and_run_the_apiserver_image() -> None:
    c = cluster(elasticApiserver={"cpuRequest": "1", "memoryRequest": "2Gi"},
                imageRepository="mirror.corp.example/k8s")
    ctr = container(m.elastic_apiserver_deployment(c))
    assert ctr["name"] == "kube-apiserver"
    assert ctr["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert ctr["image"] == "mirror.corp.example/k8s/kube-apiserver:v1.32.3"
    assert container(m.elastic_apiserver_deployment(cluster()))["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"}}


def test_elastic_pods_land_only_on_the_pool_one_per_node_tolerating_its_taint() -> None:
    """Placed by a label the kubelet cannot set and by Node name; one pod per node (the port is
    the node's); they tolerate the pool's taint and kubeadm's control-plane taint (a pool may
    include control-plane nodes), and CriticalAddonsOnly."""
    c = cluster(elasticApiserver={"poolNodes": ["ubuntu-70", "ubuntu-74"]})
    pod = pod_spec(m.elastic_apiserver_deployment(c))
    assert pod["nodeSelector"] == {"node-restriction.kubernetes.io/kube-ha-elastic-apiserver": "true"}
    assert pod["affinity"]["nodeAffinity"] == {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                "values": ["ubuntu-70", "ubuntu-74"]}]}]}}
    assert pod["affinity"]["podAntiAffinity"] == {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "kube-ha-elastic-apiserver"}},
        "topologyKey": "kubernetes.io/hostname"}]}
    tol = pod["tolerations"]
    assert any(tolerates(t, POOL_TAINT) for t in tol)
    assert any(tolerates(t, CONTROL_PLANE_TAINT) for t in tol)
    assert any(tolerates(t, {"key": "CriticalAddonsOnly", "value": "", "effect": "NoExecute"}) for t in tol)
    # Nothing else: not a NoExecute eviction, not someone else's taint.
    assert not any(tolerates(t, {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"})
                   for t in tol)
    assert not any(tolerates(t, {**POOL_TAINT, "value": "false"}) for t in tol)
    assert pool.pool_toleration() == {"key": "kube-ha.io/elastic-apiserver", "operator": "Equal",
                                      "value": "true", "effect": "NoSchedule"}
    assert (pool.POOL_TAINT, pool.POOL_TAINT_VALUE, pool.POOL_TAINT_EFFECT) == (
        "kube-ha.io/elastic-apiserver", "true", "NoSchedule")


def test_elastic_pods_run_unprivileged_with_read_only_mounts() -> None:
    """Nothing in them needs root, a writable root filesystem, a capability or the API's
    token; the Secrets' files (mode 0440) are readable by the pod's group only."""
    dep = m.elastic_apiserver_deployment(cluster())
    pod, ctr = pod_spec(dep), container(dep)
    assert ctr["securityContext"] == {"allowPrivilegeEscalation": False,
                                      "readOnlyRootFilesystem": True,
                                      "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532,
                                      "runAsGroup": 65532, "fsGroup": 65532,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert ctr["volumeMounts"] == [
        {"name": "pki", "mountPath": PKI, "readOnly": True},
        {"name": "carried", "mountPath": CARRIED_DIR, "readOnly": True}]
    pki_volume, carried = pod["volumes"]
    assert pki_volume["projected"]["defaultMode"] == 0o440
    assert carried == {"name": "carried", "secret": {"secretName": "kube-ha-elastic-apiserver-carried",
                                                     "defaultMode": 0o440}}
    assert pki_volume["projected"]["sources"][0] == {"secret": {
        "name": "kube-ha-elastic-apiserver-serving",
        "items": [{"key": "tls.crt", "path": "apiserver.crt"}, {"key": "tls.key", "path": "apiserver.key"}]}}
    items = pki_volume["projected"]["sources"][1]["secret"]["items"]
    assert {"key": "etcd-ca.crt", "path": "etcd/ca.crt"} in items
    assert {"key": "sa.key", "path": "sa.key"} in items


def test_the_elastic_deployment_rolls_one_pod_at_a_time_without_surge() -> None:
    """One pod per pool node on a host port: a surge pod would find no free node, so a roll
    takes one down at a time instead; the HPA owns the replica count."""
    dep = m.elastic_apiserver_deployment(cluster())
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert "replicas" not in dep["spec"]
    assert (dep["apiVersion"], dep["kind"]) == ("apps/v1", "Deployment")
    labels = {"app.kubernetes.io/name": "kube-ha-elastic-apiserver",
              "app.kubernetes.io/part-of": "kube-ha", "tier": "control-plane"}
    assert dep["metadata"] == {"name": "kube-ha-elastic-apiserver", "namespace": "kube-system",
                               "labels": labels}
    assert dep["spec"]["template"]["metadata"] == {"labels": labels}
    assert dep["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "kube-ha-elastic-apiserver"}}


# --- the HPA and the PDBs --------------------------------------------------------------------

def test_the_hpa_scales_the_elastic_deployment_within_the_stacks_bounds() -> None:
    """Up by two pods every 30 s at once, down by one a minute after the stack's stabilization
    window: a burst adds capacity fast, a lull removes it slowly."""
    c = cluster(elasticApiserver={"minReplicas": 2, "maxReplicas": 2, "cpuTargetPercent": 55,
                                  "memoryTargetPercent": 80, "scaleDownStabilizationSeconds": 120})
    hpa = m.elastic_apiserver_hpa(c)
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert hpa["metadata"]["name"] == "kube-ha-elastic-apiserver"
    assert hpa["metadata"]["namespace"] == "kube-system"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "kube-ha-elastic-apiserver"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 2)
    assert spec["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                   "averageUtilization": 55}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization",
                                                                      "averageUtilization": 80}}}]
    assert spec["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 120,
                      "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        "scaleUp": {"stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}]}}
    assert m.elastic_apiserver_hpa(cluster())["spec"]["behavior"]["scaleDown"][
        "stabilizationWindowSeconds"] == 300


@pytest.mark.parametrize("name", [m.ELASTIC, m.CONTROLLER_MANAGER, m.SCHEDULER])
def test_a_pdb_lets_one_pod_of_its_deployment_go_at_a_time(name: str) -> None:
    assert m.pdb(name) == {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "kube-system",
                     "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "kube-ha",
                                "tier": "control-plane"}},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}}}


# --- the leader-elected controller-manager and scheduler -------------------------------------

def test_controller_manager_joins_the_static_pods_lease_with_their_settings() -> None:
    """--leader-elect on the default lease (kube-system/kube-controller-manager, the static
    pod's): one active instance cluster-wide. It signs with the cluster CA, allocates node
    CIDRs from podSubnet, and serves health on loopback at controllerManager.port."""
    c = cluster(controllerManager={"replicas": 2, "port": 10400}, clusterName="prod",
                podSubnet="10.128.0.0/14", serviceSubnet="10.112.0.0/16")
    f = flags(m.controller_manager_flags(c))
    assert f["leader-elect"] == "true"
    assert "leader-elect-resource-name" not in f and "leader-elect-resource-namespace" not in f
    assert (f["bind-address"], f["secure-port"]) == ("127.0.0.1", "10400")
    assert f["cluster-name"] == "prod"
    assert f["cluster-cidr"] == "10.128.0.0/14"
    assert f["service-cluster-ip-range"] == "10.112.0.0/16"
    assert f["allocate-node-cidrs"] == "true"
    assert f["controllers"] == "*,bootstrapsigner,tokencleaner"
    assert f["use-service-account-credentials"] == "true"
    ours = m.controller_manager_flags(c)
    assert ours == sorted(ours, key=lambda a: cy.split_flag(a)[0])


def test_scheduler_joins_the_static_pods_lease_on_loopback() -> None:
    c = cluster(kubeScheduler={"replicas": 2, "port": 10401})
    f = flags(m.scheduler_flags(c))
    conf = f"{POD_CONFIG}/scheduler.conf"
    assert f == {"kubeconfig": conf, "authentication-kubeconfig": conf,
                 "authorization-kubeconfig": conf, "bind-address": "127.0.0.1",
                 "secure-port": "10401", "leader-elect": "true"}
    assert list(f) == sorted(f)


@pytest.mark.parametrize("component", ["kube-controller-manager", "kube-scheduler"])
def test_leader_elected_pods_read_copies_of_the_static_pods_files(component: str) -> None:
    """Each file flag names, in the pod, the Secret's key filled from the very host file the
    static pod's flag names (the CA key the controller-manager signs with is the cluster's);
    every kubeconfig they read is one the program re-points at the HA endpoint; the static
    pod's other flags are theirs too, and only the instance's own differ."""
    c = cluster(kubeScheduler={"replicas": 2})
    spec, ours = ((m.CONTROLLER_MANAGER_PKI, m.controller_manager_flags(c))
                  if component == "kube-controller-manager" else (m.SCHEDULER_PKI, m.scheduler_flags(c)))
    f = flags(ours)
    static = flags(kubeadm_static_flags(c, component))
    own = set(m.OWN_FLAGS[component])
    assert set(f) - own == set(static) - own and own <= set(f)
    for name, value in f.items():
        if name == "secure-port":
            continue
        assert value is not None
        if value.startswith("/"):
            assert value.startswith(f"{POD_CONFIG}/"), name
            key = value.removeprefix(f"{POD_CONFIG}/")
            assert spec.files[key] == static[name], name
        elif name not in m.OWN_FLAGS[component]:
            assert value == static[name], name
    kubeconfigs = {str(f[k]).rsplit("/", 1)[1] for k in
                   ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig")}
    assert kubeconfigs == set(spec.kubeconfigs)
    assert set(m.OWN_FLAGS[component]) == {"kubeconfig", "authentication-kubeconfig",
                                            "authorization-kubeconfig", "bind-address", "secure-port"}


def test_the_controller_manager_secret_holds_what_it_signs_and_verifies_with() -> None:
    assert m.CONTROLLER_MANAGER_PKI.name == "kube-ha-controller-manager-pki"
    assert m.CONTROLLER_MANAGER_PKI.files == {
        "ca.crt": f"{PKI}/ca.crt", "ca.key": f"{PKI}/ca.key", "sa.key": f"{PKI}/sa.key",
        "front-proxy-ca.crt": f"{PKI}/front-proxy-ca.crt",
        "controller-manager.conf": "/etc/kubernetes/controller-manager.conf"}
    assert m.SCHEDULER_PKI.name == "kube-ha-scheduler-pki"
    assert m.SCHEDULER_PKI.files == {"scheduler.conf": "/etc/kubernetes/scheduler.conf"}


@pytest.mark.parametrize("component", ["kube-controller-manager", "kube-scheduler"])
def test_leader_elected_views_map_host_files_to_the_pods_config_dir(component: str) -> None:
    c = cluster(kubeScheduler={"replicas": 2})
    view, spec = ((m.controller_manager_view(c), m.CONTROLLER_MANAGER_PKI)
                  if component == "kube-controller-manager" else (m.scheduler_view(c), m.SCHEDULER_PKI))
    assert view.component == component
    assert dict(view.mapped) == {h: f"{POD_CONFIG}/{k}" for k, h in spec.files.items()}
    port = "10357" if component == "kube-controller-manager" else "10359"
    conf = f"{POD_CONFIG}/{spec.kubeconfigs[0]}"
    assert dict(view.own) == {"kubeconfig": conf, "authentication-kubeconfig": conf,
                              "authorization-kubeconfig": conf, "bind-address": "127.0.0.1",
                              "secure-port": port}


@pytest.mark.parametrize("which", ["controller-manager", "scheduler"])
def test_leader_elected_deployments_run_on_control_plane_nodes_only(which: str) -> None:
    """They hold the CA key or a privileged kubeconfig: a control-plane Node (a label and the
    names no kubelet can change), one per node, tolerating kubeadm's control-plane taint and
    not the elastic pool's; probes hit /healthz on loopback over HTTPS at their port."""
    c = cluster(controllerManager={"replicas": 3, "port": 10400},
                kubeScheduler={"replicas": 2, "port": 10401})
    if which == "controller-manager":
        dep, name, comp, port, replicas, cpu, secret = (
            m.controller_manager_deployment(c), "kube-ha-controller-manager", "kube-controller-manager",
            10400, 3, "200m", "kube-ha-controller-manager-pki")
        command = m.controller_manager_flags(c)
    else:
        dep, name, comp, port, replicas, cpu, secret = (
            m.scheduler_deployment(c), "kube-ha-scheduler", "kube-scheduler", 10401, 2, "100m",
            "kube-ha-scheduler-pki")
        command = m.scheduler_flags(c)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "kube-ha",
              "tier": "control-plane"}
    assert (dep["apiVersion"], dep["kind"]) == ("apps/v1", "Deployment")
    assert dep["metadata"] == {"name": name, "namespace": "kube-system", "labels": labels}
    assert dep["spec"]["replicas"] == replicas
    assert dep["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": name}}
    assert dep["spec"]["template"]["metadata"] == {"labels": labels}
    pod, ctr = pod_spec(dep), container(dep)
    assert pod["hostNetwork"] is True
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                "values": ["ubuntu-73", "ubuntu-70", "ubuntu-72"]}]}]}
    assert pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == [{
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
        "topologyKey": "kubernetes.io/hostname"}]
    assert any(tolerates(t, CONTROL_PLANE_TAINT) for t in pod["tolerations"])
    assert not any(tolerates(t, POOL_TAINT) for t in pod["tolerations"])
    assert pod["tolerations"] == [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "CriticalAddonsOnly", "operator": "Exists"}]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert ctr["name"] == comp
    assert ctr["image"] == f"registry.k8s.io/{comp}:v1.32.3"
    assert ctr["command"] == [comp, *command]
    assert ctr["resources"] == {"requests": {"cpu": cpu, "memory": "128Mi"}}
    health = {"path": "/healthz", "port": port, "scheme": "HTTPS", "host": "127.0.0.1"}
    assert ctr["startupProbe"] == {"httpGet": health, "periodSeconds": 10, "timeoutSeconds": 5,
                                   "failureThreshold": 24, "initialDelaySeconds": 10}
    assert ctr["livenessProbe"] == {"httpGet": health, "periodSeconds": 10, "timeoutSeconds": 5,
                                    "failureThreshold": 8}
    assert "readinessProbe" not in ctr
    assert ctr["securityContext"]["readOnlyRootFilesystem"] is True
    assert ctr["volumeMounts"] == [{"name": "config", "mountPath": POD_CONFIG, "readOnly": True},
                                   {"name": "carried", "mountPath": CARRIED_DIR, "readOnly": True}]
    assert pod["volumes"] == [
        {"name": "config", "secret": {"secretName": secret, "defaultMode": 0o440}},
        {"name": "carried", "secret": {"secretName": f"{name}-carried", "defaultMode": 0o440}}]


# --- which manifests, which pods -------------------------------------------------------------

def test_all_manifests_follow_what_the_stack_switches_on() -> None:
    elastic = {"elastic-apiserver-deployment.yaml", "elastic-apiserver-hpa.yaml",
               "elastic-apiserver-pdb.yaml", "elastic-apiserver-serving-secret.yaml",
               "elastic-apiserver-pki-secret.yaml", "elastic-apiserver-carried-secret.yaml"}
    cm = {"controller-manager-deployment.yaml", "controller-manager-pdb.yaml",
          "controller-manager-secret.yaml", "controller-manager-carried-secret.yaml"}
    sched = {"scheduler-deployment.yaml", "scheduler-pdb.yaml", "scheduler-secret.yaml",
             "scheduler-carried-secret.yaml"}
    assert set(m.all_manifests(cluster())) == elastic | cm
    assert set(m.all_manifests(cluster(kubeScheduler={"replicas": 1}))) == elastic | cm | sched
    assert set(m.all_manifests(cluster(elasticApiserver={"enabled": False},
                                       controllerManager={"replicas": 0},
                                       kubeScheduler={"replicas": 2}))) == sched
    assert m.all_manifests(cluster(elasticApiserver={"enabled": False},
                                   controllerManager={"replicas": 0})) == {}


def test_the_secrets_rendered_are_the_ones_the_pods_mount() -> None:
    out = m.all_manifests(cluster(kubeScheduler={"replicas": 1}))
    secrets = {k: (v["metadata"]["name"], v["type"], sorted(v["data"])) for k, v in out.items()
               if v["kind"] == "Secret"}
    assert secrets == {
        "elastic-apiserver-serving-secret.yaml": ("kube-ha-elastic-apiserver-serving",
                                                  "kubernetes.io/tls", ["tls.crt", "tls.key"]),
        "elastic-apiserver-pki-secret.yaml": ("kube-ha-elastic-apiserver-pki", "Opaque",
                                              sorted(m.ELASTIC_PKI.files)),
        "elastic-apiserver-carried-secret.yaml": ("kube-ha-elastic-apiserver-carried", "Opaque", []),
        "controller-manager-secret.yaml": ("kube-ha-controller-manager-pki", "Opaque",
                                           sorted(m.CONTROLLER_MANAGER_PKI.files)),
        "controller-manager-carried-secret.yaml": ("kube-ha-controller-manager-carried", "Opaque", []),
        "scheduler-secret.yaml": ("kube-ha-scheduler-pki", "Opaque", ["scheduler.conf"]),
        "scheduler-carried-secret.yaml": ("kube-ha-scheduler-carried", "Opaque", []),
    }
    secret = m.secret_manifest("x", ["a"])
    assert (secret["apiVersion"], secret["kind"], secret["data"]) == ("v1", "Secret", {"a": ""})
    assert secret["metadata"]["namespace"] == "kube-system"
    assert out["controller-manager-pdb.yaml"]["metadata"]["name"] == "kube-ha-controller-manager"
    assert out["scheduler-pdb.yaml"]["metadata"]["name"] == "kube-ha-scheduler"
    assert out["elastic-apiserver-pdb.yaml"]["metadata"]["name"] == "kube-ha-elastic-apiserver"
    assert out["elastic-apiserver-hpa.yaml"]["kind"] == "HorizontalPodAutoscaler"
    assert out["scheduler-deployment.yaml"]["metadata"]["name"] == "kube-ha-scheduler"
    assert out["controller-manager-deployment.yaml"]["metadata"]["name"] == "kube-ha-controller-manager"


def test_in_cluster_pods_are_listed_in_order_with_the_key_that_asks_for_each() -> None:
    def listed(c: Cluster) -> list[tuple[str, str, str, str]]:
        return [(p.key, p.what, p.view.component, p.pki.name) for p in m.in_cluster_pods(c)]

    assert listed(cluster(kubeScheduler={"replicas": 1})) == [
        ("elasticApiserver.enabled", "elastic kube-apiservers", "kube-apiserver",
         "kube-ha-elastic-apiserver-pki"),
        ("controllerManager.replicas", "controller-manager Deployment", "kube-controller-manager",
         "kube-ha-controller-manager-pki"),
        ("kubeScheduler.replicas", "scheduler Deployment", "kube-scheduler", "kube-ha-scheduler-pki")]
    assert listed(cluster(elasticApiserver={"enabled": False}, controllerManager={"replicas": 0})) == []
    assert [p.key for p in m.in_cluster_pods(cluster(controllerManager={"replicas": 1}))] == [
        "elasticApiserver.enabled", "controllerManager.replicas"]


# --- helpers the program uses ----------------------------------------------------------------

def test_images_are_pinned_by_digest_when_one_is_configured() -> None:
    digest = "sha256:" + "d" * 64
    c = cluster(imageDigests={"kube-scheduler": digest})
    assert m.image(c, "kube-scheduler") == f"registry.k8s.io/kube-scheduler:v1.32.3@{digest}"
    assert m.image(c, "kube-apiserver") == "registry.k8s.io/kube-apiserver:v1.32.3"


def test_content_digest_is_the_sha256_of_the_sorted_json() -> None:
    value = {"b": [1, 2], "a": "x"}
    want = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    assert m.content_sha256(value) == want == m.content_sha256({"a": "x", "b": [1, 2]})
    assert m.content_sha256({"a": "y", "b": [1, 2]}) != want
    assert (m.CHECKSUM_ANNOTATION, m.CARRIED_ANNOTATION) == (
        "kube-ha.io/mounted-content-sha256", "kube-ha.io/carried-content-sha256")


def test_pod_annotations_and_command_are_added_without_touching_the_rest() -> None:
    spec = m.elastic_apiserver_deployment(cluster())["spec"]
    before = copy.deepcopy(spec)
    once = m.with_pod_annotations(spec, {"a": "1"})
    twice = m.with_pod_annotations(once, {"b": "2"})
    assert twice["template"]["metadata"]["annotations"] == {"a": "1", "b": "2"}
    assert twice["template"]["metadata"]["labels"] == spec["template"]["metadata"]["labels"]
    assert twice["template"]["spec"] == spec["template"]["spec"]
    run = m.with_command(spec, ["kube-apiserver", "--x=y"])
    assert container({"spec": run})["command"] == ["kube-apiserver", "--x=y"]
    assert container({"spec": run})["image"] == container({"spec": spec})["image"]
    assert run["strategy"] == spec["strategy"]
    assert spec == before


def test_a_kubeconfig_is_repointed_at_the_endpoint_and_otherwise_kept() -> None:
    text = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "a", "cluster": {"server": "https://10.0.0.1:6443",
                                               "certificate-authority-data": "Q0E="}},
                     {"name": "b", "cluster": {"server": "https://10.0.0.2:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}, sort_keys=False)
    out = m.kubeconfig_with_server(text, "https://api.example:6443")
    doc = yaml.safe_load(out)
    assert [c["cluster"]["server"] for c in doc["clusters"]] == ["https://api.example:6443"] * 2
    assert doc["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E="
    assert doc["users"] == [{"name": "u", "user": {"token": "t"}}]
    assert list(doc) == ["apiVersion", "kind", "clusters", "users"]  # kubeadm's order kept
    assert yaml.safe_load(m.kubeconfig_with_server("kind: Config\n", "https://x")) == {"kind": "Config"}


# --- carry: the static pod's flags and files -------------------------------------------------

def static_pod(command: list[str], args: list[str] | None = None) -> str:
    c: dict[str, Any] = {"name": "x", "command": command}
    if args is not None:
        c["args"] = args
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [c]}})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def view(component: str = "kube-apiserver", own: dict[str, str] | None = None,
         mapped: dict[str, str] | None = None) -> cy.PodView:
    return cy.PodView(component, own or {}, mapped or {})


def test_the_static_command_is_command_then_args() -> None:
    assert cy.static_command(static_pod(["kube-apiserver", "--a=1"], ["--b=2"])) == [
        "kube-apiserver", "--a=1", "--b=2"]
    assert cy.static_command(static_pod(["kube-apiserver"])) == ["kube-apiserver"]
    for bad in ("", "spec: {}\n", "spec:\n  containers: []\n"):
        with pytest.raises(cy.CarryError, match=r"^the static pod manifest has no container$"):
            cy.static_command(bad)


@pytest.mark.parametrize("arg, split", [
    ("--a=b", ("a", "b")), ("--a", ("a", None)), ("--a=", ("a", "")), ("--a=b=c", ("a", "b=c"))])
def test_a_flag_splits_into_name_and_value(arg: str, split: tuple[str, str | None]) -> None:
    assert cy.split_flag(arg) == split


def test_host_paths_are_the_absolute_elements_of_a_files_flag() -> None:
    assert cy.host_paths("client-ca-file", "/a/ca.pem,rel.pem,/b/x") == ["/a/ca.pem", "/b/x"]
    assert cy.host_paths("etcd-prefix", "/registry") == []
    assert cy.host_paths("audit-log-path", "/var/log/audit.log") == []
    assert cy.host_paths("oidc-issuer-url", "https://x/") == []


def test_own_flags_replace_the_static_ones_and_bare_flags_stay() -> None:
    """The instance's own value wins (added when the static pod lacks it); a bare flag stays
    bare; a written file goes to stdout; every value without a host path is kept; the result
    is in kubeadm's order (name, then value)."""
    manifest = static_pod(["kube-apiserver", "--secure-port=6443", "--zeta", "--profiling=false",
                           "--audit-log-path=/var/log/k/audit.log", "--etcd-prefix=/registry",
                           "--oidc-issuer-url=https://sso"])
    got = cy.carry(view(own={"secure-port": "7443", "goaway-chance": "0.001"}), manifest, {})
    assert got.flags == ["--audit-log-path=-", "--etcd-prefix=/registry", "--goaway-chance=0.001",
                         "--oidc-issuer-url=https://sso", "--profiling=false", "--secure-port=7443",
                         "--zeta"]
    assert got.files == {}


def test_flags_are_put_in_kubeadms_order_a_repeated_name_by_its_value() -> None:
    """kubeadm's ArgumentsToCommand sorts by name, then value; a bare flag sorts first."""
    manifest = static_pod(["kube-apiserver", "--b=1", "--a=2", "--a", "--a=1", "--a-b=0"])
    assert cy.carry(view(), manifest, {}).flags == ["--a", "--a=1", "--a=2", "--a-b=0", "--b=1"]


def test_the_component_is_the_static_pods_first_container() -> None:
    """A static pod patched with a sidecar (kubeadm --patches) still runs its component first."""
    doc = {"spec": {"containers": [{"command": ["kube-apiserver", "--a=1"]},
                                   {"command": ["sidecar", "--b=2"]}]}}
    assert cy.static_command(yaml.safe_dump(doc)) == ["kube-apiserver", "--a=1"]


def test_mapped_pki_files_take_the_pods_path_in_a_comma_list() -> None:
    manifest = static_pod(["kube-controller-manager",
                           "--client-ca-file=/etc/kubernetes/pki/ca.crt,relative,/etc/kubernetes/pki/b.crt"])
    got = cy.carry(view("kube-controller-manager",
                        mapped={"/etc/kubernetes/pki/ca.crt": "/pod/ca.crt",
                                "/etc/kubernetes/pki/b.crt": "/pod/b.crt"}), manifest, {})
    assert got.flags == ["--client-ca-file=/pod/ca.crt,relative,/pod/b.crt"]


def test_carried_files_go_into_the_secret_once_each_under_the_carried_dir() -> None:
    """A file flag's host file is copied into the carried Secret (content as read, base64) and
    the flag points at its mount; a file named twice is copied once; two files with the same
    base name get distinct keys; characters a Secret key refuses become '-'."""
    enc = b64("kind: EncryptionConfiguration\n")
    ca = b64("-----BEGIN CERTIFICATE-----\n")
    files = {"/etc/k/enc/enc.yaml": enc, "/etc/k/oidc/ca.pem": ca, "/etc/other/ca.pem": ca,
             "/etc/k/we ird@name": ca}
    manifest = static_pod(["kube-apiserver", "--encryption-provider-config=/etc/k/enc/enc.yaml",
                           "--oidc-ca-file=/etc/k/oidc/ca.pem",
                           "--client-ca-file=/etc/k/oidc/ca.pem,/etc/other/ca.pem",
                           "--token-auth-file=/etc/k/we ird@name"])
    got = cy.carry(view(), manifest, files)
    assert got.flags == [
        f"--client-ca-file={CARRIED_DIR}/ca.pem,{CARRIED_DIR}/2-ca.pem",
        f"--encryption-provider-config={CARRIED_DIR}/enc.yaml",
        f"--oidc-ca-file={CARRIED_DIR}/ca.pem",
        f"--token-auth-file={CARRIED_DIR}/we-ird-name"]
    assert got.files == {"enc.yaml": enc, "ca.pem": ca, "2-ca.pem": ca, "we-ird-name": ca}
    assert cy.CARRIED_DIR == CARRIED_DIR


def test_a_binary_file_is_carried_as_read() -> None:
    """A DER CA bundle or any file that is not UTF-8 is copied byte for byte (its nested keys
    are looked for in a lenient decoding, which finds none), not refused."""
    der = base64.b64encode(b"\x30\x82\xff\xfe\x00binary").decode()
    manifest = static_pod(["kube-apiserver", "--client-ca-file=/etc/k/ca.der"])
    got = cy.carry(view(), manifest, {"/etc/k/ca.der": der})
    assert got.flags == [f"--client-ca-file={CARRIED_DIR}/ca.der"]
    assert got.files == {"ca.der": der}


def test_secret_keys_never_collide_and_are_never_empty() -> None:
    taken: set[str] = set()
    assert [cy._secret_key(p, taken) for p in ("/a/x.pem", "/b/x.pem", "/c/x.pem", "/d/", "/e/")] == [
        "x.pem", "2-x.pem", "3-x.pem", "file", "2-"]
    assert taken == {"x.pem", "2-x.pem", "3-x.pem", "file", "2-"}


def test_a_file_not_read_from_the_node_is_refused_naming_the_flag() -> None:
    manifest = static_pod(["kube-apiserver", "--audit-policy-file=/etc/k/audit.yaml"])
    with pytest.raises(cy.CarryError) as err:
        cy.carry(view(), manifest, {})
    assert str(err.value) == "--audit-policy-file=/etc/k/audit.yaml: /etc/k/audit.yaml was not read from the node"


def test_a_host_file_no_table_carries_is_refused_naming_it() -> None:
    """A flag that names a host file outside the carried table (or the table of another
    component) cannot be given to a pod on another node."""
    for component, flag in (("kube-controller-manager", "flex-volume-plugin-dir"),
                            ("kube-scheduler", "client-ca-file"),
                            ("kube-apiserver", "config")):
        manifest = static_pod([component, f"--{flag}=/usr/libexec/x"])
        with pytest.raises(cy.CarryError) as err:
            cy.carry(view(component), manifest, {"/usr/libexec/x": b64("x")})
        assert str(err.value) == (f"--{flag}=/usr/libexec/x names /usr/libexec/x, a host file a pod"
                                  " on another node cannot be given")


# Each component's flags that name a config file read at start (the components' flag
# references), which a pod can be given as a copy.
CARRIABLE = [
    ("kube-apiserver", f) for f in (
        "encryption-provider-config", "audit-policy-file", "audit-webhook-config-file",
        "admission-control-config-file", "authentication-config", "authorization-config",
        "authentication-token-webhook-config-file", "authorization-webhook-config-file",
        "oidc-ca-file", "service-account-key-file", "egress-selector-config-file",
        "tracing-config-file", "token-auth-file", "kubelet-certificate-authority",
        "requestheader-client-ca-file", "client-ca-file", "cloud-config")
] + [("kube-controller-manager", f) for f in ("cloud-config", "client-ca-file",
                                              "requestheader-client-ca-file", "root-ca-file")
     ] + [("kube-scheduler", "config")]


@pytest.mark.parametrize("component, flag", CARRIABLE)
def test_each_config_file_flag_is_carried(component: str, flag: str) -> None:
    manifest = static_pod([component, f"--{flag}=/etc/k/conf.txt"])
    got = cy.carry(view(component), manifest, {"/etc/k/conf.txt": b64("plain")})
    assert got.flags == [f"--{flag}={CARRIED_DIR}/conf.txt"]
    assert got.files == {"conf.txt": b64("plain")}


@pytest.mark.parametrize("key", ["path", "kubeConfigFile", "caBundle", "clientCert", "clientKey",
                                 "udsName", "endpoint"])
def test_a_carried_config_naming_a_host_file_is_refused(key: str) -> None:
    """An admission or webhook config naming a host file or a socket works on the
    control-plane hosts only; the refusal names the flag, the file and the key."""
    text = yaml.safe_dump({"plugins": [{"name": "x", "configuration": {key: "/etc/k/nested"}}]})
    manifest = static_pod(["kube-apiserver", "--admission-control-config-file=/etc/k/adm.yaml"])
    with pytest.raises(cy.CarryError) as err:
        cy.carry(view(), manifest, {"/etc/k/adm.yaml": b64(text)})
    assert str(err.value) == ("--admission-control-config-file=/etc/k/adm.yaml names"
                              f" {key}: /etc/k/nested, which a pod on another node does not have")
    assert cy.nested_problem("x", "/p", yaml.safe_dump({key: "unix:///run/s.sock"})) == (
        f"--x=/p names {key}: unix:///run/s.sock, which a pod on another node does not have")
    # A relative name, a URL or a non-string is nothing on the host.
    for value in ("relative", "https://x/", 3):
        assert cy.nested_problem("x", "/p", yaml.safe_dump({key: value})) is None


def test_a_kms_provider_is_refused_only_in_an_encryption_config() -> None:
    kms = yaml.safe_dump({"resources": [{"providers": [{"kms": {"name": "vault"}}]}]})
    assert cy.nested_problem("encryption-provider-config", "/e.yaml", kms) == (
        "--encryption-provider-config=/e.yaml names a KMS provider (its plugin's socket is on the"
        " control-plane hosts only), which a pod on another node does not have")
    assert cy.nested_problem("audit-policy-file", "/e.yaml", kms) is None
    assert cy.nested_problem("x", "/p", "{not yaml: [") is None
    assert cy.nested_problem("x", "/p", "-----BEGIN CERTIFICATE-----\nMII\n") is None
    # The first problem found is the one named.
    both = yaml.safe_dump({"a": [{"path": "/one"}, {"path": "/two"}]})
    assert cy.nested_problem("x", "/p", both) == (
        "--x=/p names path: /one, which a pod on another node does not have")


def test_the_read_steps_output_parses_into_the_manifest_and_files() -> None:
    text = "\n".join([f"manifest {b64('kind: Pod')}", f"file {b64('/etc/k/a b')} QUJD",
                      "noise here", f"file {b64('/etc/k/c')} "])
    assert cy.read_static_pod_output(text) == ("kind: Pod", {"/etc/k/a b": "QUJD", "/etc/k/c": ""})
    assert cy.read_static_pod_output("") == ("", {})


def bash(script: str, stdin: str = "") -> str:
    return subprocess.run(["bash", "-c", script], input=stdin, capture_output=True, text=True,
                          check=True).stdout


def test_the_shell_reads_a_static_pods_flags_and_the_files_they_name(tmp_path: Path) -> None:
    """kubeadm writes one `- --name=value` a line, quoted where YAML needs it: `static_flags`
    prints `name=value`; `host_files` prints each absolute element of the named flags once."""
    manifest = tmp_path / "kube-apiserver.yaml"
    manifest.write_text("spec:\n  containers:\n  - command:\n    - kube-apiserver\n"
                        "    - --a=/x/one,rel,/x/two\n    - '--b=/x/one'\n    - \"--c=/x/three\"\n"
                        "    - --bare\n    image: x\n")
    out = bash(f"{cy.STATIC_FLAGS}\nstatic_flags {manifest}")
    assert out.splitlines() == ["a=/x/one,rel,/x/two", "b=/x/one", "c=/x/three"]
    files = bash(f"{cy.STATIC_FLAGS}\n{cy.HOST_FILES}\nstatic_flags {manifest} | host_files 'a b'")
    assert files.splitlines() == ["/x/one", "/x/two"]


def test_the_shell_pattern_finds_what_nested_problem_refuses() -> None:
    """The preflight greps a carried file with `nested_pattern`: it must match the lines
    `nested_problem` refuses and leave the rest."""
    cases = [("admission-control-config-file", "    path: /etc/k/x", True),
             ("admission-control-config-file", '  "kubeConfigFile": "/etc/k/kc"', True),
             ("admission-control-config-file", "{udsName: unix:///run/x.sock}", True),
             ("admission-control-config-file", "  - endpoint: unix:///run/kms.sock", True),
             ("admission-control-config-file", "    path: relative/x", False),
             ("admission-control-config-file", "    mypath: /etc/k/x", False),
             ("encryption-provider-config", "      - kms:", True),
             ("encryption-provider-config", "      - aescbc:", False),
             ("audit-policy-file", "      - kms:", False)]
    for flag, line, refused in cases:
        found = subprocess.run(["grep", "-qE", cy.nested_pattern(flag)], input=line + "\n",
                               text=True).returncode == 0
        assert found is refused, (flag, line)


# --- the pool's taint, firewall and metrics-server ------------------------------------------

def test_the_pool_taints_only_its_workers_and_only_when_enabled() -> None:
    c = cluster(elasticApiserver={"poolNodes": ["ubuntu-70", "ubuntu-75"]})
    assert pool.tainted_pool(c) == ("ubuntu-75",)
    assert pool.tainted_pool(cluster(elasticApiserver={"enabled": False})) == ()
    change = pool.pool_taints({pool.RECORD_KEY: ["ubuntu-74", "ubuntu-75"]}, c)
    assert change == pool.PoolTaints(("ubuntu-75",), ("ubuntu-74",))
    assert bool(pool.PoolTaints((), ("a",))) and bool(pool.PoolTaints(("a",), ()))
    assert not pool.UNCHANGED
    assert pool.RECORD_KEY == "elasticPool"


def test_the_pool_script_taints_idempotently_and_tolerates_only_a_gone_taint() -> None:
    """Run with a kubectl stand-in that records its argv and answers as kubectl does: the
    taint is set with --overwrite; an untaint whose taint or Node is already gone passes,
    anything else fails the step."""
    def run(change: pool.PoolTaints, answer: str, rc: int) -> subprocess.CompletedProcess[str]:
        fake = (f"kubectl() {{ echo \"kubectl $*\" >> \"$CALLS\"; printf '%s\\n' {json.dumps(answer)}; "
                f"return {rc}; }}\n")
        text = pool.pool_script(change).replace("set -euo pipefail\n", f"set -euo pipefail\n{fake}", 1)
        return subprocess.run(["bash", "-c", f'CALLS=$(mktemp); export CALLS\n{text}\ncat "$CALLS"'],
                              capture_output=True, text=True)

    kubectl = "kubectl --kubeconfig=/etc/kubernetes/admin.conf --request-timeout=30s"
    done = run(pool.PoolTaints(("w1",), ()), "node/w1 tainted", 0)
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        f"{kubectl} taint nodes w1 kube-ha.io/elastic-apiserver=true:NoSchedule --overwrite"]
    for answer in ('error: taint "kube-ha.io/elastic-apiserver:NoSchedule" not found',
                   'Error from server (NotFound): nodes "w2" not found'):
        gone = run(pool.PoolTaints((), ("w2",)), answer, 1)
        assert gone.returncode == 0, gone.stderr
        assert gone.stdout.splitlines() == [f"{kubectl} taint nodes w2 kube-ha.io/elastic-apiserver:NoSchedule-"]
        assert ("kube-ha[elastic pool]: w2 left the elastic apiservers pool: it had no pool taint left"
                in gone.stderr)
    failed = run(pool.PoolTaints((), ("w2",)), "error: connection refused", 1)
    assert failed.returncode == 1 and "error: connection refused" in failed.stderr
    ok = run(pool.PoolTaints((), ("w2",)), "node/w2 untainted", 0)
    assert ok.returncode == 0 and "node/w2 untainted" in ok.stderr


def test_openings_admit_pool_workers_to_etcd_and_lbs_to_the_pool_port() -> None:
    c = cluster(elasticApiserver={"port": 8443})
    got = fw.openings(c)
    etcd = fw.Opening(2379, tuple(h.address for h in c.workers))
    assert got["ubuntu-73"] == got["ubuntu-70"] == got["ubuntu-72"] == (etcd,)
    lbs = tuple(lb.address for lb in c.load_balancers)
    assert got["ubuntu-74"] == got["ubuntu-75"] == (fw.Opening(8443, lbs),)
    # A pool of control-plane nodes only: nobody dials etcd from a worker.
    cp_pool = fw.openings(cluster(elasticApiserver={"poolNodes": ["ubuntu-70"], "maxReplicas": 1}))
    assert cp_pool == {"ubuntu-70": (fw.Opening(7443, lbs),)}
    assert fw.ETCD_CLIENT_PORT == 2379
    assert fw.OPENED == "/etc/kubernetes/kube-ha/firewalld-opened"
    assert fw.RECORD_KEY == "elasticFirewall"


def test_firewalld_items_are_firewall_cmds_own_words() -> None:
    from ipaddress import ip_address

    items = fw.firewalld_items([fw.Opening(7443, None),
                                fw.Opening(2379, (ip_address("10.0.0.1"), ip_address("fd00::1")))])
    rule = 'port port="2379" protocol="tcp" accept'
    assert items == ["port=7443/tcp",
                     f'rich-rule=rule family="ipv4" source address="10.0.0.1" {rule}',
                     f'rich-rule=rule family="ipv6" source address="fd00::1" {rule}']


def test_the_firewall_step_opens_each_item_and_closes_what_is_no_longer_wanted(tmp_path: Path) -> None:
    """Run with the firewall-cmd stand-in (tests/harness/firewalld): every item is opened on
    its own, recorded one a line as this program's, and closed on a later run that no longer
    wants it; firewalld is reloaded when something changed."""
    from ipaddress import ip_address

    harness = Path(__file__).parent / "harness" / "firewalld"
    state = tmp_path / "firewalld.json"
    opened = tmp_path / "opened"

    def run(openings: list[fw.Opening]) -> dict[str, Any]:
        text = fw.firewall_script(openings).replace(f"opened={fw.OPENED}", f"opened={opened}")
        assert text != fw.firewall_script(openings)
        subprocess.run(["bash", "-c", text], check=True, capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{harness}:{os.environ['PATH']}",
                            "FIREWALLD_STATE": str(state)})
        got: dict[str, Any] = json.loads(state.read_text())
        return got

    two = (ip_address("10.0.0.1"), ip_address("10.0.0.2"))
    first = run([fw.Opening(2379, two), fw.Opening(7443, None)])
    assert sorted(first["rich_rules"]) == [
        f'rule family="ipv4" source address="10.0.0.{i}" port port="2379" protocol="tcp" accept'
        for i in (1, 2)]
    assert first["ports"] == ["7443/tcp"]
    assert opened.read_text().splitlines() == fw.firewalld_items([fw.Opening(2379, two),
                                                                  fw.Opening(7443, None)])
    then = run([fw.Opening(2379, two[:1])])
    assert then["ports"] == [] and len(then["rich_rules"]) == 1
    assert opened.read_text().splitlines() == fw.firewalld_items([fw.Opening(2379, two[:1])])


def test_firewall_steps_go_to_nodes_with_openings_or_with_what_to_close() -> None:
    c = cluster()
    names = [h.name for h in fw.firewall_nodes(None, c)]
    assert names == [h.name for h in c.nodes]
    off = cluster(elasticApiserver={"enabled": False})
    assert [h.name for h in fw.firewall_nodes({fw.RECORD_KEY: ["ubuntu-74"]}, off)] == ["ubuntu-74"]
    assert fw.firewall_nodes({}, off) == []


def test_a_nodes_firewall_step_opens_then_probes_what_it_dials() -> None:
    c = cluster()
    worker = fw.node_firewall_script(c, c.node("ubuntu-74"))
    assert "rich-rule=rule family=\"ipv4\" source address=\"10.21.22.101\" port port=\"7443\"" in worker
    assert worker.index("firewall-cmd --reload") < worker.index("reach 10.21.22.73 2379 ")
    assert "opened=/etc/kubernetes/kube-ha/firewalld-opened" in worker
    # A control-plane node dials nothing the elastic pods add: its step only opens.
    cp = c.node("ubuntu-73")
    assert fw.node_firewall_script(c, cp) == fw.firewall_script(fw.openings(c)["ubuntu-73"])
    assert "10.21.22.74" in fw.node_firewall_script(c, cp)
    lb = c.load_balancers[0]
    reach = fw.lb_reach_script(c, lb)
    assert "# kube-ha: elastic reach" in reach and "reach 10.21.22.74 7443 " in reach
    assert fw.lb_reach_script(cluster(elasticApiserver={"enabled": False}), lb) == ""
    assert "# kube-ha: elastic firewall" in fw.firewall_script(())


def test_metrics_server_comes_from_upstreams_release_url() -> None:
    assert ms.release_url("v0.8.1") == (
        "https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.8.1/components.yaml")
    assert ms.release_for((1, 34)) == "v0.9.0" and ms.release_for((1, 33)) == "v0.8.1"
    assert ms.release_for((1, 27)) == "v0.7.2" and ms.release_for((1, 26)) is None
    assert ms.release_for((2, 0)) == "v0.9.0"
    # What the release registers, and the preflight waits for: the aggregated metrics API the
    # HPA reads (metrics.k8s.io/v1beta1) and the Service behind it.
    assert ms.APISERVICE == "v1beta1.metrics.k8s.io"
    assert ms.SERVICE == "kube-system/metrics-server"
