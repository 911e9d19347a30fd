"""The apiserver load balancer: haproxy on each LB host, configured over SSH."""

from __future__ import annotations

import functools

import pulumi

from components.remote import Ssh, run_script
from kube_ha.loadbalancer.haproxy import NODE_LOCAL_HEALTH, node_local_frontend, render_haproxy_cfg
from kube_ha.loadbalancer.scripts import configure_script, install_script
from kube_ha.model import Cluster, Host

# (install, configure) scripts of a worker's node-local proxy.
ProxyScripts = tuple[str, str]


def _configure(cluster: Cluster, cfg: str, host: Host, pems: list[str]) -> str:
    return configure_script(cluster, cfg, pems[0], pems[1],
                            vip_host=host if cluster.uses_vip else None)


class LoadBalancer(pulumi.ComponentResource):
    """Per LB host: an install step (rarely changes) and a configure step that carries the CA,
    the health-check client certificate, haproxy.cfg and, for a virtual-IP endpoint, that
    host's keepalived.conf. Editing the membership list changes only the configure step's
    script, which re-runs in place and reloads haproxy seamlessly."""

    def __init__(
        self,
        name: str,
        cluster: Cluster,
        ssh: Ssh,
        ca_cert_pem: pulumi.Input[str],
        health_client_pem: pulumi.Input[str] | None,
        opts: pulumi.ResourceOptions | None = None,
        checked: list[pulumi.Resource] | None = None,
    ):
        super().__init__("kube-ha:lb:LoadBalancer", name, None, opts)
        self.haproxy_cfg = cfg = render_haproxy_cfg(cluster)
        self.configured: list[pulumi.Resource] = []
        for host in cluster.load_balancers:
            script = pulumi.Output.all(ca_cert_pem, health_client_pem).apply(
                functools.partial(_configure, cluster, cfg, host))
            install = run_script(f"{name}-{host.name}-install", host, ssh, install_script(cluster),
                                 parent=self, depends_on=checked or [])
            self.configured.append(run_script(
                f"{name}-{host.name}-configure", host, ssh, script, parent=self,
                secret=health_client_pem is not None, depends_on=[install],
            ))
        self.register_outputs({"haproxyCfg": cfg})


def node_local_proxy(cluster: Cluster, ca_cert_pem: pulumi.Input[str],
                     health_client_pem: pulumi.Input[str]) -> pulumi.Output[ProxyScripts] | None:
    """A worker's own haproxy on 127.0.0.1 (`nodeLocalProxy`): the LB's backends, gentler checks.
    No step of its own: the scripts run first in each worker's join step (the `Workers`
    component), so the proxy answers before the kubelet is pointed at it. Rendered once, the
    same on every worker."""
    if not cluster.node_local_proxy:
        return None
    cfg = render_haproxy_cfg(cluster, frontend=node_local_frontend(cluster))
    install = install_script(cluster, node_local=True)
    return pulumi.Output.all(ca_cert_pem, health_client_pem).apply(
        lambda pems: (install, configure_script(cluster, cfg, pems[0], pems[1],
                                                health=NODE_LOCAL_HEALTH)))
