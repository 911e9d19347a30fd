"""Kubernetes manifests for the elastic control plane. Pure: plain dicts, the API's own names.

- Extra kube-apiservers: a Deployment (hostNetwork, one pod per pool node) scaled by an HPA,
  behind the same LB as the static pods; the static pods stay as the floor that is never zero.
- kube-controller-manager / kube-scheduler: Deployments that join the static pods' leader
  election (same lease), so exactly one instance is active cluster-wide.
Certificates and keys come from Secrets the program creates, mounted read-only; nothing is
baked into an image and no hostPath reaches /etc/kubernetes/pki.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kube_ha.elastic.carry import CARRIED_DIR, PodView, split_flag
from kube_ha.elastic.pool import pool_toleration
from kube_ha.model import Cluster
from kube_ha.paths import K8S, PKI, POD_CONFIG
from kube_ha.topology import etcd_endpoints

NAMESPACE = "kube-system"
# Pods that hold the cluster's keys are placed only by what a kubelet cannot set on its own
# Node under NodeRestriction: labels under node-restriction.kubernetes.io/ and node-role.
# kubernetes.io/, and the node's name (matchFields). `kubernetes.io/hostname` or a label of our
# own would let a compromised worker relabel itself and receive them (KEP-279; kubernetes
# plugin/pkg/admission/noderestriction).
POOL_LABEL = "node-restriction.kubernetes.io/kube-ha-elastic-apiserver"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
ELASTIC = "kube-ha-elastic-apiserver"
CONTROLLER_MANAGER = "kube-ha-controller-manager"
SCHEDULER = "kube-ha-scheduler"
SHUTDOWN_DELAY_S = 10  # haproxy takes a draining apiserver out in ~2 s; 10 s is ample
# The share of HTTP/2 requests after which the apiserver closes the connection (GOAWAY; the
# request itself is served, in-flight watches run on): the client's next requests reconnect
# through the LB, so clients that dial the endpoint (kubelets, node-local proxies, kubectl)
# move onto replicas the HPA adds. kube-apiserver's recommended start (min 0, max .02).
GOAWAY_CHANCE = "0.001"
TERMINATION_GRACE_S = 60

Manifest = dict[str, Any]


@dataclass(frozen=True)
class SecretSpec:
    """A Secret and the bootstrap-node files it is filled from (key -> path on the host).
    Kubeconfigs among them are re-pointed at the HA endpoint before they are stored."""

    name: str
    files: dict[str, str]
    kubeconfigs: tuple[str, ...] = ()


ELASTIC_SERVING = f"{ELASTIC}-serving"
ELASTIC_PKI = SecretSpec(f"{ELASTIC}-pki", {
    "ca.crt": f"{PKI}/ca.crt",
    "sa.pub": f"{PKI}/sa.pub",
    "sa.key": f"{PKI}/sa.key",
    "front-proxy-ca.crt": f"{PKI}/front-proxy-ca.crt",
    "front-proxy-client.crt": f"{PKI}/front-proxy-client.crt",
    "front-proxy-client.key": f"{PKI}/front-proxy-client.key",
    "apiserver-kubelet-client.crt": f"{PKI}/apiserver-kubelet-client.crt",
    "apiserver-kubelet-client.key": f"{PKI}/apiserver-kubelet-client.key",
    "etcd-ca.crt": f"{PKI}/etcd/ca.crt",
    "apiserver-etcd-client.crt": f"{PKI}/apiserver-etcd-client.crt",
    "apiserver-etcd-client.key": f"{PKI}/apiserver-etcd-client.key",
})
CONTROLLER_MANAGER_PKI = SecretSpec(f"{CONTROLLER_MANAGER}-pki", {
    "ca.crt": f"{PKI}/ca.crt",
    "ca.key": f"{PKI}/ca.key",
    "sa.key": f"{PKI}/sa.key",
    "front-proxy-ca.crt": f"{PKI}/front-proxy-ca.crt",
    "controller-manager.conf": f"{K8S}/controller-manager.conf",
}, kubeconfigs=("controller-manager.conf",))
SCHEDULER_PKI = SecretSpec(f"{SCHEDULER}-pki", {
    "scheduler.conf": f"{K8S}/scheduler.conf",
}, kubeconfigs=("scheduler.conf",))


def image(cluster: Cluster, component: str) -> str:
    """`repository/component:version`, and `@sha256:...` when its digest is configured: the
    runtime then pulls exactly that content, whatever the tag points at."""
    digest = cluster.image_digests.get(component)
    ref = f"{cluster.image_repository}/{component}:{cluster.kubernetes_version}"
    return f"{ref}@{digest}" if digest else ref


def _meta(name: str, labels: dict[str, str]) -> Manifest:
    return {"name": name, "namespace": NAMESPACE, "labels": labels}


def _labels(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "kube-ha",
            "tier": "control-plane"}


def _selector(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app}


def _probe(path: str, port: int, period: int, failures: int, delay: int = 0,
           host: str | None = None) -> Manifest:
    get: Manifest = {"path": path, "port": port, "scheme": "HTTPS"}
    if host:
        get["host"] = host
    probe: Manifest = {"httpGet": get,
                       "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": failures}
    if delay:
        probe["initialDelaySeconds"] = delay
    return probe


def _on_named_nodes(names: list[str]) -> Manifest:
    """Required node affinity on the Node's name: a field the kubelet cannot change."""
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": names}]}]}}


