"""kubeadm's own configuration documents: InitConfiguration + ClusterConfiguration for a new
cluster, JoinConfiguration for each join (token, CA hash and certificate key off argv)."""

from __future__ import annotations

import json

from kube_ha.model import Cluster, Host
from kube_ha.topology import shared_sans

# Every bootstrap token this program makes carries this description: the revoke step deletes
# exactly these (and kubeadm's TTL proxy for the uploaded certificates), never anyone else's.
JOIN_TOKEN_DESCRIPTION = "kube-ha join"


def yaml_str(text: str) -> str:
    """A value for a YAML line: as is, or JSON-quoted when YAML would read it as something else
    (`[fd00::10]:6443` is a flow sequence). Plain when it can be, as kubeadm writes it."""
    return json.dumps(text) if text[:1] in "[{&*!|>'\"%@`#" or ": " in text else text


def api_version(cluster: Cluster) -> str:
    # v1beta4 arrived with kubeadm 1.31; v1beta3 still works before that.
    return "kubeadm.k8s.io/v1beta4" if cluster.minor_version >= (1, 31) else "kubeadm.k8s.io/v1beta3"


def cert_sans_items(cluster: Cluster) -> list[str]:
    """ClusterConfiguration.apiServer.certSANs, each a JSON-quoted YAML item: the names every
    apiserver shares. Never a node's own name or address: kubeadm checks each joining node's
    pre-placed apiserver.crt against certSANs plus that node's own names
    (pkiutil.GetAPIServerAltNames; kubernetes#84644), so one node's name here would fail
    every other join."""
    dns, ips = shared_sans(cluster)
    return [json.dumps(s) for s in dict.fromkeys((*dns, *ips))]


def kubeadm_config(cluster: Cluster) -> str:
    """InitConfiguration + ClusterConfiguration for `kubeadm init` of a new cluster."""
    node = cluster.bootstrap
    # init's own token (unprinted: --skip-token-print) carries our description and 1 h, not
    # kubeadm's anonymous 24 h one, so the revoke step deletes it with the others.
    cert_sans = "\n".join(f"  - {s}" for s in cert_sans_items(cluster))
    api = api_version(cluster)
    return f"""\
apiVersion: {api}
kind: InitConfiguration
bootstrapTokens:
- description: {JOIN_TOKEN_DESCRIPTION}
  ttl: 1h0m0s
localAPIEndpoint:
  advertiseAddress: {node.address}
  bindPort: {cluster.apiserver_port}
nodeRegistration:
  name: {node.name}
---
apiVersion: {api}
kind: ClusterConfiguration
clusterName: {cluster.name}
kubernetesVersion: {cluster.kubernetes_version}
imageRepository: {cluster.image_repository}
controlPlaneEndpoint: {yaml_str(cluster.endpoint.host_port)}
networking:
  serviceSubnet: {cluster.networking.service_subnet}
  podSubnet: {cluster.networking.pod_subnet}
  dnsDomain: {cluster.networking.cluster_domain}
apiServer:
  certSANs:
{cert_sans}
"""


def join_configuration(cluster: Cluster, node: Host, creds: dict[str, str],
                       control_plane: bool) -> str:
    """A JoinConfiguration: token, CA hash and certificate key stay out of kubeadm's argv."""
    api = api_version(cluster)
    doc = f"""\
apiVersion: {api}
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: {yaml_str(cluster.endpoint.host_port)}
    token: {creds['token']}
    caCertHashes:
    - {creds['caCertHash']}
nodeRegistration:
  name: {node.name}
"""
    if control_plane:
        doc += f"""\
controlPlane:
  certificateKey: {creds['certificateKey']}
  localAPIEndpoint:
    advertiseAddress: {node.address}
    bindPort: {cluster.apiserver_port}
"""
    return doc
