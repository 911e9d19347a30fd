"""keepalived for a virtual-IP endpoint: the VIP lives on an LB host whose haproxy answers. Pure.

Every host starts BACKUP with `nopreempt` (a recovered host does not pull the VIP back: one move
per failure, not two); priorities follow the `loadBalancers` order. VRRP adverts go unicast to
the listed peers, which works where multicast does not (most clouds); `check_unicast_src` makes
keepalived drop adverts whose source is not a listed peer (without it, any host that can reach
the LBs with IP protocol 112 takes the VIP: unicast alone does not filter senders), and
firewalld admits VRRP from the peers only. A host whose check fails two seconds running enters
FAULT and gives the VIP up at once. VRRP runs on `loadBalancer.vrrpInterface`, or by default on
the interface that holds the host's own address, which only the host knows: the rendered file
says DETECTED there and the configure step fills it in (`detect_interface`).
"""

from __future__ import annotations

from kube_ha.model import Cluster, Host
from kube_ha.paths import KEEPALIVED_CHECK, KEEPALIVED_CONF
from kube_ha.shell import quote, script, tcp_probe

CHECK_SCRIPT = KEEPALIVED_CHECK
CONF = KEEPALIVED_CONF
DETECTED = "@KUBE_HA_VRRP_INTERFACE@"


def find_interface(host: Host) -> str:
    """Shell: `$vrrp_iface` := the interface holding `host.address` (`ip -o addr show to`
    prints `<index>: <name> inet <address>/<length> ...`; empty when none does), and
    `$live_iface` := the one the keepalived.conf in place uses (empty when none)."""
    return "\n".join([
        # Captured first: under pipefail, `ip | awk '...; exit'` can fail on SIGPIPE, silently.
        f"vrrp_iface=$(ip -o addr show to {quote(str(host.address))} 2>/dev/null || true)",
        "vrrp_iface=$(awk '{print $2; exit}' <<< \"$vrrp_iface\")",
        'vrrp_iface=${vrrp_iface%%@*}',
        f"live_iface=$(sed -n 's/^ *interface  *\\([^ ]*\\) *$/\\1/p' {CONF} 2>/dev/null"
        " | head -n 1 || true)",
    ])


# A keepalived this program configured on another interface (the old default was eth0, the
# address may be on a management NIC): moving the VIP to another segment is the user's call.
MOVED = '[ -n "$vrrp_iface" ] && [ -n "$live_iface" ] && [ "$live_iface" != "$vrrp_iface" ]'


def moved_message(host: Host) -> str:
    return (f"loadBalancer.vrrpInterface: keepalived here runs VRRP on $live_iface, but the"
            f" interface holding {host.address} is $vrrp_iface: set loadBalancer.vrrpInterface"
            " to $live_iface to keep it there, or to $vrrp_iface to move it")


def detect_interface(host: Host) -> str:
    """Shell: `$vrrp_iface` for the configure step, or stop naming the keys to fix."""
    return "\n".join([
        find_interface(host),
        # Linux refuses '/', ':' and blanks in a name; this keeps the sed below literal too.
        'case "$vrrp_iface" in',
        f"  ''|*[!A-Za-z0-9_.-]*) log \"no interface here holds {host.address} (this host's address"
        " in loadBalancers), so VRRP has no interface: fix the address or set"
        ' loadBalancer.vrrpInterface"; exit 1;;',
        "esac",
        f'if {MOVED}; then log "{moved_message(host)}"; exit 1; fi',
        f'log "VRRP on $vrrp_iface (it holds {host.address})"',
    ])


def fill_interface() -> str:
    """The filter that writes keepalived.conf with the detected interface in."""
    return f'sed "s/{DETECTED}/$vrrp_iface/g"'


def check_script(cluster: Cluster) -> str:
    """Healthy = the local haproxy accepts connections on the endpoint port."""
    return script(
        "vrrp-check",
        f"exec {tcp_probe(cluster.endpoint.port)}",
    )


def render_keepalived_conf(cluster: Cluster, host: Host, check_path: str = CHECK_SCRIPT) -> str:
    lb = cluster.load_balancer
    interface = lb.vrrp_interface or DETECTED
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
    interface {interface}
    virtual_router_id {lb.virtual_router_id}
    priority {max(1, 150 - 10 * index)}
    advert_int 1
    unicast_src_ip {host.address}
    check_unicast_src
    unicast_peer {{
{peers}
    }}
    virtual_ipaddress {{
        {cluster.endpoint.address}/{prefix} dev {interface}
    }}
    track_script {{
        kube_ha_haproxy
    }}
}}
"""
