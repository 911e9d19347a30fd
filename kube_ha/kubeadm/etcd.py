"""etcd from a control-plane node: membership checks and safe member removal (quorum guard).

Reached through the host's etcdctl or, on a kubeadm node without one, `crictl exec` into the
etcd container. Each script checks first, so a second run does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from kube_ha.kubeadm.admin import KUBECTL, drain_or_cordon
from kube_ha.model import Host, url_host
from kube_ha.paths import PKI
from kube_ha.shell import indent, quote, script


@dataclass(frozen=True)
class EtcdAccess:
    """How a script reaches etcd. Defaults: the stacked etcd of a kubeadm control-plane node."""

    endpoints: str = "https://127.0.0.1:2379"
    cacert: str | None = f"{PKI}/etcd/ca.crt"
    cert: str | None = f"{PKI}/etcd/healthcheck-client.crt"
    key: str | None = f"{PKI}/etcd/healthcheck-client.key"

    def function(self) -> str:
        """`etcdctl_` shell function: the host's etcdctl, else the one in the etcd container."""
        tls = " ".join(
            f"--{flag}={quote(path)}"
            for flag, path in (("cacert", self.cacert), ("cert", self.cert), ("key", self.key))
            if path
        )
        return f"""\
etcdctl_() {{
  if command -v etcdctl >/dev/null 2>&1; then
    ETCDCTL_API=3 etcdctl --endpoints={quote(self.endpoints)} {tls} --command-timeout=10s "$@"
  else
    local id
    id=$(crictl ps -q --name '^etcd$' | head -n 1)
    [ -n "$id" ] || {{ log "no etcdctl and no etcd container on this host"; return 1; }}
    # The etcd image is distroless (sh and the etcd binaries, no `env`); etcdctl speaks the
    # v3 API by default since etcd 3.4, and kubeadm's etcd images are 3.5+.
    crictl exec "$id" etcdctl --endpoints={quote(self.endpoints)} {tls} \\
      --command-timeout=10s "$@"
  fi
}}"""


def membership_check_script(node: Host, etcd: EtcdAccess = EtcdAccess()) -> str:
    """Create/update step of a membership: the node is a started, voting etcd member (its
    delete removes it). `member list` also shows learners (kubeadm adds a member as a learner
    and promotes it, EtcdLearnerMode) and unstarted members: neither counts. Its simple output
    is `ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER`."""
    return script(
        f"membership {node.name}",
        etcd.function(),
        "members=$(etcdctl_ member list)",
        # etcdctl before 3.4 prints no IS LEARNER column (and knows no learners): empty counts.
        f"if awk -F', ' -v n={quote(node.name)} '$3 == n && $2 == \"started\" && $6 != \"true\""
        " { found = 1 } END { exit !found }' <<< \"$members\"; then",
        f'  log "{node.name} is a started, voting etcd member"',
        "else",
        f'  log "{node.name} is not a started, voting etcd member"; exit 1',
        "fi",
    )


def _member_removal_guard() -> list[str]:
    """Find the etcd member of node `$name` at `$address` (`target`, empty when it is not
    one) and refuse (exit 1, nothing changed) when removing it would leave no member, or fewer
    healthy members than a majority of the new count. `$address` is as the member's peer URL
    writes it (model.url_host: IPv6 in brackets). Needs `etcdctl_`."""
    return [
        "members=$(etcdctl_ member list)",
        'target=$(awk -F\', \' -v n="$name" -v a="$address" '
        '\'$3 == n || index($4, "//" a ":") { print $1 }\' <<< "$members")',
        'if [ -n "$target" ]; then',
        "  total=$(grep -c . <<< \"$members\")",
        "  after=$((total - 1))",
        '  if [ "$after" -lt 1 ]; then',
        '    log "refusing: $name is the last etcd member"',
        "    exit 1",
        "  fi",
        # Health of every member; the target's own health does not count towards what remains.
        "  health=$(etcdctl_ endpoint health --cluster 2>&1 || true)",
        "  healthy_after=0",
        '  while IFS=", " read -r id _ _ _ client _; do',
        '    [ "$id" = "$target" ] && continue',
        '    client=${client%%,*}',
        # A fixed-string prefix: an IPv6 URL's brackets would be a bracket expression to grep.
        '    if awk -v c="$client is healthy" \'index($0, c) == 1 { f = 1 } END { exit !f }\' '
        '<<< "$health"; then',
        "      healthy_after=$((healthy_after + 1))",
        "    fi",
        '  done <<< "$members"',
        "  need=$((after / 2 + 1))",
        '  if [ "$healthy_after" -lt "$need" ]; then',
        '    log "refusing to remove $name: $healthy_after healthy members would remain, '
        '$need of $after needed for quorum"',
        "    exit 1",
        "  fi",
        "fi",
    ]


def _member_remove() -> list[str]:
    """Remove member `target` (found by the guard). etcd refuses ("unhealthy cluster") until
    every peer has been connected for ~5 s, as right after a member restarts: its own check, so
    wait it out rather than fail."""
    return [
        'if [ -z "$target" ]; then',
        '  log "$name is not an etcd member: nothing to remove"',
        "else",
        "  for attempt in $(seq 15); do",
        '    if out=$(etcdctl_ member remove "$target" 2>&1); then break; fi',
        '    case "$out" in *"unhealthy cluster"*) ;; *) log "$out"; exit 1 ;; esac',
        '    [ "$attempt" = 15 ] && { log "$out"; exit 1; }',
        '    log "etcd not ready to reconfigure (attempt $attempt): retrying in 2 s"; sleep 2',
        "  done",
        '  log "removed etcd member $name ($target); $after members remain"',
        "fi",
    ]


def member_removal_script(node_name: str, node_address: str, etcd: EtcdAccess = EtcdAccess()
                          ) -> str:
    """Remove a node's etcd member through a healthy peer, refusing to break quorum.

    Refuses (exit 1, nothing changed) when it would remove the last member, or when the members
    left healthy would not be a majority of the new member count. No-op when already gone.
    """
    return script(f"remove-etcd-member {node_name}", etcd.function(),
                  f"name={quote(node_name)} address={quote(url_host(node_address))}",
                  *_member_removal_guard(), *_member_remove())


def control_plane_removals_script(departing: tuple[Host, ...] = (),
                                  etcd: EtcdAccess = EtcdAccess()) -> str:
    """On the bootstrap node, after every join: each control-plane node in `departing` (the
    last `up` deployed it, the config no longer lists it: kube_ha.membership.departed) is
    taken out of the cluster from here, one at a time, whether it still answers or not: the
    quorum guard first (a refused removal touches nothing: the node stays schedulable and its
    member stays), then drain (cordon if its kubelet is gone), the etcd member, the Node. Only
    those: a member the stack never listed is left alone. Until this step and the nodes'
    retire steps are done the stack keeps its last record, so the next `up` runs it again.
    The node's own `kubeadm reset` is its retire step."""
    leaving = " ".join(f"{h.name},{url_host(h.address)}" for h in departing)
    return script(
        "control-plane-removals",
        etcd.function(),
        f"departing={quote(leaving)}",
        "set -f  # the list is split on blanks, never globbed",
        "for entry in $departing; do",
        '  name=${entry%%,*} address=${entry#*,}',
        '  log "$name left the control plane: removing it from here"',
        *indent([*_member_removal_guard(), drain_or_cordon('"$name"'), *_member_remove(),
                 f'{KUBECTL} delete node "$name" --ignore-not-found --wait=false >&2',
                 'log "$name removed from the control plane"']),
        "done",
        '[ -n "$departing" ] || log "no control-plane node left the list"',
    )
