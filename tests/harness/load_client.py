"""A load client to run inside a test network namespace: HTTPS GETs at a fixed rate for a
bounded time, one JSON line per request (wall-clock times, so the test can line them up with
the faults it injects from outside the namespace)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import asdict

from tests.harness.lab import https_get


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--server-name", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--rate", type=float, default=20)
    p.add_argument("--timeout", type=float, default=2)
    args = p.parse_args(argv)
    lock = threading.Lock()

    def one() -> None:
        r = https_get(args.address, args.port, args.server_name, args.ca, timeout=args.timeout,
                      clock=time.time)
        with lock:
            print(json.dumps(asdict(r)), flush=True)

    threads = []
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < min(args.duration, 120):
        t = threading.Thread(target=one, daemon=True)
        t.start()
        threads.append(t)
        n += 1
        time.sleep(max(0.0, t0 + n / args.rate - time.monotonic()))
    for t in threads:
        t.join(args.timeout + 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
