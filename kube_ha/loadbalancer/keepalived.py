"""keepalived for a virtual-IP endpoint: the VIP lives on an LB host whose haproxy answers. Pure.

Every host starts BACKUP with `nopreempt` (a recovered host does not pull the VIP back: one move
per failure, not two); priorities follow the `loadBalancers` order. VRRP adverts go unicast to
the listed peers, which works where multicast does not (most clouds); `check_unicast_src` makes
keepalived drop adverts whose source is not a listed peer (without it, any host that can reach
the LBs with IP protocol 112 takes the VIP: unicast alone does not filter senders), and
firewalld admits VRRP from the peers only. A host whose check fails two seconds running enters
FAULT and gives the VIP up at once.
"""

from __future__ import annotations

from kube_ha.model import Cluster, Host
from kube_ha.paths import KEEPALIVED_CHECK, KEEPALIVED_CONF
from kube_ha.shell import script, tcp_probe

CHECK_SCRIPT = KEEPALIVED_CHECK
CONF = KEEPALIVED_CONF


def check_script(cluster: Cluster) -> str:
    """Healthy = the local haproxy accepts connections on the endpoint port."""
    return script(
        "vrrp-check",
        f"exec {tcp_probe(cluster.endpoint.port)}",
    )


def render_keepalived_conf(cluster: Cluster, host: Host, check_path: str = CHECK_SCRIPT) -> str:
    lb = cluster.load_balancer
    index = cluster.load_balancers.index(host)
    peers = "\n".join(f"        {p.address}" for p in cluster.load_balancers if p != host)
    prefix = 32 if cluster.endpoint.address.version == 4 else 128
    return f"""\
# kube-ha: moves the apiserver endpoint {cluster.endpoint.address} to a healthy LB host.
# Rendered from stack config for {host.name}; `pulumi up` rewrites it.
global_defs {{
    router_id kube-ha-{host.name}
    enable_script_security
    script_user root
}}

vrrp_script kube_ha_haproxy {{
    script "{check_path}"
    interval 1
    timeout 1
    fall 2
    rise 2
}}

vrrp_instance kube_ha_apiserver {{
    state BACKUP
    nopreempt
    interface {lb.vrrp_interface}
    virtual_router_id {lb.virtual_router_id}
    priority {max(1, 150 - 10 * index)}
    advert_int 1
    unicast_src_ip {host.address}
    check_unicast_src
    unicast_peer {{
{peers}
    }}
    virtual_ipaddress {{
        {cluster.endpoint.address}/{prefix} dev {lb.vrrp_interface}
    }}
    track_script {{
        kube_ha_haproxy
    }}
}}
"""
