"""The stack's topology as a picture (the offline render's topology.dot and topology.svg), from
the same membership list as everything else. Pure; drawn with the graphviz package, laid out
by Graphviz's `dot`.

It shows each hop a client takes to an apiserver: the endpoint (one LB host, or a VIP moved
by keepalived between the LB hosts), the node-local proxies when there are any, and every
backend with its address and port. Each hop's edge says the names clients dial on it and
whether every certificate served behind it names them (the policy pack's
names-covered-on-each-hop checks the same on what the program registers).
"""

from __future__ import annotations

import ipaddress

import graphviz

from kube_ha.model import Cluster
from kube_ha.topology import SanSet, apiserver_sans, elastic_apiserver_sans, lb_backends


def dialled_names(cluster: Cluster) -> dict[str, list[str]]:
    """Hop -> the names clients dial on it: the endpoint (its DNS name and address), and
    127.0.0.1 on the node-local proxies."""
    ep = cluster.endpoint
    hops = {"endpoint": [*([ep.dns_name] if ep.dns_name else []), str(ep.address)]}
    if cluster.node_local_proxy:
        hops["node-local proxy"] = ["127.0.0.1"]
    return hops


def missing(names: list[str], sans: SanSet) -> list[str]:
    """The names a certificate with `sans` does not cover (IPs compared as addresses)."""
    ips = {ipaddress.ip_address(a) for a in sans.ip_addresses}
    dns = {d.lower() for d in sans.dns_names}

    def covered(name: str) -> bool:
        try:
            return ipaddress.ip_address(name) in ips
        except ValueError:
            return name.lower() in dns

    return [n for n in names if not covered(n)]


def served_certificates(cluster: Cluster) -> dict[str, SanSet]:
    """Each certificate served behind the endpoint, by what serves it."""
    out = {h.name: apiserver_sans(cluster, h) for h in cluster.control_plane}
    if cluster.elastic_apiserver.enabled:
        out["elastic apiservers"] = elastic_apiserver_sans(cluster)
    return out


def _coverage(names: list[str], certs: dict[str, SanSet]) -> str:
    gaps = [f"{who} lacks {', '.join(m)}" for who, sans in certs.items() if (m := missing(names, sans))]
    return "; ".join(gaps) if gaps else "every served certificate names them"


def topology(cluster: Cluster) -> graphviz.Digraph:
    ep = cluster.endpoint
    g = graphviz.Digraph("kube_ha", graph_attr={"rankdir": "LR", "label": f"kube-ha: {cluster.name}",
                                                "labelloc": "t", "fontname": "Helvetica"},
                         node_attr={"shape": "box", "style": "rounded", "fontname": "Helvetica"},
                         edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    certs = served_certificates(cluster)
    hops = dialled_names(cluster)
    # With the Service, the program's provider dials the bootstrap node (Cluster.access_url).
    g.node("clients", "clients\n(kubectl, kubeadm joins"
           + ("" if ep.service else ", the program's provider")
           + ("" if cluster.node_local_proxy else ", kubelets, kube-proxy") + ")")
    lbs = ", ".join(f"{lb.name} {lb.address}" for lb in cluster.load_balancers)
    if ep.service:
        endpoint = (f"Service kube-system/apiserver\nClusterIP {ep.address}:{ep.port}\n"
                    "nodes: /etc/hosts switched to a control-plane node until it answers")
    elif ep.external:
        endpoint = f"your own load balancer\n{ep.address}:{ep.port}, TCP passthrough"
    elif cluster.uses_vip:
        endpoint = f"VIP {ep.address}:{ep.port}\nkeepalived + haproxy on {lbs}"
    else:
        endpoint = f"haproxy {ep.address}:{ep.port}\non {lbs}"
    g.node("endpoint", f"endpoint {ep.host_port}\n{endpoint}", shape="box3d")
    label = f"dial {', '.join(hops['endpoint'])}\n{_coverage(hops['endpoint'], certs)}"
    g.edge("clients", "endpoint", label=label)
    for b in lb_backends(cluster):
        name = f"backend {b.name}"
        what = "elastic apiserver (pool node, Deployment + HPA)" if b.elastic else "kube-apiserver"
        g.node(name, f"{b.name}\n{b.address}:{b.port}\n{what}",
               **({"style": "rounded,dashed"} if b.elastic else {}))
        # What the health check verifies (haproxy's verifyhost): an IP cannot be.
        checked = b.check_name or ep.dns_name
        label = ("an endpoint while its mirror pod is ready" if ep.service
                 else f"/readyz{', verifying ' + checked if checked else ''}")
        g.edge("endpoint", name, label=label)
    if cluster.node_local_proxy:
        g.node("node-local", f"node-local haproxy on each worker\n127.0.0.1:{cluster.apiserver_port}")
        g.node("kubelets", "kubelets and kube-proxy\non the workers")
        local = hops["node-local proxy"]
        g.edge("kubelets", "node-local", label=f"dial {', '.join(local)}\n{_coverage(local, certs)}")
        for b in lb_backends(cluster):
            g.edge("node-local", f"backend {b.name}", style="dotted")
    return g


def topology_dot(cluster: Cluster) -> str:
    return str(topology(cluster).source)


def topology_svg(cluster: Cluster) -> str:
    """Laid out by Graphviz's `dot` (graphviz.ExecutableNotFound without it)."""
    return topology(cluster).pipe(format="svg", encoding="utf-8")
