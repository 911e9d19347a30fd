"""What the last `up` deployed, by address, and the edits against it that would destroy.

Pure: no Pulumi import; `components/config.py` reads the record back from the stack's outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kube_ha.model import Cluster

# --- edits that would take the cluster apart -----------------------------------------------
# Every remote step is named after the cluster and its node, and a deleted step runs its
# delete (kubeadm reset, etcd member removal). So a new clusterName, a new name for a host at
# the same address, or a move between workers and controlPlane would re-create the steps and
# let the old ones' deletes reset hosts that are still wanted. The program records what it
# deployed (the `membership` stack output) and refuses such an edit, naming the key, before
# anything is registered (in preview as in up).

def membership_record(cluster: Cluster) -> dict[str, Any]:
    """What the next run compares against: the cluster's name, and each node's name and role
    by address."""
    return {"clusterName": cluster.name, "nodes": {
        str(h.address): {"name": h.name, "role": group}
        for group, hosts in cluster.node_groups for h in hosts}}


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
            elif old and old.get("name") != h.name:
                found.append((f"{group}[{i}].name", f"{h.address} was {old.get('name')!r}: a new "
                              "name re-creates this node's steps and the old ones' delete resets "
                              f"the host. Fix: keep {old.get('name')!r} (or remove the node in one"
                              " `pulumi up` and add it under the new name in the next)."))
    return found
