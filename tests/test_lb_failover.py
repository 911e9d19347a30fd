"""Failover through our rendered haproxy.cfg under load: real haproxy, loopback only.

Each run is bounded (about 10 s of load at 40 requests/s) and ends every process it started.
A request already inside a TCP session to a backend that is SIGKILLed at that instant cannot
be saved by any TCP proxy, so crash runs count requests *started after* the fault; the
benchmark (bench/lb_failover.py) prints both figures.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.harness import pki, reference_configs
from tests.harness.lab import Lab, keep_alive_clients

pytestmark = pytest.mark.slow
RATE = 40.0


def _started(tmp_path: Path, **kwargs: object) -> Lab:
    """A started lab with every server UP; on failure its processes are ended at once (the
    caller's `with` has not begun yet, so nothing else would end them)."""
    lab = Lab(tmp_path, **kwargs)  # type: ignore[arg-type]
    try:
        lab.start()
        lab.wait_states({s.name: "UP" for s in lab.servers}, 10)
    except BaseException:
        lab.close()
        raise
    return lab


def test_killed_backend_fails_no_request(tmp_path: Path) -> None:
    with _started(tmp_path) as lab:
        report = lab.load(9, RATE, lambda: lab.crash("cp-2"), fault_after=2, watch="cp-2")
    assert report.failed_after_fault == [], report.summary()
    assert len(report.failed) <= 1, report.summary()
    assert report.marked_down_s is not None


def test_draining_backend_fails_no_request(tmp_path: Path) -> None:
    with _started(tmp_path, drain_seconds=4) as lab:
        report = lab.load(10, RATE, lambda: lab.drain("cp-2"), fault_after=2, watch="cp-2")
        exited = lab.server("cp-2").proc.poll() is not None  # type: ignore[union-attr]
    assert report.failed == [], report.summary()
    assert exited, "the drained apiserver should have exited during the run"
    assert report.marked_down_s is not None and report.marked_down_s < 4


def test_hung_backend_leaves_rotation_within_3s(tmp_path: Path) -> None:
    with _started(tmp_path) as lab:
        report = lab.load(9, RATE, lambda: lab.hang("cp-2"), fault_after=2, watch="cp-2")
    assert report.marked_down_s is not None and report.marked_down_s < 3.0, report.summary()
    late = [r for r in report.failed if r.start - report.fault_at >= 3.0]
    assert late == [], report.summary()
    assert report.window_s < 3.0, report.summary()


def test_reload_under_load_fails_no_request(tmp_path: Path) -> None:
    with _started(tmp_path) as lab:
        report = lab.load(8, RATE, lab.reload, fault_after=2)
        states = lab.states()
    assert report.failed == [], report.summary()
    assert set(states.values()) == {"UP"}


def test_reload_keeps_a_down_server_down(tmp_path: Path) -> None:
    """The server-state file: a hung server stays out of rotation across a reload."""
    with _started(tmp_path) as lab:
        lab.hang("cp-3")
        lab.wait_states({"cp-3": "DOWN"}, 5)
        report = lab.load(5, RATE, lab.reload, fault_after=1)
    assert report.failed == [], report.summary()


def test_seed_config_loses_requests_when_a_backend_dies(tmp_path: Path) -> None:
    """The same harness fails the seed write-up's config: the test can tell them apart."""
    with _started(tmp_path, renderer=reference_configs.seed) as lab:
        report = lab.load(6, RATE, lambda: lab.crash("cp-2"), fault_after=1)
    assert len(report.failed_after_fault) > 10, report.summary()


def test_a_long_lived_client_on_a_hung_backend_is_cut_and_reconnects_elsewhere(
        tmp_path: Path) -> None:
    """Kubelets and controllers keep one connection; on a hung apiserver client-go only gives
    up after its HTTP/2 health check (30 s + 15 s). The session guard cuts the sessions of a
    server that is DOWN with a dead check while another is UP: they reconnect to a live one.
    (A behaviour test with a generous bound; the figures are bench/lb_failover.py's.)"""
    with _started(tmp_path) as lab:
        report = keep_alive_clients(lab, 9, 12, fault=lambda: lab.hang("cp-2"), fault_after=3)
        states = lab.states()
    assert states["cp-2"].startswith("DOWN")
    on_hung = [c for c in report.successes if any(b == "cp-2" for t, b in c if t < report.fault_at)]
    assert on_hung, "no client was on the hung backend: nothing was tested"
    assert report.reconnects >= len(on_hung)
    for client in report.successes:
        after = [b for t, b in client if t > report.fault_at]
        assert after and "cp-2" not in after, client[-3:]
    assert report.worst_stall_s < 5.0, report.stalls()


def test_brownout_every_readyz_slow_the_lb_still_serves_and_cuts_nobody(tmp_path: Path) -> None:
    """etcd stalls: /readyz takes 1 s on every apiserver (past the 450 ms check timeout) while
    requests are still answered. Every checked server goes DOWN; the unchecked fail-open twins
    carry the traffic and the session guard cuts no session (a reconnect storm on overloaded
    apiservers is what must not happen)."""
    all_down: list[bool] = []

    def watch(lab: Lab) -> None:
        deadline = time.monotonic() + 9
        while time.monotonic() < deadline and not all_down:
            states = lab._try_states()
            if states and all(v.startswith("DOWN") for v in states.values()):
                all_down.append(True)
            time.sleep(0.05)

    with _started(tmp_path, brownout_delay=1.0, brownout_seconds=6.0) as lab:
        watcher = threading.Thread(target=watch, args=(lab,), daemon=True)
        watcher.start()
        held = keep_alive_clients(lab, 6, 9, fault=lab.brownout, fault_after=1)
        watcher.join(5)
    assert all_down, "the brownout never took every checked server DOWN: nothing was tested"
    assert held.reconnects == 0, "the brownout cut sessions"
    assert held.worst_stall_s < 1.5, held.stalls()


def test_brownout_one_shot_requests_all_succeed(tmp_path: Path) -> None:
    with _started(tmp_path, brownout_delay=1.0, brownout_seconds=6.0) as lab:
        report = lab.load(9, RATE, lab.brownout, fault_after=1)
    assert report.failed == [], report.summary()


def test_a_loaded_but_healthy_readyz_is_never_marked_down(tmp_path: Path) -> None:
    """A /readyz that takes 300 ms stays inside the check timeout: nothing flaps."""
    with _started(tmp_path, readyz_latency=0.3) as lab:
        seen: set[str] = set()
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            seen |= set(lab.states().values())
            time.sleep(0.1)
        assert lab.request().ok
    assert seen == {"UP"}, seen


def test_a_lone_server_whose_readyz_stops_answering_has_its_sessions_cut(tmp_path: Path) -> None:
    """Its TLS still completes but /readyz never answers (check L7TOUT) while the others are
    healthy: after one detection time the guard cuts its sessions and they move. haproxy shows
    a running check's last result as "* L7TOUT" (stats.c, CHK_ST_INPROGRESS): the guard must
    read through that prefix, or it never cuts a slow server."""
    with _started(tmp_path, brownout_delay=60.0, brownout_seconds=60.0) as lab:
        proc = lab.server("cp-2").proc
        assert proc is not None

        def fault() -> None:
            os.kill(proc.pid, signal.SIGUSR2)  # /readyz on cp-2 alone stops answering

        report = keep_alive_clients(lab, 9, 12, fault=fault, fault_after=2)
    on_slow = [c for c in report.successes if any(b == "cp-2" for t, b in c if t < report.fault_at)]
    assert on_slow, "no client was on cp-2: nothing was tested"
    moved = [c for c in on_slow if c and c[-1][1] != "cp-2"]
    assert len(moved) == len(on_slow), [c[-1] for c in on_slow]


def test_a_backend_whose_certificate_lacks_the_endpoint_name_stays_out(tmp_path: Path) -> None:
    """Clients dial endpoint.dnsName; a backend still serving a certificate without it (its
    re-issued one not rolled out yet) would give them an x509 error. The checks send that name
    as SNI and verify it (haproxy `check-sni` + `verifyhost`), so it stays DOWN while the others
    serve, and every request through the LB verifies."""
    probe = Lab(tmp_path / "probe")  # for the lab's CA, addresses and names
    assert probe.ca is not None
    old = pki.issue(probe.ca, "cp-2", dns=["cp-2"], ips=[probe.servers[1].address, probe.endpoint])
    with Lab(tmp_path / "lab", ca=probe.ca, prefix=probe.prefix, certs={"cp-2": old}) as lab:
        lab.start()
        lab.wait_states({"cp-1": "UP", "cp-3": "UP"}, 10)
        time.sleep(2)
        states = lab.states()
        report = lab.load(4, RATE)
    assert states["cp-2"].startswith("DOWN"), states
    assert report.failed == [], report.summary()
    assert {r.backend for r in report.results} == {"cp-1", "cp-3"}
