"""How the program scales: evaluate it under engine mocks for growing clusters.

For 3, 5 and 7 control-plane nodes with 10, 100 and 500 workers: wall time to evaluate the
program, resources registered, and the longest dependency chain of remote commands (what
bounds a real `pulumi up`); then remote steps per worker in every topology, and Kubernetes'
supported maximum, 5,000 nodes, with node-local proxies, against the time the SDK itself needs
to register as many bare remote Commands, measured in the same run.

Targets (issue 9): the chain does not grow with workers; at most 3 remote steps per worker, the
same in every topology; 3 control-plane nodes + 5,000 workers with node-local proxies within
1.5x the bare-Command floor.

    ./venv/bin/python -m bench.plan_scale            # ~3 minutes
    ./venv/bin/python -m bench.plan_scale --quick    # without the 5,000-worker rows
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import Any

from tests.harness.hosts import host
from tests.program import Run, run_bare_commands, run_program, scaled_stack

STEPS_PER_WORKER = 3
FLOOR_RATIO = 1.5
COMMAND = "command:remote:Command"


def steps_per_worker(run: Run, workers: list[dict[str, Any]]) -> float:
    """Remote steps that exist because of a worker: on it, or named for it on another host."""
    names = {w["name"] for w in workers}
    addresses = {w["address"] for w in workers}
    count = 0
    for rec in run.mocks.by_type(COMMAND):
        conn = rec.inputs["connection"]
        conn = conn.get("value", conn) if isinstance(conn, dict) else conn
        on_worker = conn.get("host") in addresses
        named = any(f"-{n}-" in rec.name for n in names)
        count += on_worker or named
    return count / len(workers)


def _topologies(workers: int) -> dict[str, dict[str, Any]]:
    base = scaled_stack(3, workers)
    vip = copy.deepcopy(base)
    vip["endpoint"].update(address="10.21.22.100", virtualIp=True)
    vip["loadBalancers"].append(host("haproxy-102", "10.21.22.102"))
    return {"LB": base, "VIP": vip, "node-local": scaled_stack(3, workers, node_local=True)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="skip the 5,000-worker rows")
    args = p.parse_args(argv)
    ok = True

    print(f"{'control plane':>13}{'workers':>9}{'seconds':>9}{'resources':>11}{'chain':>7}")
    chains: dict[int, set[int]] = {}
    for cp in (3, 5, 7):
        for workers in (10, 100, 500):
            start = time.perf_counter()
            run = run_program(scaled_stack(cp, workers))
            seconds = time.perf_counter() - start
            chain = run.monitor.command_chain_depth()
            chains.setdefault(cp, set()).add(chain)
            print(f"{cp:>13}{workers:>9}{seconds:>9.2f}{len(run.mocks.resources):>11}{chain:>7}",
                  flush=True)
    flat = all(len(c) == 1 for c in chains.values())
    ok &= flat
    print(f"chain independent of the worker count: {'met' if flat else 'MISSED'}\n")

    print(f"{'topology':>13}{'workers':>9}{'steps per worker':>18}")
    for name, raw in _topologies(50).items():
        per = steps_per_worker(run_program(raw), raw["workers"])
        ok &= per <= STEPS_PER_WORKER
        print(f"{name:>13}{50:>9}{per:>18.2f}", flush=True)
    print(f"at most {STEPS_PER_WORKER} remote steps per worker in every topology: "
          f"{'met' if ok else 'MISSED'}\n")

    if not args.quick:
        raw = scaled_stack(3, 5000, node_local=True)
        start = time.perf_counter()
        run = run_program(raw)
        seconds = time.perf_counter() - start
        resources = len(run.mocks.resources)
        chain = run.monitor.command_chain_depth()
        floor = run_bare_commands(resources)
        ratio = seconds / floor
        ok &= ratio <= FLOOR_RATIO
        print(f"3 CP + 5,000 workers, node-local proxies: {seconds:.1f} s for {resources} "
              f"resources, chain {chain}; {resources} bare Commands: {floor:.1f} s; "
              f"ratio {ratio:.2f} (target <= {FLOOR_RATIO}): {'met' if ratio <= FLOOR_RATIO else 'MISSED'}")
    print(f"all targets: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
