"""Everything derived from the membership list: SANs, LB backends, join order. Pure."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from kube_ha.model import Cluster, Host, host_port, kubernetes_service_address


@dataclass(frozen=True)
class SanSet:
    """Subject alternative names of an apiserver serving certificate."""

    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {"dnsNames": list(self.dns_names), "ipAddresses": list(self.ip_addresses)}


@dataclass(frozen=True)
class Backend:
    """One haproxy server line: a place an apiserver may listen."""

    name: str
    address: str
    port: int
    elastic: bool = False
    # The name its health check asks for (SNI) and verifies in the served certificate.
    check_name: str | None = None


def kubernetes_service_ip(cluster: Cluster) -> str:
    """The `kubernetes` Service's ClusterIP (model.kubernetes_service_address)."""
    return str(kubernetes_service_address(cluster.networking.service_subnet))


def service_dns_names(cluster: Cluster) -> list[str]:
    return [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{cluster.networking.cluster_domain}",
    ]


def shared_sans(cluster: Cluster) -> tuple[list[str], list[str]]:
    """Names every apiserver must answer to, whichever node it runs on."""
    dns: list[str] = service_dns_names(cluster)
    ips: list[str] = [kubernetes_service_ip(cluster), str(cluster.endpoint.address)]
    if cluster.endpoint.dns_name:
        dns.append(cluster.endpoint.dns_name)
    ips += [str(lb.address) for lb in cluster.load_balancers]
    if cluster.node_local_proxy:
        dns.append("localhost")
        ips += ["127.0.0.1", "::1"]
    for extra in cluster.certificates.extra_sans:
        try:
            ips.append(str(ipaddress.ip_address(extra)))
        except ValueError:
            dns.append(extra.lower())
    return dns, ips


def apiserver_sans(cluster: Cluster, node: Host) -> SanSet:
    """SANs of `node`'s serving certificate: the shared set plus the node's own name and address."""
    dns, ips = shared_sans(cluster)
    return SanSet(_unique([*dns, node.name]), _unique([*ips, str(node.address)]))


# Reserved: never resolves, never a real name (RFC 2606).
MARKER_DOMAIN = "kube-ha.invalid"


def elastic_apiserver_sans(cluster: Cluster) -> SanSet:
    """One certificate serves every elastic apiserver pod, so it names every pool node, and
    the marker name that stands for the names clients dial (elastic_san_marker)."""
    dns, ips = shared_sans(cluster)
    pool = [cluster.node(n) for n in cluster.elastic_apiserver.pool_nodes]
    return SanSet(_unique([*dns, *(h.name for h in pool), elastic_san_marker(cluster)]),
                  _unique(ips + [str(h.address) for h in pool]))


def elastic_san_marker(cluster: Cluster) -> str:
    """A DNS name only a certificate issued for the names clients dial (shared_sans) carries.
    The LBs' and node-local proxies' checks of the elastic servers verify it: those pods get
    their re-issued certificate from a Secret after every host was re-pointed (the Kubernetes
    provider needs the cluster first), so until a pod serves one that names a new address
    (a VIP, 127.0.0.1, an extra SAN) it stays DOWN and no client that dials that address
    reaches it. haproxy's `verifyhost` checks DNS names only, hence a name for the set. The
    pool nodes' own names are left out: nobody dials them through a proxy, so a pool change
    takes no pod out of rotation."""
    dns, ips = shared_sans(cluster)
    digest = hashlib.sha256("\n".join([*dns, "", *ips]).encode()).hexdigest()[:16]
    return f"sans-{digest}.{MARKER_DOMAIN}"


def all_sans(cluster: Cluster) -> dict[str, dict[str, list[str]]]:
    """Per-node SAN sets, as the offline render's sans.json shows them."""
    out = {node.name: apiserver_sans(cluster, node).as_dict() for node in cluster.control_plane}
    if cluster.elastic_apiserver.enabled:
        out["elastic-apiserver"] = elastic_apiserver_sans(cluster).as_dict()
    return out


def lb_backends(cluster: Cluster) -> list[Backend]:
    """Every place an apiserver may answer: each control-plane node, then each elastic pool node.

    Pool nodes are listed whether or not a pod runs there: the health check keeps an empty one
    DOWN, so the HPA can add pods without another `pulumi up`.
    """
    backends = [Backend(h.name, str(h.address), cluster.apiserver_port) for h in cluster.control_plane]
    e = cluster.elastic_apiserver
    if e.enabled:
        marker = elastic_san_marker(cluster)
        backends += [
            Backend(f"elastic-{n}", str(cluster.node(n).address), e.port, elastic=True,
                    check_name=marker)
            for n in e.pool_nodes
        ]
    return backends


def etcd_endpoints(cluster: Cluster) -> list[str]:
    return [f"https://{host_port(h.address, 2379)}" for h in cluster.control_plane]


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def backend_registrations(cluster: Cluster) -> list[dict[str, object]]:
    """What a load balancer in front of the apiservers must list (the stack output
    loadBalancerBackends; with your own LB, what to register): each backend's address and
    port, TCP passthrough, checked with HTTPS GET /readyz for the name it serves."""
    ep = cluster.endpoint
    return [{"name": b.name, "address": b.address, "port": b.port, "check": "GET /readyz",
             "serverName": b.check_name or ep.dns_name or str(ep.address)}
            for b in lb_backends(cluster)]
