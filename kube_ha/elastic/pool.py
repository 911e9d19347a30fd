"""The elastic apiservers' pool workers are dedicated: tainted so that only those pods schedule
there (they hold the etcd client key and the service-account signing key). Pure.

One step on the bootstrap node converges the taints, after the pool workers joined: it taints
each worker in the pool and untaints each worker the last `up` had tainted that is no longer
in it (the membership record lists them, kube_ha.membership). It has no delete: taking a node
out of the pool, or switching the elastic apiservers off, is a change to that step's script.
Control-plane nodes in the pool are left alone: they carry kubeadm's own NoSchedule taint, and
ours would keep the controller-manager and scheduler Deployments (which tolerate only that one)
off them.

The taint is set with `kubectl taint`, not applied as a Node patch: `Node.spec.taints` is one
atomic list under server-side apply (core/v1 types.go `+listType=atomic`), so applying ours
would take the whole list, other owners' taints with it. `kubectl taint` reads the Node and
changes only this key (kubectl pkg/cmd/taint). `NoSchedule`: pods already running there stay
(drain the node first to move them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kube_ha.kubeadm.admin import KUBECTL
from kube_ha.model import Cluster
from kube_ha.shell import quote, script

POOL_TAINT = "kube-ha.io/elastic-apiserver"
POOL_TAINT_VALUE = "true"
POOL_TAINT_EFFECT = "NoSchedule"
# The membership record's key: the workers this run's pool step tainted.
RECORD_KEY = "elasticPool"


def pool_toleration() -> dict[str, str]:
    return {"key": POOL_TAINT, "operator": "Equal", "value": POOL_TAINT_VALUE,
            "effect": POOL_TAINT_EFFECT}


def tainted_pool(cluster: Cluster) -> tuple[str, ...]:
    """The pool's workers, which carry the taint (none with the elastic apiservers off)."""
    if not cluster.elastic_apiserver.enabled:
        return ()
    workers = {w.name for w in cluster.workers}
    return tuple(n for n in cluster.elastic_apiserver.pool_nodes if n in workers)


@dataclass(frozen=True)
class PoolTaints:
    taint: tuple[str, ...]
    untaint: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.taint or self.untaint)


UNCHANGED = PoolTaints((), ())


def pool_taints(previous: Mapping[str, Any] | None, cluster: Cluster) -> PoolTaints:
    """What the pool step does: taint the pool's workers; untaint the workers the last `up`
    tainted that are still listed but out of the pool. A worker removed from the config is
    drained and deleted by the workers step; nothing is left to untaint."""
    taint = tainted_pool(cluster)
    listed = {w.name for w in cluster.workers}
    before = (previous or {}).get(RECORD_KEY) or []
    untaint = tuple(sorted({str(n) for n in before} & listed - set(taint)))
    return PoolTaints(taint, untaint)


def pool_script(change: PoolTaints) -> str:
    """On the bootstrap node. A taint with `--overwrite` makes a second run the same request:
    without it kubectl refuses a taint the node already has (taint.go updateTaints). A Node
    that does not exist fails the step, naming it. Removing a taint that is not there fails
    with `taint "<key>:<effect>" not found` (utils.go deleteTaints), a Node that is gone with
    NotFound: both mean nothing is left to do, and only those exact messages pass."""
    spec = f"{POOL_TAINT}:{POOL_TAINT_EFFECT}"
    lines = [f"{KUBECTL} taint nodes {quote(n)} {POOL_TAINT}={POOL_TAINT_VALUE}:"
             f"{POOL_TAINT_EFFECT} --overwrite >&2" for n in change.taint]
    not_there = quote(f'error: taint "{spec}" not found')
    for n in change.untaint:
        gone = quote(f'Error from server (NotFound): nodes "{n}" not found')
        lines += [
            f"if out=$({KUBECTL} taint nodes {quote(n)} {spec}- 2>&1); then",
            '  log "$out"',
            f"elif [[ $out == {not_there} || $out == {gone} ]]; then",
            f"  log {quote(f'{n} left the elastic apiservers pool: it had no pool taint left')}",
            "else",
            '  printf "%s\\n" "$out" >&2; exit 1',
            "fi",
        ]
    return script("elastic pool", *lines)
