"""Preflight: one read-only script per host that gathers facts and refuses, listing every
problem with the stack key it concerns, before any step changes anything anywhere. Pure.

What a real host must bring (README, "Prerequisites"): Debian/Ubuntu or the RHEL family;
on nodes kubeadm, kubelet and crictl (kubectl on control-plane nodes) at versions kubeadm's
skew policy allows for `kubernetesVersion`, and a container runtime answering crictl; the
ports kubeadm's nodes use free on a node that has not joined; on LB hosts the endpoint's ports
free or already haproxy's, and the VRRP interface present; and from each host, a path to every
port it will dial on the others (`_paths`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kube_ha.elastic import metrics_server
from kube_ha.elastic.carry import (
    CARRIED_FILE_FLAGS,
    NOT_PATHS,
    STATIC_FLAGS,
    WRITTEN,
    nested_pattern,
)
from kube_ha.elastic.manifests import in_cluster_pods
from kube_ha.hosts_entry import HOSTS, HOSTS_FILE, MARK
from kube_ha.kubeadm.admin import KUBECTL
from kube_ha.loadbalancer import keepalived
from kube_ha.loadbalancer.scripts import HAPROXY_VERSION, TOO_OLD
from kube_ha.model import KUBEADM_PORTS, Cluster, Host
from kube_ha.paths import ADMIN_CONF, KUBELET_CONF, PKI, STATIC_PODS
from kube_ha.shell import bounded, indent, quote, script, shell_for
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


HELPERS = r"""problems=()
problem() { problems+=("$where: $*"); }
minor() { sed -n 's/^[^0-9]*\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p' | head -n 1; }
listeners() { ss -Hltnp "( sport = :$1 )" 2>/dev/null || true; }"""

# A path to a port: a connection, or a refusal (nothing listens there yet: the host answered),
# passes; a drop (no answer in REACH_S) or an ICMP error (a firewall's reject, no route) is a
# problem. In parallel, each probe's finding in a file, read back in a fixed order.
REACH_S = 3
_REACH = r"""reach_dir=$(mktemp -d)
reach() {  # address port what
  (
    rc=0
    # shellcheck disable=SC2016  # expanded by the inner bash
    out=$(timeout %(s)d bash -c ': <>"/dev/tcp/$0/$1"' "$1" "$2" 2>&1) || rc=$?
    if [ "$rc" = 0 ]; then exit 0; fi
    case "$out" in *"Connection refused"*) exit 0;; esac
    if [ "$rc" = 124 ]; then why="no answer in %(s)d s: a firewall dropping it?"
    else why=${out##*: }; fi
    printf '%s' "cannot reach $3 at $1:$2 ($why): open it between these hosts (README, Ports)" \
      > "$reach_dir/$1 $2"
  ) &
}""".replace("%(s)d", str(REACH_S))
_REACHED = """wait
for found in "$reach_dir"/*; do
  if [ -f "$found" ]; then problem "$(cat "$found")"; fi
done
rm -rf "$reach_dir"
"""


def _paths(cluster: Cluster, t: Target) -> list[tuple[Host, int, str]]:
    """What this host dials on others, as kubeadm's "Ports and Protocols" has it: control-plane
    nodes each other's apiserver, etcd (client and peer) and kubelet; workers and LB hosts
    every apiserver (the `kubernetes` Service's endpoints, the node-local proxy's and the LB's
    servers). Toward LB hosts nothing is probed: the program opens their ports itself, after
    this; nor what the elastic control plane adds (`elastic_paths`)."""
    cps = cluster.control_plane
    api = cluster.apiserver_port
    if t.role == "control-plane":
        return [(p, port, what) for p in cps if p != t.host
                for port, what in ((api, "apiserver"), (2379, "etcd client port"),
                                   (2380, "etcd peer port"), (10250, "kubelet"))]
    return [(p, api, "apiserver") for p in cps]


def elastic_paths(cluster: Cluster, dialer: Host) -> list[tuple[Host, int, str]]:
    """What the elastic control plane adds to `dialer`'s paths: a pool worker dials etcd on
    every control-plane node, an LB host every pool node's elastic port. Probed only once
    kube_ha.elastic.firewall opened them (not in the preflight: firewalld would refuse them
    before they are opened)."""
    e = cluster.elastic_apiserver
    if not e.enabled:
        return []
    if dialer in cluster.load_balancers:
        return [(cluster.node(n), e.port, "elastic apiserver port") for n in e.pool_nodes]
    if dialer in cluster.workers and dialer.name in e.pool_nodes:
        return [(p, 2379, "etcd client port") for p in cluster.control_plane]
    return []


def reach_check(cluster: Cluster, dialer: Host, paths: list[tuple[Host, int, str]]) -> str:
    """Probe `paths` from `dialer` (as the preflight does) and fail naming each unreachable
    one, after the dialer's stack key."""
    return "\n".join([
        "export LC_ALL=C",
        f"where={quote(f'{_stack_key(cluster, dialer)} ({dialer.name})')}",
        'problems=()\nproblem() { problems+=("$where: $*"); }',
        _reachable(cluster, paths),
        'if [ "${#problems[@]}" -gt 0 ]; then',
        "  printf '  %s\\n' \"${problems[@]}\" >&2",
        "  exit 1",
        "fi",
    ])


def _stack_key(cluster: Cluster, host: Host) -> str:
    """A host's stack key (`controlPlane[1]`, `workers[3]`, `loadBalancers[0]`), as `targets`
    names it (a node first, when an LB host is a node too)."""
    groups = (*cluster.node_groups, ("loadBalancers", cluster.load_balancers))
    return next(f"{key}[{hosts.index(host)}]" for key, hosts in groups if host in hosts)


def _reachable(cluster: Cluster, paths: list[tuple[Host, int, str]]) -> str:
    calls = [f"reach {quote(str(peer.address))} {port}"
             f" {quote(f'the {what} of {_stack_key(cluster, peer)} ({peer.name})')}"
             for peer, port, what in paths]
    return "\n".join([_REACH, *calls, _REACHED]) if calls else ""


def _os() -> str:
    return f"""\
# shellcheck disable=SC1091
read -r -a os_ids <<<"$( (. /etc/os-release 2>/dev/null; echo "${{ID:-}} ${{ID_LIKE:-}}") )"
case " ${{os_ids[*]}} " in
  {"|".join(f'*" {o} "*' for o in SUPPORTED_OS)}) ;;
  *) problem "the OS (${{os_ids[*]:-no ID in /etc/os-release}}) is not one this program supports\
 (Debian, Ubuntu or the RHEL family)";;
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


def _address_here(host: Host, why: str = "it is what the cluster will dial") -> str:
    # Captured first: under pipefail, `ip | grep -q` fails when grep exits before ip's last
    # write (SIGPIPE).
    return "\n".join([
        "addrs=$(ip -o addr show 2>/dev/null || true)",
        f'case "$addrs" in *" {host.address}/"*) ;; *) problem "{host.address} is not an address'
        f' of this host ({why})";; esac'])


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


def _live_cluster(cluster: Cluster) -> str:
    """On the bootstrap node of a running cluster, read-only through its admin.conf: the
    networking kubeadm recorded (kube-system/kubeadm-config, which every join and the
    Deployments' flags follow) must be the stack's; with elasticApiserver, whose HPA scales on
    the metrics API's figures, that API must answer."""
    net = cluster.networking
    lines = [
        f"cc=$({KUBECTL} -n kube-system get configmap kubeadm-config"
        " -o jsonpath='{.data.ClusterConfiguration}' 2>&1) || {",
        '  problem "the running cluster does not answer kubectl with its admin.conf (reading'
        ' kube-system/kubeadm-config: ${cc##*$\'\\n\'}): is its apiserver up?"; cc=""; }',
    ]
    for key, field, want in (("clusterName", "clusterName", cluster.name),
                             ("serviceSubnet", "networking.serviceSubnet", net.service_subnet),
                             ("podSubnet", "networking.podSubnet", net.pod_subnet),
                             ("clusterDomain", "networking.dnsDomain", net.cluster_domain)):
        lines += [
            f"live=$(sed -n 's/^ *{field.rpartition('.')[2]}: *//p' <<< \"$cc\" | head -n 1"
            " | tr -d \"\\\"'\" || true)",
            f'if [ -n "$live" ] && [ "${{live,,}}" != {quote(str(want).lower())} ]; then',
            f'  problem "{key}: the cluster runs {field} $live (kubeadm-config), the'
            f' stack says {want}: set {key} to the cluster\'s"; fi',
        ]
    e = cluster.elastic_apiserver
    if e.enabled and e.install_metrics_server:
        # The release registers this APIService: another one's (prometheus-adapter, say)
        # would be taken over.
        key = "elasticApiserver.installMetricsServer"
        lines += [
            "if [ -n \"$cc\" ]; then",
            f"  if svc=$({KUBECTL} get apiservice {metrics_server.APISERVICE}"
            " -o 'jsonpath={.spec.service.namespace}/{.spec.service.name}' 2>&1); then",
            f'    if [ "$svc" != {metrics_server.SERVICE} ]; then',
            f'      problem "{key}: the metrics API is served by $svc (APIService'
            f" {metrics_server.APISERVICE}), which metrics-server's release would take over."
            f' Fix: leave {key} false; the HPA reads that API as it is"; fi',
            '  elif [[ $svc != *"(NotFound)"* ]]; then',
            f"    problem \"{key}: cannot read APIService {metrics_server.APISERVICE}"
            " (${svc##*$'\\n'})\"; fi",
            "fi",
        ]
    elif e.enabled:
        lines += [
            f"if [ -n \"$cc\" ] && ! out=$({KUBECTL} get --raw=/apis/metrics.k8s.io/v1beta1 2>&1);"
            " then",
            '  problem "elasticApiserver.enabled: the metrics API does not answer (${out##*$\'\\n\'}),'
            " so the elastic apiservers' HorizontalPodAutoscaler could never scale: install"
            " metrics-server first (README, Prerequisites), or set"
            ' elasticApiserver.installMetricsServer: true"; fi',
        ]
    return "\n".join(lines)


