"""The top component: one membership list in, every layer out."""

from __future__ import annotations

import pulumi

from components.certificates import ClusterCertificates
from components.kubeadm import ControlPlane
from components.loadbalancer import LoadBalancer
from components.model import Cluster
from components.remote import Ssh
from components.topology import all_sans


class HaCluster(pulumi.ComponentResource):
    def __init__(self, name: str, cluster: Cluster, ssh_private_key: pulumi.Output[str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("kube-ha:index:HaCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ssh = Ssh(ssh_private_key)
        self.certificates = ClusterCertificates(f"{name}-pki", cluster, ssh, opts=child)
        self.load_balancer = LoadBalancer(
            f"{name}-lb", cluster, ssh, self.certificates.ca_cert_pem,
            self.certificates.health_client_pem, opts=child)
        self.control_plane = ControlPlane(
            f"{name}-kubeadm", cluster, ssh, self.certificates,
            endpoint_ready=list(self.load_balancer.configured), opts=child)
        self.endpoint = cluster.endpoint.url
        self.sans = all_sans(cluster)
        self.register_outputs({"endpoint": self.endpoint, "sans": self.sans})