def _one_per_node(app: str) -> Manifest:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": _selector(app)},
        "topologyKey": "kubernetes.io/hostname",
    }]}}


# Control-plane nodes are tainted; these pods belong there as much as the static pods do.
_TOLERATIONS = [
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
]
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
_POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                 "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}}


def _secret_source(secret: str, items: dict[str, str]) -> Manifest:
    return {"secret": {"name": secret, "items": [{"key": k, "path": p} for k, p in items.items()]}}


# Flags whose value is each instance's own (its address, port, serving certificate,
# kubeconfig, the etcd it dials, how it drains): the in-cluster pods set theirs; every other
# flag is the static pod's (kube_ha.elastic.carry).
OWN_FLAGS = {
    "kube-apiserver": ("advertise-address", "bind-address", "secure-port", "etcd-servers",
                       "tls-cert-file", "tls-private-key-file", "endpoint-reconciler-type",
                       "shutdown-delay-duration", "goaway-chance"),
    "kube-controller-manager": ("kubeconfig", "authentication-kubeconfig",
                                "authorization-kubeconfig", "bind-address", "secure-port"),
}
OWN_FLAGS["kube-scheduler"] = OWN_FLAGS["kube-controller-manager"]


def _kubeadm_order(flags: list[str]) -> list[str]:
    # As kubeadm's ArgumentsToCommand writes a static pod's: by name, then value.
    return sorted(flags, key=lambda f: (split_flag(f)[0], split_flag(f)[1] or ""))


def elastic_apiserver_flags(cluster: Cluster) -> list[str]:
    """The kubeadm static pod's flags, with this pod's port and certificates: what the
    Deployment runs on a cluster kubeadm built with its defaults (`carry` reads the live one's)."""
    e = cluster.elastic_apiserver
    net = cluster.networking
    return ["kube-apiserver", *_kubeadm_order([
        "--advertise-address=$(HOST_IP)",
        "--bind-address=0.0.0.0",
        f"--secure-port={e.port}",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={PKI}/ca.crt",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        f"--etcd-cafile={PKI}/etcd/ca.crt",
        f"--etcd-certfile={PKI}/apiserver-etcd-client.crt",
        f"--etcd-keyfile={PKI}/apiserver-etcd-client.key",
        "--etcd-servers=" + ",".join(etcd_endpoints(cluster)),
        f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        f"--proxy-client-cert-file={PKI}/front-proxy-client.crt",
        f"--proxy-client-key-file={PKI}/front-proxy-client.key",
        "--requestheader-allowed-names=front-proxy-client",
        f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--service-account-issuer=https://kubernetes.default.svc.{net.cluster_domain}",
        f"--service-account-key-file={PKI}/sa.pub",
        f"--service-account-signing-key-file={PKI}/sa.key",
        f"--service-cluster-ip-range={net.service_subnet}",
        f"--tls-cert-file={PKI}/apiserver.crt",
        f"--tls-private-key-file={PKI}/apiserver.key",
        # Its port differs from the static pods': it must not rewrite the `kubernetes`
        # Service's endpoints (all of which share one port). Clients reach it via the LB.
        "--endpoint-reconciler-type=none",
        f"--shutdown-delay-duration={SHUTDOWN_DELAY_S}s",
        f"--goaway-chance={GOAWAY_CHANCE}",
    ])]