def _carryable(cluster: Cluster) -> list[str]:
    """The in-cluster control-plane pods this stack asks for run the static pods' flags
    (kube_ha.elastic.carry): each file a flag names must be one they can be given, read here
    before anything changes. A host file no table knows, one that is missing, or a config
    naming further host files or a KMS plugin's socket is refused, naming the key that asks
    for the pods."""
    wanted = in_cluster_pods(cluster)
    lines = [STATIC_FLAGS, 'in_list() { case " $2 " in *" $1 "*) return 0;; esac; return 1; }'
             ] if wanted else []
    for pod in wanted:
        key, what, view = pod.key, pod.what, pod.view
        comp = view.component
        manifest = f"{STATIC_PODS}/{comp}.yaml"
        skip = " ".join([*view.own, *WRITTEN, *NOT_PATHS])
        carried = CARRIED_FILE_FLAGS[comp]
        lines += [
            f"if [ -f {manifest} ]; then",
            # What its Secret is read from (the read step fails on a missing one, after the
            # joins): an external CA keeps ca.key off the nodes.
            f"  for f in {' '.join(quote(p) for p in pod.pki.files.values())}; do",
            f'    [ -s "$f" ] || problem "{key}: $f is missing here, and the {what} needs it'
            ' (a cluster with an external CA keeps ca.key off its nodes): switch them off"',
            "  done",
            f"  if ! found=$(static_flags {manifest}); then",
            f'    problem "{key}: could not read the static {comp}\'s flags here"; found=""; fi',
            "  while IFS='=' read -r flag value; do",
            f"    if in_list \"$flag\" {quote(skip)}; then continue; fi",
            "    IFS=, read -ra parts <<< \"$value\"",
            '    for part in "${parts[@]}"; do',
            '      case "$part" in /*) ;; *) continue;; esac',
            f"      if in_list \"$part\" {quote(' '.join(view.mapped))}; then continue; fi",
            f"      if in_list \"$flag\" {quote(' '.join(carried))}; then",
            '        if [ ! -r "$part" ]; then',
            f'          problem "{key}: the static {comp} here runs --$flag=$value, but $part is'
            ' missing"',
            "        else",
            "          case $flag in",
            "            encryption-provider-config) pattern="
            f"{quote(nested_pattern('encryption-provider-config'))};;",
            f"            *) pattern={quote(nested_pattern(''))};;",
            "          esac",
            # -o: the key matched, never the line (a one-line JSON config holds its keys).
            '          if bad=$(grep -m1 -oE "$pattern" "$part" 2>/dev/null); then',
            f'            problem "{key}: the static {comp} here runs --$flag=$part, whose'
            ' \\"${bad#"${bad%%[![:space:]]*}"}\\" names a KMS plugin or a host file a pod'
            f' on another node does not have: the {what} cannot run it (switch them off)"; fi',
            "        fi",
            "      else",
            f'        problem "{key}: the static {comp} here runs --$flag=$value: $part is a'
            f' host file the {what} cannot be given (switch them off, or drop the flag)"',
            "      fi",
            "    done",
            '  done <<< "$found"',
            "fi",
        ]
    return lines


