"""What the last `up` deployed, by address, and the edits against it that would destroy.

Pure: no Pulumi import; `components/config.py` reads the record back from the stack's outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kube_ha.elastic import firewall
from kube_ha.elastic.pool import RECORD_KEY, PoolTaints, pool_taints, tainted_pool
from kube_ha.model import Cluster, Host, parse_ip

# In the record of a run whose per-node steps are retained on delete (their deletes never run;
# a removed node is taken out by the removal steps). A record without it is an earlier
# kube-ha's, whose steps in the stack still carry deletes that would run on the removed node.
RETAINED = {"perNodeDeletes": "retained"}

# --- edits that would take the cluster apart -----------------------------------------------
# Every remote step is named after the cluster and its node, and a deleted step runs its
# delete (kubeadm reset, etcd member removal). So a new clusterName, a new name for a host at
# the same address, or a move between workers and controlPlane would re-create the steps and
# let the old ones' deletes reset hosts that are still wanted. The program records what it
# deployed (the `membership` stack output) and refuses such an edit, naming the key, before
# anything is registered (in preview as in up).

def membership_record(cluster: Cluster) -> dict[str, Any]:
    """What the next run compares against: the cluster's name, and each node by address: its
    name, its role, and how to reach it (a node removed from the config is retired with it);
    and the workers the pool step tainted (untainted when they leave the pool)."""
    return {"clusterName": cluster.name, **RETAINED, "nodes": {
        str(h.address): {"name": h.name, "role": group, "user": h.user, "port": h.port,
                         "hostKey": h.host_key}
        for group, hosts in cluster.node_groups for h in hosts},
        RECORD_KEY: list(tainted_pool(cluster)),
        firewall.RECORD_KEY: sorted(firewall.openings(cluster))}


@dataclass(frozen=True)
class SinceLastRun:
    """What this run does about what the last one left: the nodes it takes out (role, host),
    the pool taints it sets and removes, the nodes whose firewall it converges."""

    departed: list[tuple[str, Host]]
    pool: PoolTaints
    firewalled: list[Host]


def since_last_run(previous: Mapping[str, Any] | None, cluster: Cluster) -> SinceLastRun:
    return SinceLastRun(departed(previous, cluster), pool_taints(previous, cluster),
                        firewall.firewall_nodes(previous, cluster))


def departed(previous: Mapping[str, Any] | None, cluster: Cluster) -> list[tuple[str, Host]]:
    """(role, host) of each node the last run deployed whose address the config no longer
    lists: what this run takes out of the cluster and retires."""
    if not previous:
        return []
    kept = {str(h.address) for h in cluster.nodes}
    gone: list[tuple[str, Host]] = []
    for addr, v in (previous.get("nodes") or {}).items():
        address = parse_ip(addr)
        if addr in kept or address is None:
            continue
        gone.append((v.get("role") or "workers", Host(
            name=v.get("name") or addr, address=address, user=v.get("user") or "root",
            port=int(v.get("port") or 22), host_key=v.get("hostKey"))))
    return gone


def destructive_edits(previous: Mapping[str, Any] | None, cluster: Cluster
                      ) -> list[tuple[str, str]]:
    """(key, why) for each edit against the last deployed `membership_record` that would
    re-create steps whose deletes reset a wanted host. Nothing without a record."""
    if not previous:
        return []
    found: list[tuple[str, str]] = []
    old_name = previous.get("clusterName")
    if old_name and old_name != cluster.name:
        found.append(("clusterName", f"was {old_name!r}: every remote step is named after it, so "
                      "a new name re-creates them all and the old steps' deletes take the cluster "
                      f"apart. Fix: set it back to {old_name!r}."))
    old_nodes: dict[str, Any] = previous.get("nodes") or {}
    if any(k not in previous or previous[k] != v for k, v in RETAINED.items()):
        found += [(role, f"{h.name} ({h.address}) left the list, but this stack's steps were "
                   "recorded by an earlier kube-ha, whose steps remove a node by their own "
                   "deletes: on the node itself (a dead node fails the up; a bootstrap node "
                   "removes itself). Fix: run `pulumi up` once with it still listed (that "
                   "records the new removal steps), then remove it.")
                  for role, h in departed(previous, cluster)]
    boot = cluster.bootstrap
    deployed_cp = {a for a, v in old_nodes.items() if v.get("role") == "controlPlane"}
    if deployed_cp and str(boot.address) not in deployed_cp:
        i = cluster.control_plane.index(boot)
        found.append((f"controlPlane[{i}].bootstrap", f"{boot.name} ({boot.address}) would be "
                      "the bootstrap node, but the last `up` did not deploy it as a control-plane "
                      "node: a bootstrap node that is not yet a member would run `kubeadm init`, a "
                      "second cluster. Fix: mark `bootstrap: true` on a control-plane node the "
                      "last `up` deployed; add this one in the same or a later `up`."))
    by_name = {v.get("name"): (addr, v.get("role")) for addr, v in old_nodes.items()}
    for group, hosts in cluster.node_groups:
        for i, h in enumerate(hosts):
            old = old_nodes.get(str(h.address))
            old_role = old.get("role") if old else by_name.get(h.name, (None, None))[1]
            if old_role and old_role != group:
                found.append((f"{group}[{i}]", f"{h.name} ({h.address}) was in {old_role}: "
                              f"moving it deletes its {old_role} steps, whose delete resets the "
                              f"host. Fix: remove it in one `pulumi up`, then add it to {group} in "
                              "the next."))
            elif not old and h.name in by_name:
                found.append((f"{group}[{i}].address", f"{h.name} was at {by_name[h.name][0]}: "
                              "the old address is taken out of the cluster and reset while a "
                              "node of the same name is configured at the new one, and the "
                              "removal keeps what is still listed by name. Fix: remove the node"
                              " in one `pulumi up`, add it at its new address in the next."))
            elif old and old.get("name") != h.name:
                found.append((f"{group}[{i}].name", f"{h.address} was {old.get('name')!r}: a new "
                              "name re-creates this node's steps and the old ones' delete resets "
                              f"the host. Fix: keep {old.get('name')!r} (or remove the node in one"
                              " `pulumi up` and add it under the new name in the next)."))
    return found