def _view(component: str, flags: list[str], spec: SecretSpec, pod_paths: dict[str, str]
          ) -> PodView:
    own = {n: v or "" for n, v in map(split_flag, flags) if n in OWN_FLAGS[component]}
    return PodView(component, own, {spec.files[k]: p for k, p in pod_paths.items()})


def elastic_apiserver_view(cluster: Cluster) -> PodView:
    return _view("kube-apiserver", elastic_apiserver_flags(cluster)[1:], ELASTIC_PKI,
                 {k: f"{PKI}/{p}" for k, p in _elastic_pki_items().items()})


def controller_manager_view(cluster: Cluster) -> PodView:
    return _view("kube-controller-manager", controller_manager_flags(cluster),
                 CONTROLLER_MANAGER_PKI, {k: f"{POD_CONFIG}/{k}" for k in CONTROLLER_MANAGER_PKI.files})


def scheduler_view(cluster: Cluster) -> PodView:
    return _view("kube-scheduler", scheduler_flags(cluster), SCHEDULER_PKI,
                 {k: f"{POD_CONFIG}/{k}" for k in SCHEDULER_PKI.files})


@dataclass(frozen=True)
class InClusterPod:
    """One in-cluster control-plane Deployment the stack asks for: the key that asks for it,
    what to call it in a message, how its pods see the host, the PKI Secret it mounts."""

    key: str
    what: str
    view: PodView
    pki: SecretSpec


def in_cluster_pods(cluster: Cluster) -> list[InClusterPod]:
    """The in-cluster control-plane Deployments this stack runs, always in this order (the
    first PKI read carries the alias of the single read earlier versions made)."""
    wanted = [
        (cluster.elastic_apiserver.enabled, "elasticApiserver.enabled",
         "elastic kube-apiservers", elastic_apiserver_view, ELASTIC_PKI),
        (cluster.controller_manager.replicas > 0, "controllerManager.replicas",
         "controller-manager Deployment", controller_manager_view, CONTROLLER_MANAGER_PKI),
        (cluster.scheduler.replicas > 0, "kubeScheduler.replicas", "scheduler Deployment",
         scheduler_view, SCHEDULER_PKI),
    ]
    return [InClusterPod(key, what, view(cluster), pki)
            for on, key, what, view, pki in wanted if on]


def carried_secret(name: str) -> str:
    """The Secret holding the files the static pod's flags name beyond the PKI copies."""
    return f"{name}-carried"


def _carried_volume(name: str) -> tuple[Manifest, Manifest]:
    return ({"name": "carried", "secret": {"secretName": carried_secret(name),
                                           "defaultMode": 0o440}},
            {"name": "carried", "mountPath": CARRIED_DIR, "readOnly": True})


def _elastic_pki_items() -> dict[str, str]:
    items = {k: k for k in ELASTIC_PKI.files}
    items["etcd-ca.crt"] = "etcd/ca.crt"
    return items


def elastic_apiserver_deployment(cluster: Cluster) -> Manifest:
    e = cluster.elastic_apiserver
    labels = _labels(ELASTIC)
    container = {
        "name": "kube-apiserver",
        "image": image(cluster, "kube-apiserver"),
        "command": elastic_apiserver_flags(cluster),
        "env": [{"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}],
        "ports": [{"name": "https", "containerPort": e.port, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": e.cpu_request, "memory": e.memory_request}},
        "startupProbe": _probe("/livez", e.port, 5, 24, delay=5),
        "livenessProbe": _probe("/livez", e.port, 10, 8),
        "readinessProbe": _probe("/readyz", e.port, 2, 3),
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": [{"name": "pki", "mountPath": PKI, "readOnly": True},
                         _carried_volume(ELASTIC)[1]],
    }
    pki_items = _elastic_pki_items()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(ELASTIC, labels),
        # No `replicas`: the HPA owns it (a value here would fight the HPA on every update).
        "spec": {
            "selector": {"matchLabels": _selector(ELASTIC)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "priorityClassName": "system-cluster-critical",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                    "nodeSelector": {POOL_LABEL: "true"},
                    "affinity": {
                        "nodeAffinity": _on_named_nodes(list(e.pool_nodes)),
                        **_one_per_node(ELASTIC),
                    },
                    # Its pool's workers are tainted for these pods alone (elastic.pool).
                    "tolerations": [*_TOLERATIONS, pool_toleration()],
                    "securityContext": _POD_SECURITY,
                    "containers": [container],
                    "volumes": [{"name": "pki", "projected": {"defaultMode": 0o440, "sources": [
                        _secret_source(ELASTIC_SERVING, {"tls.crt": "apiserver.crt",
                                                         "tls.key": "apiserver.key"}),
                        _secret_source(ELASTIC_PKI.name, pki_items),
                    ]}}, _carried_volume(ELASTIC)[0]],
                },
            },
        },
    }


def elastic_apiserver_hpa(cluster: Cluster) -> Manifest:
    e = cluster.elastic_apiserver
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(ELASTIC, _labels(ELASTIC)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": ELASTIC},
            "minReplicas": e.min_replicas,
            "maxReplicas": e.max_replicas,
            "metrics": [
                {"type": "Resource", "resource": {"name": name, "target": {
                    "type": "Utilization", "averageUtilization": percent}}}
                for name, percent in (("cpu", e.cpu_target_percent),
                                      ("memory", e.memory_target_percent)) if percent],
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": e.scale_down_stabilization_s,
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                "scaleUp": {"stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}]},
            },
        },
    }


