"""Scripts that make a host an apiserver load balancer. Pure renderers; shellcheck-clean.

install: haproxy + socat from the distro (apt or dnf, detected), SELinux told haproxy may use
the apiserver ports (boolean, never setenforce 0), firewalld opened when it runs (never
stopped). Runs once per host (its content rarely changes).

configure: writes the CA and haproxy.cfg, validates with `haproxy -c` *before* the file goes
live, and reloads seamlessly (master-worker, listeners passed over the admin socket, server
states saved so DOWN servers stay DOWN). A config change re-runs only this script.
"""

from __future__ import annotations

from collections.abc import Sequence

from kube_ha.loadbalancer import keepalived
from kube_ha.loadbalancer.haproxy import HaproxyPaths, session_guard_lua
from kube_ha.model import Cluster, HealthCheckSettings, Host, IPAddress, parse_ip
from kube_ha.paths import HAPROXY_CFG, HAPROXY_FILES
from kube_ha.shell import indent, quote, script, write_file

CFG = HAPROXY_CFG
# haproxy's own verdict on a rendered config, before it goes live (the policy pack looks for it).
HAPROXY_CHECK = 'haproxy -c -q -f "$tmp"'
DEFAULT_PATHS = HaproxyPaths()


def firewall_ports(cluster: Cluster) -> list[int]:
    """What clients dial on an LB host: the endpoint port, and the stats port only when it
    listens beyond loopback (a loopback listener needs no hole in the firewall)."""
    ports = [cluster.endpoint.port]
    lb = cluster.load_balancer
    if lb.stats_bind and lb.stats_port is not None:
        address = parse_ip(lb.stats_bind.rpartition(":")[0].strip("[]"))
        if address is None or not address.is_loopback:  # `*` or a routable address
            ports.append(lb.stats_port)
    return ports


def packages(cluster: Cluster, node_local: bool = False) -> list[str]:
    vip = cluster.uses_vip and not node_local
    return ["haproxy", "socat", *(["keepalived"] if vip else [])]


def install_script(cluster: Cluster, node_local: bool = False) -> str:
    """For an LB host, or (`node_local`) for a worker's proxy on 127.0.0.1 (no port opened)."""
    vrrp_peers = [lb.address for lb in cluster.load_balancers] if (
        cluster.uses_vip and not node_local) else None
    return script(
        "lb-install",
        *package_steps(packages(cluster, node_local)),
        _SELINUX_BOOLEAN,
        *_firewalld_steps([] if node_local else firewall_ports(cluster), vrrp_peers),
        f"install -d -m 0750 -o root -g haproxy {HAPROXY_FILES}",
    )


def package_steps(pkgs: Sequence[str]) -> list[str]:
    """haproxy (>= 2.4) and friends from the distro's package manager, when missing."""
    return [f"pkgs=({' '.join(pkgs)})", _INSTALL_PACKAGES]


def _firewalld_steps(ports: Sequence[int], vrrp_peers: Sequence[IPAddress] | None) -> list[str]:
    """Open what clients dial; with a VIP, allow VRRP (IP proto 112) from the LB hosts only."""
    calls = [f"open_port {p}" for p in ports]
    if vrrp_peers is not None:
        calls += [f"allow_vrrp_from {'ipv6' if a.version == 6 else 'ipv4'} {a}" for a in vrrp_peers]
        calls.append("drop_open_vrrp")
    return [_FIREWALLD_FUNCTIONS,
            "if command -v firewall-cmd >/dev/null 2>&1 && systemctl is-active --quiet firewalld; then",
            *indent(calls or [":"]),
            "fi"]


# The installed haproxy's major.minor, from `haproxy -v`: "HA-Proxy version 2.2.9-2 ..." up to
# 2.3, "HAProxy version 2.4.22 ..." since (haproxy.c display_version). Empty if neither.
HAPROXY_VERSION = ("haproxy -v | sed -n"
                   " 's/^HA-\\{0,1\\}Proxy version \\([0-9]*\\.[0-9]*\\).*/\\1/p'")
# A case pattern for a version the rendered config is too new for (it needs 2.4).
TOO_OLD = "1.*|2.[0-3]"

