"""The top component: one membership list in, every layer out."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components import dependency_check
from components.certificates import ClusterCertificates
from components.cluster_access import COPIES_OUTPUT, IDENTIFIER_OUTPUT, ClusterAccess
from components.config import MEMBERSHIP_OUTPUT
from components.elastic_apiserver import ElasticApiserver
from components.elastic_paths import ElasticPaths
from components.kubeadm import ControlPlane, Workers
from components.leader_elected import controller_manager, scheduler
from components.loadbalancer import LoadBalancer, node_local_proxy
from components.preflight import Preflight
from components.remote import Ssh
from kube_ha.elastic.manifests import in_cluster_pods
from kube_ha.endpoint_switch import apiserver_service
from kube_ha.membership import SinceLastRun, membership_record
from kube_ha.model import Cluster
from kube_ha.topology import all_sans, backend_registrations


class HaCluster(pulumi.ComponentResource):
    """The whole program: preflight, PKI, the load balancer, the control plane and workers,
    access to the cluster, and the elastic control plane, wired from one `Cluster`."""

    def __init__(self, name: str, cluster: Cluster, ssh_private_key: pulumi.Output[str],
                 last: SinceLastRun, opts: pulumi.ResourceOptions | None = None):
        super().__init__("kube-ha:index:HaCluster", name, None, opts)
        # Linear cycle checks: every worker step is downstream of every host's preflight.
        dependency_check.install()
        child = pulumi.ResourceOptions(parent=self)
        ssh = Ssh(ssh_private_key)
        self.preflight = Preflight(f"{name}-preflight", cluster, ssh, opts=child)
        checked = self.preflight.steps
        self.certificates = ClusterCertificates(f"{name}-pki", cluster, ssh, opts=child)
        self.load_balancer = LoadBalancer(
            f"{name}-lb", cluster, ssh, self.certificates.ca_cert_pem,
            self.certificates.health_client_pem, opts=child, checked=checked)
        self.control_plane = ControlPlane(
            f"{name}-kubeadm", cluster, ssh, self.certificates,
            endpoint_ready=list(self.load_balancer.configured), opts=child, checked=checked,
            departed=tuple(h for role, h in last.departed if role == "controlPlane"))
        self.workers = Workers(
            f"{name}-workers", cluster, ssh, self.control_plane,
            node_local_proxy(cluster, self.certificates.ca_cert_pem,
                             self.certificates.health_client_pem),
            opts=child, departed=tuple(h for role, h in last.departed if role != "controlPlane"),
            pool=last.pool)
        self.control_plane.after_joins(self.workers.joins)
        self.access = ClusterAccess(
            f"{name}-access", cluster, ssh, after=self.control_plane.last_control_plane_step,
            secrets=[p.pki for p in in_cluster_pods(cluster)],
            static_pods=[p.view.component for p in in_cluster_pods(cluster)], opts=child)
        self.kubeconfig = self.access.kubeconfig
        if cluster.endpoint.service:
            # The Service the nodes' switchers move to once it answers (kube_ha.endpoint_switch).
            svc = apiserver_service(cluster)
            k8s.core.v1.Service(f"{name}-apiserver-service", metadata=svc["metadata"],
                                spec=svc["spec"], opts=pulumi.ResourceOptions(
                                    parent=self, provider=self.access.provider))
        issued = {f"apiserver-{n}": c for n, c in self.certificates.apiserver.items()}
        issued["lb-health-check"] = self.certificates.health
        paths = ElasticPaths(f"{name}-elastic-paths", cluster, ssh, last.firewalled, checked,
                             opts=child) if last.firewalled else None
        if cluster.elastic_apiserver.enabled:
            ready = [*([self.workers.pool] if self.workers.pool else []),
                     *(paths.checked if paths else [])]
            elastic = ElasticApiserver(f"{name}-elastic-apiserver", cluster, self.access,
                                       self.certificates, self.workers.join_of, ready,
                                       opts=child)
            issued["elastic-apiserver"] = elastic.serving
        # When each certificate this program issued expires (RFC 3339), for dashboards and the
        # policy pack's certificate-expiry check.
        self.certificate_expiry: pulumi.Output[dict[str, str]] = pulumi.Output.all(
            **{k: c.expires for k, c in issued.items()})  # type: ignore[arg-type]
        if cluster.controller_manager.replicas:
            controller_manager(f"{name}-controller-manager", cluster, self.access, child)
        if cluster.scheduler.replicas:
            scheduler(f"{name}-scheduler", cluster, self.access, child)
        # Stack outputs the next run reads back: the copies' expiry and read generation (when
        # to re-read), the provider's identity (kept across endpoint and name changes), and
        # what was deployed by address (renames and role moves are refused against it).
        self.recorded: dict[str, object] = {
            COPIES_OUTPUT: self.access.copies,
            IDENTIFIER_OUTPUT: self.access.cluster_identifier,
            MEMBERSHIP_OUTPUT: _once_done(membership_record(cluster), [
                *self.control_plane.retired, *self.workers.retired,
                *([self.workers.pool] if self.workers.pool else []),
                *(paths.checked if paths else [])]),
        }
        self.endpoint = cluster.endpoint.url
        self.backends = backend_registrations(cluster)
        self.sans = all_sans(cluster)
        self.register_outputs({"endpoint": self.endpoint, "sans": self.sans})


def _once_done(record: dict[str, object], steps: list[pulumi.Resource]) -> object:
    """The record, known only once every departed node's retire step, the pool step and the
    firewall steps are done: a failed `up` leaves the last record in place (the engine keeps
    outputs that did not resolve, pulumi#15754), so the next run still sees those nodes as
    departed and retires them, and still untaints a worker that left the pool or closes what
    it opened."""
    ids = [s.id for s in steps if isinstance(s, pulumi.CustomResource)]
    if not ids:
        return record
    return pulumi.Output.all(*ids).apply(lambda _: record)