def _not_newer(cluster: Cluster) -> list[str]:
    """The in-cluster control-plane pods run kubernetesVersion: never newer than a static
    kube-apiserver, not even by a patch (the version skew policy's newest apiserver comes
    first; an upgrade moves the static pods, then the stack)."""
    pods = [pod.what for pod in in_cluster_pods(cluster)]
    if not pods:
        return []
    want = cluster.kubernetes_version
    return [
        f'  elif [ -n "$v" ] && [ "$(printf \'%s\\n\' "$tag" {quote(want)} | sort -V | tail -n 1)"'
        ' != "$tag" ]'
        "; then",
        f'    problem "kubernetesVersion: the {" and ".join(pods)} would run {want}, newer than'
        ' the static kube-apiserver here ($tag): set kubernetesVersion to $tag, or upgrade'
        ' this node first"',
    ]


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
            ' (this program does not upgrade)"',
            *_not_newer(cluster),
            "  fi",
            _served_names_kept(cluster, t.host),
            *indent(_carryable(cluster)),
        ]
    if t.host.bootstrap:
        lines += [
            f"  if [ -f {ADMIN_CONF} ] && ! ls /etc/cni/net.d/*.conf* >/dev/null 2>&1; then",
            '    problem "the cluster has no pod network (no CNI config in /etc/cni/net.d): joined'
            ' nodes would never turn Ready; install one first"; fi',
            f"  if [ -f {ADMIN_CONF} ]; then",
            *indent([_live_cluster(cluster)], "    "),
            "  fi",
        ]
    lines += ["else", _free(ports), "fi"]
    if cluster.endpoint.service:
        lines.append('command -v curl >/dev/null 2>&1 || problem "endpoint.type: service needs'
                     ' curl on every node (its /etc/hosts switcher probes /readyz): install it"')
    if cluster.endpoint.dns_name and (cluster.endpoint.manage_hosts_entry
                                      or cluster.endpoint.service):
        # The program writes the entry; a line of someone else's mapping the name elsewhere
        # would win or confuse (the first matching line counts). The switcher maps it to
        # control-plane addresses too.
        dns, address = cluster.endpoint.dns_name, cluster.endpoint.address
        key = "endpoint.type" if cluster.endpoint.service else "endpoint.manageHostsEntry"
        allowed = [str(address), *(str(h.address) for h in cluster.control_plane
                                   if cluster.endpoint.service)]
        lines += [
            f"others=$(grep -vE '[[:space:]]{MARK}$' \"{HOSTS}\""
            f" | awk -v n={quote(dns)} '$1 !~ /^#/ {{ for (i = 2; i <= NF; i++) if (tolower($i) =="
            f" tolower(n)) print $1 }}' | grep -vxF -e {' -e '.join(quote(a) for a in allowed)}"
            " | sort -u || true)",
            f'if [ -n "$others" ]; then problem "{key}: {HOSTS_FILE} here maps'
            f' {dns} to ${{others//$\'\\n\'/ }} in a line kube-ha does not keep: remove that line'
            ' (the program writes its own)"; fi',
        ]
    elif cluster.endpoint.dns_name:
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
        lines += [_free([cluster.apiserver_port], owner="haproxy"), haproxy_version()]
    return "\n".join(lines)


