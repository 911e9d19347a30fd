"""How requests spread over the apiservers after the HPA scales out, with long-lived clients.

Real haproxy on loopback with the config this program renders (leastconn; the elastic pool's
servers listed, DOWN until their pods serve), three static fake apiservers, three pool ones
started at the scale-out. Kubelet-like clients each keep one TLS connection through the LB and
send requests back to back at `--rate` per second. An apiserver run with `--goaway-chance`
ends a connection after that share of requests, the request itself served (kube-apiserver's
goaway filter, staging/src/k8s.io/apiserver/pkg/server/filters/goaway.go); the stand-in does the
same over HTTP/1.1 (`Connection: close` on the response), and the client reconnects through the
LB, as client-go does on GOAWAY. Without it, a connection stays where it was made.

Prints the share of requests the new (pool) backends answer in each 10 s after the scale-out,
with recycling and without. Target (issue 16): with recycling, after 60 s the new backends carry
within 20 % of their fair share (3 of 6 backends: 0.50, so at least 0.40).

    ./venv/bin/python -m bench.elastic_spread            # both runs, ~2.5 minutes
    ./venv/bin/python -m bench.elastic_spread --clients 60 --rate 10 --chance 0.001 0
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

from kube_ha.elastic.manifests import GOAWAY_CHANCE
from tests.harness.lab import Lab, read_response

WINDOW_S = 10.0
WITHIN = 0.20  # of the fair share


def spread(chance: float, clients: int, rate: float, warmup: float, after: float
           ) -> list[tuple[float, float, int]]:
    """[(window end s after the scale-out, share answered by new backends, requests)]."""
    with tempfile.TemporaryDirectory(prefix="kube-ha-spread-") as d, \
            Lab(Path(d), backends_n=3, pool_n=3, goaway_chance=chance) as lab:
        static, pool = lab.servers[:3], lab.servers[3:]
        lab.start(backends=static)
        lab.wait_states({s.name: "UP" for s in static}, 15)
        ctx = ssl.create_default_context(cafile=str(lab.ca_file))
        answers: list[tuple[float, str]] = []
        lock = threading.Lock()
        stop = time.monotonic() + warmup + after + 5

        def client() -> None:
            tls: ssl.SSLSocket | None = None
            while time.monotonic() < stop:
                try:
                    if tls is None:
                        raw = socket.create_connection((lab.endpoint, lab.port), timeout=5)
                        tls = ctx.wrap_socket(raw, server_hostname=lab.dns_name)
                        tls.settimeout(5)
                    tls.sendall(f"GET /version HTTP/1.1\r\nHost: {lab.dns_name}\r\n"
                                "Connection: keep-alive\r\n\r\n".encode())
                    backend, closing = read_response(tls)
                    with lock:
                        answers.append((time.monotonic(), backend))
                    if closing:
                        tls.close()
                        tls = None
                    time.sleep(1 / rate)
                except (OSError, ValueError):
                    if tls is not None:
                        with contextlib.suppress(OSError):
                            tls.close()
                    tls = None
                    time.sleep(0.05)
            if tls is not None:
                with contextlib.suppress(OSError):
                    tls.close()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(warmup)
        for s in pool:  # the HPA's new pods start serving
            lab.start_backend(s)
        scaled = time.monotonic()
        time.sleep(after)
        for t in threads:
            t.join(10)
        new = {s.name for s in pool}
        rows = []
        for end in range(int(WINDOW_S), int(after) + 1, int(WINDOW_S)):
            got = [b for t, b in answers if scaled + end - WINDOW_S <= t < scaled + end]
            rows.append((float(end), sum(b in new for b in got) / max(1, len(got)), len(got)))
        return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=30)
    p.add_argument("--rate", type=float, default=20.0, help="requests per second per client")
    p.add_argument("--chance", type=float, nargs="*",
                   default=[float(GOAWAY_CHANCE), 0.0],
                   help="goaway chances to run (the elastic apiservers' first, then none)")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--after", type=float, default=60.0, help="seconds measured after scale-out")
    args = p.parse_args(argv)
    fair = 3 / 6
    ok = True
    print(f"{args.clients} long-lived clients, {args.rate:g} requests/s each; 3 static backends,"
          f" 3 new ones at t=0; fair share of the new: {fair:.2f}")
    for chance in args.chance:
        rows = spread(chance, args.clients, args.rate, args.warmup, args.after)
        label = f"goaway chance {chance:g}" if chance else "no recycling"
        print(f"\n{label}: share of requests the new backends answer")
        for end, share, n in rows:
            print(f"  {end - WINDOW_S:4.0f}-{end:3.0f} s  {share:5.2f}  ({n} requests)")
        final = rows[-1][1]
        if chance:
            met = final >= fair * (1 - WITHIN)
            ok = ok and met
            print(f"  after {args.after:g} s: {final:.2f} of requests, target >= "
                  f"{fair * (1 - WITHIN):.2f} (within {WITHIN:.0%} of fair share): "
                  f"{'met' if met else 'NOT met'}")
            per_client_s = 1 / (chance * args.rate)
            print(f"  a connection moves after {1 / chance:.0f} requests on average: "
                  f"{per_client_s:.0f} s at {args.rate:g} requests/s")
        else:
            print(f"  after {args.after:g} s: {final:.2f} of requests (connections stay where"
                  " they were made)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
