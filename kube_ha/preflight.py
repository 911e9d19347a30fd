"""Preflight: one read-only script per host that gathers facts and refuses, listing every
problem with the stack key it concerns, before any step changes anything anywhere. Pure.

What a real host must bring (README, "Prerequisites"): Debian/Ubuntu or the RHEL family;
on nodes kubeadm, kubelet and crictl (kubectl on control-plane nodes) at versions kubeadm's
skew policy allows for `kubernetesVersion`, and a container runtime answering crictl; the
ports kubeadm's nodes use free on a node that has not joined; on LB hosts the endpoint's ports
free or already haproxy's, and the VRRP interface present.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kube_ha.model import KUBEADM_PORTS, Cluster, Host
from kube_ha.paths import ADMIN_CONF, KUBELET_CONF, PKI, STATIC_PODS
from kube_ha.shell import quote, script
from kube_ha.topology import apiserver_sans

SUPPORTED_OS = ("debian", "ubuntu", "rhel", "centos", "rocky", "almalinux", "fedora")


@dataclass(frozen=True)
class Target:
    """One host to check: its config key (`workers[3]`), and what it is in the cluster."""

    host: Host
    key: str
    role: str  # "control-plane", "worker" or "lb"


ROLES = {"controlPlane": "control-plane", "workers": "worker", "loadBalancers": "lb"}


def targets(cluster: Cluster) -> list[Target]:
    groups = (*cluster.node_groups, ("loadBalancers", cluster.load_balancers))
    return [Target(h, f"{key}[{i}]", ROLES[key]) for key, hosts in groups
            for i, h in enumerate(hosts)]


_HELPERS = r"""problems=()
problem() { problems+=("$where: $*"); }
minor() { sed -n 's/^[^0-9]*\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p' | head -n 1; }
listeners() { ss -Hltnp "( sport = :$1 )" 2>/dev/null || true; }"""


def _os() -> str:
    return f"""\
# shellcheck disable=SC1091
os_id=$( (. /etc/os-release 2>/dev/null; echo "${{ID:-}} ${{ID_LIKE:-}}") )
case " $os_id " in
  {"|".join(f'*" {o} "*' for o in SUPPORTED_OS)}) ;;
  *) problem "the OS ($os_id) is not one this program supports (Debian, Ubuntu or the RHEL family)";;
esac"""


def _versions(cluster: Cluster, control_plane: bool) -> str:
    """kubeadm deploys its own minor or the one before; a kubelet may be up to three minors
    older than the apiserver, never newer (kubernetes.io version skew policy)."""
    major, target = cluster.minor_version
    want = cluster.kubernetes_version
    lines = [
        "v=$(kubeadm version -o short 2>/dev/null | minor) || v=''",
        f'if [ -z "$v" ]; then problem "kubeadm is not installed (or does not run): install'
        f' kubeadm {want}";',
        f'elif [ "${{v% *}}" != {major} ] || [ "${{v#* }}" -lt {target} ] '
        f'|| [ "${{v#* }}" -gt {target + 1} ]; then',
        f'  problem "kubeadm is 1.${{v#* }}; kubernetesVersion {want} needs kubeadm 1.{target} or'
        f' 1.{target + 1}"; fi',
        "v=$(kubelet --version 2>/dev/null | minor) || v=''",
        f'if [ -z "$v" ]; then problem "kubelet is not installed (or does not run): install'
        f' kubelet {want}";',
        f'elif [ "${{v% *}}" != {major} ] || [ "${{v#* }}" -gt {target} ] '
        f'|| [ "${{v#* }}" -lt {target - 3} ]; then',
        f'  problem "kubelet is 1.${{v#* }}; with kubernetesVersion {want} it must be 1.{target - 3}'
        f' to 1.{target}"; fi',
        'crictl version >/dev/null 2>&1 || problem "no container runtime answers crictl'
        ' (containerd or CRI-O, running, with crictl pointed at it)"',
    ]
    if control_plane:
        lines.append('command -v kubectl >/dev/null 2>&1 || problem "kubectl is not installed"')
    return "\n".join(lines)


def _address_here(host: Host) -> str:
    # Captured first: under pipefail, `ip | grep -q` fails when grep exits before ip's last
    # write (SIGPIPE).
    return "\n".join([
        "addrs=$(ip -o addr show 2>/dev/null || true)",
        f'case "$addrs" in *" {host.address}/"*) ;; *) problem "{host.address} is not an address'
        ' of this host (it is what the cluster will dial)";; esac'])


def _free(ports: list[int], owner: str | None = None) -> str:
    """Each port free, or (with `owner`) held by that process only."""
    lines = []
    for port in ports:
        # Not `| grep -q`: under pipefail an early exit of grep -q can fail its writer.
        allowed = f' | grep -v \'"{owner}"\' || true' if owner else ""
        lines.append(f'held=$(listeners {port}{allowed})')
        lines.append(f'if [ -n "$held" ]; then problem "port {port} is in use'
                     ' ($(printf \'%s\\n\' "$held" | awk \'{print $NF}\' | head -n 1))"; fi')
    return "\n".join(lines)


def openssl_san(name: str) -> str:
    """A subjectAltName entry as `openssl x509 -ext subjectAltName` prints it (OpenSSL 1.1.1
    and 3.x, crypto/x509/v3_san.c): `DNS:name`, `IP Address:10.0.0.1`, IPv6 as eight
    upper-case groups without leading zeros."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return f"DNS:{name}"
    if ip.version == 4:
        return f"IP Address:{ip}"
    return "IP Address:" + ":".join(f"{int(g, 16):X}" for g in ip.exploded.split(":"))


