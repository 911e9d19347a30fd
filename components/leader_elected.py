"""kube-controller-manager (and optionally kube-scheduler) as leader-elected Deployments.

They share the static pods' leases, so exactly one instance is active cluster-wide; they add
recovery by rescheduling, not capacity. The static pods stay: a Deployment cannot be created
while the only controller-manager is down (the seed's own caveat).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster_access import ClusterAccess
from kube_ha.elastic.carry import PodView
from kube_ha.elastic.manifests import (
    CHECKSUM_ANNOTATION,
    CONTROLLER_MANAGER,
    CONTROLLER_MANAGER_PKI,
    SCHEDULER,
    SCHEDULER_PKI,
    Manifest,
    SecretSpec,
    controller_manager_deployment,
    controller_manager_view,
    pdb,
    scheduler_deployment,
    scheduler_view,
    with_pod_annotations,
)
from kube_ha.model import Cluster


class LeaderElected(pulumi.ComponentResource):
    """A Deployment that joins a static pod's leader election, its Secret and its PDB."""

    def __init__(self, name: str, access: ClusterAccess,
                 deployment: Manifest, secret: SecretSpec, app: str, view: PodView,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("kube-ha:k8s:LeaderElected", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=access.provider)
        stored = access.secret(f"{name}-secret", secret, k8s_opts)
        carried, carried_secret = access.carry_into(f"{name}-carried-secret", app, view,
                                                    deployment["spec"], k8s_opts)
        spec: Any = with_pod_annotations(carried, {CHECKSUM_ANNOTATION: access.checksum(secret)})
        k8s.apps.v1.Deployment(f"{name}-deployment", metadata=deployment["metadata"],
                               spec=spec,
                               opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(
                                   depends_on=[stored, carried_secret])))
        budget = pdb(app)
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=budget["metadata"],
                                          spec=budget["spec"], opts=k8s_opts)
        self.register_outputs({})


def controller_manager(name: str, cluster: Cluster, access: ClusterAccess,
                       opts: pulumi.ResourceOptions) -> LeaderElected:
    return LeaderElected(name, access, controller_manager_deployment(cluster),
                         CONTROLLER_MANAGER_PKI, CONTROLLER_MANAGER,
                         controller_manager_view(cluster), opts)


def scheduler(name: str, cluster: Cluster, access: ClusterAccess,
              opts: pulumi.ResourceOptions) -> LeaderElected:
    return LeaderElected(name, access, scheduler_deployment(cluster), SCHEDULER_PKI,
                         SCHEDULER, scheduler_view(cluster), opts)