def pdb(name: str) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name, _labels(name)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(name)}},
    }


def _leader_elected(cluster: Cluster, name: str, component: str, port: int, replicas: int,
                    flags: list[str], secret: SecretSpec, cpu: str) -> Manifest:
    labels = _labels(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": _selector(name)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "priorityClassName": "system-cluster-critical",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # They hold the CA key (controller-manager) or a privileged kubeconfig:
                    # control-plane nodes only, as the static pods.
                    "nodeSelector": {CONTROL_PLANE_LABEL: ""},
                    "affinity": {
                        "nodeAffinity": _on_named_nodes([h.name for h in cluster.control_plane]),
                        **_one_per_node(name),
                    },
                    "tolerations": _TOLERATIONS,
                    "securityContext": _POD_SECURITY,
                    "containers": [{
                        "name": component,
                        "image": image(cluster, component),
                        "command": [component, *flags],
                        "resources": {"requests": {"cpu": cpu, "memory": "128Mi"}},
                        "startupProbe": _probe("/healthz", port, 10, 24, delay=10,
                                               host="127.0.0.1"),
                        "livenessProbe": _probe("/healthz", port, 10, 8, host="127.0.0.1"),
                        "securityContext": _CONTAINER_SECURITY,
                        "volumeMounts": [{"name": "config", "mountPath": POD_CONFIG,
                                          "readOnly": True}, _carried_volume(name)[1]],
                    }],
                    "volumes": [{"name": "config", "secret": {"secretName": secret.name,
                                                              "defaultMode": 0o440}},
                                _carried_volume(name)[0]],
                },
            },
        },
    }


def controller_manager_flags(cluster: Cluster) -> list[str]:
    """kubeadm's static pod's flags (getControllerManagerCommand), with this pod's files."""
    cm = cluster.controller_manager
    conf = POD_CONFIG
    net = cluster.networking
    return _kubeadm_order([
        f"--kubeconfig={conf}/controller-manager.conf",
        f"--authentication-kubeconfig={conf}/controller-manager.conf",
        f"--authorization-kubeconfig={conf}/controller-manager.conf",
        "--bind-address=127.0.0.1",  # as kubeadm's static pod: health only, on loopback
        f"--secure-port={cm.port}",
        f"--client-ca-file={conf}/ca.crt",
        f"--cluster-name={cluster.name}",
        f"--cluster-signing-cert-file={conf}/ca.crt",
        f"--cluster-signing-key-file={conf}/ca.key",
        "--controllers=*,bootstrapsigner,tokencleaner",
        # Same lease as the static pods (kube-system/kube-controller-manager): one active.
        "--leader-elect=true",
        f"--requestheader-client-ca-file={conf}/front-proxy-ca.crt",
        f"--root-ca-file={conf}/ca.crt",
        f"--service-account-private-key-file={conf}/sa.key",
        "--use-service-account-credentials=true",
        "--allocate-node-cidrs=true",
        f"--cluster-cidr={net.pod_subnet}",
        f"--service-cluster-ip-range={net.service_subnet}",
    ])


def controller_manager_deployment(cluster: Cluster) -> Manifest:
    cm = cluster.controller_manager
    return _leader_elected(cluster, CONTROLLER_MANAGER, "kube-controller-manager", cm.port,
                           cm.replicas, controller_manager_flags(cluster),
                           CONTROLLER_MANAGER_PKI, "200m")


