"""Scripts that make a host an apiserver load balancer. Pure renderers; shellcheck-clean.

install: haproxy + socat from the distro (apt or dnf, detected), SELinux told haproxy may use
the apiserver ports (boolean, never setenforce 0), firewalld opened when it runs (never
stopped). Runs once per host (its content rarely changes).

configure: writes the CA and haproxy.cfg, validates with `haproxy -c` *before* the file goes
live, and reloads seamlessly (master-worker, listeners passed over the admin socket, server
states saved so DOWN servers stay DOWN). A config change re-runs only this script.
"""

from __future__ import annotations

from components.haproxy import HaproxyPaths
from components.model import Cluster
from components.shell import heredoc, quote, script, write_file

CFG = "/etc/haproxy/haproxy.cfg"
DEFAULT_PATHS = HaproxyPaths()


def firewall_ports(cluster: Cluster) -> list[int]:
    ports = [cluster.endpoint.port]
    if cluster.load_balancer.stats_bind:
        ports.append(int(cluster.load_balancer.stats_bind.rpartition(":")[2]))
    return ports


def install_script(cluster: Cluster) -> str:
    open_ports = "\n".join(
        f"  open_port {p}" for p in firewall_ports(cluster)
    )
    return script(
        "lb-install",
        """\
need_install=0
for bin in haproxy socat; do
  command -v "$bin" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing haproxy and socat with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q haproxy socat
  elif command -v dnf >/dev/null 2>&1; then
    log "installing haproxy and socat with dnf"
    dnf install -y -q haproxy socat
  else
    log "no apt-get or dnf on this host: install haproxy >= 2.4 and socat, then re-run"
    exit 1
  fi
else
  log "haproxy and socat already installed"
fi
version=$(haproxy -v | sed -n 's/^HAProxy version \\([0-9]*\\.[0-9]*\\).*/\\1/p')
case "$version" in
  1.*|2.[0-3]) log "haproxy $version is too old: 2.4 or later is needed"; exit 1 ;;
esac

# SELinux stays enforcing: allow haproxy to bind and connect to the apiserver ports.
if command -v getenforce >/dev/null 2>&1 && [ "$(getenforce)" != "Disabled" ]; then
  if getsebool haproxy_connect_any | grep -q -- '--> on$'; then
    log "SELinux boolean haproxy_connect_any already on"
  else
    log "setting SELinux boolean haproxy_connect_any (persistent)"
    setsebool -P haproxy_connect_any on
  fi
fi

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
if command -v firewall-cmd >/dev/null 2>&1 && systemctl is-active --quiet firewalld; then
"""
        + open_ports
        + """
fi
install -d -m 0750 -o root -g haproxy /etc/haproxy/kube-ha
""",
    )


def configure_script(cluster: Cluster, cfg: str, ca_pem: str, client_pem: str | None,
                     paths: HaproxyPaths = DEFAULT_PATHS) -> str:
    """The CA, the health-check client cert+key (secret: this script then travels as one) and
    haproxy.cfg; reloads only when something changed."""
    files = [write_file(paths.ca_file, ca_pem, "0640", "root:haproxy")]
    if client_pem is not None and paths.client_cert:
        files.append(write_file(paths.client_cert, client_pem, "0640", "root:haproxy"))
    state = quote(paths.state_file)
    return script(
        "lb-configure",
        "changed=0",
        "install -d -m 0750 -o root -g haproxy /etc/haproxy/kube-ha",
        *files,
        # Validate the candidate before it can become live; a bad file never replaces a good one.
        f"candidate=$(mktemp {quote(CFG + '.kube-ha.XXXXXX')})",
        'trap \'rm -f "$candidate"\' EXIT',
        heredoc('cat > "$candidate"', cfg),
        'if ! haproxy -c -q -f "$candidate"; then',
        '  log "rendered haproxy.cfg rejected by haproxy -c; the live config is untouched"',
        "  exit 1",
        "fi",
        f'if cmp -s "$candidate" {CFG}; then',
        f'  log "{CFG} unchanged"',
        "else",
        f'  chmod 0644 "$candidate"; mv -f "$candidate" {CFG}; changed=1',
        f'  log "wrote {CFG}"',
        "fi",
        "command -v restorecon >/dev/null 2>&1 && restorecon -R /etc/haproxy",
        "systemctl enable --quiet haproxy",
        "if ! systemctl is-active --quiet haproxy; then",
        '  log "starting haproxy"',
        "  systemctl start haproxy",
        'elif [ "$changed" = 1 ]; then',
        "  # Save server states first so servers DOWN now are still DOWN after the reload.",
        f"  echo 'show servers state' | socat stdio {quote('UNIX-CONNECT:' + paths.admin_socket)}"
        f" > {state}.tmp && mv -f {state}.tmp {state}",
        '  log "reloading haproxy (seamless: listeners pass to the new worker)"',
        "  systemctl reload haproxy",
        "else",
        '  log "haproxy running with this config already"',
        "fi",
    )

