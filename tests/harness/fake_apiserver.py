"""A small TLS stand-in for kube-apiserver, enough for a load balancer to tell health from harm.

Serves /readyz, /livez, /healthz, /version, /slow (answers after 1.5 s) and echoes its name on
everything else. Faults are
real process states, driven by signals from the test:
- crash: SIGKILL (the kernel resets its connections);
- hang: SIGSTOP (the kernel still completes TCP handshakes, nothing answers);
- drain: SIGUSR1 — /readyz turns 500 for --drain-seconds while requests are still served, then
  the listener closes and the process exits, as kube-apiserver does with
  --shutdown-delay-duration;
- brownout: SIGUSR2 — /readyz answers only after --brownout-delay seconds, for
  --brownout-seconds, while every other request is answered at once (etcd slow, the watch cache
  still serving).
--readyz-latency makes every /readyz take that long (a healthy but loaded apiserver). A client
that asks for keep-alive keeps its connection (kubelets and controllers hold one for hours).
With --require-client-cert, health endpoints answer 401 to anonymous callers
(--anonymous-auth=false). With --goaway-chance, a kept connection is closed after that share of
its requests, the request itself answered: kube-apiserver's goaway filter (staging/src/k8s.io/
apiserver/pkg/server/filters/goaway.go) sends HTTP/2 GOAWAY so; here `Connection: close`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEALTH = {"/readyz", "/livez", "/healthz"}


class State:
    draining = False
    readyz_latency = 0.0
    brownout_until = 0.0
    brownout_delay = 0.0
    name = "apiserver"
    require_client_cert = False
    goaway_chance = 0.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        status, body = 200, {"server": State.name}
        if path in HEALTH:
            anonymous = not self.connection.getpeercert()  # type: ignore[attr-defined]
            if State.require_client_cert and anonymous:
                status, body = 401, {"kind": "Status", "reason": "Unauthorized"}
            elif path == "/readyz" and State.draining:
                status, body = 500, {"readyz": "shutting down"}
            else:
                if path == "/readyz":
                    slow = State.brownout_delay if time.monotonic() < State.brownout_until else 0
                    time.sleep(max(State.readyz_latency, slow))
                body = {"status": "ok", "server": State.name}
        elif path == "/slow":  # a long list or watch-like request still in flight
            time.sleep(1.5)
        elif path == "/version":
            body = {"major": "1", "minor": "32", "gitVersion": "v1.32.3", "server": State.name}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Backend", State.name)
        keep = self.headers.get("Connection", "").lower() == "keep-alive"
        if keep and State.goaway_chance and random.random() < State.goaway_chance:
            keep = False
        self.send_header("Connection", "keep-alive" if keep else "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = not keep


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], ctx: ssl.SSLContext):
        self.ctx = ctx
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.address_family = family
        super().__init__(addr, Handler)

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        pass  # peers (health checks, killed clients) hang up mid-response; that is not news

    def finish_request(self, request, client_address):  # type: ignore[no-untyped-def]
        # The TLS handshake runs in the request's thread, so one slow peer blocks nobody.
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca")
    p.add_argument("--require-client-cert", action="store_true")
    p.add_argument("--name", default="apiserver")
    p.add_argument("--drain-seconds", type=float, default=3.0)
    p.add_argument("--readyz-latency", type=float, default=0.0)
    p.add_argument("--brownout-delay", type=float, default=1.0)
    p.add_argument("--brownout-seconds", type=float, default=8.0)
    p.add_argument("--goaway-chance", type=float, default=0.0)
    args = p.parse_args(argv)
    State.readyz_latency = args.readyz_latency
    State.goaway_chance = args.goaway_chance

    State.name = args.name
    State.require_client_cert = args.require_client_cert
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    server = TLSServer((args.bind, args.port), ctx)

    def drain(*_: object) -> None:
        def run() -> None:
            State.draining = True
            time.sleep(args.drain_seconds)
            server.shutdown()

        threading.Thread(target=run, daemon=True).start()

    def brownout(*_: object) -> None:
        State.brownout_delay = args.brownout_delay
        State.brownout_until = time.monotonic() + args.brownout_seconds

    signal.signal(signal.SIGUSR1, drain)
    signal.signal(signal.SIGUSR2, brownout)
    signal.signal(signal.SIGTERM, drain)
    print("ready", flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    # In-flight requests finish before exit (a graceful apiserver does the same).
    deadline = time.monotonic() + 5
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main())