def haproxy_version() -> str:
    """An installed haproxy older than 2.4, judged as the install step judges it; a host
    without one gets it from apt/dnf, whose version the install step checks."""
    return "\n".join([
        "if command -v haproxy >/dev/null 2>&1; then",
        f"  v=$({HAPROXY_VERSION} 2>/dev/null) || v=''",
        f'  case "$v" in {TOO_OLD}) problem "haproxy $v is installed here; kube-ha needs 2.4 or'
        ' later: upgrade it";; esac',
        "fi",
    ])


def _lb(cluster: Cluster, t: Target) -> str:
    lb = cluster.load_balancer
    ports = [cluster.endpoint.port, *([lb.stats_port] if lb.stats_port else [])]
    lines = [
        "if ! command -v haproxy >/dev/null 2>&1 && ! command -v apt-get >/dev/null 2>&1 \\",
        "    && ! command -v dnf >/dev/null 2>&1; then",
        '  problem "no haproxy, and neither apt-get nor dnf to install it"; fi',
        haproxy_version(),
        _free(ports, owner="haproxy"),
    ]
    iface = lb.vrrp_interface
    if not cluster.uses_vip:
        return "\n".join(lines)
    if iface is None:
        # The configure step runs VRRP on the interface holding this address.
        lines += [_address_here(t.host, "VRRP runs on the interface that holds it; or set"
                                        " loadBalancer.vrrpInterface"),
                  keepalived.find_interface(t.host),
                  f'if {keepalived.MOVED}; then problem "{keepalived.moved_message(t.host)}"; fi']
    else:
        lines += [
            _address_here(t.host),
            f"if ! ip link show dev {quote(iface)} >/dev/null 2>&1; then",
            f'  problem "loadBalancer.vrrpInterface: {iface} does not exist here (this host has:'
            ' $(ip -o link show | awk -F\': \' \'{print $2}\' | tr \'\\n\' \' \'))"; fi',
        ]
    return "\n".join(lines)


