"""Failover through the LB: real haproxy on loopback, three fake apiservers.

One fault per run, against our rendered configs (LB and node-local proxy) and the two references
(the seed write-up's, the kubeadm HA guide's) in the same run:
- crash (SIGKILL), hang (SIGSTOP: the kernel accepts, nothing answers), drain (readyz 500,
  then exit), reload of haproxy under load, brownout (every backend's /readyz takes 1 s for
  8 s, past the check timeout, while requests are still answered), and slow-readyz (no fault:
  every /readyz takes 300 ms, a loaded but healthy apiserver).

Two kinds of client:
- one-shot (`kubectl`): a new TLS connection per request, ~50/s, every 10th a slow 1.5 s one
  (a large list); prints failed requests, the failover window and when the watched server was
  marked DOWN;
- long-lived (kubelets, controllers): 30 clients, each with one kept connection and a request
  every 0.5 s, abandoning a silent connection after 45 s (client-go's HTTP/2 health check:
  ReadIdleTimeout 30 s + PingTimeout 15 s); prints each config's worst stall (longest gap
  between two answers of one client), clients stalled over 40 s (the node-monitor grace) and
  reconnections.

    ./venv/bin/python -m bench.lb_failover                     # everything, ~25 minutes
    ./venv/bin/python -m bench.lb_failover --mode long-lived --faults hang brownout
    ./venv/bin/python -m bench.lb_failover --configs ours --faults hang --runs 5
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.harness import reference_configs
from tests.harness.lab import Lab, LongLivedReport, Report, keep_alive_clients, node_local, ours

# The targets (issues 14 and 15).
HUNG_DOWN_S = 1.5           # a hung apiserver out of rotation
LB_STALL_S = 2.0            # worst long-lived stall through the LB
NODE_LOCAL_STALL_S = 12.0   # ... through the gentler node-local proxies
NODE_MONITOR_GRACE_S = 40.0  # no client stalled longer, anywhere

CONFIGS: dict[str, tuple[Callable[[Lab], str], dict[str, object]]] = {
    "ours": (ours, {}),
    "ours node-local": (node_local, {}),
    # Cut every session of a server marked DOWN, whatever the others do (the plain haproxy
    # option): shown to compare with the session guard.
    "ours+shutdown-sessions": (ours, {"healthCheck": {"shutdownSessionsOnDown": True}}),
    "seed (tcp-check 10s)": (reference_configs.seed, {}),
    "kubeadm HA guide": (reference_configs.kubeadm_guide, {}),
}
FAULTS = ("crash", "hang", "drain", "reload", "brownout", "slow-readyz")
LONG_LIVED_FAULTS = ("crash", "hang", "drain", "brownout")


def _lab(config: str, d: str, fault: str) -> Lab:
    renderer, overrides = CONFIGS[config]
    return Lab(Path(d), renderer=renderer, config_overrides=overrides,
               readyz_latency=0.3 if fault == "slow-readyz" else 0.0)


def _action(lab: Lab, fault: str) -> Callable[[], None] | None:
    return {
        "crash": lambda: lab.crash("cp-2"),
        "hang": lambda: lab.hang("cp-2"),
        "drain": lambda: lab.drain("cp-2"),
        "reload": lab.reload,
        "brownout": lab.brownout,
        "slow-readyz": None,
    }[fault]


def one_shot(config: str, fault: str, duration: float, rate: float, slow_every: int) -> Report:
    with tempfile.TemporaryDirectory(prefix="kube-ha-bench-") as d, _lab(config, d, fault) as lab:
        lab.start()
        lab.wait_states({s.name: "UP" for s in lab.servers}, 15)
        watch = None if fault in ("reload", "brownout") else "cp-2"
        report = lab.load(duration, rate, _action(lab, fault), fault_after=2.0, watch=watch,
                          slow_every=slow_every)
        if fault == "slow-readyz":  # never marked DOWN while loaded but healthy
            report.marked_down_s = None if all(
                v == "UP" for v in lab.states().values()) else 0.0
        return report


def long_lived(config: str, fault: str, duration: float) -> LongLivedReport:
    with tempfile.TemporaryDirectory(prefix="kube-ha-bench-") as d, _lab(config, d, fault) as lab:
        lab.start()
        lab.wait_states({s.name: "UP" for s in lab.servers}, 15)
        return keep_alive_clients(lab, 30, duration, fault=_action(lab, fault), fault_after=5.0)


def run_one_shot(args: argparse.Namespace) -> bool:
    print("one-shot clients (a new connection per request)")
    print(f"{'config':<26}{'fault':<13}{'requests':>9}{'failed':>8}{'after fault':>12}"
          f"{'window s':>10}{'marked DOWN s':>15}")
    ok = True
    for config in args.configs:
        for fault in args.faults:
            reports = [one_shot(config, fault, args.duration, args.rate, args.slow_every)
                       for _ in range(args.runs)]
            failed = sum(len(r.failed) for r in reports)
            after = sum(len(r.failed_after_fault) for r in reports)
            window = max(r.window_s for r in reports)
            downs = [r.marked_down_s for r in reports]
            down = "never" if None in downs else f"{max(d for d in downs if d is not None):.2f}"
            if fault in ("reload", "brownout"):
                down = "-"
            total = sum(len(r.results) for r in reports)
            print(f"{config:<26}{fault:<13}{total:>9}{failed:>8}{after:>12}{window:>10.2f}"
                  f"{down:>15}", flush=True)
            if config != "ours":
                continue
            if fault == "hang":
                ok &= down != "never" and float(down) <= HUNG_DOWN_S
            elif fault == "crash":
                # A request inside a session to the killed process dies with it (no TCP proxy
                # can save it); every request started after the kill must succeed.
                ok &= after == 0
            elif fault == "slow-readyz":
                ok &= failed == 0 and down == "never"
            else:
                ok &= failed == 0
    print(f"targets (ours): zero failures for drain, reload, brownout, a loaded /readyz and after "
          f"a crash; a hung server DOWN within {HUNG_DOWN_S} s; a 300 ms /readyz never DOWN: "
          f"{'met' if ok else 'MISSED'}\n")
    return ok


def run_long_lived(args: argparse.Namespace) -> bool:
    print(f"long-lived clients (30 kept connections, a request each 0.5 s, {args.ll_duration:.0f} s)")
    print(f"{'config':<26}{'fault':<13}{'worst stall s':>14}{'> 40 s':>8}{'reconnects':>12}")
    ok = True
    for config in args.configs:
        for fault in (f for f in args.faults if f in LONG_LIVED_FAULTS):
            reports = [long_lived(config, fault, args.ll_duration) for _ in range(args.runs)]
            worst = max(r.worst_stall_s for r in reports)
            over = sum(r.stalled_over(NODE_MONITOR_GRACE_S) for r in reports)
            reconnects = max(r.reconnects for r in reports)
            print(f"{config:<26}{fault:<13}{worst:>14.2f}{over:>8}{reconnects:>12}", flush=True)
            if config.startswith("ours") and "shutdown" not in config:
                limit = NODE_LOCAL_STALL_S if "node-local" in config else LB_STALL_S
                ok &= over == 0 and worst <= (limit if fault == "hang" else NODE_MONITOR_GRACE_S)
                if fault == "brownout":  # no reconnect storm: nobody is cut
                    ok &= reconnects == 0
    print(f"targets (ours): hung apiserver, worst stall <= {LB_STALL_S} s through the LB, <= "
          f"{NODE_LOCAL_STALL_S} s through node-local proxies; no client over "
          f"{NODE_MONITOR_GRACE_S:.0f} s; a brownout cuts no session: {'met' if ok else 'MISSED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mode", choices=("all", "one-shot", "long-lived"), default="all")
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--faults", nargs="*", default=list(FAULTS), choices=FAULTS)
    p.add_argument("--duration", type=float, default=24.0, help="seconds of one-shot load per run")
    p.add_argument("--ll-duration", type=float, default=55.0,
                   help="seconds of long-lived load per run (> 45 s shows client-go's give-up)")
    p.add_argument("--rate", type=float, default=50.0, help="one-shot requests per second")
    p.add_argument("--runs", type=int, default=1, help="runs per row (worst shown)")
    p.add_argument("--slow-every", type=int, default=10,
                   help="every Nth one-shot request takes 1.5 s to answer (0: none), as lists do")
    args = p.parse_args(argv)
    # Stopped from outside: unwind, so every lab ends the processes it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ok = True
    if args.mode in ("all", "one-shot"):
        ok &= run_one_shot(args)
    if args.mode in ("all", "long-lived"):
        ok &= run_long_lived(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
