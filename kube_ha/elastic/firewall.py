"""The network paths the elastic control plane adds, opened where firewalld runs, then checked
from the hosts that dial them. Pure.

Pool workers dial etcd (2379) on every control-plane node; the LB hosts (and, with node-local
proxies, every node) dial each pool node's elastic port. kubeadm's own ports are the operator's
(README, Ports); these exist only because of this program, so it opens them: a rich rule per
source address when only the LB hosts dial, the port itself when every node does. A converging
step on each such node keeps exactly what it added, listed in a file on the node: it removes
what is no longer wanted (a node leaving the pool, the elastic apiservers switched off) and
leaves alone a rule that was there before it. Then each pool worker, and each LB host, probes
what it dials (kube_ha.preflight's probe: a refusal passes, nothing listens there yet); the
Deployment waits for those checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kube_ha.elastic.pool import tainted_pool
from kube_ha.model import Cluster, Host, IPAddress
from kube_ha.paths import NODE_STATE
from kube_ha.preflight import elastic_paths, reach_check
from kube_ha.shell import heredoc, quote, script

ETCD_CLIENT_PORT = 2379
# What this program added to firewalld's permanent config on this node, one item a line.
OPENED = f"{NODE_STATE}/firewalld-opened"
# The membership record's key: the nodes whose firewall step opened something.
RECORD_KEY = "elasticFirewall"


@dataclass(frozen=True)
class Opening:
    """A TCP port opened to `sources` (None: to every host)."""

    port: int
    sources: tuple[IPAddress, ...] | None


def openings(cluster: Cluster) -> dict[str, tuple[Opening, ...]]:
    """Node name -> what its firewall must admit for the elastic control plane."""
    e = cluster.elastic_apiserver
    if not e.enabled:
        return {}
    out: dict[str, list[Opening]] = {}
    pool_workers = tuple(cluster.node(n).address for n in tainted_pool(cluster))
    if pool_workers:
        for cp in cluster.control_plane:
            out.setdefault(cp.name, []).append(Opening(ETCD_CLIENT_PORT, pool_workers))
    lbs = tuple(lb.address for lb in cluster.load_balancers)
    for n in e.pool_nodes:
        out.setdefault(n, []).append(Opening(e.port, None if cluster.node_local_proxy else lbs))
    return {n: tuple(o) for n, o in out.items()}


def firewall_nodes(previous: Mapping[str, Any] | None, cluster: Cluster) -> list[Host]:
    """Nodes that get a firewall step: those with something to open, and those the last `up`
    opened something on that are still listed (to close it)."""
    wanted = openings(cluster)
    before = {str(n) for n in (previous or {}).get(RECORD_KEY) or []}
    return [h for h in cluster.nodes if h.name in wanted or h.name in before]


def firewalld_items(opened: Sequence[Opening]) -> list[str]:
    """firewall-cmd's own words for each: `port=…` or `rich-rule=…` (--query-/--add-/--remove-)."""
    items: list[str] = []
    for o in opened:
        if o.sources is None:
            items.append(f"port={o.port}/tcp")
            continue
        items += [f'rich-rule=rule family="ipv{a.version}" source address="{a}" '
                  f'port port="{o.port}" protocol="tcp" accept' for a in o.sources]
    return items


_CONVERGE = """\
if ! { command -v firewall-cmd >/dev/null 2>&1 && systemctl is-active --quiet firewalld; }; then
  log "firewalld does not run here: nothing to open"
else
mkdir -p "$(dirname "$opened")"
touch "$opened"
changed=0 ours=""
while IFS= read -r item; do  # what this program opened before, no longer wanted
  if [ -n "$item" ] && ! grep -qxF -- "$item" <<<"$wanted"; then
    log "closing ${item#*=}"
    firewall-cmd --permanent "--remove-$item" >/dev/null
    changed=1
  fi
done < "$opened"
while IFS= read -r item; do
  [ -n "$item" ] || continue
  if ! firewall-cmd --permanent "--query-$item" >/dev/null 2>&1; then
    log "opening ${item#*=}"
    firewall-cmd --permanent "--add-$item" >/dev/null
    changed=1
  elif ! grep -qxF -- "$item" "$opened"; then
    log "already open (not by kube-ha, left as it is): ${item#*=}"
    continue
  fi
  ours+="$item"$'\\n'
done <<<"$wanted"
printf '%s' "$ours" > "$opened.tmp" && mv -f "$opened.tmp" "$opened"
if [ "$changed" = 1 ]; then firewall-cmd --reload >/dev/null; fi
fi"""


def firewall_script(opened: Sequence[Opening], check: str = "") -> str:
    """On a node: firewalld admits exactly `opened` of what this program opens (nothing when
    empty), when firewalld runs; never switched off. Then `check` (a reach_check)."""
    return script(
        "elastic firewall",
        f"opened={quote(OPENED)}",
        heredoc("wanted=$(cat", "\n".join(firewalld_items(opened))) + "\n)",
        _CONVERGE,
        check,
    )


def node_firewall_script(cluster: Cluster, node: Host) -> str:
    """A node's firewall step: what it admits, then (a pool worker) what it dials, probed."""
    dials = elastic_paths(cluster, node)
    check = reach_check(cluster, node, dials) if dials else ""
    return firewall_script(openings(cluster).get(node.name, ()), check)


def lb_reach_script(cluster: Cluster, lb: Host) -> str:
    """An LB host's probe of every pool node's elastic port ("" without a pool)."""
    dials = elastic_paths(cluster, lb)
    return script("elastic reach", reach_check(cluster, lb, dials)) if dials \
        else ""