def preflight_command(t: Target) -> str:
    """The preflight runs as every step does (`shell_for`), after asking `sudo -n true`
    whether sudo needs a password: sudo then fails with its own terse message ("sudo: a
    password is required"), which says neither which host nor what to do."""
    if t.host.user == "root":
        return shell_for(t.host)
    why = (f"kube-ha: {t.key} ({t.host.name}): the SSH user {t.host.user} cannot run sudo"
           " without a password here: allow it passwordless sudo (NOPASSWD in sudoers), or"
           " connect as root. sudo said: ")
    return bounded(t.host, "bash -s", first=(
        f"out=$(timeout 30 sudo -n true 2>&1) || {{ printf '%s%s\\n' {quote(why)} \"$out\" >&2;"
        " exit 1; }; "))


def preflight_script(cluster: Cluster, t: Target) -> str:
    """Read-only: gathers facts, prints every problem (stack key first), exits 1 if any."""
    body = _lb(cluster, t) if t.role == "lb" else _node(cluster, t)
    return script(
        f"preflight {t.host.name}",
        # What it parses (bash's connect errors, ip, ss, openssl) in English: sshd's PAM and
        # sudo pass a host's LANG through, and a translated "Connection refused" is no refusal.
        "export LC_ALL=C",
        f"where={quote(f'{t.key} ({t.host.name})')}",
        HELPERS,
        _os(),
        body,
        _reachable(cluster, _paths(cluster, t)),
        'if [ "${#problems[@]}" -gt 0 ]; then',
        '  log "refusing before any host is changed:"',
        "  printf '  %s\\n' \"${problems[@]}\" >&2",
        "  exit 1",
        "fi",
        f'log "{t.host.name} is ready ({t.role})"',
    )
