"""Extra kube-apiservers as a Deployment + HPA, reachable through the LB with no new `pulumi up`.

The LB already lists every pool node on the elastic port (topology.lb_backends): a node with
no pod fails its check and gets nothing; when the HPA adds a pod, its node turns UP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from components.certificates import SERVER_USES, ClusterCertificates, IssuedCert
from components.cluster_access import ClusterAccess
from kube_ha.elastic import metrics_server
from kube_ha.elastic.manifests import (
    CHECKSUM_ANNOTATION,
    ELASTIC,
    ELASTIC_PKI,
    ELASTIC_SERVING,
    POOL_LABEL,
    elastic_apiserver_deployment,
    elastic_apiserver_hpa,
    elastic_apiserver_view,
    pdb,
    secret_manifest,
    with_pod_annotations,
)
from kube_ha.model import Cluster
from kube_ha.topology import elastic_apiserver_sans


class ElasticApiserver(pulumi.ComponentResource):
    """Extra kube-apiservers behind the endpoint: a Deployment on the pool nodes (labelled
    here once each joined; `ready`: its workers tainted, the paths it needs opened and
    checked), scaled by an HPA, with its serving certificate and the node-copied keys as
    Secrets.

    `joined`: each worker's join step (control-plane nodes joined before `access`)."""

    def __init__(self, name: str, cluster: Cluster, access: ClusterAccess,
                 certs: ClusterCertificates, joined: Mapping[str, pulumi.Resource],
                 ready: Sequence[pulumi.Resource], opts: pulumi.ResourceOptions | None = None):
        super().__init__("kube-ha:k8s:ElasticApiserver", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=access.provider)
        e = cluster.elastic_apiserver

        labels = [
            k8s.core.v1.NodePatch(
                f"{name}-pool-{node}",
                metadata={"name": node, "labels": {POOL_LABEL: "true"}},
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(
                    depends_on=[joined[node]] if node in joined else [])))
            for node in e.pool_nodes
        ]
        self.serving = serving = IssuedCert(f"{name}-serving", "kube-apiserver", elastic_apiserver_sans(cluster),
                             SERVER_USES, certs.ca_cert_pem, certs.ca_key_pem, cluster,
                             opts=pulumi.ResourceOptions(parent=self))
        shape = secret_manifest(ELASTIC_SERVING, [], "kubernetes.io/tls")
        serving_secret = k8s.core.v1.Secret(
            f"{name}-serving-secret", metadata=shape["metadata"], type=shape["type"],
            string_data=cast(Any, {"tls.crt": serving.cert_pem, "tls.key": serving.key_pem}),
            opts=k8s_opts)
        pki_secret = access.secret(f"{name}-pki-secret", ELASTIC_PKI, k8s_opts)

        dep = elastic_apiserver_deployment(cluster)
        carried, carried_secret = access.carry_into(
            f"{name}-carried-secret", ELASTIC, elastic_apiserver_view(cluster), dep["spec"],
            k8s_opts)
        spec: Any = with_pod_annotations(carried, {
            # Not the serving pair: kube-apiserver reloads that from disk by itself, so a SAN
            # change rolls no pod.
            CHECKSUM_ANNOTATION: access.checksum(ELASTIC_PKI)})
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=dep["metadata"], spec=spec,
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(
                depends_on=[serving_secret, pki_secret, carried_secret, *labels, *ready])))
        # Upstream's release, pinned for this Kubernetes minor, when the stack asks for it
        # (the preflight refused another owner's metrics API); the HPA follows it.
        metrics: list[pulumi.Resource] = []
        if e.install_metrics_server:
            version = metrics_server.release_for(cluster.minor_version)
            assert version, "refused by parse_cluster"
            metrics.append(k8s.yaml.v2.ConfigFile(
                f"{name}-metrics-server", file=metrics_server.release_url(version),
                opts=k8s_opts))
        hpa = elastic_apiserver_hpa(cluster)
        # The Deployment's name as an output: the HPA waits for the Deployment it scales.
        target: dict[str, Any] = {**hpa["spec"]["scaleTargetRef"],
                                  "name": self.deployment.metadata.name}
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa", metadata=hpa["metadata"],
            spec=cast(Any, {**hpa["spec"], "scaleTargetRef": target}),
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(
                depends_on=metrics)))
        budget = pdb(ELASTIC)
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=budget["metadata"],
                                          spec=budget["spec"], opts=k8s_opts)
        self.register_outputs({})