def _served_names_kept(cluster: Cluster, node: Host) -> str:
    """A node whose apiserver still serves a certificate kube-ha did not install (it keeps a
    `.kube-ha-<stamp>` backup of what it replaces): every name that certificate carries must
    be in the one about to replace it, or clients dialling that name get an x509 error after
    the swap (the seed's LB address, an old controlPlaneEndpoint name). Another node's own
    name or address is no loss: that node's certificate names it."""
    sans = apiserver_sans(cluster, node)
    kept = dict.fromkeys(openssl_san(n) for n in (
        *sans.dns_names, *sans.ip_addresses,
        *(x for h in cluster.control_plane for x in (h.name, str(h.address)))))
    names = "\n".join(kept)
    return "\n".join([
        f"  if [ -f {PKI}/apiserver.crt ] && ! ls {PKI}/apiserver.crt.kube-ha-* >/dev/null 2>&1;"
        " then",
        f"    served=$(openssl x509 -noout -ext subjectAltName -in {PKI}/apiserver.crt"
        " 2>/dev/null | sed 1d | tr ',' '\\n' | sed 's/^ *//' || true)",
        f'    lost=$(grep -vixF -f <(printf \'%s\\n\' {quote(names)}) <<< "$served" | tr \'\\n\' \' \''
        " || true)",
        '    if [ -n "$lost" ]; then',
        '      problem "certificates.extraSans: the apiserver here serves ${lost% } (a certificate'
        " kube-ha did not issue), which the certificate replacing it would not name: clients dialling"
        " those would fail x509 checks. Add each name clients still use to"
        ' certificates.extraSans"; fi',
        "  fi",
    ])