def scheduler_flags(cluster: Cluster) -> list[str]:
    """kubeadm's static pod's flags (getSchedulerCommand), with this pod's kubeconfig."""
    s = cluster.scheduler
    conf = f"{POD_CONFIG}/scheduler.conf"
    return _kubeadm_order([
        f"--kubeconfig={conf}",
        f"--authentication-kubeconfig={conf}",
        f"--authorization-kubeconfig={conf}",
        "--bind-address=127.0.0.1",
        f"--secure-port={s.port}",
        "--leader-elect=true",
    ])


def scheduler_deployment(cluster: Cluster) -> Manifest:
    s = cluster.scheduler
    return _leader_elected(cluster, SCHEDULER, "kube-scheduler", s.port, s.replicas,
                           scheduler_flags(cluster), SCHEDULER_PKI, "100m")


def secret_manifest(name: str, keys: list[str], secret_type: str = "Opaque") -> Manifest:
    """A Secret's shape with placeholder data, for the offline render and validation."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name, _labels(name)),
        "type": secret_type,
        "data": {k: "" for k in keys},
    }


def all_manifests(cluster: Cluster) -> dict[str, Manifest]:
    """File name -> manifest, for everything the program creates in the cluster."""
    out: dict[str, Manifest] = {}
    if cluster.elastic_apiserver.enabled:
        out["elastic-apiserver-deployment.yaml"] = elastic_apiserver_deployment(cluster)
        out["elastic-apiserver-hpa.yaml"] = elastic_apiserver_hpa(cluster)
        out["elastic-apiserver-pdb.yaml"] = pdb(ELASTIC)
        out["elastic-apiserver-serving-secret.yaml"] = secret_manifest(
            ELASTIC_SERVING, ["tls.crt", "tls.key"], "kubernetes.io/tls")
        out["elastic-apiserver-pki-secret.yaml"] = secret_manifest(ELASTIC_PKI.name,
                                                                   list(ELASTIC_PKI.files))
        out["elastic-apiserver-carried-secret.yaml"] = secret_manifest(carried_secret(ELASTIC), [])
    if cluster.controller_manager.replicas:
        out["controller-manager-deployment.yaml"] = controller_manager_deployment(cluster)
        out["controller-manager-pdb.yaml"] = pdb(CONTROLLER_MANAGER)
        out["controller-manager-secret.yaml"] = secret_manifest(
            CONTROLLER_MANAGER_PKI.name, list(CONTROLLER_MANAGER_PKI.files))
        out["controller-manager-carried-secret.yaml"] = secret_manifest(
            carried_secret(CONTROLLER_MANAGER), [])
    if cluster.scheduler.replicas:
        out["scheduler-deployment.yaml"] = scheduler_deployment(cluster)
        out["scheduler-pdb.yaml"] = pdb(SCHEDULER)
        out["scheduler-secret.yaml"] = secret_manifest(SCHEDULER_PKI.name,
                                                       list(SCHEDULER_PKI.files))
        out["scheduler-carried-secret.yaml"] = secret_manifest(carried_secret(SCHEDULER), [])
    return out


CHECKSUM_ANNOTATION = "kube-ha.io/mounted-content-sha256"
CARRIED_ANNOTATION = "kube-ha.io/carried-content-sha256"


def content_sha256(value: Any) -> str:
    """A stable digest of JSON-able content (keys sorted)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def with_pod_annotations(spec: Manifest, annotations: dict[str, Any]) -> Manifest:
    """A Deployment spec whose pod template carries `annotations` too (values may be Pulumi
    Outputs); a change rolls the pods."""
    template = spec["template"]
    metadata = {**template["metadata"],
                "annotations": {**template["metadata"].get("annotations", {}), **annotations}}
    return {**spec, "template": {**template, "metadata": metadata}}


def with_command(spec: Manifest, command: Any) -> Manifest:
    """A Deployment spec whose (single) container runs `command` (may be a Pulumi Output)."""
    pod = spec["template"]["spec"]
    container = {**pod["containers"][0], "command": command}
    return {**spec, "template": {**spec["template"], "spec": {**pod, "containers": [container]}}}


def kubeconfig_with_server(text: str, url: str) -> str:
    """Point every cluster of a kubeconfig at `url` (the HA endpoint)."""
    import yaml

    doc = yaml.safe_load(text)
    for entry in doc.get("clusters") or []:
        entry["cluster"]["server"] = url
    return str(yaml.safe_dump(doc, sort_keys=False))
