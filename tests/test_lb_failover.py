"""Failover through our rendered haproxy.cfg under load: real haproxy, loopback only.

Each run is bounded (about 10 s of load at 40 requests/s) and ends every process it started.
A request already inside a TCP session to a backend that is SIGKILLed at that instant cannot
be saved by any TCP proxy, so crash runs count requests *started after* the fault; the
benchmark (bench/lb_failover.py) prints both figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import reference_configs
from tests.harness.lab import Lab

pytestmark = pytest.mark.slow
RATE = 40.0


def _started(tmp_path: Path, **kwargs: object) -> Lab:
    lab = Lab(tmp_path, **kwargs)  # type: ignore[arg-type]
    lab.start()
    lab.wait_states({s.name: "UP" for s in lab.servers}, 10)
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