_INSTALL_PACKAGES = """\
need_install=0
for bin in "${pkgs[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing ${pkgs[*]} with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${pkgs[@]}"
  elif command -v dnf >/dev/null 2>&1; then
    log "installing ${pkgs[*]} with dnf"
    dnf install -y -q "${pkgs[@]}"
  else
    log "no apt-get or dnf on this host: install ${pkgs[*]} (haproxy >= 2.4), then re-run"
    exit 1
  fi
else
  log "${pkgs[*]} already installed"
fi
# "HA-Proxy version 2.2.9-2 ..." up to 2.3, "HAProxy version 2.4.22 ..." since (haproxy.c).
version=$(HAPROXY_VERSION)
case "$version" in
  TOO_OLD) log "haproxy $version is too old: 2.4 or later is needed"; exit 1 ;;
esac

""".replace("HAPROXY_VERSION", HAPROXY_VERSION).replace("TOO_OLD", TOO_OLD)
_SELINUX_BOOLEAN = """
# SELinux stays enforcing: allow haproxy to bind and connect to the apiserver ports.
if command -v getenforce >/dev/null 2>&1 && [ "$(getenforce)" != "Disabled" ]; then
  if getsebool haproxy_connect_any | grep -q -- '--> on$'; then
    log "SELinux boolean haproxy_connect_any already on"
  else
    log "setting SELinux boolean haproxy_connect_any (persistent)"
    setsebool -P haproxy_connect_any on
  fi
fi
"""
_FIREWALLD_FUNCTIONS = """
# firewalld stays running: open only what clients dial.
open_port() {
  if firewall-cmd --permanent --query-port="$1/tcp" >/dev/null 2>&1; then
    log "firewalld already allows $1/tcp"
  else
    log "opening $1/tcp in firewalld"
    firewall-cmd --permanent --add-port="$1/tcp" >/dev/null
    firewall-cmd --reload >/dev/null
  fi
}
allow_vrrp_from() {  # family, peer address
  local rule="rule family=\\"$1\\" source address=\\"$2\\" protocol value=\\"vrrp\\" accept"
  if firewall-cmd --permanent --query-rich-rule="$rule" >/dev/null 2>&1; then
    log "firewalld already allows VRRP from $2"
  else
    log "allowing VRRP from $2 in firewalld"
    firewall-cmd --permanent --add-rich-rule="$rule" >/dev/null
    firewall-cmd --reload >/dev/null
  fi
}
drop_open_vrrp() {  # the rule earlier versions added: VRRP from anywhere
  local rule='rule protocol value="vrrp" accept'
  if firewall-cmd --permanent --query-rich-rule="$rule" >/dev/null 2>&1; then
    log "removing the rule that allowed VRRP from any host"
    firewall-cmd --permanent --remove-rich-rule="$rule" >/dev/null
    firewall-cmd --reload >/dev/null
  fi
}
"""


def _start_or_reload(unit: str, flag: str, before_reload: Sequence[str] = ()) -> list[str]:
    return [
        f"systemctl enable --quiet {unit}",
        f"if ! systemctl is-active --quiet {unit}; then",
        f'  log "starting {unit}"',
        f"  systemctl start {unit}",
        f'elif [ "${flag}" = 1 ]; then',
        *indent(before_reload),
        f'  log "reloading {unit}"',
        f"  systemctl reload {unit}",
        "else",
        f'  log "{unit} running with this config already"',
        "fi",
    ]


def configure_script(cluster: Cluster, cfg: str, ca_pem: str, client_pem: str | None,
                     vip_host: Host | None = None, paths: HaproxyPaths = DEFAULT_PATHS,
                     health: HealthCheckSettings | None = None) -> str:
    """The CA, the health-check client cert+key (secret: this script then travels as one),
    haproxy.cfg and, with `vip_host`, that LB host's keepalived; each validated by its own
    daemon before it goes live, each service reloaded only when its files changed."""
    files = [write_file(paths.ca_file, ca_pem, "0640", "root:haproxy")]
    if client_pem is not None and paths.client_cert:
        files.append(write_file(paths.client_cert, client_pem, "0640", "root:haproxy"))
    state = quote(paths.state_file)
    parts = [
        "changed=0",
        f"install -d -m 0750 -o root -g haproxy {HAPROXY_FILES}",
        *files,
        # Before haproxy.cfg: `haproxy -c` loads the Lua it names.
        *([write_file(paths.session_guard, session_guard_lua(health or cluster.health_check),
                      "0644", "root:haproxy")]
          if paths.session_guard else []),
        write_file(CFG, cfg, check=HAPROXY_CHECK),
        f"command -v restorecon >/dev/null 2>&1 && restorecon -R {HAPROXY_CFG.rsplit('/', 1)[0]}",
        *_start_or_reload("haproxy", "changed", [
            "# Save server states first so servers DOWN now are still DOWN after the reload;",
            "# listeners pass to the new worker over the admin socket (seamless).",
            f"echo 'show servers state' | socat stdio {quote('UNIX-CONNECT:' + paths.admin_socket)}"
            f" > {state}.tmp && mv -f {state}.tmp {state}",
        ]),
    ]
    if vip_host is not None:
        detect = cluster.load_balancer.vrrp_interface is None
        parts += [
            *([keepalived.detect_interface(vip_host)] if detect else []),
            "vrrp_changed=0",
            f"install -d -m 0755 {quote(keepalived.CHECK_SCRIPT.rsplit('/', 1)[0])} /etc/keepalived",
            write_file(keepalived.CHECK_SCRIPT, keepalived.check_script(cluster), "0755",
                       flag=None),
            write_file(keepalived.CONF, keepalived.render_keepalived_conf(cluster, vip_host),
                       flag="vrrp_changed", check='keepalived -t -f "$tmp"',
                       through=keepalived.fill_interface() if detect else "cat"),
            "command -v restorecon >/dev/null 2>&1 && restorecon -R /etc/keepalived "
            + quote(keepalived.CHECK_SCRIPT),
            *_start_or_reload("keepalived", "vrrp_changed"),
        ]
    return script("lb-configure", *parts)
