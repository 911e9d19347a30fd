"""The in-cluster `apiserver` Service topology (`endpoint.type: service`, seed 002's own design).
Pure.

Nodes reach the apiservers through a fixed ClusterIP (the Service `kube-system/apiserver`,
selecting the static kube-apiserver mirror pods, whose readiness gives its endpoints). But
kube-proxy needs an apiserver before it can program that ClusterIP, so the name nodes dial
(`endpoint.dnsName`) is kept in each node's /etc/hosts by a switcher: a control-plane address
that answers /readyz until the ClusterIP answers, then the ClusterIP; back to a control-plane
address when it stops answering. It runs from the node's own step (before anything dials the
name), at boot before the kubelet, and every few seconds from a timer. kube-proxy (hostNetwork)
keeps the copy of /etc/hosts the kubelet gave its container at start ("managed by Kubelet and
can be overwritten on Pod creation/restart", Kubernetes docs, HostAliases), so a change of
target restarts its container: the kubelet starts it again with the new file.

The same hosts-entry function as `endpoint.manageHostsEntry` writes the line
(kube_ha.hosts_entry).
"""

from __future__ import annotations

from typing import Any

from kube_ha.hosts_entry import HOSTS, HOSTS_ENTRY_FN, MARK
from kube_ha.model import Cluster, host_port
from kube_ha.paths import PKI
from kube_ha.shell import quote, script, write_file

SERVICE_NAME = "apiserver"
SERVICE_NAMESPACE = "kube-system"
# kubeadm's static kube-apiserver pod labels (its mirror pod carries them): the selector.
MIRROR_LABELS = {"component": "kube-apiserver", "tier": "control-plane"}
SWITCH = "/usr/local/sbin/kube-ha-endpoint-switch"
UNIT = "/etc/systemd/system/kube-ha-endpoint-switch.service"
TIMER = "/etc/systemd/system/kube-ha-endpoint-switch.timer"
INTERVAL_S = 5


def apiserver_service(cluster: Cluster) -> dict[str, Any]:
    """The Service on the fixed ClusterIP, endpoints from the static apiservers' readiness."""
    ep = cluster.endpoint
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE,
                     "labels": {"app.kubernetes.io/managed-by": "kube-ha"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": str(ep.address),
            "selector": dict(MIRROR_LABELS),
            "ports": [{"name": "https", "protocol": "TCP", "port": ep.port,
                       "targetPort": cluster.apiserver_port}],
        },
    }


def switch_program(name: str, service_ip: str, port: int, control_plane: list[str],
                   apiserver_port: int) -> str:
    """The switcher itself: which address `name` maps to, probed over HTTPS with the cluster
    CA (`--resolve` sends the name, which the serving certificates carry)."""
    candidates = " ".join(quote(a) for a in control_plane)
    return script(
        "endpoint switch",
        HOSTS_ENTRY_FN,
        f"name={quote(name)} service_ip={quote(service_ip)} port={port}",
        f"apiserver_port={apiserver_port}",
        f"hosts={HOSTS}",
        f"ca=${{KUBE_HA_CA:-{PKI}/ca.crt}}",
        # Before a node joined it has no CA file yet: the probe then only asks whether an
        # apiserver answers (kubeadm's join verifies the cluster by its CA hash itself).
        "ready() {  # address port: /readyz answers 200, the certificate verified for the name",
        '  local verify=(--cacert "$ca") at=$1; [ -f "$ca" ] || verify=(--insecure)',
        # curl's --resolve takes an IPv6 address in brackets (curl(1), --resolve).
        '  case $at in *:*) at="[$at]" ;; esac',
        '  curl -fs -o /dev/null --max-time 2 "${verify[@]}" --resolve "$name:$2:$at"'
        ' "https://$name:$2/readyz" 2>/dev/null',
        "}",
        f"current=$(awk -v n=\"$name\" '$2 == n && / {MARK}$/ {{ print $1 }}' \"$hosts\" | head -n 1)",
        'if ready "$service_ip" "$port"; then',
        '  target=$service_ip',
        "else",
        '  target=""',
        f"  for address in {candidates}; do",
        '    if ready "$address" "$apiserver_port"; then target=$address; break; fi',
        "  done",
        "fi",
        'if [ -z "$target" ]; then',
        # Nothing answers (a new cluster before init, all down): keep what is there; with no
        # entry yet, the first control-plane node listed (the bootstrap node).
        f"  target=${{current:-{quote(control_plane[0])}}}",
        "fi",
        'if [ "$target" != "$current" ]; then',
        '  hosts_entry "$name" "$target"',
        "  if command -v crictl >/dev/null 2>&1; then",
        "    for id in $(crictl ps -q --name '^kube-proxy$' 2>/dev/null); do",
        '      crictl stop "$id" >/dev/null && log "kube-proxy restarted (its /etc/hosts is a'
        ' copy)"',
        "    done",
        "  fi",
        "fi",
    )


def switch_install_lines(cluster: Cluster) -> list[str]:
    """A node step's first lines with `endpoint.type: service`: the switcher, its unit (before
    the kubelet, at boot) and timer installed, and run once now."""
    ep = cluster.endpoint
    if not ep.service or not ep.dns_name:
        return []
    program = switch_program(ep.dns_name, str(ep.address), ep.port,
                             [str(h.address) for h in (cluster.bootstrap,
                                                       *cluster.joining_control_plane)],
                             cluster.apiserver_port)
    unit = (f"[Unit]\nDescription=kube-ha: the endpoint name {ep.dns_name} in /etc/hosts\n"
            "Before=kubelet.service\nWants=network-online.target\n"
            "After=network-online.target\n\n[Service]\nType=oneshot\n"
            f"ExecStart={SWITCH}\n\n[Install]\nWantedBy=multi-user.target\n")
    timer = (f"[Unit]\nDescription=kube-ha: follow the endpoint {host_port(ep.address, ep.port)}"
             f"\n\n[Timer]\nOnActiveSec={INTERVAL_S}s\nOnUnitActiveSec={INTERVAL_S}s\n"
             "AccuracySec=1s\n\n[Install]\nWantedBy=timers.target\n")
    return [
        "units=0",
        write_file(SWITCH, program, "0755", flag="units"),
        write_file(UNIT, unit, flag="units"),
        write_file(TIMER, timer, flag="units"),
        'if [ "$units" = 1 ]; then systemctl daemon-reload; fi',
        "systemctl enable --quiet kube-ha-endpoint-switch.service kube-ha-endpoint-switch.timer",
        "systemctl start kube-ha-endpoint-switch.timer",
        SWITCH,
    ]


def retire_lines() -> str:
    """On a node leaving the cluster (its retire step, after `kubeadm reset`, which knows
    nothing of these): the switcher, its unit and timer, and every /etc/hosts line of ours."""
    return "\n".join([
        f"if [ -f {TIMER} ] || [ -f {SWITCH} ]; then",
        "  systemctl disable --now kube-ha-endpoint-switch.timer kube-ha-endpoint-switch.service"
        " >/dev/null 2>&1 || true",
        f"  rm -f {SWITCH} {UNIT} {TIMER}",
        "  systemctl daemon-reload",
        '  log "the endpoint switcher removed"',
        "fi",
        f"hosts={HOSTS}",
        f"if grep -q ' {MARK}$' \"$hosts\" 2>/dev/null; then",
        "  tmp=$(mktemp)",
        f"  grep -v ' {MARK}$' \"$hosts\" > \"$tmp\" || true",
        '  cat "$tmp" > "$hosts"; rm -f "$tmp"',
        '  log "the endpoint\'s line of kube-ha removed from $hosts"',
        "fi",
    ])
