"""How the program scales: evaluate it under engine mocks for growing clusters.

For 3, 5 and 7 control-plane nodes with 10, 100 and 500 workers: wall time to evaluate the
program, resources registered, and the longest dependency chain of remote commands (what
bounds a real `pulumi up`). Target: 3 CP + 500 workers in under 10 s; the chain must not grow
with workers.

    ./venv/bin/python -m bench.plan_scale
"""

from __future__ import annotations

import sys
import time

from tests.program import run_program, scaled_stack

TARGET_S = 10.0


def main() -> int:
    print(f"{'control plane':>13}{'workers':>9}{'seconds':>9}{'resources':>11}{'chain':>7}")
    chains: dict[int, set[int]] = {}
    ok = True
    for cp in (3, 5, 7):
        for workers in (10, 100, 500):
            start = time.perf_counter()
            run = run_program(scaled_stack(cp, workers))
            seconds = time.perf_counter() - start
            chain = run.monitor.command_chain_depth()
            chains.setdefault(cp, set()).add(chain)
            print(f"{cp:>13}{workers:>9}{seconds:>9.2f}{len(run.mocks.resources):>11}{chain:>7}",
                  flush=True)
            if cp == 3 and workers == 500:
                ok &= seconds < TARGET_S
    start = time.perf_counter()
    run = run_program(scaled_stack(3, 500, node_local=True))
    seconds = time.perf_counter() - start
    chain = run.monitor.command_chain_depth()
    print(f"{'3 + proxies':>13}{500:>9}{seconds:>9.2f}{len(run.mocks.resources):>11}{chain:>7}"
          "   (nodeLocalProxy: haproxy on every worker)")
    ok &= seconds < TARGET_S
    flat = all(len(c) == 1 for c in chains.values())
    print(f"3 CP + 500 workers under {TARGET_S:.0f} s, chain independent of workers: "
          f"{'met' if ok and flat else 'MISSED'}")
    return 0 if ok and flat else 1


if __name__ == "__main__":
    sys.exit(main())