def _node(cluster: Cluster, t: Target) -> str:
    cp = t.role == "control-plane"
    name = t.host.name
    # kubeadm's "Ports and Protocols": a worker runs the kubelet and kube-proxy.
    ports = sorted({cluster.apiserver_port, *KUBEADM_PORTS}) if cp else [10250, 10256]
    _, target = cluster.minor_version
    lines = [_versions(cluster, cp)]
    if cp:
        lines.append(_address_here(t.host))
    lines += [
        f"if [ -f {KUBELET_CONF} ]; then",
        # The kubelet's client certificate names the Node this host is: system:node:<name>.
        # Every substitution ends in `|| true`: under `set -e` a failing one would end the
        # script before it lists what it found.
        f"  cert=$(sed -n 's/^ *client-certificate: *//p' {KUBELET_CONF} | head -n 1 || true)",
        '  if [ -n "$cert" ]; then',
        '    subject=$(openssl x509 -noout -subject -in "$cert" 2>/dev/null || true)',
        f"  else subject=$(sed -n 's/^ *client-certificate-data: *//p' {KUBELET_CONF}"
        " | head -n 1 | base64 -d 2>/dev/null | openssl x509 -noout -subject 2>/dev/null"
        " || true); fi",
        '  node=$(printf "%s" "$subject" | sed -n "s/.*system:node:\\([^,/]*\\).*/\\1/p")',
        '  if [ -z "$node" ]; then',
        f'    problem "{KUBELET_CONF} names no readable client certificate: cannot tell which'
        ' Node this host is"',
        f'  elif [ "$node" != {quote(name)} ]; then',
        f'    problem "this host joined as Node $node, not {name}: the address belongs to another'
        ' node (fix the name or the address)"; fi',
    ]
    if cp:
        lines += [
            f"  image=$(sed -n 's/^ *image: *//p' {STATIC_PODS}/kube-apiserver.yaml 2>/dev/null"
            " | head -n 1 || true)",
            '  tag=${image%%@*}; tag=${tag##*:}  # registry/kube-apiserver:v1.32.3[@sha256:...]',
            '  v=$(printf "%s" "$tag" | minor)',
            '  if [ -z "$image" ]; then',
            '    problem "this host joined the cluster but runs no kube-apiserver static pod: is it'
            ' a worker?"',
            f'  elif [ -n "$v" ] && [ "${{v#* }}" != {target} ]; then',
            '    problem "kube-apiserver runs $tag here but kubernetesVersion is'
            f' {cluster.kubernetes_version}: set kubernetesVersion to the cluster\'s version'
            ' (this program does not upgrade)"; fi',
            _served_names_kept(cluster, t.host),
        ]
    if t.host.bootstrap:
        lines += [
            f"  if [ -f {ADMIN_CONF} ] && ! ls /etc/cni/net.d/*.conf* >/dev/null 2>&1; then",
            '    problem "the cluster has no pod network (no CNI config in /etc/cni/net.d): joined'
            ' nodes would never turn Ready; install one first"; fi',
        ]
    lines += ["else", _free(ports), "fi"]
    if cluster.endpoint.dns_name:
        dns, address = cluster.endpoint.dns_name, cluster.endpoint.address
        lines += [
            f"resolved=$(getent ahosts {quote(dns)} 2>/dev/null | awk '{{print $1}}' | sort -u"
            " || true)",
            f'if [ -z "$resolved" ]; then problem "endpoint.dnsName {dns} does not resolve here'
            ' (the kubeconfigs dial it)";',
            f'elif ! grep -qxF {quote(str(address))} <<< "$resolved"; then problem'
            f' "endpoint.dnsName {dns} resolves to ${{resolved//$\'\\n\'/ }} here, not to endpoint.address'
            f' {address}"; fi',
        ]
    if t.role == "worker" and cluster.node_local_proxy:
        lines.append(_free([cluster.apiserver_port], owner="haproxy"))
    return "\n".join(lines)


def _lb(cluster: Cluster, t: Target) -> str:
    lb = cluster.load_balancer
    ports = [cluster.endpoint.port, *([lb.stats_port] if lb.stats_port else [])]
    lines = [
        "if ! command -v haproxy >/dev/null 2>&1 && ! command -v apt-get >/dev/null 2>&1 \\",
        "    && ! command -v dnf >/dev/null 2>&1; then",
        '  problem "no haproxy, and neither apt-get nor dnf to install it"; fi',
        _free(ports, owner="haproxy"),
    ]
    if cluster.uses_vip:
        iface = lb.vrrp_interface
        lines += [
            _address_here(t.host),
            f"if ! ip link show dev {quote(iface)} >/dev/null 2>&1; then",
            f'  problem "loadBalancer.vrrpInterface: {iface} does not exist here (this host has:'
            ' $(ip -o link show | awk -F\': \' \'{print $2}\' | tr \'\\n\' \' \'))"; fi',
        ]
    return "\n".join(lines)


def preflight_script(cluster: Cluster, t: Target) -> str:
    """Read-only: gathers facts, prints every problem (stack key first), exits 1 if any."""
    body = _lb(cluster, t) if t.role == "lb" else _node(cluster, t)
    return script(
        f"preflight {t.host.name}",
        f"where={quote(f'{t.key} ({t.host.name})')}",
        _HELPERS,
        _os(),
        body,
        'if [ "${#problems[@]}" -gt 0 ]; then',
        '  log "refusing before any host is changed:"',
        "  printf '  %s\\n' \"${problems[@]}\" >&2",
        "  exit 1",
        "fi",
        f'log "{t.host.name} is ready ({t.role})"',
    )
